"""One number times a tensor, plus one: a constant factor (NF-ResNet's α and β) or a learnable
scalar scale and bias (HGNetV2's LearnableAffineBlock)."""

from math import prod
from typing import Any, ClassVar, Literal

from pydantic import model_validator

from cnncalc.layers.base import Ctx, Flag, Kit, Layer, Saved, Shape


class Scale(Layer):
    """y = factor·x: one number times every element (NF-ResNet's `x * beta`, `out * alpha`; NFNet's
    activation gamma). With `learnable` the factor is a parameter `scale` of shape (1,), initialised
    to `factor`, and with `bias` a learnable `bias` of shape (1,) is added (initialised to 0):
    timm's LearnableAffineBlock (HGNetV2), y = scale·x + bias.

    params = 1 with learnable, + 1 with bias; element-wise ops = 1 per element (the product),
    + 1 per element with bias; RF point-wise."""

    category: ClassVar[str] = "activation"
    type: Literal["scale"]
    torch_names: ClassVar[tuple[str, ...] | None] = ("Scale",)  # cnncalc's module; import reads timm's by its forward
    keeps_layout = Flag(True)
    factor: float = 1.0
    learnable: bool = False
    bias: bool = False
    """with learnable: a learnable number added after the product"""

    @model_validator(mode="after")
    def _bias_needs_learnable(self) -> "Scale":
        if self.bias and not self.learnable:
            raise ValueError("bias: true needs learnable: true (a constant shift has no layer type)")
        return self

    channel_wise: ClassVar[bool] = True  # one number times every value: channel c reads channel c alone

    def weights(self, ctx: Ctx) -> dict[str, Shape]:
        if not self.learnable:
            return {}
        return {"scale": (1,), **({"bias": (1,)} if self.bias else {})}

    def elementwise(self, ctx: Ctx) -> int:
        return prod(ctx.out) * (2 if self.bias else 1)

    @property
    def autocast(self) -> str:  # type: ignore[override]
        """x · a float32 parameter is float32; x · a Python number keeps x's dtype."""
        return "float" if self.learnable else "same"

    def build(self, ctx: Ctx, t: Kit) -> Any:
        return t.ext.Scale(self.factor, self.learnable, self.bias)

    def scratch(self, ctx: Ctx, b: int) -> int:
        """scale·x, before the bias is added to it."""
        return prod(ctx.out) * b if self.learnable and self.bias else 0

    def saved(self, ctx: Ctx, grads: tuple[bool, ...]) -> Saved:
        """x·a keeps x for a learnable factor's gradient (a constant's needs nothing)."""
        return Saved(inputs=(0,) if self.learnable and self.trainable else ())

    def backward_scratch(self, ctx: Ctx, b: int, grads: tuple[bool, ...]) -> int:
        """A learnable factor's gradient is summed from a full-size product grad·x."""
        return prod(ctx.out) * b if self.learnable and self.trainable else 0

    @classmethod
    def from_torch(cls, m: Any) -> dict[str, Any]:
        entry: dict[str, Any] = {"type": "scale", "factor": float(m.factor), "learnable": m.scale is not None,
                                 "bias": m.bias is not None}
        return cls.lean(entry)
