"""Head-motion removal: a known global motion is recovered and removed; a local expression survives
it; the front-end's head-motion modes and the reflow warp."""
import cv2
import numpy as np
import pytest

from helpers import textured_frame
from mespot.stream.headmotion import RIGID_MESH, HeadMotionFit, motion_at

S = 128
# Crop positions of rigid points spread as the real ones are (forehead, nose dorsum, lower contour).
RIGID_PTS = np.array([[64, 12], [51, 13], [78, 13], [64, 52], [60, 53], [68, 53], [64, 57], [64, 62],
                      [23, 88], [104, 89], [25, 92], [102, 93], [29, 94], [98, 94], [30, 99], [97, 99]], float)


def field(matrix: np.ndarray) -> np.ndarray:
    """(S, S, 2) float32 flow of the global motion `matrix` (2, 3)."""
    ys, xs = np.mgrid[0:S, 0:S].astype(np.float64)
    return np.stack([matrix[0, 0] * xs + matrix[0, 1] * ys + matrix[0, 2],
                     matrix[1, 0] * xs + matrix[1, 1] * ys + matrix[1, 2]], axis=-1).astype(np.float32)


def similarity(deg: float, scale: float, tx: float, ty: float, centre=(64.0, 50.0)) -> np.ndarray:
    """Flow matrix of a rotation by `deg` and scaling by `scale` about `centre`, then a shift."""
    c, s = scale * np.cos(np.radians(deg)), scale * np.sin(np.radians(deg))
    lin = np.array([[c, -s], [s, c]]) - np.eye(2)
    t = -lin @ np.array(centre) + (tx, ty)
    return np.concatenate([lin, t[:, None]], axis=1)


def residual(fit: HeadMotionFit, flow: np.ndarray, motion: np.ndarray) -> np.ndarray:
    """The whole flow minus the fitted field (read through slices, as the nose box is)."""
    ys, xs = np.mgrid[0:S, 0:S]
    return flow - motion_at(motion, np.stack([xs, ys], axis=-1).astype(np.float64))


def test_rigid_points_are_sixteen_distinct_mesh_indices():
    assert len(set(RIGID_MESH)) == len(RIGID_MESH) == 16
    assert all(0 <= i < 468 for i in RIGID_MESH)


def test_similarity_motion_is_recovered_and_removed():
    truth = similarity(0.6, 1.01, 0.3, -0.2)
    fit = HeadMotionFit(S)
    flow = field(truth)
    motion = fit.fit(flow, RIGID_PTS)
    np.testing.assert_allclose(motion, truth, atol=2e-4)
    assert np.abs(residual(fit, flow, motion)).max() < 2e-3
    # the rotation alone is ~0.5 px/frame 50 px from the centre: larger than a micro's motion
    assert np.abs(flow).max() > 0.5


def test_local_expression_outside_the_rigid_points_is_kept():
    truth = similarity(-0.5, 0.99, -0.4, 0.1)
    flow = field(truth)
    # a brow raise: 0.2 px upwards in a Gaussian blob at (45, 26), far from every rigid point
    ys, xs = np.mgrid[0:S, 0:S]
    blob = 0.2 * np.exp(-((xs - 45) ** 2 + (ys - 26) ** 2) / (2 * 6.0 ** 2))
    flow[..., 1] -= blob.astype(np.float32)
    fit = HeadMotionFit(S)
    left = residual(fit, flow, fit.fit(flow, RIGID_PTS))
    np.testing.assert_allclose(left[..., 1], -blob, atol=5e-3)
    np.testing.assert_allclose(left[..., 0], 0.0, atol=5e-3)


def test_motion_at_evaluates_the_field_at_given_pixels():
    truth = similarity(1.0, 1.02, 0.1, 0.3)
    flow = field(truth)
    xy = np.array([[[7, 3], [8, 3], [7, 4]], [[120, 90], [121, 91], [127, 92]]])
    np.testing.assert_allclose(motion_at(truth, xy.astype(np.float64)), flow[xy[..., 1], xy[..., 0]], atol=1e-5)


def test_patch_sampling_is_clipped_at_the_border():
    flow = field(similarity(0.0, 1.0, 0.7, -0.3))
    fit = HeadMotionFit(S, radius=2)
    u = fit.sample(flow, np.array([[0.0, 0.0], [127.4, 127.6], [64.0, 64.0]]))
    np.testing.assert_allclose(u, [[0.7, -0.3]] * 3, atol=1e-6)


def test_degenerate_points_and_a_bad_radius_are_refused():
    flow = np.zeros((S, S, 2), np.float32)
    with pytest.raises(ValueError, match="degenerate"):
        HeadMotionFit(S).fit(flow, np.full((5, 2), 40.0))
    with pytest.raises(ValueError, match="radius"):
        HeadMotionFit(S, radius=-1)


def test_head_motion_modes_say_what_each_takes_off():
    from mespot.stream.strategies import make_strategy, strategy_names

    assert strategy_names("head_motion") == ("similarity-no-g", "similarity", "translation")
    modes = {name: make_strategy("head_motion", name) for name in strategy_names("head_motion")}
    assert [(m.fit, m.reference_g) for m in modes.values()] == [(True, False), (True, True), (False, True)]
    with pytest.raises(ValueError, match="valid: similarity-no-g, similarity, translation"):
        make_strategy("head_motion", "affine")


def test_frontend_head_motion_option():
    from mespot.stream.frontend import FrontEnd
    from mespot.stream.tracker import Tracker

    class NoFace(Tracker):          # only track() to write: the slim base needs nothing else
        name = "none"

        def track(self, image_bgr):
            return None

    assert FrontEnd(30.0, tracker=NoFace()).config()["head_motion"] == "similarity-no-g"
    assert FrontEnd(30.0, tracker=NoFace()).config()["reflow_px"] == 0.25
    assert FrontEnd(30.0, tracker=NoFace(), head_motion="translation").config()["head_motion"] == "translation"
    assert FrontEnd(30.0, tracker=NoFace(), head_motion="similarity-no-g").config()["head_motion"] == "similarity-no-g"
    with pytest.raises(ValueError, match="unknown head motion 'affine'; valid: similarity-no-g, similarity, translation"):
        FrontEnd(30.0, tracker=NoFace(), head_motion="affine")
    with pytest.raises(ValueError, match="unknown flow 'farneback'; valid: dis, tvl1"):
        FrontEnd(30.0, tracker=NoFace(), flow="farneback")
    assert FrontEnd(30.0, tracker=NoFace(), head_motion="translation").config()["reflow_px"] is None
    with pytest.raises(ValueError, match="reflow_px"):
        FrontEnd(30.0, tracker=NoFace(), reflow_px=0.0)


def test_undo_moves_the_previous_crop_onto_the_current_one():
    """The reflow step's warp: with the head's motion field m (content at x moves to x + m(x)), the
    moved previous crop matches the current crop, and DIS then sees almost no motion."""
    from mespot.stream.frontend import FrontEnd
    from mespot.stream.flow import DisFlow

    grey = cv2.cvtColor(textured_frame(128, 128), cv2.COLOR_BGR2GRAY)
    prev = cv2.GaussianBlur(grey, (0, 0), 1.5)
    angle, scale, centre = np.radians(1.5), 1.02, np.array([64.0, 60.0])
    lin = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    forward = np.hstack([lin, (centre - lin @ centre + (0.8, -0.5))[:, None]])    # x -> x + m(x)
    cur = cv2.warpAffine(prev, forward, (128, 128), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    motion = forward - np.hstack([np.eye(2), np.zeros((2, 1))])
    fe = FrontEnd.__new__(FrontEnd)
    fe._crop_undone = np.empty_like(prev)
    undone = fe._undo(prev, motion)
    inner = (slice(20, 108), slice(20, 108))
    flow = DisFlow()
    before = np.abs(flow(prev, cur)[inner]).mean()
    after = np.abs(flow(undone, cur)[inner]).mean()
    assert before > 0.5 and after < 0.1 * before
