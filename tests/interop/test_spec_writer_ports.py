"""Issue #28 §2, the importer's side: a module instance that reads several outside tensors
(HRNet's fusion, U-Net's up step, DenseNet's dense layer) becomes a block with named inputs
(`inputs: [input, input_1]`), each use binding its tensors; the written spec reads every layer's
inputs exactly as imported. The spec writer alone (no torch)."""
import cnncalc
from cnncalc.interop.spec_writer import MAX_PORTS, Found, write_spec

CONV = {"type": "conv2d", "out_channels": 8, "kernel_size": 3, "padding": 1}


def fuse(path, a, b, inner="conv"):
    """conv(b) + a, inside one instance of Fuse at `path`: b is read first."""
    scopes = (("fuse", "ModuleList"), (path, "Fuse"))
    return [Found(f"{path}.{inner}", {"type": "conv2d", "out_channels": 8, "kernel_size": 1}, [b], scopes),
            Found(f"{path}.add", {"type": "add"}, [a, f"{path}.{inner}"], scopes)]


def stems():
    return [Found("stem", CONV, ["input"]), Found("side", CONV, ["stem"])]


def test_a_module_reading_two_outside_tensors_becomes_a_block_with_two_inputs():
    found = stems() + fuse("fuse.0", "stem", "side") + fuse("fuse.1", "side", "fuse.0.add") + \
        fuse("fuse.2", "fuse.1.add", "stem")
    text = write_spec(found, "n", (3, 8, 8), [])
    assert "    inputs: [input, input_1]\n" in text and "{name: add, type: add, inputs: [input_1, conv]}" in text
    assert "{block: fuse, name: fuse.1, inputs: [fuse.0, side]}" in text
    report = cnncalc.analyze(cnncalc.parse_spec(text))
    assert [(r.name, list(r.inputs)) for r in report.layers] == [(f.name, f.inputs) for f in found]
    # by hand: two 3x3 convs (3→8, 8→8) and three 1x1 convs 8→8, each with a bias
    assert report.totals["params"] == (3 * 8 * 9 + 8) + (8 * 8 * 9 + 8) + 3 * (8 * 8 + 8)


def test_more_outside_tensors_than_a_block_takes_are_written_out():
    found = [Found("stem", CONV, ["input"])]
    for k in range(MAX_PORTS + 1):
        found.append(Found(f"t{k}", CONV, [found[-1].name]))
    taps = [f.name for f in found[1:]]

    def gather(path):  # its first layer reads one of them (a merge of all would be a list: test_spec_writer_dense)
        scopes = (("g", "ModuleList"), (path, "Gather"))
        return [Found(f"{path}.relu", {"type": "relu"}, taps[:1], scopes),
                Found(f"{path}.cat", {"type": "concat"}, [f"{path}.relu", *taps[1:]], scopes),
                Found(f"{path}.conv", {"type": "conv2d", "out_channels": 8, "kernel_size": 1}, [f"{path}.cat"], scopes)]

    found += gather("g.0") + gather("g.1")
    text = write_spec(found, "n", (3, 8, 8), [], outputs=["g.0.conv", "g.1.conv"])
    assert "blocks:" not in text and "{name: g.1.cat, type: concat," in text
    report = cnncalc.analyze(cnncalc.parse_spec(text))
    assert report.layer("g.1.cat").output_shape == (1, 8 * (MAX_PORTS + 1), 8, 8)  # by hand: nine 8-channel maps


def test_a_port_name_taken_by_a_layer_keeps_the_module_written_out():
    found = stems() + fuse("fuse.0", "stem", "side", inner="input_1") + \
        fuse("fuse.1", "side", "fuse.0.add", inner="input_1")
    text = write_spec(found, "n", (3, 8, 8), [])
    assert "blocks:" not in text
    report = cnncalc.analyze(cnncalc.parse_spec(text))
    assert [(r.name, list(r.inputs)) for r in report.layers] == [(f.name, f.inputs) for f in found]


def dense_block(prefix, before, n):
    """n dense layers (cat of every earlier feature, then a conv), then the block's cat."""
    found, features = [], [before]
    for i in range(n):
        path = f"{prefix}.l{i}"
        scopes = ((prefix, "DenseBlock"), (path, "DenseLayer"))
        if i:
            found.append(Found(f"{path}.cat", {"type": "concat"}, list(features), scopes))
        found.append(Found(f"{path}.conv", {"type": "conv2d", "out_channels": 4, "kernel_size": 3, "padding": 1},
                           [f"{path}.cat" if i else before], scopes))
        features.append(f"{path}.conv")
    return found + [Found(f"{prefix}.cat", {"type": "concat"}, features, ((prefix, "DenseBlock"),))]


def test_a_module_merging_every_tensor_it_reads_becomes_a_block_reading_a_list():
    found = stems() + dense_block("d1", "side", 5) + [Found("mid", CONV, ["d1.cat"])] + dense_block("d2", "mid", 12)
    text = write_spec(found, "n", (3, 8, 8), [])
    assert "    inputs: [input*]\n" in text and "{name: cat, type: concat, inputs: [input*]}" in text
    # the first dense layer (one conv, no cat) is written out; the list starts with what it read and its output
    assert "{block: dense_layer, name: d2, repeat: 11, names: [l1, l2, l3, l4, l5, l6, l7, l8, l9, l10, l11], " \
           "inputs: [mid, d2.l0.conv]}" in text
    assert "{name: d2.cat, type: concat, inputs: [d2*]}" in text
    report = cnncalc.analyze(cnncalc.parse_spec(text))
    assert [(r.name, list(r.inputs)) for r in report.layers] == [(f.name, f.inputs) for f in found]
    assert report.layer("d2.cat").output_shape == (1, 8 + 12 * 4, 8, 8)  # by hand: mid's 8 and twelve growths of 4
