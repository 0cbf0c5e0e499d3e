"""The one door to PyTorch: build a report's network as an nn.Module and prove the analysis.

Modules, each doing one thing and drawing nothing: `build` (the network as a module),
`device` (choice, memory, sync), `measure` (counts, peak memory, timing), `probe` (receptive
fields by gradients), `fold` (batch-norm folding), `verify` (all of it, compared with the
analysis). torch is imported lazily inside functions, so importing this package is cheap and
`analyze`/`validate` never pay for torch.
"""
from __future__ import annotations

from types import SimpleNamespace

from ..errors import CnnError


def kit() -> SimpleNamespace:
    """torch, nn, F and cnncalc's own modules (`ext`), for the layers' builders and probes."""
    try:
        import torch
    except ImportError:
        raise CnnError.single("PyTorch is not installed: pip install 'cnncalc[torch]' (or pip install torch)") from None
    import torch.nn.functional as F
    from torch import nn

    from . import modules

    return SimpleNamespace(torch=torch, nn=nn, F=F, ext=modules)


# the public API (each module imports torch only inside its functions)
from .build import build_model  # noqa: E402
from .device import pick_device  # noqa: E402
from .fold import check_bn_folding  # noqa: E402
from .measure import LayerCheck, measure_counts, time_forward  # noqa: E402
from .probe import probe_model, probe_plan, probe_rf, probe_whole, probeable  # noqa: E402
from .verify import VerifyResult, compare, verify_report  # noqa: E402

__all__ = ["kit", "build_model", "pick_device", "check_bn_folding", "LayerCheck", "measure_counts", "time_forward",
           "probe_model", "probe_plan", "probe_rf", "probe_whole", "probeable", "VerifyResult", "compare",
           "verify_report"]
