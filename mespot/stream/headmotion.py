"""The head's whole in-plane motion between two frames, fitted to the flow at rigid face points.

Why: the front-end warps both frames with the CURRENT frame's similarity transform, so what the head
moved between the two frames (translation, roll, scale) stays in the flow; SPEC 2.2's g removes only
a translation. A roll of 0.6 deg/frame is ~0.5 px/frame of flow 50 px from the centre of a 128 px
crop, more than a micro-expression's ~0.2 px/frame. Over one frame pair that motion is close to a
global similarity (or affine) field, so it is fitted by least squares to the flow sampled at points
no expression moves; the ROI reduction (mespot.stream.roi) subtracts it, via `motion_at`, at the
pixels the features read.

Model: motion(x, y) = M @ (x, y, 1) with M a (2, 3) matrix in crop pixels per frame. 'similarity'
has 4 free parameters (tx, ty, rotation, scale), 'affine' 6. `keep` < 1 refits once on the points
with the smallest residuals of the first fit (robust to a point an expression does move).
"""
from __future__ import annotations

import numpy as np

# Mesh points (MediaPipe 468) that no AU, talking or blink of mespot.synth.aus moves by more than
# 10 % of that motion's own peak (measured on the generator's displacement fields): forehead top
# (10, 109, 338), nose dorsum below the glabella (197, 196, 419, 195, 5; the glabella itself and the
# upper bridge move with AU4/AU1, the nose wings with AU9/AU10) and the lower face contour beside the
# mouth (138, 367, 172, 397, 135, 364, 136, 365). Brows, lids, cheeks, temples (AU2/AU6 reach them)
# and the lips and chin are left out.
RIGID_MESH: tuple[int, ...] = (10, 109, 338, 197, 196, 419, 195, 5, 138, 367, 172, 397, 135, 364, 136, 365)
MODELS = ("similarity", "affine")
# The front-end's choices (mespot.stream.frontend.FrontEnd), default first: on validation videos the
# fit alone beat the fit followed by SPEC 2.2's g (docs/model-card.md).
HEAD_MOTION = ("similarity-no-g", "similarity", "translation")
REFLOW_PX = 0.25      # fitted head motion (crop px per frame) above which the flow is computed again


def motion_at(motion: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """The motion field `motion` (2, 3) at crop positions xy (..., 2: x, y), float64 (..., 2)."""
    return xy @ motion[:, :2].T + motion[:, 2]


class HeadMotionFit:
    """Fits the global motion field of one flow at the rigid points.

    crop_size: side of the (S, S, 2) flow in pixels; radius: the flow at a rigid point is the mean
    of a (2r+1)^2 patch (clipped at the border); model: 'similarity' or 'affine'; keep: fraction of
    points kept for one refit after dropping the largest residuals (1.0: no refit).
    """

    def __init__(self, crop_size: int, *, model: str = "similarity", radius: int = 1, keep: float = 1.0) -> None:
        if model not in MODELS:
            raise ValueError(f"model must be one of {MODELS}, got {model!r}")
        if radius < 0:
            raise ValueError(f"radius must be >= 0, got {radius}")
        if not 0.0 < keep <= 1.0:
            raise ValueError(f"keep must be in (0, 1], got {keep}")
        self.crop_size = int(crop_size)
        self.model = model
        self.keep = float(keep)
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
        (sxx, sxy), (_, syy) = (d.T @ d).tolist()
        if self.model == "similarity":
            # u = [[a, -b], [b, a]] d + mu: the closed form of the 4-parameter fit.
            s = sxx + syy
            if s < 1e-9:
                raise ValueError("rigid points are degenerate (all at one place)")
            a = (c[0][0] + c[1][1]) / s
            b = (c[0][1] - c[1][0]) / s
            lin = [[a, -b], [b, a]]
        else:
            # u = L d + mu with L = C^T (D^T D)^-1, the 2x2 normal equations inverted by hand.
            det = sxx * syy - sxy * sxy
            if det < 1e-9 * max(sxx * syy, 1e-9):
                raise ValueError("rigid points are degenerate (collinear)")
            lin = [[(c[0][r] * syy - c[1][r] * sxy) / det, (c[1][r] * sxx - c[0][r] * sxy) / det] for r in (0, 1)]
        (mx, my), (ux, uy) = mp.tolist(), mu.tolist()
        return np.array([[lin[0][0], lin[0][1], ux - lin[0][0] * mx - lin[0][1] * my],
                         [lin[1][0], lin[1][1], uy - lin[1][0] * mx - lin[1][1] * my]])

    def fit(self, flow: np.ndarray, points: np.ndarray) -> np.ndarray:
        """(2, 3) float64 matrix M of the head's motion: flow at crop pixel (x, y) ~ M @ (x, y, 1).

        flow: (S, S, 2) crop flow; points: (K, 2) crop positions of the rigid points (K >= 3)."""
        p = np.asarray(points, dtype=np.float64)
        u = self.sample(flow, p)
        m = self._solve(p, u)
        if self.keep < 1.0:
            n = max(3, int(round(self.keep * len(p))))
            res = u - (p @ m[:, :2].T + m[:, 2])
            best = np.argpartition(np.einsum("kc,kc->k", res, res), n - 1)[:n]
            m = self._solve(p[best], u[best])
        return m

    @staticmethod
    def largest(motion: np.ndarray, points: np.ndarray) -> float:
        """Largest length of the motion field `motion` (2, 3) at crop `points` (K, 2), px per frame."""
        u = motion_at(motion, points)
        return float(np.sqrt(np.einsum("kc,kc->k", u, u).max()))
