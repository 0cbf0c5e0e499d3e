"""The roofline (#18): the bytes convention by hand, peaks files, `analyze --peaks` without torch,
and `verify --profile` / `calibrate` on this CPU."""
import json
import os
import subprocess
import sys

import pytest

from cnncalc.analysis.roofline import Peaks, bound, layer_bytes, predict
from cnncalc.units import fmt_time

from conftest import EXAMPLES, analyze_text

PEAKS = {"flops_per_s": 1e11, "bytes_per_s": 2e10, "overhead_s": 5e-6, "device": "test", "device_type": "cpu",
         "dtype": "float32"}


def cli(*args):
    return subprocess.run([sys.executable, "-m", "cnncalc", *args], capture_output=True, text=True,
                          env={**os.environ, "COLUMNS": "200"})


def test_bytes_moved_by_hand():
    r = analyze_text("""input: 3x32x32
layers:
  - {name: conv, type: conv2d, out_channels: 8, kernel_size: 3, padding: 1}
  - {name: bn, type: batchnorm2d}
  - {name: act, type: relu, inplace: true}
  - {name: drop, type: dropout}
  - {name: side, type: conv2d, out_channels: 8, kernel_size: 1, inputs: [conv]}
  - {name: sum, type: add, inputs: [drop, side]}
  - {name: flat, type: flatten}
  - {name: fc, type: linear, out_features: 10}
""")
    b = 4
    by = {row.name: layer_bytes(row, b) for row in r.layers}
    assert by["conv"] == (3 * 32 * 32 + 8 * 32 * 32 + 8 * 3 * 3 * 3 + 8) * b
    assert by["bn"] == (2 * 8 * 32 * 32 + 2 * 8 + 2 * 8) * b       # γ, β, running mean and var (not the counter)
    assert by["act"] == 2 * 8 * 32 * 32 * b                        # in place still reads and writes
    assert by["drop"] == 0 and by["flat"] == 0                     # identity at inference, a view
    assert by["sum"] == 3 * 8 * 32 * 32 * b                        # two inputs read, one output written
    assert by["fc"] == (8 * 32 * 32 + 10 + 8 * 32 * 32 * 10 + 10) * b


def test_roofline_bound_and_verdicts():
    peaks = Peaks(**PEAKS)
    r = analyze_text("input: 256x14x14\nlayers:\n"
                     "  - {name: pw, type: conv2d, out_channels: 256, kernel_size: 1, bias: false}\n"
                     "  - {name: dw, type: conv2d, out_channels: 256, kernel_size: 3, padding: 1, groups: 256, "
                     "bias: false}\n"
                     "  - {name: act, type: relu}\n")
    pw, dw, act = (bound(row, 4, peaks) for row in r.layers)
    assert pw.compute_s == 2 * 256 * 256 * 14 * 14 / 1e11
    assert pw.memory_s == (2 * 256 * 14 * 14 + 256 * 256) * 4 / 2e10
    two = Peaks(**PEAKS, cache_bytes_per_s=1e11, cache_bytes=2**20)  # 1 MiB may stream 5× faster
    assert two.memory_s(3 * 2**20) == 2**20 / 1e11 + 2 * 2**20 / 2e10 and two.memory_s(1000) == 1000 / 1e11
    assert pw.bound == "compute"          # 25.7 M FLOPs / 1e11 = 257 µs > 2.3 MB / 2e10 = 115 µs
    assert dw.compute_s == 2 * 256 * 9 * 14 * 14 / 1e11 and dw.bound == "memory"
    assert act.bound == "memory" and act.roofline_s == 2 * 256 * 14 * 14 * 4 / 2e10
    tiny = bound(analyze_text("input: 1x4x4\nlayers:\n  - {type: relu}\n").layers[0], 4, peaks)
    assert tiny.bound == "overhead" and tiny.predicted_s == 5e-6
    p = predict(r, peaks)
    assert p["total_s"] == sum(max(x.roofline_s, 5e-6) for x in (pw, dw, act))
    assert fmt_time(0.0123) == "12.3 ms" and fmt_time(4.2e-7) == "420 ns"


@pytest.mark.slow  # whole cnncalc processes: the fast loop stays well under a minute
def test_analyze_with_peaks_needs_no_torch(tmp_path):
    peaks = tmp_path / "peaks.json"
    peaks.write_text(json.dumps(PEAKS))
    code = ("import sys, json; sys.modules['torch'] = None\n"
            "from cnncalc.cli import main\nsys.argv = ['cnncalc', 'analyze', sys.argv[1], '--peaks', sys.argv[2], "
            "'-f', 'json']\nmain()")
    out = subprocess.run([sys.executable, "-c", code, os.path.join(EXAMPLES, "lenet5.yaml"), str(peaks)],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    conv = data["layers"][0]
    assert conv["predicted_s"] == max(2 * 117600 / 1e11, (28 * 28 + 6 * 28 * 28 + 6 * 25 + 6) * 4 / 2e10, 5e-6)
    assert data["totals"]["predicted_s"] == sum(x["predicted_s"] for x in data["layers"])
    table = cli("analyze", os.path.join(EXAMPLES, "lenet5.yaml"), "--peaks", str(peaks)).stdout
    assert "predicted" in table and "predicted time" in table and "100 GFLOP/s float32" in table
    assert "predicted" not in cli("analyze", os.path.join(EXAMPLES, "lenet5.yaml")).stdout
    for ignored in (["-f", "csv"], ["-f", "dot"], ["--by", "type"]):  # refused, never silently dropped
        out = cli("analyze", os.path.join(EXAMPLES, "lenet5.yaml"), "--peaks", str(peaks), *ignored)
        assert out.returncode == 2 and "--peaks" in out.stderr, ignored


@pytest.mark.slow  # a whole `analyze --peaks` process each
@pytest.mark.parametrize("text,why", [("[1, 2]", "expected a JSON object"), ('{"flops_per_s": 1}', "'bytes_per_s'"),
                                      ('{"flops_per_s": -1, "bytes_per_s": 1, "overhead_s": 1}', "'flops_per_s'"),
                                      ("not json", "Expecting value")])
def test_bad_peaks_files_are_plain_errors(tmp_path, text, why):
    peaks = tmp_path / "peaks.json"
    peaks.write_text(text)
    out = cli("analyze", os.path.join(EXAMPLES, "lenet5.yaml"), "--peaks", str(peaks))
    assert out.returncode == 1 and "not a cnncalc peaks file" in out.stderr and why in out.stderr
    assert "Traceback" not in out.stderr
    assert cli("analyze", os.path.join(EXAMPLES, "lenet5.yaml"), "--peaks", "nope.json").returncode == 2


torch = pytest.importorskip("torch")


@pytest.mark.slow
def test_profile_on_cpu_sums_and_verdicts(tmp_path):
    spec = tmp_path / "net.yaml"  # a large 1×1-conv stack, then a wide depthwise stack
    # depthwise: 2.25 FLOP per byte on 51 MB maps, most of it beyond any cache: memory-bound by ~2×
    spec.write_text("input: 256x14x14\nlayers:\n"
                    + "".join(f"  - {{name: pw{i}, type: conv2d, out_channels: 256, kernel_size: 1, bias: false}}\n"
                              for i in range(3))
                    + "  - {name: widen, type: upsample, scale_factor: 16}\n"
                    + "".join(f"  - {{name: dw{i}, type: conv2d, out_channels: 256, kernel_size: 3, padding: 1, "
                              f"groups: 256, bias: false}}\n" for i in range(3)))
    out = cli("verify", str(spec), "--profile", "--no-rf-probe", "-f", "json", "--repeat", "5")
    assert out.returncode == 0, out.stderr
    p = json.loads(out.stdout)["verify"]["profile"]
    assert set(p) >= {"forward_s", "kernel_s", "launch_bound", "peaks", "layers"}
    assert set(p["peaks"]) >= {"flops_per_s", "bytes_per_s", "overhead_s"}
    rows = {x["name"]: x for x in p["layers"]}
    assert all(set(x) >= {"name", "time_s", "share", "flops_per_s", "bytes_per_s", "roofline_s", "efficiency",
                          "bound"} for x in p["layers"])
    assert [rows[f"pw{i}"]["bound"] for i in range(3)] == ["compute"] * 3
    assert [rows[f"dw{i}"]["bound"] for i in range(3)] == ["memory"] * 3
    assert abs(sum(x["share"] for x in p["layers"]) - 1) < 1e-9
    assert abs(sum(x["time_s"] for x in p["layers"]) - p["layers_s"]) < 1e-9
    # measured times vary with the machine's load (no timing bound here; benchmarks/layer_profile.py
    # holds the sum to ±10% on a quiet machine): a layer that beats its roofline is flagged, never a fact
    beat = [x["name"] for x in p["layers"] if x["efficiency"] is not None and x["efficiency"] > 1.1]
    assert not beat or any("beat" in line for line in p["unreliable"]), (beat, p["unreliable"])
    for x in p["layers"]:
        assert x["flops_per_s"] == pytest.approx(x["flops"] / x["time_s"])
    import io

    from rich.console import Console

    from cnncalc.render.terminal import print_profile

    out = io.StringIO()
    print_profile(p, Console(file=out, width=200, no_color=True))
    table = out.getvalue()
    assert "roofline" in table and "bound by: compute 3 layers" in table and "dw2" in table


@pytest.mark.slow
def test_cuda_graph_needs_cuda_and_calibrate_writes_peaks(tmp_path):
    if not torch.cuda.is_available():
        out = cli("verify", os.path.join(EXAMPLES, "lenet5.yaml"), "--cuda-graph", "--device", "cpu")
        assert out.returncode == 2 and "--cuda-graph needs a CUDA device" in out.stderr
    peaks = tmp_path / "peaks.json"
    out = cli("calibrate", "--device", "cpu", "-o", str(peaks))
    assert out.returncode == 0 and "wrote" in out.stderr
    k = Peaks.load(str(peaks))
    doc = json.loads(peaks.read_text())  # the allocator's figures are measured on CUDA only: none claimed here
    assert doc["allocator_overhead_share"] is None and doc["context_bytes"] is None and k.workspace_bytes is None
    assert "CUDA only" in doc["allocator_reference"]["note"]
    assert k.device_type == "cpu" and k.flops_per_s > 1e8 and k.bytes_per_s > 1e8 and 0 < k.overhead_s < 1e-3
    out = cli("analyze", os.path.join(EXAMPLES, "resnet50.yaml"), "--peaks", str(peaks), "-f", "json")
    assert json.loads(out.stdout)["totals"]["predicted_s"] > 0
