"""One output unit's receptive field, traced back window by window to the input."""
from __future__ import annotations

from math import ceil, floor
from typing import Any

from cnncalc.analysis.report import Report
from cnncalc.errors import CnnError


def unit_field(report: Report, layer: str, unit: tuple[int, ...]) -> list[dict[str, Any]]:
    """The input interval each spatial axis of one output unit sees, and how much of it lies
    in padding: exact from the layers' `reads` rules where every layer on the way reads a
    fixed interval, else the field's formula (start + u·jump ± (size − 1)/2, approximate)."""
    row = report.layer(layer)
    if row.receptive_field is None:
        raise CnnError.single(f"{layer} has no receptive field (after flatten or linear)", file=report.file)
    spatial = row.output_shape[2:]
    if len(unit) != len(spatial) or any(not 0 <= u < s for u, s in zip(unit, spatial)):
        raise CnnError.single(f"--unit {','.join(map(str, unit))} is outside {layer}'s output "
                              f"{'×'.join(map(str, spatial))} (0-based, one index per spatial axis)", file=report.file)
    virtual, real = _sweep(report, row, unit, False), _sweep(report, row, unit, True)
    out = []
    for axis, (u, r, size) in enumerate(zip(unit, row.receptive_field, report.input_shape[2:])):
        if r.whole:  # the padded input, as the field says; inside it, what the unit reads traced
            # back (a crop on the way reads less than the input); not traced: approximate
            first, last = ceil(r.start - (r.size - 1) / 2), floor(r.start + (r.size - 1) / 2)
            if real is not None:
                clipped, exact = real[axis], r.exact
            else:
                clipped, exact = (max(first, 0), min(last, size - 1)), False
        elif virtual is not None and real is not None:  # traced back window by window: exact
            (first, last), clipped, exact = virtual[axis], real[axis], True
        else:
            centre = r.start + u * r.jump
            lo, hi = centre - (r.size - 1) / 2, centre + (r.size - 1) / 2
            first, last, exact = ceil(lo), floor(hi), False
            clipped = (max(first, 0), min(last, size - 1))
        out.append({"from": first, "to": last, "clipped": list(clipped),
                    # positions outside what the unit reads: the padding, and with a crop on the
                    # way the pixels it removed (traced: the window less its real hull)
                    "padding": (0 if first > last else (last - first + 1) - max(0, clipped[1] - clipped[0] + 1)
                                if exact else max(0, -first) + max(0, last - (size - 1)) if first <= last else 0),
                    # traced: this unit's own window (after upsampling units' windows differ in
                    # size, and the field's size is the widest); else the field's size
                    "size": last - first + 1 if exact and not r.whole else r.size, "exact": exact})
    return out


Box = tuple[tuple[tuple[int, int], ...], bool, "frozenset[int] | None"]
MAX_BOXES = 64  #: distinct windows tracked per tensor on the way back (beyond: the formula)


def _sweep(report: Report, row: Any, unit: tuple[int, ...], real: bool) -> list[tuple[int, int]] | None:
    """Walk back from `unit` of `row` to the input with each layer's `reads`, keeping per
    tensor the distinct boxes (one interval per spatial axis, and the channels that need it; a
    box inside another is dropped) that the paths through merges need; per axis the hull of
    the boxes that reach the input. Channels follow each layer's `channel_sources`: a slice
    keeps its own, a concat hands each input only its channels (an input none of whose
    channels is needed is not read), a layer that mixes channels needs all of them.
    `real`: only positions inside each tensor (a box all in padding along one axis reads
    nothing on any axis); else padding positions count, as in the field's size. A box whose
    positions are not all needed (a layer skipped some: dilation, strides past the kernel)
    is exact at the input but not through a further layer. None where a reach is no fixed
    interval, or not exact, or the channels' windows may differ where a layer moves channels
    in an untracked way, or the boxes multiply past MAX_BOXES."""
    need: dict[str, list[Box]] = {row.name: [(tuple((u, u) for u in unit), True, None)]}
    blind = [False]
    differ: dict[str, bool] = {}
    for r in reversed(report.layers[: row.index + 1]):
        todo = need.pop(r.name, [])
        if not todo:
            continue
        permuted = _permuted(r, len(unit))
        if permuted is None:  # no field (linear, flatten, view: a gate's branch): each input read whole,
            blind[0] = True   # which holds only where the field says every element reads all of it
            for name, shape in zip(r.inputs, r.ctx.ins):
                extent = tuple((0, n - 1) for n in shape[2:]) if len(shape) == len(unit) + 2 else ((0, 0),) * len(unit)
                need.setdefault(name, []).append((extent, True, None))
            continue
        for box, dense, chans in todo:
            if not dense:
                return None
            routes = _channels_read(report, r, chans, permuted, differ)
            if routes is None:
                return None
            per_axis: list[list[tuple[int, int] | None]]
            if permuted:  # carries the field in (N, C, spatial…) order: point-wise in space
                per_axis = [[(lo, hi)] * len(r.inputs) for lo, hi in box]
                keeps = True
            else:
                per_axis = [r.layer.reads(r.ctx, a, lo, hi, real) for a, (lo, hi) in enumerate(box)]
                keeps = all(r.layer.dense(r.ctx, a) for a in range(len(box)))
            for i, name in enumerate(r.inputs):
                sub = routes[i]
                if sub is False or sub is True:  # (False: none of this input's channels is needed)
                    continue
                spans = tuple(spans[i] for spans in per_axis)
                if any(span is None for span in spans):
                    return None
                if any(lo > hi for lo, hi in spans):  # type: ignore[misc]  # this input is not read
                    continue
                have = need.setdefault(name, [])
                inside = [o for o in have if _within(sub, o[2])
                          and all(a <= lo and hi <= b for (lo, hi), (a, b) in zip(spans, o[0]))]  # type: ignore[misc]
                if inside and any(o[1] for o in inside):
                    continue  # a box that needs all its positions already holds these
                have[:] = [o for o in have if not (_within(o[2], sub)
                           and all(lo <= a and b <= hi for (lo, hi), (a, b) in zip(spans, o[0])))]  # type: ignore[misc]
                have.append((spans, keeps, sub))  # type: ignore[arg-type]
                if len(have) > MAX_BOXES:
                    return None
    if blind[0] and not all(f.exact for f in row.receptive_field):
        return None
    boxes = [b for b, _, _ in need.get("input", [])]
    return [(min(b[a][0] for b in boxes), max(b[a][1] for b in boxes)) if boxes else (1, 0) for a in range(len(unit))]


def _within(a: frozenset[int] | None, b: frozenset[int] | None) -> bool:
    """Whether channel set `a` lies inside `b` (None: all channels)."""
    return b is None or (a is not None and a <= b)


def _channels_read(report: Report, row: Any, chans: frozenset[int] | None, permuted: bool,
                   differ: dict[str, bool]) -> list[frozenset[int] | None | bool] | None:
    """Per input of `row`, the channels that output channels `chans` read (None: all; False:
    none), by the layer's `channel_sources`. None (not traceable) where the layer moves channels
    in a way not tracked and the input's channels may read different windows."""
    ins = row.ctx.ins
    src = row.layer.channel_sources(row.ctx)
    if permuted:  # axis 1 is not the channels the field carries: a slice of it cuts a spatial axis,
        if isinstance(src, list) and sorted(src) != list(range(ins[0][1])):  # which `reads` does not say
            return None
        src = "other"
    if src == "all" or (chans is None and src != "moves" and not isinstance(src, list)):  # (a shuffle's
        return [None] * len(ins)                                            # positions read some channels each)
    if chans is not None and src in ("moves", "splits"):  # some output channels: other input positions
        return None                                         # each (pixel_unshuffle's offsets), not traced
    if src == "each" and chans is not None:
        return [None if x[1] == 1 or len(chans) == x[1] else chans for x in ins]
    if src == "concat" and chans is not None:
        out: list[frozenset[int] | None | bool] = []
        offset = 0
        for x in ins:
            sub = frozenset(c - offset for c in chans if offset <= c < offset + x[1])
            out.append(False if not sub else None if len(sub) == x[1] else sub)
            offset += x[1]
        return out
    if isinstance(src, list):  # (a slice, a channel shuffle)
        sub = frozenset(src) if chans is None else frozenset(src[c] for c in chans)
        return [None if len(sub) == ins[0][1] else sub]
    # moves, splits, other: the channels' windows must not differ
    if any(_channels_differ(report, name, differ) for name in row.inputs):
        return None
    return [None] * len(ins)


def _permuted(row: Any, axes: int) -> bool | None:
    """Whether `row` works on a permuted tensor (or permutes) while carrying the field in
    (N, C, spatial…) order (True: it is point-wise in space, as the analysis decided); False for
    a layer in natural order with a field; None where the field ended here (no window)."""
    from cnncalc.analysis.analyze import _identity, _through_layout
    from cnncalc.layers.field import RF

    layouts = row.ctx.layouts
    if not (callable(getattr(row.layer, "order", None)) or any(lay != _identity(len(lay)) for lay in layouts)):
        return False if row.receptive_field is not None else None
    carried = _through_layout(row.layer, row.ctx, layouts, [[RF.identity()] * axes for _ in layouts])[1]
    return True if carried is not None else None


def _channels_differ(report: Report, name: str, memo: dict[str, bool]) -> bool:
    """Whether the channels of tensor `name` may read different windows (as the analysis' fields
    per channel, conservatively): after a concat of different fields or a pixel_unshuffle, until
    a layer whose every channel reads every input channel."""
    if name == "input":
        return False
    if name not in memo:
        row = report.layer(name)
        src = row.layer.channel_sources(row.ctx)
        if src == "all":
            memo[name] = False
        elif src == "splits":
            memo[name] = True
        else:
            fields = [report.layer(i).receptive_field if i != "input" else None for i in row.inputs]
            memo[name] = (src == "concat" and any(f != fields[0] for f in fields)) or \
                any(_channels_differ(report, i, memo) for i in row.inputs)
    return memo[name]
