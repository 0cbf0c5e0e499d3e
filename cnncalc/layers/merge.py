"""Merges of several branches: add (residual), sub (a difference), concat (channels), mul (gating, broadcast)."""

from dataclasses import replace
from math import prod
from typing import Any, ClassVar, Literal

from cnncalc.errors import LayerError
from cnncalc.layers.base import Ctx, Flag, Kit, Layer, Saved, Shape, fmt_shape, merged
from cnncalc.layers.field import RF
from cnncalc.layers.routes import OnnxForm, OnnxNode, TorchCall, TorchForm, Traced, Unsupported, check_axis, lean, merge


def _onnx_merge(node: OnnxNode, kind: str) -> tuple[dict[str, Any], dict[str, Any]]:
    if len(node.tensors()) != 2:
        raise Unsupported(f"{node.op} with a constant")
    return {"type": kind}, {}


def _cat(call: TorchCall, tensors: Any, dim: int = 0) -> tuple[Any, list[Any]]:
    if not all(isinstance(x, Traced) for x in tensors):
        raise Unsupported("torch.cat of something other than tensors")
    if len(tensors) == 1:
        return None, list(tensors)  # a copy of its one input: the input, as far as the numbers go
    return ({"type": "concat"} if dim == 1 else {"type": "concat", "dim": dim}), list(tensors)


class _Merge(Layer):
    category: ClassVar[str] = "merge"
    min_inputs: ClassVar[int] = 2
    max_inputs: ClassVar[int] = 64

    def probe(self, ctx: Ctx, t: Kit) -> Any:
        """The merge itself, on the inputs' one-channel stand-ins."""
        return self.build(ctx, t)

    def broadcast(self, ctx: Ctx) -> Shape:
        """torch's broadcasting: shapes aligned on the right, each axis one size or 1."""
        rank = max(len(s) for s in ctx.ins)
        padded = [(1,) * (rank - len(s)) + tuple(s) for s in ctx.ins]
        out = []
        for axis in range(rank):
            sizes = {p[axis] for p in padded} - {1}
            if len(sizes) > 1:
                raise LayerError("inputs do not broadcast: " + " vs ".join(fmt_shape(s) for s in ctx.ins)
                                 + f" (axis {axis}: sizes {sorted(sizes)})", "inputs")
            out.append(sizes.pop() if sizes else 1)
        return tuple(out)

    def scratch(self, ctx: Ctx, b: int) -> int:
        """Three or more inputs are added or multiplied pairwise: one output-sized partial
        result (concatenation is one operator)."""
        return prod(ctx.out) * b if len(ctx.ins) > 2 and self.type != "concat" else 0


class Add(_Merge):
    """Element-wise sum of ≥ 2 inputs with torch broadcasting (residual connections; a
    (N, C, 1, 1) bias map). No params; element-wise ops = (inputs − 1) per output element;
    RF: the union of the inputs' windows; a broadcast global branch makes it the whole input."""

    channel_wise: ClassVar[bool] = True

    type: Literal["add"]
    keeps_layout = Flag(True)
    passes_gradient = Flag(True)
    torch_functions: ClassVar[tuple[TorchForm, ...]] = (
        TorchForm(("operator.add", "torch.add", "Tensor.add"), "add", merge("add")),)
    onnx_ops: ClassVar[tuple[OnnxForm, ...]] = (OnnxForm(("Add",), lambda node: _onnx_merge(node, "add")),)

    def shape(self, ctx: Ctx) -> Shape:
        return self.broadcast(ctx)

    def elementwise(self, ctx: Ctx) -> int:
        return (len(ctx.ins) - 1) * prod(ctx.out)

    def build(self, ctx: Ctx, t: Kit) -> Any:
        return t.ext.Add()

    def backward_scratch(self, ctx: Ctx, b: int, grads: tuple[bool, ...]) -> int:
        """None: every input receives the output's gradient itself (derivatives.yaml: add →
        grad), the partial sums' too; a tensor read twice gets a new summed gradient (see the
        backward walk). A broadcast input's reduced gradient is small and not counted."""
        return 0


class Mul(_Merge):
    """Element-wise product of ≥ 2 inputs with torch broadcasting (squeeze-and-excitation gates:
    (N, C, H, W) · (N, C, 1, 1)). No params; element-wise ops = (inputs − 1) per output element;
    RF: the union of the inputs' windows; a broadcast global gate makes it the whole input."""

    channel_wise: ClassVar[bool] = True

    type: Literal["mul"]
    keeps_layout = Flag(True)
    torch_functions: ClassVar[tuple[TorchForm, ...]] = (
        TorchForm(("operator.mul", "torch.mul", "Tensor.mul"), "mul", merge("mul")),)
    onnx_ops: ClassVar[tuple[OnnxForm, ...]] = (OnnxForm(("Mul",), lambda node: _onnx_merge(node, "mul")),)

    def shape(self, ctx: Ctx) -> Shape:
        return self.broadcast(ctx)

    def elementwise(self, ctx: Ctx) -> int:
        return (len(ctx.ins) - 1) * prod(ctx.out)

    def build(self, ctx: Ctx, t: Kit) -> Any:
        return t.ext.Mul()

    def saved(self, ctx: Ctx, grads: tuple[bool, ...]) -> Saved:
        """Computed pairwise, p = x₀·x₁, then p·x₂, …: autograd keeps each factor whose partner
        needs a gradient, and the partial products (output-sized) it needs."""
        keep, partials = [], 0
        left = grads[0]  # does the running product need a gradient?
        if grads[1]:
            keep.append(0)
        for i in range(1, len(grads)):
            if left:
                keep.append(i)
            if i >= 2 and grads[i]:
                partials += 1
            left = left or grads[i]
        return Saved(inputs=tuple(keep), extra=partials * prod(ctx.out))

    def backward_scratch(self, ctx: Ctx, b: int, grads: tuple[bool, ...]) -> int:
        """A broadcast factor's gradient is made full-size, grad · (the others), before it is
        summed down to the factor's shape (derivatives.yaml: mul → sum_to_size): one
        output-sized temporary while a squeeze-and-excitation gate's gradient is made. Three or
        more factors: the pairwise products' backward nodes, last first, each free a partial
        product and the gradient they received before the next makes its own (_chain_backward)."""
        if len(ctx.ins) > 2:
            return self._chain_backward(ctx, grads) * b
        broadcast = any(g and s != ctx.out for g, s in zip(grads, ctx.ins))
        return prod(ctx.out) * b if broadcast else 0

    def _chain_backward(self, ctx: Ctx, grads: tuple[bool, ...]) -> int:
        """Three or more factors: the pairwise products' backward nodes run last first; node j
        makes the gradients of p_(j−1) and x_j while the output's or p_j's gradient, the later
        factors' gradients and the partial products still kept are alive, then frees p_(j−1)
        and the gradient it received (a broadcast one made full-size first, as for two factors).
        Elements at the worst node, less what the walk counts
        (the output's gradient, every factor's gradient and every kept partial): negative
        when the partial products are freed before the first factors' gradients are made."""
        k = len(ctx.ins)
        size = [prod(s) for s in ctx.ins]
        partial = [size[0]]  # p_0 = x_0, p_j = p_(j−1)·x_j (broadcast: the larger)
        for j in range(1, k):
            partial.append(max(partial[-1], size[j]))
        needs = [grads[0]]
        for j in range(1, k):
            needs.append(needs[-1] or grads[j])
        kept = [j for j in range(1, k - 1) if grads[j + 1]]  # p_j kept by node j+1 for x_(j+1)'s gradient
        counted = prod(ctx.out) * (1 + len(kept)) + sum(size[j] for j in range(k) if grads[j])  # as `saved` counts
        alive_kept = sum(partial[j] for j in kept)
        received, made, worst = prod(ctx.out), 0, 0  # gradient received; factors' gradients made so far
        for j in range(k - 1, 0, -1):
            new_p = partial[j - 1] if needs[j - 1] and j > 1 else 0
            new_x = size[j] if grads[j] else 0
            first = size[0] if j == 1 and grads[0] else 0
            wide = partial[j] if (new_p and new_p < partial[j]) or (new_x and new_x < partial[j]) else 0
            worst = max(worst, alive_kept + received + made + new_p + new_x + first + wide)
            made += new_x + first
            if j - 1 in kept:
                alive_kept -= partial[j - 1]
            received = new_p
        return worst - counted


def _sub(call: TorchCall, a: Any, b: Any, alpha: Any = 1, out: Any = None) -> tuple[Any, list[Any]]:
    """`a - b`, `torch.sub(a, b)`, `a.sub(b)` of two tensors (alpha 1); a tensor minus the number 0
    is that tensor (read as an identity); anything else with a constant has no layer type."""
    if isinstance(a, Traced) and type(b) in (int, float) and b == 0 and alpha == 1:
        return {"type": "identity"}, [a]
    if not (isinstance(a, Traced) and isinstance(b, Traced)) or alpha != 1 or out is not None:
        raise Unsupported("sub with a constant or an alpha (only a tensor minus a tensor has a layer type)")
    return {"type": "sub"}, [a, b]


class Sub(_Merge):
    """Element-wise difference a − b of exactly 2 inputs (the first minus the second), with torch
    broadcasting like add (FastViT's RepMixer: mixer(x) − norm(x)). No params; element-wise ops =
    1 per output element; RF: the union of the inputs' windows (a broadcast branch makes it the
    whole input). Nothing is saved for backward; the first input's gradient is the output's,
    the second's a new, negated tensor: counted as two new gradients (one layer passes its
    gradient to all its inputs or to none), which the training step measures exactly when both
    need one, and over by one tensor where only the first does (x − the network input)."""

    channel_wise: ClassVar[bool] = True

    type: Literal["sub"]
    max_inputs: ClassVar[int] = 2
    keeps_layout = Flag(True)
    torch_functions: ClassVar[tuple[TorchForm, ...]] = (
        TorchForm(("operator.sub", "torch.sub", "Tensor.sub", "torch.subtract", "Tensor.subtract"), "sub", _sub),)
    onnx_ops: ClassVar[tuple[OnnxForm, ...]] = (OnnxForm(("Sub",), lambda node: _onnx_merge(node, "sub")),)

    def shape(self, ctx: Ctx) -> Shape:
        return self.broadcast(ctx)

    def elementwise(self, ctx: Ctx) -> int:
        return prod(ctx.out)

    def build(self, ctx: Ctx, t: Kit) -> Any:
        return t.ext.Sub()

    def probe(self, ctx: Ctx, t: Kit) -> Any:
        """The sum of the stand-ins: a difference could cancel the gradient where both inputs read
        one position, a sum reaches the same positions."""
        return t.ext.Add()


class Concat(_Merge):
    """Concatenation along dim (default 1, the channels): every other axis must match.
    No params, no ops; RF: the union of the inputs' windows."""

    follows_channels_last = Flag(True)  # on a channels-last input, a channels-last output (analysis/strides.py)
    follows_channels_last_3d = Flag(True)

    def channel_sources(self, ctx: Ctx) -> str | list[int]:
        return "concat" if self.dim % len(ctx.x) == 1 else "other"

    type: Literal["concat"]
    dim: int = 1
    passes_gradient = Flag(True)
    torch_functions: ClassVar[tuple[TorchForm, ...]] = (TorchForm(("torch.cat", "torch.concat"), "cat", _cat),)
    onnx_ops: ClassVar[tuple[OnnxForm, ...]] = (OnnxForm(("Concat",), lambda node: (
        lean({"type": "concat", "dim": check_axis(node.a["axis"], len(node.x))}), {})),)

    def shape(self, ctx: Ctx) -> Shape:
        r = len(ctx.x)
        if not -r <= self.dim < r or self.dim % r == 0:
            raise LayerError(f"dim {self.dim} is not a non-batch axis of a {r}-D input", "dim")
        d = self.dim % r
        for i, s in enumerate(ctx.ins[1:], 1):
            if len(s) != r or s[:d] + s[d + 1:] != ctx.x[:d] + ctx.x[d + 1:]:
                raise LayerError(f"inputs must match except on dim {d}: input 0 is {fmt_shape(ctx.x)}, "
                                 f"input {i} is {fmt_shape(s)}", "inputs")
        return (*ctx.x[:d], sum(s[d] for s in ctx.ins), *ctx.x[d + 1:])

    def rf(self, ctx: Ctx, fields: list[list[RF] | None]) -> list[RF] | None:
        """Along channels: the union of the inputs' windows. Along a spatial axis the units past
        the seam read other positions: that axis gets the union of the first units' windows,
        marked inexact."""
        d = self.dim % len(ctx.x)
        if d == 1:
            return merged(ctx, fields)
        flat = Ctx([(*s[:d], 1, *s[d + 1:]) for s in ctx.ins], (*ctx.out[:d], 1, *ctx.out[d + 1:]), extent=ctx.extent)
        out = merged(flat, fields)
        if out is not None:
            out[d - 2] = replace(out[d - 2], exact=False)
        return out

    def reads(self, ctx: Ctx, axis: int, lo: int, hi: int, real: bool = False) -> list[tuple[int, int] | None]:
        """Along channels point-wise; along its spatial axis each input covers its own stretch
        of the output (outputs lo..hi may touch only some of them)."""
        d = self.dim % len(ctx.x)
        if d != 2 + axis:
            return super().reads(ctx, axis, lo, hi, real)
        out: list[tuple[int, int] | None] = []
        offset = 0
        for shape in ctx.ins:
            size = shape[d]
            first, last = max(lo - offset, 0), min(hi - offset, size - 1)
            out.append((first, last) if first <= last else (1, 0))  # (1, 0): this input is not read
            offset += size
        return out

    def build(self, ctx: Ctx, t: Kit) -> Any:
        return t.ext.Concat(self.dim)

    def probe(self, ctx: Ctx, t: Kit) -> Any:
        """Along channels the one-channel stand-ins add up (the union); along space they join."""
        return t.ext.Add() if self.dim % len(ctx.x) == 1 else self.build(ctx, t)
