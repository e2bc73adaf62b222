"""Training-time feature augmentation: new faces from the same expressions (TrainConfig.augment).

The shipped model is trained on few identities and memorises them; these label-preserving changes of
a training window make it see each expression at other sizes, mirrored and under other sensor noise:
  * amplitude: all flow vectors of a window times one factor, log-uniform in `scale` (face size,
    expression strength and identity vary the flow's size, not its timing);
  * mirror: with probability 1/2 the face is flipped left-right: the mirror ROI pairs are swapped
    (reference-model.md §2.1: 0<->5, 1<->4, 2<->3, 8<->10) and every x component is negated;
  * noise: Gaussian noise of std `noise` pixels per frame on every component of frames that hold
    features (frames outside the run, all zero, stay zero);
  * node gain and rotation (off by default): each ROI's vectors times its own factor (log-uniform
    in [1/node_gain, node_gain]) and turned by its own angle (uniform within +-rotate_deg), so the
    model cannot rely on one renderer's (or one face's) ratio and direction of motion between
    regions, only on a region moving and coming back;
  * blinks (off by default): eyelid closures added as motion of the brow and nose-root ROIs, which
    a closing lid drags down and an opening one lifts back. The inner eye corners are among the
    points the head motion is measured from (reference-model.md §2.2), so part of a blink also
    leaks, reversed, into every ROI once that motion is subtracted. How far the drag and the leak
    reach depends on the face (and on how a renderer draws a blink), so the amplitude, the share of
    each region and the timing are drawn widely; the labels stay as they were, so a blink is taught
    as no expression wherever it falls.
Labels (start/end, apex, action, weight) are unchanged by all of them: only the input moves.
"""
from __future__ import annotations

import numpy as np

# ROI i of the mirrored face is ROI MIRROR_ROIS[i] of the original (reference-model.md §2.1 mirror pairs; the
# nose and lip-centre ROIs 6, 7, 9, 11 map to themselves).
MIRROR_ROIS = np.array([5, 4, 3, 2, 1, 0, 6, 7, 10, 9, 8, 11])
# The ROIs a blink can move: the brows (0-2 one side, 3-5 the other, 2 and 3 innermost) and the nose
# root (6). The mouth ROIs 7-11 are too far from the lids to be dragged; only the leak moves them.
BLINK_ROIS = slice(0, 7)


def mirror_features(features: np.ndarray) -> np.ndarray:
    """The features (..., 12, 2) of the left-right flipped face: ROI pairs swapped, x negated."""
    out = features[..., MIRROR_ROIS, :].copy()
    out[..., 0] *= -1.0
    return out


def blink_track(rng: np.random.Generator, fps: float) -> np.ndarray:
    """Per-frame lid motion of one blink, (L,) in units of its peak displacement: a smooth closing of
    0.05-0.12 s, a hold of up to 0.1 s and a slower opening of 0.1-0.25 s, 0.15-0.47 s in all, as
    long as real blinks last (the frame-to-frame difference of the lid's position, so it sums to
    zero)."""
    close = max(1, round(rng.uniform(0.05, 0.12) * fps))
    hold = round(rng.uniform(0.0, 0.1) * fps)
    opening = max(1, round(rng.uniform(0.1, 0.25) * fps))
    down = 0.5 - 0.5 * np.cos(np.pi * np.arange(1, close + 1) / close)
    up = 0.5 + 0.5 * np.cos(np.pi * np.arange(1, opening + 1) / opening)
    position = np.concatenate([[0.0], down, np.ones(hold), up])
    return np.diff(position)


def add_blinks(out: np.ndarray, present: np.ndarray, rng: np.random.Generator, *, rate: float,
               px: tuple[float, float], fps: float) -> None:
    """Add blinks to windows `out` (N, T, 12, 2) in place: a Poisson number per window (`rate` a
    second), each at a random frame, peak drag log-uniform in `px` (pixels of the aligned crop),
    shared by both brows and the nose root, each ROI its own share in 0..1 (the other side within
    20 % of its mirror ROI's), from shares drawn apart to one share for the whole upper face, mostly
    downward (each ROI turned by up to 25 degrees); a share in 0..0.5 of it is taken from all 12
    ROIs (the head-motion leak). Only frames that hold features (`present`, (N, T)) move."""
    n, t = out.shape[:2]
    counts = rng.poisson(rate * t / fps, n)
    for w in np.flatnonzero(counts):
        for _ in range(counts[w]):
            track = blink_track(rng, fps)
            start = int(rng.integers(0, max(1, t - len(track))))
            track = track[: t - start]
            # from each region on its own (mix 0) to the whole upper face dragged alike (mix 1)
            alike, mix = rng.uniform(0.2, 1.0), rng.uniform(0.0, 1.0)
            own = mix * alike + (1.0 - mix) * rng.uniform(0.0, 1.0, 4)
            share = np.concatenate([own[:3], own[2::-1] * rng.uniform(0.8, 1.25, 3), own[3:]])
            angle = np.radians(rng.uniform(-25.0, 25.0, 7))
            peak = np.exp(rng.uniform(np.log(px[0]), np.log(px[1])))
            vector = np.zeros((out.shape[2], 2))
            vector[BLINK_ROIS] = peak * share[:, None] * np.stack([np.sin(angle), np.cos(angle)], axis=1)
            vector -= peak * rng.uniform(0.0, 0.5) * np.array([np.sin(angle[6]), np.cos(angle[6])])
            span = slice(start, start + len(track))
            motion = track[:, None, None] * vector[None] * present[w, span, None, None]
            out[w, span] += motion.astype(np.float32)


def augment_windows(features: np.ndarray, rng: np.random.Generator, *, scale: tuple[float, float],
                    noise: float, node_gain: float = 1.0, rotate_deg: float = 0.0,
                    blink_rate: float = 0.0, blink_px: tuple[float, float] = (0.03, 0.4),
                    fps: float = 30.0) -> np.ndarray:
    """A randomly changed copy of training windows `features` (N, T, 12, 2) float32, same shape.

    Each window draws its own amplitude factor (log-uniform in [scale[0], scale[1]]), mirror coin and
    noise; `rng` makes it reproducible.
    """
    n = len(features)
    present = np.any(features != 0, axis=(2, 3))          # (N, T): frames inside the run
    factor = np.exp(rng.uniform(np.log(scale[0]), np.log(scale[1]), n)).astype(np.float32)
    out = features * factor[:, None, None, None]
    flip = rng.random(n) < 0.5
    out[flip] = mirror_features(out[flip])
    if noise > 0:
        out = out + present[:, :, None, None] * rng.normal(0.0, noise, out.shape).astype(np.float32)
    if node_gain > 1.0:      # drawn after the others, so the old augmentations keep their draws
        gain = np.exp(rng.uniform(-np.log(node_gain), np.log(node_gain), (n, 1, out.shape[2], 1)))
        out = out * gain.astype(np.float32)
    if rotate_deg > 0:
        angle = np.radians(rng.uniform(-rotate_deg, rotate_deg, (n, 1, out.shape[2])))
        cos, sin = np.cos(angle).astype(np.float32), np.sin(angle).astype(np.float32)
        x, y = out[..., 0].copy(), out[..., 1].copy()
        out[..., 0] = cos * x - sin * y
        out[..., 1] = sin * x + cos * y
    if blink_rate > 0:
        out = out.astype(np.float32, copy=False)
        add_blinks(out, present, rng, rate=blink_rate, px=blink_px, fps=fps)
    return out.astype(np.float32, copy=False)
