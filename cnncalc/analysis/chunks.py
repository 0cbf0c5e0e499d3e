"""A spec's `chunk` and `split` as torch runs them: one torch.chunk or torch.split (views of the
pieces), not a narrow per piece.

`{name: s, type: chunk, chunks: n}` expands to rows s.0, s.1, … (narrows by torch.chunk's
rule), `{name: s, type: split, sizes: [a, b]}` likewise (narrows of a and b channels). Built and
measured as one torch.chunk (torch.split), its backward (derivatives.yaml: split →
split_with_sizes_backward) waits until every piece's gradient is in, then makes the input's
gradient once: zeros for each piece with no gradient, and their concatenation

    at the chunk's backward: the pieces' gradients + zeros of the pieces without one + the input's gradient

after which the pieces' gradients are freed (one narrow per piece would make an input-sized
gradient for each piece and add them). torch forbids modifying a multi-output view in place
while training, so a chunk or split one of whose pieces an in-place layer reads (directly or
through a view of it) is built and modelled as narrows."""
from __future__ import annotations

from typing import Any


def chunk_groups(rows: list[Any]) -> dict[int, tuple[int | list[int], list[tuple[int, str]]]]:
    """The spec's chunks and splits among `rows` (consecutive narrow rows s.0, s.1, … with
    `chunks`, or with `sizes_sum` covering every piece, of one input): first row's index →
    (chunks, or the split's sizes; [(piece number, row name)…]); none whose piece an in-place
    layer reads, directly or through views of it."""
    groups: dict[tuple[str, str, int, bool], list[tuple[int, int, str]]] = {}
    for r in rows:
        layer = r.layer
        if layer.type == "narrow" and "." in r.name and (layer.chunks is not None or layer.sizes_sum is not None):
            prefix, piece = r.name.rsplit(".", 1)
            if layer.chunks is not None:
                key = (prefix, r.inputs[0], layer.chunks, True)
                groups.setdefault(key, []).append((r.index, layer.chunk or 0, r.name))
            elif piece.isdigit():
                key = (prefix, r.inputs[0], layer.sizes_sum, False)
                groups.setdefault(key, []).append((r.index, int(piece), r.name))
    if not groups:
        return {}
    spans = {r.name: (r.layer.start, r.output_shape[1]) for r in rows if r.type == "narrow"}
    # the tensors that view each piece's storage (narrow, permute, a flatten that views, in-place
    # layers): torch refuses an in-place layer on any of them while training
    from cnncalc.analysis.strides import reshape_copies

    root = {n: n for members in groups.values() for _, _, n in members}
    in_place: set[str] = set()
    for r in rows:
        src = r.inputs[0] if r.inputs else None
        if src in root:
            if getattr(r.layer, "inplace", False) is True:
                in_place.add(root[src])
            if r.layer.aliases(True) and not (r.type in ("flatten", "reshape") and reshape_copies(r.ctx)):
                root[r.name] = root[src]
    out: dict[int, tuple[int | list[int], list[tuple[int, str]]]] = {}
    for (_, _, chunks, is_chunk), members in groups.items():
        at = [i for i, _, _ in members]
        names = [n for _, _, n in members]
        if at != list(range(at[0], at[0] + len(at))) or in_place.intersection(names):
            continue
        if is_chunk:
            out[at[0]] = (chunks, [(k, n) for _, k, n in members])
        else:  # a split: every piece, in order, each starting where the one before ends
            sizes = [spans[n][1] for n in names]
            if ([k for _, k, _ in members] == list(range(len(members))) and sum(sizes) == chunks
                    and [spans[n][0] for n in names] == [sum(sizes[:k]) for k in range(len(sizes))]):
                out[at[0]] = (sizes, [(k, n) for _, k, n in members])
    return out
