"""The typer application every command module registers on, and its --version."""
from __future__ import annotations

import typer

app = typer.Typer(no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Analytic shapes, params, MACs, memory and receptive fields of CNN specs, "
                       "proved against PyTorch.")


def _version(value: bool) -> None:
    if value:
        from cnncalc import __version__

        print(f"cnncalc {__version__}")
        raise typer.Exit()


@app.callback()
def root(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                      help="Print cnncalc's version and exit.")) -> None:
    """Analytic shapes, params, MACs, memory and receptive fields of CNN specs, proved against PyTorch."""
