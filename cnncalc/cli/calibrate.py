"""`cnncalc calibrate`: measure the device's peaks for `analyze --peaks` and `verify --profile`."""
from __future__ import annotations

import json
from typing import Optional

import typer

from cnncalc.cli.app import app
from cnncalc.cli.console import _escape, console, user_errors, write_out
from cnncalc.cli.options import Dtype


@app.command()
@user_errors
def calibrate(device: str = typer.Option("auto", help="auto (cuda, then mps, then cpu), cpu, cuda, cuda:N or mps."),
              dtype: Dtype = typer.Option(Dtype("float32"), "--dtype", help="Element type of the matmul and copies."),
              output: Optional[str] = typer.Option(None, "-o", "--output",
                                                   help="JSON file to write (default: standard output)."),
              threads: Optional[int] = typer.Option(None, "--threads", min=1, max=4096,
                                                    help="torch's CPU threads (default: the cores this process may "
                                                         "use and that other work leaves free)."),
              reference: Optional[str] = typer.Option(None, "--reference",
                                                      help="CUDA: the spec whose training step measures the "
                                                           "allocator's overhead (default: a built-in ResNet-like "
                                                           "network at 3x224x224)."),
              reference_batch: int = typer.Option(32, "--reference-batch", min=1, max=2**20,
                                                  help="CUDA: the batch of that training step."),
              ) -> None:
    """Measure the device's peaks (matmul FLOP/s, copy bandwidth, empty-call overhead) for
    `analyze --peaks`, and on CUDA the allocator's overhead, workspaces and context for
    `fit --peaks` (needs torch)."""
    from cnncalc.backend.device import pick_device, set_threads
    from cnncalc.backend.kit import kit
    from cnncalc.backend.profile import measure_peaks
    from cnncalc.units import fmt_time

    t = kit()
    dev = pick_device(t.torch, device)
    n_threads, why = set_threads(t.torch, threads)
    peaks = measure_peaks(t, dev, dtype.value)
    from cnncalc.backend.allocator import measure_allocator

    alloc = measure_allocator(t, dev, reference, reference_batch)
    doc = {**peaks.to_json(), **alloc, "threads": n_threads, "threads_reason": why}
    if not write_out(json.dumps(doc, indent=2) + "\n", output):
        return
    from cnncalc.units import human

    console(stderr=True).print(f"wrote {_escape(output or '')}: {_escape(peaks.device)} {dtype.value}: "
                               f"{human(peaks.flops_per_s, 'FLOP/s')}, {human(peaks.bytes_per_s, 'B/s')}, "
                               f"calls ≥ {fmt_time(peaks.overhead_s)}; {_escape(why)}")
    if alloc["allocator_overhead_share"] is not None:
        from cnncalc.units import hbytes

        console(stderr=True).print(f"allocator: reserved {alloc['allocator_overhead_share']:.1%} over allocated at a "
                                   f"training step's peak; workspaces {hbytes(alloc['workspace_bytes'])}; context "
                                   f"{hbytes(alloc['context_bytes'])} (for `fit --peaks`)")
