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

from cnncalc.analysis.strides import permuted_grad_copies, reshape_copies
from cnncalc.layers.base import Layer, Saved

if TYPE_CHECKING:
    from cnncalc.analysis.report import LayerReport

OPTIMIZER_STATES = {"sgd": 0, "momentum": 1, "adam": 2}  #: state tensors per trainable param


class _Pool:
    """Live storages with reference counts (names that use them), and the running total (the
    forward pass's, which backward goes on releasing)."""

    __slots__ = ("size", "refs", "total")

    def __init__(self) -> None:
        self.size: dict[str, int] = {}
        self.refs: dict[str, int] = {}
        self.total = 0

    def unref(self, key: str) -> None:
        refs = self.refs
        n = refs[key] - 1
        if n:
            refs[key] = n
        else:
            self.total -= self.size.pop(key)
            del refs[key]


_NOTHING = Saved()
_RULES: dict[type[Layer], tuple[bool, bool, bool, bool, bool | None]] = {}


def _rules(cls: type[Layer]) -> tuple[bool, bool, bool, bool, bool | None]:
    """Per layer class, whether it has its own scratch, aliases, saved and backward_scratch
    rules (False: the default's answer, 0, False, nothing saved, 0, without the call), and its
    passes_gradient where that is one value for the class (None: ask the layer: a rule over the
    fields, or a wrapper that hands it on) (#30)."""
    passes = getattr(cls, "passes_gradient", None)  # (analysis/precision.py hands in its own wrappers)

    def own(rule: str) -> bool:  # (a wrapper without the method hands it on: asked, as its own)
        return getattr(cls, rule, None) is not getattr(Layer, rule)

    got = _RULES[cls] = (own("scratch"), own("aliases"), own("saved"), own("backward_scratch") or own("scratch"),
                         passes if isinstance(passes, bool) else None)
    return got


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
    return _passes(rows, outputs, input_bytes, b, True, False)[0]


def memory_figures(rows: list[LayerReport], outputs: list[str], input_bytes: int, b: int, optimizer: str,
                   persistent: int) -> tuple[int, TrainingMemory]:
    """`inference_peak` and `training_memory` from one walk over the rows (the last uses found
    once; each layer's temporaries asked once for both passes)."""
    peak, fw = _passes(rows, outputs, input_bytes, b, True, True)
    assert fw is not None
    return peak, _training(rows, outputs, b, optimizer, persistent, fw)


def _passes(rows: list[LayerReport], outputs: list[str], input_bytes: int, b: int, inference: bool,
            training: bool) -> tuple[int, _Forward | None]:
    """One walk over the rows simulating the inference pass and/or the training step's forward
    pass: the inference peak (0 when not asked), and what the forward pass leaves for backward.

    Inference: a layer's output is allocated (unless it aliases its input) while its inputs are
    alive, with its temporaries; each tensor is freed after its last consumer. The pools are
    plain dicts here (no call per allocation: this is the analysis' innermost loop, #30)."""
    last, pending = _drops(rows, outputs)
    dead: set[str] = set()  # layers whose output reaches no output: autograd frees their graph with it
    if training and len(last) <= len(rows):  # (some row's output is never read)
        live = set(outputs)
        for r in reversed(rows):
            if r.name in live:
                live.update(r.inputs)
            else:
                dead.add(r.name)
    # inference pool: storage → bytes, storage → references; tensor → its storage
    isize, irefs, iroot = {"input": input_bytes}, {"input": 1}, {"input": "input"}
    itotal = ipeak = input_bytes
    # training forward pool, as `_Forward` keeps it
    fsize, frefs, froot = {"input": input_bytes}, {"input": 1}, {"input": "input"}
    ftotal = fpeak = input_bytes
    grad = {"input": False}
    held: dict[int, tuple[list[str], int]] = {}
    needs: dict[str, tuple[bool, ...]] = {}
    views: set[str] = set()  # outputs of view layers (narrow, transpose, permute, …)
    onview: dict[int, int] = {}  # row index → bytes its backward makes beyond the layer's rules
    linears: dict[str, int] = {}  # linear layers' outputs → row index
    regrad: dict[int, int] = {}  # row index of a linear → bytes of the copy its permuted gradient folds to
    for r in rows:
        name, inputs, layer, index = r.name, r.inputs, r.layer, r.index
        rules = _RULES.get(type(layer)) or _rules(type(layer))
        scratch = layer.scratch(r.ctx, b) if rules[0] else 0
        folded = 0  # a linear on a permuted map: matmul folds it to 2-D with a copy (reshape)
        if r.type == "linear" and len(r.ctx.ins[0]) > 2:  # inside the operator unless kept
            x = r.ctx.ins[0]
            if reshape_copies(r.ctx, (prod(x[:-1]), x[-1])):
                folded = prod(x) * b
        dropped = pending.get(index)
        unused = name not in last  # never used: freed at once
        if inference:  # -- the inference pass
            if rules[1] and layer.aliases(False) and not (r.type == "flatten" and reshape_copies(r.ctx)):
                key = iroot[name] = iroot[inputs[0]]
                irefs[key] += 1
            else:
                key = iroot[name] = name
                nbytes = r.activation_bytes
                isize[name] = nbytes
                irefs[name] = 1
                itotal += nbytes
                if itotal + scratch > ipeak:
                    ipeak = itotal + scratch
            if unused:
                n = irefs[key] - 1
                if n:
                    irefs[key] = n
                else:
                    itotal -= isize.pop(key)
                    del irefs[key]
            if dropped:
                for d in dropped:
                    k = iroot[d]
                    n = irefs[k] - 1
                    if n:
                        irefs[k] = n
                    else:
                        itotal -= isize.pop(k)
                        del irefs[k]
        if not training:
            continue
        # -- the training step's forward pass: also what autograd saves for backward
        gin = (grad[inputs[0]],) if len(inputs) == 1 else tuple([grad[i] for i in inputs])
        g = r.trainable_params > 0 or (r.shared_with is not None and layer.trainable) or any(gin)
        grad[name] = g
        needs[name] = gin
        if r.type == "linear":
            linears[name] = index
        if rules[1] and layer.aliases(True) and not (r.type == "flatten" and reshape_copies(r.ctx)):
            key = froot[name] = froot[inputs[0]]
            frefs[key] += 1
            if layer.category == "reshape" and r.type != "identity":  # a view of its input
                views.add(name)
                if inputs[0] in linears and r.type in ("permute", "transpose"):
                    x = r.ctx.x  # the gradient of a linear arrives permuted: folded to 2-D with a copy
                    if permuted_grad_copies(x, layer.order(len(x))):  # type: ignore[attr-defined]
                        # once per linear: the gradients of several readers are summed first, then folded
                        regrad[linears[inputs[0]]] = r.activation_bytes
            elif inputs[0] in views and getattr(layer, "inplace", False):  # in place on a view:
                onview[index] = 2 * fsize[key]  # autograd rebases its base: base-sized gradient and clone
        else:
            key = froot[name] = name
            nbytes = r.activation_bytes
            fsize[name] = nbytes
            frefs[name] = 1
            ftotal += nbytes
            if layer.returns_view:  # autograd sees a view of a tensor of its own size: an in-place
                views.add(name)     # layer on it rebases that (see below)
        extra = 0
        if g and not (dead and name in dead):
            s = layer.saved(r.ctx, gin) if rules[2] else _NOTHING
            if folded and s.inputs:  # mm keeps the folded copy, not the input, for the weight's gradient
                s = Saved(extra_bytes=folded)
            keys = [froot[inputs[i]] for i in s.inputs]
            if s.output:
                keys.append(key)
            if len(keys) > 1:
                keys = list(dict.fromkeys(keys))
            for k in keys:
                frefs[k] += 1
            extra = s.extra * b + s.extra_bytes
            held[index] = (keys, extra)
        now = ftotal + (scratch if scratch > extra else extra)  # the saved new tensors are among the temporaries
        if now > fpeak:
            fpeak = now
        ftotal += extra
        if unused:
            n = frefs[key] - 1
            if n:
                frefs[key] = n
            else:
                ftotal -= fsize.pop(key)
                del frefs[key]
        if dropped:
            for d in dropped:
                if d in froot:
                    k = froot[d]
                    n = frefs[k] - 1
                    if n:
                        frefs[k] = n
                    else:
                        ftotal -= fsize.pop(k)
                        del frefs[k]
    if not inference:
        ipeak = 0
    if not training:
        return ipeak, None
    pool = _Pool()
    pool.size, pool.refs, pool.total = fsize, frefs, ftotal
    kept = {k for keys, _ in held.values() for k in keys}
    saved = sum([fsize[k] for k in kept]) + sum([extra for _, extra in held.values()])
    return ipeak, _Forward(pool, held, grad, needs, fpeak, saved, onview, regrad)


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
    fw = _passes(rows, outputs, input_bytes, b, False, True)[1]
    assert fw is not None
    return _training(rows, outputs, b, optimizer, persistent, fw)


def _training(rows: list[LayerReport], outputs: list[str], b: int, optimizer: str, persistent: int,
              fw: _Forward) -> TrainingMemory:
    """The training step's figures from its forward pass: then backward, then the optimizer step."""
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
    onview: dict[int, int]
    """row index → bytes its backward makes beyond its layer's rules: an in-place layer on a
    view (the base-sized gradient and its clone)"""
    regrad: dict[int, int]
    """row index of a linear whose gradient arrives permuted → the bytes of the contiguous copy
    that folds it to 2-D (see `_backward`)"""


def _backward(rows: list[LayerReport], outputs: list[str], b: int, fw: _Forward) -> tuple[int, int]:
    """The backward pass, layers in reverse: the loss's gradient for every output, then each
    layer's input gradients (passed on as is by add, concat and views), its weights' gradients
    and temporaries, before it frees what it saved and its output's gradient. A tensor a merge
    reads twice (add [a, a], concat [a, a]) receives the passed-on gradient twice: autograd
    sums the two into a new tensor (the engine's InputBuffer cannot add in place into a
    gradient another reference holds); so it does where the gradient already there is a view
    (handed back by a view layer's backward, passed on as is by add or concat), both operands
    alive while the sum is made. An in-place layer on a view (relu_ after narrow or
    transpose) rebases the view's base (derivatives.yaml: copy_ and the view's backward): its
    backward makes the base-sized gradient of the view and a clone of it. A linear whose
    output a permute or transpose reads (a channels-last sub-graph) gets its gradient permuted:
    the backward of the view that folded its output (matmul's _unsafe_view, linear's view)
    reshapes that gradient to 2-D with a contiguous copy while the gradient is alive; autograd
    then frees the gradient (when nothing else holds it) before mm makes the input's and the
    weight's gradients, which the copy outlives (traced with the profiler). A spec's chunk is
    one torch.chunk (analysis/chunks.py): its pieces' gradients wait for its first piece's
    row, where the input's gradient is made once. Returns its peak (-1 when nothing runs) and
    the bytes of the weights' gradients, which the step still holds."""
    from cnncalc.analysis.chunks import chunk_groups

    pool, held, grad, needs, onview, regrad = fw.pool, fw.held, fw.grad, fw.needs, fw.onview, fw.regrad
    piece_of: dict[int, int] = {}  # row index of a chunk's piece → its first piece's index
    pieces: dict[int, list[str]] = {}
    for first, (_, members) in chunk_groups(rows).items():
        pieces[first] = [n for _, n in members]
        piece_of.update((first + k, first) for k in range(len(members)))
    size = {r.name: r.activation_bytes for r in rows}
    psize, prefs = pool.size, pool.refs
    # the gradients' pool (storage → bytes, storage → references), inlined as in `_passes`
    gsize: dict[str, int] = {}
    grefs: dict[str, int] = {}
    gtotal = 0
    gkey: dict[str, str] = {}
    for o in outputs:
        if grad.get(o) and o not in gkey:
            k = gkey[o] = o  # (the gradients' pool has its own keys: the tensor's name)
            gsize[k] = size[o]
            grefs[k] = 1
            gtotal += size[o]
    peak = -1
    weight_grads = 0
    trainable = {r.name: r.trainable_params for r in rows}
    granted: set[str] = set()  # weights whose gradient exists (shared weights: from their first use)
    viewed: set[str] = set()  # tensors whose gradient is a view (handed back by a view layer's backward)
    for r in reversed(rows):
        name = r.name
        if piece_of and r.index in piece_of and grad[name]:
            if r.index == piece_of[r.index]:  # the chunk's backward: every piece's gradient is in
                peak = max(peak, _chunk_backward(pieces[r.index], r.inputs[0], size, grad, gkey, gsize, grefs,
                                                 pool.total + weight_grads))
                gtotal = sum(gsize.values())
            continue  # (a later piece: its gradient waits)
        if not grad[name] or name not in gkey:
            if r.index in held:
                _release(pool, held.pop(r.index))
            continue
        layer, inputs = r.layer, r.inputs
        copy = regrad.get(r.index, 0)
        if copy:  # the folded copy of the permuted gradient, then that gradient freed (see above)
            if pool.total + gtotal + weight_grads + copy > peak:
                peak = pool.total + gtotal + weight_grads + copy
            gtotal -= _unref(gsize, grefs, gkey[name])
        owner = r.shared_with or name
        accumulating = 0  # a shared weight's later gradients are made, then added in place
        if owner in granted:
            accumulating = trainable[owner] * b
        else:
            granted.add(owner)
            weight_grads += trainable[owner] * b
        rules = _RULES.get(type(layer)) or _rules(type(layer))
        passes = rules[4]
        if passes is None:
            passes = layer.passes_gradient
        summed = 0  # gradients a new sum replaces (see below): alive while it is made
        for n in inputs:
            if not grad.get(n) or n == "input":
                continue
            if n in gkey:  # made, then added in place to the gradient already there
                if (passes and gkey[n] == gkey[name]) or n in viewed:  # read twice by this merge (both
                    # reads hold the output's gradient), or the gradient there is a view: the sum is new
                    accumulating += 0 if passes else size[n]
                    freed = _unref(gsize, grefs, gkey[n])
                    summed += freed  # (freed after the sum, which reads it)
                    gtotal -= freed
                    k = gkey[n] = n
                    gsize[k] = size[n]
                    grefs[k] = 1
                    gtotal += size[n]
                    viewed.discard(n)
                else:
                    accumulating += 0 if passes else size[n]
                continue
            if passes:  # (a broadcast input's small reduced gradient is not counted)
                k = gkey[n] = gkey[name]
                grefs[k] += 1
                if name in viewed or (layer.category == "reshape" and layer.type != "identity"):
                    viewed.add(n)  # a view's backward views the gradient; add and concat pass it as is
            else:
                k = gkey[n] = n
                gsize[k] = size[n]
                grefs[k] = 1
                gtotal += size[n]
        now = pool.total + gtotal + weight_grads + accumulating + summed + (
            layer.backward_scratch(r.ctx, b, needs[name]) if rules[3] else 0)
        if onview and r.index in onview:  # see _Forward.onview
            now += onview[r.index]
        if now + copy > peak:
            peak = now + copy
        kept = held.pop(r.index, None)
        if kept is not None:  # (`_release` inlined: every layer on the gradient's way has one)
            pool.total -= kept[1]
            for k in kept[0]:
                c = prefs[k] - 1
                if c:
                    prefs[k] = c
                else:
                    pool.total -= psize.pop(k)
                    del prefs[k]
        if copy:
            continue  # (its gradient is released already)
        k = gkey[name]
        c = grefs[k] - 1
        if c:
            grefs[k] = c
        else:
            gtotal -= gsize.pop(k)
            del grefs[k]
    return peak, weight_grads


def _unref(sizes: dict[str, int], refs: dict[str, int], key: str) -> int:
    """One reference to storage `key` dropped: the bytes freed (0 while others hold it). (The
    hot loops inline this; the rare paths call it.)"""
    n = refs[key] - 1
    if n:
        refs[key] = n
        return 0
    del refs[key]
    return sizes.pop(key)


def _chunk_backward(names: list[str], src: str, size: dict[str, int], grad: dict[str, bool], gkey: dict[str, str],
                    gsize: dict[str, int], grefs: dict[str, int], other: int) -> int:
    """torch.chunk's backward (split_with_sizes_backward) in `_backward`'s gradient pool: zeros
    for each piece without a gradient, their concatenation as the gradient of `src` (made, then
    added in place if `src` has one already), then the pieces' gradients freed. Returns the
    bytes alive at its peak, `other` (activations, weights' gradients) included."""
    live = [n for n in names if n in gkey]
    if not live:
        return -1
    zeros = sum(size[n] for n in names if n not in gkey)
    made = size[src] if grad.get(src) and src != "input" else 0
    now = other + sum(gsize.values()) + zeros + made
    if made and src not in gkey:
        gkey[src] = src
        gsize[src] = made
        grefs[src] = 1
    for n in live:
        k = gkey[n]
        grefs[k] -= 1
        if not grefs[k]:
            del grefs[k], gsize[k]
    return now


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
