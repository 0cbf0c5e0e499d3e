"""The memory model against what torch allocates: per layer type (what autograd saves, the
temporaries of the forward call), per network (inference peak and a training step) and in
verify's verdict."""
from math import prod

import pytest

torch = pytest.importorskip("torch")

import cnncalc  # noqa: E402
from cnncalc import backend as tb  # noqa: E402
from cnncalc.backend.measure import _peak_during, measure_peak, measure_training  # noqa: E402
from cnncalc.layers import Saved  # noqa: E402

from conftest import EXAMPLES, analyze_text  # noqa: E402
from layer_cases import CASES, spec_text  # noqa: E402

CPU = torch.device("cpu")
SCALARS = 64  #: bytes of 0-dim tensors torch makes for Python scalars (not modelled)
JUDGED = [c for c in CASES if analyze_text(spec_text(c)).layers[-1].layer.memory_exact]


def last_layer_inputs(report):
    """The module of the last row and the tensors it is called with."""
    t = tb.kit()
    torch.manual_seed(0)
    model = tb.build_model(report, t).eval()
    seen = {}

    def hook(i, module, args):
        seen[i] = [a.detach().clone() for a in args]
        return module(*args)

    model.hook = hook
    with torch.no_grad():
        model(torch.randn(report.input_shape))
    row = report.layers[-1]
    return model.layers[f"l{row.index}"], seen[row.index], t


def saved_by_torch(module, args) -> int:
    """Bytes autograd keeps for backward (distinct storages, the module's own tensors apart)."""
    own = {p.untyped_storage().data_ptr() for p in [*module.parameters(), *module.buffers()]}
    kept: dict[int, int] = {}

    def pack(x):
        s = x.untyped_storage()
        if s.data_ptr() not in own:
            kept[s.data_ptr()] = s.nbytes()
        return x

    inputs = [a.clone().requires_grad_(True) * 1 for a in args]  # not leaves: in-place layers may write them
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda x: x):
        module.train()(*inputs)
    return sum(kept.values())


def saved_by_rule(row, b: int = 4) -> int:
    s = row.layer.saved(row.ctx, (True,) * len(row.inputs))
    kept = {("in", row.ctx.ins[i] and i): prod(row.ctx.ins[i]) * b for i in s.inputs}
    if s.output:  # an in-place layer's output is its input's memory
        kept[("in", 0) if row.layer.aliases(True) else ("out",)] = prod(row.output_shape) * b
    return sum(kept.values()) + s.extra * b + s.extra_bytes


@pytest.mark.parametrize("case", JUDGED, ids=[c[0] for c in JUDGED])
def test_layer_memory_matches_torch(case):
    report = analyze_text(spec_text(case))
    row = report.layers[-1]
    module, args, t = last_layer_inputs(report)
    with torch.inference_mode():
        during = _peak_during(lambda: module(*args), t, CPU)
    made = (0 if row.layer.aliases(False) else row.activation_bytes) + row.layer.scratch(row.ctx, 4)
    assert abs(during.tensors - made) <= SCALARS, "inference: output + temporaries"
    assert saved_by_torch(module, args) == saved_by_rule(row), "kept for backward"


def test_deform_conv_memory_is_not_judged():
    assert [c[0] for c in CASES if c not in JUDGED] == [
        "conv2d-same-even-circular", "conv2d-valid-replicate", "conv_transpose3d", "deform_conv2d",
        "deform_conv2d-modulated-groups", "rmsnorm", "rmsnorm-last-axis-eps", "rmsnorm-plain", "max_unpool1d",
        "max_unpool2d", "max_unpool3d", "self_attention", "matmul", "matmul-broadcast", "normalize-channels", "normalize",
        "fourier_pos_embed",
        "attention_bias", "attention_bias-relative-stride", "reshape", "std_conv2d-scaled", "std_conv2d-same-strided",
        "blur_pool2d", "blur_pool2d-5-constant"]
    report = analyze_text(spec_text(CASES[[c[0] for c in CASES].index("deform_conv2d")]))
    result = tb.verify_report(report, tb.VerifyOptions(device="cpu", repeat=1, warmup=0, rf_probe=False))
    assert result.ok and not result.memory["judged"]
    assert "the rules of deform_conv2d are an estimate" in result.memory["not_judged"][0]
    assert {k: (s["status"], s["reason"]) for k, s in result.memory["status"].items()} == {
        "inference_peak": ("not_checked", "estimate"), "training_step": ("not_checked", "estimate")}


@pytest.mark.parametrize("name", ["lenet5.yaml", "googlenet_block.yaml", "separable.yaml", "siamese.yaml",
                                  "conv1d_audio.yaml"])
@pytest.mark.slow
def test_example_memory_matches_torch(name):
    report = cnncalc.analyze(cnncalc.load_spec(f"{EXAMPLES}/{name}"), batch=2)
    t = tb.kit()
    torch.manual_seed(0)
    model = tb.build_model(report, t).eval()
    x = torch.randn(report.input_shape)
    inference, training = measure_peak(model, x, t, CPU), measure_training(model, x, t, CPU, "adam")
    totals = report.totals
    assert inference.tensors == pytest.approx(totals["inference_peak_activation_bytes"], rel=0.01)
    assert training.tensors == pytest.approx(totals["training_memory_bytes"], rel=0.01)


def test_verify_reports_a_wrong_memory_rule(monkeypatch):
    spec = ("input: 3x16x16\nbatch: 4\nlayers:\n  - {type: conv2d, out_channels: 8, kernel_size: 3}\n"
            + "  - {type: sigmoid}\n" * 3 + "  - {type: conv2d, out_channels: 8, kernel_size: 3}\n")
    opts = tb.VerifyOptions(device="cpu", repeat=1, warmup=0, rf_probe=False)
    assert tb.verify_report(analyze_text(spec), opts).mismatches == []
    monkeypatch.setattr(type(analyze_text(spec).layers[1].layer), "saved", lambda self, ctx, grads: Saved())
    report = analyze_text(spec)
    result = tb.verify_report(report, opts)
    assert len(result.mismatches) == 1 and result.mismatches[0].startswith("memory: training step measured/analytic = 1.")
    assert result.memory["training"]["ratio"] > 1.1


def test_untrainable_batch_is_named_not_judged():
    report = analyze_text("input: 4x8x8\nlayers:\n  - {type: adaptive_avgpool2d, output_size: 1}\n"
                          "  - {type: conv2d, out_channels: 4, kernel_size: 1}\n  - {type: batchnorm2d}\n")
    result = tb.verify_report(report, tb.VerifyOptions(device="cpu", repeat=1, warmup=0, rf_probe=False))
    assert result.ok and result.memory["training"]["measured_bytes"] is None
    assert result.memory["not_judged"] == ["training memory: torch cannot train this network at this batch: Expected "
                                           "more than 1 value per channel when training, got input size "
                                           "torch.Size([1, 4, 1, 1])"]
