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
        if r.whole:  # the padded input, as the field says
            first, last, exact = ceil(r.start - (r.size - 1) / 2), floor(r.start + (r.size - 1) / 2), r.exact
            clipped = (max(first, 0), min(last, size - 1))
        elif virtual is not None and real is not None:
            (first, last), clipped, exact = virtual[axis], real[axis], True
        else:
            centre = r.start + u * r.jump
            lo, hi = centre - (r.size - 1) / 2, centre + (r.size - 1) / 2
            first, last, exact = ceil(lo), floor(hi), False
            clipped = (max(first, 0), min(last, size - 1))
        out.append({"from": first, "to": last, "clipped": list(clipped),
                    "padding": max(0, -first) + max(0, last - (size - 1)) if first <= last else 0,
                    "size": r.size, "exact": exact})
    return out


Box = tuple[tuple[tuple[int, int], ...], bool]
MAX_BOXES = 64  #: distinct windows tracked per tensor on the way back (beyond: the formula)


def _sweep(report: Report, row: Any, unit: tuple[int, ...], real: bool) -> list[tuple[int, int]] | None:
    """Walk back from `unit` of `row` to the input with each layer's `reads`, keeping per
    tensor the distinct boxes (one interval per axis; a box inside another is dropped) that
    the paths through merges need; per axis the hull of the boxes that reach the input.
    `real`: only positions inside each tensor (a box all in padding along one axis reads
    nothing on any axis); else padding positions count, as in the field's size. A box whose
    positions are not all needed (a layer skipped some: dilation, strides past the kernel)
    is exact at the input but not through a further layer. None where a reach is no fixed
    interval, or not exact, or the boxes multiply past MAX_BOXES."""
    need: dict[str, list[Box]] = {row.name: [(tuple((u, u) for u in unit), True)]}
    for r in reversed(report.layers[: row.index + 1]):
        for box, dense in need.pop(r.name, []):
            if not dense:
                return None
            per_axis = [r.layer.reads(r.ctx, a, lo, hi, real) for a, (lo, hi) in enumerate(box)]
            keeps = all(r.layer.dense(r.ctx, a) for a in range(len(box)))
            for i, name in enumerate(r.inputs):
                spans = tuple(spans[i] for spans in per_axis)
                if any(span is None for span in spans):
                    return None
                if any(lo > hi for lo, hi in spans):  # type: ignore[misc]  # this input is not read
                    continue
                have = need.setdefault(name, [])
                inside = [o for o in have if all(a <= lo and hi <= b for (lo, hi), (a, b) in zip(spans, o[0]))]  # type: ignore[misc]
                if inside and any(o[1] for o in inside):
                    continue  # a box that needs all its positions already holds these
                have[:] = [o for o in have if not all(lo <= a and b <= hi for (lo, hi), (a, b) in zip(spans, o[0]))]  # type: ignore[misc]
                have.append((spans, keeps))  # type: ignore[arg-type]
                if len(have) > MAX_BOXES:
                    return None
    boxes = [b for b, _ in need.get("input", [])]
    return [(min(b[a][0] for b in boxes), max(b[a][1] for b in boxes)) if boxes else (1, 0) for a in range(len(unit))]
