"""`spot-live --view`: the face, its 12 regions and their motion, the probability curves and every
decided interval, on one rerun timeline in frame numbers.

`LiveView` is a PipelineObserver. The loop's thread only puts each frame into a small bounded
queue and appends the frame's probability rows and intervals to a list, under a lock
(microseconds); the view's own thread downscales and JPEG-encodes the image and logs everything
to rerun. When that thread falls behind, the OLDEST waiting view frame is dropped and counted
(`dropped_frames`): the view stays current, and the loop never waits for it. Probability rows and
intervals are small and are not dropped unless MAX_PENDING_ROWS pile up (`dropped_rows`).

What is logged (entity paths; docs/view.md shows them):
  face/image          the frame, downscaled to `image_width` px wide, JPEG
  face/mesh           the 468 face-mesh points
  face/roi            the 12 ROI patches as boxes (the patch's size in image pixels; unlabelled, so
                      as not to cover the face: ROI_NAMES gives their order)
  face/flow           each ROI's mean motion (its feature) as an arrow, FLOW_GAIN times longer
  curves/<kind>       five series: every probability column of the kind (start, end, none, apex)
                      and the apex threshold the picker uses (one entity, one call per batch)
  curves/<kind>/interval         1 over each published interval of the kind, 0 elsewhere (a span)
  intervals           one text line per published interval, at its apex
Sinks: a native viewer window (`spawn`), rerun's web viewer (`web`), or a .rrd file (`save`).

`web` runs the `rerun` program that the rerun-sdk wheel carries (viewer, web viewer and gRPC server
built in: nothing is fetched at run time) as a child process on 127.0.0.1, and the recording
connects to it. Not rerun-sdk's in-process server (`serve_web`): in 0.23.1 that one keeps a core
busy even with nothing to send (measured: 96 % of a core idle, against ~0 % for the program), which
on a small machine takes the loop's CPU (docs/view.md).
"""
from __future__ import annotations

import math
import os
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mespot.config import KINDS, Config
from mespot.engine.probs import PROB_COLUMNS, kind_columns
from mespot.stream.landmarks import ALIGN_IBUG, mesh_indices
from mespot.stream.pipeline import FrameRecord, PipelineObserver
from mespot.types import Interval
from mespot.view import require

MODES = ("native", "web")           # besides a path ending .rrd
QUEUE_FRAMES = 8                    # view frames waiting for the view thread before the oldest is dropped
MAX_PENDING_ROWS = 30 * 60          # probability rows waiting (a minute at 30 fps) before rows are dropped
FLOW_GAIN = 10.0                    # arrows are this many times the ROI motion per frame
CURVE_WINDOW = 300                  # frames shown by the curve views (10 s at 30 fps), following the cursor
DEFAULT_WEB_PORT = 9090
KIND_COLOURS = {"micro": (230, 120, 30), "macro": (40, 120, 220)}
# On rerun's dark background: apex white, none a dim grey.
SERIES = ("start", "end", "none", "apex")      # kind_columns order; the apex threshold follows
THRESHOLD_COLOUR = (150, 150, 150)
COLUMN_COLOURS = {"start": (60, 200, 60), "end": (230, 60, 60), "none": (110, 110, 110), "apex": (245, 245, 245)}
# The 12 ROIs in graph-node order (mespot.stream.landmarks.ROI_IBUG); left and right as in the image.
ROI_NAMES = ("brow L outer", "brow L mid", "brow L inner", "brow R inner", "brow R mid", "brow R outer",
             "nose bridge", "nose tip", "mouth L", "lip top", "mouth R", "lip bottom")
_EYES = mesh_indices(ALIGN_IBUG)[[0, 3]]     # the outer eye corners the aligner scales by


@dataclass(frozen=True)
class _Visual:
    index: int
    valid: bool
    image: np.ndarray | None
    mesh: np.ndarray | None
    roi_centres: np.ndarray | None
    features: np.ndarray


def port_free(port: int) -> bool:
    """Whether a TCP port can be bound on every interface (where rerun's servers listen)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("0.0.0.0", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def check_view_target(target: str, web_port: int = DEFAULT_WEB_PORT) -> None:
    """Refuse a bad --view request before anything loads (InputError, one line)."""
    from mespot.errors import InputError

    if target == "web":
        if not 1 <= web_port <= 65535:
            raise InputError(f"--view-port {web_port} is not in 1-65535")
        if not port_free(web_port):
            raise InputError(f"cannot serve the view on port {web_port}: address already in use (--view-port)")
    elif target == "native":
        if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
            raise InputError("--view native needs a display for rerun's viewer window ($DISPLAY is not set); "
                             "on a headless machine use --view web")
    elif target not in MODES:
        path = Path(target)
        if path.suffix != ".rrd":
            raise InputError(f"--view {target!r}: want native, web or a FILE.rrd to save to")
        if not path.parent.is_dir():
            raise InputError(f"cannot save the view to {path}: folder {path.parent} does not exist")
    require("rerun", "view", "--view")


def roi_geometry(mesh: np.ndarray, frontend: dict) -> tuple[float, float]:
    """(image pixels per aligned-crop pixel, roll angle in radians) of a face: the aligner puts the
    outer eye corners half a crop apart on a level line (mespot.stream.align)."""
    left, right = mesh[_EYES[0]].astype(np.float64), mesh[_EYES[1]].astype(np.float64)
    d = right - left
    crop = float(frontend.get("crop_size", 128))
    return math.hypot(*d) / (0.5 * crop), math.atan2(d[1], d[0])


def flow_arrows(features: np.ndarray, scale: float, roll: float) -> np.ndarray:
    """(12, 2) crop-pixel motion per frame -> image-pixel arrows (rotated back by the roll), x FLOW_GAIN."""
    c, s = math.cos(roll), math.sin(roll)
    rotation = np.array([[c, -s], [s, c]])
    return (features.astype(np.float64) @ rotation.T) * scale * FLOW_GAIN


class LiveView(PipelineObserver):
    """Logs a stream to a rerun RecordingStream from its own thread (see the module docstring).

    recording: an open rerun.RecordingStream with its sink set (`open_live_view` makes one).
    config: the decoding config (thresholds); frontend: the front-end's config() (crop size and ROI
    radius, to draw the patches at their size). `start()` before the run, `close()` after it.
    """

    def __init__(self, recording, *, config: Config, frontend: dict, image_width: int = 320,
                 jpeg_quality: int = 80, queue_frames: int = QUEUE_FRAMES, url: str | None = None,
                 to_file: bool = False, server: subprocess.Popen | None = None) -> None:
        if queue_frames < 1 or image_width < 16:
            raise ValueError(f"queue_frames {queue_frames} must be >= 1 and image_width {image_width} >= 16")
        self.rr = require("rerun", "view", "--view")
        self.recording = recording
        self.config = config
        self.frontend = frontend
        self.image_width = image_width
        self.jpeg_quality = jpeg_quality
        self.url = url
        self._to_file = to_file
        self._server = server
        self.dropped_frames = 0          # view frames dropped because the view thread fell behind
        self.dropped_rows = 0
        self.frames_logged = 0
        self._lock = threading.Condition()
        self._visuals: deque[_Visual] = deque()
        self._queue_frames = queue_frames
        self._rows: list[tuple[int, np.ndarray]] = []
        self._intervals: list[Interval] = []
        self._closing = False
        self._thread = threading.Thread(target=self._work, name="mespot-view", daemon=True)
        self._error: BaseException | None = None
        self._roi_radius = float(frontend.get("roi_radius", 5))

    # -- the loop's side: never waits -------------------------------------------------------------
    def on_frame(self, record: FrameRecord) -> None:
        visual = _Visual(record.index, record.valid, record.image, record.mesh, record.roi_centres, record.features)
        with self._lock:
            if len(self._visuals) >= self._queue_frames:
                self._visuals.popleft()
                self.dropped_frames += 1
            self._visuals.append(visual)
            if len(self._rows) + len(record.probs) > MAX_PENDING_ROWS:
                self.dropped_rows += len(record.probs)
            else:
                self._rows.extend(record.probs)
            self._lock.notify()

    def on_flush(self, probs) -> None:
        with self._lock:
            self._rows.extend(probs)
            self._lock.notify()

    def on_interval(self, interval: Interval, message: dict) -> None:
        with self._lock:
            self._intervals.append(interval)
            self._lock.notify()

    # -- life -------------------------------------------------------------------------------------
    def start(self) -> None:
        self._log_static()
        self._thread.start()

    def close(self) -> None:
        """Log what is still waiting, stop the thread and flush the recording. Raises what the view
        thread raised, if anything."""
        with self._lock:
            self._closing = True
            self._lock.notify()
        if self._thread.is_alive():
            self._thread.join()
        self.recording.flush(blocking=True)
        if self._to_file:
            self.recording.disconnect()         # ends the .rrd file (a served view keeps its data)
        if self._error is not None:
            raise RuntimeError(f"the view thread failed: {type(self._error).__name__}: {self._error}") from self._error

    def shutdown(self) -> None:
        """Stop the web view's server (after close(); a browser keeps what it received)."""
        if self._server is not None and self._server.poll() is None:
            self.recording.disconnect()          # first, so the client does not report a lost server
            self._server.terminate()
            try:
                self._server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._server.kill()
                self._server.wait()

    def describe(self) -> str:
        return (f"view: {self.frames_logged} frames shown, {self.dropped_frames} dropped because the view fell "
                f"behind" + (f", {self.dropped_rows} probability rows dropped" if self.dropped_rows else ""))

    # -- the view's thread ------------------------------------------------------------------------
    def _work(self) -> None:
        try:
            while True:
                with self._lock:
                    self._lock.wait_for(lambda: self._closing or self._visuals or self._rows or self._intervals)
                    visuals, self._visuals = list(self._visuals), deque()
                    rows, self._rows = self._rows, []
                    intervals, self._intervals = self._intervals, []
                    closing = self._closing
                if rows:
                    self._log_rows(rows)
                for interval in intervals:
                    self._log_interval(interval)
                for visual in visuals:
                    self._log_visual(visual)
                if closing and not (visuals or rows or intervals):
                    return
        except BaseException as exc:          # re-raised by close(); the loop itself is not disturbed
            self._error = exc

    def _log_static(self) -> None:
        rr, rec = self.rr, self.recording
        for kind in KINDS:
            threshold = self.config.decoding(kind).apex_threshold
            rec.log(f"curves/{kind}", rr.SeriesLines(
                colors=[COLUMN_COLOURS[n] for n in SERIES] + [THRESHOLD_COLOUR],
                names=[f"{kind} {n}" for n in SERIES] + [f"apex threshold {threshold:g}"],
                widths=[1.5] * len(SERIES) + [1.0]), static=True)
            rec.log(f"curves/{kind}/interval", rr.SeriesLines(colors=[KIND_COLOURS[kind]], names=[f"{kind} interval"],
                                                               widths=[3.0]), static=True)

    def _log_rows(self, rows: list[tuple[int, np.ndarray]]) -> None:
        rr, rec = self.rr, self.recording
        index = np.array([i for i, _ in rows], np.int64)
        table = np.stack([r for _, r in rows]).astype(np.float64)
        time = [rr.TimeColumn("frame", sequence=index)]
        for kind in KINDS:
            series = np.empty((len(index), len(SERIES) + 1))
            series[:, :len(SERIES)] = table[:, list(kind_columns(kind))]
            series[:, len(SERIES)] = self.config.decoding(kind).apex_threshold
            rec.send_columns(f"curves/{kind}", indexes=time, columns=rr.Scalars.columns(scalars=series))

    def _log_interval(self, interval: Interval) -> None:
        """A span: 0 just outside the interval, 1 over it, on the kind's interval series; and a line."""
        rr, rec = self.rr, self.recording
        frames = np.arange(interval.onset - 1, interval.offset + 2, dtype=np.int64)
        values = np.ones(len(frames))
        values[[0, -1]] = 0.0
        rec.send_columns(f"curves/{interval.kind}/interval", indexes=[rr.TimeColumn("frame", sequence=frames)],
                         columns=rr.Scalars.columns(scalars=values))
        rec.set_time("frame", sequence=interval.apex)
        rec.log("intervals", rr.TextLog(f"{interval.kind} {interval.onset}-{interval.apex}-{interval.offset} "
                                        f"score {interval.score:.3f}", level="INFO"))

    def _log_visual(self, v: _Visual) -> None:
        import cv2

        rr, rec = self.rr, self.recording
        rec.set_time("frame", sequence=v.index)
        scale = 1.0
        if v.image is not None:
            h, w = v.image.shape[:2]
            scale = self.image_width / w
            small = cv2.resize(v.image, (self.image_width, max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
            ok, jpeg = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, self.jpeg_quality])
            if not ok:
                raise RuntimeError(f"frame {v.index}: JPEG encoding failed")
            rec.log("face/image", rr.EncodedImage(contents=jpeg.tobytes(), media_type="image/jpeg"))
        if v.mesh is None or v.roi_centres is None or v.image is None:
            rec.log("face/mesh", rr.Points2D(np.zeros((0, 2))))
            rec.log("face/roi", rr.Boxes2D(centers=np.zeros((0, 2)), half_sizes=np.zeros((0, 2))))
            rec.log("face/flow", rr.Arrows2D(origins=np.zeros((0, 2)), vectors=np.zeros((0, 2))))
        else:
            px_per_crop, roll = roi_geometry(v.mesh, self.frontend)
            centres = v.roi_centres.astype(np.float64) * scale
            half = np.full((len(centres), 2), (self._roi_radius + 0.5) * px_per_crop * scale)
            rec.log("face/mesh", rr.Points2D(v.mesh.astype(np.float64) * scale, radii=0.8, colors=[(0, 220, 255)]))
            rec.log("face/roi", rr.Boxes2D(centers=centres, half_sizes=half,
                                           colors=[(255, 200, 0)] if v.valid else [(160, 160, 160)]))
            vectors = flow_arrows(v.features, px_per_crop * scale, roll) if v.valid else np.zeros((len(centres), 2))
            rec.log("face/flow", rr.Arrows2D(origins=centres, vectors=vectors, colors=[(255, 60, 60)], radii=0.8))
        self.frames_logged += 1


def _blueprint(rr):
    import rerun.blueprint as rrb

    # Boundaries from plain ints: TimeRangeBoundary.cursor_relative() makes TimeInt objects whose
    # conversion calls np.asarray(copy=...), which numpy 1.26 (our pin, for mediapipe) lacks.
    window = rrb.VisibleTimeRange("frame", start=rrb.TimeRangeBoundary(inner=-CURVE_WINDOW, kind="cursor_relative"),
                                  end=rrb.TimeRangeBoundary(inner=0, kind="cursor_relative"))
    curves = [rrb.TimeSeriesView(origin=f"curves/{kind}", name=f"{kind} probabilities", time_ranges=[window],
                                 axis_y=rrb.ScalarAxis(range=(0.0, 1.05), zoom_lock=True))
              for kind in KINDS]
    return rrb.Blueprint(
        rrb.Horizontal(
            rrb.Spatial2DView(origin="face", name="face"),
            rrb.Vertical(*curves, rrb.TextLogView(origin="intervals", name="intervals"), row_shares=[2, 2, 1]),
            column_shares=[1, 1]),
        collapse_panels=True)


def open_live_view(target: str, *, stream: str, config: Config, frontend: dict,
                   web_port: int = DEFAULT_WEB_PORT, image_width: int = 320,
                   queue_frames: int = QUEUE_FRAMES) -> LiveView:
    """A LiveView with its sink: 'native' (spawn rerun's viewer window), 'web' (serve rerun's web
    viewer from this process on `web_port`, the data on a free gRPC port), or a path FILE.rrd."""
    from mespot.errors import InputError

    rr = require("rerun", "view", "--view")
    rec = rr.RecordingStream("mespot", recording_id=f"spot-live {stream}")
    blueprint = _blueprint(rr)
    url, server = None, None
    grpc_port = free_port()
    if target == "native":          # the viewer window outlives the run: the user closes it
        try:
            start_rerun(["--port", str(grpc_port), "--expect-data-soon"], [grpc_port])
        except RuntimeError as exc:
            raise InputError(f"--view: cannot start rerun's viewer window ({exc}); try --view web") from None
        rec.connect_grpc(f"rerun+http://127.0.0.1:{grpc_port}/proxy", default_blueprint=blueprint)
    elif target == "web":
        try:
            server = start_rerun(["--serve-web", "--bind", "127.0.0.1", "--port", str(grpc_port),
                                  "--web-viewer-port", str(web_port), "--server-memory-limit", "1GB"],
                                 [grpc_port, web_port])
        except RuntimeError as exc:
            raise InputError(f"--view web: {exc}") from None
        rec.connect_grpc(f"rerun+http://127.0.0.1:{grpc_port}/proxy", default_blueprint=blueprint)
        url = f"http://localhost:{web_port}/?url=rerun%2Bhttp://localhost:{grpc_port}/proxy"
    else:
        rec.save(target, default_blueprint=blueprint)
        url = str(target)
    return LiveView(rec, config=config, frontend=frontend, image_width=image_width, queue_frames=queue_frames,
                    url=url, to_file=target not in MODES, server=server)


def rerun_program() -> str:
    """The `rerun` executable inside the installed rerun-sdk wheel."""
    import rerun_cli

    from mespot.view import MissingExtra

    path = Path(rerun_cli.__file__).parent / "rerun"
    if not path.is_file():
        raise MissingExtra(f"rerun-sdk is installed without its viewer program ({path}); reinstall 'mespot[view]'")
    return str(path)


def start_rerun(arguments: list[str], ports: list[int], timeout_s: float = 30.0) -> subprocess.Popen:
    """The wheel's `rerun` program with `arguments`, once it listens on every port in `ports`
    (127.0.0.1); RuntimeError when it exits or does not listen in time."""
    program = subprocess.Popen([rerun_program(), *arguments], stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if program.poll() is not None:
            raise RuntimeError(f"rerun {' '.join(arguments)} exited with status {program.returncode}")
        try:
            for port in ports:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return program
        except OSError:
            time.sleep(0.1)
    program.kill()
    raise RuntimeError(f"rerun did not listen on port(s) {', '.join(map(str, ports))} within {timeout_s:g} s")
