"""Each hostile file must end in a located error in under a second and 200 MB of memory.

    python benchmarks/hostile.py      # one `cnncalc validate` process per file
"""
from __future__ import annotations

import glob
import os
import resource
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main() -> int:
    worst_t = worst_m = 0.0
    files = sorted(glob.glob(os.path.join(ROOT, "tests", "hostile", "*.yaml")))
    print(f"{'file':<28}{'exit':>5}{'seconds':>10}{'max RSS MB':>12}")
    for path in files:
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        t0 = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "cnncalc", "validate", path], cwd=ROOT,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - t0
        rss = usage.ru_maxrss / 1024
        worst_t, worst_m = max(worst_t, elapsed), max(worst_m, rss)
        del before
        print(f"{os.path.basename(path):<28}{os.waitstatus_to_exitcode(status):>5}{elapsed:>10.3f}{rss:>12.1f}")
    ok = worst_t < 1.0 and worst_m < 200
    print(f"worst: {worst_t:.3f} s, {worst_m:.1f} MB ({'within' if ok else 'OUTSIDE'} 1 s / 200 MB)")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
