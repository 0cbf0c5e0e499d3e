"""Hostile ONNX files (#25 §4-5), built with onnx.helper: each is refused before anything runs,
with a located message that blames the file, exit 1, never a traceback or "a bug in cnncalc"."""
import os
import time

import numpy as np
import pytest
from typer.testing import CliRunner

onnx = pytest.importorskip("onnx")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from onnx import TensorProto as T  # noqa: E402
from onnx import helper as h  # noqa: E402
from onnx import numpy_helper as nh  # noqa: E402

from cnncalc.cli.app import app  # noqa: E402

runner = CliRunner()


def save(path, nodes, inits=(), ishape=(1, 3, 8, 8), opset=17):
    graph = h.make_graph(nodes, "g", [h.make_tensor_value_info("x", T.FLOAT, list(ishape))],
                         [h.make_tensor_value_info("y", T.FLOAT, None)], initializer=list(inits))
    onnx.save(h.make_model(graph, opset_imports=[h.make_opsetid("", opset)]), str(path))
    return str(path)


def run(path):
    start = time.perf_counter()
    r = runner.invoke(app, ["import", path])
    return r, time.perf_counter() - start


def loop_over_constants(iterations=10**12):
    """A Loop whose trip count and state are constants: 10^12 iterations if anything ran it."""
    body = h.make_graph([h.make_node("Identity", ["c_in"], ["c_out"]), h.make_node("Identity", ["v_in"], ["v_out"])],
                        "body", [h.make_tensor_value_info("i", T.INT64, []), h.make_tensor_value_info("c_in", T.BOOL, []),
                                 h.make_tensor_value_info("v_in", T.FLOAT, [1])],
                        [h.make_tensor_value_info("c_out", T.BOOL, []), h.make_tensor_value_info("v_out", T.FLOAT, [1])])
    return [h.make_node("Constant", [], ["n"], value=nh.from_array(np.array(iterations, np.int64))),
            h.make_node("Constant", [], ["c"], value=nh.from_array(np.array(True))),
            h.make_node("Constant", [], ["v"], value=nh.from_array(np.array([1.0], np.float32))),
            h.make_node("Loop", ["n", "c", "v"], ["lv"], body=body, name="spin")]


def declared_without_data():
    t = T()
    t.name, t.data_type = "w", T.FLOAT
    t.dims.extend([10**5, 10**5])  # 10^10 elements, no data
    return t


def undefined_type():
    t = nh.from_array(np.zeros((4, 3, 3, 3), np.float32), "w")
    t.data_type = T.UNDEFINED
    return t


HOSTILE = {  # name → (nodes, initializers, input shape, opset, what the message says)
    "declared 10^10 elements, no data": ([h.make_node("Conv", ["x", "w"], ["y"])], [declared_without_data()],
                                          (1, 3, 8, 8), 17, "10,000,000,000 elements"),
    "UNDEFINED data type": ([h.make_node("Conv", ["x", "w"], ["y"])], [undefined_type()], (1, 3, 8, 8), 17,
                            "UNDEFINED"),
    "Gelu approximate as an INT": ([h.make_node("Gelu", ["x"], ["y"], approximate=1)], [], (1, 3, 8, 8), 20,
                                   "'approximate'"),
    "zero-size axis into ReduceMean": ([h.make_node("ReduceMean", ["x"], ["y"], axes=[2, 3])], [], (1, 3, 0, 8), 17,
                                       "[3, 0, 8]"),
    "empty op type": ([h.make_node("", ["x"], ["y"])], [], (1, 3, 8, 8), 17, "no op type"),
    "softmax axis 2^40": ([h.make_node("Softmax", ["x"], ["y"], axis=2**40)], [], (1, 3, 8, 8), 17, "1099511627776"),
    "negative dimension": ([h.make_node("Relu", ["x"], ["y"])], [], (1, 3, -8, 8), 17, "[3, -8, 8]"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_a_malformed_file_is_blamed_on_the_file(case, tmp_path):
    nodes, inits, shape, opset, says = HOSTILE[case]
    r, took = run(save(tmp_path / "m.onnx", nodes, inits, shape, opset))
    assert r.exit_code == 1, r.output
    assert "in the ONNX file" in r.output and says in r.output, r.output
    assert "Traceback" not in r.output and "bug in cnncalc" not in r.output
    assert "m.onnx" in r.output  # located: the file is named


@pytest.mark.parametrize("use", ["dead", "multiplied", "clip bounds"])
def test_a_loop_over_constants_is_refused_before_anything_runs(use, tmp_path):
    tail = {"dead": [h.make_node("Relu", ["x"], ["y"])],
            "multiplied": [h.make_node("Relu", ["x"], ["r"]), h.make_node("Mul", ["r", "lv"], ["y"])],
            "clip bounds": [h.make_node("Clip", ["x", "lv", "lv"], ["y"])]}[use]
    r, took = run(save(tmp_path / "loop.onnx", loop_over_constants() + tail))
    assert r.exit_code == 1 and "Loop node 'spin'" in r.output and "sub-graph" in r.output, r.output
    assert took < 30  # 10^12 iterations were never started


def test_a_plain_file_still_imports_and_is_proved(tmp_path):
    w = nh.from_array(np.random.default_rng(0).standard_normal((4, 3, 3, 3)).astype(np.float32), "conv.weight")
    path = save(tmp_path / "ok\nname: evil.onnx", [h.make_node("Conv", ["x", "conv.weight"], ["c"]),
                                                   h.make_node("Relu", ["c"], ["y"])], [w])
    r, _ = run(path)
    assert r.exit_code == 0, r.output
    assert "name: evil" not in r.stdout.replace("ok\\x0aname: evil", "")  # the file name stays in its comment
    assert r.stdout.count("\nname: ") == 1 and "proved" in r.stdout
    import cnncalc

    report = cnncalc.analyze(cnncalc.parse_spec(r.stdout))
    assert report.totals["params"] == 4 * 3 * 3 * 3  # conv 3→4, 3x3, no bias
    assert report.layer("conv").output_shape == (1, 4, 6, 6)  # 8 - 3 + 1


@pytest.mark.slow  # a CLI process per input (ONNX import and its reference run)
@pytest.mark.parametrize("given, says", [("5x8x8", "5 channels"), ("3x8", "2 axes"), ("3x8x8x8", "4 axes")])
def test_an_input_the_graph_does_not_take_is_the_users_argument(tmp_path, given, says):
    """--input with another channel count or rank than the graph's fixed input: a usage error that
    names both sizes (exit 2), not a failed proof blamed on cnncalc (#24)."""
    w = nh.from_array(np.zeros((4, 3, 3, 3), np.float32), "conv.weight")
    path = save(tmp_path / "net.onnx", [h.make_node("Conv", ["x", "conv.weight"], ["y"])], [w])
    r = runner.invoke(app, ["import", path, "--input", given])
    assert r.exit_code == 2, r.output
    assert says in r.output and "1x3x8x8" in r.output and "net.onnx" in r.output
    assert "bug in cnncalc" not in r.output and "Traceback" not in r.output
    other = runner.invoke(app, ["import", path, "--input", "3x12x12"])  # another spatial size is the user's to ask
    assert other.exit_code == 0, other.output
    assert "input: 3x12x12" in other.stdout


def test_external_data_is_read_only_beside_the_model(tmp_path):
    w = nh.from_array(np.zeros((4, 3, 3, 3), np.float32), "conv.weight")
    model = h.make_model(h.make_graph([h.make_node("Conv", ["x", "conv.weight"], ["y"])], "g",
                                      [h.make_tensor_value_info("x", T.FLOAT, [1, 3, 8, 8])],
                                      [h.make_tensor_value_info("y", T.FLOAT, None)], initializer=[w]),
                         opset_imports=[h.make_opsetid("", 17)])
    from onnx.external_data_helper import convert_model_to_external_data

    convert_model_to_external_data(model, location="m.onnx.data", size_threshold=0)
    onnx.save(model, str(tmp_path / "m.onnx"))
    assert run(str(tmp_path / "m.onnx"))[0].exit_code == 0
    for entry in model.graph.initializer[0].external_data:
        if entry.key == "location":
            entry.value = os.path.join("..", "..", "etc", "passwd")  # escapes the model folder
    (tmp_path / "bad").mkdir()
    onnx.save(model, str(tmp_path / "bad" / "m.onnx"))
    r, _ = run(str(tmp_path / "bad" / "m.onnx"))
    assert r.exit_code == 1 and "not a file beside the model" in r.output and "Traceback" not in r.output


# ---- graphs assembled from random and malformed parts ---------------------------------------------
OPS = ["Relu", "Conv", "Softmax", "Gelu", "ReduceMean", "Concat", "Transpose", "Add", "Loop", "", "Shape", "Clip",
       "MaxPool", "Flatten", "Gemm", "BatchNormalization", "Mystery"]
ATTRS = st.dictionaries(st.sampled_from(["axis", "axes", "perm", "approximate", "group", "kernel_shape", "pads",
                                         "strides", "alpha"]),
                        st.one_of(st.integers(-2**40, 2**40), st.lists(st.integers(-3, 5), max_size=5),
                                  st.sampled_from(["none", "tanh", "x\n::error::y"]), st.floats(-2, 2)), max_size=3)


@st.composite
def graphs(draw):
    shape = draw(st.lists(st.integers(-1, 6), min_size=2, max_size=5))
    names = ["x"]
    nodes = []
    inits = []
    for k in range(draw(st.integers(1, 5))):
        op = draw(st.sampled_from(OPS))
        ins = draw(st.lists(st.sampled_from(names + ["w", "missing", ""]), min_size=0, max_size=3))
        try:
            nodes.append(h.make_node(op, ins, [f"t{k}"], name=draw(st.sampled_from(["", "n", "a\nb"])),
                                     **draw(ATTRS)))
        except Exception:  # noqa: BLE001 - a part onnx.helper itself cannot make
            continue
        names.append(f"t{k}")
    dims = draw(st.lists(st.integers(0, 4), min_size=1, max_size=4))
    data = draw(st.integers(0, 3))
    t = nh.from_array(np.zeros(dims, np.float32), "w") if data else declared_without_data()
    if data == 3:
        t.data_type = draw(st.sampled_from([0, 8, 99]))
    inits.append(t)
    nodes.append(h.make_node("Identity", [names[-1]], ["y"]))
    return nodes, inits, shape, draw(st.sampled_from([13, 17, 20]))


@pytest.mark.slow
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(graphs())
def test_random_and_malformed_graphs_end_plainly(tmp_path, parts):
    nodes, inits, shape, opset = parts
    graph = h.make_graph(nodes, "g", [h.make_tensor_value_info("x", T.FLOAT, shape)],
                         [h.make_tensor_value_info("y", T.FLOAT, None)], initializer=inits)
    path = tmp_path / "r.onnx"
    onnx.save(h.make_model(graph, opset_imports=[h.make_opsetid("", opset)]), str(path))
    r, took = run(str(path))
    assert r.exit_code in (0, 1, 2), r.output
    assert "Traceback" not in r.output and (r.exception is None or isinstance(r.exception, SystemExit)), r.output
    assert not any(line.startswith("::") for line in r.output.splitlines())
    assert took < 30


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.sampled_from(["Relu", "Gelu", "Identity", "Sigmoid"]), min_size=0, max_size=3),
       st.sampled_from([["w"], ["w", "missing"], []]))
def test_a_graph_whose_output_ignores_its_input_is_blamed_on_the_file(tmp_path, ops, first):
    """Found by benchmarks/fuzz_constructs.py: every node folds into constants (no layer reads
    the input): an IndexError, or "a bug in cnncalc" when the written spec read back empty."""
    w = nh.from_array(np.zeros((2, 2), np.float32), "w")
    nodes, last = [], (first or ["w"])
    for k, op in enumerate(ops):
        nodes.append(h.make_node(op, last if k == 0 else [f"t{k - 1}"], [f"t{k}"]))
    nodes.append(h.make_node("Identity", [f"t{len(ops) - 1}"] if ops else ["w"], ["y"]))
    r, took = run(save(tmp_path / "const.onnx", nodes, [w]))
    assert r.exit_code == 1 and isinstance(r.exception, SystemExit), r.output
    assert "does not depend on its input" in r.output and "in the ONNX file" in r.output and "bug" not in r.output
    assert took < 30
