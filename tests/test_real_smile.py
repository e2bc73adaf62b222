"""Real footage the shipped model never saw: the genuine smile of ../shared/media/single_face.mp4.

The clip's smile starts at about frame 17-20 and is still held at frame 40; frames 0-40 forward then
39-0 backward (81 frames) make it one macro-expression of roughly frames 17-64. `spot-live --source`
on that clip must report a macro interval overlapping it and nothing else.
"""
from __future__ import annotations

import json
import subprocess
import sys

import cv2

SMILE = (17, 64)


def _palindrome_clip(src, dst) -> int:
    cap = cv2.VideoCapture(str(src))
    frames = []
    while len(frames) < 41:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    assert len(frames) == 41, f"{src} has only {len(frames)} frames"
    sequence = frames + frames[-2::-1]          # 0..40 then 39..0
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(dst), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, (w, h))
    for frame in sequence:
        writer.write(frame)
    writer.release()
    return len(sequence)


def test_spot_live_reports_the_real_smile_and_nothing_else(shared_path, tmp_path):
    clip = tmp_path / "smile_palindrome.mp4"
    assert _palindrome_clip(shared_path("media", "single_face.mp4"), clip) == 81
    record = tmp_path / "run.jsonl"
    done = subprocess.run([sys.executable, "-m", "mespot.cli.live", "--source", str(clip), "--no-ui",
                           "--pub", f"ipc://{tmp_path / 'pub.sock'}", "--record", str(record)],
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    messages = [json.loads(line) for line in record.read_text().splitlines()]
    intervals = [m for m in messages if m["topic"] == "interval"]
    found = [(m["kind"], m["onset_frame"], m["offset_frame"]) for m in intervals]
    assert len(intervals) == 1, f"expected one interval, got {found}"
    kind, onset, offset = found[0]
    assert kind == "macro", found
    assert onset <= SMILE[1] and offset >= SMILE[0], f"{found} does not overlap frames {SMILE}"
