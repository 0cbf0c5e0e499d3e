"""Print the README's table of examples, computed by cnncalc itself.

    python scripts/examples_table.py        # tests/project/test_readme.py checks README.md holds this
"""
from __future__ import annotations

import glob
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import cnncalc  # noqa: E402
from cnncalc.render.columns import rf_num  # noqa: E402
from cnncalc.units import hbytes, shape_str  # noqa: E402


def table() -> str:
    lines = ["| example | input | layers | params | MACs | FLOPs | largest local RF | inference memory "
             "| training step (adam) |",
             "|---|---|---:|---:|---:|---:|---|---:|---:|"]
    for path in sorted(glob.glob(os.path.join(ROOT, "examples", "*.yaml"))):
        r = cnncalc.analyze(cnncalc.load_spec(path))
        t = r.totals
        # the last field that is not the whole input (global pooling makes every later one whole)
        rf = next((x.receptive_field for x in reversed(r.layers)
                   if x.receptive_field and not any(f.whole for f in x.receptive_field)), None)
        approx = "" if rf is None or all(f.exact for f in rf) else "~"
        rf_s = approx + "×".join(rf_num(f, "size") for f in rf) if rf else "–"
        rf_s = rf_s or "–"
        lines.append(f"| `{os.path.basename(path)}` | {shape_str(r.input_shape[1:])} | {len(r.layers)} | "
                     f"{t['params']:,} | {t['macs']:,} | {t['flops']:,} | {rf_s} | {hbytes(t['inference_memory_bytes'])} | "
                     f"{hbytes(t['training_memory_bytes'])} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write(table())
