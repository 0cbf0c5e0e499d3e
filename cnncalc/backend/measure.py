"""What torch measures of a built network: per-layer shapes, counts and FLOPs, the peak
memory of a forward pass, and forward-pass times."""
from __future__ import annotations

import contextlib
import os
import statistics
import time
from dataclasses import dataclass
from typing import Any, Callable

from ..analyzer import Report
from ..arith import plain
from ..errors import CnnError
from .device import sync


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
    rf_note: str | None = None
    rf_whole: bool | None = None     # whether every unit reads the whole input (for whole fields)

    def to_json(self) -> dict:
        return {"name": self.name, "output_shape": list(self.shape) if self.shape else None,
                "params": self.params, "trainable_params": self.trainable, "buffers": self.buffers,
                "flops": self.flops,
                "receptive_field": None if self.rf is None else {"size": [plain(x) for x in self.rf[0]],
                                                                  "stride": [plain(x) for x in self.rf[1]],
                                                                  "jump": [plain(x) for x in self.rf[1]],
                                                                  "start": [plain(x) for x in self.rf[2]]},
                "receptive_field_whole_input": self.rf_whole,
                "rf_note": self.rf_note}


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
            except (RuntimeError, ValueError, TypeError) as exc:  # a disagreement, reported as one
                raise CnnError([report.problem(report.layers[i], f"torch rejects this layer at input "
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


def measure_peak(model, x, t, dev) -> int | None:
    """Peak bytes allocated by one inference forward pass beyond what was live before it."""
    torch = t.torch
    if dev.type == "cuda":
        sync(torch, dev)
        torch.cuda.reset_peak_memory_stats(dev)
        base = torch.cuda.memory_allocated(dev)
        with torch.inference_mode():
            out = model(x)
        sync(torch, dev)
        del out
        return torch.cuda.max_memory_allocated(dev) - base
    if dev.type == "cpu":
        from torch.profiler import ProfilerActivity, profile

        with _quiet_fds(), torch.inference_mode(), profile(activities=[ProfilerActivity.CPU],
                                                           profile_memory=True) as prof:
            model(x)
        cur = peak = 0
        for e in sorted(prof.events(), key=lambda e: e.time_range.start):
            cur += e.self_cpu_memory_usage  # allocations at their op, frees as '[memory]' events
            peak = max(peak, cur)
        return peak or None
    return None


@contextlib.contextmanager
def _quiet_fds():
    """Silence the profiler's native log lines (written straight to fds 1 and 2)."""
    saved = [os.dup(1), os.dup(2)]
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        for fd in (1, 2):
            os.dup2(null, fd)
        yield
    finally:
        for fd, old in zip((1, 2), saved):
            os.dup2(old, fd)
            os.close(old)
        os.close(null)


def time_forward(model: Any, x: Any, t: Any, dev: Any, repeat: int, warmup: int,
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


def summarize(times: list[float], batch: int, flops: int, peak: float | None) -> dict:
    """Median, quartiles, throughput and share of peak; `spread` = p75/p25 and `unstable`
    when it exceeds SPREAD_LIMIT (a busy machine, frequency changes, too few runs)."""
    q = statistics.quantiles(times, n=4) if len(times) >= 2 else [times[0]] * 3
    med = statistics.median(times)
    spread = q[2] / q[0] if q[0] > 0 else float("inf")
    return {"repeat": len(times), "median_s": med, "min_s": min(times), "p25_s": q[0], "p75_s": q[2],
            "samples_per_s": batch / med, "achieved_flops_per_s": flops / med,
            "peak_matmul_flops_per_s": peak, "share_of_peak": (flops / med) / peak if peak else None,
            "spread": spread, "unstable": spread > SPREAD_LIMIT}
