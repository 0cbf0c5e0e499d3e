"""The spec writer alone (no torch): imported layers with the module instances they ran in →
blocks, arguments and repeat, and the spec analyses to the same layers."""
import cnncalc
from cnncalc.interop.spec_writer import Found, write_spec


def unit(path, cls, cin_name, width, stride=1):
    """conv (width, stride) → relu → conv (2·width) inside one instance of `cls` at `path`."""
    scopes = (("stages", "Sequential"), (path, cls))
    return [Found(f"{path}.conv1", {"type": "conv2d", "out_channels": width, "kernel_size": 3, "stride": stride,
                                    "padding": 1}, [cin_name], scopes),
            Found(f"{path}.act", {"type": "relu"}, [f"{path}.conv1"], scopes),
            Found(f"{path}.conv2", {"type": "conv2d", "out_channels": 2 * width, "kernel_size": 1},
                  [f"{path}.act"], scopes)]


def network(widths):
    found = [Found("stem", {"type": "conv2d", "out_channels": 8, "kernel_size": 3}, ["input"])]
    prev = "stem"
    for i, w in enumerate(widths):
        found += unit(f"stages.{i}", "Blöck", prev, w)
        prev = found[-1].name
    return found


def test_instances_of_one_class_share_a_block_and_a_chain_becomes_repeat():
    text = write_spec(network([8, 8, 8]), "n", (3, 16, 16), ["hand-made layers"])
    assert "blocks:\n  blck:" in text  # an ASCII name from the class Blöck
    assert "repeat: 3" in text and "args" not in text.split("layers:")[-1]  # identical uses: no arguments
    report = cnncalc.analyze(cnncalc.parse_spec(text))
    assert [r.name for r in report.layers][-3:] == ["stages.2.conv1", "stages.2.act", "stages.2.conv2"]
    # stem 3→8 (3x3); conv1 8→8 then 16→8 twice (3x3); conv2 8→16 thrice (1x1)
    assert report.totals["params"] == (8 * 3 * 9 + 8) + (8 * 8 * 9 + 8) + 2 * (8 * 16 * 9 + 8) + 3 * (16 * 8 + 16)


def test_what_differs_becomes_an_argument_and_a_steady_multiple_an_expression():
    text = write_spec(network([4, 8, 16]), "n", (3, 16, 16), [])
    block = text.split("layers:")[1]
    assert "out_channels: $out_channels" in block and "'${out_channels * 2}'" in block
    uses = text.split("\nlayers:\n")[1]
    assert "{out_channels: 4}" in uses and "{out_channels: 16}" in uses
    report = cnncalc.analyze(cnncalc.parse_spec(text))
    assert report.layer("stages.2.conv2").output_shape == (1, 32, 14, 14)


def test_two_uses_are_too_few_to_call_a_ratio_a_rule():
    text = write_spec(network([4, 8]), "n", (3, 16, 16), [])
    assert "* 2}" not in text and "conv2_out_channels" in text
    assert cnncalc.analyze(cnncalc.parse_spec(text)).layer("stages.1.conv2").output_shape[1] == 16


def test_an_instance_read_from_the_middle_is_written_out():
    found = network([8, 8])
    found.append(Found("tap", {"type": "relu"}, ["stages.0.act"]))  # reads inside stages.0
    text = write_spec(found, "n", (3, 16, 16), [], outputs=["stages.1.conv2", "tap"])
    assert "{name: stages.0.conv1," in text and "outputs: [stages.1.conv2, tap]" in text
    report = cnncalc.analyze(cnncalc.parse_spec(text))
    assert report.outputs == ["stages.1.conv2", "tap"] and report.layer("tap").inputs == ["stages.0.act"]
