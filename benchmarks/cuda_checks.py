"""The GPU checks of issues #27 §5 and #31 §5, as one prepared run for a session that is lent a GPU.

    python benchmarks/cuda_checks.py [--device cuda] [--batches 2,16] [--out DIR] [names ...]

1. `cnncalc calibrate --device cuda`: the roofline peaks and the allocator's overhead, workspaces
   and CUDA context (written to DIR/peaks.json).
2. `cnncalc verify EXAMPLE --device cuda --batch B [--amp bf16]` for every example (or the names
   given) at each batch, float32 and bfloat16 autocast, memory judged: exit code, inference and
   training-step ratios (measured ÷ analytic) and the caching allocator's peak allocated and
   reserved bytes next to the analytic figure.
3. ResNet-50 with `--profile` and `--cuda-graph` (exit code and the CUDA-graph replay time).
4. `cnncalc fit` of ResNet-50, MobileNetV2 and VGG-16 with and without `--peaks DIR/peaks.json`.

Prints one Markdown table per part (for README and the note) and writes the raw JSON to DIR. Every
command runs in its own process with a timeout; a failure is a row, never an abort. `--device cpu`
runs the same on the CPU (a smoke test of the script itself: the allocator figures are then null).
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def cnncalc(*args: str, timeout: int = 900) -> tuple[int, dict | None, str, float]:
    """Run `cnncalc ARGS` in a fresh process: exit code, its JSON (None if none), stderr, seconds."""
    t0 = time.perf_counter()
    try:
        p = subprocess.run([sys.executable, "-m", "cnncalc", *args], cwd=ROOT, capture_output=True, text=True,
                           timeout=timeout)
    except subprocess.TimeoutExpired:
        return 124, None, "timeout", time.perf_counter() - t0
    try:
        doc = json.loads(p.stdout) if p.stdout.strip().startswith("{") else None
    except json.JSONDecodeError:
        doc = None
    return p.returncode, doc, p.stderr.strip().splitlines()[-1][:160] if p.stderr.strip() else "", \
        time.perf_counter() - t0


def mib(n: int | None) -> str:
    return "–" if n is None else f"{n / 2**20:.1f}"


def ratio(x: float | None) -> str:
    return "–" if x is None else f"{x:.3f}"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("names", nargs="*")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--batches", default="2,16")
    ap.add_argument("--out", default=os.environ.get("OUT", "/tmp/cuda_checks"))
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    raw: dict = {}
    code, doc, err, took = cnncalc("calibrate", "--device", a.device, "-o", os.path.join(a.out, "peaks.json"))
    peaks = json.load(open(os.path.join(a.out, "peaks.json"))) if code == 0 else {}
    raw["calibrate"] = {"exit": code, "stderr": err, "peaks": peaks}
    print(f"## calibrate --device {a.device}: exit {code} in {took:.0f} s {err}")
    if peaks:
        print(f"allocator overhead {peaks.get('allocator_overhead_share')}, workspace {mib(peaks.get('workspace_bytes'))}"
              f" MiB, context {mib(peaks.get('context_bytes'))} MiB; matmul {peaks['flops_per_s'] / 1e12:.2f} TFLOP/s")
    names = a.names or sorted(os.path.basename(p)[:-5] for p in glob.glob(os.path.join(ROOT, "examples", "*.yaml")))
    print("\n## verify, memory judged\n")
    print("| example | batch | amp | exit | inference ratio | training ratio | analytic training MiB | allocated MiB "
          "| reserved MiB | s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    bad = 0
    for name in names:
        for batch in a.batches.split(","):
            for amp in (None, "bf16"):
                args = ["verify", f"examples/{name}.yaml", "--device", a.device, "--batch", batch, "-f", "json"]
                code, doc, err, took = cnncalc(*args, *(["--amp", amp] if amp else []))
                raw[f"{name}/{batch}/{amp}"] = {"exit": code, "stderr": err, "json": doc}
                mem = ((doc or {}).get("verify") or {}).get("memory") or {}
                tr = mem.get("training") or {}
                bad += code != 0
                print(f"| {name} | {batch} | {amp or 'fp32'} | {code} | {ratio(mem.get('ratio_measured_to_analytic'))} | "
                      f"{ratio(tr.get('ratio'))} | {mib(tr.get('analytic_bytes'))} | {mib(tr.get('allocated_bytes'))} | "
                      f"{mib(tr.get('reserved_bytes'))} | {took:.0f} |" + (f" {err}" if code else ""))
    print("\n## ResNet-50: --profile, --cuda-graph\n")
    for extra in (["--profile"], ["--cuda-graph"]):
        code, doc, err, took = cnncalc("verify", "examples/resnet50.yaml", "--device", a.device, *extra, "-f", "json")
        raw["resnet50" + extra[0]] = {"exit": code, "stderr": err, "json": doc}
        graph = (((doc or {}).get("verify") or {}).get("timing") or {}).get("cuda_graph_s")
        print(f"- `{' '.join(extra)}`: exit {code} in {took:.0f} s"
              + (f", CUDA-graph replay {graph * 1e3:.3f} ms" if graph else "") + (f" ({err})" if code else ""))
    print("\n## fit (24 GiB, adam)\n")
    for name in ("resnet50", "mobilenet_v2", "vgg16"):
        for extra in ([], ["--peaks", os.path.join(a.out, "peaks.json")], ["--amp", "bf16"]):
            if extra[:1] == ["--peaks"] and not peaks:
                continue
            code, doc, err, _ = cnncalc("fit", f"examples/{name}.yaml", "--memory", "24GiB", "--optimizer", "adam",
                                        *extra, "-f", "json")
            raw[f"fit/{name}/{' '.join(extra)}"] = {"exit": code, "json": doc}
            print(f"- {name} {' '.join(extra) or '(assumed margin)'}: exit {code}, largest batch "
                  f"{(doc or {}).get('max_batch')}, usable {mib((doc or {}).get('usable_bytes'))} MiB")
    with open(os.path.join(a.out, "cuda_checks.json"), "w") as fh:
        json.dump(raw, fh, indent=1, default=str)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
