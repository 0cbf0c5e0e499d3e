"""Every layer type in the middle of a network (#26, the probe contract): each case row between a
3-wide average before it and one after it (stride 1, padding 1: shapes unchanged; 1-wide along an
axis shorter than 3), so its probe
stand-in reads a map another stand-in made and feeds one; shapes, counts, FLOPs and every probed
field then agree with torch. The case table is complete over the registry (test_registry), so a
new layer type is tried here with no edit."""
import pytest

torch = pytest.importorskip("torch")

import cnncalc  # noqa: E402
from cnncalc.layers import REGISTRY, Layer  # noqa: E402

from conftest import analyze_text, parity  # noqa: E402
from layer_cases import CASES, spec_text  # noqa: E402


def sandwich(case) -> str | None:
    """The case between two shape-keeping averages; None when its input or output has no 1-3
    spatial axes (a linear, a flatten) or the average cannot stand there."""
    name, inp, batch, layers, expected = case
    d = len(inp) - 1
    if d not in (1, 2, 3):
        return None
    k = [3 if n >= 3 else 1 for n in inp[1:]]
    around = {"type": f"avgpool{d}d", "kernel_size": k, "stride": 1, "padding": [n // 2 for n in k]}
    body = [{**layer, "inputs": ["before" if i == "input" else i for i in layer["inputs"]]} if "inputs" in layer
            else layer for layer in layers]
    text = spec_text((name, inp, batch, [{"name": "before", **around}, *body], expected))
    try:
        report = analyze_text(text)
    except cnncalc.CnnError:
        return None
    out = report.layers[-1].output_shape
    if len(out) != d + 2:
        return text
    k = [3 if n >= 3 else 1 for n in out[2:]]
    return text + f"  - {{name: after, type: avgpool{d}d, kernel_size: {k}, stride: 1, padding: {[n // 2 for n in k]}}}\n"


SANDWICHED = [(case[0], text) for case in CASES if (text := sandwich(case)) is not None]


def test_every_type_with_a_field_rule_is_tried_in_the_middle():
    own_rule = {k for k, cls in REGISTRY.items() if cls.rf is not Layer.rf or cls.probe is not Layer.probe}
    tried = {layer["type"] for case in CASES if case[0] in dict(SANDWICHED) for layer in case[3]}
    assert len(SANDWICHED) > len(CASES) // 2
    missing = sorted(own_rule - tried)
    assert not missing, missing


@pytest.mark.slow
@pytest.mark.parametrize("name, text", SANDWICHED, ids=[n for n, _ in SANDWICHED])
def test_a_layer_in_the_middle_agrees_with_torch(name, text):
    report = analyze_text(text)
    _, mismatches = parity(report)  # every field the probe can see is measured (else parity fails)
    assert mismatches == [], mismatches
