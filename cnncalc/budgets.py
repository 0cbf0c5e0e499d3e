"""Budgets: limits a CI gate enforces on a network (params, MACs, memory, fields, shapes).

Quantities accept plain numbers or units: 25M, 4.1G, 1.5T (powers of 1000); byte budgets also
512MiB, 2GiB (powers of 1024) and 512MB (powers of 1000). Case does not matter.
"""
from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from .arith import DTYPE_BYTES
from .errors import Problem

_UNITS = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12, "p": 10**15,
          "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12, "b": 1,
          "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}
_QTY = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?(?:[eE][0-9]+)?)\s*([A-Za-z]*)\s*$")
_BYTE_UNITS = {"b", "kb", "mb", "gb", "tb", "kib", "mib", "gib", "tib"}
#: the budgets counted in bytes (the others count elements or operations)
BYTE_LIMITS = ("max_activation_bytes", "max_inference_memory", "max_training_memory")
#: command-line flag of each budget
FLAGS = {"max_params": "--max-params", "max_macs": "--max-macs", "max_flops": "--max-flops",
         "max_inference_memory": "--max-memory", "max_training_memory": "--max-training-memory",
         "max_activation_bytes": "--max-activations"}


MAX_QUANTITY = 10**30  #: larger budgets (and infinity) are refused: no network comes near


def parse_quantity(value: Any, in_bytes: bool = True) -> int:
    """'25M' → 25,000,000; '512MiB' → 536,870,912; 4100 → 4100 (at most 10^30). Byte units
    only where `in_bytes` (25MB is no parameter count)."""
    if isinstance(value, bool):
        raise ValueError(f"expected a number like 25M, 4.1G or 512MiB, received {value!r}")
    if isinstance(value, (int, float)) and value >= 0:
        number: float = value
    else:
        m = _QTY.match(str(value)[:100])
        if not m or m.group(2).lower() not in _UNITS or (not in_bytes and m.group(2).lower() in _BYTE_UNITS):
            example = "25M, 4.1G or 512MiB" if in_bytes else "25M or 4.1G (a count, not bytes)"
            raise ValueError(f"expected a number like {example}, received {str(value)[:60]!r}")
        number = float(m.group(1)) * _UNITS[m.group(2).lower()]
    if not number <= MAX_QUANTITY:  # also infinity and NaN
        raise ValueError(f"{str(value)[:60]} is larger than the largest budget accepted (10^30)")
    return int(round(number))


Quantity = Annotated[Any, Field(json_schema_extra={"anyOf": [{"type": "integer", "minimum": 0},
                                                             {"type": "string", "pattern": _QTY.pattern}]})]


class FieldBounds(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")
    min: Annotated[int, Field(ge=1)] | None = None
    max: Annotated[int, Field(ge=1)] | None = None


class Limits(BaseModel):
    """Budgets checked by analyze and validate (exit 1 when one is exceeded)."""

    model_config = ConfigDict(strict=True, extra="forbid")
    batch: Annotated[int, Field(ge=1)] | None = None
    """Batch at which the limits hold (default: the spec's)."""
    dtype: str | None = None
    """Element type for the byte limits (default: the spec's)."""
    max_params: Quantity = None
    max_trainable_params: Quantity = None
    max_macs: Quantity = None
    max_flops: Quantity = None
    max_activation_bytes: Quantity = None
    max_inference_memory: Quantity = None
    max_training_memory: Quantity = None
    receptive_field: dict[str, FieldBounds] = {}
    """Per layer: min and/or max receptive-field size (every spatial axis)."""
    output_shape: dict[str, list[Annotated[int, Field(ge=1)]]] = {}
    """Per layer: the expected output shape, batch included."""

    @field_validator("max_params", "max_trainable_params", "max_macs", "max_flops", "max_activation_bytes",
                     "max_inference_memory", "max_training_memory", mode="before")
    @classmethod
    def _qty(cls, v: Any, info: ValidationInfo) -> int | None:
        return None if v is None else parse_quantity(v, info.field_name in BYTE_LIMITS)

    @field_validator("dtype")
    @classmethod
    def _dtype(cls, v: str | None) -> str | None:
        if v is not None and v not in DTYPE_BYTES:
            raise ValueError(f"expected one of {', '.join(DTYPE_BYTES)}, received {v!r}")
        return v


#: limit name → key of Report.totals
TOTALS = {"max_params": "params", "max_trainable_params": "trainable_params", "max_macs": "macs",
          "max_flops": "flops", "max_activation_bytes": "activation_bytes",
          "max_inference_memory": "inference_memory_bytes", "max_training_memory": "training_memory_bytes"}


def _count(n: int) -> str:
    from .render import human

    return f"{n:,}" + (f" ({human(n)})" if n >= 10_000 else "")


def _bytes(n: int) -> str:
    from .render import hbytes

    return f"{n:,} bytes" + (f" ({hbytes(n)})" if n >= 1024 else "")


def check(report, limits: dict[str, Any], where) -> list[Problem]:
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


def _sizes(sizes) -> str:
    return "×".join(str(int(s)) if s.denominator == 1 else f"{float(s):g}" for s in sizes)
