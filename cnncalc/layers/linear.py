"""Fully connected layers."""

from math import prod
from typing import Any, ClassVar, Literal

from cnncalc.errors import LayerError
from cnncalc.layers.base import Ctx, Flag, Kit, Layer, PosInt, Saved, Shape, fmt_shape
from cnncalc.layers.routes import OnnxForm, OnnxNode, Unsupported


def _onnx_gemm(node: OnnxNode) -> tuple[dict[str, Any], dict[str, Any]]:
    """Gemm y = x·Wᵀ + b (transB 1, torch's exporter) or x·W + b, alpha = beta = 1."""
    a, ins = node.a, node.ins
    if a.get("alpha", 1.0) != 1.0 or a.get("beta", 1.0) != 1.0 or a.get("transA", 0):
        raise Unsupported("Gemm with alpha, beta or transA")
    w = node.weight(ins[1])
    w = w if a.get("transB", 0) else w.T
    entry = {"type": "linear", "out_features": int(w.shape[0]), **({} if len(ins) > 2 else {"bias": False})}
    return entry, {"weight": w, **({"bias": node.weight(ins[2])} if len(ins) > 2 else {})}


class Linear(Layer):
    """Fully connected layer on the last axis: y = x·Wᵀ + b.

    params = in·out + out·bias; MACs = (product of all leading axes, batch included)·in·out;
    element-wise ops = bias adds. RF: null (every output sees every input feature)."""
    autocast: ClassVar[str | dict[str, str]] = "lower"

    category: ClassVar[str] = "linear"
    absorbs_affine: ClassVar[bool] = True
    writes_contiguous = Flag(True)  # matmul folds the input to 2-D (a copy where no view folds it)
    type: Literal["linear"]
    onnx_ops: ClassVar[tuple[OnnxForm, ...]] = (OnnxForm(("Gemm",), _onnx_gemm),)
    out_features: PosInt
    bias: bool = True
    in_features: PosInt | None = None
    """Optional: inferred from the input's last axis; checked when given."""

    def shape(self, ctx: Ctx) -> Shape:
        if len(ctx.x) < 2:
            raise LayerError(f"expected an input (N, …, features), received {fmt_shape(ctx.x)}")
        note = ctx.notes[0] if ctx.notes else None
        self.check_declared("in_features", self.in_features, ctx.x[-1], "features", note)
        return (*ctx.x[:-1], self.out_features)

    def weights(self, ctx: Ctx) -> dict[str, Shape]:
        w: dict[str, Shape] = {"weight": (self.out_features, ctx.x[-1])}
        if self.bias:
            w["bias"] = (self.out_features,)
        return w

    def macs(self, ctx: Ctx) -> int:
        return prod(ctx.x) * self.out_features

    def elementwise(self, ctx: Ctx) -> int:
        return prod(ctx.out) if self.bias else 0

    def rf(self, ctx: Ctx, fields: list) -> None:
        return None

    def last_axis_only(self, ctx: Ctx) -> bool:
        return True

    def warnings(self, ctx: Ctx) -> list[str]:
        """A linear on an (N, C, H, W) map is legal torch but mixes only the last spatial axis:
        the commonest beginner mistake (a forgotten flatten, or a permute to channels-last)."""
        if len(ctx.x) > 2 and ctx.natural(0):
            return [f"linear reads the last axis of a {fmt_shape(ctx.x)} map, which holds "
                    f"{'the width' if len(ctx.x) == 4 else 'a spatial axis'}, not the features: add a flatten before "
                    "it (or a permute to channels-last)"]
        return []

    def explain(self, ctx: Ctx) -> list[tuple[str, str, int]]:
        return [*super().explain(ctx),
                ("MACs", f"{'·'.join(map(str, ctx.x[:-1]))} · {ctx.x[-1]} · {self.out_features}", self.macs(ctx))]

    def build(self, ctx: Ctx, t: Kit) -> Any:
        return t.nn.Linear(ctx.x[-1], self.out_features, self.bias)

    def saved(self, ctx: Ctx, grads: tuple[bool, ...]) -> Saved:
        """Autograd keeps the input for the weight's gradient. On a permuted map (channels-last
        after a permute or transpose) whose leading axes no view can fold into one, torch's
        matmul folds a copy (reshape) and keeps that copy instead; frozen, the copy lives only
        inside the operator (the memory walk applies this, from analysis/strides.py). Its
        gradient arriving permuted (a permute back after it) is folded to 2-D with a copy in
        backward, made while that gradient is alive; autograd frees the gradient before mm makes
        the input's and weight's gradients, which the copy outlives (analysis/memory.py)."""
        return Saved(inputs=(0,)) if self.trainable else Saved()

    def probe(self, ctx: Ctx, t: Kit) -> Any:
        """Every output feature reads the whole last axis: its sum, spread over out_features."""
        return t.ext.SumLast(self.out_features)
