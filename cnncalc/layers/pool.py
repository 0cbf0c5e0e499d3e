"""Pooling: max, average, power-average (Lp), adaptive and global."""

from dataclasses import replace
from fractions import Fraction
from math import prod
from typing import Annotated, Any, ClassVar, Literal

from pydantic import WithJsonSchema, field_validator, model_validator

from cnncalc.errors import LayerError
from cnncalc.layers.base import Axes, Axes0, Ctx, Flag, Kit, Layer, PosInt, Saved, Shape, fmt_shape, per_axis
from cnncalc.layers.conv import AXES_NAMES, _Window, spatial_axes
from cnncalc.layers.field import RF, adaptive_windows
from cnncalc.layers.routes import (
    Malformed,
    OnnxForm,
    OnnxNode,
    TorchCall,
    TorchForm,
    TorchReader,
    Traced,
    Unsupported,
    lean,
    module,
    one,
    sized,
)


# ---- how import reads them from traced torch functions and ONNX ops -------------------------------
def _max_pool(nn_name: str) -> TorchReader:
    """F.max_pool (x, kernel_size, stride, padding, dilation, ceil_mode, return_indices) as nn's
    order (…, dilation, return_indices, ceil_mode)."""
    def read(call: TorchCall, x: Traced, kernel_size: Any, stride: Any = None, padding: Any = 0, dilation: Any = 1,
             ceil_mode: bool = False, return_indices: bool = False) -> tuple[Any, list[Any]]:
        return getattr(call.t.nn, nn_name)(kernel_size, stride, padding, dilation, return_indices, ceil_mode), [x]
    return read


def _max_pool_indices(nn_name: str) -> TorchReader:
    """F.max_pool_with_indices (fx records F.max_pool(…, return_indices=True) as it): a tuple
    (values, indices) whatever its return_indices says."""
    def read(call: TorchCall, x: Traced, kernel_size: Any, stride: Any = None, padding: Any = 0, dilation: Any = 1,
             ceil_mode: bool = False, return_indices: bool = True) -> tuple[Any, list[Any]]:
        return getattr(call.t.nn, nn_name)(kernel_size, stride, padding, dilation, True, ceil_mode), [x]
    return read


def _max_unpool(dims: int) -> TorchReader:
    """F.max_unpool (x, indices, kernel_size, stride, padding, output_size): inputs [x, the pool
    whose indices these are] (the importer gives the indices as that pool)."""
    def read(call: TorchCall, x: Traced, indices: Traced, kernel_size: Any, stride: Any = None, padding: Any = 0,
             output_size: Any = None) -> tuple[Any, list[Any]]:
        m = getattr(call.t.nn, f"MaxUnpool{dims}d")(kernel_size, stride, padding)
        return MaxUnpoolNd.from_torch_call(m, output_size), [x, indices]
    return read


def _lp_pool(nn_name: str) -> TorchReader:
    """F.lp_pool (x, norm_type, kernel_size, stride, ceil_mode), nn's order; sizes given as
    lists (as traced: fx's immutable lists) kept as tuples, as the module keeps them."""
    def read(call: TorchCall, x: Traced, norm_type: float, kernel_size: Any, stride: Any = None,
             ceil_mode: bool = False) -> tuple[Any, list[Any]]:
        return getattr(call.t.nn, nn_name)(norm_type, sized(kernel_size), sized(stride), ceil_mode), [x]
    return read


def _mean(call: TorchCall, x: Traced, dim: Any = None, keepdim: bool = False, dtype: Any = None) -> tuple[Any, list[Any]]:
    rank = len(x.shape)
    dims = {d % rank for d in ([dim] if isinstance(dim, int) else dim or ())}
    if dims != set(range(2, rank)) or dtype is not None:
        raise Unsupported("mean over axes other than all the spatial ones")
    return {"type": "global_avgpool", **({} if keepdim else {"keepdims": False})}, [x]


def _onnx_pool(node: OnnxNode, kind: str) -> tuple[dict[str, Any], dict[str, Any]]:
    a, dims = node.a, node.dims
    pads = list(a.get("pads", [0] * 2 * dims))
    if pads[:dims] != pads[dims:]:
        raise Unsupported("asymmetric padding")
    entry = {"type": f"{kind}pool{dims}d", "kernel_size": one(list(a["kernel_shape"])),
             "stride": one(a.get("strides", [1] * dims)), "padding": one(pads[:dims]),
             "ceil_mode": bool(a.get("ceil_mode", 0))}
    if kind == "max":
        entry["dilation"] = one(a.get("dilations", [1] * dims))
    else:
        entry["count_include_pad"] = bool(a.get("count_include_pad", 0))
    return lean(entry), {}


def _onnx_unpool(node: OnnxNode) -> tuple[dict[str, Any], dict[str, Any]]:
    """MaxUnpool (X, I, output_shape): kernel_shape, strides (ONNX's default 1, torch's kernel_size:
    written unless it is kernel_shape), symmetric pads; an output_shape only where it is the
    natural size. The importer sees to I (the second output of a MaxPool of this graph, read as
    that layer) and to the output having that pool's input shape, where ONNX's indices over the
    whole N·C·H·W tensor and torch's per (N, C) plane name the same positions."""
    a, dims = node.a, node.dims
    if dims not in (1, 2, 3):
        raise Unsupported(f"MaxUnpool of a {dims + 2}-D tensor (max_unpool is 1-D, 2-D or 3-D)")
    pads = list(a.get("pads", [0] * 2 * dims))
    if pads[:dims] != pads[dims:]:
        raise Unsupported("MaxUnpool with asymmetric pads")
    kernel, strides = one(list(a["kernel_shape"])), one(list(a.get("strides", [1] * dims)))
    entry: dict[str, Any] = {"type": f"max_unpool{dims}d", "kernel_size": kernel,
                             **({} if strides == kernel else {"stride": strides}), "padding": one(pads[:dims])}
    natural = [(h - 1) * s - 2 * p + k for h, k, s, p in
               zip(node.x[2:], a["kernel_shape"], a.get("strides", [1] * dims), pads[:dims])]
    if len(node.ins) > 2 and (node.y is None or list(node.y[2:]) != natural):
        raise Unsupported(f"MaxUnpool with an output_shape other than (H − 1)·S − 2P + K = {natural}: onnx's "
                          "reference evaluator scatters the indices into that size, not into output_shape, so "
                          "where the indices point is not settled")
    return lean(entry), {}


def _onnx_lppool(node: OnnxNode) -> tuple[dict[str, Any], dict[str, Any]]:
    """LpPool with an even p (there (Σ|x|^p)^(1/p) is torch's (Σ x^p)^(1/p)), no padding or dilation."""
    a, dims = node.a, node.dims
    p = int(a.get("p", 2))
    if p <= 0 or p % 2 or any(int(v) for v in a.get("pads", [])) or any(int(v) != 1 for v in a.get("dilations", [])):
        raise Unsupported("LpPool with an odd p, padding or dilation (torch's LPPool reads x^p, not |x|^p)")
    if a.get("auto_pad", b"NOTSET") not in (b"NOTSET", b"VALID"):
        raise Unsupported("LpPool with auto_pad")
    if dims not in (1, 2, 3):
        raise Malformed(f"LpPool of a {dims + 2}-D tensor")
    return lean({"type": f"lppool{dims}d", "norm_type": float(p), "kernel_size": one(list(a["kernel_shape"])),
                 "stride": one(a.get("strides", [1] * dims)), "ceil_mode": bool(a.get("ceil_mode", 0))}), {}


def _onnx_mean(node: OnnxNode) -> tuple[dict[str, Any], dict[str, Any]]:
    """ReduceMean over all the spatial axes (axes an attribute, or from opset 18 a constant input)."""
    a, rank = node.a, len(node.x)
    axes = a.get("axes") if "axes" in a else (node.consts.get(node.ins[1]) if len(node.ins) > 1 else None)
    if rank == 0:
        raise Malformed("a mean of a tensor whose rank shape inference does not give")
    if axes is None or {int(v) % rank for v in list(axes)} != set(range(2, rank)):
        raise Unsupported("a mean over axes other than all the spatial ones")
    return {"type": "global_avgpool", **({} if a.get("keepdims", 1) else {"keepdims": False})}, {}


class _KernelFields(Layer):
    """kernel_size, stride and padding per spatial axis (an int stands for every axis), as torch's
    pooling and unpooling modules take them."""

    dims: ClassVar[int] = 2
    kernel_size: Axes
    stride: Axes | None = None
    """Default: kernel_size."""
    padding: Axes0 = 0

    @field_validator("kernel_size", mode="before")
    @classmethod
    def _kernel(cls, v: Any) -> tuple[int, ...]:
        return per_axis(v, cls.dims)

    @field_validator("stride", mode="before")
    @classmethod
    def _stride(cls, v: Any) -> tuple[int, ...] | None:
        return None if v is None else per_axis(v, cls.dims)

    @field_validator("padding", mode="before")
    @classmethod
    def _axes0(cls, v: Any) -> tuple[int, ...]:
        return per_axis(v, cls.dims, minimum=0)


class PoolNd(_Window, _KernelFields):
    """Sliding-window pooling, per channel.

    H' = ⌊(H + 2P − D·(K−1) − 1)/S⌋ + 1 (⌈…⌉ with ceil_mode, dropping a last window that
    would start in the right padding); stride defaults to kernel_size; no params;
    element-wise ops = N·C·∏H'·∏K;  RF: r' = r + (K_eff−1)·j, j' = j·S."""

    channel_wise: ClassVar[bool] = True

    category: ClassVar[str] = "pooling"
    padding: Axes0 = 0
    """At most half the kernel (torch rule)."""
    ceil_mode: bool = False

    @model_validator(mode="after")
    def _half_kernel(self) -> "PoolNd":
        for p, k in zip(self.padding, self.kernel_size):
            if 2 * p > k:
                raise ValueError(f"padding {p} must be at most half the kernel size {k}")
        return self

    @property
    def strides(self) -> tuple[int, ...]:
        return self.stride or self.kernel_size

    @property
    def dilations(self) -> tuple[int, ...]:
        return getattr(self, "dilation", None) or (1,) * self.dims

    def pads(self, ctx: Ctx) -> tuple[tuple[int, int], ...]:
        return tuple((p, p) for p in self.padding)

    def shape(self, ctx: Ctx) -> Shape:
        self.expect_rank(ctx.x, 2 + self.dims, spatial_axes(self.dims))
        return (*ctx.x[:2], *self.window_shape(ctx))

    def elementwise(self, ctx: Ctx) -> int:
        return prod(ctx.out) * prod(self.kernel_size)

    def rf(self, ctx: Ctx, fields: list[list[RF] | None]) -> list[RF] | None:
        return self.window_rf(ctx, fields)

    def explain(self, ctx: Ctx) -> list[tuple[str, str, int]]:
        return [*self.explain_window(ctx), *super().explain(ctx)]

    def warnings(self, ctx: Ctx) -> list[str]:
        return self.window_warnings(ctx)


class MaxPoolNd(PoolNd):
    follows_channels_last = Flag(True)  # on a channels-last input, a channels-last output (analysis/strides.py)
    torch_functions: ClassVar[tuple[TorchForm, ...]] = tuple(
        TorchForm((f"F.max_pool{d}d",), f"max_pool{d}d", _max_pool(f"MaxPool{d}d")) for d in (1, 2, 3)) + tuple(
        TorchForm((f"F.max_pool{d}d_with_indices",), f"max_pool{d}d", _max_pool_indices(f"MaxPool{d}d"))
        for d in (1, 2, 3))
    onnx_ops: ClassVar[tuple[OnnxForm, ...]] = (OnnxForm(("MaxPool",), lambda node: _onnx_pool(node, "max")),)
    dilation: Axes = 1
    return_indices: bool = False
    """Also return the int64 index of each maximum, for a max_unpool (inputs: [x, THIS POOL])."""

    @field_validator("dilation", mode="before")
    @classmethod
    def _dil(cls, v: Any) -> tuple[int, ...]:
        return per_axis(v, cls.dims)

    @Flag.rule
    def memory_exact(self) -> bool:
        """With return_indices the indices outlive the layer (until the last max_unpool reads
        them): an estimate at inference."""
        return not self.return_indices

    def build(self, ctx: Ctx, t: Kit) -> Any:
        if self.return_indices:
            return t.ext.MaxPoolIndices(self.dims, self.kernel_size, self.strides, self.padding, self.dilation,
                                        self.ceil_mode)
        cls = getattr(t.nn, f"MaxPool{self.dims}d")
        return cls(self.kernel_size, self.strides, self.padding, self.dilation, ceil_mode=self.ceil_mode)

    def scratch(self, ctx: Ctx, b: int) -> int:
        """With return_indices, the int64 index of each maximum (also at inference)."""
        return 8 * prod(ctx.out) if self.return_indices else 0

    def saved(self, ctx: Ctx, grads: tuple[bool, ...]) -> Saved:
        """Autograd keeps the input and the int64 index of each maximum."""
        return Saved(inputs=(0,), extra_bytes=8 * prod(ctx.out))



class AvgPoolNd(PoolNd):
    follows_channels_last = Flag(True)  # on a channels-last input, a channels-last output (analysis/strides.py)
    torch_functions: ClassVar[tuple[TorchForm, ...]] = tuple(
        TorchForm((f"F.avg_pool{d}d",), f"avg_pool{d}d", module(f"AvgPool{d}d")) for d in (1, 2, 3))
    onnx_ops: ClassVar[tuple[OnnxForm, ...]] = (OnnxForm(("AveragePool",), lambda node: _onnx_pool(node, "avg")),)
    count_include_pad: bool = True
    divisor_override: PosInt | None = None

    def shape(self, ctx: Ctx) -> Shape:
        out = super().shape(ctx)
        small = [(h, k) for h, k in zip(ctx.x[2:], self.kernel_size) if h < k]
        if self.dims == 3 and small:  # torch's avg_pool3d checks the unpadded input
            raise LayerError(f"torch's avg_pool3d refuses an input smaller than the kernel, padding aside: "
                             f"{fmt_shape(ctx.x)} with kernel_size {list(self.kernel_size)}", "kernel_size")
        return out

    def build(self, ctx: Ctx, t: Kit) -> Any:
        cls = getattr(t.nn, f"AvgPool{self.dims}d")
        kw = {} if self.dims == 1 else {"divisor_override": self.divisor_override}
        return cls(self.kernel_size, self.strides, self.padding, self.ceil_mode, self.count_include_pad, **kw)

    def saved(self, ctx: Ctx, grads: tuple[bool, ...]) -> Saved:
        """Autograd keeps the input."""
        return Saved(inputs=(0,))


class LPPoolNd(PoolNd):
    """Power-average pooling (L2 pooling for norm_type 2): (Σ x^p)^(1/p) over each window.

    Same shape and RF rules as max pooling without padding; element-wise ops = N·C·∏H'·(∏K + 2)."""

    follows_channels_last = Flag(True)  # on a channels-last input, a channels-last output (analysis/strides.py)
    autocast: ClassVar[str | dict[str, str]] = {"cuda": "fp32", "cpu/3d": "fp32"}  # its pow; CPU's avg_pool3d

    norm_type: float = 2.0
    """p: 2 is L2 pooling; large p approaches max pooling."""
    padding: Annotated[Any, WithJsonSchema({"const": 0})] = 0
    torch_functions: ClassVar[tuple[TorchForm, ...]] = tuple(
        TorchForm((f"F.lp_pool{d}d",), f"lp_pool{d}d", _lp_pool(f"LPPool{d}d")) for d in (1, 2, 3))
    onnx_ops: ClassVar[tuple[OnnxForm, ...]] = (OnnxForm(("LpPool",), _onnx_lppool),)

    @field_validator("padding", mode="before")
    @classmethod
    def _axes0(cls, v: Any) -> tuple[int, ...]:
        if v != 0:
            raise ValueError(f"LPPool has no padding in torch, received {v!r}")
        return (0,) * cls.dims

    @field_validator("norm_type", mode="after")
    @classmethod
    def _positive(cls, v: float) -> float:
        if not v > 0:
            raise ValueError(f"norm_type must be positive, received {v}")
        return v

    def elementwise(self, ctx: Ctx) -> int:
        return prod(ctx.out) * (prod(self.kernel_size) + 2)

    def build(self, ctx: Ctx, t: Kit) -> Any:
        cls = getattr(t.nn, f"LPPool{self.dims}d")
        k, s = (self.kernel_size[0], self.strides[0]) if self.dims == 1 else (self.kernel_size, self.strides)
        return cls(self.norm_type, k, s, self.ceil_mode)

    def scratch(self, ctx: Ctx, b: int) -> int:
        """x^p (input-sized) next to the window averages, or later three output-sized steps."""
        return max(prod(ctx.x), 3 * prod(ctx.out)) * b

    def saved(self, ctx: Ctx, grads: tuple[bool, ...]) -> Saved:
        """torch computes (sign(a)·relu(|a|)·∏K)^(1/p) of a = avg_pool(x^p): autograd keeps x,
        x^p and four output-sized steps."""
        return Saved(inputs=(0,), extra=prod(ctx.x) + 4 * prod(ctx.out))

    def backward_scratch(self, ctx: Ctx, b: int, grads: tuple[bool, ...]) -> int:
        """Beyond what is kept, the output's gradient and the input's: the backward of y^(1/p)
        makes three output-sized steps while all the kept ones are alive (3·out − x beyond), and
        the backward of x^p three input-sized ones after the output's side is freed (2·x − 5·out
        beyond); profiled step by step (derivatives.yaml: pow_backward, threshold_backward, …)."""
        x, out = prod(ctx.x), prod(ctx.out)
        return max(3 * out - x, 2 * x - 5 * out, 0) * b


class MaxPool1d(MaxPoolNd):
    type: Literal["maxpool1d"]
    dims: ClassVar[int] = 1
    returns_view = Flag(True)  # autograd sees its output as a view (Layer.returns_view)


class MaxPool2d(MaxPoolNd):
    type: Literal["maxpool2d"]
    dims: ClassVar[int] = 2


class MaxPool3d(MaxPoolNd):
    autocast: ClassVar[str | dict[str, str]] = {"cpu": "fp32"}
    type: Literal["maxpool3d"]
    dims: ClassVar[int] = 3


class AvgPool1d(AvgPoolNd):
    type: Literal["avgpool1d"]
    dims: ClassVar[int] = 1
    returns_view = Flag(True)  # autograd sees its output as a view (Layer.returns_view)


class AvgPool2d(AvgPoolNd):
    type: Literal["avgpool2d"]
    dims: ClassVar[int] = 2


class AvgPool3d(AvgPoolNd):
    autocast: ClassVar[str | dict[str, str]] = {"cpu": "fp32"}
    type: Literal["avgpool3d"]
    dims: ClassVar[int] = 3


class LPPool1d(LPPoolNd):
    type: Literal["lppool1d"]
    dims: ClassVar[int] = 1


class LPPool2d(LPPoolNd):
    type: Literal["lppool2d"]
    dims: ClassVar[int] = 2


class LPPool3d(LPPoolNd):
    type: Literal["lppool3d"]
    dims: ClassVar[int] = 3


OutSize = Annotated[Any, WithJsonSchema({"anyOf": [
    {"type": "integer", "minimum": 1},
    {"type": "array", "items": {"anyOf": [{"type": "integer", "minimum": 1}, {"type": "null"}]}}]})]


class AdaptivePoolNd(Layer):
    """Adaptive pooling to a fixed output size: window i spans [⌊i·H/H'⌋, ⌈(i+1)·H/H'⌉).

    No params; element-wise ops = N·C·∏H'·∏(widest window);
    RF: r' = r + (widest window − 1)·j, j' = j·H/H' (depends on the input size)."""

    follows_channels_last = Flag(True)  # on a channels-last input, a channels-last output (analysis/strides.py)

    channel_wise: ClassVar[bool] = True

    category: ClassVar[str] = "pooling"
    dims: ClassVar[int] = 2
    rf_size_dependent = Flag(True)
    torch_functions: ClassVar[tuple[TorchForm, ...]] = (
        *(TorchForm((f"F.adaptive_avg_pool{d}d",), f"adaptive_avg_pool{d}d", module(f"AdaptiveAvgPool{d}d"))
          for d in (1, 2, 3)),
        TorchForm(("F.adaptive_max_pool2d",), "adaptive_max_pool2d", module("AdaptiveMaxPool2d")))
    output_size: OutSize
    """An int, or one per axis; null keeps that axis' input size."""

    @field_validator("output_size", mode="before")
    @classmethod
    def _out(cls, v: Any) -> tuple[int | None, ...]:
        if isinstance(v, (list, tuple)) and len(v) == cls.dims:
            return tuple(None if x is None else per_axis(x, 1)[0] for x in v)
        return per_axis(v, cls.dims)

    def sizes(self, ctx: Ctx) -> tuple[int, ...]:
        return tuple(h if o is None else o for h, o in zip(ctx.x[2:], self.output_size))

    def shape(self, ctx: Ctx) -> Shape:
        self.expect_rank(ctx.x, 2 + self.dims, spatial_axes(self.dims))
        return (*ctx.x[:2], *self.sizes(ctx))

    def elementwise(self, ctx: Ctx) -> int:
        return prod(ctx.out) * prod(adaptive_windows(h, o)[0] for h, o in zip(ctx.x[2:], ctx.out[2:]))

    def rf(self, ctx: Ctx, fields: list[list[RF] | None]) -> list[RF] | None:
        f = fields[0]
        if f is None:
            return None
        out = []
        for r, h, o in zip(f, ctx.x[2:], ctx.out[2:]):
            widest, scale = adaptive_windows(h, o)
            first = -(-h // o)  # the first window spans [0, ⌈H/H'⌉)
            r = r.resample(scale, widest, Fraction(first - 1, 2), uniform=h % o == 0)
            if h % o:  # windows [⌊iH/H'⌋, ⌈(i+1)H/H'⌉) of varying width and step: H/H' is only their average
                r = replace(r, exact=False)
            out.append(r.made_whole() if o == 1 else r)
        return out

    def build(self, ctx: Ctx, t: Kit) -> Any:
        kind = "Max" if "max" in self.type else "Avg"
        return getattr(t.nn, f"Adaptive{kind}Pool{self.dims}d")(self.output_size)

    def probe(self, ctx: Ctx, t: Kit) -> Any:
        """The average over the very same windows."""
        return getattr(t.nn, f"AdaptiveAvgPool{self.dims}d")(self.output_size)

    def reads(self, ctx: Ctx, axis: int, lo: int, hi: int, real: bool = False) -> list[tuple[int, int] | None]:
        """Window i spans [⌊i·H/H'⌋, ⌈(i + 1)·H/H'⌉ − 1]."""
        h, o = ctx.x[2 + axis], ctx.out[2 + axis]
        return [(lo * h // o, -(-(hi + 1) * h // o) - 1)]

    def scratch(self, ctx: Ctx, b: int) -> int:
        """Adaptive max pooling computes the int64 index of each maximum even at inference."""
        return 8 * prod(ctx.out) if "max" in self.type else 0

    def saved(self, ctx: Ctx, grads: tuple[bool, ...]) -> Saved:
        """Autograd keeps the input (and for max pooling the int64 index of each maximum)."""
        return Saved(inputs=(0,), extra_bytes=8 * prod(ctx.out) if "max" in self.type else 0)


class AdaptiveAvgPool1d(AdaptivePoolNd):
    type: Literal["adaptive_avgpool1d"]
    dims: ClassVar[int] = 1
    returns_view = Flag(True)  # autograd sees its output as a view (Layer.returns_view)


class AdaptiveAvgPool2d(AdaptivePoolNd):
    type: Literal["adaptive_avgpool2d"]
    dims: ClassVar[int] = 2


class AdaptiveAvgPool3d(AdaptivePoolNd):
    autocast: ClassVar[str | dict[str, str]] = {"cpu": "fp32"}
    type: Literal["adaptive_avgpool3d"]
    dims: ClassVar[int] = 3


class AdaptiveMaxPool1d(AdaptivePoolNd):
    type: Literal["adaptive_maxpool1d"]
    dims: ClassVar[int] = 1
    returns_view = Flag(True)  # autograd sees its output as a view (Layer.returns_view)


class AdaptiveMaxPool2d(AdaptivePoolNd):
    type: Literal["adaptive_maxpool2d"]
    dims: ClassVar[int] = 2


class AdaptiveMaxPool3d(AdaptivePoolNd):
    autocast: ClassVar[str | dict[str, str]] = {"cpu": "fp32"}
    type: Literal["adaptive_maxpool3d"]
    dims: ClassVar[int] = 3


class GlobalPool(Layer):
    """Global pooling over every spatial axis, any dimensionality: (N, C, …) → (N, C, 1, …)
    (or (N, C) with keepdims false). Element-wise ops = N·C·∏H; RF: the whole input."""

    channel_wise: ClassVar[bool] = True
    autocast: ClassVar[str | dict[str, str]] = {"cpu/3d": "fp32"}  # adaptive 3-D pooling

    category: ClassVar[str] = "pooling"
    rf_size_dependent = Flag(True)
    type: Literal["global_avgpool", "global_maxpool"]
    torch_names: ClassVar[tuple[str, ...] | None] = ()  # torch has no such module: read from x.mean(…)
    torch_functions: ClassVar[tuple[TorchForm, ...]] = (TorchForm(("torch.mean", "Tensor.mean"), "mean", _mean),)
    onnx_ops: ClassVar[tuple[OnnxForm, ...]] = (
        OnnxForm(("GlobalAveragePool",), lambda node: ({"type": "global_avgpool"}, {})),
        OnnxForm(("GlobalMaxPool",), lambda node: ({"type": "global_maxpool"}, {})),
        OnnxForm(("ReduceMean",), _onnx_mean, reads_constants=True))
    keepdims: bool = True

    @Flag.rule
    def returns_view(self) -> bool:
        """Max: torch's adaptive max pooling views its result (Layer.returns_view)."""
        return self.type == "global_maxpool"

    def shape(self, ctx: Ctx) -> Shape:
        if len(ctx.x) < 3:
            raise LayerError(f"expected an input with spatial axes (N, C, …), received {ctx.x}")
        return (*ctx.x[:2], *(1,) * (len(ctx.x) - 2)) if self.keepdims else ctx.x[:2]

    def elementwise(self, ctx: Ctx) -> int:
        return prod(ctx.x)

    def rf(self, ctx: Ctx, fields: list[list[RF] | None]) -> list[RF] | None:
        f = fields[0]
        if f is None or not self.keepdims:
            return None
        return [r.resample(Fraction(h), h, Fraction(h - 1, 2)).made_whole() for r, h in zip(f, ctx.x[2:])]

    def build(self, ctx: Ctx, t: Kit, kind: str | None = None) -> Any:
        kind = kind or ("Max" if "max" in self.type else "Avg")
        pool = getattr(t.nn, f"Adaptive{kind}Pool{len(ctx.x) - 2}d")(1)
        return pool if self.keepdims else t.nn.Sequential(pool, t.nn.Flatten(1))

    def probe(self, ctx: Ctx, t: Kit) -> Any:
        """The average over the whole input."""
        return self.build(ctx, t, "Avg")

    def reads(self, ctx: Ctx, axis: int, lo: int, hi: int, real: bool = False) -> list[tuple[int, int] | None]:
        """The whole axis."""
        return [(0, ctx.x[2 + axis] - 1)]

    def scratch(self, ctx: Ctx, b: int) -> int:
        """A maximum computes the int64 index of each maximum even at inference."""
        return 8 * prod(ctx.out) if "max" in self.type else 0

    def saved(self, ctx: Ctx, grads: tuple[bool, ...]) -> Saved:
        """A mean keeps nothing; a maximum keeps the input and the int64 index of each maximum."""
        return Saved(inputs=(0,), extra_bytes=8 * prod(ctx.out)) if "max" in self.type else Saved()


class MaxUnpoolNd(_KernelFields):
    """Max unpooling (torch's MaxUnpool1d/2d/3d): inputs [x, POOL], POOL a max pool of the same
    rank with return_indices: true and x of POOL's output shape; each value of x is written where
    its window's maximum was, zeros elsewhere.

    H' = (H − 1)·S − 2P + K, or output_size (torch takes (H' − S, H' + S) exclusive); the output
    must hold every index: its spatial sizes those of POOL's input (the first axis may be longer).
    No params; no MACs; element-wise ops 0 (a scatter: data movement);
    RF: an output reads the x positions whose pool window covers it, the reach of a transposed
    conv with the pool's K, S, P, D (j' = j/S); which of them it holds is the data's maximum:
    an estimate."""

    channel_wise: ClassVar[bool] = True  # channel c of the output reads channel c of x and of the indices alone

    category: ClassVar[str] = "pooling"
    dims: ClassVar[int] = 2
    min_inputs: ClassVar[int] = 2
    max_inputs: ClassVar[int] = 2
    memory_exact = Flag(False)  # the indices input gets no gradient, which the memory model gives it
    autocast: ClassVar[str | dict[str, str]] = {"cpu": "fp32"}  # CPU's list: max_unpool2d/3d (1-D runs as 2-D)
    torch_functions: ClassVar[tuple[TorchForm, ...]] = tuple(
        TorchForm((f"F.max_unpool{d}d",), f"max_unpool{d}d", _max_unpool(d)) for d in (1, 2, 3))
    onnx_ops: ClassVar[tuple[OnnxForm, ...]] = (OnnxForm(("MaxUnpool",), _onnx_unpool, reads_constants=True),)
    output_size: Axes | None = None
    """Spatial output sizes (default (H − 1)·S − 2P + K): the pool's input size where it left a remainder."""

    @field_validator("output_size", mode="before")
    @classmethod
    def _sizes(cls, v: Any) -> tuple[int, ...] | None:
        return None if v is None else per_axis(v, cls.dims)

    @property
    def strides(self) -> tuple[int, ...]:
        return self.stride or self.kernel_size

    @classmethod
    def from_torch(cls, m: Any) -> dict[str, Any]:
        """nn.MaxUnpoolNd: kernel_size, stride (left out where torch set it to kernel_size), padding."""
        entry = super().from_torch(m)
        if entry.get("stride") == entry["kernel_size"]:
            del entry["stride"]
        return entry

    @classmethod
    def from_torch_call(cls, m: Any, output_size: Any) -> dict[str, Any]:
        """The entry of a call `m(x, indices, output_size)`: output_size as torch reads it (the
        spatial sizes, or those after N and C of a full size such as `x.size()`), as numbers at
        the traced input."""
        from cnncalc.layers.base import REGISTRY

        dims = len(m.kernel_size)
        entry = REGISTRY[f"max_unpool{dims}d"].from_torch(m)
        if output_size is not None:
            entry["output_size"] = [int(v) for v in list(output_size)[-dims:]]
        return entry

    def pool(self, ctx: Ctx) -> Any:
        """The analysis row of the max pool whose indices this layer reads (None where unknown)."""
        return ctx.producers[1] if len(ctx.producers) > 1 else None

    def natural(self, ctx: Ctx) -> tuple[int, ...]:
        return tuple((h - 1) * s - 2 * p + k for h, k, s, p in
                     zip(ctx.x[2:], self.kernel_size, self.strides, self.padding))

    def shape(self, ctx: Ctx) -> Shape:
        self.expect_rank(ctx.x, 2 + self.dims, spatial_axes(self.dims))
        pool = self.pool(ctx)
        if len(ctx.producers) > 1 and (pool is None or not isinstance(pool.layer, MaxPoolNd)
                                       or pool.layer.dims != self.dims or not pool.layer.return_indices):
            what = "the network's input" if pool is None else f"a {pool.layer.type} layer" + (
                " without return_indices: true" if isinstance(pool.layer, MaxPoolNd) and pool.layer.dims == self.dims
                else "")
            raise LayerError(f"the second input must be a maxpool{self.dims}d layer with return_indices: true (its "
                             f"indices say where each value goes), received {what}", "inputs")
        if ctx.ins[1] != ctx.x:
            raise LayerError(f"x {fmt_shape(ctx.x)} must have the shape of the max pool's output "
                             f"{fmt_shape(ctx.ins[1])}: each value goes where its window's maximum was", "inputs")
        natural = self.natural(ctx)
        if min(natural) <= 0:
            raise LayerError(f"output size (H − 1)·S − 2P + K = {list(natural)} is not positive", "padding")
        out = self.output_size or natural
        for a, (o, n, s) in enumerate(zip(out, natural, self.strides)):
            if not n - s < o < n + s:
                raise LayerError(f"output_size {list(out)}: torch takes {n - s + 1} to {n + s - 1} along axis {a + 1} "
                                 f"((H − 1)·S − 2P + K = {n}, ± stride {s} exclusive)", "output_size")
        if pool is not None:
            source = pool.ctx.x[2:]
            if tuple(out[1:]) != tuple(source[1:]) or out[0] < source[0]:
                raise LayerError(f"the output's spatial sizes {list(out)} must be those of the max pool's input "
                                 f"{list(source)} (the first may be larger): torch's indices count positions of that "
                                 f"input, flattened; give output_size: {list(source)}", "output_size")
        return (*ctx.x[:2], *out)

    def geometry(self, ctx: Ctx) -> list[tuple[int, int, int, int]]:
        """(K, S, P, D) per axis of the windows the indices come from (the pool's where known)."""
        pool = self.pool(ctx)
        if pool is not None:
            return [(w.kernel, w.stride, w.pad_lo, w.dilation) for w in pool.layer.windows(pool.ctx)]
        return [(k, s, p, 1) for k, s, p in zip(self.kernel_size, self.strides, self.padding)]

    def rf(self, ctx: Ctx, fields: list[list[RF] | None]) -> list[RF] | None:
        f = fields[0]
        if f is None:
            return None
        return [replace(r.transposed(k, s, p, d), exact=False) for r, (k, s, p, d) in zip(f, self.geometry(ctx))]

    def reads(self, ctx: Ctx, axis: int, lo: int, hi: int, real: bool = False) -> list[tuple[int, int] | None]:
        """Output o holds x[i] only if pool window i (i·S − P + t·D, t < K) covers it: i from
        ⌈(lo + P − t·D)/S⌉ to ⌊(hi + P − t·D)/S⌋ within x, for both inputs."""
        k, s, p, d = self.geometry(ctx)[axis]
        size = ctx.x[2 + axis]
        if k > 4096:
            return [None, None]
        spans = [(max(-(-(lo + p - t * d) // s), 0), min((hi + p - t * d) // s, size - 1)) for t in range(k)]
        spans = [(a, b) for a, b in spans if a <= b]
        span = (min(a for a, _ in spans), max(b for _, b in spans)) if spans else (1, 0)
        return [span, span]

    def dense(self, ctx: Ctx, axis: int) -> bool:
        return self.geometry(ctx)[axis][3] == 1

    def explain(self, ctx: Ctx) -> list[tuple[str, str, int]]:
        lines = []
        for a, (h, k, s, p, o) in enumerate(zip(ctx.x[2:], self.kernel_size, self.strides, self.padding, ctx.out[2:])):
            axis = AXES_NAMES[self.dims][a]
            what = f"{axis}'" if self.output_size is None else f"{axis}' without output_size"
            lines.append((what, f"({h} − 1)·{s} − 2·{p} + {k}", (h - 1) * s - 2 * p + k))
            if self.output_size is not None:
                lines.append((f"{axis}' (output_size)", str(o), o))
        return [*lines, *super().explain(ctx)]

    def saved(self, ctx: Ctx, grads: tuple[bool, ...]) -> Saved:
        """Autograd keeps the indices, the very tensor the max pool keeps: nothing new."""
        return Saved()

    def build(self, ctx: Ctx, t: Kit) -> Any:
        return t.ext.MaxUnpool(self.dims, self.kernel_size, self.strides, self.padding, ctx.out[2:])

    def probe(self, ctx: Ctx, t: Kit) -> Any:
        """The sum of x over every window covering each output (the positions a maximum can take)."""
        return t.ext.UnpoolReach(self.geometry(ctx), ctx.out[2:])


class MaxUnpool1d(MaxUnpoolNd):
    type: Literal["max_unpool1d"]
    dims: ClassVar[int] = 1


class MaxUnpool2d(MaxUnpoolNd):
    type: Literal["max_unpool2d"]
    dims: ClassVar[int] = 2


class MaxUnpool3d(MaxUnpoolNd):
    type: Literal["max_unpool3d"]
    dims: ClassVar[int] = 3
