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
    regions, only on a region moving and coming back.
Labels (start/end, apex, action, weight) are unchanged by all three: only the input moves.
"""
from __future__ import annotations

import numpy as np

# ROI i of the mirrored face is ROI MIRROR_ROIS[i] of the original (reference-model.md §2.1 mirror pairs; the
# nose and lip-centre ROIs 6, 7, 9, 11 map to themselves).
MIRROR_ROIS = np.array([5, 4, 3, 2, 1, 0, 6, 7, 10, 9, 8, 11])


def mirror_features(features: np.ndarray) -> np.ndarray:
    """The features (..., 12, 2) of the left-right flipped face: ROI pairs swapped, x negated."""
    out = features[..., MIRROR_ROIS, :].copy()
    out[..., 0] *= -1.0
    return out


def augment_windows(features: np.ndarray, rng: np.random.Generator, *, scale: tuple[float, float],
                    noise: float, node_gain: float = 1.0, rotate_deg: float = 0.0) -> np.ndarray:
    """A randomly changed copy of training windows `features` (N, T, 12, 2) float32, same shape.

    Each window draws its own amplitude factor (log-uniform in [scale[0], scale[1]]), mirror coin and
    noise; `rng` makes it reproducible.
    """
    n = len(features)
    factor = np.exp(rng.uniform(np.log(scale[0]), np.log(scale[1]), n)).astype(np.float32)
    out = features * factor[:, None, None, None]
    flip = rng.random(n) < 0.5
    out[flip] = mirror_features(out[flip])
    if noise > 0:
        present = np.any(features != 0, axis=(2, 3))[:, :, None, None]
        out = out + present * rng.normal(0.0, noise, out.shape).astype(np.float32)
    if node_gain > 1.0:      # drawn after the others, so the old augmentations keep their draws
        gain = np.exp(rng.uniform(-np.log(node_gain), np.log(node_gain), (n, 1, out.shape[2], 1)))
        out = out * gain.astype(np.float32)
    if rotate_deg > 0:
        angle = np.radians(rng.uniform(-rotate_deg, rotate_deg, (n, 1, out.shape[2])))
        cos, sin = np.cos(angle).astype(np.float32), np.sin(angle).astype(np.float32)
        x, y = out[..., 0].copy(), out[..., 1].copy()
        out[..., 0] = cos * x - sin * y
        out[..., 1] = sin * x + cos * y
    return out.astype(np.float32, copy=False)
