"""Analytic == torch for every layer case: output shape, params, trainable params, buffers,
FLOPs (torch.utils.flop_counter.FlopCounterMode) and receptive field (gradient probe)."""
import pytest

torch = pytest.importorskip("torch")

from cnncalc import backend as tb  # noqa: E402

from conftest import analyze_text  # noqa: E402
from conftest import parity as verify  # noqa: E402
from layer_cases import CASES, spec_text  # noqa: E402


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_layer_matches_torch(case):
    report = analyze_text(spec_text(case))
    checks, mismatches = verify(report)
    assert mismatches == []
    assert checks[-1].shape == case[4]["shape"]  # the torch side ran and was recorded


def test_mismatch_is_reported():
    report = analyze_text(spec_text(CASES[0]))
    report.layers[0].params += 1  # simulate a wrong rule
    _, mismatches = verify(report, probe=False)
    assert mismatches == [f"conv2d_1: params analytic={8 * 3 * 3 * 3 + 8 + 1:,} torch={8 * 3 * 3 * 3 + 8:,}"]


def test_frozen_and_shared_weights_match_torch():
    report = analyze_text("""
input: 3x16x16
layers:
  - {name: a, type: conv2d, out_channels: 4, kernel_size: 3, trainable: false}
  - {name: b, type: conv2d, inputs: [input], out_channels: 4, kernel_size: 3, share: a}
  - {name: c, type: add, inputs: [a, b]}
""")
    checks, mismatches = verify(report)
    assert mismatches == []
    assert [c.params for c in checks] == [4 * 3 * 9 + 4, 0, 0]
    assert [c.trainable for c in checks] == [0, 0, 0]
    assert report.layers[1].macs == report.layers[0].macs == 4 * 14 * 14 * 27


def test_pure_deform_conv_matches_torchvision():
    ops = pytest.importorskip("torchvision.ops")
    from cnncalc.backend.modules import deform_conv2d

    torch.manual_seed(1)
    x = torch.randn(2, 4, 7, 7, dtype=torch.float64)
    offset = torch.randn(2, 2 * 2 * 9, 7, 7, dtype=torch.float64) * 2
    mask = torch.rand(2, 2 * 9, 7, 7, dtype=torch.float64)
    w = torch.randn(6, 2, 3, 3, dtype=torch.float64)
    b = torch.randn(6, dtype=torch.float64)
    ours = deform_conv2d(x, offset, w, b, (1, 1), (1, 1), (1, 1), mask, 2, 2)
    theirs = ops.deform_conv2d(x, offset, w, b, (1, 1), (1, 1), (1, 1), mask)
    assert torch.allclose(ours, theirs, atol=1e-9)


def test_deform_conv_with_zero_offsets_is_a_convolution():
    from cnncalc.backend.modules import deform_conv2d

    torch.manual_seed(2)
    x = torch.randn(1, 4, 9, 8, dtype=torch.float64)
    w = torch.randn(6, 2, 3, 3, dtype=torch.float64)
    offset = torch.zeros(1, 2 * 9, 5, 4, dtype=torch.float64)
    ours = deform_conv2d(x, offset, w, None, (2, 2), (1, 1), (1, 1), None, 2, 1)
    ref = torch.nn.functional.conv2d(x, w, None, (2, 2), (1, 1), (1, 1), 2)
    assert torch.allclose(ours, ref, atol=1e-12)


def equals_conv(spec: str, conv, load, x_shape) -> bool:
    """Build the one-layer spec, load a plain conv's weights into it, compare outputs."""
    model = tb.build_model(analyze_text(spec), tb.kit())
    with torch.no_grad():
        load(model.layers["l0"], conv)
    x = torch.randn(x_shape)
    return torch.allclose(model(x), conv(x), atol=1e-6)


def test_locally_connected_with_equal_filters_is_a_convolution():
    def load(lc, conv):
        lc.weight.copy_(conv.weight.reshape(1, 2, -1).expand_as(lc.weight))
        lc.bias.copy_(conv.bias.view(2, 1, 1).expand_as(lc.bias))

    assert equals_conv("input: 3x6x6\nlayers:\n  - {type: locally_connected2d, out_channels: 2, kernel_size: 3, "
                       "stride: 2, padding: 1}\n", torch.nn.Conv2d(3, 2, 3, 2, 1), load, (1, 3, 6, 6))


def test_tiled_conv_with_one_tile_is_a_convolution():
    def load(tc, conv):
        tc.weight.copy_(conv.weight.reshape(1, 1, 2, -1))
        tc.bias.copy_(conv.bias)

    assert equals_conv("input: 3x7x7\nlayers:\n  - {type: tiled_conv2d, out_channels: 2, kernel_size: 3, "
                       "tile_size: 1, padding: 1}\n", torch.nn.Conv2d(3, 2, 3, 1, 1), load, (2, 3, 7, 7))
