"""cnncalc: analytic shapes, params, MACs, memory and receptive fields of CNN specs,
proved against PyTorch.

    >>> import cnncalc
    >>> report = cnncalc.analyze(cnncalc.load_spec("examples/lenet5.yaml"))
    >>> report.totals["params"]
"""
from __future__ import annotations

__version__ = "0.1.0"

from cnncalc.analysis.analyze import analyze
from cnncalc.analysis.report import LayerReport, Report
from cnncalc.errors import CnnError, Problem
from cnncalc.spec.expand import load_spec, parse_spec
from cnncalc.spec.network import Network


def spec_from_torch(model, input_shape: tuple[int, ...], name: str = "net") -> str:
    """The spec (YAML text) of a live nn.Module at `input_shape` (no batch), proved against
    torch as `cnncalc import` proves it; raises CnnError for what a spec cannot express."""
    from cnncalc.interop.torch_import import import_model

    return import_model(model, tuple(input_shape), name, [f"written by cnncalc.spec_from_torch at "
                                                              f"{'x'.join(map(str, input_shape))}"])[0]


def spec_from_onnx(path: str, input_shape: tuple[int, ...] | None = None, name: str = "net") -> str:
    """The spec (YAML text) of an ONNX graph, as `cnncalc import MODEL.onnx` writes it."""
    from cnncalc.interop.onnx_import import import_onnx

    return import_onnx(path, tuple(input_shape) if input_shape else None, name)[0]


__all__ = ["analyze", "load_spec", "parse_spec", "spec_from_torch", "spec_from_onnx", "Network", "Report",
           "LayerReport", "CnnError", "Problem", "__version__"]
