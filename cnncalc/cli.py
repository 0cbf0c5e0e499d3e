"""The command line: analyze, validate, verify, layers, schema.

Exit status: 0 all good; 1 invalid spec, failed check or torch disagrees; 2 bad command line.
Only the torch backend imports torch, and only inside `verify`.
"""
from __future__ import annotations

import contextlib
import functools
import json
import os
import sys
from enum import Enum
from typing import Any, Callable, List, Optional, TypeVar

import typer

from .arith import DTYPE_BYTES
from .errors import CnnError, Problem, did_you_mean

app = typer.Typer(no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Analytic shapes, params, MACs, memory and receptive fields of CNN specs, "
                       "proved against PyTorch.")


class Format(str, Enum):
    table = "table"
    json = "json"
    csv = "csv"
    markdown = "markdown"
    html = "html"
    dot = "dot"
    mermaid = "mermaid"


class By(str, Enum):
    type = "type"


class Output(str, Enum):
    """The formats of the commands that print one table (diff, rf, sweep, verify)."""
    table = "table"
    json = "json"


class CheckFormat(str, Enum):
    text = "text"
    json = "json"
    github = "github"


Dtype = Enum("Dtype", {name: name for name in DTYPE_BYTES}, type=str)  # type: ignore[misc]


class Optimizer(str, Enum):
    sgd = "sgd"
    momentum = "momentum"
    adam = "adam"


def console(stderr: bool = False):
    from rich.console import Console

    c = Console(stderr=stderr, highlight=False)
    if not c.is_terminal:  # piped: no colour codes (rich), never truncated, no trailing spaces
        c = Console(file=_Tidy(sys.stderr if stderr else sys.stdout), highlight=False, width=100_000,  # type: ignore[arg-type]
                    no_color=True, color_system=None)
    return c


class _Tidy:
    """A text stream that drops the spaces rich pads lines with before each newline."""

    def __init__(self, out: Any):
        self.out, self.tail = out, ""

    def write(self, text: str) -> int:
        lines = (self.tail + text).split("\n")
        self.tail = lines.pop()
        if lines:
            self.out.write("".join(line.rstrip() + "\n" for line in lines))
        return len(text)

    def flush(self) -> None:
        if self.tail:
            self.out.write(self.tail.rstrip())
            self.tail = ""
        self.out.flush()

    def isatty(self) -> bool:
        return False


def report_problems(problems: list[Problem]) -> None:
    err = console(stderr=True)
    for p in problems:
        style = "red" if p.severity == "error" else "yellow"
        where = f" [bold]{_escape(p.who())}[/bold]:" if p.layer else ""
        err.print(f"{_escape(p.location())}: [{style}]{p.severity}[/{style}]:{where} {_escape(p.message)}")


def _escape(s: str) -> str:
    from .safe import markup

    return markup(s)


def annotation(value: object, prop: bool = False) -> str:
    """A GitHub workflow-command value: %, CR and LF escaped (and ':' and ',' in a property),
    other control characters made visible, so no text can end the command or start another."""
    from .safe import visible

    text = visible(str(value).replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A"))
    return text.replace(":", "%3A").replace(",", "%2C") if prop else text


F = TypeVar("F", bound=Callable[..., Any])


def user_errors(command: F) -> F:
    """A CnnError is the user's mistake: its located problems go to stderr, exit status 1."""
    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except CnnError as exc:
            report_problems(exc.problems)
            raise typer.Exit(exc.exit_code) from None

    return run  # type: ignore[return-value]


def require_layer(report, name: str) -> None:
    """--layer must name a layer of the report (a located message with a suggestion otherwise)."""
    names = [r.name for r in report.layers]
    if name not in names:
        raise CnnError([Problem(f"--layer: no layer '{name}'{did_you_mean(name, names)}", report.file)])


def parse_input(value: str | None):
    if value is None:
        return None
    from .spec import parse_shape

    try:
        return parse_shape(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--input") from None


def _analyze(spec: str, batch, input, dtype, optimizer, sets: list[str] | None = None):
    from .analyzer import analyze
    from .spec import load_spec

    return analyze(load_spec(spec, parse_sets(sets)), batch, parse_input(input), dtype.value if dtype else None,
                   optimizer.value)


def parse_sets(sets: list[str] | None) -> dict[str, Any]:
    """--set NAME=VALUE (repeatable): VALUE read as a YAML scalar (0.75, 1000, true, text)."""
    import yaml

    out: dict[str, Any] = {}
    for item in sets or []:
        name, eq, text = item.partition("=")
        if not eq or not name.strip():
            raise typer.BadParameter(f"expected NAME=VALUE, received {item[:60]!r}", param_hint="--set")
        try:
            value = yaml.safe_load(text) if len(text) <= 200 else None
        except yaml.YAMLError:
            value = None
        if not isinstance(value, (int, float, str, bool)):
            raise typer.BadParameter(f"expected a number, true/false or a word after '=', received {text[:60]!r}",
                                     param_hint="--set")
        out[name.strip()] = value
    return out


SetOpt = typer.Option(None, "--set", help="Override a spec argument (its `args:`), e.g. --set width=0.75; repeatable.")


def _qty(value: str | None, flag: str, in_bytes: bool) -> int | None:
    if value is None:
        return None
    from .budgets import parse_quantity

    try:
        return parse_quantity(value, in_bytes)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint=flag) from None


def budget_flags(max_params, max_macs, max_flops, max_memory, max_training_memory, max_activations) -> dict:
    given = {"max_params": (max_params, "--max-params"), "max_macs": (max_macs, "--max-macs"),
             "max_flops": (max_flops, "--max-flops"), "max_inference_memory": (max_memory, "--max-memory"),
             "max_training_memory": (max_training_memory, "--max-training-memory"),
             "max_activation_bytes": (max_activations, "--max-activations")}
    from .budgets import BYTE_LIMITS

    return {k: _qty(v, flag, k in BYTE_LIMITS) for k, (v, flag) in given.items() if v is not None}


MaxParams = typer.Option(None, "--max-params", help="Budget, e.g. 25M.", rich_help_panel="Budgets")
MaxMacs = typer.Option(None, "--max-macs", help="Budget, e.g. 4.1G.", rich_help_panel="Budgets")
MaxFlops = typer.Option(None, "--max-flops", help="Budget, e.g. 8.2G.", rich_help_panel="Budgets")
MaxMemory = typer.Option(None, "--max-memory", help="Inference memory budget, e.g. 512MiB.", rich_help_panel="Budgets")
MaxTraining = typer.Option(None, "--max-training-memory", help="Training-step memory budget, e.g. 8GiB.",
                           rich_help_panel="Budgets")
MaxActivations = typer.Option(None, "--max-activations", help="Budget for all activations, e.g. 1GiB.",
                              rich_help_panel="Budgets")

SpecArg = typer.Argument(..., help="YAML spec file.", show_default=False)
BatchOpt = typer.Option(None, "--batch", "-b", min=1, max=2**40, help="Batch size (default: the spec's, else 1).")
InputOpt = typer.Option(None, "--input", "-i", help="Input without batch, e.g. 3x224x224 (overrides the spec).")
DtypeOpt = typer.Option(None, "--dtype", help="Element type for byte counts (counts do not change).")


def _version(value: bool) -> None:
    if value:
        from . import __version__

        print(f"cnncalc {__version__}")
        raise typer.Exit()


@app.callback()
def root(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                      help="Print cnncalc's version and exit.")) -> None:
    """Analytic shapes, params, MACs, memory and receptive fields of CNN specs, proved against PyTorch."""


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
                                                     "(1: the top-level entries of layers:); table only."),
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
    from . import render

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
    if depth is not None and (format is not Format.table or explain or verify):
        raise typer.BadParameter("--depth applies to the table alone (JSON keeps every layer with its block_path)",
                                 param_hint="--depth")
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
        chosen = render.choose_columns(columns) if columns is not None else None
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--columns") from None
    budgets = budget_flags(max_params, max_macs, max_flops, max_memory, max_training_memory, max_activations)
    if peaks is not None:
        from .roofline import Peaks

        budgets["peaks"] = Peaks.load(peaks)
    docs: list[str] = []
    code = 0
    apart = False  # a report was printed: a blank line before the next
    for spec in specs:
        if apart:
            print(flush=True)
        try:
            apart = format in (Format.table, Format.markdown)
            ok = _analyze_one(spec, batch, input, dtype, format, optimizer, verify, fuse_bn, explain, layer, by,
                              depth, chosen, budgets, docs.append, sets)
            code = max(code, 0 if ok else 1)
        except CnnError as exc:
            apart = False
            report_problems(exc.problems)
            code = max(code, exc.exit_code)
            if len(specs) > 1:  # the array keeps one entry per spec
                docs.append(json.dumps({"file": spec, "problems": [p.to_dict() for p in exc.problems]}, indent=2))
    if format is Format.json and docs:
        sys.stdout.write((docs[0] if len(specs) == 1 else "[\n" + ",\n".join(docs) + "\n]") + "\n")
    raise typer.Exit(code)


def _analyze_one(spec, batch, input, dtype, format, optimizer, verify, fuse_bn, explain, layer, by, depth, columns,
                 budgets, emit_json, sets=None) -> bool:
    """Analyze one spec and print it (JSON goes to `emit_json`); False when a budget or torch fails."""
    from . import render
    from .analyzer import check_limits

    report = _analyze(spec, batch, input, dtype, optimizer, sets)
    budgets = dict(budgets)
    peaks = budgets.pop("peaks", None)
    if peaks is not None:
        from .roofline import predict

        report.extra["predicted"] = predict(report, peaks)
    over = check_limits(report, budgets)
    if fuse_bn:
        from .analyzer import fused_totals

        report.extra["fused_bn"] = fused_totals(report)
    if over:
        report.extra["limits"] = [p.to_dict() for p in over]
    if layer is not None:
        require_layer(report, layer)
    ok = True
    if by is not None:
        report.extra["by_type"] = render.by_type(report)
        if format is Format.table:
            render.print_by_type(report, console())
        else:
            emit_json(render.to_json(report))
    elif verify and format is Format.json:  # one JSON document: the report with its `verify` object
        ok = _verify(report, format=Format.json, fuse_bn=fuse_bn, emit=emit_json)
    else:
        if explain:
            report.extra["explain"] = {name: [{"quantity": w, "expression": e, "value": v} for w, e, v in lines]
                                       for name, lines in render.explanations(report, layer).items()}
        if explain and format is Format.table:
            if layer is None:
                render.print_table(report, console(), columns=columns)
            render.print_explanations(report, console(), layer)
        elif format is Format.table:
            render.print_table(report, console(), depth, columns)
        elif format is Format.json:
            emit_json(render.to_json(report))
        else:
            from . import graph, report_html

            text = {Format.csv: render.to_csv, Format.dot: graph.to_dot, Format.mermaid: graph.to_mermaid,
                    Format.markdown: lambda r: render.to_markdown(r, columns),
                    Format.html: lambda r: report_html.to_html(r, explain, layer, columns)}[format](report)
            sys.stdout.write(text if text.endswith("\n") else text + "\n")
        if verify:
            ok = _verify(report, fuse_bn=fuse_bn)
    if over:
        sys.stdout.flush()
        report_problems(over)
    return ok and not over


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
    from .analyzer import analyze, check_limits
    from .spec import load_spec

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


@app.command()
@user_errors
def diff(old: str = typer.Argument(..., help="Old spec, or a JSON report from `analyze --format json`."),
         new: str = typer.Argument(..., help="New spec (or JSON report)."),
         format: Output = typer.Option(Output.table, "--format", "-f", help="table or json."),
         fail_on_increase: Optional[str] = typer.Option(
             None, help="Gate, e.g. macs=5%,params=0: exit 1 when a total grows by more."),
         batch: Optional[int] = BatchOpt, input: Optional[str] = InputOpt) -> None:
    """Per-layer and total changes between two specs (or a spec and a stored report)."""
    from . import diff as d

    try:
        gate = d.parse_gate(fail_on_increase) if fail_on_increase else {}
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--fail-on-increase") from None
    result = d.compare(d.load_side(old, batch, parse_input(input)), d.load_side(new, batch, parse_input(input)))
    problems = d.gate_problems(result, gate, new)
    if format.value == "json":
        print(json.dumps({**result, "gate": [p.message for p in problems]}, indent=2))
    else:
        d.print_diff(result, console())
    if problems:
        report_problems(problems)
        raise typer.Exit(1)


@app.command()
@user_errors
def rf(spec: str = SpecArg, layer: Optional[str] = typer.Option(None, "--layer", help="Layer of the unit."),
       unit: Optional[str] = typer.Option(None, "--unit", help="Output unit, 0-based, e.g. 3,4 (needs --layer)."),
       batch: Optional[int] = BatchOpt, input: Optional[str] = InputOpt,
       format: Output = typer.Option(Output.table, "--format", "-f", help="table or json.")) -> None:
    """Receptive fields: size, jump and start of every layer, or the input window one unit sees."""
    from . import views

    if (unit is None) != (layer is None):
        raise typer.BadParameter("--layer and --unit go together (the unit of that layer whose input window "
                                 "to show)", param_hint="--unit" if layer is None else "--layer")
    try:
        u = views.parse_unit(unit) if unit is not None else None
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--unit") from None
    report = _analyze(spec, batch, input, None, Optimizer.adam)
    if u is None:
        if format.value == "json":
            print(json.dumps({r.name: r.rf_json() for r in report.layers if r.receptive_field}, indent=2))
        else:
            views.print_fields(report, console())
        return
    assert layer is not None  # --unit needs --layer, checked above
    require_layer(report, layer)
    axes = views.unit_field(report, layer, u)
    if format.value == "json":
        print(json.dumps(views.unit_field_json(layer, u, axes), indent=2))
    else:
        views.print_unit_field(layer, u, axes, console())


@app.command()
@user_errors
def sweep(spec: str = SpecArg,
          input: str = typer.Option(..., "--input", "-i", help="Comma-separated sizes, e.g. 3x128x128,3x224x224."),
          batch: Optional[str] = typer.Option(None, "--batch", "-b",
                                              help="Comma-separated batches, e.g. 1,32,256 (default: the spec's)."),
          dtype: Optional[Dtype] = DtypeOpt, sets: Optional[List[str]] = SetOpt,
          format: Output = typer.Option(Output.table, "--format", "-f", help="table or json.")) -> None:
    """How shapes, cost, memory and fields change with input size and batch."""
    from . import views
    from .spec import load_spec

    sizes = [parse_input(p) for p in input.split(",") if p.strip()]
    if not sizes or len(sizes) > 1000:
        raise typer.BadParameter(f"expected 1 to 1,000 sizes like 3x128x128,3x224x224, received {input[:60]!r}",
                                 param_hint="--input")
    try:
        parts = batch.split(",") if batch is not None else ["1"]
        if len(parts) > 1000 or len(parts) * len(sizes) > 10_000 or any(len(b.strip()) > 14 for b in parts):
            raise ValueError
        batches = [int(b) for b in parts]
        if min(batches) < 1 or max(batches) > 2**40:
            raise ValueError
    except ValueError:
        raise typer.BadParameter(f"expected positive integers up to 2^40 like 1,32,256, received {(batch or '')[:60]!r}",
                                 param_hint="--batch") from None
    net = load_spec(spec, parse_sets(sets))
    rows = views.sweep(net, sizes, batches if batch is not None else [net.header.batch], dtype.value if dtype else None)
    if format.value == "json":
        print(json.dumps(rows, indent=2))
    else:
        views.print_sweep(rows, console())


@app.command()
@user_errors
def plot(spec: str = SpecArg, output: Optional[str] = typer.Option(None, "-o", "--output",
                                                                  help="PNG or SVG file (needs matplotlib)."),
         batch: Optional[int] = BatchOpt, input: Optional[str] = InputOpt) -> None:
    """Per-layer MACs, params, activation memory, receptive field and output size: a figure with
    -o out.png|svg, bars in the terminal otherwise."""
    from . import views

    if output and not output.lower().endswith((".png", ".svg", ".pdf")):
        raise typer.BadParameter("expected a .png, .svg or .pdf file", param_hint="--output")
    report = _analyze(spec, batch, input, None, Optimizer.adam)
    if output:
        views.figure(report, output)
        console(stderr=True).print(f"wrote {_escape(output)}")
    else:
        views.terminal_plot(report, console())


@app.command()
@user_errors
def layers(type: Optional[str] = typer.Argument(None, help="Show one layer type in detail.")) -> None:
    """The layer vocabulary: fields, defaults and the formulas each type uses."""
    from .vocabulary import describe, print_vocabulary

    if type:
        console().print(describe(type))
    else:
        print_vocabulary(console())


@app.command()
def schema() -> None:
    """Print the JSON Schema of the spec format (for editors' YAML language server)."""
    from .vocabulary import spec_schema

    print(json.dumps(spec_schema(), indent=2))


@app.command()
@user_errors
def verify(spec: str = SpecArg, batch: Optional[int] = BatchOpt, input: Optional[str] = InputOpt,
           dtype: Dtype = typer.Option(Dtype("float32"), "--dtype", help="Element type of the timed run."),
           device: str = typer.Option("auto", help="auto (cuda, then mps, then cpu), cpu, cuda, cuda:N or mps."),
           repeat: int = typer.Option(20, min=1, max=100_000, help="Timed forward passes."),
           warmup: int = typer.Option(3, min=0, max=10_000, help="Untimed warm-up passes."),
           format: Output = typer.Option(Output.table, "--format", "-f", help="table or json."),
           force: bool = typer.Option(False, help="Run even if the estimate exceeds the device memory."),
           compile: bool = typer.Option(False, "--compile", help="Time the torch.compile'd model too."),
           channels_last: bool = typer.Option(False, help="Time in channels_last memory format."),
           rf_probe: bool = typer.Option(True, help="Check receptive fields with a gradient probe."),
           fuse_bn: bool = typer.Option(False, "--fuse-bn", help="Fold batch norms into convs and check outputs."),
           profile: bool = typer.Option(False, "--profile", help="Time each layer (torch.profiler) against its "
                                                                 "roofline bound from the device's measured peaks."),
           sets: Optional[List[str]] = SetOpt,
           cuda_graph: bool = typer.Option(False, "--cuda-graph", help="Also time a CUDA-graph replay (the GPU's "
                                                                       "time without launch overhead; CUDA only)."),
           ) -> None:
    """Build the spec in PyTorch, compare every number with the analysis, time the forward pass."""
    report = _analyze(spec, batch, input, None, Optimizer.adam, sets)
    ok = _verify(report, device, dtype.value, repeat, warmup, format, force, compile, channels_last, rf_probe, fuse_bn,
                 profile=profile, cuda_graph=cuda_graph)
    raise typer.Exit(0 if ok else 1)


class Target(str, Enum):
    torch = "torch"
    onnx = "onnx"


@app.command()
@user_errors
def export(spec: str = SpecArg, to: Target = typer.Option(..., "--to", help="torch: a standalone PyTorch file; "
                                                                           "onnx: an ONNX graph."),
           output: Optional[str] = typer.Option(None, "-o", "--output", help="File to write (default: standard output)."),
           batch: Optional[int] = BatchOpt, input: Optional[str] = InputOpt,
           sets: Optional[List[str]] = SetOpt) -> None:
    """Write the network as code: a PyTorch file defining the module and build(), or an ONNX graph
    (needs torch; ONNX also the onnx extra)."""
    from .backend.export import to_onnx, to_torch

    if to is Target.onnx and output is None:
        raise typer.BadParameter("--to onnx writes a binary file: give -o net.onnx", param_hint="--output")
    report = _analyze(spec, batch, input, None, Optimizer.adam, sets)
    if to is Target.onnx:
        assert output is not None
        to_onnx(report, output)
        console(stderr=True).print(f"wrote {_escape(output)}")
        return
    if write_out(to_torch(report), output):
        console(stderr=True).print(f"wrote {_escape(output or '')}")


@app.command("import")
@user_errors
def import_(source: str = typer.Argument(..., help="FILE.py:NAME, package.module:NAME, torchvision:NAME or MODEL.onnx "
                                                   "(NAME: a module, class or function taking no arguments)."),
            input: Optional[str] = typer.Option(None, "--input", "-i", help="Input without batch, e.g. 3x224x224 "
                                                "(needed for PyTorch models; an ONNX graph's own by default)."),
            output: Optional[str] = typer.Option(None, "-o", "--output", help="Spec file to write (default: standard "
                                                 "output)."),
            name: Optional[str] = typer.Option(None, "--name", help="The network's name (default: from SOURCE).")) -> None:
    """Read a PyTorch model or an ONNX graph into a spec, proved against it.

    Layers are named by module path, repeated sub-modules become blocks with repeat. Before the
    spec is written it is proved against the model (every shape, params, buffers, FLOPs and the
    outputs); an op with no layer type is refused, every one listed."""
    from .safe import visible

    shape = parse_input(input)
    onnx = source.lower().endswith(".onnx")
    where, _, attr = source.rpartition(":")
    stem = os.path.splitext(os.path.basename(where or source))[0].rpartition(".")[2]
    default = stem if onnx or attr == "build" else attr  # build(): what cnncalc's exported files define
    net_name = name or default or "net"
    if onnx:
        from .onnx_import import import_onnx

        text, notes = import_onnx(source, shape, net_name)
    else:
        if shape is None:
            raise typer.BadParameter("give the input size of the model, e.g. --input 3x224x224", param_hint="--input")
        from .backend.fx_import import import_model, load_model

        header = [f"written by cnncalc import from {' '.join(visible(source).split())[:300]} at "
                  f"{'x'.join(map(str, shape))}; proved against torch (shapes, params, buffers, FLOPs, outputs)"]
        with contextlib.redirect_stdout(sys.stderr):  # what the model's code prints must not enter the spec
            text, notes = import_model(load_model(source), shape, net_name, header, visible(source))
    err = console(stderr=True)
    for note in notes:
        err.print(_escape(note))
    if write_out(text, output):
        err.print(f"wrote {_escape(output or '')}")


def write_out(text: str, output: str | None) -> bool:
    """`text` to the file `output` (True), or to standard output when there is none (False); a
    file that cannot be written is a command-line mistake (exit 2)."""
    if output is None:
        sys.stdout.write(text)
        return False
    try:
        with open(output, "w") as fh:
            fh.write(text)
    except OSError as exc:
        raise CnnError.single(f"cannot write the file: {exc.strerror or exc}", exit_code=2, file=output) from None
    return True


@app.command()
@user_errors
def calibrate(device: str = typer.Option("auto", help="auto (cuda, then mps, then cpu), cpu, cuda, cuda:N or mps."),
              dtype: Dtype = typer.Option(Dtype("float32"), "--dtype", help="Element type of the matmul and copies."),
              output: Optional[str] = typer.Option(None, "-o", "--output",
                                                   help="JSON file to write (default: standard output)."),
              ) -> None:
    """Measure the device's peaks (matmul FLOP/s, copy bandwidth, empty-call overhead) for
    `analyze --peaks` (needs torch)."""
    from .backend import kit
    from .backend.device import pick_device
    from .backend.profile import measure_peaks
    from .roofline import fmt_time

    t = kit()
    peaks = measure_peaks(t, pick_device(t.torch, device), dtype.value)
    if not write_out(json.dumps(peaks.to_json(), indent=2) + "\n", output):
        return
    from .render import human

    console(stderr=True).print(f"wrote {_escape(output or '')}: {_escape(peaks.device)} {dtype.value}: "
                               f"{human(peaks.flops_per_s, 'FLOP/s')}, {human(peaks.bytes_per_s, 'B/s')}, "
                               f"calls ≥ {fmt_time(peaks.overhead_s)}")


def _verify(report, device="auto", dtype="float32", repeat=20, warmup=3, format=Output.table, force=False,
            compile=False, channels_last=False, rf_probe=True, fuse_bn=False, emit=print, profile=False,
            cuda_graph=False) -> bool:
    """Run the verification and print it; True when torch agrees."""
    from . import render, views
    from .backend.verify import verify_report

    with views.VerifyProgress(format.value == "table" and sys.stderr.isatty(), warmup + repeat) as progress:
        result = verify_report(report, device=device, dtype=dtype, repeat=repeat, warmup=warmup, force=force,
                               compile=compile, channels_last=channels_last, rf_probe=rf_probe, fuse_bn=fuse_bn,
                               progress=progress, profile=profile, cuda_graph=cuda_graph)
    if format.value == "json":
        emit(render.to_json(report, {"verify": result.to_json()}))
    else:
        views.print_verify(report, result, console())
        if result.profile is not None:
            views.print_profile(result.profile, console())
    return result.ok


def main() -> None:
    app()  # click handles a closed pipe (`| head`): silent, exit 1


if __name__ == "__main__":
    main()
