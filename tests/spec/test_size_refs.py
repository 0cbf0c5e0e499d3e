"""Sizes taken from other tensors (issue #28 §1): `${input.height}`, `${LAYER.width}`,
`${LAYER.channels}` are read when the analysis reaches the layer, so a segmentation head that
resizes to the input, or a U-Net step that pads to its skip, follows `--input` exactly as torch
does. Judged against torch models written here at three input sizes each."""
import pytest

import cnncalc

from conftest import assert_located

SEG = """
name: seg_follows_input
input: 3x64x64
layers:
  - {name: c1, type: conv2d, out_channels: 8, kernel_size: 3, stride: 2, padding: 1}
  - {type: relu}
  - {name: c2, type: conv2d, out_channels: 16, kernel_size: 3, stride: 2, padding: 1}
  - {type: relu}
  - {name: head, type: conv2d, out_channels: 5, kernel_size: 1}
  - {name: out, type: upsample, size: ["${input.height}", "${input.width}"], mode: bilinear}
  - {name: aux, type: upsample, inputs: [c2], size: ["${c1.height}", "${c1.width}"], mode: nearest}
outputs: [out, aux]
"""

UNET_PAD = """
name: pad_to_skip
input: 3x37x45
layers:
  - {name: skip, type: conv2d, out_channels: 8, kernel_size: 3, padding: 1}
  - {type: maxpool2d, kernel_size: 2}
  - {type: conv2d, out_channels: 16, kernel_size: 3, padding: 1}
  - {name: up, type: conv_transpose2d, out_channels: 8, kernel_size: 2, stride: 2}
  - {name: pad, type: zero_pad2d,
     padding: ["${(skip.width - up.width) // 2}", "${skip.width - up.width - (skip.width - up.width) // 2}",
               "${(skip.height - up.height) // 2}", "${skip.height - up.height - (skip.height - up.height) // 2}"]}
  - {name: cat, type: concat, inputs: [skip, pad]}
  - {type: conv2d, out_channels: "${skip.channels}", kernel_size: 3, padding: 1}
"""


def torch_outputs(model, shape):
    torch = pytest.importorskip("torch")
    with torch.no_grad():
        out = model(torch.randn(1, *shape))
    return [tuple(o.shape) for o in (out if isinstance(out, tuple) else (out,))]


@pytest.mark.parametrize("size", [(64, 64), (65, 97), (33, 50)])
def test_segmentation_head_resizes_to_the_input_at_every_size(size):
    torch = pytest.importorskip("torch")
    from torch import nn

    F = nn.functional

    class Seg(nn.Module):
        def __init__(self):
            super().__init__()
            self.c1, self.c2 = nn.Conv2d(3, 8, 3, 2, 1), nn.Conv2d(8, 16, 3, 2, 1)
            self.head = nn.Conv2d(16, 5, 1)

        def forward(self, x):
            c1 = self.c1(x)
            c2 = self.c2(torch.relu(c1))
            out = F.interpolate(self.head(torch.relu(c2)), size=x.shape[-2:], mode="bilinear")
            return out, F.interpolate(c2, size=c1.shape[-2:], mode="nearest")

    report = cnncalc.analyze(cnncalc.parse_spec(SEG), input_shape=(3, *size))
    assert [report.layer(n).output_shape for n in report.outputs] == torch_outputs(Seg(), (3, *size))
    assert report.layer("out").output_shape[2:] == size


@pytest.mark.parametrize("size", [(37, 45), (40, 40), (17, 30)])
def test_unet_pads_to_its_skip_at_every_size(size):
    torch = pytest.importorskip("torch")
    from torch import nn

    class Step(nn.Module):  # torchvision-style U-Net up step: pad the upsampled map to the skip
        def __init__(self):
            super().__init__()
            self.skip, self.down = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 16, 3, padding=1)
            self.up, self.out = nn.ConvTranspose2d(16, 8, 2, stride=2), nn.Conv2d(16, 8, 3, padding=1)

        def forward(self, x):
            skip = self.skip(x)
            up = self.up(self.down(nn.functional.max_pool2d(skip, 2)))
            dy, dx = skip.shape[2] - up.shape[2], skip.shape[3] - up.shape[3]
            up = nn.functional.pad(up, [dx // 2, dx - dx // 2, dy // 2, dy - dy // 2])
            return self.out(torch.cat([skip, up], 1))

    report = cnncalc.analyze(cnncalc.parse_spec(UNET_PAD), input_shape=(3, *size))
    model = Step()
    assert [report.layers[-1].output_shape] == torch_outputs(model, (3, *size))
    assert report.totals["params"] == sum(p.numel() for p in model.parameters())


def test_sweep_follows_the_sizes():
    from cnncalc.analysis.sweep import sweep

    rows = sweep(cnncalc.parse_spec(SEG), [(3, 64, 64), (3, 100, 60)], [1])
    assert len(rows) == 2 and rows[0] != rows[1]
    report = cnncalc.analyze(cnncalc.parse_spec(SEG), input_shape=(3, 100, 60))
    assert report.layer("out").output_shape == (1, 5, 100, 60)


@pytest.mark.parametrize("text,message,line_has", [
    (SEG.replace("${c1.height}", "${c9.height}"), "unknown layer 'c9'", "c9.height"),
    (SEG.replace("${c1.height}", "${aux.height}"), "refers to itself", "aux.height"),
    (SEG.replace("${input.height}", "${aux.height}"), "'aux' is defined later", "aux.height"),
    (SEG.replace("${input.width}", "${input.depth}"), "input.depth: a 4-D tensor offers", "input.depth"),
])
def test_misuse_is_located(text, message, line_has):
    assert_located(text, message, line_has)


def test_size_like_a_layer_is_its_spatial_sizes():
    like = SEG.replace('size: ["${input.height}", "${input.width}"]', "size: like input") \
        .replace('size: ["${c1.height}", "${c1.width}"]', "size: like c1")
    assert like.count("size: like") == 2
    for size in [(64, 64), (65, 97), (33, 50)]:
        ours, theirs = (cnncalc.analyze(cnncalc.parse_spec(t), input_shape=(3, *size)) for t in (like, SEG))
        assert [r.output_shape for r in ours.layers] == [r.output_shape for r in theirs.layers]
        assert ours.layer("out").output_shape == (1, 5, *size) and ours.layer("aux").output_shape[2:] == \
            ours.layer("c1").output_shape[2:]
    one_d = "input: 2x50\nlayers:\n  - {name: a, type: conv1d, out_channels: 2, kernel_size: 3, stride: 2}\n" \
            "  - {type: upsample, size: like input}\n"
    assert cnncalc.analyze(cnncalc.parse_spec(one_d), input_shape=(2, 37)).layers[-1].output_shape == (1, 2, 37)


@pytest.mark.parametrize("like,message", [
    ("like", "size: 'like' takes one earlier layer's name (size: like skip), received 'like'"),
    ("like c1 c2", "size: 'like' takes one earlier layer's name"),
    ("like c9", "unknown layer 'c9'"),
    ("like aux", "refers to itself"),
    ("like c9-input", "unknown layer 'c9-input'"),  # one name, never c9 minus input's size
])
def test_size_like_misuse_is_located(like, message):
    assert_located(SEG.replace('size: ["${c1.height}", "${c1.width}"]', f"size: {like}"), message, "name: aux")


def test_size_like_is_in_the_json_schema(schema):
    jsonschema = pytest.importorskip("jsonschema")
    size = schema["$defs"]["Upsample"]["properties"]["size"]
    jsonschema.validate("like skip", size)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate("alike skip", size)
