"""From an imported model's layers to a readable spec: blocks for repeated sub-modules, `repeat`
for runs of them, arguments for what differs between uses.

Pure (no torch): the importers (`backend/fx_import`, `onnx_import`) give a list of `Found`
layers, each with the module instances it ran in. A module instance whose layers are contiguous,
read one to MAX_PORTS outside tensors and give one result is a candidate block (with several, the
block names them `inputs: [input, input_1, …]` in the order first read, each use binding them;
one whose first layer merges every outside tensor it reads, however many, reads a list,
`inputs: [input*]`: DenseNet's dense layer); candidates of one class with
the same layers and wiring share a block, whose arguments are the fields that differ between
them (a field equal in every use to another of the same name shares its argument; one that is
always k times it, over at least three uses, becomes `${arg * k}`). A run of uses of one block,
named P.0, P.1, … (an nn.Sequential), chained, becomes one `repeat` entry (the first may be
another block or take other arguments: `first:`); so does a run of uses of a list-reading block each
reading what the first read and every earlier output (a dense block; a layer reading the whole
list after it is written `inputs: [P*]`). Everything else is written out layer by layer
under its module path.
"""
from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import yaml

from cnncalc.errors import CnnError
from cnncalc.safe import visible

#: classes that say nothing of what they hold (Module: a container torch.fx copied)
CONTAINERS = ("Sequential", "ModuleDict", "ModuleList", "Module")
MIN_EVIDENCE = 3  #: uses of a block needed before a field is written as a multiple of another
META = ("name", "type", "inputs", "share", "block", "repeat", "names")  #: entry keys that are not values
MAX_PORTS = 8  #: outside tensors a block may read (HRNet's fusion, U-Net's up step, FPN's merge)


@dataclass
class Found:
    """One imported layer."""

    name: str
    entry: dict[str, Any]
    """type and fields, as the spec writes them (defaults left out)"""
    inputs: list[str]
    """names of earlier layers; 'input' for the network input"""
    scopes: tuple[tuple[str, str], ...] = ()
    """the module instances it runs in, outermost first: (path, class name)"""
    shape: tuple[int, ...] = ()
    """its output shape in torch (batch first)"""
    share: str | None = None
    """an earlier call of the same module (weights shared)"""


@dataclass
class _Inst:
    path: str
    cls: str
    items: list[Any] = field(default_factory=list)  # Found | _Inst, in order
    split: bool = False                              # its layers are not contiguous: always written out
    block: str | None = None                         # the block it uses, once decided
    args: dict[str, Any] = field(default_factory=dict)

    def layers(self) -> list[Found]:
        return [f for i in self.items for f in ([i] if isinstance(i, Found) else i.layers())]

    def height(self) -> int:
        return 1 + max((i.height() for i in self.items if isinstance(i, _Inst)), default=-1)


def write_spec(found: list[Found], name: str, input_shape: tuple[int, ...], header: list[str],
               outputs: list[str] | None = None) -> str:
    """The spec's YAML text (`outputs`: the layers the network returns, when not just the last).

    Every value is written by the YAML emitter (quoted where it must be) and every comment
    (`header`, a block's class) is made one printable line (`_comment`); the text is then read
    back and must give exactly the document meant (name, input, blocks, layers, outputs, and no
    other key such as a `dtype`), else it is a bug in cnncalc, never a different spec."""
    root = _tree(found)
    blocks = _Blocks(found)
    blocks.decide(root)
    layers = blocks.body(root, "", "input")
    meant: dict[str, Any] = {"name": name, "input": "x".join(map(str, input_shape)) if len(input_shape) > 1
                             else list(input_shape)}
    lines = [f"# {_comment(h)}" for h in header]
    lines += [f"name: {_scalar(name)}", "input: " + ("x".join(map(str, input_shape)) if len(input_shape) > 1
                                                   else _flow(list(input_shape)))]
    if blocks.defs:
        lines.append("blocks:")
        meant["blocks"] = {}
        for bname, (args, body, cls) in blocks.defs.items():
            lines += [f"  {_scalar(bname)}:                # {_comment(cls)}"]
            lines += [f"    args: {_flow({a: None for a in args})}"] if args else []
            ports = blocks.ports.get(bname)
            lines += [f"    inputs: {_flow(ports)}"] if ports else []
            lines.append("    layers:")
            lines += [f"      - {_flow(_ordered(e))}" for e in body]
            meant["blocks"][bname] = {**({"args": {a: None for a in args}} if args else {}),
                                      **({"inputs": ports} if ports else {}), "layers": [_ordered(e) for e in body]}
    lines.append("layers:")
    lines += [f"  - {_flow(_ordered(e))}" for e in layers]
    meant["layers"] = [_ordered(e) for e in layers]
    if outputs and outputs != [found[-1].name]:
        lines.append(f"outputs: {_flow(outputs)}")
        meant["outputs"] = list(outputs)
    text = "\n".join(lines) + "\n"
    _read_back(text, meant)
    return text


def _comment(text: str) -> str:
    """Foreign text (a file name, a class name from a model or its metadata) as the rest of one
    YAML comment line: every line break, control and format character written as a visible
    escape (`safe.visible`), so nothing after `#` can start a new line of the spec."""
    out = visible(text)
    assert "\n" not in out and "\r" not in out  # noqa: S101 - visible escapes every line break YAML knows
    return out


def _read_back(text: str, meant: dict[str, Any]) -> None:
    """The written text read back as cnncalc reads a spec must be the document meant."""
    from cnncalc.spec.source import parse

    try:
        got = parse(text, "<imported spec>").data
    except CnnError as exc:
        raise wrong("the model", f"the text does not read back: {exc.problems[0].message}") from None
    if got != json.loads(json.dumps(meant)):
        keys = sorted(set(got) ^ set(meant)) or sorted(k for k in meant if got.get(k) != json.loads(json.dumps(meant[k])))
        raise wrong("the model", f"the text reads back as a different spec (at {', '.join(map(visible, keys))[:200]})")


def wrong(what: str, why: str) -> CnnError:
    """A written spec that does not reproduce its source: a bug in cnncalc, said plainly."""
    return CnnError.single(f"import: the spec written for {what} does not reproduce it ({why}); this is a bug in "
                           "cnncalc, please report it with the model")


def analyse_written(text: str, found: list[Found], what: str, oracle: str, batch: bool = True) -> Any:
    """The report of the written spec, every layer's output shape checked against the one its
    source gave (`oracle` names that source; `batch` False: the batch axis is not compared)."""
    from cnncalc.analysis.analyze import analyze
    from cnncalc.spec.expand import parse_spec

    try:
        report = analyze(parse_spec(text, "<imported spec>"))
    except CnnError as exc:
        raise wrong(what, f"it does not analyse: {exc.problems[0].message}") from None
    skip = 0 if batch else 1
    for f in found:
        got = report.layer(f.name).output_shape
        if tuple(got[skip:]) != tuple(f.shape[skip:]):
            raise wrong(what, f"{f.name}: cnncalc gives {list(got[skip:])}, {oracle} {list(f.shape[skip:])}")
    return report


def _tree(found: list[Found]) -> _Inst:
    root = _Inst("", "")
    seen: dict[str, _Inst] = {}
    for f in found:
        node = root
        for path, cls in f.scopes:
            last = node.items[-1] if node.items else None
            if isinstance(last, _Inst) and last.path == path:
                node = last
                continue
            child = _Inst(path, cls)
            if path in seen:  # the instance ran before, and other layers came between
                seen[path].split = child.split = True
            seen[path] = child
            node.items.append(child)
            node = child
        node.items.append(f)
    return root


class _Blocks:
    def __init__(self, found: list[Found]):
        self.defs: dict[str, tuple[list[str], list[dict], str]] = {}
        self.ports: dict[str, list[str]] = {}  # a block reading several outside tensors → its inputs
        self.readers: dict[str, list[str]] = {}  # layer → the layers that read it
        self.ins = {f.name: f.inputs for f in found}
        for f in found:
            for i in f.inputs:
                self.readers.setdefault(i, []).append(f.name)
            if f.share:
                self.readers.setdefault(f.share, []).append(f.name)

    # ---- which instances become blocks -----------------------------------------------------------
    def decide(self, root: _Inst) -> None:
        by_height: dict[int, list[_Inst]] = {}

        def walk(inst: _Inst) -> None:
            for i in inst.items:
                if isinstance(i, _Inst):
                    walk(i)
                    if self.enclosed(i):
                        by_height.setdefault(i.height(), []).append(i)
        walk(root)
        for h in sorted(by_height):
            groups: dict[str, list[tuple[_Inst, list[dict]]]] = {}
            for inst in by_height[h]:
                ports = self.ports_of(inst)
                body = self.body(inst, inst.path, ports)
                key = f"{inst.cls}/{'*' if self.variadic(inst) else len(ports)}" + \
                    json.dumps(_shape_of(body), sort_keys=True)
                groups.setdefault(key, []).append((inst, body))
            for members in groups.values():
                if len(members) > 1:
                    self.define(members)

    def enclosed(self, inst: _Inst) -> bool:
        """Contiguous, at least two layers, one to MAX_PORTS outside inputs (named apart from its
        layers), and only its last layer read outside."""
        layers = inst.layers()
        if inst.split or len(layers) < 2 or not all(f.name.startswith(inst.path + ".") for f in layers):
            return False
        inside = {f.name for f in layers}
        outside = {i for f in layers for i in f.inputs if i not in inside}
        shares = {f.share for f in layers if f.share}
        if not (1 <= len(outside) <= MAX_PORTS or self.variadic(inst)) or not shares <= inside:
            return False
        if 1 < len(outside) <= MAX_PORTS and not self.variadic(inst) and \
                set(self.ports_of(inst).values()) & {_rel(n, inst.path) for n in inside}:
            return False
        return all(r in inside for f in layers[:-1] for r in self.readers.get(f.name, []))

    def outside_inputs(self, inst: _Inst) -> list[str]:
        """The tensors from outside `inst` that its layers read, in the order first read."""
        inside = {f.name for f in inst.layers()}
        return list(dict.fromkeys(i for f in inst.layers() for i in f.inputs if i not in inside))

    def variadic(self, inst: _Inst) -> bool:
        """Its first layer merges every outside tensor it reads (in the order read, at least two)
        and no other layer reads one: DenseNet's dense layer concatenating all earlier features.
        Such a block reads a list, `inputs: [input*]`, however long."""
        layers = inst.layers()
        outside = self.outside_inputs(inst)
        return (len(outside) >= 2 and layers[0].inputs == outside and "type" in layers[0].entry
                and _layer_class(layers[0].entry["type"]).max_inputs >= len(outside)
                and not any(i in outside for f in layers[1:] for i in f.inputs))

    def ports_of(self, inst: _Inst) -> dict[str, str]:
        """Outside tensor → the name the block gives it: 'input', then input_1, input_2, …; all
        'input*' (one list) for a variadic instance."""
        if self.variadic(inst):
            return {n: "input*" for n in self.outside_inputs(inst)}
        return {n: "input" if k == 0 else f"input_{k}" for k, n in enumerate(self.outside_inputs(inst))}

    def define(self, members: list[tuple[_Inst, list[dict]]]) -> None:
        slots = [_slots(body) for _, body in members]
        columns = [tuple(s[k][2] for s in slots) for k in range(len(slots[0]))]  # a slot's value in every member
        args: list[str] = []
        values: dict[tuple, str] = {}   # (field, a column of values) → its argument
        text: dict[int, Any] = {}
        for k in sorted(range(len(columns)), key=lambda k: _size(columns[k])):
            col = columns[k]
            if len(set(map(_key, col))) == 1:
                continue
            where, key = slots[0][k][0], slots[0][k][1]
            hit = values.get((key, tuple(map(_key, col))))  # only a field of the same name: no coincidences
            hit = f"${hit}" if hit else None
            if hit is None and len(members) >= MIN_EVIDENCE:
                hit = next((f"${{{a} * {m}}}" for (kk, c), a in values.items() if kk == key
                            for m in [_multiple(col, c)] if m), None)
            if hit is None:
                a = _fresh(key if key not in args else re.sub(r"\W", "_", f"{where}_{key}" if where[0].isalpha()
                                                             else f"{key}_{where}"), args)
                args.append(a)
                values[key, tuple(map(_key, col))] = a
                hit = f"${a}"
            text[k] = hit
        order = {v[1:]: k for k, v in sorted(text.items(), reverse=True)}
        args.sort(key=lambda a: order.get(a, 0))
        first, body = members[0]
        bname = _fresh(_block_name(first), list(self.defs))
        note = first.cls if first.cls not in CONTAINERS else f"as {first.path}" + (", …" if len(members) > 1 else "")
        self.defs[bname] = (args, _put(body, slots[0], text), note)
        ports = list(dict.fromkeys(self.ports_of(first).values()))
        if len(ports) > 1 or ports == ["input*"]:
            self.ports[bname] = ports
        for (inst, _), mine in zip(members, slots):
            inst.block = bname
            inst.args = {v[1:]: mine[k][2] for k, v in text.items() if v[1:] in args}

    # ---- writing entries -----------------------------------------------------------------------------
    def body(self, inst: _Inst, base: str, outside: str | dict[str, str]) -> list[dict]:
        """The entries of `inst`, named relative to `base` (a block's path, or '' at the top
        level); `outside` is what 'input' stands for (or, for a block reading several outside
        tensors, each one's port). A block use's name stands for its output."""
        first = outside if isinstance(outside, str) else next(iter(outside))
        raw, _ = self.entries(inst, first)
        out = self.repeats(raw)
        alias = {e.pop("_out"): e["name"] for e in out if "_out" in e}
        lists: dict[tuple, str] = {}  # a repeated use of a variadic block: its list → its name (USE*)
        prev = first
        for e in out:
            if "_list" in e:
                lists[tuple(e.pop("_list"))] = e["name"]
            if "_in" in e:
                ins = e.pop("_in")
                if tuple(ins) in lists:  # every tensor of a dense run: its list
                    e["inputs"] = [_rel(lists[tuple(ins)], base) + "*"]
                elif ins != [prev] or "block" in e and len(ins) > 1:  # a use of a multi-input block binds each
                    named = [_rel(alias.get(i, i), base, outside) for i in ins]
                    e["inputs"] = [n for j, n in enumerate(named) if n != "input*" or named[j - 1:j] != ["input*"]]
            prev = e.pop("_last")
            e["name"] = _rel(e["name"], base)
            if "share" in e:
                e["share"] = _rel(e["share"], base)
        return out

    def entries(self, inst: _Inst, outside: str) -> tuple[list[dict], str]:
        """`inst`'s entries with absolute names: `_in` the inputs, `_last` the layer whose output
        the entry ends with, `_out` that of a block use."""
        out: list[dict] = []
        for item in inst.items:
            if isinstance(item, Found):
                e = {"name": item.name, **item.entry, "_in": item.inputs, "_last": item.name}
                if item.share:
                    e["share"] = item.share
                out.append(e)
            elif item.block:
                last = item.layers()[-1].name
                e = {"block": item.block, "name": item.path, **({"args": item.args} if item.args else {}),
                     "_in": self.outside_inputs(item), "_last": last, "_out": last}
                out.append(e)
            else:
                out += self.entries(item, outside)[0]
        return out, outside

    def repeats(self, entries: list[dict]) -> list[dict]:
        """Runs of block uses named P.0, P.1, … (or P.a, P.b, …), each reading the one before and
        read by nothing else, with one block and the same arguments after the first: one
        `repeat` entry named P."""
        out: list[dict] = []
        k = 0
        names = {e["name"] for e in entries}
        prefixes = Counter(e["name"].rsplit(".", 1)[0] for e in entries if "." in e["name"])
        while k < len(entries):
            e = entries[k]
            dense = self.dense_run(entries, k, names)
            if dense:
                out.append(self.use_of(dense[0], dense[1], dense[2]))
                k += len(dense[1])
                continue
            run = [e]
            prefix = e["name"].rsplit(".", 1)[0] if "block" in e and "." in e["name"] and len(e["_in"]) == 1 else None
            while prefix is not None and k + len(run) < len(entries):
                nxt, last = entries[k + len(run)], run[-1]
                if not ("block" in nxt and "." in nxt["name"] and nxt["name"].rsplit(".", 1)[0] == prefix
                        and nxt["_in"] == [last["_last"]]
                        and all(r.startswith(nxt["name"] + ".") for r in self.readers.get(last["_last"], []))
                        and (len(run) == 1 or (nxt["block"], nxt.get("args")) == (run[1]["block"], run[1].get("args")))):
                    break
                run.append(nxt)
            if len(run) < 2 or len(run) != prefixes[prefix] or prefix in names:  # P must name the run alone
                out.append(e)
                k += 1
                continue
            assert prefix is not None
            out.append(self.use_of(prefix, run))
            k += len(run)
        return out

    def dense_run(self, entries: list[dict], k: int, names: set[str]) -> tuple[str, list[dict], list[str]] | None:
        """A run of uses named P.x starting at entries[k], the second on of one variadic block
        with the same arguments, each reading what the first read and every earlier output (a
        dense block); each output read only inside later uses or by a layer reading them all
        (written `inputs: [P*]`). (P, the run, the list it ends with)."""
        e = entries[k]
        if "block" not in e or "." not in e["name"]:
            return None
        prefix = e["name"].rsplit(".", 1)[0]
        pool, run = e["_in"] + [e["_last"]], [e]
        while k + len(run) < len(entries):
            nxt = entries[k + len(run)]
            if not ("block" in nxt and self.ports.get(nxt["block"]) == ["input*"] and "." in nxt["name"]
                    and nxt["name"].rsplit(".", 1)[0] == prefix and nxt["_in"] == pool
                    and (len(run) == 1 or (nxt["block"], nxt.get("args")) == (run[1]["block"], run[1].get("args")))):
                break
            run.append(nxt)
            pool = pool + [nxt["_last"]]
        if len(run) < 2 or prefix in names:
            return None
        members = [r["name"] for r in run]
        for i, r in enumerate(run):
            for reader in self.readers.get(r["_last"], []):
                if not (any(reader.startswith(m + ".") for m in members[i + 1:]) or self.ins.get(reader) == pool):
                    return None
        return prefix, run, pool

    def use_of(self, prefix: str, run: list[dict], pool: list[str] | None = None) -> dict:
        """One `repeat` entry named `prefix` for a run of uses (`pool`: the list a dense run ends with)."""
        e, rest = run[0], run[1]
        suffixes = [r["name"].rsplit(".", 1)[1] for r in run]
        use: dict[str, Any] = {"block": rest["block"], "name": prefix, "repeat": len(run)}
        if suffixes != [str(i) for i in range(len(run))]:
            use["names"] = suffixes
        if rest.get("args"):
            use["args"] = rest["args"]
        first_args = {a: v for a, v in (e.get("args") or {}).items()
                      if (rest.get("args") or {}).get(a, object()) != v}
        if e["block"] != rest["block"] or first_args:
            use["first"] = {**({"block": e["block"]} if e["block"] != rest["block"] else {}),
                            **({"args": first_args} if first_args else {})}
        use.update({"_in": e["_in"], "_last": run[-1]["_last"], "_out": run[-1]["_out"]})
        if pool is not None:
            use["_list"] = pool
        return use


def _rel(name: str, base: str, outside: str | dict[str, str] | None = None) -> str:
    if isinstance(outside, dict):
        if base and name in outside:
            return outside[name]
    elif outside is not None and name == outside and base:
        return "input"
    if base and name.startswith(base + "."):
        return name[len(base) + 1:]
    return name


#: the order people write a layer's keys in (torch's constructor order); other fields follow
ORDER = ("block", "name", "type", "repeat", "names", "out_channels", "out_features", "kernel_size", "stride", "padding",
         "output_padding", "dilation", "groups", "bias")


def _ordered(e: dict) -> dict:
    rank = {k: i for i, k in enumerate(ORDER)}
    tail = ("args", "first", "inputs", "share")
    return dict(sorted(e.items(), key=lambda kv: (kv[0] in tail, tail.index(kv[0]) if kv[0] in tail else
                                                  rank.get(kv[0], len(ORDER)))))


def _shape_of(body: list[dict]) -> list:
    """An entry list with its field and argument values left out: what members of a block share."""
    out = []
    for e in body:
        shape: dict[str, Any] = {}
        for k, v in e.items():
            if k == "args":
                shape[k] = sorted(v)
            elif k == "first":
                shape[k] = [v.get("block"), sorted(v.get("args", {}))]
            elif k in META:
                shape[k] = v
        out.append(shape)
    return out


def _slots(body: list[dict]) -> list[tuple[str, str, Any]]:
    """(layer, field, value) of every field and argument value in the body, in order (fields in
    the order of the layer type, defaults filled in)."""
    out = []
    for e in body:
        if "type" in e:
            out += [(e["name"], k, e.get(k, d)) for k, d in _fields(e["type"])]
        out += [(e["name"], a, x) for a, x in sorted(e.get("args", {}).items())]
        out += [(e["name"], "first_" + a, x) for a, x in sorted(e.get("first", {}).get("args", {}).items())]
    return out


def _layer_class(kind: str) -> Any:
    from cnncalc.layers import REGISTRY

    return REGISTRY[kind]


def _fields(kind: str) -> list[tuple[str, Any]]:
    """(spec key, default) of a layer type's own fields."""
    from cnncalc.layers.base import Layer

    return [(f.alias or k, f.default) for k, f in _layer_class(kind).model_fields.items() if k not in Layer.model_fields]


def _put(body: list[dict], slots: list[tuple[str, str, Any]], text: dict[int, Any]) -> list[dict]:
    """The body with the slots numbered in `text` replaced by argument references (and the
    fields of the first member otherwise, defaults left out)."""
    values: dict[str, dict[str, Any]] = {}
    for k, (layer, key, v) in enumerate(slots):
        values.setdefault(layer, {})[key] = text.get(k, v)
    out = []
    for e in body:
        mine = values.get(e["name"], {})
        new: dict[str, Any] = {k: v for k, v in e.items() if k in ("name", "type", "block", "repeat", "names")}
        if "type" in e:
            new.update(_layer_class(e["type"]).lean({k: mine[k] for k, _ in _fields(e["type"])}))
        if "args" in e:
            new["args"] = {a: mine[a] for a in e["args"]}
        if "first" in e:
            new["first"] = {**({"block": e["first"]["block"]} if "block" in e["first"] else {}),
                            **({"args": {a: mine["first_" + a] for a in e["first"]["args"]}}
                               if "args" in e["first"] else {})}
        new.update({k: e[k] for k in ("inputs", "share") if k in e})
        out.append(new)
    return out


def _key(v: Any) -> str:
    return json.dumps(v, sort_keys=True)


def _size(col: tuple) -> float:
    nums = [abs(v) for v in col if isinstance(v, (int, float)) and not isinstance(v, bool)]
    return min(nums) if len(nums) == len(col) else float("inf")


def _multiple(col: tuple, base: tuple) -> int | None:
    """k ≥ 2 when every value of col is k times the matching value of base (integers)."""
    vals = [json.loads(b) for b in base]
    if not all(type(v) is int and type(b) is int and b > 0 for v, b in zip(col, vals)):
        return None
    if col[0] % vals[0]:
        return None
    m = col[0] // vals[0]
    return m if m >= 2 and all(v == b * m for v, b in zip(col, vals)) else None


def _fresh(name: str, taken: list[str]) -> str:
    name = name if re.match(r"^[A-Za-z_]", name) else "a_" + name
    out, k = name, 2
    while out in taken or out in ("input", "in"):
        out, k = f"{name}_{k}", k + 1
    return out


def _block_name(inst: _Inst) -> str:
    """The class's name in snake case; for a container (Sequential, ModuleDict) the last word of
    the first use's path that is not an index (layer1.0 → layer1, layer1.0.downsample → downsample)."""
    words = [w for w in inst.path.split(".") if not w.isdigit()]
    if inst.cls in CONTAINERS and words:
        word = re.sub(r"[^A-Za-z0-9_]", "_", words[-1]).lstrip("_0123456789")
        return word if word.endswith("block") else f"{word}_block" if word else "block"
    return _snake(inst.cls) or "block"


def _snake(cls: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", re.sub(r"[^A-Za-z0-9_]", "", cls)).lower().lstrip("_0123456789")


def _scalar(v: Any) -> str:
    return yaml.safe_dump(v, default_flow_style=True, width=10**9).strip().removesuffix("...").strip()


def _flow(v: Any) -> str:
    return yaml.safe_dump(v, default_flow_style=True, sort_keys=False, width=10**9).strip()
