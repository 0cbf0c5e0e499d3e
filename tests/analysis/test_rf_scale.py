"""A scale (one number times every value) keeps the fields per channel: a slice after it reads
its own branch's window, as torch's probe sees it."""
import pytest

from conftest import analyze_text

SPEC = """input: 4x16x16
layers:
  - {name: a, type: conv2d, out_channels: 4, kernel_size: 1, inputs: [input]}
  - {name: b, type: conv2d, out_channels: 4, kernel_size: 5, padding: 2, inputs: [input]}
  - {name: cat, type: concat, inputs: [a, b]}
  - {name: s, type: scale, factor: 0.5}
  - {name: sl, type: narrow, start: 0, length: 4}
"""


def test_a_slice_after_scale_reads_its_branchs_window():
    report = analyze_text(SPEC)
    sl = report.layer("sl")
    assert [r.size for r in sl.receptive_field] == [1, 1]  # the 1×1 branch, not the concat's 5×5 union
    levels = {k: s.level for k, s in report.field_statuses()["sl"].items()}
    assert levels == {"receptive_field": "exact", "receptive_field_start": "exact"}


def test_torch_agrees():
    pytest.importorskip("torch")
    from cnncalc import backend as tb

    result = tb.verify_report(analyze_text(SPEC), tb.VerifyOptions(device="cpu", repeat=1, warmup=0))
    assert result.ok and not result.mismatches
