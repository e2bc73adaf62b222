"""The per-frame front-end: image -> face landmarks -> aligned crop -> flow -> (12, 2) ROI features.

`FrontEnd.process(frame)` is called once per frame, in order, by the live pipeline and by offline
extraction alike, so a model sees live exactly what it was trained on. Feature k is the motion from
frame k-1 to frame k (mespot.types). A frame is invalid (features zero) when it has no predecessor
in the current track: the first frame, no face, a lost track, a jump of the face, a face whose ROI
centres leave the image, a change of image size, an unusable image, or a hole in the frame
indices or timestamps. Each of these restarts the flow state, so no flow is ever computed across a
hole.

Gap frames (a source's unreadable frame, `Frame.image` None) are invalid too, but up to
BRIDGE_GAPS of them in a row do not end the track: the next real frame's flow is computed from
the last real one and divided by the frame periods it spans (`FrameFeatures.span`), so the motion
over the gap is measured and only its split between the periods is assumed even. The live
pipeline feeds that mean motion to the model for the gap's indices as well, so one corrupt frame
inside an expression does not cut its run in two (a new run's first indices see the model's edge
padding, which made false micro-expressions).

Alignment: the previous and the current image are both warped, in grey, with the CURRENT frame's
similarity transform, so head position, size and roll are normalised while landmark jitter cannot
appear as motion; what the head itself moved between the two frames stays in the flow, and its
translation, roll and scale change are removed by a similarity motion field fitted to the flow at
rigid face points (mespot.stream.headmotion; by default without the reference's g after it, which
the fit's own translation replaces: reference-model.md §2.2, and docs/frontend.md for the
measurements). Warping each image with its own transform instead would let landmark jitter show as
motion (docs/frontend.md, Alignment).

Feature units: pixels of the aligned crop per frame (the crop is `crop_size` px with the outer eye
corners 0.5 * crop_size apart). No normalisation here; training computes its own.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from typing import Callable

import cv2
import numpy as np

from mespot.featurefile import FeatureFile
from mespot.stream.align import Aligner, GreyPatch, apply_transform
from mespot.stream.flow import FlowMethod
from mespot.stream.headmotion import REFLOW_PX, RIGID_MESH, HeadMotion, HeadMotionFit
from mespot.stream.landmarks import (ALIGN_IBUG, INNER_EYE_IBUG, NOSE_BOX_IBUG, ROI_IBUG,
                                     mesh_indices)
from mespot.stream.roi import RoiReducer
from mespot.stream.stages import FRONTEND_STAGES
from mespot.stream.strategies import make_strategy
from mespot.stream.tracker import Tracker, make_tracker
from mespot.types import N_ROIS, Frame, FrameFeatures

STAGES = FRONTEND_STAGES
PATCH_MARGIN = 0.1     # growth of a frame's grey patch, per side, as a share of the warp's source box
BRIDGE_GAPS = 2        # gap frames in a row that the flow is measured across (67 ms at 30 fps)
# Order of the mapped points the front-end reads each frame.
_USED_IBUG = ROI_IBUG + ALIGN_IBUG + NOSE_BOX_IBUG + INNER_EYE_IBUG
_ROI = slice(0, 12)
_ALIGN = slice(12, 12 + len(ALIGN_IBUG))
_NOSE = slice(_ALIGN.stop, _ALIGN.stop + 2)
_EYES = slice(_NOSE.stop, _NOSE.stop + 2)
_RIGID = slice(_EYES.stop, _EYES.stop + len(RIGID_MESH))


def _length(v: np.ndarray) -> float:
    """Euclidean length of a 2-vector, exactly as np.linalg.norm computes it (sqrt of v.v)."""
    return math.sqrt(v.dot(v))


@dataclass
class _Previous:
    index: int
    t_source: float
    image: np.ndarray         # the source image, BGR (the frame's own array, not a copy)
    eye_centre: np.ndarray
    eye_distance: float
    patch: GreyPatch | None   # grey copy of the face's surroundings, made while the frame was hot


class FrontEnd:
    """Stateful per-frame feature extractor. Not thread-safe: one instance per stream.

    fps: the rate the frames arrive at (for detecting holes in timestamps).
    tracker: a `Tracker`, a tracker spec (mespot.stream.tracker.make_tracker), or None for the
    MediaPipe face mesh.
    flow: a flow method or its name in mespot.stream.strategies: 'dis' (live) or 'tvl1' (offline
    comparison).
    crop_size: side of the aligned crop in pixels; roi_radius: ROI patch half-size in crop pixels
    (default 5 at 128 px, scaled with the crop: an 11x11 patch, as in the reference).
    max_jump: largest eye-centre shift between frames, in eye distances, still one track.
    max_faces: faces considered at acquisition by the default tracker (the largest is followed).
    head_motion: a HeadMotion (HeadMotionMode) or its name in mespot.stream.strategies. 'similarity-no-g'
    (default) fits the head's translation, roll and scale between the two frames to the flow at
    rigid face points and takes that field off (mespot.stream.headmotion); 'similarity' takes
    the reference's g off after it too; 'translation' is that g alone (reference-model.md §2.2).
    reflow_px: with a similarity fit (ignored for 'translation'), when the fitted motion exceeds this
    many crop px per frame at a rigid point, the previous crop is moved by it and the flow computed
    again, so the second flow only sees what is left (DIS is more accurate on small motions); None:
    never.
    """

    def __init__(self, fps: float = 30.0, *, tracker: Tracker | str | None = None,
                 flow: FlowMethod | str = "dis", crop_size: int = 128, roi_radius: int | None = None,
                 max_jump: float = 0.25, max_faces: int = 3,
                 head_motion: HeadMotion | str = "similarity-no-g",
                 reflow_px: float | None = REFLOW_PX) -> None:
        if fps <= 0:
            raise ValueError(f"fps must be positive, got {fps}")
        head_motion = make_strategy("head_motion", head_motion)
        flow = make_strategy("flow", flow)
        # OpenCV's own thread pool splits each 128 px warp and flow call across cores; on a few
        # shared cores the hand-off costs more than it saves, and streams already run side by side
        # (docs/benchmarks.md, design measurements). Results do not change.
        cv2.setNumThreads(1)
        self.fps = float(fps)
        self.max_jump = max_jump
        self.tracker = make_tracker(tracker, max_faces=max_faces) if tracker is None or isinstance(tracker, str) else tracker
        self.flow = flow
        self.aligner = Aligner(crop_size)
        radius = roi_radius if roi_radius is not None else max(1, round(5 * crop_size / 128))
        self.roi = RoiReducer(self.aligner.crop_size, radius)
        self.head_motion = head_motion
        self._head_fit = HeadMotionFit(self.aligner.crop_size) if head_motion.fit else None
        self._reference_g = head_motion.reference_g
        if reflow_px is not None and reflow_px <= 0:
            raise ValueError(f"reflow_px must be positive or None, got {reflow_px}")
        self.reflow_px = reflow_px if self._head_fit is not None else None
        self._crop_undone = self.aligner.new_crop()
        self.reflows = 0           # frame pairs whose flow was computed a second time
        self._mesh_idx = np.concatenate([mesh_indices(_USED_IBUG), np.array(RIGID_MESH, np.intp)])
        self._roi_idx = self._mesh_idx[_ROI]
        # Crop buffers, reused every frame (the features are computed before the next call).
        self._crop_prev = self.aligner.new_crop()
        self._crop_cur = self.aligner.new_crop()
        self._shape: tuple[int, ...] | None = None
        self._image_limit = np.zeros(2, np.float32)     # (w, h) of the current image size
        self._prev: _Previous | None = None
        self._gaps = 0             # gap frames since self._prev
        self.bridge_gaps = BRIDGE_GAPS
        self.restarts = 0
        self.patch_misses = 0      # pairs whose previous frame had to be converted again (_crops)

    def config(self) -> dict:
        """Everything that changes the features; stored in every feature file's meta."""
        return {"tracker": self.tracker.config(), "flow": self.flow.config(),
                "crop_size": self.aligner.crop_size, "roi_radius": self.roi.radius,
                "align": "pair-grey", "head_motion": self.head_motion.config(), "reflow_px": self.reflow_px,
                "max_jump": self.max_jump, "fps": self.fps,
                "units": "pixels of the aligned crop per frame"}

    def reset(self) -> None:
        """Forget the track and the flow state (a new stream or video starts)."""
        self._prev = None
        self._gaps = 0
        self._shape = None
        self.tracker.reset()

    def close(self) -> None:
        self.tracker.close()

    def _restart(self) -> None:
        if self._prev is not None:
            self.restarts += 1
        self._prev = None
        self._gaps = 0

    def _keep(self, frame: Frame, eye_centre: np.ndarray, eye_distance: float,
              patch: GreyPatch | None = None) -> None:
        """Remember this frame for the next pair. The image is kept by reference, not copied: a
        Frame's image is owned by its receiver (mespot.types.Frame), so nobody writes into it after
        `process`; a copy would only cost time and cache (docs/benchmarks.md, design measurements)."""
        self._prev = _Previous(frame.index, frame.t_source, frame.image, eye_centre, eye_distance, patch)
        self._gaps = 0

    def _crops(self, image: np.ndarray, matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray, GreyPatch]:
        """The grey crops of the previous and the current frame, both warped with `matrix`, and the
        current frame's grey patch for the next pair.

        The current frame's patch is the box the warp reads grown by PATCH_MARGIN of its side, so the
        next frame's box (the head moves a few px a frame) usually lies inside it and the previous
        frame, 33 ms old and out of the cache by then, is not read again; when it does not, the box
        is converted from the previous image itself. Either way the crops are those of the whole
        grey frames.
        """
        inverse = cv2.invertAffineTransform(matrix)
        h, w = image.shape[:2]
        box = self.aligner.source_box(inverse, w, h)
        margin = max(2, int(PATCH_MARGIN * (box[2] - box[0])))
        patch = self.aligner.grey_patch(image, self.aligner.source_box(inverse, w, h, margin))
        crop = self.aligner.warp(patch, inverse, self._crop_cur)
        prev = self._prev
        if prev.patch is None or not prev.patch.covers(box):
            self.patch_misses += 1
            prev_patch = self.aligner.grey_patch(prev.image, box)
        else:
            prev_patch = prev.patch
        prev_crop = self.aligner.warp(prev_patch, inverse, self._crop_prev)
        return prev_crop, crop, patch

    def _undo(self, prev_crop: np.ndarray, motion: np.ndarray) -> np.ndarray:
        """The previous crop moved by the fitted head motion: what is at x in it is at x + m(x) in
        the current crop, so the moved crop reads it at (I - L) x - t."""
        back = np.hstack([np.eye(2) - motion[:, :2], -motion[:, 2:]])
        cv2.warpAffine(prev_crop, back, prev_crop.shape[::-1], dst=self._crop_undone,
                       flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE)
        return self._crop_undone

    def _invalid(self, frame: Frame, stage_ms: dict, centres: np.ndarray | None = None,
                 mesh: np.ndarray | None = None) -> FrameFeatures:
        return FrameFeatures(index=frame.index, features=np.zeros((N_ROIS, 2), np.float32), valid=False,
                             t_source=frame.t_source, t_monotonic=frame.t_monotonic,
                             roi_centres=centres, stage_ms=stage_ms, mesh=mesh)

    def _continues(self, frame: Frame) -> bool:
        prev = self._prev
        span = 1 + self._gaps
        return (prev is not None and frame.index == prev.index + span
                and 0.0 <= frame.t_source - prev.t_source <= (span + 1.5) / self.fps)

    def process(self, frame: Frame) -> FrameFeatures:
        stage_ms = dict.fromkeys(STAGES, 0.0)
        image = frame.image
        if image is None:
            if self._prev is not None and self._gaps < BRIDGE_GAPS:
                self._gaps += 1        # the track waits for the next real frame
            else:
                self._restart()
            return self._invalid(frame, stage_ms)
        if image.ndim != 3 or image.shape[2] != 3 or image.size == 0:
            self._restart()
            return self._invalid(frame, stage_ms)
        if image.shape != self._shape:
            if self._shape is not None:
                self.tracker.reset()      # the tracker's normalised track means nothing at a new size
            self._shape = image.shape
            self._image_limit = np.array(image.shape[1::-1], np.float32)   # (w, h): ROI x < w, y < h
            self._restart()
        continues = self._continues(frame)
        span = 1 + self._gaps if continues else 1

        t0 = time.perf_counter()
        mesh = self.tracker.track(image)
        t1 = time.perf_counter()
        stage_ms["landmarks"] = (t1 - t0) * 1e3
        if mesh is None:
            self._restart()
            return self._invalid(frame, stage_ms)
        # Few numpy calls here: after a frame period of idle each one costs ~10-20 us.
        pts = mesh[self._mesh_idx].astype(np.float64)
        roi_image = mesh[self._roi_idx].astype(np.float32, copy=False)
        inside = bool(roi_image.min() >= 0 and (roi_image < self._image_limit).all())
        eyes = pts[_ALIGN][:4]
        eye_centre = np.add.reduce(eyes, axis=0) / 4.0          # = eyes.mean(axis=0), bit for bit
        eye_distance = _length(eyes[3] - eyes[0])
        if continues:
            prev = self._prev
            shift = _length(eye_centre - prev.eye_centre)
            scale = eye_distance / max(prev.eye_distance, 1e-6)
            if shift > self.max_jump * prev.eye_distance or not 0.8 < scale < 1.25:
                self._restart()          # a jump: another face, or a tracking glitch
                continues = False
        if not inside or eye_distance < 8.0:
            self._restart()
            stage_ms["align"] = (time.perf_counter() - t1) * 1e3
            return self._invalid(frame, stage_ms, roi_image, mesh)

        if not continues:
            self._keep(frame, eye_centre, eye_distance)
            stage_ms["align"] = (time.perf_counter() - t1) * 1e3
            return self._invalid(frame, stage_ms, roi_image, mesh)
        matrix = self.aligner.transform(pts[_ALIGN])
        prev_crop, crop, patch = self._crops(image, matrix)
        crop_pts = apply_transform(matrix, pts)
        self._keep(frame, eye_centre, eye_distance, patch)
        t2 = time.perf_counter()
        stage_ms["align"] = (t2 - t1) * 1e3

        flow = self.flow(prev_crop, crop)
        t3 = time.perf_counter()
        stage_ms["flow"] = (t3 - t2) * 1e3
        motion, reflow_ms = None, 0.0
        if self._head_fit is not None:
            rigid = crop_pts[_RIGID]
            motion = self._head_fit.fit(flow, rigid)
            if self.reflow_px is not None and self._head_fit.largest(motion, rigid) > self.reflow_px:
                t_re = time.perf_counter()
                flow = self.flow(self._undo(prev_crop, motion), crop)
                reflow_ms = (time.perf_counter() - t_re) * 1e3
                motion = self._head_fit.fit(flow, rigid)
                self.reflows += 1
        g = self.roi.head_motion(flow, crop_pts[_NOSE], crop_pts[_EYES], motion) if self._reference_g else None
        features = self.roi.features(flow, crop_pts[_ROI], g, motion)
        if span > 1:
            features = features / np.float32(span)
        stage_ms["flow"] += reflow_ms                      # the second flow is flow, the fits are roi
        stage_ms["roi"] = (time.perf_counter() - t3) * 1e3 - reflow_ms
        return FrameFeatures(index=frame.index, features=features, valid=True, t_source=frame.t_source,
                             t_monotonic=frame.t_monotonic, roi_centres=roi_image, stage_ms=stage_ms,
                             span=span, mesh=mesh)


def extract_features(source_spec, *, fps: float = 30.0, progress: Callable[[int, int | None], None] | None = None,
                     source_opts: dict | None = None, **frontend_opts) -> FeatureFile:
    """Run a whole source through a fresh FrontEnd at `fps` and return its FeatureFile.

    Files lose nothing (the capture thread applies back-pressure). Rows are indexed by frame index
    at `fps`; an index with no frame (a hole in the source) is an invalid row. Gap frames the
    front-end bridged (`FrameFeatures.span`) get the bridged mean motion and count as valid, as in
    the live pipeline, so a feature file feeds the model what a live run fed it. A live source runs
    until Ctrl-C and returns what it has.
    `progress(done, total)` is called after each frame (total None when unknown).
    """
    from mespot.stream.capture import CaptureThread
    from mespot.stream.sources import open_source

    source = open_source(source_spec, target_fps=fps, **(source_opts or {}))
    total = int(round(source.duration_s * fps)) if source.duration_s else None
    frontend = FrontEnd(fps, **frontend_opts)
    rows: list[FrameFeatures] = []
    try:
        with CaptureThread(source, policy="block") as capture:
            for frame in capture:
                rows.append(replace(frontend.process(frame), mesh=None))    # the file keeps no mesh
                if progress is not None:
                    progress(len(rows), total)
    except KeyboardInterrupt:
        if not source.is_live:
            raise                      # a file is extracted whole or not at all
    finally:
        frontend.close()
    n = rows[-1].index + 1 if rows else 0
    features = np.zeros((n, N_ROIS, 2), np.float32)
    valid = np.zeros(n, bool)
    timestamps = np.full(n, np.nan)
    centres = np.full((n, N_ROIS, 2), np.nan, np.float32)
    for r in rows:
        features[r.index] = r.features
        valid[r.index] = r.valid
        timestamps[r.index] = r.t_source
        if r.valid:
            centres[r.index] = r.roi_centres
        if r.valid and r.span > 1:       # bridged gap frames: the model gets what the live engine gets
            features[r.index - r.span + 1:r.index] = r.features
            valid[r.index - r.span + 1:r.index] = True
    holes = np.isnan(timestamps)
    timestamps[holes] = np.flatnonzero(holes) / fps
    meta = {"fps": float(fps), "source": str(source_spec), "extractor": frontend.config(),
            "source_stats": source.stats, "source_fps": source.fps}
    return FeatureFile(features=features, valid=valid, timestamps=timestamps, roi_centres=centres, meta=meta)
