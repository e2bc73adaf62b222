"""Stand-ins for the live pipeline's heavy parts, so its own logic is tested on exact inputs.

The frames carry no pixels worth processing; `TableFrontEnd` says which are valid and
`TableEngine` emits rows of a given probability table with the online engine's contract (row j
final when feature j+delay arrives; a gap, an index jump or flush() emits the run's pending rows).
"""
from __future__ import annotations

import socket
import time

import numpy as np

from mespot.types import Frame, FrameFeatures


def free_tcp_endpoint() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{s.getsockname()[1]}"


class ListCapture:
    """CaptureThread's consumer side over a fixed list of frames, stamped when taken."""

    def __init__(self, n_frames: int, *, fail_at: int | None = None) -> None:
        self.n_frames = n_frames
        self.fail_at = fail_at
        self.dropped = 0
        self.stopped = False
        self._next = 0
        self._image = np.zeros((4, 4, 3), np.uint8)

    @property
    def finished(self) -> bool:
        return self._next >= self.n_frames

    def get(self, timeout=None):
        if self.finished:
            return None
        if self._next == self.fail_at:
            raise OSError("camera unplugged")
        i = self._next
        self._next += 1
        return Frame(index=i, image=self._image, t_monotonic=time.monotonic(), t_wall=time.time(),
                     t_source=i / 30.0)

    def stop(self, timeout: float = 5.0) -> None:
        self.stopped = True


class TableFrontEnd:
    def __init__(self, valid: np.ndarray) -> None:
        self.valid = np.asarray(valid, bool)

    def process(self, frame: Frame) -> FrameFeatures:
        ok = bool(self.valid[frame.index])
        return FrameFeatures(index=frame.index, features=np.zeros((12, 2), np.float32), valid=ok,
                             t_source=frame.t_source, t_monotonic=frame.t_monotonic,
                             roi_centres=np.zeros((12, 2), np.float32) if ok else None,
                             stage_ms={"landmarks": 1.0, "align": 0.5, "flow": 2.0, "roi": 0.25})


class TableEngine:
    def __init__(self, probs: np.ndarray, delay: int = 5) -> None:
        self.probs = probs
        self.delay = delay
        self._pending: list[int] = []

    def push(self, index, features, valid):
        out = []
        if self._pending and (not valid or index != self._pending[-1] + 1):
            out = self.flush()
        if valid:
            self._pending.append(index)
            if len(self._pending) > self.delay:
                i = self._pending.pop(0)
                out.append((i, self.probs[i]))
        return out

    def flush(self):
        out = [(i, self.probs[i]) for i in self._pending]
        self._pending = []
        return out
