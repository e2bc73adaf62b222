"""Per-index targets and training segments on hand-made intervals, each reference-model.md §10.9 fix included."""
from __future__ import annotations

import math

import numpy as np
import pytest

from mespot.config import TrainConfig
from mespot.data.annotations import Annotation, AnnotationSet
from mespot.data.videos import VideoFeatures
from mespot.train.dataset import BuildReport, build_segments, normalisation_stats, video_segments
from mespot.train.targets import END, NONE, START, TrainInterval, build_targets, run_intervals, segment_run

MICRO, MACRO = 0, 1


def targets(length, *intervals):
    return build_targets(length, [TrainInterval(*iv) for iv in intervals],
                         micro_normal_range=1, macro_normal_range=3)


def indices(row, value):
    return np.flatnonzero(row == value).tolist()


def test_micro_interval_targets():
    t = targets(40, (10, 15, 20, "micro"))
    assert indices(t.start_end[MICRO], START) == [9, 10, 11]
    assert indices(t.start_end[MICRO], END) == [19, 20, 21]
    assert (t.start_end[MACRO] == NONE).all() and not t.apex[MACRO].any() and not t.action[MACRO].any()
    assert t.apex[MICRO, 15] == 1.0
    assert t.apex[MICRO, 14] == t.apex[MICRO, 16] == pytest.approx(0.9692, abs=1e-4)
    assert np.count_nonzero(t.apex[MICRO]) == 3
    assert indices(t.action[MICRO], 1.0) == list(range(10, 21))
    assert t.start_end.dtype == np.int64 and t.apex.dtype == np.float32


def test_macro_apex_gaussian_values():
    t = targets(60, (10, 30, 50, "macro"))
    expected = {0: 1.0, 1: 0.9692, 2: 0.8825, 3: 0.7548}
    for j, v in expected.items():
        assert t.apex[MACRO, 30 - j] == pytest.approx(v, abs=1e-4)
        assert t.apex[MACRO, 30 + j] == pytest.approx(v, abs=1e-4)
    assert np.count_nonzero(t.apex[MACRO]) == 7
    assert indices(t.start_end[MACRO], START) == list(range(7, 14))
    assert indices(t.start_end[MACRO], END) == list(range(47, 54))


def test_fix_right_bound_uses_real_length():
    """The reference stopped the dilation at index 255 of a 270 window; the real length bounds it."""
    t = targets(300, (240, 250, 256, "macro"))
    assert indices(t.start_end[MACRO], END) == list(range(253, 260))
    t = targets(258, (240, 250, 256, "macro"))
    assert indices(t.start_end[MACRO], END) == [253, 254, 255, 256, 257]


def test_fix_apex_left_check_reaches_index_zero():
    t = targets(30, (0, 1, 8, "macro"))
    assert t.apex[MACRO, 0] == pytest.approx(math.exp(-1 / 32))   # the reference left index 0 at 0
    assert t.apex[MACRO, 1] == 1.0


def test_fix_end_does_not_overwrite_start():
    """Overlapping neighbourhoods: the nearer flag wins, a tie goes to start (reference: all end)."""
    t = targets(40, (10, 12, 14, "macro"))
    assert indices(t.start_end[MACRO], START) == [7, 8, 9, 10, 11, 12]
    assert indices(t.start_end[MACRO], END) == [13, 14, 15, 16, 17]
    # Flags themselves always keep their class, even between two intervals of the same kind.
    t = targets(60, (10, 15, 20, "micro"), (21, 25, 30, "micro"))
    assert t.start_end[MICRO, 20] == END and t.start_end[MICRO, 21] == START


@pytest.mark.parametrize("order", [1, -1])
def test_fix_apex_overlap_keeps_maximum(order):
    ivs = [(5, 20, 30, "macro"), (8, 22, 35, "macro")][::order]
    t = targets(50, *ivs)
    assert t.apex[MACRO, 20] == 1.0 and t.apex[MACRO, 22] == 1.0          # later writes lowered these
    assert t.apex[MACRO, 21] == pytest.approx(math.exp(-1 / 32))
    assert t.apex[MACRO, 19] == pytest.approx(math.exp(-1 / 32))


def test_interval_outside_run_is_an_error():
    with pytest.raises(ValueError, match="not inside"):
        targets(20, (15, 18, 25, "micro"))


def _run(length, seed=0):
    return np.random.default_rng(seed).normal(size=(length, 12, 2)).astype(np.float32)


def test_segment_windows_padding_and_weight():
    feats = _run(600)
    t = targets(600, (100, 110, 120, "micro"), (250, 251, 253, "micro"), (530, 545, 560, "macro"))
    seg = segment_run(feats, t, np.ones(600, np.float32), length=256, context=7, keep_neutral=False)
    assert len(seg) == 3 and seg.features.shape == (3, 270, 12, 2) and seg.start_end.shape == (3, 2, 256)
    assert not seg.features[0, :7].any()
    np.testing.assert_array_equal(seg.features[0, 7:263], feats[:256])
    np.testing.assert_array_equal(seg.features[1], feats[249:519])
    np.testing.assert_array_equal(seg.features[2, :95], feats[505:600])
    assert not seg.features[2, 95:].any()
    np.testing.assert_array_equal(seg.start_end[1], t.start_end[:, 256:512])
    assert seg.weight[2].sum() == 600 - 512 and seg.weight[2, 87] == 1 and seg.weight[2, 88] == 0
    assert (seg.start_end[2, :, 88:] == NONE).all() and not seg.apex[2, :, 88:].any()


def test_expression_free_segments_dropped_unless_kept():
    feats = _run(600)
    only_first = targets(600, (100, 110, 120, "micro"))
    seg = segment_run(feats, only_first, np.ones(600, np.float32), length=256, context=7, keep_neutral=False)
    assert len(seg) == 1 and seg.action[0, MICRO, 100] == 1
    seg = segment_run(feats, only_first, np.ones(600, np.float32), length=256, context=7, keep_neutral=True)
    assert len(seg) == 3
    # An expression in the 7 context indices of the next window keeps that window too (reference rule).
    near_edge = targets(600, (245, 248, 250, "micro"))
    seg = segment_run(feats, near_edge, np.ones(600, np.float32), length=256, context=7, keep_neutral=False)
    assert len(seg) == 2


def test_run_intervals_split_and_partial():
    ivs = [TrainInterval(10, 15, 20, "micro"), TrainInterval(95, 100, 105, "macro"),
           TrainInterval(150, 160, 170, "macro")]
    inside, partial = run_intervals(ivs, 100, 200)
    assert inside == [TrainInterval(50, 60, 70, "macro")]
    assert partial == [(0, 5)]


def test_video_with_gap_is_segmented_per_run():
    valid = np.ones(600, bool)
    valid[0] = False
    valid[300:310] = False
    feats = _run(600)
    video = VideoFeatures("v1", "s1", feats, valid, 30.0)
    ivs = [TrainInterval(295, 300, 305, "micro"), TrainInterval(400, 410, 420, "micro")]
    train = TrainConfig(use_neutral_segments=True)
    seg = video_segments(video, ivs, train)
    # run (1, 300) has 299 indices -> 2 windows; run (310, 600) has 290 -> 2 windows
    assert len(seg) == 4
    np.testing.assert_array_equal(seg.features[2, 7:263], feats[310:566])
    assert not seg.features[2, :7].any()                      # no context borrowed across the gap
    assert indices(seg.action[2, MICRO], 1.0) == list(range(90, 111))
    # the expression cut by the gap (295..305) is masked out, never labelled
    assert seg.weight[1, :38].all() and not seg.weight[1, 38:].any()
    assert not seg.action[:2].any() and (seg.start_end[:2] == NONE).all()


def test_build_segments_uses_training_repairs():
    ann = AnnotationSet([Annotation("s1", "v1", 100, 110, 0, "macro", "12"),      # end 0 -> 2*apex-start
                         Annotation("s1", "v1", 0, 0, 50, "micro", ""),          # >= 2 zeros: skipped
                         Annotation("s1", "other", 5, 8, 11, "micro", "")], [])   # not a training video
    video = VideoFeatures("v1", "s1", _run(300), np.ones(300, bool), 30.0)
    report = BuildReport()
    seg = build_segments([video], ann, TrainConfig(), report)
    assert len(seg) == 1
    assert indices(seg.action[0, MACRO], 1.0) == list(range(100, 121))
    assert not seg.action[0, MICRO].any()
    assert report.intervals_used == 1 and len(report.skipped) == 1 and "v1 micro 0/0/50" in report.skipped[0]


def test_normalisation_uses_valid_frames_only():
    feats = np.zeros((10, 12, 2), np.float32)
    feats[:5, :, 0], feats[:5, :, 1] = 1.0, 3.0
    feats[5:8, :, 0], feats[5:8, :, 1] = 3.0, 5.0
    feats[8:] = 1000.0
    valid = np.array([True] * 8 + [False] * 2)
    mean, std = normalisation_stats([VideoFeatures("v", "s", feats, valid, 30.0)])
    assert mean == pytest.approx((1.75, 3.75))
    assert std == pytest.approx((np.std([1] * 5 + [3] * 3), np.std([3] * 5 + [5] * 3)))
