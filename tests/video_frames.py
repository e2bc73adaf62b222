"""Test helper: every frame of a video file, decoded with OpenCV."""
from __future__ import annotations

import cv2
import numpy as np


def read_frames(path) -> list[np.ndarray]:
    """All BGR frames of the video at `path`, in order (empty if it cannot be read)."""
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    return frames
