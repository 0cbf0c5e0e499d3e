"""Receptive fields through merges, against torch's gradients: a merge reads the union of its
inputs' windows; a broadcast global gate (squeeze-and-excitation) makes every unit read the
whole input while the units keep the spacing of the full-resolution path."""
import pytest

from conftest import analyze_text

torch = pytest.importorskip("torch")

from cnncalc import backend as tb  # noqa: E402


def union_spec(merge: str) -> str:
    # unit i of a reads x[i−3..i], of b x[i..i+3]: together x[i−3..i+3], 7 wide, centred on i
    return ("input: 2x41\nlayers:\n"
            "  - {name: a, type: conv1d, out_channels: 2, kernel_size: 4, padding: [[3, 0]], inputs: [input]}\n"
            "  - {name: b, type: conv1d, out_channels: 2, kernel_size: 4, padding: [[0, 3]], inputs: [input]}\n"
            f"  - {{name: m, type: {merge}, inputs: [a, b]}}\n")


@pytest.mark.parametrize("merge", ["add", "mul", "concat"])
def test_merge_reads_the_union_of_its_inputs(merge):
    r = analyze_text(union_spec(merge))
    (f,) = r.layer("m").receptive_field
    assert (f.size, f.jump, f.start, f.exact) == (3 + 1 + 3, 1, 0, True)
    assert tb.probe_rf(r, [2], tb.kit())[2] == ((7,), (1,), (0,))


SE = """
input: 8x32x32
blocks:
  se:
    layers:
      - {name: x, type: identity}
      - {name: pool, type: adaptive_avgpool2d, output_size: 1}
      - {name: fc, type: conv2d, out_channels: 8, kernel_size: 1}
      - {name: gate, type: sigmoid}
      - {name: scaled, type: mul, inputs: [gate, x]}
layers:
  - {name: c1, type: conv2d, out_channels: 8, kernel_size: 3, stride: 2, padding: 1}
  - {block: se, name: se1}
  - {name: c2, type: conv2d, out_channels: 8, kernel_size: 3, padding: 1}
  - {block: se, name: se2}
  - {name: c3, type: conv2d, out_channels: 8, kernel_size: 3}
"""


def input_gradient(report, layer: str, unit: tuple[int, ...]):
    idx = report.layer(layer).index
    model = tb.probe_model(report, idx, tb.kit())
    x = torch.ones((1, 1, *report.input_shape[2:]), dtype=torch.float64, requires_grad=True)
    out = model(x, stop=idx)
    (grad,) = torch.autograd.grad(out[(0, slice(None), *unit)].sum(), x)
    return grad.abs().sum(dim=(0, 1))


def test_squeeze_excitation_gate_makes_the_field_whole_and_keeps_the_spacing():
    r = analyze_text(SE)
    for name in ("se1.scaled", "c2", "se2.scaled", "c3"):
        fields = r.layer(name).receptive_field
        # every unit reads all 32 input pixels (plus c1's one pixel of padding): never more than that
        assert [(f.whole, f.size, f.jump) for f in fields] == [(True, 1 + 32, 2)] * 2, name
    assert r.layer("c1").receptive_field[0].whole is False
    for unit in [(0, 0), (5, 9), (13, 13)]:
        assert bool((input_gradient(r, "c3", unit) > 0).all()), unit  # torch: the whole 32×32 input
    units = [r.layer("c3").output_shape[2], r.layer("c1").output_shape[2]]
    assert units == [14, 16]  # and the units stay 2 input pixels apart: 16 → 14 after a 3×3 valid conv


def test_rf_unit_of_a_whole_field_is_the_whole_input():
    from cnncalc.analysis.unit_field import unit_field

    r = analyze_text(SE)
    for unit in [(0, 0), (13, 2)]:
        axes = unit_field(r, "c3", unit)
        assert [(a["from"], a["to"], a["clipped"]) for a in axes] == [(-1, 31, [0, 31])] * 2


def test_concat_along_a_spatial_axis_is_marked_approximate():
    r = analyze_text("input: 1x8x8\nlayers:\n  - {name: a, type: conv2d, out_channels: 1, kernel_size: 3, padding: 1}\n"
                     "  - {name: c, type: concat, dim: 3, inputs: [a, input]}\n")
    rows, cols = r.layer("c").receptive_field
    assert rows.exact and not cols.exact  # units past the seam (column 8 on) read other positions


def test_verify_checks_whole_fields_and_names_what_it_did_not_probe():
    r = analyze_text(SE)
    result = tb.verify_report(r, tb.VerifyOptions(device="cpu", repeat=1, warmup=0))
    assert result.ok, result.mismatches
    checks = {row.name: c for row, c in zip(r.layers, result.checks)}
    whole = [n for n in checks if n not in ("c1", "se1.x")]
    assert [n for n, c in checks.items() if c.rf_whole] == whole
    assert checks["c1"].rf == checks["se1.x"].rf == ((3, 3), (2, 2), (0, 0))
    assert result.rf_summary() == {"probed": 13, "not_probed": 0, "reasons": {}, "reason_codes": {}}


def test_a_wrong_whole_input_claim_is_a_mismatch():
    from dataclasses import replace

    r = analyze_text(union_spec("add"))
    row = r.layer("m")
    row.receptive_field = [replace(f, whole=True) for f in row.receptive_field]  # simulate a wrong rule
    assert tb.probe_whole(r, row.index, tb.kit()) is False
    result = tb.verify_report(r, tb.VerifyOptions(device="cpu", repeat=1, warmup=0))
    assert "m: RF whole input analytic=yes torch=no" in result.mismatches


def test_start_after_upsampling_is_marked_an_estimate():
    # the case: transposed k2 s2 then conv k3 s2: unit i reads inputs [i, i+1] (start 0.5);
    # the average-line intercept is 0.25. Units after a sub-pixel jump sit unevenly: start is an estimate.
    r = analyze_text("input: 1x16\nlayers:\n  - {type: conv_transpose1d, out_channels: 1, kernel_size: 2, stride: 2}\n"
                     "  - {type: conv1d, out_channels: 1, kernel_size: 3, stride: 2}\n")
    (f,) = r.layers[1].receptive_field
    assert (f.size, f.jump, f.even) == (2, 1, False)
    assert r.layers[1].rf_json()["start_exact"] == [False]
    (_, _, (start,)) = tb.probe_rf(r, [1], tb.kit())[1]
    assert start == 0.5 and f.start != start  # torch's first unit; not compared by verify
    assert tb.verify_report(r, tb.VerifyOptions(device="cpu", repeat=1, warmup=0)).ok


def test_a_merge_of_offset_windows_after_upsampling_is_approximate():
    # found by the 10,000-network run: after ×2 nearest the units pair up, so windows offset by
    # one unit cover 2 or 3 input pixels depending on the unit; the continuous union is no answer
    r = analyze_text("input: 1x12\nlayers:\n  - {name: up, type: upsample, scale_factor: 2}\n"
                     "  - {name: a, type: conv1d, out_channels: 1, kernel_size: 3, padding: [[1, 0]], inputs: [up]}\n"
                     "  - {name: b, type: conv1d, out_channels: 1, kernel_size: 3, padding: [[0, 1]], inputs: [up]}\n"
                     "  - {name: m, type: add, inputs: [a, b]}\n")
    assert r.layer("a").receptive_field[0].exact and not r.layer("m").receptive_field[0].exact


def test_probe_memory_estimate_by_hand():
    from cnncalc.backend.probe import _probe_bytes

    r = analyze_text("input: 3x10x10\nlayers:\n  - {name: a, type: conv2d, out_channels: 8, kernel_size: 3}\n"
                     "  - {name: b, type: conv2d, out_channels: 8, kernel_size: 3}\n")
    # one channel, float64: the input (10·10, held by the caller) + a (8·8) + b (6·6) alive at once = 200;
    # twice (values and gradients), the input and its gradient, three of the largest tensor (the input)
    assert _probe_bytes(r, 1) == 8 * (2 * (100 + 64 + 36) + 2 * 100 + 3 * 100)
