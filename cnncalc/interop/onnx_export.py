"""`cnncalc export --to onnx`: the built network through torch's ONNX exporter."""
from __future__ import annotations

from cnncalc.analysis.report import Report
from cnncalc.backend.build import build_model
from cnncalc.backend.kit import kit
from cnncalc.errors import CnnError
from cnncalc.interop.torch_export import exported_module


def to_onnx(report: Report, path: str, log: list[str] | None = None) -> None:
    """Write the exported module (seeded random weights) as ONNX through torch's exporter; what the
    exporter logs, warns or prints (its progress lines, skipped torchvision ops) goes to `log`."""
    from cnncalc.backend.chatter import captured
    from cnncalc.interop.quiet import quiet

    t = kit()
    log = [] if log is None else log
    try:
        import onnx  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError:
        raise CnnError.single("export --to onnx needs the onnx extra: pip install 'cnncalc[onnx]' (onnx and "
                              "onnxscript)") from None
    t.torch.manual_seed(0)
    net = exported_module(report, build_model(report, t)).eval()
    x = t.torch.zeros(report.input_shape)
    with quiet(log), captured(log):
        try:
            t.torch.onnx.export(net, (x,), path, dynamo=True)
        except Exception as exc:  # noqa: BLE001 - the exporter's failures vary; say which, plainly
            raise CnnError.single(f"torch's ONNX exporter failed: {type(exc).__name__}: {exc}".splitlines()[0][:300],
                                  file=report.file) from None
