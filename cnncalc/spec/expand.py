"""From a parsed YAML document to a validated `Network`: blocks, repeat, when, argument
substitution, names and defaults, every problem located at its line and column."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from cnncalc.errors import CnnError, Problem, did_you_mean, gc_paused
from cnncalc.layers import REGISTRY
from cnncalc.spec.include import with_includes
from cnncalc.spec.messages import pydantic_message
from cnncalc.spec.network import Network, Node
from cnncalc.spec.schema import MAX_BLOCK_DEPTH, MAX_LAYERS, MAX_LIST, PIECES, BlockUse, Chunk, Header, Split
from cnncalc.spec.source import Path, Source, _kind, load, parse
from cnncalc.spec.subst import _EXPR, _REF, REF_FIELD, SubstError, reads_input, substitute


def load_spec(path: str, overrides: dict[str, Any] | None = None) -> Network:
    """Read, parse and validate a spec file (with `overrides` of its `args:`); raises CnnError
    with every problem found."""
    return build_network(load(path), overrides)


def parse_spec(text: str, file: str = "<spec>", overrides: dict[str, Any] | None = None) -> Network:
    return build_network(parse(text, file), overrides)


def build_network(src: Source, overrides: dict[str, Any] | None = None) -> Network:
    src = with_includes(src)  # blocks of other files (`include:`), located in their own files
    try:
        header = Header.model_validate(src.data)
    except ValidationError as exc:
        raise CnnError([src.problem(*pydantic_message(e, "spec")) for e in exc.errors()]) from None
    if overrides:
        unknown = [k for k in overrides if k not in header.args]
        if unknown:  # a command-line mistake
            raise CnnError.single(f"--set: the spec has no argument {', '.join(map(repr, unknown))} (its arguments: "
                                  f"{', '.join(header.args) or 'none'})", exit_code=2, file=src.file)
        header = header.model_copy(update={"args": {**header.args, **overrides}})
    with gc_paused():
        net = _Expander(src, header).run()
    if net.problems:
        raise CnnError(net.problems)
    return net






@dataclass
class Frame:
    """Where the expander stands: inside which block use (if any), with which arguments."""

    scope: dict[str, str]
    """Local name → global name of what this list can refer to ('input' included)."""
    prefix: str = ""
    """Prepended to local layer names (the block use's name and repetition)."""
    args: dict | None = None
    """The block's arguments ('$arg' substitution); None at the top level."""
    via: tuple[Path, ...] = ()
    """Paths of the block uses leading here (for messages)."""
    depth: int = 0
    trainable: bool | None = None
    """false when an enclosing block use froze its layers."""
    later: dict[str, Path] = field(default_factory=dict)
    """Names defined further down this list (to say 'defined later' instead of 'unknown')."""
    counts: dict[str, int] = field(default_factory=dict)
    """Per type (or block), how many unnamed ones so far: the default names type_1, type_2, …"""
    blocks: tuple[str, ...] = ()
    """The block uses (and repetitions) this list lies in, outermost first."""

    in_block: bool = False
    """Inside a block use: names resolve only within the block (and its 'input')."""
    lists: dict[str, list[str]] = field(default_factory=dict)
    """Local name → the global names of a list of tensors, read whole as NAME* (a block's starred
    input; a use of such a block: what it read and every repetition's output)."""


class _Expander:
    def __init__(self, src: Source, header: Header):
        self.src, self.header = src, header
        self.nodes: list[Node] = []
        self.where: dict[str, Path] = {}           # every global name -> YAML path
        self.broken: set[str] = set()              # names whose layer failed validation
        self.uses: dict[str, list[int]] = {}       # block-use name -> node indices
        self.problems: list[Problem] = []
        self.sizes: dict[str, int] = {}
        self.work = 0                              # block repetitions and layers expanded so far
        self.written = 0                           # layer entries expanded so far (broken ones too)
        self.hints = 20                            # "did you mean" suggestions left (each costs O(names))
        self.reported: set[tuple] = set()          # (message, line, col) of the problems so far
        self.bound: dict[tuple, int] = {}          # (block, its args) -> layers it expands to
        self.refmap: dict[str, tuple[str, str]] = {}  # ref__N -> (tensor, size) read by `${LAYER.height}`
        self.lists: dict[str, list[str]] = {}      # global name of a use -> its list of tensors (USE*)

    def fail(self, message: str, path: Path, layer: str | None = None) -> None:
        index = self.written if layer else None  # the layer's place among those written, broken ones too
        problem = self.src.problem(message, path, layer, index=index)
        key = (problem.message, problem.line, problem.col)
        if key not in self.reported:  # a block used n times reports its own mistake once
            self.reported.add(key)
            self.problems.append(problem)

    def run(self) -> Network:
        total = self.expanded_size(self.header.layers, 0)
        if total > MAX_LAYERS:
            raise CnnError([self.src.problem(f"the network expands to {total:,} layers; more than "
                                             f"{MAX_LAYERS:,} are refused", ("layers",))])
        self.check_defaults()
        args = self.derived(self.header.args, {}, ("args",))
        top = Frame({"input": "input"}, args=args)
        self.expand(self.header.layers, ("layers",), top, "input")
        outputs = [top.scope.get(n, n) for n in self.header.outputs] if self.header.outputs else (
            [self.nodes[-1].name] if self.nodes else [])
        for i, name in enumerate(self.header.outputs or []):
            if name not in self.where and name not in top.scope:
                self.fail(f"outputs: unknown layer '{name}'{self.hint(name, self.where)}", ("outputs", i))
        return Network(self.header, self.nodes, outputs, self.src, self.problems)

    def derived(self, declared: dict[str, Any], given: dict[str, Any], base: Path,
                outer: dict[str, Any] | None = None) -> dict[str, Any]:
        """Arguments with the defaults that are expressions evaluated, in declaration order, over
        the outer arguments, those given and the ones declared before."""
        args = {**(outer or {}), **declared, **given}
        for k, default in declared.items():
            if k in given or not isinstance(default, str) or "$" not in default:
                continue
            try:
                args[k] = substitute(default, args, defer=True)
            except SubstError as exc:
                self.fail(f"argument '{k}': {exc}", base + (k,))
        return args

    # ---- size check before expanding -------------------------------------------------------
    def expanded_size(self, items: list, depth: int, base: Path = ("layers",)) -> int:
        """Layers after expansion, computed per block once (so bombs are refused up front)."""
        if depth > MAX_BLOCK_DEPTH:
            return MAX_LAYERS + 1
        total = 0
        for i, item in enumerate(items):
            if isinstance(item, dict) and "block" in item:
                name = item.get("block")
                repeat = item.get("repeat", 1)
                repeat = repeat if isinstance(repeat, int) and repeat > 0 else 1
                first: dict = item["first"] if isinstance(item.get("first"), dict) else {}
                names = [n for n in (name, first.get("block")) if isinstance(n, str) and n in self.header.blocks]
                if not names:
                    total += 1
                    continue
                for n in names:
                    if n not in self.sizes:
                        self.sizes[n] = -1  # in progress
                        self.sizes[n] = self.expanded_size(self.header.blocks[n].layers, depth + 1,
                                                           ("blocks", n, "layers"))
                    if self.sizes[n] < 0:
                        raise CnnError([self.src.problem(f"block '{n}' uses itself (directly or through "
                                                         "other blocks)", base + (i, "block"))])
                total += repeat * max(self.sizes[n] for n in names)
            else:
                total += 1
            if total > MAX_LAYERS:
                return total
        return total

    # ---- expansion -------------------------------------------------------------------------
    def expand(self, items: list, base: Path, frame: Frame, prev: str) -> str:
        """Add the layers of one list (the spec's or a block's); returns the last output's name."""
        for i, item in enumerate(items):
            if isinstance(item, dict) and isinstance(item.get("name"), str):
                frame.later.setdefault(item["name"], base + (i,))
        for i, raw in enumerate(items):
            path = base + (i,)
            if isinstance(raw, dict) and isinstance(raw.get("name"), str):
                frame.later.pop(raw["name"], None)
            if not isinstance(raw, dict):
                self.fail(f"expected a layer (a mapping with 'type') or a block use (with 'block'), "
                          f"received {raw!r}", path)
                continue
            rewritten = self.sizes_read(raw, frame, path)
            if rewritten is None:
                continue
            try:
                item = substitute(rewritten, frame.args, defer=True) if frame.args is not None else rewritten
            except SubstError as exc:
                self.fail(str(exc), path, raw.get("name"))
                continue
            if "when" in item:
                item = dict(item)
                when = item.pop("when")
                if reads_input(when):
                    self.fail("when: cannot read in.* (the spec is expanded before shapes are known)",
                              path + ("when",), raw.get("name"))
                    continue
                if not isinstance(when, bool):
                    self.fail(f"when: expected true or false (e.g. \"${{stride != 1}}\"), received {when!r}"[:200],
                              path + ("when",), raw.get("name"))
                    continue
                if not when:  # left out: its name stands for its input
                    prev = self.skip(item, path, frame, prev)
                    continue
            if "block" in item:
                prev = self.use_block(item, path, frame, prev)
            else:
                prev = self.add_layer(item, path, frame, prev)
        return prev

    def sizes_read(self, raw: dict, frame: Frame, path: Path) -> dict | None:
        """`${input.height}`, `${LAYER.width}`, `${LAYER.channels}` in a field or a block use's
        argument: a size of an earlier tensor (a name as `inputs:` resolves it here), read when
        the analysis reaches the layer, so the spec follows the input size. Each becomes a
        placeholder ref__N recorded with the tensor's name; None after a located problem.
        An upsample's `size: like LAYER` is ["${LAYER.height}", "${LAYER.width}"] (its spatial
        sizes, as many as the network input has: F.interpolate(x, size=y.shape[-2:]))."""
        ok = True
        layer = raw.get("name") if isinstance(raw.get("name"), str) else None
        like = raw.get("size") if raw.get("type") == "upsample" else None
        if isinstance(like, str) and like.split(" ", 1)[0] == "like":  # `size: like LAYER`: its spatial sizes
            target = like[5:].strip()
            if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*", target):
                self.fail(f"size: 'like' takes one earlier layer's name (size: like skip), received {like!r}"[:200],
                          path + ("size",), layer)
                return None
            if not (frame.scope.get(target) or (not frame.in_block and target in self.where)):
                # one name, looked up as a name: 'a-b' is never read as a minus b here
                self.resolve(target, frame, path + ("size",), layer, layer)  # says why: unknown, later, …
                return None
            axes = {1: ("length",), 2: ("height", "width"), 3: ("depth", "height", "width")}.get(len(self.header.input) - 1)
            if axes is None:
                self.fail("size: like: the network input has no spatial sizes", path + ("size",), layer)
                return None
            raw = {**raw, "size": [f"${{{target}.{a}}}" for a in axes]}

        def size_of(m: Any, expr: str, where: Path) -> str:
            nonlocal ok
            name, what = m.group(1), m.group(2)
            if name == "in":
                return str(m.group(0))
            # the longest tail after a '-' that names a tensor ('a-b.height' is a minus b's height)
            for tail in [name] + [name[i + 1:] for i, c in enumerate(name) if c == "-"]:
                target = frame.scope.get(tail) or (tail if not frame.in_block and tail in self.where else None)
                if target:
                    ph = f"ref__{len(self.refmap)}"
                    self.refmap[ph] = (target, what)
                    return name[: len(name) - len(tail)] + ph
            ok = False
            self.resolve(name, frame, where, layer, layer)  # says why: unknown, later, outside the block
            return str(m.group(0))

        def walk(value: Any, where: Path) -> Any:
            if isinstance(value, str):
                m = _EXPR.match(value) if value[:1] == "$" else None
                if not m or not REF_FIELD.search(m.group(1)):
                    return value
                expr = m.group(1)
                return "${" + REF_FIELD.sub(lambda r: size_of(r, expr, where), expr) + "}"
            if isinstance(value, list):
                return [walk(v, where + (i,)) for i, v in enumerate(value)]
            if isinstance(value, dict):
                return {k: walk(v, where + (k,)) for k, v in value.items()}
            return value

        out = {k: v if k in ("name", "type", "block", "inputs", "share", "names") else walk(v, path + (k,))
               for k, v in raw.items()}
        return out if ok else None

    def skip(self, item: dict, path: Path, frame: Frame, prev: str) -> str:
        """A layer or block use whose `when` is false: left out, and its name (if it has one)
        stands for what it would have read, so later layers pass over it: its one named input,
        or the previous layer (for a merge of several inputs too: a left-out residual add or
        gate passes the chain on). So do the pieces of a left-out chunk or split (NAME.0, …) and
        the outputs of a left-out block use (NAME.OUTPUT): one block can be ShuffleNetV2's
        stride-1 unit (halves) and stride-2 unit (both branches read the input)."""
        refs = item.get("inputs")
        source = prev
        if isinstance(refs, list) and len(refs) == 1 and not str(refs[0]).endswith("*"):
            source = self.resolve(refs[0], frame, path + ("inputs", 0), None, item.get("name")) or prev
        local = item.get("name")
        if isinstance(local, str):
            frame.scope[local] = source
            chunks, sizes = item.get("chunks"), item.get("sizes")
            count = (chunks if item.get("type") == "chunk" and isinstance(chunks, int) else
                     len(sizes) if item.get("type") == "split" and isinstance(sizes, list) else 0)
            names = [str(i) for i in range(min(count, 4096))]
            block = self.header.blocks.get(item["block"]) if isinstance(item.get("block"), str) else None
            names += (block.outputs or []) if block is not None else []
            if block is not None and (block.inputs or ["input"])[-1].endswith("*"):  # USE*: what it would read
                whole = self.spread(refs, frame, path + ("inputs",), None, local) if isinstance(refs, list) else None
                frame.lists[local] = whole if whole else [source]
                frame.scope[local] = source = whole[0] if whole else source
            for n in names:
                frame.scope[f"{local}.{n}"] = source
        return source

    def check_defaults(self) -> None:
        """Every `defaults:` entry names a layer type and fields it has."""
        for kind, fields in self.header.defaults.items():
            cls = REGISTRY.get(kind)
            if cls is None:
                self.fail(f"defaults: unknown layer type '{kind}'{did_you_mean(kind, REGISTRY)}", ("defaults", kind))
                continue
            for key in fields:
                if key not in cls.model_fields or key in ("type", "name", "inputs", "share"):
                    self.fail(f"defaults: {kind} has no field '{key}'{did_you_mean(key, cls.model_fields)}",
                              ("defaults", kind, key))

    def resolve(self, ref: Any, frame: Frame, path: Path, own: str | None, layer: str | None) -> str | None:
        if not isinstance(ref, str):
            self.fail(f"expected a layer name, received {_kind(ref)} {str(ref)[:60]}", path, layer)
            return None
        if ref in frame.scope:
            return frame.scope[ref]
        if not frame.in_block and ref in self.where:
            return ref
        if ref in frame.lists or not frame.in_block and ref in self.lists:
            self.fail(f"'{ref}' is a list of tensors: read it whole with inputs: [{ref}*]", path, layer)
        elif ref == own:
            self.fail(f"'{ref}' refers to itself: inputs must be earlier layers", path, layer)
        elif ref in frame.later:
            line = self.src.locate(frame.later[ref])[0]
            self.fail(f"'{ref}' is defined later (line {line}): inputs must be earlier layers", path, layer)
        else:
            inside = " in this block (blocks see only their own layers and 'input')" if frame.in_block else ""
            hint = self.hint(ref, list(frame.scope) + ([] if frame.in_block else list(self.where))) if self.hints else ""
            self.fail(f"unknown layer '{ref}'{inside}{hint}", path, layer)
        return None

    def spread(self, refs: list, frame: Frame, path: Path, own: str | None, layer: str | None) -> list[str] | None:
        """The tensors `inputs:` names, each NAME* standing for its whole list; None after a
        located problem."""
        out: list[str] = []
        ok = True
        for j, ref in enumerate(refs):
            if isinstance(ref, str) and ref.endswith("*"):
                got = frame.lists.get(ref[:-1])
                if got is None and not frame.in_block:
                    got = self.lists.get(ref[:-1])
                if got is None:
                    what = ("a layer, not a list" if ref[:-1] in frame.scope or not frame.in_block and ref[:-1] in self.where
                            else "not a known name")
                    self.fail(f"'{ref}': '{ref[:-1]}' is {what}; NAME* reads a list of tensors (a block's starred "
                              "input, or a use of a block with one)", path + (j,), layer)
                    ok = False
                    continue
                out += got
            else:
                one = self.resolve(ref, frame, path + (j,), own, layer)
                ok = ok and one is not None
                out += [one] if one else []
        if ok and len(out) > MAX_LIST:
            self.fail(f"inputs: {len(out):,} tensors; a list reads at most {MAX_LIST:,}", path, layer)
            return None
        return out if ok else None

    def add_pieces(self, item: dict, path: Path, frame: Frame, prev: str) -> str:
        """A chunk or split entry: one narrow layer per piece, NAME.0 … NAME.k−1, all reading
        the entry's input; the last piece continues the chain."""
        kind = item["type"]
        if reads_input(item.get("chunks")):
            self.fail("chunks: cannot read in.* or another tensor's size (the pieces NAME.0, NAME.1, … are named when "
                      "the spec is expanded, before shapes are known)", path + ("chunks",),
                      item.get("name") if isinstance(item.get("name"), str) else kind)
            return prev
        sizes = item.get("sizes") if kind == "split" and isinstance(item.get("sizes"), list) else None
        late = sizes if sizes is not None and reads_input(sizes) else None  # sizes read when shapes are known
        try:
            entry = PIECES[kind].model_validate(item if late is None else
                                                {**item, "sizes": [1 if reads_input(v) else v for v in late]})
        except ValidationError as exc:
            for e in exc.errors():
                msg, loc = pydantic_message(e, kind, PIECES[kind])
                self.fail(msg, path + loc, item.get("name") if isinstance(item.get("name"), str) else kind)
            return prev
        local = entry.name
        if local is None:
            frame.counts[kind] = frame.counts.get(kind, 0) + 1
            local = f"{kind}_{frame.counts[kind]}"
        if isinstance(entry, Chunk):
            pieces = [{"chunks": entry.chunks, "chunk": i} for i in range(entry.chunks)]
        else:
            assert isinstance(entry, Split)
            starts = [sum(entry.sizes[:i]) for i in range(len(entry.sizes))]
            pieces = [{"start": a, "length": n, "sizes_sum": sum(entry.sizes)} for a, n in zip(starts, entry.sizes)]
            if late is not None:  # Node.resolve turns the evaluated sizes into start, length and sizes_sum
                pieces = [{"split_sizes": late, "split_piece": i} for i in range(len(late))]
        last = prev
        for i, piece in enumerate(pieces):
            narrow = {"type": "narrow", "name": f"{local}.{i}", **piece,
                      **({"inputs": entry.inputs} if entry.inputs is not None else {}),
                      **({"trainable": entry.trainable} if entry.trainable is not None else {})}
            if i:
                self.written += 1
            last = self._add_layer(narrow, path, frame, prev)
        return last

    def unique(self, name: str, path: Path) -> bool:
        if name in self.where or name == "input":
            first = self.src.locate(self.where[name])[0] if name in self.where else None
            self.fail(f"duplicate layer name '{name}'" + (f" (first used on line {first})" if first else
                                                          ": 'input' is reserved for the network input"), path, name)
            return False
        return True

    def add_layer(self, item: dict, path: Path, frame: Frame, prev: str) -> str:
        """Validate one layer entry and append it as a node (a broken one only takes its index)."""
        try:
            return self._add_layer(item, path, frame, prev)
        finally:
            self.written += 1

    def _add_layer(self, item: dict, path: Path, frame: Frame, prev: str) -> str:
        kind = item.get("type")
        if isinstance(kind, str) and kind in PIECES:
            return self.add_pieces(item, path, frame, prev)
        if kind is None:
            self.fail("missing 'type' (or 'block' for a block use)", path, item.get("name"))
            return prev
        cls = REGISTRY.get(kind) if isinstance(kind, str) else None
        if cls is None:
            hint = did_you_mean(kind, REGISTRY)
            self.fail(f"unknown layer type '{kind}'{hint}" + ("" if hint else f"; valid types: {', '.join(sorted(REGISTRY))}"
                      + (f"; blocks: {', '.join(self.header.blocks)}" if self.header.blocks else "")),
                      path + ("type",), item.get("name"))
            return prev
        local = item.get("name") if isinstance(item.get("name"), str) else None
        if local is None:
            frame.counts[kind] = frame.counts.get(kind, 0) + 1
            local = f"{kind}_{frame.counts[kind]}"
        name = frame.prefix + local
        if frame.trainable is False and "trainable" not in item:
            item = {**item, "trainable": False}
        if kind in self.header.defaults:
            item = {**self.header.defaults[kind], **item}
        refs = item.get("inputs") if isinstance(item.get("inputs"), list) else None
        spread = refs is not None and any(isinstance(r, str) and r.endswith("*") for r in refs)
        if spread:  # NAME*: resolved here, the layer validated without its inputs
            item = {k: v for k, v in item.items() if k != "inputs"}
        pending = item if reads_input(item) else None  # validated once the input's shape is known
        layer = None
        if pending is None:
            try:
                layer = cls.model_validate(item)
            except ValidationError as exc:
                for e in exc.errors():
                    msg, loc = pydantic_message(e, kind, cls)
                    self.fail(msg, path + loc, name)
        known = layer is not None or pending is not None
        inputs = [] if refs is not None else [prev]
        if spread:
            assert refs is not None
            whole = self.spread(refs, frame, path + ("inputs",), local, name)
            inputs, refs = (whole, whole) if whole is not None else ([], refs)
            known = known and whole is not None
        for j, ref in enumerate(refs if refs is not None and not spread else []):
            got = self.resolve(ref, frame, path + ("inputs", j), local, name)
            if got:
                inputs.append(got)
        share = None
        share_ref = layer.share if layer is not None else item.get("share") if pending is not None else None
        if share_ref is not None:
            share = self.resolve(share_ref, frame, path + ("share",), local, name)
        if known and refs is not None and not cls.min_inputs <= len(refs) <= cls.max_inputs:
            want = f"{cls.min_inputs}" if cls.min_inputs == cls.max_inputs else f"{cls.min_inputs} to {cls.max_inputs}"
            self.fail(f"{kind} takes {want} input{'s' if cls.max_inputs > 1 else ''}, received {len(refs)}"
                      + (" (the lists named with * included)" if spread else ""), path + ("inputs",), name)
            known = False
        elif known and refs is None and cls.min_inputs > 1:
            self.fail(f"{kind} merges branches: name them with inputs: [a, b]", path, name)
            known = False
        if not self.unique(name, path):
            return prev
        self.where[name] = path
        frame.scope[local] = name
        if not known or len(inputs) != len(refs or [prev]) or any(i in self.broken for i in inputs):
            self.broken.add(name)
            return name
        self.grow(path)
        refs = {ph: self.refmap[ph] for ph in _REF.findall(repr(pending))} if pending is not None else {}
        self.nodes.append(Node(len(self.nodes), name, layer, inputs, path, frame.via, share, frame.blocks,
                               pending, frame.args if pending is not None else None, refs))
        return name

    def hint(self, word: str, names: Any) -> str:
        """A "did you mean" for the first 20 unknown names (thousands would cost
        names × references)."""
        if self.hints <= 0:
            return ""
        self.hints -= 1
        return did_you_mean(word, names)

    def size_with(self, name: str, args: dict[str, Any], depth: int) -> int:
        """Layers block `name` expands to with these arguments (each `repeat:` and `block:`
        substituted; capped just past MAX_LAYERS; unknowns count as one layer)."""
        try:
            key: tuple = (name, tuple(sorted((k, repr(v)[:200]) for k, v in args.items())))
        except TypeError:
            return 1
        if key in self.bound:
            return self.bound[key]
        if depth > MAX_BLOCK_DEPTH:
            return MAX_LAYERS + 1
        self.bound[key] = 1  # in progress: a block reaching itself is caught by the depth limit
        total = 0
        for item in self.header.blocks[name].layers:
            count = 1
            if isinstance(item, dict) and "block" in item:
                try:
                    child, rep, given = (substitute(item.get(k, d), args) for k, d in
                                         (("block", None), ("repeat", 1), ("args", {})))
                except (SubstError, ValueError, TypeError, RecursionError):
                    child, rep, given = None, 1, {}
                rep = rep if isinstance(rep, int) and not isinstance(rep, bool) and rep > 0 else 1
                if isinstance(child, str) and child in self.header.blocks and isinstance(given, dict):
                    count = min(rep, MAX_LAYERS + 1) * self.size_with(
                        child, {**self.header.blocks[child].args, **given}, depth + 1)
            total = min(total + count, MAX_LAYERS + 1)
        self.bound[key] = total
        return total

    def grow(self, path: Path) -> None:
        """Count one step of expansion; past the limit (arguments can drive `repeat` and `block`
        beyond what the static estimate sees) the spec is refused at once."""
        self.work += 1
        if len(self.nodes) > MAX_LAYERS or self.work > 4 * MAX_LAYERS:
            raise CnnError([self.src.problem(f"the network expands to more than {MAX_LAYERS:,} layers (blocks "
                                             "repeated through their arguments); refused", path)])

    def use_block(self, item: dict, path: Path, frame: Frame, prev: str) -> str:
        try:
            use = BlockUse.model_validate(item)
        except ValidationError as exc:
            for e in exc.errors():
                msg, loc = pydantic_message(e, "block use", BlockUse)
                self.fail(msg, path + loc, item.get("name"))
            return prev
        if frame.depth >= MAX_BLOCK_DEPTH:
            self.fail(f"blocks nested deeper than {MAX_BLOCK_DEPTH} levels (does a block use itself?)", path)
            return prev
        names = [use.block] + ([use.first.block] if use.first and use.first.block else [])
        for b in names:
            if b not in self.header.blocks:
                self.fail(f"unknown block '{b}'{did_you_mean(b, self.header.blocks)}; defined blocks: "
                          f"{', '.join(self.header.blocks) or 'none'}", path + ("block",), use.name)
                return prev
        local = use.name
        if local is None:
            frame.counts[use.block] = frame.counts.get(use.block, 0) + 1
            local = f"{use.block}_{frame.counts[use.block]}"
        name = frame.prefix + local
        if not self.unique(name, path):
            return prev
        ins = self.bind(use, names, path, frame, prev, local, name)
        if ins is None:
            return prev
        cur = ins[0]
        star = (self.header.blocks[use.block].inputs or ["input"])[-1].endswith("*")
        pool = list(ins)  # a block with a list input: what the use read, then each repetition's output
        if use.repeat == 0:  # left out: its name stands for its input
            frame.scope[local] = cur
            if star:
                frame.lists[local] = self.lists[name] = pool
            return cur
        start = len(self.nodes)
        total = len(self.nodes) + sum(self.size_with(use.block, {**self.header.blocks[use.block].args, **use.args,
                                                                 **{k: v[r] for k, v in use.each.items()}}, frame.depth)
                                      for r in range(use.repeat)) if use.each else \
            len(self.nodes) + use.repeat * self.size_with(use.block, {**self.header.blocks[use.block].args, **use.args},
                                                          frame.depth)
        if total > MAX_LAYERS:  # arguments drive repeat or block: known only now, refused before expanding
            raise CnnError([self.src.problem(f"the network expands to more than {MAX_LAYERS:,} layers (blocks "
                                             "repeated through their arguments); refused", path)])
        for r in range(use.repeat):
            self.grow(path)
            first = use.first if r == 0 else None
            bname = first.block if first and first.block else use.block
            block = self.header.blocks[bname]
            base = use.args
            if first and first.block:  # a different entry block takes only the args it knows
                base = {k: v for k, v in use.args.items() if k in block.args}
            given = {**base, **{k: v[r] for k, v in use.each.items()}, **(first.args if first else {})}
            unknown = [a for a in given if a not in block.args]
            # spec arguments are visible in every block; defaults may be expressions over the others
            args = self.derived(block.args, {k: v for k, v in given.items() if k in block.args},
                                ("blocks", bname, "args"), self.header.args)
            missing = [a for a in block.args if args[a] is None]
            if unknown or missing:
                msg = "; ".join(([f"block '{bname}' has no argument {', '.join(map(repr, unknown))} (it takes: "
                                  f"{', '.join(block.args) or 'none'})"] if unknown else []) +
                                ([f"block '{bname}' needs argument {', '.join(map(repr, missing))}"] if missing else []))
                self.fail(msg, path + ("args",), name)
                return name
            if use.names:  # one name per repetition: NAME.denselayer1.…, or without a NAME Mixed_6b.…
                rep = frame.prefix + (f"{use.name}." if use.name else "") + use.names[r]
                if not self.unique(rep, path + ("names", r)):
                    return name
                self.where.setdefault(rep, path + ("names", r))
                prefix, inner_blocks = rep + ".", frame.blocks + (name, rep)
            else:
                # an index like torch's nn.Sequential when `repeat:` is written (`repeat: 1` too)
                indexed = use.repeat > 1 or "repeat" in use.model_fields_set
                prefix = f"{name}." + (f"{r}." if indexed else "")
                inner_blocks = frame.blocks + (name,) + ((f"{name}.{r}",) if indexed else ())
            wants = block.inputs or ["input"]
            lists: dict[str, list[str]] = {}
            if not star:
                ports = dict(zip(wants, [cur, *ins[1:]]))
            elif wants[-1].endswith("*"):  # the list: every tensor after the other inputs
                ports = dict(zip(wants[:-1], pool))
                lists = {wants[-1][:-1]: pool[len(wants) - 1:]}
                cur = pool[0]
            else:  # a first block without a list reads the tensors bound, one per input
                ports = dict(zip(wants, pool))
                cur = pool[0]
            inner = Frame({"input": cur, **ports}, prefix, args, frame.via + (path,), frame.depth + 1,
                          use.trainable if use.trainable is not None else frame.trainable,
                          blocks=inner_blocks, in_block=True, lists=lists)
            out = self.expand(block.layers, ("blocks", bname, "layers"), inner, cur)
            gives = block.outputs or ([block.output] if block.output else [])
            for j, o in enumerate(gives):
                if o not in inner.scope:
                    where = ("blocks", bname) + (("outputs", j) if block.outputs else ("output",))
                    self.fail(f"block '{bname}' output '{o}' is not one of its layers or inputs", where)
                    return name
            out = inner.scope[gives[0]] if gives else out
            cur = out
            if star:  # each repetition reads every earlier one's output too (DenseNet's dense block)
                if len(pool) >= MAX_LIST:
                    self.fail(f"repeat: the list grows past {MAX_LIST:,} tensors", path + ("repeat",), name)
                    return name
                pool.append(cur)
        self.where[name] = path
        frame.scope[local] = cur
        if star:  # USE*: what the use read and every repetition's output
            frame.lists[local] = self.lists[name] = pool
        for o in block.outputs or ():  # later layers read USE.NAME (the last repetition's)
            frame.scope[f"{local}.{o}"] = inner.scope[o]
        self.uses[name] = list(range(start, len(self.nodes)))
        if use.share:
            self.share_use(use.share, name, path)
        return cur

    def bind(self, use: BlockUse, blocks: list[str], path: Path, frame: Frame, prev: str, local: str,
             name: str) -> list[str] | None:
        """The tensors a use feeds its block: one per input the block declares (the first also
        what a repetition chains), resolved; a block whose last input ends in * takes every
        tensor after the others (at least one), and NAME* in the use's `inputs` gives a whole
        list. None after a located problem."""
        wants = [self.header.blocks[b].inputs or ["input"] for b in blocks]
        star = wants[0][-1].endswith("*")
        if not star and any(len(w) != len(wants[0]) or w[-1].endswith("*") for w in wants):
            self.fail(f"first: block '{blocks[1]}' reads {_count(wants[1])} inputs, block '{blocks[0]}' "
                      f"{len(wants[0])}: a first block must read as many", path + ("first", "block"), name)
            return None
        want = wants[0]
        if use.inputs is None and len(want) > 1:
            self.fail(f"block '{use.block}' reads {len(want)} inputs ({', '.join(want)}): bind them with "
                      f"inputs: [{', '.join('…' for _ in want)}]", path, name)
            return None
        if use.inputs is None:
            return [prev]
        ins = self.spread(use.inputs, frame, path + ("inputs",), local, name)
        if ins is None:
            return None
        for b, w in zip(blocks, wants):
            if w[-1].endswith("*") and len(ins) < len(w):
                self.fail(f"block '{b}' reads {len(w) - 1} input{'s' * (len(w) != 2)} and a list ({', '.join(w)}), "
                          f"the use gives {len(ins)} tensor{'s' * (len(ins) != 1)}: the list needs at least one",
                          path + ("inputs",), name)
                return None
            if not w[-1].endswith("*") and len(ins) != len(w):
                where = path + (("inputs",) if b == blocks[0] else ("first", "block"))
                self.fail(f"block '{b}' reads {len(w)} input{'s' * (len(w) > 1)} ({', '.join(w)}), "
                          f"the use gives {len(ins)}", where, name)
                return None
        return ins

    def share_use(self, other: str, name: str, path: Path) -> None:
        mine, theirs = self.uses[name], self.uses.get(other)
        if theirs is None:
            self.fail(f"share: '{other}' is not an earlier block use{self.hint(other, self.uses)}", path + ("share",),
                      name)
            return
        if len(mine) != len(theirs) or any(self.nodes[a].kind != self.nodes[b].kind
                                           for a, b in zip(mine, theirs)):
            self.fail(f"share: '{other}' has a different structure from '{name}'", path + ("share",), name)
            return
        for a, b in zip(mine, theirs):
            self.nodes[a].share = self.nodes[b].share or self.nodes[b].name


def _count(want: list[str]) -> str:
    return f"{len(want) - 1} and a list" if want[-1].endswith("*") else str(len(want))
