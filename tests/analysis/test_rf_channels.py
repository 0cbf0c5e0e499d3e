"""Receptive fields marked exact while wrong (issue #27 §3, §4), judged by torch: the real network
(random weights, float64) back-propagated from one output unit; the input pixels with a non-zero
gradient are what that unit reads."""
import pytest

from cnncalc.analysis.status import of_field
from cnncalc.analysis.unit_field import unit_field

from conftest import analyze_text

CONCAT_SLICE = """
input: 2x16x16
layers:
  - {name: a, type: conv2d, out_channels: 2, kernel_size: 1, inputs: [input]}
  - {name: b, type: conv2d, out_channels: 2, kernel_size: 3, padding: 1, inputs: [input]}
  - {name: c, type: concat, inputs: [a, b]}
  - {name: r, type: sigmoid}
  - {name: s, type: chunk, chunks: 2}
  - {name: t, type: conv2d, out_channels: 2, kernel_size: 3, padding: 1, inputs: [s.0]}
  - {name: u, type: channel_shuffle, groups: 2, inputs: [c]}
  - {name: v, type: chunk, chunks: 2}
"""

UNSHUFFLE = """
input: 2x16x16
layers:
  - {name: u, type: pixel_unshuffle, downscale_factor: 2}
  - {name: p, type: pixel_shuffle, upscale_factor: 2}
"""

SE_LINEAR = """
input: 8x16x16
layers:
  - {name: x, type: conv2d, out_channels: 8, kernel_size: 3, padding: 1}
  - {name: pool, type: adaptive_avgpool2d, output_size: 1}
  - {name: fl, type: flatten}
  - {name: fc1, type: linear, out_features: 4}
  - {name: r, type: relu}
  - {name: fc2, type: linear, out_features: 8}
  - {name: g, type: sigmoid}
  - {name: v, type: view, shape: [8, 1, 1]}
  - {name: m, type: mul, inputs: [x, v]}
"""

CROP_GATE = """
input: 2x16x16
layers:
  - {name: x, type: conv2d, out_channels: 2, kernel_size: 7, padding: 3, inputs: [input]}
  - {name: crop, type: zero_pad2d, padding: -7, inputs: [input]}
  - {name: pool, type: adaptive_avgpool2d, output_size: 1}
  - {name: m, type: mul, inputs: [x, pool]}
"""

CHANNELS_LAST = """
input: 4x12x12
layers:
  - {name: c, type: conv2d, out_channels: 4, kernel_size: 3, padding: 1}
  - {name: p, type: permute, dims: [0, 2, 3, 1]}
  - {name: l, type: linear, out_features: 4}
  - {name: q, type: permute, dims: [0, 3, 1, 2]}
  - {name: d, type: conv2d, out_channels: 4, kernel_size: 5, padding: 2, inputs: [input]}
  - {name: m, type: add, inputs: [q, d]}
"""

UPSAMPLE_STRIDE = """
input: 1x16x16
layers:
  - {name: up, type: upsample, scale_factor: 2, mode: nearest}
  - {name: p, type: avgpool2d, kernel_size: 3, stride: 3}
"""


def torch_window(report, layer: str, unit: tuple[int, ...]) -> list[tuple[int, int]]:
    """Per spatial axis, the first and last input pixel whose gradient from `unit` of `layer`
    (summed over the channels) is not zero, in the real network."""
    torch = pytest.importorskip("torch")
    from cnncalc import backend as tb

    torch.manual_seed(0)
    model = tb.build_model(report, tb.kit()).to(dtype=torch.float64).eval()
    idx = report.layer(layer).index
    x = torch.randn(report.input_shape, dtype=torch.float64, requires_grad=True)
    out = model(x, stop=idx)
    (grad,) = torch.autograd.grad(out[(0, slice(None), *unit)].sum(), x)
    g = grad[0].abs().sum(dim=0)
    out_axes = []
    for a in range(g.dim()):
        hit = torch.nonzero(g.sum(dim=tuple(d for d in range(g.dim()) if d != a)) > 0).flatten()
        out_axes.append((int(hit[0]), int(hit[-1])))
    return out_axes


def sizes(report, name):
    return [(r.size, r.exact) for r in report.layer(name).receptive_field]


def test_a_slice_of_a_concat_keeps_only_its_channels_fields():
    r = analyze_text(CONCAT_SLICE)
    assert sizes(r, "c") == [(3, True)] * 2  # the union: a reads 1 pixel, b 3
    assert sizes(r, "s.0") == [(1, True)] * 2  # a's channels only (through the sigmoid)
    assert sizes(r, "s.1") == [(3, True)] * 2
    assert sizes(r, "t") == [(1 + 2, True)] * 2
    # the channel shuffle interleaves a's and b's channels: each half holds both
    assert sizes(r, "v.0") == sizes(r, "v.1") == [(3, True)] * 2
    for name, unit in [("s.0", (7, 7)), ("s.1", (7, 7)), ("t", (7, 7)), ("v.0", (7, 7))]:
        lo_hi = torch_window(r, name, unit)
        assert [hi - lo + 1 for lo, hi in lo_hi] == [int(f.size) for f in r.layer(name).receptive_field], name


def test_the_probe_skips_a_slice_it_cannot_follow_never_a_mismatch():
    pytest.importorskip("torch")
    from cnncalc import backend as tb

    r = analyze_text(CONCAT_SLICE)
    rows, whole, skipped = tb.probe_plan(r)
    # its one-channel stand-ins see both branches: s.0 and what reads it are not probed
    for name in ("s.0", "t"):
        assert skipped[r.layer(name).index].reason == "probe_channels", name
    measured = tb.probe_rf(r, rows, tb.kit())
    assert rows and {r.layers[i].name for i in rows} >= {"a", "b", "c", "s.1", "v.0"}
    for idx, got in measured.items():
        f = r.layers[idx].receptive_field
        assert got == (tuple(x.size for x in f), tuple(x.jump for x in f), tuple(x.start for x in f)), r.layers[idx].name


def test_pixel_shuffle_after_unshuffle_is_not_exact():
    r = analyze_text(UNSHUFFLE)
    assert sizes(r, "u") == [(2, True)] * 2  # one unit reads its 2×2 block over all its channels
    # each output pixel reads one input pixel (the identity): the union rule says 2, marked inexact
    assert torch_window(r, "p", (5, 6)) == [(5, 5), (6, 6)]
    assert of_field(r.layer("p").receptive_field).level == "estimate"


def test_a_gate_written_with_linear_and_view_makes_the_field_whole():
    r = analyze_text(SE_LINEAR)
    f = r.layer("m").receptive_field
    # every unit reads the pool's window: the 16 pixels and x's one pixel of padding each side
    assert [(x.size, x.whole, x.exact) for x in f] == [(1 + 16 + 1, True, True)] * 2
    for unit in [(0, 0), (9, 4)]:
        assert torch_window(r, "m", unit) == [(0, 15), (0, 15)]
        axes = unit_field(r, "m", unit)  # was a traceback
        assert [(a["clipped"], a["exact"]) for a in axes] == [([0, 15], True)] * 2
    from cnncalc import backend as tb

    assert tb.probe_whole(r, r.layer("m").index, tb.kit()) is True  # verify's own check agrees


def test_a_gate_pooled_from_a_crop_does_not_make_units_whole():
    r = analyze_text(CROP_GATE)
    assert [x.whole for x in r.layer("pool").receptive_field] == [True, True]  # it reads pixels 7..8
    f = r.layer("m").receptive_field
    assert [(x.whole, x.exact) for x in f] == [(False, False)] * 2
    for unit in [(0, 0), (3, 3), (15, 12)]:
        want = torch_window(r, "m", unit)
        axes = unit_field(r, "m", unit)
        # unit u reads x's u−3..u+3 (clipped) and the gate's 7..8: traced exactly
        assert [tuple(a["clipped"]) for a in axes] == want, unit
        assert want == [(min(max(u - 3, 0), 7), max(min(u + 3, 15), 8)) for u in unit]


def test_rf_unit_through_a_channels_last_subgraph():
    r = analyze_text(CHANNELS_LAST)
    for name, unit in [("q", (0, 5)), ("m", (0, 5)), ("m", (6, 11))]:
        axes = unit_field(r, name, unit)
        assert [tuple(a["clipped"]) for a in axes] == torch_window(r, name, unit), (name, unit)
        assert all(a["exact"] and a["size"] == a["to"] - a["from"] + 1 for a in axes)


def test_a_stride_that_is_no_multiple_of_the_upsampling_is_not_exact():
    r = analyze_text(UPSAMPLE_STRIDE)
    # unit o reads upsampled 3o..3o+2, input ⌊3o/2⌋..⌊(3o+2)/2⌋: 0..1, 1..2, 3..4, 4..5: jumps 1, 2, 1
    firsts = [torch_window(r, "p", (o, 0))[0][0] for o in range(4)]
    assert firsts == [3 * o // 2 for o in range(4)] == [0, 1, 3, 4]
    assert of_field(r.layer("p").receptive_field).level == "estimate"
    assert of_field(r.layer("up").receptive_field).level == "exact"


CHUNK = """
input: 6x8x8
layers:
  - {name: s, type: chunk, chunks: 4}
  - {name: y, type: relu, inputs: [s.2]}
"""


def test_chunk_into_more_pieces_than_torch_returns_is_legal_until_used():
    r = analyze_text(CHUNK)  # torch.chunk(6 channels, 4) gives 3 pieces of 2
    assert [r.layer(f"s.{i}").output_shape[1] for i in range(3)] == [2, 2, 2]
    assert not any("s.3" in w.message for w in r.warnings)
    from conftest import assert_located

    assert_located(CHUNK.replace("s.2]", "s.3]"), "there is no piece 3", "name: y")


@pytest.mark.slow  # the counts measured in torch: seconds on 2 loaded cores
def test_a_missing_piece_verifies_in_torch():
    pytest.importorskip("torch")
    from conftest import parity

    checks, mismatches = parity(analyze_text(CHUNK))  # shapes, counts and fields, the empty piece too
    assert checks and not mismatches, mismatches


CROP_THEN_ATTENTION = """
input: 2x16x16
layers:
  - {name: crop, type: zero_pad2d, padding: -4}
  - {name: c, type: conv2d, out_channels: 2, kernel_size: 3, padding: 1}
  - {name: a, type: self_attention, num_heads: 1}
"""


def test_a_whole_window_after_a_crop_reads_only_what_the_crop_kept():
    r = analyze_text(CROP_THEN_ATTENTION)
    # the crop keeps pixels 4..11; the conv's padding positions are pixels 3 and 12, which it removed
    for unit in [(0, 0), (2, 3), (7, 7)]:
        axes = unit_field(r, "a", unit)
        assert [(a["from"], a["to"], tuple(a["clipped"]), a["padding"]) for a in axes] == [(3, 12, (4, 11), 2)] * 2
        assert torch_window(r, "a", unit) == [(4, 11)] * 2
