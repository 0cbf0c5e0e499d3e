"""The layer vocabulary for people (`cnncalc layers`) and for editors (`cnncalc schema`)."""
from __future__ import annotations

import ast
import functools
import inspect
import json
import os
import types
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import WithJsonSchema
from pydantic.fields import FieldInfo

from cnncalc.errors import CnnError, did_you_mean
from cnncalc.layers import REGISTRY, Layer
from cnncalc.spec.schema import PIECES, BlockDef, BlockUse, Header

COMMON = ("type", "name", "inputs", "trainable", "share")


def attribute_docs(cls: type) -> dict[str, str]:
    """Field docstrings (the string after `field: type = default`) of a class and its bases,
    read from the source only when `layers`/`schema` need them (keeps start-up fast)."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if klass.__module__.startswith("cnncalc"):
            docs.update(_own_attribute_docs(klass))
    return docs


@functools.cache
def _class_bodies(module: str) -> dict[str, list[ast.stmt]]:
    """Every class body of a module by qualified name, from one parse of its source (finding each
    class's source alone re-parses the whole module per class: 2 s for a schema, #30)."""
    import sys

    try:
        tree = ast.parse(inspect.getsource(sys.modules[module]))
    except (KeyError, OSError, TypeError, SyntaxError):
        return {}
    out: dict[str, list[ast.stmt]] = {}

    def walk(body: list[ast.stmt], prefix: str) -> None:
        for node in body:
            if isinstance(node, ast.ClassDef):
                out[prefix + node.name] = node.body
                walk(node.body, f"{prefix}{node.name}.")
    walk(tree.body, "")
    return out


@functools.cache
def _own_attribute_docs(klass: type) -> dict[str, str]:
    """The field docstrings written in `klass`'s own body (each module's source parsed once per
    process: a schema reads every layer class and each of its bases). Read-only: callers copy."""
    docs: dict[str, str] = {}
    body = _class_bodies(klass.__module__).get(klass.__qualname__)
    if body is None:
        return docs
    for a, b in zip(body, body[1:]):
        if (isinstance(a, ast.AnnAssign) and isinstance(a.target, ast.Name) and isinstance(b, ast.Expr)
                and isinstance(b.value, ast.Constant) and isinstance(b.value.value, str)):
            docs[a.target.id] = inspect.cleandoc(b.value.value)
    return docs


def fields_of(cls: type[Layer], docs: bool = True) -> list[tuple[str, str, str, str]]:
    """(name, type, default, description) of a layer class' own fields; `docs=False` leaves the
    descriptions empty (the table prints none, and reading them parses the modules' source).
    Each type is read from the field's annotation (`_prop`), as the JSON Schema would state it,
    without building the class's schema (114 builds were most of `cnncalc layers`, #30); a class
    with an annotation `_prop` does not know falls back to its JSON Schema."""
    out = []
    own = attribute_docs(cls) if docs else {}
    props = _props(cls)
    for attr, f in cls.model_fields.items():
        name = f.alias or attr  # as the spec writes it (reshape's `shape`)
        if name in COMMON:
            continue
        kind = _kind(props.get(name, {}))
        default = "required" if f.is_required() else repr(f.default)
        out.append((name, kind, default, own.get(attr, "")))
    return out


@functools.cache
def _props(cls: type[Layer]) -> dict[str, dict]:
    """The JSON-Schema property of each field of `cls` that `_kind` reads (type, enum, const,
    anyOf, items), from the annotations; the class's JSON Schema when one is not understood."""
    out = {}
    for attr, f in cls.model_fields.items():
        prop = _prop(f.annotation, f.metadata) if f.json_schema_extra is None else None
        if prop is None:
            return {name: prop for name, prop in cls.model_json_schema()["properties"].items()}
        out[f.alias or attr] = prop
    return out


_SIMPLE = {int: "integer", float: "number", str: "string", bool: "boolean", type(None): "null"}


def _prop(annotation: Any, metadata: list | tuple = ()) -> dict | None:
    """What pydantic's JSON Schema says of `annotation` as far as `_kind` prints it, or None where
    this does not know (a class, a constraint that changes the type, a serializer)."""
    for m in metadata:
        if isinstance(m, WithJsonSchema):
            return m.json_schema if m.mode in (None, "validation") and isinstance(m.json_schema, dict) else None
        if isinstance(m, FieldInfo):
            if m.json_schema_extra is not None:
                return None
            return _prop(annotation, m.metadata)
        if type(m).__module__ not in ("annotated_types", "pydantic._internal._fields", "pydantic.types") or \
                type(m).__name__ not in ("Ge", "Gt", "Le", "Lt", "MinLen", "MaxLen", "AllowInfNan",
                                         "_PydanticGeneralMetadata", "Strict"):
            return None
    if annotation in _SIMPLE:
        return {"type": _SIMPLE[annotation]}
    if annotation is Any:
        return {}
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Annotated:
        return _prop(args[0], args[1:])
    if origin is Literal:
        if not all(type(a) in (str, int, bool) for a in args):
            return None
        return {"const": args[0]} if len(args) == 1 else {"enum": list(args)}
    if origin is list and len(args) == 1:
        item = _prop(args[0])
        return None if item is None else {"type": "array", "items": item}
    if origin in (Union, types.UnionType):
        alts = [_prop(a) for a in args]
        return None if any(a is None for a in alts) else {"anyOf": alts}
    return None


def _kind(prop: dict) -> str:
    if "enum" in prop:
        return " | ".join(map(repr, prop["enum"]))
    if "const" in prop:
        return repr(prop["const"])
    if "anyOf" in prop:
        return " | ".join(_kind(p) for p in prop["anyOf"])
    if prop.get("type") == "array":
        return f"list[{_kind(prop.get('items', {}))}]"
    return prop.get("type", "any")


def formula(cls: type[Layer]) -> str:
    return " ".join(line.strip() for line in (cls.__doc__ or "").strip().splitlines())


def describe(type_name: str) -> str:
    from cnncalc.safe import markup as escape

    if type_name in PIECES:  # chunk, split: spec entries that expand to narrow layers
        piece = PIECES[type_name]
        doc = " ".join((piece.__doc__ or "").split())
        fields = [f"  {n}: " + ("required" if f.is_required() else f"= {f.default}")
                  for n, f in piece.model_fields.items() if n != "type"]
        return "\n".join([f"[bold]{type_name}[/bold] (several outputs)", "", escape(doc), "", "fields:",
                          *map(escape, fields)])
    cls = REGISTRY.get(type_name)
    if cls is None:
        raise CnnError.single(f"unknown layer type '{type_name}'{did_you_mean(type_name, [*REGISTRY, *PIECES])}")

    lines = [f"[bold]{type_name}[/bold] ({cls.category})", "", escape(formula(cls)), "", "fields:"]
    for name, kind, default, desc in fields_of(cls):
        lines.append(escape(f"  {name}: {kind} = {default}" + (f"  — {desc}" if desc else "")))
    lines.append("  common: name, inputs, trainable (default true), share")
    lines += ["", "memory:"] + [escape(f"  {what}: {doc}") for what, doc in memory_rules(cls)]
    return "\n".join(lines)


def memory_rules(cls: type[Layer]) -> list[tuple[str, str]]:
    """The memory model of a type, from the docstrings of its memory rules."""
    def doc(rule: str) -> str | None:
        fn = getattr(cls, rule, None)
        if fn is None or fn is getattr(Layer, rule, None) or not fn.__doc__:
            return None
        return " ".join(line.strip() for line in (fn.__doc__ or "").strip().split("\n\n")[0].splitlines()) or None

    saved = doc("saved") or "nothing (its backward needs no values)"
    rules = [("kept for backward", saved)]
    if doc("aliases"):
        rules.append(("no new output", doc("aliases") or ""))
    if doc("scratch"):
        rules.append(("temporaries in the forward call", doc("scratch") or ""))
    if doc("backward_scratch"):
        rules.append(("temporaries in the backward call", doc("backward_scratch") or ""))
    if doc("middle") and doc("middle") != doc("scratch"):
        rules.append(("intermediate result", doc("middle") or ""))
    if cls.passes_gradient is True:
        rules.append(("backward", "passes the output's gradient on to the inputs (no new gradient tensor)"))
    if not cls.memory_exact:
        rules.append(("verify", "does not judge this type's memory (an estimate)"))
    return rules


def print_vocabulary(console: Any) -> None:
    from rich.table import Table
    from rich.text import Text

    table = Table(title="cnncalc layer types (fields mirror torch.nn; `cnncalc layers TYPE` for one)",
                  show_lines=True, title_justify="left")
    table.add_column("type", style="bold", no_wrap=True)
    table.add_column("fields (default)", ratio=2)
    table.add_column("rules", ratio=3)
    if console.width > 200:  # piped (unbounded width): wrap the text columns at a readable width
        table.width = 160
    for name in sorted(REGISTRY, key=lambda n: (REGISTRY[n].category, n)):
        cls = REGISTRY[name]
        fields = ", ".join(f"{n}" + ("" if d == "required" else f"={d}") for n, _, d, _ in fields_of(cls, docs=False))
        table.add_row(name, Text(fields or "–"), Text(formula(cls)))  # plain text: no markup to parse
    console.print(table)
    console.print("Every layer also takes: name, inputs (earlier layer names), trainable (false freezes), "
                  "share (reuse an earlier layer's weights).\nCounting: params = learnable elements counted "
                  "once; MACs = conv/linear multiply-accumulates (bias excluded); FLOPs = 2·MACs; "
                  "element-wise work is counted apart.", width=min(console.width, 160))


def spec_schema() -> dict:
    """JSON Schema (draft 2020-12) of a spec file, built from the same classes that validate it.
    Built once per process (it takes seconds); each call returns a fresh copy the caller may change."""
    return json.loads(_spec_schema_json())


def spec_schema_text(cache: bool = True) -> str:
    """`spec_schema()` as `cnncalc schema` prints it (indented JSON). Building it costs pydantic a
    schema of every layer class (most of the command, #30), so with `cache` the text is kept in
    `schema_cache_dir()`, under a key of everything it is made from: the bytes of every source
    file of the package (its version included), pydantic's, pydantic-core's and Python's
    versions. A file that `_read_cached` does not accept is rebuilt; a folder that cannot be
    written is no error (the schema is then built each time)."""
    key, folder = (_source_key(), schema_cache_dir()) if cache else (None, "")
    if key is None or not folder:  # no sources to key it on (a zip, bytecode only), or no home: not cached
        return json.dumps(spec_schema(), indent=2)
    path = os.path.join(folder, f"schema-{key}.json")
    text = _read_cached(path)
    if text is None:
        text = json.dumps(spec_schema(), indent=2)
        _write_cached(folder, path, text)
    return text


def schema_cache_dir() -> str:
    """$CNNCALC_CACHE_DIR, else $XDG_CACHE_HOME/cnncalc, else ~/.cache/cnncalc; empty (no cache)
    where the home folder is unknown or the folder given is relative (never a folder relative to
    wherever the command runs)."""
    if os.environ.get("CNNCALC_CACHE_DIR"):
        return os.environ["CNNCALC_CACHE_DIR"] if os.path.isabs(os.environ["CNNCALC_CACHE_DIR"]) else ""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "cnncalc") if os.path.isabs(base) else ""


def _source_key(root: str | None = None) -> str | None:
    """A hash of what the schema is made of: the bytes of every .py file of the package at `root`
    (default: this cnncalc's; its version is in __init__.py), pydantic's, pydantic-core's and
    Python's versions;
    None where the package has no source files to read."""
    import hashlib
    import sys

    import pydantic

    root = root or os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    import pydantic_core

    h = hashlib.sha256(f"{pydantic.VERSION}\0{pydantic_core.__version__}\0{sys.version}\0".encode())
    read = False
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(files):
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                h.update(os.path.relpath(path, root).encode() + b"\0")
                with open(path, "rb") as fh:
                    h.update(fh.read())
                h.update(b"\0")
                read = True
    return h.hexdigest()[:32] if read else None


MAX_CACHED = 16 << 20  #: bytes; a larger file at the cache's path is not read


def _read_cached(path: str) -> str | None:
    """The text of a cache file (first line: the SHA-256 of the rest), or None when missing, not
    a regular file (a FIFO would block), too large, not intact, or not what `json.dumps` writes
    (printable ASCII JSON: whoever else can write the folder cannot make the command print
    control characters or anything but a JSON object)."""
    import hashlib
    import re
    import stat

    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_CACHED:
                return None
            with os.fdopen(fd, "rb", closefd=False) as fh:
                raw = fh.read(MAX_CACHED + 1)
        finally:
            os.close(fd)
        digest, _, text = raw.decode("ascii").partition("\n")
    except (OSError, UnicodeDecodeError):
        return None
    if hashlib.sha256(text.encode()).hexdigest() != digest or re.search(r"[^\x20-\x7e\n]", text):
        return None
    try:
        return text if isinstance(json.loads(text), dict) else None
    except ValueError:
        return None


def _write_cached(folder: str, path: str, text: str) -> None:
    """Write atomically (a temporary file in the same folder, renamed over the path), and remove
    this cache's files of other keys not used for a week (older sources; another installation's
    in use stay); any OSError leaves things as they are."""
    import hashlib
    import tempfile

    tmp = None
    try:
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".schema-", suffix=".tmp", dir=folder)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(hashlib.sha256(text.encode()).hexdigest() + "\n" + text)
        os.replace(tmp, path)
        tmp = None
        import re
        import time

        for name in os.listdir(folder):  # its own older keys, a week unused (another install's stay)
            old = os.path.join(folder, name)
            if (re.fullmatch(r"schema-[0-9a-f]{32}\.json", name) and name != os.path.basename(path)
                    and os.path.isfile(old) and os.path.getmtime(old) < time.time() - 7 * 86400):
                os.remove(old)
    except OSError:
        pass
    finally:
        if tmp is not None:
            try:
                os.remove(tmp)
            except OSError:
                pass


@functools.cache
def _spec_schema_json() -> str:
    from pydantic import Field, TypeAdapter

    classes = sorted(set(REGISTRY.values()), key=lambda c: c.__name__)
    union = Annotated[Union[tuple(classes)], Field(discriminator="type")]  # type: ignore[valid-type]
    item_schema = TypeAdapter(union).json_schema(ref_template="#/$defs/{model}")  # type: ignore[arg-type]
    defs = item_schema.pop("$defs", {})
    defs["Layer"] = item_schema
    use = BlockUse.model_json_schema(ref_template="#/$defs/{model}")
    defs.update(use.pop("$defs", {}))
    defs["BlockUse"] = use
    schema = Header.model_json_schema(ref_template="#/$defs/{model}")
    defs.update(schema.pop("$defs", {}))
    for piece in PIECES.values():
        piece_schema = piece.model_json_schema(ref_template="#/$defs/{model}")
        defs.update(piece_schema.pop("$defs", {}))
        defs[piece.__name__] = piece_schema
    item = {"anyOf": [{"$ref": "#/$defs/Layer"}, {"$ref": "#/$defs/BlockUse"},
                      *({"$ref": f"#/$defs/{piece.__name__}"} for piece in PIECES.values())]}
    schema["properties"]["layers"]["items"] = item
    schema["properties"]["input"] = {
        "description": "Input without batch: channels then sizes, e.g. 3x224x224 or [3, 224, 224].",
        "anyOf": [{"type": "string", "pattern": r"^\s*\d+(\s*[x×,]\s*\d+){0,4}\s*$"},
                  {"type": "array", "items": {"type": "integer", "minimum": 1}, "minItems": 1, "maxItems": 5}]}
    # inside blocks, values may be "$arg" / "${expr}" strings: layers there are checked after substitution
    defs["BlockDef"]["properties"]["layers"]["items"] = {
        "type": "object", "anyOf": [{"required": ["type"]}, {"required": ["block"]}]}
    when = {"description": "Leave this entry out when false (e.g. \"${stride != 1 or cin != cout}\"); its name then "
                           "stands for its input.", "anyOf": [{"type": "boolean"}, {"type": "string", "pattern": r"^\$"}]}
    substituted = {"type": "string", "pattern": r"^\$(\{.*\}|[A-Za-z_][A-Za-z0-9_]*)$",
                   "description": "a '$arg' or '${expr}' over the spec's (or block's) arguments"}
    def items_too(prop: dict) -> dict:
        """The items of a list (sizes, paddings) may be substitutions as well ("${in.channels // 2}")."""
        if isinstance(prop.get("items"), dict):
            prop["items"] = {"anyOf": [items_too(prop["items"]), substituted]}
        for alt in prop.get("anyOf", []):
            if isinstance(alt, dict):
                items_too(alt)
        return prop

    wrapped: list[type] = [*classes, BlockUse, *PIECES.values()]
    for cls in wrapped:
        props = defs.get(cls.__name__, {}).get("properties", {})
        for key, prop in list(props.items()):  # any value but the type may be a substitution
            if key != "type":
                props[key] = {"anyOf": [items_too(prop), substituted]}
        props["when"] = when
    documented: list[type] = [*classes, Header, BlockUse, BlockDef, *PIECES.values()]
    for cls in documented:
        target = schema if cls is Header else defs.get(cls.__name__, {})
        for field_name, doc in attribute_docs(cls).items():
            target.get("properties", {}).get(field_name, {}).setdefault("description", doc)
    schema.update({"$schema": "https://json-schema.org/draft/2020-12/schema",
                   "$id": "https://cnncalc.dev/schema/spec.json", "$defs": defs})
    return json.dumps(schema)
