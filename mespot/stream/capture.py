"""The capture thread: reads a `Source` on its own thread and hands frames over a bounded queue.

Why a thread: a camera driver keeps only a few buffers; a consumer that reads synchronously and
falls behind gets ever older frames and latency grows without bound. Here reading never waits for
the consumer.

Policies
- `drop_oldest` (default for live sources): when the queue is full the OLDEST queued frame is
  discarded and counted in `.dropped`, so the consumer always gets the newest frames.
- `block` (default for files): back-pressure, the reader waits for room, nothing is lost.

An exception raised inside the source is not swallowed: it is re-raised in the consumer by the
next `get()` or by iteration.
"""
from __future__ import annotations

import queue
import threading
import time
from typing import Iterator

from mespot.stream.sources import Source
from mespot.types import Frame

POLICIES = ("drop_oldest", "block")
_END = object()


class CaptureThread:
    """Run `source` on a daemon thread; `.get(timeout)` / iteration on the consumer side."""

    def __init__(self, source: Source, *, policy: str | None = None, maxsize: int | None = None,
                 start: bool = True) -> None:
        if policy is None:
            policy = "drop_oldest" if source.is_live else "block"
        if policy not in POLICIES:
            raise ValueError(f"unknown capture policy {policy!r}; valid: {', '.join(POLICIES)}")
        if maxsize is None:
            maxsize = 2 if policy == "drop_oldest" else 8
        if maxsize < 1:
            raise ValueError(f"maxsize must be >= 1, got {maxsize}")
        self.source = source
        self.policy = policy
        self.dropped = 0
        self._queue: queue.Queue = queue.Queue(maxsize=maxsize)
        self._stop = threading.Event()
        self._abandon = threading.Event()
        self._ended = False
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="mespot-capture", daemon=True)
        if start:
            self._thread.start()

    def start(self) -> None:
        """Start reading (idempotent). A capture built with start=False starts at the first `get`,
        so a camera built ahead of a slow start-up (a subscriber wait) drops nothing meanwhile."""
        if not self._thread.is_alive() and self._thread.ident is None:
            self._thread.start()

    # -- producer side -------------------------------------------------------------------
    def _put(self, item) -> bool:
        """Queue one item under the policy; False when stopped while waiting."""
        if self.policy == "block":
            while not self._stop.is_set():
                try:
                    self._queue.put(item, timeout=0.05)
                    return True
                except queue.Full:
                    continue
            return False
        while True:
            try:
                self._queue.put_nowait(item)
                return True
            except queue.Full:
                try:
                    self._queue.get_nowait()
                    self.dropped += 1
                except queue.Empty:
                    pass

    def _run(self) -> None:
        try:
            for frame in self.source:
                if self._stop.is_set() or not self._put(frame):
                    break
        except BaseException as exc:  # handed to the consumer, never lost
            self._error = exc
        finally:
            self.source.close()
            # The end marker must get through. Under back-pressure it waits its turn like a frame
            # (nothing is lost); under drop_oldest, or once stopped, it makes room if needed.
            if self.policy == "block" and self._put(_END):
                return
            while True:
                try:
                    self._queue.put_nowait(_END)
                    break
                except queue.Full:
                    try:
                        self._queue.get_nowait()
                        if not self._stop.is_set():
                            self.dropped += 1
                    except queue.Empty:
                        pass

    # -- consumer side -------------------------------------------------------------------
    @property
    def finished(self) -> bool:
        """True once the source has ended and every frame before the end has been taken."""
        return self._ended

    def get(self, timeout: float | None = None) -> Frame | None:
        """The next frame; None on timeout or at the end of the stream (see `.finished`)."""
        if self._ended:
            self._raise_pending()
            return None
        if self._thread.ident is None and not self._stop.is_set():
            self.start()
        try:
            item = self._queue.get(timeout=timeout)
        except queue.Empty:
            return None
        if item is _END:
            self._ended = True
            self._raise_pending()
            return None
        return item

    def _raise_pending(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def __iter__(self) -> Iterator[Frame]:
        while True:
            frame = self.get()
            if frame is None:
                return
            yield frame

    def stop(self, timeout: float = 5.0) -> None:
        """Stop reading, close the source and wait (up to `timeout`, or until `abandon()`) for the
        thread to finish. A device or network read can block for its own timeout (5 s)."""
        self._stop.set()
        self.source.close()
        deadline = time.monotonic() + timeout
        while self._thread.is_alive() and not self._abandon.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self._thread.join(min(left, 0.05))

    def abandon(self) -> None:
        """Stop, and stop waiting for the reading thread from any thread (a second Ctrl-C). It is a
        daemon thread: a read still blocked in the device ends with the process."""
        self._abandon.set()
        self._stop.set()
        self.source.close()

    def __enter__(self) -> "CaptureThread":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
