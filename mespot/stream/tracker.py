"""Face landmark trackers behind one small interface, and the rule that picks which face to follow.

A tracker turns a BGR image into the 468 mesh points (pixels, (468, 2) float32) of ONE face, or
None. Implementations:
- `MediaPipeMeshTracker` (default): the legacy `mediapipe.solutions.face_mesh` graph in tracking
  mode (static_image_mode=False: the detector runs only when the track is lost), models shipped
  inside the mediapipe 0.10.21 wheel.
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
    """`track(image_bgr) -> (468, 2) float32 pixels | None`; `reset()` forgets the track."""

    name = "tracker"

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

    def close(self) -> None:
        """Release the model (idempotent)."""

    def config(self) -> dict:
        return {"name": self.name, "max_faces": self.max_faces}


def _to_array(landmarks) -> np.ndarray:
    return np.array([(p.x, p.y) for p in landmarks[:MESH_SIZE]], dtype=np.float32)


class MediaPipeMeshTracker(Tracker):
    """Legacy MediaPipe face mesh in tracking mode (models inside the mediapipe wheel)."""

    name = "mediapipe-face-mesh"

    def __init__(self, max_faces: int = 3, *, min_detection_confidence: float = 0.5,
                 min_tracking_confidence: float = 0.5, max_shift: float = 0.5) -> None:
        super().__init__(max_faces, max_shift)
        self._opts = dict(static_image_mode=False, max_num_faces=max_faces, refine_landmarks=False,
                          min_detection_confidence=min_detection_confidence,
                          min_tracking_confidence=min_tracking_confidence)
        self._mesh = self._build()

    def _build(self):
        try:
            from mediapipe.python.solutions import face_mesh
        except ImportError as exc:
            raise TrackerError("the face tracker needs mediapipe==0.10.21 (pip install mediapipe==0.10.21)") from exc
        return face_mesh.FaceMesh(**self._opts)

    def _faces(self, rgb: np.ndarray) -> list[np.ndarray]:
        result = self._mesh.process(rgb)
        return [_to_array(f.landmark) for f in (result.multi_face_landmarks or [])]

    def reset(self) -> None:
        """Forget the track, including the graph's own (a new image size needs a fresh graph)."""
        super().reset()
        self._mesh.close()
        self._mesh = self._build()

    def close(self) -> None:
        if self._mesh is not None:
            self._mesh.close()
            self._mesh = None

    def config(self) -> dict:
        return {**super().config(), "refine_landmarks": False,
                "min_detection_confidence": self._opts["min_detection_confidence"],
                "min_tracking_confidence": self._opts["min_tracking_confidence"]}


class TasksLandmarkerTracker(Tracker):
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
    """None or 'mesh' -> MediaPipeMeshTracker; a path to a `.task` file -> TasksLandmarkerTracker."""
    if spec in (None, "mesh", "mediapipe"):
        return MediaPipeMeshTracker(max_faces)
    if str(spec).endswith(".task"):
        return TasksLandmarkerTracker(spec, max_faces)
    raise TrackerError(f"unknown tracker {spec!r}; valid: 'mesh' or a path to a FaceLandmarker .task file")
