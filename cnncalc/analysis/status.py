"""How sure cnncalc is of a number: one status per figure, from one vocabulary, used by the table
marker (`~`), the JSON (`status` keys), verify's verdict and the HTML.

- `exact`: the textbook formula gives what torch computes (every count, shape, FLOP and element-wise
  op; a receptive field whose windows are all alike; the memory of layer types whose rules say so).
- `estimate`: a bound or an approximation, with the reason code saying which (`~` in every view).
- `not_checked`: verify did not compare it with torch, with the reason code saying why (switched
  off, an estimate, the probe's limits, the probe's own failure, a device that cannot measure).

A status is `Status(level, reason, detail)`: `reason` a code of `REASONS` (None for exact), `detail`
the located words a person reads. JSON writes it as {"status", "reason", "detail"}."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cnncalc.layers.field import RF

LEVELS = ("exact", "estimate", "not_checked")

REASONS: dict[str, str] = {
    # estimate: how the analysis knows a number only roughly
    "field_inexact": "the field passes a layer whose windows differ from unit to unit (upsampling, the "
                     "holes of a transposed conv, sub-pixel jumps): its size is the widest window",
    "field_start": "size and jump are exact; the first unit's centre is an estimate (even windows after "
                   "upsampling)",
    "memory_rule": "a layer type on the way states that its memory rules are an estimate",
    # not_checked: why verify did not compare a number with torch
    "switched_off": "the check was switched off (--no-rf-probe)",
    "estimate": "an estimate is not compared with torch",
    "size_dependent": "the field depends on the input size, or a layer in front has none: an enlarged "
                      "input cannot show it",
    "probe_limit": "beyond the rows the probe measures in one verify",
    "probe_memory": "the probe would need more memory than its budget",
    "probe_geometry": "no input size keeps the probed fields unclipped, or the network does not fit one",
    "probe_channels": "the probe's one-channel stand-ins cannot follow a slice of channels whose fields differ "
                      "(a chunk of a concat): the field is checked by the tests against torch instead",
    "probe_failed": "the probe itself failed (an exception, non-finite gradients, no input pixel reached)",
    "not_measurable": "torch cannot measure it on this device or in this run",
}


@dataclass(frozen=True)
class Status:
    """One figure's status: `level` of LEVELS, `reason` a code of REASONS (None when exact)."""

    level: str = "exact"
    reason: str | None = None
    detail: str = ""

    def __post_init__(self) -> None:
        if self.level not in LEVELS or (self.reason is None) != (self.level == "exact") or \
                (self.reason is not None and self.reason not in REASONS):
            raise ValueError(f"no such status: {self.level}/{self.reason}")

    @property
    def marker(self) -> str:
        """`~` before an estimate, nothing otherwise (the one marker of every view)."""
        return "~" if self.level == "estimate" else ""

    def to_json(self) -> dict[str, Any]:
        return {"status": self.level, "reason": self.reason, "detail": self.detail}


EXACT = Status()


def estimate(reason: str, detail: str = "") -> Status:
    return Status("estimate", reason, detail or REASONS[reason])


def not_checked(reason: str, detail: str = "") -> Status:
    return Status("not_checked", reason, detail or REASONS[reason])


def of_field(field: list[RF] | None) -> Status | None:
    """A receptive field's size and jump: exact when every axis is (RF.exact), else an estimate."""
    if field is None:
        return None
    return EXACT if all(r.exact for r in field) else estimate("field_inexact")


def of_field_start(field: list[RF] | None) -> Status | None:
    """A field's start (the first unit's centre): exact when the field is and its windows are centred."""
    if field is None:
        return None
    if not all(r.exact for r in field):
        return estimate("field_inexact")
    return EXACT if all(r.centred for r in field) else estimate("field_start")
