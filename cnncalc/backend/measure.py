"""What torch measures of a built network: per-layer shapes, counts and FLOPs, the peak
memory of a forward pass, and forward-pass times."""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Any, Callable

from cnncalc.analysis.report import Report
from cnncalc.analysis.status import Status
from cnncalc.backend.device import out_of_memory, sync
from cnncalc.backend.kit import Kit
from cnncalc.errors import CnnError
from cnncalc.units import plain


@dataclass
class LayerCheck:
    """Analytic vs torch for one layer; a field of None was not measured."""

    name: str
    shape: tuple | None = None
    params: int | None = None
    trainable: int | None = None
    buffers: int | None = None
    flops: int | None = None
    rf: tuple | None = None          # (sizes, jumps, starts) measured by the gradient probe
    rf_status: Status | None = None  # why the field was not checked (None: probed, or no field)
    rf_whole: bool | None = None     # whether every unit reads the whole input (for whole fields)

    @property
    def rf_note(self) -> str | None:
        """The reason in words ("not probed: …" / "not checked: …"), as JSON's `rf_note` has it."""
        return None if self.rf_status is None else self.rf_status.detail

    def to_json(self) -> dict:
        return {"name": self.name, "output_shape": list(self.shape) if self.shape else None,
                "params": self.params, "trainable_params": self.trainable, "buffers": self.buffers,
                "flops": self.flops,
                "receptive_field": None if self.rf is None else {"size": [plain(x) for x in self.rf[0]],
                                                                  "stride": [plain(x) for x in self.rf[1]],
                                                                  "jump": [plain(x) for x in self.rf[1]],
                                                                  "start": [plain(x) for x in self.rf[2]]},
                "receptive_field_whole_input": self.rf_whole,
                "rf_note": self.rf_note,
                "rf_status": None if self.rf_status is None else self.rf_status.to_json()}


def measure_counts(report: Report, model, x, t) -> list[LayerCheck]:
    """One forward pass: each layer's output shape, its own (not yet counted) params and
    buffers, and its FLOPs from torch.utils.flop_counter.FlopCounterMode."""
    from torch.utils.flop_counter import FlopCounterMode

    checks = [LayerCheck(r.name) for r in report.layers]
    seen: set[int] = set()
    for i in range(len(report.layers)):
        module = model.layers[f"l{i}"]
        own = [p for p in module.parameters() if id(p) not in seen]
        bufs = [b for b in module.buffers() if id(b) not in seen]
        seen.update(id(p) for p in own)
        seen.update(id(b) for b in bufs)
        checks[i].params = sum(p.numel() for p in own)
        checks[i].trainable = sum(p.numel() for p in own if p.requires_grad)
        checks[i].buffers = sum(b.numel() for b in bufs)

    def hook(i, module, args):
        with FlopCounterMode(display=False) as counter:
            try:
                out = module(*args)
            except (RuntimeError, ValueError, TypeError, MemoryError) as exc:  # a disagreement, reported as one
                what = "runs out of memory on" if out_of_memory(exc) else "rejects this layer at"
                raise CnnError([report.problem(report.layers[i], f"torch {what} input "
                                               f"{[tuple(a.shape) for a in args]}: {exc}".splitlines()[0][:300])]) from None
        checks[i].flops = counter.get_total_flops()
        checks[i].shape = tuple(out.shape)
        return out

    model.hook = hook
    try:
        with t.torch.inference_mode():
            model(x)
    finally:
        model.hook = None
    return checks


def autocast(t, dev, amp: str | None) -> Any:
    """torch.autocast on `dev` in the low dtype of `amp` ('bf16', 'fp16'), or no context (None)."""
    import contextlib

    if amp is None:
        return contextlib.nullcontext()
    dtype = {"bf16": t.torch.bfloat16, "fp16": t.torch.float16}[amp]
    return t.torch.autocast(dev.type, dtype=dtype)


def measure_peak(model, x, t, dev, amp: str | None = None) -> Peak | None:
    """Peak bytes of activations in one inference forward pass, the input included (the
    caller holds it): the input's bytes plus the peak allocated during the pass (under
    torch.autocast with `amp`: its cached weight copies are freed when the region ends)."""
    torch = t.torch

    def run() -> None:
        with autocast(t, dev, amp):
            model(x)

    with torch.inference_mode():
        grown = _peak_during(run, t, dev)
    return None if grown is None else Peak(x.nbytes + grown.tensors, grown.workspace)


def measure_training(model, x, t, dev, optimizer: str, amp: str | None = None) -> Peak | None:
    """Peak bytes of one training step (forward, backward with an output-sized loss gradient,
    optimizer step with torch's for-loop implementation, gradients set to None), after a
    warm-up step has created the optimizer state: params + buffers + state + input + the peak
    allocated during the step. `amp`: the forward pass under torch.autocast (backward outside
    it, as torch recommends), with a GradScaler for fp16."""
    torch = t.torch
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = None
    if params:
        kw = {"sgd": dict(lr=1e-3), "momentum": dict(lr=1e-3, momentum=0.9), "adam": dict(lr=1e-3)}[optimizer]
        opt = (torch.optim.Adam if optimizer == "adam" else torch.optim.SGD)(params, foreach=False, **kw)

    class Loss(torch.autograd.Function):  # type: ignore[name-defined]
        """Σ outputs; its backward hands each output a fresh output-sized gradient (as a real
        loss does) that autograd frees once used."""

        @staticmethod
        def forward(ctx, o):
            ctx.like = (o.shape, o.dtype, o.device)
            return o.sum()

        @staticmethod
        def backward(ctx, g):
            shape, dtype, device = ctx.like
            return torch.ones(shape, dtype=dtype, device=device)

    scaler = torch.amp.GradScaler(dev.type) if amp == "fp16" and opt else None

    def step() -> None:
        with autocast(t, dev, amp):
            out = model(x)
        outs = [o for o in (out if isinstance(out, tuple) else (out,)) if o.requires_grad]
        if outs:
            loss = sum(Loss.apply(o) for o in outs)
            (scaler.scale(loss) if scaler else loss).backward()
        if opt:
            if scaler:
                scaler.step(opt)
                scaler.update()
            else:
                opt.step()
            opt.zero_grad(set_to_none=True)

    try:
        step()
        grown = _peak_during(step, t, dev)
    finally:
        model.eval()
    if grown is None:
        return None
    state = sum(v.nbytes for s in (opt.state.values() if opt else ()) for v in s.values()
                if torch.is_tensor(v) and v.dim() > 0)
    kept = {id(v): v.nbytes for v in [*model.parameters(), *model.buffers()]}
    return Peak(sum(kept.values()) + state + x.nbytes + grown.tensors, grown.workspace)


@dataclass
class Peak:
    """Peak bytes allocated while something ran, beyond what was allocated before."""

    tensors: int
    """the peak of tensors alive between torch operators (what the analytic model describes)"""
    workspace: int
    """what the allocator's peak adds: buffers an operator allocates and frees inside itself
    (im2col columns, reordered weights, cuDNN workspace)"""


def _peak_during(fn: Callable[[], Any], t, dev) -> Peak | None:
    """Peaks while fn runs, from the profiler's allocation events (CPU and CUDA); None on
    devices whose allocations the profiler does not record."""
    if dev.type not in ("cpu", "cuda"):
        return None
    from torch._C._profiler import _EventType
    from torch.profiler import ProfilerActivity, profile

    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if dev.type == "cuda" else [])
    sync(t.torch, dev)
    from cnncalc.backend.chatter import captured, current

    with captured(current(), fds=True), profile(activities=acts, profile_memory=True) as prof:  # no native log lines
        fn()
        sync(t.torch, dev)
    events: list[tuple[int, int, int, int | None]] = []  # (time, bytes ±, address, outermost operator)
    stack: list[tuple[Any, int | None]] = [(node, None) for node in prof.profiler.kineto_results.experimental_event_tree()]
    while stack:
        node, op = stack.pop()
        if op is None and node.tag == _EventType.TorchOp and node.name.startswith("aten::"):
            op = id(node)
        stack.extend((child, op) for child in node.children)
        if node.tag == _EventType.Allocation and str(node.extra_fields.device).split(":")[0] == dev.type:
            events.append((node.start_time_ns, node.extra_fields.alloc_size, node.extra_fields.ptr, op))
    events.sort(key=lambda e: e[0])
    opened: dict[int, int | None] = {}  # address -> operator that allocated it
    inside: set[int] = set()            # indices of allocations freed by the operator that made them
    born: dict[int, int] = {}
    for i, (_, size, ptr, op) in enumerate(events):
        if size > 0:
            opened[ptr], born[ptr] = op, i
        elif ptr in opened:
            if op is not None and opened.pop(ptr) == op:
                inside.update((born[ptr], i))
            born.pop(ptr, None)
    total = tensors = peak_total = peak_tensors = 0
    for i, (_, size, _, _) in enumerate(events):
        total += size
        peak_total = max(peak_total, total)
        if i not in inside:
            tensors += size
            peak_tensors = max(peak_tensors, tensors)
    return Peak(peak_tensors, peak_total - peak_tensors)


def time_forward(model: Any, x: Any, t: Kit, dev: Any, repeat: int, warmup: int,
                 tick: Callable[[], None] | None = None) -> list[float]:
    """Seconds per forward pass: warm-up, inference_mode, device sync, CUDA events on GPU."""
    torch = t.torch
    times = []
    with torch.inference_mode():
        for _ in range(warmup):
            model(x)
            if tick:
                tick()
        sync(torch, dev)
        for _ in range(repeat):
            if dev.type == "cuda":
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                model(x)
                end.record()
                end.synchronize()
                times.append(start.elapsed_time(end) / 1000)
            else:
                t0 = time.perf_counter()
                model(x)
                sync(torch, dev)
                times.append(time.perf_counter() - t0)
            if tick:
                tick()
    return times


def matmul_peak(t, dev, dtype) -> float:
    """This device's measured matmul FLOP/s in this dtype (a short calibration). On CUDA in
    float32 it runs in the math mode cuDNN convolutions use (TF32 when allowed), so the share
    of peak compares like with like."""
    torch = t.torch
    n = 8192 if dev.type == "cuda" else 4096 if dev.type == "mps" else 1024
    a = torch.randn(n, n, device=dev, dtype=dtype)
    b = torch.randn(n, n, device=dev, dtype=dtype)
    tf32 = dev.type == "cuda" and dtype == torch.float32 and torch.backends.cudnn.allow_tf32
    saved = torch.backends.cuda.matmul.allow_tf32
    try:
        torch.backends.cuda.matmul.allow_tf32 = tf32 or saved
        times = time_forward(lambda x: a @ b, a, t, dev, repeat=9, warmup=2)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = saved
    return 2 * n ** 3 / min(times)  # a peak: the best of several runs (a busy machine only slows some)


SPREAD_LIMIT = 1.5  #: p75/p25 above this: the median is not to be trusted
QUARTILE_RUNS = 4  #: quartiles (and the stability verdict drawn from them) need at least this many runs


def summarize(times: list[float], batch: int, flops: int, peak: float | None) -> dict:
    """Median, min, max, quartiles, throughput and share of peak; `spread` = p75/p25 and
    `unstable` when it exceeds SPREAD_LIMIT (a busy machine, frequency changes, too few runs).
    Quartiles come only from QUARTILE_RUNS runs or more, by the inclusive method (they never lie
    outside [min, max]); from fewer runs p25, p75 and spread are None and stability is not
    judged (`stability_judged`: false) — an interpolated quartile would be an artefact."""
    med = statistics.median(times)
    lo, hi = min(times), max(times)
    judged = len(times) >= QUARTILE_RUNS
    p25 = p75 = spread = None
    if judged:
        q = statistics.quantiles(times, n=4, method="inclusive")
        p25, p75 = min(max(q[0], lo), hi), min(max(q[2], lo), hi)
        spread = p75 / p25 if p25 > 0 else float("inf")
    return {"repeat": len(times), "median_s": med, "min_s": lo, "p25_s": p25, "p75_s": p75,
            "samples_per_s": batch / med, "achieved_flops_per_s": flops / med,
            "peak_matmul_flops_per_s": peak, "share_of_peak": (flops / med) / peak if peak else None,
            "spread": spread, "unstable": spread is not None and spread > SPREAD_LIMIT,
            "max_s": hi, "stability_judged": judged}
