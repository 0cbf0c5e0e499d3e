"""`cnncalc rf`: receptive fields, or one unit's window."""
from __future__ import annotations

import json
from typing import List, Optional

import typer

from cnncalc.cli.app import app
from cnncalc.cli.console import console, require_layer, user_errors
from cnncalc.cli.options import BatchOpt, InputOpt, Optimizer, Output, SetOpt, SpecArg, _analyze


@app.command()
@user_errors
def rf(spec: str = SpecArg, layer: Optional[str] = typer.Option(None, "--layer", help="Layer of the unit."),
       unit: Optional[str] = typer.Option(None, "--unit", help="Output unit, 0-based, e.g. 3,4 (needs --layer)."),
       batch: Optional[int] = BatchOpt, input: Optional[str] = InputOpt,
       sets: Optional[List[str]] = SetOpt,
       format: Output = typer.Option(Output.table, "--format", "-f", help="table or json.")) -> None:
    """Receptive fields: size, jump and start of every layer, or the input window one unit sees."""
    from cnncalc.analysis.unit_field import unit_field
    from cnncalc.cli.options import parse_unit
    from cnncalc.render.formats import unit_field_json
    from cnncalc.render.terminal import print_fields, print_unit_field

    if (unit is None) != (layer is None):
        raise typer.BadParameter("--layer and --unit go together (the unit of that layer whose input window "
                                 "to show)", param_hint="--unit" if layer is None else "--layer")
    try:
        u = parse_unit(unit) if unit is not None else None
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--unit") from None
    report = _analyze(spec, batch, input, None, Optimizer.adam, sets)
    if u is None:
        if format.value == "json":
            print(json.dumps({r.name: r.rf_json() for r in report.layers if r.receptive_field}, indent=2))
        else:
            print_fields(report, console())
        return
    assert layer is not None  # --unit needs --layer, checked above
    require_layer(report, layer)
    axes = unit_field(report, layer, u)
    if format.value == "json":
        print(json.dumps(unit_field_json(layer, u, axes), indent=2))
    else:
        print_unit_field(layer, u, axes, console())
