"""Every layer type's shape, params, MACs and element-wise rules against hand arithmetic."""
import pytest

from cnncalc.layers import REGISTRY, Layer

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


def test_registry_reads_string_annotations_of_postponed_evaluation(tmp_path, monkeypatch):
    """A layer class written under `from __future__ import annotations` registers too."""
    import importlib

    (tmp_path / "probe_layers.py").write_text(
        "from __future__ import annotations\n"
        "from typing import Literal\n"
        "from cnncalc.layers import Layer\n\n\n"
        "class Probe(Layer):\n"
        "    type: Literal['probe_a', 'probe_b']\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        probe = importlib.import_module("probe_layers").Probe
        assert REGISTRY["probe_a"] is REGISTRY["probe_b"] is probe
        assert probe.model_validate({"type": "probe_b"}).type == "probe_b"
    finally:
        REGISTRY.pop("probe_a", None)
        REGISTRY.pop("probe_b", None)


def test_every_type_documents_its_rules():
    """`cnncalc layers TYPE` shows each type's formulas: no type may have an empty rule."""
    from cnncalc.render.vocabulary import formula

    assert [name for name, cls in REGISTRY.items() if not formula(cls) or cls.__doc__ == Layer.__doc__] == []


@pytest.mark.parametrize("kind,rank,ok", [("dropout1d", 3, True), ("dropout1d", 4, False), ("dropout2d", 4, True),
                                          ("dropout2d", 5, False), ("dropout3d", 5, True), ("dropout3d", 3, False),
                                          ("dropout", 5, True)])
def test_channel_dropout_takes_the_ranks_torch_takes(kind, rank, ok):
    import cnncalc

    text = f"input: {[2] + [4] * (rank - 2)}\nlayers:\n  - {{type: {kind}}}\n"
    if ok:
        assert analyze_text(text).layers[0].output_shape == (1, 2, *[4] * (rank - 2))
    else:
        with pytest.raises(cnncalc.CnnError, match=f"{kind} expects"):
            analyze_text(text)
