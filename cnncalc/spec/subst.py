"""The tiny, safe substitution language of spec and block arguments.

A string value ``"$name"`` is replaced by the argument's value (any type), and ``"${expr}"`` by
the value of an expression over arguments (and, in a layer's fields, ``in.channels``,
``in.height``, … of the layer's input): numbers, ``true``/``false``, names,
``+ - * / // %``, comparisons, ``and or not``, ``a if c else b``, parentheses and the functions
min, max, round, floor, ceil, int, float, abs and make_divisible (torchvision's
``_make_divisible(v, divisor, min_value)``). A whole-number result is an integer (``${64 *
0.5}`` is 32); where a layer needs an integer, anything else is a located error. Expressions are
parsed with :mod:`ast` and only those node kinds are accepted: nothing is ever evaluated as
Python.
"""
from __future__ import annotations

import ast
import functools
import math
import operator
import re
from typing import Any, Callable

_NAME = re.compile(r"^\$([A-Za-z_][A-Za-z0-9_]*)$")
_EXPR = re.compile(r"^\$\{(.*)\}$", re.S)
MAX_EXPR = 200  #: characters of one ${expr}
MAX_VALUE = 2**62  #: every number in an expression: constants, arguments, and each intermediate result
MAX_NDIGITS = 30  #: round(x, n): |n| at most this (round(5, -10**11) would compute 10^(10^11))
Number = int | float | bool

_OPS: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod}
_COMPARE: dict[type, Callable[[Any, Any], bool]] = {
    ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le, ast.Gt: operator.gt,
    ast.GtE: operator.ge}


def make_divisible(v: float, divisor: int = 8, min_value: int | None = None) -> int:
    """torchvision's _make_divisible: the nearest multiple of `divisor` to v, at least
    min_value (default divisor), and never below 90% of v."""
    min_value = divisor if min_value is None else min_value
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    return new_v + divisor if new_v < 0.9 * v else new_v


FUNCTIONS: dict[str, Callable[..., Number]] = {
    "min": min, "max": max, "round": round, "floor": math.floor, "ceil": math.ceil, "int": int, "float": float,
    "abs": abs, "make_divisible": make_divisible}
ALLOWED = ("numbers, true/false, argument names, + - * / // %, comparisons, and/or/not, "
           "'a if c else b', parentheses and " + ", ".join(FUNCTIONS))


class SubstError(ValueError):
    pass


IN_FIELDS = ("channels", "features", "length", "depth", "height", "width")
_IN = re.compile(r"\bin\.([A-Za-z_]\w*)")
#: a size of another tensor (`${input.height}`, `${LAYER.width}`), written by the expander as a
#: placeholder ref__N whose (layer, field) it records: deferred like in.* until shapes are known
_REF = re.compile(r"\bref__\d+\b")
REF_FIELD = re.compile(r"(?<![\w.\-])([A-Za-z0-9_][A-Za-z0-9_.\-]*)\.(" + "|".join(IN_FIELDS) + r")\b")


class Deferred(Exception):
    """An expression reads the layer's input (in.channels, …): known only once shapes are."""


def input_args(shape: tuple[int, ...], prefix: str = "in__") -> dict[str, int]:
    """What `in.*` reads of an input (N, C, …): channels (C), features (the last axis), and the
    spatial sizes by rank (length; height, width; depth, height, width)."""
    names = {1: ("length",), 2: ("height", "width"), 3: ("depth", "height", "width")}.get(len(shape) - 2, ())
    out = {f"{prefix}features": shape[-1]}
    if len(shape) >= 2:
        out[f"{prefix}channels"] = shape[1]
    out.update({f"{prefix}{n}": v for n, v in zip(names, shape[2:])})
    return out


def reads_input(value: Any) -> bool:
    """Whether a value still holds a ${…} expression over `in.*` (left for the analysis)."""
    if isinstance(value, str):
        if value[:1] != "$":  # (most strings: names, modes) no expression, no match to try
            return False
        m = _EXPR.match(value)
        return bool(m and (_IN.search(m.group(1)) or _REF.search(m.group(1))))
    if isinstance(value, list):
        return any(reads_input(v) for v in value)
    if isinstance(value, dict):
        return any(reads_input(v) for v in value.values())
    return False


def substitute(value: Any, args: dict[str, Any], defer: bool = False) -> Any:
    """Replace ``$name`` / ``${expr}`` strings anywhere inside ``value``; with `defer`, an
    expression over the layer's input (``in.channels``) stays as it is, for the analysis."""
    if isinstance(value, str):
        if value[:1] != "$":  # both forms start with $: most strings are returned as they are
            return value
        m = _NAME.match(value)
        if m:
            return lookup(m.group(1), args)
        m = _EXPR.match(value)
        if m:
            if not 1 <= len(m.group(1)) <= MAX_EXPR:
                raise SubstError(f"expression '${{{m.group(1)[:40]}…}}' has {len(m.group(1)):,} characters; "
                                 f"at most {MAX_EXPR} are allowed" if m.group(1) else "empty expression '${}'")
            try:
                return evaluate(m.group(1), args)
            except Deferred:
                if defer:
                    return value
                raise SubstError(f"'{value}' reads the input (in.*), which is known only for a layer's fields") from None
        return value
    if isinstance(value, list):
        return [substitute(v, args, defer) for v in value]
    if isinstance(value, dict):
        return {k: substitute(v, args, defer) for k, v in value.items()}
    return value


def lookup(name: str, args: dict[str, Any]) -> Any:
    if name.startswith("ref__") and name not in args:
        raise Deferred(name)
    if name.startswith("in__") and name not in args:
        if name[4:] not in IN_FIELDS:
            raise SubstError(f"in.{name[4:]}: the input offers {', '.join('in.' + f for f in IN_FIELDS)}")
        raise Deferred(name)
    if name not in args:
        known = ", ".join(sorted(args)) or "none"
        raise SubstError(f"unknown argument '${name}' (arguments here: {known})")
    return args[name]


@functools.lru_cache(maxsize=4096)
def _parsed(expr: str) -> ast.Expression | None:
    """The syntax tree of an expression (None: not Python syntax), parsed once per text: a block
    repeated N times evaluates the same few expressions N times (#30). The trees are only read."""
    try:
        text = _IN.sub(lambda m: "in__" + m.group(1), expr.strip())
        return ast.parse(re.sub(r"\b(true|false)\b", lambda m: m.group(1).title(), text), mode="eval")
    except SyntaxError:
        return None


def evaluate(expr: str, args: dict[str, Any]) -> Number:
    """Evaluate an expression such as ``planes * 4`` or ``make_divisible(16 * width)``."""
    tree = _parsed(expr)
    if tree is None:
        raise SubstError(f"cannot read expression '${{{expr}}}': use {ALLOWED}")
    try:
        value = _eval(tree.body, args, expr)
    except (OverflowError, ValueError, TypeError, ZeroDivisionError) as exc:
        if isinstance(exc, SubstError):
            raise
        raise SubstError(f"cannot evaluate '${{{expr}}}': {exc}") from None
    if isinstance(value, float) and value.is_integer() and abs(value) <= MAX_VALUE:
        return int(value)  # 64 * 0.5 is the integer 32
    return value


def _number(v: Any, what: str, expr: str) -> Number:
    if isinstance(v, bool) or (isinstance(v, (int, float)) and not isinstance(v, bool)):
        if isinstance(v, float) and not math.isfinite(v):
            raise SubstError(f"'{what}' is {v} in '${{{expr}}}'")
        return v
    raise SubstError(f"argument '{what}' is {v!r}, not a number, in '${{{expr}}}'")


def _eval(node: ast.AST, args: dict[str, Any], expr: str) -> Number:
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float, bool)):
        return _bounded(node.value, expr)
    if isinstance(node, ast.Name):
        return _bounded(_number(lookup(node.id, args), node.id, expr), expr)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd, ast.Not)):
        v = _eval(node.operand, args, expr)
        return _bounded((not v) if isinstance(node.op, ast.Not) else -v if isinstance(node.op, ast.USub) else +v, expr)
    if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
        a, b = _eval(node.left, args, expr), _eval(node.right, args, expr)
        if isinstance(node.op, (ast.FloorDiv, ast.Mod, ast.Div)) and b == 0:
            raise SubstError(f"division by zero in '${{{expr}}}'")
        return _bounded(_OPS[type(node.op)](a, b), expr)
    if isinstance(node, ast.Compare) and all(type(op) in _COMPARE for op in node.ops):
        left = _eval(node.left, args, expr)
        for op, right_node in zip(node.ops, node.comparators):
            right = _eval(right_node, args, expr)
            if not _COMPARE[type(op)](left, right):
                return False
            left = right
        return True
    if isinstance(node, ast.BoolOp):
        parts = (_eval(v, args, expr) for v in node.values)
        return all(parts) if isinstance(node.op, ast.And) else any(parts)
    if isinstance(node, ast.IfExp):
        return _bounded(_eval(node.body if _eval(node.test, args, expr) else node.orelse, args, expr), expr)
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in FUNCTIONS
            and not node.keywords and len(node.args) <= 3):
        name = node.func.id
        values = [_eval(a, args, expr) for a in node.args]
        _check_call(name, values, expr)
        return _bounded(FUNCTIONS[name](*values), expr)
    raise SubstError(f"'${{{expr}}}' may only use {ALLOWED}")


def _check_call(name: str, values: list[Number], expr: str) -> None:
    """Every argument is already a number within ±MAX_VALUE (each value is checked as it is
    made); what a function would do with one beyond its own bounds is refused before the call:
    round's digits (the one argument that makes work grow: 10^|n|) and make_divisible's divisor."""
    if name == "round" and len(values) == 2:
        n = values[1]
        if isinstance(n, float) or not -MAX_NDIGITS <= n <= MAX_NDIGITS:
            raise SubstError(f"round(x, n) needs a whole n from {-MAX_NDIGITS} to {MAX_NDIGITS}, received {n!r} "
                             f"in '${{{expr}}}'")
    if name == "make_divisible" and len(values) >= 2 and not values[1] > 0:
        raise SubstError(f"make_divisible's divisor must be positive, received {values[1]!r} in '${{{expr}}}'")


def _bounded(v: Number, expr: str) -> Number:
    if (isinstance(v, float) and not math.isfinite(v)) or abs(v) > MAX_VALUE:
        raise SubstError(f"'${{{expr}}}' is out of range (numbers in expressions are limited to ±2^62)")
    return v
