"""Reports as machine-readable text: JSON, CSV, Markdown."""
from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Sequence
from typing import Any

from cnncalc.analysis.report import Report
from cnncalc.errors import gc_paused
from cnncalc.render.columns import COLUMNS, NUMERIC, default_columns, layer_cells, totals_rows
from cnncalc.safe import json_text, visible
from cnncalc.units import plain


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
    return json_text(json.dumps(data, indent=2, ensure_ascii=False, allow_nan=False))


CSV_FIELDS = ["index", "name", "type", "inputs", "output_shape", "params", "trainable_params", "buffers",
              "macs", "flops", "elementwise_ops", "activation_bytes", "rf_size", "rf_stride", "rf_start",
              "shared_with", "rf_jump", "rf_status"]  # rf_stride is the jump under the contract's name; rf_jump
#                says it plainly; rf_status: exact or estimate (analysis/status.py), empty without a field


@gc_paused()
def to_csv(report: Report) -> str:
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(CSV_FIELDS)
    status = report.field_statuses()
    for r in report.layers:
        rf = r.rf_json() or {}
        w.writerow([r.index, visible(r.name), r.type, visible(" ".join(r.inputs)), "x".join(map(str, r.output_shape)), r.params,
                    r.trainable_params, r.buffers, r.macs, r.flops, r.elementwise_ops, r.activation_bytes,
                    *(" ".join(map(str, rf.get(k, []))) for k in ("size", "stride", "start")), r.shared_with or "",
                    " ".join(map(str, rf.get("jump", []))),
                    getattr(status[r.name].get("receptive_field"), "level", "")])
    t = report.totals
    w.writerow(["", "total", "", "", "", t["params"], t["trainable_params"], t["buffers"], t["macs"], t["flops"],
                t["elementwise_ops"], t["activation_bytes"], "", "", "", "", "", ""])
    return out.getvalue()


#: what Markdown (GitHub's, with its tables) or the HTML inside it could read in a cell or heading:
#: HTML's & < >, and the punctuation of code spans, emphasis, links and images (their brackets: a
#: parenthesis or ! means nothing without them), table cells, headings and strikethrough; an
#: underscore only where it could open or close emphasis (not inside a word: conv2d_1 stays); and
#: GitHub's math delimiter $
_MD_SYNTAX = re.compile(r"[\\`*\[\]|~#<>&$]|(?<![^\W_])_|_(?![^\W_])")
_MD_HTML = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}


def md_escape(s: object) -> str:
    """Foreign text for one Markdown table cell or heading: visible (one line), with HTML's
    characters as entities and Markdown's punctuation backslash-escaped, so it renders as the
    same characters and nothing else (no tag, link, image, heading, code span or new cell)."""
    return _MD_SYNTAX.sub(lambda m: _MD_HTML.get(m.group(), "\\" + m.group()), visible(s))


@gc_paused()
def to_markdown(report: Report, columns: Sequence[int] | None = None, depth: int | None = None) -> str:
    """The layer table (block uses nested `depth` levels deep collapsed into one row each, as
    `--depth` does in the terminal), the totals and the warnings, every cell escaped."""
    from cnncalc.render.columns import group_cells, layer_groups

    keep = list(columns) if columns is not None else default_columns(report)
    lines = [f"## {md_escape(report.name)}", "", "| " + " | ".join(COLUMNS[i] for i in keep) + " |",
             "|" + "".join("---:|" if COLUMNS[i] in NUMERIC else "---|" for i in keep)]
    rows = ([group_cells(g, depth, report) for g in layer_groups(report, depth)] if depth
            else [layer_cells(r, report) for r in report.layers])
    lines += ["| " + " | ".join(md_escape(c[i]) for i in keep) + " |" for c in rows]
    lines += ["", "| total | value |", "|---|---|"]
    lines += [f"| {md_escape(k)} | {md_escape(v)} |" for k, v in totals_rows(report)]
    if report.warnings:
        lines += ["", "**Warnings**", ""] + [f"- {md_escape(w.layer)} (line {w.line}): {md_escape(w.message)}"
                                             for w in report.warnings]
    return "\n".join(lines) + "\n"


def unit_field_json(layer: str, unit: tuple[int, ...], axes: list[dict[str, Any]]) -> dict:
    return {"layer": layer, "unit": list(unit), "axes": [{**a, "size": plain(a["size"])} for a in axes]}
