"""Issue #28 §3: one conditional unit. A chunk or split left out by `when:` lets its pieces
NAME.0, NAME.1, … stand for its input (as a left-out layer's name does), and a left-out block
use its outputs NAME.OUTPUT; so ShuffleNetV2's stride-1 unit (halves) and stride-2 unit (both
branches read the input) are one block. Judged against torchvision's InvertedResidual, written
here, at three input sizes, names included."""
import pytest

import cnncalc

from conftest import assert_located

SHUFFLE = """
name: shuffle_one_unit
input: 24x32x32
blocks:
  branch1:                # stride 2 only: depthwise 3x3 s2, 1x1
    args: {c: null}
    layers:
      - {name: "0", type: conv2d, out_channels: "${in.channels}", kernel_size: 3, stride: 2, padding: 1,
         groups: "${in.channels}", bias: false}
      - {name: "1", type: batchnorm2d}
      - {name: "2", type: conv2d, out_channels: $c, kernel_size: 1, bias: false}
      - {name: "3", type: batchnorm2d}
      - {name: "4", type: relu}
  unit:
    args: {c: null, s: 1}
    layers:
      - {name: split, type: chunk, chunks: 2, when: "${s == 1}"}      # left out: split.0 and split.1 are the input
      - {name: branch1, block: branch1, inputs: [split.0], args: {c: $c}, when: "${s != 1}"}  # left out: split.0
      - {name: branch2.0, type: conv2d, inputs: [split.1], out_channels: $c, kernel_size: 1, bias: false}
      - {name: branch2.1, type: batchnorm2d}
      - {name: branch2.2, type: relu}
      - {name: branch2.3, type: conv2d, out_channels: $c, kernel_size: 3, stride: $s, padding: 1, groups: $c,
         bias: false}
      - {name: branch2.4, type: batchnorm2d}
      - {name: branch2.5, type: conv2d, out_channels: $c, kernel_size: 1, bias: false}
      - {name: branch2.6, type: batchnorm2d}
      - {name: branch2.7, type: relu}
      - {name: cat, type: concat, inputs: [branch1, branch2.7]}
      - {name: shuffle, type: channel_shuffle, groups: 2}
layers:
  - {block: unit, name: stage2, repeat: 3, args: {c: 16}, first: {args: {s: 2}}}
  - {block: unit, name: stage3, repeat: 2, args: {c: 32}, first: {args: {s: 2}}}
"""


def shufflenet_stages():
    """torchvision.models.shufflenetv2.InvertedResidual (stride 1 and 2, copied in
    tests/reference_models.py), two stages."""
    pytest.importorskip("torch")
    from reference_models import InvertedResidual
    from torch import nn

    model = nn.Sequential()
    model.add_module("stage2", nn.Sequential(InvertedResidual(24, 32, 2), InvertedResidual(32, 32, 1),
                                             InvertedResidual(32, 32, 1)))
    model.add_module("stage3", nn.Sequential(InvertedResidual(32, 64, 2), InvertedResidual(64, 64, 1)))
    return model.eval()


@pytest.mark.parametrize("size", [32, 33, 57])
def test_one_block_is_both_shufflenet_units(size):
    torch = pytest.importorskip("torch")
    from torch import nn
    from torch.utils.flop_counter import FlopCounterMode

    model = shufflenet_stages()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        out = model(torch.randn(1, 24, size, size))
    report = cnncalc.analyze(cnncalc.parse_spec(SHUFFLE), input_shape=(24, size, size))
    assert report.layer(report.outputs[0]).output_shape == tuple(out.shape)
    assert report.totals["params"] == sum(p.numel() for p in model.parameters())
    assert report.totals["flops"] == counter.get_total_flops()
    weighted = [n for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.BatchNorm2d))]
    assert [r.name for r in report.layers if r.type in ("conv2d", "batchnorm2d")] == weighted
    # by hand: the stride-2 entry has branch1, the stride-1 units none
    names = {r.name for r in report.layers}
    assert "stage2.0.branch1.0" in names and not any(n.startswith("stage2.1.branch1") for n in names)


def test_a_left_out_split_and_block_use_stand_for_their_input():
    text = """
input: 6x4x4
blocks:
  two:
    outputs: [a, b]
    layers:
      - {name: a, type: relu}
      - {name: b, type: sigmoid, inputs: [input]}
args: {on: false}
layers:
  - {name: s, type: split, sizes: [2, 4], when: $on}
  - {name: t, block: two, when: $on}
  - {name: cat, type: concat, inputs: [s.0, s.1, t.a, t.b]}
"""
    report = cnncalc.analyze(cnncalc.parse_spec(text))
    assert report.layer("cat").output_shape == (1, 4 * 6, 4, 4)  # by hand: four times the 6-channel input
    on = cnncalc.analyze(cnncalc.parse_spec(text, overrides={"on": True}))
    assert on.layer("cat").output_shape == (1, 2 + 4 + 4 + 4, 4, 4)  # by hand: 2, 4, then t's two 4-channel outputs


@pytest.mark.parametrize("text,message,line_has", [
    (SHUFFLE.replace("inputs: [split.1]", "inputs: [split.2]"), "unknown layer 'split.2'", "split.2"),
    (SHUFFLE.replace('when: "${s == 1}"', 'when: "${s == 1}", inputs: [nope]'), "unknown layer 'nope'", "nope"),
])
def test_misuse_is_located(text, message, line_has):
    assert_located(text, message, line_has)
