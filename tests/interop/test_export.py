"""`cnncalc export --to torch`: the written file builds the same network as cnncalc's own
executor (same parameters, the executor's weights load strictly under the spec's names, equal
outputs) and works with torch.fx and TorchScript."""
import glob
import os
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch.jit: deprecated in 2.13, asked for by #15

import cnncalc  # noqa: E402
from cnncalc.backend import build_model
from cnncalc.backend.kit import kit  # noqa: E402
from cnncalc.interop.torch_export import executor_state, to_torch  # noqa: E402

from conftest import EXAMPLES, analyze_text  # noqa: E402
from conftest import load_module as load  # noqa: E402
from layer_cases import CASES, spec_text  # noqa: E402

EXPORTABLE = [p for p in sorted(glob.glob(os.path.join(EXAMPLES, "*.yaml")))]


@pytest.mark.parametrize("path", EXPORTABLE, ids=os.path.basename)
@pytest.mark.slow
def test_exported_module_equals_the_executor(path, tmp_path):
    report = cnncalc.analyze(cnncalc.load_spec(path), batch=2)
    net = load(to_torch(report), tmp_path).build().eval()
    assert sum(p.numel() for p in net.parameters()) == report.totals["params"]
    torch.manual_seed(0)
    model = build_model(report, kit()).eval()
    net.load_state_dict(executor_state(report, model), strict=True)
    x = torch.randn(report.input_shape)
    with torch.inference_mode():
        want, got = model(x), net(x)
    for a, b in zip(want if isinstance(want, tuple) else (want,), got if isinstance(got, tuple) else (got,)):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_exported_module_traces_and_scripts(tmp_path):
    for name in ("resnet18", "mobilenet_v3_large", "shufflenet_v2", "hybrid_attention", "googlenet_block"):
        report = cnncalc.analyze(cnncalc.load_spec(os.path.join(EXAMPLES, f"{name}.yaml")))
        net = load(to_torch(report), tmp_path, name).build().eval()
        x = torch.randn(report.input_shape)
        with torch.inference_mode():
            want = net(x)
            assert torch.allclose(torch.fx.symbolic_trace(net)(x), want, atol=1e-5), name
            assert torch.allclose(torch.jit.script(net)(x), want, atol=1e-5), name


@pytest.mark.slow
def test_export_cli_writes_a_file_that_needs_only_torch(tmp_path):
    out = tmp_path / "lenet.py"
    folder = tmp_path / "cnncalc"  # the default name of a clone: the spec's folders stay out of the file (#24)
    folder.mkdir()
    spec = folder / "lenet5.yaml"
    spec.write_text(open(os.path.join(EXAMPLES, "lenet5.yaml")).read())
    run = subprocess.run([sys.executable, "-m", "cnncalc", "export", str(spec), "--to",
                          "torch", "-o", str(out)], capture_output=True, text=True)
    assert run.returncode == 0 and "wrote" in run.stderr
    text = out.read_text()
    assert "written by cnncalc from lenet5.yaml." in text and str(tmp_path) not in text
    assert "cnncalc" not in text.replace("cnncalc export", "").replace("written by cnncalc", "")
    assert "self.c1 = nn.ModuleDict" in text and "def build():" in text
    check = subprocess.run([sys.executable, "-c", f"import runpy; m = runpy.run_path({str(out)!r}); "
                            "import torch; print(tuple(m['build']()(torch.zeros(1, 1, 28, 28)).shape))"],
                           capture_output=True, text=True)
    assert check.stdout.strip() == "(1, 10)", check.stderr
    for bad in (["--to", "onnx"], ["--to", "tflite"]):  # onnx needs -o; tflite is no target
        run = subprocess.run([sys.executable, "-m", "cnncalc", "export", os.path.join(EXAMPLES, "lenet5.yaml"), *bad],
                             capture_output=True, text=True)
        assert run.returncode == 2, bad


def test_names_that_cannot_be_attributes_keep_their_keys_and_a_layer_cannot_be_a_group(tmp_path):
    # a top-level nn.Sequential's names ('0.conv') are module keys, not attributes: the state_dict keys survive
    report = analyze_text("input: 3x8x8\nlayers:\n  - {name: '0.conv', type: conv2d, out_channels: 2, kernel_size: 1}\n")
    net = load(to_torch(report), tmp_path).build()
    assert list(net.state_dict()) == ["0.conv.weight", "0.conv.bias"]
    with pytest.raises(cnncalc.CnnError, match="cannot also hold others|both a layer and a group"):
        to_torch(analyze_text("input: 3x8x8\nlayers:\n  - {name: a, type: relu}\n  - {name: a.b, type: relu}\n"))


@pytest.mark.slow
def test_exported_module_compiles():
    report = cnncalc.analyze(cnncalc.load_spec(os.path.join(EXAMPLES, "lenet5.yaml")))
    model = build_model(report, kit()).eval()
    from cnncalc.interop.torch_export import exported_module

    net = exported_module(report, model).eval()
    x = torch.randn(report.input_shape)
    with torch.inference_mode():
        assert torch.allclose(torch.compile(net)(x), model(x), atol=1e-5)


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_every_layer_type_exports(case, tmp_path):
    report = analyze_text(spec_text(case))
    torch.manual_seed(0)
    model = build_model(report, kit()).eval()
    from cnncalc.interop.torch_export import exported_module

    net = exported_module(report, model).eval()
    x = torch.randn(report.input_shape)
    with torch.inference_mode():
        assert torch.allclose(net(x), model(x), rtol=1e-4, atol=1e-5, equal_nan=True)  # lppool: NaN alike


def test_uneven_padding_is_written_as_one_conv_that_pads_first(tmp_path):
    # TensorFlow's strided 'same' at 9×10, 3×3 stride 2: rows (5−1)·2 + 3 − 9 = 2 → 1, 1; columns 1 → 0, 1;
    # then explicit [before, after] pairs with reflect, and conv1d/conv3d 'same' with even kernels
    spec = ("input: 2x9x10\nlayers:\n  - {name: c, type: conv2d, out_channels: 3, kernel_size: 3, stride: 2, padding: same}\n"
            "  - {name: d, type: conv2d, out_channels: 2, kernel_size: 2, padding: [[0, 2], [1, 0]], padding_mode: reflect}\n")
    report = analyze_text(spec)
    text = to_torch(report)
    assert "class PaddedConv2d(nn.Conv2d)" in text and "((1, 1), (0, 1))" in text and "nn.Sequential" not in text
    net = load(text, tmp_path).build().eval()
    assert list(net.state_dict()) == ["c.weight", "c.bias", "d.weight", "d.bias"]
    torch.manual_seed(0)
    model = build_model(report, kit()).eval()
    net.load_state_dict(executor_state(report, model), strict=True)
    x = torch.randn(report.input_shape)
    state = net.state_dict()
    want = torch.nn.functional.pad(x, (0, 1, 1, 1))  # F.pad: the last axis first
    want = torch.nn.functional.conv2d(want, state["c.weight"], state["c.bias"], stride=2)
    want = torch.nn.functional.pad(want, (1, 0, 0, 2), mode="reflect")
    want = torch.nn.functional.conv2d(want, state["d.weight"], state["d.bias"])
    with torch.inference_mode():
        assert torch.allclose(net(x), want, atol=1e-6) and torch.allclose(model(x), want, atol=1e-6)
        assert torch.allclose(torch.fx.symbolic_trace(net)(x), want, atol=1e-6)
    for other in ("input: 2x9\nlayers:\n  - {name: c, type: conv1d, out_channels: 3, kernel_size: 4, stride: 2, "
                  "padding: same}\n",
                  "input: 2x5x9x10\nlayers:\n  - {name: c, type: conv3d, out_channels: 3, kernel_size: 2, stride: 2, "
                  "padding: same}\n"):
        report = analyze_text(other)
        net = load(to_torch(report), tmp_path, "other").build().eval()
        assert list(net.state_dict()) == ["c.weight", "c.bias"]
        assert net(torch.randn(report.input_shape)).shape == report.layers[-1].output_shape


@pytest.mark.slow
def test_uneven_padding_scripts(tmp_path):
    report = analyze_text("input: 2x9x10\nlayers:\n  - {name: c, type: conv2d, out_channels: 3, kernel_size: 3, "
                          "stride: 2, padding: same}\n")
    net = load(to_torch(report), tmp_path).build().eval()
    x = torch.randn(report.input_shape)
    with torch.inference_mode():
        assert torch.allclose(torch.jit.script(net)(x), net(x), atol=1e-6)


@pytest.mark.parametrize("name", ["lenet5", "resnet18", "shufflenet_v2"])
@pytest.mark.slow
def test_export_to_onnx(name, tmp_path):
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxscript")
    out = tmp_path / f"{name}.onnx"
    run = subprocess.run([sys.executable, "-m", "cnncalc", "export", os.path.join(EXAMPLES, f"{name}.yaml"), "--to",
                          "onnx", "-o", str(out)], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-500:]
    graph = onnx.load(str(out))
    onnx.checker.check_model(graph)
    report = cnncalc.analyze(cnncalc.load_spec(os.path.join(EXAMPLES, f"{name}.yaml")))
    dims = [d.dim_value for d in graph.graph.input[0].type.tensor_type.shape.dim]
    assert tuple(dims) == report.input_shape and run.stdout == ""
    # torch's exporter logs, warns and prints progress lines: none reach the screen without -v (#24)
    assert run.stderr.strip().splitlines() == [f"wrote {out}"], run.stderr[-800:]


def test_a_hostile_name_never_becomes_code(tmp_path):
    import json

    name = 'x"""\nraise SystemExit(7)\n"""\\ \'\'\' \x1b[31m'
    report = analyze_text("name: " + json.dumps(name) + "\ninput: 3x8x8\nlayers:\n  - {type: relu}\n")
    text = to_torch(report)
    module = load(text, tmp_path, "hostile")  # executing the file raises nothing
    assert module.build()(torch.ones(1, 3, 8, 8)).shape == (1, 3, 8, 8)
    assert "\nraise SystemExit" not in text and "\x1b" not in text


@pytest.mark.slow
def test_a_split_and_a_chunk_are_written_as_torch_writes_them(tmp_path):
    """A spec's split is one torch.split in the written forward (a chunk one torch.chunk), as the executor runs
    them; the module equals the executor and scripts."""
    report = analyze_text("input: 8x6x6\nbatch: 2\nlayers:\n  - {name: c, type: conv2d, out_channels: 8, kernel_size: 1}\n"
                          "  - {name: s, type: split, sizes: [3, 5]}\n  - {name: h, type: chunk, chunks: 2, inputs: [c]}\n"
                          "  - {name: b, type: conv2d, out_channels: 5, kernel_size: 1, inputs: [s.1]}\n"
                          "  - {type: concat, inputs: [s.0, b, h.1]}\n")
    source = to_torch(report)
    assert source.count("torch.split(") == 1 and "[3, 5], 1)" in source and source.count("torch.chunk(") == 1
    net = load(source, tmp_path).build().eval()
    torch.manual_seed(0)
    model = build_model(report, kit()).eval()
    net.load_state_dict(executor_state(report, model), strict=True)
    x = torch.randn(report.input_shape)
    with torch.inference_mode():
        assert torch.allclose(model(x), net(x), atol=1e-6)
        assert torch.allclose(torch.jit.script(net)(x), net(x), atol=1e-6)
