"""Broadcast gates in a training step (issue #27 §2): torch makes a broadcast factor's gradient
full-size, grad · (the other factor), before summing it down to the gate's shape, so every
squeeze-and-excitation or spatial gate adds one output-sized temporary to the backward pass
(measured 1.18× the analysis before). Judged against torch's training step: measured/analytic
0.97 for the channel, spatial and SENet-style gates (1.06–1.07 before, under the truth), 0.98
for a three-factor product (the rule applies to two factors)."""
import os

import pytest

torch = pytest.importorskip("torch")

import cnncalc  # noqa: E402
from cnncalc import backend as tb  # noqa: E402
from cnncalc.backend.measure import measure_training  # noqa: E402

from conftest import EXAMPLES, analyze_text  # noqa: E402

BODY = "input: 16x32x32\nbatch: 2\nlayers:\n  - {name: c, type: conv2d, out_channels: 16, kernel_size: 3, padding: 1}\n"
GATES = {
    "channel-gate": "  - {type: global_avgpool}\n  - {type: conv2d, out_channels: 16, kernel_size: 1}\n"
                    "  - {name: g, type: sigmoid}\n  - {type: mul, inputs: [c, g]}\n",
    "spatial-gate": "  - {type: conv2d, out_channels: 1, kernel_size: 7, padding: 3}\n  - {name: g, type: sigmoid}\n"
                    "  - {type: mul, inputs: [g, c]}\n",
    "senet-linear-view": "  - {type: global_avgpool}\n  - {type: flatten}\n  - {type: linear, out_features: 4}\n"
                         "  - {type: relu}\n  - {type: linear, out_features: 16}\n  - {type: sigmoid}\n"
                         "  - {name: g, type: reshape, shape: [16, 1, 1]}\n  - {type: mul, inputs: [c, g]}\n",
    "three-factors": "  - {type: global_avgpool}\n  - {name: g, type: sigmoid}\n"
                     "  - {name: h, type: conv2d, out_channels: 16, kernel_size: 1, inputs: [c]}\n"
                     "  - {type: mul, inputs: [c, g, h]}\n",
}


def judged(report, rel):
    t = tb.kit()
    torch.manual_seed(0)
    model = tb.build_model(report, t).eval()
    measured = measure_training(model, torch.randn(report.input_shape), t, torch.device("cpu"), "sgd")
    assert measured is not None
    assert measured.tensors == pytest.approx(report.totals["training_memory_bytes"], rel=rel)


@pytest.mark.parametrize("gate", list(GATES))
def test_gate_memory_matches_torch(gate):
    judged(analyze_text(BODY + GATES[gate] + "  - {type: conv2d, out_channels: 8, kernel_size: 1}\n"), 0.04)


@pytest.mark.slow
def test_mobilenet_v3_with_its_gates_matches_torch():
    report = cnncalc.analyze(cnncalc.load_spec(os.path.join(EXAMPLES, "mobilenet_v3_large.yaml")), batch=2,
                             input_shape=(3, 64, 64), optimizer="sgd")
    judged(report, 0.05)
