"""`cnncalc fit`: the largest batch (or input size) whose step fits a memory budget. Pinned by hand
arithmetic on a network whose memory is written out, and by the simulation itself at b and
b + 1 on real examples (benchmarks/fit.py runs the training step in torch at both)."""
import json
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import cnncalc
from cnncalc.analysis.fit import fit_batch, fit_size
from cnncalc.cli import app

from conftest import EXAMPLES

runner = CliRunner()
ONE = "name: one\ninput: 1x8x8\nlayers:\n  - {type: conv2d, out_channels: 1, kernel_size: 1, bias: false}\n"


def test_inference_batch_by_hand():
    # one 1×1 conv on 1×8×8 float32: weights 1·4 B; the pass holds its input and output, 2·64·4 B per sample
    net = cnncalc.parse_spec(ONE)
    result = fit_batch(net, 10_000, 0.0, training=False)
    assert result.best is not None and result.best.batch == 19  # 4 + 512·19 = 9,732 ≤ 10,000 < 4 + 512·20
    assert result.best.peak == 4 + 512 * 19 and result.over is not None and result.over.peak == 4 + 512 * 20
    assert [p.batch for p in result.table] == [1, 2, 4, 8, 16]


def test_margin_and_square_size_by_hand():
    net = cnncalc.parse_spec(ONE)
    assert fit_batch(net, 10_000, 0.5, training=False).best.batch == 9  # usable 5,000: 4 + 512·9 = 4,612
    # batch 1, S×S input: 4 + 2·S²·4 ≤ 10,000 → S² ≤ 1,249.5 → S = 35
    result = fit_size(net, 10_000, 1, 0.0, training=False)
    assert result.best is not None and result.best.size == (1, 35, 35)
    assert result.over is not None and result.over.size == (1, 36, 36)


def test_sizes_the_network_refuses_never_fit():
    # a 5×5 conv then a stride-4 pool: valid for S ≥ 5 with (S − 4) ≥ 4 → S ≥ 8
    net = cnncalc.parse_spec("input: 1x16x16\nlayers:\n  - {type: conv2d, out_channels: 1, kernel_size: 5}\n"
                             "  - {type: maxpool2d, kernel_size: 4}\n")
    result = fit_size(net, 10**9, 1, 0.0, training=False)
    assert result.best is not None and result.best.size[1] > 1000  # plenty: far past the smallest valid size
    tiny = fit_size(net, 600, 1, 0.0, training=False)
    smallest = cnncalc.analyze(net, 1, (1, 8, 8)).totals["inference_memory_bytes"]
    assert (tiny.best is not None) == (smallest <= 600)


@pytest.mark.parametrize("name,optimizer", [("resnet18", "sgd"), ("mobilenet_v2", "adam"), ("hourglass", "momentum")])
def test_the_batch_fits_and_the_next_does_not(name, optimizer):
    net = cnncalc.load_spec(os.path.join(EXAMPLES, f"{name}.yaml"))
    budget = 3 * 2**30
    result = fit_batch(net, budget, 0.1, True, optimizer)
    usable = int(budget * 0.9)
    b = result.best.batch
    at = lambda n: cnncalc.analyze(net, n, None, None, optimizer).totals["training_memory_bytes"]  # noqa: E731
    assert at(b) <= usable < at(b + 1)
    assert result.simulations < 40  # the chord and regula falsi, not a scan


@settings(max_examples=25, deadline=None)
@given(st.integers(min_value=600, max_value=10**7))
def test_any_budget_gives_the_exact_boundary(budget):
    net = cnncalc.parse_spec("input: 2x12x12\nlayers:\n  - {type: conv2d, out_channels: 4, kernel_size: 3, padding: 1}\n"
                             "  - {type: relu}\n  - {type: global_avgpool}\n  - {type: flatten}\n"
                             "  - {type: linear, out_features: 3}\n")
    result = fit_batch(net, budget, 0.0, True, "adam")
    at = lambda n: cnncalc.analyze(net, n, None, None, "adam").totals["training_memory_bytes"]  # noqa: E731
    if result.best is None:
        assert at(1) > budget
    else:
        assert at(result.best.batch) <= budget < at(result.best.batch + 1)


def test_cli_table_json_and_exit_codes(tmp_path):
    spec = tmp_path / "one.yaml"
    spec.write_text(ONE)
    ok = runner.invoke(app, ["fit", str(spec), "--memory", "10000", "--margin", "0", "--inference"])
    assert ok.exit_code == 0 and "largest batch that fits: 19" in ok.stdout
    data = json.loads(runner.invoke(app, ["fit", str(spec), "-m", "10000", "--margin", "0%", "--inference",
                                          "-f", "json"]).stdout)
    assert data["max_batch"] == 19 and data["fits"] and data["usable_bytes"] == 10_000
    assert data["best"]["peak"] == 4 + 512 * 19 and data["next"]["batch"] == 20
    too_small = runner.invoke(app, ["fit", str(spec), "-m", "100", "--inference"])
    assert too_small.exit_code == 1 and "does not fit" in too_small.stdout
    for bad in (["-m", "lots"], ["-m", "1GiB", "--margin", "150%"], ["-m", "1GiB", "--margin", "nan"],
                ["-m", "1GiB", "--batch", "2", "--input", "1x8x8"]):
        r = runner.invoke(app, ["fit", str(spec), *bad])
        assert r.exit_code == 2 and "Traceback" not in r.output, bad
    sized = json.loads(runner.invoke(app, ["fit", str(spec), "-m", "10000", "--margin", "0", "--inference",
                                           "--batch", "1", "-f", "json"]).stdout)
    assert sized["max_input"] == [1, 35, 35] and sized["max_batch"] is None
