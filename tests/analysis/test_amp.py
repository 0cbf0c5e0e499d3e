"""Mixed precision (--amp): the autocast category of every layer type against what torch.autocast
does on the CPU, and the memory of whole networks under autocast against torch's profiler."""
import pytest

from cnncalc.analysis.precision import FULL, LOW, Amp, amp_figures, apply_amp, kind, run_bytes

from conftest import analyze_text
from layer_cases import CASES, spec_text

torch = pytest.importorskip("torch")

from cnncalc import backend as tb  # noqa: E402

BYTES = {torch.float32: FULL, torch.bfloat16: LOW}


def _keep(a, b):
    """b, carrying a's max pool indices (backend/modules.py: MaxPoolIndices attaches them to its
    values, which a max_unpool reads)."""
    if hasattr(a, "unpool_indices"):
        b.unpool_indices = a.unpool_indices
    return b


def _last_layer(case):
    """The report, and the module of its last row with the float32 tensors it is called with."""
    report = analyze_text(spec_text(case))
    row = report.layers[-1]
    t = tb.kit()
    torch.manual_seed(0)
    model = tb.build_model(report, t).eval()
    seen = {}

    def hook(i, module, args):
        seen[i] = [_keep(a, a.detach().clone()) for a in args]
        return module(*args)

    model.hook = hook
    with torch.no_grad():
        model(torch.randn(report.input_shape))
    return report, row, model.layers[f"l{row.index}"], seen[row.index]


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_autocast_category_matches_torch_on_cpu(case):
    """Each layer's output dtype under torch.autocast('cpu', bfloat16), its inputs in float32 and
    then in bfloat16, is the one its class's `autocast` category gives on 'cpu'."""
    report, row, module, args = _last_layer(case)
    k = kind(row.layer, "cpu", len(row.ctx.x) - 2)
    for dtype in (torch.float32, torch.bfloat16):
        with torch.autocast("cpu", dtype=torch.bfloat16), torch.no_grad():
            out = module(*[_keep(a, a.to(dtype)) for a in args])
        assert BYTES[out.dtype] == run_bytes(k, [BYTES[dtype]] * len(args)), (k, dtype, out.dtype)


def test_categories_are_known_and_differ_by_device_where_torch_lists_differ():
    from cnncalc.layers.base import REGISTRY

    for name, cls in REGISTRY.items():
        v = cls.autocast
        values = [v] if isinstance(v, str) else list(v.values()) if isinstance(v, dict) else ["float", "lower"]
        assert all(x in ("lower", "fp32", "promote", "same", "float") for x in values), name
    conv, softmax = REGISTRY["conv2d"], REGISTRY["softmax"]
    c = analyze_text(spec_text(next(c for c in CASES if c[0] == "softmax"))).layers[-1]
    assert kind(c.layer, "cuda", 2) == "fp32" and kind(c.layer, "cpu", 2) == "same"  # softmax: CUDA's fp32 list only
    assert conv.autocast == "lower" and softmax.autocast == {"cuda": "fp32"}


NET = """name: tiny
input: 3x8x8
batch: 2
layers:
  - {name: c, type: conv2d, out_channels: 4, kernel_size: 3, padding: 1}
  - {name: r, type: relu}
  - {name: f, type: flatten}
  - {name: fc, type: linear, out_features: 5}
"""


def test_hand_worked_training_step_bf16():
    """A conv (3→4, 3×3, bias: 112 params), relu, flatten, linear (256→5: 1285 params), batch 2, SGD.
    Saved at the end of the forward pass: the conv's bf16 input copy 2·3·64·2 and weight copies
    112·2; relu's bf16 output 2·4·64·2 (which the linear also saves, through flatten's view); the
    linear's bf16 weight copies 1285·2."""
    report = analyze_text(NET)
    fig = amp_figures(report, Amp("bf16", "cpu"))
    conv_in, conv_out = 2 * 3 * 64 * 2, 2 * 4 * 64 * 2
    assert fig["layers"]["c"] == {"kind": "lower", "dtype": "bfloat16", "casts_bytes": conv_in,
                                  "weight_copies_bytes": 112 * 2}
    assert fig["layers"]["fc"]["dtype"] == "bfloat16" and fig["layers"]["r"]["dtype"] == "bfloat16"
    saved = conv_in + 112 * 2 + conv_out + 1285 * 2
    assert fig["training_saved_activation_bytes"] == saved
    assert fig["grad_scaler_bytes"] == 0 and amp_figures(report, Amp("fp16", "cpu"))["grad_scaler_bytes"] == 16


def test_apply_amp_keeps_the_float32_figures_and_is_idempotent():
    report = analyze_text(NET)
    f32 = report.totals["training_memory_bytes"]
    apply_amp(report, Amp("bf16", "cuda"))
    once = report.totals["training_memory_bytes"]
    apply_amp(report, Amp("bf16", "cuda"))
    assert report.totals["training_memory_bytes"] == once < f32
    assert report.extra["amp"]["float32"]["training_memory_bytes"] == f32


def test_amp_needs_a_float32_model():
    report = analyze_text(NET.replace("batch: 2", "batch: 2\ndtype: bfloat16"))
    with pytest.raises(ValueError, match="float32"):
        amp_figures(report, Amp("bf16"))
    with pytest.raises(ValueError):
        Amp("int8")
