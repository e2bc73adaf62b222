"""A generated dataset in the layout of the benchmark annotations, so the normal pipeline runs on it.

  OUT/videos/<video_name>.mp4   rendered videos (mp4v), 0-based frame indices
  OUT/annotations.csv           subject,video_name,start_frame,apex_frame,end_frame,type_idx,au
                                (type_idx 1 macro, 2 micro; subject = identity name)
  OUT/manifest.json             seed, identities, generator version, parameters and every planted
                                event per video
Video k uses identity k mod len(identities) and its own seed drawn from the dataset seed, so any
one video can be regenerated alone from the manifest (`seed`, `identity`, `n_frames`, and with a
`Framing` its `size` and `face_width_px`).
"""
from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from mespot.config import Config, load_config
from mespot.synth.aus import AuSampler, au_label
from mespot.synth.identities import Identity, list_identities
from mespot.synth.render import RENDERERS, make_warper, render_video
from mespot.synth.timeline import ANNOTATION_FRACTION, SynthParams, Timeline, plan_timeline
from mespot.synth.warp import FaceBox

GENERATOR_VERSION = "2"
CSV_COLUMNS = ("subject", "video_name", "start_frame", "apex_frame", "end_frame", "type_idx", "au")


@dataclass(frozen=True)
class VideoPlan:
    """One video of a dataset: its name, identity and seed."""

    name: str
    identity: Identity
    seed: int


@dataclass(frozen=True)
class Framing:
    """Per-video frame size and face size, drawn from the video's seed: the face width is drawn
    log-uniformly in `face_px`, kept under `max_face_frac` of the frame's height and over
    `min_face_frac` of its width (the tracker's face detector finds no astronaut face narrower
    than 11.7 % of a 1280x720 frame: 150 px; 130 px is missed, docs/synth.md)."""

    sizes: tuple[tuple[int, int], ...] = ((640, 360), (640, 480), (1280, 720))
    face_px: tuple[float, float] = (90.0, 320.0)
    max_face_frac: float = 0.6
    min_face_frac: float = 0.12

    def draw(self, seed: int) -> tuple[tuple[int, int], float, tuple[float, float]]:
        """(size, face width in px, face centre offset as fractions of the frame) for a video seed."""
        rng = np.random.default_rng([seed, 17])     # its own stream: the timeline's draws are unchanged
        size = self.sizes[int(rng.integers(len(self.sizes)))]
        hi = min(self.face_px[1], self.max_face_frac * size[1])
        lo = min(max(self.face_px[0], self.min_face_frac * size[0]), hi)
        width = float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
        return size, width, (float(rng.uniform(-0.12, 0.12)), float(rng.uniform(-0.08, 0.08)))


def reframe(identity: Identity, size: tuple[int, int], face_px: float,
            offset: tuple[float, float] = (0.0, 0.0)) -> Identity:
    """The identity rescaled so its face is `face_px` wide, centred (plus `offset` frame fractions) in
    a frame of `size`; the mesh goes through the same transform, so it stays on the face."""
    scale = face_px / identity.face_width
    centre = (identity.mesh.min(axis=0) + identity.mesh.max(axis=0)).astype(np.float64) / 2
    target = np.array([size[0] * (0.5 + offset[0]), size[1] * (0.46 + offset[1])])
    shift = target - scale * centre
    m = np.array([[scale, 0, shift[0]], [0, scale, shift[1]]], dtype=np.float64)
    interp = cv2.INTER_CUBIC if scale > 1 else cv2.INTER_AREA
    image = cv2.warpAffine(identity.image, m, size, flags=interp, borderMode=cv2.BORDER_REPLICATE)
    mesh = (identity.mesh.astype(np.float64) * scale + shift).astype(np.float32)
    return Identity(identity.name, image, mesh, identity.source)


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
                     progress: bool = True, overwrite: bool = False, renderer: str = "gaussian",
                     framing: Framing | None = None) -> dict:
    """Render `n_videos` videos of `minutes` each and write the dataset; returns the manifest.

    identities: framed identities, or a spec for `list_identities` (framed at `size`).
    expressions=False writes distractor-only videos and an annotation CSV with only its header.
    A folder that already holds a dataset is refused (DatasetExistsError) unless `overwrite`, which
    first deletes the videos of the old manifest so no stale video outlives its annotations.
    renderer: a name of mespot.synth.render.RENDERERS; framing: draw each video's frame and face
    size (None: every video at the identities' own framing).
    """
    if renderer not in RENDERERS:
        raise ValueError(f"unknown renderer {renderer!r}; choose one of {', '.join(RENDERERS)}")
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
    warpers: dict[str, FaceBox] = {}
    rows: list[dict] = []
    videos = []
    with _progress(progress, n_frames * len(plans)) as advance:
        for plan in plans:
            timeline = plan_timeline(n_frames, fps, plan.seed, params, config, sampler, expressions)
            identity = plan.identity
            if framing is not None:
                video_size, face_px, offset = framing.draw(plan.seed)
                identity = reframe(identity, video_size, face_px, offset)
                warper = make_warper(renderer, identity)
            else:
                warper = warpers.get(identity.name) or warpers.setdefault(
                    identity.name, make_warper(renderer, identity))
            render_video(identity, timeline, out_dir / "videos" / f"{plan.name}.mp4", warper,
                         on_frame=lambda _t: advance())
            rows.extend(annotation_rows(identity.name, plan.name, timeline))
            videos.append({"video_name": plan.name, "subject": identity.name, "seed": plan.seed,
                           "size": list(identity.size), "face_width_px": round(identity.face_width, 2),
                           **timeline.describe()})
    write_annotations(out_dir / "annotations.csv", rows)
    manifest = {
        "generator": "mespot.synth", "version": GENERATOR_VERSION, "renderer": renderer,
        "framing": None if framing is None else {"sizes": [list(v) for v in framing.sizes],
                                                 "face_px": list(framing.face_px),
                                                 "max_face_frac": framing.max_face_frac,
                                                 "min_face_frac": framing.min_face_frac},
        "seed": seed, "fps": fps,
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
