"""The command line: formats, exit codes, piping, golden outputs, schema, lean imports."""
import csv
import io
import json
import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

import cnncalc
from cnncalc.cli.app import app

from conftest import EXAMPLES, HOSTILE, ROOT, golden

runner = CliRunner()
LENET = os.path.join(EXAMPLES, "lenet5.yaml")
BROKEN = os.path.join(EXAMPLES, "broken", "alexnet_seed_224.yaml")


def run(*args, env=None):
    return runner.invoke(app, [str(a) for a in args], env=env)


def test_json_contract_keys():
    out = run("analyze", LENET, "--format", "json")
    assert out.exit_code == 0
    data = json.loads(out.stdout)
    assert data["input"] == {"shape": [1, 1, 28, 28], "dtype": "float32"}
    for layer in data["layers"]:
        assert {"name", "type", "inputs", "output_shape", "params", "trainable_params", "buffers", "macs", "flops",
                "activation_bytes", "receptive_field"} <= set(layer)
    assert {"params", "trainable_params", "non_trainable_params", "buffers", "macs", "flops", "activation_bytes",
            "param_bytes"} <= set(data["totals"])
    assert data["layers"][0]["receptive_field"] == {"size": [5, 5], "stride": [1, 1], "jump": [1, 1], "start": [0, 0],
                                                 "exact": True, "start_exact": [True, True], "whole_input": [False, False]}
    assert data["layers"][-1]["receptive_field"] is None  # after flatten
    assert data["warnings"] == []


def test_json_golden():
    golden("lenet5.json", run("analyze", LENET, "--format", "json").stdout.replace(EXAMPLES, "EXAMPLES"))


def test_csv_and_markdown():
    rows = list(csv.DictReader(io.StringIO(run("analyze", LENET, "-f", "csv").stdout)))
    assert rows[0]["name"] == "c1.conv" and rows[0]["params"] == str(6 * 25 + 6)
    assert rows[-1]["name"] == "total" and int(rows[-1]["params"]) == sum(int(r["params"]) for r in rows[:-1])
    # c3.pool: conv k5 (jump 1) → pool k2 s2 (2) → conv k5 (2) → pool k2 s2: jump 2·2 = 4
    pool = next(r for r in rows if r["name"] == "c3.pool")
    assert pool["rf_jump"] == pool["rf_stride"] == "4 4"
    md = run("analyze", LENET, "-f", "markdown").stdout
    assert md.startswith("## lenet5\n") and "| 0 | c1.conv | conv2d | 1×6×28×28 | 156 |" in md


def test_table_golden_and_piped_output_is_plain_and_whole():
    out = subprocess.run([sys.executable, "-m", "cnncalc", "analyze", "examples/lenet5.yaml"], cwd=ROOT,
                         capture_output=True, text=True, env={**os.environ, "COLUMNS": "20"})
    assert out.returncode == 0 and "\x1b[" not in out.stdout
    assert "c1.sigmoid" in out.stdout and "61,706" in out.stdout  # not folded to a 20-column terminal
    golden("lenet5.table.txt", out.stdout)


def test_narrow_terminal_table_keeps_one_aligned_line_per_layer():
    from rich.cells import cell_len
    from rich.console import Console

    import cnncalc
    from cnncalc.render.terminal import print_table

    report = cnncalc.analyze(cnncalc.load_spec(os.path.join(EXAMPLES, "resnet50.yaml")))
    console = Console(file=io.StringIO(), width=90, color_system=None)
    print_table(report, console)
    body = [line for line in console.file.getvalue().splitlines() if line.startswith("│")]
    assert len(body) == len(report.layers)  # never wrapped onto a second line
    assert max(cell_len(line) for line in body) <= 90 and "…" not in console.file.getvalue()  # columns left out, not cut
    assert [line.split("│")[2].strip() for line in body] == [r.name for r in report.layers]


def test_overrides_batch_input_dtype():
    spec = os.path.join(EXAMPLES, "googlenet_block.yaml")
    data = json.loads(run("analyze", spec, "-f", "json", "--batch", "4", "--input", "192x14x14", "--dtype",
                          "float16").stdout)
    assert data["input"] == {"shape": [4, 192, 14, 14], "dtype": "float16"}
    assert data["layers"][0]["output_shape"] == [4, 64, 14, 14]
    assert data["layers"][0]["activation_bytes"] == 4 * 64 * 14 * 14 * 2
    assert data["layers"][0]["macs"] == 4 * 64 * 14 * 14 * 192


def test_bad_command_line_is_exit_2():
    assert run("analyze", LENET, "--input", "axb").exit_code == 2
    assert run("analyze", LENET, "--format", "xml").exit_code == 2
    assert run("analyze").exit_code == 2


def test_shape_error_at_other_input_size_is_exit_1():
    out = run("analyze", LENET, "--input", "1x32x32")
    # 32 with padding 2: c1 32 → 16 → c3 12 → 6: flatten gives 16·6·6 = 576 ≠ 400
    assert out.exit_code == 1 and "in_features=400 but flatten gives 16×6×6 = 576" in out.stderr


def test_validate_text_and_exit_codes():
    out = run("validate", LENET, BROKEN)
    assert out.exit_code == 1
    # fc6 is layer #15: conv1 lrn1 pool1 relu conv2 lrn2 pool2 relu conv3 relu conv4 pool3 relu flatten dropout fc6
    assert f"{BROKEN}:23:44: error: fc6 (#15): in_features=9216 but flatten gives 256×5×5 = 6400" in out.stderr
    assert "2 files checked: 1 invalid" in out.stderr
    assert run("validate", *[os.path.join(EXAMPLES, f) for f in os.listdir(EXAMPLES) if f.endswith(".yaml")]).exit_code == 0


def test_validate_github_and_json():
    out = run("validate", BROKEN, env={"GITHUB_ACTIONS": "true"})
    assert out.exit_code == 1
    golden("validate.github.txt", out.stdout.replace(EXAMPLES, "EXAMPLES"))
    data = json.loads(run("validate", LENET, BROKEN, "--format", "json").stdout)
    assert [d["valid"] for d in data] == [True, False]
    assert data[1]["problems"][0]["line"] == 23


def test_missing_and_directory_files():
    out = run("validate", "nope.yaml", EXAMPLES)
    assert out.exit_code == 2  # a path that cannot be read is a command-line mistake
    assert "nope.yaml: error: no such file" in out.stderr
    assert "is a directory" in out.stderr
    assert run("validate", LENET, "nope.yaml").exit_code == 2
    assert run("validate", LENET, BROKEN).exit_code == 1
    for command in (["analyze"], ["verify"], ["rf"], ["plot"], ["diff", LENET]):
        out = run(*command, "nope.yaml")
        assert out.exit_code == 2 and "nope.yaml: error: no such file" in out.stderr, command


def test_parse_errors_give_each_layer_its_own_index(tmp_path):
    spec = tmp_path / "bad.yaml"
    spec.write_text("input: 3x32x32\nlayers:\n"
                    "  - {type: conv2d, out_channels: 8, kernel_size: 3}\n"
                    "  - {type: relu}\n"
                    "  - {type: conv2d, out_channels: 8, kernel_size: 3, bogus: 1}\n"
                    "  - {type: conv2d, out_channels: 8}\n"
                    "  - {type: conv2d, out_channels: -8, kernel_size: 3}\n")
    out = run("analyze", str(spec))
    assert out.exit_code == 1
    assert ["(#2)", "(#3)", "(#4)"] == [line.split(":")[4].split()[-1] for line in out.stderr.splitlines()]


def test_layers_and_schema():
    out = run("layers")
    assert out.exit_code == 0 and "conv_transpose2d" in out.stdout and "C_in·H·W" in out.stdout.replace("∏H", "H·W")
    assert run("layers", "conv2d").exit_code == 0
    bad = run("layers", "conv2")
    assert bad.exit_code == 1 and "did you mean 'conv2d'" in bad.stderr


@pytest.mark.slow  # validates every example against the JSON Schema (3 s)
def test_schema_is_valid_and_accepts_every_example():
    jsonschema = pytest.importorskip("jsonschema")
    import yaml

    schema = json.loads(run("schema").stdout)
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    for name in os.listdir(EXAMPLES):
        if name.endswith(".yaml"):
            errors = list(validator.iter_errors(yaml.safe_load(open(os.path.join(EXAMPLES, name)))))
            assert errors == [], (name, errors[:1])
    bad = {"input": "3x8x8", "layers": [{"type": "conv2d", "out_channels": 0, "kernel_size": 3}]}
    assert list(validator.iter_errors(bad))
    assert list(validator.iter_errors({"input": "3x8x8", "layers": [{"type": "conv9d"}]}))


def test_analyze_never_imports_torch_numpy_or_matplotlib():
    code = ("import sys; from cnncalc.cli import main; sys.argv = ['cnncalc', 'analyze', 'examples/resnet50.yaml', "
            "'-f', 'json']\ntry:\n    main()\nexcept SystemExit:\n    pass\n"
            "bad = [m for m in ('torch', 'numpy', 'matplotlib') if m in sys.modules]\n"
            "sys.stderr.write('LOADED:' + ','.join(bad))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert out.stderr.strip().endswith("LOADED:"), out.stderr[-300:]


def test_no_traceback_for_garbage():
    out = subprocess.run([sys.executable, "-m", "cnncalc", "analyze", "/dev/null"], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 2 and "Traceback" not in out.stderr and "not a regular file" in out.stderr


SCHEMA_INVALID = ["huge_channels.yaml", "negative.yaml", "list_top.yaml", "scalar_top.yaml", "yaml11_numbers.yaml",
                  "repeat_bomb.yaml"]


def test_schema_rejects_the_broken_specs(schema):
    jsonschema = pytest.importorskip("jsonschema")
    import yaml

    assert json.loads(run("schema").stdout) == schema  # the command prints the schema the other tests share
    validator = jsonschema.Draft202012Validator(schema)
    for name in SCHEMA_INVALID:
        doc = yaml.safe_load(open(os.path.join(HOSTILE, name)))
        assert list(validator.iter_errors(doc)), name


def test_add_rows_keeps_order_markup_and_escapes_across_chunks():
    from rich.console import Console
    from rich.table import Table

    from cnncalc.render.columns import ROWS_PER_CELL
    from cnncalc.render.terminal import add_rows

    n = 2 * ROWS_PER_CELL + 3
    table = Table("i", "mark")
    add_rows(table, ((str(i), "[green]ok[/green]" if i % 2 else "\\[x]") for i in range(n)), markup=True)
    assert table.row_count == 3
    console = Console(file=io.StringIO(), width=40, color_system=None)
    console.print(table)
    body = [line.split("│")[1:3] for line in console.file.getvalue().splitlines() if line.startswith("│")]
    assert [(i.strip(), m.strip()) for i, m in body] == [(str(i), "ok" if i % 2 else "[x]") for i in range(n)]


def test_markup_in_a_file_name_is_printed_as_written(tmp_path):
    f = tmp_path / "bad[bold].yaml"
    f.write_text("input: 1x8x8\nlayers:\n  - {type: conv2d, out_channels: 1, kernel_size: 30}\n")
    out = run("validate", f)
    assert out.exit_code == 1 and f"{f}:3:50: error:" in out.stderr


def test_version_and_problems_about_no_file():
    out = runner.invoke(app, ["--version"])
    assert out.exit_code == 0 and out.stdout == f"cnncalc {cnncalc.__version__}\n"
    assert cnncalc.Problem("cuda requested but not available").location() == "cnncalc"


@pytest.mark.parametrize("args", [
    ["diff", "LENET", "LENET", "-f", "csv"], ["rf", "LENET", "-f", "markdown"], ["sweep", "LENET", "--input", "1x28x28",
                                                                               "-f", "html"],
    ["verify", "LENET", "-f", "csv"], ["analyze", "LENET", "--layer", "c1.conv"],
    ["analyze", "LENET", "--explain", "-f", "markdown"], ["rf", "LENET", "--layer", "c1.conv"],
    ["analyze", "LENET", "--verify", "-f", "csv"]])
def test_options_that_would_be_ignored_are_usage_errors(args):
    lenet = os.path.join(EXAMPLES, "lenet5.yaml")
    out = runner.invoke(app, [lenet if a == "LENET" else a for a in args])
    assert out.exit_code == 2, out.stdout


def test_optimizer_state_is_printed_and_a_suggested_type_does_not_list_all_types(tmp_path):
    out = runner.invoke(app, ["analyze", os.path.join(EXAMPLES, "lenet5.yaml"), "--optimizer", "sgd"])
    assert "(sgd: no state; peak in the" in out.stdout  # was "sgd ," (rich read "[no state]" as markup)
    f = tmp_path / "typo.yaml"
    f.write_text("input: 3x8x8\nlayers:\n  - {type: conv2dd, out_channels: 4, kernel_size: 3}\n")
    out = runner.invoke(app, ["validate", str(f)])
    assert "unknown layer type 'conv2dd' (did you mean 'conv2d'?)\n" in out.stderr and "valid types" not in out.stderr


@pytest.mark.slow  # whole cnncalc processes: the fast loop stays well under a minute
def test_piped_output_is_tidy():
    for args in (["layers"], ["analyze", "examples/lenet5.yaml"], ["rf", "examples/resnet18.yaml"]):
        out = subprocess.run([sys.executable, "-m", "cnncalc", *args], cwd=ROOT, capture_output=True, text=True)
        lines = out.stdout.splitlines()
        assert out.returncode == 0 and lines and all(line == line.rstrip() for line in lines), args
        assert max(len(line) for line in lines) <= (160 if args == ["layers"] else 200), args


def run_in_pty(args: list[str], columns: int) -> str:
    """cnncalc's output on a real pseudo-terminal `columns` wide (ANSI codes removed)."""
    import fcntl
    import pty
    import re
    import struct
    import termios

    main_fd, sub_fd = pty.openpty()
    fcntl.ioctl(sub_fd, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "NO_COLOR")}
    proc = subprocess.Popen([sys.executable, "-m", "cnncalc", *args], cwd=ROOT, stdin=sub_fd, stdout=sub_fd,
                            stderr=sub_fd, env=env)
    os.close(sub_fd)
    chunks = []
    while True:
        try:
            data = os.read(main_fd, 65536)
        except OSError:  # the pty closes when the process ends
            break
        if not data:
            break
        chunks.append(data)
    proc.wait()
    os.close(main_fd)
    return re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", b"".join(chunks).decode("utf-8", "replace"))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="pty sizes via ioctl")
@pytest.mark.parametrize("columns", [80, 120, 200])
def test_no_number_or_name_is_cut_on_a_real_terminal(columns):
    text = run_in_pty(["analyze", "examples/resnet50.yaml"], columns)
    report = cnncalc.analyze(cnncalc.load_spec(os.path.join(EXAMPLES, "resnet50.yaml")))
    assert "…" not in text and "25,557,032" in text
    table = [line for line in text.splitlines() if line.startswith("│")]
    assert len(table) == len(report.layers) and all(len(line) <= columns for line in table)
    for row, line in zip(report.layers, table):
        assert f" {row.name} " in line and f"{row.params:,}" in line  # whole, on its own line, in order
    if columns == 200:
        assert "left out" not in text
    else:
        assert "left out for this" in text
