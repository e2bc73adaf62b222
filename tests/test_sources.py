"""Sources on generated input: video file, image folder, resampling by timestamp, a local MJPEG
stream that is cut and restored, broken input, and sources that cannot be opened."""
from __future__ import annotations

import threading
import time
from dataclasses import replace

import cv2
import numpy as np
import pytest

from mespot.stream.capture import CaptureThread
from mespot.stream.resample import TimestampResampler
from mespot.stream.sources import (ImageFolderSource, LiveSource, SourceError, VideoFileSource, natural_key,
                                   open_source)
from mespot.types import Frame

from helpers import free_port, number_of, numbered_image, write_image_folder, write_video
from mjpeg_server import MjpegServer


def test_video_file_reads_every_frame_with_file_timestamps(tmp_path):
    path = write_video(tmp_path / "clip.avi", 20, 30.0)
    with open_source(str(path)) as src:
        assert isinstance(src, VideoFileSource) and not src.is_live
        assert src.fps == pytest.approx(30.0) and src.duration_s == pytest.approx(20 / 30)
        frames = list(src)
    assert [f.index for f in frames] == list(range(20))
    assert [number_of(f.image) for f in frames] == list(range(20))
    np.testing.assert_allclose([f.t_source for f in frames], np.arange(20) / 30, atol=1e-3)
    assert src.stats["frames_read"] == 20 and src.stats["errors"] == 0


def test_video_file_realtime_is_paced_at_its_own_rate(tmp_path):
    path = write_video(tmp_path / "clip.avi", 12, 30.0)
    start = time.monotonic()
    frames = list(open_source(str(path), realtime=True))
    elapsed = time.monotonic() - start
    assert len(frames) == 12
    assert elapsed >= 11 / 30 - 0.01           # the last frame is due at 11/30 s
    gaps = np.diff([f.t_monotonic for f in frames])
    assert np.median(gaps) == pytest.approx(1 / 30, abs=0.01)


def test_image_folder_uses_natural_order(tmp_path):
    folder = write_image_folder(tmp_path / "seq", 12)             # img_0 .. img_11, unpadded
    assert sorted(["img_10.png", "img_2.png", "img_1.png"], key=natural_key) == ["img_1.png", "img_2.png",
                                                                                 "img_10.png"]
    src = open_source(str(folder), fps=25.0)
    assert isinstance(src, ImageFolderSource) and src.fps == 25.0
    frames = list(src)
    assert [number_of(f.image) for f in frames] == list(range(12))
    np.testing.assert_allclose([f.t_source for f in frames], np.arange(12) / 25)


def test_corrupt_and_empty_files_are_gaps_never_copies(tmp_path):
    folder = write_image_folder(tmp_path / "seq", 6)
    (folder / "img_2.png").write_bytes(b"\x89PNG this is not an image")
    (folder / "img_4.png").write_bytes(b"")
    for target_fps in (None, 30.0):        # the resampler must not fill a gap with a neighbour
        src = open_source(str(folder), target_fps=target_fps)
        frames = list(src)
        assert [f.index for f in frames] == list(range(6))
        assert [f.is_gap for f in frames] == [False, False, True, False, True, False]
        assert [number_of(f.image) for f in frames if not f.is_gap] == [0, 1, 3, 5]
        np.testing.assert_allclose([f.t_source for f in frames], np.arange(6) / 30)
        assert src.stats["errors"] == 2 and src.stats["gaps"] == 2 and src.stats["repeated"] == 0


def test_video_frames_that_cannot_be_decoded_are_gaps(tmp_path, monkeypatch):
    path = write_video(tmp_path / "clip.avi", 8, 30.0)
    src = open_source(str(path), target_fps=30.0)
    retrieve = src._cap.retrieve
    calls = []

    def failing_retrieve():                 # frame 3 decodes to nothing, as a damaged packet does
        calls.append(1)
        return (False, None) if len(calls) == 4 else retrieve()

    monkeypatch.setattr(src, "_cap", _Wrapped(src._cap, retrieve=failing_retrieve))
    frames = list(src)
    assert [f.is_gap for f in frames] == [i == 3 for i in range(8)]
    assert [number_of(f.image) for f in frames if not f.is_gap] == [0, 1, 2, 4, 5, 6, 7]
    assert src.stats["errors"] == 1 and src.stats["gaps"] == 1


class _Wrapped:
    """A cv2.VideoCapture with some methods replaced."""

    def __init__(self, cap, **methods):
        self._cap, self._methods = cap, methods

    def __getattr__(self, name):
        return self._methods.get(name) or getattr(self._cap, name)


def test_files_count_copies_but_keep_them(tmp_path):
    folder = tmp_path / "seq"
    folder.mkdir()
    for i, level in enumerate([0, 1, 1, 1, 2]):
        cv2.imwrite(str(folder / f"img_{i}.png"), numbered_image(level))
    src = open_source(str(folder))
    frames = list(src)
    assert not any(f.is_gap for f in frames)      # a still image sequence is a still face
    assert src.stats["duplicates"] == 2 and src.stats["gaps"] == 0


def test_resolution_change_passes_through(tmp_path):
    folder = tmp_path / "seq"
    folder.mkdir()
    cv2.imwrite(str(folder / "a_1.png"), numbered_image(1, (96, 64)))
    cv2.imwrite(str(folder / "a_2.png"), numbered_image(2, (160, 120)))
    shapes = [f.image.shape for f in open_source(str(folder))]
    assert shapes == [(64, 96, 3), (120, 160, 3)]


def test_resample_60_to_30_takes_every_other_frame(tmp_path):
    folder = write_image_folder(tmp_path / "seq", 60)
    src = open_source(str(folder), fps=60.0, target_fps=30.0)
    frames = list(src)
    assert [f.index for f in frames] == list(range(30))
    assert [number_of(f.image) for f in frames] == list(range(0, 60, 2))
    assert src.stats["dropped"] == 29 and src.stats["repeated"] == 0     # the last frame is never due


def test_resample_24_to_30_uses_the_nearest_frame_in_time(tmp_path):
    path = write_video(tmp_path / "clip24.avi", 24, 24.0)
    src = open_source(str(path), target_fps=30.0)
    frames = list(src)
    assert [f.index for f in frames] == list(range(30))
    numbers = [number_of(f.image) for f in frames]
    for n, (k, f) in enumerate(zip(numbers, frames)):
        assert abs(k / 24 - n / 30) <= 0.5 / 24 + 1e-6, f"tick {n} got frame {k}"
        assert f.t_source == pytest.approx(k / 24, abs=1e-3)
    assert sorted(set(numbers)) == list(range(24))            # every source frame used
    assert src.stats["repeated"] == 6 and src.stats["dropped"] == 0


def _frames_at(times) -> list[Frame]:
    img = np.zeros((4, 4, 3), np.uint8)
    return [Frame(index=i, image=img, t_monotonic=0.0, t_wall=0.0, t_source=t) for i, t in enumerate(times)]


def test_resampler_follows_timestamps_not_counts():
    # A variable-rate source: the tick grid stays at 30 fps whatever the arrival pattern.
    times = [0.0, 0.010, 0.034, 0.070, 0.099, 0.131, 0.170, 0.200]
    r = TimestampResampler(30.0)
    out = [g for f in _frames_at(times) for g in r.push(f)]
    assert [g.index for g in out] == list(range(len(out)))
    for g in out:
        assert abs(g.t_source - g.index / 30) <= 0.5 / 30


def test_resampler_leaves_a_hole_instead_of_bridging_it():
    times = list(np.arange(10) / 30) + list(1.0 + np.arange(5) / 30)   # 0.7 s with no frames
    r = TimestampResampler(30.0, max_gap_s=0.25)
    out = [g for f in _frames_at(times) for g in r.push(f)]
    indices = [g.index for g in out]
    assert indices[:10] == list(range(10)) and indices[10:] == list(range(30, 35))
    assert r.skipped_ticks == 20


def test_resampler_drops_frames_whose_time_goes_backwards():
    r = TimestampResampler(30.0)
    out = [g for f in _frames_at([0.0, 1 / 30, 0.5 / 30, 2 / 30]) for g in r.push(f)]
    assert [g.index for g in out] == [0, 1, 2] and r.dropped == 1


def test_mjpeg_stream_cut_and_restored_reconnects(tmp_path):
    server = MjpegServer(fps=30.0)
    try:
        src = open_source(server.url, open_timeout_s=2.0, read_timeout_s=2.0, backoff_s=0.1,
                          reconnect_timeout_s=15.0)
        assert isinstance(src, LiveSource) and src.is_live and src.duration_s is None
        capture = CaptureThread(src)
        assert capture.policy == "drop_oldest"
        got = []
        deadline = time.monotonic() + 30
        restorer = None
        while len(got) < 40 and time.monotonic() < deadline:
            frame = capture.get(timeout=5.0)
            assert frame is not None, "stream stalled"
            got.append(frame)
            if len(got) == 15:
                server.cut()                                  # the network goes away ...
                restorer = threading.Timer(0.8, server.restore)  # ... and comes back
                restorer.start()
        capture.stop()
        assert len(got) == 40
        assert src.stats["reconnects"] >= 1
        gaps = np.diff([f.t_source for f in got])
        assert gaps.max() >= 0.7                              # the outage shows in the timestamps
        assert np.all(gaps > 0)
    finally:
        if restorer is not None:
            restorer.join()
        server.close()


def test_stream_that_never_returns_gives_up_after_the_reconnect_timeout():
    server = MjpegServer(fps=30.0)
    try:
        src = open_source(server.url, open_timeout_s=1.0, read_timeout_s=1.0, backoff_s=0.05,
                          max_backoff_s=0.4, reconnect_timeout_s=1.0)
        frames = 0
        start = None
        for _ in src:
            frames += 1
            if frames == 5:
                server.cut()
                start = time.monotonic()
        elapsed = time.monotonic() - start
    finally:
        server.close()
    assert frames >= 5 and src.stats["reconnects"] == 0
    assert 1.0 <= elapsed < 4.0                # gave up after the timeout, plus at most one back-off


def test_damaged_video_file_never_crashes(tmp_path):
    path = write_video(tmp_path / "clip.avi", 30, 30.0)
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 3000] = bytes(3000)          # wipe part of the frames in the middle
    damaged = tmp_path / "damaged.avi"
    damaged.write_bytes(bytes(data))
    src = open_source(str(damaged))
    frames = list(src)
    images = [f for f in frames if not f.is_gap]
    assert 10 <= len(images) <= 30
    assert all(f.image.shape == (64, 96, 3) for f in images)
    assert np.all(np.diff([f.index for f in frames]) > 0)
    assert src.stats["gaps"] == len(frames) - len(images) <= src.stats["errors"]


def test_unopenable_sources_raise_source_error(tmp_path):
    (tmp_path / "not_a_video.mp4").write_text("hello")
    (tmp_path / "empty").mkdir()
    cases = [str(tmp_path / "missing.mp4"), str(tmp_path / "not_a_video.mp4"), str(tmp_path / "empty"),
             f"http://127.0.0.1:{free_port()}/stream.mjpg"]
    for spec in cases:
        with pytest.raises(SourceError) as err:
            open_source(spec, **({"open_timeout_s": 1.0} if spec.startswith("http") else {}))
        assert "\n" not in str(err.value)


def test_camera_that_is_not_there_raises_source_error():
    with pytest.raises(SourceError, match="camera 97"):
        open_source("97")


def test_frames_carry_capture_timestamps(tmp_path):
    path = write_video(tmp_path / "clip.avi", 3, 30.0)
    before_m, before_w = time.monotonic(), time.time()
    frames = list(open_source(str(path)))
    for f in frames:
        assert before_m <= f.t_monotonic <= time.monotonic()
        assert before_w - 1 <= f.t_wall <= time.time() + 1
    assert replace(frames[0], index=5).index == 5
