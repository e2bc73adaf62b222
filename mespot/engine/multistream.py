"""One online engine for many streams at once: the engine a server runs when the features of many
cameras meet in one place.

Per stream it does exactly what mespot.engine.online.OnlineEngine does (same runs, same windows,
same emission at a fixed delay; see that module for why the output equals one offline pass per
valid run), but every step is a handful of array operations over all the streams that step, never
a Python loop over streams:

- all rings live in one array, (capacity, window, 12, 2): feature k of a stream's current run sits
  at ring slot k % window, so appending is one scattered write and a window is one gather;
- a step stages every stream's work with masks: runs ended by a gap (valid False), a jump in index
  or flush() emit their last `delay` indices with the offline end padding; every other valid
  feature emits the index `delay` before it;
- windows of equal length go to the runtime as one batch (at steady state every window is
  `window` long: one model call a step); emitted rows are picked from the logits by array indexing.

Streams join (`join`), leave (`leave`, which flushes), lose their face (valid False), jump ahead in
index and flush at any step; a stream not listed in a step simply waits. Slots of streams that left
are reused by later joins, with fresh state; the arrays grow when more streams join than fit.

Equality criterion (tested, tests/test_multistream.py): the rows equal separate OnlineEngine.push()
and flush() calls on the same runtime BITWISE, on ONNX Runtime and torch on CPU. That holds because
the window contents and the row picking are identical and these runtimes give a window the same
logits whatever batch it sits in; a runtime that does not (a GPU library choosing another kernel for
another batch size) differs by its own batch-to-batch rounding, which scripts/gpu_checks.py measures.

numpy only: a server using it imports no torch (with the ONNX runtime).
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from mespot.engine.probs import logit_rows_to_probs
from mespot.engine.runtime.base import N_ROIS, Runtime

NO_INDEX = np.iinfo(np.int64).min        # "no index yet" in last_seen / last_valid


@dataclass(frozen=True)
class Rows:
    """Probabilities that became final in one call: row r is index[r] of stream[r].

    Ordered by the streams' order in the call, oldest index first within a stream."""

    stream: np.ndarray      # (R,) int64 stream slots
    index: np.ndarray       # (R,) int64 feature indices
    probs: np.ndarray       # (R, 8) float32, PROB_COLUMNS order

    def __len__(self) -> int:
        return len(self.index)

    def for_stream(self, stream: int) -> list[tuple[int, np.ndarray]]:
        """One stream's rows as OnlineEngine.push() returns them: [(index, (8,) probs), ...]."""
        picked = np.flatnonzero(self.stream == stream)
        return [(int(self.index[r]), self.probs[r]) for r in picked]


def _empty_rows() -> tuple[Rows, np.ndarray]:
    return Rows(np.empty(0, np.int64), np.empty(0, np.int64), np.empty((0, 8), np.float32)), np.empty(0, np.int64)


class StreamTable(ABC):
    """The per-stream bookkeeping every many-stream engine shares: slots, runs, the checks and the
    order of a step. How features are kept and rows computed is the subclass's: `_new_state`,
    `_store`, `_emit_steps` and `_emit_ends` (array operations over the given streams)."""

    def __init__(self, delay: int, capacity: int) -> None:
        self.delay = int(delay)
        self._state: dict[str, np.ndarray] = {}
        self._allocate(max(1, int(capacity)))

    # -- what a subclass provides ----------------------------------------------------------------------
    @abstractmethod
    def _new_state(self, capacity: int) -> dict[str, np.ndarray]:
        """Its per-slot arrays (first axis: slot), zero-filled."""
        ...

    @abstractmethod
    def _store(self, s: np.ndarray, features: np.ndarray) -> None:
        """Keep feature number self._count[s] (before the count moves on) of each stream's run."""
        ...

    @abstractmethod
    def _emit_steps(self, s: np.ndarray, pos: np.ndarray) -> tuple[Rows, np.ndarray]:
        """While runs continue (count > delay): each stream's index `delay` before its newest."""
        ...

    @abstractmethod
    def _emit_ends(self, s: np.ndarray, pos: np.ndarray) -> tuple[Rows, np.ndarray]:
        """At a run's end (count > 0): its last min(count, delay) indices, with the offline zero padding."""
        ...

    # -- streams ------------------------------------------------------------------------------------
    def _allocate(self, capacity: int) -> None:
        old = {k: v for k, v in self._state.items()}
        self._state = {"count": np.zeros(capacity, np.int64),          # features of the current run so far
                       "last_valid": np.full(capacity, NO_INDEX, np.int64),
                       "last_seen": np.full(capacity, NO_INDEX, np.int64),
                       "active": np.zeros(capacity, bool), **self._new_state(capacity)}
        for k, was in old.items():
            self._state[k][:len(was)] = was
        self._count, self._last_valid = self._state["count"], self._state["last_valid"]
        self._last_seen, self._active = self._state["last_seen"], self._state["active"]

    @property
    def capacity(self) -> int:
        return len(self._active)

    @property
    def streams(self) -> np.ndarray:
        """Slots of the joined streams, ascending."""
        return np.flatnonzero(self._active)

    def pending(self, streams) -> np.ndarray:
        """Per stream, indices of its current run pushed but not yet emitted (at most `delay`)."""
        return np.minimum(self._count[self._check(streams)], self.delay)

    def join(self, n: int = 1) -> np.ndarray:
        """Add n streams; returns their slots (int64). Each starts like a new OnlineEngine."""
        free = np.flatnonzero(~self._active)
        if len(free) < n:
            self._allocate(max(2 * self.capacity, self.capacity + n - len(free)))
            free = np.flatnonzero(~self._active)
        slots = free[:n].copy()
        self._count[slots] = 0
        self._last_valid[slots] = NO_INDEX
        self._last_seen[slots] = NO_INDEX
        self._active[slots] = True
        return slots

    def leave(self, streams) -> Rows:
        """Flush these streams (their pending rows are returned) and free their slots."""
        s = self._check(streams)
        rows = self._flush(s)
        self._active[s] = False
        return rows

    def flush(self, streams=None) -> Rows:
        """End these streams' current runs (default: every joined stream), as OnlineEngine.flush()."""
        return self._flush(self.streams if streams is None else self._check(streams))

    # -- one step -----------------------------------------------------------------------------------
    def push(self, streams, indices, features, valid=None) -> Rows:
        """One feature for each listed stream: indices (M,) strictly increasing per stream, features
        (M, 12, 2), valid (M,) bool (default all True). Returns the rows that became final."""
        s = self._check(streams)
        m = len(s)
        idx = np.asarray(indices, np.int64).reshape(-1)
        feats = np.asarray(features, np.float32)
        ok = np.ones(m, bool) if valid is None else np.asarray(valid, bool).reshape(-1)
        if idx.shape != (m,) or ok.shape != (m,) or feats.shape != (m, N_ROIS, 2):
            raise ValueError(f"{m} streams need indices ({m},), features ({m}, {N_ROIS}, 2) and valid ({m},); "
                             f"got {idx.shape}, {feats.shape}, {ok.shape}")
        seen = self._last_seen[s]
        late = (seen != NO_INDEX) & (idx <= seen)
        if late.any():
            k = int(np.argmax(late))
            raise ValueError(f"stream {s[k]}: feature index {idx[k]} not after the previous one {seen[k]}")
        pos = np.arange(m)
        ends = (self._count[s] > 0) & (~ok | (idx != self._last_valid[s] + 1))
        ended, ended_pos = self._flush(s[ends], pos[ends], sort=False)   # before the new features are kept
        self._last_seen[s] = idx
        v = s[ok]
        self._store(v, feats[ok])
        self._count[v] += 1
        self._last_valid[v] = idx[ok]
        ready = self._count[v] > self.delay
        stepped, stepped_pos = self._emit_steps(v[ready], pos[ok][ready])
        return _ordered([ended, stepped], [ended_pos, stepped_pos])

    # -- internals ----------------------------------------------------------------------------------
    def _check(self, streams) -> np.ndarray:
        s = np.asarray(streams, np.int64).reshape(-1)
        outside = (s < 0) | (s >= self.capacity)
        if outside.any() or not self._active[s].all():
            bad = s[outside | ~self._active[np.clip(s, 0, self.capacity - 1)]]
            raise ValueError(f"stream(s) {bad.tolist()[:5]} not joined")
        if len(np.unique(s)) != len(s):
            raise ValueError("a stream is listed twice in one call")
        return s

    def _flush(self, s: np.ndarray, pos: np.ndarray | None = None, sort: bool = True):
        live = self._count[s] > 0
        s = s[live]
        pos = (np.arange(len(live)) if pos is None else pos)[live]
        rows, rows_pos = self._emit_ends(s, pos) if len(s) else _empty_rows()
        self._count[s] = 0
        self._last_valid[s] = NO_INDEX
        return _ordered([rows], [rows_pos]) if sort else (rows, rows_pos)


class MultiStreamEngine(StreamTable):
    """Windows through a runtime, one batched infer per window length a step; streams are integer
    slots from join()."""

    def __init__(self, runtime: Runtime, *, window: int | None = None, capacity: int = 16) -> None:
        self.runtime = runtime
        self.window = int(runtime.window if window is None else window)
        if self.window < 2 * runtime.right_context + 1:
            raise ValueError(f"window {self.window} must be >= 2*right_context+1 = {2 * runtime.right_context + 1}")
        super().__init__(runtime.right_context, capacity)
        self.model_calls = 0      # windows evaluated
        self.infer_calls = 0      # runtime.infer calls (one per distinct window length per step)

    def _new_state(self, capacity: int) -> dict[str, np.ndarray]:
        return {"ring": np.zeros((capacity, self.window, N_ROIS, 2), np.float32)}

    def _store(self, s: np.ndarray, features: np.ndarray) -> None:
        self._state["ring"][s, self._count[s] % self.window] = features

    def _emit_steps(self, s: np.ndarray, pos: np.ndarray) -> tuple[Rows, np.ndarray]:
        return self._emit(s, pos, np.ones(len(s), np.int64), self.delay)

    def _emit_ends(self, s: np.ndarray, pos: np.ndarray) -> tuple[Rows, np.ndarray]:
        return self._emit(s, pos, np.minimum(self._count[s], self.delay), 0)

    def _emit(self, s: np.ndarray, pos: np.ndarray, n_rows: np.ndarray, lag: int) -> tuple[Rows, np.ndarray]:
        """Evaluate each stream's window of its newest min(count, window) features and take `n_rows`
        rows ending `lag` before the newest (lag = delay while streaming, 0 at a run's end, where the
        model's own zero padding stands for the missing future, as offline)."""
        if len(s) == 0:
            return _empty_rows()
        count = self._count[s]
        length = np.minimum(count, self.window)
        row_window = np.repeat(np.arange(len(s)), n_rows)                  # window of each row
        r = np.arange(len(row_window)) - np.repeat(np.cumsum(n_rows) - n_rows, n_rows)
        column = (length - lag - n_rows)[row_window] + r
        index = (self._last_valid[s] - lag - n_rows + 1)[row_window] + r
        logit_rows = np.empty((len(row_window), 10), np.float32)
        local = np.empty(len(s), np.int64)
        for t in np.unique(length):                     # one model call per window length
            k = np.flatnonzero(length == t)
            local[k] = np.arange(len(k))
            logits = self.runtime.infer(self._gather(s[k], count[k], int(t)))
            picked = length[row_window] == t
            logit_rows[picked] = logits[local[row_window[picked]], :, column[picked]]
            self.infer_calls += 1
        self.model_calls += len(s)
        return Rows(s[row_window], index, logit_rows_to_probs(logit_rows)), pos[row_window]

    def _gather(self, s: np.ndarray, count: np.ndarray, length: int) -> np.ndarray:
        """(len(s), length, 12, 2): each stream's newest `length` features, oldest first (a copy)."""
        slots = (count[:, None] - length + np.arange(length)) % self.window
        flat = self._state["ring"].reshape(-1, N_ROIS, 2)
        return np.take(flat, (s[:, None] * self.window + slots).ravel(), axis=0).reshape(len(s), length, N_ROIS, 2)


def _ordered(parts: list[Rows], positions: list[np.ndarray]) -> Rows:
    """Concatenate rows and order them by the stream's position in the call, then by index."""
    parts_pos = [(p, q) for p, q in zip(parts, positions) if len(p)]
    if not parts_pos:
        return _empty_rows()[0]
    if len(parts_pos) == 1:
        rows, pos = parts_pos[0]
    else:
        rows = Rows(*(np.concatenate([getattr(p, f) for p, _ in parts_pos]) for f in ("stream", "index", "probs")))
        pos = np.concatenate([q for _, q in parts_pos])
    order = np.lexsort((rows.index, pos))
    if np.array_equal(order, np.arange(len(order))):
        return rows
    return Rows(rows.stream[order], rows.index[order], rows.probs[order])
