"""Turning a Report into a rich table, JSON, CSV or Markdown."""
from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Sequence
from typing import Any

from .analyzer import LayerReport, Report
from .arith import RF, fmt_num
from .errors import gc_paused
from .safe import json_text, visible


def human(n: float, unit: str = "", base: int = 1000) -> str:
    """1234567 → '1.23 M' (base 1000) or bytes → '1.18 MiB' (base 1024)."""
    names = ["", "K", "M", "G", "T", "P", "E"] if base == 1000 else ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"]
    x, i = float(n), 0
    while abs(x) >= base and i < len(names) - 1:
        x, i = x / base, i + 1
    if i == 0:
        return f"{int(n):,} {unit}".strip() if float(n).is_integer() else f"{n:.3g} {unit}".strip()
    return f"{x:.3g} {names[i]}{unit}"


def hbytes(n: int) -> str:
    return human(n, "B", 1024)


def shape_str(shape) -> str:
    return "×".join(str(s) for s in shape)


def rf_cells(row: LayerReport) -> tuple[str, str, str]:
    if row.receptive_field is None:
        return "–", "–", "–"
    size, jump, start = ("×".join(rf_num(r, a) for r in row.receptive_field) for a in ("size", "jump", "start"))
    approx = "" if all(r.exact for r in row.receptive_field) else "~"  # see RF.exact
    return approx + size, jump, start


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
    from .errors import did_you_mean

    names = {k: i for i, k in enumerate(COLUMN_KEYS)}
    names.update({_key(c): i for i, c in enumerate(COLUMNS)})
    chosen = set()
    for part in filter(None, (p.strip() for p in text.split(","))):
        if _key(part) not in names:
            raise ValueError(f"unknown column '{part[:40]}'{did_you_mean(_key(part), COLUMN_KEYS)}; "
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
    from .roofline import fmt_time

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


def print_by_type(report: Report, console: Any) -> None:
    from rich.table import Table

    from .safe import markup as escape

    table = Table(title=f"{escape(report.name)} by layer type  ·  input {shape_str(report.input_shape)}",
                  title_justify="left", header_style="bold")
    for c in ("type", "layers", "params", "% params", "MACs", "% MACs", "FLOPs", "activations"):
        table.add_column(c, justify="left" if c == "type" else "right")
    add_rows(table, ([row["type"], str(row["layers"]), f"{row['params']:,}", f"{row['params_share']:.1%}",
                      human(row["macs"]), f"{row['macs_share']:.1%}", human(row["flops"]),
                      hbytes(row["activation_bytes"])] for row in by_type(report)))
    console.print(table)


def totals_rows(report: Report) -> list[tuple[str, str]]:
    t = report.totals
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
        ("inference memory", f"{hbytes(t['inference_memory_bytes'])}  (params + buffers + peak live activations "
                             f"{hbytes(t['inference_peak_activation_bytes'])})"),
        ("training step memory", f"{hbytes(t['training_memory_bytes'])}  ({report.optimizer}: {states}; peak in the "
                                 f"{t['training_peak_phase']}; saved for backward "
                                 f"{hbytes(t['training_saved_activation_bytes'])})"),
    ] + _predicted_total(report) + ([("batch norm folded", f"{f['folded']} BN into their convs: params {f['params']:,}, buffers "
                                f"{f['buffers']:,}, element-wise ops {f['elementwise_ops']:,} (MACs unchanged)")]
         if (f := report.extra.get("fused_bn")) else [])


def _predicted_total(report: Report) -> list[tuple[str, str]]:
    from .roofline import fmt_time

    p = report.extra.get("predicted")
    if not p:
        return []
    k = p["peaks"]
    return [("predicted time", f"{fmt_time(p['total_s'])}  (lower bound on {k['device'] or k['device_type']}: "
                               f"{human(k['flops_per_s'], 'FLOP/s')} {k['dtype']}, {human(k['bytes_per_s'], 'B/s')}, "
                               f"calls ≥ {fmt_time(k['overhead_s'])})")]


@gc_paused()  # rendering allocates per layer, like the analysis: keep it linear
def to_json(report: Report, extra: dict | None = None) -> str:
    data = report.to_json()
    predicted = data.pop("predicted", None)
    if predicted:  # the contract's places: each layer's predicted_s and totals.predicted_s
        for row, p in zip(data["layers"], predicted["layers"]):
            row.update(p)
        data["totals"]["predicted_s"] = predicted["total_s"]
        data["peaks"] = predicted["peaks"]
    if extra:
        data.update(extra)
    return json_text(json.dumps(data, indent=2, ensure_ascii=False))


CSV_FIELDS = ["index", "name", "type", "inputs", "output_shape", "params", "trainable_params", "buffers",
              "macs", "flops", "elementwise_ops", "activation_bytes", "rf_size", "rf_stride", "rf_start",
              "shared_with", "rf_jump"]  # rf_stride is the jump under the contract's name; rf_jump says it plainly


@gc_paused()
def to_csv(report: Report) -> str:
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(CSV_FIELDS)
    for r in report.layers:
        rf = r.rf_json() or {}
        w.writerow([r.index, visible(r.name), r.type, visible(" ".join(r.inputs)), "x".join(map(str, r.output_shape)), r.params,
                    r.trainable_params, r.buffers, r.macs, r.flops, r.elementwise_ops, r.activation_bytes,
                    *(" ".join(map(str, rf.get(k, []))) for k in ("size", "stride", "start")), r.shared_with or "",
                    " ".join(map(str, rf.get("jump", [])))])
    t = report.totals
    w.writerow(["", "total", "", "", "", t["params"], t["trainable_params"], t["buffers"], t["macs"], t["flops"],
                t["elementwise_ops"], t["activation_bytes"], "", "", "", "", ""])
    return out.getvalue()


def _md_escape(s: str) -> str:
    return visible(s).replace("|", "\\|")


@gc_paused()
def to_markdown(report: Report, columns: Sequence[int] | None = None) -> str:
    keep = list(columns) if columns is not None else default_columns(report)
    lines = [f"## {_md_escape(report.name)}", "", "| " + " | ".join(COLUMNS[i] for i in keep) + " |",
             "|" + "".join("---:|" if COLUMNS[i] in NUMERIC else "---|" for i in keep)]
    lines += ["| " + " | ".join(_md_escape(c[i]) for i in keep) + " |"
              for c in (layer_cells(r, report) for r in report.layers)]
    lines += ["", "| total | value |", "|---|---|"]
    lines += [f"| {k} | {_md_escape(v)} |" for k, v in totals_rows(report)]
    if report.warnings:
        lines += ["", "**Warnings**", ""] + [f"- `{visible(w.layer)}` (line {w.line}): {_md_escape(w.message)}"
                                             for w in report.warnings]
    return "\n".join(lines) + "\n"


def add_rows(table: Any, rows: Iterable[Sequence[str]], markup: bool = False) -> None:
    """Add rows to a rich table 64 at a time, each cell one multi-line, unwrapped text: rich lays
    out a table's cells per 64 rows instead of per row (4× faster on ResNet-50's 175 layers, and
    linear: one row of everything would make rich's per-line work quadratic). On a narrow terminal
    the widest columns shrink first, cut with an ellipsis, so the lines stay aligned."""
    from rich.text import Text

    rows = list(rows)
    for i in range(0, len(rows), ROWS_PER_CELL):
        cells = []
        for column in zip(*rows[i:i + ROWS_PER_CELL]):
            cell = Text("\n").join(map(Text.from_markup, column)) if markup else Text("\n".join(map(visible, column)))
            cell.no_wrap, cell.overflow = True, "ellipsis"
            cells.append(cell)
        table.add_row(*cells)


@gc_paused()
def print_table(report: Report, console: Any, depth: int | None = None, columns: Sequence[int] | None = None) -> None:
    """The layer table (block uses nested `depth` levels deep collapsed; the `columns` chosen,
    as many as fit the terminal), then the totals."""
    from rich.table import Table

    from .safe import markup as escape

    table = Table(title=f"{escape(report.name)}  ·  input {shape_str(report.input_shape)}  ·  {report.dtype}",
                  title_justify="left", header_style="bold", show_lines=False)
    rows = ([group_cells(g, depth, report) for g in layer_groups(report, depth)] if depth
            else [layer_cells(r, report) for r in report.layers])
    chosen = list(columns) if columns is not None else default_columns(report)
    keep = fitting_columns(rows, console.width, chosen)
    for i in keep:
        table.add_column(COLUMNS[i], justify="right" if COLUMNS[i] in NUMERIC else "left")
    add_rows(table, ([row[i] for i in keep] for row in rows))
    console.print(table)
    if len(keep) < len(chosen):
        console.print(f"(left out for this {console.width}-column terminal: "
                      f"{', '.join(COLUMNS[i] for i in chosen if i not in keep)}; JSON and CSV have them)")
    totals = Table(show_header=False, box=None, padding=(0, 2))
    totals.add_column(style="bold")
    totals.add_column()
    for k, v in totals_rows(report):
        totals.add_row(k, v)
    console.print(totals)
    if any(r.trainable_params < r.params for r in report.layers):
        console.print("* frozen (trainable: false)")
    for w in report.warnings:
        console.print(f"[yellow]warning[/yellow] {escape(str(w.layer))} (line {w.line}): {escape(w.message)}",
                      highlight=False)


def explanations(report: Report, only: str | None = None) -> dict[str, list[tuple[str, str, int | str]]]:
    """Per layer, the formulas behind its numbers with the numbers substituted."""
    fields: dict[str, list[RF] | None] = {"input": None}
    out = {}
    for row in report.layers:
        if only is None or row.name == only:
            lines: list[tuple[str, str, int | str]] = list(row.layer.explain(row.ctx))
            before = [fields.get(i) for i in row.inputs]
            if row.receptive_field and before and before[0] and before[0] != row.receptive_field:
                lines.append(("RF size", " → ".join("×".join(fmt_num(r.size) for r in f)
                                                    for f in (before[0], row.receptive_field)), ""))
                lines.append(("RF jump", " → ".join("×".join(fmt_num(r.jump) for r in f)
                                                    for f in (before[0], row.receptive_field)), ""))
            out[row.name] = lines
        fields[row.name] = row.receptive_field
    return out


def result_tail(expr: str, value: object) -> str:
    """' = 1,234' after an explained formula, unless the formula is that number already."""
    number = isinstance(value, int) and not isinstance(value, bool)
    return f" = {value:,}" if number and expr.strip() not in (str(value), f"{value:,}") else ""


def print_explanations(report: Report, console, only: str | None = None) -> None:
    from .safe import markup as escape

    for name, lines in explanations(report, only).items():
        console.print(f"[bold]{escape(name)}[/bold] ({report.layer(name).type})")
        for what, expr, value in lines:
            expr, _, note = expr.partition("   (")
            tail = result_tail(expr, value)
            console.print(escape(f"  {what} = {expr}{tail}" + (f"   ({note}" if note else "")), highlight=False)
