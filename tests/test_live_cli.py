"""The live loop and `spot-live`: stage timings, online = offline through the loop, the error and
stop paths, clear exit-2 errors, and end-to-end runs on real and generated clips."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from live_fakes import ListCapture, TableEngine, TableFrontEnd, free_tcp_endpoint, planted_probs
from mespot.cli.live import demo_matches
from mespot.cli.live import main as live_main
from mespot.config import load_config
from mespot.stream.peakpicker import CausalPeakPicker, decode_offline_same_rule
from mespot.stream.pipeline import STAGES, LivePipeline, PipelineObserver
from mespot.stream.sinks import JsonlRecorder, MessageBus, ZmqPublisher
from mespot.types import Interval

PLANTS = [("micro", 30, 34, 40), ("macro", 80, 100, 125), ("micro", 160, 164, 171),
          ("macro", 220, 236, 260), ("micro", 352, 356, 362)]


# -- the loop with exact stand-ins for its heavy parts ---------------------------------------------

class Collect(PipelineObserver):
    def __init__(self):
        self.records, self.intervals, self.statuses = [], [], []

    def on_frame(self, record):
        self.records.append(record)

    def on_interval(self, interval, message):
        self.intervals.append((interval, message))

    def on_status(self, message):
        self.statuses.append(message)


def _loop(probs, valid, tmp_path, *, capture=None, score_rate_hz=0.0):
    config = load_config("casme2")
    observer = Collect()
    bus = MessageBus([JsonlRecorder(tmp_path / "rec.jsonl")], stream="t")
    pipeline = LivePipeline(capture or ListCapture(len(probs)), TableFrontEnd(valid),
                            TableEngine(probs, config.model_delay), CausalPeakPicker(config), bus,
                            config=config, score_rate_hz=score_rate_hz, observers=[observer])
    return pipeline, observer, config


def _recorded(tmp_path):
    return [json.loads(line) for line in (tmp_path / "rec.jsonl").read_text().splitlines()]


def test_loop_publishes_the_offline_rule_within_the_bound_with_exact_stage_names(tmp_path):
    probs = planted_probs(400, PLANTS, noise=0.03, rng=np.random.default_rng(1))
    valid = np.ones(400, bool)
    valid[[0, 150, 151, 300]] = False
    valid[365:] = False                      # the last micro's run ends right after its offset
    pipeline, seen, config = _loop(probs, valid, tmp_path, score_rate_hz=1000.0)
    summary = pipeline.run()
    assert summary.state == "ended" and summary.frames == 400 and summary.valid_frames == valid.sum()
    expected = decode_offline_same_rule(probs, config, valid)
    assert sorted((i.kind, i.onset, i.apex, i.offset) for i in expected) == sorted(PLANTS)
    assert [(i.kind, i.onset, i.apex, i.offset, i.score) for i in summary.intervals] == \
        [(i.kind, i.onset, i.apex, i.offset, i.score) for i in sorted(
            expected, key=lambda i: (i.apex + config.decoding(i.kind).end_range[1], i.kind))]
    for record in seen.records:
        assert tuple(record.stage_ms) == STAGES
        assert all(v >= 0 for v in record.stage_ms.values())
        assert record.stage_ms["landmarks"] == 1.0 and record.stage_ms["flow"] == 2.0
        for interval in record.intervals:      # decided within end_range[1] + model_delay frames
            assert record.index - interval.apex <= config.decision_delay(interval.kind)
    messages = _recorded(tmp_path)
    assert messages[0]["topic"] == "status" and messages[0]["state"] == "running"
    assert messages[-1]["topic"] == "status" and messages[-1]["state"] == "ended"
    assert messages[-1]["frames"] == 400 and messages[-1]["intervals"] == {"micro": 3, "macro": 2}
    assert set(messages[-1]["latency_ms"]) == set(STAGES)
    intervals = [m for m in messages if m["topic"] == "interval"]
    assert all(m["delay_ms"] is not None and m["onset_time"] <= m["offset_time"] for m in intervals)
    # score batches: frames ascending within a batch, every frame exactly once, invalid ones null
    frames, seen_valid = [], {}
    for m in messages:
        if m["topic"] == "score":
            assert m["frames"] == sorted(m["frames"]) and len(m["columns"]) == 8
            frames += m["frames"]
            seen_valid.update({f: (v, p) for f, v, p in zip(m["frames"], m["valid"], m["probs"])})
    assert sorted(frames) == list(range(400))
    assert all((p is None) == (not valid[f]) and v == valid[f] for f, (v, p) in seen_valid.items())
    assert np.allclose(seen_valid[100][1], probs[100], atol=1e-5)


def test_error_in_the_loop_is_published_and_raised(tmp_path):
    probs = planted_probs(120, PLANTS[:1], noise=0.0, rng=np.random.default_rng(0))
    pipeline, _, _ = _loop(probs, np.ones(120, bool), tmp_path, capture=ListCapture(120, fail_at=60))
    with pytest.raises(OSError, match="camera unplugged"):
        pipeline.run()
    last = _recorded(tmp_path)[-1]
    assert last["topic"] == "status" and last["state"] == "error"
    assert "camera unplugged" in last["error"] and last["frames"] == 60
    assert pipeline.summary.state == "error" and pipeline.capture.stopped


def test_stop_from_another_thread_decides_pending_and_ends(tmp_path):
    class SlowCapture(ListCapture):
        def get(self, timeout=None):
            time.sleep(0.002)
            return super().get(timeout)

    probs = planted_probs(2000, [("micro", 30, 34, 40)], noise=0.0, rng=np.random.default_rng(0))
    pipeline, seen, _ = _loop(probs, np.ones(2000, bool), tmp_path, capture=SlowCapture(2000))
    timer = threading.Timer(0.5, pipeline.stop)
    timer.start()
    summary = pipeline.run()
    timer.join()
    assert summary.state == "ended" and 40 < summary.frames < 2000
    assert [(i.onset, i.apex, i.offset) for i in summary.intervals] == [(30, 34, 40)]
    messages = _recorded(tmp_path)
    assert messages[-1]["state"] == "ended" and messages[-1]["frames"] == summary.frames
    assert not any(m["topic"] == "score" for m in messages), "score_rate_hz=0 publishes no scores"
    assert pipeline._scores == [], "and keeps none either (an endless stream would grow them)"


def test_demo_matching_pairs_each_planted_with_its_best_detection():
    planted = [Interval("micro", 10, 13, 17), Interval("macro", 50, 60, 80), Interval("micro", 100, 103, 107)]
    found = [Interval("micro", 11, 13, 17), Interval("macro", 52, 61, 79), Interval("macro", 100, 103, 107)]
    rows = demo_matches(planted, found)
    assert [(f is not None and f.onset, round(v, 3)) for _, f, v in rows] == \
        [(11, round(7 / 8, 3)), (52, round(28 / 31, 3)), (False, 0.0)]


# -- spot-live itself ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def model_path(tmp_path_factory) -> Path:
    """The shipped model when present, else a freshly initialised AUW-GCN exported to ONNX."""
    from mespot.models import ModelNotFound, default_model_path

    try:
        return default_model_path()
    except ModelNotFound:
        import torch

        from mespot.engine.model import AUWGCN
        from mespot.export.onnx import export_onnx

        torch.manual_seed(0)
        path = tmp_path_factory.mktemp("model") / "random.onnx"
        export_onnx(AUWGCN().eval(), path, config=load_config("live"), fps=30.0)
        return path


def _spot_live(*args, **popen):
    return subprocess.Popen([sys.executable, "-m", "mespot.cli.live", *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)


def _check_recording(path: Path, frames: int | None = None) -> list[dict]:
    messages = [json.loads(line) for line in path.read_text().splitlines()]
    statuses = [m for m in messages if m["topic"] == "status"]
    assert len(statuses) >= 2 and statuses[0]["state"] == "running"
    assert messages[-1]["topic"] == "status" and messages[-1]["state"] == "ended"
    assert all(m["schema"] == 1 for m in messages)
    for topic in ("interval", "score", "status"):
        seqs = [m["seq"] for m in messages if m["topic"] == topic]
        assert seqs == list(range(len(seqs)))
    if frames is not None:
        assert messages[-1]["frames"] == frames
    assert set(messages[-1]["latency_ms"]["end_to_end"]) == {"p50", "p95", "p99", "max"}
    return messages


def test_spot_live_on_single_face_clip_with_spot_sub(shared_path, model_path, tmp_path):
    """spot-live on a real clip, with a spot-sub process subscribed before it streams
    (--wait-subscriber): the subscriber gets exactly the recorded intervals and the end."""
    clip = shared_path("media", "single_face.mp4")
    rec, got = tmp_path / "run.jsonl", tmp_path / "sub.jsonl"
    endpoint = free_tcp_endpoint()
    sub = subprocess.Popen([sys.executable, "-m", "mespot.cli.sub", "--endpoint", endpoint,
                            "--jsonl", str(got), "--timeout", "60"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        proc = _spot_live("--source", clip, "--model", model_path, "--no-ui", "--record", rec,
                          "--pub", endpoint, "--wait-subscriber", 60)
        out, err = proc.communicate(timeout=120)
        sub_out, sub_err = sub.communicate(timeout=30)
    finally:
        sub.kill()
    assert proc.returncode == 0, err
    assert sub.returncode == 0 and "stopped: publisher ended" in sub_err, sub_err
    messages = _check_recording(rec, frames=72)
    assert messages[-1]["valid_frames"] >= 70, "every frame but the first has a face"
    assert "single_face: ended; 72 frames" in out
    assert [json.loads(line) for line in got.read_text().splitlines()] == \
        [m for m in messages if m["topic"] == "interval"]


@pytest.fixture(scope="module")
def generated_clip(tmp_path_factory) -> Path:
    """10 s of the public-domain astronaut at 320x240 with one micro and one macro planted."""
    from mespot.synth.identities import list_identities
    from mespot.synth.render import render_video
    from mespot.synth.timeline import plan_timeline

    identity = list_identities("astronaut", size=(320, 240))[0]
    timeline = plan_timeline(300, 30.0, seed=3, counts={"micro": 1, "macro": 1})
    return render_video(identity, timeline, tmp_path_factory.mktemp("clip") / "gen.mp4")


def test_spot_live_on_generated_clip_and_ctrl_c(generated_clip, model_path, tmp_path):
    rec = tmp_path / "full.jsonl"
    proc = _spot_live("--source", generated_clip, "--model", model_path, "--no-ui", "--record", rec,
                      "--pub", free_tcp_endpoint())
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    full = _check_recording(rec, frames=300)
    assert full[-1]["valid_frames"] >= 290

    # Ctrl-C half-way through a real-time run: pending work published, final status `ended`, exit 0.
    rec = tmp_path / "interrupted.jsonl"
    proc = _spot_live("--source", generated_clip, "--model", model_path, "--no-ui", "--realtime",
                      "--record", rec, "--pub", free_tcp_endpoint())
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:          # wait until it streams (first `running` status seen)
        if rec.exists() and rec.stat().st_size and len(rec.read_text().splitlines()) >= 2:
            break
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    cut = _check_recording(rec)
    assert 0 < cut[-1]["frames"] < 300, "the run should have been interrupted"


def test_demo_prints_planted_against_found(monkeypatch, model_path, generated_clip, capsys):
    from mespot.synth import demo

    planted = [Interval("micro", 40, 44, 50)]
    monkeypatch.setattr(demo, "make_demo_clip", lambda folder, seed=0: (generated_clip, planted))
    assert live_main(["--demo", "--model", str(model_path), "--no-ui", "--pub", free_tcp_endpoint()]) == 0
    out = capsys.readouterr().out
    assert "planted vs found" in out and "40-44-50" in out
    assert "/1 planted expressions found" in out


def test_usage_errors_are_one_line_and_exit_2(model_path, tmp_path, capsys):
    endpoint = free_tcp_endpoint()
    busy = ZmqPublisher(endpoint, linger_ms=0)
    try:
        cases = {
            "address already in use": ["--source", "x.mp4", "--pub", endpoint],
            "model file not found": ["--source", "x.mp4", "--model", tmp_path / "none.onnx"],
            "cannot open source": ["--source", tmp_path / "missing.mp4", "--model", model_path],
            "no config": ["--source", "x.mp4", "--config", "nonexistent"],
            "fps but config 'samm' at 25 fps": ["--source", "x.mp4", "--model", model_path, "--config", "samm"],
            "opens .pt": ["--source", "x.mp4", "--model", model_path, "--backend", "torch"],
            "backend onnx on cpu runs precision fp32, not fp16": ["--source", "x.mp4", "--model", model_path,
                                                                  "--precision", "fp16"],
        }
        for expected, argv in cases.items():
            argv = [str(a) for a in argv]
            if "--pub" not in argv:
                argv += ["--pub", free_tcp_endpoint()]
            assert live_main(argv + ["--no-ui"]) == 2, argv
            err = capsys.readouterr().err.strip()
            assert err.startswith("spot-live: ") and expected in err and "\n" not in err, err
    finally:
        busy.close()
    for argv in ([], ["--camera", "0", "--source", "x.mp4"], ["--camera", "-1"], ["--demo", "--backend", "tf"],
                 ["--demo", "--hwm", "0"], ["--demo", "--precision", "fp8"]):
        with pytest.raises(SystemExit) as exc:
            live_main(argv)
        assert exc.value.code == 2
