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
from dataclasses import asdict, dataclass, field, replace
from math import prod

from cnncalc.analysis.memory import OPTIMIZER_STATES, training_memory
from cnncalc.analysis.precision import Amp, apply_amp
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
    shard: dict[str, int] | None = field(default=None)
    """sharded (per GPU): the parts of the peak by name (bytes), see `sharded_point`"""
    checkpoint: dict | None = field(default=None)
    """with checkpointing: its segments and the recomputation's cost (analysis.checkpoint)"""

    @property
    def activations_and_temporaries(self) -> int:
        """The rest of the peak: live activations, gradients and the layers' temporaries."""
        return self.peak - self.params_and_buffers - self.optimizer_state

    def to_json(self) -> dict:
        out = {**asdict(self), "size": list(self.size),
               "activations_gradients_temporaries": self.activations_and_temporaries}
        if self.shard is None:
            del out["shard"]
        if self.checkpoint is None:
            del out["checkpoint"]
        return out


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


SHARDS = ("zero1", "zero2", "zero3", "fsdp")
MASTER_BYTES = 4  #: DeepSpeed's master weights, gradient partition and optimizer state: float32


@dataclass(frozen=True)
class Sharding:
    """Data parallelism over `world` GPUs with sharded model states: DeepSpeed ZeRO stage 1, 2 or 3
    (deepspeed/runtime/zero/config.py: the defaults below, in elements) or PyTorch FSDP FULL_SHARD."""

    stage: str
    world: int
    reduce_bucket: int = 500_000_000
    """reduce_bucket_size: ZeRO's contiguous gradient buffer (`ipg` bucket), allocated whole"""
    allgather_bucket: int = 500_000_000
    """allgather_bucket_size: only splits ZeRO-1/2's gather of the updated partitions, which
    writes into the flat parameters in place: no bytes of its own"""
    prefetch_bucket: int = 50_000_000
    """stage3_prefetch_bucket_size: parameters ZeRO-3 gathers ahead of use"""
    max_live: int = 1_000_000_000
    """stage3_max_live_parameters: gathered parameters resident at once, at most"""
    persistence_threshold: int = 100_000
    """stage3_param_persistence_threshold: ZeRO-3 keeps tensors of at most this many elements whole"""
    overlap_comm: bool | None = None
    """DeepSpeed's overlap_comm; None = its default (True for stage 3 only). ZeRO-1/2 then
    double the reduce bucket"""

    def to_json(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Counts:
    """What sharding divides, from a report (elements, except buffer_bytes)."""

    trainable: int
    frozen: int
    buffer_bytes: int
    largest_layer: int
    """params of the largest layer (DeepSpeed's largest_layer_params: one module's own params)"""
    largest_layer_trainable: int
    persistent: int
    """params in tensors of ≤ persistence_threshold elements (ZeRO-3 does not partition them)"""
    units: tuple[int, ...]
    """FSDP units: params of each innermost block use"""
    units_trainable: tuple[int, ...]
    root: int
    """FSDP's root unit: params of the layers outside every block"""


def counts(report: Report, threshold: int = 100_000) -> Counts:
    """The counts of `report`'s network; a shared weight is counted once, at its owner."""
    own = [r for r in report.layers if r.shared_with is None]
    units: dict[str, list[int]] = {}
    root = 0
    for r in own:
        if r.blocks:
            u = units.setdefault(r.blocks[-1], [0, 0])
            u[0] += r.params
            u[1] += r.trainable_params
        else:
            root += r.params
    big = max(own, key=lambda r: r.params, default=None)
    trainable = sum(r.trainable_params for r in own)
    return Counts(trainable, sum(r.params for r in own) - trainable, report.totals["buffer_bytes"],
                  big.params if big else 0, big.trainable_params if big else 0,
                  sum(n for r in own for s in r.weights.values() if (n := prod(s)) <= threshold),
                  tuple(u[0] for u in units.values()), tuple(u[1] for u in units.values()), root)


def _part(n: int, world: int) -> int:
    """One rank's share of n elements: ⌈n / world⌉ (partitions are padded to equal size)."""
    return -(-n // world)


def sharded_states(c: Counts, w: int, k: int, sh: Sharding) -> dict[str, int]:
    """Per-GPU bytes of the model states and communication buffers of `sh` (README "Will it fit?":
    each line is DeepSpeed's or FSDP's own tensor). w: bytes of the working dtype; k: optimizer
    state tensors per parameter (sgd 0, momentum 1, adam 2). Terms named *_fb exist during the
    forward and backward passes only, *_step at the optimizer step only."""
    N, P, Q = sh.world, c.trainable, c.frozen
    part = _part(P, N)
    if sh.stage in ("zero1", "zero2"):
        overlap = bool(sh.overlap_comm)
        out = {"params": w * (P + Q),                    # the working copy stays whole (bit16_groups_flat)
               "master_params": MASTER_BYTES * part,     # fp32 clone of this rank's partition
               "optimizer_state": MASTER_BYTES * k * part,
               "gradient_partition": w * part,           # grads_in_partition (contiguous_gradients)
               "reduce_bucket": w * sh.reduce_bucket * (2 if overlap else 1),
               "allgather_bucket": 0,                    # in place into the flat params
               "fp32_gradient_step": MASTER_BYTES * part}  # the partition's gradient cast for the step
        if sh.stage == "zero1":
            out["gradients_fb"] = w * P                  # autograd's .grad, whole until the step
        else:
            out["layer_gradient_fb"] = w * c.largest_layer_trainable  # made, then copied into the bucket
        return out
    if sh.stage == "zero3":
        spread = P + Q - c.persistent
        return {"params": w * (_part(spread, N) + c.persistent),
                "master_params": 0 if w == MASTER_BYTES else MASTER_BYTES * part,  # fp32 params are their own master
                "optimizer_state": MASTER_BYTES * k * part,
                "gradient_partition": MASTER_BYTES * part,  # grad_partitions_flat_buffer (fp32, as the estimator)
                "reduce_bucket": w * sh.reduce_bucket,       # one ipg buffer per dtype
                "gathered_params_fb": w * min(spread, sh.max_live, c.largest_layer + sh.prefetch_bucket),
                "layer_gradient_fb": w * c.largest_layer_trainable}
    if sh.stage == "fsdp":
        units = [*c.units, c.root]
        biggest = max(c.units, default=0) if N > 1 else 0  # at world size 1 FSDP runs NO_SHARD: nothing gathered
        return {"params": w * sum(_part(u, N) for u in units),  # each unit's flat parameter, padded, sharded
                "master_params": 0,
                "optimizer_state": w * k * sum(_part(u, N) for u in (*c.units_trainable, P - sum(c.units_trainable))),
                "gradient_partition": w * sum(_part(u, N) for u in (*c.units_trainable, P - sum(c.units_trainable))),
                "root_params_fb": w * c.root if N > 1 else 0,  # the root unit is not resharded after forward
                "gathered_params_fb": 2 * w * biggest,   # the unit in use and the one prefetched
                "layer_gradient_fb": w * max(c.units_trainable, default=0) if N > 1 else 0,  # a unit's whole
                # gradient before its reduce-scatter
                "optimizer_temporaries_step": 3 * w * _part(max(units), N) if k == 2 else 0}  # Adam's √v, √v/c
                # of the largest flat shard while the previous one's is referenced: at most 3 shards
    raise ValueError(f"unknown sharding {sh.stage!r}")


def _activations(report: Report, whole_gradients: bool, amp: Amp | None, segs: list | None) -> tuple[int, int]:
    """The step's peak of activations, their gradients and the layers' temporaries (the
    simulation of `analysis.memory`, sgd, no model states), with the rows rewritten in order:
    as autocast runs them (`amp`: casts, cached weight copies, low-precision weight gradients),
    then without weight gradients (ZeRO-2/3, FSDP: each is moved into a bucket or reduce-scattered
    as it is made; the rows keep needing gradients, so the same tensors are saved), then with the
    segments `segs` checkpointed. ZeRO-1 keeps the whole gradients (`whole_gradients`).
    Returns the peak and what autograd holds at the end of the forward pass."""
    from cnncalc.analysis.precision import FULL, amp_rows

    rows = report.layers
    b = report.bytes_per_element
    if amp is not None:
        rows, b = amp_rows(rows, report.outputs, amp, training=True).rows, FULL
    if not whole_gradients:
        rows = [replace(r, trainable_params=0, shared_with=r.shared_with or r.name) if r.trainable_params else r
                for r in rows]
    if segs:
        from cnncalc.analysis.checkpoint import Segment, checkpoint_rows

        if amp is not None:  # the autocast rows of each segment (casts among them): by the block use they lie in
            segs = [Segment(s.use, tuple(r.index for r in rows if s.use in r.blocks)) for s in segs]
        rows = checkpoint_rows(rows, segs, b)
    step = training_memory(rows, report.outputs, prod(report.input_shape) * b, b, "sgd", 0)
    return step.peak, step.saved


def sharded_point(report: Report, sh: Sharding, amp: Amp | None = None, segs: list | None = None) -> Point:
    """One GPU's step under `sh` at the report's (per-GPU) batch: the larger of
      forward/backward = states + buffers + the *_fb terms + activations (the simulation's peak,
                         with all weight gradients for ZeRO-1, without them otherwise)
      optimizer step   = states + buffers + the *_step terms + the input
    where states = params + master_params + optimizer_state + gradient_partition + reduce_bucket.
    `amp` (ZeRO-1/2 only: their working copy of the parameters stays whole on every GPU, as
    autocast's weight cache assumes): the activations as torch.autocast runs them, and the
    GradScaler's state with fp16. `segs`: those block uses checkpointed (analysis.checkpoint)."""
    t = report.totals
    w, k = report.bytes_per_element, OPTIMIZER_STATES[report.optimizer]
    if amp is not None and sh.stage not in ("zero1", "zero2"):
        raise ValueError(f"--amp with --shard {sh.stage} is not modelled: it gathers each unit's parameters for "
                         "its use and frees them after, so which low-precision copies autocast keeps depends on "
                         "the framework's mixed-precision settings (ZeRO-1/2 keep the parameters whole: modelled)")
    if amp is not None and report.dtype != "float32":
        raise ValueError("autocast runs a float32 model: leave out --dtype (or give float32) with --amp")
    c = counts(report, sh.persistence_threshold)
    parts = sharded_states(c, w, k, sh)
    if amp is not None and amp.dtype == "fp16":
        from cnncalc.analysis.precision import SCALER_BYTES

        parts["grad_scaler"] = SCALER_BYTES
    acts, saved = _activations(report, sh.stage == "zero1", amp, segs)
    if sh.stage == "zero1":  # whole gradients as in one process: the simulation as it is (its sgd step at most)
        acts -= w * c.trainable  # counted in gradients_fb
    states = sum(v for n, v in parts.items() if not n.endswith(("_fb", "_step"))) + c.buffer_bytes
    fb = states + sum(v for n, v in parts.items() if n.endswith("_fb")) + acts
    step = states + sum(v for n, v in parts.items() if n.endswith("_step")) + t["input_bytes"]
    peak, phase = (fb, "forward/backward") if fb >= step else (step, "optimizer step")
    shard = {**parts, "buffers": c.buffer_bytes, "activations_fb": acts, "forward_backward": fb, "optimizer_step": step}
    return Point(report.input_shape[0], tuple(report.input_shape[1:]), peak,
                 parts["params"] + c.buffer_bytes, parts["master_params"] + parts["optimizer_state"],
                 saved, phase, shard)


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


def usable_bytes(memory: int, margin: float = 0.0, overhead_share: float = 0.0, workspace: int = 0) -> int:
    """What tensors may take of `memory`: a share `margin` kept free, then the libraries'
    `workspace` bytes (libraries' workspaces and the CUDA context), and the allocator's overhead
    as a share of the tensors' peak:
        peak · (1 + overhead_share) + workspace ≤ memory · (1 − margin)"""
    return max(0, int((memory * (1 - margin) - workspace) / (1 + overhead_share)))


def _step(report: Report, training: bool, shard: Sharding | None, amp: Amp | None = None,
          checkpoint: list[str] | str | None = None) -> Point:
    if shard is not None and training:
        if checkpoint is None:
            return sharded_point(report, shard, amp)
        from cnncalc.analysis.checkpoint import segments

        segs = segments(report, checkpoint)
        p = sharded_point(report, shard, amp, segs)
        p.checkpoint = _recompute(report, checkpoint, segs)
        return p
    if checkpoint is not None and training:
        from cnncalc.analysis.checkpoint import apply_checkpoint

        apply_checkpoint(report, checkpoint, amp, inference=False)
        p = point(report, training)
        p.checkpoint = {k: v for k, v in report.extra["checkpoint"].items() if k != "without"}
        return p
    if amp is not None:
        apply_amp(report, amp, (not training, training))
    return point(report, training)


def _recompute(report: Report, uses: list[str] | str, segs: list) -> dict:
    """The checkpointed segments and the recomputation's cost (as `apply_checkpoint` reports them)."""
    from cnncalc.analysis.checkpoint import ALL, recompute_cost

    return {"uses": uses if uses == ALL else list(uses), **recompute_cost(report, segs)}


def fit_batch(net: Network, memory: int, margin: float = 0.0, training: bool = True, optimizer: str = "sgd",
              input_shape: tuple[int, ...] | None = None, dtype: str | None = None,
              shard: Sharding | None = None, overhead_share: float = 0.0, workspace: int = 0,
              amp: Amp | None = None, checkpoint: list[str] | str | None = None) -> Fit:
    """The largest batch (per GPU when sharded) whose step fits (see `usable_bytes`); `amp`: the
    step as torch.autocast runs it (analysis.precision)."""
    from cnncalc.analysis.analyze import analyze

    usable = usable_bytes(memory, margin, overhead_share, workspace)

    def peak_of(b: int) -> Point:
        return _step(analyze(net, b, input_shape, dtype, optimizer), training, shard, amp, checkpoint)

    best, seen = _search(peak_of, usable, MAX_BATCH)
    b = 1
    while b <= best:  # the table's rows: 1, 2, 4, … up to the answer
        seen[b] = seen[b] if b in seen else peak_of(b)
        b *= 2
    table = [p for b, p in sorted(seen.items()) if p is not None and _power_of_two(b) and b <= max(best, 1)]
    return Fit(usable, seen.get(best) if best else None, seen.get(best + 1), table, len(seen))


def fit_size(net: Network, memory: int, batch: int, margin: float = 0.0, training: bool = True,
             optimizer: str = "sgd", dtype: str | None = None, shard: Sharding | None = None,
             overhead_share: float = 0.0, workspace: int = 0, amp: Amp | None = None,
             checkpoint: list[str] | str | None = None) -> Fit:
    """The largest square input (C × S × S; C × S for 1-D, C × S × S × S for 3-D) whose step at
    `batch` fits. Sizes the network refuses (too small, not divisible) never fit, so the search
    runs on "the first size ≥ S that the network accepts fits", which is monotone in S."""
    from cnncalc.analysis.analyze import analyze

    usable = usable_bytes(memory, margin, overhead_share, workspace)
    channels, rank = net.header.input[0], len(net.header.input) - 1
    seen: dict[int, Point | None] = {}

    def at(s: int) -> Point | None:
        if s not in seen:
            try:
                seen[s] = _step(analyze(net, batch, (channels, *(s,) * rank), dtype, optimizer), training, shard,
                                amp, checkpoint)
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
