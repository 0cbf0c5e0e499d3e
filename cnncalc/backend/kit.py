"""The one door to torch: `kit()` imports torch, nn, F and cnncalc's own modules on demand."""
from __future__ import annotations

from types import SimpleNamespace

from cnncalc.errors import CnnError


def kit() -> SimpleNamespace:
    """torch, nn, F and cnncalc's own modules (`ext`), for the layers' builders and probes."""
    try:
        import torch
    except ImportError:
        raise CnnError.single("PyTorch is not installed: pip install 'cnncalc[torch]' (or pip install torch)") from None
    import torch.nn.functional as F
    from torch import nn

    from cnncalc.backend import modules

    return SimpleNamespace(torch=torch, nn=nn, F=F, ext=modules)
