"""Mixed precision as ``torch.autocast`` runs it (``--amp bf16|fp16``).

The model stays float32 (master weights, their gradients, the optimizer state); inside the
autocast region each op runs in the dtype its autocast list gives it, per device type (each
layer class's `autocast` attribute: torch's lists in aten/src/ATen/autocast_mode.h for CUDA and
autocast_mode.cpp for CPU):

- ``lower`` (conv, linear, prelu, matmul-like): every floating input not yet in the low dtype
  is cast (a new tensor of its size, 2 bytes per element, which the op saves for backward in
  place of its input), and its weights are cast too: the copies of a weight that requires a
  gradient are cached until the autocast region ends, and the op saves them for backward, so
  the copies of a layer (2 bytes per param) live from its forward call to its backward call
  (at inference under torch.inference_mode nothing is cached: each cast is made and freed
  inside the op's call, a workspace like im2col's, outside the tensors' peak). Output in the
  low dtype.
- ``fp32``: inputs not in float32 are cast to float32 (copies); output float32.
- ``promote``: inputs cast to the widest input dtype; ``same`` (in no list): runs in its
  inputs' dtype (torch's own promotion: the widest); ``float``: computes in float32 with its
  own float32 weights (x · γ), no copy.

So every tensor of the simulation of `analysis.memory` has its own element size: each row's
output, temporaries and saved new tensors in the dtype it runs in, each cast a row of its own
(its backward makes a gradient of its source's size and dtype). Backward of a ``lower`` layer
makes its weights' gradients in the low dtype (2·P bytes, a temporary; its saved copies are
released when the call returns), then casts them to the float32 gradients of the master
weights (4·P, kept to the step). The fp16 GradScaler holds its
scale (float32) and growth tracker (int32), and at the step ``unscale_`` makes the inverse
scale and a found-inf flag (float32 each): 4 + 4 + 4 + 4 bytes.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, replace
from math import prod
from typing import TYPE_CHECKING, Any

from cnncalc.layers import Ctx, Saved

if TYPE_CHECKING:
    from cnncalc.analysis.report import LayerReport, Report

AMP_DTYPES = {"bf16": "bfloat16", "fp16": "float16"}  #: --amp value → torch dtype
DEVICE_TYPES = ("cuda", "cpu")  #: the autocast op lists modelled
KINDS = ("lower", "fp32", "promote", "same", "float")
LOW, FULL = 2, 4  #: bytes per element of the low dtype and of float32
SCALER_BYTES = 4 + 4 + 4 + 4  #: GradScaler (fp16): scale, growth tracker, then inv_scale and found_inf
MEMORY_KEYS = ("inference_peak_activation_bytes", "inference_memory_bytes", "training_memory_bytes",
               "training_saved_activation_bytes", "training_peak_phase")


@dataclass(frozen=True)
class Amp:
    """One autocast setting: the low dtype ('bf16' or 'fp16') and the device type whose op lists apply."""

    dtype: str
    device: str = "cuda"

    def __post_init__(self) -> None:
        if self.dtype not in AMP_DTYPES:
            raise ValueError(f"--amp takes bf16 or fp16, received {self.dtype!r}")
        if self.device not in DEVICE_TYPES:
            raise ValueError(f"autocast's op lists are modelled for cuda and cpu, received {self.device!r}")

    @property
    def torch_dtype(self) -> str:
        return AMP_DTYPES[self.dtype]


def kind(layer: Any, device: str, rank: int) -> str:
    """The autocast category of a layer on `device` ('cuda'/'cpu') at `rank` spatial axes."""
    v = layer.autocast  # a class attribute, or a property where the fields decide (a bias in float32)
    if isinstance(v, str):
        return v
    return v.get(f"{device}/{rank}d", v.get(device, "same"))


def run_bytes(k: str, ins: list[int]) -> int:
    """Bytes per element an op of autocast category `k` runs in (and writes its output in), its
    inputs having `ins` bytes per element: the low dtype, float32, or the widest input's."""
    return LOW if k == "lower" else FULL if k in ("fp32", "float") else max(ins)


class _Cast:
    """The stand-in layer of an autocast cast (aten::_to_copy): a new tensor in the target
    dtype; saves nothing; its backward makes the source's gradient (in the source's dtype)."""

    trainable = True
    passes_gradient = False
    memory_exact = True
    type = "autocast_cast"
    category = "other"
    inplace = False
    returns_view = False

    def aliases(self, training: bool) -> bool:
        return False

    def scratch(self, ctx: Ctx, b: int) -> int:
        return 0

    def saved(self, ctx: Ctx, grads: tuple[bool, ...]) -> Saved:
        return Saved()

    def backward_scratch(self, ctx: Ctx, b: int, grads: tuple[bool, ...]) -> int:
        return 0


class _Run:
    """A layer's rules in the element size it runs in under autocast, with its weight copies
    (training: saved until its backward) and its weights' low-precision gradients."""

    def __init__(self, layer: Any, size: int, copies: int, low_grads: int, uses: int = 1):
        self.layer, self.size, self.copies, self.low_grads, self.uses = layer, size, copies, low_grads, uses

    def __getattr__(self, name: str) -> Any:  # every other attribute (flags, category): the layer's own
        return getattr(self.layer, name)

    def aliases(self, training: bool) -> bool:
        return bool(self.layer.aliases(training))

    def scratch(self, ctx: Ctx, b: int) -> int:
        return int(self.layer.scratch(ctx, self.size))

    def saved(self, ctx: Ctx, grads: tuple[bool, ...]) -> Saved:
        s = self.layer.saved(ctx, grads)
        return Saved(s.inputs, s.output, 0, s.extra * self.size + s.extra_bytes + self.copies)

    def backward_scratch(self, ctx: Ctx, b: int, grads: tuple[bool, ...]) -> int:
        """The larger of two moments beyond the simulation's (which holds what the layer saved and
        its weights' float32 gradients): its backward call (temporaries and the low-precision weight
        gradients of every use, no float32 ones yet), then the cast of their sum to float32 (its
        saved weight copies released). A later use of a shared weight (uses 0: the cast is cached,
        one for all uses) makes its low-precision gradient, which waits for the first use's."""
        own = int(self.layer.backward_scratch(ctx, self.size, grads))
        if not self.low_grads:
            return own
        if not self.uses:
            return own + self.low_grads
        return max(own + self.uses * self.low_grads - 2 * self.low_grads, self.low_grads - self.copies)


@dataclass
class AmpRows:
    """A network's rows as autocast runs them (casts as rows of their own), and per original row
    its dtype bookkeeping."""

    rows: list[LayerReport]
    layers: dict[str, dict[str, Any]]
    """layer → {kind, dtype, casts (bytes), weight_copies (bytes)}"""


def amp_rows(rows: list[LayerReport], outputs: list[str], amp: Amp, training: bool) -> AmpRows:
    """The rows rewritten for the simulation of `analysis.memory` under `amp` (module docstring)."""
    size: dict[str, int] = {"input": FULL}  # tensor → bytes per element
    out_rows: list[LayerReport] = []
    own = {r.name: r.trainable_params for r in rows}
    uses: dict[str, int] = {}  # owner → how many layers use its weights
    for r in rows:
        owner = r.shared_with or r.name
        uses[owner] = uses.get(owner, 0) + 1
    info: dict[str, dict[str, Any]] = {}
    for r in rows:
        k = kind(r.layer, amp.device, len(r.ctx.x) - 2)
        run = run_bytes(k, [size[n] for n in r.inputs])
        cast = k in ("lower", "fp32", "promote")
        inputs = list(r.inputs)
        cast_bytes = 0
        for i, n in enumerate(r.inputs):
            if cast and size[n] != run:
                nbytes = prod(r.ctx.ins[i]) * run
                cast_bytes += nbytes
                if training:  # saved by the op in place of its input (at inference: made and freed inside its call)
                    c = f"{r.name}<autocast:{n}>"
                    out_rows.append(_cast_row(r, c, n, r.ctx.ins[i], nbytes))
                    size[c] = run
                    inputs[i] = c
        copies = r.params * LOW if k == "lower" and r.shared_with is None else 0
        shared = k == "lower" and r.shared_with is not None
        p = own[r.shared_with or r.name] * LOW if k == "lower" else 0  # its weights' low-precision gradient
        size[r.name] = size[inputs[0]] if r.layer.aliases(training) else run
        run_layer = _Run(r.layer, run, copies if training else 0, p, uses.get(r.name, 1) if not shared else 0)
        out_rows.append(with_fields(r, inputs=inputs, activation_bytes=prod(r.output_shape) * size[r.name],
                                layer=run_layer,
                                # a later use of a cached weight: no float32 gradient of its own (see _Run)
                                shared_with=r.name if shared and training else r.shared_with))
        info[r.name] = {"kind": k, "dtype": "float32" if size[r.name] == FULL else amp.torch_dtype,
                        "casts_bytes": cast_bytes, "weight_copies_bytes": copies}
    for i, r in enumerate(out_rows):
        r.index = i
    return AmpRows(out_rows, info)


def with_fields(r: LayerReport, **fields: Any) -> LayerReport:
    """dataclasses.replace for a row, without its __init__ (`fit` makes hundreds per batch tried)."""
    out = copy.copy(r)
    out.__dict__.update(fields)
    return out


def _cast_row(r: LayerReport, name: str, source: str, shape: tuple[int, ...], nbytes: int) -> LayerReport:
    return replace(r, name=name, type="autocast_cast", inputs=[source], output_shape=shape, params=0,
                   trainable_params=0, buffers=0, macs=0, elementwise_ops=0, activation_bytes=nbytes,
                   weights={}, buffer_shapes={}, shared_with=None, layer=_Cast(),  # type: ignore[arg-type]
                   ctx=Ctx([shape], shape))


def model_state_bytes(report: Report, amp: Amp | None) -> int:
    """What a training step holds throughout: params and buffers, the optimizer's state (float32
    under autocast, whose master weights are float32) and, with fp16, the GradScaler's."""
    from cnncalc.analysis.memory import OPTIMIZER_STATES

    t = report.totals
    b = FULL if amp is not None else report.bytes_per_element
    scaler = SCALER_BYTES if amp is not None and amp.dtype == "fp16" else 0
    return t["param_bytes"] + t["buffer_bytes"] + t["trainable_params"] * b * OPTIMIZER_STATES[report.optimizer] + scaler


def amp_figures(report: Report, amp: Amp, passes: tuple[bool, bool] = (True, True)) -> dict[str, Any]:
    """The memory totals of `report` (analysed in float32) under `amp`, and each layer's dtype;
    `passes`: whether to simulate the inference pass and the training step (the figures of one
    left out stay float32's: `fit` needs one of them)."""
    from cnncalc.analysis.memory import inference_peak, training_memory

    if report.dtype != "float32":
        raise ValueError("autocast runs a float32 model: leave out --dtype (or give float32) with --amp")
    t = report.totals
    weights = t["param_bytes"] + t["buffer_bytes"]
    scaler = SCALER_BYTES if amp.dtype == "fp16" else 0
    out: dict[str, Any] = {k: t[k] for k in MEMORY_KEYS}
    if passes[0]:
        inf = amp_rows(report.layers, report.outputs, amp, training=False)
        peak = inference_peak(inf.rows, report.outputs, t["input_bytes"], FULL)
        out.update(inference_peak_activation_bytes=peak, inference_memory_bytes=weights + peak)
    tr = amp_rows(report.layers, report.outputs, amp, training=True)
    if passes[1]:
        train = training_memory(tr.rows, report.outputs, t["input_bytes"], FULL, report.optimizer,
                                model_state_bytes(report, amp))
        out.update(training_memory_bytes=train.peak, training_saved_activation_bytes=train.saved,
                   training_peak_phase=train.phase)
    return {**out, "grad_scaler_bytes": scaler,
            "activation_bytes": sum(r.activation_bytes for r in tr.rows if r.type != "autocast_cast"),
            "layers": tr.layers, "rows": tr.rows}


def apply_amp(report: Report, amp: Amp, passes: tuple[bool, bool] = (True, True)) -> Report:
    """`report` with its memory totals as autocast runs them (the float32 ones kept under
    extra['amp']['float32']), and extra['amp'] describing the setting and each layer's dtype."""
    amp_applied(report, amp, passes)
    return report


def amp_applied(report: Report, amp: Amp, passes: tuple[bool, bool] = (True, True)) -> list[LayerReport]:
    """`apply_amp`, returning the training step's rows as autocast runs them (`amp_rows`)."""
    earlier = report.extra.get("amp")
    before = dict(earlier["float32"]) if earlier else {k: report.totals[k] for k in MEMORY_KEYS}
    fig = amp_figures(report, amp, passes)
    report.totals.update({k: fig[k] for k in MEMORY_KEYS})
    report.extra["amp"] = {"dtype": amp.torch_dtype, "device_type": amp.device, "master_weights": "float32",
                           "grad_scaler_bytes": fig["grad_scaler_bytes"], "activation_bytes": fig["activation_bytes"],
                           "layers": fig["layers"], "float32": before}
    rows: list[LayerReport] = fig["rows"]
    return rows
