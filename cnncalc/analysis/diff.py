"""`cnncalc diff OLD NEW`: what changed between two specs, or a spec and a stored JSON report."""
from __future__ import annotations

import json
import math
import re
from typing import Any

from cnncalc.errors import CnnError, Problem

METRICS = ("params", "macs", "flops", "activation_bytes", "inference_memory_bytes", "training_memory_bytes",
           "buffers")
LAYER_FIELDS = ("type", "output_shape", "params", "macs", "activation_bytes", "receptive_field")
MAX_REPORT_BYTES = 16 * 2**20  #: a JSON report read by diff (analyze writes about 1 KB a layer, 460 B compact)
MAX_REPORT_LAYERS = 20_000  #: layers in one stored report (an indented report of 16 MiB holds about 16,000)
MAX_REPORT_CONTAINERS = 16 * MAX_REPORT_LAYERS  #: JSON arrays and objects (a layer's row holds about 14)
MAX_REPORT_VALUES = 40 * MAX_REPORT_LAYERS  #: commas, so values (a layer's row holds about 34)
MAX_ALLOWED = 1e30  #: --fail-on-increase's largest allowance (a float past it could be infinite)
MAX_AXES = 16  #: entries of a layer's output_shape or receptive field size
MAX_DIGITS = 300  #: digits of an integer in a stored report (larger ones cannot be compared as floats)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number a report holds")


def _finite_float(text: str) -> float:
    x = float(text)
    if not math.isfinite(x):
        raise ValueError(f"the number {text[:40]} is too large")
    return x


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_DIGITS:
        raise ValueError(f"an integer of {len(text.lstrip('-')):,} digits (at most {MAX_DIGITS} are compared)")
    return int(text)


_DIGIT_RUNS = bytes(57 if 48 <= i <= 57 else 32 for i in range(256))  #: digits → '9', the rest → ' '
_LONG_RUN = b"9" * (MAX_DIGITS + 1)


def read_json(raw: bytes) -> Any:
    """JSON text as data, refusing what no cnncalc report holds: NaN, Infinity, floats that
    overflow and integers too large to compare (ValueError)."""
    text = raw.decode("utf-8")
    if _LONG_RUN in raw.translate(_DIGIT_RUNS):  # an integer past MAX_DIGITS needs a run of that many digits: checked one by one
        return json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float, parse_int=_bounded_int)
    return json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)


def load_side(path: str, batch: int | None = None, input_shape: tuple[int, ...] | None = None,
              overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """A spec (analysed now, its `args:` overridden by `overrides`) or a JSON report from
    `analyze --format json`, as plain data."""
    if path.endswith(".json"):
        from cnncalc.spec.source import read_bytes

        raw = read_bytes(path, MAX_REPORT_BYTES, "JSON reports")
        _check_counts(raw, path)
        try:
            data = read_json(raw)
            layers, totals = data["layers"], data["totals"]
            _check_rows(layers)
            if not isinstance(totals, dict) or not all(isinstance(totals.get(k, 0), (int, float)) for k in METRICS):
                raise TypeError("'totals' is not a mapping of numbers")
            shape = data.get("input", {}).get("shape") if isinstance(data.get("input"), dict) else None
            return {"name": str(data.get("name", path)), "layers": {str(r["name"]): _row(r) for r in layers},
                    "totals": totals, "order": [str(r["name"]) for r in layers], "input": shape, "file": path,
                    "args": None}
        except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
            why = "nested too deeply" if isinstance(exc, RecursionError) else f"{type(exc).__name__}: {exc}"
            raise CnnError.single(f"not a cnncalc JSON report ({why})"[:300], file=path) from None
    from cnncalc.analysis.analyze import analyze
    from cnncalc.spec.expand import load_spec

    net = load_spec(path, overrides)
    data = analyze(net, batch, input_shape).to_json()
    return {"name": data["name"], "layers": {r["name"]: _row(r) for r in data["layers"]}, "totals": data["totals"],
            "order": [r["name"] for r in data["layers"]], "input": data["input"]["shape"], "file": path,
            "args": dict(net.header.args)}


def _check_counts(raw: bytes, path: str) -> None:
    """Before parsing: the arrays, objects and values the text can hold (counted over the bytes,
    so an over-count inside strings only refuses earlier), each within what MAX_REPORT_LAYERS
    layers need; parsing a report of small containers costs about 40 times its size in memory."""
    containers, values = raw.count(b"{") + raw.count(b"["), raw.count(b",")
    for n, limit, what, per in ((containers, MAX_REPORT_CONTAINERS, "JSON arrays and objects", 14),
                                (values, MAX_REPORT_VALUES, "values (commas)", 34)):
        if n > limit:
            raise CnnError.single(f"holds {n:,} {what}; reports with more than {limit:,} are refused (a layer's row "
                                  f"holds about {per}; at most {MAX_REPORT_LAYERS:,} layers are compared)", file=path)


def _check_rows(layers: Any) -> None:
    """The layer rows' count and the length of each row's shape and field (TypeError if not)."""
    if not isinstance(layers, list):
        raise TypeError("'layers' is not a list")
    if len(layers) > MAX_REPORT_LAYERS:
        raise TypeError(f"{len(layers):,} layers; reports of more than {MAX_REPORT_LAYERS:,} are refused")
    for r in layers:
        if not isinstance(r, dict):
            raise TypeError(f"a layer row is a {type(r).__name__}, not a mapping")
        rf = r.get("receptive_field")
        for key, v in (("output_shape", r.get("output_shape")), ("receptive_field", rf.get("size") if isinstance(
                rf, dict) else None)):
            if isinstance(v, list) and len(v) > MAX_AXES:
                raise TypeError(f"a layer's {key} has {len(v):,} entries; more than {MAX_AXES} are refused")


def _row(r: dict) -> dict:
    rf = r.get("receptive_field")
    inputs = r.get("inputs")
    return {"type": r.get("type"), "output_shape": r.get("output_shape"), "params": r.get("params"),
            "macs": r.get("macs"), "activation_bytes": r.get("activation_bytes"),
            "receptive_field": rf.get("size") if isinstance(rf, dict) else None,
            "inputs": [str(i) for i in inputs] if isinstance(inputs, list) else None}


def _fed_alike(name: str, old: dict, new: dict, alike: dict[str, bool]) -> bool:
    """Whether a layer reads the same inputs, of the same shapes and fields, on both sides: then
    a change in it is its own; otherwise it may only follow from a change upstream. `alike`
    remembers each source's answer (a source read by many layers is compared once)."""
    a, b = old["layers"][name]["inputs"], new["layers"][name]["inputs"]
    if a is None or a != b:
        return False

    def seen(side: dict, src: str) -> Any:
        row = side["layers"].get(src)
        return (row["output_shape"], row["receptive_field"]) if row else side.get("input") if src == "input" else src

    for src in a:
        same = alike.get(src)
        if same is None:
            same = alike[src] = seen(old, src) == seen(new, src)
        if not same:
            return False
    return True


def compare(old: dict, new: dict) -> dict[str, Any]:
    """Added, removed and changed layers and the totals' changes. A changed layer is `direct`
    when its type or params changed or it reads the same inputs as before, else `upstream`
    (its shape, MACs or field moved only because a layer before it changed)."""
    added = [n for n in new["order"] if n not in old["layers"]]
    removed = [n for n in old["order"] if n not in new["layers"]]
    changed = []
    alike: dict[str, bool] = {}
    for name in new["order"]:
        if name in old["layers"]:
            a, b = old["layers"][name], new["layers"][name]
            fields = {f: {"old": a[f], "new": b[f]} for f in LAYER_FIELDS if a[f] != b[f]}
            if fields:
                own = "type" in fields or "params" in fields or _fed_alike(name, old, new, alike)
                changed.append({"name": name, "changes": fields, "cause": "direct" if own else "upstream"})
    totals = {}
    for m in METRICS:
        a, b = old["totals"].get(m), new["totals"].get(m)
        if isinstance(a, int) and isinstance(b, int):
            totals[m] = {"old": a, "new": b, "delta": b - a, "percent": (b - a) / a * 100 if a else None}
    args_changed = {}
    if old.get("args") is not None and new.get("args") is not None:
        for k in sorted(set(old["args"]) | set(new["args"])):
            a, b = old["args"].get(k), new["args"].get(k)
            if a != b:
                args_changed[k] = {"old": a, "new": b}
    return {"old": old["name"], "new": new["name"], "added": added, "removed": removed, "changed": changed,
            "totals": totals, "old_file": old.get("file"), "new_file": new.get("file"), "args_changed": args_changed}


def parse_gate(text: str) -> dict[str, tuple[float, bool]]:
    """'macs=5%,params=0' → {'macs': (5, True), 'params': (0, False)}: allowed increase."""
    gate = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        m = re.fullmatch(r"([a-z_]+)=([0-9.]+)(%?)", part)
        aliases = {"memory": "inference_memory_bytes", "activations": "activation_bytes"}
        metric = aliases.get(m.group(1), m.group(1)) if m else None
        if not m or metric not in METRICS:
            raise ValueError(f"expected METRIC=N or METRIC=N% (metrics: params, macs, flops, activations, memory, "
                             f"training_memory_bytes, buffers), received {part!r}")
        allowed = float(m.group(2))
        if not allowed <= MAX_ALLOWED:
            raise ValueError(f"{part[:60]!r}: an allowed increase above 10^30 is no gate")
        gate[metric] = (allowed, bool(m.group(3)))
    return gate


def gate_problems(result: dict, gate: dict[str, tuple[float, bool]], file: str) -> list[Problem]:
    out = []
    for metric, (allowed, percent) in gate.items():
        t = result["totals"].get(metric)
        if t is None:
            continue
        limit = t["old"] * allowed / 100 if percent else allowed
        if t["delta"] > limit:
            pct = f" ({t['percent']:+.2f}%)" if t["percent"] is not None else ""
            out.append(Problem(f"{metric} grew by {t['delta']:,}{pct}: {t['old']:,} → {t['new']:,}, allowed "
                               f"{allowed:g}{'%' if percent else ''}", file))
    return out
