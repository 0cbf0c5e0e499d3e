"""Normalisation layers: batch, instance, layer, group, local response and global response norm."""

from math import prod
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, WithJsonSchema, field_validator

from cnncalc.errors import LayerError
from cnncalc.layers.base import Ctx, Flag, Kit, Layer, PosInt, Saved, Shape, fmt_shape
from cnncalc.layers.field import RF
from cnncalc.layers.routes import OnnxForm, OnnxNode, lean


def _onnx_batchnorm(node: OnnxNode) -> tuple[dict[str, Any], dict[str, Any]]:
    """BatchNormalization at inference: its scale, bias, mean and variance as the state_dict."""
    dims, ins = node.dims, node.ins
    entry = lean({"type": f"batchnorm{dims if dims in (1, 2, 3) else 1}d", "eps": node.f32(node.a.get("epsilon", 1e-5))})
    return entry, {"weight": node.weight(ins[1]), "bias": node.weight(ins[2]), "running_mean": node.weight(ins[3]),
                   "running_var": node.weight(ins[4]), "num_batches_tracked": node.counter()}


class _Norm(Layer):
    category: ClassVar[str] = "normalization"
    eps: Annotated[float, Field(gt=0)] = 1e-5



class BatchNormNd(_Norm):
    """Batch normalisation over channel C: y = γ·(x − μ)/√(σ² + ε) + β.

    params = 2·C (γ, β; 0 without affine); buffers = 2·C + 1 (running mean, running var,
    num_batches_tracked; 0 without track_running_stats); element-wise ops = 2 per element
    (inference: folded scale and shift)."""

    follows_channels_last = Flag(True)  # on a channels-last input, a channels-last output (analysis/strides.py)

    channel_wise: ClassVar[bool] = True
    onnx_ops: ClassVar[tuple[OnnxForm, ...]] = (OnnxForm(("BatchNormalization",), _onnx_batchnorm),)

    dims: ClassVar[int] = 2
    momentum: Annotated[float, Field(ge=0, le=1)] | None = 0.1
    affine: bool = True
    track_running_stats: bool = True
    num_features: PosInt | None = None
    """Optional: inferred (C); checked when given."""

    def shape(self, ctx: Ctx) -> Shape:
        ranks = (2, 3) if self.dims == 1 else (self.dims + 2,)
        if len(ctx.x) not in ranks:
            raise LayerError(f"expected a {' or '.join(f'{r}-D' for r in ranks)} input, received {fmt_shape(ctx.x)}")
        self.check_declared("num_features", self.num_features, ctx.x[1], "channels")
        return ctx.x

    def weights(self, ctx: Ctx) -> dict[str, Shape]:
        c = ctx.x[1]
        return {"weight": (c,), "bias": (c,)} if self.affine else {}

    def buffers(self, ctx: Ctx) -> dict[str, Shape]:
        c = ctx.x[1]
        if not self.track_running_stats:
            return {}
        return {"running_mean": (c,), "running_var": (c,), "num_batches_tracked": ()}

    def elementwise(self, ctx: Ctx) -> int:
        return 2 * prod(ctx.out)

    def build(self, ctx: Ctx, t: Kit) -> Any:
        cls = getattr(t.nn, f"{'Batch' if 'batch' in self.type else 'Instance'}Norm{self.dims}d")
        return cls(ctx.x[1], self.eps, self.momentum, self.affine, self.track_running_stats)

    def folds(self) -> bool:
        return self.track_running_stats

    def saved(self, ctx: Ctx, grads: tuple[bool, ...]) -> Saved:
        """Autograd keeps the input and the batch mean and inverse deviation (C each)."""
        return Saved(inputs=(0,), extra=2 * ctx.x[1])

    def affine_map(self, module: Any, t: Kit) -> tuple[Any, Any]:
        """s = γ/√(σ² + ε), b = β − μ·s (γ = 1, β = 0 without affine)."""
        torch = t.torch
        gamma = module.weight if self.affine else torch.ones_like(module.running_var)
        scale = gamma / torch.sqrt(module.running_var + module.eps)
        beta = module.bias if self.affine else torch.zeros_like(module.running_mean)
        return scale, beta - module.running_mean * scale


class BatchNorm1d(BatchNormNd):
    type: Literal["batchnorm1d"]
    dims: ClassVar[int] = 1


class BatchNorm2d(BatchNormNd):
    type: Literal["batchnorm2d"]
    dims: ClassVar[int] = 2


class BatchNorm3d(BatchNormNd):
    type: Literal["batchnorm3d"]
    dims: ClassVar[int] = 3


class InstanceNormNd(BatchNormNd):
    """Instance normalisation: statistics per sample and channel over the spatial axes.

    params = 2·C with affine (default off); buffers = 2·C + 1 with track_running_stats
    (default off); element-wise ops = 2 per element."""

    follows_channels_last = Flag(False)
    writes_contiguous = Flag(True)  # batch norm on the input made contiguous, viewed back
    returns_view = Flag(True)  # a view of the batch norm it runs on the reshaped input

    affine: bool = False
    track_running_stats: bool = False

    def folds(self) -> bool:
        return False  # per-sample statistics, even when running ones are tracked

    def saved(self, ctx: Ctx, grads: tuple[bool, ...]) -> Saved:
        """torch runs batch norm on (1, N·C, …): autograd keeps the input, the mean and inverse
        deviation, and the N-fold repeats of γ and of the running statistics (N·C each)."""
        return Saved(inputs=(0,), extra=ctx.x[0] * ctx.x[1] * (2 + self.affine + 2 * self.track_running_stats))

    def shape(self, ctx: Ctx) -> Shape:
        if len(ctx.x) != self.dims + 2:
            raise LayerError(f"expected a {self.dims + 2}-D input, received {fmt_shape(ctx.x)}")
        self.check_declared("num_features", self.num_features, ctx.x[1], "channels")
        return ctx.x


class InstanceNorm1d(InstanceNormNd):
    type: Literal["instancenorm1d"]
    dims: ClassVar[int] = 1


class InstanceNorm2d(InstanceNormNd):
    type: Literal["instancenorm2d"]
    dims: ClassVar[int] = 2


class InstanceNorm3d(InstanceNormNd):
    type: Literal["instancenorm3d"]
    dims: ClassVar[int] = 3


class LayerNorm(_Norm):
    """Layer normalisation over the trailing normalized_shape axes.

    params = 2·∏normalized_shape with elementwise_affine (one without bias);
    element-wise ops = 2 per element."""
    autocast: ClassVar[str | dict[str, str]] = {"cuda": "fp32"}
    writes_contiguous = Flag(True)  # torch's kernels make the input contiguous, and their output too

    type: Literal["layernorm"]
    normalized_shape: Annotated[Any, WithJsonSchema({"anyOf": [
        {"type": "integer", "minimum": 1}, {"type": "array", "items": {"type": "integer", "minimum": 1}}]})] = None
    """Trailing axes to normalise; default: every axis but the batch (C, H, W)."""
    elementwise_affine: bool = True
    bias: bool = True

    @field_validator("normalized_shape", mode="before")
    @classmethod
    def _shape(cls, v: Any) -> tuple[int, ...] | None:
        if v is None:
            return None
        items = v if isinstance(v, list) else [v]
        if not items or not all(isinstance(i, int) and not isinstance(i, bool) and i >= 1 for i in items):
            raise ValueError(f"expected a positive integer or a list of them, received {v!r}")
        return tuple(items)

    @Flag.rule
    def rf_size_dependent(self) -> bool:
        return self.normalized_shape is not None  # explicit sizes pin the input size

    def axes(self, ctx: Ctx) -> tuple[int, ...]:
        return self.normalized_shape or ctx.x[1:]

    def last_axis_only(self, ctx: Ctx) -> bool:
        return len(self.axes(ctx)) == 1

    def shape(self, ctx: Ctx) -> Shape:
        ns = self.axes(ctx)
        if tuple(ctx.x[len(ctx.x) - len(ns):]) != ns or len(ns) >= len(ctx.x):
            raise LayerError(f"normalized_shape {list(ns)} must match the trailing axes of the input "
                             f"{fmt_shape(ctx.x)}", "normalized_shape")
        return ctx.x

    def weights(self, ctx: Ctx) -> dict[str, Shape]:
        if not self.elementwise_affine:
            return {}
        ns = self.axes(ctx)
        return {"weight": ns, "bias": ns} if self.bias else {"weight": ns}

    def elementwise(self, ctx: Ctx) -> int:
        return 2 * prod(ctx.out)

    def build(self, ctx: Ctx, t: Kit) -> Any:
        return t.nn.LayerNorm(list(self.axes(ctx)), self.eps, self.elementwise_affine, self.bias)

    def saved(self, ctx: Ctx, grads: tuple[bool, ...]) -> Saved:
        """Autograd keeps the input and a mean and inverse deviation per normalised slice."""
        return Saved(inputs=(0,), extra=2 * prod(ctx.x[: len(ctx.x) - len(self.axes(ctx))]))


class RMSNorm(LayerNorm):
    """Root-mean-square normalisation over the trailing normalized_shape axes (torch's RMSNorm,
    torch ≥ 2.4): y = x / √(mean(x²) + eps) · weight.

    params = ∏normalized_shape with elementwise_affine (no bias); element-wise ops = 2 per element.
    Memory is an estimate: what the forward call makes and what autograd keeps agree with torch,
    but its backward's temporaries (several operators on the CPU) are not modelled (a training
    step measured 1.1–1.45× the estimate), so verify does not judge it."""

    writes_contiguous = Flag(False)  # element-wise ops in torch: they keep a permuted layout
    type: Literal["rmsnorm"]  # type: ignore[assignment]
    eps: float | None = None  # type: ignore[assignment]
    """Default: the dtype's machine epsilon (torch.finfo(dtype).eps), as torch."""
    bias: Literal[False] = False
    memory_exact = Flag(False)

    def build(self, ctx: Ctx, t: Kit) -> Any:
        if not hasattr(t.nn, "RMSNorm"):
            raise ValueError("rmsnorm needs torch 2.4 or newer (nn.RMSNorm)")
        return t.nn.RMSNorm(list(self.axes(ctx)), self.eps, self.elementwise_affine)

    def saved(self, ctx: Ctx, grads: tuple[bool, ...]) -> Saved:
        """Autograd keeps the input and an inverse root mean square per normalised slice, and,
        for a trainable weight's gradient, the normalised input (input-sized)."""
        slices = prod(ctx.x[: len(ctx.x) - len(self.axes(ctx))])
        weighted = self.elementwise_affine and self.trainable
        return Saved(inputs=(0,), extra=slices + (prod(ctx.x) if weighted else 0))


class GroupNorm(_Norm):
    """Group normalisation: statistics per sample over groups of C/num_groups channels.

    params = 2·C with affine; element-wise ops = 2 per element."""
    autocast: ClassVar[str | dict[str, str]] = {"cuda": "fp32"}

    type: Literal["groupnorm"]
    num_groups: PosInt
    num_channels: PosInt | None = None
    affine: bool = True

    def shape(self, ctx: Ctx) -> Shape:
        if len(ctx.x) < 2:
            raise LayerError(f"expected an input (N, C, …), received {fmt_shape(ctx.x)}")
        c = ctx.x[1]
        self.check_declared("num_channels", self.num_channels, c, "channels")
        if c % self.num_groups:
            raise LayerError(f"{c} channels are not divisible by num_groups={self.num_groups}", "num_groups")
        return ctx.x

    def weights(self, ctx: Ctx) -> dict[str, Shape]:
        return {"weight": (ctx.x[1],), "bias": (ctx.x[1],)} if self.affine else {}

    def elementwise(self, ctx: Ctx) -> int:
        return 2 * prod(ctx.out)

    def build(self, ctx: Ctx, t: Kit) -> Any:
        return t.nn.GroupNorm(self.num_groups, ctx.x[1], self.eps, self.affine)

    def saved(self, ctx: Ctx, grads: tuple[bool, ...]) -> Saved:
        """Autograd keeps the input and a mean and inverse deviation per sample and group."""
        return Saved(inputs=(0,), extra=2 * ctx.x[0] * self.num_groups)


class LocalResponseNorm(Layer):
    """Local response normalisation across `size` neighbouring channels (AlexNet):
    b_c = a_c / (k + α/n · Σ a_c'²)^β.  No params; element-wise ops = (size + 3) per element."""
    autocast: ClassVar[str | dict[str, str]] = "fp32"  # CPU: its avg_pool3d; CUDA: its pow

    category: ClassVar[str] = "normalization"
    type: Literal["local_response_norm"]
    size: PosInt
    alpha: float = 1e-4
    beta: float = 0.75
    k: float = 1.0

    def shape(self, ctx: Ctx) -> Shape:
        if len(ctx.x) < 3:
            raise LayerError(f"expected an input (N, C, …) with spatial axes, received {fmt_shape(ctx.x)}")
        return ctx.x

    def elementwise(self, ctx: Ctx) -> int:
        return (self.size + 3) * prod(ctx.out)

    def build(self, ctx: Ctx, t: Kit) -> Any:
        return t.nn.LocalResponseNorm(self.size, self.alpha, self.beta, self.k)

    def padded(self, ctx: Ctx) -> int:
        """Elements of x² padded by size − 1 channels (torch averages it with a pooling op)."""
        return ctx.x[0] * (ctx.x[1] + self.size - 1) * prod(ctx.x[2:])

    def scratch(self, ctx: Ctx, b: int) -> int:
        """x² with its padded copy, or later the pooled sum with two steps of the divisor."""
        return max(self.padded(ctx), 2 * prod(ctx.x)) * b

    def saved(self, ctx: Ctx, grads: tuple[bool, ...]) -> Saved:
        """Autograd keeps the input, padded x², the pooled sum and the divisor."""
        return Saved(inputs=(0,), extra=self.padded(ctx) + 2 * prod(ctx.x))



class GlobalResponseNorm(Layer):
    """Global response normalisation (ConvNeXt-V2; timm's GlobalResponseNorm): per sample, the
    L2 norm of each channel over all positions G_c = ‖x_c‖₂, divided by their mean over the
    channels, N_c = G_c / (mean_c G + eps); then y = γ·(x·N) + β + x (timm 1.0 writes it
    x + addcmul(β, γ, x·N)). A 2-D layer: input (N, C, H, W), or with `channels_last` (N, H, W, C),
    as ConvNeXt-V2's MLP applies it between a permute and its permute back (the field is not
    shown while permuted, as for any layer on a permuted tensor).

    params = 2·C (γ and β, torch names weight and bias, of shape (C,) as timm holds them, viewed
    as (1, C, 1, 1), or (1, 1, 1, C) channels-last; initialised to zero: the layer starts as the identity).
    Element-wise ops: 6 per element (square and sum for the norms; x·N, times γ, plus β, plus x)
    + 3 per sample and channel (the root, the sum of the mean, the division) + 2 per sample (the
    mean's division and + eps). RF: every unit reads the whole input (the norms
    read all positions, their mean all channels). Memory (timm's operators): the forward call makes G, N
    (N·C each), x·N and addcmul's result (input-sized each) besides the output; autograd keeps
    the input, G, the mean plus eps (N), N and, for γ's gradient, x·N (input-sized); its backward
    makes one or two input-sized temporaries."""

    category: ClassVar[str] = "normalization"
    type: Literal["grn"]
    torch_names: ClassVar[tuple[str, ...] | None] = ("GlobalResponseNorm",)  # timm's, and cnncalc's copy
    #: CPU: x·N and addcmul promote to its float32 γ, β; CUDA: x.norm is on the float32 list (a
    #: float32 copy of x, which the norm keeps), and the rest follows in float32
    autocast: ClassVar[str | dict[str, str]] = {"cuda": "fp32", "cpu": "float"}
    eps: Annotated[float, Field(gt=0)] = 1e-6
    channels_last: bool = False
    """The channels are the last axis, (N, H, W, C) (timm's default, ConvNeXt-V2's MLP after a
    permute); false: (N, C, H, W)."""

    def channels(self, ctx: Ctx) -> int:
        return ctx.x[-1] if self.channels_last else ctx.x[1]

    def shape(self, ctx: Ctx) -> Shape:
        axes = "(N, H, W, C)" if self.channels_last else "(N, C, H, W)"
        self.expect_rank(ctx.x, 4, axes)
        return ctx.x

    def weights(self, ctx: Ctx) -> dict[str, Shape]:
        c = self.channels(ctx)
        return {"weight": (c,), "bias": (c,)}  # timm's shape; viewed to broadcast in forward

    def elementwise(self, ctx: Ctx) -> int:
        n, c = ctx.x[0], self.channels(ctx)
        return 6 * prod(ctx.x) + 3 * n * c + 2 * n

    def rf(self, ctx: Ctx, fields: list[list[RF] | None]) -> list[RF] | None:
        """The whole input: each axis spread over all its positions."""
        f = fields[0]
        return None if f is None else [r.spread(size) for r, size in zip(f, ctx.x[2:])]

    def reads(self, ctx: Ctx, axis: int, lo: int, hi: int, real: bool = False) -> list[tuple[int, int] | None]:
        return [(0, ctx.x[2 + axis] - 1)]

    def probe(self, ctx: Ctx, t: Kit) -> Any:
        return t.ext.WholeSum()

    def scratch(self, ctx: Ctx, b: int) -> int:
        """timm's x + addcmul(β, γ, x·N): G and N (N·C each) stay alive to the end of the call,
        x·N (input-sized) until addcmul has made its input-sized result, which lives while the
        output is made (the mean and mean + eps, N each, are freed before)."""
        return (prod(ctx.x) + 2 * ctx.x[0] * self.channels(ctx)) * b

    def saved(self, ctx: Ctx, grads: tuple[bool, ...]) -> Saved:
        """Through the input: the norm keeps x and G, the division G and mean + eps, x·N both
        factors (x and N); for γ's gradient addcmul keeps x·N (input-sized). Without the input's
        gradient only γ's: x·N."""
        n, c = ctx.x[0], self.channels(ctx)
        m = prod(ctx.x) if self.trainable else 0
        if grads[0]:
            return Saved(inputs=(0,), extra=2 * n * c + n + m)
        return Saved(extra=m)

    def backward_scratch(self, ctx: Ctx, b: int, grads: tuple[bool, ...]) -> int:
        """addcmul's backward makes grad·γ (input-sized) and, for γ, grad·(x·N) before its sum;
        x·N's backward grad·N and grad·x: two input-sized steps beyond the gradients kept where
        γ trains, both where only the input needs a gradient (frozen), two for γ alone where the
        input needs none (measured with torch's training step in each of the three cases)."""
        x = prod(ctx.x) * b
        return (x if self.trainable else 2 * x) if grads[0] else 2 * x if self.trainable else 0

    def build(self, ctx: Ctx, t: Kit) -> Any:
        return t.ext.GlobalResponseNorm(self.channels(ctx), self.eps, self.channels_last)

    @classmethod
    def from_torch(cls, m: Any) -> dict[str, Any]:
        """timm's module keeps eps and the channel axis (-1 channels-last, 1 otherwise)."""
        entry = super().from_torch(m)
        entry["channels_last"] = getattr(m, "channel_dim", 1) in (-1, 3)
        return cls.lean(entry)
