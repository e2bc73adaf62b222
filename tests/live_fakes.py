"""Stand-ins for the live pipeline's heavy parts, so its own logic is tested on exact inputs, and
the probability tables they play (random, or with planted expressions).

The frames carry no pixels worth processing; `TableFrontEnd` says which are valid and
`TableEngine` emits rows of a given probability table with the online engine's contract (row j
final when feature j+delay arrives; a gap, an index jump or flush() emits the run's pending rows).
"""
from __future__ import annotations

import time

import numpy as np

from mespot.config import KINDS
from mespot.engine.probs import kind_columns
from mespot.types import Frame, FrameFeatures


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
        return FrameFeatures(index=frame.index, features=np.full((12, 2), frame.index, np.float32), valid=ok,
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


def random_probs(rng: np.random.Generator, t: int) -> np.ndarray:
    """Rows shaped like real output: softmax start/end/none per kind, apex in [0, 1]."""
    out = np.empty((t, 8), np.float32)
    for kind in KINDS:
        c_start, c_end, c_none, c_apex = kind_columns(kind)
        logits = rng.normal(0, 1.5, (t, 3))
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        out[:, [c_start, c_end, c_none]] = e / e.sum(axis=1, keepdims=True)
        # Smooth apex track so peaks have width, as a conv net's output does.
        raw = np.convolve(rng.normal(0, 2, t + 6), np.ones(7) / 7, mode="valid")[:t]
        out[:, c_apex] = 1 / (1 + np.exp(-(raw * 3)))
    return out


def planted_probs(t: int, plants: list[tuple[str, int, int, int]], noise: float,
                   rng: np.random.Generator) -> np.ndarray:
    """Quiet background with start/apex/end bumps at the planted (kind, onset, apex, offset)."""
    out = np.zeros((t, 8), np.float32)
    for kind in KINDS:
        c_start, c_end, c_none, _ = kind_columns(kind)
        out[:, c_start] = out[:, c_end] = 0.05
        out[:, c_none] = 0.9
    idx = np.arange(t)
    for kind, onset, apex, offset in plants:
        c_start, c_end, c_none, c_apex = kind_columns(kind)
        width = 1.5 if kind == "micro" else 4.0
        out[:, c_apex] = np.maximum(out[:, c_apex], 0.95 * np.exp(-((idx - apex) / width) ** 2))
        for col, at in ((c_start, onset), (c_end, offset)):
            bump = 0.8 * np.exp(-((idx - at) / 1.2) ** 2)
            out[:, col] = np.maximum(out[:, col], bump)
    out += rng.uniform(0, noise, out.shape).astype(np.float32)
    for kind in KINDS:          # renormalise start/end/none so they stay a distribution
        cols = list(kind_columns(kind)[:3])
        out[:, cols] /= out[:, cols].sum(axis=1, keepdims=True)
    return np.clip(out, 0, 1)
