"""verify answers in seconds and says when timing cannot be trusted (issue #24 §4, #27 §4): quartiles
only from enough runs and never outside [min, max]; `--threads` (default: what the machine has
free); `--check-only` proves every number and times nothing; unstable timing advises fewer threads
or a quieter machine; a profile efficiency above 1.1 is a measurement problem."""
import json
import os
import subprocess
import sys

import pytest

from cnncalc.backend import device as bd
from cnncalc.backend.measure import QUARTILE_RUNS, summarize

from conftest import EXAMPLES, analyze_text

LENET = os.path.join(EXAMPLES, "lenet5.yaml")


def cli(*args):
    return subprocess.run([sys.executable, "-m", "cnncalc", *args], capture_output=True, text=True,
                          env={**os.environ, "COLUMNS": "200"})


def test_two_runs_give_no_quartiles_and_no_stability_verdict():
    s = summarize([1.0, 3.0], batch=2, flops=10, peak=None)
    assert (s["min_s"], s["max_s"], s["median_s"]) == (1.0, 3.0, 2.0)
    assert s["p25_s"] is None and s["p75_s"] is None and s["spread"] is None
    assert s["unstable"] is False and s["stability_judged"] is False
    assert s["samples_per_s"] == 2 / 2.0


def test_quartiles_by_hand_and_never_outside_min_max():
    # inclusive quartiles of 1, 2, 4, 8: positions 0.75 and 2.25 → 1 + 0.75·(2 − 1), 4 + 0.25·(8 − 4)
    s = summarize([8.0, 1.0, 4.0, 2.0], batch=1, flops=1, peak=None)
    assert (s["p25_s"], s["p75_s"], s["spread"]) == (1.75, 5.0, 5.0 / 1.75)
    assert s["stability_judged"] is True and s["unstable"] is True  # 2.86 > 1.5
    assert QUARTILE_RUNS == 4
    for times in ([0.27e-3, 0.3e-3, 14e-3, 80e-3], [5.0, 1.0, 1.0, 1.0, 9.0], [2.0] * 4, [1.0, 100.0, 1.0, 100.0, 1.0]):
        s = summarize(times, batch=1, flops=1, peak=None)
        assert min(times) <= s["p25_s"] <= s["median_s"] <= s["p75_s"] <= max(times), times


def test_thread_budget_takes_the_least_of_affinity_quota_and_free_cores(monkeypatch):
    monkeypatch.setattr(bd.os, "cpu_count", lambda: 8)
    monkeypatch.setattr(bd.os, "sched_getaffinity", lambda pid: set(range(6)), raising=False)
    monkeypatch.setattr(bd, "_cgroup_cpus", lambda: 2.5)
    monkeypatch.setattr(bd.os, "getloadavg", lambda: (6.6, 0.0, 0.0))
    n, why = bd.thread_budget()
    assert n == 1  # 8 − 6.6 = 1.4 cores free → 1 (quota 2.5 → 2, affinity 6)
    assert "1.4 of 8 cores free" in why and "2.5 CPUs" in why and "6 cores allowed" in why
    monkeypatch.setattr(bd.os, "getloadavg", lambda: (0.2, 0.0, 0.0))
    assert bd.thread_budget()[0] == 2  # the quota, rounded down
    monkeypatch.setattr(bd, "_cgroup_cpus", lambda: None)
    assert bd.thread_budget()[0] == 6  # the affinity mask (7.8 cores free)
    monkeypatch.setattr(bd.os, "getloadavg", lambda: (30.0, 0.0, 0.0))
    assert bd.thread_budget()[0] == 1  # never fewer than one


def test_threads_one_is_honoured_restored_and_reported():
    torch = pytest.importorskip("torch")
    from cnncalc import backend as tb

    r = analyze_text("input: 1x16x16\nlayers:\n  - {type: conv2d, out_channels: 4, kernel_size: 3}\n"
                     "  - {type: relu}\n")
    before = torch.get_num_threads()
    seen = {}

    def progress(stage, done):
        seen.setdefault(stage, torch.get_num_threads())

    stages: dict = {}
    opts = tb.VerifyOptions(device="cpu", repeat=4, warmup=0, threads=1)
    result = tb.verify_report(r, opts, progress=progress, stages=stages)
    assert seen["timing"] == 1 and seen["probing receptive fields"] == 1
    assert torch.get_num_threads() == before
    assert result.timing["threads"] == 1 and result.timing["threads_reason"] == "1 thread (--threads)"
    assert result.timing["timed"] is True and "1 torch threads" in result.device
    assert {"timing", "measuring memory", "probing receptive fields", "timing the exported module"} <= set(stages)
    assert all(v >= 0 for v in stages.values())


@pytest.mark.slow
def test_cli_threads_is_reported_in_the_timing_box_and_json():
    pytest.importorskip("torch")
    out = cli("verify", LENET, "--device", "cpu", "--threads", "1", "--repeat", "4", "--warmup", "0",
              "--no-rf-probe")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "threads: 1 thread (--threads)" in out.stdout and "p25" in out.stdout
    out = cli("verify", LENET, "--device", "cpu", "--threads", "1", "--repeat", "2", "--warmup", "0",
              "--no-rf-probe", "-f", "json")
    timing = json.loads(out.stdout)["verify"]["timing"]
    assert timing["threads"] == 1 and timing["timed"] is True and timing["p25_s"] is None  # 2 runs: no quartiles


@pytest.mark.slow
def test_check_only_times_nothing_and_exits_0():
    pytest.importorskip("torch")
    out = cli("verify", LENET, "--device", "cpu", "--check-only")
    assert out.returncode == 0, out.stdout + out.stderr
    text = out.stdout
    assert "not timed (--check-only)" in text and "agree" in text
    for timing in ("forward:", "median", "throughput", "exported module", "matmul peak"):
        assert timing not in text, timing
    out = cli("verify", LENET, "--device", "cpu", "--check-only", "-f", "json")
    v = json.loads(out.stdout)["verify"]
    assert out.returncode == 0 and v["ok"] and v["timing"]["timed"] is False and "median_s" not in v["timing"]
    assert v["memory"]["measured_peak_bytes"] and v["receptive_fields"]["probed"] > 0


def test_check_only_refuses_timing_options():
    pytest.importorskip("torch")
    out = cli("verify", LENET, "--device", "cpu", "--check-only", "--profile")
    assert out.returncode == 2 and "--check-only" in out.stderr + out.stdout and "Traceback" not in out.stderr


def test_unstable_timing_advises_fewer_threads_or_a_quieter_machine():
    torch = pytest.importorskip("torch")
    from cnncalc.backend.verify import _unstable_advice

    advice = _unstable_advice({"spread": 3.0}, torch.device("cpu"), 4, 20)
    assert "3.00" in advice and "--threads 2" in advice and "quieter machine" in advice
    assert "--threads" not in _unstable_advice({"spread": 3.0}, torch.device("cpu"), 1, 20)


def test_an_efficiency_above_1_1_is_a_measurement_problem():
    from rich.console import Console

    from cnncalc.backend.profile import judge
    from cnncalc.render.terminal import print_profile

    layers = [{"name": "conv", "type": "conv2d", "time_s": 1e-3, "share": 0.5, "flops_per_s": 1e9, "bytes_per_s": 1e9,
               "roofline_s": 1.5e-3, "efficiency": 1.5, "bound": "compute"},
              {"name": "relu", "type": "relu", "time_s": 1e-3, "share": 0.5, "flops_per_s": None, "bytes_per_s": 1e9,
               "roofline_s": 1.1e-3, "efficiency": 1.1, "bound": "memory"}]
    unreliable = judge(layers, kernel_s=4e-3, forward_s=2e-3, what="torch operators")
    assert [x["implausible"] for x in layers] == [True, False]  # 1.5 > 1.1; 1.1 is not above it
    assert len(unreliable) == 2 and "conv" in unreliable[0] and "200%" in unreliable[1]
    peaks = {"device": "cpu", "dtype": "float32", "device_type": "cpu", "flops_per_s": 1e11, "bytes_per_s": 1e10,
             "cache_bytes_per_s": 2e10, "cache_bytes": 2**20, "overhead_s": 5e-6}
    console = Console(record=True, width=200)
    print_profile({"peaks": peaks, "timer": "wall", "layers": layers, "forward_s": 2e-3, "kernel_s": 4e-3,
                   "layers_s": 2e-3, "roofline_s": 2.6e-3, "launch_bound": False, "unreliable": unreliable,
                   "efficiency_limit": 1.1}, console)
    text = console.export_text()
    assert "150% (!)" in text and "110% (!)" not in text and "110%" in text
    assert text.count("unreliable:") == 2 and "measurement problem" in text


@pytest.mark.slow
def test_calibrate_threads():
    pytest.importorskip("torch")
    out = cli("calibrate", "--device", "cpu", "--threads", "1")
    assert out.returncode == 0, out.stderr
    peaks = json.loads(out.stdout)
    assert peaks["threads"] == 1 and peaks["threads_reason"] == "1 thread (--threads)" and peaks["flops_per_s"] > 0
