"""`verify --profile` on every example (CPU here): per-layer times against the whole forward pass,
layers measured faster than their roofline bound, and how long the profile takes.

    python benchmarks/layer_profile.py [--batch N] [examples/NAME.yaml ...]

Prints, per network: forward time (no profiler), the sum of the per-layer times and its ratio to
the forward time (the issue asks for within 10%), the operators' share, the highest
efficiency (roofline bound ÷ measured; above 1 means a layer beat its lower bound), and the
wall time of the whole verify --profile run.
"""
from __future__ import annotations

import glob
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main(argv: list[str]) -> None:
    batch = "1"
    if argv[:1] == ["--batch"]:
        batch, argv = argv[1], argv[2:]
    specs = argv or sorted(glob.glob(os.path.join(ROOT, "examples", "*.yaml")))
    print(f"{'network':<18} {'forward':>10} {'layers':>10} {'ratio':>6} {'ops':>5} {'max eff':>8} {'beaten':>6} "
          f"{'run':>6}")
    for spec in specs:
        t0 = time.perf_counter()
        out = subprocess.run([sys.executable, "-m", "cnncalc", "verify", spec, "--profile", "--no-rf-probe", "-b",
                              batch, "-f", "json", "--repeat", "10"], capture_output=True, text=True, cwd=ROOT)
        wall = time.perf_counter() - t0
        try:
            p = json.loads(out.stdout)["verify"]["profile"]
        except (ValueError, KeyError):
            print(f"{os.path.basename(spec):<18} failed: {out.stderr.strip()[-200:]}")
            continue
        eff = [x["efficiency"] for x in p["layers"] if x["efficiency"] is not None]
        beaten = sum(1 for e in eff if e > 1.10)
        print(f"{os.path.basename(spec)[:-5]:<18} {p['forward_s'] * 1e3:>8.2f}ms {p['layers_s'] * 1e3:>8.2f}ms "
              f"{p['layers_s'] / p['forward_s']:>6.3f} {p['kernel_s'] / p['forward_s']:>5.0%} {max(eff):>8.2f} "
              f"{beaten:>6} {wall:>5.1f}s")


if __name__ == "__main__":
    main(sys.argv[1:])
