"""ROI features from one flow field: reference-model.md §2.2 (head-motion vector g) and 2.3 (per-ROI MDMO vector).

Main-direction mean ("MDMO"): the vectors of a region are binned into 4 direction sectors (image
axes, +y down, angle in [0, 360)); the most populated sector wins (ties: first in the order down,
left, up, right); its largest-magnitude `keep` fraction of vectors gives the summary
sum(v) / (|sum(v)| + 1e-6) * mean(|v|): direction of the sum, magnitude of the mean.

- g: vectors inside the box spanned by iBUG 29 and 30, grown by int(0.35 * h) on every side with
  h = half the inner-eye-corner distance; symmetric 90-degree sectors; keep 88 %.
- ROI k: a square patch of (2r+1)^2 vectors centred on its landmark, g subtracted from each vector;
  asymmetric sectors (down and up 120 degrees wide, left and right 60); keep 60 %.
Where the front-end gives a head-motion field (mespot.stream.headmotion), it is subtracted at every
pixel read first, and g is optional (the default front-end leaves it out: docs/frontend.md).
Patches are clipped at the crop border (never an empty or wrapped slice). Units: those of the flow
(pixels of the aligned crop per frame). No normalisation here.
"""
from __future__ import annotations

import math

import numpy as np

from mespot.stream.headmotion import motion_at
from mespot.types import N_ROIS

# Sector numbering: 0 down, 1 left, 2 up, 3 right (the reference's order, used for tie-breaking).
# np.digitize(angle, edges) -> bin; the lookup turns bins into sector numbers (right wraps round 0).
_SYMMETRIC_EDGES = np.array([45.0, 135.0, 225.0, 315.0])
_ASYMMETRIC_EDGES = np.array([30.0, 150.0, 210.0, 330.0])
_BIN_TO_SECTOR = np.array([3, 0, 1, 2, 3])
HEAD_KEEP = 0.88
ROI_KEEP = 0.6


def main_direction_mean(vectors: np.ndarray, edges: np.ndarray, keep: float) -> np.ndarray:
    """(K, P, 2) vectors -> (K, 2) MDMO summaries, one per region (float64).

    Few numpy calls: after a frame period of idle each costs tens of microseconds (docs/benchmarks.md).
    """
    k_regions, n_vec = vectors.shape[:2]
    dx, dy = vectors[..., 0], vectors[..., 1]
    angle = np.degrees(np.arctan2(dy, dx)) % 360.0
    sector = _BIN_TO_SECTOR[edges.searchsorted(angle, side="right")]   # = np.digitize(angle, edges)
    counts = (sector[..., None] == _SECTORS).sum(axis=1)               # (K, 4)
    winner = counts.argmax(axis=1)                     # first maximum on ties
    n_keep = (keep * counts.max(axis=1)).astype(int)
    magnitude = np.hypot(dx, dy)
    ranked = np.where(sector == winner[:, None], magnitude, -1.0)
    order = (-ranked).argsort(axis=1, kind="stable")
    chosen = np.empty((k_regions, n_vec), bool)
    chosen[_ranks(k_regions)[:, None], order] = _ranks(n_vec) < n_keep[:, None]
    total = np.einsum("kp,kpc->kc", chosen, vectors)
    mean_mag = np.add.reduce(magnitude * chosen, axis=1) / np.maximum(n_keep, 1)
    norm = np.hypot(total[:, 0], total[:, 1])
    return total / (norm + 1e-6)[:, None] * mean_mag[:, None]


_SECTORS = np.arange(4)
_RANKS: dict[int, np.ndarray] = {}


def _ranks(n: int) -> np.ndarray:
    """(n,) 0..n-1, cached per n (the ROI patches and the region count do not change)."""
    if n not in _RANKS:
        _RANKS[n] = np.arange(n)
    return _RANKS[n]


class RoiReducer:
    """Reduces a (S, S, 2) flow field to the (12, 2) feature of one frame.

    Patch offsets are precomputed once; `radius` is in crop pixels (it scales with the crop, which
    has a fixed face size, so the patch is a fixed fraction of the face).
    """

    def __init__(self, crop_size: int, radius: int) -> None:
        if radius < 1:
            raise ValueError(f"ROI radius must be >= 1 px, got {radius}")
        self.crop_size = crop_size
        self.radius = radius
        r = np.arange(-radius, radius + 1)
        oy, ox = np.meshgrid(r, r, indexing="ij")
        self._off_xy = np.stack([ox.ravel(), oy.ravel()], axis=-1)     # (P, 2) x, y offsets
        gy, gx = np.mgrid[0:crop_size, 0:crop_size]
        self._grid = np.stack([gx, gy], axis=-1).astype(np.float64)   # (S, S, 2): x, y of each pixel

    def head_motion(self, flow: np.ndarray, nose_pts: np.ndarray, inner_eyes: np.ndarray,
                    motion: np.ndarray | None = None) -> np.ndarray:
        """The reference's g (reference-model.md §2.2) from the crop positions of iBUG 29, 30
        (nose_pts) and 39, 42 (inner_eyes); with `motion` ((2, 3), mespot.stream.headmotion), of the
        flow with that field taken off."""
        # Python scalars: the same IEEE arithmetic as numpy without a dozen calls' overhead.
        xs, ys = nose_pts[:, 0].tolist(), nose_pts[:, 1].tolist()
        h = (float(inner_eyes[1, 0]) - float(inner_eyes[0, 0])) / 2.0
        margin = int(0.35 * h)
        s = self.crop_size - 1
        x0 = min(max(math.floor(min(xs)) - margin, 0), s)
        x1 = min(max(math.ceil(max(xs)) + margin, 0), s)
        y0 = min(max(math.floor(min(ys)) - margin, 0), s)
        y1 = min(max(math.ceil(max(ys)) + margin, 0), s)
        rows, cols = slice(y0, y1 + 1), slice(x0, x1 + 1)
        box = flow[rows, cols]
        if motion is not None:
            box = box - motion_at(motion, self._grid[rows, cols])
        return main_direction_mean(box.reshape(1, -1, 2), _SYMMETRIC_EDGES, HEAD_KEEP)[0]

    def _patch_pixels(self, centres: np.ndarray) -> np.ndarray:
        """(12, P, 2) integer x, y of the ROI patch pixels around `centres`, clipped to the crop."""
        return np.clip(np.rint(centres).astype(np.intp)[:, None, :] + self._off_xy, 0, self.crop_size - 1)

    def features(self, flow: np.ndarray, centres: np.ndarray, g: np.ndarray | None,
                 motion: np.ndarray | None = None) -> np.ndarray:
        """(12, 2) float32 ROI vectors with the head motion g removed (reference-model.md §2.3; None: not used), and
        before it the field `motion` ((2, 3)) where given."""
        if centres.shape != (N_ROIS, 2):
            raise ValueError(f"ROI centres must be ({N_ROIS}, 2), got {centres.shape}")
        xy = self._patch_pixels(centres)
        vec = flow[xy[..., 1], xy[..., 0]].astype(np.float64)
        if motion is not None:
            field = motion_at(motion, xy.astype(np.float64))
            g = field if g is None else field + g
        if g is not None:
            vec = vec - g
        return main_direction_mean(vec, _ASYMMETRIC_EDGES, ROI_KEEP).astype(np.float32)
