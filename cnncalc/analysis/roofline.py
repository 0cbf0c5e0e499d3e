"""The roofline: each layer's analytic work against a device's measured peaks (no torch here).

Bytes a layer moves at inference, at the least (the README's convention):
    bytes = (Σ input elements + output elements + weight elements + buffer elements) · dtype bytes
every input read once, the output written once, every weight and buffer read once (a view or an
identity moves nothing; `num_batches_tracked` is not read). A layer's lower-bound time is
    roofline_s = max(FLOPs / peak FLOP/s, bytes / peak bytes/s),   FLOPs = 2·MACs
and the predicted time max(roofline_s, overhead_s): no call is faster than an empty one. Memory
has two levels: the first `cache_bytes` of a layer's traffic may stream at the cache's copy rate,
the rest needs the large-copy (DRAM/HBM) rate, so the bound stays a lower bound for small layers
that live in cache and tells the truth about large ones.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from math import prod
from typing import Any

from cnncalc.analysis.diff import read_json
from cnncalc.errors import CnnError
from cnncalc.safe import visible

BOUNDS = ("compute", "memory", "overhead")


@dataclass(frozen=True)
class Peaks:
    """A device's measured limits (`cnncalc calibrate`): the best dense-kernel FLOP/s in `dtype`,
    the copy rate (bytes read + written per second) of a large copy and of a cache-sized one
    (working sets up to `cache_bytes`), and the time of an empty module call."""

    flops_per_s: float
    bytes_per_s: float
    overhead_s: float
    device: str = ""
    device_type: str = ""
    dtype: str = "float32"
    torch: str = ""
    cache_bytes_per_s: float = 0.0
    cache_bytes: int = 0
    allocator_overhead_share: float | None = None
    """the device allocator's reserved bytes over the allocated ones at a reference run's peak, minus 1
    (rounding, cached blocks); None when not measured (`fit --peaks` then assumes its margin)"""
    workspace_bytes: int | None = None
    """memory libraries take outside torch's tensors (cuDNN/cuBLAS workspaces); None when not measured"""
    context_bytes: int | None = None
    """device memory outside torch's allocator (the CUDA context); None when not measured"""

    def memory_s(self, moved: int) -> float:
        """The least time to move `moved` bytes: up to cache_bytes at the cache rate, the rest at
        the large-copy rate."""
        fast = min(moved, self.cache_bytes) if self.cache_bytes_per_s > self.bytes_per_s else 0
        return fast / (self.cache_bytes_per_s or 1) + (moved - fast) / self.bytes_per_s

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def load(cls, path: str) -> Peaks:
        """Read a peaks file; a located message for anything that is not one."""
        from cnncalc.spec.source import read_bytes

        raw = read_bytes(path, 1 << 20, "peaks files")
        try:
            data = read_json(raw)
            if not isinstance(data, dict):
                raise ValueError("expected a JSON object")
            flops, rate, overhead = (_number(data, k, *RANGES[k]) for k in ("flops_per_s", "bytes_per_s", "overhead_s"))
            cache_rate = _number(data, "cache_bytes_per_s", *RANGES["cache_bytes_per_s"], zero=True)
            cache = _number(data, "cache_bytes", *RANGES["cache_bytes"], zero=True)
            if cache != int(cache):
                raise ValueError(f"'cache_bytes' must be a whole number of bytes, received {cache}")
            device, device_type, dtype, torch = (visible(str(data.get(k, ""))[:100])
                                                 for k in ("device", "device_type", "dtype", "torch"))
            share, work, context = (_optional(data, k, *RANGES[k])
                                    for k in ("allocator_overhead_share", "workspace_bytes", "context_bytes"))
            for key, v in (("workspace_bytes", work), ("context_bytes", context)):
                if v is not None and v != int(v):
                    raise ValueError(f"'{key}' must be a whole number of bytes, received {v}")
            return cls(flops, rate, overhead, device, device_type, dtype, torch, cache_rate, int(cache), share,
                       None if work is None else int(work), None if context is None else int(context))
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            raise CnnError.single(f"not a cnncalc peaks file ({visible(exc)})"[:300]
                                  + "; write one with `cnncalc calibrate`", file=path) from None


#: the accepted range of each number in a peaks file: [low, high] (0 also for the cache's two, which
#: mean "no cache level"). Within them every predicted time is finite: FLOPs and bytes of a report
#: stay far below 10^300, divided by at least 1 per second.
RANGES: dict[str, tuple[float, float]] = {
    "flops_per_s": (1.0, 1e30), "bytes_per_s": (1.0, 1e30), "overhead_s": (1e-12, 1e3),
    "cache_bytes_per_s": (1.0, 1e30), "cache_bytes": (1.0, 2.0**60),
    "allocator_overhead_share": (0.0, 10.0), "workspace_bytes": (0.0, 2.0**60), "context_bytes": (0.0, 2.0**60)}


def _optional(data: dict, key: str, low: float, high: float) -> float | None:
    """An optional number of a peaks file: None when absent or null."""
    return None if data.get(key) is None else _number(data, key, low, high)


def _number(data: dict, key: str, low: float, high: float, zero: bool = False) -> float:
    v = data.get(key, 0 if zero else None)
    ok = isinstance(v, (int, float)) and not isinstance(v, bool) and ((zero and v == 0) or low <= v <= high)
    if not ok:
        what = f"0 or from {low:g} to {high:g}" if zero else f"from {low:g} to {high:g}"
        raise ValueError(f"'{key}' must be a number {what}, received {visible(str(v)[:40])}")
    return float(v)  # type: ignore[arg-type]  # a number: checked above


def layer_bytes(row: Any, b: int) -> int:
    """The bytes a layer must move at inference (see the module docstring)."""
    if not row.layer.moves_data():
        return 0
    elements = sum(prod(s) for s in row.ctx.ins) + prod(row.output_shape)
    elements += sum(prod(s) for s in row.weights.values())
    elements += sum(prod(s) for k, s in row.buffer_shapes.items() if k != "num_batches_tracked")
    return elements * b


@dataclass(frozen=True)
class Bound:
    compute_s: float
    memory_s: float
    overhead_s: float

    @property
    def roofline_s(self) -> float:
        return max(self.compute_s, self.memory_s)

    @property
    def predicted_s(self) -> float:
        return max(self.roofline_s, self.overhead_s)

    @property
    def bound(self) -> str:
        """What limits the layer: 'overhead' when the device could do its work faster than an
        empty call, else whichever of compute and memory takes longer."""
        if self.roofline_s < self.overhead_s:
            return "overhead"
        return "compute" if self.compute_s >= self.memory_s else "memory"


def bound(row: Any, b: int, peaks: Peaks) -> Bound:
    return Bound(row.flops / peaks.flops_per_s, peaks.memory_s(layer_bytes(row, b)), peaks.overhead_s)


def predict(report: Any, peaks: Peaks) -> dict[str, Any]:
    """Per layer and in total, the predicted lower-bound time (JSON: `predicted_s`)."""
    b = report.bytes_per_element
    layers = [bound(r, b, peaks) for r in report.layers]
    return {"layers": [{"predicted_s": x.predicted_s, "roofline_s": x.roofline_s, "bound": x.bound} for x in layers],
            "total_s": sum(x.predicted_s for x in layers), "peaks": peaks.to_json()}
