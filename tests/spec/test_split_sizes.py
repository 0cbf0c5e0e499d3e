"""Issue #28 §3: `split` sizes read the input's size (`${in.channels // 2}`) or another
tensor's (`${LAYER.channels}`), evaluated when the analysis reaches the split, so one spec
follows every channel count torch accepts; and `repeat: 1` keeps the `.0` index of torch's
nn.Sequential. Judged against torch models written here, at three input sizes."""
import pytest

import cnncalc

from conftest import assert_located

UNEVEN = """
name: uneven_split
input: 6x8x8
layers:
  - {name: s, type: split, sizes: ["${in.channels // 3}", "${in.channels - in.channels // 3}"]}
  - {name: a, type: conv2d, inputs: [s.0], out_channels: 4, kernel_size: 3, padding: 1}
  - {name: b, type: conv2d, inputs: [s.1], out_channels: 4, kernel_size: 1}
  - {name: cat, type: concat, inputs: [b, a]}
"""

FROM_OTHER = """
name: split_back
input: 3x8x8
blocks:
  part:
    args: {c: null}
    layers:
      - {name: s, type: split, sizes: ["$c", "${in.channels - c}"]}
      - {type: conv2d, inputs: [s.1], out_channels: 2, kernel_size: 1}
layers:
  - {name: stem, type: conv2d, out_channels: 5, kernel_size: 3, padding: 1}
  - {name: cat, type: concat, inputs: [input, stem]}
  - {name: s, type: split, sizes: ["${input.channels}", "${stem.channels}"]}
  - {name: p, block: part, inputs: [cat], args: {c: 2}}
  - {name: out, type: concat, inputs: [s.1, p]}
"""


def judge(report, model, shape):
    """Output shapes, params and FLOPs of `model` on a batch-1 input, against the report."""
    torch = pytest.importorskip("torch")
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        out = model(torch.randn(1, *shape))
    assert [tuple(out.shape)] == [report.layer(n).output_shape for n in report.outputs]
    assert sum(p.numel() for p in model.parameters()) == report.totals["params"]
    assert counter.get_total_flops() == report.totals["flops"]


@pytest.mark.parametrize("channels", [6, 9, 16])
def test_split_sizes_follow_the_input_channels(channels):
    torch = pytest.importorskip("torch")
    from torch import nn

    c = channels

    class Uneven(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Conv2d(c // 3, 4, 3, padding=1), nn.Conv2d(c - c // 3, 4, 1)

        def forward(self, x):
            s0, s1 = torch.split(x, [c // 3, c - c // 3], 1)
            return torch.cat([self.b(s1), self.a(s0)], 1)

    report = cnncalc.analyze(cnncalc.parse_spec(UNEVEN), input_shape=(c, 8, 8))
    judge(report, Uneven(), (c, 8, 8))
    # by hand: the pieces are c//3 and the rest
    assert report.layer("s.0").output_shape == (1, c // 3, 8, 8)
    assert report.layer("s.1").output_shape == (1, c - c // 3, 8, 8)


@pytest.mark.parametrize("channels", [3, 4, 7])
def test_split_sizes_read_other_tensors_and_block_arguments(channels):
    torch = pytest.importorskip("torch")
    from torch import nn

    c = channels

    class SplitBack(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem, self.p = nn.Conv2d(c, 5, 3, padding=1), nn.Conv2d(c + 5 - 2, 2, 1)

        def forward(self, x):
            cat = torch.cat([x, self.stem(x)], 1)
            _, s1 = torch.split(cat, [c, 5], 1)
            _, p1 = torch.split(cat, [2, c + 5 - 2], 1)
            return torch.cat([s1, self.p(p1)], 1)

    report = cnncalc.analyze(cnncalc.parse_spec(FROM_OTHER), input_shape=(c, 8, 8))
    judge(report, SplitBack(), (c, 8, 8))
    assert report.layer("s.0").output_shape == (1, c, 8, 8)  # by hand: the input's channels back
    assert report.layer("p.s.1").output_shape == (1, c + 5 - 2, 8, 8)


def test_split_sizes_follow_input_in_validate_and_sweep():
    from cnncalc.analysis.sweep import sweep

    rows = sweep(cnncalc.parse_spec(UNEVEN), [(6, 8, 8), (9, 8, 8)], [1])
    assert len(rows) == 2 and rows[0] != rows[1]


@pytest.mark.parametrize("text,message,line_has", [
    (UNEVEN.replace('"${in.channels // 3}", "${in.channels - in.channels // 3}"', '"${in.channels - 6}", 6'),
     "sizes.0: expected a positive integer, received 0", "type: split"),
    (UNEVEN.replace('"${in.channels - in.channels // 3}"', '"${in.channels}"'),
     "split sizes sum to 8 but the input has 6 channels", "type: split"),
    (UNEVEN.replace('"${in.channels // 3}"', '"${in.chanels // 3}"'), "in.chanels", "type: split"),
    (UNEVEN.replace('"${in.channels // 3}"', '"${zz.channels}"'), "unknown layer 'zz'", "type: split"),
    (UNEVEN.replace('{name: s, type: split, sizes: ["${in.channels // 3}", "${in.channels - in.channels // 3}"]}',
                    '{name: s, type: chunk, chunks: "${in.channels // 3}"}'), "chunks: cannot read in.*", "chunk"),
    (UNEVEN.replace('"${in.channels // 3}", ', '"${in.channels // 3}", 0, '),
     "sizes.1: expected", "type: split"),
])
def test_misuse_is_located(text, message, line_has):
    assert_located(text, message, line_has)


def test_a_bad_size_is_reported_once():
    bad = UNEVEN.replace('"${in.channels // 3}", "${in.channels - in.channels // 3}"',
                         '"${in.channels - 6}", "${in.channels - 6}", 6')
    with pytest.raises(cnncalc.CnnError) as err:
        cnncalc.analyze(cnncalc.parse_spec(bad))
    assert [p.message for p in err.value.problems if "sizes." in p.message] == [
        "sizes.0: expected a positive integer, received 0", "sizes.1: expected a positive integer, received 0"]


REPEATED = """
name: sequential_names
input: 3x8x8
blocks:
  unit:
    layers:
      - {name: conv, type: conv2d, out_channels: 4, kernel_size: 3, padding: 1, bias: false}
      - {name: bn, type: batchnorm2d}
layers:
  - {name: one, block: unit, args: {}}
  - {name: seq1, block: unit, repeat: 1}
  - {name: seqn, block: unit, repeat: $n}
  - {name: seq2, block: unit, repeat: 2}
args: {n: 1}
"""


def test_a_written_repeat_keeps_torchs_sequential_index():
    """`repeat: 1` (written, or through an argument) names the layers like torch's
    nn.Sequential of one module (seq1.0.conv); a use without `repeat` has no index."""
    pytest.importorskip("torch")
    from torch import nn

    class Unit(nn.Module):
        def __init__(self, cin):
            super().__init__()
            self.conv, self.bn = nn.Conv2d(cin, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4)

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.one = Unit(3)
            self.seq1, self.seqn = nn.Sequential(Unit(4)), nn.Sequential(Unit(4))
            self.seq2 = nn.Sequential(Unit(4), Unit(4))

    torch_names = [n for n, m in Model().named_modules() if isinstance(m, (nn.Conv2d, nn.BatchNorm2d))]
    report = cnncalc.analyze(cnncalc.parse_spec(REPEATED))
    assert [r.name for r in report.layers] == torch_names
    assert torch_names[:4] == ["one.conv", "one.bn", "seq1.0.conv", "seq1.0.bn"]  # by hand
