"""`analyze --format html`: one self-contained page (no network, no external files) with the
totals, the layer table (sortable), the per-type breakdown, the network graph and the charts.

Every text from the spec passes through `visible` and `html.escape`.
"""
from __future__ import annotations

import html
import math
from collections.abc import Sequence
from typing import Any

from cnncalc.analysis.report import Report
from cnncalc.safe import visible

MAX_GRAPH_LAYERS = 2000  #: larger networks get the tables and charts but no drawing


def _e(s: object) -> str:
    return html.escape(visible(str(s)))


def _raw(row, column: str) -> float | None:
    """The number a column sorts by."""
    if column == "predicted":
        return None
    values = {"#": row.index, "params": row.params, "% params": row.params, "MACs": row.macs, "% MACs": row.macs,
              "FLOPs": row.flops, "activations": row.activation_bytes}
    if column in values:
        return float(values[column])
    if column.startswith("RF ") and row.receptive_field:
        what = {"RF size": "size", "RF jump": "jump", "RF start": "start"}[column]
        return float(getattr(row.receptive_field[0], what))
    return None


def layer_table(report: Report, columns: Sequence[int], depth: int | None = None) -> str:
    """The sortable layer table; with `depth`, block uses nested that deep are one row each
    (summed counts; the last layer's shape and field), as `--depth` does in the terminal."""
    from cnncalc.render.columns import COLUMNS, NUMERIC, group_cells, layer_cells, layer_groups

    head = "".join(f'<th scope="col"{" class=num" if COLUMNS[i] in NUMERIC else ""}>{_e(COLUMNS[i])}</th>'
                   for i in columns)
    body = []
    statuses = report.field_statuses()
    for group in (layer_groups(report, depth) if depth else [[r] for r in report.layers]):
        r = group[-1]
        cells = group_cells(group, depth, report) if depth else layer_cells(r, report)
        field = statuses[r.name]  # an estimated field says why when hovered
        tds = []
        for i in columns:
            raw = _raw_sum(group, COLUMNS[i])
            attrs = (f' data-v="{raw:g}"' if raw is not None else "") + (" class=num" if COLUMNS[i] in NUMERIC else "")
            status = field.get("receptive_field_start" if COLUMNS[i] == "RF start" else "receptive_field") \
                if COLUMNS[i].startswith("RF ") else None
            if status is not None and status.level != "exact":
                attrs += f' data-status="{status.level}" title="{_e(f"{status.level}: {status.detail}")}"'
            tds.append(f"<td{attrs}>{_e(cells[i])}</td>")
        body.append(f"<tr>{''.join(tds)}</tr>")
    return (f'<table class="layers sortable"><thead><tr>{head}</tr></thead>\n<tbody>\n' + "\n".join(body)
            + "\n</tbody></table>")


def _raw_sum(rows: list, column: str) -> float | None:
    """The number a column sorts by, for one layer or a collapsed block use (counts summed; the
    index and the field of its last layer)."""
    if len(rows) == 1 or column not in ("params", "% params", "MACs", "% MACs", "FLOPs", "activations"):
        return _raw(rows[-1] if column != "#" else rows[0], column)
    return float(sum(_raw(r, column) or 0 for r in rows))


def totals_table(report: Report) -> str:
    from cnncalc.render.columns import totals_rows

    rows = "".join(f'<tr><th scope="row">{_e(k)}</th><td>{_e(v)}</td></tr>' for k, v in totals_rows(report))
    return f'<table class="totals"><tbody>{rows}</tbody></table>'


def type_table(report: Report) -> str:
    from cnncalc.render.columns import by_type, share
    from cnncalc.units import hbytes, human

    t = report.totals
    head = "".join(f'<th scope="col"{" class=num" if c != "type" else ""}>{c}</th>'
                   for c in ("type", "layers", "params", "% params", "MACs", "% MACs", "FLOPs", "activations"))
    rows = []
    for row in by_type(report):
        cells = [(row["type"], None), (f"{row['layers']:,}", row["layers"]), (f"{row['params']:,}", row["params"]),
                 (share(row["params"], t["params"]), row["params"]), (human(row["macs"]), row["macs"]),
                 (share(row["macs"], t["macs"]), row["macs"]), (human(row["flops"]), row["flops"]),
                 (hbytes(row["activation_bytes"]), row["activation_bytes"])]
        rows.append("<tr>" + "".join(f'<td class=num data-v="{v}">{_e(c)}</td>' if v is not None else f"<td>{_e(c)}</td>"
                                     for c, v in cells) + "</tr>")
    return (f'<table class="types sortable"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>')


def chart(title: str, series: list[tuple[str, list[float | None], str]], log: bool, bars: bool = False,
          unit: Any = None) -> str:
    """A small SVG chart of per-layer values (x: layer index), several series on one axis;
    `unit` formats the axis (default: 1.2 K, 3.4 M)."""
    w, h, left, bottom, top = 900, 270, 70, 30, 40
    n = max(len(v) for _, v, _ in series)
    values = [x for _, v, _ in series for x in v if x is not None and (x > 0 or not log)]
    if not values or n == 0:
        return ""
    lo, hi = (min(values), max(values)) if log else (0.0, max(values))
    if log:
        lo, hi = math.floor(math.log10(lo)), max(math.ceil(math.log10(hi)), math.floor(math.log10(lo)) + 1)
    hi = hi if hi > lo else lo + 1

    def ypos(v: float) -> float:
        f = (math.log10(v) - lo) / (hi - lo) if log else (v - lo) / (hi - lo)
        return top + (h - top - bottom) * (1 - f)

    def xpos(i: int) -> float:
        return left + (w - left - 10) * (i + 0.5) / n

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="{w}" height="{h}" viewBox="0 0 {w} {h}" '
           f'role="img" aria-label="{_e(title)}"><text x="{left}" y="16" font-size="13" font-weight="600">{_e(title)}</text>']
    from cnncalc.units import human

    unit = unit or human
    ticks = range(int(lo), int(hi) + 1) if log else [hi * k / 4 for k in range(5)]
    for t in ticks:
        v = 10 ** t if log else t
        out.append(f'<line x1="{left}" x2="{w - 10}" y1="{ypos(v):.1f}" y2="{ypos(v):.1f}" stroke="#e3e6ec"/>'
                   f'<text x="{left - 6}" y="{ypos(v) + 4:.1f}" font-size="10" text-anchor="end">{_e(unit(v))}</text>')
    for k, (label, vals, color) in enumerate(series):
        if bars:
            bw = max((w - left - 10) / n - 1, 0.5)
            out += [f'<rect x="{xpos(i) - bw / 2:.1f}" y="{ypos(v):.1f}" width="{bw:.1f}" '
                    f'height="{h - bottom - ypos(v):.1f}" fill="{color}"/>'
                    for i, v in enumerate(vals) if v is not None and v > 0]
        else:
            pts = " ".join(f"{xpos(i):.1f},{ypos(v):.1f}" for i, v in enumerate(vals) if v is not None and v > 0)
            out.append(f'<polyline points="{pts}" fill="none" stroke="{color}" stroke-width="1.6"/>')
        out.append(f'<text x="{left + 190 * k}" y="32" font-size="11" fill="{color}">■ {_e(label)}</text>')
    out.append(f'<text x="{w - 10}" y="{h - 8}" font-size="10" text-anchor="end">layer #</text></svg>')
    return "".join(out)


def charts(report: Report) -> str:
    from math import prod

    from cnncalc.units import hbytes

    rows = report.layers
    field = [float(r.receptive_field[0].size) if r.receptive_field and not r.receptive_field[0].whole else None
             for r in rows]
    size = [float(prod(r.output_shape[2:])) ** (1 / max(len(r.output_shape) - 2, 1)) if len(r.output_shape) > 2
            else None for r in rows]
    parts = [chart("receptive field and output size (first spatial axis, log scale)",
                   [("receptive field size", field, "#c0392b"), ("output size", size, "#2e6fb7")], log=True),
             chart("MACs per layer", [("MACs", [float(r.macs) for r in rows], "#4c72b0")], log=False, bars=True),
             chart("activation memory per layer", [("bytes", [float(r.activation_bytes) for r in rows], "#55a868")],
                   log=False, bars=True, unit=lambda v: hbytes(int(v)))]
    return "\n".join(p for p in parts if p)


def explanations(report: Report, only: str | None) -> str:
    from cnncalc.analysis.explain import explanations as lines_of
    from cnncalc.analysis.explain import result_tail

    out = []
    for name, lines in lines_of(report, only).items():
        items = "".join(f"<li><b>{_e(what)}</b> = {_e(expr)}{_e(result_tail(expr, value))}</li>"
                        for what, expr, value in lines)
        out.append(f"<details><summary>{_e(name)} ({_e(report.layer(name).type)})</summary><ul>{items}</ul></details>")
    return "\n".join(out)


def to_html(report: Report, explain: bool = False, only: str | None = None,
            columns: Sequence[int] | None = None, depth: int | None = None) -> str:
    from cnncalc.render.columns import default_columns
    from cnncalc.render.graph import to_svg
    from cnncalc.units import shape_str

    cols = list(columns) if columns is not None else default_columns(report)
    graph = (to_svg(report) if len(report.layers) <= MAX_GRAPH_LAYERS else
             f"<p>{len(report.layers):,} layers: more than {MAX_GRAPH_LAYERS:,} are not drawn "
             f"(<code>--format dot</code> gives the graph for Graphviz).</p>")
    warnings = "".join(f"<li><code>{_e(w.layer)}</code> (line {_e(w.line)}): {_e(w.message)}</li>"
                       for w in report.warnings)
    limits = "".join(f"<li>{_e(p['message'])}</li>" for p in report.extra.get("limits", []))
    sections = [
        f"<h1>{_e(report.name)}</h1>",
        f'<p class="sub">input {_e(shape_str(report.input_shape))} · {_e(report.dtype)} · '
        f'{len(report.layers):,} layers · cnncalc</p>',
        "<h2>Totals</h2>", totals_table(report),
        f'<h2>Budgets exceeded</h2><ul class="limits">{limits}</ul>' if limits else "",
        f'<h2>Warnings</h2><ul class="warnings">{warnings}</ul>' if warnings else "",
        "<h2>Layers</h2><p class=hint>Click a heading to sort.</p>", layer_table(report, cols, depth),
        "<h2>By layer type</h2>", type_table(report),
        f"<h2>Explanations</h2>{explanations(report, only)}" if explain else "",
        "<h2>Charts</h2>", charts(report),
        "<h2>Graph</h2>", f'<div class="graph-frame">{graph}</div>',
    ]
    return _PAGE.format(title=_e(report.name), body="\n".join(s for s in sections if s))


def notebook_html(report: Report, columns: Sequence[int] | None = None) -> str:
    """The HTML report for a notebook cell (`Report._repr_html_`): the page of `to_html` in an
    iframe of its own (srcdoc), so that its styles and its script touch nothing of the notebook."""
    page = html.escape(to_html(report, columns=columns))
    return (f'<iframe class="cnncalc-report" title="{_e(report.name)} · cnncalc" srcdoc="{page}" '
            'style="width: 100%; height: 720px; border: 1px solid #e3e6ec; resize: vertical"></iframe>')


_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · cnncalc</title>
<style>
body {{ font: 14px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 24px; color: #1d2330; }}
h1 {{ margin-bottom: 0; }} .sub, .hint {{ color: #5b6475; }}
table {{ border-collapse: collapse; margin: 8px 0 20px; }}
th, td {{ padding: 3px 10px; border-bottom: 1px solid #e3e6ec; text-align: left; white-space: nowrap; }}
thead th {{ position: sticky; top: 0; background: #f4f6fa; cursor: pointer; }}
.num {{ text-align: right; font-variant-numeric: tabular-nums; }}
table.totals th {{ font-weight: 600; }}
tbody tr:hover {{ background: #f7f9fc; }}
.graph-frame {{ overflow: auto; max-height: 900px; border: 1px solid #e3e6ec; }}
.graph-frame > svg {{ display: block; max-width: none; max-height: none; }}
svg text {{ font-family: system-ui, sans-serif; }}
</style></head>
<body>
{body}
<script>
for (const th of document.querySelectorAll("table.sortable thead th")) {{
  th.addEventListener("click", () => {{
    const table = th.closest("table"), col = th.cellIndex, body = table.tBodies[0];
    const up = th.dataset.order !== "up";
    for (const other of table.querySelectorAll("thead th")) delete other.dataset.order;
    th.dataset.order = up ? "up" : "down";
    const key = row => {{
      const cell = row.cells[col];
      return cell.dataset.v !== undefined ? parseFloat(cell.dataset.v) : cell.textContent;
    }};
    const rows = Array.from(body.rows).sort((a, b) => {{
      const x = key(a), y = key(b);
      return (x < y ? -1 : x > y ? 1 : 0) * (up ? 1 : -1);
    }});
    for (const row of rows) body.appendChild(row);
  }});
}}
</script>
</body></html>
"""
