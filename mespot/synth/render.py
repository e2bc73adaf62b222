"""Render a timeline on an identity into frames and an mp4 file.

Per frame, in this order: face warp (expression + blink + talking displacement fields, one remap
over the face box, by the renderer's warper: `RENDERERS`), head pose (one similarity warp of the
whole frame about the face centre; a perspective warp when the timeline turns or nods the head),
illumination gain, optional blur, sensor noise (Gaussian, seeded per frame so any frame can be
re-rendered alone), optional JPEG re-encoding at the frame's quality, then mp4 compression ('mp4v')
when written. Output is BGR uint8 at the identity's size.
Each frame is a pure function of (identity, timeline, frame index), so a seed reproduces a video.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np

from mespot.synth.identities import Identity
from mespot.synth.timeline import Timeline
from mespot.synth.meshwarp import MeshWarper
from mespot.synth.warp import FaceBox, FaceWarper

# Two independently designed ways of moving a face (docs/synth.md): "gaussian" (the original:
# Gaussian fields around hand-picked mesh points, mespot.synth.aus) and "piecewise" (piecewise-affine
# over the mesh triangulation, its own action units: mespot.synth.facs).
RENDERERS = {"gaussian": FaceWarper, "piecewise": MeshWarper}
FOCAL_FACE_WIDTHS = 3.0   # camera focal length for turns, in face widths (a face about 0.5 m away)


def make_warper(renderer: str, identity: Identity) -> FaceBox:
    """The warper of a renderer by name; the error lists the valid names."""
    if renderer not in RENDERERS:
        raise ValueError(f"unknown renderer {renderer!r}; choose one of {', '.join(RENDERERS)}")
    return RENDERERS[renderer](identity)


def turn_homography(centre: tuple[float, float], face_width: float, yaw_deg: float,
                    pitch_deg: float) -> np.ndarray:
    """3x3 image homography of a face plane turned by yaw (about the vertical) and pitch (about the
    horizontal) around its centre, seen by a pinhole camera FOCAL_FACE_WIDTHS face widths away."""
    f = FOCAL_FACE_WIDTHS * face_width
    cx, cy = centre
    yaw, pitch = np.radians(yaw_deg), np.radians(pitch_deg)
    ry = np.array([[np.cos(yaw), 0, np.sin(yaw)], [0, 1, 0], [-np.sin(yaw), 0, np.cos(yaw)]])
    rx = np.array([[1, 0, 0], [0, np.cos(pitch), -np.sin(pitch)], [0, np.sin(pitch), np.cos(pitch)]])
    r = ry @ rx
    half = face_width
    src = np.array([[-half, -half], [half, -half], [half, half], [-half, half]], np.float64)
    pts = np.c_[src, np.zeros(4)] @ r.T + [0.0, 0.0, f]
    dst = pts[:, :2] * (f / pts[:, 2:3])
    return cv2.getPerspectiveTransform((src + centre).astype(np.float32), (dst + centre).astype(np.float32))


class FrameRenderer:
    """Renders frame t of `timeline` on `identity`; warp fields are built once per expression."""

    def __init__(self, identity: Identity, timeline: Timeline,
                 warper: FaceBox | None = None) -> None:
        if warper is not None and warper.identity is not identity:
            raise ValueError("warper was built for another identity")
        self.identity = identity
        self.timeline = timeline
        self.warper = warper or FaceWarper(identity)
        scale = self.warper.px_scale
        # Unit expression fields scaled to each expression's peak in this face's pixels.
        self._expr_fields = [self.warper.expression_field(e.aus) * np.float32(e.peak_px * scale)
                             for e in timeline.expressions]
        self._talk_field = self.warper.talk_field * np.float32(scale)
        self._base = identity.image
        w, h = identity.size
        self._size = (w, h)
        self._centre = tuple(float(v) for v in identity.mesh.mean(axis=0))
        self._noise = np.empty((h, w, 3), np.int16)

    def displacement(self, t: int) -> np.ndarray | None:
        """The face-box displacement field (2, h, w) of frame t in pixels, or None when still."""
        tl = self.timeline
        parts = []
        if tl.expr_index[t] >= 0 and tl.expr_amp[t] > 0:
            parts.append(self._expr_fields[tl.expr_index[t]] * tl.expr_amp[t])
        if tl.blink[t] > 0:
            parts.append(self.warper.blink_field * tl.blink[t])
        if tl.talk_px[t] > 0:
            parts.append(self._talk_field * tl.talk_px[t])
        if not parts:
            return None
        return parts[0] if len(parts) == 1 else sum(parts[1:], parts[0])

    def frame(self, t: int) -> np.ndarray:
        if not 0 <= t < self.timeline.n_frames:
            raise IndexError(f"frame {t} outside 0..{self.timeline.n_frames - 1}")
        tl = self.timeline
        img = self._base.copy()
        disp = self.displacement(t)
        if disp is not None:
            self.warper.apply(self._base, disp, img)
        tx, ty, roll, log_scale = (float(v) for v in tl.head[t])
        m = cv2.getRotationMatrix2D(self._centre, roll, float(np.exp(log_scale)))
        m[:, 2] += (tx * self.warper.face_width, ty * self.warper.face_width)
        if tl.turn is None:
            img = cv2.warpAffine(img, m, self._size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101)
        else:
            h = np.vstack([m, [0.0, 0.0, 1.0]]) @ turn_homography(
                self._centre, self.warper.face_width, float(tl.turn[t, 0]), float(tl.turn[t, 1]))
            img = cv2.warpPerspective(img, h, self._size, flags=cv2.INTER_LINEAR,
                                      borderMode=cv2.BORDER_REFLECT101)
        img = cv2.convertScaleAbs(img, alpha=float(tl.gain[t]))
        if tl.blur_px > 0:
            img = cv2.GaussianBlur(img, (0, 0), tl.blur_px * self.warper.px_scale)
        cv2.setRNGSeed(int(tl.noise_seed + t) & 0x7FFFFFFF)
        cv2.randn(self._noise, 0.0, tl.noise_sigma)
        img = cv2.add(img, self._noise, dtype=cv2.CV_8U)
        if tl.jpeg_quality is not None and tl.jpeg_quality[t] > 0:
            ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, int(tl.jpeg_quality[t])])
            if not ok:
                raise RuntimeError(f"JPEG encoding failed at quality {tl.jpeg_quality[t]}")
            img = cv2.imdecode(buf, cv2.IMREAD_COLOR)
        return img

    def frames(self) -> Iterator[np.ndarray]:
        for t in range(self.timeline.n_frames):
            yield self.frame(t)


def render_video(identity: Identity, timeline: Timeline, out_path: str | Path,
                 warper: FaceBox | None = None,
                 on_frame: Callable[[int], None] | None = None) -> Path:
    """Write the timeline rendered on the identity as an mp4 ('mp4v') at the timeline's fps.

    on_frame(t) is called after each written frame (progress bars). Returns the path written.
    """
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    renderer = FrameRenderer(identity, timeline, warper)
    tmp = out_path.with_name(out_path.stem + ".part" + out_path.suffix)
    writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), timeline.fps, identity.size)
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write mp4v video to {tmp}")
    try:
        for t, frame in enumerate(renderer.frames()):
            writer.write(frame)
            if on_frame is not None:
                on_frame(t)
    finally:
        writer.release()
    tmp.replace(out_path)
    return out_path
