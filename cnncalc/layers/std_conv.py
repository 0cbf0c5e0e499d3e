"""A weight-standardised convolution (timm's StdConv2d and ScaledStdConv2d: BiT, NF-ResNet, NFNet)."""

from math import prod
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, model_validator

from cnncalc.layers.base import Ctx, Flag, Kit, Shape
from cnncalc.layers.conv import Conv2d


def _gamma(scale: float, fan_in: int) -> float:
    """γ from timm's stored scale = γ·fan_in^−½: the shortest decimal giving that very scale."""
    exact = scale / fan_in ** -0.5
    return next((g for g in (float(f"{exact:.{d}g}") for d in range(1, 18)) if g * fan_in ** -0.5 == scale), exact)


class StdConv2d(Conv2d):
    """A 2-D convolution whose weight is standardised on every forward pass (Weight
    Standardization; timm's StdConv2d, and with `scaled` its ScaledStdConv2d): each filter's
    C_in/groups·∏K weights W_o are replaced by (W_o − mean(W_o)) / √(var(W_o) + eps) (the biased
    variance, as F.batch_norm in training mode computes it), and with `scaled` then multiplied by
    gain_o·γ/√fan_in (a learnable gain per output channel, fan_in = C_in/groups·∏K). Shapes, MACs
    and the receptive field are the convolution's.

    params = the convolution's + C_out with `scaled` (the gain, shape (C_out, 1, 1, 1));
    element-wise ops = the bias's N·C_out·∏H' + the standardisation, once per forward pass over
    the W = C_out·fan_in weights: 6·W (mean: a sum; variance: a difference, a square and a sum;
    the result: a difference and a product) + 4·C_out (the two divisions by fan_in, + eps, the
    reciprocal root), with `scaled` + W (times the per-filter factor) + C_out (gain·γ/√fan_in)."""

    type: Literal["std_conv2d"]  # type: ignore[assignment]
    torch_names: ClassVar[tuple[str, ...] | None] = ("StdConv2d",)  # read by import from timm's four classes
    absorbs_affine: ClassVar[bool] = False  # the weight is recomputed: a folded affine would be standardised away
    onnx_ops: ClassVar[tuple[Any, ...]] = ()  # ONNX holds the computed weight as a plain Conv's input
    memory_exact = Flag(False)  # the standardised weight and its statistics are not modelled
    eps: Annotated[float, Field(gt=0)] = 1e-6
    scaled: bool = False
    """timm's ScaledStdConv2d: a learnable gain per output channel, times gamma/√fan_in."""
    gamma: float = 1.0
    """with `scaled`: the constant factor (NF-ResNet's activation gamma, 1.7139… after relu)."""

    @model_validator(mode="after")
    def _zeros(self) -> "StdConv2d":
        if self.padding_mode != "zeros":
            raise ValueError("std_conv2d pads with zeros only (padding_mode zeros)")
        if self.gamma != 1.0 and not self.scaled:
            raise ValueError("gamma applies only with scaled: true")
        return self

    def fan_in(self, ctx: Ctx) -> int:
        return ctx.x[1] // self.groups * prod(self.kernel_size)

    def weights(self, ctx: Ctx) -> dict[str, Shape]:
        w = super().weights(ctx)
        if self.scaled:
            w["gain"] = (self.out_channels, 1, 1, 1)
        return w

    def elementwise(self, ctx: Ctx) -> int:
        w = self.out_channels * self.fan_in(ctx)
        return super().elementwise(ctx) + 6 * w + 4 * self.out_channels + (w + self.out_channels if self.scaled else 0)

    def explain(self, ctx: Ctx) -> list[tuple[str, str, int]]:
        w = self.out_channels * self.fan_in(ctx)
        c = self.out_channels
        expr = f"6·{w} + 4·{c}" + (f" + {w} + {c}" if self.scaled else "")  # 6·W + 4·C_out (+ W + C_out scaled), W = C_out·fan_in
        return [*super().explain(ctx), ("standardisation (element-wise)", expr,
                                        6 * w + 4 * c + (w + c if self.scaled else 0))]

    def build(self, ctx: Ctx, t: Kit) -> Any:
        pads = self.pads(ctx)
        even = all(a == b for a, b in pads)
        padding = tuple(a for a, _ in pads) if even else 0
        return t.ext.StdConv2d(ctx.x[1], self.out_channels, self.kernel_size, self.stride, padding, self.dilation,
                               self.groups, self.bias, self.eps, self.scaled, self.gamma, None if even else pads)

    @classmethod
    def from_torch(cls, m: Any) -> dict[str, Any]:
        """timm's StdConv2d, ScaledStdConv2d, StdConv2dSame, ScaledStdConv2dSame (and cnncalc's
        module): the convolution's settings, eps, the gain and γ (from scale = γ/√fan_in); the
        Same variants' padding computed in forward is TensorFlow's 'same'."""
        entry = super().from_torch(m)
        if getattr(m, "gain", None) is not None:
            entry["scaled"] = True
            entry["gamma"] = _gamma(float(m.scale), int(m.weight[0].numel()))
        if getattr(m, "same_pad", False):
            entry["padding"] = "same"
        elif getattr(m, "flat", None):
            entry["padding"] = [m.flat[2 * a:2 * a + 2] for a in reversed(range(2))]
        return cls.lean(entry)
