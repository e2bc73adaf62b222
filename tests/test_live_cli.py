"""`spot-live`: clear exit-2 errors, the demo's matching, and end-to-end runs on real and generated
clips (the loop itself, with exact stand-ins, is tests/test_pipeline.py)."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import free_tcp_endpoint
from mespot.cli.live import demo_matches
from mespot.cli.live import main as live_main
from mespot.stream.sinks import ZmqPublisher
from mespot.types import Interval

def test_demo_matching_pairs_each_planted_with_its_best_detection():
    planted = [Interval("micro", 10, 13, 17), Interval("macro", 50, 60, 80), Interval("micro", 100, 103, 107)]
    found = [Interval("micro", 11, 13, 17), Interval("macro", 52, 61, 79), Interval("macro", 100, 103, 107)]
    rows = demo_matches(planted, found)
    assert [(f is not None and f.onset, round(v, 3)) for _, f, v in rows] == \
        [(11, round(7 / 8, 3)), (52, round(28 / 31, 3)), (False, 0.0)]


# -- spot-live itself ------------------------------------------------------------------------------

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
    for argv in ([], ["--camera", "0", "--demo"], ["--camera", "-1"], ["--demo", "--backend", "tf"],
                 ["--demo", "--hwm", "0"], ["--demo", "--precision", "fp8"]):
        with pytest.raises(SystemExit) as exc:
            live_main(argv)
        assert exc.value.code == 2
