"""The report data model: `LayerReport` (every number of one layer) and `Report` (the network,
its totals and warnings)."""
from __future__ import annotations

from dataclasses import dataclass, field
from math import prod
from typing import Any

from cnncalc.analysis.memory import OPTIMIZER_STATES, memory_figures
from cnncalc.analysis.status import EXACT, Status, estimate, of_field, of_field_start
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
    def totals(self) -> Totals:
        return self._totals

    def compute_totals(self) -> None:
        b = self.bytes_per_element
        params = trainable = activations = buffers = macs = elementwise = buffer_bytes = 0
        for r in self.layers:  # one pass over the rows (#30: seven sums were a pass each)
            params += r.params
            trainable += r.trainable_params
            activations += r.activation_bytes
            buffers += r.buffers
            macs += r.macs
            elementwise += r.elementwise_ops
            if r.buffer_shapes and r.shared_with is None:
                for k, s in r.buffer_shapes.items():
                    buffer_bytes += (8 if k == "num_batches_tracked" else b) * prod(s)
        input_bytes = prod(self.input_shape) * b
        param_bytes = params * b
        states = OPTIMIZER_STATES[self.optimizer]
        peak, train = memory_figures(self.layers, self.outputs, input_bytes, b, self.optimizer,
                                     param_bytes + buffer_bytes + trainable * b * states)
        self._totals = Totals({
            "params": params, "trainable_params": trainable, "non_trainable_params": params - trainable,
            "buffers": buffers, "macs": macs, "flops": 2 * macs,  # each row's flops are 2·MACs
            "elementwise_ops": elementwise,
            "activation_bytes": activations, "input_bytes": input_bytes,
            "param_bytes": param_bytes, "buffer_bytes": buffer_bytes,
            "inference_peak_activation_bytes": peak,
            "inference_memory_bytes": param_bytes + buffer_bytes + peak,
            "training_memory_bytes": train.peak,
            "training_saved_activation_bytes": train.saved,
            "training_peak_phase": train.phase,
            "optimizer": self.optimizer,
        })

    #: totals that follow from the layers' memory rules (estimates where a rule is one)
    MEMORY_TOTALS = ("inference_peak_activation_bytes", "inference_memory_bytes", "training_memory_bytes",
                     "training_saved_activation_bytes")

    def totals_status(self) -> dict[str, Status]:
        """Each numeric total's status: exact, except the memory totals when a layer type's memory
        rules are an estimate (`Layer.memory_exact`)."""
        rough = sorted({r.type for r in self.layers if r.layer is not None and not r.layer.memory_exact})
        memory = estimate("memory_rule", f"the memory rules of {', '.join(rough)} are an estimate "
                                         "(`cnncalc layers TYPE` says why)") if rough else EXACT
        return {k: memory if k in self.MEMORY_TOTALS else EXACT
                for k, v in self.totals.items() if isinstance(v, int)}

    def field_statuses(self) -> dict[str, dict[str, Status]]:
        """Each row's field status, by name: its receptive field (size and jump) and its start; an
        estimate names the layer on the way where the windows stopped being alike (one pass over
        the rows). Empty for a row without a field."""
        origin: dict[str, LayerReport] = {}  # each inexact row → the first inexact row on its way
        out: dict[str, dict[str, Status]] = {}
        for r in self.layers:
            size, start = of_field(r.receptive_field), of_field_start(r.receptive_field)
            if size is None or start is None:
                out[r.name] = {}
                continue
            if size.level == "estimate":
                at = origin[r.name] = next((origin[i] for i in r.inputs if i in origin), r)
                size = start = estimate("field_inexact", f"windows differ from unit to unit from '{at.name}' "
                                                         f"({at.type}) on")
            out[r.name] = {"receptive_field": size, "receptive_field_start": start}
        return out

    def field_status(self, row: LayerReport) -> dict[str, Status]:
        """One row's field status (`field_statuses`; for many rows, call that once)."""
        return self.field_statuses()[row.name]

    def file_of(self, row: LayerReport) -> str:
        """The file the row's layer is written in (`line` counts in it): the spec, or a file it
        includes."""
        source = getattr(self.network, "source", None)
        return source.file_of(row.path) if source is not None else self.file

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
        field = self.field_statuses()
        return {"name": self.name, "file": self.file,
                "input": {"shape": list(self.input_shape), "dtype": self.dtype},
                "layers": [{**r.to_json(), "file": self.file_of(r),
                            "status": {k: s.to_json() for k, s in field[r.name].items()}}
                           for r in self.layers],
                "outputs": self.outputs,
                "totals": self.totals,
                "totals_status": {k: s.to_json() for k, s in self.totals_status().items()},
                "memory_model": {
                    "inference": "params + buffers + peak of live activations and the layer's temporaries "
                                 "(a tensor is freed after its last consumer; views and in-place layers allocate nothing)",
                    "training": f"params + buffers + {self.optimizer} state "
                                f"({OPTIMIZER_STATES[self.optimizer]}× trainable params) + the step's peak of "
                                "activations, what autograd saves for backward, gradients and optimizer temporaries"},
                "warnings": [{"layer": w.layer, "message": w.message, "line": w.line} for w in self.warnings],
                **self.extra}

    # ---- the Python API's views: printed, in a notebook, as data (renderers imported when used) ----
    view_depth: int | None = field(default=None, repr=False, compare=False)
    """Block uses nested this deep are one row each when the report is printed (summary(depth=))."""
    view_columns: list[int] | None = field(default=None, repr=False, compare=False)
    """The columns printed and shown in HTML (indices of render.columns.COLUMNS; summary(columns=))."""

    def __rich_console__(self, console: Any, options: Any) -> Any:
        """The table and totals, as `cnncalc analyze` prints them (`rich.print(report)`)."""
        from cnncalc.render.text import table_renderables

        yield from table_renderables(self, console, options.max_width, self.view_depth, self.view_columns)

    def __str__(self) -> str:
        """The table and totals as plain text, at the terminal's width (120 columns when there is
        none): `print(report)`."""
        from cnncalc.render.text import table_text

        return table_text(self, None, self.view_depth, self.view_columns)

    __repr__ = __str__  # the table at the prompt, as torchinfo's summary shows it

    def _repr_html_(self) -> str:
        """The HTML report (`analyze -f html`) in a notebook, in a frame of its own so that its
        styles and script leave the notebook alone."""
        from cnncalc.render.html import notebook_html

        return notebook_html(self, self.view_columns)

    def to_dict(self) -> dict[str, Any]:
        """The report as `cnncalc analyze SPEC -f json` gives it (the same keys and numbers)."""
        import json

        from cnncalc.render.formats import to_json

        return json.loads(to_json(self))

    def to_dataframe(self) -> Any:
        """One row per layer (pandas.DataFrame): the JSON fields, counts as integers, the output
        shape and receptive field (per spatial axis) as tuples of numbers."""
        try:
            import pandas as pd
        except ImportError:
            raise MissingDependency("Report.to_dataframe needs pandas: pip install pandas") from None
        rows: list[dict[str, Any]] = []
        for row in self.to_dict()["layers"]:
            rf = row.pop("receptive_field") or {}
            row.pop("weights")
            out = {"index": len(rows), **row, "output_shape": tuple(row["output_shape"]),
                   "inputs": tuple(row["inputs"]), "block_path": tuple(row["block_path"])}
            for k in ("size", "jump", "start"):
                out[f"rf_{k}"] = tuple(rf[k]) if rf else None
            rows.append(out)
        return pd.DataFrame(rows)


class MissingDependency(ImportError):
    """An optional package a method needs is not installed (the message says what to install)."""


class Totals(dict[str, Any]):
    """The report's totals: the JSON keys (`totals["params"]`) and the same as typed attributes
    (`totals.params`)."""

    params: int
    trainable_params: int
    non_trainable_params: int
    buffers: int
    macs: int
    flops: int
    elementwise_ops: int
    activation_bytes: int
    input_bytes: int
    param_bytes: int
    buffer_bytes: int
    inference_peak_activation_bytes: int
    inference_memory_bytes: int
    training_memory_bytes: int
    training_saved_activation_bytes: int
    training_peak_phase: str
    optimizer: str

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"totals have no '{name}' (they have: {', '.join(self)})") from None

    def __dir__(self) -> list[str]:
        return sorted(set(super().__dir__()) | set(self))
