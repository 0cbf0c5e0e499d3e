"""A sum along one axis (MobileViTv2's linear self-attention: the context vector Σ_n k·s over the
patches)."""

from math import prod
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field

from cnncalc.errors import LayerError
from cnncalc.layers.base import Ctx, Flag, Kit, Layer, Shape, fmt_shape
from cnncalc.layers.field import RF
from cnncalc.layers.routes import TorchCall, TorchForm, Traced, Unsupported


def _sum(call: TorchCall, x: Any, dim: Any = None, keepdim: Any = False, dtype: Any = None) -> tuple[Any, list[Any]]:
    if isinstance(dim, (list, tuple)) and len(dim) == 1:
        dim = dim[0]
    if not isinstance(x, Traced) or not isinstance(dim, int) or isinstance(dim, bool) or dtype is not None \
            or not isinstance(keepdim, bool) or dim % len(x.shape) == 0:
        raise Unsupported("sum over other than one axis after the batch (or with a dtype)")
    return {"type": "sum", "dim": dim, **({"keepdim": True} if keepdim else {})}, [x]


class Sum(Layer):
    """Sum along axis `dim` (torch's x.sum(dim, keepdim)); the batch axis stays. Output: that
    axis dropped, or kept as size 1 with `keepdim`.

    No params; element-wise ops = (n − 1) per output element, n the axis's size; RF: the
    input's over the channels with keepdim (point-wise in space), else none (the field ends, as
    after a reshape). Autograd keeps nothing; the input's gradient is the output's, expanded (a
    view). Under autocast on CUDA it runs in float32 (torch's fp32 list: sum)."""

    category: ClassVar[str] = "reshape"
    autocast: ClassVar[str | dict[str, str]] = {"cuda": "fp32"}
    type: Literal["sum"]
    dim: int
    keepdim: bool = False
    passes_gradient = Flag(True)
    torch_functions: ClassVar[tuple[TorchForm, ...]] = (TorchForm(("torch.sum", "Tensor.sum"), "sum", _sum),)

    def axis(self, ctx: Ctx) -> int:
        r = len(ctx.x)
        if not -r <= self.dim < r or self.dim % r == 0:
            raise LayerError(f"dim {self.dim} is not an axis after the batch of {fmt_shape(ctx.x)}", "dim")
        return self.dim % r

    def shape(self, ctx: Ctx) -> Shape:
        d = self.axis(ctx)
        return (*ctx.x[:d], *((1,) if self.keepdim else ()), *ctx.x[d + 1:])

    def elementwise(self, ctx: Ctx) -> int:
        return (ctx.x[self.axis(ctx)] - 1) * prod(ctx.out)

    def channel_sources(self, ctx: Ctx) -> str | list[int]:
        return "each" if self.axis(ctx) != 1 and self.keepdim else "other"

    def _pointwise(self, ctx: Ctx) -> bool:
        """Over the channels of a map, keeping the axis: every position reads its own."""
        return self.keepdim and len(ctx.x) >= 3 and self.axis(ctx) == 1

    def rf(self, ctx: Ctx, fields: list[list[RF] | None]) -> list[RF] | None:
        return fields[0] if self._pointwise(ctx) else None

    def reads(self, ctx: Ctx, axis: int, lo: int, hi: int, real: bool = False) -> list[tuple[int, int] | None]:
        return [(lo, hi) if self._pointwise(ctx) else None]

    def build(self, ctx: Ctx, t: Kit) -> Any:
        return t.ext.SumAlong(self.dim, self.keepdim)

    def probe(self, ctx: Ctx, t: Kit) -> Any:
        return self.build(ctx, t)


def _normalize(call: TorchCall, x: Any, p: Any = 2.0, dim: Any = 1, eps: Any = 1e-12, out: Any = None
               ) -> tuple[Any, list[Any]]:
    if not isinstance(x, Traced) or out is not None or not isinstance(dim, int) or isinstance(dim, bool) \
            or type(p) not in (int, float) or float(p) != 2.0 or type(eps) not in (int, float) \
            or dim % len(x.shape) == 0:
        raise Unsupported("normalize other than the L2 norm along one axis after the batch")
    return {"type": "normalize", "dim": dim, **({"eps": float(eps)} if eps != 1e-12 else {})}, [x]


class Normalize(Layer):
    """x / max(‖x‖₂, eps) along axis `dim` (torch's F.normalize with p = 2): every vector along
    that axis scaled to unit length (EdgeNeXt's cross-covariance attention normalises q and k).

    No params; element-wise ops = 3 per element (square, sum, divide) + 2 per norm (root and the
    eps bound); RF: the input's along the channels of a map (point-wise in space), else none
    (the field ends, as after a reshape). Memory an estimate (the norm and its clamped copy are
    not modelled). Under autocast on CUDA the norm runs in float32 (torch's fp32 list:
    linalg_vector_norm), so the quotient is float32."""

    category: ClassVar[str] = "normalization"
    autocast: ClassVar[str | dict[str, str]] = {"cuda": "fp32"}
    type: Literal["normalize"]
    dim: int = 1
    eps: Annotated[float, Field(gt=0, allow_inf_nan=False)] = 1e-12
    memory_exact = Flag(False)
    torch_functions: ClassVar[tuple[TorchForm, ...]] = (TorchForm(("F.normalize",), "normalize", _normalize),)

    def shape(self, ctx: Ctx) -> Shape:
        r = len(ctx.x)
        if not -r <= self.dim < r or self.dim % r == 0:
            raise LayerError(f"dim {self.dim} is not an axis after the batch of {fmt_shape(ctx.x)}", "dim")
        return ctx.x

    def elementwise(self, ctx: Ctx) -> int:
        return 3 * prod(ctx.out) + 2 * prod(ctx.out) // ctx.x[self.dim % len(ctx.x)]

    def _pointwise(self, ctx: Ctx) -> bool:
        """Along the channels of a map: every position reads its own."""
        return len(ctx.x) >= 3 and self.dim % len(ctx.x) == 1

    def rf(self, ctx: Ctx, fields: list[list[RF] | None]) -> list[RF] | None:
        return fields[0] if self._pointwise(ctx) else None

    def reads(self, ctx: Ctx, axis: int, lo: int, hi: int, real: bool = False) -> list[tuple[int, int] | None]:
        return [(lo, hi) if self._pointwise(ctx) else None]

    def build(self, ctx: Ctx, t: Kit) -> Any:
        return t.ext.Normalize(self.dim, self.eps)
