"""Spec forms of #13: chunk and split (one entry, several outputs), and names that follow torch's
module paths."""
import json

import pytest

import cnncalc

from conftest import analyze_text


def test_chunk_and_split_expand_to_named_pieces():
    r = analyze_text("""input: 8x6x6
layers:
  - {name: s, type: chunk, chunks: 2}
  - {name: b, type: conv2d, out_channels: 4, kernel_size: 1, inputs: [s.1]}
  - {name: cat, type: concat, inputs: [s.0, b]}
  - {name: sp, type: split, sizes: [3, 5]}
  - {type: relu}
""")
    rows = {x.name: x for x in r.layers}
    assert [x.name for x in r.layers] == ["s.0", "s.1", "b", "cat", "sp.0", "sp.1", "relu_1"]
    assert rows["s.0"].output_shape == rows["s.1"].output_shape == (1, 4, 6, 6)
    assert rows["s.1"].inputs == rows["s.0"].inputs == ["input"] and rows["sp.1"].inputs == ["cat"]
    assert (rows["sp.0"].output_shape[1], rows["sp.1"].output_shape[1]) == (3, 5)
    assert rows["relu_1"].inputs == ["sp.1"]  # the chain continues from the last piece
    assert all(rows[n].params == rows[n].macs == 0 for n in ("s.0", "s.1", "sp.0", "sp.1"))


@pytest.mark.parametrize("entry,message", [
    ("{type: split, sizes: [3, 6]}", "split sizes sum to 9 but the input has 8 channels"),
    ("{type: chunk, chunks: 0}", "chunks: "),  # the rest in pydantic's words
    ("{type: chunk, chunks: 2, dim: 2}", "dim: expected 1"),
    ("{type: chunk, chunks: 2, bogus: 1}", "unknown field 'bogus'"),
    ("{type: conv2d, out_channels: '${in.colour}', kernel_size: 1}", "in.colour: the input offers in.channels"),
    ("{type: conv2d, out_channels: '${in.channels * 0.7}', kernel_size: 1}", ", received 5.6"),  # the value the expression gave
    ("{type: relu, when: '${in.channels > 2}'}", "when: cannot read in.*"),
])
def test_pieces_and_input_expressions_mistakes_are_located(entry, message):
    with pytest.raises(cnncalc.CnnError) as err:
        analyze_text(f"input: 8x6x6\nlayers:\n  - {entry}\n")
    p = err.value.problems[0]
    assert message in p.message and p.line == 3, p.message


def test_chunk_follows_torch_chunk_rule():
    # torch.chunk(5 channels, 2) gives 3 and 2; (2 channels, 3) gives only 2 pieces of 1
    r = analyze_text("input: 5x2x2\nlayers:\n  - {name: s, type: chunk, chunks: 2}\n")
    assert [x.output_shape[1] for x in r.layers] == [3, 2]
    # a piece torch does not return is legal until a layer reads it (torch: an IndexError there)
    analyze_text("input: 2x2x2\nlayers:\n  - {name: s, type: chunk, chunks: 3}\n  - {type: relu, inputs: [s.1]}\n")
    with pytest.raises(cnncalc.CnnError, match="gives 2 pieces of 1: there is no piece 2") as err:
        analyze_text("input: 2x2x2\nlayers:\n  - {name: s, type: chunk, chunks: 3}\n  - {type: relu, inputs: [s.2]}\n")
    assert err.value.problems[0].line == 4


def test_pieces_are_in_the_json_schema(schema):
    jsonschema = pytest.importorskip("jsonschema")
    ok = {"input": [8, 4, 4], "layers": [{"type": "chunk", "chunks": 2, "name": "s"},
                                          {"type": "split", "sizes": [2, 2], "inputs": ["s.0"]}]}
    jsonschema.validate(ok, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"input": [8, 4, 4], "layers": [{"type": "chunk"}]}, schema)
    assert json.dumps(schema)  # serialisable


def test_names_may_follow_torch_module_paths():
    r = analyze_text("input: 3x8x8\nlayers:\n  - {name: features.0.1, type: conv2d, out_channels: 2, kernel_size: 1}\n"
                     "  - {name: '2', type: relu}\n")
    assert [x.name for x in r.layers] == ["features.0.1", "2"]


# ---- the spec language --------------------------------------------------------------------------
RESBLOCK = """input: 8x16x16
args: {width: 1.0}
blocks:
  res:
    args: {cout: null, s: 1}
    layers:
      - {name: conv1, type: conv2d, out_channels: "${round(cout * width)}", kernel_size: 3, stride: $s, padding: 1,
         bias: false}
      - {name: bn1, type: batchnorm2d}
      - {name: relu, type: relu}
      - {name: conv2, type: conv2d, out_channels: "${round(cout * width)}", kernel_size: 3, padding: 1, bias: false}
      - {name: bn2, type: batchnorm2d}
      - {name: down, type: conv2d, out_channels: "${round(cout * width)}", kernel_size: 1, stride: $s, bias: false,
         inputs: [input], when: "${s != 1 or round(cout * width) != 8}"}
      - {name: down_bn, type: batchnorm2d, when: "${s != 1 or round(cout * width) != 8}"}
      - {name: add, type: add, inputs: [bn2, down_bn]}
layers:
  - {block: res, name: a, args: {cout: 8}}
  - {block: res, name: b, args: {cout: 16, s: 2}}
"""


def test_when_leaves_out_layers_and_their_names_stand_for_their_input():
    r = analyze_text(RESBLOCK)
    names = [x.name for x in r.layers]
    assert "a.down" not in names and "a.down_bn" not in names and "b.down" in names
    assert r.layer("a.add").inputs == ["a.bn2", "input"]          # down_bn → down → the block's input
    assert r.layer("b.add").inputs == ["b.bn2", "b.down_bn"]
    assert r.layer("b.down").params == 16 * 8 * 1 * 1
    assert r.totals["params"] == (8 * 8 * 9 * 2 + 2 * 2 * 8) + (16 * 8 * 9 + 16 * 16 * 9 + 16 * 8 + 3 * 2 * 16)


def test_a_left_out_merge_passes_the_chain_on():
    r = analyze_text("""input: 4x8x8
layers:
  - {name: g, type: global_avgpool}
  - {name: gate, type: mul, inputs: [g, input], when: false}
  - {name: conv, type: conv2d, out_channels: 2, kernel_size: 1}
""")
    assert [x.name for x in r.layers] == ["g", "conv"] and r.layer("conv").inputs == ["g"]


def test_spec_args_set_and_defaults():
    from cnncalc.spec.expand import parse_spec

    r = cnncalc.analyze(parse_spec(RESBLOCK, "t.yaml", {"width": 0.5}))
    assert r.layer("b.conv1").output_shape[1] == 8 and r.layer("a.conv1").output_shape[1] == 4
    d = analyze_text("input: 3x8x8\ndefaults:\n  batchnorm2d: {eps: 0.001}\nlayers:\n"
                     "  - {type: conv2d, out_channels: 2, kernel_size: 1}\n  - {name: a, type: batchnorm2d}\n"
                     "  - {name: b, type: batchnorm2d, eps: 0.1}\n")
    assert d.layer("a").layer.eps == 0.001 and d.layer("b").layer.eps == 0.1
    with pytest.raises(cnncalc.CnnError) as err:
        parse_spec(RESBLOCK, "t.yaml", {"depth": 2})
    assert err.value.exit_code == 2 and "--set: the spec has no argument 'depth' (its arguments: width)" in str(err.value)


@pytest.mark.parametrize("text,message,line", [
    ("input: 3x8x8\ndefaults:\n  batchnorm2: {eps: 0.1}\nlayers:\n  - {type: relu}\n",
     "defaults: unknown layer type 'batchnorm2' (did you mean 'batchnorm2d'?)", 3),
    ("input: 3x8x8\ndefaults:\n  batchnorm2d: {epsilon: 0.1}\nlayers:\n  - {type: relu}\n",
     "defaults: batchnorm2d has no field 'epsilon'", 3),
    ("input: 3x8x8\nlayers:\n  - {type: relu, when: 1}\n", "when: expected true or false", 3),
    ("input: 3x8x8\nargs: {w: 0.35}\nlayers:\n  - {type: conv2d, out_channels: '${10 * w}', kernel_size: 1}\n",
     "out_channels", 4),
    ("input: 3x8x8\nlayers:\n  - {type: conv2d, out_channels: '${width}', kernel_size: 1}\n",
     "unknown argument '$width' (arguments here: none)", 3),
    ("input: 3x8x8\nlayers:\n  - {type: conv2d, out_channels: '${max()}', kernel_size: 1}\n", "cannot evaluate", 3),
])
def test_language_mistakes_are_located(text, message, line):
    with pytest.raises(cnncalc.CnnError) as err:
        analyze_text(text)
    p = err.value.problems[0]
    assert message in p.message and p.line == line, (p.message, p.line)


def test_expressions():
    from cnncalc.spec.subst import SubstError, evaluate, make_divisible

    assert evaluate("64 * 0.5", {}) == 32 and isinstance(evaluate("64 * 0.5", {}), int)
    assert evaluate("3 * w", {"w": 0.7}) == 2.0999999999999996  # not whole: an int field refuses it
    assert evaluate("s != 1 or cin != cout", {"s": 1, "cin": 3, "cout": 3}) is False
    assert evaluate("a if flag else b", {"a": 1, "b": 2, "flag": True}) == 1
    assert evaluate("not true and false", {}) is False and evaluate("1 < x <= 3", {"x": 3}) is True
    assert [evaluate(e, {}) for e in ("floor(2.7)", "ceil(2.1)", "round(2.5)", "max(1, 4, 2)", "abs(-3)")] == \
        [2, 3, 2, 4, 3]
    # torchvision's _make_divisible: 16·0.75 = 12 → 16 (at least the divisor); 72·1.25 = 90 → 88; 100·0.35 → 32
    assert [make_divisible(v) for v in (12, 90, 35, 5)] == [16, 88, 32, 8]
    assert evaluate("make_divisible(672 // 4)", {}) == 168
    for bad in ("__import__('os')", "x.real", "[1]", "2 ** 8", "f(1)", "max(*x)", "1j"):
        with pytest.raises(SubstError):
            evaluate(bad, {"x": 1})


def test_names_per_repetition():
    r = analyze_text("""input: 3x8x8
blocks:
  unit:
    args: {}
    layers:
      - {name: conv, type: conv2d, out_channels: 3, kernel_size: 1}
layers:
  - {block: unit, repeat: 3, names: [Mixed_6b, Mixed_6c, Mixed_6d]}
""")
    assert [x.name for x in r.layers] == ["Mixed_6b.conv", "Mixed_6c.conv", "Mixed_6d.conv"]
    with pytest.raises(cnncalc.CnnError, match="names gives 2 names for repeat: 3"):
        analyze_text("input: 3x8x8\nblocks:\n  u:\n    layers:\n      - {type: relu}\n"
                     "layers:\n  - {block: u, repeat: 3, names: [a, b]}\n")


def test_set_on_the_command_line(tmp_path):
    import subprocess
    import sys

    spec = tmp_path / "net.yaml"
    spec.write_text(RESBLOCK)
    run = [sys.executable, "-m", "cnncalc", "analyze", str(spec), "-f", "json"]
    half = json.loads(subprocess.run(run + ["--set", "width=0.5"], capture_output=True, text=True).stdout)
    assert half["totals"]["params"] == cnncalc.analyze(cnncalc.parse_spec(RESBLOCK, "t", {"width": 0.5})).totals["params"]
    for bad, message in ((["--set", "width"], "expected NAME=VALUE"), (["--set", "depth=2"], "no argument 'depth'"),
                         (["--set", "width=[1, 2]"], "expected a number")):
        out = subprocess.run(run + bad, capture_output=True, text=True)
        assert out.returncode == 2 and message in out.stderr, (bad, out.stderr)


def test_fields_may_read_the_layers_input():
    r = analyze_text("""input: 3x32x32
blocks:
  transition:
    args: {c: "${in.channels // 2}"}
    layers:
      - {name: norm, type: batchnorm2d}
      - {name: conv, type: conv2d, out_channels: $c, kernel_size: 1, bias: false}
layers:
  - {name: stem, type: conv2d, out_channels: 40, kernel_size: 3, padding: 1}
  - {block: transition, name: t}
  - {name: wide, type: conv2d, out_channels: "${in.channels * 2 + in.height - in.width}", kernel_size: 1}
  - {type: flatten}
  - {name: fc, type: linear, out_features: "${in.features // 4}"}
""")
    assert r.layer("t.conv").output_shape[1] == 40 // 2          # the argument passes the expression on
    assert r.layer("wide").output_shape[1] == 20 * 2 + 32 - 32
    assert r.layer("fc").output_shape == (1, 40 * 32 * 32 // 4)
    # another input size: the same spec, other widths (the expression is evaluated per analysis)
    r2 = cnncalc.analyze(cnncalc.parse_spec("input: 6x4x4\nlayers:\n"
                                            "  - {name: c, type: conv2d, out_channels: '${in.channels // 2}', "
                                            "kernel_size: 1}\n"), input_shape=(10, 4, 4))
    assert r2.layer("c").output_shape[1] == 5


def test_names_per_repetition_under_a_use_name():
    r = analyze_text("input: 3x8x8\nblocks:\n  u:\n    layers:\n      - {name: conv, type: conv2d, out_channels: 3, "
                     "kernel_size: 1}\nlayers:\n  - {block: u, name: features.denseblock1, repeat: 2, "
                     "names: [denselayer1, denselayer2]}\n")
    assert [x.name for x in r.layers] == ["features.denseblock1.denselayer1.conv", "features.denseblock1.denselayer2.conv"]


def test_layers_describes_the_new_types_and_the_pieces():
    from cnncalc.render.vocabulary import describe

    assert "sizes: required" in describe("split") and "chunks: required" in describe("chunk")
    text = describe("self_attention")
    assert "4·N·L·C" in text or "N·L·C" in text
    assert "does not judge" in text  # its memory is an estimate, said so
    with pytest.raises(cnncalc.CnnError, match="did you mean 'chunk'"):
        describe("chunkk")


TORCH_STYLE = """input: 16x14x14
layers:
  - {name: dw, type: conv2d, out_channels: 16, kernel_size: 7, padding: 3, groups: 16}
  - {name: nhwc, type: permute, dims: [0, 2, 3, 1]}
  - {name: ln, type: layernorm, normalized_shape: 16, eps: 1.0e-6}
  - {name: fc1, type: linear, out_features: 64}
  - {name: act, type: gelu}
  - {name: fc2, type: linear, out_features: 16}
  - {name: nchw, type: permute, dims: [0, 3, 1, 2]}
  - {name: scale, type: layer_scale}
  - {name: add, type: add, inputs: [input, scale]}
  - {name: conv, type: conv2d, out_channels: 8, kernel_size: 3}
"""


def test_permute_writes_convnext_as_torch_does():
    torch_style = analyze_text(TORCH_STYLE)
    ours = analyze_text(TORCH_STYLE.replace(
        "  - {name: nhwc, type: permute, dims: [0, 2, 3, 1]}\n  - {name: ln, type: layernorm, normalized_shape: 16, "
        "eps: 1.0e-6}\n  - {name: fc1, type: linear, out_features: 64}\n  - {name: act, type: gelu}\n"
        "  - {name: fc2, type: linear, out_features: 16}\n  - {name: nchw, type: permute, dims: [0, 3, 1, 2]}\n",
        "  - {name: ln, type: layernorm2d}\n  - {name: fc1, type: conv2d, out_channels: 64, kernel_size: 1}\n"
        "  - {name: act, type: gelu}\n  - {name: fc2, type: conv2d, out_channels: 16, kernel_size: 1}\n"))
    for key in ("params", "macs", "flops"):
        assert torch_style.totals[key] == ours.totals[key], key
    assert torch_style.layer("nhwc").output_shape == (1, 14, 14, 16)
    # the field is hidden while the channels are last, and comes back (the same) after the permute back
    assert [torch_style.layer(n).receptive_field for n in ("nhwc", "ln", "fc1", "fc2")] == [None] * 4
    for name in ("add", "conv"):
        assert torch_style.layer(name).rf_json() == ours.layer(name).rf_json()
    assert torch_style.layer("conv").receptive_field[0].size == 7 + 2


def test_a_spatial_layer_on_a_permuted_tensor_ends_the_field():
    r = analyze_text("input: 4x8x8\nlayers:\n  - {type: permute, dims: [0, 2, 3, 1]}\n"
                     "  - {name: pool, type: maxpool2d, kernel_size: 2}\n  - {name: back, type: permute, dims: [0, 3, 1, 2]}\n"
                     "  - {name: conv, type: conv2d, out_channels: 2, kernel_size: 1}\n")
    assert r.layer("back").receptive_field is None and r.layer("conv").receptive_field is None
    with pytest.raises(cnncalc.CnnError, match="moves the batch axis"):
        analyze_text("input: 4x8x8\nlayers:\n  - {type: permute, dims: [1, 0, 2, 3]}\n")
    with pytest.raises(cnncalc.CnnError, match="is not a permutation of the 4 axes"):
        analyze_text("input: 4x8x8\nlayers:\n  - {type: permute, dims: [0, 1, 2]}\n")
