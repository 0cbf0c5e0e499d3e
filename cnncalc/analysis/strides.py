"""Memory order (strides) through the layers that make views, so that `view` is refused exactly
where torch refuses it: a view needs sizes compatible with the input's strides (torch's
`computeStride`), which a permute or transpose, or a slice, can break.

Strides are tracked exactly through permute, transpose, narrow, view, reshape, flatten,
unflatten and identity, starting from a contiguous input. Any other layer makes a fresh
contiguous tensor when all its inputs are contiguous; on 4-D and 5-D tensors a layer that
declares `follows_channels_last` (convolutions, norms, pooling, constant pads, upsampling, cat)
writes channels-last where every input suggests it (torch's suggest_memory_format; 5-D:
channels_last_3d, left unknown but where the layer declares `follows_channels_last_3d`: cat),
else contiguous; one that declares `writes_contiguous`
(linear) always writes a contiguous tensor.
A layer that declares `keeps_layout` (element-wise in torch's TensorIterator: activations,
dropout, add, mul) keeps its inputs' strides when they all have the output's shape and one
non-overlapping, dense layout (a permuted order; TensorIterator's fast setup, `empty_like`) in
torch's canonical form. Anywhere else (a
slice, a broadcast, another layer) on a non-contiguous input the output's strides are left
unknown (None), and a view of an unknown layout is accepted: refused only where torch certainly
refuses."""
from __future__ import annotations

from functools import lru_cache
from math import prod

from cnncalc.errors import LayerError
from cnncalc.layers.base import Ctx, Layer, Shape

Strides = tuple[int, ...]


@lru_cache(maxsize=4096)  # every layer asks (#30); a network has few distinct shapes
def contiguous(shape: Shape) -> Strides:
    """Row-major strides: the last axis 1, each earlier one the product of the sizes after it."""
    out, step = [], 1
    for size in reversed(shape):
        out.append(step)
        step *= size
    return tuple(reversed(out))


def is_contiguous(shape: Shape, strides: Strides) -> bool:
    """torch's rule: the strides of axes of size > 1 are row-major (size-1 axes are free)."""
    step = 1
    for size, stride in zip(reversed(shape), reversed(strides)):
        if size != 1:
            if stride != step:
                return False
            step *= size
    return True


def is_dense(shape: Shape, strides: Strides) -> bool:
    """torch's is_non_overlapping_and_dense: the axes of size > 1, in the order of their
    strides, are row-major (no gap, no overlap); size-1 axes are free."""
    step = 1
    for stride, size in sorted((st, sz) for sz, st in zip(shape, strides) if sz > 1):
        if stride != step:
            return False
        step *= size
    return True


def channels_last(shape: Shape) -> Strides:
    """torch's channels-last strides of an (N, C, spatial…) shape (channels_last, and
    channels_last_3d for 5 axes): C 1, then the spatial axes from the last, then N."""
    out = [1] * len(shape)
    step = shape[1]
    for a in range(len(shape) - 1, 1, -1):
        out[a] = step
        step *= shape[a]
    out[0] = step
    return tuple(out)


def is_channels_last(shape: Shape, strides: Strides) -> bool:
    """torch's is_contiguous(memory_format=channels_last) for 4 axes (size-1 axes are free)."""
    if len(shape) != 4:
        return False
    step = 1
    for d in (1, 3, 2, 0):
        if shape[d] != 1:
            if strides[d] != step:
                return False
            step *= shape[d]
    return True


def suggests_channels_last(shape: Shape, strides: Strides) -> bool:
    """torch's suggest_memory_format() == channels_last (4 axes) or channels_last_3d (5 axes)
    (c10/core/MemoryFormat.h, is_channels_last_strides_2d_s4/3d_s5): the strides of C, then the
    spatial axes from the last, then N never decrease, each at least the extent of the one
    before; ambiguous cases (C of stride 0, N×1×1×1 strides) are contiguous."""
    if len(shape) not in (4, 5) or strides[1] == 0:
        return False
    low = 0
    for d in ((1, 3, 2, 0) if len(shape) == 4 else (1, 4, 3, 2, 0)):
        if shape[d] == 0 or strides[d] < low:
            return False
        if d == 0 and low == strides[1]:
            return False
        low = strides[d] * shape[d] if shape[d] > 1 else strides[d]
    return True


def view_strides(old: Shape, strides: Strides, new: Shape) -> Strides | None:
    """torch's computeStride (aten/src/ATen/TensorUtils.cpp): the strides of `new` viewing a
    tensor of shape `old` and `strides`, or None when no view exists (torch raises; reshape
    copies). Axes of `old` merge into chunks whose strides are row-major among themselves;
    each chunk must be exactly a run of `new`'s axes."""
    if 0 in old:
        return contiguous(new)
    view_d = len(new) - 1
    base = strides[-1]
    tensor_numel = view_numel = 1
    out = [0] * len(new)
    for d in range(len(old) - 1, -1, -1):
        tensor_numel *= old[d]
        if d == 0 or (old[d - 1] != 1 and strides[d - 1] != tensor_numel * base):
            while view_d >= 0 and (view_numel < tensor_numel or new[view_d] == 1):
                out[view_d] = view_numel * base
                view_numel *= new[view_d]
                view_d -= 1
            if view_numel != tensor_numel:
                return None
            if d > 0:
                base = strides[d - 1]
                tensor_numel = view_numel = 1
    return tuple(out) if view_d == -1 else None


_REORDERS: dict[type, bool] = {}  #: per layer class: it has an `order` (permute, transpose)


def through(layer: Layer, shapes: list[Shape], out: Shape, ins: list[Strides | None]) -> Strides | None:
    """The output's strides (None: unknown) from the inputs' shapes and strides; LayerError for
    a view torch refuses."""
    kind, x = layer.type, shapes[0]
    s0 = ins[0]
    s = s0 if len(ins) == 1 else None
    cls = type(layer)
    reorders = _REORDERS.get(cls)
    if reorders is None:  # (getattr of a missing attribute is slow on a model: asked once per class)
        reorders = _REORDERS[cls] = callable(getattr(cls, "order", None))
    if reorders:  # permute, transpose
        return None if s is None else tuple(s[d] for d in layer.order(len(x)))  # type: ignore[attr-defined]
    if kind in ("narrow", "identity"):
        return s
    if kind in ("view", "reshape", "flatten", "unflatten"):
        if s is None:
            return None
        new = view_strides(x, s, out)
        if new is not None:
            return new
        if kind == "view":
            raise LayerError(f"view of a non-contiguous tensor (shape {'×'.join(map(str, x))}, strides "
                             f"{', '.join(map(str, s))} after a permute, transpose or slice): torch refuses to view it "
                             f"as {'×'.join(map(str, out))}; use reshape (which copies), or view it before the "
                             "reordering", "shape")
        return contiguous(out)  # reshape and flatten copy
    if layer.writes_contiguous:
        return contiguous(out)
    if layer.keeps_layout and s is not None and x == out and layer.aliases(False) and layer.aliases(True):
        return s  # in place: the output is the input itself
    if layer.keeps_layout and s0 is not None and all(shape == out for shape in shapes) and all(i == s0 for i in ins):
        # TensorIterator's fast setup: canonical strides for a contiguous or channels-last input
        # (size-1 axes included), else a dense input's own strides
        fresh = (contiguous(out) if is_contiguous(out, s0) else channels_last(out) if is_channels_last(out, s0)
                 else s0 if is_dense(out, s0) else None)
        # but some return the input itself (in place, dropout at inference) or write into
        # `empty_like` it (hardtanh, relu6; dropout on CUDA), which keeps a dense input's strides
        # as they are: certain only where both ways agree (not so for odd strides of size-1 axes)
        return fresh if fresh == s0 else None
    rank = len(out)
    if layer.follows_channels_last and rank in (4, 5) and all(i is not None and len(x) == rank
                                                              for x, i in zip(shapes, ins)):
        # (asked before the contiguous rule below: size-1 axes can make a channels-last tensor
        # contiguous too, C = 1 after a permute, and then torch still suggests channels-last)
        # the memory format its inputs suggest (a conv after a permute to N×C×H×W of an N×H×W×C
        # map; a contiguous one after a slice); channels-last 3-D outputs are not followed
        if all(suggests_channels_last(x, i) for x, i in zip(shapes, ins)):  # type: ignore[arg-type]
            return channels_last(out) if rank == 4 or layer.follows_channels_last_3d else None
        return contiguous(out)
    if all(i is not None and (i == contiguous(shape) or is_contiguous(shape, i)) for shape, i in zip(shapes, ins)):
        return contiguous(out)
    return None


def reshape_copies(ctx: Ctx, shape: Shape | None = None) -> bool:
    """Whether torch's reshape (flatten is one) copies its input rather than viewing it as
    `shape` (default: the output's): no view of that shape can follow the input's strides
    (computeStride fails). The strides are those the analysis tracked, else (unknown, or not
    tracked) those of a permutation of a contiguous tensor in its axis order (ctx.layouts)."""
    known = ctx.__dict__.get("in_strides")  # the input's strides, as the analysis tracked them
    if known is not None:
        return view_strides(ctx.x, known, shape or ctx.out) is None
    if ctx.natural(0):  # (unknown strides: those of its axis order, as a fresh tensor has them)
        return False
    x, order = ctx.x, ctx.layouts[0]
    natural = [0] * len(x)
    for axis, held in enumerate(order):
        natural[held] = x[axis]
    base = contiguous(tuple(natural))
    return view_strides(x, tuple(base[held] for held in order), shape or ctx.out) is None


def permuted_grad_copies(out: Shape, order: tuple[int, ...]) -> bool:
    """Whether a linear whose (N, …, features) output `out` a permute or transpose (`order`)
    reads gets a gradient its matmul must copy to fold to 2-D: the gradient arrives contiguous
    in the permuted order (from the layer after it), and no view folds its leading axes."""
    permuted = tuple(out[d] for d in order)
    base = contiguous(permuted)
    strides = [0] * len(out)
    for a, d in enumerate(order):
        strides[d] = base[a]
    return view_strides(out, tuple(strides), (prod(out[:-1]), out[-1])) is None
