"""Layers that move, pad or resample data: identity, flatten, channel shuffle, upsample, padding."""

from dataclasses import replace
from fractions import Fraction
from math import floor, prod
from typing import Annotated, Any, ClassVar, Literal

from pydantic import WithJsonSchema, field_validator, model_validator

from cnncalc.errors import LayerError
from cnncalc.layers.base import MAX_INT, Ctx, Flag, Kit, Layer, PosInt, Saved, Shape, clip, fmt_shape, per_axis
from cnncalc.layers.conv import AXES_NAMES
from cnncalc.layers.field import RF
from cnncalc.layers.routes import (
    OnnxForm,
    OnnxNode,
    TorchCall,
    TorchForm,
    Traced,
    Unsupported,
    lean,
    module,
    one,
    onnx_reshape,
    onnx_same,
    sized,
)


def _flatten(call: TorchCall, x: Traced, start_dim: int = 0, end_dim: int = -1) -> tuple[Any, list[Any]]:
    return call.t.nn.Flatten(start_dim, end_dim), [x]


def _interpolate(call: TorchCall, x: Traced, size: Any = None, scale_factor: Any = None, mode: str = "nearest",
                 align_corners: Any = None, recompute_scale_factor: Any = None, antialias: bool = False) -> Any:
    if recompute_scale_factor or antialias:
        raise Unsupported("interpolate with recompute_scale_factor or antialias")
    return call.t.nn.Upsample(size, scale_factor, mode, align_corners), [x]


def _pad(call: TorchCall, x: Traced, pad: Any, mode: str = "constant", value: Any = None) -> tuple[Any, list[Any]]:
    kind = {"constant": "Zero", "reflect": "Reflection", "replicate": "Replication", "circular": "Circular"}.get(mode)
    if kind is None or mode == "constant" and value not in (None, 0, 0.0) or len(pad) % 2 or len(pad) > 6:
        raise Unsupported(f"F.pad with mode {mode!r} and value {value!r}")
    return getattr(call.t.nn, f"{kind}Pad{len(pad) // 2}d")(tuple(pad)), [x]


class Identity(Layer):
    """Passes its input through unchanged (a placeholder, or a named tap point)."""

    channel_wise: ClassVar[bool] = True

    type: Literal["identity"]
    onnx_ops: ClassVar[tuple[OnnxForm, ...]] = (OnnxForm(("Identity",), onnx_same),)

    passes_gradient = Flag(True)

    def aliases(self, training: bool) -> bool:
        """A view of the input: nothing allocated, and the gradient passes back as a view."""
        return True

    def moves_data(self) -> bool:
        return False

    def build(self, ctx: Ctx, t: Kit) -> Any:
        return t.nn.Identity()


class Flatten(Layer):
    """Flattens axes start_dim..end_dim into one (torch default 1..−1: (N, C, H, W) → (N, C·H·W)).
    The receptive field is not defined after flattening (null)."""

    category: ClassVar[str] = "reshape"
    type: Literal["flatten"]
    torch_functions: ClassVar[tuple[TorchForm, ...]] = (TorchForm(("torch.flatten", "Tensor.flatten"), "flatten", _flatten),)
    onnx_ops: ClassVar[tuple[OnnxForm, ...]] = (OnnxForm(("Flatten",), onnx_reshape),)
    start_dim: int = 1
    end_dim: int = -1

    passes_gradient = Flag(True)

    def aliases(self, training: bool) -> bool:
        """A view of the input: nothing allocated, and the gradient passes back as a view;
        but of a permuted input whose order no view can follow (a permute or transpose before
        it), torch's reshape copies: a new output-sized tensor (analysis/strides.py)."""
        return True

    def moves_data(self) -> bool:
        return False

    def span(self, ctx: Ctx) -> tuple[int, int]:
        r = len(ctx.x)
        s, e = self.start_dim % r if -r <= self.start_dim < r else None, self.end_dim % r if -r <= self.end_dim < r else None
        if s is None or e is None or s > e:
            raise LayerError(f"start_dim={self.start_dim}, end_dim={self.end_dim} do not fit a "
                             f"{r}-D input {fmt_shape(ctx.x)}", "start_dim")
        return s, e

    def shape(self, ctx: Ctx) -> Shape:
        s, e = self.span(ctx)
        return (*ctx.x[:s], prod(ctx.x[s:e + 1]), *ctx.x[e + 1:])

    def note(self, ctx: Ctx) -> str | None:
        s, e = self.span(ctx)
        parts = ctx.x[s:e + 1]
        return f"{self.name or 'flatten'} gives {'×'.join(map(str, parts))} = {prod(parts)}" if len(parts) > 1 else None

    def rf(self, ctx: Ctx, fields: list) -> None:
        return None

    def build(self, ctx: Ctx, t: Kit) -> Any:
        return t.nn.Flatten(self.start_dim, self.end_dim)

    def probe(self, ctx: Ctx, t: Kit) -> Any:
        return self.build(ctx, t)


class ChannelShuffle(Layer):
    """Channel shuffle (ShuffleNet): view C as (groups, C/groups), swap the two, flatten back.

    Output shape = input shape (C divisible by groups); no params, no ops counted (data
    movement only); RF unchanged (only channels move)."""

    follows_channels_last = Flag(True)  # on a channels-last input, a channels-last output (analysis/strides.py)

    def channel_sources(self, ctx: Ctx) -> str | list[int]:
        """Output channel i reads input channel (i mod g)·(C/g) + i div g."""
        c, g = ctx.x[1], self.groups
        return [(i % g) * (c // g) + i // g for i in range(c)]

    category: ClassVar[str] = "reshape"
    type: Literal["channel_shuffle"]
    torch_functions: ClassVar[tuple[TorchForm, ...]] = (
        TorchForm(("F.channel_shuffle",), "channel_shuffle", module("ChannelShuffle")),)
    groups: PosInt

    def shape(self, ctx: Ctx) -> Shape:
        if len(ctx.x) < 3:
            raise LayerError(f"expected an input (N, C, …) with spatial axes, received {fmt_shape(ctx.x)}")
        if ctx.x[1] % self.groups:
            raise LayerError(f"{ctx.x[1]} channels are not divisible by groups={self.groups}", "groups")
        return ctx.x

    def build(self, ctx: Ctx, t: Kit) -> Any:
        return t.nn.ChannelShuffle(self.groups)


class Upsample(Layer):
    """Resize by scale_factor (H' = ⌊H·s⌋) or to a size, with torch.nn.Upsample's modes.

    No params; element-wise ops = 0 (nearest, nearest-exact) or (2^d·2 − 1) per output element
    (d-linear interpolation; bicubic 4^d·2 − 1); RF: j' = j/s, r' = r (nearest modes), r + j
    (linear modes) or r + 3j (bicubic: 4 taps, marked approximate: its outer weights vanish
    where a unit lands on an input pixel)."""

    follows_channels_last = Flag(True)  # on a channels-last input, a channels-last output (analysis/strides.py)

    channel_wise: ClassVar[bool] = True
    autocast: ClassVar[str | dict[str, str]] = {"cuda": "fp32"}

    category: ClassVar[str] = "resampling"
    type: Literal["upsample"]
    torch_functions: ClassVar[tuple[TorchForm, ...]] = (TorchForm(("F.interpolate",), "interpolate", _interpolate),)
    size: Annotated[Any, WithJsonSchema({"anyOf": [{"type": "integer", "minimum": 1},
                                                   {"type": "array", "items": {"type": "integer", "minimum": 1}},
                                                   {"type": "string",
                                                    "pattern": r"^like [A-Za-z0-9_][A-Za-z0-9_.\-]*$"}]})] = None
    """Output spatial sizes; in a spec also `like LAYER`: that tensor's sizes (spec/expand.py)."""
    scale_factor: Annotated[Any, WithJsonSchema({"anyOf": [{"type": "number", "exclusiveMinimum": 0},
                                                           {"type": "array", "items": {"type": "number"}}]})] = None
    mode: Literal["nearest", "nearest-exact", "linear", "bilinear", "bicubic", "trilinear"] = "nearest"
    align_corners: bool | None = None

    @model_validator(mode="after")
    def _one_of(self) -> "Upsample":
        if (self.size is None) == (self.scale_factor is None):
            raise ValueError("give exactly one of size or scale_factor")
        if self.align_corners is not None and self.mode.startswith("nearest"):
            raise ValueError(f"align_corners only applies to the linear and cubic modes, not '{self.mode}'")
        for v in (self.size if isinstance(self.size, list) else [self.size]):
            if not (isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= MAX_INT) and self.size is not None:
                raise ValueError(f"size must be positive integers, received {self.size!r}")
        for v in (self.scale_factor if isinstance(self.scale_factor, list) else [self.scale_factor]):
            if v is not None and not (isinstance(v, (int, float)) and not isinstance(v, bool) and 0 < v <= 1e6):
                raise ValueError(f"scale_factor must be positive numbers, received {self.scale_factor!r}")
        return self

    @Flag.rule
    def rf_size_dependent(self) -> bool:
        return self.size is not None or bool(self.align_corners)  # align_corners: jump (H−1)/(H'−1)

    def dims_of(self, ctx: Ctx) -> int:
        dims = len(ctx.x) - 2
        want = {"linear": 1, "bilinear": 2, "bicubic": 2, "trilinear": 3}.get(self.mode)
        if dims < 1 or (want and dims != want):
            raise LayerError(f"mode '{self.mode}' needs a {(want or 1) + 2}-D input, received {fmt_shape(ctx.x)}", "mode")
        return dims

    def scales(self, ctx: Ctx) -> list[Fraction]:
        """Input pixels per output pixel on each axis, as torch maps coordinates."""
        dims = self.dims_of(ctx)
        if self.align_corners:
            return [Fraction(h - 1, o - 1) if o > 1 else Fraction(1) for h, o in zip(ctx.x[2:], ctx.out[2:])]
        if self.scale_factor is not None:  # a float like 0.7 is the nearest short fraction here (see rf)
            return [1 / Fraction(s).limit_denominator(1000) for s in per_axis_any(self.scale_factor, dims, "scale_factor")]
        return [Fraction(h, o) for h, o in zip(ctx.x[2:], ctx.out[2:])]

    def shape(self, ctx: Ctx) -> Shape:
        dims = self.dims_of(ctx)
        if self.size is not None:
            out = per_axis_any(self.size, dims, "size")
        else:
            # torch (F.interpolate) floors the double product, not the exact one: 10 · 0.7 → 7
            out = tuple(floor(h * float(s)) for h, s in zip(ctx.x[2:], per_axis_any(self.scale_factor, dims, "scale_factor")))
            if min(out) < 1:
                raise LayerError(f"scale_factor {self.scale_factor} gives an empty output {out}", "scale_factor")
        return (*ctx.x[:2], *out)

    def elementwise(self, ctx: Ctx) -> int:
        if self.mode.startswith("nearest"):
            return 0
        return prod(ctx.out) * ((4 if self.mode == "bicubic" else 2) ** (len(ctx.out) - 2) * 2 - 1)

    def rf(self, ctx: Ctx, fields: list[list[RF] | None]) -> list[RF] | None:
        f = fields[0]
        if f is None:
            return None
        factors = per_axis_any(self.scale_factor, len(f), "scale_factor") if self.scale_factor is not None else [1] * len(f)
        out = []
        for r, s, h, given in zip(f, self.scales(ctx), ctx.x[2:], factors):
            if Fraction(given) != Fraction(given).limit_denominator(1000) or (
                    self.size is not None and not self.align_corners and s.numerator != 1 and s.denominator != 1):
                # a size that is no whole multiple or divisor of the input: units step unevenly
                # (or torch maps coordinates with the double 1/0.7…, not a short fraction): the
                # field below is an estimate
                r = replace(r, exact=False)
            if h == 1:  # every unit reads the one input position: the same window, not a lattice
                out.append(r if r.whole else replace(r, exact=False))
            elif self.mode == "nearest":
                out.append(r.resample(s, 1))
            elif self.mode == "nearest-exact":  # unit i reads ⌊(i + ½)·s⌋
                out.append(r.resample(s, 1, Fraction(floor(s / 2)), uniform=s.denominator == 1))
            elif self.mode == "bicubic":
                out.append(replace(r.resample(s, 4, (s - 1) / 2 if not self.align_corners else Fraction(0),
                                              uniform=False), exact=False))
            else:
                out.append(r.resample(s, 1 if s == 1 else 2, (s - 1) / 2 if not self.align_corners else Fraction(0),
                                      uniform=s == 1))  # some outputs land exactly on one input
        return out

    def build(self, ctx: Ctx, t: Kit) -> Any:
        return t.nn.Upsample(self.size, self.scale_factor, self.mode, self.align_corners)

    def dense(self, ctx: Ctx, axis: int) -> bool:
        return ctx.out[2 + axis] >= ctx.x[2 + axis]  # shrinking skips input positions

    def reads(self, ctx: Ctx, axis: int, lo: int, hi: int, real: bool = False) -> list[tuple[int, int] | None]:
        """Nearest modes by a power-of-two factor up (output o reads ⌊o/k⌋, torch's float scale
        then being exact) or a whole factor down (o·k, nearest-exact o·k + ⌊k/2⌋); other
        resizes are no fixed interval (weights that vanish, float scales)."""
        h, o = ctx.x[2 + axis], ctx.out[2 + axis]
        if not self.mode.startswith("nearest"):
            return [None]
        # torch maps with 1/scale_factor when one is given, else with H/H'
        ratio = (1 / Fraction(per_axis_any(self.scale_factor, len(ctx.x) - 2, "scale_factor")[axis]).limit_denominator(1000)
                 if self.scale_factor is not None else Fraction(h, o))
        if ratio.numerator == 1 and ratio.denominator & (ratio.denominator - 1) == 0 and o == h * ratio.denominator:
            return [(lo // ratio.denominator, hi // ratio.denominator)]
        if ratio.denominator == 1 and (self.scale_factor is None or abs(float(ratio) * float(
                per_axis_any(self.scale_factor, len(ctx.x) - 2, "scale_factor")[axis]) - 1) < 1e-12):
            k = ratio.numerator
            shift = k // 2 if self.mode == "nearest-exact" else 0
            return [(lo * k + shift, hi * k + shift)]
        return [None]

    def probe(self, ctx: Ctx, t: Kit) -> Any:
        """The resize itself (positive interpolation weights, per channel)."""
        return self.build(ctx, t)


def per_axis_any(value: Any, dims: int, name: str) -> tuple:
    if isinstance(value, list):
        if len(value) != dims:
            raise LayerError(f"{name} has {len(value)} values but the input has {dims} spatial axes", name)
        return tuple(value)
    return (value,) * dims


class PadNd(Layer):
    """Padding layer (torch order: [left, right, top, bottom, front, back], or one int for all;
    zero padding also takes negative values, which crop).

    H' = H + before + after per axis; no params; RF: start' = start − before·j."""

    channel_wise: ClassVar[bool] = True

    category: ClassVar[str] = "padding"
    dims: ClassVar[int] = 2
    torch_functions: ClassVar[tuple[TorchForm, ...]] = (TorchForm(("F.pad",), "pad", _pad),)
    mode: ClassVar[str] = "constant"
    padding: Annotated[Any, WithJsonSchema({"anyOf": [{"type": "integer"},
                                                      {"type": "array", "items": {"type": "integer"}}]})]

    @field_validator("padding", mode="before")
    @classmethod
    def _pad(cls, v: Any) -> tuple[int, ...]:
        if isinstance(v, list) and len(v) != 2 * cls.dims:
            raise ValueError(f"expected one integer or {2 * cls.dims} integers "
                             f"(last axis first: left, right, top, bottom, …), received {v!r}")
        if cls.mode == "constant":  # negative zero padding crops (torch's F.pad)
            return per_axis(v, 2 * cls.dims, minimum=-MAX_INT)
        return per_axis(v, 2 * cls.dims, minimum=0)

    def pairs(self) -> list[tuple[int, int]]:
        """(before, after) per spatial axis, first axis first."""
        p = self.padding
        return [(p[2 * i], p[2 * i + 1]) for i in range(self.dims)][::-1]

    def shape(self, ctx: Ctx) -> Shape:
        if len(ctx.x) != self.dims + 2:
            raise LayerError(f"expected a {self.dims + 2}-D input (N, C, {', '.join(AXES_NAMES[self.dims])}), "
                             f"received {fmt_shape(ctx.x)}")
        for (b, a), h in zip(self.pairs(), ctx.x[2:]):
            limit = {"reflect": h - 1, "circular": h}.get(self.mode)  # torch's rules; replicate has none
            if limit is not None and max(b, a) > limit:
                raise LayerError(f"{self.mode} padding {max(b, a)} needs an input of at least "
                                 f"{max(b, a) + (self.mode == 'reflect')}, received {h}", "padding")
        out = tuple(h + b + a for h, (b, a) in zip(ctx.x[2:], self.pairs()))
        if min(out) < 1:
            raise LayerError(f"cropping {list(self.padding)} leaves nothing of {fmt_shape(ctx.x)}: "
                             f"{fmt_shape((*ctx.x[:2], *out))}", "padding")
        return (*ctx.x[:2], *out)

    def rf(self, ctx: Ctx, fields: list[list[RF] | None]) -> list[RF] | None:
        f = fields[0]
        # zeros added around a whole field: those units read nothing (a crop only removes units)
        zeros = self.mode == "constant"
        return None if f is None else [r.window(1, 1, b).emptied() if zeros and (b > 0 or a > 0) else r.window(1, 1, b)
                                       for r, (b, a) in zip(f, self.pairs())]

    def build(self, ctx: Ctx, t: Kit) -> Any:
        prefix = {"constant": "Zero", "reflect": "Reflection", "replicate": "Replication", "circular": "Circular"}[self.mode]
        return getattr(t.nn, f"{prefix}Pad{self.dims}d")(self.padding)

    def reads(self, ctx: Ctx, axis: int, lo: int, hi: int, real: bool = False) -> list[tuple[int, int] | None]:
        """Shifted by the padding before (zeros; other modes read mirrored or wrapped pixels)."""
        if self.mode != "constant":
            return [None]
        before = self.pairs()[axis][0]
        span = (lo - before, hi - before)
        return [clip(span, ctx.x[2 + axis]) if real else span]

    def saved(self, ctx: Ctx, grads: tuple[bool, ...]) -> Saved:
        """Reflect and replicate keep the input; zero and circular padding keep nothing."""
        return Saved(inputs=(0,)) if self.mode in ("reflect", "replicate") else Saved()

    def backward_scratch(self, ctx: Ctx, b: int, grads: tuple[bool, ...]) -> int:
        """Circular: torch pads with a chain of in-place copies into an empty output, so backward
        runs one CopySlices node per copied strip (derivatives.yaml: copy_), each cloning the
        output-sized gradient before the previous one is freed: one more output-sized tensor (and
        the strip's gradient, zeroed in a clone, beyond the input's size if two strips outgrow it)."""
        if self.mode != "circular" or not any(grads):
            return 0
        strip = max(max(pad, 0) * prod(ctx.out) // ctx.out[2 + i]
                    for i, pair in enumerate(self.pairs()) for pad in pair)
        return (prod(ctx.out) + max(0, 2 * strip - prod(ctx.x))) * b

    def probe(self, ctx: Ctx, t: Kit) -> Any:
        return self.build(ctx, t)


class ZeroPad1d(PadNd):
    type: Literal["zero_pad1d"]
    dims: ClassVar[int] = 1
    mode: ClassVar[str] = "constant"


class ZeroPad2d(PadNd):
    follows_channels_last = Flag(True)  # on a channels-last input, a channels-last output (analysis/strides.py)
    type: Literal["zero_pad2d"]
    dims: ClassVar[int] = 2
    mode: ClassVar[str] = "constant"


class ZeroPad3d(PadNd):
    type: Literal["zero_pad3d"]
    dims: ClassVar[int] = 3
    mode: ClassVar[str] = "constant"


class ReflectionPad1d(PadNd):
    autocast: ClassVar[str | dict[str, str]] = {"cpu": "fp32"}
    type: Literal["reflection_pad1d"]
    dims: ClassVar[int] = 1
    mode: ClassVar[str] = "reflect"


class ReflectionPad2d(PadNd):
    autocast: ClassVar[str | dict[str, str]] = {"cpu": "fp32"}
    type: Literal["reflection_pad2d"]
    dims: ClassVar[int] = 2
    mode: ClassVar[str] = "reflect"


class ReflectionPad3d(PadNd):
    type: Literal["reflection_pad3d"]
    dims: ClassVar[int] = 3
    mode: ClassVar[str] = "reflect"


class ReplicationPad1d(PadNd):
    autocast: ClassVar[str | dict[str, str]] = {"cpu": "fp32"}
    type: Literal["replication_pad1d"]
    dims: ClassVar[int] = 1
    mode: ClassVar[str] = "replicate"


class ReplicationPad2d(PadNd):
    autocast: ClassVar[str | dict[str, str]] = {"cpu": "fp32"}
    type: Literal["replication_pad2d"]
    dims: ClassVar[int] = 2
    mode: ClassVar[str] = "replicate"


class ReplicationPad3d(PadNd):
    autocast: ClassVar[str | dict[str, str]] = {"cpu": "fp32"}
    type: Literal["replication_pad3d"]
    dims: ClassVar[int] = 3
    mode: ClassVar[str] = "replicate"


class CircularPad1d(PadNd):
    type: Literal["circular_pad1d"]
    dims: ClassVar[int] = 1
    mode: ClassVar[str] = "circular"


class CircularPad2d(PadNd):
    type: Literal["circular_pad2d"]
    dims: ClassVar[int] = 2
    mode: ClassVar[str] = "circular"


class CircularPad3d(PadNd):
    type: Literal["circular_pad3d"]
    dims: ClassVar[int] = 3
    mode: ClassVar[str] = "circular"


class _ConstantPad(PadNd):
    """Constant padding with `value` (torch's ConstantPad1d/2d/3d): as zero padding, the padded
    pixels hold `value` instead of 0 (negative padding crops). No params; RF as zero padding."""

    mode: ClassVar[str] = "constant"
    value: float = 0.0

    def build(self, ctx: Ctx, t: Kit) -> Any:
        return getattr(t.nn, f"ConstantPad{self.dims}d")(self.padding, self.value)


class ConstantPad1d(_ConstantPad):
    type: Literal["constant_pad1d"]
    dims: ClassVar[int] = 1


class ConstantPad2d(_ConstantPad):
    follows_channels_last = Flag(True)  # on a channels-last input, a channels-last output (analysis/strides.py)
    type: Literal["constant_pad2d"]
    dims: ClassVar[int] = 2


class ConstantPad3d(_ConstantPad):
    type: Literal["constant_pad3d"]
    dims: ClassVar[int] = 3


def _unfold(call: TorchCall, x: Traced, kernel_size: Any, dilation: Any = 1, padding: Any = 0,
            stride: Any = 1) -> tuple[Any, list[Any]]:
    return call.t.nn.Unfold(*map(sized, (kernel_size, dilation, padding, stride))), [x]


def _fold(call: TorchCall, x: Traced, output_size: Any, kernel_size: Any, dilation: Any = 1, padding: Any = 0,
          stride: Any = 1) -> tuple[Any, list[Any]]:
    return call.t.nn.Fold(*map(sized, (output_size, kernel_size, dilation, padding, stride))), [x]


def _onnx_col2im(node: OnnxNode) -> tuple[dict[str, Any], dict[str, Any]]:
    """Col2Im (opset 18): fold, the image and block shapes stored constants."""
    image, block = (node.consts.get(i) for i in node.ins[1:3])
    if image is None or block is None:
        raise Unsupported("Col2Im with an image or block shape that is computed, not stored")
    a, dims = node.a, len(list(block))
    pads = [int(p) for p in a.get("pads", [0] * 2 * dims)]
    if dims != 2 or pads[:dims] != pads[dims:]:
        raise Unsupported("Col2Im other than 2-D with even padding")
    return lean({"type": "fold", "output_size": one(list(image)), "kernel_size": one(list(block)),
                 "dilation": one(a.get("dilations", [1] * dims)), "padding": one(pads[:dims]),
                 "stride": one(a.get("strides", [1] * dims))}), {}


_AXES2 = {"anyOf": [{"type": "integer", "minimum": 1},
                    {"type": "array", "items": {"type": "integer", "minimum": 1}, "minItems": 2, "maxItems": 2}]}
_AXES2_0 = {"anyOf": [{"type": "integer", "minimum": 0},
                      {"type": "array", "items": {"type": "integer", "minimum": 0}, "minItems": 2, "maxItems": 2}]}


class _Blocks(Layer):
    """Sliding blocks over the two spatial axes of an image (torch's Unfold and Fold)."""

    category: ClassVar[str] = "reshape"
    kernel_size: Annotated[Any, WithJsonSchema(_AXES2)]
    dilation: Annotated[Any, WithJsonSchema(_AXES2)] = 1
    padding: Annotated[Any, WithJsonSchema(_AXES2_0)] = 0
    stride: Annotated[Any, WithJsonSchema(_AXES2)] = 1

    @field_validator("kernel_size", "dilation", "stride", mode="before")
    @classmethod
    def _pos(cls, v: Any) -> tuple[int, ...]:
        return per_axis(v, 2)

    @field_validator("padding", mode="before")
    @classmethod
    def _nonneg(cls, v: Any) -> tuple[int, ...]:
        return per_axis(v, 2, 0)

    def blocks(self, image: tuple[int, ...]) -> tuple[int, ...]:
        """Blocks along each axis of an image (H, W): ⌊(n + 2p − d·(k − 1) − 1)/s⌋ + 1."""
        out = []
        for a, (n, k, d, p, s) in enumerate(zip(image, self.kernel_size, self.dilation, self.padding, self.stride)):
            span = d * (k - 1) + 1
            if n + 2 * p < span:
                raise LayerError(f"the {'dilated ' if d > 1 else ''}block ({span}) is larger than the padded "
                                 f"{AXES_NAMES[2][a]} ({n} + 2·{p})", "kernel_size")
            out.append((n + 2 * p - span) // s + 1)
        return tuple(out)

    def scratch(self, ctx: Ctx, b: int) -> int:
        """torch makes the output's storage as large as its input, then resizes it: where the
        input is larger, the surplus (input − output elements) is allocated with the output (and
        lives as long as it, which the peak model does not follow: then an estimate)."""
        return max(prod(ctx.x) - prod(ctx.out), 0) * b

    def rf(self, ctx: Ctx, fields: list[list[RF] | None]) -> list[RF] | None:
        """Null: the blocks' positions lie along one axis L (H'·W' flattened), as after flatten."""
        return None

    def reads(self, ctx: Ctx, axis: int, lo: int, hi: int, real: bool = False) -> list[tuple[int, int] | None]:
        return [None]


class Unfold(_Blocks):
    """im2col (torch's nn.Unfold, F.unfold): every kernel_size block of an (N, C, H, W) input
    (with dilation, zero padding and stride as a conv's) as one column: output (N, C·∏k, L),
    L = ∏⌊(n + 2p − d·(k − 1) − 1)/s⌋ + 1 blocks. No params, no ops (a copy). RF null: each
    column reads one block, but the columns lie along one axis L (H'·W' flattened), as after
    flatten. Memory: a new output; nothing kept for backward (fold of the gradient needs only
    the sizes); exact with stride 1 and no dilation, else an estimate (see scratch). ONNX has no
    op for it (exporters write gathers): import from torch only."""

    type: Literal["unfold"]
    writes_contiguous = Flag(True)  # a new (N, C·∏k, L) tensor
    torch_functions: ClassVar[tuple[TorchForm, ...]] = (TorchForm(("F.unfold",), "unfold", _unfold),)

    @Flag.rule
    def memory_exact(self) -> bool:
        """With stride 1 and no dilation every input element is copied at least once (the output
        is no smaller than the input): its storage is the output's; otherwise it may be the
        input's (see scratch), an estimate."""
        return self.stride == (1, 1) and self.dilation == (1, 1)

    def shape(self, ctx: Ctx) -> Shape:
        self.expect_rank(ctx.x, 4, "(N, C, H, W)")
        n, c, *image = ctx.x
        return (n, c * prod(self.kernel_size), prod(self.blocks(tuple(image))))

    def build(self, ctx: Ctx, t: Kit) -> Any:
        return t.nn.Unfold(self.kernel_size, self.dilation, self.padding, self.stride)


class Fold(_Blocks):
    """col2im (torch's nn.Fold, F.fold; ONNX Col2Im): the inverse layout of unfold, summing
    overlapping blocks. Input (N, C·∏k, L) with L the number of blocks output_size gives
    (as unfold counts them); output (N, C, *output_size). No params; element-wise ops = one
    add per input element (each block value is added into its output position). RF null (its
    input's positions are blocks along one axis). Memory: a new output; nothing kept for
    backward (unfold of the gradient needs only the sizes); exact where blocks do not overlap,
    else an estimate (see scratch)."""

    type: Literal["fold"]
    writes_contiguous = Flag(True)  # a new (N, C, H, W) tensor, summed into
    torch_functions: ClassVar[tuple[TorchForm, ...]] = (TorchForm(("F.fold",), "fold", _fold),)

    @Flag.rule
    def memory_exact(self) -> bool:
        """Exact where the output is no smaller than the input (∏k·L ≤ ∏output_size: blocks that
        do not overlap); overlapping blocks leave the output in an input-sized storage (see
        scratch), an estimate."""
        return prod(self.kernel_size) * prod(self.blocks(self.output_size)) <= prod(self.output_size)
    output_size: Annotated[Any, WithJsonSchema(_AXES2)]
    onnx_ops: ClassVar[tuple[OnnxForm, ...]] = (OnnxForm(("Col2Im",), _onnx_col2im, reads_constants=True),)

    @field_validator("output_size", mode="before")
    @classmethod
    def _size(cls, v: Any) -> tuple[int, ...]:
        return per_axis(v, 2)

    def shape(self, ctx: Ctx) -> Shape:
        self.expect_rank(ctx.x, 3, "(N, C·∏kernel_size, L)")
        n, ck, length = ctx.x
        k = prod(self.kernel_size)
        if ck % k:
            raise LayerError(f"the input's {ck} channels are not a multiple of ∏kernel_size = {k}", "kernel_size")
        blocks = self.blocks(self.output_size)
        if prod(blocks) != length:
            raise LayerError(f"output_size {list(self.output_size)} holds {' × '.join(map(str, blocks))} = "
                             f"{prod(blocks)} blocks, but the input has L = {length}", "output_size")
        return (n, ck // k, *self.output_size)

    def elementwise(self, ctx: Ctx) -> int:
        return prod(ctx.x)

    def build(self, ctx: Ctx, t: Kit) -> Any:
        return t.nn.Fold(self.output_size, self.kernel_size, self.dilation, self.padding, self.stride)
