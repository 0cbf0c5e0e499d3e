"""`cnncalc export SPEC --to torch`: the network as a standalone, readable PyTorch file.

The file needs only torch. It defines `class <Name>(nn.Module)` and `build()`. Each layer is a
submodule at the path its spec name gives (`layer1.0.conv1` → `self.layer1["0"]["conv1"]`,
nested nn.ModuleDicts), so state_dict keys are the spec's names. Spec names stay out of Python's
attribute space where they would meet one: a top-level name that is not a plain ASCII attribute
free on nn.Module (`training`, `forward`, `_modules`, `0`, `a-b`) is held as
`self._modules["training"]`, and a group holding a key nn.ModuleDict refuses (`keys`,
`training`) is built by `_group`, written into the file; the class is renamed away from the
names the file uses (`F`, `nn`, `torch`, `build`, the helpers). `forward` runs the layers in
file order, with the merges written inline (`a + b`, `torch.cat`). Every constructor call
written is checked by rebuilding the module from it and comparing its settings and weight
shapes; a module that cannot be written so is refused by name, never approximated.
"""
from __future__ import annotations

import functools
import inspect
import keyword
import os
import re
from typing import Any

from cnncalc.analysis.chunks import chunk_groups
from cnncalc.analysis.report import Report
from cnncalc.backend.build import build_model
from cnncalc.backend.kit import Kit, kit
from cnncalc.errors import CnnError
from cnncalc.safe import visible

INLINE = {"add": " + ", "mul": " * ", "sub": " - "}  #: merges written as expressions


def _literal(v: Any) -> str:
    return repr(v)


def _settings(m: Any) -> dict[str, Any]:
    """What distinguishes two modules of one class besides their weights."""
    return {k: v for k, v in vars(m).items() if not k.startswith("_") and k != "training"}


class _Writer:
    def __init__(self, t: Kit):
        self.t = t
        self.ext_used: dict[str, type] = {}

    def ctor(self, m: Any) -> str:
        """Constructor source that rebuilds module `m` (checked)."""
        nn = self.t.nn
        cls = type(m)
        if cls is nn.Sequential:
            items = list(m._modules.items())
            if all(k == str(i) for i, (k, _) in enumerate(items)):
                return "nn.Sequential(" + ", ".join(self.ctor(c) for _, c in items) + ")"
            return "nn.Sequential(OrderedDict([" + ", ".join(f"({k!r}, {self.ctor(c)})" for k, c in items) + "]))"
        for text in self._candidates(m):
            if self._rebuilds(m, text):
                return text
        raise CnnError.single(f"export: cannot write {cls.__name__} as a constructor call (its settings do not "
                              "round-trip); this layer type is not exportable yet")

    def _candidates(self, m: Any) -> list[str]:
        cls = type(m)
        if hasattr(m, "_export_args"):  # cnncalc's own module: its recorded arguments
            self.ext_used[cls.__name__] = cls
            args, kwargs = m._export_args
            return [f"{cls.__name__}(" + ", ".join([*map(_literal, args), *(f"{k}={_literal(v)}"
                                                                           for k, v in kwargs.items())]) + ")"]
        if not cls.__module__.startswith("torch.nn"):
            return []
        params = [p for p in inspect.signature(cls.__init__).parameters.values()
                  if p.name not in ("self", "device", "dtype") and p.kind is p.POSITIONAL_OR_KEYWORD]
        out = []
        for compress in (True, False):  # kernel_size=3 as people write it, else (3, 3) as torch keeps it
            given = []
            for p in params:
                if not hasattr(m, p.name):
                    break
                v = getattr(m, p.name)
                if isinstance(v, self.t.torch.Tensor) or v is None and p.name == "bias":
                    v = v is not None  # bias: a Parameter or None → True/False
                if compress and isinstance(v, tuple) and v and len(set(v)) == 1 and isinstance(v[0], int):
                    v = v[0]
                if p.default is not inspect.Parameter.empty and _same(v, p.default):
                    continue
                given.append(f"{p.name}={_literal(v)}")
            else:
                out.append(f"nn.{cls.__name__}({', '.join(given)})")
        out.append(f"nn.{cls.__name__}({m.extra_repr()})")
        return out

    def _rebuilds(self, m: Any, text: str) -> bool:
        from collections import OrderedDict

        try:
            built = eval(text, {"nn": self.t.nn, "torch": self.t.torch, "OrderedDict": OrderedDict,  # noqa: S307
                                **self.ext_used})
        except Exception:  # noqa: BLE001 - a candidate that does not even build is simply not the one
            return False
        shapes = {k: tuple(v.shape) for k, v in m.state_dict().items()}
        return (type(built) is type(m) and _settings(built) == _settings(m)
                and {k: tuple(v.shape) for k, v in built.state_dict().items()} == shapes)


def _same(a: Any, b: Any) -> bool:
    try:
        return bool(a == b) and type(a) is type(b)
    except Exception:  # noqa: BLE001 - tensors and odd values: not equal to a plain default
        return False


def _ident(name: str, taken: set[str]) -> str:
    base = re.sub(r"[^A-Za-z0-9_]", "_", name).strip("_") or "x"  # ASCII: Python folds other names (NFKC)
    if base[0].isdigit() or keyword.iskeyword(base):
        base = "x_" + base
    ident, k = base, 2
    while ident in taken:
        ident, k = f"{base}_{k}", k + 1
    taken.add(ident)
    return ident


def class_name(report: Report) -> str:
    words = re.findall(r"[A-Za-z0-9]+", report.name or "Net")
    name = "".join(w[:1].upper() + w[1:] for w in words) or "Net"
    return name if name[0].isalpha() else "Net" + name


def to_torch(report: Report) -> str:
    """The network as Python source (see the module docstring)."""
    t = kit()
    model = build_model(report, t)
    writer = _Writer(t)
    tree: dict[str, Any] = {}
    access: dict[str, str] = {}
    chunks = chunk_groups(report.layers)  # each written as one torch.chunk (torch.split)
    piece = {i + k for i, (_, members) in chunks.items() for k in range(len(members))}
    for row in report.layers:
        if row.type in INLINE or row.type == "concat" or row.shared_with or row.index in piece:
            continue
        parts = row.name.split(".")
        node = tree
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise CnnError.single(f"export: '{row.name}' lies inside the layer '{p}': a layer cannot also hold "
                                      "others", file=report.file)
        if parts[-1] in node:
            raise CnnError.single(f"export: '{row.name}' is both a layer and a group of layers", file=report.file)
        node[parts[-1]] = writer.ctor(_plain(model.layers[f"l{row.index}"]))
        top = f"self.{parts[0]}" if _attribute(parts[0], t.nn.Module) else f"self._modules[{parts[0]!r}]"
        access[row.name] = top + "".join(f"[{p!r}]" for p in parts[1:])
    cls = class_name(report)
    helpers = _helpers(writer.ext_used)
    grouped = _uses_group(tree, t.nn.ModuleDict)
    if grouped:
        helpers = [*helpers, "", "", GROUP]
    while (any(re.search(rf"^(class|def) {cls}\b", block.strip(), re.M) for block in helpers)
           or cls in ("OrderedDict", "F", "nn", "torch", "build", "_group")):
        cls += "Net"  # a network named like one of the helper modules it uses
    source = os.path.basename(report.file)  # the file is shared; the folders of whoever wrote it are not (#24)
    lines = [f"class {cls}(nn.Module):", f'    """{_doc(report.name)}: written by cnncalc from {_doc(source)}."""', "",
             "    def __init__(self):", "        super().__init__()"]
    for key, value in tree.items():
        top = f"self.{key}" if _attribute(key, t.nn.Module) else f"self._modules[{key!r}]"
        lines.append(f"        {top} = {_tree(value, 8, t.nn.ModuleDict)}")
    lines += ["", "    def forward(self, x):"]
    taken = {"x", "self", "torch", "nn", "F"}
    var = {"input": "x"}
    indices: dict[str, str] = {}  # a max pool with return_indices → the variable of its indices
    for row in report.layers:
        args = [var[i] for i in row.inputs]
        if row.index in piece:
            if row.index in chunks:  # `a, b = torch.chunk(x, 2, 1)`: as many names as torch returns
                n, members = chunks[row.index]
                names = [_ident(name, taken) for _, name in members]
                var.update((name, v) for (_, name), v in zip(members, names))
                if isinstance(n, int):
                    width = -(-row.ctx.x[1] // n)  # ⌈C/chunks⌉ channels a piece: ⌈C/width⌉ pieces returned
                    returned, call = -(-row.ctx.x[1] // width), f"torch.chunk({args[0]}, {n}, 1)"
                else:  # `a, b = torch.split(x, [2, 6], 1)`
                    returned, call = len(n), f"torch.split({args[0]}, {n}, 1)"
                lines.append(f"        {', '.join(names[:returned])}{',' if returned == 1 else ''} = {call}")
            continue
        out = var[row.name] = _ident(row.name, taken)
        if getattr(row.layer, "return_indices", False):
            indices[row.name] = _ident(row.name + "_indices", taken)
            out = f"{out}, {indices[row.name]}"
        if row.type.startswith("max_unpool"):  # torch's MaxUnpool reads the pool's indices
            size = list(row.output_shape[2:])
            expr = f"{access[row.name]}({args[0]}, {indices[row.inputs[1]]}, output_size={size})"
        elif row.type in INLINE:
            expr = INLINE[row.type].join(args)
        elif row.type == "concat":
            expr = f"torch.cat([{', '.join(args)}], {row.layer.dim})"  # type: ignore[attr-defined]
        else:
            expr = f"{access[row.shared_with or row.name]}({', '.join(args)})"
        lines.append(f"        {out} = {expr}")
    outs = [var[n] for n in report.outputs]
    lines.append(f"        return {outs[0] if len(outs) == 1 else '(' + ', '.join(outs) + ',)'}")
    header = ['"""' + f"{_doc(report.name)}, as PyTorch code (cnncalc export). Needs only torch; `build()` returns the "
              "network.\n" + f"Input: {'×'.join(map(str, report.input_shape))} (batch first)." + '"""',
              "from collections import OrderedDict  # noqa: F401", "", "import torch",
              "import torch.nn.functional as F  # noqa: F401", "from torch import nn", ""]
    return "\n".join([*header, *helpers, "", *lines, "", "", "def build():", f'    """A new {cls}, randomly initialised."""',
                      f"    return {cls}()", ""])


def _plain(m: Any) -> Any:
    """The torch module a user writes for cnncalc's max pool with indices and max unpool (their
    inner nn.MaxPoolNd(return_indices=True) and nn.MaxUnpoolNd); any other module as it is."""
    return m._modules["pool" if type(m).__name__ == "MaxPoolIndices" else "unpool"] \
        if type(m).__name__ in ("MaxPoolIndices", "MaxUnpool") else m


def _doc(text: str) -> str:
    """Text from the spec or the command line made inert inside a docstring: one line, no quote or
    backslash that could end the string (a network's name must never become code)."""
    return " ".join(visible(text).replace("\\", "/").replace('"', "'").split())[:200]


#: written into the file when a group holds a name torch's add_module refuses
GROUP = '''def _group(modules):
    """An nn.ModuleDict holding `modules` under their spec names as keys, also those torch's
    add_module refuses because they are attribute names (`training`, `forward`, `keys`, ...)."""
    group = nn.ModuleDict()
    group._modules.update(modules)
    return group'''


def _attribute(key: str, cls: Any) -> bool:
    """Whether `key` can be an attribute of a module of class `cls` (an nn.Module, or an
    nn.ModuleDict's key given to add_module) without meeting one of its own: an ASCII Python
    name (Python rewrites other identifiers to NFKC, which would change the state_dict key), no
    keyword, no leading underscore, and nothing the class or its instances already have."""
    return (key.isascii() and key.isidentifier() and not keyword.iskeyword(key) and not key.startswith("_")
            and key not in _attributes(cls))


@functools.lru_cache(maxsize=8)
def _attributes(cls: Any) -> frozenset[str]:
    return frozenset(dir(cls())) | frozenset(dir(cls))


def _safe_key(key: str, cls: Any) -> bool:
    """A key nn.ModuleDict's constructor accepts (add_module: no '.', not empty, no attribute)."""
    return bool(key) and "." not in key and key not in _attributes(cls)


def _uses_group(tree: dict[str, Any], module_dict: Any) -> bool:
    return any(isinstance(v, dict) and (not all(_safe_key(k, module_dict) for k in v) or _uses_group(v, module_dict))
               for v in tree.values())


def _tree(value: Any, indent: int, module_dict: Any) -> str:
    if isinstance(value, str):
        return value
    pad = " " * (indent + 4)
    items = ",\n".join(f"{pad}{k!r}: {_tree(v, indent + 4, module_dict)}" for k, v in value.items())
    head = "nn.ModuleDict({" if all(_safe_key(k, module_dict) for k in value) else "_group({"
    return head + "\n" + items + "\n" + " " * indent + "})"


def _helpers(used: dict[str, type]) -> list[str]:
    """The source of cnncalc's own modules the network uses, and what they need."""
    if not used:
        return []
    from cnncalc.backend import modules

    names = {n for n, v in vars(modules).items() if inspect.isfunction(v) and v.__module__ == modules.__name__}
    out, done = [], set()

    def add(name: str) -> None:
        if name in done or name == "recorded":
            return
        done.add(name)
        if name == "_MODES":
            out.append(f"_MODES = {modules._MODES!r}")
            return
        text = inspect.getsource(getattr(modules, name))
        for other in sorted(names | {"_MODES"}):
            if other != name and re.search(rf"\b{re.escape(other)}\b", text):
                add(other)
        out.append("\n".join(line for line in text.splitlines() if line.strip() != "@recorded"))

    for name in used:
        add(name)
    return ["", *("\n" + block for block in out)]


def executor_state(report: Report, model: Any) -> dict[str, Any]:
    """The executor's weights under the spec's layer names (its modules are l0, l1, …): what
    the exported module's `load_state_dict(..., strict=True)` takes."""
    out = {}
    for key, value in model.state_dict().items():
        _, index, rest = key.split(".", 2)
        row = report.layers[int(index[1:])]
        if not row.shared_with:
            out[f"{row.name}.{rest}"] = value
    return out


def exported_module(report: Report, model: Any) -> Any:
    """The exported module, built from its own source, holding `model`'s weights."""
    namespace: dict[str, Any] = {"__name__": "cnncalc_export"}
    exec(compile(to_torch(report), f"<cnncalc export of {report.name}>", "exec"), namespace)  # noqa: S102
    net = namespace["build"]()
    net.load_state_dict(executor_state(report, model), strict=True)
    return net
