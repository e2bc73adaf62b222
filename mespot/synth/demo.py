"""The demo clip `spot-live --demo` plays: the public-domain astronaut with a few planted expressions.

24 s at 30 fps, 640x480, three micro- and three macro-expressions among blinks, head motion,
talking, lighting drift, noise and mp4 compression; deterministic for a seed. The planted intervals
are returned (and written beside the clip as a one-video annotation CSV) so a viewer can show truth.
"""
from __future__ import annotations

from pathlib import Path

from mespot.synth.dataset import annotation_rows, write_annotations
from mespot.synth.identities import list_identities
from mespot.synth.render import render_video
from mespot.synth.timeline import plan_timeline
from mespot.types import Interval

DEMO_SECONDS = 24
DEMO_FPS = 30.0
DEMO_SIZE = (640, 480)
DEMO_COUNTS = {"micro": 3, "macro": 3}


def make_demo_clip(out_dir: str | Path, seed: int = 0) -> tuple[Path, list[Interval]]:
    """Render the demo clip into `out_dir`; returns (video path, planted intervals in time order)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    identity = list_identities("astronaut", size=DEMO_SIZE)[0]
    timeline = plan_timeline(int(DEMO_SECONDS * DEMO_FPS), DEMO_FPS, seed, counts=DEMO_COUNTS)
    name = f"demo_seed{seed}"
    video = render_video(identity, timeline, out_dir / f"{name}.mp4")
    write_annotations(out_dir / f"{name}.csv", annotation_rows(identity.name, name, timeline))
    return video, timeline.intervals()
