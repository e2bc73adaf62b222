"""A non-learned spotter, as a row beside the model: how far does plain motion get?

Each ROI's features are per-frame flow (crop pixels), so their running sum is the ROI's position
relative to the start of its valid run. Its deviation from the median position over the previous
`neutral_s` seconds (the face's own recent neutral level; an expression is shorter than half of
that) is large while a region is displaced and back to zero after. The spotter reports every run of
frames whose largest ROI deviation exceeds `threshold_px`: onset and offset are the run's ends,
apex its largest deviation, micro when it lasts at most `micro_max_s`. Causal (the median looks
back only); the threshold is chosen on validation videos (docs/model-card.md), never on a test set.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from mespot.featurefile import valid_runs
from mespot.types import Interval


@dataclass(frozen=True)
class MotionBaseline:
    """Thresholds of the non-learned spotter (crop pixels, seconds)."""

    threshold_px: float = 1.0      # best pooled F1 on the validation renders of 0.8-2.5 px (docs/model-card.md)
    neutral_s: float = 5.0
    micro_max_s: float = 0.5
    min_frames: int = 3
    max_s: float = 4.0

    def deviation(self, features: np.ndarray, fps: float) -> np.ndarray:
        """(T,) largest ROI displacement from its recent neutral position, over one valid run."""
        position = np.cumsum(np.asarray(features, np.float64), axis=0)            # (T, 12, 2)
        if len(position) < 2:
            return np.zeros(len(position))
        n = max(2, int(round(self.neutral_s * fps)))
        padded = np.concatenate([np.repeat(position[:1], n - 1, axis=0), position[:-1]], axis=0)
        history = sliding_window_view(padded, n, axis=0)                          # (T-1, 12, 2, n)
        neutral = np.concatenate([position[:1], np.median(history, axis=-1)])     # previous n frames
        return np.linalg.norm(position - neutral, axis=-1).max(axis=1)

    def spot(self, features: np.ndarray, valid: np.ndarray, fps: float) -> list[Interval]:
        """Intervals of one video's (T, 12, 2) features; each valid run is spotted on its own."""
        out: list[Interval] = []
        for lo, hi in valid_runs(np.asarray(valid, bool)):
            dev = self.deviation(features[lo:hi], fps)
            above = np.concatenate([[False], dev > self.threshold_px, [False]])
            edges = np.flatnonzero(np.diff(above.astype(np.int8)))
            for start, stop in zip(edges[::2], edges[1::2]):
                length = stop - start
                if length < self.min_frames or length > self.max_s * fps:
                    continue
                apex = int(start + np.argmax(dev[start:stop]))
                kind = "micro" if length <= self.micro_max_s * fps else "macro"
                out.append(Interval(kind, lo + int(start), lo + apex, lo + int(stop) - 1))
        return sorted(out, key=lambda i: (i.apex, i.kind))
