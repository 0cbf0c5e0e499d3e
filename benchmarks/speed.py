"""How fast is cnncalc, against the tools people use today?

    python benchmarks/speed.py [--runs 5] [--skip-peers]

1. Whole processes, median of --runs: `cnncalc analyze examples/resnet50.yaml` cold, and each
   peer installed in this environment (torch.utils.flop_counter.FlopCounterMode always; torchinfo,
   fvcore, thop, ptflops when importable — install them in the benchmark's own environment,
   never as project dependencies), each on the identical network built by cnncalc's builder,
   with their params/MACs next to cnncalc's.
2. In process: the analyzer on ResNet-50, and on generated chains and residual DAGs of 1k, 10k
   and 100k layers (cost per layer should stay flat).
3. `cnncalc validate` of 200 specs in one process.
4. Every output format of `cnncalc analyze` on 1k- and 10k-layer chains (rendering stays linear).
"""
from __future__ import annotations

import argparse
import gc
import glob
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
SPEC = os.path.join(ROOT, "examples", "resnet50.yaml")

PEER_PRELUDE = f"""
import sys, json, time
sys.path.insert(0, {ROOT!r})
import torch, cnncalc
from cnncalc import backend as tb
report = cnncalc.analyze(cnncalc.load_spec({SPEC!r}))
model = tb.build_model(report).eval()
x = torch.randn(report.input_shape)
"""
PEERS = {
    "FlopCounterMode": """
from torch.utils.flop_counter import FlopCounterMode
with FlopCounterMode(display=False) as c, torch.no_grad():
    model(x)
print(json.dumps({"params": sum(p.numel() for p in model.parameters()), "macs": c.get_total_flops() // 2}))
""",
    "torchinfo": """
from torchinfo import summary
s = summary(model, input_data=x, verbose=0)
print(json.dumps({"params": s.total_params, "macs": s.total_mult_adds}))
""",
    "fvcore": """
from fvcore.nn import FlopCountAnalysis
f = FlopCountAnalysis(model, x)
f.unsupported_ops_warnings(False); f.uncalled_modules_warnings(False)
print(json.dumps({"params": sum(p.numel() for p in model.parameters()), "macs": f.total()}))
""",
    "thop": """
from thop import profile
macs, params = profile(model, inputs=(x,), verbose=False)
print(json.dumps({"params": int(params), "macs": int(macs)}))
""",
    "ptflops": """
from ptflops import get_model_complexity_info
macs, params = get_model_complexity_info(model, tuple(x.shape[1:]), as_strings=False, print_per_layer_stat=False)
print(json.dumps({"params": int(params), "macs": int(macs)}))
""",
}
STACK = ("import typer, yaml, rich.console, rich.table\nfrom pydantic import TypeAdapter\n"
         "TypeAdapter(int).validate_python(1)")
WHY = {"torchinfo": "also counts BN parameters and linear biases as mult-adds",
       "fvcore": "adds some non-matmul ops (e.g. batch norm) to its count",
       "thop": "adds non-matmul layers (batch norm, activations, pooling)",
       "ptflops": "adds non-matmul layers (batch norm, activations, pooling)"}


def timed(cmd: list[str], runs: int) -> tuple[float, str]:
    times, out = [], ""
    for _ in range(runs):
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
        times.append(time.perf_counter() - t0)
        out = proc.stdout if proc.returncode == 0 else "ERROR " + proc.stderr[-300:]
    return statistics.median(times), out


def whole_processes(runs: int, skip_peers: bool) -> None:
    import json

    import cnncalc

    ours = cnncalc.analyze(cnncalc.load_spec(SPEC)).totals
    t_ours, _ = timed([sys.executable, "-m", "cnncalc", "analyze", SPEC], runs)  # the default: a table
    t_json, _ = timed([sys.executable, "-m", "cnncalc", "analyze", SPEC, "--format", "json"], runs)
    print(f"\n1. whole processes on ResNet-50 (median of {runs}); × = seconds / cnncalc analyze's")
    print(f"{'tool':<18}{'seconds':>9}{'× cnncalc':>11}{'params':>14}{'MACs':>16}  agrees?")
    print(f"{'cnncalc analyze':<18}{t_ours:>9.3f}{1:>11.1f}{ours['params']:>14,}{ours['macs']:>16,}  —")
    print(f"{'  … --format json':<18}{t_json:>9.3f}{t_json / t_ours:>11.2f}")
    # what no cnncalc code can go below: the interpreter, and importing the stack it is built on
    t_py, _ = timed([sys.executable, "-c", "pass"], runs)
    t_stack, _ = timed([sys.executable, "-c", STACK], runs)
    print(f"{'  python alone':<18}{t_py:>9.3f}{t_py / t_ours:>11.2f}")
    print(f"{'  + its stack':<18}{t_stack:>9.3f}{t_stack / t_ours:>11.2f}  (typer, pydantic, PyYAML, rich imported)")
    if skip_peers:
        return
    for name, body in PEERS.items():
        if name != "FlopCounterMode" and subprocess.run([sys.executable, "-c", f"import {name}"],
                                                        capture_output=True).returncode:
            print(f"{name:<18}{'not installed (pip install ' + name + ' in the benchmark environment)':>40}")
            continue
        t, out = timed([sys.executable, "-c", PEER_PRELUDE + body], runs)
        if out.startswith("ERROR"):
            print(f"{name:<18} failed: {out[:200]}")
            continue
        got = json.loads(out.strip().splitlines()[-1])
        same = got["params"] == ours["params"] and got["macs"] == ours["macs"]
        print(f"{name:<18}{t:>9.3f}{t / t_ours:>11.1f}{got['params']:>14,}{got['macs']:>16,}  "
              f"{'yes' if same else 'no: ' + WHY.get(name, 'different conventions')}")


def chain(n: int) -> str:
    return ("input: 8x32x32\nblocks:\n  u: {layers: [{type: conv2d, out_channels: 8, kernel_size: 3, padding: 1}, "
            f"{{type: relu}}]}}\nlayers:\n  - {{block: u, name: s, repeat: {n // 2}}}\n")


def dag(n: int) -> str:
    return ("input: 8x32x32\nblocks:\n  r:\n    layers:\n"
            "      - {name: c, type: conv2d, out_channels: 8, kernel_size: 3, padding: 1}\n"
            "      - {name: b, type: batchnorm2d}\n      - {name: a, type: add, inputs: [b, input]}\n"
            f"      - {{name: r, type: relu}}\nlayers:\n  - {{block: r, name: s, repeat: {n // 4}}}\n")


def in_process() -> None:
    import cnncalc

    net = cnncalc.load_spec(SPEC)
    cnncalc.analyze(net)
    times = []
    for _ in range(20):
        t0 = time.perf_counter()
        cnncalc.analyze(cnncalc.load_spec(SPEC))
        times.append(time.perf_counter() - t0)
    print(f"\n2. in process\nResNet-50 load + analyze: median {statistics.median(times) * 1e3:.1f} ms over 20")
    print(f"{'network':<12}{'layers':>8}{'seconds':>10}{'µs/layer':>10}")
    for kind, make in (("chain", chain), ("residual", dag)):
        for n in (1_000, 10_000, 100_000):
            text = make(n)
            gc.collect()  # freeing the previous network is not this one's cost
            t0 = time.perf_counter()
            layers = len(cnncalc.analyze(cnncalc.parse_spec(text)).layers)
            dt = time.perf_counter() - t0
            print(f"{kind:<12}{layers:>8,}{dt:>10.3f}{dt / layers * 1e6:>10.1f}")


def validate_many(runs: int) -> None:
    tmp = tempfile.mkdtemp()
    try:
        specs = [p for p in glob.glob(os.path.join(ROOT, "examples", "*.yaml"))]
        for i in range(200):
            shutil.copy(specs[i % len(specs)], os.path.join(tmp, f"spec{i:03d}.yaml"))
        files = sorted(glob.glob(os.path.join(tmp, "*.yaml")))
        t200, _ = timed([sys.executable, "-m", "cnncalc", "validate", *files], runs)
        t1, _ = timed([sys.executable, "-m", "cnncalc", "validate", files[0]], runs)
        print(f"\n3. validate: 200 specs in one process {t200:.3f} s; one spec {t1:.3f} s (median of {runs})")
    finally:
        shutil.rmtree(tmp)


def outputs() -> None:
    """Whole `cnncalc analyze` processes printing every format for 1k- and 10k-layer chains: the
    rendering must stay linear too."""
    tmp = tempfile.mkdtemp()
    try:
        print(f"\n4. analyze output, whole process (seconds; µs per layer)\n{'layers':>8}"
              + "".join(f"{f:>18}" for f in ("table", "json", "csv", "markdown")))
        for n in (1_000, 10_000):
            path = os.path.join(tmp, f"chain{n}.yaml")
            with open(path, "w") as fh:
                fh.write(chain(n))
            row = f"{n:>8,}"
            for fmt in ("table", "json", "csv", "markdown"):
                t, _ = timed([sys.executable, "-m", "cnncalc", "analyze", path, "-f", fmt], 1)
                row += f"{t:>9.2f}{t / n * 1e6:>7.0f} µs"
            print(row)
    finally:
        shutil.rmtree(tmp)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--skip-peers", action="store_true")
    args = ap.parse_args()
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores")
    whole_processes(args.runs, args.skip_peers)
    in_process()
    validate_many(args.runs)
    outputs()


if __name__ == "__main__":
    main()
