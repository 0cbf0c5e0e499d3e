"""Issue #28 §2, the importer's side of a block input that is a list: a module whose first layer
merges every outside tensor it reads (DenseNet's dense layer, reading all earlier features) is
written as a block with `inputs: [input*]`, a dense block as one `repeat` entry whose list grows,
and its closing concat as `inputs: [USE*]`; so DenseNet-121 is written in under 100 lines, the
same number at any depth, still proved against torch (shapes, params, buffers, FLOPs, outputs)."""
from collections import OrderedDict

import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402
import torch.utils.checkpoint as cp  # noqa: E402
from torch import Tensor, nn  # noqa: E402

import cnncalc  # noqa: E402
from cnncalc.interop.torch_import import import_model  # noqa: E402


# ---- torchvision/models/densenet.py, copied (weight initialisation left out) --------------------
class _DenseLayer(nn.Module):
    def __init__(self, num_input_features, growth_rate, bn_size, drop_rate, memory_efficient=False):
        super().__init__()
        self.norm1 = nn.BatchNorm2d(num_input_features)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(num_input_features, bn_size * growth_rate, kernel_size=1, stride=1, bias=False)
        self.norm2 = nn.BatchNorm2d(bn_size * growth_rate)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(bn_size * growth_rate, growth_rate, kernel_size=3, stride=1, padding=1, bias=False)
        self.drop_rate = float(drop_rate)
        self.memory_efficient = memory_efficient

    def bn_function(self, inputs):
        concated_features = torch.cat(inputs, 1)
        bottleneck_output = self.conv1(self.relu1(self.norm1(concated_features)))
        return bottleneck_output

    def any_requires_grad(self, input):
        for tensor in input:
            if tensor.requires_grad:
                return True
        return False

    def call_checkpoint_bottleneck(self, input):
        def closure(*inputs):
            return self.bn_function(inputs)

        return cp.checkpoint(closure, *input, use_reentrant=False)

    def forward(self, input):
        if isinstance(input, Tensor):
            prev_features = [input]
        else:
            prev_features = input

        if self.memory_efficient and self.any_requires_grad(prev_features):
            bottleneck_output = self.call_checkpoint_bottleneck(prev_features)
        else:
            bottleneck_output = self.bn_function(prev_features)

        new_features = self.conv2(self.relu2(self.norm2(bottleneck_output)))
        if self.drop_rate > 0:
            new_features = F.dropout(new_features, p=self.drop_rate, training=self.training)
        return new_features


class _DenseBlock(nn.ModuleDict):
    _version = 2

    def __init__(self, num_layers, num_input_features, bn_size, growth_rate, drop_rate, memory_efficient=False):
        super().__init__()
        for i in range(num_layers):
            layer = _DenseLayer(num_input_features + i * growth_rate, growth_rate=growth_rate, bn_size=bn_size,
                                drop_rate=drop_rate, memory_efficient=memory_efficient)
            self.add_module("denselayer%d" % (i + 1), layer)  # noqa: UP031 - as torchvision writes it

    def forward(self, init_features):
        features = [init_features]
        for name, layer in self.items():  # noqa: B007
            new_features = layer(features)
            features.append(new_features)
        return torch.cat(features, 1)


class _Transition(nn.Sequential):
    def __init__(self, num_input_features, num_output_features):
        super().__init__()
        self.norm = nn.BatchNorm2d(num_input_features)
        self.relu = nn.ReLU(inplace=True)
        self.conv = nn.Conv2d(num_input_features, num_output_features, kernel_size=1, stride=1, bias=False)
        self.pool = nn.AvgPool2d(kernel_size=2, stride=2)


class DenseNet(nn.Module):
    def __init__(self, growth_rate=32, block_config=(6, 12, 24, 16), num_init_features=64, bn_size=4, drop_rate=0,
                 num_classes=1000, memory_efficient=False):
        super().__init__()
        self.features = nn.Sequential(OrderedDict([
            ("conv0", nn.Conv2d(3, num_init_features, kernel_size=7, stride=2, padding=3, bias=False)),
            ("norm0", nn.BatchNorm2d(num_init_features)),
            ("relu0", nn.ReLU(inplace=True)),
            ("pool0", nn.MaxPool2d(kernel_size=3, stride=2, padding=1)),
        ]))
        num_features = num_init_features
        for i, num_layers in enumerate(block_config):
            block = _DenseBlock(num_layers=num_layers, num_input_features=num_features, bn_size=bn_size,
                                growth_rate=growth_rate, drop_rate=drop_rate, memory_efficient=memory_efficient)
            self.features.add_module("denseblock%d" % (i + 1), block)  # noqa: UP031
            num_features = num_features + num_layers * growth_rate
            if i != len(block_config) - 1:
                trans = _Transition(num_input_features=num_features, num_output_features=num_features // 2)
                self.features.add_module("transition%d" % (i + 1), trans)  # noqa: UP031
                num_features = num_features // 2
        self.features.add_module("norm5", nn.BatchNorm2d(num_features))
        self.classifier = nn.Linear(num_features, num_classes)

    def forward(self, x):
        features = self.features(x)
        out = F.relu(features, inplace=True)
        out = F.adaptive_avg_pool2d(out, (1, 1))
        out = torch.flatten(out, 1)
        out = self.classifier(out)
        return out


def small(blocks):
    return DenseNet(growth_rate=4, block_config=blocks, num_init_features=8, bn_size=2, num_classes=10).eval()


@pytest.mark.slow
def test_densenet_is_written_with_a_list_input_whatever_its_depth():
    texts = {}
    for blocks in [(2, 3, 4, 2), (3, 6, 9, 5)]:
        model = small(blocks)
        text, _ = import_model(model, (3, 32, 32), "densenet", [])  # proved against torch, else CnnError
        texts[blocks] = text
        assert "    inputs: [input*]\n" in text and "{name: cat, type: concat, inputs: [input*]}" in text
        for i, n in enumerate(blocks):
            assert f"name: features.denseblock{i + 1}, repeat: {n}," in text
            assert f"{{name: features.denseblock{i + 1}.cat, type: concat, inputs: [features.denseblock{i + 1}*]}}" in text
        report = cnncalc.analyze(cnncalc.parse_spec(text))
        assert report.totals["params"] == sum(p.numel() for p in model.parameters())
        # the last dense layer reads the block's input and every earlier layer's output
        last = report.layer(f"features.denseblock3.denselayer{blocks[2]}.cat")
        assert len(last.inputs) == blocks[2]
    # more layers per block, not one more line
    assert len(texts[(2, 3, 4, 2)].splitlines()) == len(texts[(3, 6, 9, 5)].splitlines()) < 100


@pytest.mark.slow
def test_torchvision_densenet121_is_written_in_under_100_lines():
    torchvision = pytest.importorskip("torchvision")
    text, _ = import_model(torchvision.models.densenet121(), (3, 64, 64), "densenet121", [])  # proved
    assert len(text.splitlines()) < 100
    assert "repeat: 24," in text and "inputs: [features.denseblock3*]" in text
    assert cnncalc.analyze(cnncalc.parse_spec(text)).totals["params"] == 7_978_856  # torchvision's published figure
