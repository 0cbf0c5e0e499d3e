"""Issue #28 §4: `include:` takes the blocks of other spec files. Paths are relative to the file
that names them and confined to the folder tree of the spec given; cycles, depth, the number and
bytes of files are bounded; every message about an included block is located in its own file.
The network built from included blocks is judged against a torch model written here."""
import os

import pytest
from typer.testing import CliRunner

import cnncalc
from cnncalc.cli.app import app
from cnncalc.spec.include import MAX_INCLUDE_DEPTH, MAX_INCLUDED_FILES

BLOCKS = """\
description: a dilated ResNet basic block, shared by several specs
blocks:
  basic:
    args: {c: null, d: 1}
    layers:
      - {name: conv1, type: conv2d, out_channels: $c, kernel_size: 3, padding: $d, dilation: $d, bias: false}
      - {name: bn1, type: batchnorm2d}
      - {name: relu, type: relu}
      - {name: conv2, type: conv2d, out_channels: $c, kernel_size: 3, padding: $d, dilation: $d, bias: false}
      - {name: bn2, type: batchnorm2d}
      - {name: add, type: add, inputs: [input, bn2]}
      - {type: relu}
"""

MAIN = """\
input: 8x20x20
include: common/blocks.yaml
layers:
  - {name: layer1, block: basic, args: {c: 8}, repeat: 2}
  - {name: layer2, block: basic, args: {c: 8, d: 2}, repeat: 1}
"""


def write(root, files: dict[str, str]) -> str:
    for rel, text in files.items():
        path = os.path.join(root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as fh:
            fh.write(text)
    return os.path.join(root, "main.yaml")


def problems(path: str) -> list:
    with pytest.raises(cnncalc.CnnError) as err:
        cnncalc.analyze(cnncalc.load_spec(path))
    return err.value.problems


def located(problem, path: str, line_has: str) -> bool:
    """The problem names `path` and a line of it that contains `line_has`."""
    with open(path) as fh:
        return problem.file == path and line_has in fh.read().splitlines()[problem.line - 1]


@pytest.mark.parametrize("size", [20, 23, 32])
def test_included_blocks_build_the_network_torch_builds(tmp_path, size):
    torch = pytest.importorskip("torch")
    from torch import nn
    from torch.utils.flop_counter import FlopCounterMode

    class Basic(nn.Module):
        def __init__(self, c, d=1):
            super().__init__()
            self.conv1 = nn.Conv2d(c, c, 3, padding=d, dilation=d, bias=False)
            self.bn1, self.relu = nn.BatchNorm2d(c), nn.ReLU()
            self.conv2 = nn.Conv2d(c, c, 3, padding=d, dilation=d, bias=False)
            self.bn2 = nn.BatchNorm2d(c)

        def forward(self, x):
            return torch.relu(x + self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x))))))

    model = nn.Sequential()
    model.add_module("layer1", nn.Sequential(Basic(8), Basic(8)))
    model.add_module("layer2", nn.Sequential(Basic(8, 2)))
    model.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        out = model(torch.randn(1, 8, size, size))
    path = write(tmp_path, {"main.yaml": MAIN, "common/blocks.yaml": BLOCKS})
    report = cnncalc.analyze(cnncalc.load_spec(path), input_shape=(8, size, size))
    assert report.layer(report.outputs[0]).output_shape == tuple(out.shape)
    assert report.totals["params"] == sum(p.numel() for p in model.parameters())
    assert report.totals["flops"] == counter.get_total_flops()
    convs = [n for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.BatchNorm2d))]
    assert [r.name for r in report.layers if r.type in ("conv2d", "batchnorm2d")] == convs


def test_includes_nest_relative_to_their_own_file_and_a_shared_file_is_read_once(tmp_path):
    path = write(tmp_path, {
        "main.yaml": MAIN.replace("include: common/blocks.yaml", "include: [lib/a.yaml, lib/b.yaml]"),
        "lib/a.yaml": "include: deep/c.yaml\nblocks:\n  a: {layers: [{type: relu}]}\n",
        "lib/b.yaml": "include: deep/c.yaml\nblocks:\n  b: {layers: [{type: relu}]}\n",
        "lib/deep/c.yaml": BLOCKS,
    })
    report = cnncalc.analyze(cnncalc.load_spec(path))
    assert report.layer("layer2.0.conv1").output_shape == (1, 8, 20, 20)  # by hand: padding 2, dilation 2 keeps 20


def test_a_mistake_in_an_included_block_is_located_in_that_file(tmp_path):
    path = write(tmp_path, {"main.yaml": MAIN, "common/blocks.yaml": BLOCKS.replace("type: batchnorm2d}\n      - {name: relu",
                                                                                    "type: batchnorm2dd}\n      - {name: relu")})
    [p] = problems(path)
    assert "unknown layer type 'batchnorm2dd'" in p.message
    assert located(p, os.path.join(tmp_path, "common", "blocks.yaml"), "batchnorm2dd")


def test_a_shape_problem_in_an_included_block_names_both_files(tmp_path):
    path = write(tmp_path, {"main.yaml": MAIN.replace("c: 8, d: 2", "c: 16, d: 2"), "common/blocks.yaml": BLOCKS})
    p = problems(path)[0]
    assert located(p, os.path.join(tmp_path, "common", "blocks.yaml"), "name: add")
    assert f"(in the block used at {path}:5)" in p.message


@pytest.mark.parametrize("files,message,where,line_has", [
    ({"main.yaml": MAIN.replace("common/blocks.yaml", "common/nope.yaml")}, "include: 'common/nope.yaml': no such file",
     "main.yaml", "include:"),
    ({"main.yaml": MAIN.replace("common/blocks.yaml", "main.yaml")}, "includes itself (main.yaml → main.yaml)",
     "main.yaml", "include:"),
    ({"main.yaml": MAIN.replace("common/blocks.yaml", "a.yaml"), "a.yaml": "include: [b.yaml]\n",
      "b.yaml": "include: [a.yaml]\n" + BLOCKS}, "includes itself (a.yaml → b.yaml → a.yaml)", "b.yaml", "include:"),
    ({"main.yaml": MAIN.replace("common/blocks.yaml", os.path.join(os.pardir, "outside.yaml"))},
     "lies outside the folder", "main.yaml",
     "include:"),
    ({"main.yaml": MAIN.replace("common/blocks.yaml", "/nonexistent/blocks.yaml")}, "is not relative", "main.yaml", "include:"),
    ({"main.yaml": MAIN.replace("common/blocks.yaml", "common")}, "is a directory", "main.yaml", "include:"),
    ({"main.yaml": MAIN, "common/blocks.yaml": "input: 3x8x8\nlayers: [{type: relu}]\n" + BLOCKS},
     "'layers' is not read from an included file", "common/blocks.yaml", "layers:"),
    ({"main.yaml": MAIN + "blocks:\n  basic: {layers: [{type: relu}]}\n", "common/blocks.yaml": BLOCKS},
     "block 'basic' is also defined in", "common/blocks.yaml", "args: {c: null"),
    ({"main.yaml": MAIN, "common/blocks.yaml": BLOCKS + "\tbad: 1\n"}, "a tab character", "common/blocks.yaml", "bad"),
    ({"main.yaml": MAIN, "common/blocks.yaml": "blocks: [1, 2]\n"}, "blocks: expected a mapping",
     "common/blocks.yaml", "blocks:"),
    ({"main.yaml": MAIN.replace("common/blocks.yaml", "[common/blocks.yaml, 5]"), "common/blocks.yaml": BLOCKS},
     "include: expected a file path, received 5", "main.yaml", "include:"),
])
def test_misuse_is_located(tmp_path, files, message, where, line_has):
    files = {"common/blocks.yaml": BLOCKS, **files}
    path = write(tmp_path, files)
    hits = [p for p in problems(path) if message in p.message]
    assert hits, [p.message for p in problems(path)]
    assert located(hits[0], os.path.normpath(os.path.join(tmp_path, where)), line_has)


def test_a_link_out_of_the_folder_is_refused(tmp_path):
    outside = tmp_path / "outside.yaml"
    outside.write_text(BLOCKS)
    os.makedirs(tmp_path / "spec" / "common")
    try:
        os.symlink(outside, tmp_path / "spec" / "common" / "blocks.yaml")
    except (OSError, NotImplementedError):
        pytest.skip("no symbolic links here")
    path = write(tmp_path / "spec", {"main.yaml": MAIN})
    assert any("lies outside the folder" in p.message for p in problems(path))


def test_depth_and_count_are_bounded(tmp_path):
    chain = {"main.yaml": MAIN.replace("common/blocks.yaml", "f0.yaml")}
    for i in range(MAX_INCLUDE_DEPTH + 2):
        chain[f"f{i}.yaml"] = f"include: f{i + 1}.yaml\nblocks:\n  b{i}: {{layers: [{{type: relu}}]}}\n"
    chain[f"f{MAX_INCLUDE_DEPTH + 2}.yaml"] = BLOCKS
    assert any(f"more than {MAX_INCLUDE_DEPTH} levels deep" in p.message for p in problems(write(tmp_path / "d", chain)))

    many = {f"m{i}.yaml": f"blocks:\n  m{i}: {{layers: [{{type: relu}}]}}\n" for i in range(MAX_INCLUDED_FILES + 1)}
    names = ", ".join(many)
    many["main.yaml"] = MAIN.replace("common/blocks.yaml", f"[common/blocks.yaml, {names}]")
    many["common/blocks.yaml"] = BLOCKS
    assert any(f"more than {MAX_INCLUDED_FILES} included files" in p.message
               for p in problems(write(tmp_path / "m", many)))


def test_included_bytes_are_bounded_all_together(tmp_path):
    from cnncalc.spec.include import MAX_INCLUDED_BYTES

    filler = "# " + "x" * 98 + "\n"
    big = filler * (MAX_INCLUDED_BYTES // len(filler) * 2 // 3)
    path = write(tmp_path, {"main.yaml": MAIN.replace("common/blocks.yaml", "[common/blocks.yaml, a.yaml, b.yaml]"),
                            "common/blocks.yaml": BLOCKS, "a.yaml": big + "blocks: {a: {layers: [{type: relu}]}}\n",
                            "b.yaml": big + "blocks: {b: {layers: [{type: relu}]}}\n"})
    assert any("included files (all together)" in p.message for p in problems(path))


def test_a_spec_without_a_file_cannot_include():
    with pytest.raises(cnncalc.CnnError) as err:
        cnncalc.parse_spec(MAIN)
    assert "include: needs a spec read from a file" in err.value.problems[0].message
    assert err.value.problems[0].line == 2


def test_the_command_line_reports_included_files_plainly(tmp_path):
    path = write(tmp_path, {"main.yaml": MAIN, "common/blocks.yaml": BLOCKS.replace("out_channels: $c", "out_channels: $cc",
                                                                                    1)})
    out = CliRunner().invoke(app, ["analyze", path])
    assert out.exit_code == 1 and "Traceback" not in out.output
    assert f"{os.path.join(tmp_path, 'common', 'blocks.yaml')}:6:" in out.stderr and "$cc" in out.stderr
    ok = CliRunner().invoke(app, ["analyze", write(tmp_path, {"common/blocks.yaml": BLOCKS})])
    assert ok.exit_code == 0, ok.output


def test_include_is_in_the_json_schema(schema):
    jsonschema = pytest.importorskip("jsonschema")
    header = {"type": "object", "properties": {"include": schema["properties"]["include"]}}  # the whole schema is slow
    for ok in ("common/blocks.yaml", ["a.yaml", "lib/b.yaml"]):
        jsonschema.validate({"include": ok}, header)
    for bad in (5, [], [3]):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate({"include": bad}, header)
