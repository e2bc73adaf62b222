"""CUDA-graph replay of the model at the online engine's steady-state shapes (torch backend).

On a GPU one eager call of AUW-GCN on an 11-index window is a string of small kernel launches,
about 1 ms on an H200; replayed as a CUDA graph it takes 0.07 ms (docs/gpu.md). A graph has a fixed
shape, so `GraphSet` keeps one graph per batch BUCKET at the runtime's window length: a batch of B
windows runs as full largest buckets plus the remainder zero-padded up to the smallest bucket that
holds it (`bucket_plan`). Padding rows never reach the caller, and the model treats the rows of a
batch independently (eval-mode batch norm, per-sample convolutions), so a padded replay returns the
same numbers as an eager call on the same padded batch.

The capture itself is only possible on CUDA; `eager_capture` builds the same static-buffer object
around a plain eager call, so the bucketing, padding and slicing logic runs (and is tested) on CPU.
Graphs are captured lazily, the first time a bucket is needed (`capture()` does it ahead of time).
"""
from __future__ import annotations

import threading
from typing import Any, Callable

import numpy as np

from mespot.engine.runtime.base import N_LOGITS, N_ROIS

GRAPH_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384)
WARMUP_RUNS = 3          # eager runs on a side stream before capture (cuDNN/cuBLAS set-up, as torch asks)


def bucket_plan(batch: int, buckets: tuple[int, ...] = GRAPH_BUCKETS) -> list[tuple[int, int, int]]:
    """Rows 0..batch-1 as (start, stop, bucket) chunks: full largest buckets first, then the rest
    padded up to the smallest bucket >= its size. `buckets` ascending, all >= 1."""
    if not buckets or list(buckets) != sorted(set(buckets)) or buckets[0] < 1:
        raise ValueError(f"buckets must be ascending distinct sizes >= 1, got {buckets}")
    return _plan(batch, buckets)


def _plan(batch: int, buckets: tuple[int, ...]) -> list[tuple[int, int, int]]:
    """bucket_plan without checking the buckets (GraphSet checks them once)."""
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    largest = buckets[-1]
    chunks = []
    start = 0
    while batch - start > largest:
        chunks.append((start, start + largest, largest))
        start += largest
    rest = batch - start
    chunks.append((start, batch, next(b for b in buckets if b >= rest)))
    return chunks


class StaticShape:
    """One captured shape (bucket, frames): device input/output tensors that a replay reads and
    writes, host staging buffers (pinned on CUDA), and the replay itself.

    The input rows past the current batch are kept at zero, so a replay always sees exactly the
    padded batch an eager call would get."""

    def __init__(self, static_in, static_out, replay: Callable[[], Any], host_in, host_out,
                 synchronize: Callable[[], Any]) -> None:
        self.static_in, self.static_out = static_in, static_out
        self.replay, self.synchronize = replay, synchronize
        self.host_in, self.host_out = host_in, host_out
        self._host_in_np, self._host_out_np = host_in.numpy(), host_out.numpy()
        self.bucket = int(static_in.shape[0])
        self._rows = 0           # rows of static_in holding the previous batch (the rest are zero)

    def run(self, x: np.ndarray) -> np.ndarray:
        """(b, frames, 12, 2) float32 with b <= bucket -> (b, 10, frames) float32, caller-owned."""
        b = len(x)
        if not 1 <= b <= self.bucket or x.shape[1:] != tuple(self.static_in.shape[1:]):
            raise ValueError(f"batch {x.shape} does not fit the captured shape {tuple(self.static_in.shape)}")
        self._host_in_np[:b] = x
        self.static_in[:b].copy_(self.host_in[:b], non_blocking=True)
        if b < self._rows:
            self.static_in[b:self._rows].zero_()
        self._rows = b
        self.replay()
        self.host_out[:b].copy_(self.static_out[:b], non_blocking=True)
        self.synchronize()
        return self._host_out_np[:b].copy()


def eager_capture(torch, forward: Callable, frames: int, device: str) -> Callable[[int], StaticShape]:
    """A `capture` for GraphSet that replays by calling `forward` eagerly on the static buffers
    (CPU, or a CUDA check of the graph path against itself)."""

    def capture(bucket: int) -> StaticShape:
        static_in = torch.zeros((bucket, frames, N_ROIS, 2), dtype=torch.float32, device=device)
        static_out = torch.zeros((bucket, N_LOGITS, frames), dtype=torch.float32, device=device)

        def replay():
            with torch.inference_mode():
                static_out.copy_(forward(static_in))

        return StaticShape(static_in, static_out, replay, torch.zeros(static_in.shape), torch.zeros(static_out.shape),
                           lambda: None)

    return capture


def cuda_capture(torch, forward: Callable, frames: int, device: str) -> Callable[[int], StaticShape]:
    """A `capture` that records `forward` on static CUDA buffers as a torch.cuda.CUDAGraph, following
    torch's documented recipe (warm-up on a side stream, then capture; replay on the current stream).
    `forward` must set whatever numeric mode it needs itself: kernels are chosen during capture."""

    def capture(bucket: int) -> StaticShape:
        static_in = torch.zeros((bucket, frames, N_ROIS, 2), dtype=torch.float32, device=device)
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.no_grad():
            with torch.cuda.stream(side):
                for _ in range(WARMUP_RUNS):
                    forward(static_in)
            torch.cuda.current_stream().wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                static_out = forward(static_in)
        host_in = torch.zeros(static_in.shape, dtype=torch.float32, pin_memory=True)
        host_out = torch.zeros(static_out.shape, dtype=torch.float32, pin_memory=True)
        # the copies and the replay are issued on the caller's current stream: wait for that one
        return StaticShape(static_in, static_out, graph.replay, host_in, host_out,
                           lambda: torch.cuda.current_stream().synchronize())

    return capture


class GraphSet:
    """Replays of `frames`-long batches, one StaticShape per bucket, captured on first use.

    The static buffers are shared, so run() holds a lock: calls from several threads take turns."""

    def __init__(self, capture: Callable[[int], StaticShape], frames: int,
                 buckets: tuple[int, ...] = GRAPH_BUCKETS) -> None:
        bucket_plan(1, buckets)                  # validates the buckets
        self.frames = int(frames)
        self.buckets = tuple(buckets)
        self._capture = capture
        self._shapes: dict[int, StaticShape] = {}
        self._lock = threading.Lock()

    @property
    def captured(self) -> tuple[int, ...]:
        return tuple(sorted(self._shapes))

    def capture(self, buckets: tuple[int, ...]) -> None:
        with self._lock:
            for b in buckets:
                self._shape(b)

    def _shape(self, bucket: int) -> StaticShape:
        if bucket not in self.buckets:
            raise ValueError(f"bucket {bucket} is not one of {self.buckets}")
        shape = self._shapes.get(bucket)
        if shape is None:
            shape = self._shapes[bucket] = self._capture(bucket)
        return shape

    def run(self, x: np.ndarray) -> np.ndarray:
        """(B, frames, 12, 2) float32 -> (B, 10, frames) float32, via one replay per chunk."""
        if x.ndim != 4 or x.shape[1] != self.frames:
            raise ValueError(f"graphs run ({self.frames}-index) windows, got {x.shape}")
        plan = _plan(len(x), self.buckets)
        with self._lock:
            if len(plan) == 1:
                return self._shape(plan[0][2]).run(x)
            out = np.empty((len(x), N_LOGITS, self.frames), np.float32)
            for start, stop, bucket in plan:
                out[start:stop] = self._shape(bucket).run(x[start:stop])
            return out
