"""Hostile and broken input: always a located message and exit 1, never a traceback or hang."""
import copy
import json
import os
import random
import time

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import cnncalc
from cnncalc.cli.app import app

from conftest import EXAMPLES, HOSTILE

FUZZ = int(os.environ.get("CNNCALC_DEEP", "150"))
runner = CliRunner()

EXPECTED = {
    "args_repeat_bomb.yaml": "the network expands to more than 100,000 layers (blocks repeated through their "
                             "arguments); refused",
    "bad_utf8.yaml": ":2:10: error: not UTF-8 text (byte 0xe9)",
    "billion_laughs.yaml": "more than 100,000 YAML nodes after expanding aliases; refused",
    "binary.yaml": "binary file (contains NUL bytes)",
    "collision.yaml": "duplicate layer name 's.conv' (first used on line 5)",
    "comment_only.yaml": "file is empty",
    "custom_tag.yaml": "tag '!shape' is not allowed",
    "cycle.yaml": "'b' is defined later (line 4): inputs must be earlier layers",
    # refused by cnncalc's depth check, or first by libyaml's own limit (PyYAML >= 6.0.3): either way one
    # located line of cnncalc's ("YAML nested deeper than 64 levels" / "YAML syntax error: <libyaml's words>")
    "deep_nesting.yaml": ("deep_nesting.yaml:1:", ": error: YAML "),
    "duplicate_keys.yaml": ":2:1: error: duplicate key 'input' (first defined on line 1)",
    "empty.yaml": "file is empty",
    # the field, the value received and the place are cnncalc's; the words between are pydantic's
    "huge_channels.yaml": (":3:34: error: conv2d_1 (#0): out_channels: ", ", received 1000000000000000"),
    "huge_kernel.yaml": "= -999999999775",
    "list_top.yaml": "top level is a list",
    "negative.yaml": "kernel_size: expected a positive integer",
    "nested_block_bomb.yaml": "the network expands to 1,000,000,000,000 layers; more than 100,000 are refused",
    "python_tag.yaml": "tag 'tag:yaml.org,2002:python/object/apply:os.system' is not allowed",
    "repeat_bomb.yaml": "the network expands to 1,000,000,000 layers",
    "scalar_top.yaml": "top level is a number",
    "self_block.yaml": "block 'b' uses itself",
    "syntax.yaml": ":3:1: error: YAML syntax error",  # the words after it are libyaml's
    "tabs.yaml": ":3:1: error: YAML syntax error: a tab character",
    "yaml11_bools.yaml": (":3:59: error: conv2d_1 (#0): bias: ", ", received 'on'"),
    "yaml11_numbers.yaml": (":3:34: error: conv2d_1 (#0): out_channels: ", ", received '1e3'"),
}


def test_every_hostile_file_has_an_expectation():
    assert sorted(EXPECTED) == sorted(os.listdir(HOSTILE))


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_hostile_file(name):
    """cnncalc's contract, not a dependency's wording: exit 1, the file named, no traceback, in moments."""
    path = os.path.join(HOSTILE, name)
    start = time.monotonic()
    out = runner.invoke(app, ["validate", path])
    assert time.monotonic() - start < 10, "a hostile file must be refused quickly"
    assert out.exit_code == 1, out.stderr
    assert out.exception is None or isinstance(out.exception, SystemExit)
    assert "Traceback" not in out.output and out.stderr.startswith(path + ":"), out.stderr
    expected = EXPECTED[name]
    for words in (expected,) if isinstance(expected, str) else expected:
        assert words in out.stderr, out.stderr


def test_oversized_file_is_refused(tmp_path):
    big = tmp_path / "big.yaml"
    big.write_text("input: 3x8x8\nlayers:\n" + "  - {type: relu}  # padding padding padding padding\n" * 60000)
    out = runner.invoke(app, ["validate", str(big)])
    assert out.exit_code == 1 and "bytes are refused" in out.stderr


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_unreadable_file(tmp_path):
    f = tmp_path / "secret.yaml"
    f.write_text("input: 3x8x8\nlayers: [{type: relu}]\n")
    f.chmod(0)
    out = runner.invoke(app, ["validate", str(f)])
    assert out.exit_code == 1 and "cannot read file" in out.stderr


def test_thousands_of_layers_print_and_json_stays_valid():
    text = "input: 8x16x16\nblocks:\n" \
        "  u: {layers: [{type: conv2d, out_channels: 8, kernel_size: 3, padding: 1}, {type: relu}]}\n" \
        "layers:\n  - {block: u, name: s, repeat: 1500}\n"
    report = cnncalc.analyze(cnncalc.parse_spec(text))
    assert len(report.layers) == 3000
    from cnncalc.render.formats import to_csv, to_json

    data = json.loads(to_json(report))
    assert len(data["layers"]) == 3000 and data["totals"]["params"] == 1500 * (8 * 8 * 9 + 8)
    assert to_csv(report).count("\n") == 3002


# ---- fuzzing --------------------------------------------------------------------------------------
def ends_cleanly(text: str) -> None:
    """Analyze must either succeed or raise CnnError whose problems all carry a file."""
    try:
        cnncalc.analyze(cnncalc.parse_spec(text, "fuzz.yaml"))
    except cnncalc.CnnError as exc:
        assert exc.problems and all(p.file == "fuzz.yaml" for p in exc.problems)


yaml_scalars = st.one_of(st.integers(-3, 300), st.booleans(), st.none(), st.floats(allow_nan=False, width=16),
                         st.sampled_from(["same", "valid", "conv2d", "relu", "input", "$c", "${c*2}", "3x8x8", "yes"]))
yaml_values = st.recursive(yaml_scalars, lambda kids: st.one_of(
    st.lists(kids, max_size=4),
    st.dictionaries(st.sampled_from(["type", "name", "inputs", "kernel_size", "out_channels", "stride", "padding",
                                     "layers", "input", "blocks", "block", "repeat", "args", "groups", "share"]),
                    kids, max_size=5)), max_leaves=20)


@settings(max_examples=FUZZ, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(yaml_values)
def test_fuzz_random_documents(doc):
    ends_cleanly(yaml.safe_dump(doc))


@settings(max_examples=FUZZ, deadline=None)
@given(st.text(max_size=200))
def test_fuzz_random_text(text):
    ends_cleanly(text)


EXAMPLE_DOCS = [yaml.safe_load(open(os.path.join(EXAMPLES, n))) for n in sorted(os.listdir(EXAMPLES))
                if n.endswith(".yaml") and n not in ("c3d.yaml", "vgg16.yaml")]


def mutate(doc, rnd: random.Random):
    doc = copy.deepcopy(doc)
    layers = doc["layers"]
    i = rnd.randrange(len(layers))
    op = rnd.choice(["delete_key", "swap_type", "out_of_range", "shuffle", "drop_layer", "bad_ref"])
    layer = layers[i]
    if op == "delete_key" and layer:
        layer.pop(rnd.choice(list(layer)))
    elif op == "swap_type":
        key = rnd.choice(list(layer))
        layer[key] = rnd.choice(["x", [1, 2, 3], {"a": 1}, 3.5, True, None])
    elif op == "out_of_range":
        key = rnd.choice([k for k in layer if isinstance(layer[k], int) and not isinstance(layer[k], bool)] or ["stride"])
        layer[key] = rnd.choice([0, -1, 10**13, 7])
    elif op == "shuffle":
        rnd.shuffle(layers)
    elif op == "drop_layer" and len(layers) > 1:
        layers.pop(i)
    else:
        layer["inputs"] = [rnd.choice(["nowhere", "input", layers[-1].get("name", "x")])]
    return doc


@settings(max_examples=FUZZ, deadline=None)
@given(st.integers(0, len(EXAMPLE_DOCS) - 1), st.integers(0, 2**32))
def test_fuzz_mutated_examples(which, seed):
    ends_cleanly(yaml.safe_dump(mutate(EXAMPLE_DOCS[which], random.Random(seed)), sort_keys=False))


HUGE = "9" * 5000
TRACEBACK_CLASSES = {  # #14: each ended in a Python traceback; now a located message, exit 1
    "int past Python's digit limit": (f"input: 1x8x8\nlayers:\n  - {{type: conv2d, out_channels: {HUGE}, "
                                      "kernel_size: 3}\n", "3:34", "5000 digits is too large"),
    "negative huge int in a list": (f"input: 1x8x8\nlayers:\n  - {{type: relu, inputs: [-{HUGE}]}}\n", "3:27",
                                    "too large"),
    "explicit tag whose constructor raises": ("input: 1x8x8\nlayers:\n  - {type: conv2d, out_channels: !!float abc, "
                                              "kernel_size: 3}\n", "3:34", "'abc' is not a number"),
    "merge key referring to itself": ("a: &a {<<: *a}\ninput: 1x8x8\nlayers:\n  - {type: relu}\n", "1:4",
                                      "refers to the mapping it is in"),
    "infinite budget": ("input: 1x8x8\nlimits: {max_params: .inf}\nlayers:\n  - {type: relu}\n", "2:22",
                        "larger than the largest budget"),
    "a list where a name is expected": ("input: 1x8x8\nlayers:\n  - {type: relu, inputs: [[input]]}\n", "3:27",
                                        "expected a layer name, received list"),
    "null in an upsample size": ("input: 1x8x8\nlayers:\n  - {type: upsample, size: [null, 3]}\n", "3:5",
                                 "size must be positive integers"),
    "computed size past the limit": ("input: 1x8x8\nlayers:\n" + "  - {type: upsample, scale_factor: 1000000}\n" * 3,
                                     "4:5", "above the limit 2^40"),
}


@pytest.mark.parametrize("kind", sorted(TRACEBACK_CLASSES))
def test_former_tracebacks_are_located_errors(kind, tmp_path):
    text, where, message = TRACEBACK_CLASSES[kind]
    f = tmp_path / "net.yaml"
    f.write_text(text)
    out = CliRunner().invoke(app, ["analyze", str(f)])
    assert out.exit_code == 1 and isinstance(out.exception, SystemExit), out.output
    assert f"{f}:{where}: error:" in out.stderr and message in out.stderr, out.stderr


def test_merging_the_same_mapping_twice_is_legal_yaml():
    r = cnncalc.analyze(cnncalc.parse_spec("input: 1x8x8\nlayers:\n  - &b {type: relu, name: a}\n"
                                           "  - {<<: [*b, *b], name: r}\n"))
    assert [(row.name, row.type) for row in r.layers] == [("a", "relu"), ("r", "relu")]


@pytest.mark.parametrize("args", [["--max-params", "1e400"], ["--batch", str(2**40 + 1)]])
def test_out_of_range_options_are_usage_errors(args):
    out = CliRunner().invoke(app, ["analyze", os.path.join(EXAMPLES, "lenet5.yaml"), *args])
    assert out.exit_code == 2 and "Traceback" not in out.output


NAME = "[/red]x[link=javascript:alert(1)]y[/link]<script>z</script>"


@pytest.mark.parametrize("args", [["analyze"], ["analyze", "-f", "html"], ["rf"], ["plot"], ["analyze", "--explain"]])
def test_markup_in_a_spec_name_is_shown_as_written(args, tmp_path):
    f = tmp_path / "net.yaml"
    f.write_text(f"name: {json.dumps(NAME)}\ninput: 1x8x8\nlayers:\n  - {{type: conv2d, out_channels: 1, kernel_size: 3}}\n")
    out = CliRunner().invoke(app, [args[0], str(f), *args[1:]])
    assert out.exit_code == 0, out.output
    if "html" in args:
        assert out.stdout.count("<script>") == 1 and "<script>z" not in out.stdout  # the page's own script only
        assert "href" not in out.stdout and "&lt;script&gt;z" in out.stdout
        assert "[/red]x[link=javascript:alert(1)]y[/link]" in out.stdout
    else:
        assert NAME in out.stdout


ESCAPES = 'name: "x\\e]0;title\\a\\e[31mred\\u202e"\ninput: 3x8x8\nlayers:\n  - {type: conv2d, out_channels: 4, kernel_size: 3}\n'


@pytest.mark.parametrize("args", [["analyze"], ["analyze", "-f", "markdown"], ["analyze", "-f", "csv"],
                                  ["analyze", "-f", "html"], ["analyze", "-f", "json"], ["rf"], ["plot"],
                                  ["validate"], ["validate", "-f", "github"], ["analyze", "--explain"]])
def test_terminal_escapes_from_a_spec_never_reach_the_output(args, tmp_path):
    f = tmp_path / "esc\x1b[2J.yaml"
    f.write_text(ESCAPES + '  - {type: "relu\\e[5m"}\n' * (args == ["validate"]))
    out = CliRunner().invoke(app, [args[0], str(f), *args[1:]])
    text = out.stdout + out.stderr
    assert out.exception is None or isinstance(out.exception, SystemExit)
    assert not [c for c in text if (ord(c) < 32 and c not in "\n\t") or 0x7f <= ord(c) < 0xa0 or c == "\u202e"]
    if args not in (["analyze", "-f", "csv"], ["validate"], ["validate", "-f", "github"]):  # no spec name there
        assert "\\x1b" in text or "\\u001b" in text  # shown, not swallowed


def test_github_annotations_cannot_be_forged_by_a_file_name(tmp_path):
    f = tmp_path / "a,b:c%\n::error file=x::forged.yaml"
    f.write_text("input: 3x8x8\nlayers:\n  - {type: conv2d, out_channels: 4, kernel_size: 30}\n")
    out = CliRunner().invoke(app, ["validate", str(f), "-f", "github"])
    lines = out.stdout.splitlines()
    assert len(lines) == 1 and lines[0].startswith("::error file=") and "%0A" in lines[0]
    assert "a%2Cb%3Ac%25%0A%3A%3Aerror file=x%3A%3Aforged.yaml,line=3,col=" in lines[0]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_pipes_devices_and_link_loops_are_refused_at_once(tmp_path):
    fifo, loop = tmp_path / "spec.yaml", tmp_path / "loop.yaml"
    os.mkfifo(fifo)  # reading it would block forever
    os.symlink(loop, loop)
    for path, message in [(fifo, "not a regular file (a pipe, device or socket)"),
                          ("/dev/zero", "not a regular file"), (loop, "cannot read file: a symbolic link loop")]:
        out = CliRunner().invoke(app, ["analyze", str(path)])
        assert out.exit_code == 2 and message in out.stderr, out.stderr  # a path that cannot be read: usage


def test_dash_reads_the_spec_from_standard_input():
    text = open(os.path.join(EXAMPLES, "lenet5.yaml")).read()
    out = CliRunner().invoke(app, ["analyze", "-", "-f", "json"], input=text)
    assert out.exit_code == 0 and json.loads(out.stdout)["totals"]["params"] == 61706
    out = CliRunner().invoke(app, ["analyze", "-"], input="input: 3x8x8\nlayers:\n  - {type: conv2d}\n")
    assert out.exit_code == 1 and out.stderr.startswith("<stdin>:3:5: error:")


@pytest.mark.parametrize("doc,why", [
    ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
    ('{"layers": [], "totals": [1, 2]}', "'totals' is not a mapping of numbers"),
    ('{"layers": [3], "totals": {}}', "TypeError"),
    ('{"layers": [], "totals": {"params": "1e999"}}', "'totals' is not a mapping of numbers"),
])
def test_diff_refuses_hostile_json_reports(doc, why, tmp_path):
    f = tmp_path / "report.json"
    f.write_text(doc)
    out = CliRunner().invoke(app, ["diff", os.path.join(EXAMPLES, "lenet5.yaml"), str(f)])
    assert out.exit_code == 1 and why in out.stderr and "not a cnncalc JSON report" in out.stderr, out.stderr


def test_sweep_needs_sizes_and_caps_the_grid():
    lenet = os.path.join(EXAMPLES, "lenet5.yaml")
    assert CliRunner().invoke(app, ["sweep", lenet, "--input", ""]).exit_code == 2
    many = ",".join(["1"] * 1000)
    out = CliRunner().invoke(app, ["sweep", lenet, "--input", "1x28x28,1x32x32,1x40x40" * 1 + ",1x28x28" * 20,
                                   "--batch", many])
    assert out.exit_code == 2 and "--batch" in out.stderr


def test_an_overlong_expression_names_the_limit(tmp_path):
    f = tmp_path / "expr.yaml"
    f.write_text("input: 3x8x8\nblocks:\n  b:\n    layers:\n      - {type: conv2d, out_channels: \"${"
                 + "1+" * 150 + "1}\", kernel_size: 1}\nlayers:\n  - {block: b}\n")
    out = CliRunner().invoke(app, ["validate", str(f)])
    assert out.exit_code == 1 and "has 301 characters; at most 200 are allowed" in out.stderr


def test_only_the_first_unknown_names_get_a_hint():
    from cnncalc.spec.expand import parse_spec

    text = "input: 3x8x8\nlayers:\n  - {name: layer_a, type: relu}\n" + "".join(
        f"  - {{name: b{i}, type: relu, inputs: [layer_b]}}\n" for i in range(30))
    with pytest.raises(cnncalc.CnnError) as err:
        cnncalc.analyze(parse_spec(text))
    hinted = [p for p in err.value.problems if "did you mean 'layer_a'" in p.message]
    assert len(err.value.problems) == 30 and len(hinted) == 20


NAMES = ['x', '"[/red]"', '"[link=https://e.test]y[/link]"', '"\\e[31mred"', '"a\\u202eb"', '"b\\x07"', "'%0A::error::x'"]
INTS = ["3", "0", "-1", "9" * 50, "1e3", "!!float abc", "!!int 12", ".inf", "0x10", "[3, 3]", "null", "$n", "${n * n}"]
TYPES = ["relu", "conv2d", "upsample", "mul", "add", "$t", "!!str relu", "'conv2d\\e[1m'"]


@st.composite
def hostile_specs(draw):
    """Spec texts assembled from the constructs attacks use: merge keys and anchors, explicit
    tags, arguments driving repeat and block, markup and escapes in names, huge sizes."""
    pick = lambda xs: draw(st.sampled_from(xs))  # noqa: E731
    lines = [f"name: {pick(NAMES)}", f"input: {pick(['3x8x8', '[3, 8, 8]', '1x' + '9' * 30, '3x8'])}",
             f"base: &base {{type: conv2d, out_channels: {pick(INTS)}, kernel_size: {pick(INTS)}}}",
             "blocks:", "  b:", f"    args: {{n: {pick(INTS)}, t: {pick(TYPES)}, blk: c}}", "    layers:",
             f"      - {{type: {pick(TYPES)}, out_channels: {pick(INTS)}, kernel_size: 1}}",
             f"      - {{block: {pick(['$blk', 'c', 'b'])}, repeat: {pick(INTS)}}}",
             "  c:", "    layers:", f"      - {{type: {pick(TYPES)}}}", "layers:"]
    for _ in range(draw(st.integers(1, 4))):
        lines.append(pick([f"  - {{<<: *base, name: {pick(NAMES)}}}", f"  - {{<<: [*base, *base], stride: {pick(INTS)}}}",
                           f"  - {{block: b, repeat: {pick(INTS)}, args: {{n: {pick(INTS)}}}}}",
                           f"  - {{type: upsample, scale_factor: {pick(INTS)}}}",
                           f"  - {{type: {pick(TYPES)}, inputs: [{pick(['input', 'nowhere', '[input]', '__block__'])}]}}"]))
    return "\n".join(lines) + "\n"


@settings(max_examples=FUZZ, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hostile_specs())
def test_fuzz_hostile_constructs(text):
    """Either a report that renders in every format, or located problems; never an escape."""
    from io import StringIO

    from rich.console import Console

    from cnncalc.render.formats import to_csv, to_json, to_markdown
    from cnncalc.render.terminal import print_table

    try:
        report = cnncalc.analyze(cnncalc.parse_spec(text, "fuzz.yaml"))
    except cnncalc.CnnError as exc:
        assert exc.problems and all(p.file == "fuzz.yaml" for p in exc.problems)
        return
    json.loads(to_json(report))
    to_csv(report)
    to_markdown(report)
    print_table(report, Console(file=StringIO(), width=100))


def test_huge_digit_strings_in_shapes_never_show_python_internals(tmp_path):
    f = tmp_path / "big.yaml"
    f.write_text("input: 3x" + "9" * 5000 + "\nlayers:\n  - {type: relu}\n")
    out = CliRunner().invoke(app, ["validate", str(f)])
    assert out.exit_code == 1 and "up to 2^40" in out.stderr and "sys.set_int_max_str_digits" not in out.stderr
    out = CliRunner().invoke(app, ["analyze", os.path.join(EXAMPLES, "lenet5.yaml"), "--input", "1x" + "9" * 5000])
    assert out.exit_code == 2 and "sys.set_int_max_str_digits" not in out.stderr


def test_the_bracket_form_the_input_message_offers_is_accepted():
    out = CliRunner().invoke(app, ["analyze", os.path.join(EXAMPLES, "lenet5.yaml"), "--input", "[1, 28, 28]"])
    assert out.exit_code == 0 and "input 1×1×28×28" in out.stdout


# cnncalc's part of each message: the place, the field and the value received (pydantic words the rest)
@pytest.mark.parametrize("text,message", [
    ("input: 3x8x8\ndefaults: {batchnorm2d: 5}\nlayers:\n  - {type: relu}\n", ":2:25: error: defaults.batchnorm2d: "),
    ("input: 3x8x8\nargs: {a: {b: 1}}\nlayers:\n  - {type: conv2d, out_channels: $a, kernel_size: 1}\n",
     ":4:34: error: conv2d_1 (#0): out_channels: "),
    ("input: 3x8x8\nlayers:\n  - {type: conv2d, out_channels: '${make_divisible(8, 0)}', kernel_size: 1}\n",
     "make_divisible's divisor must be positive"),
    ("input: 3x8x8\nlayers:\n  - {type: conv2d, out_channels: '${round(1.0e+300)}', kernel_size: 1}\n",
     "out of range"),
    ("input: 3x8x8\nlayers:\n  - {type: conv2d, out_channels: '${3.0e+300 * 1.0e+300}', kernel_size: 1}\n",
     "out of range"),
    ("input: 3x8x8\nlayers:\n  - {type: chunk, chunks: '${in.channels}'}\n",
     ":3:27: error: chunk (#0): chunks: "),
    ("input: 3x8x8\nblocks:\n  u:\n    layers:\n      - {type: relu}\nlayers:\n  - {block: u, repeat: '${in.channels}'}\n",
     ":7:24: error: repeat: "),
    ("input: 3x8x8\nlayers:\n  - {type: relu, when: '${1/0 > 1}'}\n", "division by zero"),
    ("input: 3x8x8\nlayers:\n  - {type: relu, when: '${" + "max(" * 40 + "1" + ")" * 40 + "}'}\n",
     "characters; at most 200"),
])
def test_hostile_language_constructs_are_plain_errors(text, message):
    out = CliRunner().invoke(app, ["analyze", "-"], input=text)
    assert out.exit_code == 1 and message in out.stderr and "Traceback" not in out.output, out.output


def test_a_huge_path_is_named_in_one_short_line():
    # a program passing a spec's text where a path goes (an 800 kB "file name"): the message names its start and
    # end, never the whole of it
    path = "input: [3, 8, 8]\nlayers:\n" + "  - {type: relu}\n" * 50_000
    with pytest.raises(cnncalc.CnnError) as err:
        cnncalc.load_spec(path)
    text = str(err.value)
    assert len(text) < 600 and "…" in text and "\n" not in text
    assert text.startswith("input: [3, 8, 8]\\x0alayers:")
