"""`cnncalc import` of timm's and torchvision's patterns (#29), on faithful copies of their module
code (tests/data/timm_blocks.py): each imported spec judged against torch itself (params and
buffers summed from the model, FLOPs from FlopCounterMode, the output shapes from running it) and
proved by import (state_dict loaded strictly into the exported module, equal outputs)."""
import os
import re
import sys
from collections import OrderedDict

import pytest

torch = pytest.importorskip("torch")

import cnncalc  # noqa: E402
from cnncalc.spec.expand import parse_spec  # noqa: E402

from conftest import DATA, torch_numbers  # noqa: E402

sys.path.insert(0, DATA)
import timm_blocks as T  # noqa: E402


def imported(model, shape):
    text = cnncalc.spec_from_torch(model, shape)  # prove=True: state_dict and outputs checked by import
    report = cnncalc.analyze(parse_spec(text))
    return text, report


def judged(model, shape):
    text, report = imported(model, shape)
    want = torch_numbers(model, shape)
    assert (report.totals["params"], report.totals["buffers"], report.totals["flops"]) == \
           (want["params"], want["buffers"], want["flops"])
    assert [report.layer(o).output_shape for o in report.outputs] == want["outputs"]
    return text, report


def said(err):
    return "\n".join(p.message for p in err.value.problems)


def state_keys_survive(model, report):
    """Every state_dict key of the model is a spec layer's name + its tensor's name."""
    names = {r.name for r in report.layers}
    for key in model.state_dict():
        assert key.rpartition(".")[0] in names, key


# ---- 1. a module that is a functional op over its own tensors: BatchNormAct2d ------------------
def test_batchnorm_act_is_a_batch_norm_then_its_activation():
    model = T.EfficientStem()
    text, report = judged(model, (3, 32, 32))
    state_keys_survive(model, report)
    types = {r.name: r.type for r in report.layers}
    assert (types["bn1"], types["bn1_act"]) == ("batchnorm2d", "silu")
    assert (types["bn2"], types["bn2_drop"], types["bn2_act"]) == ("batchnorm2d", "dropout", "silu")
    assert types["bn4_act"] == "relu6"
    assert "bn3_act" not in types  # apply_act=False: nn.Identity, no layer
    # 4 batch norms: weight, bias, running mean and var per channel, and num_batches_tracked
    assert report.totals["buffers"] == (16 + 16 + 24 + 32) * 2 + 4


def test_batchnorm_act_with_an_activation_no_layer_reads_is_refused_by_name():
    class Odd(torch.nn.Module):
        def forward(self, x):
            return x * torch.sigmoid(x) * 2

    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1), T.BatchNormAct2d(4, act_layer=lambda inplace: Odd()))
    with pytest.raises(cnncalc.CnnError) as err:
        cnncalc.spec_from_torch(model, (3, 8, 8))
    assert "Odd (module 1_act, inside BatchNormAct2d)" in said(err)


# ---- LayerNorm2d (timm's: permute, F.layer_norm, permute) ---------------------------------------
def test_timm_layer_norm_2d_is_layer_norm2d():
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 1), T.LayerNorm2d(8))
    text, report = judged(model, (3, 6, 6))
    state_keys_survive(model, report)
    assert report.layer("1").type == "layernorm2d"


# ---- 2. TensorFlow 'same' padding: Conv2dSame ------------------------------------------------------
def test_conv2d_same_is_conv2d_with_padding_same_where_tf_pads_evenly():
    model = T.tf_efficient_stem()
    assert type(model.conv_stem).__name__ == "Conv2dSame" and type(model.conv_down).__name__ == "Conv2dSame"
    # 35×35: conv_stem (k3 s2) pads 3+3·... = (18−1)·2 + 3 − 35 = 2 → 1 and 1; conv_down (k5 s2) at 18:
    # (9−1)·2 + 5 − 18 = 3 → 1 and 2 (uneven) — so take 37: stem 19 (pad 2), down at 19: 10, (9·2 + 5 − 19) = 4
    text, report = judged(model, (3, 37, 37))
    state_keys_survive(model, report)
    assert report.layer("conv_stem").type == "conv2d" and "padding: same" in text
    assert report.layer("conv_stem").output_shape == (1, 16, 19, 19)   # ⌈37/2⌉
    assert report.layer("conv_down").output_shape == (1, 32, 10, 10)   # ⌈19/2⌉


def test_conv2d_same_with_uneven_padding_keeps_the_state_dict_keys():
    model = T.tf_efficient_stem()
    text, report = judged(model, (3, 32, 32))  # 3×3 stride 2 at 32: (16−1)·2 + 3 − 32 = 1 → 0 before, 1 after
    state_keys_survive(model, report)
    assert report.layer("conv_stem").output_shape == (1, 16, 16, 16)  # ⌈32/2⌉
    # conv_down, 5×5 stride 2 at 16: (8−1)·2 + 5 − 16 = 3 → 1 before, 2 after
    assert report.layer("conv_down").output_shape == (1, 32, 8, 8)


def test_conv2d_same_with_a_bias_and_even_kernels():
    # a bias (a parameter read by the reader, never a traced tensor) and 4×4 / 2×2 stride-2 kernels, uneven
    # on both axes at 11×14: 4×4: (6−1)·2 + 4 − 11 = 3 → 1, 2 and (7−1)·2 + 4 − 14 = 2 → 1, 1
    model = torch.nn.Sequential(T.Conv2dSame(3, 8, 4, stride=2), torch.nn.ReLU(), T.Conv2dSame(8, 4, 2, stride=2))
    text, report = judged(model, (3, 11, 14))
    state_keys_survive(model, report)
    assert [report.layer(n).output_shape for n in ("0", "2")] == [(1, 8, 6, 7), (1, 4, 3, 4)]


def test_an_exported_uneven_padding_imports_back_as_its_pairs():
    from cnncalc.backend.build import build_model
    from cnncalc.interop.torch_export import exported_module

    spec = ("input: 2x9x10\nlayers:\n  - {name: c, type: conv2d, out_channels: 3, kernel_size: 3, stride: 2, padding: same}\n"
            "  - {name: d, type: conv2d, out_channels: 2, kernel_size: 3, padding: [[0, 2], [1, 0]], "
            "padding_mode: reflect}\n")
    report = cnncalc.analyze(parse_spec(spec))
    net = exported_module(report, build_model(report))
    assert list(net.state_dict()) == ["c.weight", "c.bias", "d.weight", "d.bias"]
    text, back = judged(net, (2, 9, 10))
    # 9 rows: (5−1)·2 + 3 − 9 = 2 → 1, 1; 10 columns: (5−1)·2 + 3 − 10 = 1 → 0, 1
    assert back.layer("c").layer.padding == ((1, 1), (0, 1))
    assert back.layer("d").layer.padding == ((0, 2), (1, 0)) and back.layer("d").layer.padding_mode == "reflect"


# ---- 3. a bare learnable tensor: ConvNeXt's gamma -----------------------------------------------------
def renamed_keys(notes):
    """The 'KEY (shape) → NAME.weight (shape)' pairs import's note lists (the first three)."""
    return re.findall(r"(\S+) \([\d, ]*\) → (\S+\.weight) \(", " ".join(notes))


def test_convnext_gamma_is_a_layer_scale_holding_the_tensor_as_its_weight():
    from cnncalc.interop.torch_import import import_model

    model = T.ConvNeXtLite(ls_init_value=0.25)
    text, report = judged(model, (3, 32, 32))  # the proof loads gamma (C,) as the layer's weight (C, 1, 1)
    assert [r.name for r in report.layers if r.type == "layer_scale"] == \
           ["stages.0.0.gamma", "stages.0.1.gamma", "stages.1.2.gamma"]
    assert report.layer("stages.0.0.gamma").layer.init_value == 0.25  # every element 0.25: a fresh model's init
    # 3 scales of 32, 32 and 48 channels: 112 of the parameters
    assert sum(r.params for r in report.layers if r.type == "layer_scale") == 32 + 32 + 48
    _, notes = import_model(model, (3, 32, 32), "cn", [])
    assert "3 learnable scales read as `layer_scale` layers" in " ".join(notes)
    assert renamed_keys(notes) == [(f"{k}", f"{k}.weight") for k in ("stages.0.0.gamma", "stages.0.1.gamma",
                                                                      "stages.1.2.gamma")]
    names = {r.name for r in report.layers}
    for key in model.state_dict():  # every other key survives as it is
        assert key.rpartition(".")[0] in names or key.endswith(".gamma"), key


def test_timm_layer_scale_2d_imports_and_a_trained_scale_writes_no_init_value():
    model = T.ScaledBlocks()
    with torch.no_grad():
        model.ls[1].gamma.copy_(torch.linspace(-1, 1, 8))  # trained: one factor per channel
    text, report = judged(model, (3, 8, 8))
    assert [r.type for r in report.layers] == ["conv2d", "layer_scale"] * 3
    assert report.layer("ls.0.gamma").layer.init_value == 0.1  # float32 0.1, written as 0.1
    assert "init_value" not in text.split("ls.1.gamma")[1].split("}")[0]


def test_a_channels_last_scale_is_a_layer_scale_where_the_channels_were_moved_last():
    from cnncalc.interop.torch_import import import_model

    model = T.ScaledBlocks(channels_last=True)  # timm's LayerScale between permutes: γ (C,) on the last axis
    text, report = judged(model, (3, 6, 5))
    assert [r.layer.type for r in report.layers if r.type == "layer_scale"] == ["layer_scale"] * 3
    assert report.layer("ls.0.gamma").output_shape == (1, 6, 5, 8) and report.layer("ls.0.gamma").params == 8
    _, notes = import_model(model, (3, 6, 5), "cl", [])
    assert not any(note.startswith("left out") for note in notes)  # LayerScale's gamma is used
    assert renamed_keys(notes) == [(f"ls.{i}.gamma", f"ls.{i}.gamma.weight") for i in range(3)]


class Scaled(torch.nn.Module):
    """A conv times a tensor attribute: a parameter (C,) on the last axis of an (N, C, H, W) map
    (W = C), or a constant scale (a buffer)."""

    def __init__(self, buffer=False):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 1)
        if buffer:
            self.register_buffer("scale", torch.full((8, 1, 1), 0.5))
        else:
            self.scale = torch.nn.Parameter(torch.ones(8))

    def forward(self, x):
        return self.conv(x) * self.scale


def test_scales_no_layer_type_reads_are_refused_once_grouped_with_the_layer_that_would_hold_it():
    stage = torch.nn.Sequential(*[Scaled(buffer=True) for _ in range(3)])
    for i in (1, 2):
        stage[i].conv = torch.nn.Conv2d(8, 8, 1)
    model = torch.nn.Sequential(OrderedDict(stage=stage))
    with pytest.raises(cnncalc.CnnError, match="cannot be written as a spec") as err:
        cnncalc.spec_from_torch(model, (3, 8, 8))
    msg = said(err)
    lines = [line for line in msg.splitlines()[1:] if "scale" in line]
    assert len(lines) == 1  # three modules, one cause
    assert lines[0].strip().startswith("3 × the tensor attribute self.stage.N.scale used directly in forward")
    assert "self.stage.0.scale" in lines[0] and "Scaled" in lines[0] and "`layer_scale`" in lines[0]
    assert "README, section 'The spec'" in msg
    # a parameter on the last axis of a tensor whose channels are on axis 1 (8 columns, 8 channels): a
    # layer_scale whose `dim` says the axis it scales, as torch scales it
    text, report = judged(Scaled(), (3, 5, 8))
    (row,) = [r for r in report.layers if r.type == "layer_scale"]
    assert (row.layer.dim, row.weights, row.params) == (-1, {"weight": (8,)}, 8)


def test_convnext_block_without_layer_scale_imports():
    model = T.convnext_without_layer_scale()
    text, report = judged(model, (3, 32, 32))
    state_keys_survive(model, report)


# ---- weight-standardised convs (NF-ResNet, NFNet, BiT): std_conv2d ----------------------------------------
def test_weight_standardised_convs_are_std_conv2d_layers():
    model = T.NFStem()
    text, report = judged(model, (3, 16, 16))
    state_keys_survive(model, report)
    assert [report.layer(n).type for n in ("stem.0", "stem.2", "conv1", "conv2")] == ["std_conv2d"] * 4
    assert report.layer("conv2").layer.scaled is False and report.layer("conv1").layer.scaled is True


def test_std_conv_variants_gamma_eps_and_tf_same_padding():
    model = T.StdConvs()
    text, report = judged(model, (3, 15, 15))
    state_keys_survive(model, report)
    a, c, d = (report.layer(n).layer for n in "acd")
    assert (a.eps, a.scaled) == (1e-5, True)
    assert a.gamma * 27 ** -0.5 == model.a.scale and abs(a.gamma - 1.7139588594436646) < 1e-15  # the very scale
    assert c.padding == "same" and report.layer("c").output_shape == (1, 6, 4, 4)  # ⌈8/2⌉: TF pads 0 before, 1 after
    assert d.scaled and not d.bias
    # params: the conv's and the gain (C_out): a 8·3·9 + 8 + 8; b 8·4·9; c 6·8·9; d 4·6 + 4
    assert [report.layer(n).params for n in "abcd"] == [8 * 27 + 8 + 8, 8 * 4 * 9, 6 * 8 * 9, 4 * 6 + 4]


def test_std_conv_element_wise_ops_are_the_bias_and_the_standardisation():
    from cnncalc.spec.expand import parse_spec as parse

    report = cnncalc.analyze(parse("input: 3x8x8\nbatch: 2\nlayers:\n"
                                   "  - {type: std_conv2d, out_channels: 4, kernel_size: 3, scaled: true}\n"
                                   "  - {type: std_conv2d, out_channels: 2, kernel_size: 1, bias: false}\n"))
    first, second = report.layers
    w1, w2 = 4 * 3 * 9, 2 * 4 * 1
    # the bias: one add per output element; the standardisation: 6 per weight + 4 per filter, scaled + 1 + 1
    assert first.elementwise_ops == 2 * 4 * 6 * 6 + 6 * w1 + 4 * 4 + w1 + 4
    assert second.elementwise_ops == 6 * w2 + 4 * 2
    assert first.params == 4 * 27 + 4 + 4 and first.macs == 2 * 4 * 36 * 27


def test_a_std_conv_it_cannot_read_is_refused_whole_with_the_reason():
    model = T.NFStem()
    model.conv2.padding_mode = "reflect"
    with pytest.raises(cnncalc.CnnError, match="cannot be written as a spec") as err:
        cnncalc.spec_from_torch(model, (3, 16, 16))
    msg = said(err)
    assert "StdConv2d (module conv2), a weight-standardised conv" in msg and "std_conv2d" in msg
    assert "tensor attribute" not in msg  # the module whole, not each of its tensors


# ---- 4. getitem with constant slices: GhostNet's out[:, :c] -------------------------------------------
def test_ghost_module_slice_is_a_narrow():
    model = T.GhostNetLite()
    text, report = judged(model, (3, 32, 32))
    state_keys_survive(model, report)
    narrows = [r for r in report.layers if r.type == "narrow"]
    assert [r.output_shape for r in narrows] == [(1, 30, 16, 16)]  # ghost1 keeps all 24: no layer
    assert narrows[0].name == "ghost2.narrow"


@pytest.mark.parametrize("index, words", [
    ("x[:, 0]", "indexing a tensor with"),
    ("x[:, ::2]", "a slice with step 2"),
    ("x[:, :, 1:]", "a slice along an axis other than the channels"),
])
def test_slices_no_layer_holds_are_refused_plainly(index, words):
    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 4, 1)

        def forward(self, x):
            x = self.conv(x)
            return eval(index, {"x": x})  # noqa: S307 - the expression under test, a constant

    with pytest.raises(cnncalc.CnnError, match="cannot be written as a spec") as err:
        cnncalc.spec_from_torch(Net(), (3, 8, 8))
    assert words in said(err)


def test_slices_that_keep_everything_are_no_layer():
    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 4, 1)

        def forward(self, x):
            return self.conv(x)[:, :, ...][:, 1:3]

    text, report = judged(Net(), (3, 5, 5))
    assert [r.type for r in report.layers] == ["conv2d", "narrow"]


# ---- 5. never a traceback -----------------------------------------------------------------------------
def test_negative_index_into_split_pieces():
    text, report = judged(T.SplitNegative(), (3, 8, 8))
    assert report.layer("split.2").type == "narrow"


def test_refused_op_then_contiguous_is_listed_once():
    with pytest.raises(cnncalc.CnnError, match="cannot be written as a spec") as err:
        cnncalc.spec_from_torch(T.RefusedThenContiguous(), (3, 8, 8))
    assert "torch.cumsum" in said(err) and "contiguous" not in said(err)


def test_sys_exit_in_forward_is_a_plain_error():
    with pytest.raises(cnncalc.CnnError, match=re.escape("raised SystemExit(0) (sys.exit)")):
        cnncalc.spec_from_torch(T.Exits(), (3, 8, 8))


# ---- 7. dict and list outputs ---------------------------------------------------------------------------
def test_segmentation_dict_output_is_one_output_per_key():
    model = T.SegHead()
    text, report = judged(model, (3, 32, 32))
    assert report.outputs == ["out", "aux"]
    state_keys_survive(model, report)


def test_list_output():
    text, report = judged(T.ListOut(), (3, 8, 8))
    assert report.outputs == ["a", "b"]


# ---- 8. top-level nn.Sequential, modules forward never calls ---------------------------------------------
def test_top_level_sequential():
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.BatchNorm2d(8), torch.nn.ReLU(),
                                torch.nn.Flatten(), torch.nn.Linear(8 * 6 * 6, 4))
    text, report = judged(model, (3, 8, 8))
    state_keys_survive(model, report)


def test_aux_heads_eval_never_calls_are_left_out_and_said():
    from cnncalc.interop.torch_import import import_model

    model = T.WithAux().eval()
    text, notes = import_model(model, (3, 8, 8), "aux", [])
    report = cnncalc.analyze(parse_spec(text))
    want = torch_numbers(model, (3, 8, 8))
    assert (report.totals["params"], report.totals["flops"]) == (want["params"], want["flops"])
    assert want["params"] == 8 * 3 * 9 + 8 + 8 * 3 + 3  # conv and fc; aux1 is not counted
    said = " ".join(notes)
    assert "left out: aux1.0 " in said and "left out: aux1.1 " in said
    assert "without the 7 keys of modules forward never calls" in said  # 2 + 5 (the batch norm's buffers too)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["fcn_resnet50", "googlenet"])
def test_torchvision_zoo(name):
    """Two torchvision models imported and proved; opt-in (CNNCALC_TV_ZOO=1), since torchvision must be
    built for the installed torch."""
    if not os.environ.get("CNNCALC_TV_ZOO"):
        pytest.skip("torchvision zoo: set CNNCALC_TV_ZOO=1 with a torchvision built for this torch")
    models = pytest.importorskip("torchvision.models", reason="torchvision zoo: torchvision is not installed")

    model = models.get_model(name, weights=None, **({"aux_loss": True} if name.startswith("fcn") else {}))
    judged(model.eval(), (3, 224, 224))


# ---- timm's Linear: an nn.Linear subclass whose forward is F.linear on its own weight ----------------
def test_timms_linear_is_read_as_the_linear_it_computes():
    # 9 of the 29 timm CNNs refused in benchmarks/timm_zoo.py (MobileNetV3/V4, GhostNet, LCNet, ...)
    model = T.LinearHead()
    text, report = judged(model, (3, 16, 16))
    state_keys_survive(model, report)
    assert report.layer("classifier").type == "linear" and report.layer("classifier").params == 16 * 10 + 10


def test_a_linear_subclass_that_computes_something_else_is_traced_through_not_trusted():
    class Doubled(torch.nn.Linear):  # same tensors, another computation: not a linear layer
        def forward(self, input):
            return torch.nn.functional.linear(input, self.weight * 2, self.bias)

    from cnncalc.interop.torch_import import layer_class

    assert layer_class(T.Linear(4, 3)) is not None and layer_class(T.Linear(4, 3, bias=False)) is not None
    assert layer_class(Doubled(4, 3)) is None
    with pytest.raises(cnncalc.CnnError):
        cnncalc.spec_from_torch(T.LinearHead(linear=Doubled), (3, 16, 16))


def test_a_sum_started_at_zero_is_the_tensor_itself():
    # timm's MobileOne and FastViT blocks: `scale_out = 0 … out = scale_out + identity_out` when a
    # branch is absent: the tensor + 0 is the tensor (an identity), never refused as "add with a constant"
    model = T.MobileOneStack().eval()
    text, report = judged(model, (3, 16, 16))
    assert report.layer("b2.add").type == "identity" and report.layer("b3.add").type == "identity"
    assert report.layer("b1.add").type == "add"
    from cnncalc.layers.routes import Traced, merge

    read = merge("add")
    with pytest.raises(Exception, match="with a constant"):
        read(None, Traced.__new__(Traced), 1)  # + 1 changes the tensor
    with pytest.raises(Exception, match="with a constant"):
        read(None, Traced.__new__(Traced), False)  # a bool is no number here


# ---- ECA (ecaresnet*): x * y.expand_as(x) is the mul's own broadcasting -------------------------------
def test_eca_expand_as_before_a_mul_is_the_broadcast():
    model = T.EcaNet()
    text, report = judged(model, (3, 12, 12))
    state_keys_survive(model, report)
    gate = report.layer("se.mul")
    assert gate.type == "mul" and [report.layer(i).output_shape for i in gate.inputs] == [(1, 16, 12, 12),
                                                                                           (1, 16, 1, 1)]


def test_an_expand_no_merge_broadcasts_is_refused():
    with pytest.raises(cnncalc.CnnError, match="Tensor.expand_as"):
        cnncalc.spec_from_torch(T.EcaNet(expand_other=True), (3, 12, 12))


# ---- split attention (ResNeSt, SK-ResNet): sum over axis 1, torch.stack along a new axis 1 ---------------
@pytest.mark.parametrize("paths, radix", [(2, 2), pytest.param(3, 4, marks=pytest.mark.slow)])
def test_split_attention_sums_and_stacks_are_narrows_added_and_a_concat(paths, radix):
    model = T.SplitNets(paths, radix)
    text, report = judged(model, (3, 8, 8))
    state_keys_survive(model, report)
    added = report.layer("splat.sum.add")
    assert added.type == "add" and len(added.inputs) == radix
    assert [report.layer(i).type for i in added.inputs] == ["narrow"] * radix
    assert report.layer("splat.sum.out").output_shape == (1, 16, 8, 8)
    # R − 1 additions per output element: what the sum does (16·8·8 outputs)
    assert added.elementwise_ops == (radix - 1) * 16 * 8 * 8
    cat = report.layer("sk.stack.cat")
    assert cat.type == "concat" and cat.output_shape == (1, paths, 24, 8, 8)


def test_a_sum_kept_and_a_stack_of_one_tensor_twice():
    text, report = judged(T.SumOver("keep"), (3, 5, 5))
    assert report.layer("sum.add").output_shape == (1, 1, 5, 5)


def test_a_sum_over_a_spatial_axis_is_a_sum_layer():
    text, report = judged(T.SumOver("spatial"), (3, 5, 5))
    (row,) = [r for r in report.layers if r.type == "sum"]
    assert (row.layer.dim, row.layer.keepdim, row.output_shape) == (2, False, (1, 4, 5))
    assert row.elementwise_ops == (5 - 1) * 4 * 5  # 4 additions per output element


@pytest.mark.parametrize("how, words", [("batch", "sum over other than one axis after the batch"),
                                        ("dtype", "with a dtype"), ("stack0", "other than a new axis 1")])
def test_sums_and_stacks_no_layers_write_are_refused(how, words):
    with pytest.raises(cnncalc.CnnError, match=words):
        cnncalc.spec_from_torch(T.SumOver(how), (3, 5, 5))


# ---- one number times a tensor: NF-ResNet's α and β, NFNet's gamma and skipinit, HGNetV2's affine --------
def test_hgnetv2_learnable_affine_is_a_learnable_scale_with_bias_keeping_its_keys():
    model = T.HGConvLab()
    text, report = judged(model, (3, 6, 6))
    state_keys_survive(model, report)
    lab = report.layer("lab")
    assert (lab.type, lab.params, lab.weights) == ("scale", 2, {"scale": (1,), "bias": (1,)})
    assert lab.elementwise_ops == 2 * 8 * 6 * 6  # a product and a sum per element


@pytest.mark.parametrize("skipinit, gamma_act", [(True, True), (False, False)])
def test_nf_blocks_constant_factors_and_skipinit_gain(skipinit, gamma_act):
    model = T.NFNetLite(skipinit, gamma_act)
    text, report = judged(model, (3, 12, 12))
    scales = {r.name: r.layer for r in report.layers if r.type == "scale"}
    constant = sorted(s.factor for s in scales.values() if not s.learnable)
    want = ([0.2, 1.7015043497085571, 1.7015043497085571, 1.7015043497085571, 2.0] if gamma_act else [0.2, 2.0])
    assert constant == pytest.approx(want)  # α, the activations' gamma (×3), attn_gain (β = 1 is the tensor itself)
    learnable = [n for n, s in scales.items() if s.learnable]
    assert learnable == (["block.skipinit_gain"] if skipinit else [])
    if skipinit:  # the 0-d parameter, held as the layer's (1,) scale: the proof loaded it reshaped
        assert report.layer("block.skipinit_gain").params == 1


def test_a_tensor_times_a_number_in_place_changes_what_later_ops_read():
    class InPlace(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 4, 1)

        def forward(self, x):
            y = self.conv(x)
            y.mul_(3.0)  # result unused: y itself is changed
            return y + 1 * y

    text, report = judged(InPlace(), (3, 4, 4))
    # (judged: equal outputs) both operands read the scaled tensor: `y` directly, `1 * y` as an identity of it
    assert report.layer("add").inputs == ["scale", "mul"] and report.layer("mul").inputs == ["scale"]


def test_a_tensor_times_a_tensor_in_place_is_a_mul_later_ops_read():
    class Gate(torch.nn.Module):  # SE-style gating written in place: x.mul_(gate), its result unused
        def __init__(self):
            super().__init__()
            self.conv, self.fc = torch.nn.Conv2d(3, 4, 1), torch.nn.Conv2d(4, 4, 1)

        def forward(self, x):
            y = self.conv(x)
            g = self.fc(y.mean((2, 3), keepdim=True)).sigmoid()
            y.mul_(g)
            return y.flatten(1)

    text, report = judged(Gate(), (3, 4, 4))
    assert report.layer("mul").type == "mul" and report.layer("flatten").inputs == ["mul"]


# ---- an activation module of one functional op inside BatchNormAct2d (efficientformerv2: timm's GELU) ----
@pytest.mark.parametrize("act, approximate", [(T.GELU, "none"), (T.GELUTanh, "tanh")])
def test_batchnorm_act_with_timms_gelu_is_a_batch_norm_then_gelu(act, approximate):
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1), T.BatchNormAct2d(4, act_layer=act))
    text, report = judged(model, (3, 6, 6))
    state_keys_survive(model, report)
    gelu = report.layer("1_act")
    assert gelu.type == "gelu" and gelu.layer.approximate == approximate


# ---- TResNet's BlurPool2d: a fixed binomial filter held as a buffer ------------------------------------
def test_blur_pool_is_blur_pool2d_with_its_filter_as_a_buffer():
    model = T.TResNetAA()
    text, report = judged(model, (3, 13, 13))  # params, buffers (8·9 + 8·25) and FLOPs as torch counts them
    aa, aa5 = report.layer("aa"), report.layer("aa5")
    # ⌊(13 + 2·1 − 3)/2⌋ + 1 = 7; then ⌊(7 + 2·2 − 5)/2⌋ + 1 = 4
    assert (aa.output_shape, aa5.output_shape) == ((1, 8, 7, 7), (1, 8, 4, 4))
    assert (aa.params, aa.buffers, aa.macs) == (0, 8 * 9, 8 * 49 * 9)
    assert aa5.layer.pad_mode == "constant" and aa5.buffers == 8 * 25
    assert report.layer("aa").layer.coefficients(5) == [1 / 16, 4 / 16, 6 / 16, 4 / 16, 1 / 16]


def test_blur_pool_without_channels_is_refused_by_name():
    """timm's BlurPool2d(channels=None) keeps one filter and expands it in forward: refused, named."""
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), T.BlurPool2d(None))
    with pytest.raises(cnncalc.CnnError) as err:
        cnncalc.spec_from_torch(model, (3, 9, 9))
    assert "BlurPool2d built without channels" in said(err) and "bug in cnncalc" not in said(err)
