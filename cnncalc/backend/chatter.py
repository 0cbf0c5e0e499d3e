"""torch's own chatter kept off the user's screen: the records of the `torch` loggers (fake-tensor
tracebacks, compile warnings), Python warnings raised inside torch, and — around the profiler —
what native code writes straight to file descriptors 1 and 2 (kineto's `USDT: … profiler_start`
lines). They are collected into a list that `-v` shows, escaped, after cnncalc's own output."""
from __future__ import annotations

import contextlib
import contextvars
import logging
import os
import tempfile
import warnings
from collections.abc import Iterator

MAX_LINES = 400  #: lines kept per run (a traceback loop must not fill memory)
_ACTIVE: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar("cnncalc_chatter", default=None)


def current() -> list[str]:
    """The log of the innermost `captured` (a throwaway one outside any)."""
    return _ACTIVE.get() if _ACTIVE.get() is not None else []  # type: ignore[return-value]


class _Keep(logging.Handler):
    def __init__(self, log: list[str]):
        super().__init__(logging.DEBUG)
        self.log = log

    def emit(self, record: logging.LogRecord) -> None:
        if len(self.log) < MAX_LINES:
            try:
                text = record.getMessage()
            except Exception:  # a record whose arguments do not format is still torch's, not ours
                text = str(record.msg)
            self.log.extend(f"{record.name}: {line}" for line in text.splitlines()[:50])


@contextlib.contextmanager
def captured(log: list[str], fds: bool = False) -> Iterator[None]:
    """Collect torch's logging and warnings (and, with `fds`, fds 1 and 2) into `log`."""
    keep = _Keep(log)
    # torch gives some of its loggers their own handlers (propagate off), some created only while
    # it runs: every record of a `torch` or `torch.*` logger goes to `keep`, whichever logger it is
    original = logging.Logger.callHandlers

    def route(self: logging.Logger, record: logging.LogRecord) -> None:
        if self.name == "torch" or self.name.startswith("torch."):
            keep.handle(record)
        else:
            original(self, record)

    logging.Logger.callHandlers = route  # type: ignore[method-assign]
    token = _ACTIVE.set(log)
    files: list[tuple[int, int]] = []
    sink = tempfile.TemporaryFile() if fds else None
    try:
        if sink is not None:
            for fd in (1, 2):
                files.append((fd, os.dup(fd)))
                os.dup2(sink.fileno(), fd)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield
        log.extend(f"warning: {w.message}" for w in caught[: max(0, MAX_LINES - len(log))])
    finally:
        for fd, old in files:
            os.dup2(old, fd)
            os.close(old)
        logging.Logger.callHandlers = original  # type: ignore[method-assign]
        _ACTIVE.reset(token)
        if sink is not None:
            sink.seek(0)
            text = sink.read(1 << 16).decode("utf-8", "replace")
            sink.close()
            log.extend(line for line in text.splitlines()[: max(0, MAX_LINES - len(log))] if line.strip())
