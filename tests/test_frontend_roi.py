"""ROI reduction (reference-model.md §2.2/2.3) on hand-made flow fields (no models)."""
from __future__ import annotations

import numpy as np

from mespot.stream.roi import (_ASYMMETRIC_EDGES, _SYMMETRIC_EDGES, RoiReducer, main_direction_mean)


def _one(vectors) -> np.ndarray:
    return np.asarray(vectors, dtype=np.float64)[None]


def test_mdmo_keeps_largest_of_winning_sector():
    # 7 vectors pointing down (+y) with magnitudes 1..7, 3 pointing right with magnitude 10.
    down = [(0.0, float(m)) for m in range(1, 8)]
    right = [(10.0, 0.0)] * 3
    out = main_direction_mean(_one(down + right), _SYMMETRIC_EDGES, 0.6)[0]
    # int(0.6 * 7) = 4 largest: 7, 6, 5, 4 -> mean 5.5, straight down.
    np.testing.assert_allclose(out, [0.0, 5.5], atol=1e-5)


def test_mdmo_direction_of_sum_magnitude_of_mean():
    vecs = [(3.0, 1.0), (3.0, -1.0), (1.0, 0.0)]          # all in the right sector
    out = main_direction_mean(_one(vecs), _SYMMETRIC_EDGES, 1.0)[0]
    mean_mag = (2 * np.hypot(3, 1) + 1) / 3
    np.testing.assert_allclose(out, [mean_mag, 0.0], atol=1e-5)


def test_mdmo_tie_goes_to_first_sector_in_reference_order():
    # Two down, two left: down is first in (down, left, up, right).
    vecs = [(0.0, 1.0), (0.0, 2.0), (-1.0, 0.0), (-2.0, 0.0)]
    out = main_direction_mean(_one(vecs), _SYMMETRIC_EDGES, 1.0)[0]
    assert out[1] > 0 and abs(out[0]) < 1e-6


def test_asymmetric_sectors_differ_from_symmetric():
    # 40 degrees below the x axis: "right" with 90-degree sectors, "down" with the ROI sectors.
    v = np.array([np.cos(np.radians(40)), np.sin(np.radians(40))])
    vecs = [v, v, (0.0, -1.0)]          # two at 40 degrees, one up
    sym = main_direction_mean(_one(vecs), _SYMMETRIC_EDGES, 1.0)[0]
    asym = main_direction_mean(_one(vecs), _ASYMMETRIC_EDGES, 1.0)[0]
    np.testing.assert_allclose(sym, v, atol=1e-5)      # both 40-degree vectors win either way
    np.testing.assert_allclose(asym, v, atol=1e-5)
    # A lone vector at 40 degrees against two at 0 degrees: symmetric puts all three in "right".
    vecs = [v, (1.0, 0.0), (1.0, 0.0)]
    assert main_direction_mean(_one(vecs), _SYMMETRIC_EDGES, 1.0)[0][1] > 0.1
    np.testing.assert_allclose(main_direction_mean(_one(vecs), _ASYMMETRIC_EDGES, 1.0)[0], [1.0, 0.0],
                               atol=1e-5)


def test_zero_flow_gives_zero():
    out = main_direction_mean(np.zeros((12, 121, 2)), _ASYMMETRIC_EDGES, 0.6)
    assert out.shape == (12, 2) and np.all(out == 0)


def _centres() -> np.ndarray:
    return np.array([[27, 30], [33, 28], [41, 28], [81, 27], [91, 26], [100, 28],
                     [64, 52], [64, 69], [44, 89], [63, 86], [89, 88], [64, 102]], dtype=np.float64)


NOSE = np.array([[64.0, 62.0], [64.0, 69.0]])
EYES = np.array([[51.7, 44.5], [76.3, 44.5]])


def test_uniform_head_translation_is_removed():
    r = RoiReducer(128, 5)
    flow = np.zeros((128, 128, 2), np.float32)
    flow[...] = (0.7, -0.3)
    g = r.head_motion(flow, NOSE, EYES)
    np.testing.assert_allclose(g, [0.7, -0.3], atol=1e-5)
    assert np.abs(r.features(flow, _centres(), g)).max() < 1e-5


def test_local_motion_shows_only_in_its_roi():
    r = RoiReducer(128, 5)
    flow = np.zeros((128, 128, 2), np.float32)
    flow[...] = (0.2, 0.1)                      # head motion everywhere
    cx, cy = 44, 89                             # ROI 8, a mouth corner
    flow[cy - 5:cy + 6, cx - 5:cx + 6] += (-1.0, -0.5)
    g = r.head_motion(flow, NOSE, EYES)
    feats = r.features(flow, _centres(), g)
    np.testing.assert_allclose(feats[8], [-1.0, -0.5], atol=1e-4)
    others = np.delete(feats, 8, axis=0)
    assert np.abs(others).max() < 1e-5


def test_head_box_spans_nose_points_with_margin():
    r = RoiReducer(128, 5)
    flow = np.zeros((128, 128, 2), np.float32)
    # Motion only outside the box (x < 64 - 4 - 1): g must stay zero.
    flow[:, :58] = (3.0, 0.0)
    np.testing.assert_allclose(r.head_motion(flow, NOSE, EYES), [0.0, 0.0], atol=1e-6)
    # Motion covering the whole box (margin int(0.35 * 12.3) = 4 around x=64, y=62..69).
    flow[58:74, 60:69] = (0.0, 2.0)
    np.testing.assert_allclose(r.head_motion(flow, NOSE, EYES), [0.0, 2.0], atol=1e-5)


def test_patches_at_the_border_are_clipped_not_wrapped():
    r = RoiReducer(128, 5)
    flow = np.zeros((128, 128, 2), np.float32)
    flow[:3, :3] = (0.0, 1.0)
    centres = _centres()
    centres[0] = (-20, -20)          # far outside: clipped onto the corner
    centres[1] = (127, 127)
    xy = r._patch_pixels(centres)
    assert xy.shape == (12, 121, 2) and xy.min() >= 0 and xy.max() <= 127
    assert np.all(xy[0] == 0)                        # only the corner pixel, no wrap-around
    feats = r.features(flow, centres, np.zeros(2))
    np.testing.assert_allclose(feats[0], [0.0, 1.0], atol=1e-5)


def test_roi_features_with_the_head_motion_field_taken_off():
    """A flow that is a pure similarity motion (roll + zoom) gives ~zero features once its field is
    given, and g alone cannot remove it; a local motion on top of it survives."""
    ys, xs = np.mgrid[0:128, 0:128].astype(np.float64)
    motion = np.array([[0.01, -0.02, -0.4], [0.02, 0.01, -1.1]])        # crop px per frame at (x, y)
    flow = np.stack([motion[0, 0] * xs + motion[0, 1] * ys + motion[0, 2],
                     motion[1, 0] * xs + motion[1, 1] * ys + motion[1, 2]], axis=-1).astype(np.float32)
    r = RoiReducer(128, 5)
    centres = np.array([[x, y] for y in (20, 60, 100) for x in (15, 45, 75, 105)], np.float64)
    nose, eyes = np.array([[64.0, 55.0], [64.0, 65.0]]), np.array([[52.0, 45.0], [76.0, 45.0]])
    g = r.head_motion(flow, nose, eyes, motion)
    np.testing.assert_allclose(g, 0.0, atol=1e-5)
    np.testing.assert_allclose(r.features(flow, centres, g, motion), 0.0, atol=1e-5)
    spec_only = r.features(flow, centres, r.head_motion(flow, nose, eyes))
    assert np.abs(spec_only).max() > 0.5                                  # roll and zoom stay without it
    flow[95:106, 70:81, 1] += 0.3                                         # node 10's patch moves down
    out = r.features(flow, centres, r.head_motion(flow, nose, eyes, motion), motion)
    assert out[10, 1] > 0.25 and np.abs(np.delete(out, 10, axis=0)).max() < 1e-5
