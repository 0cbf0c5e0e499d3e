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

By default only the targets of issue #30 run (sections 1–4 above with --full), each as a ratio
measured in this one run, so that a loaded machine slows both sides alike:

    python benchmarks/speed.py [--against REV] [--rounds 3]

- warm `analyze` of ResNet-50 ÷ a fixed pure-Python workload (sum(i*i % 7 for i in
  range(200_000)), best of several, timed next to it): target ≤ 0.3; DenseNet-121 and
  ShuffleNetV2 (concat-heavy: fields per channel through concats, slices and shuffles) the same
  way, as figures without a target;
- per layer on a 20,000-layer conv/relu chain ÷ the workload: target ≤ 1e-3, and per layer at
  100,000 layers ÷ per layer at 20,000: target ≤ 1.25 (linear);
- cold `cnncalc analyze examples/resnet50.yaml` ÷ a bare import of its stack (typer, rich,
  pydantic, yaml): target ≤ 1.5; cold `cnncalc schema`, `cnncalc layers` and `cnncalc validate
  examples/*.yaml` ÷ the same import: target ≤ 2 (whole processes with bytecode caches on, and
  schema's own cache in a temporary folder per tree, written by a first run as a user's first
  run writes it).
Each is measured for this tree and for REV (default HEAD~, checked out with `git worktree add`
in a temporary folder and removed at the end), interleaved round by round; each time is the
best of the rounds and each ratio that of two such bests, printed with the load average
(os.getloadavg) at each round.
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


WORKLOAD = "sum(i * i % 7 for i in range(200_000))"
#: in-process measurements, run in a child whose PYTHONPATH is the tree measured (prints JSON)
CHILD = """
import gc, json, os, sys, time
import cnncalc

def best(f, k):
    t = []
    for _ in range(k):
        t0 = time.perf_counter(); f(); t.append(time.perf_counter() - t0)
    return min(t)

def work():
    return WORKLOAD

def chain(n):
    return CHAIN

w = best(work, 7)
net = cnncalc.load_spec(SPEC)
cnncalc.analyze(net)
resnet = best(lambda: cnncalc.analyze(net), 15)
nets = {}
for key, path in CONCAT.items():  # concat-heavy: fields per channel through concats, slices, shuffles
    other = cnncalc.load_spec(path)
    cnncalc.analyze(other)
    nets[key] = best(lambda: cnncalc.analyze(other), 10)
per = {}
for n, k in ((20_000, 2), (100_000, 1)):
    c = cnncalc.parse_spec(chain(n))
    gc.collect()
    per[n] = best(lambda: cnncalc.analyze(c), k) / n
    del c
    gc.collect()
w = min(w, best(work, 7))
print(json.dumps({"file": cnncalc.__file__, "work": w, "resnet": resnet, "per20k": per[20_000], "per100k": per[100_000],
                  **nets}))
"""


def child_source() -> str:
    import inspect

    chain_src = inspect.getsource(chain).split("return", 1)[1].strip()
    return (CHILD.replace("return WORKLOAD", "return " + WORKLOAD).replace("return CHAIN", "return " + chain_src)
            .replace("CONCAT.items()", repr(CONCAT) + ".items()")
            .replace("SPEC", repr(os.path.join("examples", "resnet50.yaml"))))


def clean_env(tree: str | None = None) -> dict[str, str]:
    """This environment with bytecode caching on (start-up is measured as users see it) and the
    tree measured first on the path."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    if tree:
        env["PYTHONPATH"] = tree + os.pathsep + env.get("PYTHONPATH", "")
    return env


def prev_tree(rev: str) -> tuple[str, str]:
    """`rev` checked out (detached) in a temporary worktree: (its folder, its short hash)."""
    folder = tempfile.mkdtemp(prefix="cnncalc-prev-")
    os.rmdir(folder)
    subprocess.run(["git", "worktree", "add", "--detach", "-q", folder, rev], cwd=ROOT, check=True,
                   capture_output=True)
    short = subprocess.run(["git", "rev-parse", "--short", rev], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    return folder, short


def in_child(tree: str) -> dict:
    import json

    proc = subprocess.run([sys.executable, "-c", child_source()], capture_output=True, text=True, cwd=tree,
                          env=clean_env(tree))
    if proc.returncode:
        raise SystemExit(f"the measurement failed in {tree}:\n{proc.stderr[-2000:]}")
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    if not os.path.realpath(got["file"]).startswith(os.path.realpath(tree)):
        raise SystemExit(f"measured {got['file']}, not the tree {tree}")
    return got


#: whole commands timed cold next to the bare import of their stack: key → arguments after
#: `python -m cnncalc` ({ex}: the tree's examples folder; validate's list is expanded there)
COLD = {"cold": ["analyze", "{ex}/resnet50.yaml"], "schema": ["schema"], "layers": ["layers"],
        "validate": ["validate", "{ex}/*.yaml"]}


def cold(tree: str, runs: int, cache: str) -> dict[str, float]:
    """Best of `runs` of each command of COLD in `tree`, and of the bare import of its stack
    ("stack"), interleaved. `cache`: the tree's own folder for `schema`'s cache (its first run
    writes it, as a user's first run does; trees of other sources would replace each other's)."""
    ex = os.path.join(tree, "examples")
    cmds = {}
    for key, args in COLD.items():
        cmd = [sys.executable, "-m", "cnncalc"]
        for a in args:
            a = a.format(ex=ex)
            cmd += sorted(glob.glob(a)) if "*" in a else [a]
        cmds[key] = cmd
    cmds["stack"] = [sys.executable, "-c", STACK]
    env = {**clean_env(tree), "CNNCALC_CACHE_DIR": cache}
    for c in cmds.values():
        subprocess.run(c, capture_output=True, cwd=tree, env=env)  # writes the bytecode caches once
    best: dict[str, float] = {}
    for _ in range(runs):
        for key, c in cmds.items():
            t0 = time.perf_counter()
            proc = subprocess.run(c, capture_output=True, cwd=tree, env=env)
            best[key] = min(best.get(key, float("inf")), time.perf_counter() - t0)
            if proc.returncode > (1 if key == "validate" else 0):  # validate: 1 is an invalid example
                raise SystemExit(f"{' '.join(c[:4])} … failed: {proc.stderr[-500:]!r}")
    return best


#: concat-heavy examples timed warm next to ResNet-50 (figures, no target)
CONCAT = {"densenet": os.path.join("examples", "densenet121.yaml"),
          "shufflenet": os.path.join("examples", "shufflenet_v2.yaml")}
TARGETS = (  # (key, what, target; None: a figure without one)
    ("resnet", "warm analyze, ResNet-50 ÷ workload", 0.3),
    ("densenet", "warm analyze, DenseNet-121 ÷ workload", None),
    ("shufflenet", "warm analyze, ShuffleNetV2 ÷ workload", None),
    ("per20k", "per layer, 20,000-layer chain ÷ workload", 1e-3),
    ("linear", "per layer at 100,000 ÷ at 20,000 layers", 1.25),
    ("cold", "cold `analyze resnet50.yaml` ÷ stack import", 1.5),
    ("schema", "cold `schema` ÷ stack import", 2.0),
    ("layers", "cold `layers` ÷ stack import", 2.0),
    ("validate", "cold `validate examples/*` ÷ stack import", 2.0),
)


def targets(against: str, rounds: int) -> None:
    trees = [("this tree", ROOT)]
    made = None
    caches = tempfile.mkdtemp(prefix="cnncalc-cache-")
    if against != "none":
        made, short = prev_tree(against)
        trees.append((against if short.startswith(against) else f"{against} ({short})", made))
    try:
        best: dict[str, dict[str, float]] = {name: {} for name, _ in trees}
        raw: dict[str, dict[str, float]] = {name: {} for name, _ in trees}
        for r in range(rounds):
            load = os.getloadavg()
            print(f"round {r + 1}/{rounds}: load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} "
                  f"on {os.cpu_count()} cores", flush=True)
            for i, (name, tree) in enumerate(trees):
                got = in_child(tree)
                times = cold(tree, 3, os.path.join(caches, str(i)))
                for k, v in (("work", got["work"]), ("resnet", got["resnet"]), ("per20k", got["per20k"]),
                             ("per100k", got["per100k"]), ("densenet", got["densenet"]),
                             ("shufflenet", got["shufflenet"]), *times.items()):
                    raw[name][k] = min(raw[name].get(k, v), v)
        for name, _ in trees:  # each time the best of the rounds, then their ratio: a round slowed
            x = raw[name]      # while one side ran no longer skews the ratio (#30)
            best[name] = {"resnet": x["resnet"] / x["work"], "per20k": x["per20k"] / x["work"],
                          "linear": x["per100k"] / x["per20k"],
                          "densenet": x["densenet"] / x["work"], "shufflenet": x["shufflenet"] / x["work"],
                          **{k: x[k] / x["stack"] for k in COLD}}
        print(f"\nratios of the best times of {rounds} rounds (lower is better; the workload is `{WORKLOAD}`)")
        head = f"{'':<44}{'target':>8}" + "".join(f"{name[:22]:>24}" for name, _ in trees)
        print(head + ("    × before" if len(trees) > 1 else ""))
        for key, what, goal in TARGETS:
            row = f"{what:<44}{'—' if goal is None else format(goal, '.3g'):>8}"
            for name, _ in trees:
                v = best[name][key]
                row += f"{v:>17.3g} {'' if goal is None else 'ok' if v <= goal else 'MISS':>6}"
            if len(trees) > 1:
                row += f"{best[trees[0][0]][key] / best[trees[1][0]][key]:>12.2f}"
            print(row)
        print("\nseconds behind them (best of the rounds; on this machine, at this load)")
        for name, _ in trees:
            x = raw[name]
            print(f"  {name:<22} workload {x['work'] * 1e3:.1f} ms · ResNet-50 analyze {x['resnet'] * 1e3:.2f} ms · "
                  f"DenseNet-121 {x['densenet'] * 1e3:.2f} ms · ShuffleNetV2 {x['shufflenet'] * 1e3:.2f} ms · "
                  f"chain {x['per20k'] * 1e6:.1f} µs/layer at 20k, {x['per100k'] * 1e6:.1f} at 100k · "
                  f"cold analyze {x['cold']:.3f} s, schema {x['schema']:.3f} s, layers {x['layers']:.3f} s, "
                  f"validate {x['validate']:.3f} s, stack {x['stack']:.3f} s")
    finally:
        shutil.rmtree(caches, ignore_errors=True)
        if made:
            subprocess.run(["git", "worktree", "remove", "--force", made], cwd=ROOT, capture_output=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--against", default="HEAD~", help="the commit to compare with (none: no comparison)")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds of the target measurements")
    ap.add_argument("--full", action="store_true", help="also peers, chains and DAGs, validate, output formats")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--skip-peers", action="store_true")
    args = ap.parse_args()
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores")
    targets(args.against, args.rounds)
    if args.full:
        whole_processes(args.runs, args.skip_peers)
        in_process()
        validate_many(args.runs)
        outputs()


if __name__ == "__main__":
    main()
