"""The one door to torch: `kit()` imports torch, nn, F and cnncalc's own modules on demand."""
from __future__ import annotations

from cnncalc.errors import CnnError
from cnncalc.layers.base import Kit

__all__ = ["Kit", "kit"]


def kit() -> Kit:
    """torch, nn, F and cnncalc's own modules (`ext`), for the layers' builders and probes; a plain
    error naming the install command when torch is missing."""
    try:
        import torch
    except ImportError:
        raise CnnError.single("PyTorch is not installed: pip install 'cnncalc[torch]' (or pip install torch)") from None
    import torch.nn.functional as F
    from torch import nn

    from cnncalc.backend import modules

    return Kit(torch=torch, nn=nn, F=F, ext=modules)
