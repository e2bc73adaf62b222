"""Check that a front-end change leaves the features bit-identical for the same landmarks.

    .venv/bin/python scripts/frontend_identity.py save SNAPSHOT.pkl    # before the change
    .venv/bin/python scripts/frontend_identity.py check SNAPSHOT.pkl   # after it: exit 1 on any difference

`save` runs `extract_features` on the shared clips (single_face.mp4, face_noface.mov) and a
generated 240-frame clip with the real tracker, recording every frame's landmarks with the
features. `check` replays those landmarks, so a tracker change made meanwhile does not count,
and compares features, validity and ROI centres exactly (the max abs difference is printed).
"""
from __future__ import annotations

import pickle
import sys
import tempfile
from pathlib import Path

import numpy as np

from mespot.bench.liveloop import render_bench_clip
from mespot.paths import shared_file
from mespot.stream.frontend import extract_features
from mespot.stream.tracker import Tracker, make_tracker

GENERATED_FRAMES = 240


class _RecordOrReplay(Tracker):
    """The default tracker with its landmarks recorded (meshes None) or replayed (a saved list)."""

    name = "record-replay"

    def __init__(self, meshes: list | None = None) -> None:
        super().__init__()
        self._real = make_tracker(None) if meshes is None else None
        self.meshes = [] if meshes is None else meshes
        self._next = 0

    def track(self, image_bgr):
        if self._real is not None:
            mesh = self._real.track(image_bgr)
            self.meshes.append(None if mesh is None else mesh.copy())
            return mesh
        mesh = self.meshes[self._next]
        self._next += 1
        return mesh

    def reset(self) -> None:
        if self._real is not None:
            self._real.reset()

    def close(self) -> None:
        if self._real is not None:
            self._real.close()

    def config(self) -> dict:
        return {"name": self.name}


def _sources(workdir: Path) -> dict[str, str]:
    clip = workdir / "generated.mp4"
    render_bench_clip(clip, GENERATED_FRAMES)
    sources = {"generated": str(clip)}
    for name in ("single_face.mp4", "face_noface.mov"):
        path = shared_file("media", name)
        if path is None:
            print(f"skipped {name}: shared media not found")
        else:
            sources[name] = str(path)
    return sources


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("save", "check"):
        print(__doc__)
        return 2
    mode, snapshot = argv[0], Path(argv[1])
    saved = pickle.loads(snapshot.read_bytes()) if mode == "check" else {}
    same = True
    with tempfile.TemporaryDirectory() as tmp:
        for name, source in _sources(Path(tmp)).items():
            if mode == "check" and name not in saved:
                print(f"skipped {name}: not in the snapshot")
                continue
            tracker = _RecordOrReplay(saved[name]["meshes"] if mode == "check" else None)
            ff = extract_features(source, fps=30.0, tracker=tracker)
            if mode == "save":
                saved[name] = {"features": ff.features, "valid": ff.valid, "centres": ff.roi_centres,
                               "meshes": tracker.meshes}
                print(f"{name}: {int(ff.valid.sum())} valid of {len(ff.valid)} saved")
                continue
            ref = saved[name]
            identical = (np.array_equal(ref["features"], ff.features) and np.array_equal(ref["valid"], ff.valid)
                         and np.array_equal(ref["centres"], ff.roi_centres, equal_nan=True))
            diff = float(np.abs(ref["features"] - ff.features).max()) if ref["features"].shape == ff.features.shape else float("inf")
            print(f"{name}: {'identical' if identical else 'DIFFERENT'} (max abs feature difference {diff:g}, "
                  f"{int(ff.valid.sum())} valid of {len(ff.valid)})")
            same &= identical
    if mode == "save":
        snapshot.write_bytes(pickle.dumps(saved))
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
