"""`cnncalc import` on the torchvision-faithful models of tests/reference_models.py and on every
example's exported module: how long an import takes (trace, spec writing and the proof against
torch), how long the written spec is against the hand-written example, and whether its totals are
the example's.

    python benchmarks/imports.py
    python benchmarks/imports.py --split [N] [--against REV]

`--split` (issue #30): where the import of torchvision's ResNet-50 (written out below, as
torchvision builds it) spends its time, each run in a fresh Python process (bytecode caches on),
the three kinds of run interleaved round by round, N rounds (default 5), best of N per stage:
`import torch` alone, the model built, the reference "one traced pass" torch itself offers for
shapes (`torch.fx.symbolic_trace`, then `ShapeProp` on fake tensors), and
`import_model(..., prove=False)` and `prove=True` split into their stages (`stages=`: fx trace,
fake pass, read, write, analyse, counts; build and run with prove). It prints the ratios
import_model(prove=False) ÷ (torch import + one traced pass), both in-process and end to end
(cnncalc's own import included), and prove=True ÷ prove=False, with the load (os.getloadavg).
`--against REV` also runs REV (checked out in a temporary git worktree, removed at the end; it
must have `import_model(stages=)`, 2026-12 on) in the same rounds, interleaved, for a before/after.

(torchvision is not loadable on this machine: its wheels are CUDA builds; these models follow it.)
"""
from __future__ import annotations

import glob
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [ROOT, os.path.join(ROOT, "tests")] + [p for p in sys.path if os.path.abspath(p or ".") != HERE]
# (benchmarks/profile.py would shadow the standard library's profile, which torch's fake tensors import)

KEYS = ("params", "buffers", "macs")


def lines(text: str) -> int:
    return sum(1 for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#"))


def row(label: str, model, shape, example: str) -> None:
    import cnncalc
    from cnncalc.interop.torch_import import import_model

    ours = cnncalc.analyze(cnncalc.load_spec(example))
    start = time.perf_counter()
    text, _ = import_model(model, shape, label, [])
    took = time.perf_counter() - start
    got = cnncalc.analyze(cnncalc.parse_spec(text))
    same = all(got.totals[k] == ours.totals[k] for k in KEYS)
    print(f"{label:34s} {took:6.2f} s  {lines(text):4d} lines (hand-written {lines(open(example).read()):3d})  "
          f"{text.count('repeat:'):2d} repeats  totals {'= example' if same else 'DIFFER'}")


def main() -> None:
    import reference_models as R

    import cnncalc
    from cnncalc.interop.torch_export import to_torch

    print("torchvision-faithful models (module tree kept: blocks and repeat)")
    for make, name in (("ShuffleNetV2", "shufflenet_v2"), ("MobileNetV3Large", "mobilenet_v3_large"),
                       ("DenseNet", "densenet121")):
        row(make, getattr(R, make)(), (3, 224, 224), os.path.join(ROOT, "examples", f"{name}.yaml"))
    print("exported examples (flat ModuleDicts: written layer by layer)")
    for path in sorted(glob.glob(os.path.join(ROOT, "examples", "*.yaml"))):
        report = cnncalc.analyze(cnncalc.load_spec(path))
        namespace = {"__name__": "exported"}
        exec(compile(to_torch(report), path, "exec"), namespace)  # noqa: S102
        row(os.path.basename(path), namespace["build"](), report.input_shape[1:], path)


# ---- --split: where an import's time goes (#30) ------------------------------------------------
def resnet50():
    """torchvision.models.resnet50() (Bottleneck, ResNet._make_layer), line for line, untrained."""
    import torch
    from torch import nn

    class Bottleneck(nn.Module):
        expansion = 4

        def __init__(self, inplanes, planes, stride=1, downsample=None):
            super().__init__()
            self.conv1, self.bn1 = nn.Conv2d(inplanes, planes, 1, bias=False), nn.BatchNorm2d(planes)
            self.conv2, self.bn2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False), nn.BatchNorm2d(planes)
            self.conv3, self.bn3 = nn.Conv2d(planes, planes * 4, 1, bias=False), nn.BatchNorm2d(planes * 4)
            self.relu = nn.ReLU(inplace=True)
            self.downsample, self.stride = downsample, stride

        def forward(self, x):
            identity = x
            out = self.relu(self.bn1(self.conv1(x)))
            out = self.relu(self.bn2(self.conv2(out)))
            out = self.bn3(self.conv3(out))
            if self.downsample is not None:
                identity = self.downsample(x)
            out += identity
            return self.relu(out)

    class ResNet(nn.Module):
        def __init__(self, layers=(3, 4, 6, 3), num_classes=1000):
            super().__init__()
            self.inplanes = 64
            self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
            self.bn1, self.relu, self.maxpool = nn.BatchNorm2d(64), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1)
            self.layer1 = self._make_layer(64, layers[0])
            self.layer2 = self._make_layer(128, layers[1], 2)
            self.layer3 = self._make_layer(256, layers[2], 2)
            self.layer4 = self._make_layer(512, layers[3], 2)
            self.avgpool, self.fc = nn.AdaptiveAvgPool2d((1, 1)), nn.Linear(2048, num_classes)

        def _make_layer(self, planes, blocks, stride=1):
            down = None
            if stride != 1 or self.inplanes != planes * 4:
                down = nn.Sequential(nn.Conv2d(self.inplanes, planes * 4, 1, stride, bias=False),
                                     nn.BatchNorm2d(planes * 4))
            layers = [Bottleneck(self.inplanes, planes, stride, down)]
            self.inplanes = planes * 4
            layers += [Bottleneck(self.inplanes, planes) for _ in range(1, blocks)]
            return nn.Sequential(*layers)

        def forward(self, x):
            x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
            x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
            return self.fc(torch.flatten(self.avgpool(x), 1))

    return ResNet()


SHAPE = (3, 224, 224)
KINDS = ("traced pass", "prove=False", "prove=True")


def child(kind: str) -> None:
    """One fresh process's run of `kind`: its seconds per stage, as JSON on stdout."""
    out: dict[str, float] = {}
    t0 = time.perf_counter()
    import torch
    out["import torch"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    model = resnet50().eval()
    out["build model"] = time.perf_counter() - t0
    if kind == "traced pass":
        t0 = time.perf_counter()
        from torch._subclasses.fake_tensor import FakeTensorMode
        from torch.fx.passes.shape_prop import ShapeProp

        gm = torch.fx.symbolic_trace(model)
        out["fx trace"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        with torch.no_grad(), FakeTensorMode(allow_non_fake_inputs=True):
            ShapeProp(gm).propagate(torch.empty(2, *SHAPE))
        out["fake pass"] = time.perf_counter() - t0
    else:
        t0 = time.perf_counter()
        from cnncalc.interop.torch_import import import_model
        out["import cnncalc"] = time.perf_counter() - t0
        assert sys.modules[import_model.__module__].__file__.startswith(ROOT), "measured another tree's cnncalc"
        stages: dict[str, float] = {}
        t0 = time.perf_counter()
        import_model(model, SHAPE, "resnet50", [], prove=kind == "prove=True", stages=stages)
        out["import_model"] = time.perf_counter() - t0
        out.update(stages)
    print(json.dumps(out))


def split(rounds: int, against: str | None) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPATH")}
    trees = {"this tree": ROOT}
    if against:
        import tempfile

        folder = tempfile.mkdtemp(prefix="cnncalc-imports-")
        os.rmdir(folder)
        subprocess.run(["git", "worktree", "add", "--detach", "-q", folder, against], cwd=ROOT, check=True,
                       capture_output=True)
        trees = {against: folder, "this tree": ROOT}
    try:
        runs = measure(trees, rounds, env)
    finally:
        if against:
            subprocess.run(["git", "worktree", "remove", "--force", trees[against]], cwd=ROOT, capture_output=True)
    for label, (loads, per_kind) in runs.items():
        report(label, rounds, loads, per_kind)


def measure(trees: dict[str, str], rounds: int, env: dict[str, str]) -> dict[str, tuple[list[float], dict]]:
    """Each tree's runs of each kind, one fresh process each, interleaved round by round."""
    for tree in trees.values():  # the bytecode caches written once
        subprocess.run([sys.executable, os.path.join(tree, "benchmarks", "imports.py"), "--child", "prove=True"],
                       check=True, capture_output=True, env=env, cwd=tree)
    runs: dict[str, tuple[list[float], dict]] = {label: ([], {k: [] for k in KINDS}) for label in trees}
    for _ in range(rounds):
        for label, tree in trees.items():
            runs[label][0].append(os.getloadavg()[0])
            for kind in KINDS:
                proc = subprocess.run([sys.executable, os.path.join(tree, "benchmarks", "imports.py"), "--child", kind],
                                      capture_output=True, text=True, env=env, cwd=tree)
                if proc.returncode:
                    sys.exit(f"{label}, {kind}: {proc.stderr[-2000:]}")
                runs[label][1][kind].append(json.loads(proc.stdout.strip().splitlines()[-1]))
    return runs


def report(label: str, rounds: int, loads: list[float], runs: dict) -> None:
    best = {k: {s: min(r[s] for r in v) for s in v[0]} for k, v in runs.items()}
    print(f"{label}: ResNet-50 (torchvision's, written out) at {'x'.join(map(str, SHAPE))}, fresh process per run, "
          f"best of {rounds}, interleaved; load (1 min) {min(loads):.2f}–{max(loads):.2f} on {os.cpu_count()} CPUs")
    for kind in KINDS:
        print(f"  {kind}")
        for stage, sec in best[kind].items():
            print(f"    {stage:16s} {sec:7.3f} s")
    tp, pf, pt = best["traced pass"], best["prove=False"], best["prove=True"]
    one = tp["fx trace"] + tp["fake pass"]
    print(f"  one traced pass (fx trace + ShapeProp on fake tensors): {one:.3f} s")
    print(f"  import_model(prove=False) ÷ one traced pass:                         {pf['import_model'] / one:5.2f}")
    print(f"  (import cnncalc + import_model(prove=False)) ÷ one traced pass:      "
          f"{(pf['import cnncalc'] + pf['import_model']) / one:5.2f}")
    print(f"  torch import + cnncalc import + import_model(prove=False) ÷ torch import + one traced pass: "
          f"{(pf['import torch'] + pf['import cnncalc'] + pf['import_model']) / (tp['import torch'] + one):5.2f}")
    print(f"  import_model prove=True ÷ prove=False:                               "
          f"{pt['import_model'] / pf['import_model']:5.2f}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        child(sys.argv[2])
    elif sys.argv[1:2] == ["--split"]:
        args = sys.argv[2:]
        rev = args[args.index("--against") + 1] if "--against" in args else None
        numbers = [a for a in args if a.isdigit()]
        split(int(numbers[0]) if numbers else 5, rev)
    else:
        main()
