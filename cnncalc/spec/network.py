"""The expanded network: one `Node` per layer with its resolved inputs and where it is written."""
from __future__ import annotations

from dataclasses import dataclass, field

from pydantic import ValidationError

from cnncalc.errors import CnnError, Problem
from cnncalc.layers import REGISTRY, Layer
from cnncalc.spec.messages import _located, pydantic_message
from cnncalc.spec.schema import Header
from cnncalc.spec.source import Path, Source
from cnncalc.spec.subst import SubstError, substitute


@dataclass
class Node:
    """One layer of the expanded network, with its resolved names and its origin."""

    index: int
    name: str
    layer: Layer | None
    """None while a field reads the input (`${in.channels // 2}`): see `resolve`."""
    inputs: list[str]
    path: Path
    via: tuple[Path, ...] = ()
    share: str | None = None
    blocks: tuple[str, ...] = ()
    """The block uses it lies in, outermost first, each repetition its own level:
    ('layer1', 'layer1.0') for layer1.0.conv1."""
    pending: dict | None = None
    """The layer's fields, some still ${…} over `in.*`, and the arguments they may use."""
    args: dict | None = None
    refs: dict[str, tuple[str, str]] = field(default_factory=dict)
    """Placeholders ref__N in `pending` → (the earlier layer or 'input', the size it reads)."""

    @property
    def kind(self) -> str:
        return self.layer.type if self.layer is not None else str((self.pending or {}).get("type"))

    def resolve(self, shape: tuple[int, ...], src: Source, shapes: dict[str, tuple[int, ...]] | None = None) -> Layer:
        """The layer, its `in.*` expressions evaluated for an input of this shape and its sizes
        of other tensors (`${input.height}`, `${LAYER.width}`) from `shapes`; CnnError with the
        located problems otherwise."""
        if self.layer is not None:
            return self.layer
        from cnncalc.spec.subst import input_args

        pending = self.pending or {}
        cls = REGISTRY[pending["type"]]
        try:
            refs = {}
            for ph, (name, what) in self.refs.items():
                if name not in (shapes or {}):
                    raise SubstError(f"{name}.{what}: '{name}' has no shape (its own problem is listed)")
                sizes = input_args((shapes or {})[name], "")
                if what not in sizes:
                    raise SubstError(f"{name}.{what}: a {len((shapes or {})[name])}-D tensor offers "
                                     f"{', '.join(f'{name}.{k}' for k in sizes)}")
                refs[ph] = sizes[what]
            item = substitute(pending, {**(self.args or {}), **input_args(shape), **refs})
            if isinstance(item.get("split_sizes"), list) and item.get("split_piece") in range(len(item["split_sizes"])):
                item = self.piece(item, src)  # a piece of a split whose sizes read shapes
            return cls.model_validate(item)
        except SubstError as exc:
            raise CnnError([src.problem(str(exc), self.path, self.name, index=self.index)]) from None
        except ValidationError as exc:
            raise CnnError([src.problem(*_located(pydantic_message(e, cls.__name__, cls), self.path), self.name,
                                        index=self.index) for e in exc.errors()]) from None

    def piece(self, item: dict, src: Source) -> dict:
        """Piece `split_piece` of a split whose sizes were expressions, now numbers: the narrow layer's
        start, length and sizes_sum. Sizes that are not positive integers are reported by the
        first piece (the others fail silently: one message per mistake)."""
        item = dict(item)
        sizes, i = item.pop("split_sizes"), item.pop("split_piece")
        bad = [(j, v) for j, v in enumerate(sizes)
               if not (isinstance(v, int) and not isinstance(v, bool) and v >= 1)]
        if bad:
            raise CnnError([src.problem(f"sizes.{j}: expected a positive integer, received {v!r}"[:200],
                                        self.path + ("sizes", j), self.name, index=self.index)
                            for j, v in bad] if i == 0 else [])
        return {**item, "start": sum(sizes[:i]), "length": sizes[i], "sizes_sum": sum(sizes)}


@dataclass
class Network:
    header: Header
    nodes: list[Node]
    outputs: list[str]
    source: Source
    problems: list[Problem] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.header.name or self.source.file
