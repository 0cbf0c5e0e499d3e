"""`cnncalc import` on the torchvision-faithful models of tests/reference_models.py and on every
example's exported module: how long an import takes (trace, spec writing and the proof against
torch), how long the written spec is against the hand-written example, and whether its totals are
the example's.

    python benchmarks/imports.py

(torchvision is not loadable on this machine: its wheels are CUDA builds; these models follow it.)
"""
from __future__ import annotations

import glob
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [ROOT, os.path.join(ROOT, "tests")] + [p for p in sys.path if os.path.abspath(p or ".") != HERE]
# (benchmarks/profile.py would shadow the standard library's profile, which torch's fake tensors import)

import cnncalc  # noqa: E402
from cnncalc.interop.torch_export import to_torch  # noqa: E402
from cnncalc.interop.torch_import import import_model  # noqa: E402

KEYS = ("params", "buffers", "macs")


def lines(text: str) -> int:
    return sum(1 for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#"))


def row(label: str, model, shape, example: str) -> None:
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


if __name__ == "__main__":
    main()
