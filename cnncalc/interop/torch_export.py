"""`cnncalc export SPEC --to torch`: the network as a standalone, readable PyTorch file.

The file needs only torch. It defines `class <Name>(nn.Module)` and `build()`. Each layer is a
submodule at the path its spec name gives (`layer1.0.conv1` → `self.layer1["0"]["conv1"]`,
nested nn.ModuleDicts), so state_dict keys are the spec's names. `forward` runs the layers in
file order, with the merges written inline (`a + b`, `torch.cat`). Every constructor call
written is checked by rebuilding the module from it and comparing its settings and weight
shapes; a module that cannot be written so is refused by name, never approximated.
"""
from __future__ import annotations

import inspect
import keyword
import os
import re
from typing import Any

from cnncalc.analysis.report import Report
from cnncalc.backend.build import build_model
from cnncalc.backend.kit import kit
from cnncalc.errors import CnnError
from cnncalc.safe import visible

INLINE = {"add": " + ", "mul": " * "}  #: merges written as expressions


def _literal(v: Any) -> str:
    return repr(v)


def _settings(m: Any) -> dict[str, Any]:
    """What distinguishes two modules of one class besides their weights."""
    return {k: v for k, v in vars(m).items() if not k.startswith("_") and k != "training"}


class _Writer:
    def __init__(self, t: Any):
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
    base = re.sub(r"\W", "_", name).strip("_") or "x"
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
    for row in report.layers:
        if row.type in INLINE or row.type == "concat" or row.shared_with:
            continue
        parts = row.name.split(".")
        if not parts[0].isidentifier() or keyword.iskeyword(parts[0]):
            raise CnnError.single(f"export: '{row.name}' does not start with a Python name (a letter or _), which "
                                  "the module's attribute needs", file=report.file)
        node = tree
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise CnnError.single(f"export: '{row.name}' lies inside the layer '{p}': a layer cannot also hold "
                                      "others", file=report.file)
        if parts[-1] in node:
            raise CnnError.single(f"export: '{row.name}' is both a layer and a group of layers", file=report.file)
        node[parts[-1]] = writer.ctor(model.layers[f"l{row.index}"])
        access[row.name] = "self." + parts[0] + "".join(f"[{p!r}]" for p in parts[1:])
    cls = class_name(report)
    helpers = _helpers(writer.ext_used)
    while any(re.search(rf"^(class|def) {cls}\b", block.strip(), re.M) for block in helpers) or cls in ("OrderedDict",):
        cls += "Net"  # a network named like one of the helper modules it uses
    source = os.path.basename(report.file)  # the file is shared; the folders of whoever wrote it are not (#24)
    lines = [f"class {cls}(nn.Module):", f'    """{_doc(report.name)}: written by cnncalc from {_doc(source)}."""', "",
             "    def __init__(self):", "        super().__init__()"]
    for key, value in tree.items():
        lines.append(f"        self.{key} = {_tree(value, 8)}")
    lines += ["", "    def forward(self, x):"]
    taken = {"x", "self", "torch", "nn", "F"}
    var = {"input": "x"}
    for row in report.layers:
        args = [var[i] for i in row.inputs]
        out = var[row.name] = _ident(row.name, taken)
        if row.type in INLINE:
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


def _doc(text: str) -> str:
    """Text from the spec or the command line made inert inside a docstring: one line, no quote or
    backslash that could end the string (a network's name must never become code)."""
    return " ".join(visible(text).replace("\\", "/").replace('"', "'").split())[:200]


def _tree(value: Any, indent: int) -> str:
    if isinstance(value, str):
        return value
    pad = " " * (indent + 4)
    items = ",\n".join(f"{pad}{k!r}: {_tree(v, indent + 4)}" for k, v in value.items())
    return "nn.ModuleDict({\n" + items + "\n" + " " * indent + "})"


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
