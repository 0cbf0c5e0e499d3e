"""`cnncalc export`: a standalone PyTorch file or an ONNX graph."""
from __future__ import annotations

from typing import List, Optional

import typer

from cnncalc.cli.app import app
from cnncalc.cli.console import _escape, console, show_torch_log, user_errors, write_out
from cnncalc.cli.options import BatchOpt, InputOpt, Optimizer, SetOpt, SpecArg, Target, _analyze


@app.command()
@user_errors
def export(spec: str = SpecArg, to: Target = typer.Option(..., "--to", help="torch: a standalone PyTorch file; "
                                                                           "onnx: an ONNX graph."),
           output: Optional[str] = typer.Option(None, "-o", "--output", help="File to write (default: standard output)."),
           batch: Optional[int] = BatchOpt, input: Optional[str] = InputOpt,
           sets: Optional[List[str]] = SetOpt,
           verbose: bool = typer.Option(False, "--verbose", "-v", help="Also show what torch's exporter logged, "
                                        "warned or printed.")) -> None:
    """Write the network as code: a PyTorch file defining the module and build(), or an ONNX graph
    (needs torch; ONNX also the onnx extra)."""
    from cnncalc.interop.onnx_export import to_onnx
    from cnncalc.interop.torch_export import to_torch

    if to is Target.onnx and output is None:
        raise typer.BadParameter("--to onnx writes a binary file: give -o net.onnx", param_hint="--output")
    report = _analyze(spec, batch, input, None, Optimizer.adam, sets)
    if to is Target.onnx:
        assert output is not None
        log: list[str] = []
        try:
            to_onnx(report, output, log)
        finally:
            if verbose:
                show_torch_log(log)
        console(stderr=True).print(f"wrote {_escape(output)}")
        return
    if write_out(to_torch(report), output):
        console(stderr=True).print(f"wrote {_escape(output or '')}")
