"""`cnncalc analyze`: the report of one or more specs in any format."""
from __future__ import annotations

import json
import sys
from typing import List, Optional

import typer

from cnncalc.cli.app import app
from cnncalc.cli.console import _escape, console, report_problems, require_layer, user_errors, write_out
from cnncalc.cli.options import (
    BatchOpt,
    By,
    Dtype,
    DtypeOpt,
    Format,
    InputOpt,
    MaxActivations,
    MaxFlops,
    MaxMacs,
    MaxMemory,
    MaxParams,
    MaxTraining,
    Optimizer,
    SetOpt,
    _analyze,
    budget_flags,
)
from cnncalc.cli.verify import _verify
from cnncalc.errors import CnnError


@app.command()
@user_errors
def analyze(specs: List[str] = typer.Argument(..., help="YAML spec files (- reads standard input).",
                                              show_default=False, metavar="SPEC..."),
            batch: Optional[int] = BatchOpt, input: Optional[str] = InputOpt,
            dtype: Optional[Dtype] = DtypeOpt,
            format: Format = typer.Option(Format.table, "--format", "-f",
                                          help="Output format (dot and mermaid: the layer graph alone)."),
            optimizer: Optimizer = typer.Option(Optimizer.adam, help="Optimizer assumed by the training-memory estimate."),
            verify: bool = typer.Option(False, "--verify", help="Then prove the numbers in PyTorch (as `verify`)."),
            fuse_bn: bool = typer.Option(False, "--fuse-bn", help="Also report totals with batch norms folded."),
            explain: bool = typer.Option(False, "--explain", help="Show the formulas with the numbers substituted."),
            layer: Optional[str] = typer.Option(None, "--layer", help="With --explain: only this layer."),
            by: Optional[By] = typer.Option(None, "--by", help="'type': totals per layer type with their shares "
                                                              "(table or json)."),
            depth: Optional[int] = typer.Option(None, "--depth", min=1, max=64,
                                                help="Collapse block uses nested this deep into one row each "
                                                     "(1: the top-level entries of layers:); table, markdown, html."),
            output: Optional[str] = typer.Option(None, "-o", "--output",
                                                 help="Write the report to this file (in the chosen format) instead "
                                                      "of standard output."),
            sets: Optional[List[str]] = SetOpt,
            peaks: Optional[str] = typer.Option(
                None, "--peaks", help="A device's peaks (from `cnncalc calibrate`): add each layer's predicted "
                                      "lower-bound time (no torch needed)."),
            columns: Optional[str] = typer.Option(
                None, "--columns", help="Columns of the table, markdown or html, e.g. name,shape,params,macs,"
                                        "macs_share (index, name, type, shape, params, params_share, macs, "
                                        "macs_share, flops, activations, rf_size, rf_jump, rf_start)."),
            max_params: Optional[str] = MaxParams, max_macs: Optional[str] = MaxMacs,
            max_flops: Optional[str] = MaxFlops, max_memory: Optional[str] = MaxMemory,
            max_training_memory: Optional[str] = MaxTraining, max_activations: Optional[str] = MaxActivations,
            ) -> None:
    """Per-layer table (shapes, params, MACs, FLOPs, memory, receptive fields) and totals, of one
    spec or several in turn (JSON: an array of reports)."""
    from cnncalc.render.columns import choose_columns

    graph = format in (Format.dot, Format.mermaid)
    if layer is not None and not explain:
        raise typer.BadParameter("--layer selects the layer whose formulas --explain shows: add --explain",
                                 param_hint="--layer")
    if explain and (format in (Format.csv, Format.markdown) or graph):
        raise typer.BadParameter(f"--explain prints with --format table, json or html, not {format.value}",
                                 param_hint="--explain")
    if by is not None and (format not in (Format.table, Format.json) or explain or verify or depth):
        raise typer.BadParameter("--by type prints a table or JSON of its own (not with --explain, --verify or "
                                 "--depth)", param_hint="--by")
    if depth is not None and (format not in (Format.table, Format.markdown, Format.html) or explain or verify):
        raise typer.BadParameter("--depth collapses the rows of the table, markdown or html (JSON and CSV keep every "
                                 "layer with its block_path; not with --explain or --verify)", param_hint="--depth")
    if output is not None and (verify or explain and format is Format.table):
        raise typer.BadParameter("-o writes the report; --verify and --explain print to the terminal",
                                 param_hint="--output")
    if verify and format not in (Format.table, Format.json):
        raise typer.BadParameter(f"--verify prints with --format table or json, not {format.value}",
                                 param_hint="--verify")
    if columns is not None and (format not in (Format.table, Format.markdown, Format.html) or by is not None):
        raise typer.BadParameter("--columns chooses the columns of the layer table (table, markdown or html); "
                                 "JSON and CSV always have every field", param_hint="--columns")
    if peaks is not None and (format is Format.csv or graph or by is not None):
        raise typer.BadParameter("--peaks adds a predicted-time column to the table, markdown, html or JSON",
                                 param_hint="--peaks")
    if len(specs) > 1 and (format in (Format.csv, Format.html) or graph):
        raise typer.BadParameter(f"one spec at a time with --format {format.value} (several print as tables, "
                                 "markdown, or one JSON array)", param_hint="--format")
    try:
        chosen = choose_columns(columns) if columns is not None else None
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--columns") from None
    budgets = budget_flags(max_params, max_macs, max_flops, max_memory, max_training_memory, max_activations)
    if peaks is not None:
        from cnncalc.analysis.roofline import Peaks

        budgets["peaks"] = Peaks.load(peaks)
    docs: list[str] = []
    code = 0
    apart = False  # a report was printed: a blank line before the next
    written: list[str] = []  # with -o: everything that would go to standard output
    for spec in specs:
        if apart:
            if output is None:
                print(flush=True)
            else:
                written.append("\n")
        try:
            apart = format in (Format.table, Format.markdown)
            ok = _analyze_one(spec, batch, input, dtype, format, optimizer, verify, fuse_bn, explain, layer, by,
                              depth, chosen, budgets, docs.append, sets, written.append if output else None)
            code = max(code, 0 if ok else 1)
        except CnnError as exc:
            apart = False
            report_problems(exc.problems)
            code = max(code, exc.exit_code)
            if len(specs) > 1:  # the array keeps one entry per spec
                docs.append(json.dumps({"file": spec, "problems": [p.to_dict() for p in exc.problems]}, indent=2,
                                       allow_nan=False))
    if format is Format.json and docs:
        text = (docs[0] if len(specs) == 1 else "[\n" + ",\n".join(docs) + "\n]") + "\n"
        if output is None:
            sys.stdout.write(text)
        else:
            written.append(text)
    if output is not None and write_out("".join(written), output):
        console(stderr=True).print(f"wrote {_escape(output)} ({format.value})")
    raise typer.Exit(code)


def _analyze_one(spec, batch, input, dtype, format, optimizer, verify, fuse_bn, explain, layer, by, depth, columns,
                 budgets, emit_json, sets=None, emit_text=None) -> bool:
    """Analyze one spec and print it (JSON goes to `emit_json`; with `emit_text`, everything else
    too, the table as plain text); False when a budget or torch fails."""
    from cnncalc.analysis.analyze import check_limits
    from cnncalc.analysis.explain import explanations
    from cnncalc.render.columns import by_type
    from cnncalc.render.formats import to_csv, to_json, to_markdown
    from cnncalc.render.terminal import print_by_type, print_explanations, print_table

    report = _analyze(spec, batch, input, dtype, optimizer, sets)
    budgets = dict(budgets)
    peaks = budgets.pop("peaks", None)
    if peaks is not None:
        from cnncalc.analysis.roofline import predict

        report.extra["predicted"] = predict(report, peaks)
    over = check_limits(report, budgets)
    if fuse_bn:
        from cnncalc.analysis.fold import fused_totals

        report.extra["fused_bn"] = fused_totals(report)
    if over:
        report.extra["limits"] = [p.to_dict() for p in over]
    if layer is not None:
        require_layer(report, layer)
    ok = True
    if by is not None:
        report.extra["by_type"] = by_type(report)
        if format is Format.table:
            print_by_type(report, console())
        else:
            emit_json(to_json(report))
    elif verify and format is Format.json:  # one JSON document: the report with its `verify` object
        ok = _verify(report, format=Format.json, fuse_bn=fuse_bn, emit=emit_json)
    else:
        if explain:
            report.extra["explain"] = {name: [{"quantity": w, "expression": e, "value": v} for w, e, v in lines]
                                       for name, lines in explanations(report, layer).items()}
        if explain and format is Format.table:
            if layer is None:
                print_table(report, console(), columns=columns)
            print_explanations(report, console(), layer)
        elif format is Format.table and emit_text is not None:
            from cnncalc.render.text import table_text

            emit_text(table_text(report, 200, depth, columns))
        elif format is Format.table:
            print_table(report, console(), depth, columns)
        elif format is Format.json:
            emit_json(to_json(report))
        else:
            from cnncalc.render import graph
            from cnncalc.render import html as report_html

            text = {Format.csv: to_csv, Format.dot: graph.to_dot, Format.mermaid: graph.to_mermaid,
                    Format.markdown: lambda r: to_markdown(r, columns, depth),
                    Format.html: lambda r: report_html.to_html(r, explain, layer, columns, depth)}[format](report)
            (emit_text or sys.stdout.write)(text if text.endswith("\n") else text + "\n")
        if verify:
            ok = _verify(report, fuse_bn=fuse_bn)
    if over:
        sys.stdout.flush()
        report_problems(over)
    return ok and not over
