"""Similarity alignment of a face into a canonical crop, so that flow measures facial motion.

A least-squares similarity transform (rotation, uniform scale, translation) maps the stable points
(eye corners, upper nose bridge; `landmarks.ALIGN_IBUG`) onto a fixed template. With the default
128 px crop the outer eye corners sit 64 px apart on a horizontal line at y = 44.5, brows at about
y = 26 and the lower lip at about y = 102 (template measured from a frontal face, made symmetric).
"""
from __future__ import annotations

import cv2
import numpy as np

from mespot.stream.landmarks import ALIGN_IBUG

REFERENCE_CROP = 128.0
# Template for ALIGN_IBUG = (36, 39, 42, 45, 27, 28), in pixels of a 128 px crop.
_TEMPLATE_128 = {
    36: (32.0, 44.5), 39: (51.7, 44.5), 42: (76.3, 44.5), 45: (96.0, 44.5),
    27: (64.0, 40.8), 28: (64.0, 51.9),
}


def template_points(crop_size: int) -> np.ndarray:
    """(len(ALIGN_IBUG), 2) float64 template positions for a crop of `crop_size` pixels."""
    pts = np.array([_TEMPLATE_128[i] for i in ALIGN_IBUG], dtype=np.float64)
    return pts * (crop_size / REFERENCE_CROP)


def fit_similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Closed-form least-squares similarity mapping src (K, 2) onto dst (K, 2); a (2, 3) matrix."""
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    ms, md = src.mean(axis=0), dst.mean(axis=0)
    s, d = src - ms, dst - md
    denom = float((s * s).sum())
    if denom < 1e-9:
        raise ValueError("alignment points are degenerate (all at one place)")
    a = float((s[:, 0] * d[:, 0] + s[:, 1] * d[:, 1]).sum()) / denom
    b = float((s[:, 0] * d[:, 1] - s[:, 1] * d[:, 0]).sum()) / denom
    rot = np.array([[a, -b], [b, a]])
    t = md - rot @ ms
    return np.hstack([rot, t[:, None]])


def apply_transform(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Map (K, 2) points with a (2, 3) affine matrix."""
    return points @ matrix[:, :2].T + matrix[:, 2]


class Aligner:
    """Fits the transform of one frame and warps grey images into the canonical crop."""

    def __init__(self, crop_size: int = 128) -> None:
        if not 64 <= crop_size <= 512:
            raise ValueError(f"crop_size must be in 64..512 px, got {crop_size}")
        self.crop_size = int(crop_size)
        self.template = template_points(self.crop_size)

    def new_crop(self) -> np.ndarray:
        """An output buffer of the crop's shape (callers keep and reuse these)."""
        return np.empty((self.crop_size, self.crop_size), np.uint8)

    def transform(self, align_points: np.ndarray) -> np.ndarray:
        """(2, 3) image-to-crop matrix from the ALIGN_IBUG points of one frame (pixels)."""
        return fit_similarity(align_points, self.template)

    def warp(self, image: np.ndarray, matrix: np.ndarray, out: np.ndarray) -> np.ndarray:
        """Warp `image` (grey or colour) into `out` (crop_size x crop_size, same channels)."""
        cv2.warpAffine(image, matrix, (self.crop_size, self.crop_size), dst=out,
                       flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        return out
