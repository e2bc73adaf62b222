"""The seams of the live path: one small Protocol per stage (docs/architecture.md draws them).

A stage is anything with these methods; the implementations named below are the ones the pipeline
factory (mespot.stream.factory) builds, and the tests pass exact stand-ins (tests/live_fakes.py).
The front-end's inner stages have their own: `Tracker` (the slim base of mespot.stream.tracker),
`FlowMethod` (mespot.stream.flow) and `HeadMotion` (mespot.stream.headmotion), the last two chosen
by name in mespot.stream.strategies. Sources (mespot.stream.sources.Source) and sinks
(mespot.stream.sinks.Sink) are small abstract bases with shared behaviour.
"""
from __future__ import annotations

from typing import Protocol

import numpy as np

from mespot.types import Frame, FrameFeatures, Interval

Rows = list[tuple[int, np.ndarray]]        # (feature index, (8,) float32 probabilities), oldest first
# The front-end's timed stages, in order: FrameFeatures.stage_ms keys, and a part of the pipeline's.
FRONTEND_STAGES = ("landmarks", "align", "flow", "roi")


class FrameSupply(Protocol):
    """Frames in order from a capture thread (mespot.stream.capture.CaptureThread), gap frames
    (`Frame.image` None) included. An optional `abandon()` stops waiting for a read blocked in the
    source (LivePipeline.stop(wait_for_source=False) calls it when present)."""

    dropped: int

    def get(self, timeout: float | None = None) -> Frame | None: ...

    @property
    def finished(self) -> bool: ...

    def stop(self, timeout: float = 5.0) -> None: ...


class FeatureExtractor(Protocol):
    """Frame -> (12, 2) ROI features, once per frame in order (mespot.stream.frontend.FrontEnd).
    A gap frame gives invalid features; an optional `bridge_gaps` attribute (0 when absent) says how
    many gap frames in a row it may measure the motion across (`FrameFeatures.span`), and so how
    many the pipeline holds back."""

    def process(self, frame: Frame) -> FrameFeatures: ...

    def reset(self) -> None: ...

    def close(self) -> None: ...

    def config(self) -> dict: ...


class ScoreEngine(Protocol):
    """Features -> final probability rows, `right_context` indices later
    (mespot.engine.online.OnlineEngine). Every valid index pushed is emitted exactly once."""

    def push(self, index: int, features: np.ndarray, valid: bool) -> Rows: ...

    def flush(self) -> Rows: ...


class IntervalPicker(Protocol):
    """Probability rows -> intervals, each decided once (mespot.stream.peakpicker.CausalPeakPicker)."""

    def push(self, index: int, row: np.ndarray) -> list[Interval]: ...

    def end_run(self) -> list[Interval]: ...

    def flush(self) -> list[Interval]: ...
