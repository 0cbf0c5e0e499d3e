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
              ) -> None:
    """Measure the device's peaks (matmul FLOP/s, copy bandwidth, empty-call overhead) for
    `analyze --peaks` (needs torch)."""
    from cnncalc.backend.device import pick_device, set_threads
    from cnncalc.backend.kit import kit
    from cnncalc.backend.profile import measure_peaks
    from cnncalc.units import fmt_time

    t = kit()
    dev = pick_device(t.torch, device)
    n_threads, why = set_threads(t.torch, threads)
    peaks = measure_peaks(t, dev, dtype.value)
    if not write_out(json.dumps({**peaks.to_json(), "threads": n_threads, "threads_reason": why}, indent=2) + "\n", output):
        return
    from cnncalc.units import human

    console(stderr=True).print(f"wrote {_escape(output or '')}: {_escape(peaks.device)} {dtype.value}: "
                               f"{human(peaks.flops_per_s, 'FLOP/s')}, {human(peaks.bytes_per_s, 'B/s')}, "
                               f"calls ≥ {fmt_time(peaks.overhead_s)}; {_escape(why)}")
