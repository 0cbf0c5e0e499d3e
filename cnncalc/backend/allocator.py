"""What a device's memory holds beyond the tensors the analysis counts, measured on a reference
training step (`cnncalc calibrate --device cuda`) for `fit --peaks`:

    overhead_share  = max reserved / max allocated − 1      the caching allocator: blocks rounded
                                                            up (512 B; 2 MiB segments), freed
                                                            blocks kept reserved
    workspace_bytes = the operators' own transient buffers at the step's peak (cuDNN workspaces,
                      from the profiler's allocation events) + what stays allocated beyond the
                      known tensors after the step (cuBLAS's per-handle workspaces)
    context_bytes   = total − free − reserved                the CUDA context and libraries'
                                                            memory outside torch's allocator

so that `fit` requires  peak · (1 + overhead_share) + workspace_bytes + context_bytes ≤ memory ·
(1 − margin). On CUDA only: the CPU has no caching allocator of torch's, and MPS reports no peaks.
`verify` on CUDA reports allocated and reserved next to the analytic figures (`peaks_around`).
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

#: the reference network of `calibrate --device cuda` (a ResNet-like stem and stages at 224 × 224,
#: batch REFERENCE_BATCH, Adam): convolutions of several shapes so that cuDNN picks its algorithms
#: and workspaces as a real network makes it
REFERENCE = """name: allocator_reference
input: 3x224x224
layers:
  - {type: conv2d, out_channels: 64, kernel_size: 7, stride: 2, padding: 3, bias: false}
  - {type: batchnorm2d}
  - {type: relu}
  - {type: maxpool2d, kernel_size: 3, stride: 2, padding: 1}
  - {type: conv2d, out_channels: 64, kernel_size: 3, padding: 1, bias: false}
  - {type: batchnorm2d}
  - {type: relu}
  - {type: conv2d, out_channels: 128, kernel_size: 3, stride: 2, padding: 1, bias: false}
  - {type: batchnorm2d}
  - {type: relu}
  - {type: conv2d, out_channels: 256, kernel_size: 3, stride: 2, padding: 1, bias: false}
  - {type: batchnorm2d}
  - {type: relu}
  - {type: conv2d, out_channels: 512, kernel_size: 1, bias: false}
  - {type: global_avgpool}
  - {type: flatten}
  - {type: linear, out_features: 1000}
"""
REFERENCE_BATCH = 32


def figures(max_allocated: int, max_reserved: int, allocated_after: int, known_after: int,
            operator_workspace: int, total: int, free: int, reserved_now: int) -> dict[str, Any]:
    """The allocator's figures (module docstring) from what torch.cuda reported around a step:
    its peaks, what was allocated after it against the tensors known to be alive then (params,
    buffers, optimizer state, input), the profiler's operator workspace at the step's peak, and
    mem_get_info's total and free with the reserved bytes at that moment."""
    return {"allocator_overhead_share": max(0.0, max_reserved / max_allocated - 1) if max_allocated else 0.0,
            "workspace_bytes": max(0, operator_workspace) + max(0, allocated_after - known_after),
            "context_bytes": max(0, total - free - reserved_now)}


@contextlib.contextmanager
def peaks_around(torch: Any, dev: Any) -> Iterator[dict[str, int | None]]:
    """The CUDA allocator's peak allocated and reserved bytes while the block runs (None off CUDA)."""
    out: dict[str, int | None] = {"allocated_bytes": None, "reserved_bytes": None}
    if dev.type != "cuda":
        yield out
        return
    torch.cuda.synchronize(dev)
    torch.cuda.reset_peak_memory_stats(dev)
    yield out
    torch.cuda.synchronize(dev)
    out.update(allocated_bytes=int(torch.cuda.max_memory_allocated(dev)),
               reserved_bytes=int(torch.cuda.max_memory_reserved(dev)))


def measure_allocator(t: Any, dev: Any, spec: str | None = None, batch: int = REFERENCE_BATCH) -> dict[str, Any]:
    """`figures` of a training step (Adam) of the reference network (or the spec at `spec`) at
    `batch` on `dev`, with what was measured; on other devices every figure is None, with why."""
    if dev.type != "cuda":
        return {"allocator_overhead_share": None, "workspace_bytes": None, "context_bytes": None,
                "allocator_reference": {"note": f"measured on CUDA only (this run: {dev.type})"}}
    from cnncalc.analysis.analyze import analyze
    from cnncalc.backend.build import build_model
    from cnncalc.backend.measure import measure_training
    from cnncalc.spec.expand import load_spec, parse_spec

    torch = t.torch
    net = load_spec(spec) if spec else parse_spec(REFERENCE)
    report = analyze(net, batch, None, "float32", "adam")
    model = build_model(report, t).to(dev)
    x = torch.randn(report.input_shape, device=dev)
    torch.cuda.synchronize(dev)
    torch.cuda.empty_cache()
    try:
        with peaks_around(torch, dev) as seen:
            peak = measure_training(model, x, t, dev, "adam")
    except (RuntimeError, MemoryError) as exc:  # out of memory at this batch, a kernel torch lacks
        from cnncalc.backend.device import out_of_memory
        from cnncalc.errors import CnnError

        why = "runs out of memory" if out_of_memory(exc) else "cannot train it"
        raise CnnError.single(f"calibrate: the reference training step ({net.name}, batch {batch}) {why} on "
                              f"{dev}: {str(exc).splitlines()[0][:200]}; try a smaller --reference-batch",
                              exit_code=1) from None
    opt_state = report.totals["trainable_params"] * 4 * 2  # Adam's exp_avg and exp_avg_sq (the step count is a CPU scalar)
    known = sum(v.nbytes for v in [*model.parameters(), *model.buffers()]) + opt_state + x.nbytes
    allocated_after = int(torch.cuda.memory_allocated(dev))
    free, total = torch.cuda.mem_get_info(dev)
    out = figures(seen["allocated_bytes"] or 0, seen["reserved_bytes"] or 0, allocated_after, known,
                  peak.workspace if peak else 0, int(total), int(free), int(torch.cuda.memory_reserved(dev)))
    out["allocator_reference"] = {
        "network": net.name, "batch": batch, "optimizer": "adam", "analytic_bytes": report.totals["training_memory_bytes"],
        "profiled_tensor_bytes": peak.tensors if peak else None, "max_allocated_bytes": seen["allocated_bytes"],
        "max_reserved_bytes": seen["reserved_bytes"], "allocated_after_bytes": allocated_after, "known_after_bytes": known,
        "total_bytes": int(total), "free_bytes": int(free),
        "note": "context_bytes counts every process on this GPU: calibrate on an idle one"}
    return out
