"""Which device verify runs on, what it is called, how much memory it has free."""
from __future__ import annotations

import os
from typing import Any

from cnncalc.errors import CnnError


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
        raise CnnError.single(f"unknown device '{requested}': use auto, cpu, cuda, cuda:N or mps",
                              exit_code=2) from None
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
    """Free bytes on the device, or None when unknown. Host: the least of MemAvailable, the
    room left under this process's cgroup limit (v2 or v1) and under its address-space
    limit (ulimit -v)."""
    if dev.type == "cuda":
        return torch.cuda.mem_get_info(dev)[0]
    if dev.type == "mps":
        return int(torch.mps.recommended_max_memory()) if hasattr(torch.mps, "recommended_max_memory") else None
    room = [r for r in (_mem_available(), _cgroup_room(), _rlimit_room()) if r is not None]
    return min(room) if room else None


def _read_int(path: str) -> int | None:
    try:
        with open(path) as fh:
            text = fh.read().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None  # "max": no limit


def _mem_available() -> int | None:
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


def _cgroup_room() -> int | None:
    """Limit − usage of this process's memory cgroup (v2 memory.max, or v1 limit_in_bytes)."""
    base = "/sys/fs/cgroup"
    try:
        with open("/proc/self/cgroup") as fh:
            for line in fh:
                parts = line.strip().split(":", 2)
                if len(parts) == 3 and parts[0] == "0" and parts[1] == "":  # v2
                    d = base + parts[2] if os.path.exists(base + parts[2] + "/memory.max") else base
                    limit, used = _read_int(d + "/memory.max"), _read_int(d + "/memory.current")
                    if limit is not None and used is not None:
                        return max(limit - used, 0)
    except OSError:
        pass
    limit = _read_int(base + "/memory/memory.limit_in_bytes")
    used = _read_int(base + "/memory/memory.usage_in_bytes")
    if limit is not None and used is not None and limit < 1 << 60:
        return max(limit - used, 0)
    return None


def _rlimit_room() -> int | None:
    """Address space left under RLIMIT_AS (ulimit -v), or None when unlimited."""
    try:
        import resource

        soft = resource.getrlimit(resource.RLIMIT_AS)[0]
        if soft == resource.RLIM_INFINITY:
            return None
        with open("/proc/self/status") as fh:
            size = next((int(line.split()[1]) * 1024 for line in fh if line.startswith("VmSize:")), 0)
        return max(soft - size, 0)
    except (ImportError, OSError, ValueError):
        return None


def out_of_memory(exc: BaseException) -> bool:
    """Whether torch (or Python) ran out of memory."""
    text = str(exc)
    return isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError" or (
        "out of memory" in text.lower() or "can't allocate memory" in text or "DefaultCPUAllocator" in text)


def sync(torch: Any, dev: Any) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    elif dev.type == "mps":
        torch.mps.synchronize()


def _cgroup_cpus() -> float | None:
    """The CPUs this process's cgroup may use: cpu.max (v2: "quota period" or "max period") or
    cpu.cfs_quota_us ÷ cpu.cfs_period_us (v1); None when unlimited or unknown."""
    base = "/sys/fs/cgroup"
    paths = [base + "/cpu.max"]
    try:
        with open("/proc/self/cgroup") as fh:
            for line in fh:
                parts = line.strip().split(":", 2)
                if len(parts) == 3 and parts[0] == "0" and parts[1] == "":
                    paths.insert(0, base + parts[2].rstrip("/") + "/cpu.max")
    except OSError:
        pass
    for path in paths:
        try:
            with open(path) as fh:
                fields = fh.read().split()
        except OSError:
            continue
        if len(fields) == 2 and fields[0].isdigit() and fields[1].isdigit() and int(fields[1]) > 0:
            return int(fields[0]) / int(fields[1])
        if fields and fields[0] == "max":
            return None
    quota, period = _read_int(base + "/cpu/cpu.cfs_quota_us"), _read_int(base + "/cpu/cpu.cfs_period_us")
    return quota / period if quota and period else None  # v1 writes -1 (not digits: None) when unlimited


def thread_budget() -> tuple[int, str]:
    """How many threads torch may use without oversubscribing this machine: the least of the
    cores this process may run on (os.sched_getaffinity), the cgroup's CPU quota (rounded
    down, at least 1) and the cores left free by other work (os.cpu_count() − the 1-minute
    load average, rounded); with the reason in words."""
    cores = os.cpu_count() or 1
    try:
        allowed = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        allowed = cores
    limits = {f"{allowed} cores allowed (affinity)": allowed}
    quota = _cgroup_cpus()
    if quota is not None:
        limits[f"a cgroup quota of {quota:g} CPUs"] = max(1, int(quota))
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        load = None
    if load is not None:
        limits[f"{max(0.0, cores - load):.1f} of {cores} cores free (load average {load:.2f})"] = \
            max(1, int(cores - load + 0.5))
    n = max(1, min(limits.values()))
    return n, f"{n} thread{'s' if n != 1 else ''}: " + ", ".join(limits)


def set_threads(torch: Any, threads: int | None) -> tuple[int, str]:
    """Set torch's intra-op threads: `threads` when given (at least 1), else `thread_budget()`;
    returns the count and why."""
    if threads is not None:
        if threads < 1:
            raise CnnError.single(f"--threads must be at least 1, received {threads}", exit_code=2)
        n, why = threads, f"{threads} thread{'s' if threads != 1 else ''} (--threads)"
    else:
        n, why = thread_budget()
    torch.set_num_threads(n)
    return n, why
