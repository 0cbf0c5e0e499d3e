"""Receptive fields measured by gradients: a positive linear copy of the network (each layer
class says how it is probed), back-propagated from neighbouring output units on an input large
enough that their fields are not clipped."""
from __future__ import annotations

from fractions import Fraction
from math import ceil, gcd
from typing import Any

from ..analyzer import Report
from ..arith import RF
from ..errors import CnnError
from .build import build_model
from .device import available_memory


def linearise(model: Any, report: Report, t: Any) -> None:
    """Replace every layer's module by its probe stand-in (`Layer.probe`): positive weights,
    point-wise layers as identity, max pooling as window sums, adaptive max as average."""
    for i, row in enumerate(report.layers):
        key = f"l{i}"
        model.layers[key] = row.layer.probe(row.ctx, model.layers[key], t)


def probeable(report: Report) -> list[int]:
    """Rows whose field is defined and independent of the input size (no adaptive pooling,
    resize-to-size or fixed normalized_shape on the way), so an enlarged input can show it."""
    blocked: set[str] = set()
    out = []
    for row in report.layers:
        if row.receptive_field is None or row.layer.rf_size_dependent or any(i in blocked for i in row.inputs):
            blocked.add(row.name)
        else:
            out.append(row.index)
    return out


def _field(report: Report, idx: int) -> list[RF]:
    """The field of a probeable row (never None there)."""
    field = report.layers[idx].receptive_field
    assert field is not None, report.layers[idx].name
    return field


def probe_plan(report: Report, limit: int = 40) -> tuple[list[int], list[int], dict[int, str]]:
    """Rows whose window to probe (exact fields that change, before anything size-dependent;
    if there are too many, the ones where the jump changes plus the last), rows where a field
    becomes whole-input (checked by `probe_whole`), and for every other row with a field the
    reason it is not probed."""
    ok = set(probeable(report))
    rows, whole, skipped = [], [], {}
    for row in report.layers:
        field = row.receptive_field
        if field is None:
            continue
        prev = [(i, report.layer(i).receptive_field) for i in row.inputs if i != "input"]
        if prev and all(p == field for _, p in prev):
            skipped[row.index] = f"not probed: same field as {prev[0][0]}"
        elif any(r.whole for r in field):
            whole.append(row.index)
        elif row.index not in ok:
            skipped[row.index] = "not probed: depends on the input size (adaptive pooling or resize on the way)"
        elif not all(r.exact for r in field):
            skipped[row.index] = "not probed: approximate field (exact: false)"
        else:
            rows.append(row.index)
    if len(rows) > limit:
        keep = [i for k, i in enumerate(rows) if k == len(rows) - 1 or
                [r.jump for r in _field(report, i)] != [r.jump for r in _field(report, rows[k + 1])]]
        for i in set(rows) - set(keep[-limit:]):
            skipped[i] = f"not probed: beyond the {limit} probed rows (those where the jump changes, and the last)"
        rows = keep[-limit:]
    last = next((r for r in reversed(report.layers) if r.receptive_field is not None), None)
    if last is not None and last.index in skipped and any(f.whole for f in last.receptive_field or ()):
        del skipped[last.index]  # the network's final whole-input claim is always checked
        whole.append(last.index)
    return rows, whole, skipped


def probe_whole(report: Report, idx: int, t: Any, device: Any = None) -> bool | str:
    """Does every unit of row `idx` read every input pixel along the axes its field calls
    whole? The first and the last unit of a positive linear copy at the network's own input
    size; a reason instead when that does not fit the probe's memory budget."""
    torch = t.torch
    device = device or torch.device("cpu")
    rep = report.prefix(idx, 1, tuple(report.input_shape[1:]), "float64")
    need = 3 * rep.totals["inference_peak_activation_bytes"]
    budget = min(2 * 2**30, (available_memory(torch, device) or 2**33) // 4)
    if need > budget:
        return f"not probed: the probe needs about {need / 2**30:.1f} GiB (budget {budget / 2**30:.1f} GiB)"
    model = build_model(rep, t).to(device=device, dtype=torch.float64)
    linearise(model, rep, t)
    model.requires_grad_(False)
    x = torch.ones(rep.input_shape, dtype=torch.float64, device=device, requires_grad=True)
    out = model(x, stop=idx)
    field = _field(report, idx)  # the claim under test
    for unit in ((0,) * len(field), tuple(n - 1 for n in out.shape[2:])):
        sel = (0, slice(None), *unit)
        (grad,) = torch.autograd.grad(out[sel].sum(), x, retain_graph=True)
        g = grad.abs().sum(dim=(0, 1))
        for a, r in enumerate(field):
            other = tuple(d for d in range(g.dim()) if d != a)
            if r.whole and not bool(((g.sum(dim=other) if other else g) > 0).all()):
                return False
    return True


def probe_rows(report: Report, limit: int = 40) -> list[int]:
    """The rows `probe_plan` probes."""
    return probe_plan(report, limit)[0]


def probe_rf(report: Report, indices: list[int], t: Any, device: Any = None) -> dict[int, tuple | str]:
    """Measure (sizes, jumps) of the rows' fields by back-propagating from output units of a
    linearised float64 copy; a row that cannot be probed gets the reason instead."""
    torch = t.torch
    device = device or torch.device("cpu")
    results: dict[int, tuple | str] = {}
    periods = field_periods(report)
    budget = min(2 * 2**30, (available_memory(torch, device) or 2**33) // 4)
    for idx in indices:
        period = periods[idx]
        steps = 2 if period == 1 else 2 * period + 1  # after upsampling some units may see nothing
        geometry = _probe_geometry(report, idx, steps)
        if isinstance(geometry, str):
            results[idx] = geometry
            continue
        rep, centre = geometry
        need_bytes = 3 * rep.totals["inference_peak_activation_bytes"]  # forward + gradients, no weight grads
        if need_bytes > budget:
            results[idx] = (f"not probed: the probe needs about {need_bytes / 2**30:.1f} GiB "
                            f"(budget {budget / 2**30:.1f} GiB)")
            continue
        model = build_model(rep, t).to(device=device, dtype=torch.float64)
        linearise(model, rep, t)
        model.requires_grad_(False)  # only the input gradient is wanted: autograd saves far less
        x = torch.ones(rep.input_shape, dtype=torch.float64, device=device, requires_grad=True)
        try:
            out = model(x, stop=idx)
        except RuntimeError as exc:  # out of memory on an unusual device: report, do not crash
            results[idx] = f"not probed: {str(exc).splitlines()[0][:120]}"
            continue
        results[idx] = _measure(torch, x, out, _field(rep, idx), centre, steps, period)
    return results


def _measure(torch: Any, x: Any, out: Any, prf: list, centre: list[int], steps: int, period: int) -> tuple:
    """Sizes and jumps per axis from the input gradients of `steps` diagonal neighbours."""
    total = 0
    for b in range(steps):
        sel = (b, slice(None), *(c + b for c in centre))
        total = total + out[sel].sum()
    (grad,) = torch.autograd.grad(total, x)
    g = grad.abs().sum(dim=1)  # (steps, *spatial)
    sizes, jumps = [], []
    for a in range(len(prf)):
        other = tuple(d for d in range(1, g.dim()) if d != a + 1)
        prof = g.sum(dim=other) if other else g
        firsts: dict[int, int] = {}
        extents = [0]
        for b in range(steps):
            nz = torch.nonzero(prof[b] > 0).flatten()
            if len(nz):
                firsts[b] = int(nz[0])
                extents.append(int(nz[-1]) - int(nz[0]) + 1)
        b0 = min(firsts, default=0)
        sizes.append(max(extents))
        jumps.append(Fraction(firsts[b0 + period] - firsts[b0], period) if b0 + period in firsts else Fraction(0))
    return tuple(sizes), tuple(jumps)


def _probe_geometry(report: Report, idx: int, steps: int) -> tuple[Report, list[int]] | str:
    """An input size at which `steps` neighbouring output units near the centre have their
    whole (analytic) fields inside the input, and those units: (report at that size, first unit)."""
    field = _field(report, idx)
    quantum = max(1, max(int(ceil(r.jump)) for r in field))
    margin = 4
    for _ in range(4):
        need = [ceil(r.size) + ceil(r.jump) * (steps + 1) + margin for r in field]
        sizes = tuple(max(h, -(-n // quantum) * quantum) for h, n in zip(report.input_shape[2:], need))
        try:
            rep = report.prefix(idx, steps, (report.input_shape[1], *sizes), "float64")
        except CnnError as exc:
            return f"not probed: the network does not fit a {'x'.join(map(str, sizes))} input ({exc.problems[0].message})"
        prf, out = _field(rep, idx), rep.layers[idx].output_shape[2:]
        centre = [min(max(0, int((Fraction(s, 2) - r.start) / r.jump) - steps // 2), o - steps)
                  for s, r, o in zip(sizes, prf, out)]
        # after upsampling, units sit on the grain lattice, up to a grain from start + u·jump
        inside = all(c >= 0 and r.start + c * r.jump - (r.size - 1) / 2 - r.grain >= 0
                     and r.start + (c + steps - 1) * r.jump + (r.size - 1) / 2 + r.grain <= s - 1
                     for c, r, s in zip(centre, prf, sizes))
        if inside:
            return rep, centre
        margin = 2 * margin + 2 * max(ceil(abs(r.start)) + ceil(r.jump) for r in prf)
    return "not probed: no input size keeps the probed fields unclipped"


def field_periods(report: Report) -> list[int]:
    """After upsampling (transposed conv, resize) neighbouring units' fields move unevenly:
    the pattern repeats every P units, P the product of the up-factors on the way (capped).
    The probe measures P + 1 units so that the average jump is exact."""
    period = {"input": 1}
    out = []
    for row in report.layers:
        p = 1
        for i in row.inputs:
            p = p * period.get(i, 1) // gcd(p, period.get(i, 1))
        before = [report.layer(i).receptive_field for i in row.inputs if i != "input"]
        if row.receptive_field and before and before[0]:
            up = 1  # one factor for all axes: the lcm of the per-axis up-factors
            for r_in, r_out in zip(before[0], row.receptive_field):
                d = (r_out.jump / r_in.jump).denominator
                up = up * d // gcd(up, d)
            p *= up
        p = min(p, 64)
        period[row.name] = p
        den = max((r.jump.denominator for r in row.receptive_field or ()), default=1)
        out.append(p * den // gcd(p, den))
    return out
