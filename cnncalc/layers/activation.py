"""Activations: shape-preserving, one element-wise op per output element, point-wise RF."""

from math import prod
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field

from cnncalc.errors import LayerError
from cnncalc.layers.base import Ctx, Flag, Kit, Layer, PosInt, Saved, Shape, fmt_shape
from cnncalc.layers.field import RF
from cnncalc.layers.routes import (
    OnnxForm,
    OnnxNode,
    TorchCall,
    TorchForm,
    Traced,
    Unsupported,
    activation,
    activation_forms,
    along_dim,
    check_axis,
    lean,
    onnx_fixed,
    onnx_same,
)


def _onnx_clip(node: OnnxNode) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """Clip to [0, 6]: relu6; to other bounds: clamp (bounds as inputs, opset 11 on, or as the
    attributes min and max before); to none: its input itself."""
    if len(node.ins) == 1:
        lo, hi = (node.f32(node.a[k]) if k in node.a else None for k in ("min", "max"))
    elif len(node.ins) == 3:
        if any(node.consts.get(i) is None for i in node.ins[1:]):
            raise Unsupported("Clip to bounds that are computed, not stored")
        lo, hi = (float(node.consts[i]) for i in node.ins[1:])
    else:  # Clip(x, "", max) and Clip(x, min) read alike once the empty input name is dropped
        raise Unsupported("Clip with one bound (only both bounds, or none, are read)")
    if lo is None and hi is None:
        return None, {}
    if lo == 0.0 and hi == 6.0:
        return {"type": "relu6"}, {}
    return lean({"type": "clamp", "min": lo, "max": hi}), {}


def _rrelu(call: TorchCall, x: Traced, lower: float = 1 / 8, upper: float = 1 / 3, training: bool = False,
           inplace: bool = False, generator: Any = None) -> tuple[Any, list[Any]]:
    """F.rrelu(x, lower, upper, training, inplace) and torch.rrelu(x, lower, upper, training,
    generator): an RReLU module (what it does while training is the module's own rule)."""
    return call.t.nn.RReLU(lower, upper), [x]


def _bound(v: Any) -> float | None:
    if v is None:
        return None
    if type(v) not in (int, float):
        raise Unsupported("clamp to a bound that is a tensor or not a number")
    return float(v)


def _clamp(call: TorchCall, x: Traced, min: Any = None, max: Any = None) -> tuple[Any, list[Any]]:  # noqa: A002
    """torch.clamp / clip (x, min, max), either bound left out; clamp_min and clamp_max name one."""
    name = str(getattr(call.target, "__name__", call.target))
    if name.endswith("clamp_max"):
        min, max = None, min  # noqa: A001 - clamp_max(x, max): its one bound is the second argument
    if min is None and max is None:
        raise Unsupported("clamp with neither min nor max")
    return lean({"type": "clamp", "min": _bound(min), "max": _bound(max)}), [x]


def _onnx_gelu(node: OnnxNode) -> tuple[dict[str, Any], dict[str, Any]]:
    tanh = node.a.get("approximate", b"none") != b"none"
    return {"type": "gelu", **({"approximate": node.a["approximate"].decode()} if tanh else {})}, {}


def _dropout(nn_name: str) -> Any:
    def read(call: TorchCall, x: Traced, p: float = 0.5, training: bool = True, inplace: bool = False) -> Any:
        return getattr(call.t.nn, nn_name)(p), [x]
    return read


class Activation(Layer):
    """Point-wise activation: output shape = input shape; no params (PReLU has some);
    element-wise ops = 1 per element; RF unchanged."""

    channel_wise: ClassVar[bool] = True

    category: ClassVar[str] = "activation"
    torch_name: ClassVar[str] = ""
    inplace: bool = False
    """Overwrite the input: no new output tensor (memory)."""
    #: autograd keeps the output (relu, sigmoid, tanh, softmax) rather than the input
    saves_output: ClassVar[bool] = False
    #: in place, backward still needs the input: autograd keeps a copy of it
    inplace_copies_input: ClassVar[bool] = False
    keeps_layout = Flag(True)

    def elementwise(self, ctx: Ctx) -> int:
        return prod(ctx.out)

    def aliases(self, training: bool) -> bool:
        """In place (inplace: true) the output is the input's memory. In place on a view (after
        narrow, chunk, transpose or permute), autograd rebases the view's base: backward makes
        the view's gradient base-sized, then clones it (two base-sized temporaries)."""
        return self.inplace

    def saved(self, ctx: Ctx, grads: tuple[bool, ...]) -> Saved:
        """Autograd keeps the input (the output for relu, sigmoid, tanh, softmax, log_softmax);
        in place, the output (relu, leaky_relu, elu) or a copy of the input (relu6, silu,
        hardswish, hardsigmoid)."""
        if self.inplace and self.inplace_copies_input:
            return Saved(extra=prod(ctx.x))
        return Saved(output=True) if self.saves_output or self.inplace else Saved(inputs=(0,))

    def torch_kwargs(self) -> dict[str, Any]:
        return {"inplace": self.inplace}

    def build(self, ctx: Ctx, t: Kit) -> Any:
        return getattr(t.nn, self.torch_name)(**self.torch_kwargs())



class ReLU(Activation):
    """max(0, x)."""
    type: Literal["relu"]
    torch_functions: ClassVar[tuple[TorchForm, ...]] = activation_forms("relu", "ReLU")
    onnx_ops: ClassVar[tuple[OnnxForm, ...]] = (OnnxForm(("Relu",), onnx_fixed("relu")),)
    torch_name: ClassVar[str] = "ReLU"
    saves_output: ClassVar[bool] = True


class ReLU6(Activation):
    """min(max(0, x), 6)."""
    type: Literal["relu6"]
    torch_functions: ClassVar[tuple[TorchForm, ...]] = activation_forms("relu6", "ReLU6")  # ONNX Clip: clamp's
    torch_name: ClassVar[str] = "ReLU6"
    inplace_copies_input: ClassVar[bool] = True


class LeakyReLU(Activation):
    """x if x > 0 else negative_slope·x."""
    type: Literal["leaky_relu"]
    torch_functions: ClassVar[tuple[TorchForm, ...]] = (TorchForm(("F.leaky_relu",), "leaky_relu", activation("LeakyReLU")),)
    onnx_ops: ClassVar[tuple[OnnxForm, ...]] = (OnnxForm(("LeakyRelu",), lambda node: (
        lean({"type": "leaky_relu", "negative_slope": node.f32(node.a.get("alpha", 0.01))}), {})),)
    torch_name: ClassVar[str] = "LeakyReLU"
    negative_slope: float = 0.01

    def torch_kwargs(self) -> dict[str, Any]:
        return {"negative_slope": self.negative_slope, "inplace": self.inplace}


class ELU(Activation):
    """x if x > 0 else α·(eˣ − 1)."""
    type: Literal["elu"]
    torch_functions: ClassVar[tuple[TorchForm, ...]] = (TorchForm(("F.elu",), "elu", activation("ELU")),)
    torch_name: ClassVar[str] = "ELU"
    alpha: float = 1.0

    def torch_kwargs(self) -> dict[str, Any]:
        return {"alpha": self.alpha, "inplace": self.inplace}


class SiLU(Activation):
    """x·σ(x) (swish)."""
    type: Literal["silu"]
    torch_functions: ClassVar[tuple[TorchForm, ...]] = activation_forms("silu", "SiLU")
    torch_name: ClassVar[str] = "SiLU"
    inplace_copies_input: ClassVar[bool] = True


class Hardswish(Activation):
    """x·ReLU6(x + 3)/6."""
    type: Literal["hardswish"]
    torch_functions: ClassVar[tuple[TorchForm, ...]] = activation_forms("hardswish", "Hardswish")
    onnx_ops: ClassVar[tuple[OnnxForm, ...]] = (OnnxForm(("HardSwish",), onnx_fixed("hardswish")),)
    torch_name: ClassVar[str] = "Hardswish"
    inplace_copies_input: ClassVar[bool] = True


class Hardsigmoid(Activation):
    """ReLU6(x + 3)/6."""
    type: Literal["hardsigmoid"]
    torch_functions: ClassVar[tuple[TorchForm, ...]] = activation_forms("hardsigmoid", "Hardsigmoid")
    torch_name: ClassVar[str] = "Hardsigmoid"
    inplace_copies_input: ClassVar[bool] = True


class Hardtanh(Activation):
    """min(max(min_val, x), max_val) (relu6 is hardtanh(0, 6)); backward reads the input."""
    type: Literal["hardtanh"]
    torch_name: ClassVar[str] = "Hardtanh"
    inplace_copies_input: ClassVar[bool] = True
    min_val: float = -1.0
    max_val: float = 1.0

    def shape(self, ctx: Ctx) -> Shape:
        if not self.min_val < self.max_val:
            raise LayerError(f"min_val {self.min_val} must be below max_val {self.max_val}", "max_val")
        return ctx.x

    def torch_kwargs(self) -> dict[str, Any]:
        return {"min_val": self.min_val, "max_val": self.max_val, "inplace": self.inplace}


class CELU(Activation):
    """max(0, x) + min(0, α·(e^(x/α) − 1)); torch runs it as elu, so autograd keeps what elu keeps."""
    type: Literal["celu"]
    torch_name: ClassVar[str] = "CELU"
    alpha: Annotated[float, Field(gt=0)] = 1.0

    def torch_kwargs(self) -> dict[str, Any]:
        return {"alpha": self.alpha, "inplace": self.inplace}


class SELU(Activation):
    """λ·(x if x > 0 else α·(eˣ − 1)), λ ≈ 1.0507, α ≈ 1.6733; torch runs it as elu."""
    type: Literal["selu"]
    torch_name: ClassVar[str] = "SELU"


class Mish(Activation):
    """x·tanh(softplus(x)); backward reads the input (in place: a copy of it)."""
    type: Literal["mish"]
    torch_name: ClassVar[str] = "Mish"
    inplace_copies_input: ClassVar[bool] = True


class _NoInplace(Activation):
    inplace: Literal[False] = False

    def torch_kwargs(self) -> dict[str, Any]:
        return {}


class Sigmoid(_NoInplace):
    """1/(1 + e⁻ˣ)."""
    type: Literal["sigmoid"]
    torch_functions: ClassVar[tuple[TorchForm, ...]] = activation_forms("sigmoid", "Sigmoid")
    onnx_ops: ClassVar[tuple[OnnxForm, ...]] = (OnnxForm(("Sigmoid",), onnx_fixed("sigmoid")),)
    torch_name: ClassVar[str] = "Sigmoid"
    saves_output: ClassVar[bool] = True


class Tanh(_NoInplace):
    """tanh(x)."""
    type: Literal["tanh"]
    torch_functions: ClassVar[tuple[TorchForm, ...]] = activation_forms("tanh", "Tanh")
    onnx_ops: ClassVar[tuple[OnnxForm, ...]] = (OnnxForm(("Tanh",), onnx_fixed("tanh")),)
    torch_name: ClassVar[str] = "Tanh"
    saves_output: ClassVar[bool] = True


class GELU(_NoInplace):
    """x·Φ(x) (approximate: 'tanh' for the tanh formula)."""
    type: Literal["gelu"]
    torch_functions: ClassVar[tuple[TorchForm, ...]] = (TorchForm(("F.gelu", "Tensor.gelu"), "gelu", activation("GELU")),)
    onnx_ops: ClassVar[tuple[OnnxForm, ...]] = (OnnxForm(("Gelu",), _onnx_gelu),)
    torch_name: ClassVar[str] = "GELU"
    approximate: Literal["none", "tanh"] = "none"

    def torch_kwargs(self) -> dict[str, Any]:
        return {"approximate": self.approximate}


class Softplus(_NoInplace):
    """(1/β)·log(1 + e^(β·x)), x itself where β·x > threshold; backward reads the input."""
    autocast: ClassVar[str | dict[str, str]] = {"cuda": "fp32"}
    type: Literal["softplus"]
    torch_name: ClassVar[str] = "Softplus"
    beta: float = 1.0
    threshold: float = 20.0

    def torch_kwargs(self) -> dict[str, Any]:
        return {"beta": self.beta, "threshold": self.threshold}


class _AlongDim(_NoInplace):
    """Normalised along `dim`: along the channels point-wise; along a spatial axis every unit
    reads the whole of that axis."""
    autocast: ClassVar[str | dict[str, str]] = {"cuda": "fp32"}  # softmax, log_softmax

    def channel_sources(self, ctx: Ctx) -> str | list[int]:
        return "all" if self.dim % len(ctx.x) == 1 else "each"

    dim: int = 1
    saves_output: ClassVar[bool] = True
    keeps_layout = Flag(False)  # torch makes the input contiguous first

    @Flag.rule
    def rf_size_dependent(self) -> bool:
        return self.dim != 1  # along a spatial axis the field spans the whole axis

    def last_axis_only(self, ctx: Ctx) -> bool:
        return self.dim % len(ctx.x) == len(ctx.x) - 1

    def axis(self, ctx: Ctx) -> int | None:
        """The spatial axis (0-based) that `dim` names, or None."""
        d = self.dim % len(ctx.x)
        return d - 2 if d >= 2 else None

    def rf(self, ctx: Ctx, fields: list[list[RF] | None]) -> list[RF] | None:
        f, a = fields[0], self.axis(ctx)
        if f is None or a is None:
            return f
        return [r.spread(ctx.x[2 + a]) if i == a else r for i, r in enumerate(f)]

    def reads(self, ctx: Ctx, axis: int, lo: int, hi: int, real: bool = False) -> list[tuple[int, int] | None]:
        """Along its own axis, the whole axis; point-wise along the others."""
        return [(0, ctx.x[2 + axis] - 1)] if axis == self.axis(ctx) else super().reads(ctx, axis, lo, hi, real)

    def probe(self, ctx: Ctx, t: Kit) -> Any:
        """Along a spatial axis: the mean over it, spread back (every unit reads all of it)."""
        return t.nn.Identity() if self.axis(ctx) is None else t.ext.AxisMean(self.dim)

    def shape(self, ctx: Ctx) -> Shape:
        if not -len(ctx.x) <= self.dim < len(ctx.x):
            raise LayerError(f"dim {self.dim} is out of range for a {len(ctx.x)}-D input", "dim")
        return ctx.x

    def torch_kwargs(self) -> dict[str, Any]:
        return {"dim": self.dim}


class Softmax(_AlongDim):
    """e^x_i / Σ_j e^x_j along dim (default 1, the channels); along a spatial axis every unit
    reads the whole of that axis (RF: that axis becomes whole)."""
    type: Literal["softmax"]
    torch_functions: ClassVar[tuple[TorchForm, ...]] = (
        TorchForm(("F.softmax", "torch.softmax", "Tensor.softmax"), "softmax", along_dim("softmax")),)
    onnx_ops: ClassVar[tuple[OnnxForm, ...]] = (OnnxForm(("Softmax",), lambda node: (
        {"type": "softmax", "dim": check_axis(node.a.get("axis", -1), len(node.x))}, {})),)
    torch_name: ClassVar[str] = "Softmax"


class Softmax2d(_AlongDim):
    """Softmax over the channels at every position of an (N, C, H, W) map (torch's Softmax2d):
    e^x_c / Σ_c' e^x_c'. No params; element-wise ops = 1 per element; RF unchanged."""
    type: Literal["softmax2d"]
    torch_name: ClassVar[str] = "Softmax2d"
    dim: Literal[1] = 1

    def shape(self, ctx: Ctx) -> Shape:
        if len(ctx.x) != 4:
            raise LayerError(f"softmax2d expects a 4-D input (N, C, H, W), received {fmt_shape(ctx.x)}")
        return ctx.x

    def torch_kwargs(self) -> dict[str, Any]:
        return {}


class LogSoftmax(_AlongDim):
    """log of softmax along dim (default 1); along a spatial axis every unit reads the whole of
    that axis (RF: that axis becomes whole)."""
    type: Literal["log_softmax"]
    torch_functions: ClassVar[tuple[TorchForm, ...]] = (
        TorchForm(("F.log_softmax", "Tensor.log_softmax"), "log_softmax", along_dim("log_softmax")),)
    torch_name: ClassVar[str] = "LogSoftmax"


class PReLU(_NoInplace):
    """x if x > 0 else a·x, with a learnable: one a, or one per channel
    (num_parameters: channels). params = num_parameters. Memory: keeps the input for backward,
    whose weight gradient is first made input-sized."""
    autocast: ClassVar[str | dict[str, str]] = "lower"
    type: Literal["prelu"]
    torch_name: ClassVar[str] = "PReLU"
    num_parameters: PosInt | Literal["channels"] = 1
    init: float = 0.25
    keeps_layout = Flag(False)  # the weight is broadcast: torch's output order is not the input's for certain

    def count(self, ctx: Ctx) -> int:
        return ctx.x[1] if self.num_parameters == "channels" else self.num_parameters

    def shape(self, ctx: Ctx) -> Shape:
        n = self.count(ctx)
        if n != 1 and (len(ctx.x) < 2 or ctx.x[1] != n):
            raise LayerError(f"num_parameters={n} must be 1 or the number of channels ({ctx.x[1] if len(ctx.x) > 1 else '?'})",
                             "num_parameters")
        return ctx.x

    def weights(self, ctx: Ctx) -> dict[str, tuple[int, ...]]:
        return {"weight": (self.count(ctx),)}

    def build(self, ctx: Ctx, t: Kit) -> Any:
        return t.nn.PReLU(self.count(ctx), self.init)

    def backward_scratch(self, ctx: Ctx, b: int, grads: tuple[bool, ...]) -> int:
        """Backward (derivatives.yaml: _prelu_kernel_backward) returns the input's gradient and
        an input-sized gradient of the broadcast weight, which autograd then sums down to the
        weight's shape: one input-sized temporary, two when the input needs no gradient (the kernel makes it all the same)."""
        return prod(ctx.out) * b * (1 if grads[0] else 2)


class _Dropout(Layer):
    channel_wise: ClassVar[bool] = True

    category: ClassVar[str] = "regularization"
    torch_name: ClassVar[str] = "Dropout"
    ranks: ClassVar[tuple[int, ...]] = ()
    """Input ranks (batch included) torch accepts; () for any."""
    p: Annotated[float, Field(ge=0, le=1)] = 0.5
    inplace: bool = False

    def shape(self, ctx: Ctx) -> Shape:
        if self.ranks and len(ctx.x) not in self.ranks:
            raise LayerError(f"{self.type} expects a {' or '.join(f'{r}-D' for r in self.ranks)} input "
                             f"(torch refuses or deprecates others), received {fmt_shape(ctx.x)}")
        return ctx.x

    def build(self, ctx: Ctx, t: Kit) -> Any:
        return getattr(t.nn, self.torch_name)(self.p, self.inplace)

    def aliases(self, training: bool) -> bool:
        """At inference (and for p = 0) torch returns the input itself; in place it overwrites it."""
        return not training or self.p == 0 or self.inplace

    def moves_data(self) -> bool:
        """At inference torch returns the input itself."""
        return False

    @Flag.rule
    def passes_gradient(self) -> bool:
        """p = 0 returns the input itself: its gradient is the output's."""
        return self.p == 0

    def mask(self, ctx: Ctx) -> int:
        """Elements of the random mask: one per element (one per channel for channel dropout)."""
        return prod(ctx.out)

    def saved(self, ctx: Ctx, grads: tuple[bool, ...]) -> Saved:
        """Autograd keeps the scaled mask, in the compute dtype (torch's CPU kernel; CUDA keeps
        a bool mask, 1 byte per element)."""
        return Saved() if self.p == 0 else Saved(extra=self.mask(ctx))



class Dropout(_Dropout):
    """Dropout: zeroes elements with probability p while training; identity at inference
    (no params, no ops counted, RF unchanged)."""

    type: Literal["dropout"]

    @Flag.rule
    def keeps_layout(self) -> bool:
        """Training multiplies by a mask made `empty_like` the input (p = 1: by a broadcast zero)."""
        return self.p < 1
    torch_functions: ClassVar[tuple[TorchForm, ...]] = (TorchForm(("F.dropout",), "dropout", _dropout("Dropout")),)
    onnx_ops: ClassVar[tuple[OnnxForm, ...]] = (OnnxForm(("Dropout",), onnx_same),)  # at inference: its input itself


class _ChannelDropout(_Dropout):
    """Channel dropout: zeroes whole channels of (N, C, …) with probability p while training;
    identity at inference (no params, no ops counted, RF unchanged)."""

    def mask(self, ctx: Ctx) -> int:
        """One per (sample, channel); torch reads the lower rank as one unbatched sample."""
        return prod(ctx.out[:2]) if len(ctx.out) == max(self.ranks) else ctx.out[0]


class Dropout1d(_ChannelDropout):
    type: Literal["dropout1d"]
    torch_name: ClassVar[str] = "Dropout1d"
    ranks: ClassVar[tuple[int, ...]] = (2, 3)


class Dropout2d(_ChannelDropout):
    type: Literal["dropout2d"]
    torch_functions: ClassVar[tuple[TorchForm, ...]] = (TorchForm(("F.dropout2d",), "dropout", _dropout("Dropout2d")),)
    torch_name: ClassVar[str] = "Dropout2d"
    ranks: ClassVar[tuple[int, ...]] = (3, 4)


class Dropout3d(_ChannelDropout):
    type: Literal["dropout3d"]
    torch_name: ClassVar[str] = "Dropout3d"
    ranks: ClassVar[tuple[int, ...]] = (4, 5)


class GLU(Layer):
    """Gated linear unit: a, b = halves of x along dim; y = a·σ(b). Output: dim halved (its size
    must be even); no params; element-wise ops = 2 per output element (σ and the product); RF
    point-wise along the channels, null along a spatial dim (a unit reads two distant positions).
    Autograd keeps the input."""

    def channel_sources(self, ctx: Ctx) -> str | list[int]:
        return "other"  # along the channels a unit reads two of them

    category: ClassVar[str] = "activation"
    type: Literal["glu"]
    dim: int = -1

    def shape(self, ctx: Ctx) -> Shape:
        if not -len(ctx.x) <= self.dim < len(ctx.x):
            raise LayerError(f"dim {self.dim} is out of range for a {len(ctx.x)}-D input", "dim")
        d = self.dim % len(ctx.x)
        if d == 0 or ctx.x[d] % 2:
            raise LayerError(f"glu halves dim {self.dim}: its size {ctx.x[d]} must be even (and not the batch)", "dim")
        return tuple(n // 2 if i == d else n for i, n in enumerate(ctx.x))

    def elementwise(self, ctx: Ctx) -> int:
        return 2 * prod(ctx.out)

    def rf(self, ctx: Ctx, fields: list[list[RF] | None]) -> list[RF] | None:
        return fields[0] if self.dim % len(ctx.x) == 1 else None

    def saved(self, ctx: Ctx, grads: tuple[bool, ...]) -> Saved:
        return Saved(inputs=(0,))

    def build(self, ctx: Ctx, t: Kit) -> Any:
        return t.nn.GLU(self.dim)


class Clamp(Activation):
    """min(max(x, min), max) with either bound left out (torch.clamp / clip / clamp_min /
    clamp_max; ONNX Clip); where min > max every element is max, as torch. No params;
    element-wise ops = 1 per element; RF point-wise. Backward reads the input (in place: a copy
    of it)."""

    type: Literal["clamp"]
    torch_names: ClassVar[tuple[str, ...] | None] = ("Clamp",)  # cnncalc's module (torch.nn has none)
    torch_functions: ClassVar[tuple[TorchForm, ...]] = (
        TorchForm(("torch.clamp", "Tensor.clamp", "torch.clip", "Tensor.clip", "torch.clamp_min", "Tensor.clamp_min",
                   "torch.clamp_max", "Tensor.clamp_max"), "clamp", _clamp),)
    onnx_ops: ClassVar[tuple[OnnxForm, ...]] = (OnnxForm(("Clip",), _onnx_clip, reads_constants=True),)
    inplace_copies_input: ClassVar[bool] = True
    min: float | None = None
    """The lower bound (none: no lower bound)."""
    max: float | None = None
    """The upper bound (none: no upper bound)."""

    def shape(self, ctx: Ctx) -> Shape:
        if self.min is None and self.max is None:
            raise LayerError("clamp needs min, max or both", "min")
        return ctx.x

    def build(self, ctx: Ctx, t: Kit) -> Any:
        return t.ext.Clamp(self.min, self.max, self.inplace)


class RReLU(Activation):
    """Randomised leaky ReLU (torch's RReLU), read at inference: x if x ≥ 0 else a·x with the
    fixed slope a = (lower + upper)/2. While training torch draws a slope per element from
    U(lower, upper) and keeps the drawn slopes (input-sized) for backward: the memory rules
    count them; verify compares outputs at inference only (eval mode), where the layer is
    exact. No params; element-wise ops = 1 per element; RF point-wise. torch makes an
    input-sized slope tensor even at inference (rrelu_with_noise), inside the one operator
    (verify reports it as workspace, not as a tensor)."""

    type: Literal["rrelu"]
    torch_name: ClassVar[str] = "RReLU"
    torch_functions: ClassVar[tuple[TorchForm, ...]] = (TorchForm(("F.rrelu", "torch.rrelu"), "rrelu", _rrelu),)
    keeps_layout = Flag(False)  # its slope tensor is made contiguous
    lower: float = 1 / 8
    upper: float = 1 / 3

    def shape(self, ctx: Ctx) -> Shape:
        if not self.lower <= self.upper:
            raise LayerError(f"lower {self.lower} must not exceed upper {self.upper}", "upper")
        return ctx.x

    def saved(self, ctx: Ctx, grads: tuple[bool, ...]) -> Saved:
        """The input (in place: the output) and the drawn slopes."""
        return Saved(output=self.inplace, inputs=() if self.inplace else (0,), extra=prod(ctx.x))

    def torch_kwargs(self) -> dict[str, Any]:
        return {"lower": self.lower, "upper": self.upper, "inplace": self.inplace}
