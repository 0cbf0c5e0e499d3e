"""The analytic pass: walk the network in file order and apply every layer's rules; then the
budgets a spec or the command line sets."""
from __future__ import annotations

import gc
from bisect import bisect_left, bisect_right
from contextlib import contextmanager
from itertools import accumulate, chain, compress, repeat
from math import prod
from operator import itemgetter, ne, sub
from typing import Any, Iterable, Iterator

from cnncalc.analysis.report import LayerReport, Report
from cnncalc.analysis.strides import Strides, contiguous, through
from cnncalc.errors import CnnError, LayerError, Problem, gc_paused
from cnncalc.layers import REGISTRY, Ctx, Layer, Shape
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
    chans: dict[str, Channels] = {}  # fields per channel, where channels differ (absent: None)
    flats = {"input"}  # the tensors in (N, C, spatial…) axis order with row-major strides
    reach: dict[str, Reach] = {}  # what a tensor without a field reads, all its elements together (absent: None)
    missing: dict[str, str] = {}  # torch.chunk's pieces that do not exist: refused where used
    fast = FAST  # the shortcuts of #30 (tests/analysis/test_fast_path.py turns them off)
    at = src.positions.get  # a layer's own node is nearly always there: `locate`'s first step, no call
    pointwise: dict[int, tuple[tuple[RF, ...], tuple[RF, ...]]] | None = {} if fast else None  # see `_each`
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
            producers = [done.get(i0)]
        else:
            if any(i not in shapes for i in inputs):
                continue
            if missing and any(i in missing for i in inputs):
                for i in dict.fromkeys(i for i in inputs if i in missing):
                    problems.append(src.problem(missing[i], node.path, node.name, index=node.index))
                continue
            in_shapes, in_layouts = [shapes[i] for i in inputs], [layouts[i] for i in inputs]
            in_fields, in_notes = [fields[i] for i in inputs], [notes[i] for i in inputs]
            producers = [done.get(i) for i in inputs]
        layer = node.layer  # (resolved already, unless a field reads a shape)
        if layer is None:
            try:
                layer = node.resolve(in_shapes[0], src, shapes)  # evaluates `in.*` and `${LAYER.height}` fields
            except CnnError as exc:
                problems += exc.problems
                continue
        ctx = Ctx(in_shapes, notes=in_notes, layouts=list(in_layouts), extent=extent, producers=producers)
        try:
            ctx.out = layer.shape(ctx)
            if max(ctx.out, default=0) > MAX_INT:
                raise LayerError(f"output shape {'×'.join(map(str, ctx.out))} has a size above the limit 2^40")
            cls = type(layer)
            kind = _KIND.get(cls)
            if kind is None:
                kind = _kind(cls)
            weights = layer.weights(ctx)
            buffers = layer.buffers(ctx) if cls.buffers is not _NO_BUFFERS else {}  # (the default: none)
            macs, elementwise = layer.macs(ctx), layer.elementwise(ctx)
            if len(inputs) > 1 and None in in_fields:
                in_fields = _reached(ctx, in_fields, [reach.get(i) for i in inputs])
            # the usual case in one go (#30): every input in natural axis order with row-major
            # strides, the layer no reorder, view or slice; the fields per channel only where an
            # input has them or the layer joins channels (concat)
            if len(inputs) == 1:
                flat, uniform = i0 in flats, i0 not in chans
            else:
                flat = all([i in flats for i in inputs])
                uniform = not chans or all([i not in chans for i in inputs])
            quick = fast and flat and kind is not _OTHER
            if quick:
                layout = _identity(len(ctx.out))
                rf = layer.rf(ctx, in_fields)
                strides: Strides | None = contiguous(ctx.out)
                if uniform and (kind is _PLAIN or layer.channel_sources(ctx) not in _JOINS):
                    channels = None
                else:
                    rf, channels = _per_channel(layer, ctx, in_fields, [chans.get(i) for i in inputs], rf, True,
                                                pointwise)
            else:
                layout, rf = _through_layout(layer, ctx, in_layouts, in_fields)
                in_chans = [chans.get(i) for i in inputs]
                rf, channels = _per_channel(layer, ctx, in_fields, in_chans, rf, layout == _identity(len(ctx.out)),
                                            pointwise)
                strides = through(layer, in_shapes, ctx.out, [memory[i] for i in inputs])
            if layer.type in ("flatten", "linear"):  # whether torch's reshape copies (memory.py asks)
                ctx.__dict__["in_strides"] = memory[inputs[0]]
            note = layer.note(ctx)
            layer_warnings = layer.warnings(ctx) if cls.warnings is not _NO_WARNINGS else ()
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
        shown = rf if quick or layout == _identity(len(ctx.out)) else None  # permuted: no field to show
        row = LayerReport(node.index, node.name, layer.type, list(node.inputs), ctx.out, params,
                          params if layer.trainable else 0, nbuf, macs, elementwise, prod(ctx.out) * b, shown,
                          weights, buffers, shared, (at(node.path) or src.locate(node.path))[0], layer, ctx, node.path,
                          node.blocks)
        rows.append(row)
        done[node.name] = row
        shapes[node.name], notes[node.name], fields[node.name], layouts[node.name] = ctx.out, note, rf, layout
        memory[node.name] = strides
        if channels is not None:
            chans[node.name] = channels
        if quick or (layout == _identity(len(layout)) and strides is not None and strides == contiguous(ctx.out)):
            flats.add(node.name)
        if layer.type == "narrow" and layer.piece_missing(ctx.x):  # type: ignore[attr-defined]
            # torch.chunk returns fewer pieces than asked (6 channels into 4: 3): legal while unused
            missing[node.name] = f"'{node.name}' is used here but " + layer.missing_message(ctx.x[1])  # type: ignore[attr-defined]
        if rf is None:
            whole = _reach(ctx, in_layouts, in_fields, [reach.get(i) for i in inputs])
            if whole is not None:
                reach[node.name] = whole
        used.update(inputs)
        for msg in layer_warnings:
            warnings.append(src.problem(msg, node.path, node.name, "warning", node.index))
        if shown and not exceeded and any(r._size > shape0[2 + a] and not r.whole for a, r in enumerate(shown)):
            exceeded = True  # once per network, at the line of the (outermost) block use
            warnings.append(_field_exceeds(src, node, rf, shape0))
    used.update(missing)  # a piece torch does not return is not an output nobody reads
    if TRACE is not None:
        TRACE.update(strides=memory, channels=chans, layouts=layouts, fields=fields)
    if problems:
        raise CnnError(problems)
    return rows, warnings, used


Run = tuple[int, tuple[RF, ...]]
_first, _second = itemgetter(0), itemgetter(1)
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
                 natural: bool, pointwise: dict[int, tuple[tuple[RF, ...], tuple[RF, ...]]] | None = None,
                 ) -> tuple[list[RF] | None, Channels]:
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
        out = _joined(per)
    elif FAST and src == "each" and len(per) == 1 and sum([n for n, _ in per[0]]) == ctx.out[1]:
        out = _each(layer, ctx, per[0], pointwise)
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
    if set(map(len, map(_second, out))) - {len(rf)}:  # (C loops: a shuffle's runs are single channels)
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


def _joined(per: list[list[Run]]) -> list[Run]:
    """`_runs` of the inputs' runs one after the other, each input's own runs already joined
    (as this module makes them): only where two inputs meet may neighbours share a field."""
    if not FAST or any(not c or 0 in map(_first, c) for c in per):
        return _runs(r for c in per for r in c)
    out = list(per[0])
    for c in per[1:]:
        if out[-1][1] == c[0][1]:
            out[-1] = (out[-1][0] + c[0][0], out[-1][1])
            out += c[1:]
        else:
            out += c
    return out


def _each(layer: Layer, ctx: Ctx, runs: list[Run],
          pointwise: dict[int, tuple[tuple[RF, ...], tuple[RF, ...]]] | None = None) -> list[Run]:
    """The runs of a layer whose channel c reads channel c of its one input: each run's field
    through the layer's rule, once per field object (runs made here share their field
    objects; #30: hashing fields was the cost), the input's own tuple kept where the rule
    returns its very windows. A point-wise layer (the default rule, the output of the input's
    shape: `merged`'s one-input case, `union` of each window alone, which reads nothing but the
    window) gives every field the same answer wherever it stands: `pointwise` keeps those
    answers for the whole walk, by field object (kept alive with it, so its id is not reused),
    for the next batch norm or activation on the same runs. Joined as `_runs` joins them: the
    input's runs themselves where every field is kept as it is (they are joined already)."""
    memo: dict[int, tuple[RF, ...]] = {}
    out: list[Run] = []
    kept = True
    if pointwise is not None and type(layer).rf is Layer.rf and len(ctx.ins) == 1 and ctx.ins[0] == ctx.out:
        for n, f in runs:
            hit = pointwise.get(id(f))
            if hit is None:
                new = [union([r], []) for r in f]
                same = all([a is b for a, b in zip(new, f)])
                hit = pointwise[id(f)] = (f, f if same else tuple(new))
            got = hit[1]
            kept = kept and got is f
            out.append((n, got))
        return runs if kept else _runs(out)
    for n, f in runs:
        known = memo.get(id(f))
        if known is None:
            ruled = layer.rf(ctx, [list(f)]) or ()
            same = len(ruled) == len(f) and all([a is b for a, b in zip(ruled, f)])
            known = memo[id(f)] = f if same else tuple(ruled)
        kept = kept and known is f
        out.append((n, known))
    return runs if kept else _runs(out)


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
    objs = list(map(_second, runs))
    ids: dict[tuple[RF, ...], int] = {}
    by_object = {i: ids.setdefault(f, len(ids)) for i, f in dict(zip(map(id, objs), objs)).items()}
    rid = list(map(by_object.__getitem__, map(id, objs)))  # each run's field id
    fields = list(ids)
    counts = list(map(_first, runs))
    total = sum(counts)
    a = src[0] if src else 0
    if FAST and src and 0 <= a and src[-1] < total and src[-1] - a == len(src) - 1 and src == list(range(a, src[-1] + 1)):
        # a slice (narrow, chunk, split): the runs it covers, the first and last cut to it; the
        # runs are already joined (no neighbours of one field)
        starts = list(accumulate(counts, initial=0))
        b = src[-1] + 1
        i, j = bisect_right(starts, a) - 1, bisect_left(starts, b)
        sel = rid[i:j]
        cut = counts[i:j]
        cut[0] = min(starts[i + 1], b) - a
        if j - 1 > i:
            cut[-1] = b - starts[j - 1]
        return list(zip(cut, map(fields.__getitem__, sel))), [fields[k] for k in dict.fromkeys(sel)]
    if FAST and src and total <= 4 * len(src) + 4096 and min(src) >= 0 and max(src) < total:
        # each input channel's field id spelled out (#30: no search per channel; C loops throughout)
        chan = list(chain.from_iterable(map(repeat, rid, counts)))
        picked = list(map(chan.__getitem__, src))
    else:
        starts = list(accumulate(counts, initial=0))
        picked = [rid[bisect_right(starts, c) - 1] for c in src]
    if not picked:
        return [], []
    cuts = [0, *compress(range(1, len(picked)), map(ne, picked, picked[1:])), len(picked)]
    out = list(zip(map(sub, cuts[1:], cuts), map(fields.__getitem__, map(picked.__getitem__, cuts))))
    return out, [fields[k] for k in dict.fromkeys(picked)]


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
            {"input": _identity(len(shape0))})  # axis order: each axis's (N, C, …) axis


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
    (inputs of one shape; one that resizes an axis only where it holds N or C) or one mixing
    only the last axis while it holds the channels keeps order and field; anything else ends
    the field."""
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
    if same and any(n != ctx.x[a] and lay[a] >= 2 for a, n in enumerate(ctx.out)):
        same = False  # it resizes an axis that holds a spatial one (a narrow of W after a permute)
    pointwise = type(layer).rf is Layer.rf or (layer.last_axis_only(ctx) and lay[-1] == 1)
    if same and pointwise:
        return lay, fields[0]
    return (identity if len(ctx.out) != len(lay) else lay), None


_REORDERS: dict[type, bool] = {}  #: per layer class: it has an `order` (permute, transpose)
FAST = True
"""The walk's shortcuts (#30): the usual layer in one go (`_kind`), point-wise fields per channel
kept for the walk (`_each`), slices and concats of runs by whole runs (`_picked`, `_joined`).
Each gives what the general path gives; False takes the general path everywhere (the test that
says so compares the two)."""
TRACE: dict[str, Any] | None = None
"""When a dict, each walk leaves in it its tensors' strides, fields per channel, axis orders and
fields (for that test)."""
_PLAIN, _ASK, _OTHER = "plain", "ask", "other"
_NO_BUFFERS, _NO_WARNINGS = Layer.buffers, Layer.warnings  #: the defaults (no call: {} and [])
_KIND: dict[type[Layer], str] = {}
#: the types whose strides `through` tracks as views (or keeps as they are)
_VIEWS = frozenset(("narrow", "identity", "view", "reshape", "flatten", "unflatten"))
_JOINS = ("concat", "splits")  #: channel sources that make fields per channel of uniform inputs


def _kind(cls: type[Layer]) -> str:
    """Per layer class, asked once, what `_walk`'s fast path may assume on inputs in natural
    axis order, with one field for all their channels and row-major strides: _PLAIN, the output
    is in natural order with the field of the layer's own rule and one field for all channels
    (the class keeps the default channel_sources: 'each' or 'other') and has row-major strides
    (no type the class is registered under is a view, a slice or a reordering); _ASK, the same
    unless its channel_sources is one of _JOINS; _OTHER: the general path."""
    reorders = callable(getattr(cls, "order", None))
    types = [name for name, c in REGISTRY.items() if c is cls]
    if reorders or not types or any(t in _VIEWS for t in types):
        got = _OTHER
    else:
        got = _PLAIN if cls.channel_sources is Layer.channel_sources else _ASK
    _KIND[cls] = got
    return got
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
