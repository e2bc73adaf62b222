"""Keep native libraries' chatter out of the user's terminal, and Python's own output in it.

MediaPipe and TensorFlow Lite print half a dozen lines while they start (absl's "All log messages
before absl::InitializeLog()", "Created TensorFlow Lite XNNPACK delegate", calculator warnings),
FFmpeg prints its own line for a file it cannot read ("moov atom not found") or 72 for a stream
whose size changed, and OpenCV warns about a camera index that does not exist. They all write to
file descriptor 2 from C code, so no Python setting reaches every one of them. `native_quiet()`
points descriptor 2 at /dev/null and gives Python's `sys.stderr` (the one-line errors, the status
spinner, tracebacks) a copy of the original descriptor, so only what mespot itself says is shown.
The CLIs' `--verbose` leaves descriptor 2 alone.
"""
from __future__ import annotations

import io
import os
import sys
from contextlib import contextmanager
from typing import Iterator


@contextmanager
def native_quiet(enabled: bool = True) -> Iterator[None]:
    """While inside: native writes to descriptor 2 are discarded, Python's sys.stderr still shows.

    When sys.stderr is not descriptor 2 (a test's capture, a redirected stream object) it is left
    as it is; the native output is discarded all the same.
    """
    if not enabled:
        yield
        return
    try:
        python_on_fd2 = sys.stderr is not None and sys.stderr.fileno() == 2
    except (AttributeError, OSError, ValueError):    # io.UnsupportedOperation is both
        python_on_fd2 = False
    if sys.stderr is not None:
        sys.stderr.flush()
    saved = os.dup(2)
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 2)
    os.close(null)
    previous = sys.stderr
    if python_on_fd2:
        sys.stderr = io.TextIOWrapper(io.FileIO(saved, "w", closefd=False), encoding=previous.encoding,
                                      errors="backslashreplace", line_buffering=True)
    try:
        yield
    finally:
        if sys.stderr is not previous:
            try:
                sys.stderr.flush()
            finally:
                sys.stderr = previous
        os.dup2(saved, 2)
        os.close(saved)
