"""`cnncalc layers` and `cnncalc schema`: the vocabulary and the JSON Schema."""
from __future__ import annotations

from typing import Optional

import typer

from cnncalc.cli.app import app
from cnncalc.cli.console import console, user_errors


@app.command()
@user_errors
def layers(type: Optional[str] = typer.Argument(None, help="Show one layer type in detail.")) -> None:
    """The layer vocabulary: fields, defaults and the formulas each type uses."""
    from cnncalc.render.vocabulary import describe, print_vocabulary

    if type:
        console().print(describe(type))
    else:
        print_vocabulary(console())


@app.command()
def schema() -> None:
    """Print the JSON Schema of the spec format (for editors' YAML language server)."""
    from cnncalc.render.vocabulary import spec_schema_text

    print(spec_schema_text())  # kept in the user's cache folder, under a key of cnncalc's sources
