"""`cnncalc diff`: compare two specs or reports."""
from __future__ import annotations

import json
from typing import List, Optional

import typer

from cnncalc.cli.app import app
from cnncalc.cli.console import console, report_problems, user_errors
from cnncalc.cli.options import BatchOpt, InputOpt, Output, parse_input, parse_sets


@app.command()
@user_errors
def diff(old: str = typer.Argument(..., help="Old spec, or a JSON report from `analyze --format json`."),
         new: str = typer.Argument(..., help="New spec (or JSON report)."),
         format: Output = typer.Option(Output.table, "--format", "-f", help="table or json."),
         fail_on_increase: Optional[str] = typer.Option(
             None, help="Gate, e.g. macs=5%,params=0: exit 1 when a total grows by more."),
         batch: Optional[int] = BatchOpt, input: Optional[str] = InputOpt,
         sets: Optional[List[str]] = typer.Option(None, "--set", help="NAME=VALUE: override an argument of the NEW "
                                                                     "spec (repeatable), e.g. diff a.yaml a.yaml "
                                                                     "--set width=0.75."),
         old_sets: Optional[List[str]] = typer.Option(None, "--old-set", help="NAME=VALUE: the same for the OLD "
                                                                              "spec.")) -> None:
    """Per-layer and total changes between two specs (or a spec and a stored report)."""
    from cnncalc.analysis.diff import compare, gate_problems, load_side, parse_gate
    from cnncalc.render.terminal import print_diff

    try:
        gate = parse_gate(fail_on_increase) if fail_on_increase else {}
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--fail-on-increase") from None
    for given, path, flag in ((sets, new, "--set"), (old_sets, old, "--old-set")):
        if given and path.endswith(".json"):
            raise typer.BadParameter(f"{flag} sets a spec's arguments; {path} is a stored report", param_hint=flag)
    result = compare(load_side(old, batch, parse_input(input), parse_sets(old_sets)),
                     load_side(new, batch, parse_input(input), parse_sets(sets)))
    problems = gate_problems(result, gate, new)
    if format.value == "json":
        print(json.dumps({**result, "gate": [p.message for p in problems]}, indent=2, allow_nan=False))
    else:
        print_diff(result, console())
    if problems:
        report_problems(problems)
        raise typer.Exit(1)
