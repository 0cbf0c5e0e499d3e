"""Issue #25 §4 (round two's open cases): adaptive pooling with a huge window period, receptive
fields too large to print or to hold in a float, stored diff reports with huge integers and
oversized or overfull reports. Each generated member ends in a plain located message (exit 1)
or a correct result, never a traceback, within a time bound."""
from __future__ import annotations

import json
import os
import re
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from cnncalc.cli import app

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
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


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
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
