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
