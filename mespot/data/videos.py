"""Whole-video feature records for training and evaluation, from either feature source.

(a) The project's own per-video files (mespot.featurefile, written by `spot-extract`).
(b) The authors' released segment files (reference-model.md §3.1): `<video>_<offset>.npz` with `feature`
    (270, 12, 2), `label` (270, 8) and `video_name`; segment s covers indices 256s-7 .. 256s+262,
    so the central 256 rows of the segments, in offset order, are the whole video (its last
    segment zero-padded to 256). The labels are not read: they follow from the annotation CSV.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mespot.data.annotations import AnnotationSet
from mespot.featurefile import load_features
from mespot.types import N_ROIS

REFERENCE_SEGMENT = 256
REFERENCE_CONTEXT = 7
_SEGMENT_NAME = re.compile(r"^(?P<video>.+)_(?P<offset>\d{4,})\.npz$")


@dataclass
class VideoFeatures:
    """One video: features (T, 12, 2) float32, valid (T,) bool, at `fps` feature indices per second;
    `frontend` the FrontEnd.config() that extracted them (None: not known, e.g. the authors' files)."""

    video: str
    subject: str
    features: np.ndarray
    valid: np.ndarray
    fps: float
    frontend: dict | None = None

    def __post_init__(self) -> None:
        t = len(self.features)
        if self.features.shape != (t, N_ROIS, 2):
            raise ValueError(f"{self.video}: features must be (T, 12, 2), got {self.features.shape}")
        if self.valid.shape != (t,):
            raise ValueError(f"{self.video}: valid must be ({t},), got {self.valid.shape}")

    def __len__(self) -> int:
        return len(self.features)


def _subject_from_name(video: str, annotations: AnnotationSet) -> str | None:
    """The longest annotated subject whose name prefixes the video name (`casme_015_0502`)."""
    matches = [s for s in annotations.subjects() if video.startswith(s + "_")]
    return max(matches, key=len) if matches else None


def load_feature_dir(folder: str | Path, annotations: AnnotationSet,
                     allow_missing: bool = False) -> list[VideoFeatures]:
    """Every `<folder>/<video>.npz` feature file, sorted by video name.

    Subject: from the video's annotation rows; for a video without rows, from a `subject` key in the
    file's meta, else from the annotated subject its name starts with. Every annotated video must
    have a file (FileNotFoundError listing the missing ones) unless `allow_missing`.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"feature folder {folder} does not exist")
    files = {p.name[:-len(".npz")]: p for p in sorted(folder.glob("*.npz"))
             if not p.name.endswith(".tmp.npz")}
    missing = [v for v in annotations.videos() if v not in files]
    if missing and not allow_missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise FileNotFoundError(
            f"{len(missing)} annotated video(s) have no feature file in {folder}: {shown}")
    out = []
    for video, path in sorted(files.items()):
        ff = load_features(path)
        subject = (annotations.subject_of(video) or ff.meta.get("subject")
                   or _subject_from_name(video, annotations))
        if not subject:
            raise ValueError(f"{path}: cannot tell the subject of {video}: no annotation rows, "
                             f"no 'subject' in its meta, no annotated subject prefixes its name")
        if "fps" not in ff.meta:
            raise ValueError(f"{path}: meta has no 'fps'")
        out.append(VideoFeatures(video, str(subject), ff.features, ff.valid, ff.fps, ff.meta.get("extractor")))
    return out


def common_frontend(videos: list[VideoFeatures]) -> dict | None:
    """The one front-end all `videos` were extracted with, to be carried by the model trained on them.

    None when no video says (the authors' segment files); ValueError when they were extracted with
    different front-ends, or only some of them say, since one model cannot match both at run time.
    """
    described = [v for v in videos if v.frontend is not None]
    if not described:
        return None
    if len(described) < len(videos):
        unknown = next(v.video for v in videos if v.frontend is None)
        raise ValueError(f"{unknown} does not say which front-end extracted it, {described[0].video} does; "
                         f"extract every video with the same spot-extract settings")
    first = described[0]
    for v in described[1:]:
        if json.dumps(v.frontend, sort_keys=True) != json.dumps(first.frontend, sort_keys=True):
            changed = sorted(k for k in set(first.frontend) | set(v.frontend)
                             if first.frontend.get(k) != v.frontend.get(k))
            raise ValueError(f"{first.video} and {v.video} were extracted with different front-ends "
                             f"({', '.join(changed)} differ); extract every video with the same settings")
    return dict(first.frontend)


def load_reference_segments(folder: str | Path, fps: float = 30.0,
                            annotations: AnnotationSet | None = None) -> list[VideoFeatures]:
    """The authors' segment files under `folder` (searched recursively), one record per video.

    Subject: from `annotations` when given and the video has rows, else the name of the folder
    holding the files (the reference keeps them as `<split>/<subject>/`). Offsets must run
    0, 256, 512, ... without a gap.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"segment folder {folder} does not exist")
    by_video: dict[str, dict[int, Path]] = {}
    for path in sorted(folder.rglob("*.npz")):
        m = _SEGMENT_NAME.match(path.name)
        if m is None:
            raise ValueError(f"{path}: not a segment file name (<video>_<offset>.npz)")
        segments = by_video.setdefault(m["video"], {})
        offset = int(m["offset"])
        if offset in segments:
            raise ValueError(f"{path}: offset {offset} of {m['video']} also in {segments[offset]}")
        segments[offset] = path
    if not by_video:
        raise FileNotFoundError(f"no segment files (*.npz) under {folder}")
    out = []
    for video, segments in sorted(by_video.items()):
        expected = [REFERENCE_SEGMENT * s for s in range(len(segments))]
        if sorted(segments) != expected:
            raise ValueError(f"{video}: segment offsets {sorted(segments)} are not {expected[:4]}...")
        pieces = []
        for offset in expected:
            pieces.append(_segment_centre(segments[offset], video))
        features = np.concatenate(pieces).astype(np.float32)
        subject = annotations.subject_of(video) if annotations is not None else None
        subject = subject or segments[0].parent.name
        out.append(VideoFeatures(video, subject, features, np.ones(len(features), bool), float(fps)))
    return out


def _segment_centre(path: Path, video: str) -> np.ndarray:
    """The central 256 rows of one 270-row segment file, after checking its contents."""
    width = REFERENCE_SEGMENT + 2 * REFERENCE_CONTEXT
    with np.load(path, allow_pickle=False) as z:
        if "feature" not in z.files:
            raise ValueError(f"{path}: no 'feature' array (keys: {', '.join(z.files)})")
        feature = z["feature"]
        stored_name = str(z["video_name"]) if "video_name" in z.files else video
    if feature.shape != (width, N_ROIS, 2):
        raise ValueError(f"{path}: feature has shape {feature.shape}, expected ({width}, 12, 2)")
    if stored_name != video:
        raise ValueError(f"{path}: video_name {stored_name!r} disagrees with the file name")
    return feature[REFERENCE_CONTEXT:REFERENCE_CONTEXT + REFERENCE_SEGMENT]
