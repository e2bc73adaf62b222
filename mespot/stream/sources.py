"""Frame sources behind one small interface: camera, network stream, video file, image folder.

`open_source(spec)` picks the kind from the spec (a camera index, an rtsp/rtmp/http(s) URL, a video
file, or a folder of images in natural order) and returns a `Source`: an iterable and context
manager of `mespot.types.Frame` with `.fps` (nominal), `.is_live`, `.duration_s` (None when
unknown or endless), `.stats` and `.close()`.

Timestamps: `t_source` is the frame's position in seconds from the source's first frame (the
container's presentation time for files, `index / fps` for image folders, capture time for live
sources, continuing across reconnects so that an outage shows as a hole). With `target_fps` the
frames are resampled to that rate by these timestamps (see `mespot.stream.resample`) and `index`
counts ticks at the target rate.

Robustness: an empty or undecodable frame becomes a gap, a `Frame` whose `image` is None at the
position and time the frame was due (counted in `stats["errors"]` and `stats["gaps"]`), never a
copy of another frame: the front-end then restarts its flow, so no motion is invented across it.
A frame bit-identical to the previous one is counted in `stats["duplicates"]`. From a live source
it is a gap too: a sensor's noise makes two real frames differ, so a copy means the driver or the
decoder delivered nothing new (an MJPEG stream that changed resolution makes OpenCV repeat the
last frame of the old size for good). After `frozen_frames` copies in a row the stream is reopened
(`stats["frozen"]`). From a file or folder a copy is passed on: an encoder or a still image
sequence repeats frames on purpose. A live source that stops delivering reconnects with
exponential back-off (`stats["reconnects"]`); a source that cannot be opened at all raises
`SourceError` with one line a CLI can print.
"""
from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from mespot.files import IMAGE_SUFFIXES, natural_key
from mespot.stream.resample import TimestampResampler
from mespot.types import Frame

URL_SCHEMES = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://", "udp://", "tcp://")
DECODE_LEAD_S = 0.005     # realtime playback decodes a frame this long before it is due (decode p99 ~1.4 ms)


class SourceError(RuntimeError):
    """A source that cannot be opened; the message is one line meant for the user."""


def _usable(image: np.ndarray | None) -> bool:
    return image is not None and image.ndim == 3 and image.shape[2] == 3 and image.size > 0


def same_image(a: np.ndarray | None, b: np.ndarray | None) -> bool:
    """True when both images exist and are bit-identical. A sparse grid is compared first: real
    consecutive frames almost always differ there, so the full comparison runs only for copies."""
    if a is None or b is None or a.shape != b.shape:
        return False
    return bool(np.array_equal(a[::16, ::16], b[::16, ::16]) and np.array_equal(a, b))


class Source(ABC):
    """Base of every source. Subclasses yield raw frames from `_frames()`; resampling and the
    stats that belong to it are handled here, so every kind behaves the same."""

    fps: float = 0.0
    is_live: bool = False
    duration_s: float | None = None

    def __init__(self, *, target_fps: float | None = None) -> None:
        self._closed = threading.Event()
        self._resampler = TimestampResampler(target_fps) if target_fps else None
        self._stats = {"frames_read": 0, "frames_out": 0, "dropped": 0, "repeated": 0,
                       "reconnects": 0, "errors": 0, "gaps": 0, "duplicates": 0, "frozen": 0}
        self._last_image: np.ndarray | None = None

    @property
    def target_fps(self) -> float | None:
        return self._resampler.target_fps if self._resampler else None

    @property
    def stats(self) -> dict[str, int]:
        """frames_read (positions read from the device/file, gaps included), frames_out (after
        resampling), dropped (read but not used at the target rate), repeated (ticks that reuse a
        frame), reconnects, errors (unreadable frames), gaps (frames delivered without an image),
        duplicates (frames bit-identical to the previous one), frozen (times a live source
        delivered only copies for `frozen_frames` frames and was reopened)."""
        s = dict(self._stats)
        if self._resampler is not None:
            s["dropped"] = self._resampler.dropped
            s["repeated"] = self._resampler.repeated
        return s

    @abstractmethod
    def _frames(self) -> Iterator[Frame]:
        """Raw frames in source order, `index` = position in the source."""

    def _gap(self, index: int, t_source: float, t_monotonic: float | None = None) -> Frame:
        """A position whose frame is unusable: no image, so nobody mistakes another frame for it."""
        self._stats["gaps"] += 1
        return Frame(index=index, image=None, t_monotonic=time.monotonic() if t_monotonic is None
                     else t_monotonic, t_wall=time.time(), t_source=t_source)

    def _is_copy(self, image: np.ndarray) -> bool:
        """Whether `image` repeats the previous image bit for bit (counted in stats["duplicates"])."""
        copy = same_image(image, self._last_image)
        self._last_image = image
        if copy:
            self._stats["duplicates"] += 1
        return copy

    def __iter__(self) -> Iterator[Frame]:
        try:
            for frame in self._frames():
                if self._closed.is_set():
                    break
                self._stats["frames_read"] += 1
                out = self._resampler.push(frame) if self._resampler else [frame]
                for f in out:
                    self._stats["frames_out"] += 1
                    yield f
            if self._resampler is not None and not self._closed.is_set():
                for f in self._resampler.finish():
                    self._stats["frames_out"] += 1
                    yield f
        finally:
            self._release()

    def close(self) -> None:
        """Ask the source to stop; safe from another thread and more than once."""
        self._closed.set()

    def _release(self) -> None:
        """Free the device or file; called once iteration ends (subclasses override)."""

    def _pace(self, t0_mono: float, t_source: float) -> bool:
        """Wait until `t_source` seconds after `t0_mono` (realtime playback); False if closed meanwhile."""
        delay = t0_mono + t_source - time.monotonic()
        return not (delay > 0 and self._closed.wait(delay))

    def _before_decode(self, t0_mono: float, t_next: float) -> bool:
        """Realtime playback: wait until DECODE_LEAD_S before the next frame is due, then decode it.

        A camera delivers (and an MJPEG or RTSP source decodes) each frame when it arrives. Decoding
        the next frame right after the previous one was handed over instead would make the
        consumer's processing of that frame share the machine with the decode; decoding just before
        the due time keeps the stamp-to-result latency what it is with a camera. False if closed
        meanwhile.
        """
        return self._pace(t0_mono, t_next - DECODE_LEAD_S)

    def __enter__(self) -> "Source":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
        self._release()

    def describe(self) -> str:
        return type(self).__name__


class VideoFileSource(Source):
    """A video file, decoded in order; timestamps from the container (variable-rate safe).

    `realtime=True` paces delivery at the file's own timestamps, so a file can stand in for a camera.
    """

    def __init__(self, path: str | Path, *, realtime: bool = False, target_fps: float | None = None) -> None:
        super().__init__(target_fps=target_fps)
        self.path = Path(path)
        self.realtime = realtime
        self._cap = cv2.VideoCapture(str(self.path))
        if not self._cap.isOpened():
            raise SourceError(f"cannot open video file {str(self.path)!r} (not a video OpenCV can decode)")
        fps = self._cap.get(cv2.CAP_PROP_FPS)
        count = self._cap.get(cv2.CAP_PROP_FRAME_COUNT)
        self.fps = float(fps) if fps and fps > 0 else 30.0
        self.frame_count = int(count) if count and count > 0 else None
        self.duration_s = self.frame_count / self.fps if self.frame_count else None

    def _frames(self) -> Iterator[Frame]:
        cap = self._cap
        t0_file: float | None = None
        t_prev = -np.inf
        t0_mono = time.monotonic()
        position = 0
        failures = 0
        while not self._closed.is_set():
            if self.realtime and np.isfinite(t_prev) and not self._before_decode(
                    t0_mono, t_prev - t0_file + 1.0 / self.fps):
                return
            ok = cap.grab()
            if not ok:
                # A failed grab before the stated end may be one damaged packet: try a few more.
                # They count as errors only if decoding resumes (frame counts are often estimates).
                if self.frame_count is not None and position < self.frame_count and failures < 5:
                    failures += 1
                    position += 1
                    continue
                return
            ok, image = cap.retrieve()
            pos_ms = cap.get(cv2.CAP_PROP_POS_MSEC)
            t_file = pos_ms / 1000.0 if pos_ms is not None else np.nan
            if not np.isfinite(t_file) or t_file <= t_prev:
                t_file = (t_prev + (1 + failures) / self.fps) if np.isfinite(t_prev) else 0.0
            if t0_file is None:
                t0_file = t_file
            self._stats["errors"] += failures
            if failures and np.isfinite(t_prev):
                # The damaged packets were frames: gaps spread evenly between their neighbours.
                for k in range(failures):
                    t_gap = t_prev + (t_file - t_prev) * (k + 1) / (failures + 1)
                    yield self._gap(position - failures + k, t_gap - t0_file)
            failures = 0
            t_prev = t_file
            t_source = t_file - t0_file
            index = position
            position += 1
            if self.realtime and not self._pace(t0_mono, t_source):
                return
            if not ok or not _usable(image):
                self._stats["errors"] += 1
                yield self._gap(index, t_source)
                continue
            self._is_copy(image)
            yield Frame(index=index, image=image, t_monotonic=time.monotonic(), t_wall=time.time(),
                        t_source=t_source)

    def _release(self) -> None:
        self._cap.release()

    def describe(self) -> str:
        return f"video file {self.path} ({self.fps:.2f} fps)"


class ImageFolderSource(Source):
    """A folder of still images in natural order (`img_2` before `img_10`) at a stated `fps`
    (folders carry no timestamps). An unreadable file is a gap at its own position (an error)."""

    def __init__(self, path: str | Path, *, fps: float = 30.0, realtime: bool = False,
                 target_fps: float | None = None) -> None:
        super().__init__(target_fps=target_fps)
        self.path = Path(path)
        if fps <= 0:
            raise SourceError(f"image folder fps must be positive, got {fps}")
        self.files = sorted((p for p in self.path.iterdir()
                             if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES),
                            key=lambda p: natural_key(p.name))
        if not self.files:
            raise SourceError(f"folder {str(self.path)!r} holds no images ({', '.join(IMAGE_SUFFIXES)})")
        self.fps = float(fps)
        self.realtime = realtime
        self.duration_s = len(self.files) / self.fps

    def _frames(self) -> Iterator[Frame]:
        t0_mono = time.monotonic()
        for index, file in enumerate(self.files):
            if self._closed.is_set() or (self.realtime and not self._before_decode(t0_mono, index / self.fps)):
                return
            image = cv2.imread(str(file), cv2.IMREAD_COLOR)
            t_source = index / self.fps
            if self.realtime and not self._pace(t0_mono, t_source):
                return
            if not _usable(image):
                self._stats["errors"] += 1
                yield self._gap(index, t_source)
                continue
            self._is_copy(image)
            yield Frame(index=index, image=image, t_monotonic=time.monotonic(), t_wall=time.time(),
                        t_source=t_source)

    def describe(self) -> str:
        return f"image folder {self.path} ({len(self.files)} images at {self.fps:g} fps)"


class LiveSource(Source):
    """A camera (int index) or a network stream (URL). Never ends on its own while it can
    reconnect: when reads fail it reopens with exponential back-off (`backoff_s` doubling up to
    `max_backoff_s`), and gives up only after `reconnect_timeout_s` without a frame (None: never).
    A frame that repeats the previous one bit for bit is a gap; after `frozen_frames` of them in a
    row the stream is reopened at once (a decoder stuck on an old format starts afresh).
    `t_source` is seconds since the first frame, measured on the monotonic clock."""

    is_live = True

    def __init__(self, spec: int | str, *, target_fps: float | None = None,
                 open_timeout_s: float = 5.0, read_timeout_s: float = 5.0, backoff_s: float = 0.25,
                 max_backoff_s: float = 4.0, reconnect_timeout_s: float | None = None,
                 width: int | None = None, height: int | None = None, camera_fps: float | None = None,
                 frozen_frames: int = 15) -> None:
        super().__init__(target_fps=target_fps)
        if frozen_frames < 1:
            raise ValueError(f"frozen_frames must be >= 1, got {frozen_frames}")
        self.frozen_frames = int(frozen_frames)
        self.spec = spec
        self.open_timeout_s = open_timeout_s
        self.read_timeout_s = read_timeout_s
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.reconnect_timeout_s = reconnect_timeout_s
        self._request = (width, height, camera_fps)
        started = time.monotonic()
        self._cap = self._open()
        if self._cap is None:
            waited = time.monotonic() - started
            if isinstance(spec, int):
                raise SourceError(f"cannot open camera {spec} (no such camera, or it is in use)")
            why = (f"nothing answered within {open_timeout_s:g} s" if waited >= open_timeout_s - 0.1
                   else f"refused or unreadable after {waited:.1f} s")
            raise SourceError(f"cannot open stream {spec} ({why})")
        fps = self._cap.get(cv2.CAP_PROP_FPS)
        self.fps = float(fps) if fps and 0 < fps < 1000 else 30.0

    def _open(self) -> cv2.VideoCapture | None:
        timeouts = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, int(self.open_timeout_s * 1000),
                    cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(self.read_timeout_s * 1000)]
        if isinstance(self.spec, int):
            cap = cv2.VideoCapture(self.spec)
            width, height, fps = self._request
            for prop, value in ((cv2.CAP_PROP_FRAME_WIDTH, width), (cv2.CAP_PROP_FRAME_HEIGHT, height),
                                (cv2.CAP_PROP_FPS, fps)):
                if value:
                    cap.set(prop, value)
        else:
            cap = cv2.VideoCapture(self.spec, cv2.CAP_FFMPEG, timeouts)
        if not cap.isOpened():
            cap.release()
            return None
        return cap

    def _reconnect(self) -> bool:
        """Reopen with back-off until it works, the source is closed, or the time is up."""
        if self._cap is not None:
            self._cap.release()
            self._cap = None
        started = time.monotonic()
        wait = self.backoff_s
        while not self._closed.is_set():
            if self.reconnect_timeout_s is not None and time.monotonic() - started > self.reconnect_timeout_s:
                return False
            if self._closed.wait(wait):
                return False
            wait = min(wait * 2.0, self.max_backoff_s)
            cap = self._open()
            if cap is not None:
                self._cap = cap
                self._stats["reconnects"] += 1
                return True
        return False

    def _reopen(self) -> bool:
        """Open the stream again at once (a frozen decoder), with back-off only if that fails."""
        if self._cap is not None:
            self._cap.release()
        self._cap = self._open()
        if self._cap is not None:
            self._stats["reconnects"] += 1
            return True
        return self._reconnect()

    def _frames(self) -> Iterator[Frame]:
        t0_mono: float | None = None
        index = 0
        copies = 0          # consecutive frames that repeat the previous one
        while not self._closed.is_set():
            ok, image = self._cap.read() if self._cap is not None else (False, None)
            if not ok:
                self._last_image, copies = None, 0
                if not self._reconnect():
                    return
                continue
            now = time.monotonic()
            usable = _usable(image)
            if not usable:
                self._stats["errors"] += 1
            if t0_mono is None:
                if not usable:
                    continue
                t0_mono = now
            copy = usable and self._is_copy(image)
            if usable and not copy:
                copies = 0
                yield Frame(index=index, image=image, t_monotonic=now, t_wall=time.time(),
                            t_source=now - t0_mono)
            else:
                yield self._gap(index, now - t0_mono, now)
            index += 1
            if copy:
                copies += 1
                if copies >= self.frozen_frames:
                    self._stats["frozen"] += 1
                    self._last_image, copies = None, 0
                    if not self._reopen():
                        return

    def _release(self) -> None:
        if self._cap is not None:
            self._cap.release()

    def describe(self) -> str:
        return f"camera {self.spec}" if isinstance(self.spec, int) else f"stream {self.spec}"


def open_source(spec: str | int, *, realtime: bool = False, target_fps: float | None = None,
                **opts) -> Source:
    """Open a camera index (int or digit string), a URL, a video file or an image folder.

    `opts` go to the chosen kind (e.g. `fps=` for an image folder, `reconnect_timeout_s=` for a
    live source); an option the kind does not take is a TypeError. Raises SourceError when the
    source cannot be opened.
    """
    if isinstance(spec, int) or (isinstance(spec, str) and spec.strip().isdigit()):
        return LiveSource(int(spec), target_fps=target_fps, **opts)
    text = str(spec)
    if text.lower().startswith(URL_SCHEMES):
        return LiveSource(text, target_fps=target_fps, **opts)
    path = Path(text).expanduser()
    if path.is_dir():
        return ImageFolderSource(path, realtime=realtime, target_fps=target_fps, **opts)
    if path.is_file():
        return VideoFileSource(path, realtime=realtime, target_fps=target_fps, **opts)
    raise SourceError(f"cannot open source {text!r}: not a camera index, URL, video file or image folder")
