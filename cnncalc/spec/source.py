"""Reading spec files safely and remembering where every YAML node came from.

The YAML is composed once with the safe loader, then turned into plain Python data by a
walk that records ``path -> (line, column)`` for every node, rejects duplicate keys and
non-standard tags, refuses alias bombs and absurd nesting, and reads YAML 1.1 surprises
(``yes``/``on``, octal ``010``, sexagesimal ``1:30``) as plain strings so that the schema,
not the parser, decides what they mean.
"""
from __future__ import annotations

import errno
import os
import re
import stat
import sys
from dataclasses import dataclass, field
from typing import Any

import yaml

from cnncalc.errors import CnnError, Problem

MAX_FILE_BYTES = 2 * 1024 * 1024     #: larger spec files are refused
MAX_NODES = 100_000                  #: YAML nodes after alias expansion
MAX_DEPTH = 64                       #: nesting of mappings/sequences

Path = tuple
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_YAML = "tag:yaml.org,2002:"
_DECIMAL = re.compile(r"^[-+]?(0|[1-9][0-9_]*)$")


@dataclass
class Source:
    """A parsed document: plain data plus the position of every node by its path."""

    file: str
    data: Any
    positions: dict[Path, tuple[int, int]] = field(default_factory=dict)
    files: dict[Path, str] = field(default_factory=dict)
    """Paths whose nodes come from another file (blocks taken in by `include:`) → that file."""

    def locate(self, path: Path) -> tuple[int | None, int | None]:
        """Line and column of the deepest node on ``path`` that exists."""
        path = tuple(path)
        while path:
            if path in self.positions:
                return self.positions[path]
            path = path[:-1]
        return self.positions.get((), (None, None))

    def problem(self, message: str, path: Path = (), layer: str | None = None,
                severity: str = "error", index: int | None = None) -> Problem:
        line, col = self.locate(path)
        return Problem(message, self.file_of(path), line, col, layer, severity, index)

    def file_of(self, path: Path) -> str:
        """The file the node at `path` was read from: this one, or an included one."""
        if self.files:
            for n in range(len(path), 0, -1):
                if tuple(path[:n]) in self.files:
                    return self.files[tuple(path[:n])]
        return self.file


def read_bytes(path: str, limit: int = MAX_FILE_BYTES, what: str = "specs") -> bytes:
    """At most `limit` bytes of a regular file, or of standard input for '-', with a plain
    message for every way that can fail (a pipe, device or socket would block or never end)."""
    def fail(msg: str, usage: bool = True) -> CnnError:  # a path that cannot be read is a command-line mistake
        return CnnError.single(msg, exit_code=2 if usage else 1, file=path)

    if path == "-":
        raw = sys.stdin.buffer.read(limit + 1)
    else:
        try:
            st = os.stat(path)
            if stat.S_ISDIR(st.st_mode):
                raise fail("is a directory, expected a file")
            if not stat.S_ISREG(st.st_mode):
                raise fail("not a regular file (a pipe, device or socket); give a file, or - for standard input")
            if st.st_size > limit:
                raise fail(f"file is {st.st_size:,} bytes; {what} larger than {limit:,} bytes are refused", False)
            with open(path, "rb") as fh:
                raw = fh.read(limit + 1)
        except FileNotFoundError:
            raise fail("no such file" + (" (a broken symbolic link)" if os.path.islink(path) else "")) from None
        except OSError as exc:
            why = "a symbolic link loop" if exc.errno == errno.ELOOP else exc.strerror or str(exc)
            raise fail(f"cannot read file: {why}") from None
    if len(raw) > limit:
        raise fail(f"more than {limit:,} bytes; larger {what} are refused", False)
    return raw


def read_text(path: str) -> str:
    """Read a spec (a file, or standard input for '-') as UTF-8 text."""
    return decode(read_bytes(path), "<stdin>" if path == "-" else path)


def decode(raw: bytes, file: str) -> str:
    if len(raw) > MAX_FILE_BYTES:
        raise CnnError.single(f"more than {MAX_FILE_BYTES:,} bytes; larger specs are refused", file=file)
    if b"\x00" in raw:
        raise CnnError.single("binary file (contains NUL bytes), expected a YAML text file", file=file)
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        col = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise CnnError([Problem(f"not UTF-8 text (byte 0x{raw[exc.start]:02x})", file, line, col)]) from None


def parse(text: str, file: str = "<spec>") -> Source:
    """Compose the YAML safely and convert it, recording positions."""
    if not text.strip():
        raise CnnError.single("file is empty, expected a mapping with 'input' and 'layers'", file=file)
    try:
        _check_depth(text, file)  # libyaml's composer recurses in C: refuse deep nesting first
        node = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        msg = " ".join(s for s in (exc.context, exc.problem) if s) or "invalid YAML"
        line, col = (mark.line + 1, mark.column + 1) if mark else (None, None)
        lines = text.splitlines()
        if mark and mark.line < len(lines) and lines[mark.line][mark.column:mark.column + 1] == "\t":
            msg = "a tab character: YAML indents with spaces only"
        raise CnnError([Problem(f"YAML syntax error: {msg}", file, line, col)]) from None
    except yaml.YAMLError as exc:
        raise CnnError.single(f"YAML error: {exc}", file=file) from None
    except RecursionError:
        raise CnnError.single(f"YAML nested too deeply (limit {MAX_DEPTH})", file=file) from None
    if node is None:
        raise CnnError.single("file is empty, expected a mapping with 'input' and 'layers'", file=file)
    src = Source(file, None)
    walker = _Walker(src)
    src.data = walker.convert(node, (), 0)
    if not isinstance(src.data, dict):
        raise CnnError([src.problem(f"top level is a {_kind(src.data)}, expected a mapping with 'input' and 'layers'")])
    return src


def _check_depth(text: str, file: str) -> None:
    """Walk the parser's event stream (a non-recursive state machine) to bound nesting."""
    depth = 0
    for event in yaml.parse(text, Loader=_Loader):
        if isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
            depth += 1
            if depth > MAX_DEPTH:
                m = event.start_mark
                raise CnnError([Problem(f"YAML nested deeper than {MAX_DEPTH} levels; refused", file,
                                        m.line + 1, m.column + 1)])
        elif isinstance(event, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
            depth -= 1


def load(path: str) -> Source:
    """The spec at `path` ('-': standard input, named <stdin> in messages)."""
    return parse(read_text(path), "<stdin>" if path == "-" else path)


def _kind(value: Any) -> str:
    return {list: "list", dict: "mapping", str: "string", int: "number", float: "number",
            bool: "boolean", type(None): "null"}.get(type(value), type(value).__name__)


class _Walker:
    def __init__(self, src: Source):
        self.src = src
        self.count = 0

    def fail(self, node: yaml.Node, message: str) -> CnnError:
        m = node.start_mark
        return CnnError([Problem(message, self.src.file, m.line + 1, m.column + 1)])

    def convert(self, node: yaml.Node, path: Path, depth: int) -> Any:
        self.count += 1
        if self.count > MAX_NODES:
            raise self.fail(node, f"more than {MAX_NODES:,} YAML nodes after expanding aliases; refused")
        if depth > MAX_DEPTH:
            raise self.fail(node, f"YAML nested deeper than {MAX_DEPTH} levels; refused")
        self.src.positions[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
        if isinstance(node, yaml.ScalarNode):
            return self.scalar(node)
        if isinstance(node, yaml.SequenceNode):
            self.check_tag(node, "seq")
            return [self.convert(child, path + (i,), depth + 1) for i, child in enumerate(node.value)]
        self.check_tag(node, "map")
        out: dict = {}
        for key_node, value_node in self.pairs(node):
            if not isinstance(key_node, yaml.ScalarNode):
                raise self.fail(key_node, "mapping keys must be plain names")
            key = self.scalar(key_node)
            if not isinstance(key, (str, int)):
                key = str(key)
            if key in out:
                first = self.src.positions.get(path + (key,), (None, None))[0]
                raise self.fail(key_node, f"duplicate key '{key}' (first defined on line {first})")
            out[key] = self.convert(value_node, path + (key,), depth + 1)
        return out

    def pairs(self, node: yaml.MappingNode, within: tuple = ()) -> list:
        """Mapping pairs with YAML merge keys (``<<: *base``) applied: explicit keys win, then
        the first merged mapping that has the key. Merged pairs count against the node limit
        as they are produced; a mapping that merges itself is refused."""
        if any(node is n for n in within):
            raise self.fail(node, "a merge key ('<<') refers to the mapping it is in")
        merged, own = [], []
        for k, v in node.value:
            if k.tag == _YAML + "merge":
                sources = v.value if isinstance(v, yaml.SequenceNode) else [v]
                for s in sources:
                    if not isinstance(s, yaml.MappingNode):
                        raise self.fail(s, "'<<' merges mappings only")
                    merged.extend(self.pairs(s, within + (node,)))
                    self.count += len(s.value)
                    if self.count > MAX_NODES:
                        raise self.fail(s, f"more than {MAX_NODES:,} YAML nodes after expanding merge keys; refused")
            else:
                own.append((k, v))
        seen = {k.value for k, _ in own if isinstance(k, yaml.ScalarNode)}
        out = []
        for k, v in merged:
            if k.value not in seen:
                seen.add(k.value)
                out.append((k, v))
        return out + own

    def check_tag(self, node: yaml.Node, kind: str) -> None:
        if node.tag != _YAML + kind:
            raise self.fail(node, f"tag '{node.tag}' is not allowed (only plain YAML is read)")

    def scalar(self, node: yaml.ScalarNode) -> Any:
        tag, text = node.tag, node.value
        if tag == _YAML + "str":
            return text
        if tag == _YAML + "null":
            return None
        if tag == _YAML + "bool":
            return {"true": True, "false": False}.get(text.lower(), text)  # yes/on/off stay strings
        if tag == _YAML + "int":
            if not _DECIMAL.match(text):
                return text  # 010, 0x1f, 1:30 stay strings: the schema refuses them
            if len(text) > 40:
                raise self.fail(node, f"a number with {len(text.lstrip('+-'))} digits is too large to be a size "
                                      "or a count (sizes are at most 2^40)")
            return int(text.replace("_", ""))
        if tag == _YAML + "float":
            try:
                return _Loader.yaml_constructors[tag](_Loader(""), node)
            except ValueError:
                raise self.fail(node, f"'{text[:60]}' is not a number") from None
        if tag in (_YAML + "timestamp", _YAML + "binary", _YAML + "value", _YAML + "yaml"):
            return text
        raise self.fail(node, f"tag '{tag}' is not allowed (only plain YAML is read)")
