"""The second renderer ('piecewise'), the wide nuisance ranges and per-video framing of spot-synth."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from mespot.stream.landmarks import MESH_OF_IBUG
from mespot.synth.dataset import Framing, generate_dataset, reframe
from mespot.synth.facs import AU_PULLS, vertex_displacements
from mespot.synth.identities import _MeshFinder, list_identities, mesh_disagreement
from mespot.synth.meshwarp import MeshWarper
from mespot.synth.render import FrameRenderer, make_warper, turn_homography
from mespot.synth.timeline import Expression, SynthParams, Timeline, decoding_limits, plan_timeline
from mespot.config import load_config


@pytest.fixture(scope="module")
def astronaut():
    return list_identities("astronaut", size=(640, 480))[0]


@pytest.fixture(scope="module")
def warper(astronaut):
    return MeshWarper(astronaut)


def _peak_at(field: np.ndarray, point: np.ndarray) -> float:
    x0, y0 = int(point[0]), int(point[1])
    return float(np.hypot(*field[:, y0, x0]))


def _box_point(warper, mesh_index: int) -> np.ndarray:
    x0, y0, _, _ = warper.box
    return warper.identity.mesh[mesh_index] - (x0, y0)


def test_every_au_field_has_a_unit_peak_and_stays_still_on_the_box_border(warper):
    for au in AU_PULLS:
        field = warper.expression_field((au,))
        mag = np.hypot(field[0], field[1])
        assert mag.max() == pytest.approx(1.0, abs=1e-5), au
        border = np.concatenate([mag[0], mag[-1], mag[:, 0], mag[:, -1]])
        assert border.max() < 1e-6, au


@pytest.mark.parametrize("au, moves, still", [
    ((1, 2), (19, 24), (48, 54, 57)),      # brows up, mouth still
    ((4,), (20, 23), (48, 54, 57)),
    ((9,), (30,), (18, 25, 57)),           # nose tip up, outer brows and lower lip still
    ((12,), (48, 54), (18, 19, 24, 25)),   # lip corners, brows still
    ((15,), (48, 54), (18, 19, 24, 25)),
    ((17,), (57,), (18, 19, 24, 25)),
])
def test_each_au_moves_its_own_region_of_the_model(warper, au, moves, still):
    field = warper.expression_field(au)
    moving = [_peak_at(field, _box_point(warper, MESH_OF_IBUG[i])) for i in moves]
    resting = [_peak_at(field, _box_point(warper, MESH_OF_IBUG[i])) for i in still]
    assert min(moving) > 0.3, (au, moving)
    assert max(resting) < 0.05, (au, resting)


def test_directions_follow_facs(warper):
    up = lambda aus, ibug: vertex_displacements(warper.identity.mesh, aus)[MESH_OF_IBUG[ibug]]
    assert up((1, 2), 19)[1] < 0 and up((4,), 20)[1] > 0           # brows up / down (image y down)
    assert up((12,), 48)[1] < 0 and up((15,), 48)[1] > 0           # corners up / down
    assert up((20,), 48)[0] < 0 < up((20,), 54)[0]                 # corners outward on each side
    assert up((26,), 57)[1] > 0                                    # jaw drop


def test_the_two_renderers_move_the_face_differently(astronaut, warper):
    gaussian = make_warper("gaussian", astronaut).expression_field((12,))
    piecewise = warper.expression_field((12,))
    corr = np.corrcoef(gaussian.ravel(), piecewise.ravel())[0, 1]
    assert corr < 0.9                 # same AU, visibly another motion field
    with pytest.raises(ValueError, match="gaussian, piecewise"):
        make_warper("nonsense", astronaut)


def test_piecewise_frames_change_only_inside_planted_intervals(astronaut, warper):
    n = 8
    tl = Timeline(n_frames=n, fps=30.0, expressions=[Expression("macro", 2, 3, 4, (12,), 6.0)],
                  expr_amp=np.array([0, 0, .5, 1, .5, 0, 0, 0], np.float32),
                  expr_index=np.array([-1, -1, 0, 0, 0, -1, -1, -1], np.int32),
                  blink=np.zeros(n, np.float32), talk_px=np.zeros(n, np.float32),
                  head=np.zeros((n, 4), np.float32), gain=np.ones(n, np.float32), noise_sigma=0.0,
                  noise_seed=0)
    renderer = FrameRenderer(astronaut, tl, warper)
    frames = [renderer.frame(t) for t in range(n)]
    same = [np.array_equal(frames[0], f) for f in frames]
    assert same == [True, True, False, False, False, True, True, True]


def test_default_params_keep_every_draw_and_wide_adds_turns_and_blur():
    default = plan_timeline(900, 30.0, 4)
    assert default.turn is None and default.blur_px == 0.0
    wide = plan_timeline(900, 30.0, 4, SynthParams.wide())
    assert wide.turn is not None and np.abs(wide.turn).max() <= 15.0 + 1e-6
    assert 0.0 <= wide.blur_px <= 1.5
    # the wide set draws its extras after the standard tracks, so turning them on one by one keeps
    # the expressions of the same seed
    assert plan_timeline(900, 30.0, 4, SynthParams(turn_deg=10.0)).expressions == default.expressions


def test_varied_profiles_are_asymmetric_and_still_decodable():
    config = load_config("live")
    tl = plan_timeline(30 * 120, 30.0, 9, SynthParams.wide(micro_per_min=8, macro_per_min=8))
    ratios = []
    for e in tl.expressions:
        lim = decoding_limits(config, e.kind, 30.0)
        assert lim.start_range[0] <= e.apex - e.onset <= lim.start_range[1]
        assert lim.end_range[0] <= e.offset - e.apex <= lim.end_range[1]
        ratios.append((e.apex - e.onset) / max(e.offset - e.apex, 1))
    assert min(ratios) < 0.6 and max(ratios) > 1.6      # fast and slow rises both occur


def test_turn_homography_foreshortens_the_side_turned_away():
    h = turn_homography((320.0, 240.0), 200.0, 15.0, 0.0)
    pts = cv2.perspectiveTransform(np.array([[[220.0, 240.0], [420.0, 240.0], [320.0, 240.0]]]), h)[0]
    assert pts[2] == pytest.approx([320.0, 240.0], abs=1e-4)   # float32 corner fit
    left, right = 320 - pts[0, 0], pts[1, 0] - 320
    assert min(left, right) < 100.0 < max(left, right)     # the side turned away shrinks
    assert left + right == pytest.approx(200.0 * np.cos(np.radians(15.0)), rel=0.01)
    assert np.allclose(turn_homography((320.0, 240.0), 200.0, 0.0, 0.0), np.eye(3), atol=1e-6)


def test_framing_draws_sizes_within_the_limits():
    framing = Framing()
    for seed in range(40):
        size, width, offset = framing.draw(seed)
        assert size in framing.sizes
        assert framing.min_face_frac * size[0] - 1e-9 <= width <= framing.max_face_frac * size[1] + 1e-9
        assert width <= framing.face_px[1] + 1e-9
        assert framing.draw(seed) == (size, width, offset)


def test_reframed_mesh_stays_on_the_face(astronaut):
    finder = _MeshFinder()
    try:
        for size, width in (((1280, 720), 300.0), ((640, 360), 110.0)):
            face = reframe(astronaut, size, width, (0.05, -0.03))
            assert face.size == size and face.face_width == pytest.approx(width, rel=1e-4)
            found = finder.faces(face.image)
            assert found and min(mesh_disagreement(face.mesh, f) for f in found) < 0.03
    finally:
        finder.close()


def test_wide_piecewise_dataset_records_renderer_and_framing(tmp_path):
    manifest = generate_dataset(tmp_path / "d", "astronaut", n_videos=2, minutes=0.05, seed=3,
                                params=SynthParams.wide(), progress=False, renderer="piecewise",
                                framing=Framing(sizes=((320, 240), (480, 270)), face_px=(60.0, 120.0)))
    assert manifest["renderer"] == "piecewise" and manifest["framing"]["face_px"] == [60.0, 120.0]
    for video in manifest["videos"]:
        assert tuple(video["size"]) in ((320, 240), (480, 270))
        cap = cv2.VideoCapture(str(tmp_path / "d" / "videos" / f"{video['video_name']}.mp4"))
        ok, frame = cap.read()
        cap.release()
        assert ok and frame.shape[1::-1] == tuple(video["size"])
    with pytest.raises(ValueError, match="renderer"):
        generate_dataset(tmp_path / "e", "astronaut", n_videos=1, minutes=0.05, renderer="x", progress=False)
