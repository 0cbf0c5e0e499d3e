"""Rules that follow the axis order (issue #27 §3): after a permute to channels-last, a layer
scale's γ follows the channels, as in ConvNeXt's original block (timm's ConvNeXtBlock applies
`x.mul(self.gamma)` with γ of shape (C,) before permuting back). torch's broadcasting would
accept a wrongly sized γ, so only the analysis can get this right: judged against that block."""
import pytest

import cnncalc

BLOCK = """
input: 8x10x12
layers:
  - {name: dw, type: conv2d, out_channels: 8, kernel_size: 7, padding: 3, groups: 8}
  - {type: permute, dims: [0, 2, 3, 1]}
  - {type: layernorm, normalized_shape: 8}
  - {type: linear, out_features: 32}
  - {type: gelu}
  - {type: linear, out_features: 8}
  - {name: gamma, type: layer_scale}
  - {type: permute, dims: [0, 3, 1, 2]}
  - {type: add, inputs: [dw, permute_2]}
"""


def test_layer_scale_follows_the_channels_in_a_channels_last_block():
    report = cnncalc.analyze(cnncalc.parse_spec(BLOCK))
    assert report.layer("gamma").weights == {"weight": (8,)} and report.layer("gamma").params == 8
    torch = pytest.importorskip("torch")
    from torch import nn

    class Block(nn.Module):  # timm's ConvNeXtBlock (conv_mlp=False), its residual around dw's output
        def __init__(self, dim=8):
            super().__init__()
            self.dw = nn.Conv2d(dim, dim, 7, padding=3, groups=dim)
            self.norm, self.fc1, self.fc2 = nn.LayerNorm(dim), nn.Linear(dim, 4 * dim), nn.Linear(4 * dim, dim)
            self.gamma = nn.Parameter(1e-6 * torch.ones(dim))

        def forward(self, x):
            x = self.dw(x)
            y = self.fc2(nn.functional.gelu(self.fc1(self.norm(x.permute(0, 2, 3, 1))))).mul(self.gamma)
            return x + y.permute(0, 3, 1, 2)

    model = Block()
    assert report.totals["params"] == sum(p.numel() for p in model.parameters())
    built = dict(cnncalc.backend.build_model(report).named_parameters())
    assert any(tuple(p.shape) == (8,) for n, p in built.items() if n.startswith(f"layers.l{report.layer('gamma').index}"))
