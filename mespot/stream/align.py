"""Similarity alignment of a face into a canonical crop, so that flow measures facial motion.

A least-squares similarity transform (rotation, uniform scale, translation) maps the stable points
(eye corners, upper nose bridge; `landmarks.ALIGN_IBUG`) onto a fixed template. With the default
128 px crop the outer eye corners sit 64 px apart on a horizontal line at y = 44.5, brows at about
y = 26 and the lower lip at about y = 102 (template measured from a frontal face, made symmetric).
"""
from __future__ import annotations

import math
from typing import NamedTuple

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


class SimilarityFit:
    """Closed-form least-squares similarity mapping K source points onto fixed `dst` (K, 2) points.

    The destination is centred once here; a call costs a handful of numpy operations (this runs
    every frame, when each call is slow after a frame period of idle).
    """

    def __init__(self, dst: np.ndarray) -> None:
        dst = np.asarray(dst, dtype=np.float64)
        self._md = np.add.reduce(dst, axis=0) / len(dst)      # = dst.mean(axis=0), bit for bit
        d = dst - self._md
        self._dx, self._dy = d[:, 0].copy(), d[:, 1].copy()

    def __call__(self, src: np.ndarray) -> np.ndarray:
        """(K, 2) source points -> (2, 3) float64 matrix."""
        src = np.asarray(src, dtype=np.float64)
        ms = np.add.reduce(src, axis=0) / len(src)
        s = src - ms
        denom = float((s * s).sum())
        if denom < 1e-9:
            raise ValueError("alignment points are degenerate (all at one place)")
        sx, sy = s[:, 0], s[:, 1]
        a = float((sx * self._dx + sy * self._dy).sum()) / denom
        b = float((sx * self._dy - sy * self._dx).sum()) / denom
        rot = np.array([[a, -b], [b, a]])
        t = self._md - rot @ ms
        return np.array([[a, -b, t[0]], [b, a, t[1]]])


def apply_transform(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Map (K, 2) points with a (2, 3) affine matrix."""
    return points @ matrix[:, :2].T + matrix[:, 2]


class GreyPatch(NamedTuple):
    """A grey copy of the part of a frame a crop reads; (x0, y0) is its top-left pixel in the frame."""

    pixels: np.ndarray
    x0: int
    y0: int

    def covers(self, box: tuple[int, int, int, int]) -> bool:
        x0, y0, x1, y1 = box
        h, w = self.pixels.shape
        return self.x0 <= x0 and self.y0 <= y0 and x1 <= self.x0 + w and y1 <= self.y0 + h


class Aligner:
    """Fits the transform of one frame and warps grey patches of frames into the canonical crop.

    Only the part of a frame that the crop reads is converted to grey (a `GreyPatch`): converting
    and warping one channel of ~250x250 px costs about half of warping three channels out of the
    whole frame and converting the crop, mostly in memory traffic, which is what a frame costs
    after a frame period of idle (docs/benchmarks.md, design measurements).
    """

    def __init__(self, crop_size: int = 128) -> None:
        if not 64 <= crop_size <= 512:
            raise ValueError(f"crop_size must be in 64..512 px, got {crop_size}")
        self.crop_size = int(crop_size)
        self.template = template_points(self.crop_size)
        self._fit = SimilarityFit(self.template)

    def new_crop(self) -> np.ndarray:
        """An output buffer of the crop's shape (callers keep and reuse these)."""
        return np.empty((self.crop_size, self.crop_size), np.uint8)

    def transform(self, align_points: np.ndarray) -> np.ndarray:
        """(2, 3) image-to-crop matrix from the ALIGN_IBUG points of one frame (pixels)."""
        return self._fit(align_points)

    def source_box(self, inverse: np.ndarray, width: int, height: int, margin: int = 0
                   ) -> tuple[int, int, int, int]:
        """(x0, y0, x1, y1), x1/y1 exclusive: the frame pixels a warp with the crop-to-image matrix
        `inverse` reads (bilinear: the pixel below and the one after each sample point), grown by
        `margin` px on every side and clipped to a `width` x `height` frame."""
        (a, b, tx), (c, d, ty) = inverse.tolist()
        s = self.crop_size - 1
        xs = (tx, tx + a * s, tx + b * s, tx + a * s + b * s)
        ys = (ty, ty + c * s, ty + d * s, ty + c * s + d * s)
        x0 = max(math.floor(min(xs)) - 1 - margin, 0)
        y0 = max(math.floor(min(ys)) - 1 - margin, 0)
        x1 = min(math.floor(max(xs)) + 3 + margin, width)
        y1 = min(math.floor(max(ys)) + 3 + margin, height)
        return x0, y0, max(x1, x0 + 1), max(y1, y0 + 1)

    @staticmethod
    def grey_patch(image: np.ndarray, box: tuple[int, int, int, int]) -> GreyPatch:
        """Grey copy of `box` of a BGR frame."""
        x0, y0, x1, y1 = box
        return GreyPatch(cv2.cvtColor(image[y0:y1, x0:x1], cv2.COLOR_BGR2GRAY), x0, y0)

    def warp(self, patch: GreyPatch, inverse: np.ndarray, out: np.ndarray) -> np.ndarray:
        """Warp a grey patch into `out` (crop_size x crop_size) with the crop-to-image matrix.

        The patch's offset is taken off the matrix's translation (an exact float subtraction of
        integers), so a patch that covers the source box gives the crop of the whole grey frame;
        where the box was clipped at the frame's edge, the patch's edge is the frame's and the
        replicated border is the same too.
        """
        (a, b, tx), (c, d, ty) = inverse.tolist()
        shifted = np.array([[a, b, tx - patch.x0], [c, d, ty - patch.y0]])
        cv2.warpAffine(patch.pixels, shifted, (self.crop_size, self.crop_size), dst=out,
                       flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE)
        return out
