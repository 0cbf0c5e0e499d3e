"""The vocabulary of #28 §5, round three: sub, grn, clamp, rrelu, lppool3d, fold/unfold and
max_unpool. Their case rows (tests/layer_cases.py) are checked against torch by test_parity,
test_middle, test_memory and the export tests; here: the import routes (torch module and
functional forms, ONNX ops), and what the case rows do not reach."""
import re

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import cnncalc  # noqa: E402
from cnncalc.interop.torch_import import import_model  # noqa: E402
from cnncalc.spec.expand import parse_spec  # noqa: E402

from conftest import analyze_text  # noqa: E402

nn, F = torch.nn, torch.nn.functional


def imported(model, shape):
    """The spec text cnncalc writes for `model` (proved against torch by the importer) and its report."""
    text, _ = import_model(model.eval(), shape, "t", [])
    return text, cnncalc.analyze(parse_spec(text))


def types(report):
    return [row.type for row in report.layers]


def onnx_import(tmp_path, nodes, ishape, inits=(), opset=17):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto as T
    from onnx import helper as h

    from cnncalc.interop.onnx_import import import_onnx

    graph = h.make_graph(nodes, "g", [h.make_tensor_value_info("x", T.FLOAT, list(ishape))],
                         [h.make_tensor_value_info("y", T.FLOAT, None)], initializer=list(inits))
    path = tmp_path / "g.onnx"
    onnx.save(h.make_model(graph, opset_imports=[h.make_opsetid("", opset)]), str(path))
    text, _ = import_onnx(str(path), None, "g")
    return text, cnncalc.analyze(parse_spec(text))


# ---- sub --------------------------------------------------------------------------------------------
class RepMixerLike(nn.Module):
    """FastViT's RepMixer: x + γ·(mixer(x) − norm(x)), and the other spellings of a difference."""

    def __init__(self):
        super().__init__()
        self.mixer = nn.Conv2d(4, 4, 3, padding=1, groups=4)
        self.norm = nn.BatchNorm2d(4)

    def forward(self, x):
        a = x + (self.mixer(x) - self.norm(x))
        b = torch.sub(a, x)
        return b.sub(self.norm(b)) - 0


def test_sub_imports_from_every_torch_spelling():
    text, report = imported(RepMixerLike(), (4, 6, 6))
    assert types(report).count("sub") == 3 and types(report)[-1] == "identity"  # `- 0`: the tensor itself
    assert report.layers[-1].output_shape == (1, 4, 6, 6)


def test_sub_of_a_constant_or_with_alpha_is_refused():
    class Shift(nn.Module):
        def forward(self, x):
            return x - 0.5

    class Alpha(nn.Module):
        def forward(self, x):
            return torch.sub(x, x.relu(), alpha=2)

    for model in (Shift(), Alpha()):
        with pytest.raises(cnncalc.CnnError, match="sub"):
            import_model(model, (3, 4, 4), "t", [])


def test_sub_takes_exactly_two_inputs_in_order():
    spec = "input: 2x3x3\nlayers:\n  - {name: a, type: relu}\n  - {type: sub, inputs: [a, input, a]}\n"
    with pytest.raises(cnncalc.CnnError, match="sub takes 2 inputs, received 3"):
        analyze_text(spec)
    from cnncalc import backend as tb

    report = analyze_text("input: 2x3x3\nlayers:\n  - {name: a, type: relu}\n  - {type: sub, inputs: [input, a]}\n")
    model = tb.build_model(report, tb.kit()).eval()
    x = torch.randn(1, 2, 3, 3)
    assert torch.equal(model(x), x - x.relu())  # the first minus the second


def test_sub_imports_from_onnx(tmp_path):
    from onnx import helper as h

    nodes = [h.make_node("Relu", ["x"], ["r"]), h.make_node("Sub", ["r", "x"], ["y"])]
    _, report = onnx_import(tmp_path, nodes, (1, 3, 4, 4))
    assert types(report) == ["relu", "sub"] and report.layers[-1].inputs == [report.layers[0].name, "input"]


# ---- grn ----------------------------------------------------------------------------------------------
class GlobalResponseNorm(nn.Module):
    """timm's GlobalResponseNorm (timm/layers/grn.py), copied as it is written there."""

    def __init__(self, dim, eps=1e-6, channels_last=True):
        super().__init__()
        self.eps = eps
        if channels_last:
            self.spatial_dim = (1, 2)
            self.channel_dim = -1
            self.wb_shape = (1, 1, 1, -1)
        else:
            self.spatial_dim = (2, 3)
            self.channel_dim = 1
            self.wb_shape = (1, -1, 1, 1)
        self.weight = nn.Parameter(torch.zeros(dim))
        self.bias = nn.Parameter(torch.zeros(dim))

    def forward(self, x):
        x_g = x.norm(p=2, dim=self.spatial_dim, keepdim=True)
        x_n = x_g / (x_g.mean(dim=self.channel_dim, keepdim=True) + self.eps)
        return x + torch.addcmul(self.bias.view(self.wb_shape), self.weight.view(self.wb_shape), x * x_n)


class ConvNeXtV2Block(nn.Module):
    """ConvNeXt-V2's block as timm writes it with conv_mlp=False: depthwise conv, permute,
    LayerNorm, Linear, GELU, GRN (channels-last), Linear, permute back, residual."""

    def __init__(self, c=8, channels_last=True):
        super().__init__()
        self.conv_dw = nn.Conv2d(c, c, 7, padding=3, groups=c)
        self.norm = nn.LayerNorm(c)
        self.fc1, self.act, self.fc2 = nn.Linear(c, 4 * c), nn.GELU(), nn.Linear(4 * c, c)
        self.grn = GlobalResponseNorm(4 * c, channels_last=channels_last)
        self.grn2 = GlobalResponseNorm(c, eps=1e-5, channels_last=False)

    def forward(self, x):
        y = self.conv_dw(x).permute(0, 2, 3, 1)
        y = self.fc2(self.grn(self.act(self.fc1(self.norm(y)))))
        return self.grn2(x + y.permute(0, 3, 1, 2))


def paper_grn(x, gamma, beta, eps, channels_last):
    """ConvNeXt-V2's GRN as the paper's pseudo-code writes it (channels-last), NCHW moved there first."""
    if not channels_last:
        x = x.permute(0, 2, 3, 1)
    gx = torch.norm(x, p=2, dim=(1, 2), keepdim=True)
    nx = gx / (gx.mean(dim=-1, keepdim=True) + eps)
    y = gamma.reshape(-1) * (x * nx) + beta.reshape(-1) + x
    return y if channels_last else y.permute(0, 3, 1, 2)


@pytest.mark.parametrize("channels_last", [True, False])
def test_grn_computes_the_papers_formula(channels_last):
    from cnncalc import backend as tb

    pre = "  - {type: permute, dims: [0, 2, 3, 1]}\n" if channels_last else ""
    report = analyze_text(f"input: 6x5x4\nbatch: 2\nlayers:\n{pre}  - {{name: g, type: grn, "
                          f"channels_last: {str(channels_last).lower()}, eps: 0.001}}\n")
    model = tb.build_model(report, tb.kit()).eval()
    module = model.layers[f"l{report.layers[-1].index}"]
    torch.manual_seed(3)
    with torch.no_grad():
        module.weight.normal_()
        module.bias.normal_()
        x = torch.randn(2, 6, 5, 4)
        want = paper_grn(x.permute(0, 2, 3, 1) if channels_last else x, module.weight, module.bias, 1e-3, channels_last)
        assert torch.allclose(model(x), want, atol=1e-5)
    assert report.layers[-1].params == 2 * 6


def test_grn_imports_from_timms_module_both_layouts():
    text, report = imported(ConvNeXtV2Block(), (8, 9, 9))
    grns = [row for row in report.layers if row.type == "grn"]
    assert [(row.layer.channels_last, row.layer.eps) for row in grns] == [(True, 1e-6), (False, 1e-5)]
    assert [row.params for row in grns] == [2 * 32, 2 * 8]
    assert report.totals["params"] == sum(p.numel() for p in ConvNeXtV2Block().parameters())


def test_grn_refuses_what_is_not_2d():
    with pytest.raises(cnncalc.CnnError, match=r"grn_1 \(#0\): expected a 4-D input \(N, C, H, W\)"):
        analyze_text("input: 4x10\nlayers:\n  - {type: grn}\n")


GRN_NETS = {
    "both-layouts": "input: 8x12x12\nbatch: 4\nlayers:\n  - {type: conv2d, out_channels: 16, kernel_size: 1}\n"
                    "  - {type: grn}\n  - {type: permute, dims: [0, 2, 3, 1]}\n  - {type: grn, channels_last: true}\n"
                    "  - {type: permute, dims: [0, 3, 1, 2]}\n  - {type: conv2d, out_channels: 8, kernel_size: 1}\n",
    "frozen": "input: 4x16x16\nbatch: 2\nlayers:\n  - {type: conv2d, out_channels: 8, kernel_size: 3, padding: 1}\n"
              "  - {type: grn, trainable: false}\n  - {type: conv2d, out_channels: 4, kernel_size: 1}\n",
    "on-the-input": "input: 8x16x16\nbatch: 2\nlayers:\n  - {type: grn}\n  - {type: conv2d, out_channels: 4, kernel_size: 1}\n",
}


@pytest.mark.parametrize("channels_last", [True, False])
@pytest.mark.parametrize("x_grad", [True, False])
def test_grn_module_runs_timms_operators(channels_last, x_grad):
    """cnncalc's torch module is what verify measures: it must keep for backward exactly what
    timm's GlobalResponseNorm keeps (same tensors, dtypes and shapes) and give its output."""
    from cnncalc.backend.modules import GlobalResponseNorm as Ours

    def saved(m, x):
        kept = []

        def pack(t):
            kept.append((t.dtype, tuple(t.shape)))
            return t
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            y = m(x)
        return y, sorted(kept, key=repr)

    torch.manual_seed(0)
    timm_m, ours = GlobalResponseNorm(6, channels_last=channels_last), Ours(6, 1e-6, channels_last)
    with torch.no_grad():
        for p in timm_m.parameters():
            p.normal_()
    ours.load_state_dict(timm_m.state_dict())
    x = torch.randn((2, 5, 7, 6) if channels_last else (2, 6, 5, 7), requires_grad=x_grad)
    (y1, k1), (y2, k2) = saved(timm_m, x), saved(ours, x)
    assert torch.allclose(y1, y2) and k1 == k2 and len(k1) >= 1


@pytest.mark.slow
@pytest.mark.parametrize("name", list(GRN_NETS))
def test_grn_training_memory_agrees_with_torch(name):
    from cnncalc import backend as tb

    result = tb.verify_report(analyze_text(GRN_NETS[name]), tb.VerifyOptions(device="cpu", repeat=1, warmup=0))
    assert result.ok and result.mismatches == [] and result.memory["judged"]
    assert result.memory["training"]["ratio"] == pytest.approx(1, abs=0.01)


# ---- clamp, rrelu, lppool3d ---------------------------------------------------------------------------
class Clamps(nn.Module):
    def forward(self, x):
        a = torch.clamp(x, min=-0.5, max=0.5)
        b = a.clamp(max=0.25)
        c = torch.clip(b, -0.1)
        d = torch.clamp_min(c, -0.05)
        return d.clamp_max(1)


def test_clamp_imports_from_every_torch_spelling():
    _, report = imported(Clamps(), (3, 4, 4))
    assert [(r.type, r.layer.min, r.layer.max) for r in report.layers] == [
        ("clamp", -0.5, 0.5), ("clamp", None, 0.25), ("clamp", -0.1, None), ("clamp", -0.05, None),
        ("clamp", None, 1.0)]


def test_clamp_to_a_tensor_bound_or_to_nothing_is_refused():
    class ByTensor(nn.Module):
        def forward(self, x):
            return torch.clamp(x, min=x.mean(dim=(2, 3), keepdim=True))

    with pytest.raises(cnncalc.CnnError, match="clamp to a bound that is a tensor"):
        import_model(ByTensor(), (3, 4, 4), "t", [])
    with pytest.raises(cnncalc.CnnError, match="clamp needs min, max or both"):
        analyze_text("input: 3x4x4\nlayers:\n  - {type: clamp}\n")


def test_clamp_with_min_above_max_is_max_as_in_torch():
    from cnncalc import backend as tb

    report = analyze_text("input: 3x4x4\nlayers:\n  - {type: clamp, min: 1.0, max: 0.5}\n")
    x = torch.randn(1, 3, 4, 4)
    assert torch.equal(tb.build_model(report, tb.kit()).eval()(x), torch.full_like(x, 0.5))


@pytest.mark.slow  # several ONNX graphs imported and proved (3 s)
def test_clip_imports_from_onnx_as_clamp_or_relu6(tmp_path):
    from onnx import helper as h
    from onnx import numpy_helper as nh

    def bounds(lo, hi):
        return [nh.from_array(np.array(lo, np.float32), "lo"), nh.from_array(np.array(hi, np.float32), "hi")]

    _, report = onnx_import(tmp_path, [h.make_node("Clip", ["x", "lo", "hi"], ["y"])], (1, 3, 4, 4), bounds(-1.5, 2.0))
    assert [(r.type, r.layer.min, r.layer.max) for r in report.layers] == [("clamp", -1.5, 2.0)]
    _, report = onnx_import(tmp_path, [h.make_node("Clip", ["x", "lo", "hi"], ["y"])], (1, 3, 4, 4), bounds(0, 6))
    assert types(report) == ["relu6"]
    _, report = onnx_import(tmp_path, [h.make_node("Clip", ["x"], ["y"], max=0.5)], (1, 3, 4, 4), opset=6)
    assert [(r.type, r.layer.min, r.layer.max) for r in report.layers] == [("clamp", None, 0.5)]
    with pytest.raises(cnncalc.CnnError, match="Clip with one bound"):
        onnx_import(tmp_path, [h.make_node("Clip", ["x", "", "hi"], ["y"])], (1, 3, 4, 4), bounds(0, 6)[1:])


def test_rrelu_at_inference_is_a_leaky_relu_with_the_mean_slope():
    from cnncalc import backend as tb

    report = analyze_text("input: 3x4x4\nlayers:\n  - {type: rrelu, lower: 0.1, upper: 0.3}\n")
    x = torch.randn(2, 3, 4, 4)
    assert torch.allclose(tb.build_model(report, tb.kit()).eval()(x), F.leaky_relu(x, 0.2))
    with pytest.raises(cnncalc.CnnError, match="lower 0.5 must not exceed upper 0.3"):
        analyze_text("input: 3x4x4\nlayers:\n  - {type: rrelu, lower: 0.5, upper: 0.3}\n")


def test_rrelu_and_lppool3d_import_from_modules_and_functions():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.act = nn.RReLU(0.05, 0.25)
            self.pool = nn.LPPool3d(2, 2)

        def forward(self, x):
            y = F.lp_pool3d(F.rrelu(self.pool(self.act(x)), 0.1, 0.2), 3.0, [1, 2, 2], stride=1)
            return F.lp_pool2d(y.flatten(1, 2), 2.0, 1)

    _, report = imported(Net(), (2, 4, 6, 6))
    assert [(r.type, r.output_shape) for r in report.layers] == [
        ("rrelu", (1, 2, 4, 6, 6)), ("lppool3d", (1, 2, 2, 3, 3)), ("rrelu", (1, 2, 2, 3, 3)),
        ("lppool3d", (1, 2, 2, 2, 2)), ("flatten", (1, 4, 2, 2)), ("lppool2d", (1, 4, 2, 2))]
    assert [(r.layer.lower, r.layer.upper) for r in report.layers if r.type == "rrelu"] == [(0.05, 0.25), (0.1, 0.2)]
    assert report.layers[3].layer.kernel_size == (1, 2, 2) and report.layers[3].layer.norm_type == 3.0


# ---- fold / unfold ------------------------------------------------------------------------------------
class Patches(nn.Module):
    """Unfold, a linear over every column (a convolution written as im2col), fold back."""

    def __init__(self):
        super().__init__()
        self.unfold = nn.Unfold(3, padding=1, stride=2)
        self.proj = nn.Linear(2 * 9, 4 * 9)
        self.fold = nn.Fold((7, 8), 3, padding=1, stride=2)

    def forward(self, x):
        cols = self.proj(self.unfold(x).transpose(1, 2)).transpose(1, 2)
        y = self.fold(cols)
        return F.fold(F.unfold(y, [2, 2], stride=[2, 2]), output_size=[6, 8], kernel_size=2, stride=2)


def test_fold_and_unfold_import_from_modules_and_functions():
    _, report = imported(Patches(), (2, 7, 8))
    assert [(r.type, r.output_shape) for r in report.layers] == [
        ("unfold", (1, 18, 16)), ("transpose", (1, 16, 18)), ("linear", (1, 16, 36)), ("transpose", (1, 36, 16)),
        ("fold", (1, 4, 7, 8)), ("unfold", (1, 16, 12)), ("fold", (1, 4, 6, 8))]
    assert report.layers[-1].layer.kernel_size == (2, 2) and report.layers[-1].layer.output_size == (6, 8)
    assert all(r.receptive_field is None for r in report.layers)


def test_fold_of_unfold_without_overlap_gives_the_input_back():
    from cnncalc import backend as tb

    report = analyze_text("input: 3x6x8\nlayers:\n  - {type: unfold, kernel_size: [3, 2], stride: [3, 2]}\n"
                          "  - {type: fold, output_size: [6, 8], kernel_size: [3, 2], stride: [3, 2]}\n")
    x = torch.randn(2, 3, 6, 8)
    assert torch.equal(tb.build_model(report, tb.kit()).eval()(x), x)
    assert report.layers[0].output_shape == (1, 3 * 6, 2 * 4)


def test_fold_and_unfold_misuse_is_located():
    cases = [
        ("input: 7x4\nlayers:\n  - {type: fold, output_size: 4, kernel_size: 2, stride: 2}\n",
         "fold_1 (#0): the input's 7 channels are not a multiple of ∏kernel_size = 4"),
        ("input: 8x5\nlayers:\n  - {type: fold, output_size: 4, kernel_size: 2, stride: 2}\n",
         "output_size [4, 4] holds 2 × 2 = 4 blocks, but the input has L = 5"),
        ("input: 2x4x4\nlayers:\n  - {type: unfold, kernel_size: 3, dilation: 2}\n",
         "the dilated block (5) is larger than the padded H (4 + 2·0)"),
        ("input: 2x4\nlayers:\n  - {type: unfold, kernel_size: 2}\n", "expected a 4-D input (N, C, H, W)"),
    ]
    for spec, words in cases:
        with pytest.raises(cnncalc.CnnError, match=re.escape(words)):
            analyze_text(spec)


def test_where_torch_keeps_an_input_sized_storage_the_memory_is_an_estimate():
    """torch allocates fold's and unfold's output like their input, then resizes it: the forward
    call's peak is the larger of the two (the scratch rule), and the storage outlives the call,
    so those layers are estimates."""
    from cnncalc import backend as tb
    from cnncalc.backend.measure import _peak_during

    report = analyze_text("input: 2x5x6\nbatch: 2\nlayers:\n  - {type: unfold, kernel_size: 3, padding: 1, stride: 2}\n"
                          "  - {type: fold, output_size: [5, 6], kernel_size: 3, padding: 1, stride: 2}\n"
                          "  - {type: unfold, kernel_size: 1, stride: 2}\n")
    assert [r.layer.memory_exact for r in report.layers] == [False, False, False]
    t = tb.kit()
    model = tb.build_model(report, t).eval()
    x = torch.randn(report.input_shape)
    for row in report.layers:
        module = model.layers[f"l{row.index}"]
        with torch.inference_mode():
            peak = _peak_during(lambda m=module, v=x: m(v), t, torch.device("cpu"))
            y = module(x)
        assert peak.tensors == row.activation_bytes + row.layer.scratch(row.ctx, 4)
        assert y.untyped_storage().nbytes() == max(x.numel(), y.numel()) * 4
        x = y


@pytest.mark.slow  # an ONNX graph imported and proved
def test_col2im_imports_from_onnx_as_fold(tmp_path):
    from onnx import helper as h
    from onnx import numpy_helper as nh

    shapes = [nh.from_array(np.array([5, 7], np.int64), "image"), nh.from_array(np.array([1, 2], np.int64), "block")]
    node = h.make_node("Col2Im", ["x", "image", "block"], ["y"], strides=[2, 3])
    _, report = onnx_import(tmp_path, [node], (1, 4, 6), shapes, opset=18)
    row = report.layers[0]
    assert (row.type, row.output_shape, row.layer.kernel_size, row.layer.stride) == ("fold", (1, 2, 5, 7), (1, 2), (2, 3))


@pytest.mark.slow  # several ONNX graphs imported and proved (2 s)
def test_lppool_imports_from_onnx_where_p_is_even(tmp_path):
    """ONNX's LpPool is (Σ|x|^p)^(1/p), torch's LPPool (Σ x^p)^(1/p): the same for an even p (the
    importer's proof runs onnx's reference evaluator against torch); an odd p is refused."""
    from onnx import helper as h

    _, report = onnx_import(tmp_path, [h.make_node("LpPool", ["x"], ["y"], kernel_shape=[2, 2], strides=[2, 1])],
                            (1, 3, 6, 6))
    row = report.layers[0]
    assert (row.type, row.output_shape, row.layer.norm_type, row.layer.stride) == ("lppool2d", (1, 3, 3, 5), 2.0, (2, 1))
    _, report = onnx_import(tmp_path, [h.make_node("LpPool", ["x"], ["y"], kernel_shape=[2, 2, 3], p=4)],
                            (1, 2, 4, 4, 6))
    assert [(r.type, r.output_shape, r.layer.norm_type) for r in report.layers] == [("lppool3d", (1, 2, 3, 3, 4), 4.0)]
    with pytest.raises(cnncalc.CnnError, match="LpPool with an odd p"):
        onnx_import(tmp_path, [h.make_node("LpPool", ["x"], ["y"], kernel_shape=[2, 2], p=3)], (1, 3, 6, 6))
