"""Other ways to look at a report: one unit's receptive field, sweeps over sizes, plots."""
from __future__ import annotations

from math import ceil, floor
from typing import Any

from .analyzer import Report, analyze
from .arith import plain
from .errors import CnnError, gc_paused
from .render import add_rows, hbytes, human, rf_num, shape_str


def unit_field(report: Report, layer: str, unit: tuple[int, ...]) -> list[dict[str, Any]]:
    """The input interval each spatial axis of one output unit sees, and how much of it lies
    in padding: exact from the layers' `reads` rules where every layer on the way reads a
    fixed interval, else the field's formula (start + u·jump ± (size − 1)/2, approximate)."""
    row = report.layer(layer)
    if row.receptive_field is None:
        raise CnnError.single(f"{layer} has no receptive field (after flatten or linear)", file=report.file)
    spatial = row.output_shape[2:]
    if len(unit) != len(spatial) or any(not 0 <= u < s for u, s in zip(unit, spatial)):
        raise CnnError.single(f"--unit {','.join(map(str, unit))} is outside {layer}'s output "
                              f"{'×'.join(map(str, spatial))} (0-based, one index per spatial axis)", file=report.file)
    virtual, real = _sweep(report, row, unit, False), _sweep(report, row, unit, True)
    out = []
    for axis, (u, r, size) in enumerate(zip(unit, row.receptive_field, report.input_shape[2:])):
        if r.whole:  # the padded input, as the field says
            first, last, exact = ceil(r.start - (r.size - 1) / 2), floor(r.start + (r.size - 1) / 2), r.exact
            clipped = (max(first, 0), min(last, size - 1))
        elif virtual is not None and real is not None:
            (first, last), clipped, exact = virtual[axis], real[axis], True
        else:
            centre = r.start + u * r.jump
            lo, hi = centre - (r.size - 1) / 2, centre + (r.size - 1) / 2
            first, last, exact = ceil(lo), floor(hi), False
            clipped = (max(first, 0), min(last, size - 1))
        out.append({"from": first, "to": last, "clipped": list(clipped),
                    "padding": max(0, -first) + max(0, last - (size - 1)) if first <= last else 0,
                    "size": r.size, "exact": exact})
    return out


Box = tuple[tuple[tuple[int, int], ...], bool]
MAX_BOXES = 64  #: distinct windows tracked per tensor on the way back (beyond: the formula)


def _sweep(report: Report, row: Any, unit: tuple[int, ...], real: bool) -> list[tuple[int, int]] | None:
    """Walk back from `unit` of `row` to the input with each layer's `reads`, keeping per
    tensor the distinct boxes (one interval per axis; a box inside another is dropped) that
    the paths through merges need; per axis the hull of the boxes that reach the input.
    `real`: only positions inside each tensor (a box all in padding along one axis reads
    nothing on any axis); else padding positions count, as in the field's size. A box whose
    positions are not all needed (a layer skipped some: dilation, strides past the kernel)
    is exact at the input but not through a further layer. None where a reach is no fixed
    interval, or not exact, or the boxes multiply past MAX_BOXES."""
    need: dict[str, list[Box]] = {row.name: [(tuple((u, u) for u in unit), True)]}
    for r in reversed(report.layers[: row.index + 1]):
        for box, dense in need.pop(r.name, []):
            if not dense:
                return None
            per_axis = [r.layer.reads(r.ctx, a, lo, hi, real) for a, (lo, hi) in enumerate(box)]
            keeps = all(r.layer.dense(r.ctx, a) for a in range(len(box)))
            for i, name in enumerate(r.inputs):
                spans = tuple(spans[i] for spans in per_axis)
                if any(span is None for span in spans):
                    return None
                if any(lo > hi for lo, hi in spans):  # type: ignore[misc]  # this input is not read
                    continue
                have = need.setdefault(name, [])
                inside = [o for o in have if all(a <= lo and hi <= b for (lo, hi), (a, b) in zip(spans, o[0]))]  # type: ignore[misc]
                if inside and any(o[1] for o in inside):
                    continue  # a box that needs all its positions already holds these
                have[:] = [o for o in have if not all(lo <= a and b <= hi for (lo, hi), (a, b) in zip(spans, o[0]))]  # type: ignore[misc]
                have.append((spans, keeps))  # type: ignore[arg-type]
                if len(have) > MAX_BOXES:
                    return None
    boxes = [b for b, _ in need.get("input", [])]
    return [(min(b[a][0] for b in boxes), max(b[a][1] for b in boxes)) if boxes else (1, 0) for a in range(len(unit))]


@gc_paused()
def print_fields(report: Report, console) -> None:
    from rich.table import Table

    from .safe import markup as escape

    t = Table(title=f"receptive fields of {escape(report.name)} (input {shape_str(report.input_shape[2:])})",
              title_justify="left")
    for c in ("layer", "type", "output", "size", "jump", "start", "exact"):
        t.add_column(c)

    def cells(row):
        f = row.receptive_field
        return (row.name, row.type, shape_str(row.output_shape[2:]),
                *("×".join(rf_num(r, a) for r in f) for a in ("size", "jump", "start")),
                "yes" if all(r.exact for r in f) else "approx.")

    add_rows(t, (cells(row) for row in report.layers if row.receptive_field is not None))
    console.print(t)


def sweep(net, inputs: list[tuple[int, ...]], batches: list[int], dtype: str | None = None) -> list[dict]:
    """Totals at every input size × batch; a size where the network breaks says where."""
    rows = []
    for shape in inputs:
        for b in batches:
            entry: dict[str, Any] = {"input": list(shape), "batch": b}
            try:
                r = analyze(net, b, shape, dtype)
            except CnnError as exc:
                p = exc.problems[0]
                entry.update(ok=False, error=f"{p.layer}: {p.message}" if p.layer else p.message)
            else:
                t = r.totals
                rf = next((x.receptive_field for x in reversed(r.layers) if x.receptive_field), None)
                entry.update(ok=True, output_shape=list(r.layers[-1].output_shape), params=t["params"],
                             macs=t["macs"], flops=t["flops"], inference_memory_bytes=t["inference_memory_bytes"],
                             training_memory_bytes=t["training_memory_bytes"],
                             receptive_field=[plain(f.size) for f in rf] if rf else None)
            rows.append(entry)
    return rows


def print_sweep(rows: list[dict], console) -> None:
    from rich.table import Table

    from .safe import markup as escape

    t = Table(title="sweep", title_justify="left")
    for c in ("input", "batch", "output", "params", "MACs", "inference mem", "training mem", "final RF"):
        t.add_column(c, justify="right" if c not in ("input", "output") else "left")
    for e in rows:  # a few rows, wrapped: the reason a size breaks must stay whole
        if not e["ok"]:
            t.add_row(shape_str(e["input"]), str(e["batch"]), f"[red]breaks: {escape(e['error'])}[/red]", "", "", "", "", "")
            continue
        t.add_row(shape_str(e["input"]), str(e["batch"]), shape_str(e["output_shape"]), f"{e['params']:,}",
                  human(e["macs"]), hbytes(e["inference_memory_bytes"]), hbytes(e["training_memory_bytes"]),
                  "×".join(map(str, e["receptive_field"] or [])) or "–")
    console.print(t)


@gc_paused()
def terminal_plot(report: Report, console, width: int = 40) -> None:
    """Per-layer bars of MACs, params and activation memory, drawn with block characters."""
    from rich.table import Table

    from .safe import markup as escape

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
                  "×".join(str(round(float(f.size))) for f in r.receptive_field) if r.receptive_field else "")
                 for r in rows))
    console.print(t)


def figure(report: Report, path: str) -> None:
    """A PNG/SVG with four panels: MACs, params and activation memory per layer, and receptive
    field and output size against depth (matplotlib, the `plot` extra)."""
    try:
        import matplotlib
    except ImportError:
        raise CnnError.single("plotting to a file needs matplotlib: pip install 'cnncalc[plot]' "
                              "(or use `cnncalc plot SPEC` for the terminal version)") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = report.layers
    idx = list(range(len(rows)))
    fig, axes = plt.subplots(2, 2, figsize=(13, 8), constrained_layout=True)
    for ax, key, title in ((axes[0][0], "macs", "MACs per layer"), (axes[0][1], "params", "parameters per layer"),
                           (axes[1][0], "activation_bytes", "activation bytes per layer")):
        ax.bar(idx, [getattr(r, key) for r in rows], color="#4C72B0")
        ax.set_title(title)
        ax.set_xlabel("layer index")
    ax = axes[1][1]
    rf = [(i, float(r.receptive_field[0].size)) for i, r in enumerate(rows) if r.receptive_field]
    size = [(i, r.output_shape[2]) for i, r in enumerate(rows) if len(r.output_shape) > 2]
    if rf:
        ax.plot(*zip(*rf), label="receptive field (axis 0)", color="#C44E52")
    if size:
        ax.plot(*zip(*size), label="output size (axis 0)", color="#55A868")
    ax.set_title("receptive field and output size vs depth")
    ax.set_xlabel("layer index")
    ax.legend()
    fig.suptitle(f"{report.name}: {report.totals['params']:,} params, {human(report.totals['macs'])} MACs")
    try:
        fig.savefig(path)
    except OSError as exc:
        raise CnnError.single(f"cannot write the figure: {exc.strerror or exc}", file=path) from None
    finally:
        plt.close(fig)


def print_unit_field(layer: str, unit: tuple[int, ...], axes: list[dict[str, Any]], console: Any) -> None:
    """What one unit sees, one line per spatial axis."""
    from .safe import markup as escape

    names = {1: ["samples"], 2: ["rows", "columns"], 3: ["frames", "rows", "columns"]}.get(
        len(axes), [f"axis {a}:" for a in range(len(axes))])
    console.print(f"unit {tuple(unit)} of {escape(layer)} sees:")
    for name, a in zip(names, axes):
        approx = "" if a["exact"] else " (approximate: see RF.exact in the README)"
        console.print(f"  {name} {a['from']}..{a['to']} of the input → {a['clipped'][0]}..{a['clipped'][1]} inside "
                      f"it, {a['padding']} in the padding{approx}")


def unit_field_json(layer: str, unit: tuple[int, ...], axes: list[dict[str, Any]]) -> dict:
    return {"layer": layer, "unit": list(unit), "axes": [{**a, "size": plain(a["size"])} for a in axes]}


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

    from .safe import markup as escape

    ok, bad = "[green]✓[/green]", "[red]✗[/red]"
    table = Table(title=f"verify {escape(report.name)}: analytic | torch", title_justify="left")
    for col in ("name", "output shape", "", "params", "", "FLOPs", "", "RF size (probe)", ""):
        table.add_column(col, justify="right" if col in ("params", "FLOPs") else "left")

    def mark(a, m):
        return "–" if m is None else (ok if a == m else bad)

    def cells(row, c):
        rf_a = "×".join(rf_num(r, "size") for r in row.receptive_field) if row.receptive_field else "–"
        rf_m = "×".join(str(s) for s in c.rf[0]) if c.rf else "not probed" if c.rf_note else ""
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
    lines = [f"device: {result.device} · dtype {result.dtype} · torch {result.torch_version}",
             f"forward: median {tm['median_s'] * 1e3:.3f} ms (p25 {tm['p25_s'] * 1e3:.3f}, p75 "
             f"{tm['p75_s'] * 1e3:.3f}, min {tm['min_s'] * 1e3:.3f}) over {tm['repeat']} runs after {tm['warmup']} warm-up",
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
        lines.append(f"memory, training step ({tr['optimizer']}, float32): measured {hbytes(tr['measured_bytes'])} vs "
                     f"analytic {hbytes(tr['analytic_bytes'])} (ratio {tr['ratio']:.2f}, peak in the {tr['phase']})"
                     f"; operator workspace +{hbytes(tr['workspace_bytes'])}")
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


def parse_unit(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(p) for p in text.split(","))
    except ValueError:
        raise ValueError(f"expected indices like 3,4, received {text!r}") from None


def print_profile(profile: dict, console: Any) -> None:
    """`verify --profile`: per layer its measured time, share, achieved rates, roofline bound,
    efficiency and what bounds it; then the peaks and the whole pass."""
    from rich.table import Table

    from .render import add_rows, human
    from .roofline import fmt_time
    from .safe import markup as escape

    k = profile["peaks"]
    table = Table(title=f"profile · {escape(k['device'])} · {escape(k['dtype'])} · {profile['timer']}",
                  title_justify="left", header_style="bold")
    for c in ("name", "type", "time", "share", "FLOP/s", "bytes/s", "roofline", "efficiency", "bound"):
        table.add_column(c, justify="left" if c in ("name", "type", "bound") else "right")

    def rate(v: float | None, unit: str) -> str:
        return human(v, unit) if v else "–"

    add_rows(table, ([x["name"], x["type"], fmt_time(x["time_s"]) if x["time_s"] else "0", f"{x['share']:.1%}",
                      rate(x["flops_per_s"], "FLOP/s"), rate(x["bytes_per_s"], "B/s"), fmt_time(x["roofline_s"]),
                      f"{x['efficiency']:.0%}" if x["efficiency"] is not None else "–", x["bound"]]
                     for x in profile["layers"]))
    console.print(table)
    counts = {b: sum(1 for x in profile["layers"] if x["bound"] == b) for b in ("compute", "memory", "overhead")}
    times = {b: sum(x["time_s"] for x in profile["layers"] if x["bound"] == b) for b in counts}
    from .render import hbytes

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
