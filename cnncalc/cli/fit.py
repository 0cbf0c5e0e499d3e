"""`cnncalc fit`: the largest batch (or input size) whose step fits a memory budget."""
from __future__ import annotations

import json
from enum import Enum
from typing import List, Optional

import typer

from cnncalc.cli.app import app
from cnncalc.cli.console import _escape, console, user_errors
from cnncalc.cli.options import (
    AmpDevice,
    AmpDeviceOpt,
    AmpDtype,
    AmpOpt,
    CheckpointOpt,
    Dtype,
    DtypeOpt,
    InputOpt,
    Optimizer,
    Output,
    SetOpt,
    SpecArg,
    parse_checkpoint,
    parse_input,
    parse_sets,
)


class Shard(str, Enum):
    zero1 = "zero1"
    zero2 = "zero2"
    zero3 = "zero3"
    fsdp = "fsdp"


DEFAULT_MARGIN = 0.10  #: kept free when no peaks file states the allocator's overhead


def parse_margin(text: str) -> float:
    """'10%' or '0.1' → 0.1; a share of the memory kept free (allocator rounding, workspaces)."""
    t = text.strip()
    try:
        value = float(t[:-1]) / 100 if t.endswith("%") else float(t)
    except ValueError:
        value = -1.0
    if not 0 <= value < 1:  # also NaN
        raise typer.BadParameter(f"expected a share like 10% or 0.1 (0 to under 100%), received {text[:40]!r}",
                                 param_hint="--margin")
    return value


@app.command()
@user_errors
def fit(spec: str = SpecArg,
        memory: str = typer.Option(..., "--memory", "-m", help="The device's memory, e.g. 24GiB, 80GB, 16000MiB."),
        inference: bool = typer.Option(False, "--inference/--training",
                                       help="Size an inference pass instead of a training step (default: training)."),
        optimizer: Optimizer = typer.Option(Optimizer.sgd, "--optimizer",
                                            help="Optimizer state per trainable parameter: sgd 0, momentum 1, adam 2."),
        batch: Optional[int] = typer.Option(None, "--batch", "-b", min=1, max=2**31,
                                            help="Find the largest square input size at this batch instead."),
        input: Optional[str] = InputOpt, dtype: Optional[Dtype] = DtypeOpt,
        margin: Optional[str] = typer.Option(None, "--margin",
                                             help="Memory kept free for the allocator's rounding, cached blocks and "
                                                  "library workspaces (default 10%, or 0 when --peaks states them)."),
        shard: Optional[Shard] = typer.Option(None, "--shard",
                                              help="Shard the model states over --world GPUs as DeepSpeed ZeRO "
                                                   "stage 1/2/3 or FSDP FULL_SHARD do (the batch is per GPU)."),
        world: Optional[int] = typer.Option(None, "--world", min=1, max=2**20, help="GPUs for --shard."),
        reduce_bucket: int = typer.Option(500_000_000, "--reduce-bucket", min=0, max=2**40,
                                          help="DeepSpeed reduce_bucket_size (elements)."),
        prefetch_bucket: int = typer.Option(50_000_000, "--prefetch-bucket", min=0, max=2**40,
                                            help="DeepSpeed stage3_prefetch_bucket_size (elements)."),
        peaks: Optional[str] = typer.Option(None, "--peaks",
                                            help="A `cnncalc calibrate` file: its measured allocator overhead and "
                                                 "workspace replace the assumed margin."),
        sets: Optional[List[str]] = SetOpt,
        format: Output = typer.Option(Output.table, "--format", "-f", help="table or json."),
        amp: Optional[AmpDtype] = AmpOpt, amp_device: AmpDevice = AmpDeviceOpt,
        checkpoint: Optional[str] = CheckpointOpt) -> None:
    """The largest batch whose training step (or inference pass) fits the memory, the peak at that
    batch and where it falls, and a table of batch against peak. Exit 1 when even batch 1 does
    not fit. Never imports torch."""
    from cnncalc.analysis.fit import Sharding, fit_batch, fit_size
    from cnncalc.spec.expand import load_spec
    from cnncalc.units import parse_quantity

    try:
        budget = parse_quantity(memory, in_bytes=True)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--memory") from None
    if budget <= 0:
        raise typer.BadParameter("expected a positive amount of memory, e.g. 24GiB", param_hint="--memory")
    if batch is not None and input is not None:
        raise typer.BadParameter("--batch searches the input size: leave out --input", param_hint="--input")
    if (shard is None) != (world is None):
        raise typer.BadParameter("--shard and --world go together", param_hint="--shard" if shard is None else "--world")
    if shard is not None and inference:
        raise typer.BadParameter("sharding divides a training step's model states: leave out --inference",
                                 param_hint="--shard")
    if amp is not None and shard is not None and shard.value not in ("zero1", "zero2"):
        raise typer.BadParameter(f"--amp with --shard {shard.value} is not modelled: it gathers each unit's "
                                 "parameters for its use and frees them after, so which low-precision copies "
                                 "autocast keeps depends on the framework's own mixed-precision settings "
                                 "(--amp works with zero1 and zero2, which keep the parameters whole)",
                                 param_hint="--amp")
    if amp is not None and dtype is not None and dtype.value != "float32":
        raise typer.BadParameter("autocast runs a float32 model: leave out --dtype with --amp", param_hint="--amp")
    precision = None
    if amp is not None:
        from cnncalc.analysis.precision import Amp

        precision = Amp(amp.value, amp_device.value)
    uses = parse_checkpoint(checkpoint)
    if uses is not None and inference:
        raise typer.BadParameter("--checkpoint changes a training step: leave out --inference",
                                 param_hint="--checkpoint")
    alloc = _allocator(peaks)
    measured = any(alloc[k] is not None for k in ("overhead_share", "workspace_bytes", "context_bytes"))
    share = parse_margin(margin) if margin is not None else (0.0 if measured else DEFAULT_MARGIN)
    alloc["margin"] = share
    over, work = alloc["overhead_share"] or 0.0, (alloc["workspace_bytes"] or 0) + (alloc["context_bytes"] or 0)
    sh = None
    if shard is not None and world is not None:
        sh = Sharding(shard.value, world, reduce_bucket=reduce_bucket, prefetch_bucket=prefetch_bucket)
    net = load_spec(spec, parse_sets(sets))
    if uses is not None:
        from cnncalc.analysis.analyze import analyze
        from cnncalc.analysis.checkpoint import segments

        try:
            segments(analyze(net, 1, parse_input(input) if batch is None else None), uses)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--checkpoint") from None
    training, dt = not inference, dtype.value if dtype else None
    if batch is None:
        result = fit_batch(net, budget, share, training, optimizer.value, parse_input(input), dt, sh, over, work,
                           precision, uses)
    else:
        result = fit_size(net, budget, batch, share, training, optimizer.value, dt, sh, over, work, precision, uses)
    out = {"spec": spec, "name": net.name, "mode": "training" if training else "inference",
           "optimizer": optimizer.value if training else None, "dtype": dt or net.header.dtype,
           "memory_bytes": budget, "margin": share, "usable_bytes": result.usable,
           "search": "input size" if batch is not None else "batch",
           "fits": result.best is not None,
           "max_batch": result.best.batch if result.best and batch is None else None,
           "max_input": list(result.best.size) if result.best and batch is not None else None,
           "best": result.best.to_json() if result.best else None,
           "next": result.over.to_json() if result.over else None,
           "table": [p.to_json() for p in result.table], "simulations": result.simulations,
           "allocator": alloc,
           "amp": None if precision is None else {"dtype": precision.torch_dtype, "device_type": precision.device,
                                                  "master_weights": "float32"},
           "checkpoint": None if uses is None else {
               "uses": uses, **{k: result.best.checkpoint[k] for k in ("segments", "recompute_flops", "step_flops",
                                                                        "recompute_share")}} if result.best
           and result.best.checkpoint else ({"uses": uses} if uses is not None else None),
           "shard": None if sh is None else {**sh.to_json(), "batch_is_per_gpu": True,
                                             "global_batch": result.best.batch * sh.world
                                             if result.best and batch is None else None}}
    if format.value == "json":
        print(json.dumps(out, indent=2, allow_nan=False))
    else:
        _print(out, result, console())
    if result.best is None:
        raise typer.Exit(1)


def _allocator(path: str | None) -> dict:
    """What the peaks file says of the device allocator (None for each figure it lacks)."""
    out: dict = {"source": "assumed margin", "peaks_file": path, "overhead_share": None, "workspace_bytes": None,
                 "context_bytes": None}
    if path is None:
        return out
    from cnncalc.analysis.roofline import Peaks

    p = Peaks.load(path)
    out.update(overhead_share=p.allocator_overhead_share, workspace_bytes=p.workspace_bytes,
               context_bytes=p.context_bytes)
    if any(v is not None for v in (p.allocator_overhead_share, p.workspace_bytes, p.context_bytes)):
        out["source"] = "peaks file"
    return out


def _print(out: dict, result, con) -> None:
    from rich.table import Table

    from cnncalc.units import hbytes, human, shape_str

    mode = f"training step with {out['optimizer']}" if out["mode"] == "training" else "inference pass"
    amp = f", autocast {out['amp']['dtype']} ({out['amp']['device_type']} op lists)" if out["amp"] else ""
    ck = out["checkpoint"]
    if ck:
        amp += f", checkpointing {ck['uses'] if ck['uses'] == 'all' else _escape(','.join(ck['uses']))}"
        if "recompute_flops" in ck:
            amp += (f" (recomputes {human(ck['recompute_flops'], 'FLOPs')} a step, "
                    f"{ck['recompute_share']:.1%} of it)")
    con.print(f"{_escape(out['name'])} ({_escape(out['spec'])}), {out['dtype']}{amp}, {mode}")
    al = out["allocator"]
    if al["source"] == "peaks file":
        con.print(f"memory {hbytes(out['memory_bytes'])}, margin {out['margin']:.0%}; from {_escape(al['peaks_file'])}: "
                  f"allocator overhead {al['overhead_share'] or 0:.1%} of the tensors' peak, workspaces "
                  f"{hbytes(al['workspace_bytes'] or 0)}, context {hbytes(al['context_bytes'] or 0)} → tensors may "
                  f"take {hbytes(out['usable_bytes'])}")
    else:
        why = (f" ({_escape(al['peaks_file'])} has no allocator overhead: `calibrate --device cuda` measures it)"
               if al["peaks_file"] else "")
        con.print(f"memory {hbytes(out['memory_bytes'])}, assumed margin {out['margin']:.0%}{why} → usable "
                  f"{hbytes(out['usable_bytes'])} (the margin stands for the allocator's rounding and cached blocks "
                  "and for library workspaces, which are not modelled)")
    if out["shard"]:
        s = out["shard"]
        glob = f", global batch {s['global_batch']}" if s["global_batch"] else ""
        con.print(f"sharded: {s['stage']} over {s['world']} GPUs; every figure is per GPU, the batch per GPU{glob}")
    what = "input size" if out["search"] == "input size" else "batch"
    best, nxt = result.best, result.over

    def label(p) -> str:
        return f"{p.batch} × {shape_str(p.size)}" if what == "input size" else str(p.batch)

    if best is None:
        smallest = f": {label(nxt)} needs {hbytes(nxt.peak)}" if nxt else " (no size is valid for this network)"
        con.print(f"[bold red]does not fit[/] even the smallest {what}{smallest}")
    else:
        then = f"; {label(nxt)} would need {hbytes(nxt.peak)}" if nxt else " (the largest searched)"
        con.print(f"[bold]largest {what} that fits: {label(best)}[/] — peak {hbytes(best.peak)} ({best.phase}){then}")
    table = Table(show_edge=False, pad_edge=False)
    for c in ("batch × input" if what == "input size" else "batch", "peak", "params + buffers", "optimizer state",
              "saved activations", "activations, grads, temps", "fits"):
        table.add_column(c, justify="left" if c.startswith("batch") else "right")
    rows = sorted({id(p): p for p in [*result.table, *(x for x in (best, nxt) if x)]}.values(),
                  key=lambda p: (p.batch, p.size))
    for p in rows:
        table.add_row(label(p), hbytes(p.peak), hbytes(p.params_and_buffers), hbytes(p.optimizer_state),
                      hbytes(p.saved_activations), hbytes(p.activations_and_temporaries),
                      "yes" if p.peak <= out["usable_bytes"] else "no")
    con.print(table)
