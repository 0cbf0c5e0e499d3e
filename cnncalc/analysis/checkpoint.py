"""Activation checkpointing (``--checkpoint USE[,USE…]|all``) as torch.utils.checkpoint runs it
(``use_reentrant=False``, early stop on: torch's defaults).

A checkpointed segment is the rows of one block use (`all`: each top-level block use). In the
forward pass its layers save nothing for backward; the checkpoint keeps the segment's inputs
(the tensors it reads from outside) until the segment's backward is done. When backward reaches
the segment, its forward is run again (the CPU generator's state, kept at the checkpoint so
that dropout draws the same, 5,056 bytes, freed then too) and every tensor its layers would have saved is made anew;
each is freed once the last layer that saved it has run its backward. So, at the backward call
of a row r in the segment, beyond the simulation of `analysis.memory`:

    recomputed(r) = Σ the storages saved by the segment's rows j ≤ r (each once; the segment's
                    inputs are already held) + their new tensors (statistics, masks)

The recomputation runs on the first unpack, at the backward call of the segment's last row
that saves anything (the trigger row), and, early stop on, ends as that row saves: at that
moment, before the trigger row's backward has made its inputs' and weights' gradients,

    recompute = max over rows j ≤ trigger (recomputed(j) + the tensors the recomputation has
                made that nothing saves and a later row of the segment reads, row j's output
                among them + row j's temporaries) + a second generator state (fork_rng keeps
                the one of the moment while the segment's is set)

so the trigger row's backward call holds max(recomputed(trigger) + its own backward, recompute −
the gradients it makes) beyond the simulation. The tensors a segment makes are held only until
their last reader in it, as a module's forward drops its locals (torchvision's blocks reassign
`out`): the checkpoint holds nothing else while it recomputes. Measured exact (to 8 bytes) on
segments of 1, 2 and 3 residual blocks (tests/analysis/test_amp_checkpoint.py).

Cost: the recomputation runs the segment's forward again: its FLOPs (2·MACs per conv/linear
row), against a step of 3·F (forward F; backward 2·F: input and weight gradients, as many MACs
each as the forward) plus the recomputation.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cnncalc.analysis.precision import with_fields
from cnncalc.layers import Ctx, Saved

if TYPE_CHECKING:
    from cnncalc.analysis.precision import Amp
    from cnncalc.analysis.report import LayerReport, Report

ALL = "all"
RNG_STATE_BYTES = 5056  #: the CPU generator's state (torch.get_rng_state()), kept per segment (preserve_rng_state)


@dataclass(frozen=True)
class Segment:
    """One checkpointed block use: its name and its rows' indices (contiguous, in order)."""

    use: str
    rows: tuple[int, ...]


def block_uses(report: Report) -> tuple[list[str], list[str]]:
    """The top-level block uses and every block use (nested ones too), in order."""
    top: dict[str, None] = {}
    every: dict[str, None] = {}
    for r in report.layers:
        if r.blocks:
            top[r.blocks[0]] = None
            for b in r.blocks:
                every[b] = None
    return list(top), list(every)


def segments(report: Report, uses: list[str] | str) -> list[Segment]:
    """The segments of `uses` ('all': every top-level block use); ValueError naming an unknown use
    or two that overlap."""
    top, every = block_uses(report)
    names = top if uses == ALL else list(dict.fromkeys(uses))
    if not names:
        raise ValueError("this network has no block uses to checkpoint" if uses == ALL else "no block use named")
    unknown = [u for u in names if u not in every]
    if unknown:
        shown = ", ".join(every[:12]) + (", …" if len(every) > 12 else "")
        raise ValueError(f"no block use named {unknown[0]!r} (the block uses: {shown or 'none'})")
    out = []
    taken: dict[int, str] = {}
    for u in names:
        rows = tuple(r.index for r in report.layers if u in r.blocks)
        clash = next((taken[i] for i in rows if i in taken), None)
        if clash is not None:
            raise ValueError(f"block uses {clash!r} and {u!r} overlap: checkpoint one of them")
        taken.update((i, u) for i in rows)
        out.append(Segment(u, rows))
    return out


class _Checkpointed:
    """A layer inside a checkpointed segment: saves only the segment's inputs it reads (the first
    row also the RNG state); its backward call also holds what the recomputation made and is not
    yet freed."""

    def __init__(self, layer: Any, keep: tuple[int, ...], recomputed: int, state: int = 0):
        self.layer, self.keep, self.recomputed, self.state = layer, keep, recomputed, state

    def __getattr__(self, name: str) -> Any:
        return getattr(self.layer, name)

    def aliases(self, training: bool) -> bool:
        return bool(self.layer.aliases(training))

    def scratch(self, ctx: Ctx, b: int) -> int:
        return int(self.layer.scratch(ctx, b))

    def saved(self, ctx: Ctx, grads: tuple[bool, ...]) -> Saved:
        return Saved(inputs=self.keep, extra_bytes=self.state)

    def backward_scratch(self, ctx: Ctx, b: int, grads: tuple[bool, ...]) -> int:
        return int(self.layer.backward_scratch(ctx, b, grads)) + self.recomputed


def checkpoint_rows(rows: list[LayerReport], segs: list[Segment], b: int) -> list[LayerReport]:
    """The rows of a training step with `segs` checkpointed (module docstring); `b`: bytes per
    element of the compute dtype (the layers' rules read it; autocast's stand-ins know their own)."""
    grad: dict[str, bool] = {"input": False}
    root: dict[str, str] = {"input": "input"}
    size = {r.name: r.activation_bytes for r in rows}
    needs: dict[str, tuple[bool, ...]] = {}
    weights = {r.name: r.trainable_params * b for r in rows}
    for r in rows:
        gin = tuple(grad.get(i, False) for i in r.inputs)
        needs[r.name] = gin
        grad[r.name] = r.trainable_params > 0 or (r.shared_with is not None and r.layer.trainable) or any(gin)
        root[r.name] = root.get(r.inputs[0], r.inputs[0]) if r.layer.aliases(True) else r.name
    by_index = {r.index: k for k, r in enumerate(rows)}
    out = list(rows)
    for seg in segs:
        members = [rows[by_index[i]] for i in seg.rows]
        inside = {r.name for r in members}
        outside_roots = {root.get(n, n) for r in members for n in r.inputs if n not in inside}
        saved_keys: dict[str, int] = {}  # storage → bytes, as the recomputation makes them
        extra = 0
        recomputed: list[int] = []  # what the recomputation has saved by each row
        recomputing: list[int] = []  # its peak while running each row
        last_use = {root.get(n, n): pos for pos, r in enumerate(members) for n in r.inputs}
        live: dict[str, int] = {}  # the recomputation's other tensors alive (read later in the segment)
        trigger = -1  # the last row that saves anything: its backward unpacks first, and runs the recomputation
        for pos, r in enumerate(members):
            key = root[r.name]
            if key not in outside_roots:
                live[key] = size.get(key, 0)
            if grad[r.name]:
                s = r.layer.saved(r.ctx, needs[r.name])
                keys = [root.get(r.inputs[i], r.inputs[i]) for i in s.inputs] + ([key] if s.output else [])
                for k in keys:
                    if k not in outside_roots and k not in saved_keys:
                        saved_keys[k] = size.get(k, 0)
                extra += s.extra * b + s.extra_bytes
                if keys or s.extra or s.extra_bytes:
                    trigger = pos
            now = sum(saved_keys.values()) + extra
            loose = sum(v for k, v in live.items() if k not in saved_keys)
            recomputing.append(now + loose + int(r.layer.scratch(r.ctx, b)))
            recomputed.append(now)
            for gone in [k for k in live if last_use.get(k, -1) <= pos]:
                del live[gone]  # read for the last time (or never): freed, unless saved
        # early stop: the recomputation ends at the trigger row's saving, before that row's
        # backward has made its gradients (its inputs' and its weights'), which it then frees
        # (torch.random.fork_rng keeps the generator's state of the moment while the segment's is set)
        recompute = max(recomputing[: trigger + 1], default=0) + RNG_STATE_BYTES
        for pos, r in enumerate(members):
            keep = tuple(i for i, n in enumerate(r.inputs) if n not in inside)
            held = recomputed[pos] if pos <= trigger else 0
            if pos == trigger:
                made = int(r.layer.backward_scratch(r.ctx, b, needs[r.name])) + weights.get(r.shared_with or r.name, 0)
                if not r.layer.passes_gradient:
                    made += sum(size.get(n, 0) for n, g in zip(r.inputs, needs[r.name]) if g and n != "input")
                held = max(held, recompute - made)
            state = RNG_STATE_BYTES if pos == 0 else 0
            out[by_index[r.index]] = with_fields(r, layer=_Checkpointed(r.layer, keep, held, state))
    return out


def checkpoint_figures(report: Report, uses: list[str] | str, amp: Amp | None = None,
                       amp_training_rows: list[LayerReport] | None = None) -> dict[str, Any]:
    """The training step's memory with `uses` checkpointed (under `amp` when given: its training
    rows, `amp_rows`, made here unless given), and the recomputation's cost."""
    from cnncalc.analysis.memory import training_memory
    from cnncalc.analysis.precision import FULL, amp_rows, model_state_bytes

    segs = segments(report, uses)
    t = report.totals
    b = FULL if amp is not None else report.bytes_per_element
    rows = report.layers if amp is None else amp_training_rows if amp_training_rows is not None else \
        amp_rows(report.layers, report.outputs, amp, training=True).rows
    index = {i for s in segs for i in s.rows}
    if amp is not None:  # the autocast rows (casts among them) of each segment: by the block use they lie in
        segs = [Segment(s.use, tuple(r.index for r in rows if s.use in r.blocks)) for s in segs]
    ck = checkpoint_rows(rows, segs, b)
    train = training_memory(ck, report.outputs, t["input_bytes"], b, report.optimizer, model_state_bytes(report, amp))
    return {"training_memory_bytes": train.peak, "training_saved_activation_bytes": train.saved,
            "training_peak_phase": train.phase, **recompute_cost(report, segs, index)}


def recompute_cost(report: Report, segs: list[Segment], index: set[int] | None = None) -> dict[str, Any]:
    """The segments and what recomputing them costs: their forward FLOPs, against a step of
    3 · forward + the recomputation (module docstring). `index`: the rows of `report` they hold."""
    index = {i for s in segs for i in s.rows} if index is None else index
    forward = report.totals["flops"]
    again = sum(r.flops for r in report.layers if r.index in index)
    return {"segments": [{"use": s.use, "layers": len(s.rows)} for s in segs],
            "recompute_flops": again, "step_flops": 3 * forward + again,
            "recompute_share": again / (3 * forward + again) if forward + again else 0.0}


CHECKPOINT_KEYS = ("training_memory_bytes", "training_saved_activation_bytes", "training_peak_phase")


def apply_checkpoint(report: Report, uses: list[str] | str, amp: Amp | None = None,
                     inference: bool = True) -> Report:
    """`report` with its training figures for `uses` checkpointed (`amp`: also under autocast, its
    inference figures too); the figures without checkpointing kept under extra['checkpoint']."""
    from cnncalc.analysis.precision import amp_applied

    rows = amp_applied(report, amp, (inference, False)) if amp is not None else None
    before = {k: report.totals[k] for k in CHECKPOINT_KEYS}
    fig = checkpoint_figures(report, uses, amp, rows)
    report.totals.update({k: fig[k] for k in CHECKPOINT_KEYS})
    report.extra["checkpoint"] = {"uses": uses if uses == ALL else list(uses), "segments": fig["segments"],
                                  "recompute_flops": fig["recompute_flops"], "step_flops": fig["step_flops"],
                                  "recompute_share": fig["recompute_share"], "without": before}
    return report
