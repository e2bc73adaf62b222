"""The subscriber library and `spot-sub`, including a real subscriber process over loopback."""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from helpers import free_tcp_endpoint
from live_fakes import ListCapture, TableEngine, TableFrontEnd, planted_probs
from mespot.cli.sub import main as sub_main
from mespot.client import ProtocolError, Subscriber
from mespot.config import load_config
from mespot.stream.messages import decode, encode
from mespot.stream.peakpicker import CausalPeakPicker, decode_offline_same_rule
from mespot.stream.pipeline import LivePipeline
from mespot.stream.sinks import JsonlRecorder, MessageBus, ZmqPublisher

PLANTS = [("micro", 30, 34, 40), ("macro", 80, 100, 125), ("micro", 160, 164, 171),
          ("macro", 220, 236, 260), ("micro", 300, 305, 311)]


def _connected(pub: ZmqPublisher, sub: Subscriber, topic: str) -> None:
    assert pub.wait_for_subscriber(5.0, topic), "subscriber never connected"


def test_subscriber_decodes_filters_and_times_out():
    endpoint = free_tcp_endpoint()
    pub = ZmqPublisher(endpoint, linger_ms=0)
    bus = MessageBus([pub], stream="cam")
    try:
        with Subscriber(endpoint, topics=("interval", "status"), timeout=0.3, until_ended=True) as sub:
            _connected(pub, sub, "status")
            bus.publish("score", {"frames": []})
            bus.publish("interval", {"kind": "micro"})
            bus.publish("status", {"state": "running"})
            bus.publish("interval", {"kind": "macro"})
            bus.publish("status", {"state": "ended"})
            bus.publish("interval", {"kind": "after the end"})
            got = [(m["topic"], m.get("kind") or m.get("state")) for m in sub]
            assert got == [("interval", "micro"), ("status", "running"), ("interval", "macro"),
                           ("status", "ended")]
            assert sub.ended
        with Subscriber(endpoint, timeout=0.2) as sub:
            t0 = time.monotonic()
            assert list(sub) == []
            assert 0.15 < time.monotonic() - t0 < 2.0
    finally:
        bus.end()
    with pytest.raises(ValueError, match="unknown topic"):
        Subscriber(endpoint, topics=("intervals",))


def test_decode_rejects_what_the_protocol_does_not_allow():
    good = encode("interval", "s", 0, {"kind": "micro"})
    assert decode(b"interval", good)["kind"] == "micro"
    with pytest.raises(ProtocolError, match="not JSON"):
        decode(b"interval", b"{nope")
    with pytest.raises(ProtocolError, match="schema"):
        decode(b"interval", json.dumps({"schema": 99, "topic": "interval"}).encode())
    with pytest.raises(ProtocolError, match="topic"):
        decode(b"status", good)


def _pipeline(probs, valid, sinks, stream="clip"):
    config = load_config("casme2")
    bus = MessageBus(sinks, stream=stream)
    return LivePipeline(ListCapture(len(probs)), TableFrontEnd(valid), TableEngine(probs, config.model_delay),
                        CausalPeakPicker(config), bus, config=config, score_rate_hz=0), config


def test_spot_sub_process_receives_every_interval_in_order(tmp_path):
    """A real `spot-sub` process subscribes over loopback before the run; it must receive every
    interval the run published (the recorder's list), in the same order, and stop on `ended`."""
    rng = np.random.default_rng(7)
    probs = planted_probs(360, PLANTS, noise=0.03, rng=rng)
    valid = np.ones(360, bool)
    valid[190:195] = False
    endpoint = free_tcp_endpoint()
    out_jsonl, out_csv, rec_path = tmp_path / "sub.jsonl", tmp_path / "sub.csv", tmp_path / "rec.jsonl"
    proc = subprocess.Popen(
        [sys.executable, "-m", "mespot.cli.sub", "--endpoint", endpoint, "--jsonl", str(out_jsonl),
         "--csv", str(out_csv), "--timeout", "30"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "COLUMNS": "200"})
    try:
        pub = ZmqPublisher(endpoint)
        assert pub.wait_for_subscriber(30.0, "interval"), "spot-sub never subscribed"
        assert pub.wait_for_subscriber(5.0, "status")
        pipeline, config = _pipeline(probs, valid, [pub, JsonlRecorder(rec_path)])
        summary = pipeline.run()
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0, stderr
    assert "stopped: publisher ended" in stderr
    recorded = [json.loads(line) for line in rec_path.read_text().splitlines()]
    published = [m for m in recorded if m["topic"] == "interval"]
    received = [json.loads(line) for line in out_jsonl.read_text().splitlines()]
    assert len(published) == len(PLANTS) == len(summary.intervals)
    assert received == published
    assert [m["seq"] for m in received] == list(range(len(PLANTS)))
    # What was published is the planted set, and equals the same rule run offline.
    expected = decode_offline_same_rule(probs, config, valid)
    assert [(m["kind"], m["onset_frame"], m["apex_frame"], m["offset_frame"]) for m in received] == \
        [(iv.kind, iv.onset, iv.apex, iv.offset) for iv in sorted(expected, key=lambda i: i.apex + config.decoding(i.kind).end_range[1])]
    assert sorted((iv.kind, iv.onset, iv.apex, iv.offset) for iv in expected) == sorted(PLANTS)
    with open(out_csv) as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["video_name"], int(r["start_frame"]), int(r["end_frame"]), int(r["type_idx"])) for r in rows] == \
        [("clip", m["onset_frame"], m["offset_frame"], m["type_idx"]) for m in received]
    assert len(stdout.splitlines()) == len(PLANTS), "one plain line per interval when piped"


def test_spot_sub_bad_arguments_exit_2(capsys):
    for argv in (["--topics", "nope"], ["--count", "0"], ["--timeout", "-1"]):
        with pytest.raises(SystemExit) as exc:
            sub_main(argv)
        assert exc.value.code == 2
    assert sub_main(["--endpoint", "bogus://x", "--timeout", "0.1"]) == 2
    assert "cannot connect to bogus://x" in capsys.readouterr().err


def test_spot_sub_stops_on_timeout_and_count(tmp_path, capsys):
    endpoint = free_tcp_endpoint()
    assert sub_main(["--endpoint", endpoint, "--timeout", "0.2", "--csv", str(tmp_path / "e.csv")]) == 0
    assert "stopped: no message for 0.2 s" in capsys.readouterr().err
    assert (tmp_path / "e.csv").read_text().splitlines() == ["video_name,start_frame,end_frame,score,type_idx"]
