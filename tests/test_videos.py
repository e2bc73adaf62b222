"""Whole-video feature records from the project's files and from the authors' segment files."""
from __future__ import annotations

import numpy as np
import pytest

from mespot.data.annotations import Annotation, AnnotationSet
from mespot.data.videos import VideoFeatures, load_feature_dir, load_reference_segments
from mespot.featurefile import FeatureFile, save_features


def _ann(*pairs):
    return AnnotationSet([Annotation(s, v, 5, 8, 12, "micro", "12") for s, v in pairs], [])


def _feature_file(t, seed, meta=None):
    rng = np.random.default_rng(seed)
    valid = np.ones(t, bool)
    valid[0] = False
    return FeatureFile(rng.normal(size=(t, 12, 2)).astype(np.float32), valid,
                       np.arange(t) / 30.0, np.zeros((t, 12, 2), np.float32), meta or {"fps": 30.0})


def test_feature_dir_subjects_from_annotations_meta_and_name(tmp_path):
    save_features(tmp_path / "s01_a.npz", _feature_file(40, 0))
    save_features(tmp_path / "s01_b.npz", _feature_file(30, 1))                      # no rows: from name
    save_features(tmp_path / "x_c.npz", _feature_file(20, 2, {"fps": 25.0, "subject": "s09"}))  # from meta
    ann = _ann(("s01", "s01_a"))
    videos = load_feature_dir(tmp_path, ann)
    assert [(v.video, v.subject, len(v), v.fps) for v in videos] == [
        ("s01_a", "s01", 40, 30.0), ("s01_b", "s01", 30, 30.0), ("x_c", "s09", 20, 25.0)]
    a = videos[0]
    assert a.features.dtype == np.float32 and a.features.shape == (40, 12, 2)
    assert a.valid.dtype == bool and not a.valid[0] and a.valid[1:].all()
    np.testing.assert_array_equal(a.features, _feature_file(40, 0).features)


def test_feature_dir_reports_missing_and_unattributable_files(tmp_path):
    save_features(tmp_path / "s01_a.npz", _feature_file(10, 0))
    ann = _ann(("s01", "s01_a"), ("s02", "s02_a"), ("s02", "s02_b"))
    with pytest.raises(FileNotFoundError, match=r"2 annotated video\(s\) have no feature file in .*: s02_a, s02_b"):
        load_feature_dir(tmp_path, ann)
    assert [v.video for v in load_feature_dir(tmp_path, ann, allow_missing=True)] == ["s01_a"]
    save_features(tmp_path / "zz_q.npz", _feature_file(10, 3))
    with pytest.raises(ValueError, match="cannot tell the subject of zz_q"):
        load_feature_dir(tmp_path, _ann(("s01", "s01_a")))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_feature_dir(tmp_path / "absent", ann)


def _write_segments(folder, video, features):
    """Segment files as the reference writes them (reference-model.md §3.1): 270 rows, 7 of borrowed context."""
    folder.mkdir(parents=True, exist_ok=True)
    n_seg = -(-len(features) // 256)
    padded = np.zeros((256 * n_seg + 14, 12, 2), np.float32)
    padded[7:7 + len(features)] = features
    for s in range(n_seg):
        np.savez(folder / f"{video}_{256 * s:04d}.npz", feature=padded[256 * s:256 * s + 270],
                 label=np.zeros((270, 8), np.int64), video_name=video)


def test_reference_segments_reassemble_whole_videos(tmp_path):
    rng = np.random.default_rng(0)
    long_video = rng.normal(size=(600, 12, 2)).astype(np.float32)
    short_video = rng.normal(size=(256, 12, 2)).astype(np.float32)
    _write_segments(tmp_path / "test" / "casme_015", "casme_015_0401", long_video)
    _write_segments(tmp_path / "test" / "casme_016", "casme_016_0101", short_video)
    videos = load_reference_segments(tmp_path, fps=30.0)
    assert [(v.video, v.subject, len(v)) for v in videos] == [
        ("casme_015_0401", "casme_015", 768), ("casme_016_0101", "casme_016", 256)]
    np.testing.assert_array_equal(videos[0].features[:600], long_video)
    assert not videos[0].features[600:].any()            # the last segment's zero padding
    np.testing.assert_array_equal(videos[1].features, short_video)
    assert videos[0].valid.all() and videos[0].fps == 30.0
    ann = _ann(("subj_x", "casme_016_0101"))
    assert load_reference_segments(tmp_path, 25.0, ann)[1].subject == "subj_x"


def test_reference_segments_errors(tmp_path):
    feats = np.zeros((600, 12, 2), np.float32)
    _write_segments(tmp_path / "a", "v1", feats)
    (tmp_path / "a" / "v1_0256.npz").unlink()
    with pytest.raises(ValueError, match=r"v1: segment offsets \[0, 512\]"):
        load_reference_segments(tmp_path / "a")
    np.savez(tmp_path / "b.npz", feature=np.zeros((270, 12, 2)))
    with pytest.raises(ValueError, match="not a segment file name"):
        load_reference_segments(tmp_path)
    (tmp_path / "c").mkdir()
    np.savez(tmp_path / "c" / "v2_0000.npz", feature=np.zeros((256, 12, 2)), video_name="v2")
    with pytest.raises(ValueError, match=r"expected \(270, 12, 2\)"):
        load_reference_segments(tmp_path / "c")
    (tmp_path / "d").mkdir()
    np.savez(tmp_path / "d" / "v3_0000.npz", feature=np.zeros((270, 12, 2)), video_name="other")
    with pytest.raises(ValueError, match="disagrees with the file name"):
        load_reference_segments(tmp_path / "d")
    (tmp_path / "e").mkdir()
    with pytest.raises(FileNotFoundError, match="no segment files"):
        load_reference_segments(tmp_path / "e")


def test_video_features_checks_shapes():
    with pytest.raises(ValueError, match=r"\(T, 12, 2\)"):
        VideoFeatures("v", "s", np.zeros((5, 10, 2), np.float32), np.ones(5, bool), 30.0)
    with pytest.raises(ValueError, match="valid must be"):
        VideoFeatures("v", "s", np.zeros((5, 12, 2), np.float32), np.ones(4, bool), 30.0)
