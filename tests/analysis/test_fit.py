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


# ---- §4 sharded model states (DeepSpeed ZeRO 1/2/3, FSDP FULL_SHARD): per GPU ----
from math import ceil  # noqa: E402

from cnncalc.analysis.fit import Sharding, counts, sharded_point, sharded_states  # noqa: E402

TINY = """name: tiny
input: 1x8x8
blocks:
  pair:
    args: {c: null}
    layers:
      - {name: conv, type: conv2d, out_channels: $c, kernel_size: 3, padding: 1}
      - {name: relu, type: relu}
layers:
  - {name: stem, type: conv2d, out_channels: 4, kernel_size: 3, padding: 1}
  - {block: pair, name: body, args: {c: 4}}
  - {type: global_avgpool}
  - {type: flatten}
  - {name: fc, type: linear, out_features: 3}
"""
# stem 4·1·9 + 4 = 40, body.conv 4·4·9 + 4 = 148, fc 4·3 + 3 = 15: P = 203, all trainable
P, L, ROOT = 40 + 148 + 15, 148, 40 + 15


def tiny(b=2, dtype=None, optimizer="adam"):
    return cnncalc.analyze(cnncalc.parse_spec(TINY), b, None, dtype, optimizer)


def test_counts_by_hand():
    c = counts(tiny())
    assert (c.trainable, c.frozen, c.largest_layer, c.largest_layer_trainable) == (P, 0, L, L)
    assert c.persistent == P  # every tensor has ≤ 100,000 elements: ZeRO-3 keeps them all whole
    assert counts(tiny(), 10).persistent == 4 + 4 + 3  # only the biases have ≤ 10 elements
    assert (c.units, c.root) == ((148,), ROOT)  # the block use `body` is one FSDP unit; stem and fc the root


def test_zero_and_fsdp_states_by_hand():
    c, N, w, k = counts(tiny(), 10), 4, 4, 2  # float32, adam, 4 GPUs
    part = ceil(P / N)  # 51: partitions are padded to equal size
    common = {"params": 4 * P, "master_params": 4 * part, "optimizer_state": 4 * 2 * part,
              "gradient_partition": 4 * part, "reduce_bucket": 4 * 10, "allgather_bucket": 0,
              "fp32_gradient_step": 4 * part}
    sh = dict(reduce_bucket=10, prefetch_bucket=7, persistence_threshold=10)
    assert sharded_states(c, w, k, Sharding("zero1", N, **sh)) == {**common, "gradients_fb": 4 * P}
    assert sharded_states(c, w, k, Sharding("zero2", N, **sh)) == {**common, "layer_gradient_fb": 4 * L}
    assert sharded_states(c, w, k, Sharding("zero2", N, overlap_comm=True, **sh))["reduce_bucket"] == 2 * 4 * 10
    spread = P - (4 + 4 + 3)  # 192 elements partitioned; the biases (≤ 10) persist whole
    zero3 = {"params": 4 * (ceil(spread / N) + 11), "master_params": 0,  # float32 params are their own master
             "optimizer_state": 4 * 2 * part, "gradient_partition": 4 * part, "reduce_bucket": 4 * 10,
             "gathered_params_fb": 4 * min(spread, 10**9, L + 7), "layer_gradient_fb": 4 * L}
    assert sharded_states(c, w, k, Sharding("zero3", N, **sh)) == zero3
    assert sharded_states(c, 2, k, Sharding("zero3", N, **sh))["master_params"] == 4 * part  # bf16: an fp32 master
    flat = ceil(148 / N) + ceil(ROOT / N)  # 37 + 14: each unit's flat parameter padded and sharded
    assert sharded_states(c, w, k, Sharding("fsdp", N, **sh)) == {
        "params": 4 * flat, "master_params": 0, "optimizer_state": 4 * 2 * flat, "gradient_partition": 4 * flat,
        "root_params_fb": 4 * ROOT, "gathered_params_fb": 2 * 4 * 148, "layer_gradient_fb": 4 * 148,
        "optimizer_temporaries_step": 3 * 4 * ceil(148 / N)}
    one = sharded_states(c, w, 0, Sharding("fsdp", 1))  # world 1: FSDP runs NO_SHARD, nothing gathered
    assert one["params"] == 4 * P and one["root_params_fb"] == one["gathered_params_fb"] == 0


def test_zero1_on_one_gpu_is_the_simulation_plus_its_copies():
    # sgd, world 1, no bucket: ZeRO-1 holds what one process holds (the simulated step) plus DeepSpeed's fp32
    # clone of the partition (4·P) and the contiguous gradient partition (4·P)
    r = tiny(optimizer="sgd")
    p = sharded_point(r, Sharding("zero1", 1, reduce_bucket=0))
    assert r.totals["training_peak_phase"] != "optimizer step"
    assert p.peak == r.totals["training_memory_bytes"] + 4 * P + 4 * P


@pytest.mark.parametrize("amp", [None, "bf16", "fp16"])
@pytest.mark.parametrize("uses", [None, "all", ["layer1.0", "layer3.1"]])
def test_zero1_on_one_gpu_with_amp_and_checkpointing_is_the_one_gpu_step_plus_its_copies(amp, uses):
    # the same identity as above, through analyze's own --amp and --checkpoint figures (each measured against
    # torch's training step in test_amp_checkpoint): ZeRO-1 at world 1, no bucket, sgd, holds what one process
    # holds plus the fp32 clone of the partition and the gradient partition (4·P each), and the GradScaler's
    # state with fp16 (in both figures)
    from cnncalc.analysis.checkpoint import apply_checkpoint, segments
    from cnncalc.analysis.precision import Amp, apply_amp

    net = cnncalc.load_spec(os.path.join(EXAMPLES, "resnet18.yaml"))
    a = Amp(amp, "cuda") if amp else None
    one = cnncalc.analyze(net, 2, (3, 64, 64), None, "sgd")
    if uses:
        apply_checkpoint(one, uses, a, inference=False)
    elif a:
        apply_amp(one, a, (False, True))
    r = cnncalc.analyze(net, 2, (3, 64, 64), None, "sgd")
    p = sharded_point(r, Sharding("zero1", 1, reduce_bucket=0), a, segments(r, uses) if uses else None)
    assert one.totals["training_peak_phase"] != "optimizer step" and p.phase == "forward/backward"
    P = r.totals["trainable_params"]
    assert p.peak == one.totals["training_memory_bytes"] + 4 * P + 4 * P
    assert p.saved_activations == one.totals["training_saved_activation_bytes"]


def test_checkpointing_and_amp_lower_a_sharded_step():
    from cnncalc.analysis.checkpoint import segments
    from cnncalc.analysis.precision import Amp

    net = cnncalc.load_spec(os.path.join(EXAMPLES, "resnet18.yaml"))
    r = cnncalc.analyze(net, 8, (3, 64, 64), None, "adam")
    for stage in ("zero2", "zero3", "fsdp"):
        sh = Sharding(stage, 4)
        plain, ck = sharded_point(r, sh), sharded_point(r, sh, segs=segments(r, "all"))
        assert ck.shard["activations_fb"] < plain.shard["activations_fb"]
        assert {k: v for k, v in ck.shard.items() if "_fb" not in k and k != "forward_backward"} == \
            {k: v for k, v in plain.shard.items() if "_fb" not in k and k != "forward_backward"}
    big = cnncalc.analyze(net, 8, (3, 224, 224), None, "adam")  # activations outweigh autocast's weight copies
    low = sharded_point(big, Sharding("zero2", 4), Amp("bf16", "cuda"))
    assert low.shard["activations_fb"] < sharded_point(big, Sharding("zero2", 4)).shard["activations_fb"]
    with pytest.raises(ValueError, match="zero3"):
        sharded_point(r, Sharding("zero3", 4), Amp("bf16", "cuda"))


def test_cli_shard_with_checkpoint_and_amp():
    spec = os.path.join(EXAMPLES, "resnet18.yaml")
    out = runner.invoke(app, ["fit", spec, "--memory", "8GiB", "--shard", "zero2", "--world", "4", "--optimizer",
                              "adam", "--checkpoint", "all", "--amp", "bf16", "-f", "json"])
    assert out.exit_code == 0, out.output
    doc = json.loads(out.output)
    net = cnncalc.load_spec(spec)
    from cnncalc.analysis.checkpoint import segments
    from cnncalc.analysis.precision import Amp

    at = lambda n: sharded_point(r := cnncalc.analyze(net, n, None, None, "adam"), Sharding("zero2", 4),  # noqa: E731
                                 Amp("bf16", "cuda"), segments(r, "all"))
    best = doc["max_batch"]
    assert doc["best"]["peak"] == at(best).peak <= doc["usable_bytes"] < at(best + 1).peak
    ck = doc["checkpoint"]
    assert ck["uses"] == "all" and ck["recompute_flops"] > 0 and 0 < ck["recompute_share"] < 0.25
    table = runner.invoke(app, ["fit", spec, "--memory", "2GiB", "--shard", "fsdp", "--world", "4",
                                "--checkpoint", "all"])
    assert table.exit_code == 0 and "checkpointing all" in table.output and "sharded: fsdp" in table.output


@pytest.mark.parametrize("name", ["resnet18", "hourglass"])
def test_activations_without_weight_gradients_are_bounded_by_the_simulation(name):
    # the simulated peak with weight gradients (S) less all of them (G) ≤ the peak without them (A) ≤ S
    r = cnncalc.analyze(cnncalc.load_spec(os.path.join(EXAMPLES, f"{name}.yaml")), 2, (3, 64, 64), None, "sgd")
    t = r.totals
    s = t["training_memory_bytes"] - t["param_bytes"] - t["buffer_bytes"]
    a = sharded_point(r, Sharding("zero2", 2)).shard["activations_fb"]
    assert s - 4 * t["trainable_params"] <= a <= s
    assert a < s  # the gradients of the weights done before the peak are left out


# DeepSpeed's own estimators, copied verbatim (no offload is the branch compared) from
# https://github.com/deepspeedai/DeepSpeed/blob/edaa7221267243c7be7fb49c5d5f5c4fb97b4641/deepspeed/runtime/zero/stage_1_and_2.py
# https://github.com/deepspeedai/DeepSpeed/blob/edaa7221267243c7be7fb49c5d5f5c4fb97b4641/deepspeed/runtime/zero/stage3.py
# They model mixed precision Adam: 16-bit params and gradients, fp32 master, gradients and momentum/variance.
# cnncalc's default (float32 throughout) differs, so they are compared at --dtype bfloat16 --optimizer adam,
# on the model states only (no activations, buckets or prefetch: ZeRO-3 with prefetch 0 and persistence 0).
def estimate_zero2_model_states_mem_needs(total_params,
                                          num_gpus_per_node=1,
                                          num_nodes=1,
                                          cpu_offload=True,
                                          additional_buffer_factor=1.5):

    total_gpus = num_nodes * num_gpus_per_node

    if cpu_offload:
        gpu_mem = 2 * total_params
        cpu_mem = total_params * max(4 * total_gpus, 16) * additional_buffer_factor
    else:
        # GPU's total_params multipliers: 2 = params_16bit,
        # 18 = 2_grads_16bit + 4_grads_32bit + 4_params_32bit + 8_optimizer_states_32bit(momentum and variance)
        gpu_mem = 2 * total_params + int(18 * total_params / total_gpus)
        cpu_mem = total_params * 4 * num_gpus_per_node * additional_buffer_factor

    return int(cpu_mem), int(gpu_mem)


def estimate_zero3_model_states_mem_needs(total_params,
                                          largest_layer_params,
                                          num_gpus_per_node=1,
                                          num_nodes=1,
                                          cpu_offload=True,
                                          cpu_offload_params=True,
                                          zero_init=True,
                                          additional_buffer_factor=1.5):

    total_gpus = num_nodes * num_gpus_per_node
    gpus_factor = 1 / num_nodes
    largest_layer_memory = (4 * largest_layer_params)

    if cpu_offload:
        if cpu_offload_params:
            gpu_mem = largest_layer_memory

            if zero_init:
                cpu_mem = total_params * 18 * gpus_factor * additional_buffer_factor
            else:
                cpu_mem = total_params * max(4 * num_gpus_per_node, 18 * gpus_factor) * additional_buffer_factor

        else:
            gpu_mem = largest_layer_memory + int(2 * total_params / total_gpus)

            if zero_init:
                cpu_mem = total_params * 16 * gpus_factor * additional_buffer_factor
            else:
                cpu_mem = total_params * max(4 * num_gpus_per_node, 16 * gpus_factor) * additional_buffer_factor
    else:
        gpu_mem = largest_layer_memory + int(18 * total_params / total_gpus)
        if zero_init:
            cpu_mem = largest_layer_params * 4 * num_gpus_per_node * additional_buffer_factor
        else:
            cpu_mem = total_params * 4 * num_gpus_per_node * additional_buffer_factor

    return int(cpu_mem), int(gpu_mem), largest_layer_memory


@pytest.mark.parametrize("which,nodes,per_node", [("tiny", 1, 7), ("resnet18", 2, 4), ("resnet18", 1, 1)])
def test_model_states_agree_with_deepspeeds_estimators(which, nodes, per_node):
    net = cnncalc.parse_spec(TINY) if which == "tiny" else cnncalc.load_spec(os.path.join(EXAMPLES, "resnet18.yaml"))
    r = cnncalc.analyze(net, 1, None, "bfloat16", "adam")
    c, world = counts(r, 0), nodes * per_node
    assert c.trainable * 18 % world == 0  # the estimator truncates; cnncalc pads partitions: equal when exact
    z2 = sharded_states(c, 2, 2, Sharding("zero2", world))
    states2 = z2["params"] + z2["gradient_partition"] + z2["fp32_gradient_step"] + z2["master_params"] \
        + z2["optimizer_state"]
    assert states2 == estimate_zero2_model_states_mem_needs(c.trainable, per_node, nodes, cpu_offload=False)[1]
    z3 = sharded_states(c, 2, 2, Sharding("zero3", world, prefetch_bucket=0, persistence_threshold=0))
    states3 = sum(v for k, v in z3.items() if k != "reduce_bucket")
    _, gpu, largest = estimate_zero3_model_states_mem_needs(c.trainable, c.largest_layer, per_node, nodes,
                                                            cpu_offload=False)
    assert states3 == gpu and z3["gathered_params_fb"] + z3["layer_gradient_fb"] == largest


def test_sharded_batch_is_the_boundary():
    net = cnncalc.load_spec(os.path.join(EXAMPLES, "resnet18.yaml"))
    sh = Sharding("zero2", 8, reduce_bucket=10**7)
    result = fit_batch(net, 2 * 2**30, 0.0, True, "adam", (3, 64, 64), None, sh)
    b = result.best.batch
    at = lambda n: sharded_point(cnncalc.analyze(net, n, (3, 64, 64), None, "adam"), sh).peak  # noqa: E731
    assert at(b) <= 2 * 2**30 < at(b + 1) and result.best.peak == at(b)
    assert result.simulations < 40


def test_cli_shard_and_allocator(tmp_path):
    spec = tmp_path / "tiny.yaml"
    spec.write_text(TINY)
    base = ["fit", str(spec), "-m", "64MiB", "--optimizer", "adam"]
    data = json.loads(runner.invoke(app, [*base, "--shard", "fsdp", "--world", "4", "-f", "json"]).stdout)
    assert data["shard"]["stage"] == "fsdp" and data["shard"]["world"] == 4
    assert data["shard"]["global_batch"] == 4 * data["max_batch"]
    net = cnncalc.parse_spec(TINY)
    assert data["best"]["peak"] == sharded_point(cnncalc.analyze(net, data["max_batch"], None, None, "adam"),
                                                 Sharding("fsdp", 4)).peak
    assert data["allocator"]["source"] == "assumed margin" and data["allocator"]["margin"] == 0.1
    text = runner.invoke(app, [*base, "--shard", "zero3", "--world", "2", "--reduce-bucket", "1000"])
    assert text.exit_code == 0 and "assumed margin 10%" in text.stdout and "per GPU" in text.stdout
    for bad in (["--shard", "zero2"], ["--world", "2"], ["--shard", "zero1", "--world", "2", "--inference"],
                ["--shard", "zero9", "--world", "2"], ["--shard", "zero1", "--world", "0"]):
        r = runner.invoke(app, [*base, *bad])
        assert r.exit_code == 2 and "Traceback" not in r.output, bad


PEAKS = {"flops_per_s": 1e12, "bytes_per_s": 1e11, "overhead_s": 1e-5, "device": "hand-written", "device_type": "cuda"}


def test_peaks_file_allocator_overhead(tmp_path):
    # a hand-written peaks file (no GPU here to measure one): 25% allocator overhead over the tensors' peak and
    # 1,000 B of workspaces. ONE at inference needs 4 + 512·b bytes of tensors:
    # (4 + 512·b)·1.25 + 1,000 ≤ 10,000 → 4 + 512·b ≤ 7,200 → b = 14 (7,172; b = 15 needs 7,684)
    spec, peaks = tmp_path / "one.yaml", tmp_path / "peaks.json"
    spec.write_text(ONE)
    peaks.write_text(json.dumps({**PEAKS, "allocator_overhead_share": 0.25, "workspace_bytes": 1000}))
    run = ["fit", str(spec), "-m", "10000", "--inference", "--peaks", str(peaks)]
    data = json.loads(runner.invoke(app, [*run, "-f", "json"]).stdout)
    assert data["usable_bytes"] == (10_000 - 1000) / 1.25 == 7200 and data["max_batch"] == 14
    assert data["allocator"] == {"source": "peaks file", "peaks_file": str(peaks), "overhead_share": 0.25,
                                 "workspace_bytes": 1000, "context_bytes": None, "margin": 0.0}
    # and 1,500 B of CUDA context (as `calibrate --device cuda` writes it): (10,000 − 1,000 − 1,500) / 1.25 = 6,000
    # → 4 + 512·b ≤ 6,000 → b = 11 (5,636; b = 12 needs 6,148)
    peaks.write_text(json.dumps({**PEAKS, "allocator_overhead_share": 0.25, "workspace_bytes": 1000,
                                 "context_bytes": 1500}))
    ctx = json.loads(runner.invoke(app, [*run, "-f", "json"]).stdout)
    assert ctx["usable_bytes"] == 6000 and ctx["max_batch"] == 11 and ctx["allocator"]["context_bytes"] == 1500
    assert "context 1.46 KiB" in runner.invoke(app, run).stdout
    peaks.write_text(json.dumps({**PEAKS, "allocator_overhead_share": 0.25, "workspace_bytes": 1000}))
    assert "allocator overhead 25.0%" in runner.invoke(app, run).stdout
    both = json.loads(runner.invoke(app, [*run, "--margin", "10%", "-f", "json"]).stdout)
    assert both["usable_bytes"] == int((10_000 * 0.9 - 1000) / 1.25)  # an explicit margin still applies
    peaks.write_text(json.dumps(PEAKS))  # a file without the fields (as CPU calibrations write): margin assumed
    plain = runner.invoke(app, run)
    assert plain.exit_code == 0 and "assumed margin 10%" in plain.stdout and "has no allocator overhead" in plain.stdout
    peaks.write_text(json.dumps({**PEAKS, "allocator_overhead_share": -1}))
    bad = runner.invoke(app, run)
    assert bad.exit_code == 1 and "allocator_overhead_share" in bad.output and "Traceback" not in bad.output


def test_amp_inference_batch_by_hand():
    # the 1×1 conv under autocast (bf16, CUDA's lists): float32 weights 1·4 B; per sample the float32
    # input 64·4 B and the bf16 output 64·2 B (at inference its casts are made and freed inside the conv)
    from cnncalc.analysis.precision import Amp

    net = cnncalc.parse_spec(ONE)
    result = fit_batch(net, 10_000, 0.0, training=False, amp=Amp("bf16"))
    per = 64 * 4 + 64 * 2
    assert result.best is not None and result.best.batch == (10_000 - 4) // per  # 26: 4 + 384·26 = 9,988
    assert result.best.peak == 4 + per * 26 and result.over is not None and result.over.peak == 4 + per * 27


def test_amp_training_batch_is_the_boundary():
    from cnncalc.analysis.precision import Amp, apply_amp

    net = cnncalc.load_spec(os.path.join(EXAMPLES, "mobilenet_v2.yaml"))
    amp = Amp("bf16", "cuda")
    result = fit_batch(net, 2 * 2**30, 0.1, optimizer="adam", amp=amp)
    assert result.best is not None and result.over is not None
    for p, fits in ((result.best, True), (result.over, False)):
        r = apply_amp(cnncalc.analyze(net, batch=p.batch, optimizer="adam"), amp)
        assert r.totals["training_memory_bytes"] == p.peak and (p.peak <= result.usable) is fits
    plain = fit_batch(net, 2 * 2**30, 0.1, optimizer="adam")
    assert plain.best is not None and result.best.batch > plain.best.batch  # bf16 activations: more fit


def test_cli_amp(tmp_path):
    spec = os.path.join(EXAMPLES, "resnet18.yaml")
    out = runner.invoke(app, ["fit", spec, "--memory", "4GiB", "--amp", "bf16", "-f", "json"])
    assert out.exit_code == 0, out.output
    doc = json.loads(out.output)
    assert doc["amp"] == {"dtype": "bfloat16", "device_type": "cuda", "master_weights": "float32"}
    table = runner.invoke(app, ["fit", spec, "--memory", "4GiB", "--amp", "fp16", "--amp-device", "cpu"])
    assert table.exit_code == 0 and "autocast float16 (cpu op lists)" in table.output
    for bad in (["--shard", "zero3", "--world", "2"], ["--shard", "fsdp", "--world", "2"], ["--dtype", "bfloat16"]):
        refused = runner.invoke(app, ["fit", spec, "--memory", "4GiB", "--amp", "bf16", *bad])
        assert refused.exit_code == 2, refused.output
    a = runner.invoke(app, ["analyze", spec, "--amp", "bf16", "-f", "json"])
    assert a.exit_code == 0, a.output
    rep = json.loads(a.output)
    assert rep["amp"]["layers"]["conv1"]["dtype"] == "bfloat16"
    assert rep["totals"]["training_memory_bytes"] < rep["amp"]["float32"]["training_memory_bytes"]
