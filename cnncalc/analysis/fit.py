"""Will it fit? The largest batch (or square input size) whose step fits a memory budget.

The peak of a step is the simulated one of `analysis.memory` (training: params + buffers +
optimizer state + the step's peak of activations, gradients and temporaries; inference:
params + buffers + the peak of live activations). Every tensor in that simulation is either
independent of the batch (weights, their gradients and optimizer state) or proportional to it,
so the peak is a maximum of affine functions of the batch b:

    peak(b) = max_i (a_i + c_i·b)        convex, piecewise linear, non-decreasing

Hence the line through peak(1) and peak(2) never lies above peak(b) for b ≥ 2, and

    b_max ≤ 1 + (usable − peak(1)) / (peak(2) − peak(1))

bounds the answer from above; regula falsi between a batch that fits and one that does not
then closes in on the last batch that fits in a few simulations (each one the analysis of
the network: milliseconds). The answer is always confirmed by simulating b_max and b_max + 1,
so it does not depend on the linearity argument, only its speed does.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

from cnncalc.analysis.memory import OPTIMIZER_STATES
from cnncalc.analysis.report import Report
from cnncalc.errors import CnnError
from cnncalc.spec.network import Network

MAX_BATCH = 2**31  #: larger batches are not searched (no device holds them)
MAX_SIZE = 2**16   #: larger square inputs are not searched


@dataclass
class Point:
    """One simulated step: its peak and what the peak is made of (bytes)."""

    batch: int
    size: tuple[int, ...]
    peak: int
    params_and_buffers: int
    optimizer_state: int
    saved_activations: int
    """what autograd holds at the end of the forward pass (training; 0 at inference)"""
    phase: str

    @property
    def activations_and_temporaries(self) -> int:
        """The rest of the peak: live activations, gradients and the layers' temporaries."""
        return self.peak - self.params_and_buffers - self.optimizer_state

    def to_json(self) -> dict:
        return {**asdict(self), "size": list(self.size),
                "activations_gradients_temporaries": self.activations_and_temporaries}


def point(report: Report, training: bool) -> Point:
    """The step's figures of an analysed report."""
    t = report.totals
    weights = t["param_bytes"] + t["buffer_bytes"]
    if not training:
        return Point(report.input_shape[0], tuple(report.input_shape[1:]), t["inference_memory_bytes"], weights, 0, 0,
                     "forward")
    states = t["trainable_params"] * report.bytes_per_element * OPTIMIZER_STATES[report.optimizer]
    return Point(report.input_shape[0], tuple(report.input_shape[1:]), t["training_memory_bytes"], weights, states,
                 t["training_saved_activation_bytes"], t["training_peak_phase"])


@dataclass
class Fit:
    """The answer: the largest batch (or size) that fits, its step, and the steps simulated."""

    usable: int
    best: Point | None
    """None when even the smallest does not fit"""
    over: Point | None
    """the next batch (or size), which does not fit; None when the search hit its cap"""
    table: list[Point]
    simulations: int


def _search(peak_of: Callable[[int], Point | None], usable: int, hi_cap: int) -> tuple[int, dict[int, Point | None]]:
    """The largest n in [1, hi_cap] with peak_of(n).peak ≤ usable (0 if none), assuming the
    peak is convex and non-decreasing in n; the points simulated by n."""
    seen: dict[int, Point | None] = {}

    def fits(n: int) -> bool:
        if n not in seen:
            seen[n] = peak_of(n)
        p = seen[n]
        return p is not None and p.peak <= usable

    if not fits(1):
        return 0, seen
    lo, hi = 1, None
    if hi_cap >= 2:
        p1, p2 = seen[1], (peak_of(2) if 2 not in seen else seen[2])
        seen[2] = p2
        if p1 is not None and p2 is not None and p2.peak > p1.peak:
            guess = 1 + (usable - p1.peak) // (p2.peak - p1.peak)  # the chord's bound: never below the answer
            guess = max(1, min(hi_cap, guess))
            if fits(guess):
                lo = guess
                if guess < hi_cap and not fits(guess + 1):
                    return guess, seen
            else:
                hi = guess
    while hi is None:  # grow until a batch does not fit (or the cap)
        nxt = min(hi_cap, lo * 2)
        if nxt == lo:
            return lo, seen
        if fits(nxt):
            lo = nxt
        else:
            hi = nxt
    while hi - lo > 1:  # regula falsi on the convex peak, kept inside the bracket
        a, b = seen[lo], seen[hi]
        if a is not None and b is not None and b.peak > a.peak:
            mid = lo + max(1, (usable - a.peak) * (hi - lo) // (b.peak - a.peak))
            mid = min(max(mid, lo + 1), hi - 1)
            if fits(mid) and mid + 1 < hi and not fits(mid + 1):
                return mid, seen
        else:
            mid = (lo + hi) // 2
        if fits(mid):
            lo = mid
        else:
            hi = mid
    return lo, seen


def fit_batch(net: Network, memory: int, margin: float = 0.0, training: bool = True, optimizer: str = "sgd",
              input_shape: tuple[int, ...] | None = None, dtype: str | None = None) -> Fit:
    """The largest batch whose step fits `memory` × (1 − margin) bytes."""
    from cnncalc.analysis.analyze import analyze

    usable = int(memory * (1 - margin))

    def peak_of(b: int) -> Point:
        return point(analyze(net, b, input_shape, dtype, optimizer), training)

    best, seen = _search(peak_of, usable, MAX_BATCH)
    b = 1
    while b <= best:  # the table's rows: 1, 2, 4, … up to the answer
        seen[b] = seen[b] if b in seen else peak_of(b)
        b *= 2
    table = [p for b, p in sorted(seen.items()) if p is not None and _power_of_two(b) and b <= max(best, 1)]
    return Fit(usable, seen.get(best) if best else None, seen.get(best + 1), table, len(seen))


def fit_size(net: Network, memory: int, batch: int, margin: float = 0.0, training: bool = True,
             optimizer: str = "sgd", dtype: str | None = None) -> Fit:
    """The largest square input (C × S × S; C × S for 1-D, C × S × S × S for 3-D) whose step at
    `batch` fits. Sizes the network refuses (too small, not divisible) never fit, so the search
    runs on "the first size ≥ S that the network accepts fits", which is monotone in S."""
    from cnncalc.analysis.analyze import analyze

    usable = int(memory * (1 - margin))
    channels, rank = net.header.input[0], len(net.header.input) - 1
    seen: dict[int, Point | None] = {}

    def at(s: int) -> Point | None:
        if s not in seen:
            try:
                seen[s] = point(analyze(net, batch, (channels, *(s,) * rank), dtype, optimizer), training)
            except CnnError:
                seen[s] = None
        return seen[s]

    def first_valid(s: int) -> Point | None:
        return next((p for t in range(s, min(s + 64, MAX_SIZE) + 1) if (p := at(t)) is not None), None)

    def fits(s: int) -> bool:
        p = first_valid(s)
        return p is not None and p.peak <= usable

    lo = next((s for s in (1, 2, 4, 8, 16, 32, 64, 128, 256) if first_valid(s) is not None), 0)
    if not lo or not fits(lo):
        smallest = first_valid(lo) if lo else None
        return Fit(usable, None, smallest, [smallest] if smallest else [], len(seen))
    hi = lo * 2
    while hi <= MAX_SIZE and fits(hi):
        lo, hi = hi, hi * 2
    hi = min(hi, MAX_SIZE + 1)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid)
    best = first_valid(lo)
    assert best is not None
    size = best.size[1]  # (C, S, …)
    nxt = next((p for t in range(size + 1, min(size + 65, MAX_SIZE) + 1) if (p := at(t)) is not None), None)
    table = [p for t, p in sorted(seen.items()) if p is not None and _power_of_two(t) and t <= size * 2]
    return Fit(usable, best, nxt, table, len(seen))


def _power_of_two(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0
