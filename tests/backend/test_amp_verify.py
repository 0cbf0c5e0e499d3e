"""verify --amp: the network built, measured and timed under torch.autocast on the CPU (bf16), its
memory judged against analysis.precision like float32's."""
import pytest

torch = pytest.importorskip("torch")

from cnncalc.backend.measure import measure_peak, measure_training  # noqa: E402
from cnncalc.backend.verify import VerifyOptions, verify_report  # noqa: E402
from cnncalc.errors import CnnError  # noqa: E402

from conftest import analyze_text  # noqa: E402

NET = """name: branches
input: 3x16x16
batch: 2
layers:
  - {name: stem, type: conv2d, out_channels: 8, kernel_size: 3, padding: 1}
  - {name: bn, type: batchnorm2d}
  - {name: act, type: relu}
  - {name: a, type: conv2d, out_channels: 8, kernel_size: 3, padding: 1, bias: false}
  - {name: sum, type: add, inputs: [a, act]}
  - {name: pad, type: reflection_pad2d, padding: 1}
  - {name: pool, type: maxpool2d, kernel_size: 2}
  - {name: cat, type: concat, inputs: [pool, pool]}
  - {name: flat, type: flatten}
  - {name: fc, type: linear, out_features: 10}
  - {name: ln, type: layernorm, normalized_shape: [10]}
  - {name: soft, type: softmax, dim: 1}
"""


@pytest.mark.slow
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_memory_under_autocast_matches_the_profiler(optimizer):
    """Inference peak and training step measured under torch.autocast('cpu', bfloat16): the
    reflection pad runs in float32 on the CPU (a cast copy of its bf16 input), the concat in bf16,
    the layer norm and softmax in their input's dtype (CPU lists)."""
    from cnncalc import backend as tb
    from cnncalc.analysis.precision import Amp, apply_amp

    report = apply_amp(analyze_text(NET, optimizer=optimizer), Amp("bf16", "cpu"))
    assert report.extra["amp"]["layers"]["pad"]["dtype"] == "float32"
    t = tb.kit()
    torch.manual_seed(0)
    model = tb.build_model(report, t).eval()
    x = torch.randn(report.input_shape)
    cpu = torch.device("cpu")
    inference = measure_peak(model, x, t, cpu, "bf16")
    training = measure_training(model, x, t, cpu, optimizer, "bf16")
    assert inference.tensors == report.totals["inference_peak_activation_bytes"]
    assert abs(training.tensors / report.totals["training_memory_bytes"] - 1) < 0.02


@pytest.mark.slow
def test_verify_amp_on_cpu():
    report = analyze_text(NET, optimizer="sgd")
    result = verify_report(report, VerifyOptions(device="cpu", amp="bf16", check_only=True, rf_probe=False))
    assert result.ok, result.mismatches
    assert result.amp == {"dtype": "bfloat16", "device_type": "cpu"}
    assert result.memory["judged"] and result.memory["training"]["measured_bytes"] is not None
    assert report.extra["amp"]["float32"]["training_memory_bytes"] > report.totals["training_memory_bytes"]


def test_verify_amp_needs_float32():
    with pytest.raises(CnnError) as exc:
        verify_report(analyze_text(NET), VerifyOptions(device="cpu", amp="bf16", dtype="bfloat16", check_only=True))
    assert exc.value.exit_code == 2
