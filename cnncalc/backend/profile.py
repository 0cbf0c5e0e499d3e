"""Where a forward pass spends its time: the device's peaks (`cnncalc calibrate`) and a per-layer
profile against each layer's roofline bound (`verify --profile`)."""
from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass
from typing import Any

from cnncalc.analysis.report import Report
from cnncalc.analysis.roofline import Peaks, bound, layer_bytes
from cnncalc.backend.device import available_memory, device_name, sync
from cnncalc.backend.kit import Kit
from cnncalc.backend.measure import matmul_peak, time_forward

RANGE = "cnncalc.layer."  #: the record_function range around layer i is RANGE + str(i)
LAUNCH_BOUND = 0.5  #: operators busy less than this share of the forward pass: launch-bound


def copy_bandwidth(t: Kit, dev: Any, dtype: Any) -> tuple[float, float, int]:
    """Copy rates (bytes read + written per second, best of 5): (a large copy's, the best
    cache-sized one's, the largest working set copied at least half that fast). Only copies that
    fit in an eighth of the free memory are tried."""
    torch = t.torch
    room = available_memory(torch, dev)
    mib = [16, 64, 1024] if dev.type == "cuda" else [1, 4, 8, 16, 32, 64, 256]
    rates = {}
    for size in (m << 20 for m in mib if room is None or (m << 20) * 8 <= room):
        n = size // torch.empty((), dtype=dtype).element_size()
        src, dst = torch.ones(n, device=dev, dtype=dtype), torch.empty(n, device=dev, dtype=dtype)
        times = []
        for _ in range(7):
            sync(torch, dev)
            t0 = time.perf_counter()
            dst.copy_(src)
            sync(torch, dev)
            times.append(time.perf_counter() - t0)
        rates[2 * size] = 2 * size / min(times[2:])
        del src, dst
    large = rates[max(rates)]
    fast = max(rates.values())
    cache = max(ws for ws, r in rates.items() if r >= fast / 2)
    return large, fast, cache


def call_overhead(t: Kit, dev: Any, dtype: Any, calls: int = 2000) -> float:
    """Seconds per call of a module doing nothing worth measuring (relu of one element): the
    Python, dispatch and, on a GPU, launch cost every layer pays at least."""
    torch = t.torch
    m, x = torch.nn.ReLU(), torch.zeros(1, device=dev, dtype=dtype)
    best = float("inf")
    with torch.inference_mode():
        for _ in range(50):
            m(x)
        for _ in range(3):
            sync(torch, dev)
            t0 = time.perf_counter()
            for _ in range(calls):
                m(x)
            sync(torch, dev)
            best = min(best, (time.perf_counter() - t0) / calls)
    return best


def compute_peak(t: Kit, dev: Any, dtype: Any, matmul: float | None = None) -> float:
    """The best FLOP/s of the device's dense kernels: the matmul peak and 3×3 and 3×3×3
    convolutions (on a 2-core CPU oneDNN's convolutions run up to ~35% faster than its sgemm:
    with the matmul peak alone, the roofline of such convs was beaten)."""
    torch = t.torch
    big = dev.type == "cuda"
    best = matmul if matmul is not None else matmul_peak(t, dev, dtype)
    for conv, c, size, batch in ((torch.nn.Conv2d, 256, (28, 28), 8 if big else 1),
                                 (torch.nn.Conv3d, 256, (8, 28, 28), 4 if big else 1)):
        m = conv(c, c, 3, padding=1, bias=False).to(device=dev, dtype=dtype)
        x = torch.randn(batch, c, *size, device=dev, dtype=dtype)
        flops = 2 * batch * c * c * 3 ** len(size) * math.prod(size)
        times = time_forward(m, x, t, dev, repeat=5, warmup=2)
        best = max(best, flops / min(times))
        del m, x
    return best


EFFICIENCY_LIMIT = 1.1  #: a layer measured faster than its roofline ÷ this is a measurement problem, not a result


def measure_peaks(t: Kit, dev: Any, dtype: str) -> Peaks:
    torch = t.torch
    tdtype = getattr(torch, dtype)
    large, fast, cache = copy_bandwidth(t, dev, tdtype)
    return Peaks(compute_peak(t, dev, tdtype), large, call_overhead(t, dev, tdtype), device_name(torch, dev),
                 dev.type, dtype, torch.__version__, fast, cache)


@dataclass(frozen=True)
class ForwardPass:
    """The pass a profile times: the analysed network, its torch model and input, on `dev`."""

    report: Report
    model: Any
    """the built model (backend/build.py), whose `hook` attribute wraps each layer's call"""
    x: Any
    t: Kit
    dev: Any


def profile_forward(fp: ForwardPass, peaks: Peaks, forward_s: float, repeat: int = 5) -> dict[str, Any]:
    """Per layer: its time (CUDA: the device time of the kernels its record_function range
    launched; CPU: the median wall time from the end of the previous layer's call to the end of
    its own, so the executor's fetching and freeing around a call count too; the profiler's
    own cost per event would inflate small layers), share, achieved FLOP/s and bytes/s, roofline
    bound, efficiency (bound ÷ measured) and what bounds it; and the time in torch operators
    (CPU) or kernels (CUDA) against the pass's wall time `forward_s` (on CPU measured again here
    without hooks, in passes alternating with the timed ones)."""
    cuda = fp.dev.type == "cuda"
    spent: list[float] = []
    if not cuda:
        passes = max(repeat, min(200, int(1.0 / max(forward_s, 1e-6))))  # about a second of passes, at least `repeat`
        spent, forward_s = _wall_per_layer(fp, passes)
    ranges, operators = _profiled_ranges(fp, repeat)
    if cuda:
        spent = ranges
    total = sum(spent)
    kernel_s = total if cuda else sum(operators)
    layers = _layer_rows(fp.report, spent, operators, peaks)
    unreliable = judge(layers, kernel_s, forward_s, "kernels" if cuda else "torch operators")
    return {"forward_s": forward_s, "kernel_s": kernel_s, "layers_s": total, "unreliable": unreliable,
            "efficiency_limit": EFFICIENCY_LIMIT,
            "launch_bound": kernel_s < LAUNCH_BOUND * forward_s, "peaks": peaks.to_json(),
            "roofline_s": sum(x["roofline_s"] for x in layers), "repeat": repeat,
            "timer": "kernel time per layer (CUDA)" if cuda else "wall time per layer call (CPU)", "layers": layers}


def _wall_per_layer(fp: ForwardPass, passes: int) -> tuple[list[float], float]:
    """CPU: each layer's median wall time per call (from the end of the previous call) over
    `passes` hooked passes, and the median plain pass, the two alternating so that drift affects
    both alike (the first two of each are warm-up)."""
    model, x = fp.model, fp.x
    walls: list[list[float]] = [[] for _ in fp.report.layers]
    last = [0.0]  # when the previous layer's call ended (or the pass began)

    def timed(i: int, module: Any, args: list) -> Any:
        out = module(*args)
        now = time.perf_counter()
        walls[i].append(now - last[0])
        last[0] = now
        return out

    plain = []
    try:
        with fp.t.torch.inference_mode():
            for _ in range(passes + 2):
                model.hook = timed
                last[0] = time.perf_counter()
                model(x)
                model.hook = None
                t0 = time.perf_counter()
                model(x)
                plain.append(time.perf_counter() - t0)
    finally:
        model.hook = None
    return [statistics.median(w[2:]) for w in walls], statistics.median(plain[2:])


def _profiled_ranges(fp: ForwardPass, repeat: int) -> tuple[list[float], list[float]]:
    """Per layer and pass, under torch.profiler over `repeat` passes: the time of its
    record_function range (CUDA: device time; CPU: CPU time) and of the torch operators it called."""
    torch, model, x, dev = fp.t.torch, fp.model, fp.x, fp.dev
    from torch.profiler import ProfilerActivity, profile, record_function

    from cnncalc.backend.chatter import captured, current

    cuda = dev.type == "cuda"

    def ranged(i: int, module: Any, args: list) -> Any:
        with record_function(f"{RANGE}{i}"):
            return module(*args)

    try:
        with torch.inference_mode():
            model.hook = ranged
            for _ in range(2):
                model(x)
            sync(torch, dev)
            activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
            with captured(current(), fds=True), profile(activities=activities) as prof:  # no USDT lines
                for _ in range(repeat):
                    model(x)
                sync(torch, dev)
    finally:
        model.hook = None
    n = len(fp.report.layers)
    ranges, operators = [0.0] * n, [0.0] * n
    for e in prof.events():
        if e.name.startswith(RANGE):
            ranges[int(e.name[len(RANGE):])] += (e.device_time_total if cuda else e.cpu_time_total) * 1e-6 / repeat
        elif e.cpu_parent is not None and e.cpu_parent.name.startswith(RANGE):  # an operator the layer called
            operators[int(e.cpu_parent.name[len(RANGE):])] += e.cpu_time_total * 1e-6 / repeat
    return ranges, operators


def _layer_rows(report: Report, spent: list[float], operators: list[float], peaks: Peaks) -> list[dict[str, Any]]:
    """Each layer's measured time set against its work (FLOPs, bytes moved) and its roofline bound."""
    total = sum(spent)
    b = report.bytes_per_element
    layers = []
    for row, s, op in zip(report.layers, spent, operators):
        k = bound(row, b, peaks)
        moved = layer_bytes(row, b)
        layers.append({"name": row.name, "type": row.type, "time_s": s, "share": s / total if total else 0.0,
                       "flops_per_s": row.flops / s if s else None, "bytes_per_s": moved / s if s else None,
                       "roofline_s": k.roofline_s, "efficiency": k.roofline_s / s if s else None,
                       "bound": k.bound, "flops": row.flops, "bytes": moved, "operator_s": op})
    return layers


def judge(layers: list[dict[str, Any]], kernel_s: float, forward_s: float, what: str) -> list[str]:
    """Why the profile's figures cannot be trusted: a layer faster than its roofline allows
    (efficiency above EFFICIENCY_LIMIT; each such layer gets `implausible`: true), or operators
    adding up to more than the pass. A measurement problem, never a result."""
    for x in layers:
        x["implausible"] = x["efficiency"] is not None and x["efficiency"] > EFFICIENCY_LIMIT
    unreliable = []
    over = [str(x["name"]) for x in layers if x["implausible"]]
    if over:
        unreliable.append(f"{len(over)} layer{'s' if len(over) != 1 else ''} beat{'s' if len(over) == 1 else ''} "
                          f"the roofline by more than {EFFICIENCY_LIMIT - 1:.0%} ({', '.join(over[:5])}"
                          f"{', …' if len(over) > 5 else ''})")
    if forward_s > 0 and kernel_s > EFFICIENCY_LIMIT * forward_s:
        unreliable.append(f"the {what} add up to {kernel_s / forward_s:.0%} of the pass (operators timed on "
                          "several threads, or the pass timed at a quieter moment)")
    return unreliable


def cuda_graph_time(model: Any, x: Any, t: Kit, repeat: int) -> float:
    """Median seconds of one replay of the forward pass captured as a CUDA graph: the GPU's
    time without the CPU's launch overhead."""
    torch = t.torch
    with torch.inference_mode():
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(3):
                model(x)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            model(x)
        times = []
        for _ in range(max(repeat, 5)):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            graph.replay()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end) / 1000)
    return statistics.median(times)
