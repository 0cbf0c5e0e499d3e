"""Issue #25 §4 (round two's open cases): adaptive pooling with a huge window period, receptive
fields too large to print or to hold in a float, stored diff reports with huge integers and
oversized or overfull reports. Each generated member ends in a plain located message (exit 1)
or a correct result, never a traceback, within a time bound."""
from __future__ import annotations

import functools
import json
import os
import re
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from cnncalc.cli import app

from conftest import ROOT

LENET = os.path.join(ROOT, "examples", "lenet5.yaml")


def widest_by_enumeration(h: int, o: int) -> int:
    """torch's adaptive window i is [⌊i·H/H'⌋, ⌈(i+1)·H/H'⌉): every window, measured."""
    return max(-(-(i + 1) * h // o) - (i * h) // o for i in range(o))


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 3000), st.integers(1, 3000))
def test_the_widest_adaptive_window_in_closed_form_matches_every_window(h, o):
    from cnncalc.layers.field import adaptive_windows

    assert adaptive_windows(h, o)[0] == widest_by_enumeration(h, o)


@pytest.mark.parametrize("h,o", [(1_000_003, 999_983), (200_005, 200_003), (10**12 + 39, 10**12 - 11)])
def test_adaptive_pooling_with_a_huge_window_period_is_fast_and_right(h, o):
    """Co-prime sizes: the period is H' windows. (200,005 → 200,003: the widest, 3, first occurs
    at window 100,001, past the 100,000 windows the old code looked at, which said 2.)"""
    text = f"input: 1x{h}\nlayers:\n  - {{type: adaptive_avgpool1d, output_size: {o}}}\n"
    t0 = time.perf_counter()
    out = CliRunner().invoke(app, ["analyze", "-", "-f", "json"], input=text)
    assert time.perf_counter() - t0 < 2.0
    assert out.exit_code == 0, out.output
    row = json.loads(out.stdout)["layers"][0]
    if h < 2_000_000:
        assert row["receptive_field"]["size"] == [widest_by_enumeration(h, o)]
    else:  # ⌈(H' − 1 + H)/H'⌉ = ⌈(2·10^12 + 27)/(10^12 − 11)⌉ = 3 (2·(10^12 − 11) < 2·10^12 + 27)
        assert row["receptive_field"]["size"] == [3]


# a tower on a one-pixel axis: strides of up to 2^40 each multiply the jump; transposed strides
# divide it; adaptive pooling and upsampling make it a fraction
step = st.one_of(
    st.integers(1, 40).map(lambda k: f"{{type: conv1d, out_channels: 1, kernel_size: 1, stride: {2**k}}}"),
    st.integers(1, 40).map(lambda k: f"{{type: conv_transpose1d, out_channels: 1, kernel_size: 1, stride: {2**k}}}"),
    st.integers(1, 5).map(lambda s: f"{{type: adaptive_avgpool1d, output_size: {s}}}"),
    st.sampled_from(["{type: upsample, scale_factor: 1.5}", "{type: upsample, scale_factor: 3}",
                     "{type: conv1d, out_channels: 1, kernel_size: 3, padding: 1}"]),
)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(step, st.integers(1, 40)), min_size=1, max_size=4))
def test_receptive_fields_past_every_number_limit_are_refused_or_print(steps):
    """Exact fields up to 2^996 print in every format, fit a float, and read back into diff;
    beyond, the layer that crosses is named (exit 1). Before: a ValueError (int→str past 4,300
    digits) or an OverflowError (float(Fraction)) traceback."""
    lines = ["input: 1x1", "blocks:"]
    for i, (s, _) in enumerate(steps):
        lines += [f"  b{i}:", "    layers:", f"      - {s}"]
    lines.append("layers:")
    lines += [f"  - {{block: b{i}, repeat: {n}}}" for i, (_, n) in enumerate(steps)]
    text = "\n".join(lines) + "\n"
    for args in (["analyze", "-", "-f", "json"], ["analyze", "-"], ["analyze", "-", "-f", "markdown"], ["rf", "-"]):
        t0 = time.perf_counter()
        out = CliRunner().invoke(app, args, input=text)
        assert time.perf_counter() - t0 < 5.0, args
        assert isinstance(out.exception, (SystemExit, type(None))), (args, repr(out.exception))
        if out.exit_code == 1:
            assert re.match(r"<stdin>:\d+:\d+: error: .*(receptive field's (size|jump|start) is .*above the limit "
                            r"2\^996|output shape .* has a size above the limit 2\^40)", out.stderr), out.stderr
            continue
        assert out.exit_code == 0, (args, out.output[-2000:])
        if "json" in args:
            data = json.loads(out.stdout)  # finite numbers only (allow_nan=False writes it)
            for row in data["layers"]:
                rf = row["receptive_field"]
                for v in rf["size"] + rf["jump"] + rf["start"] if rf else []:
                    assert abs(v) < 10**300 and len(str(v)) < 400


# ---- diff's stored reports ------------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def lenet_report() -> dict:
    out = CliRunner().invoke(app, ["analyze", LENET, "-f", "json"])
    return json.loads(out.stdout)


def over_the_limit(kind: str, unit: str, extra: int) -> str:
    """A report text just past one of diff's limits (restated here: the contract under test)."""
    layers, containers, values, axes = 20_000, 320_000, 800_000, 16
    if kind == "layers":
        return json.dumps({"layers": [{"name": str(i)} for i in range(layers + extra)], "totals": {}})
    if kind == "axes":
        return json.dumps({"layers": [{"name": "a", "output_shape": [1] * (axes + extra)}], "totals": {}})
    count = containers + extra if kind == "containers" else values + extra
    return '{"layers": [], "totals": {}, "x": [' + ",".join([unit] * count) + "]}"


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(["containers", "values", "layers", "axes"]), st.sampled_from(["[]", "{}", "[[]]", "0", '"a"']),
       st.integers(1, 1000))
def test_a_report_just_past_a_limit_is_refused_before_it_is_read(tmp_path_factory, kind, unit, extra):
    if kind == "containers" and unit in ("0", '"a"'):
        unit = "[]"
    f = tmp_path_factory.mktemp("r") / "over.json"
    f.write_text(over_the_limit(kind, unit, extra))
    t0 = time.perf_counter()
    out = CliRunner().invoke(app, ["diff", LENET, str(f)])
    assert time.perf_counter() - t0 < 1.5
    assert out.exit_code == 1 and isinstance(out.exception, SystemExit), out.output
    assert out.stderr.startswith(f"{f}: error: ") and "refused" in out.stderr, out.stderr


def test_a_report_past_the_byte_limit_is_refused_unread(tmp_path):
    f = tmp_path / "big.json"
    f.write_bytes(b'{"layers": [], "totals": {}, "pad": "' + b"x" * (16 * 2**20) + b'"}')
    t0 = time.perf_counter()
    out = CliRunner().invoke(app, ["diff", LENET, str(f)])
    assert time.perf_counter() - t0 < 1.0
    assert out.exit_code == 1 and "larger than 16,777,216 bytes are refused" in out.stderr, out.stderr


digits = st.integers(1, 320).flatmap(lambda n: st.tuples(st.just(n), st.integers(10 ** (n - 1), 10**n - 1)))


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.tuples(digits, st.booleans()), st.tuples(digits, st.booleans()), st.sampled_from(["params", "macs"]))
def test_stored_reports_with_huge_integers_compare_exactly_or_are_refused(tmp_path_factory, old, new, metric):
    """Integers of up to 300 digits compare exactly (delta by Python's own arithmetic) and gate
    right; longer ones are refused. Before: OverflowError in compare and in --fail-on-increase."""
    (n_old, a), neg_a = old
    (n_new, b), neg_b = new
    a, b = -a if neg_a else a, -b if neg_b else b
    base = lenet_report()
    d = tmp_path_factory.mktemp("r")
    for name, value in (("old.json", a), ("new.json", b)):
        doc = json.loads(json.dumps(base))
        doc["totals"][metric] = value
        doc["layers"][0][metric] = value
        (d / name).write_text(json.dumps(doc))
    out = CliRunner().invoke(app, ["diff", str(d / "old.json"), str(d / "new.json"), "-f", "json",
                                   "--fail-on-increase", f"{metric}=0"])
    assert isinstance(out.exception, (SystemExit, type(None))), repr(out.exception)
    if max(n_old, n_new) > 300:
        assert out.exit_code == 1 and "not a cnncalc JSON report" in out.stderr and "digits" in out.stderr
        return
    assert out.exit_code == (1 if b > a else 0), out.output[-500:]
    total = json.loads(out.stdout)["totals"][metric]
    assert (total["old"], total["new"], total["delta"]) == (a, b, b - a)
    table = CliRunner().invoke(app, ["diff", str(d / "old.json"), str(d / "new.json")])
    assert table.exit_code == 0 and "Traceback" not in table.output


def test_a_gate_allowance_past_every_total_is_a_usage_error():
    out = CliRunner().invoke(app, ["diff", LENET, LENET, "--fail-on-increase", "macs=" + "9" * 400])
    assert out.exit_code == 2 and "--fail-on-increase" in out.output
