"""Layers of modern CNNs: channel LayerNorm (ConvNeXt's LayerNorm2d), layer scale, stochastic
depth, channel slices (what `chunk` and `split` expand to), pixel (un)shuffle and multi-head
self-attention over a flattened feature map."""
from __future__ import annotations

from fractions import Fraction
from math import prod
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field

from cnncalc.errors import LayerError
from cnncalc.layers.base import Ctx, Flag, Kit, Layer, PosInt, Saved, Shape, fmt_shape
from cnncalc.layers.field import RF
from cnncalc.layers.routes import Malformed, OnnxForm, OnnxNode, TorchCall, TorchForm, Traced, Unsupported, module, onnx_reshape


# ---- how import reads them from traced torch functions and ONNX ops -------------------------------
def _narrow(call: TorchCall, x: Traced, dim: int, start: int, length: int) -> tuple[Any, list[Any]]:
    if dim % len(x.shape) != 1:
        raise Unsupported("narrow along an axis other than the channels")
    return {"type": "narrow", "start": start, "length": length}, [x]


def _permute(call: TorchCall, x: Traced, *dims: Any) -> tuple[Any, list[Any]]:
    order = dims[0] if len(dims) == 1 and isinstance(dims[0], (list, tuple)) else dims
    return {"type": "permute", "dims": list(order)}, [x]


def _transpose(call: TorchCall, x: Traced, dim0: int, dim1: int) -> tuple[Any, list[Any]]:
    return {"type": "transpose", "dim0": dim0, "dim1": dim1}, [x]


def _unflatten(call: TorchCall, x: Traced, dim: int, sizes: Any) -> tuple[Any, list[Any]]:
    return call.t.nn.Unflatten(dim, tuple(sizes)), [x]


def _reshaped(call: TorchCall, x: Traced, *args: Any, **kw: Any) -> tuple[Any, list[Any]]:
    """x.view(…), x.reshape(…), torch.reshape(x, …) keeping the batch axis: a flatten where the
    result is (N, C·H·W…), else a view (a reshape after .contiguous(), which copies) to the
    shape the traced pass gives."""
    src, out = x.shape, call.out
    if out[0] != src[0]:
        raise Unsupported(f"{call.target} that changes the batch axis ({list(src)} → {list(out)})")
    after_copy = x.made_by == "contiguous"
    if len(src) > 2 and out == (src[0], src[1] * prod(src[2:])) and not after_copy:
        return {"type": "flatten"}, [x]
    kind = "view" if call.target == "view" and not after_copy else "reshape"
    return {"type": kind, "shape": list(out[1:])}, [x]


def _onnx_permute(node: OnnxNode) -> tuple[dict[str, Any], dict[str, Any]]:
    if sorted(int(v) for v in node.a["perm"]) != list(range(len(node.x))):
        raise Malformed(f"perm {list(node.a['perm'])[:10]} is not a permutation of the {len(node.x)} axes")
    return {"type": "permute", "dims": list(node.a["perm"])}, {}


def _spatial(layer: str, shape: Shape) -> None:
    if len(shape) < 3:
        raise LayerError(f"{layer} expects an input (N, C, …) with spatial axes, received {fmt_shape(shape)}")


class LayerNorm2d(Layer):
    """Layer normalisation over the channels of each position of an (N, C, …) map (ConvNeXt's
    LayerNorm2d: permute to channels-last, LayerNorm(C), permute back).

    params = 2·C (γ, β); element-wise ops = 2 per element; RF point-wise."""
    autocast: ClassVar[str | dict[str, str]] = {"cuda": "fp32"}

    category: ClassVar[str] = "normalization"
    type: Literal["layernorm2d"]
    returns_view = Flag(True)  # the permute back (Layer.returns_view)
    eps: Annotated[float, Field(gt=0)] = 1e-6
    elementwise_affine: bool = True

    def shape(self, ctx: Ctx) -> Shape:
        _spatial(self.type, ctx.x)
        return ctx.x

    def weights(self, ctx: Ctx) -> dict[str, Shape]:
        c = ctx.x[1]
        return {"weight": (c,), "bias": (c,)} if self.elementwise_affine else {}

    def elementwise(self, ctx: Ctx) -> int:
        return 2 * prod(ctx.out)

    def build(self, ctx: Ctx, t: Kit) -> Any:
        return t.ext.LayerNorm2d(ctx.x[1], self.eps, self.elementwise_affine)

    def saved(self, ctx: Ctx, grads: tuple[bool, ...]) -> Saved:
        """Autograd keeps the input (as the channels-last view) and a mean and inverse deviation
        per position; the kernel's contiguous copy is its own workspace."""
        return Saved(inputs=(0,), extra=2 * prod(ctx.x) // ctx.x[1])


class LayerScale(Layer):
    """A learnable per-channel scale y = γ·x (ConvNeXt's layer scale; γ of shape (C, 1, …),
    initialised to init_value). On a channels-last tensor (after a permute, as ConvNeXt's
    original block applies it) γ follows the channels: shape (C,), broadcast over the last axis.

    params = C; element-wise ops = 1 per element; RF point-wise."""
    autocast: ClassVar[str | dict[str, str]] = "float"  # x · its float32 gamma

    channel_wise: ClassVar[bool] = True

    category: ClassVar[str] = "normalization"
    type: Literal["layer_scale"]
    init_value: float = 1e-6
    dim: int | None = None
    """the axis γ scales (-1: the last, as timm's LayerScale on tokens (N, L, C)); default the channels"""

    def shape(self, ctx: Ctx) -> Shape:
        _spatial(self.type, ctx.x)
        if self.dim is not None and not (-len(ctx.x) < self.dim < len(ctx.x) and self.dim % len(ctx.x)):
            raise LayerError(f"dim {self.dim} is not an axis after the batch of {fmt_shape(ctx.x)}", "dim")
        return ctx.x

    def channel_axis(self, ctx: Ctx) -> int:
        """Where the channels are: `dim`, else axis 1, or wherever a permute before moved them."""
        if self.dim is not None:
            return self.dim % len(ctx.x)
        return 1 if ctx.natural(0) else ctx.layouts[0].index(1)

    def weights(self, ctx: Ctx) -> dict[str, Shape]:
        c = self.channel_axis(ctx)
        return {"weight": (ctx.x[c],) + (1,) * (len(ctx.x) - 1 - c)}

    def elementwise(self, ctx: Ctx) -> int:
        return prod(ctx.out)

    def build(self, ctx: Ctx, t: Kit) -> Any:
        c = self.channel_axis(ctx)
        return t.ext.LayerScale(ctx.x[c], len(ctx.x) - 1 - c, self.init_value)

    def saved(self, ctx: Ctx, grads: tuple[bool, ...]) -> Saved:
        """x·γ keeps x for γ's gradient (γ itself is a parameter)."""
        return Saved(inputs=(0,) if self.trainable else ())

    def backward_scratch(self, ctx: Ctx, b: int, grads: tuple[bool, ...]) -> int:
        """γ's gradient is reduced from the full product grad·x."""
        return prod(ctx.out) * b if self.trainable else 0


class DropPath(Layer):
    """Stochastic depth (torchvision's StochasticDepth): while training, zero a whole sample
    (mode row) or the whole batch (mode batch) with probability p and scale the rest by
    1/(1 − p); the identity at inference (no ops counted, RF unchanged)."""

    channel_wise: ClassVar[bool] = True

    category: ClassVar[str] = "regularization"
    type: Literal["drop_path"]
    torch_names: ClassVar[tuple[str, ...] | None] = ("StochasticDepth",)  # torchvision.ops and cnncalc's
    p: Annotated[float, Field(ge=0, lt=1)] = 0.0
    mode: Literal["row", "batch"] = "row"

    def build(self, ctx: Ctx, t: Kit) -> Any:
        return t.ext.StochasticDepth(self.p, self.mode)

    def aliases(self, training: bool) -> bool:
        """At inference, or with p = 0, it returns the input itself."""
        return not training or self.p == 0

    def moves_data(self) -> bool:
        return False

    @Flag.rule
    def passes_gradient(self) -> bool:
        return self.p == 0

    def _noise(self, ctx: Ctx) -> int:
        return ctx.x[0] if self.mode == "row" else 1

    def scratch(self, ctx: Ctx, b: int) -> int:
        return 0 if self.p == 0 else self._noise(ctx) * b

    def saved(self, ctx: Ctx, grads: tuple[bool, ...]) -> Saved:
        """input·noise keeps the noise (one value per sample, or one)."""
        return Saved(extra=self._noise(ctx)) if self.p and grads[0] else Saved()

    def backward_scratch(self, ctx: Ctx, b: int, grads: tuple[bool, ...]) -> int:
        return 0


class _View(Layer):
    """A view of its input (slices, reorderings, reshapes): it allocates nothing and moves no
    data; backward hands the output's gradient on (a slice's backward makes a full-size one)."""

    category: ClassVar[str] = "reshape"
    passes_gradient = Flag(True)

    def aliases(self, training: bool) -> bool:
        """A view of the input."""
        return True

    def moves_data(self) -> bool:
        return False


class Narrow(_View):
    """A slice of the channels: `length` of them from `start` (torch's x.narrow(1, start,
    length), a view). What `chunk` and `split` expand to: `{name: s, type: chunk, chunks: 2}`
    gives layers s.0 and s.1. No params, no ops; RF unchanged."""

    def channel_sources(self, ctx: Ctx) -> str | list[int]:
        start, length = self.span(ctx)
        return list(range(start, start + length))

    type: Literal["narrow"]
    torch_functions: ClassVar[tuple[TorchForm, ...]] = (TorchForm(("torch.narrow", "Tensor.narrow"), "narrow", _narrow),)
    start: Annotated[int, Field(ge=0)] = 0
    length: PosInt | None = None
    """Channels taken; with `chunks`, torch.chunk's rule decides."""
    chunks: PosInt | None = None
    """Take piece `chunk` of torch.chunk(x, chunks, dim=1): ⌈C/chunks⌉ channels each, the last the rest."""
    chunk: Annotated[int, Field(ge=0)] | None = None
    sizes_sum: PosInt | None = None
    """Of a `split`: its sizes' sum, which must be the input's channels (torch.split's rule)."""
    passes_gradient = Flag(False)

    def piece_missing(self, x: Shape) -> bool:
        """torch.chunk returns fewer pieces than `chunks` and this is one it does not return (6
        channels into 4 gives 3 pieces of 2): legal torch while nothing uses it."""
        return self.chunks is not None and len(x) >= 2 and (self.chunk or 0) * -(-x[1] // self.chunks) >= x[1]

    def missing_message(self, c: int) -> str:
        size = -(-c // (self.chunks or 1))
        return (f"torch.chunk of {c} channels into {self.chunks} gives {-(-c // size)} pieces of {size}: there is no "
                f"piece {self.chunk}")

    def span(self, ctx: Ctx) -> tuple[int, int]:
        c = ctx.x[1]
        if self.sizes_sum is not None and self.sizes_sum != c:
            raise LayerError(f"split sizes sum to {self.sizes_sum} but the input has {c} channels", "sizes_sum")
        if self.chunks is not None:
            size = -(-c // self.chunks)
            start = (self.chunk or 0) * size
            if start >= c:  # torch returns fewer pieces: this one is empty, refused where used (analysis)
                return c, 0
            return start, min(size, c - start)
        if self.length is None:
            raise LayerError("narrow needs `length` (or `chunks` and `chunk`)", "length")
        if self.start + self.length > c:
            raise LayerError(f"channels {self.start}..{self.start + self.length - 1} do not exist: the input has {c}",
                             "length")
        return self.start, self.length

    def shape(self, ctx: Ctx) -> Shape:
        if len(ctx.x) < 2:
            raise LayerError(f"expected an input (N, C, …), received {fmt_shape(ctx.x)}")
        return (ctx.x[0], self.span(ctx)[1], *ctx.x[2:])

    def build(self, ctx: Ctx, t: Kit) -> Any:
        return t.ext.Narrow(1, *self.span(ctx))


class PixelShuffle(Layer):
    """Pixel shuffle: (N, C·r², H, W) → (N, C, H·r, W·r) (sub-pixel upsampling). No params, no
    ops (data movement); RF: each output reads one input position, a nearest ×r upsampling."""

    def channel_sources(self, ctx: Ctx) -> str | list[int]:
        return "moves"  # output positions read different input channels

    category: ClassVar[str] = "reshape"
    type: Literal["pixel_shuffle"]
    torch_functions: ClassVar[tuple[TorchForm, ...]] = (TorchForm(("F.pixel_shuffle",), "pixel_shuffle", module("PixelShuffle")),)
    upscale_factor: PosInt

    def shape(self, ctx: Ctx) -> Shape:
        self.expect_rank(ctx.x, 4, "(N, C, H, W)")
        n, c, h, w = ctx.x
        r = self.upscale_factor
        if c % (r * r):
            raise LayerError(f"{c} channels are not divisible by upscale_factor² = {r * r}", "upscale_factor")
        return (n, c // (r * r), h * r, w * r)

    def rf(self, ctx: Ctx, fields: list[list[RF] | None]) -> list[RF] | None:
        f = fields[0]
        return None if f is None else [x.resample(Fraction(1, self.upscale_factor), 1) for x in f]

    def reads(self, ctx: Ctx, axis: int, lo: int, hi: int, real: bool = False) -> list[tuple[int, int] | None]:
        r = self.upscale_factor
        return [(lo // r, hi // r)]

    def build(self, ctx: Ctx, t: Kit) -> Any:
        return t.nn.PixelShuffle(self.upscale_factor)

    def probe(self, ctx: Ctx, t: Kit) -> Any:
        return t.nn.Upsample(scale_factor=self.upscale_factor, mode="nearest")


class PixelUnshuffle(Layer):
    """Pixel unshuffle: (N, C, H·r, W·r) → (N, C·r², H, W). No params, no ops; RF: each output
    position gathers an r×r block, like a kernel-r, stride-r window."""

    def channel_sources(self, ctx: Ctx) -> str | list[int]:
        return "splits"  # each output channel reads another offset of the block

    category: ClassVar[str] = "reshape"
    type: Literal["pixel_unshuffle"]
    torch_functions: ClassVar[tuple[TorchForm, ...]] = (
        TorchForm(("F.pixel_unshuffle",), "pixel_unshuffle", module("PixelUnshuffle")),)
    downscale_factor: PosInt

    def shape(self, ctx: Ctx) -> Shape:
        self.expect_rank(ctx.x, 4, "(N, C, H, W)")
        n, c, h, w = ctx.x
        r = self.downscale_factor
        if h % r or w % r:
            raise LayerError(f"{h}×{w} is not divisible by downscale_factor = {r}", "downscale_factor")
        return (n, c * r * r, h // r, w // r)

    def rf(self, ctx: Ctx, fields: list[list[RF] | None]) -> list[RF] | None:
        f = fields[0]
        r = self.downscale_factor
        return None if f is None else [x.window(r, r) for x in f]

    def reads(self, ctx: Ctx, axis: int, lo: int, hi: int, real: bool = False) -> list[tuple[int, int] | None]:
        r = self.downscale_factor
        return [(lo * r, hi * r + r - 1)]

    def build(self, ctx: Ctx, t: Kit) -> Any:
        return t.nn.PixelUnshuffle(self.downscale_factor)

    def probe(self, ctx: Ctx, t: Kit) -> Any:
        r = self.downscale_factor
        return t.nn.AvgPool2d(r, r)  # every position of the block (a max would pass the gradient to one)


class SelfAttention(Layer):
    """Multi-head self-attention over the H·W positions of an (N, C, H, W) map (BoTNet,
    MobileViT, CoAtNet stages): tokens L = H·W of width C; q, k, v = x·W_qkv (C → 3C), softmax
    attention per head (scaled dot products), out = ·W_o (C → C); back to (N, C, H, W).
    Parameters as nn.MultiheadAttention: 3C·C + 3C + C·C + C (bias).

    MACs = N·L·C·3C + N·L·C·C (projections) + 2·N·L²·C (q·kᵀ and attention·v, all heads) —
    what FlopCounterMode counts for the linears and the two batched matmuls;
    element-wise ops: biases 4·N·L·C, softmax 3·N·heads·L², scale N·heads·L²;
    RF: every output reads every position (the whole input)."""
    autocast: ClassVar[str | dict[str, str]] = "lower"

    category: ClassVar[str] = "attention"
    type: Literal["self_attention"]
    num_heads: PosInt

    @classmethod
    def from_torch(cls, m: Any) -> dict[str, Any]:
        """cnncalc's own module (exported): its heads and whether it has biases."""
        return {"type": "self_attention", "num_heads": m.heads, **({} if m.in_proj_bias is not None else {"bias": False})}
    bias: bool = True
    memory_exact = Flag(False)  # the attention kernel's temporaries depend on the backend

    def shape(self, ctx: Ctx) -> Shape:
        _spatial(self.type, ctx.x)
        if ctx.x[1] % self.num_heads:
            raise LayerError(f"{ctx.x[1]} channels are not divisible by num_heads={self.num_heads}", "num_heads")
        return ctx.x

    def weights(self, ctx: Ctx) -> dict[str, Shape]:
        c = ctx.x[1]
        w: dict[str, Shape] = {"in_proj_weight": (3 * c, c), "out_proj.weight": (c, c)}
        if self.bias:
            w.update({"in_proj_bias": (3 * c,), "out_proj.bias": (c,)})
        return w

    def macs(self, ctx: Ctx) -> int:
        n, c = ctx.x[:2]
        tokens = prod(ctx.x[2:])
        return n * tokens * c * 4 * c + 2 * n * tokens * tokens * c

    def elementwise(self, ctx: Ctx) -> int:
        n, c = ctx.x[:2]
        tokens = prod(ctx.x[2:])
        return (4 * n * tokens * c if self.bias else 0) + 4 * n * self.num_heads * tokens * tokens

    def rf(self, ctx: Ctx, fields: list[list[RF] | None]) -> list[RF] | None:
        f = fields[0]
        return None if f is None else [x.spread(size) for x, size in zip(f, ctx.x[2:])]

    def reads(self, ctx: Ctx, axis: int, lo: int, hi: int, real: bool = False) -> list[tuple[int, int] | None]:
        return [(0, ctx.x[2 + axis] - 1)]

    def _sizes(self, ctx: Ctx) -> tuple[int, int, int]:
        """(N·L·C, N·heads·L², N·L·C): tokens, one attention map per head, tokens."""
        n, c = ctx.x[:2]
        tokens = prod(ctx.x[2:])
        return n * tokens * c, n * self.num_heads * tokens * tokens, n * tokens * c

    def scratch(self, ctx: Ctx, b: int) -> int:
        """An estimate: q, k and v (3·N·L·C), the scores and their softmax (2·N·heads·L²) and
        the heads' output made contiguous (N·L·C)."""
        tokens, maps, _ = self._sizes(ctx)
        return (4 * tokens + 2 * maps) * b

    def saved(self, ctx: Ctx, grads: tuple[bool, ...]) -> Saved:
        """An estimate: the input (for W_qkv), q, k, v, the softmax output and the input of W_o."""
        tokens, maps, _ = self._sizes(ctx)
        return Saved(inputs=(0,), extra=4 * tokens + maps)

    def build(self, ctx: Ctx, t: Kit) -> Any:
        return t.ext.SelfAttention(ctx.x[1], self.num_heads, self.bias)

    def probe(self, ctx: Ctx, t: Kit) -> Any:
        return t.ext.WholeSum()

    def explain(self, ctx: Ctx) -> list[tuple[str, str, int]]:
        n, c = ctx.x[:2]
        tokens = prod(ctx.x[2:])
        lines = super().explain(ctx)
        lines.append(("MACs", f"{n}·{tokens}·{c}·4·{c} + 2·{n}·{tokens}·{tokens}·{c}", self.macs(ctx)))
        return lines


class _Reorder(_View):
    """Axis reorderings (permute, transpose): views; `order(rank)` is the new axis order."""


    def order(self, rank: int) -> tuple[int, ...]:
        raise NotImplementedError

    def rf(self, ctx: Ctx, fields: list[list[RF] | None]) -> list[RF] | None:
        return fields[0]  # in (N, C, spatial…) order; the analyzer hides it while permuted

    def build(self, ctx: Ctx, t: Kit) -> Any:
        return t.ext.Permute(self.order(len(ctx.x)))

    def probe(self, ctx: Ctx, t: Kit) -> Any:
        return self.build(ctx, t)


class Permute(_Reorder):
    """Permute the axes (torch's x.permute(dims), a view), e.g. [0, 2, 3, 1] to channels-last and
    [0, 3, 1, 2] back, as ConvNeXt writes its block: permute → layernorm (over the last axis) →
    linear → gelu → linear → permute. The batch stays first. No params, no ops.

    RF: while the axes are not in (N, C, spatial…) order the field is not shown (`–`); layers
    that only mix the last axis while it holds the channels (linear, a LayerNorm or softmax over
    it) and point-wise layers carry it, and it is shown again after the permute back. Any other
    layer on a permuted tensor ends the field (null), as after flatten."""

    type: Literal["permute"]
    torch_functions: ClassVar[tuple[TorchForm, ...]] = (TorchForm(("torch.permute", "Tensor.permute"), "permute", _permute),)
    onnx_ops: ClassVar[tuple[OnnxForm, ...]] = (OnnxForm(("Transpose",), _onnx_permute),)
    dims: Annotated[list[int], Field(min_length=2, max_length=6)]

    def shape(self, ctx: Ctx) -> Shape:
        rank = len(ctx.x)
        dims = [d % rank if -rank <= d < rank else d for d in self.dims]
        if sorted(dims) != list(range(rank)):
            raise LayerError(f"dims {self.dims} is not a permutation of the {rank} axes of {fmt_shape(ctx.x)}", "dims")
        if dims[0] != 0:
            raise LayerError(f"dims {self.dims} moves the batch axis: it must stay first", "dims")
        return tuple(ctx.x[d] for d in dims)

    def order(self, rank: int) -> tuple[int, ...]:
        return tuple(d % rank for d in self.dims)


class Transpose(_Reorder):
    """Swap two axes (torch's x.transpose(dim0, dim1), a view); the batch stays first; the
    field as for permute."""

    type: Literal["transpose"]
    torch_functions: ClassVar[tuple[TorchForm, ...]] = (
        TorchForm(("torch.transpose", "Tensor.transpose"), "transpose", _transpose),)
    torch_names: ClassVar[tuple[str, ...] | None] = ()  # written as a permute
    dim0: int
    dim1: int

    def order(self, rank: int) -> tuple[int, ...]:
        a, b = self.dim0 % rank, self.dim1 % rank
        dims = list(range(rank))
        dims[a], dims[b] = dims[b], dims[a]
        return tuple(dims)

    def shape(self, ctx: Ctx) -> Shape:
        rank = len(ctx.x)
        if not (-rank <= self.dim0 < rank and -rank <= self.dim1 < rank):
            raise LayerError(f"dims {self.dim0}, {self.dim1} are not axes of {fmt_shape(ctx.x)}", "dim0")
        if 0 in (self.dim0 % rank, self.dim1 % rank):
            raise LayerError("transpose moves the batch axis: it must stay first", "dim0")
        return tuple(ctx.x[d] for d in self.order(rank))


class Unflatten(_View):
    """Split axis `dim` into `sizes` (torch's nn.Unflatten, a view): (N, C·H·W) → (N, C, H, W)
    with dim 1 and sizes [C, H, W]; one size may be -1. No params, no ops; the field ends (null),
    as after flatten."""

    type: Literal["unflatten"]
    torch_functions: ClassVar[tuple[TorchForm, ...]] = (
        TorchForm(("torch.unflatten", "Tensor.unflatten"), "unflatten", _unflatten),)
    dim: int = 1
    sizes: Annotated[list[int], Field(min_length=1, max_length=5)]

    @classmethod
    def from_torch(cls, m: Any) -> dict[str, Any]:
        return {"type": "unflatten", "dim": m.dim, "sizes": list(m.unflattened_size)}

    def shape(self, ctx: Ctx) -> Shape:
        rank = len(ctx.x)
        if not -rank <= self.dim < rank or self.dim % rank == 0:
            raise LayerError(f"dim {self.dim} is not an axis after the batch of {fmt_shape(ctx.x)}", "dim")
        d = self.dim % rank
        return (*ctx.x[:d], *_resolve_sizes(self.sizes, ctx.x[d], "sizes"), *ctx.x[d + 1:])

    def rf(self, ctx: Ctx, fields: list[list[RF] | None]) -> list[RF] | None:
        return None

    def build(self, ctx: Ctx, t: Kit) -> Any:
        return t.nn.Unflatten(self.dim, tuple(self.shape(ctx)[self.dim % len(ctx.x):][:len(self.sizes)]))


class Reshape(_View):
    """Reshape everything after the batch (torch's x.reshape(N, *shape)); one size may be -1.
    A view of a contiguous input (torch copies a permuted one; that copy is not modelled, so
    verify does not judge memory here). No params, no ops; the field ends (null) unless the shape
    is unchanged."""

    type: Literal["reshape"]
    torch_functions: ClassVar[tuple[TorchForm, ...]] = (
        TorchForm(("Tensor.view", "Tensor.reshape", "torch.reshape", "Tensor.unsqueeze", "torch.unsqueeze",
                   "Tensor.squeeze", "torch.squeeze"), None, _reshaped),)
    onnx_ops: ClassVar[tuple[OnnxForm, ...]] = (
        OnnxForm(("Reshape", "Squeeze", "Unsqueeze"), onnx_reshape, reads_constants=True),)
    shape_: Annotated[list[int], Field(min_length=1, max_length=5, alias="shape")]
    memory_exact = Flag(False)

    def shape(self, ctx: Ctx) -> Shape:
        return (ctx.x[0], *_resolve_sizes(self.shape_, prod(ctx.x[1:]), "shape"))

    def rf(self, ctx: Ctx, fields: list[list[RF] | None]) -> list[RF] | None:
        return fields[0] if ctx.out == ctx.x else None

    def probe(self, ctx: Ctx, t: Kit) -> Any:
        """The shape unchanged: the identity. Else the field ends, and the stand-in is every
        element reading all of the input (its per-sample sum) shaped (N, 1, …, 1): a gate
        written with linear and view (the one-channel stand-ins have no shape to view)."""
        if ctx.out == ctx.x:
            return t.nn.Identity()
        return t.nn.Sequential(t.nn.Flatten(1), t.ext.SumLast(1), t.nn.Unflatten(1, (1,) * (len(ctx.out) - 1)))

    def aliases(self, training: bool) -> bool:
        """A view of a contiguous input."""
        return True

    def build(self, ctx: Ctx, t: Kit) -> Any:
        return t.ext.Reshape(tuple(self.shape(ctx)[1:]))


def _resolve_sizes(sizes: list[int], total: int, field: str) -> list[int]:
    """torch's view rule: sizes multiply to `total`; one -1 takes what is left."""
    if any(s == 0 or s < -1 for s in sizes) or sizes.count(-1) > 1:
        raise LayerError(f"{field} {sizes}: sizes must be positive, with at most one -1", field)
    known = prod(s for s in sizes if s != -1)
    if -1 in sizes:
        if total % known:
            raise LayerError(f"{field} {sizes}: {total} elements do not divide by {known}", field)
        return [total // known if s == -1 else s for s in sizes]
    if known != total:
        raise LayerError(f"{field} {sizes} holds {known} elements but the input has {total}", field)
    return list(sizes)



class View(Reshape):
    """x.view(N, *shape): as reshape, but torch refuses a permuted (non-contiguous) input
    where reshape would copy; always a view, so its memory is exact."""

    type: Literal["view"]  # type: ignore[assignment]
    memory_exact = Flag(True)
    torch_names: ClassVar[tuple[str, ...] | None] = ()  # written as reshape
