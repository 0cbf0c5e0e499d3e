"""examples/fcn_resnet50.yaml (issue #28 §1 and §4): torchvision's FCN-ResNet50 written with the
bottleneck blocks of examples/common/resnet_blocks.yaml (`include:`), resized to the input with
`${input.height}`: exact at every input size. Pinned to torchvision's published parameter count
and to a torch model written here at three sizes."""
import functools
import os

import pytest

import cnncalc

from conftest import EXAMPLES


def fcn(**kw):
    return cnncalc.analyze(cnncalc.load_spec(os.path.join(EXAMPLES, "fcn_resnet50.yaml")), **kw)


def test_params_are_torchvisions_published_figure_less_the_auxiliary_head():
    # torchvision's fcn_resnet50 (COCO_WITH_VOC_LABELS_V1): 35,322,218 params, with the auxiliary
    # FCNHead(1024, 21): conv 1024→256 3×3 (no bias), batchnorm(256), conv 256→21 1×1 (bias)
    aux = 1024 * 256 * 3 * 3 + 2 * 256 + (256 * 21 + 21)
    assert fcn().totals["params"] == 35_322_218 - aux


@pytest.mark.parametrize("h,w", [(520, 520), (513, 400), (97, 64)])
def test_the_output_follows_the_input(h, w):
    report = fcn(input_shape=(3, h, w))
    assert report.layer("out").output_shape == (1, 21, h, w)
    # by hand: output stride 8 (conv1 /2, maxpool /2, layer2 /2; layer3 and layer4 dilated)
    def down(n):
        n = (n + 2 * 3 - 7) // 2 + 1
        n = (n + 2 - 3) // 2 + 1
        return (n + 2 - 3) // 2 + 1
    assert report.layer("backbone.layer4.2.relu").output_shape == (1, 2048, down(h), down(w))


@functools.cache
def torch_fcn():
    """torchvision's fcn_resnet50(aux_loss=False), written out (built once: 33 M parameters)."""
    from torch import nn

    F = nn.functional

    class Bottleneck(nn.Module):  # torchvision.models.resnet.Bottleneck
        def __init__(self, cin, planes, stride=1, dilation=1, down=False):
            super().__init__()
            self.conv1, self.bn1 = nn.Conv2d(cin, planes, 1, bias=False), nn.BatchNorm2d(planes)
            self.conv2 = nn.Conv2d(planes, planes, 3, stride, dilation, dilation, bias=False)
            self.bn2 = nn.BatchNorm2d(planes)
            self.conv3, self.bn3 = nn.Conv2d(planes, planes * 4, 1, bias=False), nn.BatchNorm2d(planes * 4)
            self.relu = nn.ReLU()
            self.downsample = nn.Sequential(nn.Conv2d(cin, planes * 4, 1, stride, bias=False),
                                            nn.BatchNorm2d(planes * 4)) if down else None

        def forward(self, x):
            out = self.relu(self.bn1(self.conv1(x)))
            out = self.relu(self.bn2(self.conv2(out)))
            out = self.bn3(self.conv3(out))
            return self.relu(out + (self.downsample(x) if self.downsample is not None else x))

    def stage(cin, planes, n, stride, previous, dilation):  # ResNet._make_layer with its dilation rule
        return nn.Sequential(Bottleneck(cin, planes, stride, previous, True),
                             *(Bottleneck(planes * 4, planes, 1, dilation) for _ in range(n - 1)))

    class Backbone(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1, self.bn1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64)
            self.relu, self.maxpool = nn.ReLU(), nn.MaxPool2d(3, 2, 1)
            self.layer1, self.layer2 = stage(64, 64, 3, 1, 1, 1), stage(256, 128, 4, 2, 1, 1)
            self.layer3, self.layer4 = stage(512, 256, 6, 1, 1, 2), stage(1024, 512, 3, 1, 2, 4)

        def forward(self, x):
            x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
            return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    class FCN(nn.Module):
        def __init__(self):
            super().__init__()
            self.backbone = Backbone()
            self.classifier = nn.Sequential(nn.Conv2d(2048, 512, 3, padding=1, bias=False), nn.BatchNorm2d(512),
                                            nn.ReLU(), nn.Dropout(0.1), nn.Conv2d(512, 21, 1))

        def forward(self, x):
            return F.interpolate(self.classifier(self.backbone(x)), size=x.shape[-2:], mode="bilinear",
                                 align_corners=False)

    return FCN().eval()


@pytest.mark.slow
@pytest.mark.parametrize("size", [(64, 64), (65, 97), (33, 50)])
def test_fcn_resnet50_against_torch(size):
    torch = pytest.importorskip("torch")
    from torch import nn
    from torch.utils.flop_counter import FlopCounterMode

    model = torch_fcn()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        out = model(torch.randn(1, 3, *size))
    report = fcn(input_shape=(3, *size))
    assert report.layer("out").output_shape == tuple(out.shape)
    assert report.totals["params"] == sum(p.numel() for p in model.parameters())
    assert report.totals["flops"] == counter.get_total_flops()
    weighted = [n for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.BatchNorm2d))]
    assert [r.name for r in report.layers if r.type in ("conv2d", "batchnorm2d")] == weighted


def test_each_layer_names_the_file_its_line_counts_in():
    """JSON `file` + `line` of a layer from an included block point at that layer in that file."""
    data = fcn().to_dict()
    files = {layer["file"] for layer in data["layers"]}
    assert {os.path.basename(f) for f in files} == {"fcn_resnet50.yaml", "resnet_blocks.yaml"}
    for layer in data["layers"]:
        with open(layer["file"]) as fh:
            text = fh.read().splitlines()[layer["line"] - 1]
        assert f"type: {layer['type']}" in text or "block:" in text, (layer["name"], layer["file"], text)
