"""The Python API's one-call entry points: `summary` (torchinfo's habit) and `analyze`, for a spec
file, YAML text, a parsed `Network` or a live `torch.nn.Module`."""
from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from cnncalc.analysis.analyze import analyze as analyze_network
from cnncalc.analysis.memory import OPTIMIZER_STATES
from cnncalc.analysis.report import Report
from cnncalc.spec.expand import load_spec, parse_spec
from cnncalc.spec.network import Network
from cnncalc.units import DTYPE_BYTES

ACCEPTS = ("a cnncalc.Network, a spec path (str or os.PathLike), YAML text, "
           "or a torch.nn.Module with input_size")


def summary(x: Any, input_size: Sequence[int] | None = None, batch: int | None = None, dtype: str | None = None,
            depth: int | None = None, columns: str | Sequence[str] | None = None,
            optimizer: str | None = None, *, amp: str | None = None, amp_device: str = "cuda",
            checkpoint: str | Sequence[str] | None = None) -> Report:
    """The report of a network, printed as `cnncalc analyze` prints it.

    `x` is a `torch.nn.Module` (then `input_size` is required: (C, H, W), or (N, C, H, W) whose
    leading N is the batch, as torchinfo takes it; the model is imported without the output
    comparison, `prove=False`), a spec path, YAML text or a parsed `Network` (then `input_size`,
    when given, replaces the spec's input). `batch`, `dtype` ('float32', 'bfloat16', …) and
    `optimizer` ('adam', 'sgd', 'momentum': the training-memory estimate) default to the spec's;
    `depth` collapses block uses nested that deep into one row each and `columns` chooses the
    printed columns ('name,shape,params,macs' or a list of keys), as `--depth` and `--columns` do;
    `amp` ('bf16', 'fp16'), `amp_device` and `checkpoint` as in `analyze`.

    >>> import cnncalc
    >>> report = cnncalc.summary("examples/lenet5.yaml", depth=1, columns="name,shape,params,macs")
    >>> report.totals.params
    61706
    >>> print(report)  # doctest: +SKIP
    lenet5  ·  input 1×1×28×28  ·  float32
    ...
    """
    if depth is not None and (isinstance(depth, bool) or not isinstance(depth, int) or depth < 1):
        raise ValueError(f"depth must be a whole number of at least 1, not {depth!r}")
    chosen = _columns(columns)
    report = analyze(x, batch, None, dtype, optimizer or "adam", input_size=input_size, amp=amp,
                     amp_device=amp_device, checkpoint=checkpoint)
    report.view_depth, report.view_columns = depth, chosen
    return report


def analyze(x: Any, batch: int | None = None, input_shape: Sequence[int] | None = None, dtype: str | None = None,
            optimizer: str = "adam", *, input_size: Sequence[int] | None = None, amp: str | None = None,
            amp_device: str = "cuda", checkpoint: str | Sequence[str] | None = None) -> Report:
    """Every layer's shape, params, MACs, memory and receptive field, and the totals.

    `x`: a parsed `Network`, a spec path (str or os.PathLike), YAML text, or a `torch.nn.Module`
    with `input_size`. `input_shape` is the input without batch (C, H, W); `input_size` may also
    lead with the batch (N, C, H, W), as torchinfo takes it. Raises CnnError with every located
    problem of the spec, TypeError for an `x` of another kind, ValueError for a bad argument.
    `amp` ('bf16' or 'fp16'): the memory totals as torch.autocast runs the network, with the op
    lists of `amp_device` ('cuda' or 'cpu'); `report.extra['amp']` has each layer's dtype.
    `checkpoint` ('all' or block uses): the training step with those checkpointed
    (torch.utils.checkpoint); `report.extra['checkpoint']` has the recomputation's cost.

    >>> import cnncalc
    >>> report = cnncalc.analyze("examples/resnet50.yaml", batch=8)
    >>> report.totals.macs == 8 * 4_089_184_256
    True
    >>> report.layer("fc").output_shape
    (8, 1000)
    """
    if input_shape is not None and input_size is not None:
        raise ValueError("give input_shape (without batch) or input_size (with or without it), not both")
    if dtype is not None and dtype not in DTYPE_BYTES:
        raise ValueError(f"unknown dtype {dtype!r}; one of: {', '.join(DTYPE_BYTES)}")
    precision = None
    if amp is not None:
        from cnncalc.analysis.precision import Amp

        precision = Amp(amp, amp_device)  # ValueError for an unknown one
        if dtype not in (None, "float32"):
            raise ValueError("autocast runs a float32 model: leave out dtype (or give 'float32') with amp")
    if optimizer not in OPTIMIZER_STATES:
        raise ValueError(f"unknown optimizer {optimizer!r}; one of: {', '.join(OPTIMIZER_STATES)}")
    if batch is not None and (isinstance(batch, bool) or not isinstance(batch, int) or batch < 1):
        raise ValueError(f"batch must be a whole number of at least 1, not {batch!r}")
    size = _ints(input_size if input_size is not None else input_shape, "input_size" if input_shape is None
                 else "input_shape")
    from cnncalc.interop.torch_import import is_module

    if is_module(x):
        if size is None:
            raise ValueError(f"a torch model needs its input size: analyze({type(x).__name__}(), "
                             "input_size=(3, 224, 224)) or (N, C, H, W)")
        batch, traced = _batch_and_shape(size, _module_rank(x) if input_shape is None else len(size), batch)
        from cnncalc.interop.torch_import import snake_name

        net = parse_spec(spec_from_module(x, traced), f"<{snake_name(type(x).__name__)}>")
        return _with(analyze_network(net, batch, None, dtype, optimizer), precision, checkpoint)
    net = _network(x)
    shape: tuple[int, ...] | None = None
    if size is not None:
        batch, shape = _batch_and_shape(size, len(net.header.input) if input_shape is None else len(size), batch)
    return _with(analyze_network(net, batch, shape, dtype, optimizer), precision, checkpoint)


def _with(report: Report, precision: Any, checkpoint: str | Sequence[str] | None) -> Report:
    """The report under autocast and/or with block uses checkpointed (ValueError for an unknown use)."""
    from cnncalc.analysis.checkpoint import apply_checkpoint
    from cnncalc.analysis.precision import apply_amp

    if checkpoint is not None:
        # 'u1,u2' as the command line writes it, or a list of uses
        uses = "all" if checkpoint == "all" else checkpoint.split(",") if isinstance(checkpoint, str) else list(checkpoint)
        return apply_checkpoint(report, uses, precision)
    return apply_amp(report, precision) if precision is not None else report


def spec_from_module(model: Any, input_shape: tuple[int, ...], name: str | None = None, prove: bool = False) -> str:
    """The spec (YAML text) of a live nn.Module at `input_shape` (no batch), as
    `cnncalc.spec_from_torch` writes it (here `prove` defaults to False: no forward pass).

    >>> import torch.nn as nn
    >>> print(spec_from_module(nn.Sequential(nn.Conv2d(3, 8, 3)), (3, 32, 32)))  # doctest: +ELLIPSIS
    # written by cnncalc.spec_from_torch at 3x32x32; checked against torch (...)
    name: sequential
    input: 3x32x32
    ...
    """
    from cnncalc.interop.torch_import import import_model, snake_name

    shape = tuple(int(v) for v in input_shape)
    how = ("proved against torch (shapes, params, buffers, FLOPs, outputs)" if prove else
           "checked against torch (shapes, params, buffers, FLOPs; outputs not compared)")
    header = [f"written by cnncalc.spec_from_torch at {'x'.join(map(str, shape))}; {how}"]
    return import_model(model, shape, name or snake_name(type(model).__name__), header,
                        type(model).__name__, prove)[0]


def _network(x: Any) -> Network:
    if isinstance(x, Network):
        return x
    if isinstance(x, os.PathLike):
        return load_spec(os.fspath(x))
    if isinstance(x, str):
        if x.lower().endswith((".yaml", ".yml")) or os.path.isfile(x) or ("\n" not in x and ":" not in x):
            return load_spec(x)
        return parse_spec(x)
    if isinstance(x, Report):
        raise TypeError("that is already a Report: print it, or analyze its .network")
    raise TypeError(f"cnncalc.analyze and cnncalc.summary take {ACCEPTS}; got {type(x).__module__}."
                    f"{type(x).__qualname__}")


def _ints(size: Any, what: str) -> tuple[int, ...] | None:
    if size is None:
        return None
    if isinstance(size, (str, bytes)) or not isinstance(size, Sequence) or not size or not all(
            isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in size):
        raise ValueError(f"{what} must be a tuple of whole numbers of at least 1, e.g. (3, 224, 224); got {size!r}")
    return tuple(size)


def _batch_and_shape(size: tuple[int, ...], rank: int | None, batch: int | None) -> tuple[int | None, tuple[int, ...]]:
    """(batch, input without batch) from an input size that may lead with the batch; `rank`: the
    network's input dimensions without batch (None: leading batch when 2 or more)."""
    leading = len(size) == rank + 1 if rank is not None else len(size) >= 2
    if rank is not None and len(size) not in (rank, rank + 1):
        raise ValueError(f"input size {tuple(size)} has {len(size)} dimensions; the network takes {rank} "
                         f"(C, H, W, …) or {rank + 1} with the batch first")
    if not leading:
        return batch, size
    if batch is not None and batch != size[0]:
        raise ValueError(f"batch={batch} but input size {tuple(size)} leads with batch {size[0]}")
    return size[0], size[1:]


def _module_rank(model: Any) -> int | None:
    """The input dimensions without batch of a model whose first convolution tells them (C + its
    spatial axes); None when it has none."""
    for m in model.modules():
        kernel = getattr(m, "kernel_size", None)
        if type(m).__name__.startswith(("Conv", "LazyConv")) and isinstance(kernel, tuple):
            return len(kernel) + 1
    return None


def _columns(columns: str | Sequence[str] | None) -> list[int] | None:
    if columns is None:
        return None
    from cnncalc.render.columns import choose_columns

    if not isinstance(columns, str):
        if not all(isinstance(c, str) for c in columns):
            raise TypeError(f"columns is a comma-separated string or a list of column keys; got {columns!r}")
        columns = ",".join(columns)
    return choose_columns(columns)
