"""`cnncalc fit`: the largest batch (or input size) whose step fits a memory budget."""
from __future__ import annotations

import json
from typing import List, Optional

import typer

from cnncalc.cli.app import app
from cnncalc.cli.console import _escape, console, user_errors
from cnncalc.cli.options import Dtype, DtypeOpt, InputOpt, Optimizer, Output, SetOpt, SpecArg, parse_input, parse_sets


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
        margin: str = typer.Option("10%", "--margin",
                                   help="Memory kept free for the allocator's rounding, cached blocks and library "
                                        "workspaces (not modelled)."),
        sets: Optional[List[str]] = SetOpt,
        format: Output = typer.Option(Output.table, "--format", "-f", help="table or json.")) -> None:
    """The largest batch whose training step (or inference pass) fits the memory, the peak at that
    batch and where it falls, and a table of batch against peak. Exit 1 when even batch 1 does
    not fit. Never imports torch."""
    from cnncalc.analysis.fit import fit_batch, fit_size
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
    share = parse_margin(margin)
    net = load_spec(spec, parse_sets(sets))
    training, dt = not inference, dtype.value if dtype else None
    if batch is None:
        result = fit_batch(net, budget, share, training, optimizer.value, parse_input(input), dt)
    else:
        result = fit_size(net, budget, batch, share, training, optimizer.value, dt)
    out = {"spec": spec, "name": net.name, "mode": "training" if training else "inference",
           "optimizer": optimizer.value if training else None, "dtype": dt or net.header.dtype,
           "memory_bytes": budget, "margin": share, "usable_bytes": result.usable,
           "search": "input size" if batch is not None else "batch",
           "fits": result.best is not None,
           "max_batch": result.best.batch if result.best and batch is None else None,
           "max_input": list(result.best.size) if result.best and batch is not None else None,
           "best": result.best.to_json() if result.best else None,
           "next": result.over.to_json() if result.over else None,
           "table": [p.to_json() for p in result.table], "simulations": result.simulations}
    if format.value == "json":
        print(json.dumps(out, indent=2, allow_nan=False))
    else:
        _print(out, result, console())
    if result.best is None:
        raise typer.Exit(1)


def _print(out: dict, result, con) -> None:
    from rich.table import Table

    from cnncalc.units import hbytes, shape_str

    mode = f"training step with {out['optimizer']}" if out["mode"] == "training" else "inference pass"
    con.print(f"{_escape(out['name'])} ({_escape(out['spec'])}), {out['dtype']}, {mode}")
    con.print(f"memory {hbytes(out['memory_bytes'])}, margin {out['margin']:.0%} → usable {hbytes(out['usable_bytes'])} "
              "(the margin stands for the allocator's rounding and cached blocks and for library workspaces, "
              "which are not modelled)")
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
