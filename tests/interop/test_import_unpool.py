"""Import of max unpooling (#28 §5): a max pool that returns its indices is read as a maxpool layer
with return_indices: true, its values as that layer, and torch's MaxUnpool (module or
F.max_unpool) reading those indices as max_unpool with inputs [x, POOL]; any other use of the
indices is refused, located. The importer proves every spec it writes against the model (shapes,
counts, the state_dict loaded strictly, equal outputs), so an import that returns is a proof."""
import pytest

torch = pytest.importorskip("torch")

import cnncalc  # noqa: E402
from cnncalc.interop.torch_import import import_model  # noqa: E402
from cnncalc.spec import parse_spec  # noqa: E402

nn, F = torch.nn, torch.nn.functional


class SegNet(nn.Module):
    """Encoder pools with indices, decoder unpools: one at its natural size, one told its size
    by a traced `x.size()` (full, N and C included) of the encoder tensor."""

    def __init__(self):
        super().__init__()
        self.enc1, self.enc2 = nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(4, 6, 3, padding=1)
        self.dec2, self.dec1 = nn.Conv2d(6, 4, 3, padding=1), nn.Conv2d(4, 2, 3, padding=1)
        self.pool1, self.pool2 = nn.MaxPool2d(2, return_indices=True), nn.MaxPool2d(2, return_indices=True)
        self.up2, self.up1 = nn.MaxUnpool2d(2), nn.MaxUnpool2d(2)

    def forward(self, x):
        e1 = self.enc1(x)
        p1, i1 = self.pool1(e1)
        p2, i2 = self.pool2(self.enc2(p1))
        d2 = self.dec2(self.up2(p2, i2))
        return self.dec1(self.up1(d2, i1, output_size=e1.size()))


def layers(text):
    return {r.name: r for r in cnncalc.analyze(parse_spec(text)).layers}


def test_segnet_module_form_imports_proved_with_its_state_dict_keys():
    """16×20 → pool1 8×10 → pool2 4×5: up2 at its natural (4 − 1)·2 + 2 = 8, (5 − 1)·2 + 2 = 10;
    up1 told e1.size() = (2, 4, 16, 20), written as its spatial numbers [16, 20]."""
    torch.manual_seed(0)
    model = SegNet()
    text, _ = import_model(model, (3, 16, 20), "segnet", [])  # proved: strict state_dict, equal outputs
    assert "{name: pool1, type: maxpool2d, kernel_size: 2, stride: 2, return_indices: true}" in text
    assert "{name: up2, type: max_unpool2d, kernel_size: 2, inputs: [pool2, pool2]}" in text
    assert "{name: up1, type: max_unpool2d, kernel_size: 2, output_size: [16, 20], inputs: [dec2, pool1]}" in text
    rows = layers(text)
    assert rows["up2"].output_shape[1:] == (6, 8, 10) and rows["up1"].output_shape[1:] == (4, 16, 20)
    params = {k.rpartition(".")[0] for k in model.state_dict()}
    assert params <= set(rows)  # every state_dict key under the name of the layer that holds it


def test_functional_forms_in_1d_and_2d():
    """F.max_pool2d(…, return_indices=True) (fx records F.max_pool2d_with_indices), F.max_pool1d_with_indices,
    F.max_unpool2d / F.max_unpool1d with output_size given as a list and as `x.size()`."""
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(2, 2, 3, padding=1)

        def forward(self, x):
            p, i = F.max_pool2d(x, 3, 2, 1, return_indices=True)
            y = F.max_unpool2d(self.conv(p), i, 3, 2, 1, output_size=x.size())
            q, j = F.max_pool1d_with_indices(y.flatten(2), 2)
            return F.max_unpool1d(q, j, 2, output_size=[90])

    text, _ = import_model(Net(), (2, 9, 10), "f", [])
    assert "type: maxpool2d, kernel_size: 3, stride: 2, padding: 1, return_indices: true" in text
    assert "type: max_unpool2d, kernel_size: 3, stride: 2, padding: 1, output_size: [9, 10]" in text
    assert "type: max_unpool1d, kernel_size: 2, output_size: [90]" in text
    rows = layers(text)
    assert [r.output_shape[1:] for r in rows.values() if r.type.startswith("max_unpool")] == [(2, 9, 10), (2, 90)]


class Misused(nn.Module):
    def __init__(self, use):
        super().__init__()
        self.pool, self.up, self.use = nn.MaxPool2d(2, return_indices=True), nn.MaxUnpool2d(2), use

    def forward(self, x):
        p, i = self.pool(x)
        if self.use == "float":
            return p + i.float()
        if self.use == "output":
            return p, i
        return self.up(p, i.contiguous())


@pytest.mark.parametrize("use,words", [
    ("float", "Tensor.float reading the indices of max pool pool (only a max unpool reads them"),
    ("output", "the model's output reading the indices of max pool pool"),
    ("copy", "Tensor.contiguous reading the indices of max pool pool"),
])
def test_other_uses_of_the_indices_are_refused_by_name(use, words):
    with pytest.raises(cnncalc.CnnError) as exc:
        import_model(Misused(use), (1, 4, 4), "m", [])
    text = str(exc.value)
    assert words in text and "the top level" in text


# ---- ONNX: MaxPool's second output (Indices) read by MaxUnpool -----------------------------------
def onnx_graph(h=16, w=18, output_shape=None, extra=None, storage_order=0):
    """x → Conv → MaxPool (values, indices) → Conv → MaxUnpool(·, indices[, output_shape]), by hand
    (torch.onnx writes MaxUnpool2d as ScatterND)."""
    onnx = pytest.importorskip("onnx")
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal(s).astype(np.float32), n)
             for n, s in (("enc.weight", (4, 3, 3, 3)), ("mid.weight", (4, 4, 3, 3)))]
    nodes = [helper.make_node("Conv", ["x", "enc.weight"], ["e"], pads=[1, 1, 1, 1], name="enc"),
             helper.make_node("MaxPool", ["e"], ["p", "i"], kernel_shape=[2, 2], strides=[2, 2], name="pool",
                              **({"storage_order": 1} if storage_order else {})),
             helper.make_node("Conv", ["p", "mid.weight"], ["m"], pads=[1, 1, 1, 1], name="mid")]
    ins = ["m", "i"]
    if output_shape is not None:
        inits.append(numpy_helper.from_array(np.array(output_shape, dtype=np.int64), "size"))
        ins.append("size")
    nodes.append(helper.make_node("MaxUnpool", ins, ["u"], kernel_shape=[2, 2], strides=[2, 2], name="up"))
    outs = [helper.make_tensor_value_info("u", TensorProto.FLOAT, None)]
    if extra == "cast":
        nodes += [helper.make_node("Cast", ["i"], ["f"], to=TensorProto.FLOAT, name="cast"),
                  helper.make_node("Add", ["p", "f"], ["pf"], name="add")]
        outs.append(helper.make_tensor_value_info("pf", TensorProto.FLOAT, None))
    if extra == "output":
        outs.append(helper.make_tensor_value_info("i", TensorProto.INT64, None))
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, h, w])],
                              outs, inits)
    return onnx.helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def import_graph(tmp_path, model):
    from cnncalc.interop.onnx_import import import_onnx

    path = tmp_path / "g.onnx"
    path.write_bytes(model.SerializeToString())
    return import_onnx(str(path), None, "g")


@pytest.mark.slow  # ONNX graphs imported, proved and run by onnx's reference evaluator
@pytest.mark.parametrize("output_shape", [None, [1, 4, 16, 18]])
def test_onnx_maxpool_indices_and_maxunpool_import_proved(tmp_path, output_shape):
    """At 16×18 the output (8 − 1)·2 + 2 = 16, (9 − 1)·2 + 2 = 18 is the pool's input shape, where
    ONNX's flat index n·C·H·W + c·H·W + h·W + w and torch's per-plane h·W + w name one position:
    the spec is proved against onnx's reference evaluator (outputs compared)."""
    text, notes = import_graph(tmp_path, onnx_graph(output_shape=output_shape))
    assert "{name: pool, type: maxpool2d, kernel_size: 2, stride: 2, return_indices: true}" in text
    assert "{name: up, type: max_unpool2d, kernel_size: 2, inputs: [mid, pool]}" in text
    assert "proved against the ONNX graph (shapes, parameter elements, outputs)" in text and notes == []


@pytest.mark.parametrize("kw,words", [
    ({"extra": "cast"}, "Cast reading the indices of MaxPool pool (only a MaxUnpool reads them"),
    ({"extra": "output"}, "the graph's output i, the indices of MaxPool pool"),
    ({"storage_order": 1}, "storage_order 1"),
    ({"h": 15, "w": 17, "output_shape": [1, 4, 15, 17]}, "output_shape other than (H − 1)·S − 2P + K = [14, 16]"),
    ({"h": 15, "w": 17, "output_shape": [1, 4, 16, 17]}, "MaxUnpool to 1×4×16×17 from the indices of MaxPool pool "
                                                         "of a 1×4×15×17 input"),
])
def test_onnx_uses_that_do_not_map_exactly_are_refused_by_name(tmp_path, kw, words):
    with pytest.raises(cnncalc.CnnError) as exc:
        import_graph(tmp_path, onnx_graph(**kw))
    assert words in str(exc.value)
