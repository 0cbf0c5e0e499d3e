"""Does cnncalc's timing harness agree with torch.utils.benchmark.Timer?

Times the same model (built by cnncalc's own builder) both ways and prints the ratio of the
medians; the target is agreement within 10%.

    python benchmarks/timing_agreement.py [--device auto|cpu|cuda] [--dtype float32|bfloat16] [NAMES...]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import cnncalc  # noqa: E402
from cnncalc import backend as tb  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("names", nargs="*", default=["resnet18", "mobilenet_v2", "alexnet"])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--batch", type=int, default=None)
    ap.add_argument("--repeat", type=int, default=30)
    args = ap.parse_args()
    t = tb.kit()
    torch = t.torch
    from torch.utils import benchmark

    dev = tb.pick_device(torch, args.device)
    dtype = getattr(torch, args.dtype)
    batch = args.batch or (32 if dev.type == "cuda" else 1)
    print(f"device: {tb.device_name(torch, dev)} · dtype {args.dtype} · batch {batch} · torch {torch.__version__}")
    print(f"{'network':<14}{'cnncalc median':>16}{'Timer median':>16}{'ratio':>8}")
    worst = 0.0
    for name in args.names:
        report = cnncalc.analyze(cnncalc.load_spec(os.path.join(HERE, "..", "examples", f"{name}.yaml")), batch=batch)
        model = tb.build_model(report, t).eval().to(dev, dtype)
        x = torch.randn(report.input_shape, device=dev, dtype=dtype)
        ours = statistics.median(tb.time_forward(model, x, t, dev, args.repeat, 5))
        with torch.inference_mode():
            timer = benchmark.Timer("model(x)", globals={"model": model, "x": x},
                                    num_threads=torch.get_num_threads())
            theirs = timer.blocked_autorange(min_run_time=1.0).median
        ratio = ours / theirs
        worst = max(worst, abs(ratio - 1))
        print(f"{name:<14}{ours * 1e3:>13.3f} ms{theirs * 1e3:>13.3f} ms{ratio:>8.3f}")
    print(f"largest disagreement: {worst:.1%} ({'within' if worst <= 0.10 else 'OUTSIDE'} the 10% target)")
    return 0 if worst <= 0.10 else 1


if __name__ == "__main__":
    raise SystemExit(main())
