"""The spec's pydantic models: header (incl. budgets `Limits`), block definitions and uses,
multi-output pieces (chunk, split), and input-shape parsing. Validation only; no expansion."""
from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from cnncalc.layers.base import MAX_INT, Name, PosInt, Ref
from cnncalc.units import _QTY, DTYPE_BYTES, parse_quantity

BYTE_LIMITS = ("max_activation_bytes", "max_inference_memory", "max_training_memory")

Quantity = Annotated[Any, Field(json_schema_extra={"anyOf": [{"type": "integer", "minimum": 0},
                                                             {"type": "string", "pattern": _QTY.pattern}]})]


class FieldBounds(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", defer_build=True)
    min: Annotated[int, Field(ge=1)] | None = None
    max: Annotated[int, Field(ge=1)] | None = None


class Limits(BaseModel):
    """Budgets checked by analyze and validate (exit 1 when one is exceeded)."""

    model_config = ConfigDict(strict=True, extra="forbid", defer_build=True)
    batch: Annotated[int, Field(ge=1)] | None = None
    """Batch at which the limits hold (default: the spec's)."""
    dtype: str | None = None
    """Element type for the byte limits (default: the spec's)."""
    max_params: Quantity = None
    max_trainable_params: Quantity = None
    max_macs: Quantity = None
    max_flops: Quantity = None
    max_activation_bytes: Quantity = None
    max_inference_memory: Quantity = None
    max_training_memory: Quantity = None
    receptive_field: dict[str, FieldBounds] = {}
    """Per layer: min and/or max receptive-field size (every spatial axis)."""
    output_shape: dict[str, list[Annotated[int, Field(ge=1)]]] = {}
    """Per layer: the expected output shape, batch included."""

    @field_validator("max_params", "max_trainable_params", "max_macs", "max_flops", "max_activation_bytes",
                     "max_inference_memory", "max_training_memory", mode="before")
    @classmethod
    def _qty(cls, v: Any, info: ValidationInfo) -> int | None:
        return None if v is None else parse_quantity(v, info.field_name in BYTE_LIMITS)

    @field_validator("dtype")
    @classmethod
    def _dtype(cls, v: str | None) -> str | None:
        if v is not None and v not in DTYPE_BYTES:
            raise ValueError(f"expected one of {', '.join(DTYPE_BYTES)}, received {v!r}")
        return v

MAX_LAYERS = 100_000      #: layers after expanding blocks and repeat
MAX_BLOCK_DEPTH = 16      #: blocks used inside blocks
Dtype = Literal[tuple(DTYPE_BYTES)]  # type: ignore[valid-type]
MAX_LIST = 4096           #: tensors one starred input (a list of tensors) may hold


def parse_shape(value: Any) -> tuple[int, ...]:
    """'3x224x224', [3, 224, 224] → (3, 224, 224): channels then spatial sizes."""
    if isinstance(value, str):
        parts = [p.strip() for p in re.split(r"[x×,]", value.lower().strip("[] "))]
        if all(p.isdigit() and len(p) <= 20 for p in parts):  # longer is past 2^40 anyway
            value = [int(p) for p in parts]
    if (isinstance(value, (list, tuple)) and 1 <= len(value) <= 5
            and all(isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= MAX_INT for v in value)):
        return tuple(value)
    raise ValueError(f"expected channels and sizes like 3x224x224 or [3, 224, 224] (1 to 5 positive "
                     f"integers up to 2^40), received {str(value)[:80]!r}")


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", defer_build=True)


class BlockDef(_Strict):
    """A reusable, parameterised group of layers."""

    args: dict[Name, Any] = {}
    """Argument names and their defaults (null: the use must give it); a default may be an
    expression over the arguments declared before it ("${make_divisible(c * width)}")."""
    layers: Annotated[list[Any], Field(min_length=1)]
    """Layers (or block uses); '$arg' and '${expr}' strings are substituted."""
    inputs: Annotated[list[Ref], Field(min_length=1, max_length=64)] | None = None
    """Names of the tensors the block reads (default: one, called 'input'); a use binds them in
    order with its `inputs:`, and 'input' inside the block is the first. The last may end in `*`
    (`inputs: [features*]`): a list taking every tensor bound after the others, read whole by a
    layer's `inputs: [features*]`; `repeat` appends each repetition's output to it (DenseNet)."""
    output: Name | None = None
    """The layer whose output is the block's output (default: the last)."""
    outputs: Annotated[list[Name], Field(min_length=1, max_length=64)] | None = None
    """Layers (or inputs) the block gives out: later layers read them as USE.NAME; the first is
    the block's output (what a following layer or the next repetition reads)."""
    description: str | None = None

    @model_validator(mode="after")
    def _ports(self) -> BlockDef:
        if self.inputs is not None and len({i.rstrip("*") for i in self.inputs}) != len(self.inputs):
            raise ValueError("inputs must differ from each other")
        if self.inputs is not None and any(i.endswith("*") for i in self.inputs[:-1]):
            raise ValueError("only the last of inputs may end in * (a list: it takes the tensors after the others)")
        if self.outputs is not None and len(set(self.outputs)) != len(self.outputs):
            raise ValueError("outputs must differ from each other")
        if self.output is not None and self.outputs is not None and self.output != self.outputs[0]:
            raise ValueError(f"output '{self.output}' and outputs {self.outputs}: give one (the first of outputs "
                             "is the block's output)")
        return self


class FirstOverride(_Strict):
    block: Name | None = None
    args: dict[Name, Any] = {}


class _Pieces(_Strict):
    """An entry with several outputs (chunk, split)."""

    name: Name | None = None
    inputs: Annotated[list[Name], Field(min_length=1, max_length=1)] | None = None
    dim: Literal[1] = 1
    trainable: bool | None = None


class Chunk(_Pieces):
    """torch.chunk(x, chunks, dim=1): a layer with several outputs, written as one entry and
    expanded into `chunks` narrow layers NAME.0, NAME.1, … (⌈C/chunks⌉ channels each, the last
    the rest); later layers name one with `inputs: [NAME.1]`, and a following layer with no
    `inputs` continues from the last piece."""

    type: Literal["chunk"]
    chunks: Annotated[int, Field(ge=1, le=4096)]


class Split(_Pieces):
    """torch.split(x, sizes, dim=1): like `chunk`, with the channels of each piece given."""

    type: Literal["split"]
    sizes: Annotated[list[PosInt], Field(min_length=1, max_length=4096)]


PIECES: dict[str, type[_Pieces]] = {"chunk": Chunk, "split": Split}  #: entries with several outputs


class BlockUse(_Strict):
    """Use of a block: its layers are inserted here, `repeat` times in a chain."""

    block: Name
    name: Name | None = None
    """Prefix of the inserted layer names (a written `repeat:` adds .0, .1, …, `repeat: 1` too,
    as torch's nn.Sequential of one module names it .0; a use without `repeat` adds none)."""
    args: dict[Name, Any] = {}
    repeat: Annotated[int, Field(ge=0, le=MAX_LAYERS)] = 1
    """Repetitions in a chain; 0 leaves the use out (its name then stands for its input), as a
    depth multiplier may make a stage empty."""
    each: dict[Name, Annotated[list[Any], Field(min_length=1, max_length=MAX_LAYERS)]] = {}
    """Arguments that differ per repetition: one value per repetition ({dilation: [1, 2, 4, 8]})."""
    first: FirstOverride | None = None
    """Other block and/or args for the first repetition (a strided or projecting stage entry);
    a different first block receives only those of `args` it declares."""
    inputs: Annotated[list[Ref], Field(min_length=1, max_length=64)] | None = None
    """What the block reads: one name, or one per input a block declares (in its order); a
    block whose last input ends in `*` takes any number after the others (`USE*`, a starred
    input: a whole list)."""
    share: Name | None = None
    """Reuse the weights of an earlier use of the same block (Siamese branches)."""
    trainable: bool | None = None
    """false freezes every layer of the block."""
    names: Annotated[list[Name], Field(min_length=1, max_length=MAX_LAYERS)] | None = None
    """One name per repetition instead of 0, 1, …: NAME.denselayer1, … (without a `name`, the
    names alone: torchvision's Mixed_6b … Mixed_6e)."""

    @model_validator(mode="after")
    def _names(self) -> BlockUse:
        if self.names is not None and len(self.names) != self.repeat:
            raise ValueError(f"names gives {len(self.names)} names for repeat: {self.repeat}")
        if self.names is not None and len(set(self.names)) != len(self.names):
            raise ValueError("names must differ from each other")
        for k, values in self.each.items():
            if len(values) != self.repeat:
                raise ValueError(f"each.{k} gives {len(values)} values for repeat: {self.repeat}")
            if k in self.args:
                raise ValueError(f"'{k}' is given both in args and in each")
        return self


class Header(_Strict):
    """A cnncalc network spec."""

    name: str | None = None
    description: str | None = None
    input: Any
    """Input without batch: channels then sizes, e.g. 3x224x224 or [3, 224, 224]."""
    batch: PosInt = 1
    dtype: Dtype = "float32"  # type: ignore[valid-type]
    blocks: dict[Name, BlockDef] = {}
    include: str | Annotated[list[str], Field(min_length=1, max_length=64)] | None = None
    """Other spec files whose `blocks:` this spec uses, by paths relative to this file (in its
    folder or below); an included file gives blocks only, and may include others."""
    layers: Annotated[list[Any], Field(min_length=1)]
    outputs: list[Name] | None = None
    """Layers whose outputs the network returns (default: the last layer)."""
    limits: Limits | None = None
    """Budgets that analyze and validate enforce (exit 1 when exceeded)."""
    args: dict[Name, Any] = {}
    """Arguments of the whole spec (a width multiplier, the number of classes), used as '$name'
    and '${expr}' in `layers:` and in block-use arguments; `--set NAME=VALUE` overrides them."""
    defaults: dict[str, dict[Name, Any]] = {}
    """Field defaults per layer type, e.g. {batchnorm2d: {eps: 0.001, momentum: 0.01}}; a layer's
    own fields win."""

    @field_validator("input", mode="before")
    @classmethod
    def _input(cls, v: Any) -> tuple[int, ...]:
        return parse_shape(v)
