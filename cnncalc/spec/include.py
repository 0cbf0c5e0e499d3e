"""`include:` — blocks taken from other spec files.

``include: common/resnet_blocks.yaml`` (or a list of paths) reads the `blocks:` of another file,
as if they were written in this one. Paths are relative to the file that names them; an included
file gives blocks only (and may include others). Every message about an included block is
located in its own file (file:line:col). For hostile input: the files must lie in the folder
tree of the spec named on the command line (symbolic links resolved; absolute paths refused),
cycles are refused, nesting is at most MAX_INCLUDE_DEPTH files deep, at most MAX_INCLUDED_FILES
files are read, all of them together at most MAX_INCLUDED_BYTES; each is read like a spec
(regular files only, safe YAML, the same node and nesting limits).
"""
from __future__ import annotations

import os
from typing import Any

from cnncalc.errors import CnnError, Problem
from cnncalc.spec.source import MAX_FILE_BYTES, Path, Source, decode, parse, read_bytes

MAX_INCLUDE_DEPTH = 8                 #: a file including a file including … (the spec is depth 0)
MAX_INCLUDED_FILES = 32               #: files read through `include:`, all levels together
MAX_INCLUDED_BYTES = MAX_FILE_BYTES   #: their bytes, all together
READ = ("blocks", "include", "name", "description")  #: what an included file may hold


def with_includes(src: Source) -> Source:
    """`src` with the blocks of the files its `include:` names (and theirs) merged into its
    `blocks:`; CnnError with every located problem otherwise."""
    if not isinstance(src.data, dict) or src.data.get("include") is None:
        return src
    return _Includer(src).run()


class _Includer:
    def __init__(self, src: Source):
        self.src = src
        self.problems: list[Problem] = []
        self.loaded: set[str] = set()        # real paths read so far (a file included twice is read once)
        self.owner: dict[str, str] = {}      # block name -> the file that defines it
        self.blocks: dict[str, Any] = {}
        self.bytes = 0
        self.files: dict[Path, str] = {}     # ("blocks", name) -> the included file it comes from
        self.positions = dict(src.positions)

    def run(self) -> Source:
        src = self.src
        if src.file.startswith("<"):
            raise CnnError([src.problem("include: needs a spec read from a file (included paths are relative to "
                                        "its folder)", ("include",))])
        self.root = os.path.realpath(os.path.dirname(src.file) or ".")
        own = src.data.get("blocks")
        if isinstance(own, dict):
            self.owner.update({k: src.file for k in own})
        self.visit(src, (os.path.realpath(src.file),))
        if self.problems:
            raise CnnError(self.problems)
        data = dict(src.data)
        data["blocks"] = {**(own if isinstance(own, dict) else {}), **self.blocks} if self.blocks else own
        if data["blocks"] is None:
            del data["blocks"]
        return Source(src.file, data, self.positions, {**src.files, **self.files})

    def fail(self, where: Source, message: str, path: Path) -> None:
        self.problems.append(where.problem(message, path))

    def visit(self, src: Source, chain: tuple[str, ...]) -> None:
        """Read the files `src` includes, depth first: their blocks first, then theirs."""
        entries = src.data.get("include")
        if entries is None:
            return
        single = isinstance(entries, str)
        if single:
            entries = [entries]
        if not isinstance(entries, list):
            self.fail(src, "include: expected a path or a list of paths (e.g. common/blocks.yaml)", ("include",))
            return
        for i, entry in enumerate(entries):
            at: Path = ("include",) if single else ("include", i)
            if not isinstance(entry, str) or not entry.strip() or "\x00" in entry:
                self.fail(src, f"include: expected a file path, received {entry!r}"[:200], at)
                continue
            if os.path.isabs(entry) or entry.startswith("~"):
                self.fail(src, f"include: '{entry[:200]}' is not relative: give a path relative to this file", at)
                continue
            shown = os.path.normpath(os.path.join(os.path.dirname(src.file), entry))
            real = os.path.realpath(shown)
            if os.path.commonpath([self.root, real]) != self.root:
                self.fail(src, f"include: '{entry[:200]}' lies outside the folder of {self.src.file} (included files "
                               "must be in its folder or below; symbolic links are followed)", at)
                continue
            if real in chain:
                through = " → ".join(os.path.basename(c) for c in chain[chain.index(real):])
                self.fail(src, f"include: '{entry[:200]}' includes itself ({through} → {os.path.basename(real)})", at)
                continue
            if len(chain) > MAX_INCLUDE_DEPTH:
                self.fail(src, f"include: files included more than {MAX_INCLUDE_DEPTH} levels deep; refused", at)
                continue
            if real in self.loaded:  # a diamond: its blocks are in already
                continue
            if len(self.loaded) >= MAX_INCLUDED_FILES:
                self.fail(src, f"include: more than {MAX_INCLUDED_FILES} included files; refused", at)
                return
            self.loaded.add(real)
            try:
                raw = read_bytes(real, MAX_INCLUDED_BYTES - self.bytes, "included files (all together)")
                self.bytes += len(raw)
                other = parse(decode(raw, shown), shown)
            except CnnError as exc:
                if exc.problems and exc.problems[0].line is not None:  # a problem inside the file: located there
                    self.problems += exc.problems
                else:
                    self.fail(src, f"include: '{entry[:200]}': " + "; ".join(p.message for p in exc.problems), at)
                continue
            self.take(other, chain + (real,))

    def take(self, other: Source, chain: tuple[str, ...]) -> None:
        extra = [k for k in other.data if k not in READ]
        for k in extra:
            self.fail(other, f"'{k}' is not read from an included file: it gives blocks (and may include others); "
                             f"keep {k} in the spec that includes it", (k,))
        self.visit(other, chain)
        blocks = other.data.get("blocks", {})
        if not isinstance(blocks, dict):
            self.fail(other, "blocks: expected a mapping of block names to blocks", ("blocks",))
            return
        if not blocks and not extra and other.data.get("include") is None:
            self.fail(other, "an included file gives blocks: this one has none", ())
        for name, block in blocks.items():
            if name in self.owner:
                self.fail(other, f"block '{name}' is also defined in {self.owner[name]}: give each block one "
                                 "definition", ("blocks", name))
                continue
            self.owner[name] = other.file
            self.blocks[name] = block
            self.files[("blocks", name)] = other.file
            prefix = ("blocks", name)
            for path, pos in other.positions.items():
                if path[:2] == prefix:
                    self.positions[path] = pos
