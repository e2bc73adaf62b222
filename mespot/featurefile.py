"""The per-video feature file: what `spot-extract` writes and training reads.

An `.npz` with
  features     (T, 12, 2) float32  ROI flow vectors, pixels of the aligned crop per frame
  valid        (T,) bool           False where no face, a lost track, or the first frame of a track
  timestamps   (T,) float64        seconds from the start of the source
  roi_centres  (T, 12, 2) float32  ROI centres in source-image pixels (NaN where invalid)
  meta         0-d str             JSON: {"fps": float, "extractor": {...}, "source": str, ...}
Feature k is the motion from frame k-1 to frame k (see mespot.types). numpy only.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


@dataclass
class FeatureFile:
    features: np.ndarray
    valid: np.ndarray
    timestamps: np.ndarray
    roi_centres: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        t = len(self.features)
        if self.features.shape != (t, 12, 2):
            raise ValueError(f"features must be (T, 12, 2), got {self.features.shape}")
        for name in ("valid", "timestamps", "roi_centres"):
            if len(getattr(self, name)) != t:
                raise ValueError(f"{name} has {len(getattr(self, name))} rows, features {t}")

    @property
    def fps(self) -> float:
        return float(self.meta["fps"])

    def __len__(self) -> int:
        return len(self.features)


def save_features(path: str | Path, ff: FeatureFile) -> None:
    """Write atomically (temp file then rename) so an interrupted extraction leaves no half file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez_compressed(
        tmp,
        features=ff.features.astype(np.float32),
        valid=ff.valid.astype(bool),
        timestamps=ff.timestamps.astype(np.float64),
        roi_centres=ff.roi_centres.astype(np.float32),
        meta=np.array(json.dumps(ff.meta)),
    )
    tmp.replace(path)


def load_features(path: str | Path) -> FeatureFile:
    with np.load(path, allow_pickle=False) as z:
        missing = {"features", "valid", "timestamps", "roi_centres", "meta"} - set(z.files)
        if missing:
            raise ValueError(f"{path}: not a mespot feature file (missing {', '.join(sorted(missing))})")
        return FeatureFile(
            features=z["features"].astype(np.float32),
            valid=z["valid"].astype(bool),
            timestamps=z["timestamps"].astype(np.float64),
            roi_centres=z["roi_centres"].astype(np.float32),
            meta=json.loads(str(z["meta"])),
        )


def valid_runs(valid: np.ndarray) -> list[tuple[int, int]]:
    """Maximal runs of consecutive valid indices as half-open (start, stop) pairs.

    Each run is treated as its own video everywhere (training, offline decoding, the online
    engine), so nothing downstream ever sees context across a gap.
    """
    v = np.concatenate([[False], np.asarray(valid, dtype=bool), [False]])
    edges = np.flatnonzero(v[1:] != v[:-1])
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2])]
