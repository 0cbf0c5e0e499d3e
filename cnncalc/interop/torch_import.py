"""`cnncalc import`: a live PyTorch model as cnncalc layers, traced with torch.fx.

Modules that have a layer type stay whole (fx leaves) and are read by their layer class's
`from_torch` rule; everything else is traced through. Each tensor the forward pass makes is one
layer: a module call is named by its path (`layer1.0.conv1`), a functional op (`F.relu`,
`torch.cat`, `x + y`, `x.flatten(1)`) by the module it runs in and the op (`layer1.0.add`).
Sizes computed from shapes (`x.size(0)`, `c // groups`) are taken from a real forward pass at
the given input. An op with no layer type is refused, every one listed with where it occurs:
nothing is dropped or approximated. `check` then proves the written spec against the model.
"""
from __future__ import annotations

import functools
import importlib
import importlib.util
import operator
import os
import re
import sys
import time
from math import prod
from typing import Any, Callable

from cnncalc.backend.kit import Kit, kit
from cnncalc.errors import CnnError, did_you_mean
from cnncalc.interop.spec_writer import Found
from cnncalc.layers import REGISTRY
from cnncalc.layers.base import Layer
from cnncalc.layers.pool import MaxPoolNd, MaxUnpoolNd
from cnncalc.layers.routes import TorchCall, TorchForm, Traced, Unsupported, torch_forms
from cnncalc.safe import visible

NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")  #: what a spec name may hold (layers.base.Name)
CONTAINERS = ("Sequential", "ModuleDict", "ModuleList", "Module")  #: Module: a container fx copied, never called
MAX_LISTED = 20  #: unsupported ops listed by name (then a count)
MAX_RUN_BYTES = 2 * 2**30  #: the outputs are compared on a real forward pass only below this memory
#: operations a traced forward pass may make (fx graph nodes, leaf-module calls included); tracing
#: stops at the first one over, before anything is interpreted. ResNet-152 traces to 517 nodes,
#: DenseNet-201 to 713 (measured with this tracer): a model past this is a Python loop unrolled
MAX_TRACED_OPS = 20_000


# ---- where the model comes from ----------------------------------------------------------------
def load_model(source: str) -> Any:
    """The nn.Module that SOURCE names: `file.py:NAME`, `package.module:NAME` or `torchvision:NAME`
    (NAME a module, a class or a factory taking no required arguments)."""
    t = kit()
    where, sep, name = source.rpartition(":")
    if not sep or not where or not name:
        raise CnnError.single(f"import: '{source}' is not FILE.py:NAME, package.module:NAME, torchvision:NAME or a "
                              ".onnx file", exit_code=2)
    if where == "torchvision":
        return _torchvision(name)
    if where.endswith(".py") and not os.path.isfile(where):
        raise CnnError.single(f"import: no such file: {where}", exit_code=2)
    try:
        module = _load_file(where) if where.endswith(".py") else importlib.import_module(where)
    except ModuleNotFoundError as exc:
        raise CnnError.single(f"import: cannot import {where}: {exc}", exit_code=2) from None
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - the user's code failed: say how, plainly
        raise CnnError.single(f"import: {where} failed while loading: {_one_line(exc)}") from None
    if not hasattr(module, name):
        names = [n for n in vars(module) if not n.startswith("_")]
        raise CnnError.single(f"import: {where} has no '{name}'{did_you_mean(name, names)}", exit_code=2)
    return _instance(getattr(module, name), f"{where}:{name}", t)


def _load_file(path: str) -> Any:
    """The Python file at `path`, run as a module (registered, so its classes pickle and dataclasses work)."""
    name = "cnncalc_import_" + "".join(c if c.isalnum() else "_" for c in os.path.basename(path)[:-3])
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _torchvision(name: str) -> Any:
    try:
        import torchvision
        from torchvision import models
    except Exception as exc:  # noqa: BLE001 - missing, or built for another torch: both say the same
        raise CnnError.single("import: torchvision cannot be loaded here "
                              f"({_one_line(exc)}); install the torchvision that matches your torch "
                              "(pip install torchvision)") from None
    names = models.list_models()
    if name not in names:
        raise CnnError.single(f"import: torchvision {torchvision.__version__} has no model '{name}'"
                              f"{did_you_mean(name, names)}", exit_code=2)
    import inspect

    builder = models.get_model_builder(name)
    # untrained, and nothing downloaded: segmentation builders default weights_backbone to ImageNet's
    extra = {"weights_backbone": None} if "weights_backbone" in inspect.signature(builder).parameters else {}
    try:
        return builder(weights=None, **extra)
    except Exception as exc:  # noqa: BLE001 - e.g. its compiled ops failed to load
        raise CnnError.single(f"import: torchvision could not build {name}: {_one_line(exc)}") from None


def _instance(obj: Any, what: str, t: Kit) -> Any:
    if isinstance(obj, t.nn.Module):
        return obj
    if not callable(obj):
        raise CnnError.single(f"import: {what} is not an nn.Module, a class or a function", exit_code=2)
    try:
        made = obj()
    except TypeError as exc:
        raise CnnError.single(f"import: {what} cannot be called without arguments ({_one_line(exc)}); give a "
                              "function that builds the model", exit_code=2) from None
    except (Exception, SystemExit) as exc:  # noqa: BLE001
        raise CnnError.single(f"import: {what}() failed: {_one_line(exc)}") from None
    if not isinstance(made, t.nn.Module):
        raise CnnError.single(f"import: {what}() returned {type(made).__name__}, not an nn.Module")
    return made


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]


# ---- which layer type a module is ---------------------------------------------------------------
def layer_class(m: Any) -> type[Layer] | None:
    """The layer class that reads module `m`: its class (or a base whose forward it keeps) is a
    torch or torchvision class named in a layer's `torch_names`, or one of the modules cnncalc's
    exported files define."""
    index, ours = _index()
    for k in type(m).__mro__:
        torch_own = k.__module__.split(".")[0] in ("torch", "torchvision")
        if k.__name__ in index and (torch_own or k.__name__ in ours):
            if type(m).forward is not getattr(k, "forward", None) and not (torch_own and _forwards_as(m, k)):
                return None
            # a class named like one of cnncalc's modules is read as one with its code (an exported file's
            # copy), or holding only a weight and bias as it does (timm's LayerNorm2d; the proof judges it),
            # not otherwise (timm's LayerScale holds `gamma`: traced through)
            ok = torch_own or _same_code(k, ours[k.__name__]) or set(m.state_dict()) <= {"weight", "bias"}
            return index[k.__name__] if ok else None
    return None


def _forwards_as(m: Any, base: type) -> bool:
    """Whether module `m`, whose class overrides the forward of torch's `base`, traces to the very
    graph `base.forward` makes (timm's `Linear`: `F.linear(input, self.weight, self.bias)`); any
    other op, argument or attribute, or a forward fx cannot trace, is no."""
    import torch.fx as fx

    def graph(cls: type) -> list[tuple] | None:
        twin: Any = object.__new__(cls)
        twin.__dict__ = m.__dict__  # the same parameters and settings, the class's own forward
        try:
            g = fx.Tracer().trace(twin)
        except Exception:  # noqa: BLE001 - not traceable alone: read as the model's code
            return None
        index = {n: i for i, n in enumerate(g.nodes)}

        def arg(a: Any) -> Any:
            return ("node", index[a]) if isinstance(a, fx.Node) else repr(a)

        return [(n.op, n.target if n.op != "placeholder" else None, tuple(map(arg, n.args)),
                 tuple(sorted((k, arg(v)) for k, v in n.kwargs.items()))) for n in g.nodes]

    if set(m.state_dict()) - {"weight", "bias"} or list(m.children()):
        return False
    mine, theirs = graph(type(m)), graph(base)
    return mine is not None and mine == theirs


def _same_code(a: type, b: type) -> bool:
    """Whether classes `a` and `b` run the same forward (an exported file's copy of a cnncalc
    module: the same source, compiled elsewhere; the proof judges the rest)."""
    def code(cls: type) -> Any:
        c = getattr(getattr(cls, "forward", None), "__code__", None)
        return c and (c.co_code, c.co_names, c.co_varnames, tuple(x for x in c.co_consts if not hasattr(x, "co_code")))
    return code(a) is not None and code(a) == code(b)


@functools.cache
def _index() -> tuple[dict[str, type[Layer]], dict[str, type]]:
    """Torch class name → the layer class reading it; and cnncalc's own modules by class name."""
    from cnncalc.backend import modules as ext

    out: dict[str, type[Layer]] = {}
    for cls in REGISTRY.values():
        for n in cls.torch_names if cls.torch_names is not None else (cls.__name__,):
            out[n] = cls
    return out, {n: v for n, v in vars(ext).items() if isinstance(v, type)}


# ---- modules that are a known op over their own tensors ----------------------------------------
def _batchnorm_act(m: Any, t: Kit) -> list[tuple[str, Any]] | None:
    """timm's BatchNormAct2d (F.batch_norm over its own weight, bias and running statistics, then
    `self.drop`, then `self.act`): the batch norm under the module's own path (its state_dict keys
    stay), then the dropout and activation as `PATH_drop` and `PATH_act` (no tensors; a spec layer
    cannot also hold others, so not `PATH.act`)."""
    if not isinstance(m, t.nn.BatchNorm2d) or not all(hasattr(m, a) for a in ("drop", "act")):
        return None
    out: list[tuple[str, Any]] = [("", REGISTRY["batchnorm2d"].from_torch(m))]
    for suffix, sub in (("_drop", m.drop), ("_act", m.act)):
        if not isinstance(sub, t.nn.Identity):
            out.append((suffix, sub))
    return out


def _conv2d_same(m: Any, t: Kit) -> list[tuple[str, Any]] | None:
    """timm's Conv2dSame (and Conv2dSameExport): TensorFlow's 'SAME' padding, computed in forward
    from the input's size (a pad, then F.conv2d over its own weight and bias): conv2d with
    padding 'same' (cnncalc's strided 'same' is TensorFlow's)."""
    if type(m).__mro__[1] is not t.nn.Conv2d or m.padding_mode != "zeros" or any(m.padding):
        return None
    entry = REGISTRY["conv2d"].from_torch(m)
    entry.pop("padding", None)
    return [("", {**entry, "padding": "same"})]


def _padded_conv(m: Any, t: Kit) -> list[tuple[str, Any]] | None:
    """cnncalc's own PaddedConv1d/2d/3d (the uneven padding of an exported file): F.pad by its
    stored pads and mode, then the conv: the conv with [before, after] padding pairs."""
    dims = len(getattr(m, "kernel_size", ()))
    modes = {v: k for k, v in t.ext._MODES.items()}
    if (not 1 <= dims <= 3 or type(m).__mro__[1] is not getattr(t.nn, f"Conv{dims}d") or any(m.padding)
            or m.padding_mode != "zeros" or getattr(m, "mode", None) not in modes
            or not isinstance(getattr(m, "flat", None), list) or len(m.flat) != 2 * dims):
        return None
    entry = REGISTRY[f"conv{dims}d"].from_torch(m)
    entry.pop("padding", None)
    pairs = [m.flat[2 * a:2 * a + 2] for a in reversed(range(dims))]  # F.pad's order: the last axis first
    return [("", {**entry, "padding": pairs, **({"padding_mode": modes[m.mode]} if m.mode != "constant" else {})})]


def _std_conv(m: Any, t: Kit) -> list[tuple[str, Any]] | None:
    """timm's weight-standardised convs (StdConv2d, ScaledStdConv2d and their Same variants) and
    cnncalc's own: one std_conv2d, its state_dict keys (weight, bias, gain) kept."""
    if not isinstance(m, t.nn.Conv2d) or m.padding_mode != "zeros" or not isinstance(getattr(m, "eps", None), float):
        return None
    if getattr(m, "gain", None) is not None and not isinstance(getattr(m, "scale", None), float):
        return None
    return [("", REGISTRY["std_conv2d"].from_torch(m))]


def _affine(m: Any, t: Kit) -> list[tuple[str, Any]] | None:
    """timm's LearnableAffineBlock (HGNetV2): `self.scale * x + self.bias`, two one-element
    parameters: a learnable `scale` with bias (its state_dict keys kept)."""
    tensors = dict(m.named_parameters(recurse=False))
    if set(m.state_dict()) != {"scale", "bias"} or set(tensors) != {"scale", "bias"} or list(m.children()) \
            or any(tuple(v.shape) != (1,) for v in tensors.values()):
        return None
    return [("", {"type": "scale", "learnable": True, "bias": True})]


#: class name → how a module of it is read as layers: (name suffix, spec entry or nn module)
#: pairs, or None when this module is not the expected kind (it is then traced through)
COMPOSITES: dict[str, Callable[[Any, Any], list[tuple[str, Any]] | None]] = {
    "BatchNormAct2d": _batchnorm_act, "Conv2dSame": _conv2d_same, "Conv2dSameExport": _conv2d_same,
    "PaddedConv1d": _padded_conv, "PaddedConv2d": _padded_conv, "PaddedConv3d": _padded_conv,
    **{name: _std_conv for name in ("StdConv2d", "ScaledStdConv2d", "StdConv2dSame", "ScaledStdConv2dSame")},
    "LearnableAffineBlock": _affine,
}


#: modules refused whole, with the reason (their inner ops would only list their tensors): timm's
#: weight-standardised convs (NF-ResNet, NFNet: ScaledStdConv2d; BiT: StdConv2d) that std_conv2d
#: does not read (another padding mode, settings of another kind)
REFUSED_MODULES: dict[str, str] = {
    name: ("its weight is standardised in forward (F.batch_norm over self.weight per output channel"
           f"{', times gain·γ/√fan-in' if 'Scaled' in name else ''}); `std_conv2d` reads such a conv only with "
           "zero padding, one number as eps and, when scaled, one as its gain's scale: this one has other settings")
    for name in ("ScaledStdConv2d", "ScaledStdConv2dSame", "StdConv2d", "StdConv2dSame")
}


def refused(m: Any) -> str | None:
    """Why module `m` is refused whole, when its class is one of REFUSED_MODULES (a conv with its
    own forward) and no layer type reads it."""
    why = REFUSED_MODULES.get(type(m).__name__)
    if why is None:
        return None
    nn = kit().nn
    return why if (isinstance(m, nn.Conv2d) and type(m).forward is not nn.Conv2d.forward
                   and composite(m) is None) else None


def composite(m: Any) -> list[tuple[str, Any]] | None:
    """The layers module `m` stands for when its class is one of COMPOSITES (a leaf of the trace)."""
    read = COMPOSITES.get(type(m).__name__)
    return read(m, kit()) if read is not None else None


# ---- functional ops: the layer classes' forms (layers.routes) -----------------------------------
_T = Traced
_Unsupported = Unsupported


def _functions(t: Kit) -> dict[Any, TorchForm]:
    """Traced function (or method name) → the TorchForm a layer class states for it."""
    table: dict[Any, TorchForm] = {}
    for form in torch_forms(REGISTRY.values()):
        for spelled in form.names:
            key = _resolve(spelled, t)
            if key is not None and _hashable(key):
                table.setdefault(key, form)
    return table


def _resolve(spelled: str, t: Kit) -> Any:
    """'F.relu' → torch.nn.functional.relu, 'torch.cat', 'operator.add', 'Tensor.flatten' → 'flatten'
    (how fx records a method call); None where this torch has no such function."""
    where, _, name = spelled.partition(".")
    if where == "Tensor":
        return name
    space = {"F": t.F, "torch": t.torch, "operator": operator}.get(where)
    if space is None:
        raise ValueError(f"a TorchForm name must start with F., torch., operator. or Tensor.: {spelled!r}")
    return getattr(space, name, None)


class _TooMany(Exception):
    """Tracing reached MAX_TRACED_OPS (args: the module path it was in)."""


class _After(Exception):
    """An op that reads the result of a refused one (not listed again)."""


# ---- the trace ---------------------------------------------------------------------------------
class _Clock:
    """Adds the seconds spent in each stage into `stages` (when given): `clock("name")` ends the
    stage running and starts that one; `clock(None)` ends it."""

    def __init__(self, stages: dict[str, float] | None):
        self.stages, self.stage, self.since = stages, "", 0.0

    def __call__(self, stage: str | None) -> None:
        if self.stages is None:
            return
        now = time.perf_counter()
        if self.stage:
            self.stages[self.stage] = self.stages.get(self.stage, 0.0) + now - self.since
        self.stage, self.since = stage or "", now


def trace(model: Any, input_shape: tuple[int, ...], what: str = "the model", *, stages: dict[str, float] | None = None
          ) -> tuple[list[Found], list[str], list[str], dict[str, tuple[str, int | None]]]:
    """The model's layers, in the order its forward pass makes them, the names of its outputs,
    notes (modules never called, renamed keys) and the state_dict keys the spec holds under
    another name (a layer scale's tensor → the layer's weight). Raises a CnnError listing every
    op that has no layer type. `stages`, when given, adds up the seconds of each stage ("fx
    trace", "fake pass", "read")."""
    t = kit()
    clock = _Clock(stages)
    clock("fx trace")
    fx = t.torch.fx
    # read before tracing: while fx traces, reading a parameter (a conv's bias) makes a graph node
    read_whole = {id(m) for m in model.modules() if composite(m) is not None or refused(m) or _fourier(m)}

    class Tracer(fx.Tracer):  # type: ignore[name-defined]
        def is_leaf_module(self, m: Any, qualname: str) -> bool:
            return (layer_class(m) is not None or id(m) in read_whole
                    or super().is_leaf_module(m, qualname))

        def create_node(self, *args: Any, **kwargs: Any) -> Any:
            if len(self.graph.nodes) >= MAX_TRACED_OPS:  # stop while tracing: no op past the limit is made
                path = next(reversed(self.module_stack), "") if self.module_stack else ""
                raise _TooMany(path)
            return super().create_node(*args, **kwargs)

    model = model.eval()
    try:
        try:
            graph = Tracer().trace(model)
        except fx.proxy.TraceError as exc:  # control flow on sizes (`if H % p:`): traced again at this input's sizes
            graph = _concrete_trace(model, input_shape, Tracer, exc)
    except _TooMany as exc:
        where = f"module {visible(exc.args[0])}" if exc.args[0] else "the top level"
        raise CnnError.single(f"import: {what} makes more than {MAX_TRACED_OPS:,} operations in one forward pass "
                              f"(the limit was reached in {where}); torch.fx unrolls Python loops, and cnncalc "
                              "imports at most that many") from None
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - fx's failures (control flow on values, …): say so plainly
        if isinstance(exc, SystemExit):
            raise CnnError.single(f"import: {what} raised SystemExit({exc.code!r}) (sys.exit) while its forward pass was traced "
                                  "(import runs forward once, on symbolic tensors)") from None
        raise CnnError.single(f"import: torch.fx cannot trace {what}: {_one_line(exc)} (import needs a forward "
                              "pass without Python control flow on tensor values)") from None
    gm = fx.GraphModule(model, graph)
    clock("fake pass")
    values: dict[Any, Any] = {}
    failed: list[Any] = []  # the node whose op raised

    class Run(fx.Interpreter):  # type: ignore[name-defined]
        def run_node(self, n: Any) -> Any:
            try:
                v = super().run_node(n)
            except (Exception, SystemExit):
                failed.append(n)
                raise
            if isinstance(v, t.torch.Tensor):
                n.meta["cnncalc_shape"] = tuple(v.shape)
            elif isinstance(v, (tuple, list)) and v and all(isinstance(x, t.torch.Tensor) for x in v):
                n.meta["cnncalc_pieces"] = [tuple(x.shape) for x in v]
            else:
                values[n] = v
            return v

    try:
        with t.torch.no_grad(), _fake(t):  # shapes without data: any input size, no memory, no compute
            Run(gm).run(t.torch.empty(2, *input_shape, dtype=_dtype(model, t)))  # batch 2: told apart from sizes
    except (Exception, SystemExit) as exc:  # noqa: BLE001
        frozen = "immutable_list" in str(exc) or "immutable_dict" in str(exc)  # fx froze an argument it passed
        raise CnnError.single(f"import: {what} fails on a {'×'.join(map(str, input_shape))} input"
                              f"{_where(failed[0]) if failed else ''}: {_one_line(exc)}"
                              + (" (torch.fx passes the model's code a read-only list, which that code changes: "
                                 "the model cannot be traced as written)" if frozen else "")) from None
    clock("read")
    try:
        return _Reader(gm, values, t, model).read()
    finally:
        clock(None)


def _concrete_trace(model: Any, input_shape: tuple[int, ...], tracer: type, first: BaseException) -> Any:
    """The graph of a forward pass whose Python code branches on sizes (`B, C, H, W = x.shape`, then
    `if new_h != H:`: timm's MobileViT), traced with every size a number: each op is also run on fake
    tensors (shapes, no data) as it is recorded, so `x.shape` and `x.size()` are this input's (batch 2,
    as the reader runs it) and the branches taken are this input size's — the spec is written for one
    input size. Module paths stay as fx keeps them. Raises `first` (the symbolic trace's error) where
    this trace fails too."""
    import inspect

    from torch._subclasses.fake_tensor import FakeTensorMode

    t = kit()
    fx = t.torch.fx
    mode = FakeTensorMode(allow_non_fake_inputs=True)  # the model's own tensors are read as they are
    with mode:
        x = t.torch.empty(2, *input_shape, dtype=_dtype(model, t))

    class Sized(fx.Proxy):  # type: ignore[name-defined]
        """A proxy whose value on the fake forward pass is known: its sizes are numbers."""

        value: Any = None

        @property
        def shape(self) -> Any:
            if isinstance(self.value, t.torch.Tensor):
                return self.value.shape
            return self.tracer.create_proxy("call_function", getattr, (self, "shape"), {})

        def size(self, dim: Any = None) -> Any:
            if isinstance(self.value, t.torch.Tensor):
                return self.value.size() if dim is None else self.value.size(dim)
            return self.tracer.create_proxy("call_method", "size", (self,) if dim is None else (self, dim), {})

        def dim(self) -> Any:
            if isinstance(self.value, t.torch.Tensor):
                return self.value.dim()
            return self.tracer.create_proxy("call_method", "dim", (self,), {})

    class Concrete(tracer):
        computing = False  # running an op on fake tensors: modules are called, attributes read, as they are

        def proxy(self, node: Any) -> Any:
            return Sized(node, self)

        def getattr(self, attr: str, attr_val: Any, cache: dict[str, Any]) -> Any:
            return attr_val if self.computing else super().getattr(attr, attr_val, cache)

        def call_module(self, m: Any, forward: Any, args: Any, kwargs: Any) -> Any:
            if self.computing:
                return forward(*args, **kwargs)
            return super().call_module(m, forward, args, kwargs)

        def create_proxy(self, kind: str, target: Any, args: Any, kwargs: Any, *rest: Any, **kw: Any) -> Any:
            rv = super().create_proxy(kind, target, args, kwargs, *rest, **kw)
            if self.computing or not isinstance(rv, Sized):
                return rv
            if kind == "placeholder":
                rv.value = x if not any(isinstance(v.value, t.torch.Tensor) for v in self.placed) else None
                self.placed.append(rv)
                return rv

            def value(v: Any) -> Any:
                if isinstance(v, fx.Proxy):
                    if getattr(v, "value", None) is None:
                        raise LookupError
                    return v.value
                return v
            self.computing = True
            try:
                a, k = fx.node.map_aggregate((args, kwargs), value)
                with mode:
                    if kind == "call_function":
                        rv.value = target(*a, **k)
                    elif kind == "call_method":
                        rv.value = getattr(a[0], target)(*a[1:], **k)
                    elif kind == "call_module":
                        rv.value = self.root.get_submodule(target).forward(*a, **k)
                    elif kind == "get_attr":
                        rv.value = functools.reduce(getattr, str(target).split("."), self.root)
            except Exception:  # noqa: BLE001 - no value: its sizes stay symbolic
                rv.value = None
            finally:
                self.computing = False
            return rv

    try:
        inspect.signature(model.forward)
        tr = Concrete()
        tr.placed = []
        return tr.trace(model)
    except _TooMany:
        raise
    except Exception:  # noqa: BLE001 - the symbolic trace's error says what cannot be traced
        raise first from None


def _where(n: Any) -> str:
    """' at MODULE.PATH (Class) reading 2×64×56×56, 2×32×56×56': the op that broke and its inputs' shapes."""
    if n.op == "call_module":
        what = f"{n.target}"
    else:
        what = f"{getattr(n.target, '__name__', n.target)} (graph node {n.name})"
    shapes = [a.meta.get("cnncalc_shape") for a in n.all_input_nodes]
    reading = ", ".join("×".join(map(str, s)) for s in shapes if s)
    return f" at {visible(what)}" + (f" reading {reading} (batch 2)" if reading else "")


class _Reader:
    def __init__(self, gm: Any, values: dict[Any, Any], t: Kit, model: Any = None):
        self.gm, self.values, self.t = gm, values, t
        self.model = model if model is not None else gm  # the original: its classes (fx copies containers)
        self.funcs = _functions(t)
        self.names: dict[Any, str] = {}       # tensor node → layer name
        self.taken: set[str] = {"input"}
        self.calls: dict[str, str] = {}       # module path → its first call's layer name
        self.found: list[Found] = []
        self.problems: list[tuple[str, Any]] = []  # (cause, node)
        self.failed: set[Any] = set()
        self.outputs: list[str] = []
        self.output_keys: list[str] = []  # a dict output's keys, in order
        self.scope_of: dict[str, tuple[tuple[str, str], ...]] = {}  # layer → its scopes
        self.scales: dict[Any, tuple[Any, Any]] = {}  # a mul read as layer_scale → (its get_attr, the scaled tensor)
        self.scales_axis: dict[Any, int | None] = {}  # … and the axis it scales: 1, the last (channels-last), None: all
        self.absorbed: set[Any] = set()  # the reshapes/views of a layer scale's tensor (no layers)
        self.scaled: list[tuple[Found, str, int | None]] = []  # a layer scale, its tensor's key, the axis it scales
        self.biases: dict[Any, tuple[dict[str, Any], Any, list[tuple[str, str]]]] = {}  # an add read as attention_bias
        self.bias_keys: dict[str, tuple[str, int | None]] = {}  # its table's (and index's) key → the layer's
        self.pooled: dict[Any, str] = {}   # a max pool's (values, indices) tuple → its layer's name
        self.indices: dict[Any, str] = {}  # the indices of a max pool → its layer's name (what a max_unpool reads)
        self.flat = all(getattr(c, "__name__", "") in CONTAINERS for n in gm.graph.nodes  # no class of its own
                        for p, c in (n.meta.get("nn_module_stack") or {}).values() if p != n.target)

    def read(self) -> tuple[list[Found], list[str], list[str], dict[str, tuple[str, int | None]]]:
        for n in self.gm.graph.nodes:
            if n.op == "get_attr" and "cnncalc_shape" in n.meta:
                self.attention_bias(n)
            elif n.op == "call_module" and _fourier(self.gm.get_submodule(n.target)):
                self.fourier(n)
            elif n.op == "call_method" and n.target == "unbind" and isinstance(n.args[0], self.t.torch.fx.Node) \
                    and n.args[0].op == "call_method" and n.args[0].target == "permute" and len(n.args[0].users) == 1:
                self.absorbed.add(n.args[0])  # read with the unbind (`unbound`), or refused there
        for n in self.gm.graph.nodes:
            try:
                self.node(n)
            except _Unsupported as exc:
                self.failed.add(n)
                self.problems.append((str(exc), n))
            except _After:
                self.failed.add(n)
        if self.problems:
            shown = _grouped([(cause, self.where(n), self.hint(n)) for cause, n in self.problems])
            shown = shown[:MAX_LISTED] + ([f"… and {len(shown) - MAX_LISTED} more causes"] if len(shown) > MAX_LISTED
                                          else [])
            raise CnnError.single("import: the model cannot be written as a spec; these operations have no cnncalc "
                                  "layer type (or no name a spec can hold):\n  " + "\n  ".join(map(visible, shown))
                                  + f"\n{HAND}")
        self.found, renamed = _channel_shuffles(self.found, self.fresh)
        self.outputs = [renamed.get(o, o) for o in self.outputs]
        self.name_outputs()
        called = set(self.calls) | {key.rpartition(".")[0] for _, key, _ in self.scaled}  # a scale's module: used
        called |= {key.rpartition(".")[0] for key in self.bias_keys}
        held = {q for c in called for q in _dotted(c)}  # a module called, or holding one called
        unused = [p for p, m in self.model.named_modules() if p and p not in held
                  and not any(q in called for q in _dotted(p)[:-1])  # inside one called
                  and any(True for _ in m.parameters(recurse=False))]
        notes = [f"left out: {p} (its parameters are never used by forward)" for p in unused]
        keys = {key: (f.name + (".weight" if axis is not None else ".scale"), axis)  # (names as finally written)
                for f, key, axis in self.scaled}
        keys.update(self.bias_keys)
        if self.bias_keys:
            said_b = [f"{old} → {new}" for old, (new, _) in self.bias_keys.items()]
            notes.append(f"{len(self.biases)} attention-bias table{'s' if len(self.biases) > 1 else ''} read as "
                         "`attention_bias` layers hold the model's tensors under the layer's name (load a checkpoint "
                         "with these keys renamed): " + "; ".join(said_b[:3]) + ("; …" if len(said_b) > 3 else ""))
        said = [f"{key} {_dims(tuple(self.model.get_parameter(key).shape))} → {keys[key][0]} "
                f"{_dims((f.shape[axis],) + (1,) * (len(f.shape) - 1 - axis) if axis is not None else (1,))}"
                for f, key, axis in self.scaled]
        if said:
            kinds = " and ".join(f"`{k}`" for k in sorted({"layer_scale" if a is not None else "scale"
                                                          for _, _, a in self.scaled}))
            notes.append(f"{len(said)} learnable scale{'s' if len(said) > 1 else ''} read as {kinds} layers hold "
                         "the model's tensor as the layer's weight (load a checkpoint with these keys renamed, and "
                         "reshaped): " + "; ".join(said[:3]) + ("; …" if len(said) > 3 else ""))
        return self.found, self.outputs, notes, keys

    def name_outputs(self) -> None:
        """A dict output's entries named by their keys (`out`, `aux`) where the layer holding the
        entry has no state_dict key to keep (a functional op: interpolate, add, …)."""
        modules = set(self.calls.values())
        for i, (old, key) in enumerate(zip(self.outputs, self.output_keys)):
            at = next((f for f in self.found if f.name == old), None)
            if (at is None or at.scopes or old in modules or not NAME.match(key) or key in self.taken
                    or self.outputs.count(old) > 1):
                continue
            self.taken.add(key)
            for f in self.found:
                f.name = key if f.name == old else f.name
                f.inputs = [key if x == old else x for x in f.inputs]
                f.share = key if f.share == old else f.share
            self.outputs[i] = key

    def where(self, n: Any) -> str:
        """'stages.0.blocks.0 (ConvNeXtBlock, get_attr stages_0_blocks_0_gamma)': the module it runs in."""
        if n.op == "get_attr" and "." in str(n.target):
            path = str(n.target).rsplit(".", 1)[0]
            return f"{path} ({type(self.model.get_submodule(path)).__name__}, {n.op} {n.name})"
        scopes = self.scopes(n)
        if not scopes:
            return f"the top level ({n.op} {n.name})"
        return f"{scopes[-1][0]} ({scopes[-1][1]}, {n.op} {n.name})"

    def hint(self, n: Any) -> str:
        """The layer type that would hold what `n` does, where one exists (or why none does)."""
        if n.op == "call_module":
            return refused(self.gm.get_submodule(n.target)) or ""
        if n.op != "get_attr":
            return ""
        readers, seen = list(n.users), set()
        while readers:  # through reshapes/views of the tensor to what reads it
            u = readers.pop()
            if u in seen:
                continue
            seen.add(u)
            if u.op == "call_method" and u.target in ("reshape", "view", "unsqueeze", "squeeze"):
                readers += list(u.users)
            elif u.target is operator.getitem and u.args[0] is n and any(
                    v.target is getattr(self.t.F, "scaled_dot_product_attention", None) for v in _readers(u)):
                return ("an `attention_bias` layer holds a bias table read at relative positions, but here it is "
                        "the attn_mask of F.scaled_dot_product_attention, whose FLOPs torch's FlopCounterMode does "
                        "not count on the CPU (no exact reference to prove a spec against); timm models run the "
                        "attention as written out with TIMM_FUSED_ATTN=0")
            elif u.target is operator.getitem and u.args[0] is n:
                return ("an `attention_bias` layer holds a bias table read at the relative positions of queries and "
                        "keys on a grid (LeViT's and EfficientFormer's `table[:, index]`, Swin's `table[index]`) and "
                        "added to attention logits; import reads one whose index is such a grid's, which this is not")
            elif u.target in (operator.mul, self.t.torch.mul, "mul"):
                return ("a `layer_scale` layer holds a learnable per-channel scale; import reads one that is a "
                        "parameter multiplying a tensor along its channels (γ of shape (C, 1, …) times (N, C, …), "
                        "or (C,) times a channels-last tensor), which this is not")
        return ""

    def owner(self, n: Any) -> str:
        scopes = self.scopes(n)
        return scopes[-1][0] if scopes else ""

    def scopes(self, n: Any) -> tuple[tuple[str, str], ...]:
        """The module instances `n` ran in, outermost first (its own module left out). In a model
        whose forward calls only leaf modules held in containers (nn.ModuleDict, as cnncalc's
        exported files are), the containers on a module's path stand in, and a functional op
        takes those of its first input."""
        stack = n.meta.get("nn_module_stack") or {}
        out = tuple((p, c.__name__ if isinstance(c, type) else str(c).rsplit(".", 1)[-1])
                    for p, c in stack.values() if p and not (n.op == "call_module" and p == n.target))
        if out or not self.flat:
            return out
        if n.op == "call_module":
            return self.path_scopes(n.target)
        first = next((a for a in _nodes(n.args) if self.names.get(a, "input") != "input"), None)
        return self.scope_of.get(self.names[first], ()) if first is not None else ()

    def path_scopes(self, target: str) -> tuple[tuple[str, str], ...]:
        parts = target.split(".")
        return tuple((p, type(self.gm.get_submodule(p)).__name__) for p in (".".join(parts[:i])
                                                                            for i in range(1, len(parts))))

    def fresh(self, base: str) -> str:
        if not NAME.match(base) or len(base) > 190:
            raise _Unsupported(f"the module name {base[:80]!r}, which a spec name cannot hold (letters, digits, _ . -; "
                               "the state_dict key must stay as it is)")
        name, k = base, 1
        while name in self.taken:
            name, k = f"{base}_{k}", k + 1
        self.taken.add(name)
        return name

    def arg(self, a: Any) -> Any:
        fx = self.t.torch.fx
        if isinstance(a, fx.Node):
            if a in self.failed:
                raise _After()
            if a in self.indices:
                return _T(a)  # a max unpool's second input (indices_read let no other op here)
            if a in self.names or "cnncalc_shape" in a.meta:
                if a not in self.names:
                    raise _Unsupported(f"the tensor {a.name} (made by an operation above)")
                return _T(a)
            if a in self.values:
                return self.values[a]
            raise _Unsupported(f"the value of {a.name}")
        if isinstance(a, (list, tuple)):
            return type(a)(self.arg(x) for x in a)
        if isinstance(a, dict):
            return {k: self.arg(v) for k, v in a.items()}
        return a

    def node(self, n: Any) -> None:
        """One graph node; a max pool returning indices is read as its values (the layer, with
        return_indices: true), its indices only as the second input of a max unpool."""
        self.indices_read(n)
        pieces = n.meta.get("cnncalc_pieces")
        if pieces and self.indexed_pool(n):
            n.meta["cnncalc_shape"] = pieces[0]
            del n.meta["cnncalc_pieces"]
            self.one_node(n)
            self.pooled[n] = self.names.pop(n)
            return
        if n.op == "call_function" and n.target is operator.getitem and n.args[0] in self.pooled:
            i = n.args[1]
            if i not in (0, 1, -1, -2):
                raise _Unsupported(f"indexing the (values, indices) of max pool {self.pooled[n.args[0]]} with {i!r}")
            (self.names if i in (0, -2) else self.indices)[n] = self.pooled[n.args[0]]
            return
        self.one_node(n)

    def indexed_pool(self, n: Any) -> bool:
        """Whether `n` is a max pool that returns (values, indices): nn.MaxPoolNd(return_indices=True),
        F.max_poolNd(…, return_indices=True) (traced as F.max_poolNd_with_indices)."""
        if n.op == "call_module":
            m = self.gm.get_submodule(n.target)
            cls = layer_class(m)
            return cls is not None and issubclass(cls, MaxPoolNd) and bool(getattr(m, "return_indices", False))
        return n.op == "call_function" and any(n.target is getattr(self.t.F, f"max_pool{d}d_with_indices", None)
                                               for d in (1, 2, 3))

    def is_unpool(self, n: Any) -> bool:
        if n.op == "call_module":
            cls = layer_class(self.gm.get_submodule(n.target))
            return cls is not None and issubclass(cls, MaxUnpoolNd)
        return n.op == "call_function" and any(n.target is getattr(self.t.F, f"max_unpool{d}d", None)
                                               for d in (1, 2, 3))

    def indices_read(self, n: Any) -> None:
        """A max pool's indices are read only as the second input of a max unpool (torch's
        MaxUnpool), which in turn reads indices only from a max pool of this model."""
        readers = [a for a in n.all_input_nodes if a in self.indices]
        if self.is_unpool(n):
            second = n.args[1] if len(n.args) > 1 else n.kwargs.get("indices")
            readers = [a for a in readers if a is not second]
            if second in self.failed:
                raise _After()
            elif second not in self.indices:
                raise _Unsupported(f"{_op_name(n) if n.op != 'call_module' else n.target} reading indices that no "
                                   "max pool of the model returned (a max_unpool reads those of a max pool with "
                                   "return_indices: true)")
        if readers:
            what = "the model's output" if n.op == "output" else (
                f"module {n.target}" if n.op == "call_module" else _op_name(n))
            raise _Unsupported(f"{what} reading the indices of max pool {self.indices[readers[0]]} (only a max unpool "
                               "reads them, as its second input)")

    def one_node(self, n: Any) -> None:
        if n.op == "placeholder":
            if n in self.values:
                return  # an argument left at its default (mask=None): a constant
            if "input" in self.names.values():
                raise _Unsupported("a second input (a spec has one input)")
            self.names[n] = "input"
            return
        if n.op == "output":
            value = n.args[0]
            keys = [str(k) for k in value] if isinstance(value, dict) else []
            outs = list(value.values()) if isinstance(value, dict) else value if isinstance(value, (tuple, list)) \
                else [value]
            if any(o in self.failed for o in outs if _hashable(o)):
                raise _After()
            if not all(isinstance(o, self.t.torch.fx.Node) and o in self.names for o in outs):
                raise _Unsupported("an output that is not a tensor, or a tuple, list or dict of tensors")
            self.outputs = [self.names[o] for o in outs]
            self.output_keys = keys
            return
        if n in self.biases:
            made, other, renamed = self.biases[n]
            if made["type"] == "fourier_pos_embed":  # the module's path: its state_dict keys stay
                self.calls[renamed[0][0]] = name = self.fresh(renamed[0][0])
                self.add(n, name, made, [self.arg(other)])
                return
            self.add(n, self.fresh(renamed[0][0]), made, [self.arg(other)])
            for old, suffix in renamed:
                self.bias_keys[old] = (f"{self.names[n]}.{suffix}", None)
            return
        if n in self.absorbed:
            return  # a reshape of a layer scale's tensor, or a step of an attention bias's gather
        if n.op == "get_attr":
            if "cnncalc_shape" in n.meta and not self.layer_scale(n):
                if str(n.target).rpartition(".")[2].startswith("_tensor_constant"):  # fx's name, not the model's
                    raise _Unsupported("a constant tensor made in forward (e.g. torch.tensor(...), a table "
                                       "built on each call) used in the computation")
                raise _Unsupported(f"the tensor attribute self.{n.target} used directly in forward")
            return
        if n in self.scales:
            attr, other = self.scales[n]
            x = self.arg(other)
            gamma = self.model.get_parameter(str(attr.target))
            entry: dict[str, Any] = {"type": "layer_scale"}
            first = gamma.detach().reshape(-1)[:1]
            if self.scales_axis[n] is None:  # one number (NFNet's skipinit_gain): a learnable scale
                entry = {"type": "scale", "learnable": True}
                if float(first) != 1.0:
                    entry["factor"] = _float32(float(first))
            elif gamma.numel() and bool((gamma.detach() == first).all()) and float(first) != 1e-6:
                entry["init_value"] = _float32(float(first))  # a fresh model's init_value, as written
            self.add(n, self.fresh(str(attr.target)), entry, [x])
            self.scaled.append((self.found[-1], str(attr.target), self.scales_axis[n]))
            self.in_place(n, x)
            return
        if n.op == "call_module" and _fourier(self.gm.get_submodule(n.target)):
            raise _Unsupported(f"{type(self.gm.get_submodule(n.target)).__name__} (module {n.target}) other than "
                               "added to the tokens of the map it encodes, as EdgeNeXt adds it (x + "
                               "pos.reshape(B, -1, C).permute(0, 2, 1)): `fourier_pos_embed`")
        if n.op == "call_method" and n.target == "unbind" and self.unbound(n):
            return
        if n.op == "call_module" and refused(m := self.gm.get_submodule(n.target)):
            raise _Unsupported(f"{type(m).__name__} (module {n.target}), a weight-standardised conv")
        if n.op == "call_module" and (parts := composite(self.gm.get_submodule(n.target))) is not None:
            self.composite(n, parts)
            return
        if n.op == "call_module" and layer_class(m := self.gm.get_submodule(n.target)) is None:
            raise _Unsupported(f"{type(m).__module__}.{type(m).__name__} (module {n.target})")
        if n.target in ("flatten", self.t.torch.flatten) and self.token_norm(n):
            return
        if "cnncalc_pieces" in n.meta:  # chunk / split: its pieces become narrow layers
            self.pieces(n)
            return
        if "cnncalc_shape" not in n.meta:
            return  # a size or other value: used as a constant by the ops that read it
        if n.op == "call_function" and n.target is operator.getitem and n.args[0] in self.names:
            self.index(n)
            return
        if n.op == "call_function" and n.target is operator.getitem:
            if n.args[0] in self.failed:
                raise _After()
            pieces = n.args[0].meta.get("cnncalc_pieces") or ()
            i = n.args[1]
            if not isinstance(i, int) or (n.args[0], i % max(len(pieces), 1)) not in self.names:
                raise _Unsupported(f"indexing the result of {_op_name(n.args[0])} with {i!r}")
            self.names[n] = self.names[n.args[0], i % len(pieces)]  # spx[-1]: the last piece
            return
        if n.op == "call_method" and n.target == "contiguous":
            self.names[n] = self.names[self.arg(n.args[0]).node]  # no data moved for the numbers; a view after it reshapes
            return
        if n.op == "call_method" and n.target in ("expand_as", "expand") and self.broadcast_only(n):
            self.names[n] = self.names[self.arg(n.args[0]).node]  # a view the merge's own broadcasting makes
            return
        if n.op == "call_module":
            self.module(n)
        elif n.target in ("sum", self.t.torch.sum) and self.summed(n):
            return
        elif n.target in ("mean", self.t.torch.mean) and self.token_mean(n):
            return
        elif n.target in (operator.truediv, self.t.torch.div, self.t.torch.true_divide, "div", "div_",
                          "true_divide") and self.by_divisor(n):
            return
        elif n.target is self.t.torch.stack:
            self.stacked(n)
        elif n.target in (operator.mul, self.t.torch.mul, "mul", "mul_") and self.by_number(n):
            return
        else:
            key = n.target if n.op == "call_function" else str(n.target)
            args, kwargs = self.arg(n.args), self.arg(n.kwargs)  # first: an op after a refused one is not listed
            form = self.funcs.get(key) if _hashable(key) else None
            if form is None:
                raise _Unsupported(f"{_op_name(n)}")
            try:
                made, inputs = form.read(TorchCall(self.t, n.meta["cnncalc_shape"], n.target), *args, **kwargs)
            except TypeError as exc:
                raise _Unsupported(f"{_op_name(n)} with these arguments ({exc})") from None
            if made is None:
                self.names[n] = self.names[inputs[0].node]
                return
            owner = self.owner(n)
            base = form.short or (made["type"] if isinstance(made, dict) else _op_name(n).rsplit(".", 1)[-1])
            self.add(n, self.fresh(f"{owner}.{base}" if owner else base), made, inputs)

    def by_number(self, n: Any) -> bool:
        """A tensor times a number other than 1 (`x * self.beta`, NF-ResNet; NFNet's activation gamma
        `act(x).mul_(gamma)`): a `scale` layer; a tensor times a tensor in place (`mul_`): a mul. False
        where the merge's own reader decides (two tensors out of place, or the number 1)."""
        args = [self.arg(a) for a in n.args]
        if n.kwargs or len(args) != 2:
            return False
        tensors = [a for a in args if isinstance(a, _T)]
        numbers = [a for a in args if type(a) in (int, float)]
        owner = self.owner(n)
        if len(tensors) == 2 and n.target == "mul_":
            self.add(n, self.fresh(f"{owner}.mul" if owner else "mul"), {"type": "mul"}, tensors)
            self.in_place(n, args[0])
            return True
        if len(tensors) != 1 or len(numbers) != 1 or (numbers[0] == 1 and n.target != "mul_"):
            return False
        if numbers[0] == 1:
            self.names[n] = self.names[tensors[0].node]
            return True
        self.add(n, self.fresh(f"{owner}.scale" if owner else "scale"), {"type": "scale", "factor": float(numbers[0])},
                 tensors)
        self.in_place(n, args[0])
        return True

    def token_norm(self, n: Any) -> bool:
        """`bn(x.flatten(0, 1)).reshape_as(x)` of tokens x (N, L, C), an nn.BatchNorm1d over the N·L
        rows (LeViT's LinearNorm): the same statistics per channel as the batch norm of the tokens
        moved to (N, C, L), so written as a `transpose`, the `batchnorm1d` (under the module's
        name: its state_dict keys stay) and a `transpose` back. False for any other flatten."""
        x = self.arg(n.args[0])
        args, kwargs = [self.arg(a) for a in n.args[1:]], self.arg(n.kwargs)
        start = kwargs.pop("start_dim", args.pop(0) if args else 0)
        end = kwargs.pop("end_dim", args.pop(0) if args else -1)
        if not isinstance(x, _T) or args or kwargs or len(x.shape) != 3 or (start, end % 3) != (0, 1) \
                or len(n.users) != 1:
            return False
        (bn,) = n.users
        if bn.op != "call_module" or bn.args != (n,) or bn.kwargs or len(bn.users) != 1 or bn.target in self.calls:
            return False
        m = self.gm.get_submodule(bn.target)
        cls = layer_class(m)
        if cls is None or REGISTRY.get("batchnorm1d") is not cls or not isinstance(m, self.t.nn.BatchNorm1d):
            return False
        (back,) = bn.users
        if not (back.op == "call_method" and back.args[0] is bn and not back.kwargs and
                ((back.target == "reshape_as" and back.args[1:] == (x.node,)) or
                 (back.target in ("reshape", "view") and back.meta.get("cnncalc_shape") == x.shape))):
            return False
        shape = x.shape
        moved = (shape[0], shape[2], shape[1])
        owner = self.owner(bn) or bn.target
        first = self.fresh(f"{bn.target}_in")
        self.found.append(Found(first, {"type": "transpose", "dim0": 1, "dim1": 2}, [self.names[x.node]],
                                self.scopes(bn), moved))
        self.scope_of[first] = self.found[-1].scopes
        name = self.fresh(bn.target)
        self.calls[bn.target] = name
        self.found.append(Found(name, cls.from_torch(m), [first], self.scopes(bn), moved))
        self.scope_of[name] = self.found[-1].scopes
        last = self.fresh(f"{owner}.{bn.target.rpartition('.')[2]}_out")
        self.found.append(Found(last, {"type": "transpose", "dim0": 1, "dim1": 2}, [name], self.scopes(bn), shape))
        self.scope_of[last] = self.found[-1].scopes
        self.names[n], self.names[bn], self.names[back] = first, name, last
        self.absorbed.update((bn, back))
        return True

    def token_mean(self, n: Any) -> bool:
        """`x.mean(dim=1)` of tokens (N, L, C) (EfficientFormer's head): the mean over the L positions
        of each channel, written as a `transpose` to (N, C, L) (a view) and a `global_avgpool`
        without keepdims. False for any other mean (the mean's own reader decides)."""
        x = self.arg(n.args[0])
        args, kwargs = [self.arg(a) for a in n.args[1:]], self.arg(n.kwargs)
        dim = kwargs.pop("dim", args.pop(0) if args else None)
        keep = kwargs.pop("keepdim", args.pop(0) if args else False)
        if not isinstance(x, _T) or args or kwargs or keep or len(x.shape) != 3:
            return False
        if (dim if isinstance(dim, int) else tuple(dim) if isinstance(dim, (list, tuple)) and len(dim) == 1 else None) \
                not in (1, -2, (1,), (-2,)):
            return False
        owner = self.owner(n)
        base = f"{owner}.mean" if owner else "mean"
        name = self.fresh(f"{base}_in")
        shape = x.shape
        self.found.append(Found(name, {"type": "transpose", "dim0": 1, "dim1": 2}, [self.names[x.node]],
                                self.scopes(n), (shape[0], shape[2], shape[1])))
        self.scope_of[name] = self.found[-1].scopes
        out = self.fresh(base)
        self.found.append(Found(out, {"type": "global_avgpool", "keepdims": False}, [name], self.scopes(n),
                                n.meta["cnncalc_shape"]))
        self.scope_of[out] = self.found[-1].scopes
        self.names[n] = out
        return True

    def by_divisor(self, n: Any) -> bool:
        """A tensor divided by a number other than 0 (`(x + x_dist) / 2`, EfficientFormer's and
        LeViT's heads): a `scale` by its reciprocal (one product per element, as the division is
        one). False for anything else (a rounding mode, a tensor divisor)."""
        args = [self.arg(a) for a in n.args]
        if n.kwargs or len(args) != 2 or not isinstance(args[0], _T) or type(args[1]) not in (int, float) \
                or args[1] == 0:
            return False
        owner = self.owner(n)
        if args[1] == 1:
            self.names[n] = self.names[args[0].node]
        else:
            self.add(n, self.fresh(f"{owner}.scale" if owner else "scale"), {"type": "scale", "factor": 1 / args[1]},
                     [args[0]])
        self.in_place(n, args[0])
        return True

    def in_place(self, n: Any, changed: Any) -> None:
        """After an in-place method (`out.mul_(g)`, its result often unused), the tensor it changed
        is its result for every op that reads it later (fx records no such edge)."""
        if n.op == "call_method" and str(n.target).endswith("_") and isinstance(changed, _T):
            self.names[changed.node] = self.names[n]

    def summed(self, n: Any) -> bool:
        """`x.sum(dim=1)` (`torch.sum(x, 1)`) over an axis 1 of R ≤ 64 entries — ResNeSt's and SK-Net's
        split attention, summing the radix paths: R one-entry `narrow`s of axis 1 added by one `add`
        (R − 1 additions per output element, as the sum makes) and, without keepdim, a `reshape`
        dropping the axis (a view). False for any other sum (the `sum` layer type's reader decides)."""
        x = self.arg(n.args[0])
        args = [self.arg(a) for a in n.args[1:]]
        kwargs = self.arg(n.kwargs)
        dim = kwargs.pop("dim", args.pop(0) if args else None)
        keep = kwargs.pop("keepdim", args.pop(0) if args else False)
        dims = dim if isinstance(dim, (list, tuple)) else (dim,)
        shape = tuple(x.node.meta["cnncalc_shape"])
        if (len(dims) != 1 or not isinstance(dims[0], int) or isinstance(dims[0], bool) or args or kwargs
                or not isinstance(keep, bool) or len(shape) < 3 or dims[0] % len(shape) != 1 or shape[1] > 64):
            return False
        owner = self.owner(n)
        base = f"{owner}.sum" if owner else "sum"
        part = (shape[0], 1, *shape[2:])
        if shape[1] == 1:
            names = [self.names[x.node]]
        else:
            names = []
            for i in range(shape[1]):
                name = self.fresh(f"{base}.{i}")
                self.found.append(Found(name, {"type": "narrow", "start": i, "length": 1}, [self.names[x.node]],
                                        self.scopes(n), part))
                self.scope_of[name] = self.found[-1].scopes
                names.append(name)
            name = self.fresh(f"{base}.add")
            self.found.append(Found(name, {"type": "add"}, names, self.scopes(n), part))
            self.scope_of[name] = self.found[-1].scopes
            names = [name]
        if keep:
            self.names[n] = names[0]
            return True
        name = self.fresh(f"{base}.out")
        self.found.append(Found(name, {"type": "reshape", "shape": list(shape[2:])}, names, self.scopes(n),
                                (shape[0], *shape[2:])))
        self.scope_of[name] = self.found[-1].scopes
        self.names[n] = name
        return True

    def stacked(self, n: Any) -> None:
        """`torch.stack(tensors, dim=1)` (SK-Net's paths): each tensor `reshape`d to a new axis 1 of one
        entry (a view), then one `concat` along it (the copy the stack makes)."""
        tensors = self.arg(n.args[0])
        dim = self.arg(n.kwargs.get("dim", n.args[1] if len(n.args) > 1 else 0))
        if (not isinstance(tensors, (list, tuple)) or not tensors or not all(isinstance(x, _T) for x in tensors)
                or not isinstance(dim, int) or set(n.kwargs) - {"dim"} or len(n.args) > 2):
            raise _Unsupported(f"{_op_name(n)} of something other than tensors")
        shape = tuple(tensors[0].node.meta["cnncalc_shape"])
        if dim % (len(shape) + 1) != 1:
            raise _Unsupported(f"{_op_name(n)} along an axis other than a new axis 1")
        owner = self.owner(n)
        base = f"{owner}.stack" if owner else "stack"
        names = []
        for i, x in enumerate(tensors):
            name = self.fresh(f"{base}.{i}")
            self.found.append(Found(name, {"type": "reshape", "shape": [1, *shape[1:]]}, [self.names[x.node]],
                                    self.scopes(n), (shape[0], 1, *shape[1:])))
            self.scope_of[name] = self.found[-1].scopes
            names.append(name)
        if len(names) == 1:
            self.names[n] = names[0]
            return
        name = self.fresh(f"{base}.cat")
        self.found.append(Found(name, {"type": "concat"}, names, self.scopes(n), n.meta["cnncalc_shape"]))
        self.scope_of[name] = self.found[-1].scopes
        self.names[n] = name

    def broadcast_only(self, n: Any) -> bool:
        """Whether `y.expand_as(x)` (or `y.expand(…)`) is read only by element-wise merges (add, mul,
        sub) of two tensors whose other operand already has the expanded shape — ECA's
        `x * y.expand_as(x)`: the merge's broadcasting gives the same output, and the expand is a
        view (no data, no ops)."""
        merges = (operator.add, operator.mul, operator.sub, self.t.torch.add, self.t.torch.mul, self.t.torch.sub,
                  "add", "mul", "sub")
        out = n.meta.get("cnncalc_shape")
        if out is None or not n.users:
            return False
        for u in n.users:
            if u.target not in merges or u.kwargs or len(u.args) != 2 or u.meta.get("cnncalc_shape") != out:
                return False
            other = u.args[1] if u.args[0] is n else u.args[0]
            if other is n or not hasattr(other, "meta") or other.meta.get("cnncalc_shape") != out:
                return False
        return True

    def layer_scale(self, n: Any) -> bool:
        """Whether tensor attribute `n` is a learnable per-channel scale: a parameter (through
        reshapes or views of it alone) times an (N, C, …) tensor, broadcast along its channels —
        torchvision's CNBlock `self.layer_scale * x`, timm's ConvNeXtBlock `x.mul(self.gamma.reshape(1,
        -1, 1, 1))` and LayerScale2d. The mul is then read as a `layer_scale` layer."""
        try:
            self.model.get_parameter(str(n.target))
        except (AttributeError, TypeError):
            return False  # a buffer or a plain tensor: no learnable scale
        chain, u = [], n
        while len(u.users) == 1:
            (nxt,) = u.users
            if nxt.op == "call_method" and nxt.target in ("reshape", "view", "unsqueeze") and nxt.args[0] is u:
                chain.append(nxt)
                u = nxt
            else:
                break
        if len(u.users) != 1:
            return False
        (mul,) = u.users
        if mul.target not in (operator.mul, self.t.torch.mul, "mul", "mul_") or mul.kwargs or len(mul.args) != 2:
            return False
        other = mul.args[1] if mul.args[0] is u else mul.args[0]
        if other is u or not isinstance(other, self.t.torch.fx.Node) or "cnncalc_shape" not in other.meta:
            return False
        x, s = other.meta["cnncalc_shape"], u.meta.get("cnncalc_shape", ())
        if len(x) < 3 or len(s) > len(x) or mul.meta.get("cnncalc_shape") != x:
            return False
        full = (1,) * (len(x) - len(s)) + tuple(s)
        if prod(s) == 1 and (not s or mul.args[0] is other):  # one number, x · g (NFNet's out.mul_(skipinit_gain))
            self.scales_axis[mul] = None
        elif full == (1, x[1]) + (1,) * (len(x) - 2):
            self.scales_axis[mul] = 1  # (N, C, …): one factor per channel
        elif full == (1,) * (len(x) - 1) + (x[-1],) and len(s) == 1:
            self.scales_axis[mul] = len(x) - 1  # channels-last (N, …, C): the check sees that the layer agrees
        else:
            return False
        self.scales[mul] = (n, other)
        self.absorbed.update(chain)
        return True

    GATHER_STEPS = ("getitem", "view", "reshape", "permute", "unsqueeze", "contiguous", "expand", "flatten",
                    "transpose")

    def attention_bias(self, n: Any) -> None:
        """Whether parameter `n` is an attention-bias table: read (through indexing by a constant
        buffer, views and permutes that nothing else reads) only to be added to attention logits
        (N, heads, Q, K) — LeViT's and EfficientFormer's `attention_biases[:, attention_bias_idxs]`,
        MaxViT's RelPosBias `table[index.view(-1)].view(Q, K, -1).permute(2, 0, 1)`. The gather is
        run on the table's entry numbers and must give exactly what an `attention_bias` layer of
        one kind, grid and stride reads; then the add is that layer (recorded in self.biases)."""
        fx, torch = self.t.torch.fx, self.t.torch
        try:
            table = self.model.get_parameter(str(n.target))
        except (AttributeError, TypeError):
            return
        if table.dim() != 2:
            return
        chain, side, u = [], [], n
        while len(u.users) == 1:
            (nxt,) = u.users
            name = "getitem" if nxt.target is operator.getitem else str(nxt.target) if nxt.op == "call_method" else ""
            if name not in self.GATHER_STEPS or nxt.args[0] is not u:
                break
            for a in _nodes((nxt.args[1:], nxt.kwargs)):
                more = self._constant(a)
                if more is None:
                    return
                side += more
            chain.append(nxt)
            u = nxt
        if not chain or chain[0].target is not operator.getitem or len(u.users) != 1:
            return
        (plus,) = u.users
        if plus.target not in (operator.add, torch.add, "add") or plus.kwargs or len(plus.args) != 2:
            return
        other = plus.args[1] if plus.args[0] is u else plus.args[0]
        if other is u or not isinstance(other, fx.Node) or "cnncalc_shape" not in other.meta:
            return
        x = tuple(other.meta["cnncalc_shape"])
        if len(x) != 4 or plus.meta.get("cnncalc_shape") != x:
            return
        inside = set(chain) | set(side) | {n}
        if any(v not in inside and v is not plus for w in side for v in w.users):
            return  # the index is read elsewhere too
        env: dict[Any, Any] = {n: torch.arange(table.numel(), dtype=torch.float64).reshape(table.shape)}
        try:
            for v in self.gm.graph.nodes:
                if v in inside and v not in env:
                    args, kwargs = fx.node.map_arg((v.args, v.kwargs), lambda a: env[a])
                    if v.op == "get_attr":
                        env[v] = self.model.get_buffer(str(v.target))
                    elif v.op == "call_method":
                        env[v] = getattr(args[0], v.target)(*args[1:], **kwargs)
                    else:
                        env[v] = v.target(*args, **kwargs)
        except Exception:  # noqa: BLE001 - not a gather this reads
            return
        got = env[u]
        while got.dim() > 3 and got.shape[0] == 1:
            got = got[0]
        if tuple(got.shape) != x[1:]:
            return
        found = _bias_kind(got, tuple(table.shape))
        if found is None:
            return
        kind, grid, stride = found
        entry: dict[str, Any] = {"type": "attention_bias", "resolution": grid[0] if grid[0] == grid[1] else list(grid)}
        if kind != "abs":
            entry["kind"] = kind
        if stride != 1:
            entry["stride"] = stride
        renamed = [(str(n.target), "attention_biases" if kind == "abs" else "relative_position_bias_table")]
        index = [v for v in side if v.op == "get_attr"]
        if kind == "abs" and len(index) == 1:  # the layer's index is in its state_dict (the model's maybe not)
            renamed.append((str(index[0].target), "attention_bias_idxs"))
        elif kind == "abs":
            return
        self.biases[plus] = (entry, other, renamed)
        self.absorbed.update(inside)

    def fourier(self, n: Any) -> None:
        """timm's PositionalEncodingFourier called on (B, H, W) and added to tokens x (N, H·W, C) as
        EdgeNeXt adds it, `x + pos(…).reshape(B, -1, C).permute(0, 2, 1)`: that add is a
        `fourier_pos_embed` layer under the module's path (recorded in self.biases)."""
        m = self.gm.get_submodule(n.target)
        shape = n.meta.get("cnncalc_shape")
        if not shape or len(shape) != 4 or len(n.users) != 1:
            return
        (r,) = n.users
        if not (r.op == "call_method" and r.target in ("reshape", "view") and r.args[0] is n and len(r.users) == 1):
            return
        (p,) = r.users
        if not (p.op == "call_method" and p.target == "permute" and p.args[0] is r and len(p.users) == 1
                and not p.kwargs and list(p.args[1:]) in ([0, 2, 1], [[0, 2, 1]], [(0, 2, 1)])):
            return
        (plus,) = p.users
        if plus.target not in (operator.add, self.t.torch.add, "add") or plus.kwargs or len(plus.args) != 2:
            return
        other = plus.args[1] if plus.args[0] is p else plus.args[0]
        b, c, h, w = shape
        tokens = (b, h * w, c)
        if other is p or not isinstance(other, self.t.torch.fx.Node) or other.meta.get("cnncalc_shape") != tokens \
                or plus.meta.get("cnncalc_shape") != tokens:
            return
        entry: dict[str, Any] = {"type": "fourier_pos_embed", "resolution": h if h == w else [h, w]}
        if m.hidden_dim != 32:
            entry["hidden_dim"] = int(m.hidden_dim)
        if float(m.temperature) != 10000.0:
            entry["temperature"] = float(m.temperature)
        self.biases[plus] = (entry, other, [(str(n.target), "")])
        self.absorbed.update((n, r, p))

    def unbound(self, n: Any) -> bool:
        """`x.permute(dims).unbind(0)` (EdgeNeXt's q, k, v = qkv.permute(2, 0, 3, 4, 1).unbind(0)): the
        permute moves axis a ≠ 0 first, then takes it apart; piece i is entry i of axis a — moved to
        the channels, narrowed, moved back (views), that axis dropped (`reshape`) — with the other axes
        in the permute's order (`permute`). False for any other unbind."""
        p = n.args[0]
        dim = n.kwargs.get("dim", n.args[1] if len(n.args) > 1 else 0)
        if len(n.args) > 2 or set(n.kwargs) - {"dim"} or dim != 0 or not isinstance(p, self.t.torch.fx.Node) \
                or not (p.op == "call_method" and p.target == "permute") or len(p.users) != 1:
            return False
        x = self.arg(p.args[0])
        dims = [self.arg(a) for a in p.args[1:]]
        dims = list(dims[0]) if len(dims) == 1 and isinstance(dims[0], (list, tuple)) else dims
        if not isinstance(x, _T) or p.kwargs or not all(type(d) is int for d in dims):
            return False
        shape = x.shape
        rank = len(shape)
        if sorted(d % rank for d in dims) != list(range(rank)) or rank < 4:
            return False
        dims = [d % rank for d in dims]
        a = dims[0]
        if a == 0 or dims[1] != 0:
            return False  # the batch must come right after the axis taken apart
        rest = [d for d in range(rank) if d != a]  # the axes left, in x's order
        order = [rest.index(d) for d in dims[1:]]
        owner = self.owner(n)
        base = self.fresh(f"{owner}.unbind" if owner else "unbind")
        swap = {"type": "transpose", "dim0": 1, "dim1": a}

        def swapped(s: tuple[int, ...]) -> tuple[int, ...]:
            out = list(s)
            out[1], out[a] = out[a], out[1]
            return tuple(out)
        src = self.names[x.node]
        if a != 1:
            moved = self.fresh(f"{base}_in")
            self.found.append(Found(moved, dict(swap), [src], self.scopes(n), swapped(shape)))
            self.scope_of[moved] = self.found[-1].scopes
            src = moved
        one = tuple(1 if i == a else v for i, v in enumerate(shape))
        kept = tuple(shape[d] for d in rest)
        for i in range(shape[a]):
            if not any(u.target is operator.getitem and u.args[1] % shape[a] == i for u in n.users
                       if isinstance(u.args[1], int)):
                continue
            steps: list[tuple[str, dict[str, Any], tuple[int, ...]]] = [
                (f"{base}.cut{i}", {"type": "narrow", "start": i, "length": 1}, swapped(one))]
            if a != 1:
                steps.append((f"{base}.cut{i}_out", dict(swap), one))
            steps.append((f"{base}.drop{i}", {"type": "reshape", "shape": list(kept[1:])}, kept))
            if order != list(range(rank - 1)):
                steps.append((f"{base}.{i}", {"type": "permute", "dims": order}, tuple(kept[d] for d in order)))
            last = src
            for name, entry, out in steps:
                name = self.fresh(name)
                self.found.append(Found(name, entry, [last], self.scopes(n), out))
                self.scope_of[name] = self.found[-1].scopes
                last = name
            self.names[n, i] = last
        return True

    def _constant(self, a: Any) -> list[Any] | None:
        """The nodes computing index `a` from the model's integer buffers alone (views and indexing
        of them), or None where it reads anything else."""
        if a.op == "get_attr":
            try:
                b = self.model.get_buffer(str(a.target))
            except (AttributeError, TypeError):
                return None
            return [a] if not b.is_floating_point() else None
        name = "getitem" if a.target is operator.getitem else str(a.target) if a.op == "call_method" else ""
        if name not in self.GATHER_STEPS or not isinstance(a.args[0], self.t.torch.fx.Node):
            return None
        out = [a]
        for b in _nodes((a.args, a.kwargs)):
            more = self._constant(b)
            if more is None:
                return None
            out += more
        return out

    def module(self, n: Any) -> None:
        m = self.gm.get_submodule(n.target)
        cls = layer_class(m)
        assert cls is not None
        first = self.calls.get(n.target)
        name = self.fresh(n.target)
        if first is None:
            self.calls[n.target] = name
        if issubclass(cls, MaxUnpoolNd):
            self.unpool(n, m, name)
            return
        if len(n.args) + len(n.kwargs) < cls.min_inputs or len(n.args) > cls.max_inputs or n.kwargs:
            raise _Unsupported(f"{type(m).__name__} called with {len(n.args)} inputs (module {n.target})")
        shared = first if first and any(True for _ in m.parameters()) else None
        self.add(n, name, cls.from_torch(m), [self.arg(a) for a in n.args], shared)

    def unpool(self, n: Any, m: Any, name: str) -> None:
        """nn.MaxUnpoolNd called as m(x, indices, output_size=None); output_size as numbers at the
        traced input (a size of another tensor, `x.size()`, included)."""
        def call(input: Any, indices: Any, output_size: Any = None) -> tuple[Any, Any, Any]:
            return input, indices, output_size
        try:
            x, indices, size = call(*n.args, **n.kwargs)
        except TypeError as exc:
            raise _Unsupported(f"{type(m).__name__} called with these arguments ({exc}) (module {n.target})") from None
        self.add(n, name, MaxUnpoolNd.from_torch_call(m, self.arg(size)), [self.arg(x), self.arg(indices)])

    def composite(self, n: Any, parts: list[tuple[str, Any]]) -> None:
        """A module read as several layers (COMPOSITES), one after the other."""
        m = self.gm.get_submodule(n.target)
        if len(n.args) != 1 or n.kwargs:
            raise _Unsupported(f"{type(m).__name__} called with {len(n.args)} inputs (module {n.target})")
        if n.target in self.calls:
            raise _Unsupported(f"{type(m).__name__} called twice (module {n.target})")
        x = self.arg(n.args[0])
        for suffix, made in parts:
            name = self.fresh(n.target + suffix)
            if not suffix:
                self.calls[n.target] = name
            if isinstance(made, self.t.nn.Module) and layer_class(made) is None:
                made = self.one_op(made, x)
                if made is None:
                    sub = getattr(m, suffix.lstrip("_"), None)
                    raise _Unsupported(f"{type(sub).__module__}.{type(sub).__name__} (module {n.target}{suffix}, "
                                       f"inside {type(m).__name__})")
            self.add(n, name, made, [x])  # each part keeps the shape: norm, dropout, activation, conv last
            x = _T(n)  # the next part reads this one (add named n after it)

    def one_op(self, m: Any, x: Any) -> dict[str, Any] | None:
        """A module with no tensors or children whose forward is one functional op on its input
        with constant arguments (timm's GELU: `F.gelu(input)`): that op's layer entry; else None."""
        fx = self.t.torch.fx
        if any(True for _ in m.parameters()) or any(True for _ in m.buffers()) or any(True for _ in m.children()):
            return None
        try:
            g = fx.Tracer().trace(m)
        except Exception:  # noqa: BLE001 - not traceable alone: no single op
            return None
        nodes = list(g.nodes)
        ops = [v for v in nodes if v.op not in ("placeholder", "output")]
        places = [v for v in nodes if v.op == "placeholder"]
        if len(ops) != 1 or len(places) != 1 or ops[0].op not in ("call_function", "call_method"):
            return None
        op = ops[0]
        if not op.args or op.args[0] is not places[0] or _nodes(op.args[1:]) or _nodes(list(op.kwargs.values())) \
                or list(op.users) != [nodes[-1]] or nodes[-1].args[0] is not op:
            return None
        key = op.target
        form = self.funcs.get(key) if _hashable(key) else None
        if form is None:
            return None
        try:
            made, _ = form.read(TorchCall(self.t, x.shape, op.target), x, *op.args[1:], **op.kwargs)
        except (TypeError, _Unsupported):
            return None
        if made is None:
            return {"type": "identity"}  # the op leaves its input as it is, as far as the numbers go
        if isinstance(made, self.t.nn.Module):
            cls = layer_class(made)
            return cls.from_torch(made) if cls is not None else None
        return made if isinstance(made, dict) else None

    def index(self, n: Any) -> None:
        """x[...] with constant slices: the identity, or one `narrow` along the channels."""
        x = self.arg(n.args[0])
        shape = x.node.meta["cnncalc_shape"]
        key = n.args[1] if isinstance(n.args[1], tuple) else (n.args[1],)
        if Ellipsis in key:
            at = key.index(Ellipsis)
            key = key[:at] + (slice(None),) * (len(shape) - len(key) + 1) + key[at + 1:]
        if len(key) > len(shape) or not all(isinstance(k, slice) for k in key):
            raise _Unsupported(f"indexing a tensor with {self.arg(n.args[1])!r} (only constant slices have a layer "
                               "type: narrow)")
        cut = []
        for axis, k in enumerate(key):
            if not all(v is None or isinstance(v, int) for v in (k.start, k.stop, k.step)):
                raise _Unsupported("indexing a tensor with slices computed in forward")
            start, stop, step = k.indices(shape[axis])
            if step != 1:
                if self.subsample(n, x, key):
                    return
                raise _Unsupported(f"a slice with step {step} other than x[:, ::s, ::s] of an (N, H, W, C) or "
                                   "(N, C, H, W) tensor (narrow takes every element)")
            if (start, stop) != (0, shape[axis]):
                cut.append((axis, start, max(stop - start, 0)))
        if not cut:
            self.names[n] = self.names[x.node]  # x[:, :]: the tensor itself
            return
        if len(cut) > 1 or cut[0][0] != 1:
            raise _Unsupported("a slice along an axis other than the channels (narrow takes channels)")
        owner = self.owner(n)
        _, start, length = cut[0]
        self.add(n, self.fresh(f"{owner}.narrow" if owner else "narrow"),
                 {"type": "narrow", "start": start, "length": length}, [x])

    def subsample(self, n: Any, x: Any, key: tuple) -> bool:
        """`x[:, ::s, ::s]` of a channels-last map (N, H, W, C) (LeViT's Downsample), or
        `x[:, :, ::s, ::s]` of (N, C, H, W): every s-th position, which an `avgpool2d` of kernel 1
        and stride s gives (permuted to the channels and back where they are last)."""
        shape = x.shape
        if len(shape) != 4 or len(key) > 4:
            return False
        key = tuple(key) + (slice(None),) * (4 - len(key))
        steps = [k.indices(size) for k, size in zip(key, shape)]
        if any((a, b) != (0, size) for (a, b, _), size in zip(steps, shape)):
            return False
        stepped = [axis for axis, (_, _, st) in enumerate(steps) if st != 1]
        if stepped not in ([1, 2], [2, 3]) or steps[stepped[0]][2] != steps[stepped[1]][2]:
            return False
        s = steps[stepped[0]][2]
        owner = self.owner(n)
        base = f"{owner}.subsample" if owner else "subsample"
        out = tuple(n.meta["cnncalc_shape"])
        src = self.names[x.node]
        if stepped == [1, 2]:
            first = self.fresh(f"{base}_in")
            self.found.append(Found(first, {"type": "permute", "dims": [0, 3, 1, 2]}, [src], self.scopes(n),
                                    (shape[0], shape[3], shape[1], shape[2])))
            self.scope_of[first] = self.found[-1].scopes
            src = first
        name = self.fresh(base)
        pooled = (out[0], out[3], out[1], out[2]) if stepped == [1, 2] else out
        self.found.append(Found(name, {"type": "avgpool2d", "kernel_size": 1, "stride": s}, [src], self.scopes(n),
                                pooled))
        self.scope_of[name] = self.found[-1].scopes
        if stepped == [1, 2]:
            last = self.fresh(f"{base}_out")
            self.found.append(Found(last, {"type": "permute", "dims": [0, 2, 3, 1]}, [name], self.scopes(n), out))
            self.scope_of[last] = self.found[-1].scopes
            name = last
        self.names[n] = name
        return True

    def pieces(self, n: Any) -> None:
        key = n.target if n.op == "call_function" else str(n.target)
        chunk = key in ("chunk", self.t.torch.chunk)
        if not (chunk or key in ("split", self.t.torch.split)):
            raise _Unsupported(f"{_op_name(n)}")
        x = self.arg(n.args[0])
        dim = self.arg(n.kwargs.get("dim", n.args[2] if len(n.args) > 2 else 0))
        whole = tuple(x.node.meta["cnncalc_shape"])
        rank = len(whole)
        if not isinstance(dim, int) or dim % rank == 0:
            raise _Unsupported(f"{_op_name(n)} along the batch axis")
        d = dim % rank
        owner = self.owner(n)
        base = self.fresh(f"{owner}.{'chunk' if chunk else 'split'}" if owner else ("chunk" if chunk else "split"))
        source = self.names[x.node]
        swap = {"type": "transpose", "dim0": 1, "dim1": d}

        def swapped(shape: tuple[int, ...]) -> tuple[int, ...]:
            out = list(shape)
            out[1], out[d] = out[d], out[1]
            return tuple(out)

        if d != 1:  # along another axis: moved to the channels (a view), sliced there, moved back
            source = self.fresh(f"{base}_in")
            self.found.append(Found(source, dict(swap), [self.names[x.node]], self.scopes(n), swapped(whole)))
            self.scope_of[source] = self.found[-1].scopes
        start = 0
        for i, shape in enumerate(n.meta["cnncalc_pieces"]):
            count = len(n.meta["cnncalc_pieces"])
            used = any(u.target is operator.getitem and isinstance(u.args[1], int) and u.args[1] % count == i
                       for u in n.users)
            if used:
                name = self.fresh(f"{base}.{i}" if d == 1 else f"{base}.cut{i}")
                self.found.append(Found(name, {"type": "narrow", "start": start, "length": shape[d]},
                                        [source], self.scopes(n), swapped(shape)))
                self.scope_of[name] = self.found[-1].scopes
                if d != 1:
                    back = self.fresh(f"{base}.{i}")
                    self.found.append(Found(back, dict(swap), [name], self.scopes(n), shape))
                    self.scope_of[back] = self.found[-1].scopes
                    name = back
                self.names[n, i] = name
            start += shape[d]

    def add(self, n: Any, name: str, made: Any, inputs: list[Any], shared: str | None = None) -> None:
        if isinstance(made, self.t.nn.Module):
            cls = layer_class(made)
            if cls is None:
                raise _Unsupported(f"{_op_name(n)}")
            made = cls.from_torch(made)
        srcs = []
        for a in inputs:
            if isinstance(a, _T) and a.node in self.indices:
                srcs.append(self.indices[a.node])  # a max unpool reads the pool whose indices these are
                continue
            if not isinstance(a, _T) or a.node not in self.names:
                raise _Unsupported(f"{_op_name(n)} on something other than a traced tensor")
            srcs.append(self.names[a.node])
        scopes = self.scopes(n)
        self.names[n] = name
        self.scope_of[name] = scopes
        self.found.append(Found(name, made, srcs, scopes, n.meta["cnncalc_shape"], shared))


def _dotted(path: str) -> list[str]:
    """'a.b.c' → ['a', 'a.b', 'a.b.c']: the path and the paths of the modules holding it."""
    parts = path.split(".")
    return [".".join(parts[:k]) for k in range(1, len(parts) + 1)]


def _readers(n: Any) -> list[Any]:
    """The nodes reading `n` through views, permutes and copies of it (not those themselves)."""
    out, todo, seen = [], list(n.users), set()
    while todo:
        u = todo.pop()
        if u in seen:
            continue
        seen.add(u)
        if u.op == "call_method" and u.target in ("reshape", "view", "unsqueeze", "squeeze", "permute", "contiguous",
                                                   "transpose", "expand"):
            todo += list(u.users)
        else:
            out.append(u)
    return out


def _fourier(m: Any) -> bool:
    """Whether module `m` is timm's PositionalEncodingFourier (EdgeNeXt): a 1×1 conv `token_projection`
    of 2·hidden_dim channels applied to Fourier features its forward computes from a shape."""
    return (type(m).__name__ == "PositionalEncodingFourier" and isinstance(getattr(m, "hidden_dim", None), int)
            and isinstance(getattr(m, "temperature", None), (int, float))
            and getattr(m, "scale", None) == 2 * 3.141592653589793
            and set(m.state_dict()) == {"token_projection.weight", "token_projection.bias"}
            and tuple(m.token_projection.weight.shape[1:]) == (2 * m.hidden_dim, 1, 1))


def _bias_kind(got: Any, table: tuple[int, ...]) -> tuple[str, tuple[int, int], int] | None:
    """(kind, grid, stride) of the `attention_bias` layer whose gather gives `got` (heads, Q, K),
    the table's entry numbers (row-major over a table of shape `table`); None if none does."""
    from cnncalc.layers.attention import bias_index

    heads, q, k = got.shape
    ids = got.to(dtype=got.dtype).tolist()
    for h in range(1, k + 1):
        if k % h:
            continue
        w = k // h
        for stride in range(1, 5):
            if -(-h // stride) * -(-w // stride) != q:
                continue
            if table == (heads, h * w):
                index = bias_index("abs", (h, w), stride)
                if all(ids[i][a][b] == i * h * w + index[a][b] for i in range(heads) for a in range(q) for b in range(k)):
                    return "abs", (h, w), stride
            if table == ((2 * h - 1) * (2 * w - 1), heads):
                index = bias_index("relative", (h, w), stride)
                if all(ids[i][a][b] == index[a][b] * heads + i for i in range(heads) for a in range(q) for b in range(k)):
                    return "relative", (h, w), stride
    return None


HAND = ("  A model import cannot read can be written by hand as a spec (README, section 'The spec'), or the "
        "module rewritten with layers cnncalc reads (README, section 'Import from PyTorch and ONNX').")


def _grouped(problems: list[tuple[str, str, str]]) -> list[str]:
    """Every cause once, identical causes grouped: module indices in paths read N, M, K, … ('18 × the
    tensor attribute self.stages.N.blocks.M.gamma used directly in forward'), with the first example
    in full and the layer type that would hold it."""
    groups: dict[str, list[tuple[str, str, str]]] = {}
    for cause, where, hint in problems:
        groups.setdefault(_generic(cause + " at " + where.split(" (")[0]), []).append((cause, where, hint))
    out = []
    for key, items in groups.items():
        cause, where, hint = items[0]
        text = f"{cause} at {where}" if len(items) == 1 else f"{len(items)} × {key}; e.g. {cause} at {where}"
        out.append(text + (f" — {hint}" if hint else ""))
    return out


def _generic(text: str) -> str:
    """Module indices in dotted paths as letters, in order of appearance within one path."""
    def path(m: re.Match[str]) -> str:
        letters = iter("NMKLPQRSTUVW" * 4)
        return re.sub(r"(?<=[.])\d+(?=[.)\s]|$)|^\d+(?=[.])", lambda _: next(letters), m.group(0))
    return re.sub(r"[A-Za-z0-9_][A-Za-z0-9_.]*\.[A-Za-z0-9_.]*", path, text)


def _channel_shuffles(found: list[Found], fresh: Callable[[str], str]) -> tuple[list[Found], dict[str, str]]:
    """torchvision's channel_shuffle written out (view to (N, g, C/g, …), transpose(1, 2), back to
    (N, C, …)), each step read only by the next: one channel_shuffle layer; and the new names."""
    readers: dict[str, int] = {}
    for f in found:
        for i in f.inputs:
            readers[i] = readers.get(i, 0) + 1
    shape = {f.name: f.shape for f in found}
    out: list[Found] = []
    renamed: dict[str, str] = {}
    k = 0
    while k < len(found):
        a, b, c = found[k:k + 3] if k + 3 <= len(found) else (found[k], found[k], None)
        if (c is not None and a.entry["type"] == "view" and b.entry == {"type": "transpose", "dim0": 1, "dim1": 2}
                and c.entry["type"] in ("view", "reshape") and b.inputs == [a.name] and c.inputs == [b.name]
                and readers.get(a.name) == readers.get(b.name) == 1 and a.inputs[0] in shape | {"input": ()}
                and len(a.shape) == len(c.shape) + 1 and c.shape == shape.get(a.inputs[0], c.shape)
                and a.shape[1] * a.shape[2] == c.shape[1]):
            owner = c.name.rsplit(".", 1)[0] + "." if "." in c.name else ""
            name = fresh(owner + "channel_shuffle")
            renamed[c.name] = name
            out.append(Found(name, {"type": "channel_shuffle", "groups": a.shape[1]},
                             [renamed.get(i, i) for i in a.inputs], c.scopes, c.shape))
            k += 3
            continue
        f = found[k]
        f.inputs = [renamed.get(i, i) for i in f.inputs]
        out.append(f)
        k += 1
    return out, renamed


def _nodes(args: Any) -> list[Any]:
    """The fx nodes among an op's arguments, in order (lists flattened)."""
    out: list[Any] = []
    for a in args:
        if isinstance(a, (list, tuple)):
            out += _nodes(a)
        elif hasattr(a, "op") and hasattr(a, "meta"):
            out.append(a)
    return out


def _float32(v: float) -> float:
    """The shortest decimal that is the same float32 (1e-06, not 9.999999974752427e-07)."""
    import struct

    def f32(x: float) -> bytes:
        return struct.pack("<f", x)

    return next((float(f"{v:.{d}g}") for d in range(1, 10) if f32(float(f"{v:.{d}g}")) == f32(v)), v)


def _dims(shape: tuple[int, ...]) -> str:
    return "(" + ", ".join(map(str, shape)) + ("," if len(shape) == 1 else "") + ")"


def _hashable(key: Any) -> bool:
    try:
        hash(key)
    except TypeError:
        return False
    return True


def _op_name(n: Any) -> str:
    if n.op == "call_method":
        return f"Tensor.{n.target}"
    mod = getattr(n.target, "__module__", None) or ""
    name = getattr(n.target, "__name__", str(n.target))
    return f"{mod}.{name}" if mod and mod != "_operator" else f"operator.{name}" if mod == "_operator" else name


# ---- torch's own numbers, to prove the spec by --------------------------------------------------
def _close(a: Any, b: Any, t: Kit) -> bool:
    """Equal up to float rounding, relative to the output's scale (NaN where torch gives NaN)."""
    scale = float(a.abs().nan_to_num(0.0, 0.0, 0.0).max()) if a.numel() else 0.0
    return bool(t.torch.allclose(a, b, rtol=1e-4, atol=1e-5 * scale + 1e-6, equal_nan=True))


def _fake(t: Kit) -> Any:
    """torch's fake tensors: ops give shapes (and FlopCounterMode its counts) without data."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    return FakeTensorMode(allow_non_fake_inputs=True)


def _dtype(model: Any, t: Kit) -> Any:
    return next((p.dtype for p in model.parameters() if p.is_floating_point()), t.torch.float32)


def torch_counts(model: Any, input_shape: tuple[int, ...]) -> dict[str, int]:
    """params, buffers (of the modules forward uses, counted once) and FlopCounterMode's FLOPs at batch 1."""
    return _counts_and_used(model, input_shape)[0]


def _counts_and_used(model: Any, input_shape: tuple[int, ...]) -> tuple[dict[str, int], set[int]]:
    """torch_counts, and the ids of the modules forward calls."""
    t = kit()
    from torch.utils.flop_counter import FlopCounterMode

    used: set[int] = set()
    hooks = [m.register_forward_hook(lambda mod, i, o: used.add(id(mod))) for m in model.modules()]
    counter = FlopCounterMode(display=False)
    try:
        with t.torch.no_grad(), _fake(t), counter:
            model.eval()(t.torch.empty(1, *input_shape, dtype=_dtype(model, t)))
    finally:
        for h in hooks:
            h.remove()
    params: dict[int, int] = {}
    buffers: dict[int, int] = {}
    for m in model.modules():
        if id(m) in used:
            params.update({id(p): p.numel() for p in m.parameters(recurse=False)})
            buffers.update({id(b): b.numel() for b in m.buffers(recurse=False)})
    return ({"params": sum(params.values()), "buffers": sum(buffers.values()), "flops": counter.get_total_flops()},
            used)


# ---- the whole import, proved ------------------------------------------------------------------
def is_module(x: Any) -> bool:
    """Whether `x` is a torch.nn.Module (without importing torch: a module exists only once it is)."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.nn.Module)


def snake_name(text: str, default: str = "net") -> str:
    """A spec name from a class or file name: 'MobileNetV2' → 'mobile_net_v2', 'SE' → 'se',
    'ResNet' → 'res_net', 'Conv3D' → 'conv3d' (`default` when nothing usable is left)."""
    words = re.sub(r"(?<=[a-z])(?=[A-Z])|(?<=[A-Z0-9])(?=[A-Z][a-z])", "_", text)
    name = re.sub(r"_+", "_", re.sub(r"[^A-Za-z0-9_]", "_", words)).strip("_").lower()
    return name if name and NAME.match(name) else default


def import_model(model: Any, input_shape: tuple[int, ...], name: str, header: list[str],
                 what: str = "the model", prove: bool = True, *, stages: dict[str, float] | None = None
                 ) -> tuple[str, list[str]]:
    """The spec text of `model` at `input_shape` (no batch), and notes for the user. The spec is
    analysed and checked against torch before it is returned: every layer's output shape, the
    params, buffers and FlopCounterMode FLOPs; with `prove` (the default) the model's own
    state_dict also loads strictly into the exported module and the two give equal outputs on a
    forward pass (prove=False skips that, the slow part, and says so in the notes). `stages`,
    when given, adds up the seconds spent in each stage (as `verify_report(stages=...)` does):
    "fx trace", "fake pass", "read" (the graph into layers), "write" (the spec text, read back),
    "analyse" (the written spec parsed and analysed), "counts" (FlopCounterMode's pass), and with
    `prove` "build" (the spec's torch module, the state_dict loaded) and "run" (both forward
    passes, compared)."""
    from cnncalc.interop.spec_writer import write_spec

    clock = _Clock(stages)
    found, outputs, notes, keys = trace(model, input_shape, what, stages=stages)
    clock("write")
    try:
        text = write_spec(found, name, input_shape, header, outputs)
        changed, analysed = _scale_axes(text, found, keys, what)
        if changed:
            text, analysed = write_spec(found, name, input_shape, header, outputs), None
    finally:
        clock(None)
    return text, notes + check(text, found, model, input_shape, what, prove, keys, stages=stages, analysed=analysed)


def _scale_axes(text: str, found: list[Found], keys: dict[str, tuple[str, int | None]], what: str
                ) -> tuple[bool, Any]:
    """A `layer_scale` scales the channels wherever the spec's permutes put them; where its tensor
    scales another axis of the traced tensor (timm's LayerScale on tokens (N, L, C) after a reshape,
    EdgeNeXt's per-head temperature after a matmul of permuted tensors), its `dim` says which (-1:
    the last). Whether any entry was changed (the spec is then written again), and the report of
    `text` where it was analysed (None where no layer scale needed it)."""
    from cnncalc.interop.spec_writer import analyse_written

    axes = {new.rpartition(".")[0]: axis for new, axis in keys.values() if axis is not None}
    if not axes:
        return False, None
    report = analyse_written(text, found, what, "torch", batch=False)
    changed = False
    for f in found:
        axis = axes.get(f.name)
        if axis is None or f.entry.get("type") != "layer_scale":
            continue
        row = report.layer(f.name)
        if row.layer.channel_axis(row.ctx) != axis:
            f.entry["dim"] = -1 if axis == len(f.shape) - 1 else axis
            changed = True
    return changed, report


def check(text: str, found: list[Found], model: Any, input_shape: tuple[int, ...], what: str,
          prove: bool = True, keys: dict[str, tuple[str, int | None]] | None = None, *,
          stages: dict[str, float] | None = None, analysed: Any = None) -> list[str]:
    """Raise a CnnError unless the spec `text` analyses to what torch says of `model` (and, with
    `prove`, its exported module gives the model's outputs); notes on what was not compared.
    `stages`: as import_model's; `analysed`: the report of `text` where it was already analysed."""
    clock = _Clock(stages)
    try:
        return _check(text, found, model, input_shape, what, prove, keys, clock, analysed)
    finally:
        clock(None)


def _check(text: str, found: list[Found], model: Any, input_shape: tuple[int, ...], what: str,
           prove: bool, keys: dict[str, tuple[str, int | None]] | None, clock: _Clock, analysed: Any) -> list[str]:
    from cnncalc.interop.spec_writer import analyse_written, wrong

    t = kit()

    def fail(why: str) -> CnnError:
        return wrong(what, why)

    clock("analyse")
    # traced at batch 2: the batch axis is not compared
    report = analysed if analysed is not None else analyse_written(text, found, what, "torch", batch=False)
    for old, (new, axis) in (keys or {}).items():  # a scale on the last axis: the layer must find the channels there
        row = report.layer(new.rpartition(".")[0])
        if axis is not None and row.layer.channel_axis(row.ctx) != axis:
            raise CnnError.single(f"import: {what} cannot be written as a spec: the learnable scale self.{visible(old)} "
                                  f"multiplies axis {axis} of its input, the channels of a channels-last tensor, but "
                                  "the tensor reaches it by no permute that moves the channels there, so a "
                                  "`layer_scale` layer would scale another axis (README, section 'The spec')")
    clock("counts")
    counts, used = _counts_and_used(model, input_shape)
    ours = {"params": report.totals["params"], "buffers": report.totals["buffers"], "flops": report.totals["flops"]}
    if ours != counts:
        raise fail(", ".join(f"{k}: cnncalc {ours[k]:,}, torch {counts[k]:,}" for k in ours if ours[k] != counts[k]))
    if not prove:  # the exported module is built only to prove the outputs
        return ["outputs not compared (prove=False): every shape, the params, buffers and FLOPs were"]
    clock("build")
    net, said = _proof_module(report, model, keys or {}, used, t, fail)
    need = 2 * report.totals["inference_memory_bytes"]  # the model and the exported module, one after the other
    if need > MAX_RUN_BYTES:
        return said + [f"outputs not compared: the forward pass needs about {need / 2**30:.1f} GiB (shapes, params, buffers, "
                "FLOPs and the state_dict were)"]
    clock("run")
    x = t.torch.randn(2, *input_shape).to(_dtype(model, t))
    try:
        with t.torch.no_grad():
            want, got = model.eval()(x), net(x)
    except Exception as exc:  # noqa: BLE001 - the exported module failing is the spec not matching
        raise fail(f"running it fails: {_one_line(exc)}") from None
    want, got = (list(v.values()) if isinstance(v, dict) else list(v) if isinstance(v, (tuple, list)) else [v]
                 for v in (want, got))
    if len(want) != len(got) or not all(a.shape == b.shape and _close(a, b, t) for a, b in zip(want, got)):
        raise fail("the outputs differ")
    return said


def _proof_module(report: Any, model: Any, keys: dict[str, tuple[str, int | None]], used: set[int], t: Kit,
                  fail: Callable[[str], CnnError]) -> tuple[Any, list[str]]:
    """The spec's exported module holding the model's state_dict (loaded strictly), and a note on
    the keys left out. Built on the meta device (no weights made, initialised, then overwritten:
    most of this stage's time for a ResNet-50) and given the model's own tensors (`assign`), where
    every tensor it holds then is one of the model's, of the dtype the module declares for it, on
    the CPU; otherwise (and on any failure there) built and loaded as before: made, then copied into."""
    from cnncalc.backend.build import build_model
    from cnncalc.interop.torch_export import exported_module

    try:
        with t.torch.device("meta"):
            net = exported_module(report, build_model(report, t)).eval()
        state, said = _state_for(net, model, keys, used)
        mine = net.state_dict()
        if all(k in mine and v.dtype == mine[k].dtype and v.device.type == "cpu" for k, v in state.items()):
            net.load_state_dict(state, strict=True, assign=True)
            if not any(v.is_meta for v in (*net.parameters(), *net.buffers())):
                return net, said
    except Exception:  # noqa: BLE001, S110 - built and loaded the usual way below, which says what fails
        pass
    net = exported_module(report, build_model(report, t)).eval()
    state, said = _state_for(net, model, keys, used)
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise fail(f"its state_dict does not load: {_one_line(exc)}") from None
    return net, said


def _state_for(net: Any, model: Any, keys: dict[str, tuple[str, int | None]], used: set[int]
               ) -> tuple[dict[str, Any], list[str]]:
    """The model's state_dict under the names `net` holds (a layer scale's tensor: the layer's
    weight, in its shape), without the keys of modules forward never calls; and a note on those."""
    state = model.state_dict()
    mine = net.state_dict()
    for old, (new, _) in keys.items():
        if old not in state and new in mine:  # an attention bias's index the model keeps out of its state_dict
            try:
                state[old] = model.get_buffer(old)
            except (AttributeError, TypeError):
                continue
        if old in state and new in mine and state[old].numel() == mine[new].numel():
            state[new] = state.pop(old).reshape(mine[new].shape)
    held = set(mine)
    never = {p for p, m in model.named_modules() if id(m) not in used}  # aux heads eval never calls
    left = sorted(k for k in state if k not in held and k.rpartition(".")[0] in never)
    state = {k: v for k, v in state.items() if k not in left}
    said = [f"the proof loads the state_dict without the {len(left)} keys of modules forward never calls "
            f"({', '.join(left[:3])}{', …' if len(left) > 3 else ''})"] if left else []
    return state, said


def run_exported(report: Any, state: dict[str, Any], x: Any) -> list[Any]:
    """The outputs (numpy) of the network's exported module holding `state` (numpy arrays under
    the spec's names, loaded strictly) on the numpy input `x`: how an ONNX import is proved."""
    import numpy as np

    from cnncalc.backend.build import build_model
    from cnncalc.interop.torch_export import exported_module

    t = kit()
    net = exported_module(report, build_model(report, t)).eval()
    net.load_state_dict({k: t.torch.as_tensor(np.array(v)) for k, v in state.items()}, strict=True)
    with t.torch.no_grad():
        out = net(t.torch.from_numpy(x))
    return [o.numpy() for o in (out if isinstance(out, (tuple, list)) else [out])]
