"""How `cnncalc import` reads a layer type, besides its torch module (`Layer.torch_names`,
`Layer.from_torch`): the forms a type states, and the factories that build their readers.

A layer class lists
- `torch_functions`: :class:`TorchForm` rows, the traced torch functions and Tensor methods it
  is written as (`F.relu`, `torch.relu`, `Tensor.relu`, `operator.add`), the short name its
  layers get, and a reader from the op's arguments to the spec entry;
- `onnx_ops`: :class:`OnnxForm` rows, the ONNX op types it is read from and a reader from the
  node (:class:`OnnxNode`) to the spec entry and its weights;
- `no_import`: where it has no route at all, the reason (a completeness test asks for one of the three).

This is fvcore's op-table shape: the importers in cnncalc.interop build their tables from the
registry (`torch_forms`, `onnx_forms`) and keep only the generic machinery (tracing, naming,
refusal listing). Nothing here imports torch or onnx: a reader gets the kit (`call.t`: torch, nn,
F) or the importer's view of a node, and may return a torch module, which the importer then reads
with the layer class that `torch_names` gives it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from math import prod
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from collections.abc import Iterable

    from cnncalc.layers.base import Kit, Layer


class Unsupported(Exception):
    """An op (or these arguments of it) that has no layer type; the message says which."""


class Malformed(Exception):
    """What is wrong in an imported file itself (blamed on the file)."""


class Traced:
    """A tensor argument of a traced op: the fx node it comes from."""

    def __init__(self, node: Any):
        self.node = node

    @property
    def shape(self) -> tuple[int, ...]:
        """Its shape on the traced forward pass (batch 2)."""
        return tuple(self.node.meta["cnncalc_shape"])

    @property
    def made_by(self) -> str | None:
        """The Tensor method that made it (`contiguous`), None for anything else."""
        return str(self.node.target) if self.node.op == "call_method" else None


@dataclass(frozen=True)
class TorchCall:
    """What a torch reader sees besides the op's arguments."""

    t: Kit
    """the kit: torch, nn, F"""
    out: tuple[int, ...]
    """the op's output shape (batch 2)"""
    target: Any = None
    """the traced function, or the method's name"""


TorchReader = Callable[..., "tuple[Any, list[Any]]"]
"""(call, *args, **kwargs) → (a spec entry, a torch module the registry reads, or None for "its
one input, as far as the numbers go"; the tensor inputs, as :class:`Traced`)."""


@dataclass(frozen=True)
class TorchForm:
    names: tuple[str, ...]
    """how the op is spelled: `F.x` (torch.nn.functional), `torch.x`, `Tensor.x` (the method),
    `operator.x`; a name this torch lacks is skipped"""
    short: str | None
    """the name its layers get inside their module (`layer1.0.add`); None: the entry's type"""
    read: TorchReader


OnnxReader = Callable[["OnnxNode"], "tuple[dict[str, Any] | None, dict[str, Any]]"]
"""node → (the spec entry, or None for "its input itself"; its weights under torch's state_dict names)."""


@dataclass(frozen=True)
class OnnxForm:
    ops: tuple[str, ...]
    read: OnnxReader
    reads_constants: bool = False
    """its inputs after the first may be constants it reads (a shape, bounds, axes), not weights"""


@dataclass
class OnnxNode:
    """The importer's view of one ONNX node, for a reader."""

    op: str
    a: dict[str, Any]
    """attributes, decoded"""
    ins: list[str]
    """input names (empty ones left out)"""
    x: tuple[int, ...]
    """the first input's shape (batch first), () where shape inference does not give it"""
    y: tuple[int, ...] | None
    """the first output's shape"""
    consts: dict[str, Any] = field(default_factory=dict)
    """inputs that are constants (their value, None where it was computed)"""
    weight: Callable[[str], Any] = lambda name: None
    """a stored initializer by name (raises Unsupported when it is computed)"""
    f32: Callable[[float], float] = float
    """a float32 attribute as written in the source (1e-05)"""
    counter: Callable[[], Any] = lambda: 0
    """a zero-dimensional integer tensor (num_batches_tracked)"""

    @property
    def dims(self) -> int:
        return len(self.x) - 2

    def tensors(self) -> list[str]:
        return [i for i in self.ins if i not in self.consts]


# ---- the registry's forms ------------------------------------------------------------------------
def declared(cls: type[Layer], name: str) -> list[tuple[type, Any]]:
    """(class, value) of attribute `name` wherever `cls` or a base states it (a family base states
    a form once for its 1-D/2-D/3-D types)."""
    return [(k, k.__dict__[name]) for k in cls.__mro__ if name in k.__dict__]


def _stated(classes: Iterable[type[Layer]], name: str) -> list[Any]:
    """Every form the classes state in attribute `name`, once each (a family base's forms are
    stated once for all its types)."""
    out: dict[int, Any] = {}
    for cls in classes:
        for _, forms in declared(cls, name):
            out.update({id(f): f for f in forms})
    return list(out.values())


def torch_forms(classes: Iterable[type[Layer]]) -> list[TorchForm]:
    """Every TorchForm the classes state, once each."""
    return _stated(classes, "torch_functions")


def onnx_forms(classes: Iterable[type[Layer]]) -> list[OnnxForm]:
    """Every OnnxForm the classes state, once each."""
    return _stated(classes, "onnx_ops")


# ---- torch reader factories ----------------------------------------------------------------------
def module(nn_name: str, drop_inplace: bool = False) -> TorchReader:
    """F.f(x, *a, **k) ↔ nn.NnName(*a, **k), same parameter order (an activation's `inplace`
    dropped with `drop_inplace`: it changes no number)."""
    def read(call: TorchCall, x: Traced, *args: Any, **kw: Any) -> tuple[Any, list[Any]]:
        if drop_inplace:
            kw.pop("inplace", None)
        return getattr(call.t.nn, nn_name)(*args, **kw), [x]
    return read


def activation(nn_name: str) -> TorchReader:
    return module(nn_name, drop_inplace=True)


def activation_forms(name: str, nn_name: str) -> tuple[TorchForm, ...]:
    """`F.name`, `torch.name` and `Tensor.name`, read as nn.NnName."""
    return (TorchForm((f"F.{name}", f"torch.{name}", f"Tensor.{name}"), name, activation(nn_name)),)


def merge(kind: str) -> TorchReader:
    """`a + b`, `torch.add(a, b)`, `a.add(b)` of two tensors (no constant, alpha 1); a tensor plus
    the number 0 or times the number 1 is that tensor (timm's MobileOne block starts a sum at 0),
    read as an identity."""
    neutral = {"add": 0, "mul": 1}.get(kind)

    def same(v: Any) -> bool:  # the number that leaves a tensor as it is (never a bool or a tensor)
        return neutral is not None and type(v) in (int, float) and v == neutral

    def read(call: TorchCall, a: Any, b: Any, alpha: Any = 1, out: Any = None) -> tuple[Any, list[Any]]:
        if isinstance(a, Traced) and not isinstance(b, Traced) and same(b) and alpha == 1:
            return {"type": "identity"}, [a]
        if isinstance(b, Traced) and not isinstance(a, Traced) and same(a) and alpha == 1:
            return {"type": "identity"}, [b]
        if not (isinstance(a, Traced) and isinstance(b, Traced)) or alpha != 1:
            raise Unsupported(f"{kind} with a constant (only tensor {kind}s have a layer type)")
        return {"type": kind}, [a, b]
    return read


def along_dim(kind: str) -> TorchReader:
    """softmax / log_softmax with an explicit dim and no dtype."""
    def read(call: TorchCall, x: Traced, dim: Any = None, _stacklevel: int = 3, dtype: Any = None) -> tuple[Any, list[Any]]:
        if dim is None or dtype is not None:
            raise Unsupported(f"{kind} without an explicit dim, or with a dtype")
        return {"type": kind, "dim": dim}, [x]
    return read


# ---- ONNX reader factories -----------------------------------------------------------------------
def sized(v: Any) -> Any:
    """A size traced as a list (fx's immutable list) as the tuple nn's module keeps."""
    return tuple(v) if isinstance(v, list) else v


def one(v: list[int]) -> Any:
    """[3, 3] → 3 (as people write it); [3, 5] stays."""
    v = [int(x) for x in v]
    return v[0] if len(set(v)) == 1 else v


def check_axis(value: Any, rank: int) -> int:
    if not -rank <= int(value) < rank:
        raise Malformed(f"the axis {int(value)} is out of range for a tensor of rank {rank}")
    return int(value)


def lean(entry: dict[str, Any]) -> dict[str, Any]:
    """A spec entry less its fields at their defaults."""
    from cnncalc.layers.base import REGISTRY

    return REGISTRY[entry["type"]].lean(entry)


def onnx_fixed(kind: str) -> OnnxReader:
    """An op with no attributes the type needs: {"type": kind}."""
    return lambda node: ({"type": kind}, {})


def onnx_same(node: OnnxNode) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """Its input itself (Identity; Dropout at inference)."""
    return None, {}


def onnx_reshape(node: OnnxNode) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """Flatten, Reshape, Squeeze, Unsqueeze: a flatten where the result is (N, everything), else a
    reshape to the shape inference gives (the batch axis kept)."""
    x, y = node.x, node.y
    if y is None or y[0] != x[0]:
        raise Unsupported("a reshape of the batch axis")
    if len(x) > 2 and y == (x[0], prod(x[1:])):
        return {"type": "flatten"}, {}
    return {"type": "reshape", "shape": list(y[1:])}, {}
