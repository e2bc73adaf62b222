"""The capture thread: drop-oldest for live sources, back-pressure for files, errors handed over."""
from __future__ import annotations

import time

import numpy as np
import pytest

from mespot.stream.capture import CaptureThread
from mespot.stream.sources import Source
from mespot.types import Frame


class FakeCamera(Source):
    """A camera-like live source: `n` frames (None: endless) every `period_s` seconds."""

    is_live = True

    def __init__(self, n: int | None, period_s: float = 0.002, fail_after: int | None = None) -> None:
        super().__init__()
        self.n, self.period_s, self.fail_after = n, period_s, fail_after
        self.fps = 1.0 / period_s if period_s else 1000.0
        self.produced = 0

    def _frames(self):
        i = 0
        while (self.n is None or i < self.n) and not self._closed.is_set():
            if self.fail_after is not None and i == self.fail_after:
                raise OSError("device unplugged")
            time.sleep(self.period_s)
            img = np.full((4, 4, 3), i % 256, np.uint8)
            now = time.monotonic()
            self.produced += 1
            yield Frame(index=i, image=img, t_monotonic=now, t_wall=time.time(), t_source=i * self.period_s)
            i += 1


class FakeFile(FakeCamera):
    is_live = False


def test_live_source_drops_the_oldest_and_counts_it():
    cam = FakeCamera(120, period_s=0.001)
    capture = CaptureThread(cam, maxsize=2)
    assert capture.policy == "drop_oldest"
    received = []
    for frame in capture:
        received.append(frame.index)
        time.sleep(0.01)                        # a consumer ten times slower than the camera
    assert capture.finished
    assert capture.dropped > 0
    assert len(received) + capture.dropped == cam.produced == 120
    assert received == sorted(received) and len(set(received)) == len(received)
    assert received[-1] == 119                   # the newest frame always gets through


def test_file_source_applies_back_pressure_and_loses_nothing():
    src = FakeFile(40, period_s=0.0)
    capture = CaptureThread(src, maxsize=2)
    assert capture.policy == "block"
    received = []
    for frame in capture:
        received.append(frame.index)
        time.sleep(0.003)
    assert received == list(range(40)) and capture.dropped == 0


def test_source_error_reaches_the_consumer():
    capture = CaptureThread(FakeCamera(None, fail_after=3), policy="block")
    got = []
    with pytest.raises(OSError, match="unplugged"):
        for frame in capture:
            got.append(frame.index)
    assert got == [0, 1, 2]


def test_get_times_out_with_none_and_stop_ends_an_endless_source():
    cam = FakeCamera(None, period_s=0.05)
    capture = CaptureThread(cam)
    assert capture.get(timeout=0.001) is None and not capture.finished
    assert capture.get(timeout=2.0) is not None
    start = time.monotonic()
    capture.stop()
    assert time.monotonic() - start < 1.0
    assert not capture._thread.is_alive()


def test_bad_policy_is_refused():
    with pytest.raises(ValueError, match="drop_oldest, block"):
        CaptureThread(FakeFile(1), policy="newest")
