"""Receptive fields measured by gradients: a one-channel stand-in network (each layer class
says how it is probed), back-propagated from neighbouring output units on an input large
enough that their fields are not clipped."""
from __future__ import annotations

from fractions import Fraction
from math import ceil, gcd, prod
from typing import Any

from cnncalc.analysis.report import Report
from cnncalc.analysis.status import Status, not_checked
from cnncalc.backend.build import _graph_class
from cnncalc.backend.device import available_memory
from cnncalc.backend.kit import Kit
from cnncalc.errors import CnnError
from cnncalc.layers.field import RF


def ancestors(report: Report, idx: int) -> set[int]:
    """Rows whose outputs row `idx` depends on (itself included)."""
    want, out = {report.layers[idx].name}, set()
    for row in reversed(report.layers[: idx + 1]):
        if row.name in want:
            out.add(row.index)
            want.update(row.inputs)
    return out


def probe_model(report: Report, idx: int, t: Kit) -> Any:
    """The stand-in network up to row `idx` on one-channel float64 tensors: each ancestor's
    `Layer.probe` (window sums, scatters, resizes, identities), every other row left out.
    Each stand-in's output and the gradient flowing back into it are rescaled to a largest
    magnitude of 1 (`modules.Rescaled`): the numbers cannot overflow however many gates
    multiply a branch by itself, and the gradients keep their supports exactly."""
    keep = ancestors(report, idx)
    modules = {row.name: t.ext.Rescaled(row.layer.probe(row.ctx, t)) for row in report.layers if row.index in keep}
    model = _graph_class(t)(report, modules).to(dtype=t.torch.float64)
    model.requires_grad_(False)
    return model


def _probe_bytes(report: Report, idx: int) -> int:
    """What a probe of row `idx` holds at most: the peak of the one-channel float64 tensors
    alive at once (each freed after its last consumer, as the graph does), twice (forward
    values and their gradients), the input and its gradient, and three of the largest tensor
    (a window sum's padded copy and per-axis partial sums). The stand-ins save nothing for
    backward beyond the merges' operands, which stay alive anyway."""
    keep = ancestors(report, idx)
    rows = [r for r in report.layers if r.index in keep]
    last = {n: r.index for r in rows for n in r.inputs}
    size = {"input": prod((report.input_shape[0], *report.input_shape[2:]))}
    live, peak, largest = dict(size), 0, size["input"]
    for r in rows:
        live[r.name] = prod((r.output_shape[0], *r.output_shape[2:]))
        largest = max(largest, live[r.name])
        peak = max(peak, sum(live.values()))
        for n in [n for n in live if n != "input" and last.get(n, -1) <= r.index and n != r.name]:
            del live[n]
    return 8 * (2 * peak + 2 * size["input"] + 3 * largest)


def _budget(torch: Any, device: Any) -> int:
    """Bytes one probe may take: 1 GiB, or a quarter of what the device has free."""
    return min(2**30, (available_memory(torch, device) or 2**33) // 4)


def _too_big(need: int, budget: int) -> Status | None:
    if need <= budget:
        return None
    return not_checked("probe_memory", f"not probed: the probe needs about {need / 2**30:.1f} GiB "
                                         f"(budget {budget / 2**30:.1f} GiB)")


def probeable(report: Report) -> list[int]:
    """Rows whose field is defined and independent of the input size (no layer on the way whose
    type says `rf_size_dependent`), so an enlarged input can show it."""
    blocked = _blocked(report)
    return [row.index for row in report.layers if row.name not in blocked]


def _blocked(report: Report) -> dict[str, str]:
    """Rows an enlarged input cannot probe → why: the first layer on the way whose field depends on
    the input size (its own type's `rf_size_dependent` rule) or has none."""
    blocked: dict[str, str] = {}
    for row in report.layers:
        at = next((blocked[i] for i in row.inputs if i in blocked), None)
        if at is None and row.layer.rf_size_dependent:
            at = f"the field of '{row.name}' ({row.type}) depends on the input size"
        elif at is None and row.receptive_field is None:
            at = f"'{row.name}' ({row.type}) has no field"
        if at is not None:
            blocked[row.name] = at
    return blocked


def _sliced(report: Report) -> dict[str, str]:
    """Rows after a slice of channels whose field is narrower than its input's (a chunk of a
    concat keeping one branch: the analysis keeps fields per channel) → why the probe skips
    them: its stand-ins have one channel, so they see the union of every branch."""
    out: dict[str, str] = {}
    for row in report.layers:
        at = next((out[i] for i in row.inputs if i in out), None)
        if at is None and isinstance(row.layer.channel_sources(row.ctx), list) and row.inputs[0] != "input":
            before = report.layer(row.inputs[0]).receptive_field
            if before is not None and row.receptive_field is not None and before != row.receptive_field:
                at = f"'{row.name}' ({row.type}) keeps channels whose field differs from the rest's"
        if at is not None:
            out[row.name] = at
    return out


def _field(report: Report, idx: int) -> list[RF]:
    """The field of a probeable row (never None there)."""
    field = report.layers[idx].receptive_field
    assert field is not None, report.layers[idx].name
    return field


PROBE_LIMIT = 1000  #: windows probed per verify at most (ResNet-50 has 175 fields: all of them)


def probe_plan(report: Report, limit: int = PROBE_LIMIT) -> tuple[list[int], list[int], dict[int, Status]]:
    """Rows whose window to probe (every exact field before anything size-dependent; if there
    are more than `limit`, the ones where the jump changes plus the last), rows with a
    whole-input field (checked by `probe_whole`), and for every other row with a field the
    reason it is not probed."""
    blocked, sliced = _blocked(report), _sliced(report)
    rows, whole, skipped = [], [], {}
    for row in report.layers:
        field = row.receptive_field
        if field is None:
            continue
        if any(r.whole for r in field):
            whole.append(row.index)
        elif row.name in sliced:
            skipped[row.index] = not_checked("probe_channels", f"not probed: {sliced[row.name]}")
        elif row.name in blocked:
            skipped[row.index] = not_checked("size_dependent", f"not probed: {blocked[row.name]}")
        elif not all(r.exact for r in field):
            skipped[row.index] = not_checked("estimate", "not probed: approximate field (exact: false)")
        else:
            rows.append(row.index)
    if len(rows) > limit:
        keep = [i for k, i in enumerate(rows) if k == len(rows) - 1 or
                [r.jump for r in _field(report, i)] != [r.jump for r in _field(report, rows[k + 1])]]
        for i in set(rows) - set(keep[-limit:]):
            skipped[i] = not_checked("probe_limit", f"not probed: beyond the {limit} probed rows (those where the jump "
                                                     "changes, and the last)")
        rows = keep[-limit:]
    return rows, whole, skipped


def probe_whole(report: Report, idx: int, t: Kit, device: Any = None) -> bool | Status:
    """Is row `idx`'s field whole along the axes its field calls whole?

    Definition: a unit's field is *whole* along an axis when the unit reads every input
    pixel along that axis that the layer as a whole reads (the union of all its units'
    fields). After a global pool or a squeeze-and-excitation gate that is every input pixel;
    after a strided conv followed by attention it is every pixel the strided conv reads —
    never the ones its stride skips, which no unit of the layer reads either.

    Measured on the stand-in network at the network's own input size: the support of
    grad(Σ outputs) (the layer's union) against the support of the gradient of the first, a
    middle and the last unit, each projected on every whole axis. The stand-ins are positive
    maps (no gradient cancels) whose numbers are rescaled per stand-in (`probe_model`), so a
    support is exact; a pass that still gives a non-finite number, or fails, answers
    a `not_checked` status with the reason instead of a verdict."""
    torch = t.torch
    device = device or torch.device("cpu")
    rep = report.prefix(idx, 1, tuple(report.input_shape[1:]), "float64")
    ran = _run_stand_in(rep, idx, t, device, _budget(torch, device))
    if isinstance(ran, Status):
        return ran
    x, out = ran
    field = _field(report, idx)  # the claim under test
    axes = [a for a, r in enumerate(field) if r.whole]

    def support(target: Any, keep: bool) -> list[Any] | Status:
        """Per whole axis, which input positions along it get a gradient from `target`."""
        (grad,) = torch.autograd.grad(target.sum(), x, retain_graph=keep)
        if not bool(torch.isfinite(grad).all()):
            return not_checked("probe_failed", "not checked: the probe's gradients are not finite (a stand-in overflowed)")
        g = grad.abs().sum(dim=(0, 1))
        return [(g.sum(dim=tuple(d for d in range(g.dim()) if d != a)) if g.dim() > 1 else g) > 0 for a in axes]

    union = support(out, True)
    if isinstance(union, Status):
        return union
    if not any(bool(s.any()) for s in union):
        return not_checked("probe_failed", "not checked: the stand-in network reaches no input pixel from this layer")
    last = tuple(n - 1 for n in out.shape[2:])
    units = sorted({(0,) * len(last), tuple(n // 2 for n in last), last})
    for k, unit in enumerate(units):
        mine = support(out[(0, slice(None)) + unit], k < len(units) - 1)
        if isinstance(mine, Status):
            return mine
        if any(not bool(torch.equal(m, u)) for m, u in zip(mine, union)):
            return False
    return True


def probe_rf(report: Report, indices: list[int], t: Kit, device: Any = None) -> dict[int, tuple | Status]:
    """Measure (sizes, jumps, starts) of the rows' fields by back-propagating from neighbouring output
    units of the stand-in network (`probe_model`), one axis at a time (the fields of probed
    layers are separable per axis), that axis enlarged until the units' fields are not
    clipped; a row that cannot be probed gets the reason instead."""
    torch = t.torch
    device = device or torch.device("cpu")
    results: dict[int, tuple | Status] = {}
    periods = field_periods(report)
    budget = _budget(torch, device)
    for idx in indices:
        period = periods[idx]
        steps = 2 if period == 1 else 2 * period + 1  # after upsampling some units may see nothing
        sizes, jumps, starts = [], [], []
        for axis in range(len(_field(report, idx))):
            measured = _probe_axis(report, idx, axis, steps, period, t, device, budget)
            if isinstance(measured, Status):
                results[idx] = measured
                break
            sizes.append(measured[0])
            jumps.append(measured[1])
            starts.append(measured[2])
        else:
            results[idx] = (tuple(sizes), tuple(jumps), tuple(starts))
    return results


def _probe_axis(report: Report, idx: int, axis: int, steps: int, period: int, t: Kit, device: Any,
                budget: int) -> tuple[int, Fraction, Fraction] | Status:
    """Size, jump and start of row `idx`'s field along `axis`, from `steps` neighbouring units
    (the first at a multiple of the layout's period, so the first unit's centre follows)."""
    torch = t.torch
    geometry = _probe_geometry(report, idx, axis, steps, period)
    if isinstance(geometry, Status):
        return geometry
    rep, unit = geometry
    ran = _run_stand_in(rep, idx, t, device, budget)
    if isinstance(ran, Status):
        return ran
    x, out = ran
    firsts: dict[int, int] = {}
    extents = [0]
    centre = None
    other = tuple(d for d in range(len(unit)) if d != axis)
    for b in range(steps):  # neighbouring units along the axis, one backward pass each
        sel = (0, slice(None), *(u + b if a == axis else u for a, u in enumerate(unit)))
        (grad,) = torch.autograd.grad(out[sel].sum(), x, retain_graph=b < steps - 1)
        if not bool(torch.isfinite(grad).all()):
            return not_checked("probe_failed", "not checked: the probe's gradients are not finite (a stand-in overflowed)")
        g = grad[0].abs().sum(dim=0)  # (*spatial)
        nz = torch.nonzero((g.sum(dim=other) if other else g) > 0).flatten()
        if len(nz):
            firsts[b] = int(nz[0])
            extents.append(int(nz[-1]) - int(nz[0]) + 1)
            if b == 0:
                centre = Fraction(int(nz[0]) + int(nz[-1]), 2)
    b0 = min(firsts, default=0)
    jump = Fraction(firsts[b0 + period] - firsts[b0], period) if b0 + period in firsts else Fraction(0)
    start = centre - unit[axis] * jump if centre is not None else Fraction(0)
    return max(extents), jump, start


def _run_stand_in(rep: Report, idx: int, t: Kit, device: Any, budget: int) -> tuple[Any, Any] | Status:
    """The stand-in network of `rep` up to row `idx` run on an all-ones input that requires a
    gradient: (input, output), or the reason it was not run (over budget, a failing pass, a
    non-finite output)."""
    torch = t.torch
    too_big = _too_big(_probe_bytes(rep, idx), budget)
    if too_big:
        return too_big
    x = torch.ones((1, 1, *rep.input_shape[2:]), dtype=torch.float64, device=device, requires_grad=True)
    try:
        out = probe_model(rep, idx, t).to(device)(x, stop=idx)
    except (RuntimeError, ValueError, TypeError, IndexError, MemoryError) as exc:  # report, do not crash
        return not_checked("probe_failed", f"not checked: the probe failed ({type(exc).__name__}: "
                                           f"{(str(exc).splitlines() or [''])[0][:120]})")
    if not torch.is_tensor(out) or not bool(torch.isfinite(out).all()):
        return not_checked("probe_failed", "not checked: the probe's stand-in network gave a non-finite value")
    return x, out


def _probe_geometry(report: Report, idx: int, axis: int, steps: int,
                    period: int = 1) -> tuple[Report, list[int]] | Status:
    """An input at which `steps` neighbouring units along `axis` have their whole (analytic)
    fields inside it: (report at that size, the first unit). `axis` is enlarged for the
    steps; the other axes only as far as one unit's field needs (a unit partly in the padding
    could see some branches of a merge not at all)."""
    fields = _field(report, idx)
    sizes = list(report.input_shape[2:])
    margin = 4
    for _ in range(6):
        for b, f in enumerate(fields):
            count = steps if b == axis else 1
            need = ceil(f.size) + ceil(f.jump) * count + 2 * ceil(_slack(f)) + margin
            quantum = max(1, int(ceil(f.jump)))
            sizes[b] = max(sizes[b], -(-need // quantum) * quantum)
        try:
            rep = report.prefix(idx, 1, (report.input_shape[1], *sizes), "float64")
        except CnnError as exc:
            return not_checked("probe_geometry", f"not probed: the network does not fit a {'x'.join(map(str, sizes))} "
                                                  f"input ({exc.problems[0].message})")
        out, units, inside = rep.layers[idx].output_shape[2:], [], True
        for b, (f, n, o) in enumerate(zip(_field(rep, idx), sizes, out)):
            count = steps if b == axis else 1
            # the `count` units whose centres straddle the middle of the input
            u = min(max(0, round((Fraction(n - 1, 2) - f.start) / f.jump - Fraction(count - 1, 2))), o - count)
            if b == axis:
                u -= u % period  # the layout repeats every `period` units: this one lies like unit 0
            units.append(u)
            inside = inside and u >= 0 and f.start + u * f.jump - (f.size - 1) / 2 - _slack(f) >= 0 \
                and f.start + (u + count - 1) * f.jump + (f.size - 1) / 2 + _slack(f) <= n - 1
        if inside:
            return rep, units
        margin += max(ceil(abs(f.start)) + ceil(f.jump) for f in _field(rep, idx))
    return not_checked("probe_geometry", "not probed: no input size keeps the probed fields unclipped")


def _slack(f: RF) -> Fraction:
    """How far a unit's window may sit from start + u·jump: after upsampling units lie on the
    grain lattice, up to a grain off; otherwise exactly there."""
    return Fraction(0) if f.grain == f.jump else f.grain


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
        out.append(min(64, p * den // gcd(p, den)))
    return out
