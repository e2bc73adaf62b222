"""`spot-bench accuracy` on a tiny set: runs the live path end to end and writes well-formed JSON."""
from __future__ import annotations

import json

import pytest

from mespot.cli.bench import main as bench_main

SCORE_FIELDS = {"tp", "n", "m", "precision", "recall", "f1"}


def _check_scores(block: dict) -> None:
    assert set(block) >= {"micro", "macro", "overall"}
    for scope in ("micro", "macro", "overall"):
        s = block[scope]
        assert set(s) >= SCORE_FIELDS, scope
        assert 0 <= s["tp"] <= min(s["n"], s["m"])
        for key in ("precision", "recall", "f1"):
            assert 0.0 <= s[key] <= 1.0
    for key in ("tp", "n", "m"):
        assert block["overall"][key] == block["micro"][key] + block["macro"][key]


@pytest.mark.slow
def test_tiny_run_writes_well_formed_json(tmp_path, capsys):
    out = tmp_path / "acc.json"
    plot = tmp_path / "trace.png"
    code = bench_main(["accuracy", "--identities", "astronaut", "--faces", "all", "--videos", "1",
                       "--minutes", "0.3", "--workers", "1", "--seed", "3", "--micro-per-min", "8",
                       "--macro-per-min", "8", "--variety", "wide", "--json", "--output", str(out),
                       "--plot", str(plot)])
    assert code == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads(out.read_text())
    for key in ("online", "offline", "offline_same_rule"):
        _check_scores(printed[key])
    planted = printed["set"]["intervals"]
    assert printed["online"]["micro"]["m"] == planted["micro"] and printed["online"]["macro"]["m"] == planted["macro"]
    assert planted["micro"] + planted["macro"] > 0
    assert printed["offline"]["overall"]["m"] == printed["online"]["overall"]["m"]
    assert set(printed["delay_ms"]) >= {"p50", "p90", "max"}
    assert printed["distractor_only"]["videos"] == 2           # one per renderer
    assert printed["set"]["renderers"] == ["gaussian", "piecewise"] and printed["set"]["variety"] == "wide"
    cross = printed["cross_renderer"]
    assert set(cross["model"]) == {"gaussian", "piecewise"} and any(k.startswith("motion baseline") for k in cross)
    # the matrix scores the recorded features with the picker's rule: it must equal the live output
    assert sum(c["scores"]["overall"]["tp"] for c in cross["model"].values()) == printed["online"]["overall"]["tp"]
    assert sum(c["scores"]["overall"]["n"] for c in cross["model"].values()) == printed["online"]["overall"]["n"]
    families = cross["model"]["gaussian"]["families"]
    assert sum(f["total"] for f in families.values()) >= 1
    assert printed["online_offline_max_abs_prob_diff"] < 1e-4
    assert set(printed["online_by_face"]) == {"astronaut"}
    assert printed["online_by_face"]["astronaut"] == printed["online"]
    assert bench_main(["accuracy", "--renderers", "gaussian,nope"]) == 2
    assert "--renderers" in capsys.readouterr().err
    assert {c["check"] for c in printed["checks"]} and all(isinstance(c["pass"], bool) for c in printed["checks"])
    assert plot.stat().st_size > 10_000


def test_bad_arguments_exit_2(capsys):
    assert bench_main(["accuracy", "--videos", "0"]) == 2
    assert "--videos" in capsys.readouterr().err
    assert bench_main(["accuracy", "--identities", "astronaut", "--faces", "nobody"]) == 2
    assert "nobody" in capsys.readouterr().err


def test_online_scores_per_face_add_up_to_the_whole():
    """Two faces, hand-made emissions: each face is scored on its own videos only."""
    import numpy as np

    from mespot.bench.accuracy import VideoResult, evaluate_results
    from mespot.config import load_config
    from mespot.engine.runtime import open_runtime
    from mespot.models import default_model_path
    from mespot.types import Interval

    def video(name, face, truth, emitted):
        r = VideoResult(name, True, face, truth=truth, emitted=[(i, i.offset + 5) for i in emitted])
        r.features, r.valid, r.frames = np.zeros((200, 12, 2), np.float32), np.ones(200, bool), 200
        return r

    hit, miss = Interval("micro", 20, 25, 32), Interval("macro", 100, 120, 150)
    results = [video("a_000", "a", [hit, miss], [hit]),                          # 1 of 2 found
               video("b_000", "b", [hit], [Interval("macro", 20, 25, 32)])]      # wrong kind
    report = evaluate_results(results, open_runtime(default_model_path("onnx"), "onnx"), load_config("live"))
    faces = report["online_by_face"]
    assert set(faces) == {"a", "b"}
    assert (faces["a"]["overall"]["tp"], faces["a"]["overall"]["m"]) == (1, 2)
    assert (faces["b"]["overall"]["tp"], faces["b"]["overall"]["n"]) == (0, 1)
    for key in ("tp", "n", "m"):
        assert faces["a"]["overall"][key] + faces["b"]["overall"][key] == report["online"]["overall"][key]
