"""Receptive fields that were marked exact while wrong (issue #27 §3), each against hand
arithmetic and the gradient probe."""
import pytest

import cnncalc

from conftest import analyze_text

TWO_ATTENTIONS = """
input: 8x9x9
layers:
  - {type: conv2d, out_channels: 8, kernel_size: 3, stride: 2}
  - {name: a1, type: self_attention, num_heads: 2}
  - {name: a2, type: self_attention, num_heads: 2}
"""


def test_a_whole_field_is_not_spread_again():
    report = analyze_text(TWO_ATTENTIONS)
    # the conv's 4 units read 0..2, 2..4, 4..6, 6..8: after attention every unit reads their union 0..8
    for name in ("a1", "a2"):
        f = report.layer(name).receptive_field
        assert [(r.size, r.start, r.whole) for r in f] == [(9, 4, True)] * 2, name
    pytest.importorskip("torch")
    opts = cnncalc.backend.VerifyOptions(device="cpu", repeat=1, warmup=0, check_only=True)
    result = cnncalc.backend.verify_report(report, opts)
    assert result.ok, result.mismatches
    assert all(c.rf_whole is True for c in result.checks if c.name in ("a1", "a2"))
