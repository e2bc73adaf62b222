"""The live loop: capture thread -> front-end -> online engine -> causal peak-picker -> sinks.

Capture runs on its own thread (mespot.stream.capture); everything else runs on the thread that
calls `run()`, one frame at a time, so the per-frame stage times below add up to the frame's cost.
Per frame an `on_frame(FrameRecord)` goes to every observer with the stage times in milliseconds:

  capture     from the source's stamp (taken right after the frame was read/decoded) to the moment
              this loop took it from the queue: queue wait (decode itself happens before the stamp)
  landmarks, align, flow, roi   the front-end's own timings (0 where a stage did not run)
  inference   OnlineEngine.push (model calls for the rows that became final)
  peakpicker  CausalPeakPicker on those rows
  publish     building and sending interval / score / status messages to every sink
  end_to_end  from the source's stamp to the end of publish

Gap frames (no image: mespot.types.Frame) are held back, up to the front-end's `bridge_gaps`, until
the next frame shows whether the front-end measured the motion across them (`FrameFeatures.span`).
If it did, the model gets that mean motion for the gap's indices too and the run goes on; their
`score` entries still say valid false, since those frames had no image. If not, they are pushed
as invalid and end the run.

`stop()` (any thread) or the end of the source ends the run cleanly: the engine and picker are
flushed, pending intervals published, then a final `status` with state `ended`. An exception
publishes a `status` with state `error`, tells every sink (on_error) and is re-raised. Sinks are
closed on both paths.
"""
from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Iterable

import numpy as np

from mespot.config import KINDS, Config
from mespot.engine.probs import PROB_COLUMNS
from mespot.stream.messages import FrameStamp, interval_message
from mespot.stream.sinks import MessageBus
from mespot.stream.stages import FRONTEND_STAGES, FeatureExtractor, FrameSupply, IntervalPicker, ScoreEngine
from mespot.types import Frame, FrameFeatures, Interval

STAGES = ("capture", *FRONTEND_STAGES, "inference", "peakpicker", "publish", "end_to_end")
STATUS_WINDOW = 300          # frames the status percentiles are computed over (10 s at 30 fps)
SUMMARY_WINDOW = 20000       # frames kept for the end-of-run percentiles
HEALTHY_GAP_S = 2.0          # no frame for longer than this: the source is reported unhealthy


@dataclass(frozen=True)
class FrameRecord:
    """What happened to one frame. stage_ms has exactly the keys of STAGES; `features` is what the
    front-end made of it ((12, 2) float32, zeros where not valid; owned by the record), so an
    observer (the accuracy bench, a viewer) needs nothing wrapped around the front-end.

    For viewers (mespot.view), by reference and read-only, never copied by the loop: `image` the
    frame's BGR image (None for a gap), `mesh` the face-mesh points and `roi_centres` the 12 ROI
    centres, both in image pixels (None without a face)."""

    index: int
    valid: bool
    features: np.ndarray
    face_present: bool
    t_monotonic: float
    stage_ms: dict[str, float]
    probs: tuple[tuple[int, np.ndarray], ...]     # (feature index, (8,) row) decided at this frame
    intervals: tuple[Interval, ...]                # intervals published at this frame
    image: np.ndarray | None = None
    mesh: np.ndarray | None = None
    roi_centres: np.ndarray | None = None


class PipelineObserver:
    """Receives what the pipeline does, on its thread; override what you need (all are no-ops)."""

    def on_frame(self, record: FrameRecord) -> None:
        pass

    def on_interval(self, interval: Interval, message: dict) -> None:
        pass

    def on_status(self, message: dict) -> None:
        pass

    def on_flush(self, probs: tuple[tuple[int, np.ndarray], ...]) -> None:
        """The rows the engine emitted at the end of the stream, which belong to no frame: with
        every FrameRecord.probs, each valid index's row exactly once. Before its intervals."""


@dataclass
class RunSummary:
    state: str                                   # ended | error
    frames: int = 0
    valid_frames: int = 0
    seconds: float = 0.0
    intervals: list[Interval] = field(default_factory=list)
    dropped: dict[str, int] = field(default_factory=dict)
    messages: dict[str, int] = field(default_factory=dict)
    latency_ms: dict[str, dict[str, float]] = field(default_factory=dict)
    error: str | None = None

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


class StageLog:
    """Stage times (ms) of the newest `size` frames: one row per frame, columns in STAGES order.

    A preallocated ring, so a frame costs one row write, and the percentiles of all stages come
    from one numpy call (the status message once a second was the loop's slowest frame when it
    sorted nine deques of Python floats).
    """

    def __init__(self, size: int) -> None:
        self._rows = np.zeros((size, len(STAGES)))
        self._count = 0

    def add(self, stage_ms: dict[str, float]) -> None:
        self._rows[self._count % len(self._rows)] = [stage_ms[s] for s in STAGES]
        self._count += 1

    def percentiles(self, last: int | None = None) -> dict[str, dict[str, float]]:
        """Per stage p50/p95/p99/max in ms over the newest `last` frames (all kept when None);
        an empty dict per stage before the first frame."""
        size = len(self._rows)
        n = min(self._count, size if last is None else min(last, size))
        if n == 0:
            return {s: {} for s in STAGES}
        end = self._count % size
        rows = self._rows[end - n:end] if n <= end else np.concatenate([self._rows[end - n:], self._rows[:end]])
        q = np.percentile(rows, [50, 95, 99], axis=0)
        top = rows.max(axis=0)
        return {s: {"p50": round(float(q[0, i]), 3), "p95": round(float(q[1, i]), 3),
                    "p99": round(float(q[2, i]), 3), "max": round(float(top[i]), 3)}
                for i, s in enumerate(STAGES)}


class LivePipeline:
    """One stream. Components are passed in (built by mespot.stream.factory, or by tests).

    Each is a stage of mespot.stream.stages: capture a FrameSupply, frontend a FeatureExtractor,
    engine a ScoreEngine, picker an IntervalPicker; bus: the MessageBus of the sinks.
    `source` (optional) provides `.stats`, `.is_live` and `describe()` for the status message.
    """

    def __init__(self, capture: FrameSupply, frontend: FeatureExtractor, engine: ScoreEngine,
                 picker: IntervalPicker, bus: MessageBus, *,
                 config: Config, source=None, score_rate_hz: float = 10.0,
                 status_interval_s: float = 1.0, observers: Iterable[PipelineObserver] = ()) -> None:
        if score_rate_hz < 0 or status_interval_s <= 0:
            raise ValueError(f"score_rate_hz {score_rate_hz} must be >= 0, status_interval_s "
                             f"{status_interval_s} > 0")
        self.capture, self.frontend, self.engine, self.picker, self.bus = capture, frontend, engine, picker, bus
        self.config = config
        self.source = source
        self.score_period_s = 1.0 / score_rate_hz if score_rate_hz > 0 else None
        self.status_interval_s = status_interval_s
        self.observers = list(observers)
        self._stop = threading.Event()
        # How far back an interval can reach from the frame that decides it, plus margin.
        reach = max(config.decoding(k).start_range[1] + config.decision_delay(k) for k in KINDS)
        self._stamp_keep = reach + 16
        self._stamps: dict[int, FrameStamp] = {}
        self._stamp_order: deque[int] = deque()
        self._stage_log = StageLog(SUMMARY_WINDOW)
        self._scores: list[tuple[int, bool, np.ndarray | None]] = []
        self._intervals: list[Interval] = []
        self._frames = 0
        self._valid_frames = 0
        self._last_index: int | None = None
        self._held: list[int] = []            # gap frames waiting for the next frame
        self._bridged: set[int] = set()       # indices fed the bridged motion (published invalid)
        self._bridge_gaps = int(getattr(frontend, "bridge_gaps", 0))
        self._face_present = False
        self._started = 0.0
        self._last_frame_at: float | None = None
        self._last_status_at = 0.0
        self._frames_at_status = 0
        self._last_scores_at = 0.0
        self.summary: RunSummary | None = None

    def stop(self, *, wait_for_source: bool = True) -> None:
        """Ask the loop to finish (thread-safe); pending intervals are still decided and published,
        then the final status. `wait_for_source=False` also stops waiting for a capture thread
        blocked in a read (its `abandon()`), so the run ends at once, final status included."""
        self._stop.set()
        if not wait_for_source and hasattr(self.capture, "abandon"):
            self.capture.abandon()

    # -- the loop ---------------------------------------------------------------------------------
    def run(self) -> RunSummary:
        self._started = self._last_status_at = self._last_scores_at = time.monotonic()
        summary = RunSummary(state="ended")
        try:
            self._publish_status("running")
            while not self._stop.is_set():
                frame = self.capture.get(timeout=0.05)
                if frame is None:
                    if self.capture.finished:
                        break
                    self._status_if_due(time.monotonic())
                    continue
                self._process(frame)
            rows = self.engine.flush()
            for observer in self.observers:
                observer.on_flush(tuple(rows))
            if self.score_period_s is not None:
                self._add_scores(rows)
            self._publish_intervals(self._decide(rows, end_run=False) + self.picker.flush())
            self._publish_scores()
            self._publish_status("ended")
        except BaseException as exc:
            summary.state, summary.error = "error", f"{type(exc).__name__}: {exc}"
            try:
                self._publish_status("error", error=summary.error)
            finally:
                self.bus.error(exc)
            raise
        finally:
            self.capture.stop()
            self.bus.end()
            self._fill_summary(summary)
            self.summary = summary
        return summary

    def _process(self, frame: Frame) -> None:
        t_taken = time.monotonic()
        self._remember(frame)
        features: FrameFeatures = self.frontend.process(frame)
        t_frontend = time.monotonic()
        jumped = self._last_index is not None and features.index != self._last_index + 1
        rows, cut = self._feed(features, frame.is_gap and not jumped)
        t_inference = time.monotonic()
        intervals = self._decide(rows, end_run=cut or jumped)
        t_picker = time.monotonic()
        self._last_index = features.index
        self._frames += 1
        self._valid_frames += bool(features.valid)
        self._face_present = bool(features.valid) or (
            features.roi_centres is not None and bool(np.isfinite(features.roi_centres).all()))
        if not frame.is_gap:          # a gap is the source failing: it must not look healthy
            self._last_frame_at = t_taken
        if self.score_period_s is not None:
            if not features.valid:
                self._scores.append((features.index, False, None))
            self._add_scores(rows)
        self._publish_intervals(intervals)
        now = time.monotonic()
        if self.score_period_s is not None and now - self._last_scores_at >= self.score_period_s:
            self._publish_scores()
            self._last_scores_at = now
        self._status_if_due(now)
        t_done = time.monotonic()
        stage_ms = {"capture": (t_taken - frame.t_monotonic) * 1000.0}
        for name in FRONTEND_STAGES:
            stage_ms[name] = float(features.stage_ms.get(name, 0.0))
        stage_ms["inference"] = (t_inference - t_frontend) * 1000.0
        stage_ms["peakpicker"] = (t_picker - t_inference) * 1000.0
        stage_ms["publish"] = (t_done - t_picker) * 1000.0
        stage_ms["end_to_end"] = (t_done - frame.t_monotonic) * 1000.0
        self._stage_log.add(stage_ms)
        record = FrameRecord(features.index, bool(features.valid), features.features, self._face_present,
                             frame.t_monotonic, stage_ms, tuple(rows), tuple(intervals),
                             image=frame.image, mesh=features.mesh, roi_centres=features.roi_centres)
        for observer in self.observers:
            observer.on_frame(record)

    def _feed(self, features: FrameFeatures, gap: bool) -> tuple[list, bool]:
        """Push to the engine; returns its rows and whether the valid run was cut here."""
        if gap and len(self._held) < self._bridge_gaps:
            self._held.append(features.index)
            return [], False
        held, self._held = self._held, []
        rows = []
        bridged = bool(held) and features.valid and features.span == len(held) + 1
        for index in held:
            if bridged and self.score_period_s is not None:
                self._bridged.add(index)
            rows += self.engine.push(index, features.features, bridged)
        rows += self.engine.push(features.index, features.features, features.valid)
        return rows, not features.valid or (bool(held) and not bridged)

    def _add_scores(self, rows) -> None:
        for index, row in rows:
            if index in self._bridged:
                self._bridged.discard(index)      # already listed as invalid when it arrived
            else:
                self._scores.append((index, True, row))

    def _decide(self, rows, *, end_run: bool) -> list[Interval]:
        """Feed the engine's rows to the picker; end the run (decide what is pending) at a gap."""
        out: list[Interval] = []
        for index, row in rows:
            out += self.picker.push(index, row)
        if end_run:
            out += self.picker.end_run()
        return out

    # -- messages ---------------------------------------------------------------------------------
    def _remember(self, frame: Frame) -> None:
        self._stamps[frame.index] = FrameStamp(frame.t_wall, frame.t_monotonic, frame.t_source)
        self._stamp_order.append(frame.index)
        while len(self._stamp_order) > self._stamp_keep:
            self._stamps.pop(self._stamp_order.popleft(), None)

    def _publish_intervals(self, intervals: list[Interval]) -> None:
        for interval in intervals:
            message = interval_message(
                interval, self._stamps.get(interval.onset), self._stamps.get(interval.apex),
                self._stamps.get(interval.offset), emitted_wall=time.time(),
                emitted_monotonic=time.monotonic())
            self.bus.publish("interval", message)
            self._intervals.append(interval)
            for observer in self.observers:
                observer.on_interval(interval, message)

    def _publish_scores(self) -> None:
        if not self._scores:
            return
        entries = sorted(self._scores, key=lambda e: e[0])
        self._scores = []
        self.bus.publish("score", {
            "columns": list(PROB_COLUMNS),
            "frames": [int(i) for i, _, _ in entries],
            "valid": [v for _, v, _ in entries],
            "probs": [None if row is None else [round(float(p), 5) for p in row] for _, _, row in entries],
        })

    def _status_if_due(self, now: float) -> None:
        if now - self._last_status_at >= self.status_interval_s:
            self._publish_status("running", now=now)

    def _publish_status(self, state: str, *, error: str | None = None, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        elapsed = now - self._last_status_at
        fps = (self._frames - self._frames_at_status) / elapsed if elapsed > 0 else 0.0
        if state != "running":
            run_s = now - self._started
            fps = self._frames / run_s if run_s > 0 else 0.0
        self._last_status_at, self._frames_at_status = now, self._frames
        self.bus.poll()
        message = {
            "state": state,
            "time": round(time.time(), 6),
            "uptime_s": round(now - self._started, 3),
            "frames": self._frames,
            "valid_frames": self._valid_frames,
            "fps": round(fps, 3),
            "latency_ms": self._stage_log.percentiles(last=STATUS_WINDOW),
            "dropped": {"capture": int(self.capture.dropped), "publish": int(self.bus.dropped)},
            "face_present": self._face_present,
            "intervals": {k: sum(i.kind == k for i in self._intervals) for k in KINDS},
            "source": self._source_health(now, state),
            "error": error,
        }
        self.bus.publish("status", message)
        for observer in self.observers:
            observer.on_status(message)

    def _source_health(self, now: float, state: str) -> dict:
        info: dict = {}
        if self.source is not None:
            info["description"] = self.source.describe() if hasattr(self.source, "describe") else str(self.source)
            info["live"] = bool(getattr(self.source, "is_live", False))
            info.update({k: int(v) for k, v in getattr(self.source, "stats", {}).items()})
        last = self._last_frame_at if self._last_frame_at is not None else self._started
        info["last_frame_age_s"] = round(now - last, 3)
        info["healthy"] = state == "running" and now - last <= HEALTHY_GAP_S
        return info

    def _fill_summary(self, summary: RunSummary) -> None:
        summary.frames = self._frames
        summary.valid_frames = self._valid_frames
        summary.seconds = time.monotonic() - self._started
        summary.intervals = list(self._intervals)
        summary.dropped = {"capture": int(self.capture.dropped), "publish": int(self.bus.dropped)}
        summary.messages = self.bus.counts()
        summary.latency_ms = self._stage_log.percentiles()
