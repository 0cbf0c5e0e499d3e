"""A network analysed over a grid of input sizes and batches."""
from __future__ import annotations

from typing import Any

from cnncalc.analysis.analyze import analyze
from cnncalc.errors import CnnError
from cnncalc.units import plain


def sweep(net, inputs: list[tuple[int, ...]], batches: list[int], dtype: str | None = None) -> list[dict]:
    """Totals at every input size × batch; a size where the network breaks says where."""
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
