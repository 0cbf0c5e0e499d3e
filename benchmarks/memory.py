"""Measured ÷ analytic memory for every example: the inference peak and one training step.

    python benchmarks/memory.py [--batch 1 8] [--device cpu|cuda] [--optimizer adam]

Measured with torch.profiler's allocation events (operator workspace apart, printed too);
verify judges the same ratios within ±10%."""
from __future__ import annotations

import argparse
import glob
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import torch  # noqa: E402

import cnncalc  # noqa: E402
from cnncalc import backend as tb  # noqa: E402
from cnncalc.backend.measure import measure_peak, measure_training  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--optimizer", default="adam", choices=["sgd", "momentum", "adam"])
    ap.add_argument("--skip", nargs="*", default=[], help="example file names to leave out")
    args = ap.parse_args()
    dev = torch.device(args.device)
    print("| example | batch | inference measured/analytic | workspace | training measured/analytic | workspace | peak in |")
    print("|---|---:|---:|---:|---:|---:|---|")
    for path in sorted(glob.glob(os.path.join(ROOT, "examples", "*.yaml"))):
        name = os.path.basename(path)
        if name in args.skip:
            continue
        for batch in args.batch:
            report = cnncalc.analyze(cnncalc.load_spec(path), batch=batch, optimizer=args.optimizer)
            t = tb.kit()
            torch.manual_seed(0)
            model = tb.build_model(report, t).eval().to(dev)
            x = torch.randn(report.input_shape, device=dev)
            inf = measure_peak(model, x, t, dev)
            try:
                tr = measure_training(model, x, t, dev, args.optimizer)
            except (RuntimeError, ValueError) as exc:
                tr, why = None, str(exc).splitlines()[0][:60]
            totals = report.totals
            ri = inf.tensors / totals["inference_peak_activation_bytes"]
            train = (f"{tr.tensors / totals['training_memory_bytes']:.3f} | {tr.workspace / 2**20:.1f} MiB"
                     if tr else f"not measured ({why}) | –")
            exact = "" if all(r.layer.memory_exact for r in report.layers) else " (not judged)"
            print(f"| `{name}`{exact} | {batch} | {ri:.3f} | {inf.workspace / 2**20:.1f} MiB | {train} | "
                  f"{totals['training_peak_phase']} |", flush=True)
        del model


if __name__ == "__main__":
    main()
