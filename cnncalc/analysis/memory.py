"""The memory model: which tensors are alive at each step of an inference pass and of a
training step, from each layer's rules (`aliases`, `scratch`, `saved`, `passes_gradient`).

Inference (torch.inference_mode): a layer's output is allocated while its inputs are alive,
with its temporaries (`scratch`); a tensor is freed after its last consumer. Views, in-place
layers and dropout at inference allocate nothing.

Training step (forward, backward, optimizer step; gradients set to None between steps, as
``zero_grad()`` does): the forward pass also keeps what autograd saves (`saved`) until that
layer's backward has run. Backward runs the layers in reverse; each allocates the gradient of
every input that needs one (size of the input; passed on as is by add, concat and views) and
its weights' gradients, with temporaries as large as its forward ones (the gradients of its
intermediate results), then frees what it saved and its output's gradient. The optimizer
step holds params, gradients and state; Adam (torch's for-loop implementation) makes two
temporaries per tensor while the previous tensor's last one is still referenced (SGD, with or
without momentum, works in place). Persistent: params, buffers, optimizer state.
"""
from __future__ import annotations

from dataclasses import dataclass
from math import prod
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from cnncalc.analysis.report import LayerReport

OPTIMIZER_STATES = {"sgd": 0, "momentum": 1, "adam": 2}  #: state tensors per trainable param


class _Pool:
    """Live storages with reference counts (names that use them), and the running total."""

    __slots__ = ("size", "refs", "total")

    def __init__(self) -> None:
        self.size: dict[str, int] = {}
        self.refs: dict[str, int] = {}
        self.total = 0

    def alloc(self, key: str, nbytes: int) -> None:
        self.size[key] = nbytes
        self.refs[key] = 1
        self.total += nbytes

    def ref(self, key: str) -> None:
        self.refs[key] += 1

    def unref(self, key: str) -> None:
        refs = self.refs
        n = refs[key] - 1
        if n:
            refs[key] = n
        else:
            self.total -= self.size.pop(key)
            del refs[key]


def _drops(rows: list[LayerReport], outputs: list[str]) -> tuple[set[str], dict[int, list[str]]]:
    """The tensors some layer reads (or the caller holds), and per row index the names dropped
    after that row: each tensor after its last consumer; the caller holds the input and the
    outputs to the end. One pass over the rows: the last uses are found once, not per layer."""
    last: dict[str, int] = {}
    for r in rows:
        i = r.index
        for n in r.inputs:
            last[n] = i
    end = rows[-1].index + 1 if rows else 0
    for n in ["input", *outputs]:
        last[n] = end
    after: dict[int, list[str]] = {}
    for name, i in last.items():
        group = after.get(i)
        if group is None:
            after[i] = [name]
        else:
            group.append(name)
    return set(last), after


def inference_peak(rows: list[LayerReport], outputs: list[str], input_bytes: int, b: int) -> int:
    """Peak bytes of activations during one inference pass (the input included)."""
    last, pending = _drops(rows, outputs)
    pool, root = _Pool(), {"input": "input"}
    pool.alloc("input", input_bytes)
    peak = pool.total
    unref = pool.unref
    for r in rows:
        name = r.name
        if r.layer.aliases(False):
            key = root[name] = root[r.inputs[0]]
            pool.refs[key] += 1
        else:
            key = root[name] = name
            pool.alloc(name, r.activation_bytes)
            now = pool.total + r.layer.scratch(r.ctx, b)
            if now > peak:
                peak = now
        if name not in last:  # never used: freed at once
            unref(key)
        dropped = pending.get(r.index)
        if dropped:
            for n in dropped:
                unref(root[n])
    return peak


@dataclass
class TrainingMemory:
    """The training step's figures (bytes)."""

    peak: int
    """params + buffers + optimizer state + the step's peak of everything else"""
    saved: int
    """what autograd holds at the end of the forward pass (activations kept for backward)"""
    phase: str
    """where the peak falls: 'forward', 'backward' or 'optimizer step'"""


def training_memory(rows: list[LayerReport], outputs: list[str], input_bytes: int, b: int,
                    optimizer: str, persistent: int) -> TrainingMemory:
    """Simulate one training step (see the module docstring): forward, backward, optimizer step;
    `persistent` = params + buffers + optimizer state bytes."""
    fw = _forward(rows, outputs, input_bytes, b)
    peak, phase = fw.peak, "forward"
    backward, weight_grads = _backward(rows, outputs, b, fw)
    if backward > peak:
        peak, phase = backward, "backward"
    step = _step(rows, b, optimizer, weight_grads, fw.pool.total)
    if step > peak:
        peak, phase = step, "optimizer step"
    return TrainingMemory(persistent + peak, fw.saved, phase)


class _Forward(NamedTuple):
    """What the forward pass leaves for backward."""

    pool: _Pool
    """the activations alive at its end (those saved for backward, the input and the outputs)"""
    held: dict[int, tuple[list[str], int]]
    """row index → (the storages it keeps for its backward, the new bytes it keeps)"""
    grad: dict[str, bool]
    """tensor → whether it needs a gradient"""
    needs: dict[str, tuple[bool, ...]]
    """layer → which of its inputs need a gradient"""
    peak: int
    """the forward pass's peak: activations alive plus the running layer's temporaries"""
    saved: int
    """what autograd holds at its end"""


def _forward(rows: list[LayerReport], outputs: list[str], input_bytes: int, b: int) -> _Forward:
    """The forward pass: each output allocated while its inputs are alive, with its temporaries;
    a layer on the gradient's path also keeps what autograd saves (`saved`) for its backward."""
    last, pending = _drops(rows, outputs)
    grad = {"input": False}
    pool, root = _Pool(), {"input": "input"}
    pool.alloc("input", input_bytes)
    unref = pool.unref
    refs = pool.refs
    held: dict[int, tuple[list[str], int]] = {}
    needs: dict[str, tuple[bool, ...]] = {}
    peak = pool.total
    for r in rows:
        name, inputs, layer = r.name, r.inputs, r.layer
        gin = (grad[inputs[0]],) if len(inputs) == 1 else tuple([grad[i] for i in inputs])
        g = r.trainable_params > 0 or (r.shared_with is not None and layer.trainable) or any(gin)
        grad[name] = g
        needs[name] = gin
        if layer.aliases(True):
            key = root[name] = root[inputs[0]]
            refs[key] += 1
        else:
            key = root[name] = name
            pool.alloc(name, r.activation_bytes)
        extra = 0
        if g:
            s = layer.saved(r.ctx, gin)
            keys = [root[inputs[i]] for i in s.inputs]
            if s.output:
                keys.append(key)
            if len(keys) > 1:
                keys = list(dict.fromkeys(keys))
            for k in keys:
                refs[k] += 1
            extra = s.extra * b + s.extra_bytes
            held[r.index] = (keys, extra)
        scratch = layer.scratch(r.ctx, b)
        now = pool.total + (scratch if scratch > extra else extra)  # the saved new tensors are among the temporaries
        if now > peak:
            peak = now
        pool.total += extra
        if name not in last:
            unref(key)
        dropped = pending.get(r.index)
        if dropped:
            for n in dropped:
                if n in root:
                    unref(root[n])
    kept = {k for keys, _ in held.values() for k in keys}
    saved = sum(pool.size[k] for k in kept) + sum(extra for _, extra in held.values())
    return _Forward(pool, held, grad, needs, peak, saved)


def _backward(rows: list[LayerReport], outputs: list[str], b: int, fw: _Forward) -> tuple[int, int]:
    """The backward pass, layers in reverse: the loss's gradient for every output, then each
    layer's input gradients (passed on as is by add, concat and views), its weights' gradients
    and temporaries, before it frees what it saved and its output's gradient. Returns its peak
    (-1 when nothing runs) and the bytes of the weights' gradients, which the step still holds."""
    pool, held, grad, needs = fw.pool, fw.held, fw.grad, fw.needs
    size = {r.name: r.activation_bytes for r in rows}
    grads = _Pool()
    gkey: dict[str, str] = {}
    for o in outputs:
        if grad.get(o) and o not in gkey:
            gkey[o] = f"d{o}"
            grads.alloc(gkey[o], size[o])
    peak = -1
    weight_grads = 0
    trainable = {r.name: r.trainable_params for r in rows}
    granted: set[str] = set()  # weights whose gradient exists (shared weights: from their first use)
    for r in reversed(rows):
        name = r.name
        if not grad[name] or name not in gkey:
            if r.index in held:
                _release(pool, held.pop(r.index))
            continue
        layer, inputs = r.layer, r.inputs
        owner = r.shared_with or name
        accumulating = 0  # a shared weight's later gradients are made, then added in place
        if owner in granted:
            accumulating = trainable[owner] * b
        else:
            granted.add(owner)
            weight_grads += trainable[owner] * b
        passes = layer.passes_gradient
        for n in inputs:
            if not grad.get(n) or n == "input":
                continue
            if n in gkey:  # made, then added in place to the gradient already there
                accumulating += 0 if passes else size[n]
                continue
            if passes:  # (a broadcast input's small reduced gradient is not counted)
                gkey[n] = gkey[name]
                grads.ref(gkey[n])
            else:
                gkey[n] = f"d{n}"
                grads.alloc(gkey[n], size[n])
        now = pool.total + grads.total + weight_grads + accumulating + layer.backward_scratch(r.ctx, b, needs[name])
        if now > peak:
            peak = now
        if r.index in held:
            _release(pool, held.pop(r.index))
        grads.unref(gkey[name])
    return peak, weight_grads


def _step(rows: list[LayerReport], b: int, optimizer: str, weight_grads: int, alive: int) -> int:
    """The optimizer step: the weights' gradients and the activations still `alive` (input,
    outputs), with Adam's temporaries (SGD, with or without momentum, works in place)."""
    return weight_grads + alive + (_adam_temporaries(rows) * b if optimizer == "adam" else 0)


def _adam_temporaries(rows: list[LayerReport]) -> int:
    """Elements of Adam's temporaries at their peak: for each tensor in parameter order,
    √v and √v/c (its size, twice) while the previous tensor's √v/c is still referenced."""
    sizes = [prod(s) for r in rows if r.trainable_params for s in r.weights.values()]
    return max((2 * cur + prev for prev, cur in zip([0, *sizes], sizes)), default=0)


def _release(pool: _Pool, held: tuple[list[str], int]) -> None:
    keys, extra = held
    pool.total -= extra
    for k in keys:
        pool.unref(k)
