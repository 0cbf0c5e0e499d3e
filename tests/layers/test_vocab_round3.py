"""The vocabulary of #28 §5, round three: sub, grn, clamp, rrelu, lppool3d, fold/unfold and
max_unpool. Their case rows (tests/layer_cases.py) are checked against torch by test_parity,
test_middle, test_memory and the export tests; here: the import routes (torch module and
functional forms, ONNX ops), and what the case rows do not reach."""
import pytest

torch = pytest.importorskip("torch")

import cnncalc  # noqa: E402
from cnncalc.interop.torch_import import import_model  # noqa: E402
from cnncalc.spec.expand import parse_spec  # noqa: E402

from conftest import analyze_text  # noqa: E402

nn, F = torch.nn, torch.nn.functional


def imported(model, shape):
    """The spec text cnncalc writes for `model` (proved against torch by the importer) and its report."""
    text, _ = import_model(model.eval(), shape, "t", [])
    return text, cnncalc.analyze(parse_spec(text))


def types(report):
    return [row.type for row in report.layers]


def onnx_import(tmp_path, nodes, ishape, inits=(), opset=17):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto as T
    from onnx import helper as h

    from cnncalc.interop.onnx_import import import_onnx

    graph = h.make_graph(nodes, "g", [h.make_tensor_value_info("x", T.FLOAT, list(ishape))],
                         [h.make_tensor_value_info("y", T.FLOAT, None)], initializer=list(inits))
    path = tmp_path / "g.onnx"
    onnx.save(h.make_model(graph, opset_imports=[h.make_opsetid("", opset)]), str(path))
    text, _ = import_onnx(str(path), None, "g")
    return text, cnncalc.analyze(parse_spec(text))


# ---- sub --------------------------------------------------------------------------------------------
class RepMixerLike(nn.Module):
    """FastViT's RepMixer: x + γ·(mixer(x) − norm(x)), and the other spellings of a difference."""

    def __init__(self):
        super().__init__()
        self.mixer = nn.Conv2d(4, 4, 3, padding=1, groups=4)
        self.norm = nn.BatchNorm2d(4)

    def forward(self, x):
        a = x + (self.mixer(x) - self.norm(x))
        b = torch.sub(a, x)
        return b.sub(self.norm(b)) - 0


def test_sub_imports_from_every_torch_spelling():
    text, report = imported(RepMixerLike(), (4, 6, 6))
    assert types(report).count("sub") == 3 and types(report)[-1] == "identity"  # `- 0`: the tensor itself
    assert report.layers[-1].output_shape == (1, 4, 6, 6)


def test_sub_of_a_constant_or_with_alpha_is_refused():
    class Shift(nn.Module):
        def forward(self, x):
            return x - 0.5

    class Alpha(nn.Module):
        def forward(self, x):
            return torch.sub(x, x.relu(), alpha=2)

    for model in (Shift(), Alpha()):
        with pytest.raises(cnncalc.CnnError, match="sub"):
            import_model(model, (3, 4, 4), "t", [])


def test_sub_takes_exactly_two_inputs_in_order():
    spec = "input: 2x3x3\nlayers:\n  - {name: a, type: relu}\n  - {type: sub, inputs: [a, input, a]}\n"
    with pytest.raises(cnncalc.CnnError, match="sub takes 2 inputs, received 3"):
        analyze_text(spec)
    from cnncalc import backend as tb

    report = analyze_text("input: 2x3x3\nlayers:\n  - {name: a, type: relu}\n  - {type: sub, inputs: [input, a]}\n")
    model = tb.build_model(report, tb.kit()).eval()
    x = torch.randn(1, 2, 3, 3)
    assert torch.equal(model(x), x - x.relu())  # the first minus the second


def test_sub_imports_from_onnx(tmp_path):
    from onnx import helper as h

    nodes = [h.make_node("Relu", ["x"], ["r"]), h.make_node("Sub", ["r", "x"], ["y"])]
    _, report = onnx_import(tmp_path, nodes, (1, 3, 4, 4))
    assert types(report) == ["relu", "sub"] and report.layers[-1].inputs == [report.layers[0].name, "input"]
