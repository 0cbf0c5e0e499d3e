"""The whole verification: build, count, probe, fold, measure and time, then compare every
number with the analysis. Draws nothing: progress goes to a callback, the result is data."""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Callable

from cnncalc.analysis.analyze import analyze
from cnncalc.analysis.report import Report
from cnncalc.analysis.roofline import Peaks
from cnncalc.analysis.status import EXACT, Status, not_checked
from cnncalc.backend.build import build_model
from cnncalc.backend.device import available_memory, device_name, out_of_memory, pick_device, set_threads
from cnncalc.backend.fold import check_bn_folding
from cnncalc.backend.kit import Kit, kit
from cnncalc.backend.measure import (
    QUARTILE_RUNS,
    SPREAD_LIMIT,
    LayerCheck,
    autocast,
    matmul_peak,
    measure_counts,
    measure_peak,
    measure_training,
    summarize,
    time_forward,
)
from cnncalc.backend.probe import probe_plan, probe_rf, probe_whole
from cnncalc.errors import CnnError
from cnncalc.units import fmt_num

#: progress(stage, done): a new stage with done=0, then done=1 per warm-up or timed pass
Progress = Callable[[str, int], None]


@dataclass
class VerifyResult:
    device: str
    device_type: str
    dtype: str
    torch_version: str
    checks: list[LayerCheck]
    mismatches: list[str] = field(default_factory=list)
    timing: dict = field(default_factory=dict)
    memory: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    fused: dict | None = None
    profile: dict | None = None
    amp: dict | None = None
    """with --amp: the autocast dtype and the device type whose op lists the analysis used"""
    checkpoint: dict | None = None
    """with --checkpoint: the segments and the recomputation's cost"""
    log: list[str] = field(default_factory=list)
    """What torch itself logged or warned while verify ran (shown with -v)."""

    @property
    def ok(self) -> bool:
        return not self.mismatches

    def rf_summary(self) -> dict:
        """How many receptive fields were probed, and why the others were not (in words, and per
        reason code of `analysis.status.REASONS`)."""
        reasons: dict[str, int] = {}
        codes: dict[str, int] = {}
        for c in self.checks:
            if c.rf is None and c.rf_status is not None:
                why = c.rf_status.detail.removeprefix("not probed: ")
                reasons[why] = reasons.get(why, 0) + 1
                codes[str(c.rf_status.reason)] = codes.get(str(c.rf_status.reason), 0) + 1
        probed = sum(1 for c in self.checks if c.rf is not None or c.rf_whole is not None)
        return {"probed": probed, "not_probed": sum(reasons.values()),
                "reasons": reasons, "reason_codes": codes}

    def to_json(self) -> dict:
        return {"ok": self.ok, "device": self.device, "device_type": self.device_type, "dtype": self.dtype,
                "torch_version": self.torch_version, "mismatches": self.mismatches,
                "layers": [c.to_json() for c in self.checks], "timing": self.timing, "memory": self.memory,
                "fused_bn": self.fused, "notes": self.notes, "receptive_fields": self.rf_summary(),
                **({"profile": self.profile} if self.profile is not None else {}),
                **({"amp": self.amp} if self.amp is not None else {}),
                **({"checkpoint": self.checkpoint} if self.checkpoint is not None else {})}


def compare(report: Report, checks: list[LayerCheck]) -> list[str]:
    """Every disagreement as 'layer: what analytic=… torch=…'."""
    bad = []
    for row, c in zip(report.layers, checks):
        pairs = [("output shape", tuple(row.output_shape), c.shape), ("params", row.params, c.params),
                 ("trainable params", row.trainable_params, c.trainable), ("buffers", row.buffers, c.buffers),
                 ("FLOPs", row.flops, c.flops)]
        # an inexact field (holes from a transposed conv, sub-pixel jumps) is approximate only
        if c.rf is not None and row.receptive_field is not None and all(r.exact for r in row.receptive_field):
            pairs.append(("RF size", tuple(r.size for r in row.receptive_field), tuple(c.rf[0])))
            pairs.append(("RF jump", tuple(r.jump for r in row.receptive_field), tuple(c.rf[1])))
            if all(r.centred for r in row.receptive_field):  # else start is an estimate (RF.even)
                pairs.append(("RF start", tuple(r.start for r in row.receptive_field), tuple(c.rf[2])))
        if c.rf_whole is not None and row.receptive_field is not None:
            pairs.append(("RF whole input", any(r.whole for r in row.receptive_field), c.rf_whole))
        for what, a, m in pairs:
            if m is not None and a != m:
                bad.append(f"{row.name}: {what} analytic={_fmt(a)} torch={_fmt(m)}")
    return bad


def _fmt(v: Any) -> str:
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, tuple):
        return "(" + ", ".join(fmt_num(x) if isinstance(x, Fraction) else str(x) for x in v) + ")"
    return f"{v:,}" if isinstance(v, int) else str(v)


@dataclass(frozen=True)
class VerifyOptions:
    """What one verification does: where and in which dtype it runs, how much it times, and which
    optional checks it adds (the options of `cnncalc verify`, with the same defaults)."""

    device: str = "auto"
    """auto (cuda, then mps, then cpu), cpu, cuda, cuda:N or mps"""
    dtype: str = "float32"
    """element type of the timed run (the counts are checked in float32)"""
    repeat: int = 20
    """timed forward passes"""
    warmup: int = 3
    """untimed warm-up passes"""
    force: bool = False
    """run even when the memory estimate exceeds what the device has free"""
    compile: bool = False
    """also time the torch.compile'd model"""
    channels_last: bool = False
    """time in channels_last memory format (4-D inputs)"""
    rf_probe: bool = True
    """check receptive fields with a gradient probe"""
    fuse_bn: bool = False
    """fold batch norms into convs and check params and outputs"""
    profile: bool = False
    """each layer's time against its roofline bound"""
    cuda_graph: bool = False
    """also time a CUDA-graph replay (CUDA only)"""
    threads: int | None = None
    """torch's intra-op threads (None: as many as the machine has free, `device.thread_budget`)"""
    check_only: bool = False
    """prove every number (counts, fields, memory) and time nothing"""
    amp: str | None = None
    """'bf16' or 'fp16': run, measure and time under torch.autocast (a float32 model), its memory
    judged against the analysis of `analysis.precision` with this device type's op lists"""
    checkpoint: str | None = None
    """'all' or 'USE,USE…': those block uses built through torch.utils.checkpoint, the training
    step judged against `analysis.checkpoint`"""


def verify_report(report: Report, options: VerifyOptions = VerifyOptions(), *, progress: Progress | None = None,
                  stages: dict[str, float] | None = None) -> VerifyResult:
    """Build the report's network in torch on `options.device`, compare shapes, params, buffers,
    FLOPs and probed receptive fields, fold batch norms (`fuse_bn`), measure memory and time the
    forward pass in `dtype`; `profile`: each layer's time against its roofline; `cuda_graph`:
    also time a CUDA-graph replay. torch's thread count is restored afterwards. `check_only`:
    prove every number (counts, fields, memory) and time nothing (no forward or exported-module
    timing, no calibration). `progress` hears of each stage and pass; `stages`, when given,
    receives the seconds spent per stage."""
    _refuse_conflicts(options)
    t = kit()
    torch = t.torch
    dev = pick_device(torch, options.device)
    if options.cuda_graph and dev.type != "cuda":
        raise CnnError.single(f"--cuda-graph needs a CUDA device; this run is on {dev.type}", exit_code=2)
    before = torch.get_num_threads()
    n_threads, why_threads = set_threads(torch, options.threads)
    clock = _Stages(progress, stages)
    log: list[str] = []
    try:
        from cnncalc.backend.chatter import captured

        with captured(log):  # torch's logging and warnings: kept for -v, off the screen
            result = _verify(_Run(report, options, t, dev, clock, n_threads, why_threads))
        result.log = log
        return result
    finally:
        clock.stop()
        torch.set_num_threads(before)


def _refuse_conflicts(o: VerifyOptions) -> None:
    """--check-only times nothing, so no option that only adds timing goes with it; autocast runs a
    float32 model (exit 2)."""
    if o.amp is not None and o.dtype != "float32":
        raise CnnError.single(f"--amp runs a float32 model under torch.autocast; it cannot be combined with "
                              f"--dtype {o.dtype}", exit_code=2)
    if o.check_only and (o.profile or o.compile or o.cuda_graph):
        what = [n for n, on in (("--profile", o.profile), ("--compile", o.compile), ("--cuda-graph", o.cuda_graph))
                if on]
        raise CnnError.single(f"--check-only times nothing; it cannot be combined with {', '.join(what)}",
                              exit_code=2)


class _Stages:
    """The progress callback, also adding up the seconds spent in each stage (into `stages`)."""

    def __init__(self, progress: Progress | None, stages: dict[str, float] | None):
        self.progress, self.stages = progress, stages
        self.stage: str | None = None
        self.since = time.perf_counter()

    def stop(self) -> None:
        now = time.perf_counter()
        if self.stage is not None and self.stages is not None:
            self.stages[self.stage] = self.stages.get(self.stage, 0.0) + now - self.since
        self.stage, self.since = None, now

    def __call__(self, stage: str, done: int) -> None:
        if done == 0:
            self.stop()
            self.stage = stage
        if self.progress:
            self.progress(stage, done)


@dataclass
class _Run:
    """One verification in progress: what it was asked, where it runs, and what the stages
    have built and found so far."""

    report: Report
    o: VerifyOptions
    t: Kit
    dev: Any
    say: Progress
    n_threads: int
    why_threads: str
    result: VerifyResult = field(init=False)
    model: Any = None
    x: Any = None
    train_skip: str | None = None
    """why the float32 training step is not measured (it would not fit), or None"""
    peak_flops: float = 0.0
    segments: list[tuple[int, ...]] | None = None
    """--checkpoint: the rows of each checkpointed block use"""

    @property
    def tdtype(self) -> Any:
        return getattr(self.t.torch, self.o.dtype)

    def timed(self, fn: Callable, *args: Any) -> Any:
        """`fn(*args)` as a pass in the timed dtype (see `_in_dtype`), under autocast with --amp."""
        with autocast(self.t, self.dev, self.o.amp):
            return _in_dtype(fn, self.report, self.o.dtype, self.dev, *args)

    def summary(self, times: list[float]) -> dict:
        return summarize(times, self.report.input_shape[0], self.report.totals["flops"], self.peak_flops)


def _verify(run: _Run) -> VerifyResult:
    """The stages in order: every number is proved before anything is timed."""
    _check_room(run)
    _build(run)
    _check_counts(run)
    _probe_fields(run)
    run.result.mismatches = compare(run.report, run.result.checks)
    _fold_bn(run)
    training = _measure_training(run)
    _to_timed_dtype(run)
    _measure_memory(run, training)
    if run.o.check_only:
        run.result.timing = {"timed": False, "threads": run.n_threads, "threads_reason": run.why_threads}
        return run.result
    _time_forward(run)
    _time_exported(run)
    _profile(run)
    _time_cuda_graph(run)
    _time_compiled(run)
    return run.result


def _check_room(run: _Run) -> None:
    """Refuse a run whose inference pass would not fit in the free memory (unless --force); decide
    whether the float32 training step fits; start the result."""
    report, dev, torch = run.report, run.dev, run.t.torch
    if run.o.amp is not None or run.o.checkpoint is not None:
        _with_amp(run)
    est, what = verify_memory(report, run.o.dtype, training=False)
    avail = available_memory(torch, dev)
    train_est = verify_memory(report, run.o.dtype)[0]
    if not (run.o.force or avail is None or train_est * 1.2 <= avail):
        run.train_skip = (f"its float32 training step needs about {train_est / 2**30:.2f} GiB but only "
                          f"{(avail or 0) / 2**30:.2f} GiB are free (--force to measure it anyway)")
    if avail is not None and est * 1.2 > avail and not run.o.force:
        raise CnnError.single(f"verify needs about {est / 2**30:.2f} GiB on {dev.type} ({what}) but only "
                              f"{avail / 2**30:.2f} GiB are free (within this process's memory limits); "
                              "refusing (use --force to try anyway)")
    run.result = VerifyResult(device_name(torch, dev), dev.type, run.o.dtype, torch.__version__, [])
    if run.o.amp is not None:
        run.result.amp = {"dtype": report.extra["amp"]["dtype"], "device_type": report.extra["amp"]["device_type"]}
    if run.o.checkpoint is not None:
        run.result.checkpoint = {k: v for k, v in report.extra["checkpoint"].items() if k != "without"}
    if dev.type == "cpu" and run.o.dtype == "float16":
        run.result.notes.append("float16 on CPU is supported but slow (no native half kernels): time it on a GPU")


def _with_amp(run: _Run) -> None:
    """--amp: the report's memory figures as autocast runs the network on this device type;
    --checkpoint: the training step's with those block uses checkpointed, and their segments."""
    from cnncalc.analysis.checkpoint import apply_checkpoint, segments
    from cnncalc.analysis.precision import DEVICE_TYPES, Amp, apply_amp

    if run.o.checkpoint is not None:
        uses: list[str] | str = "all" if run.o.checkpoint.strip() == "all" else [
            u.strip() for u in run.o.checkpoint.split(",") if u.strip()]
        try:
            run.segments = [s.rows for s in segments(run.report, uses)]
            amp = Amp(run.o.amp, run.dev.type) if run.o.amp is not None else None
            apply_checkpoint(run.report, uses, amp)
        except ValueError as exc:
            raise CnnError.single(str(exc), exit_code=2) from None
        return
    if run.dev.type not in DEVICE_TYPES:
        raise CnnError.single(f"--amp is modelled with the autocast op lists of {' and '.join(DEVICE_TYPES)}; "
                              f"this run is on {run.dev.type}", exit_code=2)
    try:
        apply_amp(run.report, Amp(run.o.amp or "bf16", run.dev.type))
    except ValueError as exc:
        raise CnnError.single(str(exc), exit_code=2) from None


def _build(run: _Run) -> None:
    """The network in torch, seeded, in float32 (the counts do not depend on the dtype), and an input."""
    torch = run.t.torch
    run.say("building the network", 0)
    torch.manual_seed(0)
    run.model = build_model(run.report, run.t, run.segments).eval().to(run.dev)
    run.x = torch.randn(run.report.input_shape, device=run.dev)


def _check_counts(run: _Run) -> None:
    """Each layer's output shape, params, buffers and FLOPs as torch counts them."""
    run.say("comparing shapes, params and FLOPs", 0)
    run.result.checks = measure_counts(run.report, run.model, run.x, run.t)


def _probe_fields(run: _Run) -> None:
    """Each receptive field the probe can measure (size, jump, start, or whether it covers the
    whole input); each other one gets the reason it was not probed."""
    report, checks = run.report, run.result.checks
    if not run.o.rf_probe:
        for row, check in zip(report.layers, checks):
            if row.receptive_field is not None:
                check.rf_status = not_checked("switched_off", "not probed: --no-rf-probe")
        return
    run.say("probing receptive fields", 0)
    probe_dev = run.dev if run.dev.type == "cuda" else run.t.torch.device("cpu")
    rows, whole, skipped = probe_plan(report)
    for idx, why in skipped.items():
        checks[idx].rf_status = why
    for idx in whole:
        covered = _guarded(probe_whole, report, idx, run.t, probe_dev)
        if isinstance(covered, Status):
            checks[idx].rf_status = covered
        else:
            checks[idx].rf_whole = covered
    measured = _guarded(probe_rf, report, rows, run.t, probe_dev)
    for idx in rows:
        res = measured if isinstance(measured, Status) else measured.get(
            idx, not_checked("probe_failed", "not checked: the probe gave no result"))
        if isinstance(res, Status):
            checks[idx].rf_status = res
        else:
            checks[idx].rf = res


def _fold_bn(run: _Run) -> None:
    """With --fuse-bn: folding the batch norms leaves the params analysed and the outputs unchanged."""
    if not run.o.fuse_bn:
        return
    run.say("folding batch norms", 0)
    fused = run.result.fused = check_bn_folding(run.report, run.t, run.dev)
    if not fused["ok"]:
        run.result.mismatches.append(
            f"batch-norm folding: params analytic={fused['analytic_params']:,} "
            f"torch={fused['torch_params']:,}, max relative output difference "
            f"{fused['max_relative_output_difference']:.2e}")


def _measure_training(run: _Run) -> dict:
    """One float32 training step's peak memory against the analytic figure (see `_train_memory`)."""
    run.say("measuring training memory", 0)
    return _train_memory(run.report, run.model, run.x, run.t, run.dev, run.train_skip, run.o.amp)


def _to_timed_dtype(run: _Run) -> None:
    """The model and input cast to the timed dtype (and to channels_last when asked, 4-D only)."""
    torch = run.t.torch
    run.model = run.model.to(dtype=run.tdtype)
    run.x = run.x.to(run.tdtype)
    if run.o.channels_last and len(run.report.input_shape) == 4:
        run.model = run.model.to(memory_format=torch.channels_last)
        run.x = run.x.contiguous(memory_format=torch.channels_last)


def _measure_memory(run: _Run, training: dict) -> None:
    """The inference peak in the timed dtype and the training step, judged against the analysis."""
    run.say("measuring memory", 0)
    run.result.memory = _memory(run.report, run.model, run.x, run.t, run.dev, run.o.dtype, training, run.o.amp)
    run.result.mismatches += run.result.memory.pop("mismatches")


def _time_forward(run: _Run) -> None:
    """The forward pass's time (median, quartiles, stability) and the matmul peak it is set against."""
    o, result = run.o, run.result
    run.say("timing", 0)
    times = run.timed(time_forward, run.model, run.x, run.t, run.dev, o.repeat, o.warmup, lambda: run.say("timing", 1))
    run.say("calibrating the matmul peak", 0)
    run.peak_flops = matmul_peak(run.t, run.dev, run.tdtype)
    result.timing = run.summary(times)
    result.timing.update({"warmup": o.warmup, "channels_last": o.channels_last, "timed": True,
                          "threads": run.n_threads, "threads_reason": run.why_threads})
    if result.timing["unstable"]:
        result.notes.append(_unstable_advice(result.timing, run.dev, run.n_threads, o.repeat))
    elif not result.timing["stability_judged"]:
        result.notes.append(f"{o.repeat} timed run{'s' if o.repeat != 1 else ''}: too few for quartiles (at least "
                            f"{QUARTILE_RUNS}); the median is shown with min and max, its stability not judged")


def _time_exported(run: _Run) -> None:
    """The module `cnncalc export --to torch` writes, timed like the built one (a note if it cannot be)."""
    run.say("timing the exported module", 0)
    try:
        from cnncalc.interop.torch_export import exported_module

        net = exported_module(run.report, run.model).eval().to(device=run.dev, dtype=run.tdtype)
        if run.o.channels_last and len(run.report.input_shape) == 4:
            net = net.to(memory_format=run.t.torch.channels_last)
        etimes = run.timed(time_forward, net, run.x, run.t, run.dev, run.o.repeat, run.o.warmup)
        run.result.timing["exported"] = run.summary(etimes)
    except CnnError as exc:
        run.result.notes.append(f"the exported module (cnncalc export --to torch) was not timed: "
                                f"{exc.problems[0].message}"[:300])


def _profile(run: _Run) -> None:
    """With --profile: the device's peaks, then each layer's time against its roofline bound."""
    if not run.o.profile:
        return
    from cnncalc.backend.profile import ForwardPass, call_overhead, compute_peak, copy_bandwidth, profile_forward

    t, dev, tdtype, result = run.t, run.dev, run.tdtype, run.result
    run.say("profiling each layer", 0)
    large, fast, cache = copy_bandwidth(t, dev, tdtype)
    peaks = Peaks(compute_peak(t, dev, tdtype, run.peak_flops), large, call_overhead(t, dev, tdtype),
                  result.device, dev.type, run.o.dtype, t.torch.__version__, fast, cache)
    result.profile = run.timed(profile_forward, ForwardPass(run.report, run.model, run.x, t, dev),
                               peaks, result.timing["median_s"])


def _time_cuda_graph(run: _Run) -> None:
    """With --cuda-graph: the median time of one CUDA-graph replay of the forward pass."""
    if not run.o.cuda_graph:
        return
    from cnncalc.backend.profile import cuda_graph_time

    run.say("timing a CUDA-graph replay", 0)
    run.result.timing["cuda_graph_s"] = run.timed(cuda_graph_time, run.model, run.x, run.t, run.o.repeat)


def _time_compiled(run: _Run) -> None:
    """With --compile: the torch.compile'd model timed (a note where the platform cannot compile)."""
    if not run.o.compile:
        return
    run.say("compiling (torch.compile)", 0)
    try:
        compiled = run.t.torch.compile(run.model)
        ctimes = time_forward(compiled, run.x, run.t, run.dev, run.o.repeat, max(run.o.warmup, 2))
        run.result.timing["compiled"] = run.summary(ctimes)
    except Exception as exc:  # noqa: BLE001 - compile support varies by platform; report it
        run.result.notes.append(f"torch.compile failed on this platform: {type(exc).__name__}: {exc}"[:300])


def _unstable_advice(timing: dict, dev: Any, n_threads: int, repeat: int) -> str:
    """What to do about an unstable timing: on a CPU, fewer threads or a quieter machine (torch's
    threads oversubscribe a busy one; more runs only average the noise)."""
    head = f"timing is unstable: p75/p25 = {timing['spread']:.2f} (over {SPREAD_LIMIT})"
    if dev.type != "cpu":
        return (f"{head}: the device or its host is busy, or {repeat} runs are too few: close other work "
                f"or use --repeat {max(4 * repeat, 50)}")
    try:
        load = f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores"
    except (AttributeError, OSError):
        load = "load unknown"
    fewer = f"rerun with fewer threads (--threads {max(1, n_threads // 2)}) on a quieter machine" if n_threads > 1 \
        else "rerun on a quieter machine (it already ran on 1 thread)"
    return f"{head} on {n_threads} torch thread{'s' if n_threads != 1 else ''} ({load}): other work competes for " \
           f"the cores — {fewer}; more runs (--repeat) only average the noise"


def _guarded(fn: Callable, *args: Any) -> Any:
    """A probe call; its failure is a `not_checked` status, never a verdict on cnncalc's number."""
    try:
        return fn(*args)
    except Exception as exc:  # noqa: BLE001 - the probe is a check of the analysis; its own failure is reported
        return not_checked("probe_failed", f"not checked: the probe failed ({type(exc).__name__}: "
                                           f"{(str(exc).splitlines() or [''])[0][:120]})")


MEMORY_TOLERANCE = 0.10  #: measured ÷ analytic memory may differ from 1 by this much


def verify_memory(report: Report, dtype: str, training: bool = True) -> tuple[int, str]:
    """What verify itself will hold at its peak, and which step that is: the float32 network
    during its measured training step (params, state, gradients, activations), or the model
    in both float32 and `dtype` during the inference pass (`training=False`: without the
    training step, which verify skips, saying so, when it would not fit; the receptive-field
    probe keeps each of its float64 one-channel stand-ins under its own budget)."""
    f32 = _at(report, "float32").totals
    timed = _at(report, dtype).totals
    steps = {f"the model in float32 and {dtype} with an inference pass": f32["param_bytes"] + f32["buffer_bytes"]
             + timed["param_bytes"] + timed["buffer_bytes"] + timed["inference_peak_activation_bytes"]}
    if training:
        steps["a float32 training step"] = f32["training_memory_bytes"]
    what = max(steps, key=lambda k: steps[k])
    return steps[what], what


def _at(report: Report, dtype: str) -> Report:
    """The report re-analysed in another dtype (memory figures depend on it)."""
    if dtype == report.dtype:
        return report
    return analyze(report.network, report.input_shape[0], report.input_shape[1:], dtype, report.optimizer)


def _train_memory(report: Report, model: Any, x: Any, t: Kit, dev: Any, skip: str | None,
                  amp: str | None = None) -> dict:
    """One training step measured in float32 (under autocast with `amp`) against the analytic
    training memory (not measured, with the reason `skip`, when it would not fit)."""
    analytic = _at(report, "float32").totals
    out = {"analytic_bytes": analytic["training_memory_bytes"], "phase": analytic["training_peak_phase"],
           "optimizer": report.optimizer, "measured_bytes": None, "workspace_bytes": None, "ratio": None,
           "allocated_bytes": None, "reserved_bytes": None}
    if skip:
        out["note"] = skip
        return out
    from cnncalc.backend.allocator import peaks_around

    try:
        with peaks_around(t.torch, dev) as seen:  # CUDA: the caching allocator's own peaks, side by side
            peak = measure_training(model, x, t, dev, report.optimizer, amp)
        out.update(seen)
    except (RuntimeError, ValueError, MemoryError) as exc:  # e.g. batch norm over one value per channel
        why = "runs out of memory training" if out_of_memory(exc) else "cannot train"
        out["note"] = f"torch {why} this network at this batch: {str(exc).splitlines()[0][:200]}"
        return out
    if peak is not None:
        out.update(measured_bytes=peak.tensors, workspace_bytes=peak.workspace,
                   ratio=peak.tensors / out["analytic_bytes"] if out["analytic_bytes"] else None)
    return out


def _memory(report: Report, model: Any, x: Any, t: Kit, dev: Any, dtype: str, training: dict,
            amp: str | None = None) -> dict:
    """Inference peak measured in the timed dtype (under autocast with `amp`), the training step's
    figures, and whether both are within MEMORY_TOLERANCE of the analytic model (mismatches otherwise)."""
    from cnncalc.backend.allocator import peaks_around

    with peaks_around(t.torch, dev) as seen:  # CUDA: the caching allocator's own peaks (weights included)
        peak = _in_dtype(measure_peak, report, dtype, dev, model, x, t, dev, amp)
    analytic = _at(report, dtype).totals["inference_peak_activation_bytes"]
    inexact = sorted({r.type for r in report.layers if not r.layer.memory_exact})
    mem: dict[str, Any] = {
        "analytic_peak_activation_bytes": analytic,
        "measured_peak_bytes": peak.tensors if peak else None,
        "measured_workspace_bytes": peak.workspace if peak else None,
        "allocated_bytes": seen["allocated_bytes"], "reserved_bytes": seen["reserved_bytes"],
        "ratio_measured_to_analytic": peak.tensors / analytic if peak and analytic else None,
        "method": {"cuda": "torch.profiler allocation events (CUDA caching allocator)",
                   "cpu": "torch.profiler allocation events"}.get(dev.type, "not measured on this device"),
        "training": training, "tolerance": MEMORY_TOLERANCE, "mismatches": []}
    status = {"inference_peak": EXACT, "training_step": EXACT}  # what was judged; else why not
    if inexact:
        status["inference_peak"] = status["training_step"] = not_checked(
            "estimate", f"memory: the rules of {', '.join(inexact)} are an estimate (`cnncalc layers TYPE` says why)")
    else:
        if peak is None:
            status["inference_peak"] = not_checked("not_measurable",
                                                   f"memory: torch cannot measure allocations on {dev.type}")
        if training["measured_bytes"] is None:
            status["training_step"] = not_checked("not_measurable", "training memory: "
                                                  f"{training.get('note') or 'not measured on ' + dev.type}")
    why = list(dict.fromkeys(s.detail for s in status.values() if s.level != "exact"))
    mem["status"] = {k: s.to_json() for k, s in status.items()}
    for what, ratio in (("inference peak activations", mem["ratio_measured_to_analytic"]),
                        ("training step", training["ratio"])):
        if ratio is not None and not inexact and abs(ratio - 1) > MEMORY_TOLERANCE:
            mem["mismatches"].append(f"memory: {what} measured/analytic = {ratio:.2f} (tolerance ±{MEMORY_TOLERANCE:.0%})")
    mem["judged"] = not why
    mem["not_judged"] = why
    return mem


def _in_dtype(fn: Callable, report: Report, dtype: str, dev: Any, *args: Any) -> Any:
    """Run a timed/measured pass; a kernel this dtype lacks on this device is a plain error."""
    try:
        return fn(*args)
    except (RuntimeError, MemoryError) as exc:
        first = str(exc).splitlines()[0][:200]
        if out_of_memory(exc):
            raise CnnError.single(f"out of memory on {dev.type} running this network in {dtype} ({first}); verify "
                                  f"estimated {verify_memory(report, dtype)[0] / 2**30:.2f} GiB", file=report.file) from None
        raise CnnError.single(f"torch cannot run this network in {dtype} on {dev.type} ({type(exc).__name__}: "
                              f"{first}); the counts were checked in float32 — time it in another dtype or on "
                              "another device", file=report.file) from None
