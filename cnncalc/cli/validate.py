"""`cnncalc validate`: check specs for CI, with annotations."""
from __future__ import annotations

import json
import os
from typing import List, Optional

import typer

from cnncalc.cli.app import app
from cnncalc.cli.console import annotation, console, report_problems
from cnncalc.cli.options import CheckFormat, MaxActivations, MaxFlops, MaxMacs, MaxMemory, MaxParams, MaxTraining, budget_flags
from cnncalc.errors import CnnError


@app.command()
def validate(specs: List[str] = typer.Argument(..., help="Spec files.", show_default=False),
             format: Optional[CheckFormat] = typer.Option(
                 None, "--format", "-f", help="text (file:line:col: message), json, or github annotations "
                                              "(default when GITHUB_ACTIONS=true)."),
             strict: bool = typer.Option(False, help="Treat warnings as errors."),
             max_params: Optional[str] = MaxParams, max_macs: Optional[str] = MaxMacs,
             max_flops: Optional[str] = MaxFlops, max_memory: Optional[str] = MaxMemory,
             max_training_memory: Optional[str] = MaxTraining, max_activations: Optional[str] = MaxActivations,
             ) -> None:
    """Check spec files: every problem as file:line:col: message; exit 1 if any is invalid."""
    from cnncalc.analysis.analyze import analyze, check_limits
    from cnncalc.spec.expand import load_spec

    budgets = budget_flags(max_params, max_macs, max_flops, max_memory, max_training_memory, max_activations)
    fmt = format or (CheckFormat.github if os.environ.get("GITHUB_ACTIONS") == "true" else CheckFormat.text)
    results, bad, unreadable = [], 0, 0
    for path in specs:
        try:
            report = analyze(load_spec(path))
            problems = check_limits(report, budgets) + list(report.warnings)
        except CnnError as exc:
            problems = exc.problems
            unreadable += exc.exit_code == 2
        failed = any(p.severity == "error" or strict for p in problems)
        bad += failed
        results.append((path, failed, problems))
    if fmt is CheckFormat.json:
        print(json.dumps([{"file": f, "valid": not failed, "problems": [p.to_dict() for p in ps]}
                          for f, failed, ps in results], indent=2))
    elif fmt is CheckFormat.github:
        for _, _, ps in results:
            for p in ps:
                kind = "error" if p.severity == "error" else "warning"
                loc = ",".join(f"{k}={annotation(v, True)}" for k, v in (("file", p.file), ("line", p.line),
                                                                         ("col", p.col)) if v is not None)
                print(f"::{kind} {loc}::{annotation((f'{p.who()}: ' if p.layer else '') + p.message)}")
    else:
        for _, _, ps in results:
            if ps:
                report_problems(ps)
        err = console(stderr=True)
        err.print(f"{len(specs)} file{'s' * (len(specs) != 1)} checked: "
                  + (f"{bad} invalid" if bad else "all valid"))
    raise typer.Exit(2 if unreadable else 1 if bad else 0)  # a file that cannot be read: a usage mistake
