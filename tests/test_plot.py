"""`spot-plot`: a recording or a feature file drawn with its intervals marked TP/FP/FN by the MEGC
matching spot-eval counts; one-line refusals with exit 2."""
from __future__ import annotations

import json

import numpy as np
import pytest

from live_fakes import planted_probs
from mespot.cli.plot import main
from mespot.config import load_config
from mespot.data.annotations import Annotation, write_annotations
from mespot.engine.probs import PROB_COLUMNS
from mespot.eval.metrics import Prediction, match, match_flags
from mespot.featurefile import FeatureFile, save_features
from mespot.types import Interval
from mespot.view.plot import mark, read_record

pytest.importorskip("matplotlib", reason="matplotlib comes with the 'view' and 'train' extras")


def _record(path, *, stream="cam", n=200, intervals=(), score_rate=True, extra_stream=None):
    probs = planted_probs(n, [], noise=0.03, rng=np.random.default_rng(0))
    lines = [{"topic": "status", "stream": stream, "state": "running"}]
    if score_rate:
        for start in range(0, n, 50):          # batches, as spot-live sends them
            frames = list(range(start, min(n, start + 50)))
            valid = [f % 37 != 0 for f in frames]
            lines.append({"topic": "score", "stream": stream, "columns": list(PROB_COLUMNS), "frames": frames,
                          "valid": valid, "probs": [[float(v) for v in probs[f]] if ok else None
                                                    for f, ok in zip(frames, valid)]})
    for kind, on, apex, off, score in intervals:
        lines.append({"topic": "interval", "stream": stream, "kind": kind, "onset_frame": on, "apex_frame": apex,
                      "offset_frame": off, "score": score})
    if extra_stream:
        lines.append({**lines[1], "stream": extra_stream})
    path.write_text("".join(json.dumps(m) + "\n" for m in lines))
    return probs


FOUND = [("micro", 20, 24, 30, 0.5), ("macro", 60, 70, 90, 0.4), ("micro", 150, 153, 158, 0.3)]
TRUTH = [("micro", 21, 24, 30), ("macro", 100, 110, 120), ("macro", 62, 70, 88)]


def _gt(path, video="cam"):
    write_annotations(path, [Annotation("s1", video, on, apex, off, kind, "12") for kind, on, apex, off in TRUTH])


def test_a_recording_is_read_back_exactly(tmp_path):
    probs = _record(tmp_path / "run.jsonl", intervals=FOUND)
    run = read_record(tmp_path / "run.jsonl")
    assert run.name == "cam" and run.probs.shape == (200, 8)
    valid = np.array([f % 37 != 0 for f in range(200)])
    assert (run.valid == valid).all()
    assert run.probs[valid] == pytest.approx(probs[valid])
    assert [(i.kind, i.onset, i.apex, i.offset) for i in run.intervals] == [f[:4] for f in FOUND]


def test_marks_are_the_matching_spot_eval_counts(tmp_path):
    _record(tmp_path / "run.jsonl", intervals=FOUND)
    _gt(tmp_path / "gt.csv")
    run = read_record(tmp_path / "run.jsonl")
    from mespot.data.annotations import load_annotations

    gts = load_annotations(tmp_path / "gt.csv").rows
    marked = mark(run, gts)
    assert [v for _, v in marked.predicted] == [True, True, False]         # the third is a false positive
    assert [v for _, v in marked.annotated] == [True, False, True]         # macro 100-120 is missed
    counts = match(gts, [Prediction.from_interval("cam", i) for i in run.intervals])
    assert sum(v for _, v in marked.predicted) == counts["micro"].tp + counts["macro"].tp


def test_match_flags_agree_with_the_counts_on_random_sets():
    rng = np.random.default_rng(5)
    for _ in range(200):
        def spans(n):
            out = []
            for _ in range(n):
                on = int(rng.integers(0, 80))
                out.append(Prediction("v", on, on + int(rng.integers(0, 20)), 1.0, str(rng.choice(["micro", "macro"]))))
            return out
        gts, preds = spans(int(rng.integers(0, 6))), spans(int(rng.integers(0, 6)))
        found, true = match_flags(gts, preds)
        tp = sum(c.tp for c in match(gts, preds).values())
        assert sum(found) == sum(true) == tp


def test_spot_plot_draws_svg_with_the_marks(tmp_path, capsys):
    _record(tmp_path / "run.jsonl", intervals=FOUND)
    _gt(tmp_path / "gt.csv")
    out = tmp_path / "run.svg"
    assert main([str(tmp_path / "run.jsonl"), "-o", str(out), "--gt", str(tmp_path / "gt.csv"),
                 "--config", "live"]) == 0
    svg = out.read_text()
    assert "TP 0.50" in svg and "FP 0.30" in svg and ">FN<" in svg
    assert "TP 2, FP 1, FN 1" in capsys.readouterr().out
    assert main([str(tmp_path / "run.jsonl"), "-o", str(tmp_path / "run.png"), "--config", "live",
                 "--frames", "10:100"]) == 0
    assert (tmp_path / "run.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_offline_a_feature_file_gets_the_live_rule_intervals(tmp_path, capsys):
    from mespot.engine.online import offline_probs
    from mespot.engine.runtime import open_runtime
    from mespot.models import default_model_path
    from mespot.stream.peakpicker import decode_offline_same_rule

    rng = np.random.default_rng(2)
    n = 240
    features = rng.normal(0, 0.3, (n, 12, 2)).astype(np.float32)
    features[100:112] += 2.0                    # a burst of motion
    valid = np.ones(n, bool)
    valid[[0, 50]] = False
    save_features(tmp_path / "clip.npz", FeatureFile(features, valid, np.arange(n) / 30.0,
                                                     np.zeros((n, 12, 2), np.float32), {"fps": 30.0}))
    assert main(["--features", str(tmp_path / "clip.npz"), "-o", str(tmp_path / "clip.png")]) == 0
    runtime = open_runtime(default_model_path("onnx"), "onnx", "cpu")
    config = load_config("live")
    expected = decode_offline_same_rule(offline_probs(runtime, features, valid), config, valid)
    assert f"clip, {n} frames, {len(expected)} intervals" in capsys.readouterr().out


@pytest.mark.parametrize("args, says", [
    (["{rec}", "-o", "{tmp}/x.pdf"], "want a .png or .svg"),
    (["{tmp}/none.jsonl", "-o", "{tmp}/x.png"], "no such file"),
    (["{bad}", "-o", "{tmp}/x.png"], ":2: not a JSON line"),
    (["{two}", "-o", "{tmp}/x.png"], "holds streams cam, other; choose one with --stream"),
    (["{rec}", "-o", "{tmp}/x.png", "--stream", "nope"], "no stream 'nope'"),
    (["{quiet}", "-o", "{tmp}/x.png"], "no score messages"),
    (["{rec}", "-o", "{tmp}/x.png", "--gt", "{gt}", "--video", "other"], "no rows for video 'other' (it has cam)"),
    (["{rec}", "-o", "{tmp}/missing/x.png"], "folder"),
    (["{rec}", "-o", "{tmp}/x.png", "--frames", "9:3"], "want 0 <= A < B"),
    (["{rec}", "-o", "{tmp}/x.png", "--config", "nosuch"], "no config 'nosuch'"),
    (["--features", "{rec}", "-o", "{tmp}/x.png"], "not a feature file"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, args, says):
    rec = tmp_path / "run.jsonl"
    _record(rec, intervals=FOUND)
    (tmp_path / "bad.jsonl").write_text(rec.read_text().splitlines()[0] + "\nnot json\n")
    _record(tmp_path / "two.jsonl", extra_stream="other")
    _record(tmp_path / "quiet.jsonl", score_rate=False)
    _gt(tmp_path / "gt.csv")
    names = {"rec": rec, "tmp": tmp_path, "bad": tmp_path / "bad.jsonl", "two": tmp_path / "two.jsonl",
             "quiet": tmp_path / "quiet.jsonl", "gt": tmp_path / "gt.csv"}
    assert main([a.format(**names) for a in args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("spot-plot: ") and says in err and err.count("\n") == 1
