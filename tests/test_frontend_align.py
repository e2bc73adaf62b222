"""Alignment geometry: the similarity fit, the crop template and the grey-patch warp (no models)."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from helpers import textured_frame
from mespot.stream.align import Aligner, SimilarityFit, apply_transform, template_points


def test_similarity_fit_recovers_a_known_transform():
    rng = np.random.default_rng(0)
    src = rng.uniform(100, 400, (6, 2))
    angle, scale, t = np.radians(12.0), 0.37, np.array([-20.0, 15.0])
    rot = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    dst = src @ rot.T + t
    m = SimilarityFit(dst)(src)
    np.testing.assert_allclose(m[:, :2], rot, atol=1e-9)
    np.testing.assert_allclose(apply_transform(m, src), dst, atol=1e-9)


def test_template_is_symmetric_and_scales_with_the_crop():
    t128 = template_points(128)
    assert np.allclose(t128[0, 0] + t128[3, 0], 128) and np.allclose(t128[1, 0] + t128[2, 0], 128)
    np.testing.assert_allclose(template_points(256), 2 * t128)
    with pytest.raises(ValueError):
        Aligner(32)


@pytest.mark.parametrize("shift", [(40.0, 30.0), (-15.0, -10.0), (250.0, 190.0)])   # inside, over the top-left, bottom-right edge
def test_grey_patch_warp_equals_the_whole_grey_frame(shift):
    frame = textured_frame()
    aligner = Aligner(128)
    angle, scale = np.radians(7.0), 1.3
    matrix = np.array([[scale * np.cos(angle), -scale * np.sin(angle), -shift[0] * scale],
                       [scale * np.sin(angle), scale * np.cos(angle), -shift[1] * scale]])
    inverse = cv2.invertAffineTransform(matrix)
    whole = cv2.warpAffine(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY), matrix, (128, 128),
                           flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    box = aligner.source_box(inverse, 320, 240)
    for margin in (0, 9):
        patch = aligner.grey_patch(frame, aligner.source_box(inverse, 320, 240, margin))
        assert patch.covers(box)
        np.testing.assert_array_equal(aligner.warp(patch, inverse, aligner.new_crop()), whole)
    x0, y0, x1, y1 = box
    smaller = aligner.grey_patch(frame, (x0 + 1, y0, x1, y1))
    assert x0 == 0 or not smaller.covers(box)
