"""Which device verify runs on, what it is called, how much memory it has free."""
from __future__ import annotations

import os
from typing import Any

from ..errors import CnnError


def pick_device(torch: Any, requested: str) -> Any:
    """auto (cuda, then mps, then cpu), cpu, cuda, cuda:N or mps; anything absent is a plain error."""
    if requested == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        return torch.device("mps" if mps is not None and mps.is_available() else "cpu")
    try:
        dev = torch.device(requested)
    except RuntimeError:
        raise CnnError.single(f"unknown device '{requested}': use auto, cpu, cuda, cuda:N or mps") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            why = "this torch has no CUDA support" if torch.version.cuda is None else "no CUDA GPU is visible"
            raise CnnError.single(f"cuda requested but not available ({why}, torch {torch.__version__})")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise CnnError.single(f"{requested} requested but only {torch.cuda.device_count()} CUDA device(s) exist")
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise CnnError.single("mps requested but not available (needs Apple silicon and a torch built with MPS)")
    if dev.type not in ("cpu", "cuda", "mps"):
        raise CnnError.single(f"device '{requested}' is not supported: use auto, cpu, cuda, cuda:N or mps")
    return dev


def device_name(torch: Any, dev: Any) -> str:
    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    if dev.type == "mps":
        return "Apple MPS"
    return f"CPU ({os.cpu_count()} logical cores, {torch.get_num_threads()} torch threads)"


def available_memory(torch: Any, dev: Any) -> int | None:
    """Free bytes on the device (host: MemAvailable), or None when unknown."""
    if dev.type == "cuda":
        return torch.cuda.mem_get_info(dev)[0]
    if dev.type == "mps":
        return int(torch.mps.recommended_max_memory()) if hasattr(torch.mps, "recommended_max_memory") else None
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def sync(torch: Any, dev: Any) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    elif dev.type == "mps":
        torch.mps.synchronize()
