"""Helpers the tests share: frame readers, video and image-folder writers, free ports, shared media."""
from __future__ import annotations

import socket
from pathlib import Path

import cv2
import numpy as np
import pytest

from mespot.paths import shared_file


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


def numbered_image(i: int, size=(96, 64)) -> np.ndarray:
    """A (h, w) image whose mean grey level encodes i (survives JPEG/MJPEG compression to +-2)."""
    w, h = size
    return np.full((h, w, 3), 10 + 2 * (i % 120), np.uint8)


def number_of(image: np.ndarray) -> int:
    """The i of a `numbered_image`."""
    return int(round((float(image.mean()) - 10) / 2))


def write_video(path, n: int, fps: float = 30.0, size=(96, 64)):
    """An MJPG .avi of `n` numbered images at `fps`; parent folders are made."""
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, size)
    for i in range(n):
        writer.write(numbered_image(i, size))
    writer.release()
    return path


def write_image_folder(folder, n: int, names=lambda i: f"img_{i}.png", size=(96, 64)):
    """A folder of `n` numbered PNG images named by `names(i)`."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        cv2.imwrite(str(folder / names(i)), numbered_image(i, size))
    return folder


def textured_frame(h: int = 240, w: int = 320) -> np.ndarray:
    """A BGR image with coarse random blocks and fine noise: texture optical flow can follow."""
    rng = np.random.default_rng(3)
    small = rng.integers(0, 256, (h // 8, w // 8, 3), dtype=np.uint8)
    return np.ascontiguousarray(np.kron(small, np.ones((8, 8, 1), np.uint8)) + rng.integers(0, 9, (h, w, 3), dtype=np.uint8))


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_tcp_endpoint() -> str:
    return f"tcp://127.0.0.1:{free_port()}"


def shared_media(name: str):
    """shared/media/<name>, or a skip with the reason (outside a fixture, e.g. in module fixtures)."""
    path = shared_file("media", name)
    if path is None:
        pytest.skip(f"reference file shared/media/{name} not present (set MESPOT_SHARED)")
    return path


def by_stream(path) -> dict[str, list[dict]]:
    """A --record JSONL file's messages, per stream id."""
    import json
    from collections import defaultdict

    out: dict[str, list[dict]] = defaultdict(list)
    for line in Path(path).read_text().splitlines():
        m = json.loads(line)
        out[m["stream"]].append(m)
    return out


def stream_results(messages: list[dict]) -> tuple[list, list]:
    """One stream's intervals and (frame, valid, probabilities) rows: what must equal across runs."""
    intervals = [(m["kind"], m["onset_frame"], m["apex_frame"], m["offset_frame"], m["score"])
                 for m in messages if m["topic"] == "interval"]
    scores = sorted((f, v, p) for m in messages if m["topic"] == "score"
                    for f, v, p in zip(m["frames"], m["valid"], m["probs"]))
    return intervals, scores
