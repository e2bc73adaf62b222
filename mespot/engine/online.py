"""The online window engine: per-frame features in, per-index probabilities out at a fixed delay.

AUW-GCN's receptive field is index t-5..t+5 (`right_context` r = 5 each side). Probabilities for
index j are emitted when feature j+r arrives, from one model call on the last `window` features of
the current valid run. That output equals one offline pass over the whole run because the window
either starts at the run's first index (the same zero padding as offline) or reaches r indices
left of j (padding never reaches j). A gap (valid False), a jump in index, or flush() ends the run:
its last r indices are emitted with the zero right padding an offline pass over that run uses, and
the next valid feature starts a new run exactly as a new video. Cost: one model call per pushed
valid feature (plus one per run end), so the smallest exact window, 2r+1 = 11, is the cheapest.

This is the per-stream engine of the live loop, and the scalar reference of the vectorised
many-stream engine (mespot.engine.multistream.MultiStreamEngine), whose results equal separate
push() calls; several OnlineEngines may share one runtime.

numpy only: the live path imports this without torch.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mespot.engine.probs import PROB_COLUMNS, logits_to_probs
from mespot.engine.runtime.base import N_ROIS, Runtime
from mespot.featurefile import valid_runs

Emitted = list[tuple[int, np.ndarray]]   # (feature index, (8,) float32 row in PROB_COLUMNS order)


@dataclass(frozen=True)
class _Step:
    """One model call's worth of work: run `window`, emit rows stop-n_rows..stop-1 as first_index..."""

    window: np.ndarray          # (T, 12, 2); a view of the ring, valid until the engine's next append
    stop: int
    n_rows: int
    first_index: int


class OnlineEngine:
    """Stateful per-stream engine over one runtime (which may be shared by several engines).

    push() must be called with strictly increasing indices; every index ever pushed as valid is
    emitted exactly once, in order, either by a later push() or by flush().
    """

    def __init__(self, runtime: Runtime, *, window: int | None = None) -> None:
        self.runtime = runtime
        self.delay = runtime.right_context
        self.window = int(runtime.window if window is None else window)
        if self.window < 2 * self.delay + 1:
            raise ValueError(f"window {self.window} must be >= 2*right_context+1 = {2 * self.delay + 1}")
        # Each feature is stored twice (slot s and s+window) so the latest `window` features are
        # always the contiguous slice ring[head:head+window]; no shifting, allocated once.
        self._ring = np.zeros((2 * self.window, N_ROIS, 2), np.float32)
        self._count = 0            # features of the current run pushed so far
        self._last_valid = None    # index of the newest valid feature of the current run
        self._last_seen = None     # newest index pushed, valid or not
        self.model_calls = 0       # windows evaluated

    @property
    def pending(self) -> int:
        """Indices of the current run pushed but not yet emitted (at most `delay`)."""
        return min(self._count, self.delay)

    def push(self, index: int, features: np.ndarray, valid: bool) -> Emitted:
        """Add feature `index`; return the (index, probs) rows that became final, oldest first."""
        return _evaluate(self.runtime, self._stage_push(index, features, valid))

    def flush(self) -> Emitted:
        """End the current run: emit its pending indices with offline end padding, then restart."""
        return _evaluate(self.runtime, self._stage_flush())

    def _stage_push(self, index: int, features: np.ndarray, valid: bool) -> list[_Step]:
        index = int(index)
        if self._last_seen is not None and index <= self._last_seen:
            raise ValueError(f"feature index {index} not after the previous one {self._last_seen}")
        steps = []
        if self._count and (not valid or index != self._last_valid + 1):
            steps = self._stage_flush()
        self._last_seen = index
        if not valid:
            return steps
        self._append(np.asarray(features, dtype=np.float32))
        self._last_valid = index
        if self._count > self.delay:
            steps.append(self._step(n_rows=1, lag=self.delay))
        return steps

    def _stage_flush(self) -> list[_Step]:
        steps = []
        if self._count:
            step = self._step(n_rows=self.pending, lag=0)
            # the ring is reused by the next run, so the end-of-run window must be copied
            steps.append(_Step(step.window.copy(), step.stop, step.n_rows, step.first_index))
        self._count = 0
        self._last_valid = None
        return steps

    def _append(self, features: np.ndarray) -> None:
        if features.shape != (N_ROIS, 2):
            raise ValueError(f"features must be ({N_ROIS}, 2), got {features.shape}")
        slot = self._count % self.window
        self._ring[slot] = features
        self._ring[slot + self.window] = features
        self._count += 1

    def _latest(self) -> np.ndarray:
        """The current run's newest min(count, window) features, oldest first (a view)."""
        if self._count <= self.window:
            return self._ring[:self._count]
        head = self._count % self.window
        return self._ring[head:head + self.window]

    def _step(self, n_rows: int, lag: int) -> _Step:
        """Emit `n_rows` indices ending `lag` before the newest: lag = delay while streaming, 0 at
        the end of a run (the model's own zero padding then stands for the missing future)."""
        x = self._latest()
        self.model_calls += 1
        return _Step(x, len(x) - lag, n_rows, self._last_valid - lag - n_rows + 1)


def _evaluate(runtime: Runtime, steps: list[_Step]) -> Emitted:
    """Run each staged window (one model call each) and return its rows, oldest first."""
    rows: Emitted = []
    for step in steps:
        logits = runtime.infer(step.window[None])[0]
        probs = logits_to_probs(logits[:, step.stop - step.n_rows:step.stop])
        rows.extend((step.first_index + r, probs[r]) for r in range(step.n_rows))
    return rows


def offline_probs(runtime: Runtime, features: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """The offline reference: one runtime.infer per valid run, as a separate video each.

    features (T, 12, 2), valid (T,) -> (T, 8) float32 in PROB_COLUMNS order, NaN at invalid indices.
    """
    features = np.asarray(features, dtype=np.float32)
    valid = np.asarray(valid, dtype=bool)
    if features.ndim != 3 or features.shape[1:] != (N_ROIS, 2) or valid.shape != features.shape[:1]:
        raise ValueError(f"features (T, 12, 2) and valid (T,) expected, got {features.shape} and {valid.shape}")
    out = np.full((len(features), len(PROB_COLUMNS)), np.nan, np.float32)
    for start, stop in valid_runs(valid):
        out[start:stop] = logits_to_probs(runtime.infer(features[start:stop]))
    return out
