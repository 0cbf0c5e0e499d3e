"""padding: same on a strided conv is TensorFlow's SAME, as timm's Conv2dSame (and every Keras
port) computes it. timm's code is copied here faithfully (timm/layers/padding.py and
conv2d_same.py), so the suite needs no timm: cnncalc's shapes, fields' inputs and the built
module's outputs are judged against it over a grid of sizes, kernels, strides and dilations."""
import math

import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

import cnncalc  # noqa: E402
from cnncalc.backend.build import build_model  # noqa: E402


# ---- timm/layers/padding.py and timm/layers/conv2d_same.py (faithful copy) -------------------------
def get_same_padding(x: int, kernel_size: int, stride: int, dilation: int):
    if isinstance(x, torch.Tensor):
        return torch.clamp(((x / stride).ceil() - 1) * stride + (kernel_size - 1) * dilation + 1 - x, min=0)
    else:
        return max((math.ceil(x / stride) - 1) * stride + (kernel_size - 1) * dilation + 1 - x, 0)


def pad_same(x, kernel_size, stride, dilation=(1, 1), value: float = 0):
    ih, iw = x.size()[-2:]
    pad_h = get_same_padding(ih, kernel_size[0], stride[0], dilation[0])
    pad_w = get_same_padding(iw, kernel_size[1], stride[1], dilation[1])
    x = F.pad(x, (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2), value=value)
    return x


def conv2d_same(x, weight, bias=None, stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups: int = 1):
    x = pad_same(x, weight.shape[-2:], stride, dilation)
    return F.conv2d(x, weight, bias, stride, (0, 0), dilation, groups)


class Conv2dSame(nn.Conv2d):
    """ Tensorflow like 'SAME' convolution wrapper for 2D convolutions
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1, bias=True):
        super().__init__(in_channels, out_channels, kernel_size, stride, 0, dilation, groups, bias)

    def forward(self, x):
        return conv2d_same(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)
# ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("k,s,d", [(1, 2, 1), (2, 2, 1), (3, 2, 1), (3, 3, 1), (4, 2, 1), (5, 2, 1), (3, 2, 2), (5, 3, 1),
                                   (3, 1, 1)])
def test_same_padding_equals_timm_conv2d_same(k, s, d):
    torch.manual_seed(0)
    for h, w in [(7, 8), (9, 9), (10, 13), (16, 15), (17, 11)]:
        text = (f"input: 2x{h}x{w}\nlayers:\n  - {{name: c, type: conv2d, out_channels: 3, kernel_size: {k}, "
                f"stride: {s}, dilation: {d}, padding: same}}\n")
        report = cnncalc.analyze(cnncalc.parse_spec(text))
        ref = Conv2dSame(2, 3, k, s, dilation=d)
        x = torch.randn(1, 2, h, w)
        want = ref(x)
        assert report.layers[-1].output_shape == tuple(want.shape), (h, w)
        assert (want.shape[2], want.shape[3]) == (math.ceil(h / s), math.ceil(w / s))
        model = build_model(report)
        # one module whose weight and bias keep a plain conv's keys (no padding module before it)
        model.load_state_dict({f"layers.l0.{k}": v for k, v in ref.state_dict().items()}, strict=True)
        assert torch.allclose(model(x), want, atol=1e-6), (h, w, k, s, d)


def test_the_field_follows_the_padding_before():
    # 3×3 stride 2 on 8 pixels pads 0 before: unit 0's window covers pixels 0..2, centre 1;
    # on 7 pixels it pads 1 before: the window covers −1..1, centre 0
    for size, start in [(8, 1), (7, 0)]:
        text = (f"input: 1x{size}x{size}\nlayers:\n  - {{type: conv2d, out_channels: 1, kernel_size: 3, stride: 2, "
                "padding: same}\n")
        (f, _) = cnncalc.analyze(cnncalc.parse_spec(text)).layers[-1].receptive_field
        assert (f.size, f.jump, f.start) == (3, 2, start)  # centre of unit 0: (3 − 1)/2 − pad before
