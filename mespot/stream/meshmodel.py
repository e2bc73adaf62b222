"""MediaPipe's face-mesh landmark model run directly through a TFLite interpreter.

Why: the legacy face-mesh graph in tracking mode spends most of its time per frame outside the
model (graph scheduling, packet copies; docs/benchmarks.md). This module does the one thing that graph does per tracked
frame, the same way, and nothing else:

1. region of interest from the previous frame's landmarks (`roi_from_landmarks`), as MediaPipe's
   `face_landmark_landmarks_to_roi.pbtxt` derives it (mediapipe 0.10.x):
   - LandmarksToDetectionCalculator: the axis-aligned box of all landmarks;
   - DetectionsToRectsCalculator with rotation_vector_start_keypoint_index 33,
     rotation_vector_end_keypoint_index 263, rotation_vector_target_angle_degrees 0: the box
     centre, rotated by the angle (image pixels, y down) of the line mesh 33 -> 263;
   - RectTransformationCalculator scale_x 1.5, scale_y 1.5, square_long true: each side x1.5,
     then both set to the longer one (in pixels), no shift.
2. `face_landmark_cpu.pbtxt` ImageToTensorCalculator: output_tensor_width/height 192,
   output_tensor_float_range [0, 1], keep_aspect_ratio false, border_mode left unspecified, which
   its OpenCV converter treats as replicate; bilinear. The rotated square's corners map onto the
   tensor's corners (no half-pixel shift), which is one affine warp.
3. The model (`mediapipe/modules/face_landmark/face_landmark.tflite` from the mediapipe wheel):
   input 1x192x192x3 RGB float32; output 'conv2d_21' 1x1x1x1404 = 468 x (x, y, z) in tensor pixels,
   'conv2d_31' the face-presence logit. TensorsToFloatsCalculator applies a sigmoid and
   ThresholdingCalculator keeps the landmarks when the score is >= min_tracking_confidence (0.5).
4. LandmarkProjectionCalculator: the (x, y) back through the same rotation, scale and centre,
   i.e. the inverse of the warp.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from mespot.stream.landmarks import MESH_SIZE

INPUT_SIZE = 192                 # model input side, pixels
ROI_SCALE = 1.5                  # RectTransformationCalculator scale_x = scale_y
ROTATION_POINTS = (33, 263)      # DetectionsToRectsCalculator rotation vector start -> end (mesh ids)


class MeshModelError(RuntimeError):
    """The landmark model or its interpreter cannot be loaded."""


@dataclass(frozen=True)
class Roi:
    """A rotated square in image pixels: centre (cx, cy), side, rotation in radians (y down)."""

    cx: float
    cy: float
    side: float
    angle: float


def roi_from_landmarks(points: np.ndarray) -> Roi:
    """The next frame's region of interest from this frame's (468, 2) landmarks in pixels."""
    x0, y0 = points.min(axis=0)
    x1, y1 = points.max(axis=0)
    (sx, sy), (ex, ey) = points[ROTATION_POINTS[0]], points[ROTATION_POINTS[1]]
    angle = math.atan2(float(ey - sy), float(ex - sx))
    side = ROI_SCALE * max(float(x1 - x0), float(y1 - y0))
    return Roi(float(x0 + x1) / 2, float(y0 + y1) / 2, side, angle)


def roi_to_input_matrix(roi: Roi) -> np.ndarray:
    """2x3 affine from image pixels to model-input pixels: the rotated square onto [0, 192]^2."""
    k = INPUT_SIZE / roi.side
    c, s = math.cos(roi.angle), math.sin(roi.angle)
    # input = k * R(-angle) (p - centre) + 96
    return np.array([[k * c, k * s, INPUT_SIZE / 2 - k * (c * roi.cx + s * roi.cy)],
                     [-k * s, k * c, INPUT_SIZE / 2 - k * (-s * roi.cx + c * roi.cy)]], dtype=np.float64)


def bundled_model_path() -> Path:
    """face_landmark.tflite inside the installed mediapipe wheel (0.10.21 ships it)."""
    try:
        import mediapipe
    except ImportError as exc:
        raise MeshModelError("the face-mesh model comes with mediapipe==0.10.21 (pip install mediapipe==0.10.21)") from exc
    path = Path(mediapipe.__file__).parent / "modules" / "face_landmark" / "face_landmark.tflite"
    if not path.is_file():
        raise MeshModelError(f"face_landmark.tflite not found in the mediapipe package ({path})")
    return path


def _sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


class FaceMeshModel:
    """The landmark model with its input buffer: `run(bgr, roi) -> ((468, 2) float32 px, presence)`.

    `num_threads`: interpreter threads (see docs/frontend.md for why 1 is the default).
    """

    def __init__(self, model_path: str | Path | None = None, *, num_threads: int = 1) -> None:
        if num_threads < 1:
            raise ValueError(f"num_threads must be >= 1, got {num_threads}")
        try:
            from tflite_runtime.interpreter import Interpreter
        except ImportError as exc:
            raise MeshModelError("the face-mesh model needs tflite-runtime (pip install tflite-runtime==2.14.0)") from exc
        self.model_path = Path(model_path) if model_path else bundled_model_path()
        self.num_threads = num_threads
        try:
            self._interp = Interpreter(model_path=str(self.model_path), num_threads=num_threads)
            self._interp.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise MeshModelError(f"cannot load the face-mesh model {str(self.model_path)!r}: {exc}") from exc
        (inp,) = self._interp.get_input_details()
        if tuple(inp["shape"]) != (1, INPUT_SIZE, INPUT_SIZE, 3) or inp["dtype"] != np.float32:
            raise MeshModelError(f"{self.model_path.name}: input {inp['shape']} {inp['dtype']}, "
                                 f"expected 1x{INPUT_SIZE}x{INPUT_SIZE}x3 float32")
        outputs = {int(np.prod(d["shape"])): d["index"] for d in self._interp.get_output_details()}
        if MESH_SIZE * 3 not in outputs or 1 not in outputs:
            raise MeshModelError(f"{self.model_path.name}: outputs {sorted(outputs)} lack 1404 landmarks / 1 flag")
        self._input = self._interp.tensor(inp["index"])       # a view getter: no copy of the buffer
        self._landmarks_index = outputs[MESH_SIZE * 3]
        self._flag_index = outputs[1]
        self._crop = np.empty((INPUT_SIZE, INPUT_SIZE, 3), np.uint8)       # BGR, then RGB
        self._crop_rgb = np.empty_like(self._crop)

    def run(self, image_bgr: np.ndarray, roi: Roi) -> tuple[np.ndarray, float]:
        """Landmarks (468, 2) float32 in image pixels and the face-presence score in [0, 1]."""
        m = roi_to_input_matrix(roi)
        cv2.warpAffine(image_bgr, m, (INPUT_SIZE, INPUT_SIZE), dst=self._crop, flags=cv2.INTER_LINEAR,
                       borderMode=cv2.BORDER_REPLICATE)
        cv2.cvtColor(self._crop, cv2.COLOR_BGR2RGB, dst=self._crop_rgb)
        tensor = self._input()[0]
        # RGB uint8 -> float [0, 1], written straight into the interpreter's input buffer (a
        # contiguous source: numpy's strided channel reversal costs 10x more than cvtColor).
        np.multiply(self._crop_rgb, np.float32(1 / 255), out=tensor, casting="unsafe")
        del tensor                  # the interpreter refuses to run while a view of its buffer lives
        self._interp.invoke()
        xyz = self._interp.get_tensor(self._landmarks_index).reshape(MESH_SIZE, 3)
        logit = float(self._interp.get_tensor(self._flag_index).reshape(()))
        inv = cv2.invertAffineTransform(m)
        points = xyz[:, :2] @ inv[:, :2].T.astype(np.float32) + inv[:, 2].astype(np.float32)
        return points.astype(np.float32, copy=False), _sigmoid(logit)

    def close(self) -> None:
        """Drop the interpreter (idempotent)."""
        self._interp = None
        self._input = None
