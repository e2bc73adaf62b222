"""The head's whole in-plane motion between two frames, fitted to the flow at rigid face points.

Why: the front-end warps both frames with the CURRENT frame's similarity transform, so what the head
moved between the two frames (translation, roll, scale) stays in the flow; the reference's g
(reference-model.md §2.2) removes only a translation. A roll of 0.6 deg/frame is ~0.5 px/frame of flow 50 px from the centre of a 128 px
crop, more than a micro-expression's ~0.2 px/frame. Over one frame pair that motion is close to a
global similarity (or affine) field, so it is fitted by least squares to the flow sampled at points
no expression moves; the ROI reduction (mespot.stream.roi) subtracts it, via `motion_at`, at the
pixels the features read.

Model: motion(x, y) = M @ (x, y, 1) with M a (2, 3) similarity in crop pixels per frame (4 free
parameters: tx, ty, rotation, scale).

The front-end's choices are strategy objects (`HeadMotionMode`, looked up by name in
mespot.stream.strategies): whether to fit and take off that field, and whether to take off the
reference's g (docs/reference-model.md, section 2.2) too.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

# Mesh points (MediaPipe 468) that no AU, talking or blink of mespot.synth.aus moves by more than
# 10 % of that motion's own peak (measured on the generator's displacement fields): forehead top
# (10, 109, 338), nose dorsum below the glabella (197, 196, 419, 195, 5; the glabella itself and the
# upper bridge move with AU4/AU1, the nose wings with AU9/AU10) and the lower face contour beside the
# mouth (138, 367, 172, 397, 135, 364, 136, 365). Brows, lids, cheeks, temples (AU2/AU6 reach them)
# and the lips and chin are left out.
RIGID_MESH: tuple[int, ...] = (10, 109, 338, 197, 196, 419, 195, 5, 138, 367, 172, 397, 135, 364, 136, 365)
REFLOW_PX = 0.25      # fitted head motion (crop px per frame) above which the flow is computed again


def motion_at(motion: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """The motion field `motion` (2, 3) at crop positions xy (..., 2: x, y), float64 (..., 2)."""
    return xy @ motion[:, :2].T + motion[:, 2]


class HeadMotion(Protocol):
    """The head-motion stage of the front-end: which corrections to apply to one frame pair's flow."""

    name: str
    fit: bool
    reference_g: bool

    def config(self) -> str: ...


@dataclass(frozen=True)
class HeadMotionMode:
    """One way of taking the head's own motion off the flow (the front-end's `head_motion` stage).

    fit: fit the similarity field at the rigid points and subtract it (with the front-end's reflow);
    reference_g: subtract the reference's g (the main direction of the box below the nose) as well.
    """

    name: str
    fit: bool
    reference_g: bool

    def config(self) -> str:
        return self.name


# Default first: on validation videos the fit alone beat the fit followed by the reference's g
# (docs/model-card.md); 'translation' is the reference's g alone.
HEAD_MOTION_MODES = (HeadMotionMode("similarity-no-g", fit=True, reference_g=False),
                     HeadMotionMode("similarity", fit=True, reference_g=True),
                     HeadMotionMode("translation", fit=False, reference_g=True))


class HeadMotionFit:
    """Fits the global motion field of one flow at the rigid points.

    crop_size: side of the (S, S, 2) flow in pixels; radius: the flow at a rigid point is the mean
    of a (2r+1)^2 patch (clipped at the border).
    """

    def __init__(self, crop_size: int, *, radius: int = 1) -> None:
        if radius < 0:
            raise ValueError(f"radius must be >= 0, got {radius}")
        self.crop_size = int(crop_size)
        r = np.arange(-radius, radius + 1)
        oy, ox = np.meshgrid(r, r, indexing="ij")
        self._off = np.stack([ox.ravel(), oy.ravel()], axis=-1)       # (P, 2) x, y offsets

    def sample(self, flow: np.ndarray, points: np.ndarray) -> np.ndarray:
        """(K, 2) float64 patch-mean flow at the crop positions `points` (K, 2: x, y)."""
        idx = np.clip(np.rint(points).astype(np.intp)[:, None, :] + self._off, 0, self.crop_size - 1)
        return np.add.reduce(flow[idx[..., 1], idx[..., 0]], axis=1, dtype=np.float64) / len(self._off)

    def _solve(self, p: np.ndarray, u: np.ndarray) -> np.ndarray:
        """Least-squares (2, 3) motion matrix mapping points p (K, 2) to their flow u (K, 2)."""
        n = len(p)
        mp = np.add.reduce(p, axis=0) / n
        mu = np.add.reduce(u, axis=0) / n
        d = p - mp
        c = (d.T @ (u - mu)).tolist()          # [[sum dx vx, sum dx vy], [sum dy vx, sum dy vy]]
        (sxx, _), (_, syy) = (d.T @ d).tolist()
        # u = [[a, -b], [b, a]] d + mu: the closed form of the 4-parameter fit.
        s = sxx + syy
        if s < 1e-9:
            raise ValueError("rigid points are degenerate (all at one place)")
        a = (c[0][0] + c[1][1]) / s
        b = (c[0][1] - c[1][0]) / s
        lin = [[a, -b], [b, a]]
        (mx, my), (ux, uy) = mp.tolist(), mu.tolist()
        return np.array([[lin[0][0], lin[0][1], ux - lin[0][0] * mx - lin[0][1] * my],
                         [lin[1][0], lin[1][1], uy - lin[1][0] * mx - lin[1][1] * my]])

    def fit(self, flow: np.ndarray, points: np.ndarray) -> np.ndarray:
        """(2, 3) float64 matrix M of the head's motion: flow at crop pixel (x, y) ~ M @ (x, y, 1).

        flow: (S, S, 2) crop flow; points: (K, 2) crop positions of the rigid points (K >= 3)."""
        p = np.asarray(points, dtype=np.float64)
        return self._solve(p, self.sample(flow, p))

    @staticmethod
    def largest(motion: np.ndarray, points: np.ndarray) -> float:
        """Largest length of the motion field `motion` (2, 3) at crop `points` (K, 2), px per frame."""
        u = motion_at(motion, points)
        return float(np.sqrt(np.einsum("kc,kc->k", u, u).max()))
