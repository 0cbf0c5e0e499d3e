"""The layer contract: one class per layer type holds all of its rules.

A layer class declares its spec fields (pydantic, mirroring ``torch.nn``) and implements
the rules below, each reading a :class:`Ctx` (input shapes with the batch dimension, and
the output shape once known). Registering is automatic: subclassing :class:`Layer` with a
``type: Literal["name"]`` field adds the class to :data:`REGISTRY`, which the spec parser,
the analyzer, ``cnncalc layers``, the JSON Schema, the torch builder and the parity tests
all read.
"""

import inspect
import re
from dataclasses import dataclass, field
from math import prod
from types import ModuleType
from typing import Annotated, Any, Callable, ClassVar, NamedTuple, get_args, overload

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema

from cnncalc.errors import LayerError
from cnncalc.layers.field import RF, union
from cnncalc.layers.routes import OnnxForm, TorchForm

Shape = tuple[int, ...]
MAX_INT = 2**40  #: largest size, channel or feature count accepted in a spec

REGISTRY: dict[str, type["Layer"]] = {}

Name = Annotated[str, Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$", max_length=200)]
"""A layer, block or argument name: letters, digits, _ . - (torch module paths such as features.0.1)."""
Ref = Annotated[str, Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*\*?$", max_length=201)]
"""A name in `inputs:`; NAME* is a list of tensors, read whole (a block's starred input, spec/expand.py)."""
PosInt = Annotated[int, Field(ge=1, le=MAX_INT)]


def _axes_schema(minimum: int) -> dict:
    item = {"type": "integer", "minimum": minimum}
    return {"anyOf": [item, {"type": "array", "items": item, "minItems": 1, "maxItems": 3}]}


#: an int for every spatial axis, or one int per axis (normalised to a tuple)
Axes = Annotated[Any, WithJsonSchema(_axes_schema(1))]
Axes0 = Annotated[Any, WithJsonSchema(_axes_schema(0))]


def per_axis(value: Any, dims: int, minimum: int = 1) -> tuple[int, ...]:
    """Normalise ``3`` or ``[3, 5]`` to one value per spatial axis, checking the type and range."""
    def ok(v: Any) -> bool:
        return isinstance(v, int) and not isinstance(v, bool) and minimum <= v <= MAX_INT

    what = {1: "a positive integer", 0: "a non-negative integer"}.get(minimum, "an integer")
    if ok(value):
        return (value,) * dims
    if isinstance(value, (list, tuple)) and len(value) == dims and all(ok(v) for v in value):
        return tuple(value)
    axes = "1 value" if dims == 1 else f"a list of {dims} values"
    raise ValueError(f"expected {what} or {axes} (one per spatial axis), received {value!r}")


@dataclass(frozen=True, init=False)
class Saved:
    """The tensors autograd keeps from a layer's forward call for its backward call (torch's
    derivatives.yaml): inputs kept as they are (shared with any other layer keeping them), the
    output, and new tensors (statistics, masks, indices) counted in elements."""

    inputs: tuple[int, ...] = ()
    output: bool = False
    extra: int = 0
    """new tensors in the compute dtype, elements"""
    extra_bytes: int = 0
    """new tensors of a fixed dtype (int64 indices, bool masks), bytes"""

    def __init__(self, inputs: tuple[int, ...] = (), output: bool = False, extra: int = 0,
                 extra_bytes: int = 0) -> None:
        # as the dataclass's own __init__, without its object.__setattr__ per field (#30: the
        # memory simulation asks every layer on the gradient's way)
        self.__dict__.update(inputs=inputs, output=output, extra=extra, extra_bytes=extra_bytes)


class Flag:
    """A yes/no a layer type states about itself, read on a layer (`layer.passes_gradient`): one
    value for the whole type (`passes_gradient = Flag(True)`), or a rule over the layer's fields
    (`@Flag.rule` on a method returning bool). Read on the class it is that value, or for a rule
    the Flag itself (not `True`, not falsy: the answer depends on the fields). One declaration
    for both, so a subclass overrides either way without a ClassVar-vs-property clash."""

    def __init__(self, value: bool | Callable[[Any], bool]) -> None:
        self.value = value
        self.__doc__ = None if isinstance(value, bool) else value.__doc__

    @classmethod
    def rule(cls, fn: Callable[[Any], bool]) -> "Flag":
        return cls(fn)

    @overload
    def __get__(self, obj: None, owner: type | None = None) -> "bool | Flag": ...
    @overload
    def __get__(self, obj: object, owner: type | None = None) -> bool: ...
    def __get__(self, obj: object | None, owner: type | None = None) -> "bool | Flag":
        if isinstance(self.value, bool):
            return self.value
        return self if obj is None else bool(self.value(obj))


class Kit(NamedTuple):
    """torch and the modules cnncalc builds with (`backend.kit()` makes one, once torch is known to
    be there): what a layer's `build` and `probe` receive."""

    torch: ModuleType
    nn: ModuleType
    F: ModuleType
    ext: ModuleType
    """cnncalc's own modules (backend/modules.py: the layers torch has no class for)."""


@dataclass
class Ctx:
    """What a rule sees: the input shapes (batch first) and, after `shape`, the output shape."""

    ins: list[Shape]
    out: Shape = ()
    notes: list[str | None] = field(default_factory=list)
    layouts: list[tuple[int, ...]] = field(default_factory=list)
    """Each input's axis order: axis → the (N, C, …) axis it holds (the identity unless a permute
    or transpose came before); empty where unknown."""
    producers: list[Any] = field(default_factory=list)
    """The analysis row (its `.layer` and `.ctx`) writing each input, None for the network's
    input; empty where unknown. A layer that reads what another layer is (max_unpool reads its
    max pool's indices) checks it here."""

    extent: tuple[int, ...] = ()
    """The network input's spatial sizes (the fields' coordinates run over them); empty where unknown."""

    def natural(self, i: int = 0) -> bool:
        """Input i is in (N, C, spatial…) order (or its order is unknown)."""
        return len(self.layouts) <= i or self.layouts[i] == tuple(range(len(self.layouts[i])))

    @property
    def x(self) -> Shape:
        return self.ins[0]


class Layer(BaseModel):
    """Base of every layer type. Common fields: name, inputs, trainable, share."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True, validate_default=True,
                              defer_build=True)

    type: str
    name: Name | None = None
    """Unique layer name (default: the type and its index)."""
    inputs: list[Ref] | None = None
    """Names of earlier layers (or 'input') feeding this one; default: the previous layer; NAME*
    stands for a whole list of tensors (a block's starred input, a use of such a block)."""
    trainable: bool = True
    """false freezes the layer: its params count as non-trainable."""
    share: Name | None = None
    """Reuse the weights of this earlier layer: params counted once, MACs at every use."""

    category: ClassVar[str] = "other"
    min_inputs: ClassVar[int] = 1
    max_inputs: ClassVar[int] = 1
    #: the receptive field depends on the input size (adaptive pooling, resize to a size)
    rf_size_dependent: ClassVar[Flag] = Flag(False)
    #: its weights can absorb a following per-channel affine map (batch-norm folding)
    absorbs_affine: ClassVar[bool] = False
    #: backward hands the output's gradient (or views of it) to the inputs: no new gradient tensor
    passes_gradient: ClassVar[Flag] = Flag(False)
    #: the memory rules describe what torch allocates (False: an estimate, which verify does not judge)
    memory_exact: ClassVar[Flag] = Flag(True)
    #: element-wise through torch's TensorIterator: inputs of the output's shape sharing one dense
    #: layout (a permuted order, not a slice) give an output with those strides (analysis/strides.py)
    keeps_layout: ClassVar[Flag] = Flag(False)
    #: on 4-D tensors torch writes the output in the memory format its inputs suggest: channels-
    #: last where every input's strides suggest it (`suggest_memory_format`), else contiguous
    #: (convolutions, batch norm, pooling, constant pads, upsampling, cat; analysis/strides.py)
    follows_channels_last: ClassVar[Flag] = Flag(False)
    #: on 5-D tensors too (channels_last_3d), on every device: cat (whose kernels follow the memory
    #: format its inputs suggest at any rank; conv3d, pools and norms differ by device and kernel)
    follows_channels_last_3d: ClassVar[Flag] = Flag(False)
    #: torch's output is a fresh contiguous tensor whatever its input's strides (linear: matmul
    #: folds its input to 2-D, copying it if need be; analysis/strides.py)
    writes_contiguous: ClassVar[Flag] = Flag(False)
    #: while training torch returns its output as a view of a tensor of the same size (1-D pools
    #: run as 2-D ones on an unsqueezed input and squeeze; instance norm views a batch norm's
    #: output): an in-place layer on it rebases the view (analysis/memory.py)
    returns_view: ClassVar[Flag] = Flag(False)
    #: channel c of the output reads channel c of each input alone (a broadcast input: its one
    #: channel): activations, per-channel norms, pools, pads, element-wise merges; the fields per
    #: channel pass through it (`channel_sources`)
    channel_wise: ClassVar[bool] = False
    #: how torch.autocast runs it (torch's op lists: aten/src/ATen/autocast_mode.h for CUDA,
    #: autocast_mode.cpp for CPU; analysis/precision.py): 'lower' casts its inputs and weights to
    #: the low dtype, 'fp32' its inputs to float32, 'promote' to the widest input dtype; 'same'
    #: is in no list (runs in its inputs' dtype), 'float' computes in float32 with its own float32
    #: weights (no cast copy). One value for every device type, or {'cpu': …, 'cuda': …} with
    #: 'cpu/3d'-style keys for one spatial rank; a device left out is 'same'
    autocast: ClassVar[str | dict[str, str]] = "same"

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        if not cls.__dict__.get("__doc__"):  # a 1-D/2-D/3-D variant states its family's rules
            cls.__doc__ = next((k.__doc__ for k in cls.__mro__[1:] if k.__dict__.get("__doc__")), None)
        ann = inspect.get_annotations(cls).get("type")  # its own, also under lazy annotations (3.14)
        if ann is not None:
            names = re.findall(r"['\"]([a-z0-9_]+)['\"]", ann) if isinstance(ann, str) else get_args(ann)
            for name in names:
                REGISTRY[name] = cls

    # ---- rules (override what applies) -------------------------------------------------
    def shape(self, ctx: Ctx) -> Shape:
        """Output shape (with batch). Default: same as the input."""
        return ctx.x

    def weights(self, ctx: Ctx) -> dict[str, Shape]:
        """Learnable tensors by torch name and shape."""
        return {}

    def buffers(self, ctx: Ctx) -> dict[str, Shape]:
        """Non-learnable state tensors (running statistics)."""
        return {}

    def macs(self, ctx: Ctx) -> int:
        """Multiply-accumulates of conv/linear-like work, bias excluded."""
        return 0

    def elementwise(self, ctx: Ctx) -> int:
        """Element-wise operations (bias add, norm, activation, pooling, merges)."""
        return 0

    def rf(self, ctx: Ctx, fields: list[list[RF] | None]) -> list[RF] | None:
        """Receptive field per spatial axis. Default: point-wise (a merge of several inputs
        reads the union of their windows)."""
        return merged(ctx, fields)

    def reads(self, ctx: Ctx, axis: int, lo: int, hi: int, real: bool = False) -> list[tuple[int, int] | None]:
        """Per input, the first and last position on spatial axis `axis` that outputs lo..hi
        read, in that input's coordinates: counting padding positions (outside 0..size − 1) as
        the field's size does, or with `real` only the input's own positions (first > last:
        none). None where that is no fixed interval (`rf --unit` then falls back to the
        field's formula, approximate). Default: point-wise (an input broadcast along the axis:
        its one position)."""
        out: list[tuple[int, int] | None] = []
        for shape in ctx.ins:
            dim = len(shape) - len(ctx.out) + 2 + axis  # axes align on the right (broadcasting)
            broadcast = dim < 2 or (shape[dim] == 1 and ctx.out[2 + axis] > 1)
            span = (0, 0) if broadcast else (lo, hi)
            out.append(clip(span, shape[dim] if dim >= 2 else 1) if real else span)
        return out

    def dense(self, ctx: Ctx, axis: int) -> bool:
        """Consecutive outputs read, together, consecutive input positions along `axis` (no
        position skipped: no dilation, strides within the kernel)."""
        return True

    def channel_sources(self, ctx: Ctx) -> str | list[int]:
        """Which input channels each output channel reads, for fields kept per channel (a slice
        of a concat reads only its own branches' windows, analysis/analyze.py): "each" (channel
        c of every input, a broadcast input its one channel), "all" (every input channel), a
        list (output channel i reads input channel list[i] alone), "concat" (the inputs'
        channels one after the other), "moves" (output positions or channels read different
        input positions per channel: pixel (un)shuffle), or "other" (unknown: the fields per
        channel are lost, and a later slice's field is marked inexact). Default: "each" where
        the class is `channel_wise`, else "other"."""
        return "each" if self.channel_wise else "other"

    def last_axis_only(self, ctx: Ctx) -> bool:
        """Whether the layer mixes values along the last axis alone (linear, a LayerNorm over the
        last axis, softmax over it): then, on a channels-last view, it is point-wise in space."""
        return False

    def note(self, ctx: Ctx) -> str | None:
        """How the output size came about, quoted by later checks (e.g. flatten's product);
        shape-preserving layers pass their input's note on."""
        return ctx.notes[0] if ctx.notes and ctx.out == ctx.x else None

    def warnings(self, ctx: Ctx) -> list[str]:
        return []

    # ---- memory ---------------------------------------------------------------------------------
    def aliases(self, training: bool) -> bool:
        """The output is the input's memory (a view, an in-place op, dropout at inference):
        the layer allocates nothing."""
        return False

    def moves_data(self) -> bool:
        """Whether a forward pass at inference reads or writes memory at all (a view or an
        identity returns its input and moves nothing); see roofline.layer_bytes."""
        return True

    def scratch(self, ctx: Ctx, b: int) -> int:
        """Bytes of the temporaries the layer's torch code makes, at their peak inside the
        forward call, beyond the output (b: bytes per element of the compute dtype). Buffers
        that one torch operator allocates and frees inside itself are not tensors: verify
        reports them as workspace."""
        return 0

    def saved(self, ctx: Ctx, grads: tuple[bool, ...]) -> Saved:
        """What autograd keeps for backward when the output needs a gradient; `grads` says
        which inputs need one. Default: nothing (moves, pads, sums)."""
        return Saved()

    def backward_scratch(self, ctx: Ctx, b: int, grads: tuple[bool, ...]) -> int:
        """Bytes of temporaries in the backward call: the gradients of the forward call's
        temporaries, made when an input needs a gradient."""
        return self.scratch(ctx, b) if any(grads) else 0

    def build(self, ctx: Ctx, t: Kit) -> Any:
        """The torch module computing this layer (``t`` holds torch, nn, F and cnncalc's own)."""
        raise NotImplementedError(f"{self.type} has no torch builder")

    # ---- how verify treats the layer ---------------------------------------------------------
    def probe(self, ctx: Ctx, t: Kit) -> Any:
        """The layer's stand-in in the receptive-field probe: a positive map on one-channel
        tensors (N, 1, …) that reaches the same input positions as the layer reaches over all
        its channels (with positive weights, the union over channels is all a unit's field
        needs). Default: identity, a point-wise layer; a layer that mixes positions returns
        its reach, which the parity test of its case row compares with its `rf` rule."""
        return t.nn.Identity()

    def folds(self) -> bool:
        """At inference a per-channel affine map y = s·x + b that folds into the layer before it
        (batch norm with running statistics)."""
        return False

    def affine_map(self, module: Any, t: Kit) -> tuple[Any, Any]:
        """(s, b) of a folding layer's module, for `folds()` layers."""
        raise NotImplementedError(f"{self.type} does not fold")

    def absorb(self, module: Any, scale: Any, shift: Any, t: Kit) -> None:
        """Fold a following y = s·x + b into this layer's module: W' = W·s per output channel,
        b' = b·s + shift (for `absorbs_affine` layers: the last conv/linear of the module)."""
        target = [m for m in module.modules() if hasattr(m, "weight") and m.weight is not None][-1]
        target.weight.mul_(scale.view(-1, *([1] * (target.weight.dim() - 1))))
        bias = target.bias if target.bias is not None else t.torch.zeros_like(scale)
        target.bias = t.nn.Parameter(bias * scale + shift)

    def explain(self, ctx: Ctx) -> list[tuple[str, str, int]]:
        """(quantity, arithmetic with the numbers substituted, value) lines for --explain.
        Default: params from the weight shapes, and MACs when the layer has none."""
        w = self.weights(ctx)
        lines = []
        if w:
            lines.append(("params", " + ".join("·".join(map(str, s)) or "1" for s in w.values()),
                          sum(prod(s) for s in w.values())))
        if not self.macs(ctx):
            lines.append(("MACs", "0", 0))
        return lines

    # ---- how `cnncalc import` reads the layer from a torch module ---------------------------------
    #: names of the torch module classes this type is read from (None: the class's own name, when
    #: torch.nn or cnncalc's exported modules use it; () for none)
    torch_names: ClassVar[tuple[str, ...] | None] = None
    #: the traced torch functions and Tensor methods it is written as (layers.routes.TorchForm)
    torch_functions: ClassVar[tuple[TorchForm, ...]] = ()
    #: the ONNX op types it is read from (layers.routes.OnnxForm)
    onnx_ops: ClassVar[tuple[OnnxForm, ...]] = ()
    #: where it has no import route at all (no torch module, function or ONNX op): why
    no_import: ClassVar[str | None] = None

    @classmethod
    def from_torch(cls, m: Any) -> dict[str, Any]:
        """The spec entry (type and fields) of torch module `m`: its attributes named like the
        fields (a bias tensor → true, a tuple of equal sizes → one), leaving out defaults and the
        sizes torch infers from the input. The importer checks the result against torch."""
        kinds = [k for k, v in REGISTRY.items() if v is cls]
        entry: dict[str, Any] = {"type": kinds[0]}
        for name, f in cls.model_fields.items():
            key = f.alias or name
            if name in Layer.model_fields or name in INFERRED or not hasattr(m, key):
                continue
            v = torch_value(getattr(m, key), name == "bias")
            if isinstance(v, list) and v and len(set(v)) == 1 and getattr(f.annotation, "__origin__", None) is not list:
                v = v[0]  # (3, 3) as people write it: 3
            entry[key] = v
        return cls.lean(entry)

    @classmethod
    def lean(cls, entry: dict[str, Any]) -> dict[str, Any]:
        """A spec entry less the fields given at their defaults (as a person writes it)."""
        defaults = {f.alias or k: f.default for k, f in cls.model_fields.items() if k not in Layer.model_fields}
        return {k: v for k, v in entry.items() if k not in defaults or not (
            type(v) is type(defaults[k]) and v == defaults[k] or v is None and defaults[k] is None)}

    # ---- helpers for rules ----------------------------------------------------------------
    def expect_rank(self, shape: Shape, rank: int, axes: str) -> None:
        if len(shape) != rank:
            raise LayerError(f"expected a {rank}-D input {axes}, received {fmt_shape(shape)}")

    def check_declared(self, field_name: str, declared: int | None, actual: int, what: str,
                       note: str | None = None) -> None:
        if declared is not None and declared != actual:
            because = note or f"the input has {actual} {what}"
            raise LayerError(f"{field_name}={declared} but {because}", field_name)


INFERRED = ("in_channels", "in_features", "num_features", "num_channels")  #: sizes torch infers


def torch_value(v: Any, flag: bool = False) -> Any:
    """A torch module attribute as a spec value: tuples and sizes → lists, a tensor (or None,
    with `flag`) → whether it is there."""
    if hasattr(v, "shape") and hasattr(v, "dtype"):
        return True
    if v is None and flag:
        return False
    if isinstance(v, tuple) or type(v).__name__ == "Size":
        return [torch_value(x) for x in v]
    return v


def clip(span: tuple[int, int], size: int) -> tuple[int, int]:
    """An interval cut to positions 0..size − 1 (first > last when nothing is left)."""
    return max(span[0], 0), min(span[1], size - 1)


def progressions(lo: int, hi: int, step: int, offsets: range | list[int], size: int | None) -> tuple[int, int]:
    """First and last of the positions o·step + off (lo ≤ o ≤ hi, off in offsets) that lie in
    0..size − 1 (all of them when size is None); (1, 0) when none does."""
    spans = []
    for off in offsets:
        a, b = lo, hi
        if size is not None:
            a, b = max(a, -(off // step)), min(b, (size - 1 - off) // step)
        if a <= b:
            spans.append((a * step + off, b * step + off))
    return (min(f for f, _ in spans), max(la for _, la in spans)) if spans else (1, 0)


def merged(ctx: Ctx, fields: list[list[RF] | None]) -> list[RF] | None:
    """Through a merge, per spatial axis the union of the inputs' windows (:func:`arith.union`);
    an input of size 1 along an axis where the output is larger is broadcast (an SE gate)."""
    if len(fields) == 1 and ctx.ins[0] == ctx.out:  # one input, the output's shape: its own windows
        f = fields[0]
        return None if f is None else [union([r], []) for r in f]
    known = [(shape, f) for shape, f in zip(ctx.ins, fields) if f is not None]
    if not known or any(len(f) != len(known[0][1]) for _, f in known):
        return None
    dims = len(known[0][1])
    out = []
    for a in range(dims):
        size = ctx.out[len(ctx.out) - dims + a]
        sizes = [shape[len(shape) - dims + a] if len(shape) - dims + a >= 2 else 1 for shape, _ in known]
        full = [f[a] for n, (_, f) in zip(sizes, known) if n == size]
        broadcast = [f[a] for n, (_, f) in zip(sizes, known) if n != size]
        n = ctx.extent[a] if len(ctx.extent) == dims else 0
        out.append(union(full or broadcast, broadcast if full else [], size, n))
    return out


def fmt_shape(shape: Shape) -> str:
    return "(" + ", ".join(str(s) for s in shape) + ")"
