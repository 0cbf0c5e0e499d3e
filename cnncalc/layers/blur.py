"""Anti-aliased downsampling: a fixed binomial blur, then the stride (timm's BlurPool2d, TResNet)."""

from math import comb, prod
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field

from cnncalc.errors import LayerError
from cnncalc.layers.base import Ctx, Flag, Kit, Layer, Saved, Shape
from cnncalc.layers.conv import _Window
from cnncalc.layers.field import RF
from cnncalc.layers.routes import Unsupported


class BlurPool2d(_Window, Layer):
    """A fixed depthwise blur with a stride (timm's BlurPool2d; Zhang 2019): each side padded by
    P = ⌊((S − 1) + (K − 1))/2⌋ (`pad_mode`, reflect by default), then every channel convolved
    with the K×K binomial filter, the outer product of C(K − 1, k)/2^(K − 1), at stride S.

    H' = ⌊(H + 2P − K)/S⌋ + 1 per axis; params 0; buffers = C·K² (the filter, a buffer kept out of
    the state_dict, as timm's); MACs = N·C·∏H'·K² (a depthwise convolution); RF: r' = r + (K−1)·j,
    j' = j·S."""

    follows_channels_last = Flag(True)  # on a channels-last input, a channels-last output (analysis/strides.py)

    category: ClassVar[str] = "pooling"
    autocast: ClassVar[str | dict[str, str]] = "lower"  # F.conv2d
    type: Literal["blur_pool2d"]
    torch_names: ClassVar[tuple[str, ...] | None] = ("BlurPool2d",)  # timm's, and cnncalc's copy
    dims: ClassVar[int] = 2
    #: an estimate: exact where its input needs no gradient (the case rows), but after a trained
    #: layer a training step measured 0.82× this model and CPU autocast 1.28× (reflect padding runs
    #: in float32 there, a copy this model does not count)
    memory_exact = Flag(False)
    filt_size: Annotated[int, Field(ge=2, le=64)] = 3
    stride: Annotated[int, Field(ge=1)] = 2
    pad_mode: Literal["reflect", "constant", "replicate", "circular"] = "reflect"

    # the window's terms, as _Window reads them
    @property
    def kernel_size(self) -> tuple[int, ...]:
        return (self.filt_size,) * 2

    @property
    def strides(self) -> tuple[int, ...]:
        return (self.stride,) * 2

    @property
    def dilations(self) -> tuple[int, ...]:
        return (1, 1)

    @property
    def padding(self) -> tuple[tuple[int, int], ...]:
        p = ((self.stride - 1) + (self.filt_size - 1)) // 2
        return ((p, p),) * 2

    @property
    def padding_mode(self) -> str:
        return "zeros" if self.pad_mode == "constant" else self.pad_mode

    def shape(self, ctx: Ctx) -> Shape:
        self.expect_rank(ctx.x, 4, "(N, C, H, W)")
        p = self.padding[0][0]
        if self.pad_mode in ("reflect", "circular") and any(p > (h - 1 if self.pad_mode == "reflect" else h)
                                                            for h in ctx.x[2:]):
            raise LayerError(f"{self.pad_mode} padding {p} needs an input of at least "
                             f"{p + (self.pad_mode == 'reflect')} per spatial axis, received {ctx.x[2:]}", "filt_size")
        return (*ctx.x[:2], *self.window_shape(ctx))

    def buffers(self, ctx: Ctx) -> dict[str, Shape]:
        return {"filt": (ctx.x[1], 1, self.filt_size, self.filt_size)}

    def macs(self, ctx: Ctx) -> int:
        return prod(ctx.out) * self.filt_size ** 2

    def rf(self, ctx: Ctx, fields: list[list[RF] | None]) -> list[RF] | None:
        return self.window_rf(ctx, fields)

    @classmethod
    def from_torch(cls, m: Any) -> dict[str, Any]:
        """timm's module as it is; one built without `channels` keeps a single filter (buffers K²,
        expanded over the channels in forward), which this type does not hold: refused by name."""
        if getattr(m, "channels", 0) is None:
            raise Unsupported("timm's BlurPool2d built without channels (one K×K filter expanded over the "
                              "channels in forward; blur_pool2d holds one per channel)")
        return super().from_torch(m)

    channel_wise: ClassVar[bool] = True  # depthwise

    def warnings(self, ctx: Ctx) -> list[str]:
        return self.window_warnings(ctx)

    def scratch(self, ctx: Ctx, b: int) -> int:
        """The padded copy F.pad makes first."""
        p = self.padding[0][0]
        return prod(ctx.x[:2]) * prod(h + 2 * p for h in ctx.x[2:]) * b if p else 0

    def saved(self, ctx: Ctx, grads: tuple[bool, ...]) -> Saved:
        """The convolution keeps its padded input (measured: torch's convolution saves input and
        weight); reflect and replicate padding also keep the input for the input's gradient. An
        estimate: exact where the input needs no gradient; after a trained layer a training step
        measured 0.82× this, and under CPU autocast (reflect padding in float32) 1.28×."""
        p = self.padding[0][0]
        if not p:
            return Saved(inputs=(0,))
        keep = grads[0] and self.pad_mode in ("reflect", "replicate")
        return Saved(inputs=(0,) if keep else (), extra=prod(ctx.x[:2]) * prod(h + 2 * p for h in ctx.x[2:]))

    def explain(self, ctx: Ctx) -> list[tuple[str, str, int]]:
        k = self.filt_size
        return [*self.explain_window(ctx), *super().explain(ctx),
                ("MACs", f"{'·'.join(map(str, ctx.out))} · {k}·{k}", self.macs(ctx))]

    def build(self, ctx: Ctx, t: Kit) -> Any:
        return t.ext.BlurPool2d(ctx.x[1], self.filt_size, self.stride, self.pad_mode)

    @staticmethod
    def coefficients(k: int) -> list[float]:
        """C(k − 1, i)/2^(k − 1), i = 0..k − 1: the filter's one-axis factor (sums to 1)."""
        return [comb(k - 1, i) / 2 ** (k - 1) for i in range(k)]
