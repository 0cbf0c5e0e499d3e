"""`--explain`: the formula behind each number of a layer, with its values substituted."""
from __future__ import annotations

from cnncalc.analysis.report import Report
from cnncalc.layers.field import RF
from cnncalc.units import fmt_num


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
