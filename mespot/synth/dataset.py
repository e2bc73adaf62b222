"""A generated dataset in the layout of the benchmark annotations, so the normal pipeline runs on it.

  OUT/videos/<video_name>.mp4   rendered videos (mp4v), 0-based frame indices
  OUT/annotations.csv           subject,video_name,start_frame,apex_frame,end_frame,type_idx,au
                                (type_idx 1 macro, 2 micro; subject = identity name)
  OUT/manifest.json             seed, identities, generator version, parameters and every planted
                                event per video
Video k uses identity k mod len(identities) and its own seed drawn from the dataset seed, so any
one video can be regenerated alone from the manifest (`seed`, `identity`, `n_frames`).
"""
from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mespot.config import Config, load_config
from mespot.synth.aus import AuSampler, au_label
from mespot.synth.identities import Identity, list_identities
from mespot.synth.render import render_video
from mespot.synth.timeline import ANNOTATION_FRACTION, SynthParams, Timeline, plan_timeline
from mespot.synth.warp import FaceWarper

GENERATOR_VERSION = "2"
CSV_COLUMNS = ("subject", "video_name", "start_frame", "apex_frame", "end_frame", "type_idx", "au")


@dataclass(frozen=True)
class VideoPlan:
    """One video of a dataset: its name, identity and seed."""

    name: str
    identity: Identity
    seed: int


def video_seeds(seed: int, n_videos: int) -> list[int]:
    """Independent per-video seeds derived from the dataset seed (stable across runs and machines)."""
    return [int(s.generate_state(1)[0]) for s in np.random.SeedSequence(seed).spawn(n_videos)]


def plan_videos(identities: list[Identity], n_videos: int, seed: int) -> list[VideoPlan]:
    if not identities:
        raise ValueError("no identities to render")
    return [VideoPlan(f"{identities[k % len(identities)].name}_{k:03d}", identities[k % len(identities)], s)
            for k, s in enumerate(video_seeds(seed, n_videos))]


def annotation_rows(subject: str, video_name: str, timeline: Timeline) -> list[dict]:
    return [{"subject": subject, "video_name": video_name, "start_frame": e.onset, "apex_frame": e.apex,
             "end_frame": e.offset, "type_idx": e.interval.type_idx, "au": au_label(e.aus)}
            for e in timeline.expressions]


def write_annotations(path: Path, rows: list[dict]) -> None:
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


def generate_dataset(out_dir: str | Path, identities: list[Identity] | str = "astronaut",
                     n_videos: int = 4, minutes: float = 1.0, seed: int = 0, fps: float = 30.0,
                     size: tuple[int, int] = (640, 480), expressions: bool = True,
                     params: SynthParams | None = None, config: Config | None = None,
                     progress: bool = True, overwrite: bool = False) -> dict:
    """Render `n_videos` videos of `minutes` each and write the dataset; returns the manifest.

    identities: framed identities, or a spec for `list_identities` (framed at `size`).
    expressions=False writes distractor-only videos and an annotation CSV with only its header.
    A folder that already holds a dataset is refused (DatasetExistsError) unless `overwrite`, which
    first deletes the videos of the old manifest so no stale video outlives its annotations.
    """
    if n_videos < 1 or minutes <= 0 or fps <= 0:
        raise ValueError(f"need n_videos >= 1, minutes > 0, fps > 0 (got {n_videos}, {minutes}, {fps})")
    out_dir = Path(out_dir)
    _clear_previous(out_dir, overwrite)
    if isinstance(identities, str):
        identities = list_identities(identities, size=size)
    params = params or SynthParams()
    config = config or load_config("live")
    sampler = AuSampler.default()
    (out_dir / "videos").mkdir(parents=True, exist_ok=True)
    n_frames = int(round(minutes * 60 * fps))
    plans = plan_videos(identities, n_videos, seed)
    warpers: dict[str, FaceWarper] = {}
    rows: list[dict] = []
    videos = []
    with _progress(progress, n_frames * len(plans)) as advance:
        for plan in plans:
            timeline = plan_timeline(n_frames, fps, plan.seed, params, config, sampler, expressions)
            warper = warpers.setdefault(plan.identity.name, FaceWarper(plan.identity))
            render_video(plan.identity, timeline, out_dir / "videos" / f"{plan.name}.mp4", warper,
                         on_frame=lambda _t: advance())
            rows.extend(annotation_rows(plan.identity.name, plan.name, timeline))
            videos.append({"video_name": plan.name, "subject": plan.identity.name, "seed": plan.seed,
                           **timeline.describe()})
    write_annotations(out_dir / "annotations.csv", rows)
    manifest = {
        "generator": "mespot.synth", "version": GENERATOR_VERSION, "seed": seed, "fps": fps,
        "size": list(identities[0].size), "minutes": minutes, "expressions": expressions,
        "annotation_rule": f"start/end = first/last frame whose expression displacement is at least "
                           f"{ANNOTATION_FRACTION:g} of its peak; apex = middle of the peak plateau",
        "au_source": sampler.source, "config": config.name, "params": params.to_dict(),
        "identities": [{"name": i.name, "source": i.source, "face_width_px": round(i.face_width, 2)}
                       for i in identities],
        "videos": videos,
    }
    with open(out_dir / "manifest.json", "w") as fh:
        json.dump(manifest, fh, indent=1)
    return manifest


class DatasetExistsError(FileExistsError):
    """The output folder already holds a generated dataset."""


def _clear_previous(out_dir: Path, overwrite: bool) -> None:
    old = out_dir / "manifest.json"
    if not old.exists() and not (out_dir / "annotations.csv").exists():
        return
    if not overwrite:
        raise DatasetExistsError(f"{out_dir} already holds a dataset; choose another folder or overwrite it")
    if old.exists():
        with open(old) as fh:
            for video in json.load(fh).get("videos", []):
                (out_dir / "videos" / f"{video['video_name']}.mp4").unlink(missing_ok=True)
    for name in ("manifest.json", "annotations.csv"):
        (out_dir / name).unlink(missing_ok=True)


class _progress:
    """A rich progress bar over frames (or nothing when disabled); yields an `advance()` callable."""

    def __init__(self, enabled: bool, total: int) -> None:
        self.enabled, self.total, self._bar = enabled, total, None

    def __enter__(self):
        if not self.enabled:
            return lambda: None
        from rich.progress import BarColumn, Progress, TimeRemainingColumn

        self._bar = Progress("[progress.description]{task.description}", BarColumn(),
                             "{task.completed}/{task.total} frames", TimeRemainingColumn())
        self._bar.start()
        task = self._bar.add_task("rendering", total=self.total)
        return lambda: self._bar.advance(task)

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.stop()
