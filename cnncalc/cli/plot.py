"""`cnncalc plot`: the receptive field against depth, in the terminal or as an image."""
from __future__ import annotations

from typing import List, Optional

import typer

from cnncalc.cli.app import app
from cnncalc.cli.console import _escape, console, user_errors
from cnncalc.cli.options import BatchOpt, InputOpt, Optimizer, SetOpt, SpecArg, _analyze


@app.command()
@user_errors
def plot(spec: str = SpecArg, output: Optional[str] = typer.Option(None, "-o", "--output",
                                                                  help="PNG or SVG file (needs matplotlib)."),
         batch: Optional[int] = BatchOpt, input: Optional[str] = InputOpt,
         sets: Optional[List[str]] = SetOpt) -> None:
    """Per-layer MACs, params, activation memory, receptive field and output size: a figure with
    -o out.png|svg, bars in the terminal otherwise."""
    from cnncalc.render.figure import figure
    from cnncalc.render.terminal import terminal_plot

    if output and not output.lower().endswith((".png", ".svg", ".pdf")):
        raise typer.BadParameter("expected a .png, .svg or .pdf file", param_hint="--output")
    report = _analyze(spec, batch, input, None, Optimizer.adam, sets)
    if output:
        figure(report, output)
        console(stderr=True).print(f"wrote {_escape(output)}")
    else:
        terminal_plot(report, console())
