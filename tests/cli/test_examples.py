"""The examples reproduce published numbers and the totals their headers state."""
import glob
import os
import re
from math import prod

import pytest

import cnncalc

from conftest import EXAMPLES, example
from reference import ALEXNET_STAGES, RESNET50_STAGES, TORCHVISION, VGG_STAGES

GOOD = sorted(glob.glob(os.path.join(EXAMPLES, "*.yaml")))
BROKEN = sorted(glob.glob(os.path.join(EXAMPLES, "broken", "*.yaml")))
report = example


@pytest.mark.parametrize("path", GOOD, ids=os.path.basename)
def test_example_rows_sum_to_the_totals(path):
    r = cnncalc.analyze(cnncalc.load_spec(path), batch=2)
    t = r.totals
    assert r.layers and t["params"] > 0
    for key in ("params", "trainable_params", "buffers", "macs", "flops", "elementwise_ops", "activation_bytes"):
        assert sum(getattr(row, key) for row in r.layers) == t[key], key
    assert t["params"] == sum(prod(s) for row in r.layers if not row.shared_with for s in row.weights.values())
    assert t["activation_bytes"] == 4 * sum(prod(row.output_shape) for row in r.layers)
    assert t["non_trainable_params"] == t["params"] - t["trainable_params"]
    assert t["param_bytes"] == 4 * t["params"] and t["input_bytes"] == 4 * prod(r.input_shape)
    assert t["inference_memory_bytes"] == t["param_bytes"] + t["buffer_bytes"] + t["inference_peak_activation_bytes"]
    assert max(4 * prod(row.output_shape) for row in r.layers) <= t["inference_peak_activation_bytes"] \
        <= t["input_bytes"] + t["activation_bytes"] + max(row.layer.scratch(row.ctx, 4) for row in r.layers)


@pytest.mark.parametrize("model", sorted(TORCHVISION))
def test_torchvision_reference(model):
    t = report(model).totals
    ref = TORCHVISION[model]
    assert (t["params"], t["buffers"], t["macs"], t["flops"]) == (ref["params"], ref["buffers"], ref["macs"], ref["flops"])


def test_broken_alexnet_at_224_is_rejected_with_the_arithmetic():
    (path,) = [p for p in BROKEN if p.endswith("alexnet_seed_224.yaml")]
    with pytest.raises(cnncalc.CnnError) as err:
        cnncalc.analyze(cnncalc.load_spec(path))
    (p,) = err.value.problems
    lines = open(path).read().splitlines()
    assert lines[p.line - 1].lstrip().startswith("- {name: fc6")
    assert lines[p.line - 1][:p.col - 1].endswith("in_features: ")  # points at the value 9216
    assert (p.layer, p.index) == ("fc6", 15)
    assert p.message == f"in_features=9216 but flatten gives 256×5×5 = {256 * 5 * 5}"


def test_seed_alexnet_fits_at_227():
    r = report("alexnet_seed")
    # ⌊(227 + 2 − 11)/4⌋ + 1 = 55 → 27 → 27 → 13 → 13 → 13 → 6
    assert [r.layer(n).output_shape[2] for n in ("conv1", "pool1", "conv2", "pool2", "conv3", "conv4", "pool3")] == \
        [55, 27, 27, 13, 13, 13, 6]
    assert r.totals["params"] == (96 * 3 * 121 + 96) + (256 * 96 * 25 + 256) + (384 * 256 * 9 + 384) + \
        (256 * 384 * 9 + 256) + (9216 * 4096 + 4096) + (4096 * 4096 + 4096) + (4096 * 1000 + 1000) == 61_050_856
    assert r.totals["macs"] == 96 * 55 * 55 * 363 + 256 * 27 * 27 * 96 * 25 + 2 * 384 * 13 * 13 * 256 * 9 + \
        9216 * 4096 + 4096 * 4096 + 4096 * 1000 == 910_975_520


# totals the example headers state, each recomputed here by hand
HAND = {
    "mnist_net": dict(params=(32 * 9 + 32) + (64 * 32 * 4 + 64) + (2304 * 10 + 10),
                      macs=32 * 26 * 26 * 9 + 64 * 12 * 12 * 32 * 4 + 2304 * 10),
    "mnist_keras": dict(params=(32 * 9 + 32) + (64 * 32 * 9 + 64) + (1600 * 10 + 10)),
    "lenet5": dict(params=(6 * 25 + 6) + (16 * 6 * 25 + 16) + (400 * 120 + 120) + (120 * 84 + 84) + (84 * 10 + 10),
                   macs=6 * 28 * 28 * 25 + 16 * 10 * 10 * 6 * 25 + 400 * 120 + 120 * 84 + 84 * 10),
    "googlenet_block": dict(params=(64 * 192 + 64) + (96 * 192 + 96) + (128 * 96 * 9 + 128) + (16 * 192 + 16)
                            + (32 * 16 * 25 + 32) + (32 * 192 + 32),
                            macs=28 * 28 * (64 * 192 + 96 * 192 + 128 * 96 * 9 + 16 * 192 + 32 * 16 * 25 + 32 * 192)),
    "deeplab_aspp": dict(params=(128 * 256 + 256) + 3 * (128 * 256 * 9 + 256) + (128 * 256 + 256) + (128 * 640 + 256)),
    "c3d": dict(params=(64 * 3 * 27 + 64) + (128 * 64 * 27 + 128) + (256 * 128 * 27 + 256) + (256 * 256 * 27 + 256)
                + (512 * 256 * 27 + 512) + 3 * (512 * 512 * 27 + 512) + (8192 * 4096 + 4096) + (4096 * 4096 + 4096)
                + (4096 * 487 + 487)),
    "hourglass": dict(params=(32 * 3 * 9 + 32 * 32 * 9 + 64 * 32 * 9 + 64 * 64 * 9 + 128 * 64 * 9 + 128 * 128 * 9)
                      + (128 * 64 * 4 + 64) + (64 * 128 * 9 + 64 * 64 * 9) + (32 * 96 * 9 + 32 * 32 * 9) + (2 * 32 + 2)
                      + 2 * 2 * (32 + 64 + 128 + 64 + 32),
                      buffers=2 * (2 * (32 + 64 + 128 + 64 + 32)) + 10),
    "conv1d_audio": dict(params=(32 * 80 + 32) + (32 * 32 * 3 + 32) + (64 * 32 * 3 + 64) + (64 * 64 * 3 + 64)
                         + 2 * (32 + 32 + 64 + 64) + (64 * 35 + 35)),
    "separable": dict(params=64 * 32 * 9 + (32 * 9 + 64 * 32) + (32 * 9 + 64 * 32) + (64 * 32 * 3 + 64 * 64 * 3)),
    "siamese": dict(params=3 * 6 + (16 * 3 * 9 + 16) + (32 * 16 * 9 + 32) + (64 * 32 * 9 + 64) + (64 + 1)),
}


@pytest.mark.parametrize("name", sorted(HAND))
def test_example_totals_by_hand(name):
    t = report(name).totals
    for key, value in HAND[name].items():
        assert t[key] == value, key
    header = open(os.path.join(EXAMPLES, f"{name}.yaml")).read().split("\nname:")[0]
    stated = re.search(r"Expected totals: params ([\d,]+)", header)
    if stated:  # the header's number is the true one
        assert int(stated.group(1).replace(",", "")) == t["params"]


def test_siamese_counts_shared_weights_once_and_macs_twice():
    r = report("siamese")
    a, b = r.layer("a.conv2"), r.layer("b.conv2")
    assert (a.params, b.params, b.shared_with) == (32 * 16 * 9 + 32, 0, "a.conv2")
    assert a.macs == b.macs == 32 * 16 * 16 * 16 * 9
    assert r.totals["non_trainable_params"] == 3 * 6


def test_deeplab_atrous_fields():
    r = report("deeplab_aspp")
    # a 3×3 kernel at dilation d spans 2d + 1
    assert [r.layer(f"aspp{d}.conv").receptive_field[0].size for d in (6, 12, 18)] == [13, 25, 37]


# ---- receptive fields per stage (hand arithmetic in reference.py; the gradient probe confirms them in test_verify) ----
@pytest.mark.parametrize("name,stages", [("vgg16", VGG_STAGES), ("resnet50", RESNET50_STAGES),
                                         ("alexnet", ALEXNET_STAGES)])
def test_stage_receptive_fields(name, stages):
    r = report(name)
    for layer, (size, jump) in stages.items():
        rf = r.layer(layer).receptive_field
        assert [(x.size, x.jump) for x in rf] == [(size, jump)] * 2, layer


# torchvision's published parameter counts and GFLOPS (MACs) of the modern examples (#13)
PUBLISHED = {"shufflenet_v2": (2_278_604, 0.14e9), "convnext_tiny": (28_589_128, 4.46e9),
             "mobilenet_v3_large": (5_483_032, 0.22e9), "densenet121": (7_978_856, 2.83e9)}


@pytest.mark.parametrize("name", sorted(PUBLISHED))
@pytest.mark.slow
def test_modern_examples_equal_torch_exactly(name):
    torch = pytest.importorskip("torch")
    from reference_models import ConvNeXt, DenseNet, MobileNetV3Large, ShuffleNetV2, counts

    torch.manual_seed(0)
    model = {"shufflenet_v2": ShuffleNetV2, "convnext_tiny": ConvNeXt, "mobilenet_v3_large": MobileNetV3Large,
             "densenet121": DenseNet}[name]()
    t = report(name).totals
    assert {k: t[k] for k in ("params", "buffers", "flops")} == counts(model, (1, 3, 224, 224))
    params, macs = PUBLISHED[name]
    assert t["params"] == params and round(t["macs"], -7) == macs


@pytest.mark.parametrize("width", [0.75, 0.5, 1.25])
@pytest.mark.slow
def test_mobilenet_v3_width_argument_equals_torch(width):
    pytest.importorskip("torch")
    from reference_models import MobileNetV3Large, counts

    net = cnncalc.load_spec(os.path.join(EXAMPLES, "mobilenet_v3_large.yaml"), {"width": width, "classes": 10})
    t = cnncalc.analyze(net).totals
    assert {k: t[k] for k in ("params", "buffers", "flops")} == counts(MobileNetV3Large(width, 10), (1, 3, 224, 224))


@pytest.mark.slow
def test_hybrid_attention_equals_torch_multihead_attention():
    pytest.importorskip("torch")
    from reference_models import counts, hybrid_attention

    t = report("hybrid_attention").totals
    assert {k: t[k] for k in ("params", "buffers", "flops")} == counts(hybrid_attention(), (1, 3, 224, 224))
    # by hand: two blocks of nn.MultiheadAttention(64, 4) = 4·64·64 + 4·64 params each, over L = 14·14 tokens
    mhsa = report("hybrid_attention").layer("bot.0.mhsa")
    assert mhsa.params == 4 * 64 * 64 + 4 * 64 and mhsa.macs == 196 * 64 * 4 * 64 + 2 * 196 * 196 * 64
