"""Per-index training targets and fixed-length training segments (reference-model.md §3.1/3.2, with its bugs fixed).

Everything here is numpy and works in the indices of one contiguous run of valid features. Kinds
are rows: 0 = micro, 1 = macro. Start/end classes: 0 = start, 1 = end, 2 = none (the model's
channel order). Fixes of reference-model.md §10.9, each named where it is applied:
  FIX-RIGHT-BOUND  dilation is bounded by the real sequence length (reference: 256 inside a 270 window);
  FIX-APEX-LEFT    the apex neighbourhood may reach index 0 (reference: strict `> 0`);
  FIX-END-OVER-START  where start and end neighbourhoods overlap, the nearer flag wins, ties go to
                   start (reference: end written last overwrites start);
  FIX-APEX-MAX     overlapping apex Gaussians keep the maximum (reference: the later write wins).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

from mespot.types import check_kind

KIND_ROW = {"micro": 0, "macro": 1}
START, END, NONE = 0, 1, 2
APEX_SPREAD = 32.0          # apex soft target exp(-j^2 / 32): a Gaussian with sigma 4, peak 1


@dataclass(frozen=True)
class TrainInterval:
    """One expression in run-local indices, already repaired for training (inclusive range)."""

    onset: int
    apex: int
    offset: int
    kind: str

    def __post_init__(self) -> None:
        check_kind(self.kind, "TrainInterval")
        if not self.onset <= self.offset:
            raise ValueError(f"TrainInterval onset {self.onset} > offset {self.offset}")


@dataclass
class Targets:
    """Targets for T indices: start_end (2, T) int64, apex (2, T) float32, action (2, T) float32."""

    start_end: np.ndarray
    apex: np.ndarray
    action: np.ndarray


@dataclass
class Segments:
    """N training windows of L central indices with C context indices on each side.

    features (N, L+2C, 12, 2) float32 raw (zero outside the run); start_end (N, 2, L) int64;
    apex, action (N, 2, L) float32; weight (N, L) float32: 1 where the loss counts the index,
    0 past the end of the run or over an expression only partly inside the run.
    """

    features: np.ndarray
    start_end: np.ndarray
    apex: np.ndarray
    action: np.ndarray
    weight: np.ndarray

    def __len__(self) -> int:
        return len(self.features)

    @staticmethod
    def empty(length: int, context: int) -> "Segments":
        return Segments(np.zeros((0, length + 2 * context, 12, 2), np.float32),
                        np.zeros((0, 2, length), np.int64), np.zeros((0, 2, length), np.float32),
                        np.zeros((0, 2, length), np.float32), np.zeros((0, length), np.float32))

    @staticmethod
    def concat(parts: Sequence["Segments"], length: int, context: int) -> "Segments":
        parts = [p for p in parts if len(p)]
        if not parts:
            return Segments.empty(length, context)
        return Segments(*(np.concatenate([getattr(p, f) for p in parts])
                          for f in ("features", "start_end", "apex", "action", "weight")))


def _nearest_distance(length: int, positions: list[int]) -> np.ndarray:
    idx = np.arange(length)
    if not positions:
        return np.full(length, np.iinfo(np.int64).max, dtype=np.int64)
    return np.abs(idx[:, None] - np.asarray(positions)[None, :]).min(axis=1)


def build_targets(length: int, intervals: Iterable[TrainInterval], *,
                  micro_normal_range: int, macro_normal_range: int) -> Targets:
    """Targets for a run of `length` indices from expressions fully inside it."""
    ranges = {"micro": micro_normal_range, "macro": macro_normal_range}
    start_end = np.full((2, length), NONE, dtype=np.int64)
    apex = np.zeros((2, length), dtype=np.float32)
    action = np.zeros((2, length), dtype=np.float32)
    starts: dict[str, list[int]] = {"micro": [], "macro": []}
    ends: dict[str, list[int]] = {"micro": [], "macro": []}
    for iv in intervals:
        if not 0 <= iv.onset <= iv.offset < length:
            raise ValueError(f"interval {iv} is not inside the run of length {length}")
        row, r = KIND_ROW[iv.kind], ranges[iv.kind]
        starts[iv.kind].append(iv.onset)
        ends[iv.kind].append(iv.offset)
        action[row, iv.onset: iv.offset + 1] = 1.0
        # FIX-APEX-LEFT: j runs over -r..r and only [0, length) bounds it (reference: index > 0).
        # FIX-RIGHT-BOUND: the right bound is the run length, not a hard-coded 256.
        for j in range(-r, r + 1):
            k = iv.apex + j
            if 0 <= k < length:
                # FIX-APEX-MAX: two nearby apexes keep the larger soft target, whatever their order.
                apex[row, k] = max(apex[row, k], np.exp(-(j * j) / APEX_SPREAD))
    for kind, row in KIND_ROW.items():
        r = ranges[kind]
        d_start = _nearest_distance(length, starts[kind])
        d_end = _nearest_distance(length, ends[kind])
        # FIX-END-OVER-START: each index takes the class of its nearest boundary flag within r
        # (ties -> start), instead of the end neighbourhood overwriting the start one.
        start_end[row, (d_start <= r) & (d_start <= d_end)] = START
        start_end[row, (d_end <= r) & (d_end < d_start)] = END
    return Targets(start_end, apex, action)


def segment_run(features: np.ndarray, targets: Targets, weight: np.ndarray, *, length: int,
                context: int, keep_neutral: bool) -> Segments:
    """Cut one run into windows of `length` (stride `length`) plus `context` each side (reference-model.md §3.1).

    Positions outside the run are zero features and weight 0. A window is kept when its labels,
    context included, hold any action index, or always when `keep_neutral` is set.
    """
    t = len(features)
    n_seg = -(-t // length)
    padded = np.zeros((n_seg * length + 2 * context, 12, 2), np.float32)
    padded[context: context + t] = features
    action_any = targets.action.max(axis=0)
    out_f, out_se, out_apex, out_act, out_w = [], [], [], [], []
    for s in range(n_seg):
        a, b = s * length, (s + 1) * length
        if not keep_neutral and not action_any[max(a - context, 0): b + context].any():
            continue
        stop = min(b, t)
        se = np.full((2, length), NONE, np.int64)
        ap = np.zeros((2, length), np.float32)
        ac = np.zeros((2, length), np.float32)
        w = np.zeros(length, np.float32)
        se[:, : stop - a] = targets.start_end[:, a:stop]
        ap[:, : stop - a] = targets.apex[:, a:stop]
        ac[:, : stop - a] = targets.action[:, a:stop]
        w[: stop - a] = weight[a:stop]
        out_f.append(padded[a: b + 2 * context])
        out_se.append(se)
        out_apex.append(ap)
        out_act.append(ac)
        out_w.append(w)
    if not out_f:
        return Segments.empty(length, context)
    return Segments(np.stack(out_f), np.stack(out_se), np.stack(out_apex), np.stack(out_act), np.stack(out_w))


def run_intervals(intervals: Iterable[TrainInterval], run_start: int, run_stop: int
                  ) -> tuple[list[TrainInterval], list[tuple[int, int]]]:
    """Split video-level intervals for the run [run_start, run_stop).

    Returns the intervals fully inside, shifted to run-local indices, and the run-local inclusive
    ranges of those only partly inside (their labels would be cut, so the loss ignores them).
    """
    inside, partial = [], []
    for iv in intervals:
        if run_start <= iv.onset and iv.offset < run_stop:
            inside.append(TrainInterval(iv.onset - run_start, iv.apex - run_start,
                                        iv.offset - run_start, iv.kind))
        elif iv.onset < run_stop and iv.offset >= run_start:
            partial.append((max(iv.onset, run_start) - run_start, min(iv.offset, run_stop - 1) - run_start))
    return inside, partial
