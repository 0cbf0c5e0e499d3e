"""The analysis: from a `Network` to a `Report` (shapes, counts, FLOPs, memory, fields), and what
is computed from reports (budgets, folding, roofline, a unit's field, sweeps, explanations, diffs).
Never imports torch or rich."""
from __future__ import annotations

from cnncalc.analysis.analyze import analyze
from cnncalc.analysis.report import LayerReport, Report

__all__ = ["analyze", "LayerReport", "Report"]
