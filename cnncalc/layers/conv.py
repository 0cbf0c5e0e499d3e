"""Convolutions: plain, transposed, deformable, separable, locally connected and tiled."""

from math import prod
from typing import Annotated, Any, ClassVar, Literal

from pydantic import WithJsonSchema, field_validator, model_validator

from cnncalc.errors import LayerError
from cnncalc.layers.base import Axes, Axes0, Ctx, Flag, Kit, Layer, PosInt, Saved, Shape, clip, per_axis, progressions
from cnncalc.layers.field import RF, Window, conv_transpose_out, same_padding
from cnncalc.layers.routes import OnnxForm, OnnxNode, Unsupported, lean, one

AXES_NAMES = {1: ("L",), 2: ("H", "W"), 3: ("D", "H", "W")}
_END = {1: (("sample", "at the end"),), 2: (("row", "at the bottom"), ("column", "at the right")),
        3: (("frame", "at the end"), ("row", "at the bottom"), ("column", "at the right"))}


def _left_over(n: int, dims: int, axis: int, where: bool = True) -> str:
    """'1 row at the bottom', '3 columns at the right' (`where=False`: '3 columns')."""
    what, end = _END[dims][axis]
    return f"{n} {what}{'s' * (n != 1)}" + (f" {end}" if where else "")

Padding = Annotated[Any, WithJsonSchema({"anyOf": [
    {"type": "integer", "minimum": 0},
    {"enum": ["same", "valid"]},
    {"type": "array", "items": {"anyOf": [
        {"type": "integer", "minimum": 0},
        {"type": "array", "items": {"type": "integer", "minimum": 0}, "minItems": 2, "maxItems": 2}]}}]})]


def spatial_axes(dims: int) -> str:
    return "(N, C, " + ", ".join(AXES_NAMES[dims]) + ")"


def padding_pairs(value: Any, dims: int) -> tuple[tuple[int, int], ...] | str:
    """'same' | 'valid' | P | [P_h, P_w] | [[top, bottom], [left, right]] -> per-axis (left, right)."""
    if value in ("same", "valid"):
        return value
    if isinstance(value, (list, tuple)) and len(value) == dims and all(
            isinstance(v, (list, tuple)) for v in value):
        pairs = tuple(tuple(per_axis(list(v), 2, minimum=0)) for v in value)
        return pairs  # type: ignore[return-value]
    try:
        return tuple((p, p) for p in per_axis(value, dims, minimum=0))
    except ValueError:
        raise ValueError(f"expected 'same', 'valid', a non-negative integer, {dims} integers "
                         f"(one per axis) or {dims} [before, after] pairs, received {value!r}") from None


def tf_same_padding(size: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """TensorFlow's 'SAME' (timm's Conv2dSame, Keras): the output is ⌈size/stride⌉, padded by
    total = max((⌈size/S⌉ − 1)·S + D·(K − 1) + 1 − size, 0), ⌊total/2⌋ before, the rest after.
    With stride 1 it is torch's padding='same'."""
    total = max((-(-size // stride) - 1) * stride + dilation * (kernel - 1) + 1 - size, 0)
    return total // 2, total - total // 2


def _onnx_conv(node: OnnxNode, transpose: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    """Conv / ConvTranspose with symmetric explicit padding; the weight (and bias) stored."""
    a, ins, dims = node.a, node.ins, node.dims
    w = node.weight(ins[1])
    pads = list(a.get("pads", [0] * 2 * dims))
    if pads[:dims] != pads[dims:] or a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
        raise Unsupported("asymmetric or automatic padding")
    entry = {"type": f"conv{'_transpose' if transpose else ''}{dims}d",
             "out_channels": int(w.shape[1] * a.get("group", 1) if transpose else w.shape[0]),
             "kernel_size": one(list(w.shape[2:])), "stride": one(a.get("strides", [1] * dims)),
             "padding": one(pads[:dims]), "dilation": one(a.get("dilations", [1] * dims)),
             "groups": a.get("group", 1)}
    if transpose:
        entry["output_padding"] = one(a.get("output_padding", [0] * dims))
    if len(ins) < 3:
        entry["bias"] = False
    return lean(entry), {"weight": w, **({"bias": node.weight(ins[2])} if len(ins) > 2 else {})}


class _Window:
    """Sliding windows over the spatial axes (conv-like layers and pooling): one
    :class:`~cnncalc.arith.Window` per axis feeds the shape, the warnings, --explain and the RF."""

    dims: ClassVar[int]

    def pads(self, ctx: Ctx) -> tuple[tuple[int, int], ...]:
        pad = self.padding  # type: ignore[attr-defined]
        if pad == "valid":
            return ((0, 0),) * self.dims
        if pad == "same" and any(s != 1 for s in self.strides):  # TensorFlow's way: depends on the size
            return tuple(tf_same_padding(n, k, s, d) for n, k, s, d in
                         zip(ctx.x[2:], self.kernel_size, self.strides, self.dilations))  # type: ignore[attr-defined]
        if pad == "same":
            return tuple(same_padding(k, d) for k, d in zip(self.kernel_size, self.dilations))  # type: ignore[attr-defined]
        return pad

    @property
    def strides(self) -> tuple[int, ...]:
        return self.stride  # type: ignore[attr-defined]

    @property
    def dilations(self) -> tuple[int, ...]:
        return self.dilation  # type: ignore[attr-defined]

    def windows(self, ctx: Ctx) -> list[Window]:
        memo = ctx.__dict__.get("_windows")  # shape, rf, warnings and memory all ask: made once per ctx
        x = ctx.ins[0]
        if memo is not None and memo[0] is self and memo[1] == x:
            return memo[2]
        ceil = self.__dict__.get("ceil_mode", False)  # (getattr of a missing field is slow on a model)
        out = [Window(h, k, s, lo, hi, d, ceil) for h, k, s, (lo, hi), d in
               zip(x[2:], self.kernel_size, self.strides, self.pads(ctx), self.dilations)]  # type: ignore[attr-defined]
        ctx.__dict__["_windows"] = (self, x, out)
        return out

    def window_shape(self, ctx: Ctx) -> tuple[int, ...]:
        out = []
        for a, w in enumerate(self.windows(ctx)):
            if w.out <= 0:
                raise LayerError(
                    f"output {AXES_NAMES[self.dims][a]} would be {w.formula()} = {w.out}: the "
                    f"{'dilated ' if w.dilation > 1 else ''}kernel ({w.span}) is larger than the padded input "
                    f"({w.padded})", "kernel_size")
            out.append(w.out)
        return tuple(out)

    def probe(self, ctx: Ctx, t: Kit) -> Any:
        """The sum over the very same windows (any weights, groups or tiling reach the same)."""
        return t.ext.WindowSum(self.windows(ctx))

    def reads(self, ctx: Ctx, axis: int, lo: int, hi: int, real: bool = False) -> list[tuple[int, int] | None]:
        """Window i reads i·S − P_lo + t·D (t < K): from lo·S − P_lo to hi·S − P_lo + D·(K − 1);
        of the input's own positions, those of each tap t that fall inside (padding other than
        zeros reads mirrored or wrapped pixels: no fixed interval)."""
        if getattr(self, "padding_mode", "zeros") != "zeros":
            return [None]
        w = self.windows(ctx)[axis]
        if not real:
            return [(lo * w.stride - w.pad_lo, hi * w.stride - w.pad_lo + w.dilation * (w.kernel - 1))]
        if w.dilation == 1 and w.stride <= w.kernel:  # the taps tile the span: cut it
            return [clip((lo * w.stride - w.pad_lo, hi * w.stride - w.pad_lo + w.kernel - 1), w.size)]
        if w.kernel > 4096:
            return [None]
        return [progressions(lo, hi, w.stride, [t * w.dilation - w.pad_lo for t in range(w.kernel)], w.size)]

    def dense(self, ctx: Ctx, axis: int) -> bool:
        w = self.windows(ctx)[axis]
        return w.dilation == 1 and w.stride <= w.kernel

    def window_rf(self, ctx: Ctx, fields: list[list[RF] | None]) -> list[RF] | None:
        f = fields[0]
        if f is None:
            return None
        windows = self.windows(ctx)
        out = [r.window(w.kernel, w.stride, w.pad_lo, w.dilation) for r, w in zip(f, windows)]
        if not any([r.whole for r in f]):
            return out  # (nearly always: a pool has no padding_mode, and getattr's miss is slow on a model)
        zeros = getattr(self, "padding_mode", "zeros") == "zeros"
        for a, (r, w) in enumerate(zip(f, windows)):
            if r.whole and zeros and (w.pad_lo >= w.span or (w.out - 1) * w.stride - w.pad_lo > w.size - 1):
                out[a] = out[a].emptied()  # a first or last unit reads padding alone
        return out

    def explain_window(self, ctx: Ctx) -> list[tuple[str, str, int]]:
        """H' per axis with the numbers substituted, and what the rounding dropped."""
        lines = []
        for a, w in enumerate(self.windows(ctx)):
            note = ""
            if w.ceil_mode and w.out != -(-(w.padded - w.span) // w.stride) + 1:
                note = "   (last window dropped: it would start in the padding)"
            elif w.unreached:
                note = f"   ({_left_over(w.unreached, self.dims, a, False)} dropped by the floor)"
            lines.append((AXES_NAMES[self.dims][a] + "'", w.formula() + note, w.out))
        return lines

    def explain_dense(self, ctx: Ctx) -> tuple[str, str, int]:
        """The seeds' sparse-interaction argument: a fully connected layer with the same input
        and output sizes would need in·out + out params."""
        i, o = prod(ctx.x[1:]), prod(ctx.out[1:])
        return ("a fully connected layer doing the same mapping would need", f"{i}·{o} + {o}", i * o + o)

    def window_warnings(self, ctx: Ctx) -> list[str]:
        msgs = []
        for a, w in enumerate(self.windows(ctx)):
            if w.unreached and w.span >= w.stride:  # a kernel smaller than its stride subsamples by design
                msgs.append(f"{_left_over(w.unreached, self.dims, a)} never reach{'es' * (w.unreached == 1)} any output: "
                            f"({w.size} + {w.pad_lo + w.pad_hi} − {w.span}) is not a multiple of stride {w.stride}")
        return msgs


class _ConvFields(Layer):
    """Fields every convolution shares (torch names), normalised per spatial axis."""

    category: ClassVar[str] = "convolution"
    dims: ClassVar[int] = 2
    out_channels: PosInt
    """Number of filters (output channels)."""
    kernel_size: Axes
    """K: an int or one per spatial axis."""
    stride: Axes = 1
    dilation: Axes = 1
    bias: bool = True
    in_channels: PosInt | None = None
    """Optional: inferred from the input; checked when given."""

    @field_validator("kernel_size", "stride", "dilation", mode="before")
    @classmethod
    def _axes(cls, v: Any) -> tuple[int, ...]:
        return per_axis(v, cls.dims)


class ConvNd(_Window, _ConvFields):
    """Convolution: weight (C_out, C_in/groups, K…), bias (C_out).

    H' = ⌊(H + P_total − D·(K−1) − 1)/S⌋ + 1 per axis;
    params = C_out·(C_in/groups)·∏K + C_out·bias;
    MACs = N·C_out·∏H'·(C_in/groups)·∏K;  RF: r' = r + (K_eff−1)·j, j' = j·S.
    padding 'same' with a stride is TensorFlow's: H' = ⌈H/S⌉, P_total = max((H' − 1)·S + D·(K−1)
    + 1 − H, 0), ⌊P_total/2⌋ before and the rest after (timm's Conv2dSame, Keras ports)."""
    autocast: ClassVar[str | dict[str, str]] = "lower"

    @Flag.rule
    def follows_channels_last(self) -> bool:
        """On 4-D and 5-D tensors with zero padding (torch pads reflect/replicate/circular first)."""
        return self.padding_mode == "zeros"

    def channel_sources(self, ctx: Ctx) -> str | list[int]:
        """groups 1: every input channel; depthwise: its own; other groups: its group's."""
        if self.groups == 1:
            return "all"
        return "each" if self.groups == ctx.x[1] == self.out_channels else "other"

    absorbs_affine: ClassVar[bool] = True
    onnx_ops: ClassVar[tuple[OnnxForm, ...]] = (OnnxForm(("Conv",), lambda node: _onnx_conv(node, False)),)
    padding: Padding = 0
    """int, per-axis list, per-axis [before, after] pairs, 'same' or 'valid'. 'same' with stride 1 is
    torch's; with a stride, TensorFlow's (the output is ⌈size/stride⌉, the odd pixel padded after)."""
    groups: PosInt = 1
    """groups = C_in (and C_out a multiple of it) is a depthwise convolution."""
    padding_mode: Literal["zeros", "reflect", "replicate", "circular"] = "zeros"

    @field_validator("padding", mode="before")
    @classmethod
    def _padding(cls, v: Any) -> Any:
        return padding_pairs(v, cls.dims)

    @model_validator(mode="after")
    def _groups_divide(self) -> "ConvNd":
        if self.out_channels % self.groups:
            raise ValueError(f"out_channels={self.out_channels} is not divisible by groups={self.groups}")
        return self

    def c_in(self, ctx: Ctx) -> int:
        x = ctx.ins[0]
        if len(x) != 2 + self.dims:  # (the axes' names, a string made per call, only for the message: #30)
            self.expect_rank(x, 2 + self.dims, spatial_axes(self.dims))
        c = x[1]
        if self.in_channels is not None:
            self.check_declared("in_channels", self.in_channels, c, "channels")
        if c % self.groups:
            raise LayerError(f"input channels {c} are not divisible by groups={self.groups}", "groups")
        return c

    def shape(self, ctx: Ctx) -> Shape:
        self.c_in(ctx)
        if self.padding_mode in ("reflect", "circular"):  # torch's rules; replicate has no limit
            for a, (size, (pl, pr)) in enumerate(zip(ctx.x[2:], self.pads(ctx))):
                limit = size if self.padding_mode == "circular" else size - 1
                if max(pl, pr) > limit:
                    raise LayerError(f"{self.padding_mode} padding {max(pl, pr)} on axis "
                                     f"{AXES_NAMES[self.dims][a]} needs an input of at least "
                                     f"{max(pl, pr) + (self.padding_mode != 'circular')}, received {size}", "padding")
        return (ctx.x[0], self.out_channels, *self.window_shape(ctx))

    def weights(self, ctx: Ctx) -> dict[str, Shape]:
        w: dict[str, Shape] = {"weight": (self.out_channels, ctx.x[1] // self.groups, *self.kernel_size)}
        if self.bias:
            w["bias"] = (self.out_channels,)
        return w

    def macs(self, ctx: Ctx) -> int:
        return prod(ctx.out) * (ctx.x[1] // self.groups) * prod(self.kernel_size)

    def elementwise(self, ctx: Ctx) -> int:
        return prod(ctx.out) if self.bias else 0

    def rf(self, ctx: Ctx, fields: list[list[RF] | None]) -> list[RF] | None:
        return self.window_rf(ctx, fields)

    def warnings(self, ctx: Ctx) -> list[str]:
        return self.window_warnings(ctx)

    @Flag.rule
    def memory_exact(self) -> bool:
        """Circular padding (its backward is a chain of slice copies) and a padding_mode with no
        padding take torch paths whose backward temporaries are not modelled (measured up to
        25% off in a training step): verify does not judge them."""
        if self.padding_mode == "zeros" or (self.padding == "same" and self.padding_mode != "circular"):
            return True  # ('same' pads wherever a kernel is wider than 1: the padded path)
        return self.padding_mode != "circular" and any(a or b for a, b in self.pads(None))  # type: ignore[arg-type]

    @Flag.rule
    def rf_size_dependent(self) -> bool:
        """TensorFlow's strided 'same' pads by the size modulo the stride: the field's start moves."""
        return self.padding == "same" and any(s != 1 for s in self.stride)

    def padded(self, ctx: Ctx) -> int:
        """Elements of the padded copy torch makes first (a padding_mode other than zeros, or
        uneven zero padding); 0 when the kernel pads on the fly."""
        memo = ctx.__dict__.get("_padded")  # the memory rules ask four times: made once per ctx
        if memo is not None and memo[0] is self and memo[1] == ctx.ins[0]:
            return memo[2]
        pads = self.pads(ctx)
        if self.padding_mode == "zeros" and all(a == b for a, b in pads):
            n = 0
        elif self._same_inside():  # torch pads the difference only, the rest on the fly
            n = prod(ctx.x[:2]) * prod(h + b - a for h, (a, b) in zip(ctx.x[2:], pads))
        else:
            n = prod(ctx.x[:2]) * prod(h + a + b for h, (a, b) in zip(ctx.x[2:], pads))
        ctx.__dict__["_padded"] = (self, ctx.x, n)
        return n

    def _same_inside(self) -> bool:
        """torch's own padding='same' (stride 1, zeros) with an even kernel: the convolution
        operator pads the input by the difference of the sides (its conv_padding_same), inside
        itself."""
        return self.padding == "same" and self.padding_mode == "zeros" and all(s == 1 for s in self.strides)

    def scratch(self, ctx: Ctx, b: int) -> int:
        """The padded copy, if any; torch's padding='same' with an even kernel pads by the sides'
        difference inside the conv operator (an operator's workspace at inference), and keeps
        that copy for backward."""
        if self._same_inside():
            return 0
        return self.padded(ctx) * b

    def backward_scratch(self, ctx: Ctx, b: int, grads: tuple[bool, ...]) -> int:
        """When the input needs a gradient, the padding runs as its own backward step: first the
        conv makes the padded copy's gradient (next to the output's); then, the output's
        gradient and the saved copy freed, the padding turns it into the input's."""
        copy = self.padded(ctx)
        if not grads[0] or not copy:
            return 0
        x, out = prod(ctx.x), prod(ctx.out)
        frozen = 0 if self.trainable or self._same_inside() else copy  # (torch's own 'same': as trained)
        second = (copy if self.padding_mode == "circular" else 0) + frozen - out
        return max(copy - x, second, 0) * b

    def saved(self, ctx: Ctx, grads: tuple[bool, ...]) -> Saved:
        """Autograd keeps the input (its padded copy, if any) whenever the conv is on the gradient's
        way, frozen or not: torch's convolution saves input and weight for all its gradients
        (derivatives.yaml, convolution_backward); reflect and replicate padding also keep the input."""
        copy = self.padded(ctx)
        reflects = self.padding_mode in ("reflect", "replicate") and any(a or b for a, b in self.pads(ctx))
        keep_input = not copy or (grads[0] and reflects)  # a zero pad is a clone
        return Saved(inputs=(0,) if keep_input else (), extra=copy)

    def explain(self, ctx: Ctx) -> list[tuple[str, str, int]]:
        k = "·".join(map(str, self.kernel_size))
        return [*self.explain_window(ctx), *super().explain(ctx),
                ("MACs", f"{'·'.join(map(str, ctx.out))} · {ctx.x[1]}/{self.groups} · {k}", self.macs(ctx)),
                self.explain_dense(ctx)]

    def build(self, ctx: Ctx, t: Kit) -> Any:
        cls = getattr(t.nn, f"Conv{self.dims}d")
        pads = self.pads(ctx)
        torch_same = self.padding == "same" and all(s == 1 for s in self.stride)  # torch refuses strided 'same'
        if torch_same or all(pl == pr for pl, pr in pads):
            padding = "same" if torch_same else tuple(pl for pl, _ in pads)
            return cls(ctx.x[1], self.out_channels, self.kernel_size, self.stride, padding,
                       self.dilation, self.groups, self.bias, self.padding_mode)
        # uneven (TensorFlow's strided 'same', [before, after] pairs): F.pad in forward, as timm's Conv2dSame
        return getattr(t.ext, f"PaddedConv{self.dims}d")(ctx.x[1], self.out_channels, self.kernel_size, self.stride,
                                                         self.dilation, self.groups, self.bias, pads, self.padding_mode)


class Conv1d(ConvNd):
    type: Literal["conv1d"]
    dims: ClassVar[int] = 1


class Conv2d(ConvNd):
    type: Literal["conv2d"]
    dims: ClassVar[int] = 2


class Conv3d(ConvNd):
    type: Literal["conv3d"]
    dims: ClassVar[int] = 3


class ConvTransposeNd(_ConvFields):
    """Transposed convolution: weight (C_in, C_out/groups, K…), bias (C_out).

    H' = (H − 1)·S − 2P + D·(K − 1) + output_padding + 1;
    params = C_in·(C_out/groups)·∏K + C_out·bias;
    MACs = N·C_in·∏H·(C_out/groups)·∏K (every input pixel scatters one kernel; not ×S²);
    RF: j' = j/S, r' = r + (taps spread)·j."""

    autocast: ClassVar[str | dict[str, str]] = "lower"

    def channel_sources(self, ctx: Ctx) -> str | list[int]:
        """groups 1: every input channel; depthwise: its own; other groups: its group's."""
        if self.groups == 1:
            return "all"
        return "each" if self.groups == ctx.x[1] == self.out_channels else "other"
    onnx_ops: ClassVar[tuple[OnnxForm, ...]] = (OnnxForm(("ConvTranspose",), lambda node: _onnx_conv(node, True)),)

    padding: Axes0 = 0
    output_padding: Axes0 = 0
    """Extra rows/columns on one side of the output; must be < stride or dilation."""
    groups: PosInt = 1

    @field_validator("padding", "output_padding", mode="before")
    @classmethod
    def _axes0(cls, v: Any) -> tuple[int, ...]:
        return per_axis(v, cls.dims, minimum=0)

    @model_validator(mode="after")
    def _checks(self) -> "ConvTransposeNd":
        for op, s, d in zip(self.output_padding, self.stride, self.dilation):
            if op >= max(s, d):
                raise ValueError(f"output_padding {op} must be smaller than stride ({s}) or dilation ({d})")
        if self.out_channels % self.groups:
            raise ValueError(f"out_channels={self.out_channels} is not divisible by groups={self.groups}")
        return self

    def shape(self, ctx: Ctx) -> Shape:
        self.expect_rank(ctx.x, 2 + self.dims, spatial_axes(self.dims))
        c = ctx.x[1]
        self.check_declared("in_channels", self.in_channels, c, "channels")
        if c % self.groups:
            raise LayerError(f"input channels {c} are not divisible by groups={self.groups}", "groups")
        out = []
        for a, (h, k, s, p, d, op) in enumerate(zip(ctx.x[2:], self.kernel_size, self.stride, self.padding,
                                                     self.dilation, self.output_padding)):
            o = conv_transpose_out(h, k, s, p, d, op)
            if o <= 0:
                raise LayerError(f"output {AXES_NAMES[self.dims][a]} would be ({h}−1)·{s} − 2·{p} + "
                                 f"{d}·({k}−1) + {op} + 1 = {o}", "padding")
            out.append(o)
        return (ctx.x[0], self.out_channels, *out)

    def weights(self, ctx: Ctx) -> dict[str, Shape]:
        w: dict[str, Shape] = {"weight": (ctx.x[1], self.out_channels // self.groups, *self.kernel_size)}
        if self.bias:
            w["bias"] = (self.out_channels,)
        return w

    def macs(self, ctx: Ctx) -> int:
        return prod(ctx.x) * (self.out_channels // self.groups) * prod(self.kernel_size)

    def elementwise(self, ctx: Ctx) -> int:
        return prod(ctx.out) if self.bias else 0

    def rf(self, ctx: Ctx, fields: list[list[RF] | None]) -> list[RF] | None:
        f = fields[0]
        if f is None:
            return None
        return [r.transposed(k, s, p, d) for r, k, s, p, d in
                zip(f, self.kernel_size, self.stride, self.padding, self.dilation)]

    def explain(self, ctx: Ctx) -> list[tuple[str, str, int]]:
        lines = [(AXES_NAMES[self.dims][a] + "'", f"({h} − 1)·{s} − 2·{p} + {d}·({k} − 1) + {op} + 1", o)
                 for a, (h, k, s, p, d, op, o) in enumerate(zip(ctx.x[2:], self.kernel_size, self.stride, self.padding,
                                                                 self.dilation, self.output_padding, ctx.out[2:]))]
        k = "·".join(map(str, self.kernel_size))
        return [*lines, *super().explain(ctx),
                ("MACs", f"{'·'.join(map(str, ctx.x))} · {self.out_channels}/{self.groups} · {k}", self.macs(ctx))]

    def dense(self, ctx: Ctx, axis: int) -> bool:
        return self.dilation[axis] == 1

    def reads(self, ctx: Ctx, axis: int, lo: int, hi: int, real: bool = False) -> list[tuple[int, int] | None]:
        """Output o gathers the inputs i with i·S − P + t·D = o (t < K), all of them real:
        per tap, i from ⌈(lo + P − t·D)/S⌉ to ⌊(hi + P − t·D)/S⌋ within the input."""
        k, s, p, d, size = self.kernel_size[axis], self.stride[axis], self.padding[axis], self.dilation[axis], ctx.x[2 + axis]
        if k > 4096:
            return [None]
        spans = [(max(-(-(lo + p - t * d) // s), 0), min((hi + p - t * d) // s, size - 1)) for t in range(k)]
        spans = [(a, b) for a, b in spans if a <= b]
        return [(min(a for a, _ in spans), max(b for _, b in spans)) if spans else (1, 0)]

    def saved(self, ctx: Ctx, grads: tuple[bool, ...]) -> Saved:
        """Autograd keeps the input, frozen or not (torch's convolution saves it for all its
        gradients)."""
        return Saved(inputs=(0,))

    def build(self, ctx: Ctx, t: Kit) -> Any:
        cls = getattr(t.nn, f"ConvTranspose{self.dims}d")
        return cls(ctx.x[1], self.out_channels, self.kernel_size, self.stride, self.padding,
                   self.output_padding, self.groups, self.bias, self.dilation)

    def probe(self, ctx: Ctx, t: Kit) -> Any:
        """A ones-kernel transposed convolution with the same geometry, per channel."""
        return t.ext.ScatterSum(self.kernel_size, self.stride, self.padding, self.output_padding, self.dilation)


class ConvTranspose1d(ConvTransposeNd):
    type: Literal["conv_transpose1d"]
    dims: ClassVar[int] = 1


class ConvTranspose2d(ConvTransposeNd):
    follows_channels_last = Flag(True)  # on a channels-last input, a channels-last output (analysis/strides.py)
    type: Literal["conv_transpose2d"]
    dims: ClassVar[int] = 2


class ConvTranspose3d(ConvTransposeNd):
    type: Literal["conv_transpose3d"]
    dims: ClassVar[int] = 3
    #: torch's CPU kernel (slow_conv_transpose3d) allocates its output like the input and
    #: resizes it, keeping max(input, output) bytes: memory is not judged
    memory_exact = Flag(False)


class _Conv2dBase(_Window, _ConvFields):
    """Fields shared by the 2-D special convolutions (no padding_mode, symmetric padding)."""

    padding: Axes0 = 0

    @field_validator("padding", mode="before")
    @classmethod
    def _pad(cls, v: Any) -> tuple[tuple[int, int], ...]:
        return tuple((p, p) for p in per_axis(v, cls.dims, minimum=0))

    def c_in(self, ctx: Ctx) -> int:
        self.expect_rank(ctx.x, 4, spatial_axes(2))
        self.check_declared("in_channels", self.in_channels, ctx.x[1], "channels")
        return ctx.x[1]

    def shape(self, ctx: Ctx) -> Shape:
        self.c_in(ctx)
        return (ctx.x[0], self.out_channels, *self.window_shape(ctx))

    def positions(self, ctx: Ctx) -> int:
        return prod(ctx.out[2:])

    def rf(self, ctx: Ctx, fields: list[list[RF] | None]) -> list[RF] | None:
        return self.window_rf(ctx, fields)

    def warnings(self, ctx: Ctx) -> list[str]:
        return self.window_warnings(ctx)

    def elementwise(self, ctx: Ctx) -> int:
        return prod(ctx.out) if self.bias else 0

    def explain(self, ctx: Ctx) -> list[tuple[str, str, int]]:
        return [*self.explain_window(ctx), *super().explain(ctx), ("MACs", self.macs_expr(ctx), self.macs(ctx)),
                self.explain_dense(ctx)]

    def macs_expr(self, ctx: Ctx) -> str:
        return f"{'·'.join(map(str, ctx.out))} · {ctx.x[1]} · {'·'.join(map(str, self.kernel_size))}"

    @property
    def pad(self) -> tuple[int, ...]:
        return tuple(p for p, _ in self.padding)

    def saved(self, ctx: Ctx, grads: tuple[bool, ...]) -> Saved:
        """Autograd keeps the input and the intermediate result, frozen or not (each step is a
        convolution, which saves its input for all its gradients)."""
        return Saved(inputs=(0,), extra=self.middle(ctx))

    def middle(self, ctx: Ctx) -> int:  # elements of a two-step convolution's intermediate result
        return 0

    def scratch(self, ctx: Ctx, b: int) -> int:
        """The intermediate result, alive while the second step runs."""
        return self.middle(ctx) * b

    def backward_scratch(self, ctx: Ctx, b: int, grads: tuple[bool, ...]) -> int:
        """The intermediate result's gradient (the first step's weights need it)."""
        return self.scratch(ctx, b) if self.trainable or grads[0] else 0


class DeformConv2d(_Conv2dBase):
    """Deformable convolution (torchvision.ops.DeformConv2d) with its offset branch.

    offsets: a plain conv2d C_in → 2·offset_groups·∏K (+ offset_groups·∏K mask channels when
    modulated, DCNv2) with the same kernel, stride, padding and dilation;
    params = C_out·(C_in/groups)·∏K + C_out + offset conv params;
    MACs = N·C_out·∏H'·(C_in/groups)·∏K + offset conv MACs (bilinear sampling is element-wise:
    4 taps · 2 ops per sampled value). RF: that of the kernel with zero offsets (the real one is
    data-dependent)."""
    @property
    def autocast(self) -> str:  # type: ignore[override]
        """Its matmul in the low dtype; + its float32 bias makes the output float32."""
        return "float" if self.bias else "lower"

    type: Literal["deform_conv2d"]
    torch_names: ClassVar[tuple[str, ...] | None] = ()  # torchvision's takes the offsets as a second input
    no_import: ClassVar[str | None] = ("torchvision's DeformConv2d takes the offsets as a second input, computed by "
                                       "layers of the model's own choosing")
    memory_exact = Flag(False)
    groups: PosInt = 1
    offset_groups: PosInt = 1
    modulated: bool = False
    """DCNv2: also predict a sigmoid mask per sampling point."""

    @model_validator(mode="after")
    def _groups(self) -> "DeformConv2d":
        if self.out_channels % self.groups:
            raise ValueError(f"out_channels={self.out_channels} is not divisible by groups={self.groups}")
        return self

    def shape(self, ctx: Ctx) -> Shape:
        c = self.c_in(ctx)
        for g, what in ((self.groups, "groups"), (self.offset_groups, "offset_groups")):
            if c % g:
                raise LayerError(f"input channels {c} are not divisible by {what}={g}", what)
        return super().shape(ctx)

    def offset_channels(self) -> int:
        return (3 if self.modulated else 2) * self.offset_groups * prod(self.kernel_size)

    def weights(self, ctx: Ctx) -> dict[str, Shape]:
        w: dict[str, Shape] = {"weight": (self.out_channels, ctx.x[1] // self.groups, *self.kernel_size)}
        if self.bias:
            w["bias"] = (self.out_channels,)
        w["offset.weight"] = (self.offset_channels(), ctx.x[1], *self.kernel_size)
        w["offset.bias"] = (self.offset_channels(),)
        return w

    def macs(self, ctx: Ctx) -> int:
        k = prod(self.kernel_size)
        return self.positions(ctx) * ctx.x[0] * k * (
            self.out_channels * (ctx.x[1] // self.groups) + self.offset_channels() * ctx.x[1])

    def macs_expr(self, ctx: Ctx) -> str:
        k = "·".join(map(str, self.kernel_size))
        return (f"{ctx.x[0]}·{'·'.join(map(str, ctx.out[2:]))} · {k} · ({self.out_channels}·{ctx.x[1]}/{self.groups}"
                f" + {self.offset_channels()}·{ctx.x[1]})")

    def elementwise(self, ctx: Ctx) -> int:
        sampled = ctx.x[0] * ctx.x[1] * prod(self.kernel_size) * self.positions(ctx)
        return 8 * sampled + (prod(ctx.out) if self.bias else 0) + ctx.x[0] * self.offset_channels() * self.positions(ctx)

    def middle(self, ctx: Ctx) -> int:
        """An estimate: the sampled columns N·C_in·∏K·H'·W' (torchvision's kernel builds them
        in chunks; verify runs cnncalc's own torch code, so it does not judge this figure)."""
        return ctx.x[0] * ctx.x[1] * prod(self.kernel_size) * self.positions(ctx)

    def build(self, ctx: Ctx, t: Kit) -> Any:
        return t.ext.DeformConv2d(ctx.x[1], self.out_channels, self.kernel_size, self.stride, self.pad,
                                  self.dilation, self.groups, self.offset_groups, self.bias, self.modulated)


class SeparableConv2d(_Conv2dBase):
    """Depthwise-separable convolution: depthwise K×K (groups=C_in, ×depth_multiplier, no bias)
    then pointwise 1×1 to C_out (with bias).

    params = C_in·m·∏K + C_out·C_in·m + C_out;
    MACs = N·∏H'·C_in·m·∏K + N·∏H'·C_out·C_in·m."""

    follows_channels_last = Flag(True)  # on a channels-last input, a channels-last output (analysis/strides.py)
    autocast: ClassVar[str | dict[str, str]] = "lower"

    type: Literal["separable_conv2d"]
    no_import: ClassVar[str | None] = "a model writes it as two convs, which import reads as two conv2d layers"
    depth_multiplier: PosInt = 1
    padding: Padding = 0
    """int, per-axis list, 'same' (stride 1, odd effective kernel: the depthwise conv keeps H×W)
    or 'valid'."""

    @field_validator("padding", mode="before")
    @classmethod
    def _pad(cls, v: Any) -> Any:
        pads = padding_pairs(v, cls.dims)
        if not isinstance(pads, str) and any(a != b for a, b in pads):
            raise ValueError(f"expected symmetric padding (one value per axis), received {v!r}")
        return pads

    @model_validator(mode="after")
    def _same_needs_stride_1(self) -> "SeparableConv2d":
        if self.padding == "same" and any(s != 1 for s in self.stride):
            raise ValueError(f"padding='same' needs stride 1 (torch refuses strided 'same'), received stride "
                             f"{list(self.stride)}")
        if self.padding == "same" and any(d * (k - 1) % 2 for k, d in zip(self.kernel_size, self.dilation)):
            raise ValueError(f"padding='same' with kernel_size {list(self.kernel_size)} pads unevenly (torch then "
                             "copies the padded input): use an odd kernel, or pad with a zero_pad2d layer first")
        return self

    @property
    def pad(self) -> Any:
        return self.padding if isinstance(self.padding, str) else tuple(p for p, _ in self.padding)

    def weights(self, ctx: Ctx) -> dict[str, Shape]:
        mid = ctx.x[1] * self.depth_multiplier
        w: dict[str, Shape] = {"depthwise.weight": (mid, 1, *self.kernel_size),
                               "pointwise.weight": (self.out_channels, mid, 1, 1)}
        if self.bias:
            w["pointwise.bias"] = (self.out_channels,)
        return w

    def macs(self, ctx: Ctx) -> int:
        mid = ctx.x[1] * self.depth_multiplier
        return ctx.x[0] * self.positions(ctx) * mid * (prod(self.kernel_size) + self.out_channels)

    def macs_expr(self, ctx: Ctx) -> str:
        mid = ctx.x[1] * self.depth_multiplier
        pos = f"{ctx.x[0]}·{'·'.join(map(str, ctx.out[2:]))}"
        return f"{pos} · {mid} · {'·'.join(map(str, self.kernel_size))} + {pos} · {mid} · {self.out_channels}"

    def middle(self, ctx: Ctx) -> int:
        """The depthwise result, N·C_in·m·∏H'."""
        return ctx.x[0] * ctx.x[1] * self.depth_multiplier * self.positions(ctx)

    def build(self, ctx: Ctx, t: Kit) -> Any:
        mid = ctx.x[1] * self.depth_multiplier
        return t.ext.Named(
            depthwise=t.nn.Conv2d(ctx.x[1], mid, self.kernel_size, self.stride, self.pad, self.dilation,
                                  groups=ctx.x[1], bias=False),
            pointwise=t.nn.Conv2d(mid, self.out_channels, 1, bias=self.bias))


class SpatialSeparableConv2d(_Conv2dBase):
    """Spatially separable convolution: K×1 (C_in → C_out) then 1×K (C_out → C_out); the
    first conv carries the vertical stride/padding/dilation, the second the horizontal ones.

    params = C_out·C_in·K_h + C_out·C_out·K_w (+ 2·C_out bias);
    MACs = N·C_out·H'·W·C_in·K_h + N·C_out·H'·W'·C_out·K_w  (W: width after the first conv)."""

    follows_channels_last = Flag(True)  # on a channels-last input, a channels-last output (analysis/strides.py)
    autocast: ClassVar[str | dict[str, str]] = "lower"

    type: Literal["spatial_separable_conv2d"]
    no_import: ClassVar[str | None] = "a model writes it as two convs, which import reads as two conv2d layers"

    def weights(self, ctx: Ctx) -> dict[str, Shape]:
        kh, kw = self.kernel_size
        c = self.out_channels
        w: dict[str, Shape] = {"vertical.weight": (c, ctx.x[1], kh, 1), "horizontal.weight": (c, c, 1, kw)}
        if self.bias:
            w["vertical.bias"] = (c,)
            w["horizontal.bias"] = (c,)
        return w

    def macs(self, ctx: Ctx) -> int:
        (kh, kw), (n, c, h_out, w_out) = self.kernel_size, ctx.out
        return n * c * h_out * (ctx.x[3] * ctx.x[1] * kh + w_out * c * kw)

    def macs_expr(self, ctx: Ctx) -> str:
        (kh, kw), (n, c, h_out, w_out) = self.kernel_size, ctx.out
        return f"{n}·{c}·{h_out}·{ctx.x[3]} · {ctx.x[1]}·{kh} + {n}·{c}·{h_out}·{w_out} · {c}·{kw}"

    def elementwise(self, ctx: Ctx) -> int:
        return (ctx.out[0] * self.out_channels * ctx.out[2] * (ctx.x[3] + ctx.out[3])) if self.bias else 0

    def middle(self, ctx: Ctx) -> int:
        """The vertical conv's result, N·C_out·H'·W."""
        return ctx.out[0] * self.out_channels * ctx.out[2] * ctx.x[3]

    def build(self, ctx: Ctx, t: Kit) -> Any:
        (kh, kw), (sh, sw), (ph, pw), (dh, dw) = self.kernel_size, self.stride, self.pad, self.dilation
        c = self.out_channels
        return t.ext.Named(
            vertical=t.nn.Conv2d(ctx.x[1], c, (kh, 1), (sh, 1), (ph, 0), (dh, 1), bias=self.bias),
            horizontal=t.nn.Conv2d(c, c, (1, kw), (1, sw), (0, pw), (1, dw), bias=self.bias))


class LocallyConnected2d(_Conv2dBase):
    """Locally connected (unshared) convolution: a separate filter at every output position.

    weight (H'·W', C_out, C_in·∏K), bias (C_out, H', W');
    params = H'·W'·C_out·C_in·∏K + C_out·H'·W' — they grow with the output size;
    MACs = N·C_out·H'·W'·C_in·∏K (same as the shared convolution)."""
    @property
    def autocast(self) -> str:  # type: ignore[override]
        """bmm in the low dtype; + its float32 bias makes the output float32."""
        return "float" if self.bias else "lower"

    type: Literal["locally_connected2d"]
    torch_names: ClassVar[tuple[str, ...] | None] = ()  # its module keeps no settings to read back
    no_import: ClassVar[str | None] = "torch has no such module, and cnncalc's keeps no settings to read back"

    def weights(self, ctx: Ctx) -> dict[str, Shape]:
        pos = ctx.out[2:]
        w: dict[str, Shape] = {"weight": (prod(pos), self.out_channels, ctx.x[1] * prod(self.kernel_size))}
        if self.bias:
            w["bias"] = (self.out_channels, *pos)
        return w

    def macs(self, ctx: Ctx) -> int:
        return prod(ctx.out) * ctx.x[1] * prod(self.kernel_size)

    def columns(self, ctx: Ctx) -> int:
        """Elements of the unfolded input (im2col): N·C_in·∏K·H'·W'."""
        return ctx.x[0] * ctx.x[1] * prod(self.kernel_size) * self.positions(ctx)

    def scratch(self, ctx: Ctx, b: int) -> int:
        """The columns and one output-sized matmul result before it is laid out."""
        return (self.columns(ctx) + prod(ctx.out)) * b

    def saved(self, ctx: Ctx, grads: tuple[bool, ...]) -> Saved:
        """Autograd keeps the columns (not the input)."""
        return Saved(extra=self.columns(ctx)) if self.trainable or grads[0] else Saved()

    def build(self, ctx: Ctx, t: Kit) -> Any:
        return t.ext.LocallyConnected2d(ctx.x[1], self.out_channels, self.kernel_size, self.stride, self.pad,
                                        self.dilation, ctx.out[2:], self.bias)


class TiledConv2d(_Conv2dBase):
    """Tiled convolution: T_h×T_w filter banks used in turn over the output positions
    (position (y, x) uses bank (y mod T_h, x mod T_w)); tile_size 1 is a plain convolution.

    weight (T_h, T_w, C_out, C_in·∏K), bias (C_out);
    params = T_h·T_w·C_out·C_in·∏K + C_out;  MACs = N·C_out·H'·W'·C_in·∏K."""
    autocast: ClassVar[str | dict[str, str]] = "float"  # its float32 output buffer takes each tile

    type: Literal["tiled_conv2d"]
    torch_names: ClassVar[tuple[str, ...] | None] = ()  # its module keeps no settings to read back
    no_import: ClassVar[str | None] = "torch has no such module, and cnncalc's keeps no settings to read back"
    tile_size: Axes = 2
    """Number of filter banks along each axis (the period of the weight pattern)."""

    @field_validator("tile_size", mode="before")
    @classmethod
    def _tile(cls, v: Any) -> tuple[int, ...]:
        return per_axis(v, 2)

    def weights(self, ctx: Ctx) -> dict[str, Shape]:
        w: dict[str, Shape] = {"weight": (*self.tile_size, self.out_channels, ctx.x[1] * prod(self.kernel_size))}
        if self.bias:
            w["bias"] = (self.out_channels,)
        return w

    def macs(self, ctx: Ctx) -> int:
        return prod(ctx.out) * ctx.x[1] * prod(self.kernel_size)

    def columns(self, ctx: Ctx) -> int:
        """Elements of the unfolded input (im2col): N·C_in·∏K·H'·W'."""
        return ctx.x[0] * ctx.x[1] * prod(self.kernel_size) * self.positions(ctx)

    def scratch(self, ctx: Ctx, b: int) -> int:
        """Beside the columns and the zeroed output being filled, bank by bank: the bank's
        gathered columns and matmul result while the previous result is still referenced; then
        the bias add next to the last result."""
        (n, _, h, w), (th, tw) = ctx.out, self.tile_size
        banks = min(th, h) * min(tw, w)
        first = -(-h // th) * -(-w // tw)  # positions of the first (largest) bank
        last = -(-(h - min(th, h) + 1) // th) * -(-(w - min(tw, w) + 1) // tw)
        cols, out, k = self.columns(ctx), prod(ctx.out), ctx.x[1] * prod(self.kernel_size)
        filling = cols + n * first * (k + self.out_channels * (2 if banks > 1 else 1))
        if self.bias:  # the output is the bias add's result, made after the filling
            filling = max(filling, cols + out + n * last * self.out_channels)
        return filling * b

    def saved(self, ctx: Ctx, grads: tuple[bool, ...]) -> Saved:
        """Autograd keeps each bank's gathered columns: together the columns."""
        return Saved(extra=self.columns(ctx)) if self.trainable or grads[0] else Saved()

    def build(self, ctx: Ctx, t: Kit) -> Any:
        return t.ext.TiledConv2d(ctx.x[1], self.out_channels, self.kernel_size, self.stride, self.pad,
                                 self.dilation, self.tile_size, self.bias)
