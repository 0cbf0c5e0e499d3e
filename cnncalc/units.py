"""Numbers for people and from people: dtype sizes, exact-number display (`plain`, `fmt_num`),
SI/binary formatting (`human`, `hbytes`, `fmt_time`), shapes, and quantity parsing (25M, 2GiB).
A leaf: imports nothing of cnncalc."""
from __future__ import annotations

import re
from fractions import Fraction
from typing import Any

_UNITS = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12, "p": 10**15,
          "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12, "b": 1,
          "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}
_QTY = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?(?:[eE][0-9]+)?)\s*([A-Za-z]*)\s*$")
_BYTE_UNITS = {"b", "kb", "mb", "gb", "tb", "kib", "mib", "gib", "tib"}


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


def human(n: float, unit: str = "", base: int = 1000) -> str:
    """1234567 → '1.23 M' (base 1000) or bytes → '1.18 MiB' (base 1024)."""
    names = ["", "K", "M", "G", "T", "P", "E"] if base == 1000 else ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"]
    x, i = float(n), 0
    while abs(x) >= base and i < len(names) - 1:
        x, i = x / base, i + 1
    if i == 0:
        return f"{int(n):,} {unit}".strip() if float(n).is_integer() else f"{_g3(n)} {unit}".strip()
    return f"{_g3(x)} {names[i]}{unit}"


def _g3(x: float) -> str:
    """Three significant digits, never in exponent form: 1010 MiB (from 1000 to 1023 of a binary
    unit), not 1.01e+03."""
    s = f"{x:.3g}"
    return f"{x:,.0f}" if "e" in s and abs(x) >= 1 else s


def hbytes(n: int) -> str:
    return human(n, "B", 1024)


def shape_str(shape) -> str:
    return "×".join(str(s) for s in shape)


def fmt_time(s: float) -> str:
    """Seconds for people: 812 ns, 12.3 µs, 4.56 ms, 1.23 s."""
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if s >= scale:
            return f"{_g3(s / scale)} {unit}"
    return f"{_g3(s * 1e9)} ns"

DTYPE_BYTES = {"float64": 8, "float32": 4, "float16": 2, "bfloat16": 2}


def plain(x: Fraction | int) -> int | float:
    """An exact number for JSON: an int when whole, else the nearest float."""
    if type(x) is int:
        return x
    x = Fraction(x)
    return int(x) if x.denominator == 1 else float(x)


def fmt_num(x: Fraction | int) -> str:
    """'3', '1.5' or '1/3' (exact) for fields and jumps."""
    if type(x) is int:
        return str(x)
    x = Fraction(x)
    if x.denominator == 1:
        return str(x.numerator)
    f = float(x)
    return f"{f:g}" if Fraction(f).limit_denominator(1000) == x and len(f"{f:g}") <= 6 else str(x)
