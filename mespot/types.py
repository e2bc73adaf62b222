"""Frozen records passed between stages. Frame numbers are 0-based source frame indices.

Feature index convention (used everywhere in this project, unlike the reference's +1 shift):
feature k is the flow from frame k-1 to frame k, attached to frame k. Feature 0 of a track has no
predecessor and is invalid. Annotation frames of the project's own datasets use the same indices.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

N_ROIS = 12
KINDS = ("micro", "macro")


def check_kind(kind: str, owner: str) -> None:
    """The one check every interval record makes of its kind."""
    if kind not in KINDS:
        raise ValueError(f"{owner}.kind must be micro or macro, got {kind!r}")


@dataclass(frozen=True)
class Frame:
    """One captured image. `image` is BGR uint8 (H, W, 3), owned by the receiver.

    `image` is None for a gap: a frame was due at this position but the source has no usable image
    for it (unreadable, or a live source delivering a copy of the previous frame). A gap is never
    filled with another frame's image; the front-end makes it an invalid feature.
    """

    index: int                 # frame number within the source (after resampling)
    image: np.ndarray | None
    t_monotonic: float         # time.monotonic() at capture, seconds
    t_wall: float              # time.time() at capture, seconds
    t_source: float            # position in the source, seconds (file time or capture time)

    @property
    def is_gap(self) -> bool:
        return self.image is None


@dataclass(frozen=True)
class FrameFeatures:
    """The model input for one frame: 12 ROI flow vectors and whether they can be trusted."""

    index: int
    features: np.ndarray       # (12, 2) float32
    valid: bool
    t_source: float
    t_monotonic: float
    roi_centres: np.ndarray | None = None     # (12, 2) image pixels
    stage_ms: dict[str, float] = field(default_factory=dict)
    # Frame periods the features cover: > 1 when the front-end bridged span-1 gap frames just before
    # this one; `features` is then the mean motion per frame period over the span.
    span: int = 1
    # (468, 2) image pixels: the tracker's face-mesh points, for viewers (None: no face). A fresh
    # array per frame that nobody writes after `process`, handed over by reference.
    mesh: np.ndarray | None = None


@dataclass(frozen=True)
class Interval:
    """A spotted (or annotated) expression: inclusive frame range with its apex. Every interval
    record of the project (Annotation, Prediction, TrainInterval) names its ends onset and offset."""

    kind: str                  # "micro" | "macro"
    onset: int
    apex: int
    offset: int
    score: float = 1.0

    def __post_init__(self) -> None:
        check_kind(self.kind, "Interval")
        if self.offset < self.onset:
            raise ValueError(f"Interval offset {self.offset} < onset {self.onset}")

    @property
    def type_idx(self) -> int:
        """The annotation CSVs' code: 1 = macro, 2 = micro."""
        return 2 if self.kind == "micro" else 1
