"""A network analysed over a grid of input sizes and batches."""
from __future__ import annotations

from typing import Any

from cnncalc.analysis.analyze import analyze
from cnncalc.errors import CnnError
from cnncalc.spec.network import Network
from cnncalc.units import plain

MAX_PAIRS = 1_000  #: input sizes × batches in one sweep
#: layer analyses (pairs × layers) in one sweep: about 0.1-0.2 ms each, so the worst accepted
#: sweep finishes in a few seconds (10,000 pairs of resnet50 took minutes before this cap)
MAX_WORK = 25_000


def work(net: Network, pairs: int) -> str | None:
    """Why a sweep of `pairs` points over `net` is refused before it starts (None: it is not)."""
    if pairs > MAX_PAIRS:
        return f"{pairs:,} input sizes × batches; at most {MAX_PAIRS:,} are swept"
    layers = max(1, len(net.nodes))
    if pairs * layers > MAX_WORK:
        return (f"{pairs:,} input sizes × batches of {layers:,} layers is {pairs * layers:,} layer analyses; at most "
                f"{MAX_WORK:,} are swept (at most {max(1, MAX_WORK // layers):,} points for this network)")
    return None


def sweep(net: Network, inputs: list[tuple[int, ...]], batches: list[int], dtype: str | None = None) -> list[dict]:
    """Totals at every input size × batch; a size where the network breaks says where. A grid
    beyond `MAX_PAIRS` points or `MAX_WORK` layer analyses is refused before any is done."""
    why = work(net, len(inputs) * len(batches))
    if why:
        raise CnnError.single(f"sweep: {why}", exit_code=2)
    rows = []
    for shape in inputs:
        for b in batches:
            entry: dict[str, Any] = {"input": list(shape), "batch": b}
            try:
                r = analyze(net, b, shape, dtype)
            except CnnError as exc:
                p = exc.problems[0]
                entry.update(ok=False, error=f"{p.layer}: {p.message}" if p.layer else p.message)
            else:
                t = r.totals
                rf = next((x.receptive_field for x in reversed(r.layers) if x.receptive_field), None)
                entry.update(ok=True, output_shape=list(r.layers[-1].output_shape), params=t["params"],
                             macs=t["macs"], flops=t["flops"], inference_memory_bytes=t["inference_memory_bytes"],
                             training_memory_bytes=t["training_memory_bytes"],
                             receptive_field=[plain(f.size) for f in rf] if rf else None,
                             receptive_field_exact=all(f.exact for f in rf) if rf else None)
            rows.append(entry)
    return rows
