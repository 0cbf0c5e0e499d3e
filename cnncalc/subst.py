"""The tiny, safe substitution language of block arguments.

Inside a block, a string value ``"$name"`` is replaced by the argument's value (any type),
and ``"${expr}"`` by an integer expression over arguments: integers, names, ``+ - * // %``
and parentheses. Expressions are parsed with :mod:`ast` and only those node kinds are
accepted: nothing is ever evaluated as Python.
"""
from __future__ import annotations

import ast
import re
from typing import Any

_NAME = re.compile(r"^\$([A-Za-z_][A-Za-z0-9_]*)$")
_EXPR = re.compile(r"^\$\{(.*)\}$", re.S)
MAX_EXPR = 200  #: characters of one ${expr}
_OPS = {ast.Add: lambda a, b: a + b, ast.Sub: lambda a, b: a - b, ast.Mult: lambda a, b: a * b,
        ast.FloorDiv: lambda a, b: a // b, ast.Mod: lambda a, b: a % b}
MAX_VALUE = 2**62


class SubstError(ValueError):
    pass


def substitute(value: Any, args: dict[str, Any]) -> Any:
    """Replace ``$name`` / ``${expr}`` strings anywhere inside ``value``."""
    if isinstance(value, str):
        m = _NAME.match(value)
        if m:
            return lookup(m.group(1), args)
        m = _EXPR.match(value)
        if m:
            if not 1 <= len(m.group(1)) <= MAX_EXPR:
                raise SubstError(f"expression '${{{m.group(1)[:40]}…}}' has {len(m.group(1)):,} characters; "
                                 f"at most {MAX_EXPR} are allowed" if m.group(1) else "empty expression '${}'")
            return evaluate(m.group(1), args)
        return value
    if isinstance(value, list):
        return [substitute(v, args) for v in value]
    if isinstance(value, dict):
        return {k: substitute(v, args) for k, v in value.items()}
    return value


def lookup(name: str, args: dict[str, Any]) -> Any:
    if name not in args:
        known = ", ".join(sorted(args)) or "none"
        raise SubstError(f"unknown block argument '${name}' (this block takes: {known})")
    return args[name]


def evaluate(expr: str, args: dict[str, Any]) -> int:
    """Evaluate an integer expression such as ``planes * 4`` over the block arguments."""
    try:
        tree = ast.parse(expr.strip(), mode="eval")
    except SyntaxError:
        raise SubstError(f"cannot read expression '${{{expr}}}': use integers, argument names, "
                         "+ - * // % and parentheses") from None
    return _eval(tree.body, args, expr)


def _eval(node: ast.AST, args: dict[str, Any], expr: str) -> int:
    if isinstance(node, ast.Constant) and type(node.value) is int:
        return node.value
    if isinstance(node, ast.Name):
        v = lookup(node.id, args)
        if type(v) is not int:
            raise SubstError(f"argument '{node.id}' is {v!r}, not an integer, in '${{{expr}}}'")
        return v
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -_eval(node.operand, args, expr)
    if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
        a, b = _eval(node.left, args, expr), _eval(node.right, args, expr)
        if isinstance(node.op, (ast.FloorDiv, ast.Mod)) and b == 0:
            raise SubstError(f"division by zero in '${{{expr}}}'")
        result = _OPS[type(node.op)](a, b)
        if abs(result) > MAX_VALUE:
            raise SubstError(f"'${{{expr}}}' is out of range")
        return result
    raise SubstError(f"'${{{expr}}}' may only use integers, argument names, + - * // % and parentheses")
