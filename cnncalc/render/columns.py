"""The report's columns and rows as text cells: which columns exist, which fit a width,
per-layer and per-group cells, per-type totals, the totals rows."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cnncalc.analysis.report import LayerReport, Report
from cnncalc.analysis.status import of_field
from cnncalc.layers.field import RF
from cnncalc.safe import Plain
from cnncalc.units import hbytes, human, shape_str


def rf_size_text(field: list[RF]) -> str:
    """A field's size for people, after its status's marker (`~` for an estimate): the one marker
    every view that prints a field uses (analyze, rf, sweep, plot, verify, HTML)."""
    status = of_field(field)
    return (status.marker if status else "") + "×".join(rf_num(r, "size") for r in field)


def rf_cells(row: LayerReport) -> tuple[str, str, str]:
    if row.receptive_field is None:
        return "–", "–", "–"
    jump, start = ("×".join(rf_num(r, a) for r in row.receptive_field) for a in ("jump", "start"))
    return rf_size_text(row.receptive_field), jump, start


#: columns a narrow terminal gives up first (numbers and names are never cut)
DROP_ORDER = ["RF start", "RF jump", "% params", "activations", "FLOPs", "% MACs", "type", "RF size", "#", "predicted"]


def fitting_columns(rows: list[list[str]], width: int, chosen: Sequence[int] | None = None) -> list[int]:
    """Indices of the `chosen` columns (default all) that fit `width` whole, dropping
    DROP_ORDER's first."""
    keep = list(chosen) if chosen is not None else list(range(len(COLUMNS)))
    need = {i: max([len(COLUMNS[i])] + [len(r[i]) for r in rows]) + 3 for i in keep}  # cell + padding + rule
    for name in DROP_ORDER:
        if sum(need[i] for i in keep) + 1 <= width or len(keep) == 1:
            break
        if COLUMNS.index(name) in keep:
            keep.remove(COLUMNS.index(name))
    return keep


def choose_columns(text: str) -> list[int]:
    """'name,macs,% MACs' → the indices of those columns, in COLUMNS order. A column is named by
    its key (COLUMN_KEYS) or its heading, in any case; ValueError names an unknown one."""
    from cnncalc.errors import did_you_mean
    from cnncalc.safe import visible

    names = {k: i for i, k in enumerate(COLUMN_KEYS)}
    names.update({_key(c): i for i, c in enumerate(COLUMNS)})
    chosen = set()
    for part in filter(None, (p.strip() for p in text.split(","))):
        if _key(part) not in names:
            raise ValueError(f"unknown column '{visible(part[:40])}'{did_you_mean(_key(part), COLUMN_KEYS)}; "
                             f"columns: {', '.join(COLUMN_KEYS)}")
        chosen.add(names[_key(part)])
    if not chosen:
        raise ValueError(f"expected a comma-separated list of columns: {', '.join(COLUMN_KEYS)}")
    return sorted(chosen)


def _key(name: str) -> str:
    return name.strip().lower().replace("%", "share").replace("-", "_").replace(" ", "_").strip("_")


def rf_num(r: RF, what: str) -> str:
    """One axis of a field for people: a decimal (2 places at most; JSON and --explain keep
    the exact fraction), 'all' for the size of a whole-input field, '~' before a start that
    is an estimate (uneven units after upsampling)."""
    if what == "size" and r.whole:
        return "all"
    x = getattr(r, what)
    text = str(x.numerator) if x.denominator == 1 else f"{float(x):.2f}".rstrip("0").rstrip(".")
    return ("~" if what == "start" and not r.centred else "") + text


ROWS_PER_CELL = 64
COLUMNS = ["#", "name", "type", "output shape", "params", "% params", "MACs", "% MACs", "FLOPs", "activations",
           "RF size", "RF jump", "RF start", "predicted"]
COLUMN_KEYS = ["index", "name", "type", "shape", "params", "params_share", "macs", "macs_share", "flops",
               "activations", "rf_size", "rf_jump", "rf_start", "predicted"]  #: what --columns calls them
NUMERIC = {"#", "params", "% params", "MACs", "% MACs", "FLOPs", "activations", "predicted"}  #: right-aligned


def default_columns(report: Report) -> list[int]:
    """Every column; the predicted time only with --peaks."""
    return [i for i, c in enumerate(COLUMNS) if c != "predicted" or "predicted" in report.extra]


def share(part: int, whole: int) -> str:
    """A share of a total for people: '12.3%', '<0.1%' for a small nonzero one, '–' for none."""
    if not whole or not part:
        return "–"
    x = part / whole
    return "<0.1%" if 0 < x < 0.0005 else f"{x:.1%}"


def layer_cells(row: LayerReport, report: Report) -> list[str]:
    totals = report.totals
    params = f"{row.params:,}" + ("*" if row.trainable_params < row.params else "")
    if row.shared_with:
        params = f"0 (shares {row.shared_with})"
    return [str(row.index), row.name, row.type, shape_str(row.output_shape), params,
            share(row.params, totals["params"]), human(row.macs), share(row.macs, totals["macs"]),
            human(row.flops), hbytes(row.activation_bytes), *rf_cells(row), _predicted([row], report)]


def _predicted(rows: list[LayerReport], report: Report) -> str:
    from cnncalc.units import fmt_time

    p = report.extra.get("predicted")
    return fmt_time(sum(p["layers"][r.index]["predicted_s"] for r in rows)) if p else ""


def layer_groups(report: Report, depth: int | None) -> list[list[LayerReport]]:
    """The layers in file order, those inside block uses nested `depth` levels or deeper
    collapsed into one group per use (depth 1: the top-level entries of `layers:`; a block used
    with repeat counts the use and each repetition as one level each)."""
    groups: list[list[LayerReport]] = []
    last = None
    for r in report.layers:
        key = r.blocks[depth - 1] if depth and len(r.blocks) >= depth else None
        if key is not None and key == last:
            groups[-1].append(r)
        else:
            groups.append([r])
        last = key
    return groups


def group_cells(rows: list[LayerReport], depth: int, report: Report) -> list[str]:
    """One table row for a collapsed block use: summed params, MACs, FLOPs, activations and
    predicted time; the last layer's output shape and field."""
    totals = report.totals
    if len(rows) == 1 and len(rows[0].blocks) < depth:
        return layer_cells(rows[0], report)
    name = rows[0].blocks[depth - 1]
    reps = {r.blocks[depth] for r in rows if len(r.blocks) > depth and r.blocks[depth].startswith(name + ".")}
    params, macs = sum(r.params for r in rows), sum(r.macs for r in rows)
    return [f"{rows[0].index}–{rows[-1].index}", name + (f" ×{len(reps)}" if len(reps) > 1 else ""),
            f"block ({len(rows)} layers)", shape_str(rows[-1].output_shape),
            f"{params:,}" + ("*" if sum(r.trainable_params for r in rows) < params else ""),
            share(params, totals["params"]), human(macs), share(macs, totals["macs"]),
            human(sum(r.flops for r in rows)), hbytes(sum(r.activation_bytes for r in rows)), *rf_cells(rows[-1]),
            _predicted(rows, report)]


def by_type(report: Report) -> list[dict[str, Any]]:
    """Per layer type (fvcore's by-operator view): layers, params, MACs, FLOPs, activations,
    and the shares of the totals, largest MACs first."""
    rows: dict[str, dict[str, Any]] = {}
    for r in report.layers:
        row = rows.setdefault(r.type, {"type": r.type, "layers": 0, "params": 0, "macs": 0, "flops": 0,
                                       "activation_bytes": 0})
        row["layers"] += 1
        for k in ("params", "macs", "flops", "activation_bytes"):
            row[k] += getattr(r, k)
    t = report.totals
    for row in rows.values():
        row["macs_share"] = row["macs"] / t["macs"] if t["macs"] else 0.0
        row["params_share"] = row["params"] / t["params"] if t["params"] else 0.0
    return sorted(rows.values(), key=lambda row: (-row["macs"], -row["params"], row["type"]))


def totals_rows(report: Report) -> list[tuple[str, str | Plain]]:
    """The totals as (what, value) rows, `~` before an estimated figure (the totals' status); a
    value with foreign text in it (the peaks file's device) is a Plain, which rich prints without
    reading markup."""
    t = report.totals
    status = report.totals_status()

    def mem(key: str) -> str:
        return status[key].marker + hbytes(t[key])

    states = {"sgd": "no state", "momentum": "1 state tensor", "adam": "2 state tensors"}[report.optimizer]
    return [
        ("input", f"{shape_str(report.input_shape)} {report.dtype}"),
        ("params", f"{t['params']:,}  (trainable {t['trainable_params']:,}, non-trainable {t['non_trainable_params']:,})"),
        ("buffers", f"{t['buffers']:,}"),
        ("MACs", f"{t['macs']:,}  ({human(t['macs'])})"),
        ("FLOPs (2·MACs)", f"{t['flops']:,}  ({human(t['flops'])})"),
        ("element-wise ops", f"{t['elementwise_ops']:,}  ({human(t['elementwise_ops'])})"),
        ("parameter memory", hbytes(t["param_bytes"]) + (f" + buffers {hbytes(t['buffer_bytes'])}" if t["buffer_bytes"] else "")),
        ("activations (all layers)", hbytes(t["activation_bytes"])),
        ("inference memory", f"{mem('inference_memory_bytes')}  (params + buffers + peak live activations "
                             f"{mem('inference_peak_activation_bytes')})"),
        ("training step memory", f"{mem('training_memory_bytes')}  ({report.optimizer}: {states}; peak in the "
                                 f"{t['training_peak_phase']}; saved for backward "
                                 f"{mem('training_saved_activation_bytes')})"),
    ] + _memory_settings(report) + _predicted_total(report) + _folded(report)


def _folded(report: Report) -> list[tuple[str, str | Plain]]:
    f = report.extra.get("fused_bn")
    if not f:
        return []
    return [("batch norm folded", f"{f['folded']} BN into their convs: params {f['params']:,}, buffers "
                                  f"{f['buffers']:,}, element-wise ops {f['elementwise_ops']:,} (MACs unchanged)")]


def _memory_settings(report: Report) -> list[tuple[str, str | Plain]]:
    """With --amp or --checkpoint the memory rows above are theirs: say so next to them."""
    rows: list[tuple[str, str | Plain]] = []
    if a := report.extra.get("amp"):
        f32 = a.get("float32") or {}
        rows.append(("mixed precision", f"autocast {a['dtype']} ({a['device_type']} op lists), float32 master weights"
                     + (f"; in float32: training step {hbytes(f32['training_memory_bytes'])}"
                        if f32.get("training_memory_bytes") else "")))
    if c := report.extra.get("checkpoint"):
        uses = c["uses"] if isinstance(c["uses"], str) else ", ".join(c["uses"])
        rows.append(("checkpointing", Plain(f"{uses}: recomputes {human(c['recompute_flops'], 'FLOPs')} a step "
                                            f"({c['recompute_share']:.1%} of it)")))
    return rows


def _predicted_total(report: Report) -> list[tuple[str, str | Plain]]:
    from cnncalc.units import fmt_time

    p = report.extra.get("predicted")
    if not p:
        return []
    k = p["peaks"]  # the device and dtype come from a peaks file: shown as they are, never read as markup
    return [("predicted time", Plain(f"{fmt_time(p['total_s'])}  (lower bound on {k['device'] or k['device_type']}: "
                                     f"{human(k['flops_per_s'], 'FLOP/s')} {k['dtype']}, "
                                     f"{human(k['bytes_per_s'], 'B/s')}, calls ≥ {fmt_time(k['overhead_s'])})"))]
