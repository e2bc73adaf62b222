"""spot-bench latency / streams and the README table: they run on a short clip and write well-formed
JSON. A benchmark is not a test: nothing here checks a time against a limit."""
from __future__ import annotations

import json

import pytest

from mespot.bench.latency import TARGETS, evaluate_targets
from mespot.bench.readme_table import BEGIN, END, latency_table, replace_block
from mespot.bench.streams import judge, median_trial
from mespot.cli.bench import main as bench_main
from mespot.stream.pipeline import STAGES

PERCENTILE_KEYS = ("p50_ms", "p95_ms", "p99_ms", "max_ms")
CLIP_FRAMES = 36


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    from mespot.bench.liveloop import render_bench_clip

    path, _ = render_bench_clip(tmp_path_factory.mktemp("clip") / "clip.mp4", CLIP_FRAMES)
    return path


@pytest.fixture(scope="module")
def models():
    engine_models = pytest.importorskip("engine_models")     # needs torch to export a model
    _, checkpoint, onnx = engine_models.model_files()
    return onnx, checkpoint


def _well_formed(p: dict) -> None:
    assert set(PERCENTILE_KEYS) <= set(p), p
    assert p["p50_ms"] <= p["p95_ms"] <= p["p99_ms"] <= p["max_ms"]


def test_latency_bench_writes_the_documented_json(clip, models, tmp_path):
    onnx, checkpoint = models
    out, png = tmp_path / "latency.json", tmp_path / "latency.png"
    rc = bench_main(["latency", "--source", str(clip), "--frames", str(CLIP_FRAMES), "--backend", "onnx,torch",
                     "--model", str(onnx), "--checkpoint", str(checkpoint), "--model-calls", "20",
                     "--tvl1-pairs", "1", "--repeats", "2", "--json", str(out), "--plot", str(png)])
    assert rc == 0
    r = json.loads(out.read_text())
    assert len(r["repeats"]) == 2 and sum(p["reported"] for p in r["repeats"]) == 1
    assert r["physical"]["tvl1"]["pairs"] == 1             # timed in the first pair, kept whichever is reported
    for key in ("stages", "end_to_end", "floor", "ratio_to_floor", "fps", "frames", "dropped", "machine"):
        assert key in r, key
    assert set(r["stages"]) == set(STAGES) - {"end_to_end"}
    for p in (*r["stages"].values(), r["end_to_end"], r["floor"]):
        _well_formed(p)
    # end_to_end = capture wait + the loop's own work, frame by frame
    assert r["end_to_end"]["p50_ms"] >= r["in_loop"]["p50_ms"]
    assert r["backend"] == "onnx" and r["mode"] == "realtime"
    # camera-paced: every frame of the clip is either through the loop or counted as dropped
    assert r["frames"] + r["backends"]["onnx"]["realtime"]["dropped_by"]["capture"] == CLIP_FRAMES
    assert len(r["backends"]["onnx"]["realtime"]["capture_drop_times_s"]) <= r["dropped"]
    assert r["ratio_to_floor"] == pytest.approx(r["end_to_end"]["p50_ms"] / r["floor"]["p50_ms"], rel=1e-2)
    assert r["floor_kind"] == "paced" and r["floor"] == r["physical"]["paced"]["floor"]
    assert r["fps"] > 0 and r["physical"]["frames"] == CLIP_FRAMES
    assert r["cpu_ms_per_frame"] > 0 and r["streams_by_cpu_time"] >= 0
    assert r["physical"]["tvl1"]["pairs"] == 1
    assert set(r["backends"]) == {"onnx", "torch"}
    for b in r["backends"].values():
        assert {"realtime", "fast", "model_alone", "model_alone_paced"} <= set(b)
        assert b["fast"]["frames"] == CLIP_FRAMES and b["model_alone"]["n"] == 20
        _well_formed(b["realtime"]["end_to_end"])
    assert [t["verdict"] in ("PASS", "MISS") for t in r["targets"]] == [True] * len(TARGETS)
    assert r["machine"]["cores"] >= 1 and "onnxruntime" in r["machine"]["versions"]
    assert png.stat().st_size > 0
    # the README table can be made from what was written
    table = latency_table(r)
    assert "ONNX Runtime (CPU)" in table and "PyTorch (CPU)" in table
    assert any(verdict in table for verdict in ("PASS", "MISS"))


def test_fast_only_puts_the_fast_run_on_top(clip, models, tmp_path):
    out = tmp_path / "fast.json"
    assert bench_main(["latency", "--source", str(clip), "--frames", str(CLIP_FRAMES), "--fast-only", "--repeats", "1",
                       "--backend", "onnx,tensorrt", "--model", str(models[0]), "--model-calls", "5",
                       "--tvl1-pairs", "0", "--json", str(out)]) == 0
    r = json.loads(out.read_text())
    assert r["mode"] == "fast" and "realtime" not in r["backends"]["onnx"]
    assert r["floor_kind"] == "back to back" and r["physical"]["paced"] is None
    if "error" in r["backends"]["tensorrt"]:              # no TensorRT here: said so, the rest measured
        assert "tensorrt" in r["backends"]["tensorrt"]["error"].lower()
        assert "Not measured here: tensorrt" in latency_table(r)
    assert {t["verdict"] for t in r["targets"]} == {"NOT MEASURED"}


@pytest.mark.parametrize("argv, message", [
    (["--backend", "onnx,cuda-magic"], "unknown backend"),
    (["--backend", "tensorrt:cpu"], "runs on cuda"),
    (["--frames", "5"], "--frames"),
    (["--model", "/nonexistent/model.onnx"], "no such file"),
    (["--plot", "out.svg"], ".png"),
])
def test_bad_input_is_one_line_and_exit_2(argv, message, capsys):
    assert bench_main(["latency", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err


def test_targets_report_pass_miss_and_margin():
    result = {"end_to_end": {"p50_ms": 6.5, "p99_ms": 13.0}, "ratio_to_floor": 1.5}
    verdicts = {t["target"]: t for t in evaluate_targets(result)}
    assert verdicts["whole loop p50"]["verdict"] == "PASS"
    assert verdicts["whole loop p50"]["margin"] == pytest.approx(0.5)
    assert verdicts["whole loop p99"]["verdict"] == "MISS"
    assert verdicts["whole loop p99"]["margin"] == pytest.approx(-1.0)
    assert verdicts["whole loop / floor (p50)"]["verdict"] == "PASS"       # at the limit is within it
    missing = evaluate_targets({"end_to_end": {}})
    assert {t["verdict"] for t in missing} == {"NOT MEASURED"}


def test_streams_trial_verdict():
    run = {"frames": 30, "dropped": 0, "fps": 30.0, "end_to_end": {"n": 30, "p50_ms": 5.0, "p99_ms": 9.0}}
    assert judge(2, [run, run], 30)["sustained"]
    dropping = {**run, "frames": 27, "dropped": 3, "capture_drop_times_s": [0.2, 0.2, 4.0]}
    t = judge(2, [run, dropping], 30)
    assert not t["sustained"] and t["dropped"] == 3 and t["frames_missing"] == 3
    assert t["first_drop_s"] == 0.2 and t["dropped_after_startup"] == 1 and not t["steady_after_startup"]
    startup_only = judge(1, [{**dropping, "capture_drop_times_s": [0.1, 0.3, 0.5]}], 30)
    assert not startup_only["sustained"] and startup_only["steady_after_startup"]
    failed = judge(1, [{"error": "OSError: boom"}], 30)
    assert not failed["sustained"] and failed["errors"] == ["OSError: boom"]


def test_repeated_trials_stand_by_their_median():
    run = {"frames": 30, "dropped": 0, "fps": 30.0, "end_to_end": {"n": 30, "p50_ms": 5.0, "p99_ms": 9.0}}
    late = {**run, "frames": 29, "dropped": 1, "capture_drop_times_s": [4.0]}
    clean, one_late = {**judge(2, [run, run], 30), "load_avg": [1, 1, 1]}, {**judge(2, [run, late], 30),
                                                                           "load_avg": [2, 1, 1]}
    assert median_trial([one_late, clean, clean])["steady_after_startup"]
    worse = median_trial([one_late, clean, one_late])
    assert not worse["steady_after_startup"] and [r["dropped_after_startup"] for r in worse["repeats"]] == [1, 0, 1]
    assert "repeats" not in median_trial([clean])


def test_streams_bench_threads_writes_json(clip, models, tmp_path):
    out = tmp_path / "streams.json"
    assert bench_main(["streams", "--mode", "thread", "--max", "1", "--seconds", "1", "--source", str(clip),
                       "--model", str(models[0]), "--json", str(out)]) == 0
    r = json.loads(out.read_text())
    trial = r["modes"]["thread"]["trials"][0]
    assert trial["streams"] == 1 and len(trial["per_stream"]) == 1
    assert 1 <= trial["per_stream"][0]["frames"] <= 30
    assert r["max_streams"] in (0, 1) and r["max_streams_steady"] >= r["max_streams"]
    assert r["target_streams"] == 4 and "cpu" in r["machine"]


def test_readme_block_is_replaced_between_markers():
    text = f"intro\n{BEGIN}\nold table\n{END}\nrest\n"
    new = replace_block(text, "| new |")
    assert new == f"intro\n{BEGIN}\n| new |\n{END}\nrest\n"
    assert replace_block(new, "| new |") == new
    with pytest.raises(ValueError, match="markers"):
        replace_block("no markers here", "x")


def test_median_pair_reports_one_whole_pair():
    from mespot.bench.latency import median_pair

    def pair(ratio, e2e, tvl1_pairs):
        physical = {"tvl1": {"pairs": tvl1_pairs}}
        return {"ratio_to_floor": ratio, "end_to_end": {"p50_ms": e2e, "p99_ms": 2 * e2e},
                "floor": {"p50_ms": e2e / ratio}, "physical": physical, "_backends": {"onnx": e2e},
                "_physical": physical}

    result, backends, physical = median_pair([pair(1.6, 7.0, 5), pair(1.3, 6.0, 0), pair(1.45, 6.5, 0)])
    assert result["ratio_to_floor"] == 1.45 and result["end_to_end"]["p50_ms"] == 6.5 and backends == {"onnx": 6.5}
    assert [r["reported"] for r in result["repeats"]] == [False, False, True]
    assert physical["tvl1"]["pairs"] == 5 and result["physical"]["tvl1"]["pairs"] == 5
    assert "_backends" not in result and "_physical" not in result


def test_serve_mode_dates_a_dropped_frame_by_its_number():
    from mespot.bench.serving import dropped_frame_times

    scored = set(range(0, 300)) - {12, 13, 150}
    assert dropped_frame_times(scored, 3, 30.0) == [0.4, 0.433, 5.0]
    assert dropped_frame_times(scored, 4, 30.0) is None          # holes and the status disagree
    assert dropped_frame_times(set(), 0, 30.0) == []
