"""`cnncalc import`: a spec from a PyTorch model or an ONNX graph."""
from __future__ import annotations

import os
from typing import Optional

import typer

from cnncalc.cli.app import app
from cnncalc.cli.console import _escape, console, show_torch_log, user_errors, write_out
from cnncalc.cli.options import parse_input
from cnncalc.errors import CnnError


@app.command("import")
@user_errors
def import_(source: str = typer.Argument(..., help="FILE.py:NAME, package.module:NAME, torchvision:NAME or MODEL.onnx "
                                                   "(NAME: a module, class or function taking no arguments)."),
            input: Optional[str] = typer.Option(None, "--input", "-i", help="Input without batch, e.g. 3x224x224 "
                                                "(needed for PyTorch models; an ONNX graph's own by default)."),
            output: Optional[str] = typer.Option(None, "-o", "--output", help="Spec file to write (default: standard "
                                                 "output)."),
            name: Optional[str] = typer.Option(None, "--name", help="The network's name (default: from SOURCE)."),
            verbose: bool = typer.Option(False, "--verbose", "-v", help="Also show what torch itself logged or warned "
                                                                        "while tracing (kept off the screen otherwise).")
            ) -> None:
    """Read a PyTorch model or an ONNX graph into a spec, proved against it.

    Layers are named by module path, repeated sub-modules become blocks with repeat. Before the
    spec is written it is proved against the model (every shape, params, buffers, FLOPs and the
    outputs); an op with no layer type is refused, every one listed."""

    log: list[str] = []
    try:
        _import(source, input, output, name, log)
    finally:
        if verbose:
            show_torch_log(log)


def _import(source: str, input: Optional[str], output: Optional[str], name: Optional[str], log: list[str]) -> None:
    from cnncalc.safe import visible

    shape = parse_input(input)
    onnx = source.lower().endswith(".onnx")
    where, _, attr = source.rpartition(":")
    stem = os.path.splitext(os.path.basename(where or source))[0].rpartition(".")[2]
    default = stem if onnx or attr == "build" else attr  # build(): what cnncalc's exported files define
    net_name = name or default or "net"
    if onnx:
        from cnncalc.interop.onnx_import import import_onnx

        text, notes = import_onnx(source, shape, net_name)
    else:
        if shape is None:
            raise typer.BadParameter("give the input size of the model, e.g. --input 3x224x224", param_hint="--input")
        from cnncalc.backend.chatter import captured
        from cnncalc.interop.torch_import import import_model, load_model

        header = [f"written by cnncalc import from {' '.join(visible(source).split())[:300]} at "
                  f"{'x'.join(map(str, shape))}; proved against torch (shapes, params, buffers, FLOPs, outputs)"]
        from cnncalc.interop.quiet import quiet

        # what the model's code writes (print, sys.__stdout__, os.write(1, …)) must not enter the
        # spec: fds 1 and 2 point at a scratch file while it runs; torch's own logging (fake-tensor
        # tracebacks), warnings and the model's output are kept for -v
        try:
            with quiet(log), captured(log):
                text, notes = import_model(load_model(source), shape, net_name, header, visible(source))
        except SystemExit as exc:  # the model's code called sys.exit() / exit() while it was built or traced
            raise CnnError.single(f"import: the model's code raised SystemExit({visible(repr(exc.code))[:60]}) "
                                  f"(sys.exit) while it was loaded or traced, so {visible(source)[:300]} gives no spec") from None
    err = console(stderr=True)
    for note in notes:
        err.print(_escape(note))
    if write_out(text, output):
        err.print(f"wrote {_escape(output or '')}")
