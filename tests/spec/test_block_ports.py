"""Blocks with several inputs and outputs, arguments per repetition, `repeat: 0` and argument
defaults that are expressions (issue #28 §2–3). Each network is also written as a torch model
here, and judged by torch: output shapes, parameters and FlopCounterMode's FLOPs."""
import pytest

from conftest import analyze_text, assert_located

UNET = """
name: unet_ports
input: 3x32x32
blocks:
  down:
    args: {c: null}
    layers:
      - {type: conv2d, out_channels: $c, kernel_size: 3, padding: 1}
      - {type: relu}
  up:
    inputs: [x, skip]
    args: {c: null}
    layers:
      - {name: up, type: conv_transpose2d, out_channels: $c, kernel_size: 2, stride: 2, inputs: [x]}
      - {name: cat, type: concat, inputs: [up, skip]}
      - {type: conv2d, out_channels: $c, kernel_size: 3, padding: 1}
      - {type: relu}
layers:
  - {block: down, name: d1, args: {c: 8}}
  - {type: maxpool2d, kernel_size: 2}
  - {block: down, name: d2, args: {c: 16}}
  - {type: maxpool2d, kernel_size: 2}
  - {block: down, name: mid, args: {c: 32}}
  - {block: up, name: u2, inputs: [mid, d2], args: {c: 16}}
  - {block: up, name: u1, inputs: [u2, d1], args: {c: 8}}
  - {type: conv2d, out_channels: 2, kernel_size: 1}
"""

HRNET = """
name: hrnet_ports
input: 3x32x32
blocks:
  basic:
    args: {c: null}
    layers:
      - {type: conv2d, out_channels: $c, kernel_size: 3, padding: 1, bias: false}
      - {type: batchnorm2d}
      - {name: relu, type: relu}
  fuse:
    inputs: [hi, lo]
    outputs: [hi_out, lo_out]
    layers:
      - {block: basic, name: hb, inputs: [hi], args: {c: 8}}
      - {block: basic, name: lb, inputs: [lo], args: {c: 16}}
      - {name: lo2hi, type: conv2d, out_channels: 8, kernel_size: 1, bias: false, inputs: [lb]}
      - {name: lo2hi_up, type: upsample, scale_factor: 2, mode: nearest}
      - {name: hi_sum, type: add, inputs: [hb, lo2hi_up]}
      - {name: hi_out, type: relu}
      - {name: hi2lo, type: conv2d, out_channels: 16, kernel_size: 3, stride: 2, padding: 1, bias: false, inputs: [hb]}
      - {name: lo_sum, type: add, inputs: [hi2lo, lb]}
      - {name: lo_out, type: relu}
layers:
  - {name: stem, type: conv2d, out_channels: 8, kernel_size: 3, padding: 1}
  - {name: down, type: conv2d, out_channels: 16, kernel_size: 3, stride: 2, padding: 1}
  - {block: fuse, name: m1, inputs: [stem, down]}
  - {block: fuse, name: m2, inputs: [m1.hi_out, m1.lo_out]}
  - {block: fuse, name: m3, inputs: [m2.hi_out, m2.lo_out]}
  - {name: lo_up, type: upsample, scale_factor: 2, mode: nearest, inputs: [m3.lo_out]}
  - {name: head, type: concat, inputs: [m3.hi_out, lo_up]}
outputs: [head, m3.lo_out]
"""

TCN = """
input: 4x64
blocks:
  tcn:
    args: {d: 1, c: 4, pad: "${2 * d}"}
    layers:
      - {type: conv1d, out_channels: $c, kernel_size: 3, dilation: $d, padding: $pad}
      - {type: relu}
layers:
  - {block: tcn, name: t, repeat: 4, each: {d: [1, 2, 4, 8]}}
  - {block: tcn, name: skipped, repeat: 0}
  - {type: conv1d, out_channels: 2, kernel_size: 1}
"""


def torch_judge(report, model, shape):
    """Output shapes, params and FLOPs of `model` on a batch-1 input, against the report."""
    torch = pytest.importorskip("torch")
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.randn(1, *shape)
    with FlopCounterMode(display=False) as counter:
        out = model(x)
    outs = out if isinstance(out, tuple) else (out,)
    assert [tuple(o.shape) for o in outs] == [report.layer(n).output_shape for n in report.outputs]
    assert sum(p.numel() for p in model.parameters()) == report.totals["params"]
    assert counter.get_total_flops() == report.totals["flops"]


def test_unet_up_steps_read_the_path_and_a_skip():
    report = analyze_text(UNET)
    assert report.layer("u2.cat").inputs == ["u2.up", "d2.relu_1"]
    assert report.layer("u1.up").inputs == ["u2.relu_1"]
    torch = pytest.importorskip("torch")
    from torch import nn

    def down(i, o):
        return nn.Sequential(nn.Conv2d(i, o, 3, padding=1), nn.ReLU())

    class Up(nn.Module):
        def __init__(self, i, skip, o):
            super().__init__()
            self.up = nn.ConvTranspose2d(i, o, 2, stride=2)
            self.conv = nn.Sequential(nn.Conv2d(o + skip, o, 3, padding=1), nn.ReLU())

        def forward(self, x, skip):
            return self.conv(torch.cat([self.up(x), skip], 1))

    class UNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.d1, self.d2, self.mid = down(3, 8), down(8, 16), down(16, 32)
            self.u2, self.u1 = Up(32, 16, 16), Up(16, 8, 8)
            self.head, self.pool = nn.Conv2d(8, 2, 1), nn.MaxPool2d(2)

        def forward(self, x):
            d1 = self.d1(x)
            d2 = self.d2(self.pool(d1))
            mid = self.mid(self.pool(d2))
            return self.head(self.u1(self.u2(mid, d2), d1))

    torch_judge(report, UNet(), (3, 32, 32))


def test_hrnet_fusion_modules_give_two_outputs():
    report = analyze_text(HRNET)
    assert report.outputs == ["head", "m3.lo_out"]
    assert report.layer("m2.hb.conv2d_1").inputs == ["m1.hi_out"] and report.layer("m2.lb.conv2d_1").inputs == ["m1.lo_out"]
    torch = pytest.importorskip("torch")
    from torch import nn

    def basic(c):
        return nn.Sequential(nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU())

    class Fuse(nn.Module):
        def __init__(self):
            super().__init__()
            self.hb, self.lb = basic(8), basic(16)
            self.lo2hi = nn.Conv2d(16, 8, 1, bias=False)
            self.hi2lo = nn.Conv2d(8, 16, 3, stride=2, padding=1, bias=False)

        def forward(self, hi, lo):
            hb, lb = self.hb(hi), self.lb(lo)
            up = nn.functional.interpolate(self.lo2hi(lb), scale_factor=2, mode="nearest")
            return torch.relu(hb + up), torch.relu(self.hi2lo(hb) + lb)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem, self.down = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 16, 3, stride=2, padding=1)
            self.m = nn.ModuleList([Fuse() for _ in range(3)])

        def forward(self, x):
            hi = self.stem(x)
            lo = self.down(hi)
            for m in self.m:
                hi, lo = m(hi, lo)
            return torch.cat([hi, nn.functional.interpolate(lo, scale_factor=2, mode="nearest")], 1), lo

    torch_judge(report, Net().eval(), (3, 32, 32))


def test_each_gives_arguments_per_repetition_and_repeat_0_leaves_a_use_out():
    report = analyze_text(TCN)
    convs = [r for r in report.layers if r.type == "conv1d"]
    assert [r.layer.dilation for r in convs[:4]] == [(1,), (2,), (4,), (8,)]
    assert [r.layer.padding for r in convs[:4]] == [((2, 2),), ((4, 4),), ((8, 8),), ((16, 16),)]  # default ${2 * d}
    assert not any(r.name.startswith("skipped") for r in report.layers)
    assert report.layers[-1].inputs == ["t.3.relu_1"]  # past the left-out use
    pytest.importorskip("torch")
    from torch import nn

    layers = []
    for d in (1, 2, 4, 8):
        layers += [nn.Conv1d(4, 4, 3, dilation=d, padding=2 * d), nn.ReLU()]
    torch_judge(report, nn.Sequential(*layers, nn.Conv1d(4, 2, 1)), (4, 64))


@pytest.mark.parametrize("text,line_has,message", [
    (HRNET.replace("inputs: [stem, down]}", "}"), "name: m1", "reads 2 inputs (hi, lo): bind them with inputs"),
    (HRNET.replace("inputs: [stem, down]}", "inputs: [stem]}"), "name: m1", "reads 2 inputs (hi, lo), the use gives 1"),
    (HRNET.replace("inputs: [m2.hi_out, m2.lo_out]", "inputs: [m2.hi_out, m2.nope]"), "m2.nope", "unknown layer 'm2.nope'"),
    (HRNET.replace("outputs: [hi_out, lo_out]", "outputs: [hi_out, missing]"), "missing",
     "output 'missing' is not one of its layers or inputs"),
    (TCN.replace("each: {d: [1, 2, 4, 8]}", "each: {d: [1, 2]}"), "name: t,", "each.d gives 2 values for repeat: 4"),
    (TCN.replace('pad: "${2 * d}"', 'pad: "${2 * e}"'), "pad:", "unknown argument '$e'"),
])
def test_misuse_is_located(text, line_has, message):
    assert_located(text, message, line_has)
