"""`spot-live --lsl`: Lab Streaming Layer outlets, so a lab's LabRecorder file holds the spotted
intervals beside its other sensors, on one clock.

Per stream, a marker outlet (type `Markers`, one string channel, irregular rate) carries each
published interval as the same JSON object as the ZeroMQ `interval` message (docs/protocol.md),
plus `onset_lsl_time`. The sample's LSL timestamp is the capture time of the interval's ONSET
frame on the LSL clock, not the time it was sent: LabRecorder then places the expression where
it happened, although it is decided up to ~1 s later (docs/live.md, Latency).
With `probs`, a float32 outlet (type `Probabilities`, 8 channels in PROB_COLUMNS order, nominal
rate the config's fps) carries every valid frame's probabilities, stamped with that frame's capture
time; frames without features have no sample (their timestamps are absent, not NaN).

The clock: frames are stamped with time.monotonic() at capture (mespot.stream.sources). On Linux
that is CLOCK_MONOTONIC, which liblsl's local_clock() reads too (std::chrono::steady_clock), so the
offset between them is 0; `lsl_offset` measures it at start and uses exactly 0 when the
measurement cannot tell them apart (on another platform it uses the measured offset).

Pushing a sample costs microseconds, so the outlets run on the loop's thread, with no queue.
"""
from __future__ import annotations

import json
import time
from collections import OrderedDict

from mespot.engine.probs import PROB_COLUMNS
from mespot.stream.pipeline import FrameRecord, PipelineObserver
from mespot.types import Interval
from mespot.view import require

STAMPS_KEPT = 4096          # frames whose capture times are remembered (an onset is at most ~2 s back)


def lsl_offset(local_clock, tries: int = 50) -> float:
    """LSL clock minus time.monotonic(), in seconds: the tightest of `tries` bracketed readings, and
    exactly 0.0 when that reading's own bracket (monotonic before and after) contains 0."""
    width, offset = float("inf"), 0.0
    for _ in range(tries):
        t0 = time.monotonic()
        lsl = local_clock()
        t1 = time.monotonic()
        if t1 - t0 < width:
            width, offset = t1 - t0, lsl - 0.5 * (t0 + t1)
    return 0.0 if abs(offset) <= width else offset


class LslOutlets(PipelineObserver):
    """The LSL outlets of one stream (see the module docstring). `close()` after the run."""

    def __init__(self, stream: str, *, fps: float, probabilities: bool = False) -> None:
        pylsl = require("pylsl", "lsl", "--lsl")
        self.pylsl = pylsl
        self.stream = stream
        self.offset_s = lsl_offset(pylsl.local_clock)
        info = pylsl.StreamInfo(f"mespot {stream} intervals", "Markers", 1, pylsl.IRREGULAR_RATE,
                                pylsl.cf_string, f"mespot-{stream}-intervals")
        info.desc().append_child_value("content", "one JSON interval per sample (mespot docs/protocol.md)")
        info.desc().append_child_value("timestamp", "capture time of the onset frame")
        self.markers = pylsl.StreamOutlet(info)
        self.probs = None
        if probabilities:
            pinfo = pylsl.StreamInfo(f"mespot {stream} probabilities", "Probabilities", len(PROB_COLUMNS), fps,
                                     pylsl.cf_float32, f"mespot-{stream}-probabilities")
            channels = pinfo.desc().append_child("channels")
            for name in PROB_COLUMNS:
                channels.append_child("channel").append_child_value("label", name)
            self.probs = pylsl.StreamOutlet(pinfo)
        self._stamps: OrderedDict[int, float] = OrderedDict()
        self.markers_sent = 0
        self.samples_sent = 0
        self.unstamped = 0        # intervals whose onset capture time was no longer known (sent at now)

    def lsl_time(self, t_monotonic: float) -> float:
        return t_monotonic + self.offset_s

    def on_frame(self, record: FrameRecord) -> None:
        self._stamps[record.index] = record.t_monotonic
        while len(self._stamps) > STAMPS_KEPT:
            self._stamps.popitem(last=False)
        self._push_rows(record.probs)

    def on_flush(self, probs) -> None:
        self._push_rows(probs)

    def _push_rows(self, rows) -> None:
        if self.probs is None:
            return
        for index, row in rows:
            t = self._stamps.get(index)
            if t is not None:
                self.probs.push_sample([float(p) for p in row], self.lsl_time(t))
                self.samples_sent += 1

    def on_interval(self, interval: Interval, message: dict) -> None:
        t = self._stamps.get(interval.onset)
        if t is None:
            self.unstamped += 1
            stamp = self.pylsl.local_clock()
        else:
            stamp = self.lsl_time(t)
        self.markers.push_sample([json.dumps({**message, "onset_lsl_time": stamp})], stamp)
        self.markers_sent += 1

    def describe(self) -> str:
        extra = f", {self.samples_sent} probability samples" if self.probs is not None else ""
        return f"LSL: {self.markers_sent} interval markers{extra} on stream 'mespot {self.stream} intervals'"

    def close(self) -> None:
        self.markers = None          # pylsl closes an outlet when it is collected
        self.probs = None
