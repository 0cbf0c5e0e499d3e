"""Pydantic's validation errors as cnncalc's located, one-line messages."""
from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel

from cnncalc.errors import did_you_mean
from cnncalc.spec.source import Path


def _located(message_and_loc: tuple[str, Path], path: Path) -> tuple[str, Path]:
    message, loc = message_and_loc
    return message, path + loc


def pydantic_message(err: Any, what: str, cls: type[BaseModel] | None = None) -> tuple[str, Path]:
    """A pydantic error as (plain message, YAML path relative to the validated mapping)."""
    # drop the tag segments pydantic inserts for unions and validators ('list[int]', 'function-after[…]')
    loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and re.match(r"^[\w-]+\[.*\]$", p)))
    where = ".".join(str(p) for p in loc) or what
    kind, received = err["type"], err.get("input")
    if kind == "missing":
        return f"missing required field '{where}'", loc[:-1]
    if kind == "extra_forbidden":
        valid = [f.alias or n for n, f in cls.model_fields.items()] if cls else []
        hint = did_you_mean(loc[-1], valid) if loc else ""
        listing = f"; valid fields: {', '.join(valid)}" if valid else ""
        return f"unknown field '{where}'{hint}{listing}", loc
    msg = err["msg"].removeprefix("Value error, ").removeprefix("Assertion failed, ")
    msg = msg.replace("Input should be", "expected")
    if kind != "value_error" and "received" not in msg:
        msg += f", received {received!r}" if not isinstance(received, (dict, list)) else ""
    return f"{where}: {msg}", loc
