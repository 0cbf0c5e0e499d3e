"""The command line. One module per command registers itself on `app` (cli/app.py).

Exit status: 0 all good; 1 invalid spec, failed check or torch disagrees; 2 bad command line.
Only verify, import and export import torch, and only inside the command."""
from __future__ import annotations

from importlib import import_module

from cnncalc.cli.app import app

#: the command modules, in the order `cnncalc --help` lists their commands
COMMANDS = ("analyze", "validate", "diff", "rf", "sweep", "plot", "vocabulary", "verify", "export", "imports",
            "calibrate", "fit")
for _name in COMMANDS:
    import_module(f"cnncalc.cli.{_name}")

__all__ = ["app", "main"]


def main() -> None:
    app()  # click handles a closed pipe (`| head`): silent, exit 1
