"""The whole-input field check (issue #27 §1): squeeze-and-excitation gates multiply a branch by
its own pooled values; the probe's stand-in numbers must not overflow however many gates there
are, a probe that still gives non-finite numbers or fails is "not checked", never a mismatch,
and "whole" means every pixel the layer as a whole reads (after a strided conv: not the skipped
ones)."""
import pytest

import cnncalc

torch = pytest.importorskip("torch")

from cnncalc import backend as tb  # noqa: E402
from cnncalc.analysis.status import Status  # noqa: E402
from cnncalc.backend import modules  # noqa: E402


def gates(n: int) -> str:
    """(conv 3×3 padding 1, global average pool, sigmoid, mul[x, gate]) repeated n times on 8×32×32."""
    lines, prev = ["input: 8x32x32", "layers:"], "input"
    for i in range(n):
        lines += [f"  - {{name: c{i}, type: conv2d, out_channels: 8, kernel_size: 3, padding: 1, inputs: [{prev}]}}",
                  f"  - {{name: p{i}, type: global_avgpool}}",
                  f"  - {{name: s{i}, type: sigmoid}}",
                  f"  - {{name: m{i}, type: mul, inputs: [c{i}, s{i}]}}"]
        prev = f"m{i}"
    return "\n".join(lines) + "\n"


def field_mismatches(result) -> list[str]:
    """verify's mismatches about receptive fields (training memory through a broadcast gate is
    issue #27 §2, judged elsewhere)."""
    return [m for m in result.mismatches if ": RF " in m]


def analyze(text: str):
    return cnncalc.analyze(cnncalc.parse_spec(text))


class Plain(torch.nn.Module):
    """The stand-in without rescaling (what the probe ran before)."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, *xs):
        return self.inner(*xs)


class NaN(Plain):
    """A stand-in whose numbers are all NaN."""

    def forward(self, *xs):
        return self.inner(*xs) * float("nan")


@pytest.mark.parametrize("n", [9, 24])
def test_many_gates_verify_their_whole_fields(n):
    r = analyze(gates(n))
    t = tb.kit()
    rows, whole, skipped = tb.probe_plan(r)
    assert not skipped and rows == [0]  # c0 is a plain 3×3 field; every row after the first gate is whole
    assert [r.layers[i].name for i in whole] == [row.name for row in r.layers[1:]]
    checks = tb.measure_counts(r, tb.build_model(r, t), torch.randn(r.input_shape), t)
    for idx in whole:
        checks[idx].rf_whole = tb.probe_whole(r, idx, t)
    assert all(checks[i].rf_whole is True for i in whole), [r.layers[i].name for i in whole if checks[i].rf_whole is not True]
    assert tb.compare(r, checks) == []


def test_without_rescaling_the_ninth_gate_overflows_and_is_not_checked_never_a_mismatch(monkeypatch):
    # the stand-ins as they were: values square at each gate; float64 overflows past 8 gates
    monkeypatch.setattr(modules, "Rescaled", Plain)
    r = analyze(gates(9))
    x = torch.ones((1, 1, 32, 32), dtype=torch.float64)
    assert not bool(torch.isfinite(tb.probe_model(r, len(r.layers) - 1, tb.kit())(x)).all())
    got = tb.probe_whole(r, len(r.layers) - 1, tb.kit())
    assert isinstance(got, Status) and got.level == "not_checked" and got.reason == "probe_failed", got
    assert got.detail.startswith("not checked: ")


def test_a_probe_forced_to_nan_is_not_checked(monkeypatch):
    monkeypatch.setattr(modules, "Rescaled", NaN)
    r = analyze(gates(2))
    _, whole, _ = tb.probe_plan(r)
    got = tb.probe_whole(r, whole[-1], tb.kit())
    assert isinstance(got, Status) and got.reason == "probe_failed" and got.detail.startswith("not checked: ")
    (measured,) = tb.probe_rf(r, [0], tb.kit()).values()
    assert isinstance(measured, Status) and measured.reason == "probe_failed"
    result = tb.verify_report(r, tb.VerifyOptions(device="cpu", check_only=True))
    assert field_mismatches(result) == []
    notes = {row.name: c.rf_note for row, c in zip(r.layers, result.checks)}
    assert all(n and n.startswith("not checked: ") for n in notes.values()), notes
    assert result.rf_summary()["reason_codes"] == {"probe_failed": len(r.layers)}
    assert result.rf_summary()["probed"] == 0 and result.rf_summary()["not_probed"] == len(r.layers)


def test_a_failing_probe_is_not_checked(monkeypatch):
    class Broken(Plain):
        def forward(self, *xs):
            raise RuntimeError("a stand-in that fails")

    monkeypatch.setattr(modules, "Rescaled", Broken)
    r = analyze(gates(1))
    got = tb.probe_whole(r, 3, tb.kit())
    assert isinstance(got, Status) and got.reason == "probe_failed" and "a stand-in that fails" in got.detail


STRIDED_ATTENTION = """input: 4x16x16
layers:
  - {name: c, type: conv2d, out_channels: 8, kernel_size: 1, stride: 2}
  - {name: att, type: self_attention, num_heads: 2}
"""


def test_attention_after_a_strided_conv_is_whole():
    # the 1×1 stride-2 conv reads the even pixels only; every attention unit reads all of those
    # (and none of the odd ones, which no unit of the layer reads): whole by the definition
    r = analyze(STRIDED_ATTENTION)
    assert [f.whole for f in r.layer("att").receptive_field] == [True, True]
    model = tb.probe_model(r, 1, tb.kit())
    x = torch.ones((1, 1, 16, 16), dtype=torch.float64, requires_grad=True)
    (g,) = torch.autograd.grad(model(x, stop=1)[0, 0, 3, 5], x)
    read = g[0, 0] != 0
    assert read[::2, ::2].all() and not read[1::2].any() and not read[:, 1::2].any()  # 8 of 16 per axis
    assert tb.probe_whole(r, 1, tb.kit()) is True
    result = tb.verify_report(r, tb.VerifyOptions(device="cpu", check_only=True))
    assert field_mismatches(result) == []
    assert [c.rf_whole for c in result.checks] == [None, True]


def test_a_unit_that_misses_part_of_the_union_is_not_whole():
    # unit i of m reads x[i−3..i+3]: the first unit reads 0..3, the last 37..40, the layer 0..40
    from dataclasses import replace

    r = analyze("input: 2x41\nlayers:\n"
                "  - {name: a, type: conv1d, out_channels: 2, kernel_size: 4, padding: [[3, 0]], inputs: [input]}\n"
                "  - {name: b, type: conv1d, out_channels: 2, kernel_size: 4, padding: [[0, 3]], inputs: [input]}\n"
                "  - {name: m, type: mul, inputs: [a, b]}\n")
    row = r.layer("m")
    row.receptive_field = [replace(f, whole=True) for f in row.receptive_field]  # a wrong rule
    assert tb.probe_whole(r, row.index, tb.kit()) is False


@pytest.mark.slow
@pytest.mark.parametrize("name", ["mobilenet_v3_large", "hybrid_attention", "resnet18"])
def test_fast_examples_verify_every_field_with_the_probe_on(name):
    # mobilenet_v3_large raised dozens of "RF whole input analytic=yes torch=no" before (#27 §1)
    import os

    from conftest import EXAMPLES

    r = cnncalc.analyze(cnncalc.load_spec(os.path.join(EXAMPLES, f"{name}.yaml")))
    result = tb.verify_report(r, tb.VerifyOptions(device="cpu", check_only=True))
    assert result.mismatches == [], result.mismatches
    assert result.rf_summary()["not_probed"] == 0 and result.rf_summary()["probed"] > 0
