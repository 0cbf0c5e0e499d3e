"""cnncalc: analytic shapes, params, MACs, memory and receptive fields of CNN specs,
proved against PyTorch.

    >>> import cnncalc
    >>> report = cnncalc.summary("examples/lenet5.yaml")
    >>> report.totals.params, report.totals["macs"]
    (61706, 416520)
"""
from __future__ import annotations

__version__ = "0.1.0"

from cnncalc.analysis.report import LayerReport, Report, Totals
from cnncalc.api import analyze, summary
from cnncalc.errors import CnnError, Problem
from cnncalc.spec.expand import load_spec as _load_spec
from cnncalc.spec.expand import parse_spec as _parse_spec
from cnncalc.spec.network import Network


def load_spec(path: str, overrides: dict | None = None) -> Network:
    """Read, parse and validate a spec file, with `overrides` of its `args:`; raises CnnError with
    every located problem.

    >>> import cnncalc
    >>> net = cnncalc.load_spec("examples/resnet18.yaml")
    >>> net.header.name, len(net.nodes) > 0
    ('resnet18', True)
    """
    return _load_spec(path, overrides)


def parse_spec(text: str, file: str = "<spec>", overrides: dict | None = None) -> Network:
    """Parse and validate a spec given as YAML text (`file` names it in messages).

    >>> import cnncalc
    >>> net = cnncalc.parse_spec('''
    ... name: tiny
    ... input: 3x32x32
    ... layers:
    ...   - {name: conv, type: conv2d, out_channels: 8, kernel_size: 3}
    ... ''')
    >>> cnncalc.analyze(net).layer("conv").output_shape
    (1, 8, 30, 30)
    """
    return _parse_spec(text, file, overrides)


def spec_from_torch(model, input_shape: tuple[int, ...], name: str | None = None, prove: bool = True) -> str:
    """The spec (YAML text) of a live nn.Module at `input_shape` (no batch), checked against torch
    as `cnncalc import` checks it: every layer's shape, the params, buffers and FLOPs; with `prove`
    (the default) also the state_dict and the outputs of a forward pass through the exported
    module (prove=False skips that, the slow part). `name`: the network's, by default the model's
    class in snake_case. Raises CnnError for what a spec cannot express.

    >>> import cnncalc, torch.nn as nn
    >>> text = cnncalc.spec_from_torch(nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU()), (3, 32, 32), prove=False)
    >>> cnncalc.summary(text).totals.params
    224
    """
    from cnncalc.api import spec_from_module

    return spec_from_module(model, tuple(input_shape), name, prove)


def spec_from_onnx(path: str, input_shape: tuple[int, ...] | None = None, name: str | None = None,
                   prove: bool = True) -> str:
    """The spec (YAML text) of an ONNX graph, as `cnncalc import MODEL.onnx` writes it: shapes
    checked against ONNX shape inference and parameters against the initializers; with `prove`
    (the default) also the outputs against onnx's reference evaluator. `name`: by default the
    file's name in snake_case.

    >>> import cnncalc
    >>> text = cnncalc.spec_from_onnx("model.onnx", (3, 224, 224), prove=False)  # doctest: +SKIP
    >>> cnncalc.summary(text)  # doctest: +SKIP
    """
    import os

    from cnncalc.interop.onnx_import import import_onnx
    from cnncalc.interop.torch_import import snake_name

    default = snake_name(os.path.splitext(os.path.basename(os.fspath(path)))[0])
    return import_onnx(os.fspath(path), tuple(input_shape) if input_shape else None, name or default, prove)[0]


__all__ = ["analyze", "summary", "load_spec", "parse_spec", "spec_from_torch", "spec_from_onnx", "Network", "Report",
           "LayerReport", "Totals", "CnnError", "Problem", "__version__"]
