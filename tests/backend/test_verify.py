"""`verify`: every example agrees with torch on CPU; stage receptive fields confirmed by the
gradient probe; device, memory and missing-torch errors are plain messages."""
import glob
import json
import os
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.slow  # verify builds and times whole networks: out of the fast loop (#24)

import cnncalc  # noqa: E402
from cnncalc import backend as tb  # noqa: E402
from cnncalc.backend import verify as bv  # noqa: E402

from conftest import EXAMPLES, ROOT, example  # noqa: E402
from reference import ALEXNET_STAGES, RESNET50_STAGES, VGG_STAGES  # noqa: E402

report = example


@pytest.mark.parametrize("path", sorted(glob.glob(os.path.join(EXAMPLES, "*.yaml"))), ids=os.path.basename)
def test_every_example_verifies_on_cpu(path):
    r = cnncalc.analyze(cnncalc.load_spec(path))
    result = tb.verify_report(r, tb.VerifyOptions(device="cpu", repeat=1, warmup=0, rf_probe=False))
    assert result.mismatches == []
    assert all(c.shape is not None and c.flops is not None for c in result.checks)
    assert result.timing["median_s"] > 0
    assert result.timing["exported"]["median_s"] > 0  # the exported module ran too (cnncalc export --to torch)


@pytest.mark.parametrize("name,stages", [("vgg16", VGG_STAGES), ("resnet50", RESNET50_STAGES),
                                         ("alexnet", ALEXNET_STAGES)])
def test_stage_fields_by_gradient_probe(name, stages):
    r = report(name)
    t = tb.kit()
    rows = [r.layer(n).index for n in stages]
    measured = tb.probe_rf(r, rows, t)
    for layer, (size, jump) in stages.items():
        start = r.layer(layer).receptive_field[0].start
        assert measured[r.layer(layer).index] == ((size, size), (jump, jump), (start, start)), layer
    first = {"vgg16": 2 * 0 + 1 / 2, "resnet50": 0, "alexnet": (11 - 1) / 2 - 2}  # pool1 / conv1 / conv1 by hand
    assert r.layer(next(iter(stages))).receptive_field[0].start == first[name]


def test_probe_sees_the_whole_field_of_a_maxpool_chain():
    # linearisation matters: a plain gradient through max pooling reaches one pixel per window
    r = cnncalc.analyze(cnncalc.parse_spec(
        "input: 1x40x40\nlayers:\n  - {type: conv2d, out_channels: 2, kernel_size: 3}\n"
        "  - {type: relu}\n  - {type: maxpool2d, kernel_size: 2}\n  - {type: conv2d, out_channels: 2, kernel_size: 3}\n"))
    measured = tb.probe_rf(r, [3], tb.kit())[3]
    # start: conv k3 → 1, pool k2 → 1 + 0.5, conv k3 at jump 2 → 1.5 + 1·2
    assert measured == ((3 + 1 * 1 + 2 * 2,) * 2, (2, 2), (1 + 0.5 + 2,) * 2)


def test_transposed_conv_field_by_probe():
    r = cnncalc.analyze(cnncalc.parse_spec(
        "input: 2x12x12\nlayers:\n  - {type: conv2d, out_channels: 2, kernel_size: 3, stride: 2}\n"
        "  - {type: conv_transpose2d, out_channels: 2, kernel_size: 3, stride: 2}\n"))
    rf = r.layers[1].receptive_field[0]
    # conv: 3, jump 2; transposed k3 s2: taps 0 and 2 land on one input pair → +1 input unit (·2)
    assert (rf.size, rf.jump) == (3 + 1 * 2, 1)
    # start: conv k3 s2 → 1; transposed k3 s2 p0 → 1 + (2·0 − 2)/(2·2)·2 = 0 (an estimate: not compared)
    assert tb.probe_rf(r, [1], tb.kit())[1][:2] == ((5, 5), (1, 1))
    assert r.layers[1].rf_json()["start_exact"] == [False, False]


def test_cli_verify_json():
    out = subprocess.run([sys.executable, "-m", "cnncalc", "verify", "examples/lenet5.yaml", "--repeat", "2",
                          "--format", "json"], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    v = data["verify"]
    assert v["ok"] is True and v["device_type"] == "cpu" and v["timing"]["repeat"] == 2
    assert [c["params"] for c in v["layers"]] == [row["params"] for row in data["layers"]]
    # c1: k5 p2, start (5 − 1)/2 − 2 = 0
    assert v["layers"][0]["receptive_field"] == {"size": [5, 5], "stride": [1, 1], "jump": [1, 1], "start": [0, 0]}


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_absent_cuda_is_a_plain_error():
    out = subprocess.run([sys.executable, "-m", "cnncalc", "verify", "examples/lenet5.yaml", "--device", "cuda"],
                         cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 1
    assert "cuda requested but not available" in out.stderr and "Traceback" not in out.stderr


def test_unknown_device_is_a_plain_error():
    with pytest.raises(cnncalc.CnnError, match="unknown device 'tpu'"):
        tb.verify_report(report("lenet5"), tb.VerifyOptions(device="tpu"))
    out = subprocess.run([sys.executable, "-m", "cnncalc", "verify", "examples/lenet5.yaml", "--device", "tpu"],
                         cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 2 and "unknown device 'tpu'" in out.stderr  # a usage mistake


def test_refuses_a_network_larger_than_the_device(monkeypatch):
    monkeypatch.setattr(bv, "available_memory", lambda torch, dev: 1000)
    with pytest.raises(cnncalc.CnnError, match="refusing"):
        tb.verify_report(report("lenet5"), tb.VerifyOptions(device="cpu"))


def test_the_estimate_covers_the_training_step_and_the_limits_of_this_process(monkeypatch):
    r = report("alexnet")
    est, what = bv.verify_memory(r, "float16")
    t = r.totals  # float32: params 244 MB, 2 Adam states, gradients: the training step is the largest
    assert (est, what) == (t["training_memory_bytes"], "a float32 training step")
    assert est > 4 * t["param_bytes"]
    monkeypatch.setattr(bv, "available_memory", lambda torch, dev: 3 * t["param_bytes"])
    opts = tb.VerifyOptions(device="cpu", dtype="float16", repeat=1, warmup=0, rf_probe=False, check_only=True)
    result = tb.verify_report(r, opts)
    assert result.ok and result.memory["training"]["measured_bytes"] is None  # skipped, and said so
    assert result.memory["not_judged"] == ["training memory: its float32 training step needs about 1.19 GiB but only "
                                           "0.68 GiB are free (--force to measure it anyway)"]
    monkeypatch.setattr(bv, "available_memory", lambda torch, dev: t["param_bytes"])
    with pytest.raises(cnncalc.CnnError, match=r"verify needs about 0\.34 GiB on cpu \(the model in float32 and "
                                               r"float16 with an inference pass\)"):
        tb.verify_report(r, tb.VerifyOptions(device="cpu", dtype="float16"))


def test_host_memory_honours_the_address_space_limit():
    import resource

    from cnncalc.backend import device

    code = ("import resource, torch; from cnncalc.backend.device import available_memory; "
            "resource.setrlimit(resource.RLIMIT_AS, (2 * 2**30, resource.RLIM_INFINITY)); "
            "print(available_memory(torch, torch.device('cpu')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert 0 <= int(out.stdout) < 2 * 2**30  # what is left under the limit, not the host's free memory
    assert device._rlimit_room() is None or resource.getrlimit(resource.RLIMIT_AS)[0] != resource.RLIM_INFINITY


def test_out_of_memory_is_named_as_such(monkeypatch):
    r = report("lenet5")
    real = tb.build_model

    def starving(report, t=None, checkpoint=None):
        model = real(report, t, checkpoint)
        conv = model.layers["l0"]

        def refuse(*args):
            raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 9999999999 bytes.")
        conv.forward = refuse
        return model

    monkeypatch.setattr(bv, "build_model", starving)
    with pytest.raises(cnncalc.CnnError) as err:
        tb.verify_report(r, tb.VerifyOptions(device="cpu", repeat=1, warmup=0, rf_probe=False))
    assert "torch runs out of memory on input [(1, 1, 28, 28)]: DefaultCPUAllocator" in err.value.problems[0].message


def test_missing_torch_is_a_one_line_message():
    code = ("import sys; sys.modules['torch'] = None; sys.argv = ['cnncalc', 'verify', 'examples/lenet5.yaml']; "
            "from cnncalc.cli import main; main()")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 1
    assert "pip install 'cnncalc[torch]'" in out.stderr and "Traceback" not in out.stderr


def test_memory_measured_close_to_estimate():
    result = tb.verify_report(report("resnet18"), tb.VerifyOptions(device="cpu", repeat=1, warmup=0, rf_probe=False))
    ratio = result.memory["ratio_measured_to_analytic"]
    assert ratio is not None and 0.5 < ratio < 2.0


def test_bn_folding_checked_in_torch():
    res = tb.check_bn_folding(report("resnet18"), tb.kit(), torch.device("cpu"))
    assert res["ok"] and res["folded"] == 20 and res["torch_params"] == res["analytic_params"]


def test_torch_refusing_a_layer_is_a_located_message(monkeypatch):
    from cnncalc.layers.activation import ReLU

    def broken(self, ctx, t):
        return t.nn.Linear(3, 3)  # a module that cannot take the layer's input

    monkeypatch.setattr(ReLU, "build", broken)
    with pytest.raises(cnncalc.CnnError) as err:
        tb.verify_report(cnncalc.analyze(cnncalc.parse_spec(
            "input: 2x4x4\nlayers:\n  - {name: act, type: relu}\n", "net.yaml")), tb.VerifyOptions(device="cpu", rf_probe=False))
    (p,) = err.value.problems
    assert (p.file, p.line, p.layer) == ("net.yaml", 3, "act") and "torch rejects this layer" in p.message


def test_cli_analyze_verify_flag():
    out = subprocess.run([sys.executable, "-m", "cnncalc", "analyze", "examples/mnist_net.yaml", "--verify"],
                         cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "6 receptive fields probed, 0 not probed.\nall analytic numbers agree with torch" in out.stdout


def test_dtype_the_device_cannot_run_is_a_plain_error(monkeypatch):
    def no_half(*args, **kwargs):
        raise NotImplementedError('"avg_pool3d_out_frame" not implemented for \'Half\'')

    monkeypatch.setattr(bv, "measure_peak", no_half)
    with pytest.raises(cnncalc.CnnError, match="torch cannot run this network in float16 on cpu"):
        tb.verify_report(report("lenet5"), tb.VerifyOptions(device="cpu", dtype="float16", rf_probe=False))


def test_verify_output_golden():
    """The verify table and verdict; the timing panel (measured, so varying) is masked."""
    import re

    from typer.testing import CliRunner

    from cnncalc.cli.app import app

    from conftest import golden

    out = CliRunner().invoke(app, ["verify", os.path.join(EXAMPLES, "lenet5.yaml"), "--repeat", "1", "--warmup", "0"])
    assert out.exit_code == 0, out.stdout
    golden("lenet5.verify.txt", re.sub(r"╭─+ timing ─+╮\n(.*\n)*?╰─+╯\n", "<timing panel>\n", out.stdout))


def test_every_field_is_probed_or_named(monkeypatch):
    """Beyond the probe limit, or with --no-rf-probe, each unprobed field carries its reason."""
    from cnncalc.backend import probe

    r = report("lenet5")
    rows, whole, skipped = probe.probe_plan(r, limit=2)
    assert rows == [4, 5] and whole == []  # the last row before the jump changes, and the last
    assert sorted(skipped) == [0, 1, 2, 3] and {s.detail for s in skipped.values()} == {
        "not probed: beyond the 2 probed rows (those where the jump changes, and the last)"}
    assert {(s.level, s.reason) for s in skipped.values()} == {("not_checked", "probe_limit")}
    result = tb.verify_report(r, tb.VerifyOptions(device="cpu", repeat=1, warmup=0, rf_probe=False))
    assert result.rf_summary() == {"probed": 0, "not_probed": 6, "reasons": {"--no-rf-probe": 6},
                                   "reason_codes": {"switched_off": 6}}


def test_a_wide_timing_spread_is_flagged():
    from cnncalc.backend.measure import summarize

    calm = summarize([1.0, 1.01, 0.99, 1.02, 0.98], batch=1, flops=10, peak=None)
    busy = summarize([0.27e-3, 0.3e-3, 14e-3, 80e-3, 81e-3], batch=1, flops=10, peak=None)  # the LeNet run
    assert not calm["unstable"] and calm["spread"] < 1.1
    assert busy["unstable"] and busy["spread"] > 100


def test_running_out_of_memory_while_building_is_said_so_not_a_refusal(monkeypatch):
    """A layer whose weights do not fit (the timm zoo's regnet_y_128gf under a memory cap) read as
    "torch cannot build this layer: … can't allocate memory": it is this machine's limit."""
    from cnncalc.layers.conv import ConvNd

    def no_room(self, ctx, t):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] err == 0. DefaultCPUAllocator: can't allocate memory")

    monkeypatch.setattr(ConvNd, "build", no_room)
    report = example("lenet5")
    with pytest.raises(cnncalc.CnnError) as err:
        tb.build_model(report)
    (problem,) = err.value.problems
    assert "out of memory" in problem.message and "cannot build" not in problem.message
    assert problem.layer == report.layers[0].name  # located at the first conv
