"""`verify` on every example: wall time, receptive fields probed / not probed (with reasons),
the largest probe's memory, and the peak memory of the whole verify process.

    python benchmarks/verify_probe.py [--repeat 5] [names ...]

Each example runs in a fresh process (`cnncalc verify --format json`), so the figures include
start-up, the build, the counts, the probe, memory measurement and timing. Exits 1 when any
example's verify is not ok (the issue #27 criterion: every example verifies on CPU)."""
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
import json, resource, sys
from cnncalc.backend import probe
import cnncalc
r = cnncalc.analyze(cnncalc.load_spec(sys.argv[1]))
rows, whole, skipped = probe.probe_plan(r)
worst = 0
for idx in rows:
    for axis in range(len(r.layers[idx].receptive_field)):
        g = probe._probe_geometry(r, idx, axis, 2)
        if not isinstance(g, str):
            worst = max(worst, probe._probe_bytes(g[0], idx))
print(json.dumps({"worst_probe_estimate_bytes": worst}))
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("names", nargs="*")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    paths = sorted(glob.glob(os.path.join(ROOT, "examples", "*.yaml")))
    if args.names:
        paths = [p for p in paths if os.path.basename(p)[:-5] in args.names]
    failed: list[str] = []
    print(f"{'example':18} {'verify s':>9} {'peak RSS':>9} {'probed':>7} {'not':>5} {'worst probe':>12}  ok  reasons")
    for path in paths:
        t0 = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", "import resource, sys, runpy; sys.argv = ['cnncalc'] + sys.argv[1:];"
                              "from cnncalc.cli import app\n"
                              "try:\n    app()\nexcept SystemExit as e:\n    code = e.code\n"
                              "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\n"
                              "sys.exit(code)",
                              "verify", path, "--format", "json", "--repeat", str(args.repeat)],
                             capture_output=True, text=True, cwd=ROOT)
        wall = time.perf_counter() - t0
        rss_kib = int(out.stderr.strip().splitlines()[-1]) if out.stderr.strip() else 0
        v = json.loads(out.stdout)["verify"] if out.stdout.strip().startswith("{") else None
        child = subprocess.run([sys.executable, "-c", CHILD, path], capture_output=True, text=True, cwd=ROOT)
        est = json.loads(child.stdout)["worst_probe_estimate_bytes"] if child.stdout.strip().startswith("{") else 0
        if v is None:  # no JSON: say why (the last line the process wrote), never a traceback here
            why = (out.stderr.strip().splitlines() or ["no output"])[-2 if out.stderr.strip() else -1][:120]
            print(f"{os.path.basename(path)[:-5]:18} {wall:9.1f}  verify gave no report (exit {out.returncode}): {why}")
            failed.append(os.path.basename(path)[:-5])
            continue
        rf = v["receptive_fields"] if v else {"probed": "?", "not_probed": "?", "reasons": {}}
        print(f"{os.path.basename(path)[:-5]:18} {wall:9.1f} {rss_kib / 2**20:8.2f}G {rf['probed']:>7} "
              f"{rf['not_probed']:>5} {est / 2**30:11.2f}G  {'yes' if v and v['ok'] else 'NO '} "
              f"{'; '.join(f'{n} {why}' for why, n in rf['reasons'].items())}")
        if not (v and v["ok"]):
            failed.append(os.path.basename(path)[:-5])
    print(f"{len(paths) - len(failed)}/{len(paths)} examples verified" + (f"; failed: {', '.join(failed)}" if failed else ""))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
