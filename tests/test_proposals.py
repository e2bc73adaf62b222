"""Proposal decoding and NMS (reference-model.md §6) on hand-made probability tables."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from mespot.config import Config, DecodingConfig
from mespot.engine.probs import kind_columns
from mespot.eval.proposals import (
    decode_offline, decode_reference_segments, iou, nms, propose, propose_at_apex)
from mespot.types import Interval

MICRO = DecodingConfig(start_range=(2, 7), end_range=(2, 7), min_len=5, max_len=30, top_k=5)


def _table(t: int = 120) -> np.ndarray:
    """Neutral probabilities: start 0.1, end 0.1, none 0.8, apex 0, for both kinds."""
    p = np.zeros((t, 8), np.float32)
    for kind in ("micro", "macro"):
        s, e, n, _ = kind_columns(kind)
        p[:, s], p[:, e], p[:, n] = 0.1, 0.1, 0.8
    return p


def _plant(p, kind, start, apex, end, ps=0.7, pe=0.7, pa=0.9):
    s, e, _, a = kind_columns(kind)
    p[start, s], p[end, e], p[apex, a] = ps, pe, pa
    return p


def test_one_planted_interval():
    p = _plant(_table(), "micro", 45, 50, 56)
    got = propose_at_apex(p, 50, "micro", MICRO)
    assert (got.kind, got.onset, got.apex, got.offset) == ("micro", 45, 50, 56)
    assert got.score == pytest.approx(0.7 * 0.7 * 0.9, rel=1e-6)
    shifted = propose_at_apex(p, 50, "micro", MICRO, frame_offset=1)
    assert (shifted.onset, shifted.apex, shifted.offset) == (46, 51, 57)
    # the other kind's columns are untouched, and its search finds only neutral boundaries
    assert propose_at_apex(p, 50, "macro", MICRO) is None


def test_ties_go_to_the_index_nearest_the_apex():
    p = _plant(_table(), "micro", 44, 50, 53)
    _plant(p, "micro", 47, 50, 56)          # equal start at 47 and 44, equal end at 53 and 56
    got = propose_at_apex(p, 50, "micro", MICRO)
    assert (got.onset, got.offset) == (47, 53)


def test_validity_compares_start_with_end():
    p = _plant(_table(), "micro", 45, 50, 56)
    s, e, _, _ = kind_columns("micro")
    p[45, e] = 0.7                          # P_start(s) == P_end(s): not strictly greater
    assert propose_at_apex(p, 50, "micro", MICRO) is None
    p = _plant(_table(), "micro", 45, 50, 56)
    p[56, s] = 0.7                          # P_start(e) == P_end(e)
    assert propose_at_apex(p, 50, "micro", MICRO) is None


def test_length_filter_on_end_minus_start():
    p = _plant(_table(), "micro", 46, 50, 54)                 # e - s = 8
    assert propose_at_apex(p, 50, "micro", replace(MICRO, min_len=8)) is not None
    assert propose_at_apex(p, 50, "micro", replace(MICRO, min_len=9)) is None
    assert propose_at_apex(p, 50, "micro", replace(MICRO, min_len=5, max_len=8)) is not None
    assert propose_at_apex(p, 50, "micro", replace(MICRO, min_len=5, max_len=7)) is None


def test_search_reads_only_inside_lo_hi():
    p = _plant(_table(), "micro", 60, 64, 69)
    _plant(p, "micro", 57, 64, 71, ps=0.95, pe=0.95)          # stronger, but outside [60, 70)
    sub = p[60:70].copy()
    p_outside_nan = p.copy()
    p_outside_nan[:60] = np.nan
    p_outside_nan[70:] = np.nan
    got = propose_at_apex(p_outside_nan, 64, "micro", MICRO, lo=60, hi=70)
    ref = propose_at_apex(sub, 4, "micro", MICRO)
    assert (got.onset, got.apex, got.offset) == (60, 64, 69)
    assert (ref.onset + 60, ref.apex + 60, ref.offset + 60, ref.score) == (60, 64, 69, got.score)
    with pytest.raises(ValueError, match="outside"):
        propose_at_apex(p, 70, "micro", MICRO, lo=60, hi=70)


def test_propose_threshold_is_strict():
    p = _plant(_table(), "micro", 45, 50, 56, pa=0.5)
    assert propose(p, "micro", MICRO) == []
    p[50, kind_columns("micro")[3]] = 0.51
    assert [(i.onset, i.offset) for i in propose(p, "micro", MICRO)] == [(45, 56)]


def test_iou_rules():
    assert iou((0, 9), (5, 14), "megc") == pytest.approx(5 / 15)
    assert iou((0, 9), (5, 14), "reference") == pytest.approx(4 / 14)
    assert iou((0, 9), (0, 4), "megc") == 0.5
    assert iou((0, 9), (0, 4), "reference") == pytest.approx(4 / 9)
    assert iou((10, 20), (30, 40), "megc") == 0.0
    assert iou((2155, 0), (2150, 2170), "megc") == 0.0      # stored end 0: empty set
    assert iou((2155, 0), (2150, 2170), "reference") == 0.0
    with pytest.raises(ValueError, match="unknown IoU rule"):
        iou((0, 1), (0, 1), "coco")


def _iv(onset, offset, score, kind="micro"):
    return Interval(kind, onset, (onset + offset) // 2, offset, score)


def test_nms_order_suppression_and_top_k():
    cands = [_iv(0, 10, 0.5), _iv(1, 11, 0.9), _iv(40, 50, 0.3), _iv(0, 5, 0.8), _iv(80, 90, 0.2)]
    kept = nms(cands, top_k=5)
    # (0,10) overlaps (1,11) with IoU 9/11 > 0.5: suppressed. (0,5) vs (1,11): 4/11, kept.
    assert [(i.onset, i.offset) for i in kept] == [(1, 11), (0, 5), (40, 50), (80, 90)]
    assert [(i.onset, i.offset) for i in nms(cands, top_k=2)] == [(1, 11), (0, 5)]


def test_nms_iou_exactly_half_is_not_suppressed_and_zero_score_stops():
    kept = nms([_iv(0, 10, 0.9), _iv(0, 5, 0.8), _iv(50, 60, 0.0)], top_k=5)
    assert [(i.onset, i.offset) for i in kept] == [(0, 10), (0, 5)]
    with pytest.raises(ValueError, match="one kind"):
        nms([_iv(0, 10, 0.9), _iv(20, 40, 0.8, "macro")], top_k=5)


def test_decode_offline_never_searches_across_a_gap():
    p = _plant(_table(), "micro", 40, 46, 52, ps=0.9)
    _plant(p, "micro", 44, 46, 52, ps=0.6)
    cfg = Config(micro=MICRO)
    [whole] = decode_offline(p, cfg)
    assert (whole.onset, whole.offset) == (40, 52)
    valid = np.ones(len(p), bool)
    valid[40:43] = False                     # the stronger start lies in another run
    [split] = decode_offline(p, cfg, valid)
    assert (split.onset, split.offset) == (44, 52)
    valid[44:50] = False                     # the apex itself is invalid: nothing
    assert decode_offline(p, cfg, valid) == []


def test_decode_offline_both_kinds_top_k_per_kind_sorted():
    p = _table(400)
    for k, apex in enumerate((30, 90, 150)):
        _plant(p, "micro", apex - 5, apex, apex + 5, pa=0.6 + 0.1 * k)
    _plant(p, "macro", 200, 220, 240)
    cfg = Config(micro=replace(MICRO, top_k=2))
    got = decode_offline(p, cfg)
    assert [(i.kind, i.apex) for i in got] == [("micro", 90), ("micro", 150), ("macro", 220)]
    with pytest.raises(ValueError, match=r"\(T, 8\)"):
        decode_offline(p[:, :6], cfg)


def test_reference_segments_clip_the_search_and_shift_by_one():
    p = _plant(_table(512), "micro", 254, 259, 265, ps=0.9)   # best start in the previous segment
    _plant(p, "micro", 256, 259, 265, ps=0.6)
    cfg = Config(micro=MICRO)
    [ref] = decode_reference_segments(p, cfg)
    assert (ref.onset, ref.apex, ref.offset) == (257, 260, 266)   # index + 1
    [ours] = decode_offline(p, cfg)
    assert (ours.onset, ours.apex, ours.offset) == (254, 259, 265)


def _brute_force(p, kind, dec, lo, hi):
    """An independent reading of reference-model.md §6 steps 1-5 with numpy, for random tables."""
    cs, ce, _, ca = kind_columns(kind)
    out = []
    for a in range(lo, hi):
        if not p[a, ca] > dec.apex_threshold:
            continue
        starts = np.array([max(a - d, lo) for d in range(dec.start_range[0], dec.start_range[1] + 1)])
        ends = np.array([min(a + d, hi - 1) for d in range(dec.end_range[0], dec.end_range[1] + 1)])
        s = starts[np.argmax(p[starts, cs])]          # np.argmax: first maximum = nearest the apex
        e = ends[np.argmax(p[ends, ce])]
        if p[s, cs] > p[s, ce] and p[e, cs] < p[e, ce] and dec.min_len <= e - s <= dec.max_len:
            out.append((int(s), a, int(e), float(p[s, cs]) * float(p[e, ce]) * float(p[a, ca])))
    return out


@pytest.mark.parametrize("seed", range(4))
def test_propose_matches_an_independent_reading_on_random_tables(seed):
    rng = np.random.default_rng(seed)
    p = rng.random((300, 8)).astype(np.float32)
    p = np.round(p * 8) / 8                              # coarse values: many ties
    macro = Config().macro
    for kind, dec in (("micro", MICRO), ("macro", macro)):
        for lo, hi in ((0, 300), (37, 211)):
            got = [(i.onset, i.apex, i.offset, i.score) for i in propose(p, kind, dec, lo, hi)]
            assert got == _brute_force(p, kind, dec, lo, hi)
            assert len(got) > 3
