"""Budgets: limits a CI gate enforces on a network (params, MACs, memory, fields, shapes),
checked against a report."""
from __future__ import annotations

from fractions import Fraction
from typing import TYPE_CHECKING, Any, Callable, Sequence

from cnncalc.errors import Problem
from cnncalc.spec.schema import BYTE_LIMITS

if TYPE_CHECKING:
    from cnncalc.analysis.report import Report

#: the budgets counted in bytes (the others count elements or operations)
#: command-line flag of each budget
FLAGS = {"max_params": "--max-params", "max_macs": "--max-macs", "max_flops": "--max-flops",
         "max_inference_memory": "--max-memory", "max_training_memory": "--max-training-memory",
         "max_activation_bytes": "--max-activations"}


#: limit name → key of Report.totals
TOTALS = {"max_params": "params", "max_trainable_params": "trainable_params", "max_macs": "macs",
          "max_flops": "flops", "max_activation_bytes": "activation_bytes",
          "max_inference_memory": "inference_memory_bytes", "max_training_memory": "training_memory_bytes"}


def _count(n: int) -> str:
    from cnncalc.units import human

    return f"{n:,}" + (f" ({human(n)})" if n >= 10_000 else "")


def _bytes(n: int) -> str:
    from cnncalc.units import hbytes

    return f"{n:,} bytes" + (f" ({hbytes(n)})" if n >= 1024 else "")


def check(report: Report, limits: dict[str, Any], where: Callable[[Any, str], Problem]) -> list[Problem]:
    """Every exceeded limit as a located problem; `where(key)` gives the Problem location."""
    out = []
    t = report.totals
    for key, total in TOTALS.items():
        limit = limits.get(key)
        if limit is not None and t[total] > limit:
            over = t[total] - limit
            show = _bytes if key in BYTE_LIMITS else _count
            at = "" if "params" in key else f" at batch {report.input_shape[0]}" + (
                f", {report.dtype}" if key in BYTE_LIMITS else "")
            out.append(where(key, f"{key}: {show(t[total])}{at} exceeds the limit {show(limit)} by {show(over)} "
                                  f"({over / limit:.1%})" if limit else f"{key}: {show(t[total])}{at} exceeds the limit 0"))
    names = {r.name: r for r in report.layers}
    for layer, bounds in (limits.get("receptive_field") or {}).items():
        row = names.get(layer)
        if row is None or row.receptive_field is None:
            out.append(where(("receptive_field", layer), f"receptive_field: '{layer}' is not a layer with a receptive field"))
            continue
        sizes = [r.size for r in row.receptive_field]
        lo, hi = bounds.get("min"), bounds.get("max")
        if lo is not None and min(sizes) < lo:
            out.append(where(("receptive_field", layer),
                             f"receptive field of {layer} is {_sizes(sizes)}, below the minimum {lo}"))
        if hi is not None and max(sizes) > hi:
            out.append(where(("receptive_field", layer),
                             f"receptive field of {layer} is {_sizes(sizes)}, above the maximum {hi}"))
    for layer, shape in (limits.get("output_shape") or {}).items():
        row = names.get(layer)
        if row is None:
            out.append(where(("output_shape", layer), f"output_shape: unknown layer '{layer}'"))
        elif list(row.output_shape) != list(shape):
            out.append(where(("output_shape", layer),
                             f"output shape of {layer} is {list(row.output_shape)}, expected {list(shape)}"))
    return out


def _sizes(sizes: Sequence[Fraction]) -> str:
    return "×".join(str(int(s)) if s.denominator == 1 else f"{float(s):g}" for s in sizes)
