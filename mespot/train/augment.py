"""Training-time feature augmentation: new faces from the same expressions (TrainConfig.augment).

The shipped model is trained on few identities and memorises them; these label-preserving changes of
a training window make it see each expression at other sizes, mirrored and under other sensor noise:
  * amplitude: all flow vectors of a window times one factor, log-uniform in `scale` (face size,
    expression strength and identity vary the flow's size, not its timing);
  * mirror: with probability 1/2 the face is flipped left-right: the mirror ROI pairs are swapped
    (reference-model.md §2.1: 0<->5, 1<->4, 2<->3, 8<->10) and every x component is negated;
  * noise: Gaussian noise of std `noise` pixels per frame on every component of frames that hold
    features (frames outside the run, all zero, stay zero).
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
                    noise: float) -> np.ndarray:
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
    return out.astype(np.float32, copy=False)
