"""Cross-renderer scoring: AU families, per-truth matching, and the non-learned motion spotter."""
from __future__ import annotations

import numpy as np

from mespot.bench.crossrender import RecordedVideo, families_of, print_matrix, recall_tables, score_cell
from mespot.eval.baseline import MotionBaseline
from mespot.eval.metrics import Prediction, evaluate, found_ground_truth
from mespot.types import Interval


def test_families_of_combinations():
    assert families_of("1+2") == ["brows"]
    assert families_of("4+7+9") == ["brows", "nose"]
    assert families_of("6+12") == ["mouth corners"]
    assert families_of("10+12+25") == ["upper lip", "mouth corners", "lower lip and chin"]
    assert families_of("5+7") == []


def test_found_ground_truth_is_the_matching_the_f1_counts():
    gts = [Prediction("v", 10, 20, 1.0, "micro"), Prediction("v", 12, 22, 1.0, "micro"),
           Prediction("v", 50, 90, 1.0, "macro")]
    preds = [Prediction("v", 11, 21, 1.0, "micro"), Prediction("v", 52, 88, 1.0, "micro")]   # wrong kind
    found = found_ground_truth(gts, preds)
    assert sum(found) == 1 == evaluate(gts, preds)["overall"]["tp"]
    assert found[2] is False


def _video(name, truth, aus, renderer="a", expressions=True):
    return RecordedVideo(name, "face", renderer, np.zeros((100, 12, 2), np.float32), np.ones(100, bool),
                         truth, aus, expressions)


def test_recall_tables_count_each_family_an_expression_reaches():
    v = _video("v", [Interval("micro", 10, 14, 18), Interval("macro", 40, 50, 70)], ["4+9", "12"])
    emitted = {"v": [Interval("micro", 10, 14, 18)]}
    tables = recall_tables([v], emitted)
    assert tables["families"]["brows"] == {"found": 1, "total": 1, "recall": 1.0}
    assert tables["families"]["nose"] == {"found": 1, "total": 1, "recall": 1.0}
    assert tables["families"]["mouth corners"] == {"found": 0, "total": 1, "recall": 0.0}
    assert tables["families"]["upper lip"]["recall"] is None
    assert tables["combinations"]["macro 12"]["found"] == 0


def test_score_cell_counts_distractor_intervals():
    videos = [_video("v", [Interval("micro", 10, 14, 18)], ["1+2"]),
              _video("d", [], [], expressions=False)]
    cell = score_cell(videos, {"v": [Interval("micro", 10, 14, 18)], "d": [Interval("macro", 1, 5, 30)]})
    assert cell["scores"]["overall"]["f1"] == 1.0 and cell["distractor_intervals"] == 1


def test_motion_baseline_finds_a_displacement_and_ignores_a_still_face():
    f = np.zeros((400, 12, 2), np.float32)
    f[100:104, 2, 1] = -0.5          # a brow goes up 2 px over 4 frames ...
    f[108:112, 2, 1] = 0.5           # ... and comes back
    f[250:270, 9, 1] = 0.1           # a 1.5 s macro: the lip moves 2 px down, holds, comes back
    f[275:295, 9, 1] = -0.1
    spotter = MotionBaseline(threshold_px=0.6)
    found = spotter.spot(f, np.ones(400, bool), 30.0)
    assert [i.kind for i in found] == ["micro", "macro"]
    assert 99 <= found[0].onset <= 102 and 107 <= found[0].offset <= 111
    assert spotter.spot(np.zeros((400, 12, 2)), np.ones(400, bool), 30.0) == []
    gap = np.ones(400, bool)
    gap[105] = False                 # a gap splits the run: each run starts from its own neutral
    assert all(i.offset < 105 or i.onset > 105 for i in spotter.spot(f, gap, 30.0))


def test_print_matrix_shows_every_model_renderer_and_combination():
    from rich.console import Console

    v = _video("v", [Interval("micro", 10, 14, 18), Interval("macro", 40, 50, 70)], ["4+9", "12"])
    w = _video("w", [Interval("micro", 10, 14, 18)], ["1+2"], renderer="b")
    emitted = {"v": [Interval("micro", 10, 14, 18)], "w": []}
    result = {"m1": {"a": score_cell([v], emitted), "b": score_cell([w], emitted)}}
    console = Console(record=True, width=200)
    print_matrix(result, console)
    text = console.export_text()
    assert "renderer a" in text and "renderer b" in text and "m1" in text
    assert "micro 4+9" in text and "macro 12" in text and "micro 1+2" in text


def test_cross_checks_judge_each_renderer_family_and_unseen_renderer():
    from mespot.bench.accuracy import cross_checks

    hit = _video("v", [Interval("micro", 10, 14, 18)], ["1+2"], renderer="a")
    miss = _video("w", [Interval("micro", 10, 14, 18)], ["1+2"], renderer="b")
    emitted = {"v": [Interval("micro", 10, 14, 18)], "w": []}
    cross = {"model": {"a": score_cell([hit], emitted), "b": score_cell([miss], emitted)},
             "without-b": {"a": score_cell([hit], emitted), "b": score_cell([miss], emitted)},
             "other": {"b": score_cell([miss], emitted)}}
    checks = {c["check"]: c["pass"] for c in cross_checks(cross)}
    assert checks["a: overall F1 >= 0.85"] and not checks["b: overall F1 >= 0.85"]
    assert checks["a: brows recall >= 0.5"] and not checks["b: brows recall >= 0.5"]
    assert checks["trained without b: overall F1 on b >= 0.7"] is False
    assert not any("other" in name for name in checks)
