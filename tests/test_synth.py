"""spot-synth: planted expressions, their annotations, the warps, distractors and reproducibility."""
from __future__ import annotations

import csv
import hashlib
import json

import cv2
import numpy as np
import pytest

from mespot.config import load_config
from mespot.synth.aus import (BUILTIN_COMBOS, REGION_AUS, AuSampler, combination_counts,
                              parse_au_string)
from mespot.synth.dataset import CSV_COLUMNS, generate_dataset, video_seeds
from mespot.synth.identities import (MESH_AGREEMENT, IdentityError, _MeshFinder, frame_checked,
                                     list_identities, mesh_disagreement)
from mespot.synth.render import FrameRenderer, render_video
from mespot.synth.timeline import (ANNOTATION_FRACTION, Expression, SynthParams, Timeline,
                                   decoding_limits, plan_timeline, sample_profile)
from helpers import read_frames

SMALL = (320, 240)


@pytest.fixture(scope="module")
def astronaut():
    return list_identities("astronaut", size=(640, 480))[0]


@pytest.fixture(scope="module")
def small_astronaut():
    return list_identities("astronaut", size=SMALL)[0]


def _decode(path) -> list[np.ndarray]:
    return read_frames(path)


def _read_csv(path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_au_strings_parse_like_the_benchmarks():
    assert parse_au_string("4+10+14") == (4, 10, 14)
    assert parse_au_string("4(B/C)+7B") == (4, 7)
    assert parse_au_string("A1B+A2B+ref(5)") == (1, 2)
    assert parse_au_string("L12A or 14A") == (12,)
    assert parse_au_string("38") == ()          # not a supported AU
    assert parse_au_string("") == ()


def test_builtin_au_table_has_only_region_visible_combinations():
    for kind in ("micro", "macro"):
        assert BUILTIN_COMBOS[kind], kind
        for combo in BUILTIN_COMBOS[kind]:
            assert REGION_AUS.intersection(combo), combo
    sampler = AuSampler(BUILTIN_COMBOS, "builtin")
    rng = np.random.default_rng(0)
    draws = [sampler.sample("macro", rng) for _ in range(2000)]
    # The two most frequent real macro combinations (AU12 and AU4 alone) dominate the draws.
    top = {c: draws.count(c) / len(draws) for c in [(12,), (4,)]}
    assert all(0.08 < share < 0.25 for share in top.values()), top


def test_au_counts_from_real_annotations(shared_path):
    casme = shared_path("data", "annotations", "casme2.csv")
    counts = combination_counts([casme])
    # CAS(ME)^2: 67 macro rows are exactly '4'; 56 are '12', plus '12+11' and '12+18' whose second
    # AU is not modelled; 12 micro rows are '4'.
    assert counts["macro"][(4,)] == 67
    assert counts["macro"][(12,)] == 58
    assert counts["micro"][(4,)] == 12
    assert (43,) not in counts["micro"]        # eye-only rows are dropped


def test_builtin_table_is_the_real_counts(shared_path):
    """The fallback for checkouts without ../shared is exactly the real table (combinations seen twice+)."""
    counts = combination_counts([shared_path("data", "annotations", "casme2.csv"),
                                 shared_path("data", "annotations", "samm_lv_25fps.csv")])
    for kind in ("micro", "macro"):
        assert BUILTIN_COMBOS[kind] == {c: n for c, n in counts[kind].items() if n >= 2}


@pytest.mark.parametrize("kind", ["micro", "macro"])
def test_profiles_follow_the_annotation_rule_and_decoding_limits(kind):
    params, config = SynthParams(), load_config("live")
    limits = decoding_limits(config, kind, 30.0)
    rng = np.random.default_rng(7)
    lo_s, hi_s = params.micro_seconds if kind == "micro" else params.macro_seconds
    for _ in range(200):
        amp, apex = sample_profile(kind, 30.0, params, limits, rng)
        d = len(amp) - 1
        assert amp[0] >= ANNOTATION_FRACTION and amp[-1] >= ANNOTATION_FRACTION
        assert amp[apex] == amp.max()
        assert lo_s * 30 - 1e-9 <= d <= hi_s * 30 + 1e-9
        assert limits.min_len <= d <= limits.max_len
        assert limits.start_range[0] <= apex <= limits.start_range[1]
        assert limits.end_range[0] <= d - apex <= limits.end_range[1]
        assert np.all(np.diff(amp[:apex + 1]) >= 0) and np.all(np.diff(amp[apex:]) <= 0)


def test_timeline_is_a_function_of_its_seed_and_intervals_match_intensities():
    a = plan_timeline(3600, 30.0, 11)
    b = plan_timeline(3600, 30.0, 11)
    c = plan_timeline(3600, 30.0, 12)
    assert a.intervals() == b.intervals() and np.array_equal(a.head, b.head)
    assert a.intervals() != c.intervals()
    assert {e.kind for e in a.expressions} == {"micro", "macro"}
    moving = a.expr_amp > 0
    planted = np.zeros_like(moving)
    gap = int(SynthParams().min_gap_s * 30)
    for k, e in enumerate(a.expressions):
        assert a.expr_amp[e.onset] > 0 and a.expr_amp[e.offset] > 0
        assert a.expr_amp[e.apex] == a.expr_amp[e.onset:e.offset + 1].max()
        assert np.all(a.expr_index[e.onset:e.offset + 1] == k)
        planted[e.onset:e.offset + 1] = True
        if k:
            assert e.onset - a.expressions[k - 1].offset > gap
    assert np.array_equal(moving, planted)     # zero displacement outside the annotations


def test_distractor_only_timeline_has_distractors_and_no_expressions():
    tl = plan_timeline(1800, 30.0, 3, expressions=False)
    assert tl.expressions == [] and not tl.expr_amp.any()
    assert len(tl.events["blinks"]) > 0 and tl.blink.max() > 0.5
    assert np.ptp(tl.head[:, 0]) > 0


def _still_timeline(n, expressions, amp_at):
    """A timeline with no distractors or noise: only the given expressions move."""
    expr_amp = np.zeros(n, np.float32)
    expr_index = np.full(n, -1, np.int32)
    for k, (frame, value) in enumerate(amp_at):
        expr_amp[frame] = value
        expr_index[frame] = k
    return Timeline(n_frames=n, fps=30.0, expressions=expressions, expr_amp=expr_amp,
                    expr_index=expr_index, blink=np.zeros(n, np.float32), talk_px=np.zeros(n, np.float32),
                    head=np.zeros((n, 4), np.float32), gain=np.ones(n, np.float32), noise_sigma=0.0,
                    noise_seed=0)


def _tracked_motion(before, after, points):
    """Pyramidal Lucas-Kanade displacement of `points` from `before` to `after` (grey images)."""
    p0 = points.reshape(-1, 1, 2).astype(np.float32)
    p1, status, _ = cv2.calcOpticalFlowPyrLK(before, after, p0, None, winSize=(21, 21), maxLevel=2)
    assert status.all()
    return (p1 - p0).reshape(-1, 2)


def test_au12_pulls_the_mouth_corners_up_and_out_and_leaves_the_brows(astronaut):
    tl = _still_timeline(2, [Expression("macro", 1, 1, 1, (12,), 6.0)], [(1, 1.0)])
    renderer = FrameRenderer(astronaut, tl)
    neutral = cv2.cvtColor(renderer.frame(0), cv2.COLOR_BGR2GRAY)
    apex = cv2.cvtColor(renderer.frame(1), cv2.COLOR_BGR2GRAY)
    mesh = astronaut.mesh
    corners = _tracked_motion(neutral, apex, mesh[[61, 291]])   # subject's right (image left), left
    scale = astronaut.face_width / 224
    assert corners[0, 0] < -1.0 * scale and corners[1, 0] > 1.0 * scale      # outward
    assert corners[0, 1] < -1.5 * scale and corners[1, 1] < -1.5 * scale      # upward
    assert np.linalg.norm(corners, axis=1).max() < 6.0 * scale + 0.5          # not beyond the peak
    still = _tracked_motion(neutral, apex, mesh[[105, 334, 6]])               # brows, nose bridge
    assert np.abs(still).max() < 0.3


def test_au1_raises_the_brows_and_leaves_the_mouth(astronaut):
    tl = _still_timeline(2, [Expression("macro", 1, 1, 1, (1,), 5.0)], [(1, 1.0)])
    renderer = FrameRenderer(astronaut, tl)
    neutral = cv2.cvtColor(renderer.frame(0), cv2.COLOR_BGR2GRAY)
    apex = cv2.cvtColor(renderer.frame(1), cv2.COLOR_BGR2GRAY)
    brows = _tracked_motion(neutral, apex, astronaut.mesh[[107, 336]])
    assert (brows[:, 1] < -1.5).all()
    mouth = _tracked_motion(neutral, apex, astronaut.mesh[[61, 291, 17]])
    assert np.abs(mouth).max() < 0.3


def test_renderer_moves_the_face_only_inside_planted_intervals(small_astronaut):
    tl = plan_timeline(600, 30.0, 5)
    quiet = _still_timeline(600, tl.expressions, [])
    quiet.expr_amp, quiet.expr_index = tl.expr_amp, tl.expr_index
    renderer = FrameRenderer(small_astronaut, quiet)
    inside = np.zeros(600, bool)
    for e in tl.expressions:
        inside[e.onset:e.offset + 1] = True
    moved = np.array([renderer.displacement(t) is not None for t in range(600)])
    assert inside.any() and np.array_equal(moved, inside)


def test_same_seed_same_bytes_different_seed_different_video(small_astronaut, tmp_path):
    paths = []
    for name, seed in [("a", 21), ("b", 21), ("c", 22)]:
        tl = plan_timeline(60, 30.0, seed, counts={"micro": 1, "macro": 0},
                           params=SynthParams(lead_in_s=0.2, min_gap_s=0.2))
        paths.append(render_video(small_astronaut, tl, tmp_path / f"{name}.mp4"))
    digest = [hashlib.sha256(p.read_bytes()).hexdigest() for p in paths]
    assert digest[0] == digest[1] and digest[0] != digest[2]
    a, b, c = (_decode(p) for p in paths)
    assert len(a) == 60 and all(np.array_equal(x, y) for x, y in zip(a, b))
    assert any(not np.array_equal(x, y) for x, y in zip(a, c))


def test_jpeg_jitter_changes_frames_deterministically_and_nothing_else(small_astronaut):
    plain = plan_timeline(30, 30.0, 8)
    jittered = plan_timeline(30, 30.0, 8, params=SynthParams(jpeg_quality=(40, 60)))
    assert plain.intervals() == jittered.intervals() and np.array_equal(plain.head, jittered.head)
    assert jittered.jpeg_quality.min() >= 40 and jittered.jpeg_quality.max() <= 60
    a, b = FrameRenderer(small_astronaut, plain), FrameRenderer(small_astronaut, jittered)
    assert not np.array_equal(a.frame(3), b.frame(3))
    assert np.array_equal(b.frame(3), FrameRenderer(small_astronaut, jittered).frame(3))


def test_dataset_annotations_match_the_planted_timelines(small_astronaut, tmp_path):
    params = SynthParams(micro_per_min=10, macro_per_min=10)
    manifest = generate_dataset(tmp_path, [small_astronaut], n_videos=2, minutes=0.2, seed=4,
                                progress=False, params=params)
    rows = _read_csv(tmp_path / "annotations.csv")
    with open(tmp_path / "annotations.csv") as fh:
        assert fh.readline().strip() == ",".join(CSV_COLUMNS)
    assert json.loads((tmp_path / "manifest.json").read_text()) == json.loads(json.dumps(manifest))
    seeds = video_seeds(4, 2)
    expected = []
    for k, seed in enumerate(seeds):
        name = f"astronaut_{k:03d}"
        assert manifest["videos"][k]["video_name"] == name and manifest["videos"][k]["seed"] == seed
        tl = plan_timeline(360, 30.0, seed, params=params)
        expected += [["astronaut", name, str(e.onset), str(e.apex), str(e.offset),
                      "2" if e.kind == "micro" else "1", "+".join(map(str, e.aus))] for e in tl.expressions]
        frames = _decode(tmp_path / "videos" / f"{name}.mp4")
        assert len(frames) == 360 and frames[0].shape == (SMALL[1], SMALL[0], 3)
    assert [[r[c] for c in CSV_COLUMNS] for r in rows] == expected
    assert {r["type_idx"] for r in rows} == {"1", "2"}


def test_distractor_only_dataset_writes_no_rows(small_astronaut, tmp_path):
    manifest = generate_dataset(tmp_path, [small_astronaut], n_videos=1, minutes=0.1, seed=1,
                                expressions=False, progress=False)
    assert _read_csv(tmp_path / "annotations.csv") == []
    video = manifest["videos"][0]
    assert video["expressions"] == [] and video["distractors"]["blinks"]
    assert len(_decode(tmp_path / "videos" / "astronaut_000.mp4")) == 180


def test_multi_face_image_gives_one_named_identity_per_face(shared_path):
    path = shared_path("media", "multi_face.jpg")
    faces = list_identities(str(path), size=SMALL)
    assert [f.name for f in faces] == [f"multi_face_{k}" for k in range(len(faces))]
    assert len(faces) >= 2
    for face in faces:
        assert face.image.shape == (SMALL[1], SMALL[0], 3)
        assert face.face_width == pytest.approx(0.35 * SMALL[0], rel=1e-3)


def test_every_face_of_the_group_photo_is_found_where_its_mesh_says(shared_path):
    """The planted expressions move the points of an identity's mesh, so that mesh must lie on the
    face: found again in the framed image (and by the live tracker), it agrees. Before the check,
    multi_face_2's static fit sat about 100 px low at 640x480, eyes on the nose."""
    faces = list_identities(str(shared_path("media", "multi_face.jpg")))
    finder = _MeshFinder()
    try:
        for face in faces:
            fresh = min(finder.faces(face.image), key=lambda p: mesh_disagreement(face.mesh, p))
            assert mesh_disagreement(face.mesh, fresh) <= MESH_AGREEMENT, face.name
    finally:
        finder.close()


class _FinderAt:
    """Stands in for MediaPipe: 'finds' one known face, given in source-image pixels, in whatever
    framed image it is shown (framing is a scale and a shift, read off the mesh it was framed from)."""

    def __init__(self, true_mesh, framings):
        self.true_mesh = true_mesh
        self.framings = framings     # filled by the test: the (source, framed) meshes of each call

    def faces(self, image):
        src, framed = self.framings[-1]
        scale = np.linalg.norm(framed[454] - framed[234]) / np.linalg.norm(src[454] - src[234])
        shift = framed[0] - src[0] * scale
        return [self.true_mesh * scale + shift]


def test_a_mesh_off_the_face_is_replaced_by_the_face_found_after_framing(monkeypatch):
    from mespot.synth import identities

    rng = np.random.default_rng(0)
    true_mesh = (rng.uniform(0, 100, (468, 2)) + 200).astype(np.float32)
    true_mesh[234], true_mesh[454] = (200, 250), (300, 250)      # a 100 px wide face
    bad = true_mesh + np.float32([0, 40])                         # the static fit sat 40 px low
    framings = []
    original = identities.frame_face

    def recording_frame_face(bgr, mesh, size, face_frac):
        image, framed = original(bgr, mesh, size, face_frac)
        framings.append((mesh, framed))
        return image, framed

    monkeypatch.setattr(identities, "frame_face", recording_frame_face)
    bgr = np.zeros((480, 640, 3), np.uint8)
    image, framed = frame_checked(bgr, bad, (640, 480), 0.35, _FinderAt(true_mesh, framings), "test")
    assert len(framings) == 2
    assert np.allclose(framings[-1][0], true_mesh, atol=1e-3)
    good_image, good_framed = original(bgr, true_mesh, (640, 480), 0.35)
    assert np.allclose(framed, good_framed, atol=1e-3)

    class Wandering(_FinderAt):   # a fit that never settles: each detection 40 px below the last
        def faces(self, image):
            return [self.framings[-1][1] + np.float32([0, 40])]

    framings.clear()
    with pytest.raises(IdentityError, match="does not settle"):
        frame_checked(bgr, bad, (640, 480), 0.35, Wandering(true_mesh, framings), "test")


def test_video_identity_and_bad_specs(shared_path):
    clip = shared_path("media", "face_noface.mov")
    (face,) = list_identities(str(clip), size=SMALL)
    assert face.name == "face_noface"
    with pytest.raises(IdentityError, match="no face"):
        list_identities(str(shared_path("media", "no_face.mp4")), size=SMALL)
    with pytest.raises(IdentityError, match="neither"):
        list_identities("does/not/exist.jpg")


def test_cli_rejects_bad_input_with_exit_2(tmp_path, capsys):
    from mespot.cli.synth import main

    assert main(["--out", str(tmp_path), "--identities", "missing.png", "--quiet"]) == 2
    assert "missing.png" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["--out", str(tmp_path), "--size", "640by480"])
    assert exc.value.code == 2


def test_cli_writes_a_dataset(tmp_path, capsys):
    from mespot.cli.synth import main

    assert main(["--out", str(tmp_path), "--videos", "1", "--minutes", "0.05", "--size", "320x240",
                 "--seed", "3", "--quiet"]) == 0
    assert "wrote 1 videos" in capsys.readouterr().out
    assert (tmp_path / "videos" / "astronaut_000.mp4").exists()
    assert json.loads((tmp_path / "manifest.json").read_text())["seed"] == 3
    # A second run into the same folder is refused, then replaces it with --force.
    assert main(["--out", str(tmp_path), "--videos", "1", "--minutes", "0.05", "--quiet"]) == 2
    assert "--force" in capsys.readouterr().err
    assert main(["--out", str(tmp_path), "--videos", "1", "--minutes", "0.05", "--size", "320x240",
                 "--seed", "4", "--identities", "astronaut", "--quiet", "--force"]) == 0
    assert json.loads((tmp_path / "manifest.json").read_text())["seed"] == 4
