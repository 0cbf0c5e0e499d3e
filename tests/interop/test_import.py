"""`cnncalc import`: our own PyTorch models (tests/data/import_models.py) → spec. Each spec is
judged here against torch directly (params and buffers summed from the model, FLOPs from
FlopCounterMode, every layer's output shape from forward hooks), then exported and loaded with
the model's own state_dict (strict, equal outputs), then exported → imported again (same numbers).
Every example: export → import gives the same totals."""
import glob
import os
import sys

import pytest

torch = pytest.importorskip("torch")
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

import cnncalc  # noqa: E402
from cnncalc.cli.app import app  # noqa: E402
from cnncalc.interop.torch_export import to_torch  # noqa: E402
from cnncalc.interop.torch_import import import_model  # noqa: E402
from cnncalc.spec.expand import parse_spec  # noqa: E402

from conftest import DATA, EXAMPLES, load_module  # noqa: E402
from layer_cases import CASES, spec_text  # noqa: E402

sys.path.insert(0, DATA)
import import_models as M  # noqa: E402

MODELS_FILE = os.path.join(DATA, "import_models.py")
runner = CliRunner()
KEYS = ("params", "buffers", "macs", "flops")


def torch_numbers(model, shape):
    model.eval()
    shapes = {}
    def keep(name):
        def hook(mod, i, o):
            shapes.setdefault(name, tuple(o.shape))  # the first call (returns None: the output stays)
        return hook

    hooks = [m.register_forward_hook(keep(name)) for name, m in model.named_modules() if name and not list(m.children())]
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.randn(1, *shape))
    for h in hooks:
        h.remove()
    return {"params": sum(p.numel() for p in model.parameters()),
            "buffers": sum(b.numel() for b in model.buffers()),
            "flops": counter.get_total_flops(), "shapes": shapes}


def totals(report):
    return {k: report.totals[k] for k in KEYS}


@pytest.mark.parametrize("name", list(M.MODELS))
@pytest.mark.slow
def test_import_equals_torch_and_round_trips(name, tmp_path):
    shape = M.MODELS[name]
    model = getattr(M, name)().eval()
    text, notes = import_model(model, shape, name, [])
    report = cnncalc.analyze(parse_spec(text))
    want = torch_numbers(model, shape)
    assert (report.totals["params"], report.totals["buffers"], report.totals["flops"]) == \
           (want["params"], want["buffers"], want["flops"])
    for module_name, out_shape in want["shapes"].items():  # every module's output, named by its path
        if module_name in {r.name for r in report.layers}:
            assert report.layer(module_name).output_shape == out_shape, module_name
    # export: a standalone file whose module takes the original weights, strictly, and computes the same
    net = load_module(to_torch(report), tmp_path, "exported").build().eval()
    net.load_state_dict(model.state_dict(), strict=True)
    x = torch.randn(2, *shape)
    with torch.no_grad():
        a, b = model(x), net(x)
    for u, v in zip(a if isinstance(a, tuple) else [a], b if isinstance(b, tuple) else [b]):
        torch.testing.assert_close(u, v, rtol=1e-4, atol=1e-5)
    # import(export(spec)): the same numbers
    again, _ = import_model(net, shape, name, [])
    assert totals(cnncalc.analyze(parse_spec(again))) == totals(report)


def test_residual_spec_is_readable_blocks_and_repeat():
    text, _ = import_model(M.Residual(), M.MODELS["Residual"], "residual", [])
    assert "blocks:" in text and "repeat: 3" in text and "repeat: 2" in text
    assert "first: {block: " in text  # the projecting first block of each stage
    report = cnncalc.analyze(parse_spec(text))
    names = [r.name for r in report.layers]
    assert "layer1.0.downsample.0" in names and "layer2.1.conv3" in names  # module paths, as torch names them
    assert report.layer("layer2.0.conv2").layer.stride == (2, 2)
    assert "in_channels" not in text and "num_features" not in text  # what torch infers is left out


def test_shared_module_is_written_with_share():
    text, _ = import_model(M.Shared(), M.MODELS["Shared"], "one_conv_twice", [])
    report = cnncalc.analyze(parse_spec(text))
    assert report.layer("conv_1").shared_with == "conv"
    assert report.totals["params"] == 3 * 8 + 8 + 8 * 8 * 9 + 8
    assert report.totals["macs"] == 8 * 8 * (3 * 8 + 2 * 8 * 8 * 9)


def test_two_outputs():
    text, _ = import_model(M.TwoHeads(), M.MODELS["TwoHeads"], "heads", [])
    assert cnncalc.analyze(parse_spec(text)).outputs == ["cls", "box"]


def test_functional_ops_are_named_where_they_run():
    text, _ = import_model(M.Functional(), M.MODELS["Functional"], "f", [])
    report = cnncalc.analyze(parse_spec(text))
    types = {r.name: r.type for r in report.layers}
    assert types["max_pool2d"] == "maxpool2d" and types["add"] == "add" and types["cat"] == "concat"
    assert types["flatten"] == "flatten"  # x.view(x.size(0), -1)
    assert report.layer("add").inputs == ["relu_1", "c"]


@pytest.mark.parametrize("path", sorted(glob.glob(os.path.join(EXAMPLES, "*.yaml"))), ids=os.path.basename)
@pytest.mark.slow
def test_every_example_export_then_import_gives_the_same_totals(path):
    report = cnncalc.analyze(cnncalc.load_spec(path))
    namespace = {"__name__": "exported"}
    exec(compile(to_torch(report), path, "exec"), namespace)  # noqa: S102
    text, _ = import_model(namespace["build"](), report.input_shape[1:], report.name, [])
    assert totals(cnncalc.analyze(parse_spec(text))) == totals(report)


NOT_IMPORTABLE = {"deform_conv2d", "locally_connected2d", "tiled_conv2d"}  #: their modules keep no readable settings


@pytest.mark.slow  # 169 round trips (5-6 s of CPU); the fast loop keeps the per-type import tests
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_every_layer_case_export_then_import(case):
    """The import rule of every layer type (its class's `from_torch`, or the functional op torch
    writes it with): its case row, exported, imports back to the same numbers, or is refused."""
    report = cnncalc.analyze(parse_spec(spec_text(case)), batch=1)
    namespace = {"__name__": "exported"}
    exec(compile(to_torch(report), case[0], "exec"), namespace)  # noqa: S102
    if {r.type for r in report.layers} & NOT_IMPORTABLE:
        with pytest.raises(cnncalc.CnnError, match="cannot"):
            import_model(namespace["build"](), report.input_shape[1:], "case", [])
        return
    text, _ = import_model(namespace["build"](), report.input_shape[1:], "case", [])
    assert totals(cnncalc.analyze(parse_spec(text))) == totals(report)


# ---- the command ------------------------------------------------------------------------------
def test_cli_writes_the_spec(tmp_path):
    out = tmp_path / "net.yaml"
    r = runner.invoke(app, ["import", f"{MODELS_FILE}:UNet", "--input", "3x32x32", "-o", str(out)])
    assert r.exit_code == 0, r.output
    report = cnncalc.load_spec(str(out))
    assert cnncalc.analyze(report).totals["params"] == sum(p.numel() for p in M.UNet().parameters())
    assert out.read_text().startswith("# written by cnncalc import from ")


def test_cli_package_module_source(monkeypatch):
    monkeypatch.syspath_prepend(DATA)
    r = runner.invoke(app, ["import", "import_models:SE", "-i", "3x32x32"])
    assert r.exit_code == 0, r.output
    assert "squeeze_excite" in r.stdout


@pytest.mark.parametrize("args, code, words", [
    ([f"{MODELS_FILE}:Unsupported", "-i", "3x8x8"], 1, ["operator.pow", "torch.sort", "no cnncalc layer type"]),
    ([f"{MODELS_FILE}:Branchy", "-i", "3x8x8"], 1, ["torch.fx cannot trace", "control flow"]),
    ([f"{MODELS_FILE}:Bottleneck", "-i", "3x8x8"], 2, ["cannot be called without arguments"]),
    ([f"{MODELS_FILE}:Nope", "-i", "3x8x8"], 2, ["has no 'Nope'"]),
    (["no_such_file.py:Net", "-i", "3x8x8"], 2, ["no such file"]),
    (["no_such_package_xyz.mod:Net", "-i", "3x8x8"], 2, ["cannot import"]),
    (["just-a-name", "-i", "3x8x8"], 2, ["is not FILE.py:NAME"]),
    ([f"{MODELS_FILE}:UNet"], 2, ["--input"]),
    ([f"{MODELS_FILE}:UNet", "-i", "3x5x5"], 1, ["fails on a 3×5×5 input"]),
])
def test_cli_refusals_are_plain(args, code, words):
    r = runner.invoke(app, ["import", *args])
    assert r.exit_code == code, r.output
    assert "Traceback" not in r.output
    for w in words:
        assert w in r.output


def test_torchvision_source():
    try:
        import torchvision  # noqa: F401
        from torchvision.models import resnet18  # noqa: F401
        loads = True
    except Exception:  # noqa: BLE001 - missing or built for another torch (the CUDA wheels here)
        loads = False
    r = runner.invoke(app, ["import", "torchvision:resnet18", "-i", "3x224x224"])
    if not loads:
        assert r.exit_code == 1 and "torchvision cannot be loaded" in r.output and "Traceback" not in r.output
        return
    assert r.exit_code == 0, r.output
    ours = cnncalc.analyze(cnncalc.load_spec(os.path.join(EXAMPLES, "resnet18.yaml")))
    assert totals(cnncalc.analyze(parse_spec(r.stdout))) == totals(ours)


# ---- ONNX graphs from torch's exporter ------------------------------------------------------------
ONNX_MODELS = ["Residual", "SE", "InceptionNet", "UNet", "Dilated1d", "Separable", "Functional", "TwoHeads"]


def onnx_of(name, tmp_path, optimize=True):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxscript")
    import contextlib
    import io
    import logging
    import warnings

    model = getattr(M, name)().eval()
    path = tmp_path / f"{name}.onnx"
    logging.disable(logging.WARNING)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            torch.onnx.export(model, (torch.randn(1, *M.MODELS[name]),), str(path), dynamo=True, optimize=optimize)
    finally:
        logging.disable(logging.NOTSET)
    return model, str(path)


@pytest.mark.parametrize("name", ONNX_MODELS)
@pytest.mark.slow
def test_onnx_import_matches_the_graph_and_torch(name, tmp_path):
    onnx = pytest.importorskip("onnx")

    model, path = onnx_of(name, tmp_path)
    r = runner.invoke(app, ["import", path])  # the graph's own input size
    assert r.exit_code == 0, r.output
    report = cnncalc.analyze(parse_spec(r.stdout))
    want = torch_numbers(model, M.MODELS[name])
    assert report.totals["flops"] == want["flops"]  # the exporter folds batch norms into convs: FLOPs stay
    graph = onnx.load(path).graph
    weights = {i for n in graph.node if n.op_type in ("Conv", "ConvTranspose", "Gemm", "BatchNormalization")
               for i in n.input[1:]}
    held = sum(onnx.numpy_helper.to_array(i).size for i in graph.initializer if i.name in weights)
    assert report.totals["params"] + report.totals["buffers"] == held
    names = {row.name for row in report.layers}
    for module_name, out_shape in want["shapes"].items():  # a module the exporter wrote as one node
        if module_name in names and f"{module_name}_1" not in names:
            assert report.layer(module_name).output_shape == out_shape, module_name


@pytest.mark.slow
def test_onnx_import_keeps_batch_norms_when_the_exporter_does(tmp_path):
    model, path = onnx_of("UNet", tmp_path, optimize=False)
    r = runner.invoke(app, ["import", path, "--input", "3x32x32"])
    assert r.exit_code == 0, r.output
    report = cnncalc.analyze(parse_spec(r.stdout))
    want = torch_numbers(model, M.MODELS["UNet"])
    assert (report.totals["params"], report.totals["buffers"], report.totals["flops"]) == \
           (want["params"], want["buffers"], want["flops"])
    assert "batchnorm2d" in r.stdout and "enc1.1" in {row.name for row in report.layers}


@pytest.mark.slow
def test_onnx_refusals(tmp_path):
    _, path = onnx_of("Residual", tmp_path, optimize=False)  # running stats through Shape/Expand/CastLike
    r = runner.invoke(app, ["import", path])
    assert r.exit_code == 1 and "CastLike" in r.output and "Traceback" not in r.output
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07garbage")
    r = runner.invoke(app, ["import", str(bad)])
    assert r.exit_code == 1 and "is not an ONNX model" in r.output
    r = runner.invoke(app, ["import", str(tmp_path / "missing.onnx")])
    assert r.exit_code == 2 and "no such file" in r.output
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    graph = helper.make_graph([helper.make_node("Transpose", ["x"], ["y"], name="t\x1b[31m")], "g", [x], [y])
    odd = tmp_path / "odd.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(odd))
    r = runner.invoke(app, ["import", str(odd)])  # no perm: a node cnncalc cannot read, said, shown inert
    assert r.exit_code == 1 and "Transpose node" in r.output and "\x1b" not in r.output and "Traceback" not in r.output


def test_module_names_a_spec_cannot_hold_are_refused_and_shown_inert():
    r = runner.invoke(app, ["import", f"{MODELS_FILE}:HostileNames", "-i", "3x8x8"])
    assert r.exit_code == 1 and "Traceback" not in r.output
    assert "'parts.a b'" in r.output and "\x1b" not in r.output and "\\x1b[31mred" in r.output


def test_python_api_takes_a_live_module():
    model = M.SE()
    text = cnncalc.spec_from_torch(model, (3, 32, 32), name="se")
    assert cnncalc.analyze(parse_spec(text)).totals["params"] == sum(p.numel() for p in model.parameters())


def test_what_the_models_code_prints_stays_out_of_the_spec():
    r = runner.invoke(app, ["import", f"{MODELS_FILE}:noisy", "-i", "3x8x8"])
    assert r.exit_code == 0, r.output
    assert "building the model" not in r.stdout
    assert cnncalc.analyze(parse_spec(r.stdout)).outputs == ["cls", "box"]
    r = runner.invoke(app, ["import", f"{MODELS_FILE}:quits", "-i", "3x8x8"])
    assert r.exit_code == 1 and "SystemExit" in r.output


# ---- the torchvision-faithful models of tests/reference_models.py ------------------------------------
@pytest.mark.parametrize("make, example", [("ShuffleNetV2", "shufflenet_v2"), ("MobileNetV3Large", "mobilenet_v3_large"),
                                           ("DenseNet", "densenet121"), ("ConvNeXt", "convnext_tiny")])
@pytest.mark.slow
def test_reference_models_import_to_the_examples_numbers(make, example):
    import reference_models

    text, _ = import_model(getattr(reference_models, make)(), (3, 224, 224), example, [])
    ours = cnncalc.analyze(cnncalc.load_spec(os.path.join(EXAMPLES, f"{example}.yaml")))
    assert totals(cnncalc.analyze(parse_spec(text))) == totals(ours)
    if make == "ConvNeXt":  # each block's self.layer_scale * x: the layer type, its tensor the layer's weight
        assert "{name: layer_scale, type: layer_scale}" in text
    if make == "ShuffleNetV2":
        assert "type: channel_shuffle, groups: 2" in text and "repeat: " in text  # written out in torch: recognised


@pytest.mark.parametrize("make, words", [("hybrid_attention", "MultiheadAttention")])
def test_reference_models_that_need_what_no_layer_reads_are_refused(make, words):
    import reference_models

    with pytest.raises(cnncalc.CnnError, match="cannot be written as a spec") as err:
        import_model(getattr(reference_models, make)(), (3, 224, 224), make, [])
    assert words in str(err.value)


def test_huge_inputs_are_traced_without_memory_and_not_run(tmp_path):
    """Shapes come from fake tensors; the real forward pass that compares outputs is skipped (and
    said) when it would need more than 2 GiB."""
    r = runner.invoke(app, ["import", f"{MODELS_FILE}:UNet", "-i", "3x20000x20000"])
    assert r.exit_code == 0, r.output
    assert "outputs not compared" in r.stderr
    assert cnncalc.analyze(parse_spec(r.stdout)).layer("out").output_shape == (1, 2, 20000, 20000)
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 40000, 40000])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"], name="r")], "g", [x], [y])
    path = tmp_path / "huge.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(path))
    r = runner.invoke(app, ["import", str(path)])
    assert r.exit_code == 0 and "outputs not compared" in r.stderr


@pytest.mark.slow
def test_export_then_import_gives_back_the_blocks():
    report = cnncalc.analyze(cnncalc.load_spec(os.path.join(EXAMPLES, "resnet50.yaml")))
    namespace = {"__name__": "exported"}
    exec(compile(to_torch(report), "resnet50", "exec"), namespace)  # noqa: S102
    text, _ = import_model(namespace["build"](), (3, 224, 224), "resnet50", [])
    for stage, n in (("layer1", 3), ("layer2", 4), ("layer3", 6), ("layer4", 3)):
        assert f"name: {stage}, repeat: {n}," in text
    again = cnncalc.analyze(parse_spec(text))
    assert [r.name for r in again.layers] == [r.name for r in report.layers]  # the spec's own names, in order
