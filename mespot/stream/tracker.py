"""Face landmark trackers behind one small interface, and the rule that picks which face to follow.

A tracker turns a BGR image into the 468 mesh points (pixels, (468, 2) float32) of ONE face, or
None. Implementations:
- `MeshModelTracker` (default, spec 'mesh'): acquires with the legacy multi-face static graph,
  then follows with MediaPipe's landmark model run directly (`mespot.stream.meshmodel`): the same
  region-of-interest rule and model as the graph's tracking mode, without the graph's overhead.
- `MediaPipeMeshTracker` (spec 'mesh-graph'): the legacy `mediapipe.solutions.face_mesh` graphs
  (models shipped inside the mediapipe 0.10.21 wheel): a multi-face static graph to acquire, a
  one-face graph in tracking mode (static_image_mode=False, detector only when lost) to follow.
- `TasksLandmarkerTracker`: MediaPipe Tasks `FaceLandmarker` in VIDEO mode, for a user-supplied
  `.task` bundle (its first 468 points are the same mesh).

With several faces in view, `FaceSelector` follows one consistently: the largest at acquisition,
then on each frame the face nearest to where the followed face was; if none is near, the track is
lost (None) and the next frame acquires afresh.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path

import cv2
import numpy as np

from mespot.stream.landmarks import MESH_SIZE
from mespot.stream.meshmodel import FaceMeshModel, MeshModelError, roi_from_landmarks


class TrackerError(RuntimeError):
    """A tracker that cannot be built (missing model file, missing dependency)."""


def face_box(points: np.ndarray) -> tuple[float, float, float, float]:
    """(x0, y0, x1, y1) bounding box of a set of points in pixels."""
    x0, y0 = points.min(axis=0)
    x1, y1 = points.max(axis=0)
    return float(x0), float(y0), float(x1), float(y1)


class FaceSelector:
    """Choose the followed face among the candidates of one frame (pure, testable without models).

    `max_shift` is the largest centre displacement, as a fraction of the followed face's width,
    that still counts as the same face from one frame to the next.
    """

    def __init__(self, max_shift: float = 0.5) -> None:
        self.max_shift = max_shift
        self._centre: np.ndarray | None = None
        self._width = 0.0

    def reset(self) -> None:
        self._centre = None

    def choose(self, faces: list[np.ndarray]) -> np.ndarray | None:
        if not faces:
            self._centre = None
            return None
        boxes = [face_box(f) for f in faces]
        centres = np.array([((b[0] + b[2]) / 2, (b[1] + b[3]) / 2) for b in boxes])
        if self._centre is None:
            areas = [(b[2] - b[0]) * (b[3] - b[1]) for b in boxes]
            pick = int(np.argmax(areas))
        else:
            dist = np.linalg.norm(centres - self._centre, axis=1)
            pick = int(np.argmin(dist))
            if dist[pick] > self.max_shift * self._width:
                self._centre = None       # the followed face is gone: lost, re-acquire next frame
                return None
        self._centre = centres[pick]
        self._width = boxes[pick][2] - boxes[pick][0]
        return faces[pick]


class Tracker(ABC):
    """The landmark stage: `track(image_bgr) -> (468, 2) float32 pixels | None`, once per frame in
    order; `reset()` forgets the track; `close()` releases the model (idempotent); `config()` says
    everything that changes the landmarks (it goes into the front-end's config). Only `track` must
    be written; the rest default to nothing to forget, nothing to release and the name."""

    name = "tracker"

    @abstractmethod
    def track(self, image_bgr: np.ndarray) -> np.ndarray | None:
        """The followed face's mesh points in image pixels, or None (no face, or the track lost)."""

    def reset(self) -> None:
        """Forget the track (a new stream starts)."""

    def close(self) -> None:
        """Release the model (idempotent)."""

    def config(self) -> dict:
        return {"name": self.name}


class SelectingTracker(Tracker):
    """A tracker that finds every face of an image (`_faces`) and follows one of them (FaceSelector)."""

    def __init__(self, max_faces: int = 3, max_shift: float = 0.5) -> None:
        if max_faces < 1:
            raise ValueError(f"max_faces must be >= 1, got {max_faces}")
        self.max_faces = max_faces
        self.selector = FaceSelector(max_shift)

    @abstractmethod
    def _faces(self, rgb: np.ndarray) -> list[np.ndarray]:
        """All faces in the image as (468, 2) arrays in normalised [0, 1] coordinates."""

    def track(self, image_bgr: np.ndarray) -> np.ndarray | None:
        h, w = image_bgr.shape[:2]
        rgb = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2RGB)
        faces = self._faces(rgb)
        scale = np.array([w, h], dtype=np.float32)
        return self.selector.choose([f * scale for f in faces])

    def reset(self) -> None:
        self.selector.reset()

    def config(self) -> dict:
        return {**super().config(), "max_faces": self.max_faces}


# Wire layout of one landmark (x, y, z floats, no optional fields) in a serialised landmark list:
# reading all 468 this way takes microseconds instead of a Python loop's quarter millisecond.
_WIRE = np.dtype([("tag", "u1"), ("size", "u1"), ("tx", "u1"), ("x", "<f4"), ("ty", "u1"), ("y", "<f4"),
                  ("tz", "u1"), ("z", "<f4")])


def _to_array(landmark_list) -> np.ndarray:
    """(468, 2) float32 normalised x, y of a landmark list message (legacy) or sequence (Tasks)."""
    if hasattr(landmark_list, "SerializeToString"):
        raw = landmark_list.SerializeToString()
        if len(raw) % _WIRE.itemsize == 0:
            rec = np.frombuffer(raw, dtype=_WIRE)
            if ((rec["tag"] == 0x0A) & (rec["size"] == 15) & (rec["tx"] == 0x0D) & (rec["ty"] == 0x15)
                    & (rec["tz"] == 0x1D)).all():
                return np.stack([rec["x"][:MESH_SIZE], rec["y"][:MESH_SIZE]], axis=1).astype(np.float32)
        landmark_list = landmark_list.landmark
    return np.array([(p.x, p.y) for p in list(landmark_list)[:MESH_SIZE]], dtype=np.float32)


def _face_mesh_module():
    try:
        from mediapipe.python.solutions import face_mesh
    except ImportError as exc:
        raise TrackerError("the face tracker needs mediapipe==0.10.21 (pip install mediapipe==0.10.21)") from exc
    return face_mesh


class MediaPipeMeshTracker(SelectingTracker):
    """Legacy MediaPipe face mesh: acquire the largest face, then track it inside a window.

    Why two graphs: the legacy graph in tracking mode re-runs its face detector on EVERY frame
    while it tracks fewer faces than `max_num_faces`, which costs about as much as the landmark
    model itself. So acquisition uses a static-image graph with up to `max_faces` faces (only
    while no face is followed: the largest one is chosen), and tracking uses a one-face graph in
    tracking mode (detector only when lost) that sees only a square window around the followed
    face (`window_scale` x its size), so another face cannot take the track over and the model
    input stays small. The window moves only when the face drifts from its centre, so the
    graph's own tracking stays consistent.
    """

    name = "mediapipe-face-mesh"

    def __init__(self, max_faces: int = 3, *, min_detection_confidence: float = 0.5,
                 min_tracking_confidence: float = 0.5, max_shift: float = 0.5,
                 window_scale: float = 2.2) -> None:
        super().__init__(max_faces, max_shift)
        self.window_scale = window_scale
        self._conf = dict(refine_landmarks=False, min_detection_confidence=min_detection_confidence,
                          min_tracking_confidence=min_tracking_confidence)
        self._face_mesh = face_mesh = _face_mesh_module()
        self._acquire = face_mesh.FaceMesh(static_image_mode=True, max_num_faces=max_faces, **self._conf)
        self._follow = self._new_follow_graph()
        self._window: tuple[int, int, int, int] | None = None   # x0, y0, x1, y1 in image pixels

    def _new_follow_graph(self):
        return self._face_mesh.FaceMesh(static_image_mode=False, max_num_faces=1, **self._conf)

    def _faces(self, rgb: np.ndarray) -> list[np.ndarray]:
        result = self._acquire.process(rgb)
        return [_to_array(f) for f in (result.multi_face_landmarks or [])]

    def _window_for(self, face: np.ndarray, w: int, h: int) -> tuple[int, int, int, int]:
        x0, y0, x1, y1 = face_box(face)
        side = int(self.window_scale * max(x1 - x0, y1 - y0))
        sw, sh = min(side, w), min(side, h)
        left = int(np.clip((x0 + x1) / 2 - sw / 2, 0, w - sw))
        top = int(np.clip((y0 + y1) / 2 - sh / 2, 0, h - sh))
        return left, top, left + sw, top + sh

    def _drifted(self, face: np.ndarray, w: int, h: int) -> bool:
        """True when the window the face would get now is far from the current one: moved by
        more than 12 % of its side, or a size ratio outside 0.7..1.4."""
        wx0, wy0, wx1, wy1 = self._window
        ix0, iy0, ix1, iy1 = self._window_for(face, w, h)
        side = max(wx1 - wx0, 1)
        shift = max(abs(ix0 - wx0), abs(iy0 - wy0))
        return shift > 0.12 * side or not 0.7 < (ix1 - ix0) / side < 1.4

    def track(self, image_bgr: np.ndarray) -> np.ndarray | None:
        h, w = image_bgr.shape[:2]
        if self._window is None:
            face = super().track(image_bgr)          # acquisition: largest face (FaceSelector)
            if face is not None:
                self._window = self._window_for(face, w, h)
            return face
        x0, y0, x1, y1 = self._window
        rgb = cv2.cvtColor(image_bgr[y0:y1, x0:x1], cv2.COLOR_BGR2RGB)
        result = self._follow.process(rgb)
        found = result.multi_face_landmarks or []
        scale = np.array([x1 - x0, y1 - y0], dtype=np.float32)
        offset = np.array([x0, y0], dtype=np.float32)
        face = self.selector.choose([_to_array(f) * scale + offset for f in found])
        if face is None:
            if found:                                # the graph holds a face that is not ours
                self._follow.close()
                self._follow = self._new_follow_graph()
            self._window = None
            return None
        if self._drifted(face, w, h):
            self._window = self._window_for(face, w, h)
        return face

    def reset(self) -> None:
        """Forget the track, including the tracking graph's own state."""
        super().reset()
        self._window = None
        self._follow.close()
        self._follow = self._new_follow_graph()

    def close(self) -> None:
        for graph in (self._acquire, self._follow):
            if graph is not None:
                graph.close()
        self._acquire = self._follow = None

    def config(self) -> dict:
        return {**super().config(), "refine_landmarks": False, "window_scale": self.window_scale,
                "min_detection_confidence": self._conf["min_detection_confidence"],
                "min_tracking_confidence": self._conf["min_tracking_confidence"]}


class MeshModelTracker(SelectingTracker):
    """Face mesh with the landmark model run directly: acquire with the static graph, then track.

    Acquisition is the legacy multi-face static-image graph (largest face, `FaceSelector`). While
    a face is followed, each frame runs only the landmark model on the region of interest derived
    from the previous frame's landmarks (MediaPipe's tracking-mode rule, `mespot.stream.meshmodel`).
    A presence score below `min_tracking_confidence`, or a jump (`FaceSelector`), loses the track:
    None for that frame, acquisition on the next.
    """

    name = "mediapipe-face-mesh-model"

    def __init__(self, max_faces: int = 3, *, min_detection_confidence: float = 0.5,
                 min_tracking_confidence: float = 0.5, max_shift: float = 0.5, num_threads: int = 1) -> None:
        super().__init__(max_faces, max_shift)
        self.min_detection_confidence = min_detection_confidence
        self.min_tracking_confidence = min_tracking_confidence
        try:
            self._model = FaceMeshModel(num_threads=num_threads)
        except MeshModelError as exc:
            raise TrackerError(str(exc)) from exc
        self._acquire = _face_mesh_module().FaceMesh(
            static_image_mode=True, max_num_faces=max_faces, refine_landmarks=False,
            min_detection_confidence=min_detection_confidence, min_tracking_confidence=min_tracking_confidence)
        self._roi = None            # mespot.stream.meshmodel.Roi for the next frame, None when lost

    def _faces(self, rgb: np.ndarray) -> list[np.ndarray]:
        result = self._acquire.process(rgb)
        return [_to_array(f) for f in (result.multi_face_landmarks or [])]

    def track(self, image_bgr: np.ndarray) -> np.ndarray | None:
        if self._roi is None:
            face = super().track(image_bgr)          # acquisition: largest face (FaceSelector)
        else:
            points, presence = self._model.run(image_bgr, self._roi)
            if presence < self.min_tracking_confidence:
                self.selector.reset()
                face = None
            else:
                face = self.selector.choose([points])
        self._roi = None if face is None else roi_from_landmarks(face)
        return face

    def reset(self) -> None:
        super().reset()
        self._roi = None

    def close(self) -> None:
        if self._acquire is not None:
            self._acquire.close()
            self._acquire = None
        self._model.close()

    def config(self) -> dict:
        return {**super().config(), "refine_landmarks": False, "num_threads": self._model.num_threads,
                "min_detection_confidence": self.min_detection_confidence,
                "min_tracking_confidence": self.min_tracking_confidence}


class TasksLandmarkerTracker(SelectingTracker):
    """MediaPipe Tasks `FaceLandmarker` (VIDEO running mode) from a user-supplied `.task` file."""

    name = "mediapipe-tasks-face-landmarker"

    def __init__(self, model_path: str | Path, max_faces: int = 3, *, max_shift: float = 0.5) -> None:
        super().__init__(max_faces, max_shift)
        self.model_path = Path(model_path)
        if not self.model_path.is_file():
            raise TrackerError(f"FaceLandmarker model {str(self.model_path)!r} not found (a .task file is needed)")
        self._landmarker = self._build()
        self._timestamp_ms = 0

    def _build(self):
        import mediapipe as mp
        from mediapipe.tasks.python import BaseOptions, vision

        self._mp = mp
        options = vision.FaceLandmarkerOptions(
            base_options=BaseOptions(model_asset_path=str(self.model_path)),
            running_mode=vision.RunningMode.VIDEO,
            num_faces=self.max_faces,
        )
        try:
            return vision.FaceLandmarker.create_from_options(options)
        except (RuntimeError, ValueError) as exc:
            raise TrackerError(f"cannot load FaceLandmarker from {str(self.model_path)!r}: {exc}") from exc

    def _faces(self, rgb: np.ndarray) -> list[np.ndarray]:
        # VIDEO mode wants strictly increasing timestamps; the frame clock is not needed for tracking.
        self._timestamp_ms += 33
        image = self._mp.Image(image_format=self._mp.ImageFormat.SRGB, data=np.ascontiguousarray(rgb))
        result = self._landmarker.detect_for_video(image, self._timestamp_ms)
        return [_to_array(f) for f in (result.face_landmarks or [])]

    def reset(self) -> None:
        super().reset()
        self._landmarker.close()
        self._landmarker = self._build()
        self._timestamp_ms = 0

    def close(self) -> None:
        if self._landmarker is not None:
            self._landmarker.close()
            self._landmarker = None

    def config(self) -> dict:
        return {**super().config(), "model": str(self.model_path)}


def make_tracker(spec: str | None = None, *, max_faces: int = 3) -> Tracker:
    """None or 'mesh' -> MeshModelTracker; 'mesh-graph' -> MediaPipeMeshTracker (the legacy
    tracking graph); a path to a `.task` file -> TasksLandmarkerTracker."""
    if spec in (None, "mesh", "mediapipe"):
        return MeshModelTracker(max_faces)
    if spec == "mesh-graph":
        return MediaPipeMeshTracker(max_faces)
    if str(spec).endswith(".task"):
        return TasksLandmarkerTracker(spec, max_faces)
    raise TrackerError(f"unknown tracker {spec!r}; valid: 'mesh', 'mesh-graph' or a path to a FaceLandmarker .task file")


def tracker_spec(config: dict) -> str:
    """The `make_tracker` spec that builds the tracker a `Tracker.config()` describes."""
    name = config.get("name")
    if name == MeshModelTracker.name:
        return "mesh"
    if name == MediaPipeMeshTracker.name:
        return "mesh-graph"
    if name == TasksLandmarkerTracker.name and config.get("model"):
        return str(config["model"])
    raise TrackerError(f"no tracker of this installation builds {name!r}")


def canonical_tracker_spec(spec: str | None) -> str:
    """One spelling per tracker: None and 'mediapipe' are 'mesh'."""
    return "mesh" if spec in (None, "mesh", "mediapipe") else str(spec)
