"""The model's own code run with file descriptors 1 and 2 redirected.

`cnncalc import` writes the spec to standard output; a model that prints while it is built or
traced (`print`, `sys.__stdout__.write`, `os.write(1, …)`, a C extension's printf) must not put
a line into it. `quiet(log)` flushes Python's streams, points fds 1 and 2 (and `sys.stdout`,
`sys.stderr`, `sys.__stdout__`, `sys.__stderr__`'s buffers with them) at a temporary file, and
afterwards flushes again, restores both and keeps the first lines written in `log` (shown with
`import -v`). No torch, no rich.
"""
from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator

MAX_KEPT = 1 << 16  #: bytes of what the model wrote that are kept for -v
MAX_LINES = 200


def _flush() -> None:
    for stream in {id(s): s for s in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__) if s}.values():
        with contextlib.suppress(Exception):
            stream.flush()


@contextlib.contextmanager
def quiet(log: list[str]) -> Iterator[None]:
    """Run the body with fds 1 and 2 (and sys.stdout/sys.stderr) writing to a scratch file; its
    text, one visible line each, is appended to `log`."""
    _flush()
    sink = tempfile.TemporaryFile()
    saved: list[tuple[int, int]] = []
    try:
        for fd in (1, 2):
            try:
                saved.append((fd, os.dup(fd)))
            except OSError:  # a closed descriptor: nothing of ours can land there either
                continue
            os.dup2(sink.fileno(), fd)
        with contextlib.redirect_stdout(sys.stderr):
            try:
                yield
            finally:
                _flush()
    finally:
        _flush()
        for fd, old in saved:
            os.dup2(old, fd)
            os.close(old)
        sink.seek(0)
        text = sink.read(MAX_KEPT).decode("utf-8", "replace")
        sink.close()
        from cnncalc.safe import visible

        log.extend(f"the model wrote: {visible(line)[:300]}" for line in text.splitlines()[:MAX_LINES] if line.strip())
