"""`cnncalc diff`: compare two specs or reports."""
from __future__ import annotations

import json
from typing import List, Optional

import typer

from cnncalc.cli.app import app
from cnncalc.cli.console import console, report_problems, user_errors
from cnncalc.cli.options import BatchOpt, InputOpt, Output, parse_input, parse_sets

SHOWN = 200  #: added, removed and directly changed layers listed, each, in the table output


def _shortened(result: dict) -> tuple[dict, str]:
    """The result with at most SHOWN names of each kind (printing is the costly part: a stored
    report of 40,000 changed layers took 20 s to list) and a line counting the rest."""
    direct = [c for c in result["changed"] if c.get("cause") != "upstream"]
    more = {kind: len(items) - SHOWN for kind, items in (("added", result["added"]), ("removed", result["removed"]),
                                                           ("changed", direct)) if len(items) > SHOWN}
    if not more:
        return result, ""
    upstream = [c for c in result["changed"] if c.get("cause") == "upstream"]
    short = {**result, "added": result["added"][:SHOWN], "removed": result["removed"][:SHOWN],
             "changed": direct[:SHOWN] + upstream}
    return short, "… " + ", ".join(f"{n:,} more {kind}" for kind, n in more.items()) + " (--format json lists them)"


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
        shown, rest = _shortened(result)
        con = console()
        print_diff(shown, con)
        if rest:
            con.print(rest, highlight=False)
    if problems:
        report_problems(problems)
        raise typer.Exit(1)
