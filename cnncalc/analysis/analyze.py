"""The analytic pass: walk the network in file order and apply every layer's rules; then the
budgets a spec or the command line sets."""
from __future__ import annotations

import gc
from bisect import bisect_right
from contextlib import contextmanager
from itertools import accumulate
from math import prod
from typing import Any, Iterable, Iterator

from cnncalc.analysis.report import LayerReport, Report
from cnncalc.analysis.strides import Strides, contiguous, through
from cnncalc.errors import CnnError, LayerError, Problem, gc_paused
from cnncalc.layers import Ctx, Layer, Shape
from cnncalc.layers.base import MAX_INT
from cnncalc.layers.field import RF, union
from cnncalc.spec.network import Network, Node
from cnncalc.spec.source import Source
from cnncalc.units import DTYPE_BYTES


def analyze(net: Network, batch: int | None = None, input_shape: Shape | None = None,
            dtype: str | None = None, optimizer: str = "adam") -> Report:
    """Compute every layer's shape, params, MACs, memory and receptive field.

    Raises CnnError with every located problem (shape mismatches, bad channels, …)."""
    with _gc_promoted():
        return _analyze(net, batch, input_shape, dtype, optimizer)


@contextmanager
def _gc_promoted() -> Iterator[None]:
    """`gc_paused`, and then the objects made meanwhile handed to the oldest generation as they
    are (gc.freeze + gc.unfreeze: two list splices), not scanned by a young collection at the
    first allocation after: the report is acyclic (it frees by reference counts alone) and lives
    on, and that scan was a tenth of the analysis of a long chain (#30). The caller's own young
    objects move along and wait for the next full collection. Not done while the caller keeps
    objects frozen (gc.unfreeze would release them)."""
    if not gc.isenabled() or gc.get_freeze_count():
        with gc_paused():
            yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        gc.unfreeze()
        gc.enable()


def _analyze(net: Network, batch: int | None, input_shape: Shape | None, dtype: str | None,
             optimizer: str) -> Report:
    """The stages: every layer's rules in file order, then the outputs nothing reads, then the totals."""
    h = net.header
    shape0 = (batch or h.batch, *(input_shape or h.input))
    rows, warnings, used = _walk(net, shape0, DTYPE_BYTES[dtype or h.dtype])
    _warn_unused(net, rows, used, warnings)
    report = Report(net.name, net.source.file, shape0, dtype or h.dtype, optimizer, rows, list(net.outputs), warnings,
                    net)
    report.compute_totals()
    return report


def _walk(net: Network, shape0: Shape, b: int) -> tuple[list[LayerReport], list[Problem], set[str]]:
    """Each layer's rules applied to its inputs' shapes, fields, axis orders and notes: its row,
    its warnings, and the names some layer reads; every problem raised at the end (a layer whose
    input failed is skipped). The per-layer body is one loop (#30: no call per layer beyond the
    rules); the rare branches (shared weights, a field outgrowing the input) are functions."""
    src = net.source
    problems: list[Problem] = []
    shapes, notes, fields, layouts = _network_input(shape0)
    memory: dict[str, Strides | None] = {"input": contiguous(shape0)}  # strides: a view needs compatible ones
    done: dict[str, LayerReport] = {}
    rows: list[LayerReport] = []
    warnings: list[Problem] = []
    used: set[str] = set(net.outputs)
    exceeded = False
    extent = tuple(shape0[2:])
    chans: dict[str, Channels] = {"input": None}  # fields per channel, where channels differ
    reach: dict[str, Reach] = {"input": None}  # what a tensor without a field reads, all its elements together
    missing: dict[str, str] = {}  # torch.chunk's pieces that do not exist: refused where used
    for node in net.nodes:
        inputs = node.inputs
        if len(inputs) == 1:
            i0 = inputs[0]
            if i0 not in shapes:
                continue  # an input failed: its problem is already reported
            if missing and i0 in missing:
                problems.append(src.problem(missing[i0], node.path, node.name, index=node.index))
                continue
            in_shapes, in_layouts, in_fields, in_notes = [shapes[i0]], [layouts[i0]], [fields[i0]], [notes[i0]]
        else:
            if any(i not in shapes for i in inputs):
                continue
            if missing and any(i in missing for i in inputs):
                for i in dict.fromkeys(i for i in inputs if i in missing):
                    problems.append(src.problem(missing[i], node.path, node.name, index=node.index))
                continue
            in_shapes, in_layouts = [shapes[i] for i in inputs], [layouts[i] for i in inputs]
            in_fields, in_notes = [fields[i] for i in inputs], [notes[i] for i in inputs]
        try:
            layer = node.resolve(in_shapes[0], src, shapes)  # evaluates `in.*` and `${LAYER.height}` fields
        except CnnError as exc:
            problems += exc.problems
            continue
        ctx = Ctx(in_shapes, notes=in_notes, layouts=list(in_layouts), extent=extent,
                  producers=[done.get(i) for i in inputs])
        try:
            ctx.out = layer.shape(ctx)
            if max(ctx.out, default=0) > MAX_INT:
                raise LayerError(f"output shape {'×'.join(map(str, ctx.out))} has a size above the limit 2^40")
            weights, buffers = layer.weights(ctx), layer.buffers(ctx)
            macs, elementwise = layer.macs(ctx), layer.elementwise(ctx)
            if len(inputs) > 1 and None in in_fields:
                in_fields = _reached(ctx, in_fields, [reach[i] for i in inputs])
            layout, rf = _through_layout(layer, ctx, in_layouts, in_fields)
            in_chans = [chans[i] for i in inputs]
            rf, channels = _per_channel(layer, ctx, in_fields, in_chans, rf, layout == _identity(len(ctx.out)))
            strides = through(layer, in_shapes, ctx.out, [memory[i] for i in inputs])
            if layer.type in ("flatten", "linear"):  # whether torch's reshape copies (memory.py asks)
                ctx.__dict__["in_strides"] = memory[inputs[0]]
            note = layer.note(ctx)
            layer_warnings = layer.warnings(ctx)
        except LayerError as exc:
            problems.append(src.problem(str(exc) + _used_at(src, node), node.path + (exc.field or ()), node.name,
                                        index=node.index))
            continue
        shared = None
        if node.share:
            shared = _shared_owner(src, node, layer, weights, done, problems)
            if shared is None:
                continue
        params = 0 if shared or not weights else sum([prod(s) for s in weights.values()])
        nbuf = 0 if shared or not buffers else sum([prod(s) for s in buffers.values()])
        shown = rf if layout == _identity(len(ctx.out)) else None  # permuted: no field to show
        row = LayerReport(node.index, node.name, layer.type, list(node.inputs), ctx.out, params,
                          params if layer.trainable else 0, nbuf, macs, elementwise, prod(ctx.out) * b, shown,
                          weights, buffers, shared, src.locate(node.path)[0], layer, ctx, node.path, node.blocks)
        rows.append(row)
        done[node.name] = row
        shapes[node.name], notes[node.name], fields[node.name], layouts[node.name] = ctx.out, note, rf, layout
        memory[node.name] = strides
        chans[node.name] = channels
        if layer.type == "narrow" and layer.piece_missing(ctx.x):  # type: ignore[attr-defined]
            # torch.chunk returns fewer pieces than asked (6 channels into 4: 3): legal while unused
            missing[node.name] = f"'{node.name}' is used here but " + layer.missing_message(ctx.x[1])  # type: ignore[attr-defined]
        reach[node.name] = None if rf is not None else _reach(ctx, in_layouts, in_fields, [reach[i] for i in inputs])
        used.update(inputs)
        for msg in layer_warnings:
            warnings.append(src.problem(msg, node.path, node.name, "warning", node.index))
        if shown and not exceeded and any(r._size > shape0[2 + a] and not r.whole for a, r in enumerate(shown)):
            exceeded = True  # once per network, at the line of the (outermost) block use
            warnings.append(_field_exceeds(src, node, rf, shape0))
    used.update(missing)  # a piece torch does not return is not an output nobody reads
    if problems:
        raise CnnError(problems)
    return rows, warnings, used


Run = tuple[int, tuple[RF, ...]]
Channels = list[Run] | str | None
"""A tensor's fields per channel: None while every channel has the tensor's field (nearly
always), runs (count, field) of consecutive channels after a concat of inputs with different
fields (a DenseNet concat of 1,024 channels is a run per input, not 1,024 entries), or MIXED
where the channels' fields differ in a way not tracked (a slice then gets an inexact field)."""
MIXED = "mixed"
Reach = tuple[tuple[RF, ...], bool] | None
"""What a tensor without a field (after flatten, linear, view) reads, all its elements together:
the hull of its sources' windows as whole fields, and whether every element reads all of it
(true when every source was one window read by every unit: a global pool's)."""


def _reach(ctx: Ctx, layouts: list[tuple[int, ...]], fields: list[list[RF] | None], reaches: list[Reach]) -> Reach:
    """The reach of a layer's output that has no field: the union of its inputs' fields over all
    their units (or their reaches)."""
    parts: list[tuple[tuple[RF, ...], bool]] = []
    for shape, lay, f, r in zip(ctx.ins, layouts, fields, reaches):
        if f is not None:
            spatial = [shape[lay.index(d)] for d in range(2, len(lay))] if len(lay) == len(shape) else []
            if len(spatial) != len(f):
                return None
            parts.append((tuple(x.spread(n) for x, n in zip(f, spatial)), all(x.whole for x in f)))
        elif r is not None:
            parts.append(r)
        else:
            return None
    if not parts or any(len(p[0]) != len(parts[0][0]) for p in parts):
        return None
    if len(parts) == 1:
        return parts[0]
    axes = tuple(union([p[0][a] for p in parts], [], 0) for a in range(len(parts[0][0])))
    whole = tuple(RF(a._size, a._jump, a._start, a._grain, a.uniform, a.irregular, a.exact, a.even, True) for a in axes)
    return whole, all(p[1] for p in parts) and all(p[0] == parts[0][0] for p in parts)


def _reached(ctx: Ctx, fields: list[list[RF] | None], reaches: list[Reach]) -> list[list[RF] | None]:
    """A merge's inputs' fields, an input without one replaced by its reach where it is broadcast
    along every spatial axis (a gate written with linear and view: every unit reads all the gate
    reads; exact when each of the gate's elements reads all of it). Anything else without a
    field leaves the merge without one: its units read an unknown part of the reach (#27)."""
    out: list[list[RF] | None] = []
    for shape, f, r in zip(ctx.ins, fields, reaches):
        if f is not None:
            out.append(f)
            continue
        broadcast = len(shape) == len(ctx.out) and all(n == 1 for n in shape[2:])
        if r is None or not broadcast or len(r[0]) != len(ctx.out) - 2:
            return [None] * len(fields)
        out.append(list(r[0]) if r[1] else [RF(a._size, a._jump, a._start, a._grain, a.uniform, a.irregular, False,
                                                 a.even, True) for a in r[0]])
    return out


def _per_channel(layer: Layer, ctx: Ctx, fields: list[list[RF] | None], chans: list[Channels], rf: list[RF] | None,
                 natural: bool) -> tuple[list[RF] | None, Channels]:
    """The output's field and its fields per channel (`Channels`). A layer's field is the union of
    its channels' windows; a slice of the channels (narrow, chunk, split) keeps only its
    channels' windows, and pixel_shuffle gives each output position other channels: there the
    union of a concat of different branches would be wrong (#27). Tracked exactly through
    concat, slices, channel shuffles and the layers whose channel c reads channel c; a layer
    reading its channels otherwise loses the per-channel fields (MIXED), and a slice of such a
    tensor is marked inexact."""
    if rf is None:
        return None, None
    uniform = chans[0] is None if len(chans) == 1 else all(c is None for c in chans)
    src = layer.channel_sources(ctx)
    if uniform and src not in ("concat", "splits"):
        return rf, None
    if not natural or src == "other":
        return rf, None if uniform else MIXED
    if src == "all":
        return rf, None
    if src == "splits":  # each channel reads another position of the block
        return rf, MIXED
    if src == "moves":  # each output position reads other channels
        return [replace_exact(r) for r in rf], MIXED
    if MIXED in chans:
        if isinstance(src, list) and sorted(src) != list(range(ctx.x[1])):  # a slice of unknown channels
            rf = [replace_exact(r) for r in rf]
        return rf, MIXED
    per: list[list[Run]] = [c if isinstance(c, list) else [(shape[1], tuple(f or ()))]
                            for c, f, shape in zip(chans, fields, ctx.ins)]
    out: list[Run]
    if src == "concat":
        out = _runs(r for c in per for r in c)
    elif src == "each":  # channel c of the output reads channel c of each input (a broadcast one: its only)
        done: dict[tuple[tuple[RF, ...], ...], tuple[RF, ...]] = {}
        out = []
        for n, key in _aligned(per, ctx.out[1]):
            got = done.get(key)
            if got is None:
                got = done[key] = tuple(layer.rf(ctx, [list(k) for k in key]) or ())
            out.append((n, got))
        out = _runs(out)
    else:  # output channel i reads input channel src[i]
        assert isinstance(src, list)
        out, distinct = _picked(per[0], src)
        rf = list(distinct[0]) if len(distinct) == 1 else [
            union([d[a] for d in distinct], [], 0) for a in range(len(distinct[0]))]
    if any(len(f) != len(rf) for _, f in out):
        return rf, MIXED
    return rf, None if len(out) == 1 else out


def _runs(runs: Iterable[Run]) -> list[Run]:
    """Runs with neighbours of one field joined."""
    out: list[Run] = []
    for n, f in runs:
        if out and out[-1][1] == f:
            out[-1] = (out[-1][0] + n, f)
        elif n:
            out.append((n, f))
    return out


def _aligned(per: list[list[Run]], channels: int) -> Iterator[tuple[int, tuple[tuple[RF, ...], ...]]]:
    """(count, the inputs' fields) over the output's channels, splitting at every input's run
    boundary; an input of one channel (broadcast) gives its field to all."""
    runs = [r if sum(n for n, _ in r) == channels else [(channels, r[0][1])] for r in per]
    at = [0] * len(runs)  # each input's run index
    left = [r[0][0] for r in runs]  # channels left in it
    done = 0
    while done < channels:
        n = min(left)
        yield n, tuple(r[k][1] for r, k in zip(runs, at))
        done += n
        for i in range(len(runs)):
            left[i] -= n
            if not left[i] and at[i] + 1 < len(runs[i]):
                at[i] += 1
                left[i] = runs[i][at[i]][0]


def _picked(runs: list[Run], src: list[int]) -> tuple[list[Run], list[tuple[RF, ...]]]:
    """The runs of input channels src[0], src[1], … (a slice or a channel shuffle), and their
    distinct fields: each input run's field is hashed once, the picks compare small integers
    (a channel shuffle alternates its branches' fields channel by channel)."""
    ids: dict[tuple[RF, ...], int] = {}
    seen: dict[int, int] = {}  # by object first: runs made here share their field objects
    rid = []
    for _, f in runs:
        k = seen.get(id(f))
        if k is None:
            k = seen[id(f)] = ids.setdefault(f, len(ids))
        rid.append(k)
    fields = list(ids)
    starts = list(accumulate((n for n, _ in runs), initial=0))
    picks: list[list[int]] = []  # [count, field id]
    for c in src:
        k = rid[bisect_right(starts, c) - 1]
        if picks and picks[-1][1] == k:
            picks[-1][0] += 1
        else:
            picks.append([1, k])
    return [(n, fields[k]) for n, k in picks], [fields[k] for k in dict.fromkeys(k for _, k in picks)]


def replace_exact(r: RF) -> RF:
    """The field `r`, marked inexact."""
    return r if not r.exact else RF(r._size, r._jump, r._start, r._grain, r.uniform, r.irregular, False, r.even,
                                    r.whole)


def _network_input(shape0: Shape) -> tuple[dict[str, Shape], dict[str, str | None], dict[str, list[RF] | None],
                                           dict[str, tuple[int, ...]]]:
    """What the walk knows of the network's input: its shape, note (none), field (the identity
    per spatial axis) and axis order (the natural one); each layer adds its own under its name."""
    spatial = len(shape0) - 2
    return ({"input": shape0}, {"input": None}, {"input": [RF.identity()] * spatial if spatial > 0 else None},
            {"input": tuple(range(len(shape0)))})  # axis order: each axis's (N, C, …) axis


def _shared_owner(src: Source, node: Node, layer: Layer, weights: dict[str, Shape], done: dict[str, LayerReport],
                  problems: list[Problem]) -> str | None:
    """`share: OTHER`: the layer that owns the weights (OTHER, or the one OTHER shares with); None,
    with the problem recorded, when OTHER failed, comes later or needs other weights."""
    other = done.get(node.share or "")
    if other is None:
        problems.append(src.problem(f"share: '{node.share}' has no weights to share (it failed or comes later)",
                                    node.path + ("share",), node.name, index=node.index))
        return None
    if other.type != layer.type or other.weights != weights:
        problems.append(src.problem(
            f"share: '{node.share}' has weights {_shapes(other.weights)} ({other.type}) but this layer "
            f"needs {_shapes(weights)} ({layer.type})", node.path + ("share",), node.name, index=node.index))
        return None
    return other.shared_with or other.name


def _field_exceeds(src: Source, node: Node, rf: list[RF] | None, shape0: Shape) -> Problem:
    """The warning that the receptive field now exceeds the input (deeper layers see only padding
    more), at the line of the (outermost) block use."""
    sizes = "×".join(str(round(float(r.size))) for r in rf or [])
    return src.problem(f"receptive field {sizes} now exceeds the input {'×'.join(map(str, shape0[2:]))}: deeper "
                       "layers widen it only into the padding", node.via[0] if node.via else node.path, node.name,
                       "warning", node.index)


def _warn_unused(net: Network, rows: list[LayerReport], used: set[str], warnings: list[Problem]) -> None:
    """A warning for each layer whose output nothing reads (not an input of any layer, not in outputs)."""
    for row in rows:
        if row.name not in used:
            warnings.append(net.source.problem(f"output of '{row.name}' is never used (not an input of any layer, "
                                               "not in outputs)", net.nodes[row.index].path, row.name, "warning",
                                               row.index))


def _through_layout(layer: Layer, ctx: Ctx, layouts: list[tuple[int, ...]],
                    fields: list[list[RF] | None]) -> tuple[tuple[int, ...], list[RF] | None]:
    """The output's axis order and field. In (N, C, spatial…) order a layer's own rule decides.
    A permute reorders the axes and carries the field; on a permuted tensor, a point-wise layer
    (inputs of one shape) or one mixing only the last axis while it holds the channels keeps
    order and field; anything else ends the field."""
    identity = _identity(len(ctx.out))
    cls = type(layer)
    reorders = _REORDERS.get(cls)
    if reorders is None:
        reorders = _REORDERS[cls] = callable(getattr(cls, "order", None))
    if reorders:  # permute, transpose
        return tuple(layouts[0][d] for d in layer.order(len(ctx.x))), fields[0]  # type: ignore[attr-defined]
    if len(layouts) == 1:
        natural = layouts[0] == _identity(len(layouts[0]))
    else:
        natural = all(lay == _identity(len(lay)) for lay in layouts)
    if natural:
        return identity, layer.rf(ctx, fields)
    lay = layouts[0]
    same = all(x == lay for x in layouts) and all(s == ctx.x for s in ctx.ins) and len(ctx.out) == len(lay)
    pointwise = type(layer).rf is Layer.rf or (layer.last_axis_only(ctx) and lay[-1] == 1)
    if same and pointwise:
        return lay, fields[0]
    return (identity if len(ctx.out) != len(lay) else lay), None


_REORDERS: dict[type, bool] = {}  #: per layer class: it has an `order` (permute, transpose)
_IDENTITY: dict[int, tuple[int, ...]] = {}


def _identity(n: int) -> tuple[int, ...]:
    """(0, 1, …, n − 1): the natural axis order of an n-D tensor."""
    t = _IDENTITY.get(n)
    if t is None:
        t = _IDENTITY[n] = tuple(range(n))
    return t


def _used_at(src: Source, node: Node) -> str:
    """For a layer inside a block, where that block was used (the definition is shared)."""
    if not node.via:
        return ""
    if any(src.file_of(p) != src.file_of(node.path) for p in node.via):  # a block of an included file
        return f" (in the block used at {' → '.join(f'{src.file_of(p)}:{src.locate(p)[0]}' for p in node.via)})"
    lines = [str(src.locate(p)[0]) for p in node.via]
    return f" (in the block used at line {' → '.join(lines)})"


def _shapes(w: dict[str, Shape]) -> str:
    return ", ".join(f"{k}{list(v)}" for k, v in w.items()) or "none"


def check_limits(report: Report, cli_limits: dict[str, Any] | None = None) -> list[Problem]:
    """The spec's `limits:` (at their batch and dtype) and the command line's budgets."""
    from cnncalc.analysis.budgets import check

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

        def located(key: str | tuple[str, ...], message: str) -> Problem:
            path = ("limits",) + (key if isinstance(key, tuple) else (key,))
            return src.problem(message, path, None)

        out += check(target, lim, located)
    if cli_limits:
        from cnncalc.analysis.budgets import FLAGS

        out += check(report, cli_limits, lambda key, message: Problem(f"{FLAGS.get(key, key)}: " + message
                                                                       .split(": ", 1)[-1], src.file))
    return out
