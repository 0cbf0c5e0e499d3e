"""Does the batch `cnncalc fit` reports really fit, and the next one not? (issue #31)

For each network and budget: `fit_batch` (no torch) gives b; then torch runs one training step
(forward, backward, optimizer step: backend.measure.measure_training, the measurement verify
judges memory with) at b and b + 1 on the CPU, and its peak of tensors is compared with the
budget: "fits" when the measured peak ≤ usable memory. The margin is 0 here, so the budget is
the cap itself. Also times every `fit` (the analysis only).

    python benchmarks/fit.py            # ResNet-18, MobileNetV2, the hourglass U-Net
Then times `fit --shard STAGE --world 8` on ResNet-50 (80 GiB, adam), and `fit` of every example
(24 GiB, adam) plain, with --amp bf16, --checkpoint all, both, and both with --shard zero2 --world 8:
each must answer in < 1 s (the analysis in this process; a whole `cnncalc fit` adds its ~0.3 s start).
"""
from __future__ import annotations

import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import cnncalc  # noqa: E402
from cnncalc.analysis.analyze import analyze  # noqa: E402
from cnncalc.analysis.fit import SHARDS, Sharding, fit_batch  # noqa: E402

CASES = [  # (example, input C×H×W, budget bytes): small budgets so that a step runs on 2 cores
    ("resnet18", (3, 64, 64), 400 * 2**20),
    ("mobilenet_v2", (3, 64, 64), 300 * 2**20),
    ("hourglass", None, 200 * 2**20),
]


def measured(net, batch: int, shape, optimizer: str = "sgd") -> int | None:
    from cnncalc.backend.build import build_model
    from cnncalc.backend.kit import kit
    from cnncalc.backend.measure import measure_training

    t = kit()
    report = analyze(net, batch, shape, "float32", optimizer)
    model = build_model(report, t)
    x = t.torch.randn(report.input_shape, dtype=t.torch.float32)
    peak = measure_training(model, x, t, t.torch.device("cpu"), optimizer)
    return None if peak is None else peak.tensors


def main() -> int:
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; margin 0, sgd, float32, CPU")
    print(f"{'network':14} {'input':10} {'budget':>9} {'b':>5} {'fit s':>6} {'analytic b':>11} {'torch b':>10} "
          f"{'torch b+1':>10}  verdict")
    bad = 0
    for name, shape, budget in CASES:
        net = cnncalc.load_spec(os.path.join(ROOT, "examples", f"{name}.yaml"))
        t0 = time.perf_counter()
        result = fit_batch(net, budget, 0.0, True, "sgd", shape, "float32")
        took = time.perf_counter() - t0
        assert result.best is not None, name
        b = result.best.batch
        at_b, at_next = measured(net, b, shape), measured(net, b + 1, shape)
        ok = at_b is not None and at_next is not None and at_b <= budget < at_next
        bad += not ok
        mib = 2**20
        print(f"{name:14} {'x'.join(map(str, shape or net.header.input)):10} {budget / mib:7.0f}Mi {b:5d} {took:6.2f} "
              f"{result.best.peak / mib:9.1f}Mi {(at_b or 0) / mib:8.1f}Mi {(at_next or 0) / mib:8.1f}Mi  "
              f"{'b fits, b+1 does not' if ok else 'WRONG'}")
    # sharded (#31 §4): no torch can check these here (one machine); time the analysis only
    net = cnncalc.load_spec(os.path.join(ROOT, "examples", "resnet50.yaml"))
    for stage in SHARDS:
        t0 = time.perf_counter()
        result = fit_batch(net, 80 * 2**30, 0.1, True, "adam", None, None, Sharding(stage, 8))
        took = time.perf_counter() - t0
        slow = took >= 1.0
        bad += slow
        print(f"resnet50 80GiB adam {stage} ×8: per-GPU batch {result.best.batch if result.best else 0} in "
              f"{took:.2f} s ({result.simulations} simulations){'  TOO SLOW' if slow else ''}")
    bad += every_example()
    return 1 if bad else 0


def every_example() -> int:
    """`fit_batch` of every example in each setting; the slowest per setting and any over 1 s."""
    import glob

    from cnncalc.analysis.checkpoint import block_uses
    from cnncalc.analysis.precision import Amp

    amp = Amp("bf16", "cuda")
    settings = {"plain": (None, None, None), "--amp bf16": (amp, None, None), "--checkpoint all": (None, "all", None),
                "both": (amp, "all", None), "both, zero2 x8": (amp, "all", Sharding("zero2", 8))}
    slowest: dict[str, tuple[float, str]] = {k: (0.0, "") for k in settings}
    bad = 0
    for path in sorted(glob.glob(os.path.join(ROOT, "examples", "*.yaml"))):
        net = cnncalc.load_spec(path)
        name = os.path.basename(path)[:-5]
        blocks = bool(block_uses(analyze(net, 1))[0])
        for what, (a, ck, sh) in settings.items():
            if ck and not blocks:
                continue
            t0 = time.perf_counter()
            fit_batch(net, 24 * 2**30, 0.1, True, "adam", None, None, sh, amp=a, checkpoint=ck)
            took = time.perf_counter() - t0
            if took > slowest[what][0]:
                slowest[what] = (took, name)
            if took >= 1.0:
                bad += 1
                print(f"  {name} {what}: {took:.2f} s  TOO SLOW")
    for what, (took, name) in slowest.items():
        print(f"every example, {what}: slowest {took:.2f} s ({name})")
    return bad


if __name__ == "__main__":
    sys.exit(main())
