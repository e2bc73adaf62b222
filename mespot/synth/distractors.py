"""Motion and image changes a real stream has that are NOT expressions and must not be reported.

Each function draws one per-frame track from a seeded generator and returns it with a list of
events (JSON-ready dicts, frames 0-based) for the manifest. `busy` is a (T,) bool mask of frames
that fast distractors must avoid (the planted expressions widened by a margin); each fast distractor
marks its own frames in it (in place), so fast distractors do not overlap one another either.
Blinks and slow drift happen anywhere, as they do in life.

Timing is chosen so no distractor looks like a planted expression: blinks are eyelid-only and
0.1-0.3 s; talking is a train of 3-7 Hz lip open/close syllables lasting 1-4 s, never one lone
bump; head moves are global similarity motion of the whole frame; lighting changes are global gain.
"""
from __future__ import annotations

import numpy as np


def smooth_noise(n: int, fps: float, rng: np.random.Generator, sigma_s: float) -> np.ndarray:
    """Zero-mean unit-std noise low-passed with a Gaussian of `sigma_s` seconds (a slow drift)."""
    sigma = max(sigma_s * fps, 1.0)
    half = int(3 * sigma)
    kernel = np.exp(-0.5 * (np.arange(-half, half + 1) / sigma) ** 2)
    raw = rng.standard_normal(n + 2 * half)
    out = np.convolve(raw, kernel / kernel.sum(), mode="valid")[:n]
    return (out - out.mean()) / (out.std() + 1e-12)


def _free_starts(busy: np.ndarray, length: int) -> np.ndarray:
    """Start frames s where busy[s:s+length] is all False."""
    n = len(busy)
    if length > n:
        return np.zeros(0, int)
    csum = np.concatenate([[0], np.cumsum(busy.astype(int))])
    starts = np.arange(n - length + 1)
    return starts[(csum[starts + length] - csum[starts]) == 0]


def _place(busy: np.ndarray, length: int, rng: np.random.Generator) -> int | None:
    starts = _free_starts(busy, length)
    return int(rng.choice(starts)) if len(starts) else None


def _place_spans(count: int, seconds: tuple[float, float], fps: float, busy: np.ndarray,
                 rng: np.random.Generator) -> list[tuple[int, int]]:
    """Up to `count` free (start, length) spans of uniform(*seconds) length, marked busy, by start."""
    spans = []
    for _ in range(count):
        length = int(rng.uniform(*seconds) * fps)
        start = _place(busy, length, rng)
        if start is None:
            break
        busy[start:start + length] = True
        spans.append((start, length))
    return sorted(spans)


def blink_track(n: int, fps: float, rate_per_min: float, rng: np.random.Generator
                ) -> tuple[np.ndarray, list[dict]]:
    """Eyelid closure (T,) in [0, 1]: fast close, slower open, 0.1-0.3 s, at least 0.5 s apart."""
    closure = np.zeros(n, np.float32)
    events = []
    t = rng.exponential(60.0 / rate_per_min) * fps if rate_per_min > 0 else n
    while t < n:
        dur = rng.uniform(0.1, 0.3) * fps
        depth = rng.uniform(0.7, 1.0)
        t0 = float(t)
        tc = t0 + 0.4 * dur
        f = np.arange(int(t0), min(n, int(np.ceil(t0 + dur)) + 1))
        close = (f >= t0) & (f <= tc)
        opening = (f > tc) & (f <= t0 + dur)
        amp = np.zeros(len(f))
        amp[close] = 0.5 * (1 - np.cos(np.pi * (f[close] - t0) / (tc - t0)))
        amp[opening] = 0.5 * (1 + np.cos(np.pi * (f[opening] - tc) / (t0 + dur - tc)))
        closure[f] = np.maximum(closure[f], (depth * amp).astype(np.float32))
        events.append({"frame": int(t0), "frames": int(np.ceil(dur)), "depth": round(float(depth), 3)})
        t += max(0.5 * fps, rng.exponential(60.0 / rate_per_min) * fps)
    return closure, events


def talk_track(n: int, fps: float, rate_per_min: float, px_range: tuple[float, float],
               busy: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, list[dict]]:
    """Mouth opening (T,) in 224-face pixels: bursts of irregular syllables, 1-4 s each."""
    opening = np.zeros(n, np.float32)
    events = []
    n_bursts = int(rng.poisson(rate_per_min * n / fps / 60))
    for _ in range(n_bursts):
        length = int(rng.uniform(1.0, 4.0) * fps)
        start = _place(busy, length, rng)
        if start is None:
            break
        level = rng.uniform(*px_range)
        t = float(start)
        syllables = 0
        while t < start + length:
            period = fps / rng.uniform(3.0, 7.0)
            f = np.arange(int(np.ceil(t)), min(start + length, int(t + period) + 1))
            bump = np.sin(np.pi * (f - t) / period).clip(0) * level * rng.uniform(0.3, 1.0)
            opening[f] = np.maximum(opening[f], bump.astype(np.float32))
            t += period * rng.uniform(1.0, 1.4)
            syllables += 1
        busy[start:start + length] = True
        events.append({"frame": start, "frames": length, "syllables": syllables,
                       "px": round(float(level), 3)})
    return opening, events


def head_track(n: int, fps: float, moves_per_min: float, drift_frac: float, busy: np.ndarray,
               rng: np.random.Generator) -> tuple[np.ndarray, list[dict]]:
    """Head pose (T, 4): x, y translation (face widths), roll (degrees), log scale.

    Slow drift everywhere plus quick moves (0.3-1 s smooth steps to a new pose) outside `busy`.
    """
    head = np.zeros((n, 4), np.float64)
    head[:, 0] = drift_frac * smooth_noise(n, fps, rng, 3.0)
    head[:, 1] = drift_frac * smooth_noise(n, fps, rng, 3.0)
    head[:, 2] = 1.0 * smooth_noise(n, fps, rng, 4.0)
    head[:, 3] = 0.01 * smooth_noise(n, fps, rng, 5.0)
    events = []
    n_moves = int(rng.poisson(moves_per_min * n / fps / 60))
    steps = _place_spans(n_moves, (0.3, 1.0), fps, busy, rng)
    pose = np.zeros(4)
    offset = np.zeros((n, 4))
    for start, length in steps:
        target = np.array([rng.uniform(-0.12, 0.12), rng.uniform(-0.08, 0.08),
                           rng.uniform(-6.0, 6.0), rng.uniform(-0.05, 0.05)])
        ramp = 0.5 * (1 - np.cos(np.pi * np.arange(1, length + 1) / length))
        offset[start:start + length] = pose + ramp[:, None] * (target - pose)
        offset[start + length:] = target
        pose = target
        events.append({"frame": start, "frames": length,
                       "to": [round(float(v), 4) for v in target]})
    head += offset
    return head, events


def light_track(n: int, fps: float, changes_per_min: float, busy: np.ndarray,
                rng: np.random.Generator) -> tuple[np.ndarray, list[dict]]:
    """Illumination gain (T,): a slow +-3 % drift plus 0.3-2 s ramps to a new level in [0.8, 1.2]."""
    gain = 1.0 + 0.03 * smooth_noise(n, fps, rng, 5.0)
    events = []
    level = 1.0
    n_changes = int(rng.poisson(changes_per_min * n / fps / 60))
    steps = _place_spans(n_changes, (0.3, 2.0), fps, busy, rng)
    factor = np.ones(n)
    for start, length in steps:
        target = rng.uniform(0.8, 1.2)
        ramp = 0.5 * (1 - np.cos(np.pi * np.arange(1, length + 1) / length))
        factor[start:start + length] = level + ramp * (target - level)
        factor[start + length:] = target
        level = target
        events.append({"frame": start, "frames": length, "to": round(float(target), 4)})
    return (gain * factor).astype(np.float32), events


def turn_track(n: int, fps: float, moves_per_min: float, max_deg: float, busy: np.ndarray,
               rng: np.random.Generator) -> tuple[np.ndarray, list[dict]]:
    """Out-of-plane head pose (T, 2): yaw and pitch in degrees.

    A slow sway everywhere (std max_deg / 6) plus quick turns and nods (0.4-1.5 s smooth steps to a
    new pose within +-max_deg yaw, +-max_deg/2 pitch) outside `busy`, so a turn never masks an
    expression but the sway runs through them, as it does in life.
    """
    turn = np.zeros((n, 2), np.float64)
    turn[:, 0] = max_deg / 6 * smooth_noise(n, fps, rng, 3.0)
    turn[:, 1] = max_deg / 8 * smooth_noise(n, fps, rng, 3.0)
    events = []
    pose = np.zeros(2)
    offset = np.zeros((n, 2))
    for start, length in _place_spans(int(rng.poisson(moves_per_min * n / fps / 60)), (0.4, 1.5),
                                      fps, busy, rng):
        target = np.array([rng.uniform(-max_deg, max_deg), rng.uniform(-max_deg / 2, max_deg / 2)])
        ramp = 0.5 * (1 - np.cos(np.pi * np.arange(1, length + 1) / length))
        offset[start:start + length] = pose + ramp[:, None] * (target - pose)
        offset[start + length:] = target
        pose = target
        events.append({"frame": start, "frames": length, "to": [round(float(v), 3) for v in target]})
    turn += offset
    return np.clip(turn, -max_deg, max_deg).astype(np.float32), events
