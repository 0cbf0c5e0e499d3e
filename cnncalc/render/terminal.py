"""Rich printers for the terminal: the layer table, per-type and explanation tables, fields,
sweeps, a unit's field, diffs, verify's result and progress, the profile."""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from cnncalc.analysis.diff import LAYER_FIELDS
from cnncalc.analysis.explain import explanations, result_tail
from cnncalc.analysis.report import Report
from cnncalc.errors import gc_paused
from cnncalc.render.columns import (
    COLUMNS,
    NUMERIC,
    ROWS_PER_CELL,
    by_type,
    default_columns,
    fitting_columns,
    group_cells,
    layer_cells,
    layer_groups,
    rf_num,
    rf_size_text,
    totals_rows,
)
from cnncalc.safe import visible
from cnncalc.units import hbytes, human, shape_str


def print_by_type(report: Report, console: Any) -> None:
    from rich.table import Table

    from cnncalc.safe import markup as escape

    table = Table(title=f"{escape(report.name)} by layer type  ·  input {shape_str(report.input_shape)}",
                  title_justify="left", header_style="bold")
    for c in ("type", "layers", "params", "% params", "MACs", "% MACs", "FLOPs", "activations"):
        table.add_column(c, justify="left" if c == "type" else "right")
    add_rows(table, ([row["type"], str(row["layers"]), f"{row['params']:,}", f"{row['params_share']:.1%}",
                      human(row["macs"]), f"{row['macs_share']:.1%}", human(row["flops"]),
                      hbytes(row["activation_bytes"])] for row in by_type(report)))
    console.print(table)


def add_rows(table: Any, rows: Iterable[Sequence[str]], markup: bool = False) -> None:
    """Add rows to a rich table 64 at a time, each cell one multi-line, unwrapped text: rich lays
    out a table's cells per 64 rows instead of per row (4× faster on ResNet-50's 175 layers, and
    linear: one row of everything would make rich's per-line work quadratic). On a narrow terminal
    the widest columns shrink first, cut with an ellipsis, so the lines stay aligned."""
    from rich.text import Text

    rows = list(rows)
    for i in range(0, len(rows), ROWS_PER_CELL):
        cells = []
        for column in zip(*rows[i:i + ROWS_PER_CELL]):
            cell = Text("\n").join(map(Text.from_markup, column)) if markup else Text("\n".join(map(visible, column)))
            cell.no_wrap, cell.overflow = True, "ellipsis"
            cells.append(cell)
        table.add_row(*cells)


@gc_paused()
def print_table(report: Report, console: Any, depth: int | None = None, columns: Sequence[int] | None = None) -> None:
    """The layer table (block uses nested `depth` levels deep collapsed; the `columns` chosen,
    as many as fit the terminal), then the totals."""
    from rich.table import Table

    from cnncalc.safe import markup as escape

    table = Table(title=f"{escape(report.name)}  ·  input {shape_str(report.input_shape)}  ·  {report.dtype}",
                  title_justify="left", header_style="bold", show_lines=False)
    rows = ([group_cells(g, depth, report) for g in layer_groups(report, depth)] if depth
            else [layer_cells(r, report) for r in report.layers])
    chosen = list(columns) if columns is not None else default_columns(report)
    keep = fitting_columns(rows, console.width, chosen)
    for i in keep:
        table.add_column(COLUMNS[i], justify="right" if COLUMNS[i] in NUMERIC else "left")
    add_rows(table, ([row[i] for i in keep] for row in rows))
    console.print(table)
    if len(keep) < len(chosen):
        console.print(f"(left out for this {console.width}-column terminal: "
                      f"{', '.join(COLUMNS[i] for i in chosen if i not in keep)}; JSON and CSV have them)")
    totals = Table(show_header=False, box=None, padding=(0, 2))
    totals.add_column(style="bold")
    totals.add_column()
    for k, v in totals_rows(report):
        totals.add_row(k, v)
    console.print(totals)
    if any(r.trainable_params < r.params for r in report.layers):
        console.print("* frozen (trainable: false)")
    for w in report.warnings:
        console.print(f"[yellow]warning[/yellow] {escape(str(w.layer))} (line {w.line}): {escape(w.message)}",
                      highlight=False)


def print_explanations(report: Report, console, only: str | None = None) -> None:
    from cnncalc.safe import markup as escape

    for name, lines in explanations(report, only).items():
        console.print(f"[bold]{escape(name)}[/bold] ({report.layer(name).type})")
        for what, expr, value in lines:
            expr, _, note = expr.partition("   (")
            tail = result_tail(expr, value)
            console.print(escape(f"  {what} = {expr}{tail}" + (f"   ({note}" if note else "")), highlight=False)


def print_diff(result: dict, console) -> None:
    from rich.table import Table

    from cnncalc.safe import markup as escape


    old, new = str(result["old"]), str(result["new"])
    if old == new and result.get("old_file") != result.get("new_file"):  # one network in two files: name the files
        old, new = f"{result.get('old_file')} ({old})", f"{result.get('new_file')} ({new})"
    t = Table(title=f"{escape(old)} → {escape(new)}", title_justify="left")
    for c in ("total", "old", "new", "change"):
        t.add_column(c, justify="left" if c == "total" else "right")
    for m, v in result["totals"].items():
        pct = f" ({v['percent']:+.2f}%)" if v["percent"] is not None else ""
        t.add_row(escape(str(m)), f"{v['old']:,}", f"{v['new']:,}", f"{v['delta']:+,}{pct}" if v["delta"] else "=")
    console.print(t)
    for k, v in result.get("args_changed", {}).items():
        console.print(f"argument {escape(k)}: {escape(repr(v['old']))} → {escape(repr(v['new']))}")
    for name in result["added"]:
        console.print(f"[green]+ {escape(str(name))}[/green]")
    for name in result["removed"]:
        console.print(f"[red]- {escape(str(name))}[/red]")
    upstream = [c for c in result["changed"] if c.get("cause") == "upstream"]
    for c in result["changed"]:
        if c.get("cause") != "upstream":
            detail = "; ".join(f"{f}: {_fmt(v['old'])} → {_fmt(v['new'])}" for f, v in c["changes"].items())
            console.print(f"[yellow]~ {escape(str(c['name']))}[/yellow]: {escape(detail)}", highlight=False)
    if upstream:
        fields = sorted({f for c in upstream for f in c["changes"]}, key=LAYER_FIELDS.index)
        names = [str(c["name"]) for c in upstream]
        span = ", ".join(names) if len(names) <= 3 else f"{names[0]}, {names[1]} … {names[-1]}"
        console.print(f"[dim]~ {len(names)} later layer{'s' * (len(names) != 1)} changed only as a consequence "
                      f"({', '.join(fields)}): {escape(span)}  (--format json lists them)[/dim]", highlight=False)
    if not (result["added"] or result["removed"] or result["changed"]):
        console.print("no layer changed")


def _fmt(v: Any) -> str:
    """A layer field for people: 34,944; 1×96×55×55; 19×19; – for none."""
    if v is None:
        return "–"
    if isinstance(v, list):
        return "×".join(_fmt(x) for x in v)
    if isinstance(v, int) and not isinstance(v, bool):
        return f"{v:,}"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


@gc_paused()
def print_fields(report: Report, console) -> None:
    from rich.table import Table

    from cnncalc.safe import markup as escape

    t = Table(title=f"receptive fields of {escape(report.name)} (input {shape_str(report.input_shape[2:])})",
              title_justify="left")
    for c in ("layer", "type", "output", "size", "jump", "start", "exact"):
        t.add_column(c)
    status = report.field_statuses()

    def cells(row):
        f = row.receptive_field
        return (row.name, row.type, shape_str(row.output_shape[2:]), rf_size_text(f),
                *("×".join(rf_num(r, a) for r in f) for a in ("jump", "start")),
                "yes" if status[row.name]["receptive_field"].level == "exact" else "approx.")

    add_rows(t, (cells(row) for row in report.layers if row.receptive_field is not None))
    console.print(t)


def print_sweep(rows: list[dict], console) -> None:
    from rich.table import Table

    from cnncalc.safe import markup as escape

    t = Table(title="sweep", title_justify="left")
    for c in ("input", "batch", "output", "params", "MACs", "inference mem", "training mem", "final RF"):
        t.add_column(c, justify="right" if c not in ("input", "output") else "left")
    for e in rows:  # a few rows, wrapped: the reason a size breaks must stay whole
        if not e["ok"]:
            t.add_row(shape_str(e["input"]), str(e["batch"]), f"[red]breaks: {escape(e['error'])}[/red]", "", "", "", "", "")
            continue
        t.add_row(shape_str(e["input"]), str(e["batch"]), shape_str(e["output_shape"]), f"{e['params']:,}",
                  human(e["macs"]), hbytes(e["inference_memory_bytes"]), hbytes(e["training_memory_bytes"]),
                  ("" if e.get("receptive_field_exact", True) else "~")
                  + ("×".join(map(str, e["receptive_field"] or [])) or "–"))
    console.print(t)


@gc_paused()
def terminal_plot(report: Report, console, width: int = 40) -> None:
    """Per-layer bars of MACs, params and activation memory, drawn with block characters."""
    from rich.table import Table

    from cnncalc.safe import markup as escape

    rows = report.layers
    peaks = {k: max(1, max(getattr(r, k) for r in rows)) for k in ("macs", "params", "activation_bytes")}
    t = Table(title=f"{escape(report.name)}: share of the largest layer", title_justify="left", box=None)
    for c in ("layer", "MACs", "params", "activations", "RF"):
        t.add_column(c, no_wrap=True)

    def bar(v: int, peak: int) -> str:
        eighths = round(v / peak * width * 8)
        return "█" * (eighths // 8) + ("", "▏", "▎", "▍", "▌", "▋", "▊", "▉")[eighths % 8]

    add_rows(t, ((r.name, bar(r.macs, peaks["macs"]), bar(r.params, peaks["params"]),
                  bar(r.activation_bytes, peaks["activation_bytes"]),
                  rf_size_text(r.receptive_field) if r.receptive_field else "")
                 for r in rows))
    console.print(t)


def print_unit_field(layer: str, unit: tuple[int, ...], axes: list[dict[str, Any]], console: Any) -> None:
    """What one unit sees, one line per spatial axis."""
    from cnncalc.safe import markup as escape

    names = {1: ["samples"], 2: ["rows", "columns"], 3: ["frames", "rows", "columns"]}.get(
        len(axes), [f"axis {a}:" for a in range(len(axes))])
    console.print(f"unit {tuple(unit)} of {escape(layer)} sees:")
    for name, a in zip(names, axes):
        approx = "" if a["exact"] else " (approximate: see RF.exact in the README)"
        lo, hi = a["clipped"]
        inside = f"{lo}..{hi} inside it" if lo <= hi else "nothing inside it"  # (it reads padding alone)
        console.print(f"  {name} {a['from']}..{a['to']} of the input → {inside}, {a['padding']} in the padding{approx}")


class VerifyProgress:
    """verify's progress on a terminal (a rich bar over the warm-up and timed passes), a no-op
    otherwise; called as progress(stage, done)."""

    def __init__(self, enabled: bool, total: int):
        self.enabled, self.total = enabled, total
        self.bar: Any = None

    def __enter__(self) -> VerifyProgress:
        if self.enabled:
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

            self.bar = Progress(TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(), transient=True)
            self.bar.__enter__()
            self.task = self.bar.add_task("starting", total=self.total)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.bar:
            self.bar.__exit__(*exc)

    def __call__(self, stage: str, done: int) -> None:
        if self.bar:
            self.bar.update(self.task, description=stage, advance=done)


def print_verify(report: Report, result: Any, console: Any) -> None:
    """The verify table (analytic | torch per layer), the timing panel and the verdict."""
    from rich.panel import Panel
    from rich.table import Table

    from cnncalc.safe import markup as escape

    ok, bad = "[green]✓[/green]", "[red]✗[/red]"
    table = Table(title=f"verify {escape(report.name)}: analytic | torch", title_justify="left")
    for col in ("name", "output shape", "", "params", "", "FLOPs", "", "RF size (probe)", ""):
        table.add_column(col, justify="right" if col in ("params", "FLOPs") else "left")

    def mark(a, m):
        return "–" if m is None else (ok if a == m else bad)

    def cells(row, c):
        rf_a = rf_size_text(row.receptive_field) if row.receptive_field else "–"
        rf_m = "×".join(str(s) for s in c.rf[0]) if c.rf else (
            "not checked" if c.rf_status.reason == "probe_failed" else "not probed") if c.rf_status else ""
        rf_ok = mark(tuple(r.size for r in row.receptive_field or ()), tuple(c.rf[0]) if c.rf else None)
        if c.rf_whole is not None:
            rf_m, rf_ok = ("all" if c.rf_whole else "not all"), mark(True, c.rf_whole)
        return (escape(row.name), f"{shape_str(row.output_shape)} | {shape_str(c.shape) if c.shape else '?'}",
                mark(tuple(row.output_shape), c.shape),
                f"{row.params:,} | {c.params:,}", mark(row.params, c.params),
                f"{human(row.flops)} | {human(c.flops or 0)}", mark(row.flops, c.flops),
                f"{rf_a} | {rf_m}" if rf_m else rf_a, rf_ok)

    add_rows(table, map(cells, report.layers, result.checks), markup=True)
    console.print(table)
    tm, mem = result.timing, result.memory
    lines = [f"device: {result.device} · dtype {result.dtype} · torch {result.torch_version}"]
    if tm.get("threads_reason"):
        lines.append(f"threads: {escape(tm['threads_reason'])}")
    if tm.get("timed") is False:
        lines.append("not timed (--check-only): counts, fields and memory only")
    else:
        spread = (f"p25 {tm['p25_s'] * 1e3:.3f}, p75 {tm['p75_s'] * 1e3:.3f}, " if tm.get("p25_s") is not None
                  else "")
        top = f", max {tm['max_s'] * 1e3:.3f}" if tm.get("max_s") is not None else ""
        lines += [f"forward: median {tm['median_s'] * 1e3:.3f} ms ({spread}min {tm['min_s'] * 1e3:.3f}{top}) over "
                  f"{tm['repeat']} runs after {tm['warmup']} warm-up",
                  f"throughput: {tm['samples_per_s']:,.1f} samples/s · {human(tm['achieved_flops_per_s'])}FLOP/s"
                  + (f" = {tm['share_of_peak']:.1%} of this device's measured matmul peak "
                     f"({human(tm['peak_matmul_flops_per_s'])}FLOP/s)" if tm.get("share_of_peak") else "")]
    if "exported" in tm:
        lines.append(f"exported module (cnncalc export --to torch): median {tm['exported']['median_s'] * 1e3:.3f} ms")
    if "cuda_graph_s" in tm:
        lines.append(f"CUDA-graph replay: median {tm['cuda_graph_s'] * 1e3:.3f} ms (no launch overhead)")
    if "compiled" in tm:
        lines.append(f"torch.compile: median {tm['compiled']['median_s'] * 1e3:.3f} ms")
    if mem.get("measured_peak_bytes"):
        lines.append(f"memory, inference: measured peak activations {hbytes(mem['measured_peak_bytes'])} vs analytic "
                     f"{hbytes(mem['analytic_peak_activation_bytes'])} (ratio {mem['ratio_measured_to_analytic']:.2f})"
                     f"; operator workspace +{hbytes(mem['measured_workspace_bytes'])}")
    tr = mem.get("training") or {}
    if tr.get("measured_bytes"):
        how = (f"float32 under autocast {result.amp['dtype']}" if result.amp else "float32") + \
            (", checkpointed" if result.checkpoint else "")
        lines.append(f"memory, training step ({tr['optimizer']}, {how}): measured {hbytes(tr['measured_bytes'])} vs "
                     f"analytic {hbytes(tr['analytic_bytes'])} (ratio {tr['ratio']:.2f}, peak in the {tr['phase']})"
                     f"; operator workspace +{hbytes(tr['workspace_bytes'])}")
    for what, m in (("inference", mem), ("training step", tr)):
        if m.get("reserved_bytes"):
            lines.append(f"CUDA caching allocator, {what}: peak allocated {hbytes(m['allocated_bytes'])}, reserved "
                         f"{hbytes(m['reserved_bytes'])} (weights and input included; `calibrate --device cuda` "
                         "measures the overhead for `fit --peaks`)")
    if mem:
        lines.append(f"memory measured by {mem['method']}; judged within ±{mem['tolerance']:.0%}")
    if result.fused:
        f = result.fused
        lines.append(f"batch norm folded into {f['folded']} convs: params {f['analytic_params']:,} analytic, "
                     f"{f['torch_params']:,} in torch; outputs differ by {f['max_relative_output_difference']:.1e} (relative)")
    lines += [escape(n) for n in result.notes]
    console.print(Panel("\n".join(lines), title="timing", expand=False))
    rf = result.rf_summary()
    unjudged = mem.get("not_judged", [])
    console.print(f"{len(result.checks)} layers compared (shape, params, buffers, FLOPs); "
                  f"{rf['probed']} receptive fields probed, {rf['not_probed']} not probed"
                  + (":" if rf["reasons"] else "."))
    for why, n in sorted(rf["reasons"].items(), key=lambda kv: -kv[1]):
        console.print(f"  {n} {escape(why)}", highlight=False)
    for why in unjudged:
        console.print(f"  not judged: {escape(why)}", highlight=False)
    if result.ok and not rf["not_probed"] and not unjudged:
        console.print("[green]all analytic numbers agree with torch[/green]")
    elif result.ok:
        console.print("[green]every checked number agrees with torch[/green] (what is listed above was not checked)")
    else:
        for m in result.mismatches:
            console.print(f"[red]mismatch[/red] {m}", highlight=False)


def _efficiency(x: dict, profile: dict) -> str:
    """A layer's efficiency; above the limit (it beats its roofline) marked as not a result."""
    if x["efficiency"] is None:
        return "–"
    return f"{x['efficiency']:.0%}" + (" (!)" if x["efficiency"] > profile.get("efficiency_limit", 1.1) else "")


def print_profile(profile: dict, console: Any) -> None:
    """`verify --profile`: per layer its measured time, share, achieved rates, roofline bound,
    efficiency and what bounds it; then the peaks and the whole pass."""
    from rich.table import Table

    from cnncalc.render.terminal import add_rows
    from cnncalc.safe import markup as escape
    from cnncalc.units import fmt_time, human

    k = profile["peaks"]
    table = Table(title=f"profile · {escape(k['device'])} · {escape(k['dtype'])} · {profile['timer']}",
                  title_justify="left", header_style="bold")
    for c in ("name", "type", "time", "share", "FLOP/s", "bytes/s", "roofline", "efficiency", "bound"):
        table.add_column(c, justify="left" if c in ("name", "type", "bound") else "right")

    def rate(v: float | None, unit: str) -> str:
        return human(v, unit) if v else "–"

    add_rows(table, ([x["name"], x["type"], fmt_time(x["time_s"]) if x["time_s"] else "0", f"{x['share']:.1%}",
                      rate(x["flops_per_s"], "FLOP/s"), rate(x["bytes_per_s"], "B/s"), fmt_time(x["roofline_s"]),
                      _efficiency(x, profile), x["bound"]]
                     for x in profile["layers"]))
    console.print(table)
    for why in profile.get("unreliable", []):
        console.print(f"[yellow]unreliable:[/yellow] {escape(why)}: a measurement problem (timer, a busy machine, "
                      "peaks calibrated at another moment), not a result; rerun with --threads 1 on a quieter machine",
                      highlight=False)
    counts = {b: sum(1 for x in profile["layers"] if x["bound"] == b) for b in ("compute", "memory", "overhead")}
    times = {b: sum(x["time_s"] for x in profile["layers"] if x["bound"] == b) for b in counts}
    from cnncalc.units import hbytes

    console.print(f"peaks: dense kernels {human(k['flops_per_s'], 'FLOP/s')}, large copy "
                  f"{human(k['bytes_per_s'], 'B/s')}, cache copy {human(k['cache_bytes_per_s'], 'B/s')} (first "
                  f"{hbytes(k['cache_bytes'])} of a layer's traffic), empty call {fmt_time(k['overhead_s'])}",
                  highlight=False)
    console.print("bound by: " + ", ".join(f"{b} {counts[b]} layers ({fmt_time(times[b])})" for b in counts),
                  highlight=False)
    fwd, ker = profile["forward_s"], profile["kernel_s"]
    what = "kernels" if k["device_type"] == "cuda" else "torch operators"
    console.print(f"forward pass {fmt_time(fwd)} (without the profiler); layers {fmt_time(profile['layers_s'])}; "
                  f"{what} {fmt_time(ker)} ({ker / fwd:.0%} of the pass); roofline {fmt_time(profile['roofline_s'])} "
                  f"({profile['roofline_s'] / fwd:.0%})", highlight=False)
    if profile["launch_bound"]:
        console.print(f"[yellow]launch-bound[/yellow]: {what} are busy {ker / fwd:.0%} of the pass; the rest is "
                      "Python, dispatch and launch overhead (a larger batch, torch.compile or a CUDA graph helps)",
                      highlight=False)
