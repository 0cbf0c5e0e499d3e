"""The pieces of attention written out op by op (timm's LambdaNet, EfficientFormer, LeViT): a
batched matrix product of two tensors, and a learnable attention bias gathered from a table by
relative position."""

from math import prod
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, field_validator

from cnncalc.errors import LayerError
from cnncalc.layers.base import Axes, Ctx, Flag, Kit, Layer, PosInt, Saved, Shape, fmt_shape, per_axis
from cnncalc.layers.field import RF
from cnncalc.layers.routes import TorchCall, TorchForm, Traced, Unsupported


def _matmul(call: TorchCall, a: Any, b: Any, out: Any = None) -> tuple[Any, list[Any]]:
    if not (isinstance(a, Traced) and isinstance(b, Traced)) or out is not None:
        raise Unsupported("matmul of something other than two tensors")
    return {"type": "matmul"}, [a, b]


class MatMul(Layer):
    """Batched matrix product a @ b of two tensors (torch.matmul, `@`): a (N, …, M, K) times
    b (N, …, K, P) gives (N, …, M, P); the axes between the batch and the last two broadcast
    as torch broadcasts them (a size 1 against any size), the batch axis must match. Both
    inputs have at least three axes (the batch and a matrix) and the same number of them.

    No params; MACs = N·(broadcast axes)·M·P·K (torch's FlopCounterMode counts 2·M·P·K per
    matrix); element-wise ops 0; RF: none (the output mixes positions along whatever axes the
    matrices hold). Memory an estimate: autograd keeps each input the other's gradient needs;
    a broadcast or non-contiguous input is copied by torch's bmm path, which is not modelled."""

    category: ClassVar[str] = "attention"
    type: Literal["matmul"]
    min_inputs: ClassVar[int] = 2
    max_inputs: ClassVar[int] = 2
    autocast: ClassVar[str | dict[str, str]] = "lower"
    memory_exact = Flag(False)
    torch_functions: ClassVar[tuple[TorchForm, ...]] = (
        TorchForm(("operator.matmul", "torch.matmul", "Tensor.matmul", "torch.bmm", "Tensor.bmm"), "matmul", _matmul),)

    def shape(self, ctx: Ctx) -> Shape:
        if len(ctx.ins) != 2:
            raise LayerError(f"matmul takes 2 inputs, received {len(ctx.ins)}", "inputs")
        a, b = ctx.ins
        if len(a) < 3 or len(a) != len(b):
            raise LayerError(f"matmul needs two inputs of equal rank ≥ 3 (batch, …, rows, columns): "
                             f"{fmt_shape(a)} and {fmt_shape(b)}", "inputs")
        if a[-1] != b[-2]:
            raise LayerError(f"matmul of {fmt_shape(a)} and {fmt_shape(b)}: {a[-1]} columns against {b[-2]} rows",
                             "inputs")
        if a[0] != b[0]:
            raise LayerError(f"matmul of {fmt_shape(a)} and {fmt_shape(b)}: the batch axis differs", "inputs")
        mid = []
        for i, (x, y) in enumerate(zip(a[1:-2], b[1:-2]), 1):
            if x != y and 1 not in (x, y):
                raise LayerError(f"matmul of {fmt_shape(a)} and {fmt_shape(b)}: axis {i} does not broadcast "
                                 f"({x} against {y})", "inputs")
            mid.append(max(x, y))
        return (a[0], *mid, a[-2], b[-1])

    def macs(self, ctx: Ctx) -> int:
        return prod(ctx.out) * ctx.ins[0][-1]

    def rf(self, ctx: Ctx, fields: list[list[RF] | None]) -> list[RF] | None:
        return None

    def reads(self, ctx: Ctx, axis: int, lo: int, hi: int, real: bool = False) -> list[tuple[int, int] | None]:
        return [None, None]

    def saved(self, ctx: Ctx, grads: tuple[bool, ...]) -> Saved:
        """a's gradient is grad @ bᵀ, b's is aᵀ @ grad: each input is kept if the other needs one."""
        return Saved(inputs=tuple(i for i in (0, 1) if grads[1 - i]))

    def build(self, ctx: Ctx, t: Kit) -> Any:
        return t.ext.MatMul()

    def probe(self, ctx: Ctx, t: Kit) -> Any:
        return t.ext.Add()

    def explain(self, ctx: Ctx) -> list[tuple[str, str, int]]:
        lines = super().explain(ctx)
        lines.append(("MACs", f"{'·'.join(map(str, ctx.out))}·{ctx.ins[0][-1]}", self.macs(ctx)))
        return lines


def bias_index(kind: str, resolution: tuple[int, int], stride: int = 1) -> list[list[int]]:
    """The table entry each (query, key) pair reads, queries and keys in row-major order over the
    grid (queries at every `stride`-th row and column). kind 'abs' (LeViT, EfficientFormer):
    |Δy|·w + |Δx|; kind 'relative' (Swin, MaxViT's RelPosBias): (Δy + h − 1)·(2w − 1) + Δx + w − 1."""
    h, w = resolution
    keys = [(y, x) for y in range(h) for x in range(w)]
    queries = [(y, x) for y in range(0, h, stride) for x in range(0, w, stride)]
    if kind == "abs":
        return [[abs(qy - ky) * w + abs(qx - kx) for ky, kx in keys] for qy, qx in queries]
    return [[(qy - ky + h - 1) * (2 * w - 1) + qx - kx + w - 1 for ky, kx in keys] for qy, qx in queries]


class AttentionBias(Layer):
    """x + B: a learnable bias added to attention logits x of shape (N, heads, Q, K), one per
    head and relative position of query and key on a grid `resolution` [h, w] (K = h·w keys;
    Q = ⌈h/stride⌉·⌈w/stride⌉ queries on every stride-th row and column). B is gathered from
    a table by a fixed index (a buffer of Q·K integers, as timm holds it):
    kind 'abs' (LeViT, EfficientFormer): table `attention_biases` (heads, h·w) read at
    |Δy|·w + |Δx|, index `attention_bias_idxs` (Q, K) in the state_dict;
    kind 'relative' (Swin, MaxViT): table `relative_position_bias_table` ((2h−1)·(2w−1), heads)
    read at (Δy + h − 1)·(2w − 1) + Δx + w − 1, index `relative_position_index` (Q·K) kept out
    of the state_dict.

    params = the table (not the gathered Q·K per head); buffers = Q·K; element-wise ops =
    1 per output element (the add); RF: none. Memory an estimate (the gathered bias, and in
    training its gradient scattered back into the table, are not modelled)."""

    category: ClassVar[str] = "attention"
    type: Literal["attention_bias"]
    kind: Literal["abs", "relative"] = "abs"
    resolution: Axes
    """the key grid [h, w] (one number: a square)"""
    stride: PosInt = 1
    """queries on every stride-th row and column of the grid (LeViT's and EfficientFormerV2's downsampling attention)"""
    memory_exact = Flag(False)
    passes_gradient = Flag(True)
    autocast: ClassVar[str | dict[str, str]] = "float"  # x + its float32 table's entries

    @field_validator("resolution", mode="before")
    @classmethod
    def _grid(cls, v: Any) -> tuple[int, ...]:
        return per_axis(v, 2)

    # cnncalc's own module by its name; import reads timm's from the table's gather (torch_import)

    def grid(self) -> tuple[int, int]:
        h, w = self.resolution
        return h, w

    def sizes(self) -> tuple[int, int]:
        """(Q, K): queries and keys."""
        h, w = self.grid()
        return -(-h // self.stride) * -(-w // self.stride), h * w

    def shape(self, ctx: Ctx) -> Shape:
        q, k = self.sizes()
        if len(ctx.x) != 4 or ctx.x[2:] != (q, k):
            raise LayerError(f"expected attention logits (N, heads, {q}, {k}) for resolution {list(self.grid())} "
                             f"and stride {self.stride}, received {fmt_shape(ctx.x)}", "resolution")
        return ctx.x

    def table(self, heads: int) -> tuple[str, Shape]:
        h, w = self.grid()
        if self.kind == "abs":
            return "attention_biases", (heads, h * w)
        return "relative_position_bias_table", ((2 * h - 1) * (2 * w - 1), heads)

    def weights(self, ctx: Ctx) -> dict[str, Shape]:
        name, shape = self.table(ctx.x[1])
        return {name: shape}

    def buffers(self, ctx: Ctx) -> dict[str, Shape]:
        q, k = self.sizes()
        return {"attention_bias_idxs": (q, k)} if self.kind == "abs" else {"relative_position_index": (q * k,)}

    def elementwise(self, ctx: Ctx) -> int:
        return prod(ctx.out)

    def rf(self, ctx: Ctx, fields: list[list[RF] | None]) -> list[RF] | None:
        return None

    def reads(self, ctx: Ctx, axis: int, lo: int, hi: int, real: bool = False) -> list[tuple[int, int] | None]:
        return [None]

    def build(self, ctx: Ctx, t: Kit) -> Any:
        return t.ext.AttentionBias(ctx.x[1], self.kind, list(self.grid()), self.stride)


class FourierPosEmbed(Layer):
    """x + P: tokens x (N, h·w, C) of an h×w map (`resolution`) plus a position encoding P, the
    Fourier features of each position (sines and cosines of its normalised row and column at
    `hidden_dim` frequencies, base `temperature`: 2·hidden_dim values) projected by a 1×1 conv to
    C channels — timm's PositionalEncodingFourier, as EdgeNeXt adds it. P depends on the position
    only; torch computes it for every sample of the batch.

    params = the conv's 2·hidden_dim·C + C; MACs = N·h·w·2·hidden_dim·C (the conv); element-wise
    ops = 2 per output element (the conv's bias and the add); RF: none. Memory an estimate (the
    features and the projected encoding are not modelled)."""

    category: ClassVar[str] = "attention"
    type: Literal["fourier_pos_embed"]
    resolution: Axes
    """the map [h, w] the tokens come from (one number: a square)"""
    hidden_dim: PosInt = 32
    temperature: Annotated[float, Field(gt=0, allow_inf_nan=False)] = 10000.0
    memory_exact = Flag(False)
    passes_gradient = Flag(True)
    # import reads cnncalc's own module by its name, and timm's PositionalEncodingFourier (torch_import)

    @field_validator("resolution", mode="before")
    @classmethod
    def _grid(cls, v: Any) -> tuple[int, ...]:
        return per_axis(v, 2)

    def shape(self, ctx: Ctx) -> Shape:
        h, w = self.resolution
        if len(ctx.x) != 3 or ctx.x[1] != h * w:
            raise LayerError(f"expected tokens (N, {h * w}, C) of a {h}×{w} map, received {fmt_shape(ctx.x)}",
                             "resolution")
        return ctx.x

    def weights(self, ctx: Ctx) -> dict[str, Shape]:
        c = ctx.x[2]
        return {"token_projection.weight": (c, 2 * self.hidden_dim, 1, 1), "token_projection.bias": (c,)}

    def macs(self, ctx: Ctx) -> int:
        return prod(ctx.out) * 2 * self.hidden_dim

    def explain(self, ctx: Ctx) -> list[tuple[str, str, int]]:
        n, tokens, c = ctx.x
        return [*super().explain(ctx), ("MACs", f"{n}·{tokens}·{c}·2·{self.hidden_dim}", self.macs(ctx))]

    def elementwise(self, ctx: Ctx) -> int:
        return 2 * prod(ctx.out)

    def rf(self, ctx: Ctx, fields: list[list[RF] | None]) -> list[RF] | None:
        return None

    def reads(self, ctx: Ctx, axis: int, lo: int, hi: int, real: bool = False) -> list[tuple[int, int] | None]:
        return [None]

    def build(self, ctx: Ctx, t: Kit) -> Any:
        return t.ext.FourierPosEmbed(ctx.x[2], list(self.resolution), self.hidden_dim, self.temperature)
