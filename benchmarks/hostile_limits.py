"""The worst input each of `diff`'s limits accepts, and the first it refuses: seconds and peak
memory of one `cnncalc diff` process per case (issue #25 §4: a limit is checked before the work,
and the worst accepted input finishes in seconds).

    python benchmarks/hostile_limits.py            # every case
    python benchmarks/hostile_limits.py layers     # the cases whose name contains 'layers'

Reports are built here at the limits read from cnncalc.analysis.diff (16 MiB, 40,000 layers,
640,000 arrays and objects, 1,600,000 values): the worst accepted case for each limit, both
sides of the diff at once, then a case just past each limit.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from typing import Iterator

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from cnncalc.analysis import diff as D  # noqa: E402

LENET = os.path.join(ROOT, "examples", "lenet5.yaml")


def report(layers: list, totals: dict | None = None, **extra) -> dict:
    return {"name": "worst", "input": {"shape": [1, 3, 8, 8]}, "layers": layers,
            "totals": totals or {"params": 1, "macs": 1}, **extra}


def row(name: str, i: int, long: int = 0, axes: int = 4, digits: int = 0, inputs: list | None = None) -> dict:
    big = int("9" * digits) if digits else i
    return {"name": name + "x" * long, "type": "conv2d", "inputs": inputs if inputs is not None else ["input"],
            "output_shape": [big] * axes, "params": big, "macs": big, "activation_bytes": i,
            "receptive_field": {"size": [i % 7 + 1] * min(axes, D.MAX_AXES)}}


def fill_to(doc: dict, key: str, unit: str, budget: int, count: int) -> str:
    """The report's JSON with `count` copies of `unit` (each a value) under `key`, within `budget` bytes."""
    base = json.dumps({**doc, key: []}, separators=(",", ":"))
    body = ",".join([unit] * count)
    text = base[:-1] + f',"{key}x":[{body}]}}'
    assert len(text) <= budget, (len(text), budget)
    return text


def compact(doc: dict) -> str:
    return json.dumps(doc, separators=(",", ":"))


def cases() -> Iterator[tuple[str, str, str, int]]:
    """(name, old report text, new report text, expected exit) — the old side differs in every layer."""
    L, C, V, B = D.MAX_REPORT_LAYERS, D.MAX_REPORT_CONTAINERS, D.MAX_REPORT_VALUES, D.MAX_REPORT_BYTES
    out: list[tuple[str, str, str, int]] = []
    # the most layer rows, every one changed (each a printed line), names as long as the bytes allow
    n = L
    for long in (0, 400):
        old = compact(report([row(f"l{i}", i, long) for i in range(n)]))
        new = compact(report([row(f"l{i}", i + 1, long) for i in range(n)]))
        out.append((f"layers: {n:,} rows all changed, names +{long}", old, new, 0))
    # every row reads every earlier one's output (the upstream check: each source compared once)
    fan = [row(f"l{i}", i, inputs=[f"l{j}" for j in range(max(0, i - 40), i)]) for i in range(L // 40)]
    out.append(("layers: 1,000 rows of 40 inputs each", compact(report(fan)), compact(report(
        [dict(r, params=r["params"] + 1) for r in fan])), 0))
    # the most arrays (empty ones: 56 bytes each in memory for 3 bytes of text), and the most values
    out.append(("containers: flat [] at the limit", fill_to(report([]), "x", "[]", B, C - 8),
                fill_to(report([]), "x", "[]", B, C - 8), 0))
    out.append(("values: ints at the limit", fill_to(report([]), "x", "7", B, V - 16),
                fill_to(report([]), "x", "7", B, V - 16), 0))
    out.append(("values: strings at the limit", fill_to(report([]), "x", '"abcdefg"', B, V - 16),
                fill_to(report([]), "x", '"abcdefg"', B, V - 16), 0))
    # the largest integers (300 digits) in every total and layer number
    big = int("9" * D.MAX_DIGITS)
    rows = [row(f"l{i}", i, digits=D.MAX_DIGITS) for i in range(B // (D.MAX_DIGITS * 8))]
    totals = {m: big for m in D.METRICS}
    out.append((f"digits: {len(rows):,} rows of 300-digit ints", compact(report(rows, totals)),
                compact(report(rows, {m: 1 for m in D.METRICS})), 0))  # --fail-on-increase: it shrank
    # just past each limit: refused before the work
    pad = "x" * (B + 1)
    out.append(("bytes: one byte over", compact(report([], pad=pad[: B])), compact(report([])), 1))
    out.append(("containers: one over", fill_to(report([]), "x", "[]", B, C + 1), compact(report([])), 1))
    out.append(("values: one over", fill_to(report([]), "x", "7", B, V + 1), compact(report([])), 1))
    out.append(("layers: one over", compact(report([{"name": f"{i}"} for i in range(L + 1)])), compact(report([])), 1))
    out.append(("axes: one over", compact(report([row("a", 1, axes=D.MAX_AXES + 1)])), compact(report([])), 1))
    yield from out


def write(tmp: str, argv: list[str]) -> None:
    """Each case's two files and an index (in a child process: a child forked from a parent
    holding the reports would report their memory as its own)."""
    index = []
    for i, (name, old, new, expect) in enumerate(cases()):
        if argv and not any(a in name for a in argv):
            continue
        for side, text in (("old", old), ("new", new)):
            with open(os.path.join(tmp, f"{i}.{side}.json"), "w") as fh:
                fh.write(text)
        index.append((i, name, expect, max(len(old), len(new))))
    with open(os.path.join(tmp, "index.json"), "w") as fh:
        json.dump(index, fh)


def main(argv: list[str]) -> int:
    if argv[:1] == ["--write"]:
        write(argv[1], argv[2:])
        return 0
    worst_t = worst_m = 0.0
    bad = 0
    print(f"{'case':<52}{'MiB':>6}{'exit':>5}{'seconds':>9}{'max RSS MB':>12}")
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, __file__, "--write", tmp, *argv], check=True)
        with open(os.path.join(tmp, "index.json")) as fh:
            index = json.load(fh)
        for i, name, expect, size in index:
            a, b = os.path.join(tmp, f"{i}.old.json"), os.path.join(tmp, f"{i}.new.json")
            for fmt in ("table", "json"):
                args = [sys.executable, "-m", "cnncalc", "diff", a, b, "-f", fmt]
                if name.startswith("digits"):
                    args += ["--fail-on-increase", "macs=5%,params=0"]
                t0 = time.perf_counter()
                proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                err = proc.stderr.read() if proc.stderr else b""
                _, status, usage = os.wait4(proc.pid, 0)
                elapsed, rss = time.perf_counter() - t0, usage.ru_maxrss / 1024
                code = os.waitstatus_to_exitcode(status)
                worst_t, worst_m = max(worst_t, elapsed), max(worst_m, rss)
                ok = code == expect and b"Traceback" not in err
                bad += not ok
                flag = "" if ok else "  UNEXPECTED: " + err.decode()[-300:]
                print(f"{name + ' -f ' + fmt:<52}{size / 2**20:>6.1f}{code:>5}{elapsed:>9.2f}{rss:>12.0f}{flag}",
                      flush=True)
    print(f"worst: {worst_t:.2f} s, {worst_m:.0f} MB; {bad} unexpected")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
