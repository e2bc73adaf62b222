"""`spot-live --view` (mespot.view.live_view): what reaches the rerun recording, that a stalled view
drops its own frames (counted) and never blocks the loop, the drawing geometry, and the refusals."""
from __future__ import annotations

import math
import socket
import sys
import time

import numpy as np
import pytest

from mespot.config import load_config
from mespot.errors import InputError
from mespot.stream.landmarks import ALIGN_IBUG, mesh_indices
from mespot.stream.pipeline import FrameRecord
from mespot.types import Interval
from mespot.view import MissingExtra, require

rr = pytest.importorskip("rerun", reason="rerun-sdk is the 'view' extra: make test installs it")

from mespot.view.live_view import (FLOW_GAIN, LiveView, check_view_target, flow_arrows,  # noqa: E402
                                   open_live_view, roi_geometry)

FRONTEND = {"crop_size": 128, "roi_radius": 5}
# rerun reports what it could not log as a warning and goes on; here that is a failure (rerun 0.23
# with numpy 1.26 cannot convert some of its own datatype objects: mespot.view.live_view avoids them).
pytestmark = pytest.mark.filterwarnings("error::rerun.error_utils.RerunWarning")


def _record(i: int, probs=(), *, valid=True, image=True) -> FrameRecord:
    rng = np.random.default_rng(i)
    mesh = rng.uniform(10, 40, (468, 2)).astype(np.float32)
    return FrameRecord(i, valid, np.full((12, 2), 0.1, np.float32), valid, time.monotonic(), {}, tuple(probs), (),
                       image=rng.integers(0, 255, (48, 64, 3), np.uint8) if image else None,
                       mesh=mesh, roi_centres=mesh[:12])


def _rows(n: int) -> np.ndarray:
    return np.random.default_rng(7).uniform(0, 1, (n, 8)).astype(np.float32)


def _table(path, entity: str) -> dict[str, list]:
    """One entity's columns on the frame timeline, read back from the .rrd file."""
    table = rr.dataframe.load_recording(path).view(index="frame", contents=entity).select().read_all()
    return table.drop_columns([c for c in ("log_time", "log_tick") if c in table.column_names]).to_pydict()


def _column(path, entity: str, component: str = "Scalar") -> dict[int, float]:
    """frame -> value of one component, only where it changed (latest-at fills the rest)."""
    table = _table(path, entity)
    column = table[f"{entity}:{component}"]
    out, last = {}, None
    for frame, value in zip(table["frame"], column):
        if value is not None and value != last:
            out[frame] = value[0]
        last = value
    return out


def test_the_view_logs_curves_thresholds_intervals_and_the_face(tmp_path):
    path = tmp_path / "run.rrd"
    config = load_config("live")
    rows = _rows(30)
    view = open_live_view(str(path), stream="t", config=config, frontend=FRONTEND, queue_frames=64)
    view.start()
    for i in range(35):
        view.on_frame(_record(i, [(i - 5, rows[i - 5])] if i >= 5 else ()))
    view.on_interval(Interval("micro", 10, 13, 17, 0.4), {})
    view.close()
    assert view.dropped_frames == 0 and view.frames_logged == 35
    recording = rr.dataframe.load_recording(path)
    entities = {c.entity_path for c in recording.schema().component_columns()}
    assert {"/face/image", "/face/mesh", "/face/roi", "/face/flow", "/intervals",
            "/curves/micro", "/curves/macro", "/curves/micro/interval"} <= entities
    table = _table(path, "/curves/macro")
    got = {f: v for f, v in zip(table["frame"], table["/curves/macro:Scalar"]) if v is not None}
    # macro start, end, none, apex (columns 4-7) and the macro apex threshold, at every frame
    assert sorted(got) == list(range(30))
    assert np.array([got[i] for i in range(30)]) == pytest.approx(
        np.column_stack([rows[:, 4:8], np.full(30, config.macro.apex_threshold)]))
    span = _column(path, "/curves/micro/interval")
    assert span == {9: 0.0, 10: 1.0, 18: 0.0}                # 0 just outside 10..17, 1 over it


def test_a_stalled_view_drops_its_oldest_frames_and_never_blocks_the_loop(tmp_path):
    config = load_config("live")
    rows = _rows(100)
    view = open_live_view(str(tmp_path / "run.rrd"), stream="t", config=config, frontend=FRONTEND, queue_frames=4)
    # Not started: the view's thread is as far behind as it can be, so every frame past the queue
    # must be dropped by on_frame itself, and on_frame must still return every time.
    for i in range(100):
        view.on_frame(_record(i, [(i, rows[i])]))
    assert view.dropped_frames == 96
    view.start()
    view.close()
    assert view.frames_logged == 4 and view.dropped_rows == 0
    table = _table(tmp_path / "run.rrd", "/curves/micro")
    logged = [f for f, v in zip(table["frame"], table["/curves/micro:Scalar"]) if v is not None]
    assert logged == list(range(100))          # the curves lost nothing: only pictures are dropped


def test_frames_without_a_face_clear_the_overlays(tmp_path):
    path = tmp_path / "run.rrd"
    view = open_live_view(str(path), stream="t", config=load_config("live"), frontend=FRONTEND)
    view.start()
    view.on_frame(_record(0))
    view.on_frame(FrameRecord(1, False, np.zeros((12, 2), np.float32), False, 0.0, {}, (), (),
                              image=np.zeros((48, 64, 3), np.uint8)))
    view.on_frame(_record(2, image=False, valid=False))          # a gap: no image at all
    view.close()
    table = _table(path, "/face/mesh")
    sizes = {f: len(p) for f, p in zip(table["frame"], table["/face/mesh:Position2D"])}
    assert sizes[0] == 468 and sizes[1] == 0 and sizes[2] == 0


def test_roi_geometry_and_arrows_follow_the_eye_line():
    mesh = np.zeros((468, 2), np.float32)
    left, right = mesh_indices(ALIGN_IBUG)[[0, 3]]
    mesh[left], mesh[right] = (100, 100), (100, 228)          # eyes 128 px apart, vertical: 90 deg roll
    scale, roll = roi_geometry(mesh, FRONTEND)
    assert scale == pytest.approx(2.0) and roll == pytest.approx(math.pi / 2)
    arrows = flow_arrows(np.array([[1.0, 0.0]] * 12, np.float32), scale, roll)
    assert arrows[0] == pytest.approx([0.0, 2.0 * FLOW_GAIN])   # crop +x is image +y here


def test_refusals_are_one_line_input_errors(tmp_path, monkeypatch):
    with pytest.raises(InputError, match="want native, web or a FILE.rrd"):
        check_view_target("picture.png")
    with pytest.raises(InputError, match="folder .* does not exist"):
        check_view_target(str(tmp_path / "missing" / "run.rrd"))
    with socket.socket() as busy:
        busy.bind(("0.0.0.0", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(InputError, match=f"port {port}: address already in use"):
            check_view_target("web", port)
    monkeypatch.setitem(sys.modules, "rerun", None)          # as if the extra were not installed
    with pytest.raises(MissingExtra, match=r"pip install 'mespot\[view\]'"):
        require("rerun", "view", "--view")


def test_close_reports_a_failure_of_the_view_thread(tmp_path):
    view = LiveView(rr.RecordingStream("t"), config=load_config("live"), frontend=FRONTEND)
    view.recording.memory_recording()
    view.start()
    view.on_frame(_record(0))
    bad = FrameRecord(1, True, np.zeros((12, 2), np.float32), True, 0.0, {}, (), (),
                      image=np.zeros((48, 64, 3), np.uint8), mesh=np.zeros((3, 2), np.float32),   # too few points
                      roi_centres=np.zeros((12, 2), np.float32))
    view.on_frame(bad)
    with pytest.raises(RuntimeError, match="the view thread failed"):
        view.close()
