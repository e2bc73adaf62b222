"""Both matching rules on hand-made cases, pooling, and the prediction CSV."""
from __future__ import annotations

import random
import re

import pytest

from mespot.data.annotations import Annotation, load_annotations
from mespot.eval.metrics import (
    Counts, Prediction, evaluate, match, read_predictions, write_predictions)
from mespot.types import Interval


def gt(start, end, kind="micro", video="v1"):
    return Annotation("s1", video, start, (start + max(end, start)) // 2, end, kind, "12")


def pred(start, end, kind="micro", video="v1", score=0.5):
    return Prediction(video, start, end, score, kind)


def tp(gts, preds, rule, kind="micro"):
    return match(gts, preds, rule)[kind].tp


def test_iou_exactly_half_is_megc_tp_not_reference():
    # inclusive sets: |0..4| / |0..9| = 5/10; reference lengths: 4 / 9
    assert tp([gt(0, 9)], [pred(0, 4)], "megc") == 1
    assert tp([gt(0, 9)], [pred(0, 4)], "reference") == 0
    # reference lengths exactly 5/10 -> not > 0.5; megc 6/11 -> match
    assert tp([gt(0, 10)], [pred(0, 5)], "reference") == 0
    assert tp([gt(0, 10)], [pred(0, 5)], "megc") == 1
    # just below half for megc: 4/10
    assert tp([gt(0, 9)], [pred(0, 3)], "megc") == 0


@pytest.mark.parametrize("rule", ["megc", "reference"])
def test_two_predictions_on_one_ground_truth_give_one_tp(rule):
    counts = match([gt(10, 30)], [pred(10, 30), pred(11, 30)], rule)
    assert counts["micro"] == Counts(tp=1, n=2, m=1)


@pytest.mark.parametrize("rule", ["megc", "reference"])
def test_end_zero_ground_truth_is_unmatchable_but_counted(rule):
    counts = match([gt(100, 0, "macro")], [pred(100, 130, "macro")], rule)
    assert counts["macro"] == Counts(tp=0, n=1, m=1)


def test_one_to_one_beats_greedy_argmax():
    # Both GTs have P1 as their best prediction (A: 9/11 vs 8/10); P2 matches only A (B: 5/13).
    # Greedy per GT in order (A takes P1 first) finds 1; the optimal assignment A-P2, B-P1 finds 2.
    gts = [gt(0, 9), gt(3, 12)]
    preds = [pred(1, 10), pred(0, 7)]
    assert tp(gts, preds, "megc") == 2
    assert tp(gts, preds, "reference") == 1      # both GTs mark P1: counted once
    for seed in range(5):                        # megc does not depend on row order
        g, p = gts[:], preds[:]
        random.Random(seed).shuffle(g)
        random.Random(seed + 100).shuffle(p)
        assert tp(g, p, "megc") == 2


def test_kind_and_video_must_agree():
    assert tp([gt(0, 9)], [pred(0, 9, kind="macro")], "megc") == 0
    assert tp([gt(0, 9)], [pred(0, 9, video="v2")], "megc") == 0


def test_pooling_over_videos_and_kinds():
    gts = [gt(0, 9, video="a"), gt(100, 110, video="b"), gt(200, 210, video="b"), gt(300, 310, video="b"),
           gt(0, 40, "macro", video="a")]
    preds = [pred(0, 9, video="a"),
             pred(0, 40, "macro", video="a"), pred(100, 140, "macro", video="a"),
             pred(200, 240, "macro", video="a"), pred(0, 40, "macro", video="c")]
    r = evaluate(gts, preds, "megc")
    assert set(r) == {"micro", "macro", "overall"}
    assert all(set(v) == {"tp", "n", "m", "precision", "recall", "f1"} for v in r.values())
    assert (r["micro"]["tp"], r["micro"]["n"], r["micro"]["m"]) == (1, 1, 4)
    assert (r["macro"]["tp"], r["macro"]["n"], r["macro"]["m"]) == (1, 4, 1)
    assert r["micro"]["precision"] == 1.0 and r["micro"]["recall"] == 0.25
    assert r["micro"]["f1"] == pytest.approx(0.4)
    assert (r["overall"]["tp"], r["overall"]["n"], r["overall"]["m"]) == (2, 5, 5)
    assert r["overall"]["f1"] == pytest.approx(0.4)


def test_pooled_overall_is_not_the_mean_of_kinds():
    gts = [gt(0, 9)] + [gt(100 * k, 100 * k + 40, "macro") for k in range(1, 4)]
    preds = [pred(0, 9), pred(100, 140, "macro")]
    r = evaluate(gts, preds)
    assert r["micro"]["f1"] == 1.0 and r["macro"]["f1"] == pytest.approx(0.5)
    assert r["overall"]["f1"] == pytest.approx(2 * 1.0 * 0.5 / 1.5)   # P = 2/2, R = 2/4


def test_empty_denominators_give_zero():
    r = evaluate([], [])
    assert r["overall"] == {"tp": 0, "n": 0, "m": 0, "precision": 0.0, "recall": 0.0, "f1": 0.0}
    assert evaluate([gt(0, 9)], [])["micro"]["recall"] == 0.0


def test_unknown_rule():
    with pytest.raises(ValueError, match="unknown rule"):
        match([], [], "strict")


def test_prediction_csv_round_trip(tmp_path):
    preds = [Prediction.from_interval("v1", Interval("micro", 3, 5, 9, 0.123456789)),
             Prediction("v2", 10, 60, 1e-7, "macro")]
    write_predictions(tmp_path / "p.csv", preds)
    assert (tmp_path / "p.csv").read_text().splitlines()[0] == "video_name,start_frame,end_frame,score,type_idx"
    assert read_predictions(tmp_path / "p.csv") == preds
    assert [p.type_idx for p in preds] == [2, 1]


@pytest.mark.parametrize("body, message", [
    ("v1,3,x,0.5,2\n", "p.csv:2: start_frame, end_frame and type_idx must be integers"),
    ("v1,3,9,0.5,0\n", "p.csv:2: type_idx must be 1 (macro) or 2 (micro), got 0"),
    ("v1,3,9,nan,2\n", "p.csv:2: score is not finite"),
    ("v1,3,9,0.5,2\nv1,3\n", "p.csv:3: start_frame"),
])
def test_malformed_prediction_rows(tmp_path, body, message):
    path = tmp_path / "p.csv"
    path.write_text("video_name,start_frame,end_frame,score,type_idx\n" + body)
    with pytest.raises(ValueError, match=re.escape(message)):
        read_predictions(path)


def test_ground_truth_scored_against_itself(shared_path):
    ann = load_annotations(shared_path("data", "annotations", "casme2.csv"))
    as_preds = [Prediction(a.video, a.onset, a.offset, 1.0, a.kind) for a in ann.rows]
    r = evaluate(ann.rows, as_preds, "megc")
    assert (r["micro"]["tp"], r["micro"]["m"]) == (57, 57)
    assert (r["macro"]["tp"], r["macro"]["m"]) == (300 - 44, 300)   # end 0 rows never match


def _best_assignment(gts, preds):
    """Exhaustive one-to-one assignment for small cases: the most pairs with inclusive IoU >= 0.5."""
    from itertools import permutations

    from mespot.eval.proposals import iou
    slots = list(range(len(preds))) + [None] * len(gts)
    best = 0
    for choice in permutations(slots, len(gts)):
        hits = sum(j is not None and iou((g.onset, g.offset), (preds[j].onset, preds[j].offset), "megc") >= 0.5
                   for g, j in zip(gts, choice))
        best = max(best, hits)
    return best


@pytest.mark.parametrize("seed", range(30))
def test_megc_matching_is_maximal_on_random_cases(seed):
    rng = random.Random(seed)
    def span():
        s = rng.randrange(0, 30)
        return s, s + rng.randrange(2, 12)
    gts = [gt(*span()) for _ in range(rng.randrange(1, 5))]
    preds = [pred(*span()) for _ in range(rng.randrange(1, 5))]
    assert tp(gts, preds, "megc") == _best_assignment(gts, preds)
