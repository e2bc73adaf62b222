"""The physical floor of the live loop: the landmark model alone and the flow alone, same frames.

Nothing in the loop can be faster than finding the face and computing its motion, so the loop is
judged against the per-frame sum of those two, measured in isolation:
- decode: reading one frame from the file (happens on the capture thread, before the capture stamp);
- landmarks: a fresh tracker's `track(image)` on each decoded frame, nothing else running;
- flow: a fresh DIS estimator on the very aligned crop pairs the front-end built from those frames
  (flow 0 for a frame that starts a track, as in the loop);
- floor = landmarks + flow per frame.
Measured twice: back to back (`floor`, the figure for the as-fast-as-possible run) and `paced`,
each frame's landmarks and flow started on a camera's schedule (1/fps apart, idle in between),
the figure for the camera-paced run. Pacing matters on its own: after a frame period of idle the
caches are cold and the same call is slower (docs/benchmarks.md has the figures), so the loop is
compared with a floor run the same way.
Beside it the peer figure: the reference's TV-L1 (OpenCV-contrib CPU, its defaults, which match
the reference's CUDA settings) on the first of the same crop pairs.
"""
from __future__ import annotations

import time

import numpy as np

from mespot.bench.liveloop import summarize


class _CropPairRecorder:
    """Stands in for the front-end's flow estimator: records each crop pair, then computes the flow."""

    def __init__(self, estimator) -> None:
        self.estimator = estimator
        self.pairs: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self.frame_index = -1

    def __call__(self, prev: np.ndarray, cur: np.ndarray) -> np.ndarray:
        self.pairs[self.frame_index] = (prev.copy(), cur.copy())
        return self.estimator(prev, cur)


def measure_floor(source_spec: str, *, fps: float = 30.0, max_frames: int | None = None,
                  tvl1_pairs: int = 5, paced: bool = True) -> dict:
    """Decode, landmarks alone, flow alone and their per-frame sum (floor), back to back and (with
    `paced`) on the camera's schedule, plus TV-L1 on `tvl1_pairs` pairs; percentile dicts as
    mespot.bench.liveloop.summarize, `frames` counted."""
    from mespot.stream.frontend import FrontEnd
    from mespot.stream.sources import open_source
    from mespot.stream.strategies import make_strategy
    from mespot.stream.tracker import make_tracker

    tracker = make_tracker(None)
    frontend = FrontEnd(fps)
    recorder = _CropPairRecorder(frontend.flow)
    frontend.flow = recorder
    decode_ms, landmarks_ms, indices = [], [], []
    source = open_source(source_spec, target_fps=fps)
    try:
        frames = iter(source)
        while max_frames is None or len(indices) < max_frames:
            t0 = time.perf_counter()
            frame = next(frames, None)
            if frame is None:
                break
            if frame.is_gap:          # an unreadable frame: nothing to time
                continue
            t1 = time.perf_counter()
            tracker.track(frame.image)
            t2 = time.perf_counter()
            decode_ms.append((t1 - t0) * 1e3)
            landmarks_ms.append((t2 - t1) * 1e3)
            indices.append(frame.index)
            recorder.frame_index = frame.index
            frontend.process(frame)
    finally:
        source.close()
        tracker.close()
        frontend.close()

    dis = make_strategy("flow", "dis")
    flow_by_index = {}
    for index, (prev, cur) in recorder.pairs.items():
        t0 = time.perf_counter()
        dis(prev, cur)
        flow_by_index[index] = (time.perf_counter() - t0) * 1e3
    flow_ms = [flow_by_index.get(i, 0.0) for i in indices]
    floor_ms = [lm + fl for lm, fl in zip(landmarks_ms, flow_ms)]

    paced_figures = _paced(source_spec, fps, len(indices), recorder.pairs) if paced else None

    tvl1 = make_strategy("flow", "tvl1")
    tvl1_ms = []
    for prev, cur in list(recorder.pairs.values())[:tvl1_pairs]:
        t0 = time.perf_counter()
        tvl1(prev, cur)
        tvl1_ms.append((time.perf_counter() - t0) * 1e3)
    crop = next(iter(recorder.pairs.values()))[0].shape if recorder.pairs else None
    dis_pairs = [flow_by_index[i] for i in list(recorder.pairs)[:tvl1_pairs]]
    ratio = (float(np.median(tvl1_ms)) / float(np.median(dis_pairs))
             if tvl1_ms and dis_pairs and np.median(dis_pairs) > 0 else None)
    return {
        "frames": len(indices),
        "flow_pairs": len(recorder.pairs),
        "crop_px": list(crop) if crop else None,
        "decode": summarize(decode_ms),
        "landmarks": summarize(landmarks_ms),
        "flow": summarize(flow_by_index.values()),
        "floor": summarize(floor_ms),
        "paced": paced_figures,
        "tvl1": {"pairs": len(tvl1_ms), **summarize(tvl1_ms),
                 "ratio_to_dis": round(ratio, 1) if ratio is not None else None},
    }


def _paced(source_spec: str, fps: float, n_frames: int, pairs: dict) -> dict:
    """Landmarks alone (a fresh tracker) then DIS alone on the recorded pair of the same frame,
    each frame started 1/fps after the previous one, as a camera-paced loop runs them."""
    from mespot.stream.sources import open_source
    from mespot.stream.strategies import make_strategy
    from mespot.stream.tracker import make_tracker

    tracker = make_tracker(None)
    dis = make_strategy("flow", "dis")
    landmarks_ms, flow_ms, pair_ms = [], [], []
    source = open_source(source_spec, target_fps=fps)
    start = time.perf_counter()
    try:
        for k, frame in zip(range(n_frames), source):
            wait = start + k / fps - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
            if frame.is_gap:
                continue
            t0 = time.perf_counter()
            tracker.track(frame.image)
            t1 = time.perf_counter()
            pair = pairs.get(frame.index)
            if pair is not None:
                dis(*pair)
            t2 = time.perf_counter()
            landmarks_ms.append((t1 - t0) * 1e3)
            flow_ms.append((t2 - t1) * 1e3 if pair is not None else 0.0)
            if pair is not None:
                pair_ms.append(flow_ms[-1])
    finally:
        source.close()
        tracker.close()
    return {"fps": fps, "landmarks": summarize(landmarks_ms),
            "flow": summarize(pair_ms),
            "floor": summarize(lm + f for lm, f in zip(landmarks_ms, flow_ms))}
