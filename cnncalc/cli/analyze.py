"""`cnncalc analyze`: the report of one or more specs in any format."""
from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Callable, List, Mapping, Optional

import typer

from cnncalc.cli.app import app
from cnncalc.cli.console import _escape, console, report_problems, require_layer, user_errors, write_out
from cnncalc.cli.options import (
    AmpDevice,
    AmpDeviceOpt,
    AmpDtype,
    AmpOpt,
    BatchOpt,
    By,
    CheckpointOpt,
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
    Output,
    SetOpt,
    _analyze,
    budget_flags,
    parse_checkpoint,
    with_amp,
)
from cnncalc.cli.verify import _verify
from cnncalc.errors import CnnError

if TYPE_CHECKING:
    from cnncalc.analysis.report import Report
    from cnncalc.analysis.roofline import Peaks
    from cnncalc.backend.verify import VerifyOptions


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
            amp: Optional[AmpDtype] = AmpOpt, amp_device: AmpDevice = AmpDeviceOpt,
            checkpoint: Optional[str] = CheckpointOpt,
            ) -> None:
    """Per-layer table (shapes, params, MACs, FLOPs, memory, receptive fields) and totals, of one
    spec or several in turn (JSON: an array of reports)."""
    o = AnalyzeOptions(batch=batch, input=input, dtype=dtype, optimizer=optimizer, sets=tuple(sets or ()),
                       format=format, verify=verify, fuse_bn=fuse_bn, explain=explain, layer=layer, by=by, depth=depth,
                       amp=amp, amp_device=amp_device, checkpoint=parse_checkpoint(checkpoint))
    _refuse_combinations(o, len(specs), output, columns is not None, peaks is not None)
    o = replace(o, columns=_columns(columns),
                budgets=budget_flags(max_params, max_macs, max_flops, max_memory, max_training_memory,
                                     max_activations), peaks=_peaks(peaks))
    raise typer.Exit(_analyze_all(specs, o, output))


@dataclass(frozen=True)
class AnalyzeOptions:
    """What `analyze` makes of each spec: how it is analysed (batch, input, dtype, optimizer,
    --set), which sections the report has and in which format, and what it is checked against."""

    batch: int | None = None
    input: str | None = None
    dtype: Dtype | None = None
    optimizer: Optimizer = Optimizer.adam
    sets: tuple[str, ...] = ()
    format: Format = Format.table
    verify: bool = False
    fuse_bn: bool = False
    explain: bool = False
    layer: str | None = None
    """with --explain: only this layer's formulas"""
    by: By | None = None
    depth: int | None = None
    columns: list[int] | None = None
    """the chosen columns (indices into render.columns.COLUMNS), None: the default ones"""
    budgets: Mapping[str, int] = field(default_factory=dict)
    """the command line's budgets (budget_flags)"""
    peaks: Peaks | None = None
    """a device's peaks (--peaks): each layer's predicted time"""
    amp: AmpDtype | None = None
    """--amp: memory as torch.autocast runs the network in this low dtype"""
    amp_device: AmpDevice = AmpDevice.cuda
    """--amp-device: whose autocast op lists apply"""
    checkpoint: list[str] | str | None = None
    """--checkpoint: the block uses checkpointed ('all': every top-level one)"""


def _refuse_combinations(o: AnalyzeOptions, n_specs: int, output: str | None, columns: bool, peaks: bool) -> None:
    """The option combinations analyze cannot honour, each a usage error (exit 2) naming its option."""
    format, explain, verify, by, depth = o.format, o.explain, o.verify, o.by, o.depth
    graph = format in (Format.dot, Format.mermaid)
    if o.layer is not None and not explain:
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
    if columns and (format not in (Format.table, Format.markdown, Format.html) or by is not None):
        raise typer.BadParameter("--columns chooses the columns of the layer table (table, markdown or html); "
                                 "JSON and CSV always have every field", param_hint="--columns")
    if peaks and (format is Format.csv or graph or by is not None):
        raise typer.BadParameter("--peaks adds a predicted-time column to the table, markdown, html or JSON",
                                 param_hint="--peaks")
    if n_specs > 1 and (format in (Format.csv, Format.html) or graph):
        raise typer.BadParameter(f"one spec at a time with --format {format.value} (several print as tables, "
                                 "markdown, or one JSON array)", param_hint="--format")


def _columns(text: str | None) -> list[int] | None:
    """--columns read (a usage error names an unknown column)."""
    from cnncalc.render.columns import choose_columns

    try:
        return choose_columns(text) if text is not None else None
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--columns") from None


def _peaks(path: str | None) -> Peaks | None:
    """--peaks read (a file from `cnncalc calibrate`)."""
    if path is None:
        return None
    from cnncalc.analysis.roofline import Peaks

    return Peaks.load(path)


def _analyze_all(specs: list[str], o: AnalyzeOptions, output: str | None) -> int:
    """Each spec in turn, a blank line between printed reports; JSON as one document (an array of
    reports for several specs); with `output`, everything written to that file. The exit code."""
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
            apart = o.format in (Format.table, Format.markdown)
            ok = _analyze_one(spec, o, docs.append, written.append if output else None)
            code = max(code, 0 if ok else 1)
        except CnnError as exc:
            apart = False
            report_problems(exc.problems)
            code = max(code, exc.exit_code)
            if len(specs) > 1:  # the array keeps one entry per spec
                docs.append(json.dumps({"file": spec, "problems": [p.to_dict() for p in exc.problems]}, indent=2,
                                       allow_nan=False))
    if o.format is Format.json and docs:
        text = (docs[0] if len(specs) == 1 else "[\n" + ",\n".join(docs) + "\n]") + "\n"
        if output is None:
            sys.stdout.write(text)
        else:
            written.append(text)
    if output is not None and write_out("".join(written), output):
        console(stderr=True).print(f"wrote {_escape(output)} ({o.format.value})")
    return code


def _analyze_one(spec: str, o: AnalyzeOptions, emit_json: Callable[[str], object],
                 emit_text: Callable[[str], object] | None = None) -> bool:
    """Analyze one spec and print it (JSON goes to `emit_json`; with `emit_text`, everything else
    too, the table as plain text); False when a budget or torch fails."""
    from cnncalc.analysis.analyze import check_limits
    from cnncalc.render.columns import by_type
    from cnncalc.render.formats import to_json
    from cnncalc.render.terminal import print_by_type

    report = with_amp(_analyze(spec, o.batch, o.input, o.dtype, o.optimizer, list(o.sets)), o.amp, o.amp_device,
                      o.checkpoint)
    if o.peaks is not None:
        from cnncalc.analysis.roofline import predict

        report.extra["predicted"] = predict(report, o.peaks)
    over = check_limits(report, dict(o.budgets))
    if o.fuse_bn:
        from cnncalc.analysis.fold import fused_totals

        report.extra["fused_bn"] = fused_totals(report)
    if over:
        report.extra["limits"] = [p.to_dict() for p in over]
    if o.layer is not None:
        require_layer(report, o.layer)
    ok = True
    if o.by is not None:
        report.extra["by_type"] = by_type(report)
        if o.format is Format.table:
            print_by_type(report, console())
        else:
            emit_json(to_json(report))
    elif o.verify and o.format is Format.json:  # one JSON document: the report with its `verify` object
        ok = _verify(report, _verify_options(o), Output.json, emit=emit_json)
    else:
        _print_report(report, o, emit_json, emit_text)
        if o.verify:
            ok = _verify(report, _verify_options(o))
    if over:
        sys.stdout.flush()
        report_problems(over)
    return ok and not over


def _verify_options(o: AnalyzeOptions) -> VerifyOptions:
    """--verify: `cnncalc verify`'s defaults, with analyze's --fuse-bn."""
    from cnncalc.backend.verify import VerifyOptions

    return VerifyOptions(fuse_bn=o.fuse_bn, amp=o.amp.value if o.amp else None,
                         checkpoint=None if o.checkpoint is None else
                         o.checkpoint if isinstance(o.checkpoint, str) else ",".join(o.checkpoint))


def _print_report(report: Report, o: AnalyzeOptions, emit_json: Callable[[str], object],
                  emit_text: Callable[[str], object] | None) -> None:
    """The report in the chosen format, with its formulas under --explain."""
    from cnncalc.analysis.explain import explanations
    from cnncalc.render.formats import to_csv, to_json, to_markdown
    from cnncalc.render.terminal import print_explanations, print_table

    format, layer, columns, depth = o.format, o.layer, o.columns, o.depth
    if o.explain:
        report.extra["explain"] = {name: [{"quantity": w, "expression": e, "value": v} for w, e, v in lines]
                                   for name, lines in explanations(report, layer).items()}
    if o.explain and format is Format.table:
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

        render: dict[Format, Callable[[Report], str]] = {
            Format.csv: to_csv, Format.dot: graph.to_dot, Format.mermaid: graph.to_mermaid,
            Format.markdown: lambda r: to_markdown(r, columns, depth),
            Format.html: lambda r: report_html.to_html(r, o.explain, layer, columns, depth)}
        text = render[format](report)
        (emit_text or sys.stdout.write)(text if text.endswith("\n") else text + "\n")
