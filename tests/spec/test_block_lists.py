"""A block input that is a list of tensors (issue #28 §2, DenseNet): a block declares
`inputs: [features*]`, a layer reads the whole list with `inputs: [features*]`, `repeat` appends
each repetition's output to it, and a later layer reads a use's whole list as `USE*`. Judged by a
torch DenseNet-style model written here: output shapes, parameters and FlopCounterMode's FLOPs."""
import pytest

from conftest import analyze_text, assert_located

DENSE = """
name: dense_lists
input: 3x16x16
args: {growth: 4}
blocks:
  first_layer:
    layers:
      - {name: norm, type: batchnorm2d}
      - {name: conv, type: conv2d, out_channels: $growth, kernel_size: 3, padding: 1, bias: false}
  dense_layer:
    inputs: [features*]
    layers:
      - {name: cat, type: concat, inputs: [features*]}
      - {name: norm, type: batchnorm2d}
      - {name: conv, type: conv2d, out_channels: $growth, kernel_size: 3, padding: 1, bias: false}
layers:
  - {name: stem, type: conv2d, out_channels: 8, kernel_size: 3, padding: 1, bias: false}
  - {block: dense_layer, name: db, repeat: 4, first: {block: first_layer}}
  - {name: db.cat, type: concat, inputs: [db*]}
  - {name: pool, type: avgpool2d, kernel_size: 2}
  - {name: side, type: conv2d, out_channels: 2, kernel_size: 1, bias: false}
  - {block: dense_layer, name: db2, repeat: 3, inputs: [pool, side]}
  - {name: out, type: concat, inputs: [db2*]}
"""


def test_a_list_input_grows_through_repeat_like_densenet():
    report = analyze_text(DENSE)
    # the list: db's input, then each repetition's output; the layer after reads it all
    assert list(report.layer("db.3.cat").inputs) == ["stem", "db.0.conv", "db.1.conv", "db.2.conv"]
    assert list(report.layer("db.cat").inputs) == ["stem", "db.0.conv", "db.1.conv", "db.2.conv", "db.3.conv"]
    assert report.layer("db.cat").output_shape == (1, 8 + 4 * 4, 16, 16)  # by hand: 8 + four growths of 4
    # a use binding two tensors to the list: [pool, side] then db2.0, db2.1, db2.2
    assert list(report.layer("db2.0.cat").inputs) == ["pool", "side"]
    assert list(report.layer("out").inputs) == ["pool", "side", "db2.0.conv", "db2.1.conv", "db2.2.conv"]
    assert report.layer("out").output_shape == (1, 24 + 2 + 3 * 4, 8, 8)  # by hand


@pytest.mark.slow
def test_a_list_input_against_a_torch_densenet():
    report = analyze_text(DENSE)
    torch = pytest.importorskip("torch")
    from torch import nn
    from torch.utils.flop_counter import FlopCounterMode

    class Layer(nn.Module):  # torchvision's _DenseLayer, shortened: cat, norm, conv
        def __init__(self, cin, growth):
            super().__init__()
            self.norm, self.conv = nn.BatchNorm2d(cin), nn.Conv2d(cin, growth, 3, padding=1, bias=False)

        def forward(self, features):
            return self.conv(self.norm(torch.cat(features, 1)))

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Conv2d(3, 8, 3, padding=1, bias=False)
            self.db = nn.ModuleList(Layer(8 + 4 * i, 4) for i in range(4))
            self.pool = nn.AvgPool2d(2)
            self.side = nn.Conv2d(24, 2, 1, bias=False)
            self.db2 = nn.ModuleList(Layer(24 + 2 + 4 * i, 4) for i in range(3))

        def forward(self, x):
            stem = self.stem(x)
            features = [stem]
            for layer in self.db:
                features.append(layer(features))
            pool = self.pool(torch.cat(features, 1))
            features = [pool, self.side(pool)]
            for layer in self.db2:
                features.append(layer(features))
            return torch.cat(features, 1)

    model = Net().eval()
    assert sum(p.numel() for p in model.parameters()) == report.totals["params"]
    with FlopCounterMode(display=False) as counter:
        out = model(torch.randn(1, 3, 16, 16))
    assert tuple(out.shape) == report.layer("out").output_shape
    assert counter.get_total_flops() == report.totals["flops"]


@pytest.mark.parametrize("old,new,line_has,message", [
    ("inputs: [features*]\n", "inputs: [features*, extra]\n", "features*, extra",
     "only the last of inputs may end in *"),
    ("{name: cat, type: concat, inputs: [features*]}", "{name: cat, type: concat, inputs: [features, input]}",
     "name: cat", "'features' is a list of tensors: read it whole with inputs: [features*]"),
    ("inputs: [db*]", "inputs: [stem*]", "inputs: [stem*]", "'stem*': 'stem' is a layer, not a list"),
    ("inputs: [db*]", "inputs: [nope*]", "inputs: [nope*]", "'nope*': 'nope' is not a known name"),
    ("{name: pool, type: avgpool2d, kernel_size: 2}", "{name: pool, type: avgpool2d, kernel_size: 2, inputs: [db*]}",
     "name: pool", "avgpool2d takes 1 input, received 5 (the lists named with * included)"),
    ("inputs: [features*]\n", "inputs: [head, features*]\n", "name: db2",
     "reads 1 input and a list (head, features*), the use gives 1 tensor: the list needs at least one"),
])
def test_misuse_of_lists_is_located(old, new, line_has, message):
    text = DENSE.replace(old, new, 1)
    if "head" in new:  # a block with one input before its list: the use must bind at least two
        text = text.replace("inputs: [pool, side]", "inputs: [pool]").replace("first: {block: first_layer}",
                                                                              "inputs: [stem, stem]")
    assert text != DENSE
    assert_located(text, message, line_has)


def test_a_list_longer_than_the_limit_is_refused_located(monkeypatch):
    from cnncalc.spec import expand

    monkeypatch.setattr(expand, "MAX_LIST", 4)
    assert_located(DENSE, "repeat: the list grows past 4 tensors", "name: db,")


def test_lists_are_in_the_json_schema(schema):
    jsonschema = pytest.importorskip("jsonschema")
    inputs = schema["$defs"]["BlockDef"]["properties"]["inputs"]  # the whole schema is slow to validate against
    jsonschema.validate(["x", "features*"], inputs)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(["feat**"], inputs)


def test_a_use_takes_a_whole_list_with_name_star():
    # db's list (stem and db.0 … db.3) handed on to a second dense run, which grows it further
    text = DENSE.replace("  - {name: pool,", "  - {block: dense_layer, name: more, repeat: 2, inputs: [db*]}\n"
                         "  - {name: more.cat, type: concat, inputs: [more*]}\n  - {name: pool,", 1)
    report = analyze_text(text)
    db = ["stem", "db.0.conv", "db.1.conv", "db.2.conv", "db.3.conv"]
    assert list(report.layer("more.0.cat").inputs) == db
    assert list(report.layer("more.cat").inputs) == db + ["more.0.conv", "more.1.conv"]
    assert report.layer("more.cat").output_shape == (1, 8 + 6 * 4, 16, 16)  # by hand: stem's 8 and six growths of 4
