"""The report data model: `LayerReport` (every number of one layer) and `Report` (the network,
its totals and warnings)."""
from __future__ import annotations

from dataclasses import dataclass, field
from math import prod
from typing import Any

from cnncalc.analysis.memory import OPTIMIZER_STATES, inference_peak, training_memory
from cnncalc.errors import Problem
from cnncalc.layers import Ctx, Layer, Shape
from cnncalc.layers.field import RF
from cnncalc.spec.network import Network
from cnncalc.spec.source import Path
from cnncalc.units import DTYPE_BYTES, plain


@dataclass
class LayerReport:
    """Every number cnncalc computes for one layer (counts for the whole batch)."""

    index: int
    name: str
    type: str
    inputs: list[str]
    output_shape: Shape
    params: int
    trainable_params: int
    buffers: int
    macs: int
    elementwise_ops: int
    activation_bytes: int
    receptive_field: list[RF] | None
    weights: dict[str, Shape] = field(default_factory=dict)
    buffer_shapes: dict[str, Shape] = field(default_factory=dict)
    shared_with: str | None = None
    line: int | None = None
    layer: Layer = field(default=None, repr=False, compare=False)  # type: ignore[assignment]
    """The spec's layer object: its rules, torch builder, probe and folding."""
    ctx: Ctx = field(default=None, repr=False, compare=False)  # type: ignore[assignment]
    """What the layer's rules saw: input shapes and output shape."""
    path: Path = field(default=(), repr=False, compare=False)
    """Where the layer is written in the spec (for located messages)."""
    blocks: tuple[str, ...] = ()
    """The block uses (and repetitions) it lies in, outermost first."""

    @property
    def flops(self) -> int:
        """FLOPs = 2·MACs (what torch.utils.flop_counter.FlopCounterMode reports)."""
        return 2 * self.macs

    def rf_json(self) -> dict | None:
        if self.receptive_field is None:
            return None
        jump = [plain(r.jump) for r in self.receptive_field]
        return {"size": [plain(r.size) for r in self.receptive_field],
                "stride": jump,  # the contract's name for the jump; kept for compatibility
                "jump": jump,
                "start": [plain(r.start) for r in self.receptive_field],
                "exact": all(r.exact for r in self.receptive_field),
                "start_exact": [r.exact and r.centred for r in self.receptive_field],
                "whole_input": [r.whole for r in self.receptive_field]}

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "type": self.type, "inputs": self.inputs,
                "output_shape": list(self.output_shape), "params": self.params,
                "trainable_params": self.trainable_params, "buffers": self.buffers, "macs": self.macs,
                "flops": self.flops, "elementwise_ops": self.elementwise_ops,
                "activation_bytes": self.activation_bytes, "receptive_field": self.rf_json(),
                "shared_with": self.shared_with, "weights": {k: list(v) for k, v in self.weights.items()},
                "line": self.line, "block_path": list(self.blocks)}


@dataclass
class Report:
    """The analytic report of one network at one input shape, batch and dtype."""

    name: str
    file: str
    input_shape: Shape
    dtype: str
    optimizer: str
    layers: list[LayerReport]
    outputs: list[str]
    warnings: list[Problem]
    network: Any = field(default=None, repr=False, compare=False)
    extra: dict[str, Any] = field(default_factory=dict)  #: optional sections (fused_bn, limits, ...)

    @property
    def bytes_per_element(self) -> int:
        return DTYPE_BYTES[self.dtype]

    @property
    def totals(self) -> dict[str, Any]:
        return self._totals

    def compute_totals(self) -> None:
        b = self.bytes_per_element
        params = sum(r.params for r in self.layers)
        trainable = sum(r.trainable_params for r in self.layers)
        input_bytes = prod(self.input_shape) * b
        activations = sum(r.activation_bytes for r in self.layers)
        buffer_bytes = sum((8 if k == "num_batches_tracked" else b) * prod(s)
                           for r in self.layers if r.shared_with is None for k, s in r.buffer_shapes.items())
        peak = inference_peak(self.layers, self.outputs, input_bytes, b)
        param_bytes = params * b
        states = OPTIMIZER_STATES[self.optimizer]
        train = training_memory(self.layers, self.outputs, input_bytes, b, self.optimizer,
                                param_bytes + buffer_bytes + trainable * b * states)
        self._totals = {
            "params": params, "trainable_params": trainable, "non_trainable_params": params - trainable,
            "buffers": sum(r.buffers for r in self.layers),
            "macs": sum(r.macs for r in self.layers), "flops": sum(r.flops for r in self.layers),
            "elementwise_ops": sum(r.elementwise_ops for r in self.layers),
            "activation_bytes": activations, "input_bytes": input_bytes,
            "param_bytes": param_bytes, "buffer_bytes": buffer_bytes,
            "inference_peak_activation_bytes": peak,
            "inference_memory_bytes": param_bytes + buffer_bytes + peak,
            "training_memory_bytes": train.peak,
            "training_saved_activation_bytes": train.saved,
            "training_peak_phase": train.phase,
            "optimizer": self.optimizer,
        }

    def layer(self, name: str) -> LayerReport:
        """The row of the layer called `name` (KeyError if there is none)."""
        index = self.__dict__.get("_by_name")
        if index is None or len(index) != len(self.layers):
            index = self.__dict__["_by_name"] = {r.name: r for r in self.layers}
        return index[name]

    def problem(self, row: LayerReport, message: str) -> Problem:
        """A problem located at the row's layer in the spec."""
        return self.network.source.problem(message, row.path, row.name, index=row.index)

    def prefix(self, index: int, batch: int, input_shape: Shape, dtype: str | None = None) -> Report:
        """The network up to row `index` (its output the only one), analysed at another input
        size and batch (the receptive-field probe enlarges the input)."""
        net: Network = self.network
        sub = Network(net.header, net.nodes[: index + 1], [self.layers[index].name], net.source)
        from cnncalc.analysis.analyze import analyze  # the pass builds reports: imported when used

        return analyze(sub, batch, input_shape, dtype, self.optimizer)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "file": self.file,
                "input": {"shape": list(self.input_shape), "dtype": self.dtype},
                "layers": [r.to_json() for r in self.layers], "outputs": self.outputs,
                "totals": self.totals,
                "memory_model": {
                    "inference": "params + buffers + peak of live activations and the layer's temporaries "
                                 "(a tensor is freed after its last consumer; views and in-place layers allocate nothing)",
                    "training": f"params + buffers + {self.optimizer} state "
                                f"({OPTIMIZER_STATES[self.optimizer]}× trainable params) + the step's peak of "
                                "activations, what autograd saves for backward, gradients and optimizer temporaries"},
                "warnings": [{"layer": w.layer, "message": w.message, "line": w.line} for w in self.warnings],
                **self.extra}
