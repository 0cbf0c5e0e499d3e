"""Spec language: blocks, repeat, substitution, sharing, freezing; and every located error."""
import os

import pytest

import cnncalc
from cnncalc.layers.field import Window

from conftest import EXAMPLES, analyze_text


def problems(text):
    with pytest.raises(cnncalc.CnnError) as err:
        analyze_text(text)
    return err.value.problems


def one(text):
    (p,) = problems(text)
    return p


# ---- the seeds' worked examples -------------------------------------------------------------
def test_seed_worked_examples():
    assert Window(32, 4).out == (32 - 4) // 1 + 1 == 29
    assert Window(32, 4, stride=3, pad_lo=1, pad_hi=1).out == (32 + 2 * 1 - 4) // 3 + 1 == 11
    r = analyze_text("input: 3x32x32\nlayers:\n  - {type: conv2d, out_channels: 6, kernel_size: 5, padding: 2}\n")
    assert r.layers[0].params == 6 * (5 * 5 * 3 + 1) == 456
    assert r.layers[0].output_shape == (1, 6, 32, 32)
    assert Window(4, 2, 2).out == 2


@pytest.mark.parametrize("layers,k", [(1, 3), (2, 3), (5, 3), (3, 5)])
def test_rf_of_stacked_convs_is_1_plus_L_times_K_minus_1(layers, k):
    text = "input: 1x64x64\nlayers:\n" + f"  - {{type: conv2d, out_channels: 1, kernel_size: {k}}}\n" * layers
    rf = analyze_text(text).layers[-1].receptive_field
    assert [r.size for r in rf] == [1 + layers * (k - 1)] * 2


# ---- blocks, repeat, substitution ---------------------------------------------------------------
BLOCKS = """
input: 8x16x16
blocks:
  unit:
    args: {c: null, k: 3}
    layers:
      - {name: conv, type: conv2d, out_channels: $c, kernel_size: $k, padding: "${k // 2}"}
      - {name: act, type: relu}
      - {name: add, type: add, inputs: [act, input]}
  entry:
    args: {c: null}
    layers:
      - {name: conv, type: conv2d, out_channels: $c, kernel_size: 1}
layers:
  - {block: unit, name: s1, repeat: 3, args: {c: 8}, first: {block: entry}}
  - {block: unit, name: s2, args: {c: 8, k: 5}}
"""


def test_blocks_repeat_first_and_names():
    r = analyze_text(BLOCKS)
    assert [x.name for x in r.layers] == [
        "s1.0.conv", "s1.1.conv", "s1.1.act", "s1.1.add", "s1.2.conv", "s1.2.act", "s1.2.add",
        "s2.conv", "s2.act", "s2.add"]
    assert r.layer("s1.1.add").inputs == ["s1.1.act", "s1.0.conv"]
    assert r.layer("s2.conv").params == 8 * 8 * 25 + 8
    assert r.layer("s1.0.conv").params == 8 * 8 + 8


def test_unknown_block_argument_is_located():
    p = one(BLOCKS.replace("args: {c: 8, k: 5}", "args: {c: 8, kk: 5}"))
    assert p.line == BLOCKS.splitlines().index("  - {block: unit, name: s2, args: {c: 8, k: 5}}") + 1
    assert "block 'unit' has no argument 'kk' (it takes: c, k)" in p.message


def test_missing_block_argument():
    p = one(BLOCKS.replace("args: {c: 8, k: 5}", "args: {k: 5}"))
    assert "needs argument 'c'" in p.message


def test_expression_language_is_not_python():
    for expr in ["__import__('os')", "c ** 99", "[1]", "c.real"]:
        p = one(BLOCKS.replace('"${k // 2}"', f'"${{{expr}}}"'))
        assert "may only use" in p.message or "cannot read expression" in p.message, expr


# ---- weight sharing and freezing ----------------------------------------------------------------
def test_shared_weights_counted_once():
    r = analyze_text("""
input: 3x8x8
layers:
  - {name: a, type: conv2d, out_channels: 4, kernel_size: 3}
  - {name: b, type: conv2d, out_channels: 4, kernel_size: 3, share: a, inputs: [input]}
  - {type: concat, inputs: [a, b]}
""")
    assert [x.params for x in r.layers] == [4 * 3 * 9 + 4, 0, 0]
    assert r.layers[1].macs == r.layers[0].macs
    assert r.totals["params"] == 4 * 3 * 9 + 4


def test_sharing_needs_the_same_weights():
    p = one("input: 3x8x8\nlayers:\n  - {name: a, type: conv2d, out_channels: 4, kernel_size: 3}\n"
            "  - {name: b, type: conv2d, out_channels: 4, kernel_size: 5, share: a}\n")
    assert p.layer == "b" and "weight[4, 3, 3, 3]" in p.message and "weight[4, 4, 5, 5]" in p.message


def test_frozen_layer_params_are_non_trainable():
    r = analyze_text("input: 3x8x8\nlayers:\n  - {type: conv2d, out_channels: 4, kernel_size: 3, trainable: false}\n"
                     "  - {type: linear, out_features: 2}\n")
    t = r.totals
    # linear acts on the last axis (6) of the (1, 4, 6, 6) conv output
    assert (t["trainable_params"], t["non_trainable_params"]) == (6 * 2 + 2, 4 * 27 + 4)


# ---- memory ---------------------------------------------------------------------------------
def test_memory_estimates_by_hand():
    r = analyze_text("input: 1x4x4\nbatch: 2\nlayers:\n  - {name: a, type: conv2d, out_channels: 2, kernel_size: 1}\n"
                     "  - {name: b, type: relu}\n  - {name: c, type: add, inputs: [a, b]}\n", optimizer="momentum")
    t = r.totals
    act, inp = 2 * 2 * 16 * 4, 2 * 16 * 4  # each layer's output: 2 samples × 2 channels × 16 pixels × 4 bytes
    assert t["activation_bytes"] == 3 * act and t["input_bytes"] == inp
    assert t["inference_peak_activation_bytes"] == inp + 3 * act  # the caller's input; a, b and c together
    params = 2 * 1 + 2
    # Training, measured equal in torch: params and momentum persist (2 × 4 params × 4 bytes).
    # After the forward pass: the input, b (relu keeps its output) and c (the caller holds it);
    # a is freed (no one keeps it). Backward: c's gradient (act) is passed to a and b as is; relu
    # makes a's gradient (act) and adds it in place, while b and c's gradient are still alive.
    backward = inp + act + act + act + act
    assert t["training_memory_bytes"] == params * 4 * (1 + 1) + backward and t["training_peak_phase"] == "backward"
    assert t["training_saved_activation_bytes"] == inp + act  # conv keeps the input, relu its output


def test_dtype_changes_bytes_not_counts():
    text = "input: 3x8x8\nlayers:\n  - {type: conv2d, out_channels: 4, kernel_size: 3}\n"
    a, b = analyze_text(text), analyze_text(text, dtype="bfloat16")
    assert a.totals["macs"] == b.totals["macs"] and a.totals["param_bytes"] == 2 * b.totals["param_bytes"]


# ---- located errors ----------------------------------------------------------------------------
def test_unknown_layer_type_suggests():
    p = one("input: 3x8x8\nlayers:\n  - {type: conv2, out_channels: 4}\n")
    assert (p.line, p.col) == (3, 12) and "unknown layer type 'conv2' (did you mean 'conv2d'?)" in p.message


def test_unknown_field_lists_valid_ones():
    p = one("input: 3x8x8\nlayers:\n  - type: conv2d\n    out_channels: 4\n    kernel_size: 3\n    strides: 2\n")
    assert (p.line, p.col) == (6, 14)
    assert "unknown field 'strides' (did you mean 'stride'?)" in p.message and "valid fields:" in p.message


def test_wrong_type_and_range():
    ps = problems("input: 3x8x8\nlayers:\n  - {type: conv2d, out_channels: 0, kernel_size: 3, bias: yes}\n")
    msgs = sorted(p.message for p in ps)
    # the field and the value received are cnncalc's; the words between are pydantic's
    assert any(m.startswith("out_channels: ") and m.endswith(", received 0") for m in msgs), msgs
    assert any(m.startswith("bias: ") and m.endswith(", received 'yes'") for m in msgs), msgs


def test_yaml_11_octal_is_not_silently_eight():
    p = one("input: 3x8x8\nlayers:\n  - {type: conv2d, out_channels: 010, kernel_size: 3}\n")
    assert "out_channels" in p.message and "'010'" in p.message


def test_groups_must_divide_channels():
    p = one("input: 3x8x8\nlayers:\n  - {name: g, type: conv2d, out_channels: 4, kernel_size: 3, groups: 2}\n")
    assert p.layer == "g" and p.message == "input channels 3 are not divisible by groups=2"


def test_output_size_not_positive():
    p = one("input: 3x4x4\nlayers:\n  - {type: conv2d, out_channels: 4, kernel_size: 7}\n")
    assert "output H would be ⌊(4 + 2·0 − 1·(7−1) − 1) / 1⌋ + 1 = -2" in p.message


def test_add_shape_mismatch():
    p = one("input: 3x8x8\nlayers:\n  - {name: a, type: conv2d, out_channels: 3, kernel_size: 3}\n"
            "  - {type: add, inputs: [a, input]}\n")
    assert "inputs do not broadcast: (1, 3, 6, 6) vs (1, 3, 8, 8) (axis 2: sizes [6, 8])" in p.message


def test_references_later_self_unknown_and_duplicates():
    ps = problems("""input: 3x8x8
layers:
  - {name: a, type: relu, inputs: [b]}
  - {name: b, type: relu, inputs: [b]}
  - {name: c, type: relu, inputs: [zz]}
  - {name: c, type: relu}
""")
    msgs = [(p.line, p.message) for p in ps]
    assert (3, "'b' is defined later (line 4): inputs must be earlier layers") in msgs
    assert (4, "'b' refers to itself: inputs must be earlier layers") in msgs
    assert any(line == 5 and m.startswith("unknown layer 'zz'") for line, m in msgs)
    assert (6, "duplicate layer name 'c' (first used on line 5)") in msgs


def test_all_problems_reported_not_only_the_first():
    ps = problems("input: 3x8x8\nlayers:\n  - {type: conv2d, kernel_size: 3}\n  - {type: relu, inplace: 3}\n"
                  "  - {type: nope}\n")
    assert [p.line for p in ps] == [3, 4, 5]


def test_duplicate_yaml_keys():
    p = one("input: 3x8x8\nlayers:\n  - type: relu\n    type: sigmoid\n")
    assert (p.line, p.message) == (4, "duplicate key 'type' (first defined on line 3)")


def test_header_errors():
    p = one("input: 3xx8\nlayers: [{type: relu}]\n")
    assert p.line == 1 and "expected channels and sizes like 3x224x224" in p.message


def test_merge_needs_named_inputs():
    p = one("input: 3x8x8\nlayers:\n  - {type: add}\n")
    assert "add merges branches: name them with inputs: [a, b]" in p.message


def test_floor_warning():
    r = analyze_text("input: 1x10x10\nlayers:\n  - {type: conv2d, out_channels: 1, kernel_size: 3, stride: 2}\n")
    # (10 − 3) = 7 is odd: the last row and column are never read
    assert [w.message.split(":")[0] for w in r.warnings] == [
        "1 row at the bottom never reaches any output", "1 column at the right never reaches any output"]


def test_bn_folding_totals_by_hand():
    from cnncalc.analysis.fold import fused_totals

    r = analyze_text("""input: 3x8x8
layers:
  - {name: c1, type: conv2d, out_channels: 4, kernel_size: 3, bias: false}
  - {name: bn1, type: batchnorm2d}
  - {name: c2, type: conv2d, out_channels: 5, kernel_size: 1}
  - {name: bn2, type: batchnorm2d}
  - {name: tap, type: conv2d, out_channels: 5, kernel_size: 1}
  - {name: bn3, type: batchnorm2d}
  - {type: add, inputs: [tap, bn3]}
""")
    f = fused_totals(r)
    # bn1 and bn2 fold (c1 gains a bias of 4); bn3 does not: 'tap' also feeds the add
    assert f["folded"] == 2
    assert f["params"] == r.totals["params"] - 2 * 4 - 2 * 5 + 4
    assert f["buffers"] == 2 * 5 + 1
    assert f["elementwise_ops"] == r.totals["elementwise_ops"] - 2 * (4 * 36) - 2 * (5 * 36) + 4 * 36


def test_buffer_and_inference_memory_by_hand():
    r = analyze_text("input: 3x8x8\nlayers:\n  - {name: c, type: conv2d, out_channels: 4, kernel_size: 3, bias: false}\n"
                     "  - {name: bn, type: batchnorm2d}\n")
    t = r.totals
    assert t["buffer_bytes"] == 2 * 4 * 4 + 8  # running mean and var in float32, num_batches_tracked int64
    act, inp = 4 * 6 * 6 * 4, 3 * 8 * 8 * 4
    # the caller holds the input; while bn runs, c's output and bn's are alive too
    assert t["inference_peak_activation_bytes"] == inp + 2 * act
    assert t["inference_memory_bytes"] == (4 * 27 + 8) * 4 + t["buffer_bytes"] + inp + 2 * act


def test_errors_inside_blocks_name_the_use_site():
    p = one("""input: 3x8x8
blocks:
  b:
    layers:
      - {name: conv, type: conv2d, out_channels: 4, kernel_size: 3, groups: 2}
layers:
  - {type: conv2d, out_channels: 4, kernel_size: 1}
  - {block: b, name: ok}
  - {type: conv2d, out_channels: 3, kernel_size: 1, padding: 2}
  - {block: b, name: bad}
""")
    assert (p.line, p.layer, p.index) == (5, "bad.conv", 3)
    assert p.message == "input channels 3 are not divisible by groups=2 (in the block used at line 10)"


def test_avgpool3d_refuses_an_input_smaller_than_its_kernel_as_torch_does():
    p = one("input: [1, 2, 2, 2]\nlayers:\n  - {type: avgpool3d, kernel_size: 3, stride: 1, padding: 1}\n")
    assert p.message == ("torch's avg_pool3d refuses an input smaller than the kernel, padding aside: "
                         "(1, 1, 2, 2, 2) with kernel_size [3, 3, 3]")
    assert analyze_text("input: [1, 2, 2]\nlayers:\n  - {type: avgpool2d, kernel_size: 3, stride: 1, padding: 1}\n"
                        ).layers[0].output_shape == (1, 1, 2, 2)  # 2-D pools accept it


def test_the_field_outgrowing_the_input_is_said_once_at_the_block_use():
    text = open(os.path.join(EXAMPLES, "resnet50.yaml")).read()
    r = cnncalc.analyze(cnncalc.parse_spec(text, "resnet50.yaml"))
    said = [w for w in r.warnings if "exceeds the input" in w.message]
    assert len(said) == 1 and said[0].layer == "layer3.4.conv2"
    assert text.splitlines()[said[0].line - 1].lstrip().startswith("- {block:")  # the use, not the block's layer
    assert said[0].message == ("receptive field 235×235 now exceeds the input 224×224: deeper layers widen it "
                               "only into the padding")
