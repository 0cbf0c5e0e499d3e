"""Every layer type's shape, params, MACs and element-wise rules against hand arithmetic."""
import pytest

from cnncalc.layers import REGISTRY
from conftest import analyze_text
from layer_cases import CASES, EW, spec_text


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_layer_rules(case):
    expected = case[4]
    row = analyze_text(spec_text(case)).layers[-1]
    assert row.output_shape == expected["shape"]
    assert row.params == expected["params"]
    assert row.macs == expected["macs"]
    assert row.flops == 2 * expected["macs"]
    assert row.elementwise_ops == expected.get("ew", EW.get(case[0]))
    if "buffers" in expected:
        assert row.buffers == expected["buffers"]


def test_every_registered_type_has_a_case():
    covered = {layer["type"] for c in CASES for layer in c[3]}
    assert set(REGISTRY) - covered == set()


def test_totals_are_sums_of_rows():
    text = spec_text(CASES[0]).replace("layers:\n", "layers:\n  - {type: conv2d, out_channels: 3, kernel_size: 1}\n")
    report = analyze_text(text)
    for key in ("params", "trainable_params", "buffers", "macs", "flops", "elementwise_ops", "activation_bytes"):
        assert report.totals[key] == sum(getattr(r, key) for r in report.layers)


def test_every_case_pins_its_elementwise_ops():
    assert [c[0] for c in CASES if "ew" not in c[4] and c[0] not in EW] == []
