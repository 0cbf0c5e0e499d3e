"""examples/hrnet4.yaml (issue #28 §2, done-when): an HRNet-style network with four branches and
fusion, written with a four-input four-output block, is exact against HRNet's own module code
copied here (BasicBlock, _make_fuse_layers, the HRNetV2 head), and takes under half the lines of
the same network written out layer by layer (written here from the expanded spec, and analysed to
the same figures)."""
import json
import os
import re

import pytest

import cnncalc

from conftest import EXAMPLES

PATH = os.path.join(EXAMPLES, "hrnet4.yaml")


def spec_lines(text):
    return [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]


def written_out(net):
    """The expanded network as a spec with one line per layer: every field and input written."""
    lines = [f"name: {net.header.name}_written_out", "input: " + "x".join(map(str, net.header.input)), "layers:"]
    for node in net.nodes:
        if node.layer is not None:
            fields = node.layer.model_dump(by_alias=True, exclude_defaults=True, exclude={"name", "inputs", "type"})
        else:  # a size read from another tensor: ${LAYER.height} again, from its placeholder
            fields = {k: v for k, v in node.pending.items() if k not in ("name", "inputs", "type")}
            refs = node.refs
            fields = eval(re.sub(r"ref__\d+", lambda m, refs=refs: "{}.{}".format(*refs[m.group(0)]), repr(fields)))  # noqa: S307
        body = ", ".join(f"{k}: {json.dumps(v)}" for k, v in fields.items())
        lines.append(f"  - {{name: {node.name}, type: {node.kind}{', ' + body if body else ''}, "
                     f"inputs: [{', '.join(node.inputs)}]}}")
    lines.append(f"outputs: [{', '.join(net.outputs)}]")
    return "\n".join(lines) + "\n"


def test_the_blocks_take_under_half_the_lines_of_the_network_written_out():
    text = open(PATH).read()
    net = cnncalc.load_spec(PATH)
    flat = written_out(net)
    ours, theirs = cnncalc.analyze(net), cnncalc.analyze(cnncalc.parse_spec(flat))
    assert [(r.name, r.output_shape, r.params, r.macs) for r in ours.layers] == \
        [(r.name, r.output_shape, r.params, r.macs) for r in theirs.layers]
    assert 2 * len(spec_lines(text)) < len(spec_lines(flat))


@pytest.mark.slow
@pytest.mark.parametrize("size", [(64, 64), (96, 128), (32, 160)])
def test_hrnet4_against_hrnets_module_code(size):
    torch = pytest.importorskip("torch")
    from torch import nn
    from torch.utils.flop_counter import FlopCounterMode

    F = nn.functional

    class BasicBlock(nn.Module):  # seg_hrnet.py
        def __init__(self, c):
            super().__init__()
            self.conv1, self.bn1 = nn.Conv2d(c, c, 3, 1, 1, bias=False), nn.BatchNorm2d(c)
            self.conv2, self.bn2 = nn.Conv2d(c, c, 3, 1, 1, bias=False), nn.BatchNorm2d(c)
            self.relu = nn.ReLU(inplace=True)

        def forward(self, x):
            out = self.relu(self.bn1(self.conv1(x)))
            return self.relu(self.bn2(self.conv2(out)) + x)

    class HighResolutionModule(nn.Module):
        def __init__(self, channels, blocks=2):
            super().__init__()
            n = self.num_branches = len(channels)
            self.branches = nn.ModuleList(nn.Sequential(*[BasicBlock(c) for _ in range(blocks)]) for c in channels)
            fuse_layers = []
            for i in range(n):  # _make_fuse_layers
                fuse_layer = []
                for j in range(n):
                    if j > i:
                        fuse_layer.append(nn.Sequential(nn.Conv2d(channels[j], channels[i], 1, 1, 0, bias=False),
                                                        nn.BatchNorm2d(channels[i]),
                                                        nn.Upsample(scale_factor=2 ** (j - i), mode="nearest")))
                    elif j == i:
                        fuse_layer.append(None)
                    else:
                        conv3x3s = []
                        for k in range(i - j):
                            if k == i - j - 1:
                                conv3x3s.append(nn.Sequential(nn.Conv2d(channels[j], channels[i], 3, 2, 1, bias=False),
                                                              nn.BatchNorm2d(channels[i])))
                            else:
                                conv3x3s.append(nn.Sequential(nn.Conv2d(channels[j], channels[j], 3, 2, 1, bias=False),
                                                              nn.BatchNorm2d(channels[j]), nn.ReLU(inplace=True)))
                        fuse_layer.append(nn.Sequential(*conv3x3s))
                fuse_layers.append(nn.ModuleList(fuse_layer))
            self.fuse_layers = nn.ModuleList(fuse_layers)
            self.relu = nn.ReLU(inplace=True)

        def forward(self, x):
            for i in range(self.num_branches):
                x[i] = self.branches[i](x[i])
            x_fuse = []
            for i in range(len(self.fuse_layers)):
                y = x[0] if i == 0 else self.fuse_layers[i][0](x[0])
                for j in range(1, self.num_branches):
                    y = y + x[j] if i == j else y + self.fuse_layers[i][j](x[j])
                x_fuse.append(self.relu(y))
            return x_fuse

    def cbr(cin, cout, s=1):
        return nn.Sequential(nn.Conv2d(cin, cout, 3, s, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))

    class Net(nn.Module):
        def __init__(self, w=8, classes=5):
            super().__init__()
            c = [w, 2 * w, 4 * w, 8 * w]
            self.stem = cbr(3, 32, 2)
            self.t0, self.t1, self.t2, self.t3 = cbr(32, c[0]), cbr(32, c[1], 2), cbr(c[1], c[2], 2), cbr(c[2], c[3], 2)
            self.modules_ = nn.ModuleList(HighResolutionModule(c) for _ in range(3))
            self.classifier = nn.Conv2d(sum(c), classes, 1)

        def forward(self, x):
            s = self.stem(x)
            t1 = self.t1(s)
            t2 = self.t2(t1)
            x = [self.t0(s), t1, t2, self.t3(t2)]
            for m in self.modules_:
                x = m(x)
            h, w = x[0].shape[2:]  # the HRNetV2 head
            ups = [F.interpolate(x[k], size=(h, w), mode="bilinear") for k in (1, 2, 3)]
            return self.classifier(torch.cat([x[0], *ups], 1)), x[3]

    model = Net().eval()
    report = cnncalc.analyze(cnncalc.load_spec(PATH), input_shape=(3, *size))
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        outs = model(torch.randn(1, 3, *size))
    assert [tuple(o.shape) for o in outs] == [report.layer(n).output_shape for n in report.outputs]
    assert sum(p.numel() for p in model.parameters()) == report.totals["params"]
    assert sum(b.numel() for b in model.buffers()) == report.totals["buffers"]
    assert counter.get_total_flops() == report.totals["flops"]
