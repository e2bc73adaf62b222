"""From whole videos and their annotations to training segments and input statistics.

Each video is split into its valid runs (mespot.featurefile.valid_runs); every run is labelled and
segmented on its own, so no window, target or context ever spans a gap in the features. Annotation
frame numbers are feature indices (mespot.types); the reference's repairs come from
`mespot.data.annotations.training_interval`.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from mespot.config import TrainConfig
from mespot.data.annotations import AnnotationSet, training_interval
from mespot.data.videos import VideoFeatures
from mespot.featurefile import valid_runs
from mespot.train.targets import Segments, TrainInterval, build_targets, run_intervals, segment_run


@dataclass
class BuildReport:
    """What building the training set dropped, so it can be shown to the user."""

    intervals_used: int = 0
    skipped: list[str] = field(default_factory=list)   # one line per annotation not used, with why


def video_intervals(video: VideoFeatures, annotations: AnnotationSet,
                    report: BuildReport | None = None) -> list[TrainInterval]:
    """The repaired training intervals of one video, in its feature indices."""
    out = []
    for a in annotations.for_video(video.video):
        repaired = training_interval(a, len(video))
        why = None
        if repaired is None:
            why = "skipped by the reference's repair rules"
        else:
            start, apex, end = repaired
            if start < 0 or start > end:
                why = f"repaired interval {start}..{end} is empty or negative"
        if why is not None:
            if report is not None:
                report.skipped.append(f"{a.video} {a.kind} {a.onset}/{a.apex}/{a.offset}: {why}")
            continue
        out.append(TrainInterval(start, apex, end, a.kind))
    if report is not None:
        report.intervals_used += len(out)
    return out


def video_segments(video: VideoFeatures, intervals: list[TrainInterval], train: TrainConfig) -> Segments:
    """Training windows of one video: each valid run labelled and cut separately."""
    parts = []
    for lo, hi in valid_runs(video.valid):
        inside, partial = run_intervals(intervals, lo, hi)
        targets = build_targets(hi - lo, inside, micro_normal_range=train.micro_normal_range,
                                macro_normal_range=train.macro_normal_range)
        weight = np.ones(hi - lo, np.float32)
        for a, b in partial:          # an expression cut by a gap is neither positive nor negative
            weight[a: b + 1] = 0.0
        parts.append(segment_run(video.features[lo:hi], targets, weight, length=train.segment_length,
                                 context=train.context, keep_neutral=train.use_neutral_segments))
    return Segments.concat(parts, train.segment_length, train.context)


def build_segments(videos: list[VideoFeatures], annotations: AnnotationSet, train: TrainConfig,
                   report: BuildReport | None = None) -> Segments:
    """All training windows of `videos` (annotations of other videos are ignored)."""
    parts = [video_segments(v, video_intervals(v, annotations, report), train) for v in videos]
    return Segments.concat(parts, train.segment_length, train.context)


def normalisation_stats(videos: list[VideoFeatures]) -> tuple[tuple[float, float], tuple[float, float]]:
    """Per-channel (x, y) mean and std over the valid frames and all 12 ROIs of `videos`.

    reference-model.md §2.4: the reference's fixed constants do not fit its own features; these are recomputed on
    the training set and stored in the model's buffers (std floored at 1e-6).
    """
    rows = [v.features[v.valid].reshape(-1, 2).astype(np.float64) for v in videos]
    rows = [r for r in rows if len(r)]
    if not rows:
        raise ValueError("no valid feature frames to compute the input normalisation from")
    data = np.concatenate(rows)
    mean, std = data.mean(axis=0), np.maximum(data.std(axis=0), 1e-6)
    return (float(mean[0]), float(mean[1])), (float(std[0]), float(std[1]))
