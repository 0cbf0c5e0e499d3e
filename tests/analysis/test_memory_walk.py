"""memory_figures (#30: inference and the training step's forward pass in one walk over the
rows) gives exactly what inference_peak and training_memory give one at a time."""
from __future__ import annotations

import glob
import os

import pytest

import cnncalc
from cnncalc.analysis.memory import inference_peak, memory_figures, training_memory

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SPECS = sorted(glob.glob(os.path.join(ROOT, "examples", "*.yaml")))


@pytest.mark.parametrize("path", SPECS, ids=os.path.basename)
@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_one_walk_matches_the_two(path: str, optimizer: str) -> None:
    report = cnncalc.analyze(cnncalc.load_spec(path), optimizer=optimizer)
    rows, outputs, b = report.layers, report.outputs, report.bytes_per_element
    input_bytes = report.totals["input_bytes"]
    persistent = 12_345  # any: added to the training peak as it is
    peak, train = memory_figures(rows, outputs, input_bytes, b, optimizer, persistent)
    assert peak == inference_peak(rows, outputs, input_bytes, b) == report.totals["inference_peak_activation_bytes"]
    assert train == training_memory(rows, outputs, input_bytes, b, optimizer, persistent)
    assert train.saved == report.totals["training_saved_activation_bytes"]
    assert train.phase == report.totals["training_peak_phase"]
