"""Resampling a frame stream to the model's rate by timestamp, one frame at a time.

The model was trained at a fixed rate (30 fps for CAS(ME)^2-like and live configs, 25 for SAMM), so
a source at another rate, or one whose frames arrive irregularly (variable-rate files, cameras that
drop frames in low light), is mapped onto a regular grid of ticks tau_n = t_first + n / target_fps.
Each tick takes the source frame nearest to it in time (its `t_source`), never a frame chosen by
counting at the nominal fps. Faster sources lose frames (counted as `dropped`); slower ones repeat
a frame for a tick that falls between two source frames (counted as `repeated`; that tick's flow is
zero). Ticks inside a hole longer than `max_gap_s` get no frame at all, so the output indices jump
there and the front-end restarts its flow state instead of computing flow across the hole.

A tick is decided as soon as a frame at or after tau_n - tolerance has arrived (tolerance = a
quarter of the target period), so a source already at the target rate passes through with no
added latency.
"""
from __future__ import annotations

from dataclasses import replace

from mespot.types import Frame


class TimestampResampler:
    """Per-frame state machine: `push(frame)` returns the frames for the ticks it decided.

    Output frames keep the source image and timestamps; only `index` changes (tick number n).
    """

    def __init__(self, target_fps: float, *, max_gap_s: float = 0.25) -> None:
        if target_fps <= 0:
            raise ValueError(f"target_fps must be positive, got {target_fps}")
        self.target_fps = float(target_fps)
        self.max_gap_s = float(max_gap_s)
        self._tolerance = 0.25 / self.target_fps
        self.reset()

    def reset(self) -> None:
        self._t_first: float | None = None
        self._prev: Frame | None = None
        self._next_tick = 0
        self._prev_used = False
        self.dropped = 0        # source frames never assigned to a tick
        self.repeated = 0       # ticks that reuse the frame of the previous tick
        self.skipped_ticks = 0  # ticks with no frame because of a hole in the source

    def _tick_time(self, n: int) -> float:
        return self._t_first + n / self.target_fps

    def push(self, frame: Frame) -> list[Frame]:
        out: list[Frame] = []
        t = frame.t_source
        if self._t_first is None:
            self._t_first = t
        prev = self._prev
        if prev is not None and t <= prev.t_source:
            self.dropped += 1          # a timestamp that goes backwards or repeats: unusable
            return out
        if prev is not None and t - prev.t_source > self.max_gap_s:
            if not self._prev_used:
                self.dropped += 1
            # A hole: no tick strictly inside it gets a frame; restart the grid after it.
            while self._tick_time(self._next_tick) < t - self._tolerance:
                self._next_tick += 1
                self.skipped_ticks += 1
            prev = None
        last_assigned: Frame | None = None
        while self._tick_time(self._next_tick) <= t + self._tolerance:
            tau = self._tick_time(self._next_tick)
            use_prev = prev is not None and abs(prev.t_source - tau) < abs(t - tau)
            chosen = prev if use_prev else frame
            if chosen is last_assigned or (use_prev and self._prev_used):
                self.repeated += 1
            if use_prev:
                self._prev_used = True
            out.append(replace(chosen, index=self._next_tick))
            last_assigned = chosen
            self._next_tick += 1
        if prev is not None and not self._prev_used:
            self.dropped += 1
        self._prev = frame
        self._prev_used = last_assigned is frame
        return out

    def finish(self) -> list[Frame]:
        """At the end of the stream: the ticks still pending whose nearest frame is the last one
        (closer than half a target period)."""
        out: list[Frame] = []
        last = self._prev
        if last is None:
            return out
        while self._tick_time(self._next_tick) < last.t_source + 0.5 / self.target_fps - 1e-9:
            if self._prev_used:
                self.repeated += 1
            out.append(replace(last, index=self._next_tick))
            self._prev_used = True
            self._next_tick += 1
        return out
