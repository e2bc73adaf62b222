"""The causal peak-picker: per-index probability rows in, expression intervals out, each decided once.

The online form of the reference decoding (reference-model.md §6) with a suppression rule that can be decided
causally (docs/live.md explains the choice). Per kind, with R = end_range[1], L = start_range[1]
and r = the peak radius (default R):

1. candidate apex j: P_apex(j) > apex_threshold and j is the peak of P_apex over its run-local
   neighbourhood [j-r, j+r] (strictly above every value on the left, at least every value on the
   right, so a plateau yields its first index);
2. the interval of `mespot.intervals.propose_at_apex` (start/end search, validity, length,
   score), searched inside the candidate's valid run only;
3. kept if score > score_threshold and its IoU (reference rule, end - start lengths) with every
   interval of the same kind already kept is <= 0.5; candidates are taken in apex order.

Every step for apex j reads rows j-max(L, r) .. j+R only and depends on earlier apexes only, so the
decision is final when row j+R arrives (or when the run ends), which is R + model_delay feature
indices after the apex. `decode_offline_same_rule` runs the same rule over whole sequences with an
independent implementation; the tests hold the two equal.

Rows are the (8,) float32 probabilities of `mespot.engine.probs` (PROB_COLUMNS); indices are
feature indices (= frame numbers, see mespot.types). numpy only.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from mespot.config import KINDS, Config, DecodingConfig
from mespot.engine.probs import PROB_COLUMNS, kind_columns
from mespot.featurefile import valid_runs
from mespot.intervals import iou, propose_at_apex
from mespot.types import Interval

SUPPRESS_IOU = 0.5        # the reference NMS's overlap limit (reference IoU rule)


def peak_radii(config: Config, peak_radius: int | None = None) -> dict[str, int]:
    """The P_apex neighbourhood radius per kind; None means each kind's end_range[1].

    A radius above end_range[1] would need rows beyond the decision point, so it is refused.
    """
    radii = {}
    for kind in KINDS:
        right = config.decoding(kind).end_range[1]
        radius = right if peak_radius is None else int(peak_radius)
        if not 0 <= radius <= right:
            raise ValueError(f"peak_radius {radius} for {kind} must be in 0..end_range[1] = {right} "
                             "(a larger one would delay decisions past the bound)")
        radii[kind] = radius
    return radii


@dataclass
class _KindState:
    kind: str
    dec: DecodingConfig
    radius: int
    next_apex: int = 0                          # first index not yet decided in the current run
    kept: list[Interval] = field(default_factory=list)   # recent emissions that can still overlap

    @property
    def lookback(self) -> int:
        return max(self.dec.start_range[1], self.radius)


class CausalPeakPicker:
    """Feed rows in index order with push(); call end_run() at a gap and flush() at the end.

    push() returns the intervals decided by that row (feature indices, micro before macro). An index
    that does not follow the previous one starts a new run (the old one is ended first), but the
    caller should call end_run() as soon as it knows a run has ended, or pending candidates wait
    for the next row. Intervals never span a run boundary.
    """

    def __init__(self, config: Config, *, peak_radius: int | None = None) -> None:
        self.config = config
        radii = peak_radii(config, peak_radius)
        self._kinds = [_KindState(k, config.decoding(k), radii[k]) for k in KINDS]
        # Rows kept: enough left context for the oldest undecided apex plus its right search.
        span = max(s.lookback + s.dec.end_range[1] + 1 for s in self._kinds)
        self._buf = np.empty((2 * span, len(PROB_COLUMNS)), np.float32)
        self._base = 0            # feature index of _buf[0]
        self._n = 0               # rows held
        self._run_start: int | None = None
        self._last: int | None = None
        self.emitted = 0

    @property
    def in_run(self) -> bool:
        return self._run_start is not None

    def push(self, index: int, row: np.ndarray) -> list[Interval]:
        """Add the probabilities of feature `index`; return the intervals that became final."""
        index = int(index)
        row = np.asarray(row, dtype=np.float32)
        if row.shape != (len(PROB_COLUMNS),):
            raise ValueError(f"probability row must have shape ({len(PROB_COLUMNS)},), got {row.shape}")
        if not np.isfinite(row).all():
            raise ValueError(f"probability row for index {index} is not finite: {row.tolist()}")
        out: list[Interval] = []
        if self._last is not None and index <= self._last:
            raise ValueError(f"index {index} not after the previous row {self._last}")
        if self.in_run and index != self._last + 1:
            out = self.end_run()
        if not self.in_run:
            self._run_start = self._base = index
            self._n = 0
            for state in self._kinds:
                state.next_apex = index
                state.kept.clear()
        self._append(row)
        self._last = index
        for state in self._kinds:
            out += self._decide_through(state, index - state.dec.end_range[1], hi=index + 1)
        return out

    def end_run(self) -> list[Interval]:
        """The run has ended (gap or end of stream): decide every pending candidate now."""
        if not self.in_run:
            return []
        out: list[Interval] = []
        for state in self._kinds:
            out += self._decide_through(state, self._last, hi=self._last + 1)
        self._run_start = None
        return out

    def flush(self) -> list[Interval]:
        """End of stream: same as end_run(); the picker can be reused afterwards."""
        out = self.end_run()
        self._last = None
        return out

    def _append(self, row: np.ndarray) -> None:
        if self._n == len(self._buf):
            oldest_needed = min(s.next_apex - s.lookback for s in self._kinds)
            drop = max(0, min(oldest_needed - self._base, self._n))
            self._buf[: self._n - drop] = self._buf[drop: self._n]
            self._base += drop
            self._n -= drop
            if self._n == len(self._buf):
                raise RuntimeError("peak-picker buffer full; this is a bug (rows not released)")
        self._buf[self._n] = row
        self._n += 1

    def _decide_through(self, state: _KindState, last_apex: int, hi: int) -> list[Interval]:
        """Decide apexes next_apex..last_apex of the current run, whose rows end at hi - 1."""
        out = []
        for apex in range(state.next_apex, last_apex + 1):
            interval = self._decide(state, apex, hi)
            if interval is not None:
                state.kept.append(interval)
                self.emitted += 1
                out.append(interval)
        state.next_apex = max(state.next_apex, last_apex + 1)
        return out

    def _decide(self, state: _KindState, apex: int, hi: int) -> Interval | None:
        rows = self._buf[: self._n]                     # rows[k] is feature index base + k
        lo = self._run_start - self._base
        if lo < 0:
            # Rows before the run start were released only if no search can reach them.
            lo = 0
            if apex - state.lookback < self._base:
                raise RuntimeError(f"apex {apex} needs rows released from the buffer; this is a bug")
        at = apex - self._base
        apex_col = kind_columns(state.kind)[3]
        p = rows[at, apex_col]
        # compared in float32, as the offline decoders' array comparisons do (a threshold such as 0.8
        # is not exact in float32, and a float32 row equal to it must fail in both)
        if not p > np.float32(state.dec.apex_threshold):
            return None
        left = rows[max(lo, at - state.radius): at, apex_col]
        right = rows[at + 1: min(at + state.radius, hi - 1 - self._base) + 1, apex_col]
        if (left >= p).any() or (right > p).any():
            return None
        found = propose_at_apex(rows, at, state.kind, state.dec, lo=lo, hi=hi - self._base)
        if found is None or not found.score > state.dec.score_threshold:
            return None
        interval = Interval(state.kind, found.onset + self._base, apex, found.offset + self._base, found.score)
        # Kept intervals ending at or before this apex's earliest onset cannot overlap it or later ones.
        earliest_onset = apex - state.dec.start_range[1]
        state.kept = [k for k in state.kept if k.offset > earliest_onset]
        for k in state.kept:
            if iou((k.onset, k.offset), (interval.onset, interval.offset), "reference") > SUPPRESS_IOU:
                return None
        return interval


def _peak_mask(apex_prob: np.ndarray, radius: int) -> np.ndarray:
    """True where apex_prob[j] > every value in [j-radius, j) and >= every value in (j, j+radius]."""
    n = len(apex_prob)
    if radius == 0 or n == 0:
        return np.ones(n, bool)
    pad = np.full(radius, -np.inf)
    padded = np.concatenate([pad, apex_prob.astype(np.float64), pad])
    windows = np.lib.stride_tricks.sliding_window_view(padded, radius)
    left_max = windows[:n]                    # window k covers original [k-radius, k)
    right_max = windows[radius + 1: radius + 1 + n]   # covers (k, k+radius]
    return (apex_prob > left_max.max(axis=1)) & (apex_prob >= right_max.max(axis=1))


def decode_offline_same_rule(probs: np.ndarray, config: Config, valid: np.ndarray | None = None,
                             *, peak_radius: int | None = None) -> list[Interval]:
    """The picker's rule over whole sequences: (T, 8) probabilities -> intervals sorted by (apex, kind).

    `valid` (T,) bool marks the rows to use (default: rows that are all finite, so the NaN rows of
    `offline_probs` count as gaps); each valid run is decoded on its own.
    """
    probs = np.asarray(probs, dtype=np.float32)
    if probs.ndim != 2 or probs.shape[1] != len(PROB_COLUMNS):
        raise ValueError(f"expected probabilities of shape (T, {len(PROB_COLUMNS)}), got {probs.shape}")
    valid = np.isfinite(probs).all(axis=1) if valid is None else np.asarray(valid, dtype=bool)
    if valid.shape != probs.shape[:1]:
        raise ValueError(f"valid has shape {valid.shape}, probabilities {probs.shape}")
    radii = peak_radii(config, peak_radius)
    out: list[Interval] = []
    for kind in KINDS:
        dec = config.decoding(kind)
        apex_col = kind_columns(kind)[3]
        for start, stop in valid_runs(valid):
            apex_prob = probs[start:stop, apex_col]
            candidates = np.flatnonzero((apex_prob > dec.apex_threshold) & _peak_mask(apex_prob, radii[kind]))
            kept: list[Interval] = []
            for offset in candidates:
                found = propose_at_apex(probs, start + int(offset), kind, dec, lo=start, hi=stop)
                if found is None or not found.score > dec.score_threshold:
                    continue
                if all(iou((k.onset, k.offset), (found.onset, found.offset), "reference") <= SUPPRESS_IOU
                       for k in kept):
                    kept.append(found)
            out += kept
    return sorted(out, key=lambda i: (i.apex, KINDS.index(i.kind)))
