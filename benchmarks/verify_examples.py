"""`cnncalc verify --device cpu` with the field probe on, for every example: exit code, wall seconds
and the time split per stage (counts, probe, memory, timing, exported-module timing, calibration),
with the machine's load printed first (issues #24 §4 and #27 §1).

    python benchmarks/verify_examples.py [--check-only] [--repeat N] [--threads N] [names ...]

Each example runs in a fresh process through the CLI (`verify EXAMPLE --device cpu -f json`); the
stage split comes from verify's own clock (`verify_report(stages=...)`), and "wall" includes the
start-up, the import of torch and the analysis. Target: every example exits 0."""
from __future__ import annotations

import argparse
import glob
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHILD = """
import json, sys
import cnncalc.backend.verify as bv
stages = {}
original = bv.verify_report
def timed(*args, **kwargs):
    kwargs["stages"] = stages
    return original(*args, **kwargs)
bv.verify_report = timed
from cnncalc.cli import app
code = 0
try:
    app(sys.argv[1:], prog_name="cnncalc")
except SystemExit as exc:
    code = exc.code or 0
print("STAGES " + json.dumps(stages), file=sys.stderr)
sys.exit(code)
"""
COLUMNS = {  # column: verify's stages in it
    "counts": ("building the network", "comparing shapes, params and FLOPs"),
    "probe": ("probing receptive fields",),
    "memory": ("measuring training memory", "measuring memory"),
    "timing": ("timing",),
    "exported": ("timing the exported module",),
    "calib": ("calibrating the matmul peak",),
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("names", nargs="*")
    ap.add_argument("--check-only", action="store_true")
    ap.add_argument("--repeat", type=int, default=None)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    paths = sorted(glob.glob(os.path.join(ROOT, "examples", "*.yaml")))  # examples/broken/ is not matched
    if args.names:
        paths = [p for p in paths if os.path.basename(p)[:-5] in args.names]
    extra = (["--check-only"] if args.check_only else []) + (["--repeat", str(args.repeat)] if args.repeat else []) \
        + (["--threads", str(args.threads)] if args.threads else [])
    load = os.getloadavg()
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} cores; "
          f"verify --device cpu {' '.join(extra)}".rstrip())
    print(f"{'example':20} {'exit':>4} {'wall s':>7} {'thr':>3} " + " ".join(f"{c:>8}" for c in COLUMNS)
          + "  fields probed/not  first problem")
    failed = 0
    started = time.perf_counter()
    for path in paths:
        t0 = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", CHILD, "verify", path, "--device", "cpu", "-f", "json", *extra],
                             capture_output=True, text=True, cwd=ROOT)
        wall = time.perf_counter() - t0
        stages = next((json.loads(line[7:]) for line in out.stderr.splitlines() if line.startswith("STAGES ")), {})
        try:
            v = json.loads(out.stdout)["verify"]
        except (ValueError, KeyError):
            v = None
        failed += out.returncode != 0
        problem = (v["mismatches"][:1] if v else [line for line in out.stderr.splitlines()
                                                   if line and not line.startswith("STAGES ")][-1:])
        rf = v["receptive_fields"] if v else {"probed": "?", "not_probed": "?"}
        threads = v["timing"].get("threads", "?") if v else "?"
        print(f"{os.path.basename(path)[:-5]:20} {out.returncode:>4} {wall:7.1f} {threads:>3} "
              + " ".join(f"{sum(stages.get(s, 0.0) for s in names):8.2f}" for names in COLUMNS.values())
              + f"  {rf['probed']:>6}/{rf['not_probed']:<4} {(problem or [''])[0][:100]}", flush=True)
    print(f"{len(paths)} examples in {time.perf_counter() - started:.0f} s; {failed} exited non-zero; "
          f"load average now {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
