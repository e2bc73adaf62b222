"""The web view in a real browser: headless Chromium opens `spot-live --demo --view web` while it
runs, with every host but localhost unresolvable, and its screenshot shows the face with its mesh
and ROI boxes, and the probability curves (scripts/view_screenshot.py, which anyone can run)."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
from view_screenshot import find_chromium  # noqa: E402

pytest.importorskip("rerun", reason="rerun-sdk is the 'view' extra: make test installs it")
pytestmark = pytest.mark.slow


def _pixels_near(image_bgr: np.ndarray, rgb: tuple[int, int, int], tolerance: int = 40) -> int:
    target = np.array(rgb[::-1], np.int16)
    return int((np.abs(image_bgr.astype(np.int16) - target).max(axis=2) <= tolerance).sum())


def test_headless_chromium_shows_the_demo_face_and_curves(tmp_path):
    if find_chromium() is None:
        pytest.skip("Chromium is not installed (Debian: apt-get install chromium)")
    from mespot.view.live_view import COLUMN_COLOURS, free_port

    out = tmp_path / "view.png"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "view_screenshot.py"), "--out", str(out),
                           "--port", str(free_port()), "--wait", "25", "--log", str(tmp_path / "live.err")],
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:] + (tmp_path / "live.err").read_text()[-2000:]
    shot = cv2.imread(str(out))
    assert shot is not None and shot.shape[0] > 400 and shot.shape[1] > 800
    h, w = shot.shape[:2]
    face, curves = shot[:, : w // 2], shot[:, w // 2:]
    # the face panel: the astronaut's picture (many distinct colours), the cyan mesh, the yellow ROI boxes
    assert len(np.unique(face.reshape(-1, 3) // 16, axis=0)) > 200
    assert _pixels_near(face, (0, 220, 255)) > 100
    assert _pixels_near(face, (255, 200, 0)) > 100
    # the curve panels: start (green) and end (red) probability lines
    assert _pixels_near(curves, COLUMN_COLOURS["start"]) > 50
    assert _pixels_near(curves, COLUMN_COLOURS["end"]) > 50
    # every frame of the 24 s demo reached the view or was counted as dropped, and spot-live ended cleanly
    shown, dropped = map(int, re.search(r"view: (\d+) frames shown, (\d+) dropped", (tmp_path / "live.err").read_text()).groups())
    assert shown + dropped == 720 and shown > 0
