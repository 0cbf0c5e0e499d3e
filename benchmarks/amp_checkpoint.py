"""verify --amp bf16 (and --checkpoint) on every example: torch's measured peaks against the
analysis (issue #31). For each example at batch 2 (its spec's input), the network is built and
measured on the CPU as `verify` measures it (backend.measure: one inference pass and one
training step with SGD, torch.profiler allocation events), under torch.autocast('cpu', bfloat16)
with the CPU op lists; printed: measured / analytic for the inference peak and the training
step, and the float32 training figure beside for scale. Each ratio must lie within verify's
±10% (MEMORY_TOLERANCE); examples whose memory rules are estimates are shown, not judged.

    python benchmarks/amp_checkpoint.py [NAME ...]                  # every example, autocast bf16
    python benchmarks/amp_checkpoint.py --checkpoint all --no-amp   # float32, every top-level block use
                                                                    # through torch.utils.checkpoint
    python benchmarks/amp_checkpoint.py --checkpoint all            # both
"""
from __future__ import annotations

import argparse
import glob
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import cnncalc  # noqa: E402
from cnncalc.analysis.analyze import analyze  # noqa: E402
from cnncalc.analysis.checkpoint import apply_checkpoint, segments  # noqa: E402
from cnncalc.analysis.precision import Amp, apply_amp  # noqa: E402
from cnncalc.backend.verify import MEMORY_TOLERANCE  # noqa: E402


def measure(report, amp: str | None, segs=None, optimizer: str = "sgd") -> tuple[int | None, int | None]:
    from cnncalc.backend.build import build_model
    from cnncalc.backend.kit import kit
    from cnncalc.backend.measure import measure_peak, measure_training

    t = kit()
    t.torch.manual_seed(0)
    model = build_model(report, t, segs).eval()
    x = t.torch.randn(report.input_shape)
    cpu = t.torch.device("cpu")
    inf = measure_peak(model, x, t, cpu, amp)
    train = measure_training(model, x, t, cpu, optimizer, amp)
    return (inf.tensors if inf else None), (train.tensors if train else None)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("names", nargs="*")
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--checkpoint", default=None, help="all, or block uses USE,USE")
    ap.add_argument("--no-amp", action="store_true")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    names = args.names or sorted(os.path.basename(p)[:-5] for p in glob.glob(os.path.join(ROOT, "examples", "*.yaml")))
    amp = None if args.no_amp else "bf16"
    uses = None if args.checkpoint is None else "all" if args.checkpoint == "all" else args.checkpoint.split(",")
    what = ("autocast bfloat16 with the CPU op lists" if amp else "float32") + (
        f", checkpoint {args.checkpoint}" if uses else "")
    print(f"torch {torch.__version__}, CPU, {torch.get_num_threads()} threads, batch {args.batch}, sgd; {what}; "
          f"load {os.getloadavg()[0]:.1f}")
    print(f"{'example':20} {'plain':>11} {'analytic':>11} {'ratio':>8} {'inference':>9} {'training':>9} "
          f"{'recompute':>9} {'s':>6}  verdict   (plain: the float32 step without these options)")
    bad = 0
    for name in names:
        net = cnncalc.load_spec(os.path.join(ROOT, "examples", f"{name}.yaml"))
        report = analyze(net, args.batch, None, "float32", "sgd")
        exact = all(r.layer.memory_exact for r in report.layers)
        plain = report.totals["training_memory_bytes"]
        segs = None
        share = float("nan")
        if uses is not None:
            try:
                segs = [s.rows for s in segments(report, uses)]
            except ValueError as exc:
                print(f"{name:20} not checkpointed: {exc}"[:120])
                continue
            apply_checkpoint(report, uses, Amp("bf16", "cpu") if amp else None)
            share = report.extra["checkpoint"]["recompute_share"]
        elif amp:
            apply_amp(report, Amp("bf16", "cpu"))
        t0 = time.perf_counter()
        try:
            inf, train = measure(report, amp, segs)
        except (RuntimeError, ValueError, MemoryError) as exc:  # e.g. batch norm over one value per channel
            print(f"{name:20} torch could not run it: {str(exc).splitlines()[0][:80]}")
            bad += 1
            continue
        took = time.perf_counter() - t0
        tot = report.totals
        ri = inf / tot["inference_peak_activation_bytes"] if inf else float("nan")
        rt = train / tot["training_memory_bytes"] if train else float("nan")
        ok = abs(ri - 1) <= MEMORY_TOLERANCE and abs(rt - 1) <= MEMORY_TOLERANCE
        verdict = "ok" if ok else ("estimate (not judged)" if not exact else "OUTSIDE ±10%")
        bad += not ok and exact
        mib = 2**20
        cost = f"{share:.1%}" if uses else "-"
        print(f"{name:20} {plain / mib:9.1f}Mi {tot['training_memory_bytes'] / mib:9.1f}Mi "
              f"{tot['training_memory_bytes'] / plain:8.2f} {ri:9.3f} {rt:9.3f} {cost:>9} {took:6.1f}  "
              f"{verdict}", flush=True)
    print("all within ±10%" if not bad else f"{bad} outside ±10%")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
