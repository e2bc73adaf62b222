"""The online window engine: per-frame features in, per-index probabilities out at a fixed delay.

AUW-GCN's receptive field is index t-5..t+5 (`right_context` r = 5 each side). Probabilities for
index j are emitted when feature j+r arrives, from one model call on the last `window` features of
the current valid run. That output equals one offline pass over the whole run because the window
either starts at the run's first index (the same zero padding as offline) or reaches r indices
left of j (padding never reaches j). A gap (valid False), a jump in index, or flush() ends the run:
its last r indices are emitted with the zero right padding an offline pass over that run uses, and
the next valid feature starts a new run exactly as a new video. Cost: one model call per pushed
valid feature (plus one per run end), so the smallest exact window, 2r+1 = 11, is the cheapest.

numpy only: the live path imports this without torch.
"""
from __future__ import annotations

import numpy as np

from mespot.engine.probs import PROB_COLUMNS, logits_to_probs
from mespot.featurefile import valid_runs
from mespot.engine.runtime.base import N_ROIS, Runtime

Emitted = list[tuple[int, np.ndarray]]   # (feature index, (8,) float32 row in PROB_COLUMNS order)


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
        self.model_calls = 0

    @property
    def pending(self) -> int:
        """Indices of the current run pushed but not yet emitted (at most `delay`)."""
        return min(self._count, self.delay)

    def push(self, index: int, features: np.ndarray, valid: bool) -> Emitted:
        """Add feature `index`; return the (index, probs) rows that became final, oldest first."""
        index = int(index)
        if self._last_seen is not None and index <= self._last_seen:
            raise ValueError(f"feature index {index} not after the previous one {self._last_seen}")
        emitted: Emitted = []
        if self._count and (not valid or index != self._last_valid + 1):
            emitted = self.flush()
        self._last_seen = index
        if not valid:
            return emitted
        self._append(np.asarray(features, dtype=np.float32))
        self._last_valid = index
        if self._count > self.delay:
            emitted += self._emit(1)
        return emitted

    def flush(self) -> Emitted:
        """End the current run: emit its pending indices with offline end padding, then restart."""
        emitted = self._emit(self.pending, at_end=True) if self._count else []
        self._count = 0
        self._last_valid = None
        return emitted

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

    def _emit(self, n_rows: int, *, at_end: bool = False) -> Emitted:
        """One model call; emit `n_rows` indices ending `delay` before the newest, or at the newest
        when the run ends (then the model's own zero padding stands for the missing future)."""
        if n_rows == 0:
            return []
        x = self._latest()
        logits = self.runtime.infer(x)
        self.model_calls += 1
        lag = 0 if at_end else self.delay
        stop = len(x) - lag
        probs = logits_to_probs(logits[:, stop - n_rows:stop])
        first_index = self._last_valid - lag - n_rows + 1
        return [(first_index + k, probs[k]) for k in range(n_rows)]


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
