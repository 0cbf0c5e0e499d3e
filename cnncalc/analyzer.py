"""The analytic pass: walk the network in file order and apply every layer's rules."""
from __future__ import annotations

from dataclasses import dataclass, field
from math import prod
from typing import Any

from .arith import DTYPE_BYTES, RF, plain
from .errors import CnnError, LayerError, Problem, gc_paused
from .layers import Ctx, Layer, Shape
from .layers.base import MAX_INT
from .memory import OPTIMIZER_STATES, inference_peak, training_memory
from .source import Path
from .spec import Network


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


def analyze(net: Network, batch: int | None = None, input_shape: Shape | None = None,
            dtype: str | None = None, optimizer: str = "adam") -> Report:
    """Compute every layer's shape, params, MACs, memory and receptive field.

    Raises CnnError with every located problem (shape mismatches, bad channels, …)."""
    with gc_paused():
        return _analyze(net, batch, input_shape, dtype, optimizer)


def _analyze(net: Network, batch: int | None, input_shape: Shape | None, dtype: str | None,
             optimizer: str) -> Report:
    h = net.header
    shape0 = (batch or h.batch, *(input_shape or h.input))
    src = net.source
    problems: list[Problem] = []
    shapes: dict[str, Shape] = {"input": shape0}
    notes: dict[str, str | None] = {"input": None}
    spatial = len(shape0) - 2
    fields: dict[str, list[RF] | None] = {"input": [RF.identity()] * spatial if spatial > 0 else None}
    layouts: dict[str, tuple[int, ...]] = {"input": tuple(range(len(shape0)))}  # axis → its (N, C, …) axis
    done: dict[str, LayerReport] = {}
    rows: list[LayerReport] = []
    warnings: list[Problem] = []
    last_use: dict[str, int] = {}
    exceeded = False
    b = DTYPE_BYTES[dtype or h.dtype]

    for node in net.nodes:
        if any(i not in shapes for i in node.inputs):
            continue  # an input failed: its problem is already reported
        try:
            layer = node.resolve(shapes[node.inputs[0]], src)  # evaluates `in.*` fields, if any
        except CnnError as exc:
            problems += exc.problems
            continue
        ctx = Ctx([shapes[i] for i in node.inputs], notes=[notes[i] for i in node.inputs])
        try:
            ctx.out = layer.shape(ctx)
            if max(ctx.out, default=0) > MAX_INT:
                raise LayerError(f"output shape {'×'.join(map(str, ctx.out))} has a size above the limit 2^40")
            weights, buffers = layer.weights(ctx), layer.buffers(ctx)
            macs, elementwise = layer.macs(ctx), layer.elementwise(ctx)
            layout, rf = _through_layout(layer, ctx, [layouts[i] for i in node.inputs], [fields[i] for i in node.inputs])
            note = layer.note(ctx)
            layer_warnings = layer.warnings(ctx)
        except LayerError as exc:
            problems.append(src.problem(str(exc) + _used_at(src, node), node.path + (exc.field or ()), node.name,
                                        index=node.index))
            continue
        shared = None
        if node.share:
            other = done.get(node.share)
            if other is None:
                problems.append(src.problem(f"share: '{node.share}' has no weights to share (it failed or comes later)",
                                            node.path + ("share",), node.name, index=node.index))
                continue
            if other.type != layer.type or other.weights != weights:
                problems.append(src.problem(
                    f"share: '{node.share}' has weights {_shapes(other.weights)} ({other.type}) but this layer "
                    f"needs {_shapes(weights)} ({layer.type})", node.path + ("share",), node.name, index=node.index))
                continue
            shared = other.shared_with or other.name
        params = 0 if shared else sum(prod(s) for s in weights.values())
        nbuf = 0 if shared else sum(prod(s) for s in buffers.values())
        shown = rf if layout == tuple(range(len(ctx.out))) else None  # permuted: no field to show
        row = LayerReport(node.index, node.name, layer.type, list(node.inputs), ctx.out, params,
                          params if layer.trainable else 0, nbuf, macs, elementwise, prod(ctx.out) * b, shown,
                          weights, buffers, shared, src.locate(node.path)[0], layer, ctx, node.path, node.blocks)
        rows.append(row)
        done[node.name] = row
        shapes[node.name], notes[node.name], fields[node.name], layouts[node.name] = ctx.out, note, rf, layout
        for i in node.inputs:
            last_use[i] = node.index
        for msg in layer_warnings:
            warnings.append(src.problem(msg, node.path, node.name, "warning", node.index))
        over = [(a, r) for a, r in enumerate(shown or []) if r.size > shape0[2 + a] and not r.whole]
        if over and not exceeded:  # once per network, at the line of the (outermost) block use
            exceeded = True
            sizes = "×".join(str(round(float(r.size))) for r in rf or [])
            warnings.append(src.problem(
                f"receptive field {sizes} now exceeds the input {'×'.join(map(str, shape0[2:]))}: deeper layers "
                "widen it only into the padding", node.via[0] if node.via else node.path, node.name, "warning",
                node.index))
    if problems:
        raise CnnError(problems)
    for name in net.outputs:
        last_use[name] = len(net.nodes)
    used = set(last_use)
    for row in rows:
        if row.name not in used:
            warnings.append(src.problem(f"output of '{row.name}' is never used (not an input of any layer, "
                                        "not in outputs)", net.nodes[row.index].path, row.name, "warning", row.index))
    report = Report(net.name, src.file, shape0, dtype or h.dtype, optimizer, rows, list(net.outputs), warnings, net)
    report.compute_totals()
    return report


def _through_layout(layer: Layer, ctx: Ctx, layouts: list[tuple[int, ...]],
                    fields: list[list[RF] | None]) -> tuple[tuple[int, ...], list[RF] | None]:
    """The output's axis order and field. In (N, C, spatial…) order a layer's own rule decides.
    A permute reorders the axes and carries the field; on a permuted tensor, a point-wise layer
    (inputs of one shape) or one mixing only the last axis while it holds the channels keeps
    order and field; anything else ends the field."""
    identity = tuple(range(len(ctx.out)))
    order = getattr(layer, "order", None)
    if order is not None:  # permute, transpose
        return tuple(layouts[0][d] for d in order(len(ctx.x))), fields[0]
    if all(lay == tuple(range(len(lay))) for lay in layouts):
        return identity, layer.rf(ctx, fields)
    lay = layouts[0]
    same = all(x == lay for x in layouts) and all(s == ctx.x for s in ctx.ins) and len(ctx.out) == len(lay)
    pointwise = type(layer).rf is Layer.rf or (layer.last_axis_only(ctx) and lay[-1] == 1)
    if same and pointwise:
        return lay, fields[0]
    return (identity if len(ctx.out) != len(lay) else lay), None


def _used_at(src, node) -> str:
    """For a layer inside a block, where that block was used (the definition is shared)."""
    if not node.via:
        return ""
    lines = [str(src.locate(p)[0]) for p in node.via]
    return f" (in the block used at line {' → '.join(lines)})"


def _shapes(w: dict[str, Shape]) -> str:
    return ", ".join(f"{k}{list(v)}" for k, v in w.items()) or "none"


def bn_folds(report: Report) -> list[tuple[LayerReport, LayerReport]]:
    """(conv, batchnorm) pairs that inference can fold: a layer that `folds()` (batch norm with
    running statistics) whose only input is an unshared layer that `absorbs_affine`
    (conv/linear) and feeds nothing else."""
    consumers: dict[str, int] = {}
    for r in report.layers:
        for i in r.inputs:
            consumers[i] = consumers.get(i, 0) + 1
    for o in report.outputs:
        consumers[o] = consumers.get(o, 0) + 1
    pairs = []
    for r in report.layers:
        if r.layer.folds() and not r.shared_with and len(r.inputs) == 1 and r.inputs[0] != "input":
            conv = report.layer(r.inputs[0])
            if conv.layer.absorbs_affine and consumers.get(conv.name) == 1 and not conv.shared_with:
                pairs.append((conv, r))
    return pairs


def fused_totals(report: Report) -> dict[str, int]:
    """Inference totals after folding each batch norm into the conv before it:
    W' = W·γ/√(σ²+ε), b' = (b − μ)·γ/√(σ²+ε) + β. The BN's params and buffers go; a conv
    without bias gains one (C_out); MACs are unchanged; the BN's element-wise work becomes the
    conv's bias add (1 per element instead of 2)."""
    t = report.totals
    pairs = bn_folds(report)
    gained = sum(bn.output_shape[1] for conv, bn in pairs if "bias" not in conv.weights)
    return {"folded": len(pairs),
            "params": t["params"] - sum(bn.params for _, bn in pairs) + gained,
            "buffers": t["buffers"] - sum(bn.buffers for _, bn in pairs),
            "macs": t["macs"], "flops": t["flops"],
            "elementwise_ops": t["elementwise_ops"] - sum(bn.elementwise_ops for _, bn in pairs)
            + sum(prod(bn.output_shape) for conv, bn in pairs if "bias" not in conv.weights)}


def check_limits(report: Report, cli_limits: dict[str, Any] | None = None) -> list[Problem]:
    """The spec's `limits:` (at their batch and dtype) and the command line's budgets."""
    from .budgets import check

    net: Network = report.network
    src = net.source
    out: list[Problem] = []
    spec_limits = net.header.limits
    if spec_limits is not None:
        lim = spec_limits.model_dump(exclude_none=True)
        target = report
        if (spec_limits.batch, spec_limits.dtype) != (None, None):
            target = analyze(net, spec_limits.batch or report.input_shape[0], tuple(report.input_shape[1:]),
                             spec_limits.dtype or report.dtype, report.optimizer)

        def located(key, message):
            path = ("limits",) + (key if isinstance(key, tuple) else (key,))
            return src.problem(message, path, None)

        out += check(target, lim, located)
    if cli_limits:
        from .budgets import FLAGS

        out += check(report, cli_limits, lambda key, message: Problem(f"{FLAGS.get(key, key)}: " + message
                                                                       .split(": ", 1)[-1], src.file))
    return out
