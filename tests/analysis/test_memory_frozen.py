"""Frozen layers on the gradient's way (issue #27 §2): a `trainable: false` layer after a
trainable one still passes the gradient to its input, and what autograd keeps for that is the
op's rule, not the layer's flag: torch's convolution keeps its input for all its gradients
(convolution_backward), a linear keeps it only for the weight's. Each network against torch's
training step, within 3% (before the rule followed the op, these measured 1.25–1.6× the
analysis; a frozen separable_conv2d went from 1.82× to 0.895×, still outside verify's 10%: its
backward is not yet modelled for a frozen pair, and it is left out here)."""
import pytest

torch = pytest.importorskip("torch")

from cnncalc import backend as tb  # noqa: E402
from cnncalc.backend.measure import measure_training  # noqa: E402

from conftest import analyze_text  # noqa: E402

TRAINABLE = "  - {type: conv2d, out_channels: 16, kernel_size: 3, padding: 1}\n"
FROZEN = {
    "conv": "{type: conv2d, out_channels: 16, kernel_size: 3, padding: 1, trainable: false}",
    "conv-strided-depthwise": "{type: conv2d, out_channels: 16, kernel_size: 3, stride: 2, padding: 1, groups: 16, "
                              "trainable: false}",
    "conv-uneven-padding": "{type: conv2d, out_channels: 16, kernel_size: 2, padding: [[0, 1], [1, 0]], trainable: false}",
    "conv-reflect": "{type: conv2d, out_channels: 16, kernel_size: 3, padding: 1, padding_mode: reflect, trainable: false}",
    "conv_transpose": "{type: conv_transpose2d, out_channels: 16, kernel_size: 2, stride: 2, trainable: false}",
    "linear-channels-last": "{type: linear, out_features: 32, trainable: false}",
}


@pytest.mark.parametrize("kind", list(FROZEN))
def test_frozen_layer_behind_a_trainable_one_matches_torch(kind):
    frozen = FROZEN[kind]
    permute = kind.startswith("linear")
    text = ("input: 8x32x32\nbatch: 2\nlayers:\n" + TRAINABLE
            + ("  - {type: permute, dims: [0, 2, 3, 1]}\n" if permute else "")
            + f"  - {frozen}\n  - {frozen}\n"
            + ("" if permute else "  - {type: conv2d, out_channels: 4, kernel_size: 1}\n"))
    report = analyze_text(text)
    assert any(r.params and not r.trainable_params for r in report.layers)
    t = tb.kit()
    torch.manual_seed(0)
    model = tb.build_model(report, t).eval()
    measured = measure_training(model, torch.randn(report.input_shape), t, torch.device("cpu"), "sgd")
    assert measured is not None
    assert measured.tensors == pytest.approx(report.totals["training_memory_bytes"], rel=0.03)
