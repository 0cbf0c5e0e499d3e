"""A report's network as an nn.Module, built from each layer class's `build` rule."""
from __future__ import annotations

from typing import Any

from cnncalc.analysis.report import Report
from cnncalc.backend.device import out_of_memory
from cnncalc.backend.kit import Kit, kit
from cnncalc.errors import CnnError


def build_model(report: Report, t: Kit | None = None) -> Any:
    """The network as an nn.Module that runs the layers in file order (branches, merges,
    sharing); module `l{i}` is row i. A layer torch refuses to build is a located error."""
    t = t or kit()
    modules: dict[str, Any] = {}
    for row in report.layers:
        try:
            modules[row.name] = modules[row.shared_with] if row.shared_with else row.layer.build(row.ctx, t)
        except (RuntimeError, ValueError, TypeError, MemoryError) as exc:  # torch refuses what the analysis accepted
            if out_of_memory(exc):  # not a refusal: this machine has no room for the weights
                raise CnnError([report.problem(row, "out of memory while torch allocates this layer's weights "
                                                    f"({len(report.layers)} layers, {report.totals['params']:,} "
                                                    "params in all): free memory or use a larger machine")]) from None
            raise CnnError([report.problem(row, f"torch cannot build this layer: {exc}".splitlines()[0][:300])]) from None
        if not row.layer.trainable:
            for p in modules[row.name].parameters():
                p.requires_grad_(False)
    return _graph_class(t)(report, modules)


def _graph_class(t: Kit) -> Any:
    nn = t.nn

    class Graph(nn.Module):  # type: ignore[name-defined]
        """Executes the layers in file order, freeing each tensor after its last consumer;
        `hook(index, module, inputs) -> output` wraps every call (per-layer counting)."""

        def __init__(self, report: Report, modules: dict[str, Any]):
            super().__init__()
            kept = [r for r in report.layers if r.name in modules]  # the probe keeps a row's ancestors only
            self.rows = [(r.index, r.name, list(r.inputs)) for r in kept]
            self.layers = nn.ModuleDict({f"l{r.index}": modules[r.name] for r in kept})
            self.outputs = list(report.outputs)
            last: dict[str, int] = {}
            for i, _, ins in self.rows:
                for n in ins:
                    last[n] = i
            for n in self.outputs:
                last[n] = len(report.layers)
            self.last = last
            self.hook = None

        def forward(self, x, stop: int | None = None):
            values = {"input": x}
            for i, name, ins in self.rows:
                module = self.layers[f"l{i}"]
                args = [values[n] for n in ins]
                values[name] = self.hook(i, module, args) if self.hook else module(*args)
                if stop is not None and i == stop:
                    return values[name]
                for n in ins:
                    if self.last.get(n, -1) <= i:
                        values.pop(n, None)
                if name not in self.last:  # never read (a chunk's unused piece): dropped at once
                    values.pop(name, None)
            outs = [values[n] for n in self.outputs]
            return outs[0] if len(outs) == 1 else tuple(outs)

    return Graph
