"""A report's network as an nn.Module, built from each layer class's `build` rule."""
from __future__ import annotations

from typing import Any

from cnncalc.analysis.chunks import chunk_groups
from cnncalc.analysis.report import Report
from cnncalc.backend.device import out_of_memory
from cnncalc.backend.kit import Kit, kit
from cnncalc.errors import CnnError


def build_model(report: Report, t: Kit | None = None, checkpoint: list[tuple[int, ...]] | None = None) -> Any:
    """The network as an nn.Module that runs the layers in file order (branches, merges,
    sharing); module `l{i}` is row i. A layer torch refuses to build is a located error.
    `checkpoint`: segments (row indices, contiguous) run through torch.utils.checkpoint
    (use_reentrant=False) whenever gradients are on."""
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
    graph = _graph_class(t)(report, modules)
    graph.segments = {seg[0]: seg for seg in checkpoint or [] if seg}
    return graph


def _graph_class(t: Kit) -> Any:
    nn, torch = t.nn, t.torch

    class Graph(nn.Module):  # type: ignore[name-defined]
        """Executes the layers in file order, freeing each tensor after its last consumer;
        `hook(index, module, inputs) -> output` wraps every call (per-layer counting)."""

        def __init__(self, report: Report, modules: dict[str, Any]):
            super().__init__()
            kept = [r for r in report.layers if r.name in modules]  # the probe keeps a row's ancestors only
            self.rows = [(r.index, r.name, list(r.inputs)) for r in kept]
            self.chunks = chunk_groups(kept)  # each spec's chunk (split) runs as one torch.chunk (torch.split)
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
            self.segments: dict[int, tuple[int, ...]] = {}

        def _segment(self, seg: tuple[int, ...], values: dict) -> None:
            """Rows `seg` through torch.utils.checkpoint: it keeps the tensors they read from outside,
            and returns those the rest of the network reads."""
            import torch.utils.checkpoint as tc

            members = set(seg)
            rows = [r for r in self.rows if r[0] in members]
            inside = {name for _, name, _ in rows}
            reads = list(dict.fromkeys(n for _, _, ins in rows for n in ins if n not in inside))
            end = seg[-1]
            leaves = [name for _, name, _ in rows if self.last.get(name, -1) > end]

            last = {n: i for i, _, ins in rows for n in ins}  # each tensor's last reader in the segment
            keep = set(leaves)

            def run(*args):
                # frees each tensor after its last reader, as a module's forward does with its locals:
                # the recomputation in backward runs this again, and what it holds is held then too
                local = dict(zip(reads, args))
                for i, name, ins in rows:
                    if i in self.chunks:  # one torch.chunk, as in forward
                        self._chunk(i, ins[0], local)
                    if name not in local:
                        local[name] = self.layers[f"l{i}"](*[local[n] for n in ins])
                    for n in [*ins, name]:
                        if n not in keep and last.get(n, -1) <= i:
                            local.pop(n, None)
                return tuple(local[n] for n in leaves)

            outs = tc.checkpoint(run, *[values[n] for n in reads], use_reentrant=False)
            values.update(zip(leaves, outs))
            for n in reads:
                if self.last.get(n, -1) <= end:
                    values.pop(n, None)

        def _chunk(self, i: int, source: str, values: dict) -> None:
            """The pieces of the spec's chunk (split) at row i, made by one torch.chunk
            (torch.split), into `values` (only there: each is freed after its last reader, as
            any tensor)."""
            chunks, pieces = self.chunks[i]
            made = (torch.chunk(values[source], chunks, 1) if isinstance(chunks, int)
                    else torch.split(values[source], chunks, 1))
            values.update((n, made[k]) for k, n in pieces if k < len(made))

        def forward(self, x, stop: int | None = None):
            values = {"input": x}
            skip = -1
            whole = self.hook is None and stop is None  # a pass as the spec names it (not counted layer by layer)
            for i, name, ins in self.rows:
                if i <= skip:
                    continue
                if i in self.segments and whole and torch.is_grad_enabled():
                    self._segment(self.segments[i], values)
                    skip = self.segments[i][-1]
                    continue
                if whole and i in self.chunks:  # a spec's chunk: one torch.chunk makes the pieces of this row
                    self._chunk(i, ins[0], values)  # and the ones after it
                if not (whole and name in values):  # (a piece its chunk made)
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
