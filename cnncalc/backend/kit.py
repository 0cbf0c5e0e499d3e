"""The one door to torch: `kit()` imports torch, nn, F and cnncalc's own modules on demand."""
from __future__ import annotations

from types import ModuleType
from typing import NamedTuple

from cnncalc.errors import CnnError


class Kit(NamedTuple):
    """torch and the modules cnncalc builds with, imported once torch is known to be there."""

    torch: ModuleType
    nn: ModuleType
    F: ModuleType
    ext: ModuleType
    """cnncalc's own modules (backend/modules.py: the layers torch has no class for)."""


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
