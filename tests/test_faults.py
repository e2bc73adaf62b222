"""Faults a live run meets and what it does about them (docs/live.md, "Faults and what you see"):
unreadable and repeated frames, a stream that freezes on a format change, the recording file,
signals, and every bad input answered with exit 2 and one line."""
from __future__ import annotations

import json
import sys
import threading
import time
from dataclasses import replace

import cv2
import numpy as np
import pytest

from live_fakes import TableEngine, planted_probs
from mespot.config import load_config
from mespot.stream.capture import CaptureThread
from mespot.stream.peakpicker import CausalPeakPicker
from mespot.stream.pipeline import LivePipeline
from mespot.stream.sinks import JsonlRecorder, MessageBus
from mespot.stream.sources import open_source
from mespot.types import Frame, FrameFeatures

from mjpeg_server import MjpegServer


class GapAwareFrontEnd:
    """Valid features for every image; after a gap of up to `bridge_gaps` frames the next frame
    carries the mean motion over the span, as mespot.stream.frontend.FrontEnd does."""

    bridge_gaps = 2

    def __init__(self) -> None:
        self.gaps = 0

    def process(self, frame: Frame) -> FrameFeatures:
        if frame.is_gap:
            self.gaps += 1
            return FrameFeatures(frame.index, np.zeros((12, 2), np.float32), False, frame.t_source,
                                 frame.t_monotonic)
        span, self.gaps = (1 + self.gaps if self.gaps <= self.bridge_gaps else 1), 0
        return FrameFeatures(frame.index, np.full((12, 2), frame.index, np.float32), True, frame.t_source,
                             frame.t_monotonic, roi_centres=np.zeros((12, 2), np.float32), span=span)


class GapCapture:
    """Frames 0..n-1 with the given indices delivered as gaps."""

    def __init__(self, n: int, gaps) -> None:
        self.n, self.gaps, self.dropped, self._next = n, set(gaps), 0, 0
        self._image = np.zeros((4, 4, 3), np.uint8)

    @property
    def finished(self) -> bool:
        return self._next >= self.n

    def get(self, timeout=None):
        if self.finished:
            return None
        i, self._next = self._next, self._next + 1
        return Frame(i, None if i in self.gaps else self._image, time.monotonic(), time.time(), i / 30)

    def stop(self, timeout: float = 5.0) -> None:
        pass


class RecordingEngine(TableEngine):
    def __init__(self, probs):
        super().__init__(probs)
        self.pushed = []

    def push(self, index, features, valid):
        self.pushed.append((index, bool(valid), float(features[0, 0])))
        return super().push(index, features, valid)


def _run_loop(gaps, tmp_path, n=60):
    config = load_config("live")
    engine = RecordingEngine(planted_probs(n, [], noise=0.0, rng=np.random.default_rng(0)))
    bus = MessageBus([JsonlRecorder(tmp_path / "rec.jsonl")], stream="t")
    pipeline = LivePipeline(GapCapture(n, gaps), GapAwareFrontEnd(), engine, CausalPeakPicker(config), bus,
                            config=config, score_rate_hz=1000.0)
    summary = pipeline.run()
    messages = [json.loads(line) for line in (tmp_path / "rec.jsonl").read_text().splitlines()]
    valid = {}
    for m in messages:
        if m["topic"] == "score":
            valid.update(zip(m["frames"], m["valid"]))
    return engine.pushed, valid, summary


def test_short_gap_is_bridged_with_the_measured_motion_and_published_invalid(tmp_path):
    pushed, valid, summary = _run_loop({20, 21}, tmp_path)
    # The model sees one unbroken run: the gap's indices get the motion measured across it.
    assert [(i, v) for i, v, _ in pushed] == [(i, True) for i in range(60)]
    assert [f for i, _, f in pushed if i in (20, 21, 22)] == [22.0, 22.0, 22.0]
    assert [i for i, v in sorted(valid.items()) if not v] == [20, 21]     # no image, no features
    assert summary.valid_frames == 58


def test_longer_gap_ends_the_run(tmp_path):
    pushed, valid, _ = _run_loop({20, 21, 22}, tmp_path)
    assert [i for i, v, _ in pushed if not v] == [20, 21, 22]
    assert [i for i, v in sorted(valid.items()) if not v] == [20, 21, 22]


def test_stream_frozen_by_a_resolution_change_is_reported_and_reopened(tmp_path):
    """OpenCV keeps decoding an MJPEG stream at its first size after the camera switches to another:
    it repeats the last old frame for good. The copies are gaps, the stream is reopened, and the
    frames come back at the new size; the status says what happened."""
    server = MjpegServer(fps=30.0, size=(160, 120))
    config = load_config("live")
    seen: list = []

    class Watch(GapAwareFrontEnd):
        def process(self, frame):
            seen.append(None if frame.is_gap else frame.image)
            if len(seen) == 30:
                server.size = (320, 240)                     # the camera switches resolution
            if sum(s is not None and s.shape == (240, 320, 3) for s in seen) >= 20:
                pipeline.stop()
            return super().process(frame)

    try:
        source = open_source(server.url, open_timeout_s=2.0, read_timeout_s=2.0, frozen_frames=10,
                             reconnect_timeout_s=20.0)
        bus = MessageBus([JsonlRecorder(tmp_path / "rec.jsonl")], stream="t")
        engine = TableEngine(planted_probs(100000, [], noise=0.0, rng=np.random.default_rng(0)))
        pipeline = LivePipeline(CaptureThread(source, policy="block"), Watch(), engine,
                                CausalPeakPicker(config), bus, config=config, source=source,
                                score_rate_hz=0.0)
        timer = threading.Timer(60.0, pipeline.stop)                 # a bound, should the test fail
        timer.start()
        pipeline.run()
        timer.cancel()
    finally:
        server.close()
    images = [s for s in seen if s is not None]
    assert images[-1].shape == (240, 320, 3), "the stream never came back at its new size"
    assert not any(a.shape == b.shape and np.array_equal(a, b) for a, b in zip(images, images[1:])), \
        "a copy of the previous frame was delivered as a new frame"
    gaps = sum(s is None for s in seen)
    assert gaps >= 10                                               # the copies became gaps
    last = json.loads((tmp_path / "rec.jsonl").read_text().splitlines()[-1])
    assert last["state"] == "ended"
    assert last["source"]["frozen"] >= 1 and last["source"]["duplicates"] >= 10
    assert last["source"]["gaps"] == gaps


def test_corrupt_frame_inside_an_expression_keeps_it_and_adds_nothing(tmp_path):
    """A folder of a generated clip whose frame at the planted macro's apex is unreadable: the
    macro is still found (IoU >= 0.5) and no micro appears around the gap."""
    from live_fakes import free_tcp_endpoint
    from mespot.cli.live import MATCH_IOU, demo_matches
    from mespot.cli.live import main as live_main
    from mespot.synth.identities import list_identities
    from mespot.synth.render import render_video
    from mespot.synth.timeline import plan_timeline

    identity = list_identities("astronaut", size=(320, 240))[0]
    timeline = plan_timeline(300, 30.0, seed=3, counts={"micro": 1, "macro": 1})
    macro = next(i for i in timeline.intervals() if i.kind == "macro")
    clip = render_video(identity, timeline, tmp_path / "gen.mp4")
    folder = tmp_path / "frames"
    folder.mkdir()
    cap = cv2.VideoCapture(str(clip))
    for i in range(300):
        ok, image = cap.read()
        assert ok
        cv2.imwrite(str(folder / f"f_{i:03d}.png"), image)
    cap.release()
    (folder / f"f_{macro.apex:03d}.png").write_bytes(b"")
    record = tmp_path / "run.jsonl"
    assert live_main(["--source", str(folder), "--no-ui", "--record", str(record),
                      "--pub", free_tcp_endpoint()]) == 0
    messages = [json.loads(line) for line in record.read_text().splitlines()]
    from mespot.types import Interval
    found = [Interval(m["kind"], m["onset_frame"], m["apex_frame"], m["offset_frame"], m["score"])
             for m in messages if m["topic"] == "interval"]
    [(_, best, iou)] = demo_matches([macro], found)
    assert iou >= MATCH_IOU, found
    assert not [f for f in found if f.kind == "micro" and f.offset >= macro.onset - 10
                and f.onset <= macro.offset + 10], found
    assert messages[-1]["source"]["gaps"] == 1
