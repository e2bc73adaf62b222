"""Faults a live run meets and what it does about them (docs/live.md, "Faults and what you see"):
unreadable and repeated frames, a stream that freezes on a format change, the recording file,
signals, and every bad input answered with exit 2 and one line."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time

import cv2
import numpy as np
import pytest

from mespot.config import load_config
from mespot.stream.capture import CaptureThread
from mespot.stream.peakpicker import CausalPeakPicker
from mespot.stream.pipeline import LivePipeline
from mespot.stream.sinks import JsonlRecorder, MessageBus
from mespot.stream.sources import open_source
from mespot.types import Frame, FrameFeatures, Interval

from helpers import free_tcp_endpoint, write_image_folder
from live_fakes import TableEngine, planted_probs
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


def test_the_factory_pipeline_holds_back_what_its_front_end_bridges(tmp_path):
    """spot-live and the benchmarks get the bridge through the one factory, not only hand-built loops."""
    from mespot.engine.runtime import open_runtime
    from mespot.models import default_model_path
    from mespot.stream.factory import build_pipeline
    from mespot.stream.frontend import BRIDGE_GAPS

    runtime = open_runtime(default_model_path("onnx"), "onnx")
    with build_pipeline(str(write_image_folder(tmp_path / "seq", 3)), runtime) as live:
        assert live.frontend.bridge_gaps == BRIDGE_GAPS > 0
        assert live.pipeline._bridge_gaps == BRIDGE_GAPS
    live.source.close()


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
    found = [Interval(m["kind"], m["onset_frame"], m["apex_frame"], m["offset_frame"], m["score"])
             for m in messages if m["topic"] == "interval"]
    [(_, best, iou)] = demo_matches([macro], found)
    assert iou >= MATCH_IOU, found
    assert not [f for f in found if f.kind == "micro" and f.offset >= macro.onset - 10
                and f.onset <= macro.offset + 10], found
    assert messages[-1]["source"]["gaps"] == 1


# -- bad input: exit 2 and one line naming the file or value and the problem ------------------------

def _stripped_onnx(folder, **sidecar_changes):
    """The shipped ONNX model without its own metadata, so its sidecar is what describes it, and a
    sidecar with `sidecar_changes` applied (a key -> value, or `text` for the whole file)."""
    onnx = pytest.importorskip("onnx", reason="writing a model without metadata needs the onnx package")
    from mespot.models import ModelNotFound, default_model_path

    try:
        shipped = default_model_path()
    except ModelNotFound:
        pytest.skip("no shipped model in this build")
    model = onnx.load(str(shipped))
    del model.metadata_props[:]
    path = folder / "stripped.onnx"
    onnx.save(model, str(path))
    meta = json.loads((shipped.parent / (shipped.name + ".json")).read_text())
    text = sidecar_changes.pop("text", None)
    meta.update(sidecar_changes)
    (folder / "stripped.onnx.json").write_text(text if text is not None else json.dumps(meta))
    return path


def _truncated_mp4(folder):
    path = folder / "whole.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, (96, 64))
    for i in range(30):
        writer.write(np.full((64, 96, 3), 4 * i, np.uint8))
    writer.release()
    cut = folder / "truncated.mp4"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return cut


# id -> (build the arguments in a tmp folder, what the one line must say)
BAD_INPUTS = {
    "random bytes .onnx": (lambda d: ["--model", _write(d / "junk.onnx", np.random.default_rng(0).bytes(4096))],
                           ["junk.onnx", "not a model ONNX Runtime can load"]),
    "random bytes .pt": (lambda d: ["--model", _write(d / "junk.pt", np.random.default_rng(1).bytes(4096)),
                                    "--backend", "torch"],
                         ["junk.pt", "not a readable torch checkpoint"]),
    "malformed YAML config": (lambda d: ["--config", _write(d / "bad.yaml", b"fps: [30\ndecoding: {micro: ")],
                              ["bad.yaml", "not valid YAML"]),
    "sidecar window 3": (lambda d: ["--model", _stripped_onnx(d, window=3)],
                         ["stripped.onnx.json", "window 3 must be >= 2*right_context+1 = 11"]),
    "sidecar config x": (lambda d: ["--model", _stripped_onnx(d, config="x")],
                         ["stripped.onnx.json", "config must be an object"]),
    "sidecar not JSON": (lambda d: ["--model", _stripped_onnx(d, text="window: 11\n")],
                         ["stripped.onnx.json", "not valid JSON"]),
    "sidecar right_context 2": (lambda d: ["--model", _stripped_onnx(d, right_context=2)],
                                ["stripped.onnx.json", "disagrees with right_context 2"]),
    "sidecar right_context and model_delay 3": (
        lambda d: ["--model", _stripped_onnx(d, right_context=3, config={
            **load_config("live").to_dict(), "model_delay": 3})],
        ["stripped.onnx", "right_context 3 disagrees with the model, whose output reaches 5"]),
    "sidecar frontend x": (lambda d: ["--model", _stripped_onnx(d, frontend="x")],
                           ["stripped.onnx.json", "frontend must be an object"]),
    "sidecar frontend incomplete": (lambda d: ["--model", _stripped_onnx(d, frontend={"flow": "dis"}),
                                               "--source", write_image_folder(d / "seq", 2)],
                                    ["model ", "stripped.onnx", "front-end description is incomplete"]),
    "port 99999": (lambda d: ["--pub", "tcp://127.0.0.1:99999"], ["tcp://127.0.0.1:99999", "port 99999"]),
    "empty file": (lambda d: ["--source", _write(d / "empty.mp4", b"")], ["empty.mp4", "cannot open video file"]),
    "truncated mp4": (lambda d: ["--source", _truncated_mp4(d)], ["truncated.mp4", "cannot open video file"]),
    "text named .mp4": (lambda d: ["--source", _write(d / "notes.mp4", b"not a video\n" * 50)],
                        ["notes.mp4", "cannot open video file"]),
    "camera 99": (lambda d: ["--camera", "99"], ["camera 99", "no such camera"]),
    "record in a missing folder": (lambda d: ["--record", d / "missing" / "x.jsonl"],
                                   ["x.jsonl", "does not exist"]),
}


def _write(path, data: bytes):
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_exits_2_with_one_line(case, tmp_path):

    build, expected = BAD_INPUTS[case]
    args = [str(a) for a in build(tmp_path)]
    if "--pub" not in args:
        args += ["--pub", free_tcp_endpoint()]
    if not {"--camera", "--source"} & set(args):
        args += ["--source", str(tmp_path)]        # not reached: the bad input is refused first
    record = tmp_path / "run.jsonl"
    if "--record" not in args:
        args += ["--record", str(record)]
    proc = subprocess.run([sys.executable, "-m", "mespot.cli.live", *args, "--no-ui"], capture_output=True,
                          text=True, timeout=120)
    lines = proc.stderr.splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert lines[0].startswith("spot-live: ") and all(e in lines[0] for e in expected), lines[0]
    assert not record.exists(), "a failed start left a recording behind"
    assert not (tmp_path / "missing").exists(), "a missing folder was created"


def test_tracker_that_cannot_be_built_is_one_line(monkeypatch, tmp_path, capsys):
    from mespot.cli.live import main as live_main
    from mespot.stream import frontconfig
    from mespot.stream.tracker import TrackerError

    def broken(*args, **kwargs):
        raise TrackerError("FaceLandmarker model 'face.task' not found (a .task file is needed)")

    monkeypatch.setattr(frontconfig, "FrontEnd", broken)     # where the factory builds it
    folder = tmp_path / "frames"
    folder.mkdir()
    cv2.imwrite(str(folder / "a.png"), np.zeros((64, 96, 3), np.uint8))
    assert live_main(["--source", str(folder), "--no-ui", "--pub", free_tcp_endpoint(),
                      "--record", str(tmp_path / "run.jsonl")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "spot-live: cannot build the face tracker: FaceLandmarker model 'face.task' not found " \
                  "(a .task file is needed)"
    assert not (tmp_path / "run.jsonl").exists()


def _records(path):
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.endswith("}")]


@pytest.mark.parametrize("signame,count", [("SIGINT", 2), ("SIGTERM", 3)])
def test_repeated_signals_while_reconnecting_still_end_with_ended(signame, count, tmp_path):
    """The stream is cut, the source waits to reconnect, and the user presses Ctrl-C twice (or
    sends SIGTERM three times): the run still publishes and records its final `ended` status,
    prints its summary and exits 0."""

    from mespot.client import Subscriber

    server = MjpegServer(fps=30.0)
    record = tmp_path / "run.jsonl"
    endpoint = free_tcp_endpoint()
    received: list = []
    subscriber = Subscriber(endpoint, topics=("status",), timeout=60.0, until_ended=True)
    listener = threading.Thread(target=lambda: received.extend(subscriber))
    listener.start()
    proc = subprocess.Popen([sys.executable, "-m", "mespot.cli.live", "--source", server.url, "--no-ui",
                             "--record", str(record), "--pub", endpoint],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not any(
                m["topic"] == "status" and m["frames"] > 0 for m in _records(record)):
            time.sleep(0.1)
        server.cut()
        while time.monotonic() < deadline and not any(
                m["topic"] == "status" and m["source"]["last_frame_age_s"] > 0.5 for m in _records(record)):
            time.sleep(0.1)
        assert proc.poll() is None, proc.communicate()
        for _ in range(count):                    # back to back: all arrive before the run can end
            proc.send_signal(getattr(signal, signame))
        out, err = proc.communicate(timeout=60)
        listener.join(60)
    finally:
        proc.kill()
        server.close()
        subscriber.close()
    assert proc.returncode == 0, err
    assert ": ended;" in out
    last = _records(record)[-1]
    assert last["topic"] == "status" and last["state"] == "ended"
    assert received and received[-1] == last, "the bus's last message is not the recording's"


def test_dashboard_header_names_the_source_faults():
    from mespot.stream.dashboard import Dashboard

    board = Dashboard(title="t", thresholds={"micro": 0.5, "macro": 0.5})
    status = {"state": "running", "fps": 30.0, "frames": 10, "dropped": {"capture": 0, "publish": 0},
              "source": {"healthy": False, "gaps": 3, "duplicates": 2, "frozen": 1, "reconnects": 0}}
    assert board._header(status, True).plain.endswith("source stalled  3 gaps, 2 duplicates, 1 frozen")
    status["source"] = {"healthy": True, "gaps": 0}
    assert board._header(status, True).plain.endswith("source ok")
