"""`cnncalc import` of timm's attention written op by op (#29): LambdaNet's lambda layer (matmul),
EfficientFormer's and LeViT's attention (a bias table gathered by a constant index, split along the
head axis, the token mean, LeViT's LinearNorm and strided token subsampling), on faithful copies of
timm's module code (tests/data/timm_blocks.py). Each spec is judged against torch itself (params
and buffers summed from the model, FLOPs from FlopCounterMode, output shapes from running it) and
proved by import (state_dict loaded strictly into the exported module, equal outputs)."""
import sys

import pytest

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.slow  # faithful timm blocks traced, imported and proved against torch

import cnncalc  # noqa: E402
from cnncalc.errors import CnnError  # noqa: E402
from cnncalc.layers.attention import bias_index  # noqa: E402
from cnncalc.spec.expand import parse_spec  # noqa: E402

from conftest import DATA, torch_numbers  # noqa: E402

sys.path.insert(0, DATA)
import timm_blocks as T  # noqa: E402


def judged(model, shape):
    """The imported spec's report, after checking its totals and output shapes against torch's own."""
    model.eval()
    text = cnncalc.spec_from_torch(model, shape)  # prove=True: state_dict and outputs checked by import
    report = cnncalc.analyze(parse_spec(text))
    want = torch_numbers(model, shape)
    assert (report.totals["params"], report.totals["buffers"], report.totals["flops"]) == \
        (want["params"], want["buffers"], want["flops"])
    assert [report.layer(o).output_shape for o in report.outputs] == want["outputs"]
    return text, report


def randomised(model):
    """Every parameter and batch-norm statistic drawn at random (timm starts the bias tables at zero,
    which a wrong gather would reproduce)."""
    torch.manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn_like(p) * 0.5)
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.running_mean.copy_(torch.randn_like(m.running_mean) * 0.1)
                m.running_var.copy_(torch.rand_like(m.running_var) + 0.5)
    return model


def test_the_bias_index_rule_is_timms():
    """attention_bias reads the table where LeViT's own index code says (a grid of 5×5 keys, queries
    at stride 2 and 1; EfficientFormer's 4×3)."""
    for res, stride in (((5, 5), 2), ((5, 5), 1), ((4, 3), 1), ((4, 3), 2)):
        m = T.LevitAttentionDownsample(8, 8, key_dim=4, num_heads=2, stride=stride, resolution=res)
        assert bias_index("abs", res, stride) == m._compute_attention_bias_idxs().tolist()


def test_lambda_layer_imports_exactly_with_matmuls():
    text, report = judged(randomised(T.LambdaNetLite()), (3, 6, 6))
    kinds = [r.type for r in report.layers]
    assert kinds.count("matmul") == 3  # k @ v, q @ content λ, q @ position λ
    # q @ content λ: (1, 4 heads, 36 positions, 4) @ (1, 1, 4, 4): 4·36·4 outputs of 4 products
    row = next(r for r in report.layers if r.type == "matmul" and r.ctx.ins[1][1] == 1 and len(r.ctx.ins[1]) == 4)
    assert row.macs == 4 * 36 * 4 * 4
    assert "conv3d" in kinds


def test_efficientformer_attention_imports_exactly_with_its_bias_table():
    model = randomised(T.EfficientFormerLite())
    text, report = judged(model, (3, 8, 6))
    (bias,) = [r for r in report.layers if r.type == "attention_bias"]
    assert (bias.layer.kind, bias.layer.grid(), bias.layer.stride) == ("abs", (4, 3), 1)
    assert bias.params == 2 * 4 * 3 and bias.buffers == 12 * 12  # the table, and its index (persistent)
    assert bias.name == "token_mixer.attention_biases"
    (scale,) = [r for r in report.layers if r.type == "layer_scale"]
    assert scale.layer.dim == -1 and scale.params == 16
    assert any(r.type == "global_avgpool" for r in report.layers)  # x.mean(dim=1) of the tokens
    assert any(r.type == "scale" and r.layer.factor == 0.5 for r in report.layers)  # (x + x_dist) / 2


def test_levit_downsampling_attention_imports_exactly():
    text, report = judged(randomised(T.LevitLite()), (3, 10, 10))
    (bias,) = [r for r in report.layers if r.type == "attention_bias"]
    # keys on the 5×5 grid, queries on rows and columns 0, 2, 4: 9 of them
    assert (bias.layer.grid(), bias.layer.stride, bias.output_shape[2:]) == ((5, 5), 2, (9, 25))
    assert sum(r.type == "batchnorm1d" for r in report.layers) == 4  # kv, q.ln, proj.ln, mlp: LinearNorm's bn
    assert "down.kv.bn.running_mean" in dict(_state_names(report))
    (sub,) = [r for r in report.layers if r.type == "avgpool2d"]
    assert (sub.layer.kernel_size, sub.layer.stride, sub.output_shape) == ((1, 1), (2, 2), (1, 8, 3, 3))


def _state_names(report):
    for r in report.layers:
        for k in (*r.layer.weights(r.ctx), *r.layer.buffers(r.ctx)):
            yield f"{r.name}.{k}", r


def test_a_table_read_at_no_grid_positions_is_refused_by_name():
    model = T.EfficientFormerLite()
    idx = model.token_mixer.attention_bias_idxs
    idx.copy_(idx.flip(0))  # a table read in another order than any grid's
    with pytest.raises(CnnError) as err:
        cnncalc.spec_from_torch(model, (3, 8, 6))
    text = "\n".join(p.message for p in err.value.problems)
    assert "attention_bias_idxs" in text and "attention_biases" in text and "Traceback" not in text
    assert "an `attention_bias` layer holds a bias table" in text  # the type that would hold it, and why not


def test_mobilevitv2_block_branching_on_sizes_imports_exactly():
    """MobileVitV2Block reads x.shape and branches on it (`if new_h != H`): fx cannot trace it
    symbolically; import traces it again at the input's sizes. Its context vector is a `sum` over the
    patches, its unfold and fold permutes and reshapes."""
    text, report = judged(randomised(T.MobileVitV2Lite()), (3, 6, 4))
    (row,) = [r for r in report.layers if r.type == "sum"]
    # (1, 8 channels, 4 pixels per patch, 6 patches) summed over the patches, kept
    assert (row.layer.dim, row.layer.keepdim, row.output_shape) == (-1, True, (1, 8, 4, 1))
    assert [r.type for r in report.layers].count("permute") == 2
    assert "upsample" not in [r.type for r in report.layers]  # 6×4 is whole patches: no resize taken


def test_a_size_branch_taken_at_another_input_size_is_the_branch_of_that_size():
    text, report = judged(randomised(T.MobileVitV2Lite()), (3, 5, 4))  # 5 rows: resized to 6 first
    assert report.layers[1].type == "upsample"


def test_edgenext_xca_with_its_fourier_position_encoding_imports_exactly():
    """EdgeNeXt: the Fourier position encoding added to the tokens (`fourier_pos_embed`, under the
    module's own path: its conv's keys stay), q, k, v taken apart by permute + unbind, F.normalize,
    the per-head temperature and the channels-last gammas (`layer_scale` with dim)."""
    model = randomised(T.EdgeNeXtXcaLite())
    text, report = judged(model, (3, 4, 3))
    (pos,) = [r for r in report.layers if r.type == "fourier_pos_embed"]
    assert (pos.name, pos.layer.resolution, pos.layer.hidden_dim) == ("pos_embd", (4, 3), 4)
    assert pos.params == 8 * 8 + 8 and pos.macs == 12 * 8 * 8  # 1×1 conv 2·4 → 8 at 4·3 positions
    assert [r.type for r in report.layers].count("normalize") == 2
    scales = {r.name: r.layer for r in report.layers if r.type == "layer_scale"}
    # the temperature scales axis 1 of (N, heads, d, d), a matmul of permuted tensors: said, as the gammas' last axis
    assert {n: s.dim for n, s in scales.items()} == {"gamma_xca": -1, "xca.temperature": 1, "gamma": -1}
    assert report.layer("xca.temperature").weights == {"weight": (2, 1, 1)}  # one per head


def test_maxvit_relative_position_bias_imports_exactly_as_the_relative_kind():
    """CoAtNet's/MaxViT's Attention2d written out (TIMM_FUSED_ATTN=0): RelPosBias's table
    ((2h − 1)·(2w − 1), heads) gathered by a non-persistent index, chunk along the head-dim axis."""
    model = randomised(T.MaxxVitAttention2d(8, dim_head=4, window_size=(3, 4)))
    text, report = judged(model, (8, 3, 4))
    (bias,) = [r for r in report.layers if r.type == "attention_bias"]
    assert (bias.layer.kind, bias.layer.grid(), bias.name) == ("relative", (3, 4), "rel_pos.relative_position_bias_table")
    assert bias.params == 5 * 7 * 2 and bias.buffers == 12 * 12  # the table; the index, as timm keeps it
    assert bias_index("relative", (3, 4)) == T.gen_relative_position_index((3, 4)).tolist()


def test_a_bias_given_to_fused_attention_is_refused_saying_why():
    """timm's default runs F.scaled_dot_product_attention, which FlopCounterMode counts as no FLOPs on
    the CPU: nothing to prove a spec against, so refused, saying so."""
    with pytest.raises(CnnError) as err:
        cnncalc.spec_from_torch(T.MaxxVitAttention2d(8, dim_head=4, fused_attn=True), (8, 4, 4))
    text = "\n".join(p.message for p in err.value.problems)
    assert "relative_position_bias_table" in text and "attn_mask of F.scaled_dot_product_attention" in text
    assert "Traceback" not in text
