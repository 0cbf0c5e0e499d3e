"""cnncalc: analytic shapes, params, MACs, memory and receptive fields of CNN specs,
proved against PyTorch.

    >>> import cnncalc
    >>> report = cnncalc.analyze(cnncalc.load_spec("examples/lenet5.yaml"))
    >>> report.totals["params"]
"""
from __future__ import annotations

__version__ = "0.1.0"

from .analyzer import LayerReport, Report, analyze
from .errors import CnnError, Problem
from .spec import Network, load_spec, parse_spec

__all__ = ["analyze", "load_spec", "parse_spec", "Network", "Report", "LayerReport", "CnnError",
           "Problem", "__version__"]
