"""The Python API of #24 §2: `cnncalc.summary` / `cnncalc.analyze` on a spec path, YAML text, a
parsed Network or a live nn.Module; the Report printed (str, rich), in a notebook (_repr_html_,
rendered in headless Chromium), and as data (to_dict, to_dataframe, typed totals); the README's
"## Python API" examples run as written."""
import doctest
import html
import io
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys

import pytest

import cnncalc

from conftest import EXAMPLES, ROOT

LENET = os.path.join(EXAMPLES, "lenet5.yaml")
#: LeNet-5's params by hand: conv 1→6 k5, conv 6→16 k5, linear 400→120→84→10 (weights + biases)
LENET_PARAMS = (6 * 1 * 5 * 5 + 6) + (16 * 6 * 5 * 5 + 16) + (400 * 120 + 120) + (120 * 84 + 84) + (84 * 10 + 10)
TINY = """name: tiny
input: 3x32x32
layers:
  - {name: conv, type: conv2d, out_channels: 8, kernel_size: 3, padding: 1}
  - {name: act, type: relu}
"""
TINY_MACS = 8 * 32 * 32 * 3 * 3 * 3  #: per sample: outputs × (C_in · k²)
CHROMIUM = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)


def torch_or_skip():
    return pytest.importorskip("torch", reason="needs the torch extra")


def squeeze_excite():
    """A small model with a branch, a gate and buffers: conv, batch norm, SE gate, residual add."""
    nn = torch_or_skip().nn

    class SqueezeExcite(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.bn = nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8)
            self.pool, self.fc, self.gate = nn.AdaptiveAvgPool2d(1), nn.Conv2d(8, 8, 1), nn.Sigmoid()

        def forward(self, x):
            y = self.bn(self.conv(x))
            return y * self.gate(self.fc(self.pool(y))) + y

    return SqueezeExcite()


# ---- what summary and analyze take ------------------------------------------------------------------
def test_every_kind_of_spec_gives_the_same_report(tmp_path):
    (tmp_path / "tiny.yml").write_text(TINY)
    reports = [cnncalc.summary(LENET), cnncalc.summary(pathlib.Path(LENET)), cnncalc.summary(open(LENET).read()),
               cnncalc.summary(cnncalc.load_spec(LENET)), cnncalc.analyze(LENET)]
    assert {r.totals.params for r in reports} == {LENET_PARAMS}
    assert cnncalc.summary(str(tmp_path / "tiny.yml")).totals.macs == TINY_MACS
    # input_size: without batch, or leading with it (torchinfo's habit); batch= alone; the old positional form
    assert cnncalc.summary(TINY, input_size=(3, 16, 16)).totals.macs == TINY_MACS // 4
    r = cnncalc.summary(TINY, input_size=(4, 3, 16, 16))
    assert r.input_shape == (4, 3, 16, 16) and r.totals.macs == 4 * TINY_MACS // 4
    assert cnncalc.summary(TINY, batch=3).totals.macs == 3 * TINY_MACS
    assert cnncalc.analyze(cnncalc.parse_spec(TINY), 2, (3, 16, 16)).totals.macs == 2 * TINY_MACS // 4
    assert cnncalc.summary(TINY, dtype="bfloat16").totals.param_bytes == (8 * 3 * 9 + 8) * 2
    assert cnncalc.summary(TINY, optimizer="sgd").totals.optimizer == "sgd"


def test_a_missing_file_is_a_located_error_not_yaml_text(tmp_path):
    with pytest.raises(cnncalc.CnnError) as err:
        cnncalc.summary(str(tmp_path / "nope.yaml"))
    assert "nope.yaml" in str(err.value.problems[0].location())


@pytest.mark.parametrize("bad", [42, None, b"name: x", ["examples/lenet5.yaml"], {"name": "x"}])
def test_a_wrong_argument_type_is_a_plain_type_error_naming_what_is_taken(bad):
    for call in (cnncalc.analyze, cnncalc.summary):
        with pytest.raises(TypeError) as err:
            call(bad)
        assert all(w in str(err.value) for w in ("Network", "spec path", "YAML text", "nn.Module")), err.value


def test_bad_arguments_are_value_errors_that_say_what_is_wrong():
    cases = [(dict(input_size=(3, 32)), "dimensions"), (dict(input_size=(2, 3, 8, 8), batch=4), "batch=4"),
             (dict(input_size=(3, 0, 8)), "at least 1"), (dict(batch=0), "batch"), (dict(dtype="fp7"), "float32"),
             (dict(optimizer="lion"), "adam"), (dict(depth=0), "depth"), (dict(columns="name,colour"), "colour")]
    for kw, said in cases:
        with pytest.raises(ValueError, match=re.escape(said)):
            cnncalc.summary(TINY, **kw)


# ---- a live nn.Module ---------------------------------------------------------------------------------
def test_summary_of_a_torch_model_as_torchinfo_takes_it():
    torch = torch_or_skip()
    nn = torch.nn

    class TinyNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 3, padding=1)
            self.act = nn.ReLU()

        def forward(self, x):
            return self.act(self.conv(x))

    model = TinyNet()
    r = cnncalc.summary(model, input_size=(3, 32, 32))
    assert r.name == "tiny_net" and r.input_shape == (1, 3, 32, 32)
    assert r.totals.params == sum(p.numel() for p in model.parameters()) == 8 * 3 * 9 + 8
    assert r.totals.macs == TINY_MACS
    r = cnncalc.summary(model, input_size=(2, 3, 32, 32))  # the leading batch, torchinfo's way
    assert r.input_shape == (2, 3, 32, 32) and r.totals.macs == 2 * TINY_MACS
    with torch.utils.flop_counter.FlopCounterMode(display=False) as flops:
        model(torch.zeros(2, 3, 32, 32))
    assert r.totals.flops == flops.get_total_flops()
    # an nn.Sequential (layers named 0, 1, …) and a 1-D model: the rank comes from the first conv
    seq = nn.Sequential(nn.Conv1d(4, 6, 5), nn.ReLU())
    r = cnncalc.summary(seq, input_size=(4, 50))
    assert r.input_shape == (1, 4, 50) and r.totals.macs == 6 * 46 * 4 * 5
    assert cnncalc.summary(seq, input_size=(3, 4, 50)).input_shape == (3, 4, 50)
    assert cnncalc.analyze(seq, input_size=(4, 50)).totals.params == 6 * 4 * 5 + 6
    with pytest.raises(ValueError, match="input size"):
        cnncalc.summary(model)


def test_spec_from_torch_prove_false_skips_only_the_forward_comparison(monkeypatch):
    from cnncalc.interop import torch_import

    compared = []
    real_close = torch_import._close
    monkeypatch.setattr(torch_import, "_close", lambda *a: compared.append(1) or real_close(*a))
    model = squeeze_excite()
    text = cnncalc.spec_from_torch(model, (3, 32, 32), prove=False)
    assert not compared and "outputs not compared" in text.splitlines()[0]
    assert re.search(r"^name: squeeze_excite$", text, re.M)  # named after the class, in snake_case
    assert cnncalc.summary(text).totals.params == sum(p.numel() for p in model.parameters())
    proved = cnncalc.spec_from_torch(model, (3, 32, 32), name="squeeze")
    assert compared and re.search(r"^name: squeeze$", proved, re.M)
    # the counts are still checked: a FLOPs disagreement is refused with prove=False too
    monkeypatch.setattr(torch_import, "_counts_and_used", lambda m, s: ({"params": 1, "buffers": 0, "flops": 0}, set()))
    with pytest.raises(cnncalc.CnnError, match="params: cnncalc"):
        cnncalc.spec_from_torch(model, (3, 32, 32), prove=False)


def test_snake_names():
    from cnncalc.interop.torch_import import snake_name

    assert [snake_name(n) for n in ("MobileNetV2", "SE", "ResNet", "VGG16", "my-net.v2", "__", "_3D")] == [
        "mobile_net_v2", "se", "res_net", "vgg16", "my_net_v2", "net", "3d"]
    assert snake_name("Conv3DNet") == "conv3d_net" and snake_name("ResNet50Block") == "res_net50_block"


def test_spec_from_onnx_prove_false_and_its_default_name(tmp_path):
    onnx = pytest.importorskip("onnx", reason="needs the onnx extra")
    import numpy as np
    from onnx import helper, numpy_helper

    w = numpy_helper.from_array(np.ones((4, 3, 3, 3), np.float32), "conv.weight")
    graph = helper.make_graph([helper.make_node("Conv", ["x", "conv.weight"], ["y"], kernel_shape=[3, 3]),
                               helper.make_node("Relu", ["y"], ["z"])], "g",
                              [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 3, 8, 8])],
                              [helper.make_tensor_value_info("z", onnx.TensorProto.FLOAT, None)], [w])
    path = tmp_path / "TinyConv.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(path))
    text = cnncalc.spec_from_onnx(path, prove=False)
    assert re.search(r"^name: tiny_conv$", text, re.M) and "outputs not compared" in text
    assert cnncalc.summary(text).totals.macs == 4 * 6 * 6 * 3 * 3 * 3


# ---- the report, printed ----------------------------------------------------------------------------
def test_print_shows_the_table_and_rich_print_the_same(monkeypatch, capsys):
    monkeypatch.setenv("COLUMNS", "200")
    r = cnncalc.summary(LENET)
    print(r)
    text = capsys.readouterr().out
    assert text.startswith("lenet5  ·  input 1×1×28×28  ·  float32\n")
    assert "│  7 │ f5         │ linear    │ 1×120        │ 48,120 │" in text  # 400·120 + 120
    assert f"params                      {LENET_PARAMS:,}" in text and "Report(" not in text
    assert "\x1b" not in text and not any(line.endswith(" ") for line in text.splitlines())
    assert repr(r) == str(r)  # the table at the prompt too, as torchinfo shows it
    from rich.console import Console

    out = io.StringIO()
    Console(file=out, width=200, color_system=None).print(r)
    assert [line.rstrip() for line in out.getvalue().rstrip("\n").split("\n")] == str(r).split("\n")
    monkeypatch.setenv("COLUMNS", "80")  # a narrow terminal: whole columns left out and named, never cut
    narrow = str(r)
    assert max(map(len, narrow.splitlines())) <= 80 and "left out for this 80-column terminal" in narrow


def test_depth_and_columns_given_to_summary_are_kept_for_printing(monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    resnet50 = os.path.join(EXAMPLES, "resnet50.yaml")
    r = cnncalc.summary(resnet50, depth=1, columns=["name", "params", "macs"])
    head = next(line for line in str(r).splitlines() if line.startswith("┃"))
    assert re.findall(r"\w+", head) == ["name", "params", "MACs"]
    names = [line.split("│")[1].strip() for line in str(r).splitlines() if line.startswith("│")]
    assert "layer1 ×3" in names and "layer1.0.conv1" not in names
    cli = subprocess.run([sys.executable, "-m", "cnncalc", "analyze", resnet50, "--depth", "1", "--columns",
                          "name,params,macs"], capture_output=True, text=True, check=True)
    assert str(r) + "\n" == cli.stdout  # what the command prints, to the character


# ---- the report as data -----------------------------------------------------------------------------
def test_to_dict_is_what_analyze_json_gives():
    cli = subprocess.run([sys.executable, "-m", "cnncalc", "analyze", LENET, "-f", "json"], capture_output=True,
                         text=True, check=True)
    assert cnncalc.summary(LENET).to_dict() == json.loads(cli.stdout)


def test_totals_are_typed_attributes_and_the_json_keys():
    t = cnncalc.summary(LENET).totals
    assert t.params == t["params"] == LENET_PARAMS and t.flops == 2 * t.macs
    assert set(cnncalc.Totals.__annotations__) == set(t)  # every key has its typed attribute, and no more
    assert json.loads(json.dumps(t)) == dict(t)
    with pytest.raises(AttributeError, match="no 'parms'"):
        t.parms  # noqa: B018


def test_to_dataframe_one_row_per_layer_numbers_as_numbers():
    r = cnncalc.summary(LENET)
    pd = pytest.importorskip("pandas", reason="needs pandas")
    df = r.to_dataframe()
    assert isinstance(df, pd.DataFrame) and len(df) == len(r.layers)
    assert list(df["name"]) == [x.name for x in r.layers]
    for col in ("params", "macs", "flops", "activation_bytes", "elementwise_ops"):
        assert pd.api.types.is_integer_dtype(df[col]), col
    assert int(df["params"].sum()) == LENET_PARAMS and df.loc[0, "output_shape"] == (1, 6, 28, 28)
    assert df.loc[0, "rf_size"] == (5, 5) and df.loc[7, "rf_size"] is None


def test_to_dataframe_without_pandas_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "pandas", None)  # import pandas → ImportError
    with pytest.raises(ImportError, match="pip install pandas"):
        cnncalc.summary(LENET).to_dataframe()


# ---- in a notebook ------------------------------------------------------------------------------------
def test_repr_html_is_the_html_report_in_a_frame_of_its_own():
    from cnncalc.render.html import to_html

    r = cnncalc.summary(LENET, columns="name,params")
    frame = r._repr_html_()
    assert frame.startswith("<iframe") and frame.count("<") == 2  # the page is in srcdoc, escaped
    page = html.unescape(re.search(r'srcdoc="([^"]*)"', frame).group(1))
    assert page == to_html(r, columns=r.view_columns) and "<th scope=\"col\">name</th>" in page
    assert "MACs</th>" not in page.split("<h2>Layers</h2>")[1].split("</thead>")[0]


@pytest.mark.skipif(CHROMIUM is None, reason="needs Chromium (apt-get install chromium)")
def test_repr_html_renders_in_a_browser_without_console_messages(tmp_path):
    r = cnncalc.summary(os.path.join(EXAMPLES, "resnet18.yaml"))
    notebook = tmp_path / "notebook.html"  # a cell's output area, as Jupyter inserts _repr_html_
    notebook.write_text(f"""<!DOCTYPE html><html><head><meta charset="utf-8"></head><body>
<div class="output_html">{r._repr_html_()}</div>
<script>
const frame = document.querySelector("iframe");
frame.addEventListener("load", () => {{
  const doc = frame.contentDocument, d = document.body.dataset;
  d.rows = doc.querySelectorAll("table.layers tbody tr").length;
  d.nodes = doc.querySelectorAll("svg g.node").length;
  d.charts = doc.querySelectorAll("svg.chart").length;
  d.margin = getComputedStyle(document.body).marginTop;  // the report's styles stay in its frame
  d.done = "yes";
}});
</script></body></html>""")
    profile = tmp_path / "profile"
    profile.mkdir()
    out = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                          "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
                          "--enable-logging=stderr", "--v=0", "--virtual-time-budget=5000", "--dump-dom",
                          notebook.as_uri()], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    console = [line for line in out.stderr.splitlines() if ":CONSOLE" in line]
    assert not console, console
    seen = dict(re.findall(r'data-(\w+)="([^"]*)"', re.search(r"<body([^>]*)>", out.stdout).group(1)))
    assert seen.get("done") == "yes", out.stdout[:500]
    assert int(seen["rows"]) == len(r.layers) and int(seen["nodes"]) == len(r.layers) + 1
    assert seen["charts"] == "3" and seen["margin"] == "8px"  # the browser's own body margin, not the report's 24px


# ---- documentation ------------------------------------------------------------------------------------
def test_every_public_function_has_a_docstring_example_that_runs(monkeypatch):
    import cnncalc.api

    for module in (cnncalc, cnncalc.api):
        public = [getattr(module, n) for n in dir(module) if not n.startswith("_")]
        functions = [f for f in public if callable(f) and not isinstance(f, type) and f.__module__ in (
            "cnncalc", "cnncalc.api")]
        assert functions and all(">>> " in (f.__doc__ or "") for f in functions), [
            f.__name__ for f in functions if ">>> " not in (f.__doc__ or "")]
    pytest.importorskip("torch")  # some examples build an nn.Module (the lowest-versions job has no torch)
    monkeypatch.chdir(ROOT)  # the examples read examples/*.yaml
    for module in (cnncalc, cnncalc.api):
        result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
        assert result.failed == 0 and result.attempted > 0, module


def readme_python_blocks() -> list[str]:
    text = open(os.path.join(ROOT, "README.md")).read()
    section = re.search(r"^## Python API\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    return re.findall(r"^```python\n(.*?)^```", section.group(1), re.S | re.M) if section else []


def test_readme_python_api_examples_run(monkeypatch, capsys):
    import importlib.util

    blocks = readme_python_blocks()
    if not blocks:
        pytest.skip("README.md has no '## Python API' section with ```python blocks yet")
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("COLUMNS", "120")
    ran = 0
    for i, block in enumerate(blocks):
        needs = [m for m, used in (("torch", "import torch" in block), ("pandas", "to_dataframe" in block)) if used]
        if any(importlib.util.find_spec(m) is None for m in needs):
            continue  # an optional package this block uses is missing
        exec(compile(block, f"README.md (Python API, block {i + 1})", "exec"), {"__name__": "__readme__"})
        ran += 1
    if not ran:
        pytest.skip("every README Python example needs an optional package that is missing")
    assert capsys.readouterr().out  # the examples print what they show
