"""--checkpoint: block uses run through torch.utils.checkpoint (non-reentrant). Pinned by hand
arithmetic on a chain of conv-bn-relu units and by torch's profiler (its training step built
that way)."""
import json

import pytest
from typer.testing import CliRunner

import cnncalc
from cnncalc.analysis.checkpoint import RNG_STATE_BYTES, apply_checkpoint, segments
from cnncalc.cli import app

from conftest import analyze_text

UNIT = """blocks:
  unit:
    layers:
      - {name: c1, type: conv2d, out_channels: 16, kernel_size: 3, padding: 1, bias: false}
      - {name: b1, type: batchnorm2d}
      - {name: r1, type: relu, inplace: true}
      - {name: c2, type: conv2d, out_channels: 16, kernel_size: 3, padding: 1, bias: false}
      - {name: b2, type: batchnorm2d}
      - {name: r2, type: relu, inplace: true}
"""
CHAIN = """name: chain
input: 3x32x32
batch: 4
""" + UNIT + """layers:
  - {name: stem, type: conv2d, out_channels: 16, kernel_size: 3, padding: 1}
  - {name: u1, block: unit}
  - {name: u2, block: unit}
  - {name: u3, block: unit}
  - {name: pool, type: global_avgpool}
  - {name: flat, type: flatten}
  - {name: fc, type: linear, out_features: 10}
"""
T = 4 * 16 * 32 * 32 * 4  #: one unit tensor: batch 4, 16 channels, 32×32, float32


def test_saved_and_recompute_cost_by_hand():
    """u2 saves c1's input (u1's output), b1's input and its batch mean and inverse std (2·16
    floats), r1's output (c2's input too), b2's input and statistics, and r2's output (b2's, in
    place), which is u3's input and kept by u3's c1 anyway. Checkpointed, u2 keeps only its input
    and the CPU generator's state: 3 tensors and the statistics fewer."""
    report = analyze_text(CHAIN, optimizer="sgd")
    before = report.totals["training_saved_activation_bytes"]
    apply_checkpoint(report, ["u2"])
    stats = 2 * (2 * 16 * 4)
    assert report.totals["training_saved_activation_bytes"] == before - (3 * T + stats) + RNG_STATE_BYTES
    conv = 2 * (4 * 16 * 32 * 32 * 16 * 9)  # FLOPs of one 16→16 3×3 conv at 32×32, batch 4
    ck = report.extra["checkpoint"]
    assert ck["recompute_flops"] == 2 * conv
    forward = report.totals["flops"]
    assert forward == 2 * (4 * 16 * 32 * 32 * 3 * 9) + 6 * conv + 2 * (4 * 16 * 10)
    assert ck["step_flops"] == 3 * forward + 2 * conv and ck["recompute_share"] == 2 * conv / (3 * forward + 2 * conv)
    assert ck["without"]["training_saved_activation_bytes"] == before


def test_all_is_every_top_level_use_and_names_are_checked():
    report = analyze_text(CHAIN)
    assert [s.use for s in segments(report, "all")] == ["u1", "u2", "u3"]
    assert [len(s.rows) for s in segments(report, ["u1", "u3"])] == [6, 6]
    with pytest.raises(ValueError, match="no block use named 'u9'"):
        segments(report, ["u9"])
    with pytest.raises(ValueError, match="no block uses"):
        segments(analyze_text("name: x\ninput: 1x4x4\nlayers:\n  - {type: relu}\n"), "all")


def test_the_api_reads_uses_as_the_command_line_writes_them():
    net = cnncalc.parse_spec(CHAIN)
    by_text, by_list = cnncalc.analyze(net, checkpoint="u1,u3"), cnncalc.analyze(net, checkpoint=["u1", "u3"])
    assert by_text.extra["checkpoint"]["uses"] == ["u1", "u3"]
    assert by_text.extra["checkpoint"]["recompute_flops"] == by_list.extra["checkpoint"]["recompute_flops"] > 0


def test_cli_checkpoint():
    import os
    import tempfile

    runner = CliRunner()
    with tempfile.TemporaryDirectory() as d:
        spec = os.path.join(d, "chain.yaml")
        with open(spec, "w") as f:
            f.write(CHAIN)
        out = runner.invoke(app, ["fit", spec, "--memory", "64MiB", "--checkpoint", "all", "-f", "json"])
        assert out.exit_code == 0, out.output
        doc = json.loads(out.output)
        assert doc["checkpoint"]["uses"] == "all" and doc["checkpoint"]["recompute_flops"] > 0
        plain = json.loads(runner.invoke(app, ["fit", spec, "--memory", "64MiB", "-f", "json"]).output)
        assert doc["max_batch"] > plain["max_batch"]
        bad = runner.invoke(app, ["fit", spec, "--memory", "64MiB", "--checkpoint", "u9"])
        assert bad.exit_code == 2 and "u9" in bad.output
        a = runner.invoke(app, ["analyze", spec, "--checkpoint", "u1,u2", "-f", "json"])
        assert a.exit_code == 0, a.output
        assert [s["use"] for s in json.loads(a.output)["checkpoint"]["segments"]] == ["u1", "u2"]




@pytest.mark.slow
@pytest.mark.parametrize("uses", [["u1"], ["u1", "u3"], "all"])
def test_checkpointed_step_matches_the_profiler(uses):
    torch = pytest.importorskip("torch")
    from cnncalc import backend as tb
    from cnncalc.backend.measure import measure_training

    report = analyze_text(CHAIN, optimizer="sgd")
    segs = segments(report, uses)
    apply_checkpoint(report, uses)
    t = tb.kit()
    torch.manual_seed(0)
    model = tb.build_model(report, t, [s.rows for s in segs])
    peak = measure_training(model, torch.randn(report.input_shape), t, torch.device("cpu"), "sgd")
    assert abs(peak.tensors / report.totals["training_memory_bytes"] - 1) < 0.005


@pytest.mark.slow
def test_verify_checkpoint_and_amp_on_cpu():
    pytest.importorskip("torch")
    from cnncalc.backend.verify import VerifyOptions, verify_report

    report = analyze_text(CHAIN.replace("u2, block: unit}", "u2, block: unit}\n  - {name: cut, type: add, "
                                                          "inputs: [u2, u1]}"), optimizer="sgd")
    result = verify_report(report, VerifyOptions(device="cpu", amp="bf16", checkpoint="u1,u3", check_only=True,
                                                 rf_probe=False))
    assert result.ok, result.mismatches
    assert result.memory["judged"] and result.checkpoint["segments"][0]["use"] == "u1"


def _residual(n: int, inplace: bool) -> str:
    ip = "true" if inplace else "false"
    return f"""name: res
input: 16x32x32
batch: 4
blocks:
  basic:
    layers:
      - {{name: c1, type: conv2d, out_channels: 16, kernel_size: 3, padding: 1, bias: false}}
      - {{name: b1, type: batchnorm2d}}
      - {{name: r1, type: relu, inplace: {ip}}}
      - {{name: c2, type: conv2d, out_channels: 16, kernel_size: 3, padding: 1, bias: false}}
      - {{name: b2, type: batchnorm2d}}
      - {{name: add, type: add, inputs: [b2, input]}}
      - {{name: r, type: relu, inplace: {ip}}}
layers:
  - {{name: stem, type: conv2d, out_channels: 16, kernel_size: 3, padding: 1}}
  - {{name: layer1, block: basic, repeat: {n}}}
  - {{name: pool, type: global_avgpool}}
  - {{name: flat, type: flatten}}
  - {{name: fc, type: linear, out_features: 10}}
"""


@pytest.mark.slow
@pytest.mark.parametrize("n,inplace", [(2, False), (3, True)])
def test_a_segment_of_several_residual_blocks_matches_torch(n, inplace):
    """One segment holding n residual blocks, written as torchvision writes a ResNet stage (an
    nn.Sequential of blocks whose forward drops each intermediate) and checkpointed whole: the
    profiler's training step against the analysis, and the network `verify` builds likewise. The
    recomputation (on the last block's final relu unpacking its output) makes every tensor the
    segment saves, all held at once, before that relu's backward makes its input's gradient;
    torch.random.fork_rng holds a second generator state meanwhile."""
    torch = pytest.importorskip("torch")
    import torch.utils.checkpoint as tc

    from cnncalc import backend as tb
    from cnncalc.backend.measure import measure_training

    nn = torch.nn

    class Basic(nn.Module):
        def __init__(self):
            super().__init__()
            self.c1, self.b1 = nn.Conv2d(16, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16)
            self.c2, self.b2 = nn.Conv2d(16, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16)
            self.r1, self.r = nn.ReLU(inplace), nn.ReLU(inplace)

        def forward(self, x):
            out = self.r1(self.b1(self.c1(x)))
            out = self.b2(self.c2(out))
            out = out + x  # (torchvision: out += identity; out = self.relu(out))
            return self.r(out)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem, self.fc = nn.Conv2d(16, 16, 3, padding=1), nn.Linear(16, 10)
            self.layer1 = nn.Sequential(*[Basic() for _ in range(n)])

        def forward(self, x):
            x = tc.checkpoint(self.layer1, self.stem(x), use_reentrant=False)
            return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))

    report = analyze_text(_residual(n, inplace), optimizer="sgd")
    plain = report.totals["training_memory_bytes"]
    segs = segments(report, "all")
    assert [len(s.rows) for s in segs] == [7 * n]
    apply_checkpoint(report, "all")
    analytic = report.totals["training_memory_bytes"]
    t, cpu, x = tb.kit(), torch.device("cpu"), torch.randn(report.input_shape)
    torch.manual_seed(0)
    hand = measure_training(Net(), x, t, cpu, "sgd")
    torch.manual_seed(0)
    built = measure_training(tb.build_model(report, t, [s.rows for s in segs]), x, t, cpu, "sgd")
    assert abs(hand.tensors / analytic - 1) < 0.001
    assert abs(built.tensors / analytic - 1) < 0.001
    # the peak is at the stage's first backward call, where the recomputation has made all that the
    # plain step saves there too: checkpointed, the step adds only the two generator states
    assert analytic - plain == 2 * RNG_STATE_BYTES


@pytest.mark.parametrize("n", [1, 2, 3])
def test_a_whole_stage_checkpointed_peaks_as_the_plain_step(n):
    """By hand: the plain step peaks at the stage's last relu's backward (every block's saved
    tensors held, the loss's gradient and the relu's input gradient). Checkpointed whole, the
    stage saves only its input in the forward pass; its recomputation, at that relu's backward
    before its input gradient is made, brings back all the plain step saves there (the relu's
    input gradient then takes the place of the recomputation's last loose tensor, the add's
    output, which the in-place-free relu read). So the peak is the plain one plus the two
    generator states (the one kept at the checkpoint, fork_rng's while recomputing)."""
    report = analyze_text(_residual(n, False), optimizer="sgd")
    plain = report.totals["training_memory_bytes"]
    assert report.totals["training_peak_phase"] == "backward"
    apply_checkpoint(report, "all")
    assert report.totals["training_memory_bytes"] == plain + 2 * RNG_STATE_BYTES
    assert report.totals["training_saved_activation_bytes"] < report.extra["checkpoint"]["without"][
        "training_saved_activation_bytes"]
