"""The live loop with exact stand-ins for its heavy parts: online = offline through the loop, stage
timings and features in every FrameRecord, the error and stop paths; StageLog's percentiles."""
import json
import threading
import time

import numpy as np
import pytest

from live_fakes import ListCapture, TableEngine, TableFrontEnd, planted_probs
from mespot.config import load_config
from mespot.stream.peakpicker import CausalPeakPicker, decode_offline_same_rule
from mespot.stream.pipeline import STAGES, LivePipeline, PipelineObserver, StageLog
from mespot.stream.sinks import JsonlRecorder, MessageBus

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
        assert np.array_equal(record.features, np.full((12, 2), record.index, np.float32))   # the front-end's
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


# -- StageLog ----------------------------------------------------------------------------------------


def _expected(history: list[dict], last: int) -> dict:
    out = {}
    for s in STAGES:
        values = np.array([h[s] for h in history[-last:]])
        p50, p95, p99 = np.percentile(values, [50, 95, 99])
        out[s] = {"p50": round(float(p50), 3), "p95": round(float(p95), 3), "p99": round(float(p99), 3),
                  "max": round(float(values.max()), 3)}
    return out


def test_percentiles_cover_exactly_the_newest_frames_across_the_ring_wrap():
    rng = np.random.default_rng(3)
    log = StageLog(size=50)
    history = []
    assert log.percentiles() == {s: {} for s in STAGES}
    for n in range(1, 131):
        # A stage's time grows with the frame number, so a window that is off by one frame shows.
        frame = {s: float(n * (k + 1) + rng.random()) for k, s in enumerate(STAGES)}
        log.add(frame)
        history.append(frame)
        if n in (1, 7, 49, 50, 51, 99, 100, 101, 130):
            assert log.percentiles() == _expected(history, 50)
            assert log.percentiles(last=10) == _expected(history, 10)
            assert log.percentiles(last=500) == _expected(history, 50)
