"""`cnncalc verify`: prove the analysis in torch: counts, fields, memory, timing."""
from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Callable, List, Optional

import typer

from cnncalc.cli.app import app
from cnncalc.cli.console import console, show_torch_log, user_errors
from cnncalc.cli.options import (
    AmpDtype,
    AmpOpt,
    BatchOpt,
    CheckpointOpt,
    Dtype,
    InputOpt,
    Optimizer,
    Output,
    SetOpt,
    SpecArg,
    _analyze,
    parse_checkpoint,
)

if TYPE_CHECKING:
    from cnncalc.analysis.report import Report
    from cnncalc.backend.verify import VerifyOptions


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
           threads: Optional[int] = typer.Option(None, "--threads", min=1, max=4096,
                                                 help="torch's CPU threads (default: the cores this process may use "
                                                      "and that other work leaves free: cgroup quota, affinity, "
                                                      "load average)."),
           check_only: bool = typer.Option(False, "--check-only", help="Prove every number (counts, fields, "
                                                                       "memory) and time nothing."),
           verbose: bool = typer.Option(False, "--verbose", "-v", help="Also show what torch itself logged or warned "
                                                                       "(kept off the screen otherwise)."),
           amp: Optional[AmpDtype] = AmpOpt, checkpoint: Optional[str] = CheckpointOpt,
           ) -> None:
    """Build the spec in PyTorch, compare every number with the analysis, time the forward pass."""
    from cnncalc.backend.verify import VerifyOptions

    options = VerifyOptions(device=device, dtype=dtype.value, repeat=repeat, warmup=warmup, force=force,
                            compile=compile, channels_last=channels_last, rf_probe=rf_probe, fuse_bn=fuse_bn,
                            profile=profile, cuda_graph=cuda_graph, threads=threads, check_only=check_only,
                            amp=amp.value if amp else None,
                            checkpoint=None if parse_checkpoint(checkpoint) is None else checkpoint)
    report = _analyze(spec, batch, input, None, Optimizer.adam, sets)
    ok = _verify(report, options, format, verbose=verbose)
    raise typer.Exit(0 if ok else 1)


def _verify(report: Report, options: VerifyOptions, format: Output = Output.table,
            emit: Callable[[str], object] = print, verbose: bool = False) -> bool:
    """Run the verification and print it (JSON through `emit`); True when torch agrees."""
    from cnncalc.backend.verify import verify_report
    from cnncalc.render.formats import to_json
    from cnncalc.render.terminal import VerifyProgress, print_profile, print_verify

    ticks = 0 if options.check_only else options.warmup + options.repeat
    with VerifyProgress(format.value == "table" and sys.stderr.isatty(), ticks) as progress:
        result = verify_report(report, options, progress=progress)
    if format.value == "json":
        emit(to_json(report, {"verify": result.to_json()}))
    else:
        print_verify(report, result, console())
        if result.profile is not None:
            print_profile(result.profile, console())
    if verbose:
        show_torch_log(result.log)
    return result.ok
