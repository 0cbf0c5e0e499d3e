"""`cnncalc sweep`: totals over input sizes and batches."""
from __future__ import annotations

import json
from typing import List, Optional

import typer

from cnncalc.cli.app import app
from cnncalc.cli.console import console, user_errors
from cnncalc.cli.options import Dtype, DtypeOpt, Output, SetOpt, SpecArg, parse_input, parse_sets


@app.command()
@user_errors
def sweep(spec: str = SpecArg,
          input: str = typer.Option(..., "--input", "-i", help="Comma-separated sizes, e.g. 3x128x128,3x224x224."),
          batch: Optional[str] = typer.Option(None, "--batch", "-b",
                                              help="Comma-separated batches, e.g. 1,32,256 (default: the spec's)."),
          dtype: Optional[Dtype] = DtypeOpt, sets: Optional[List[str]] = SetOpt,
          format: Output = typer.Option(Output.table, "--format", "-f", help="table or json.")) -> None:
    """How shapes, cost, memory and fields change with input size and batch."""
    from cnncalc.analysis.sweep import MAX_PAIRS, sweep, work
    from cnncalc.render.terminal import print_sweep
    from cnncalc.spec.expand import load_spec

    sizes = [parse_input(p) for p in input.split(",") if p.strip()]
    if not sizes or len(sizes) > 1000:
        raise typer.BadParameter(f"expected 1 to 1,000 sizes like 3x128x128,3x224x224, received {input[:60]!r}",
                                 param_hint="--input")
    try:
        parts = batch.split(",") if batch is not None else ["1"]
        if len(parts) > 1000 or len(parts) * len(sizes) > MAX_PAIRS or any(len(b.strip()) > 14 for b in parts):
            raise ValueError
        batches = [int(b) for b in parts]
        if min(batches) < 1 or max(batches) > 2**40:
            raise ValueError
    except ValueError:
        raise typer.BadParameter(f"expected positive integers up to 2^40 like 1,32,256, received {(batch or '')[:60]!r}",
                                 param_hint="--batch") from None
    net = load_spec(spec, parse_sets(sets))
    why = work(net, len(sizes) * (len(batches) if batch is not None else 1))
    if why:  # checked before any point is analysed
        raise typer.BadParameter(f"{why}: give fewer sizes or batches", param_hint="--input/--batch")
    rows = sweep(net, sizes, batches if batch is not None else [net.header.batch], dtype.value if dtype else None)
    if format.value == "json":
        print(json.dumps(rows, indent=2))
    else:
        print_sweep(rows, console())
