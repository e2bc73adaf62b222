"""Smooth image warps that move an identity's face-mesh points (expressions, blinks, talking).

Each motion is a dense displacement field over a box around the face, built once per identity from
control points: point k moves by V_k and pulls its neighbourhood with a Gaussian of width sigma_k,
  F(x) = sum_k g_k(x) V_k / max(1, sum_k g_k(x)),
so a group of points moving together moves as one, and the motion fades to zero away from them.
Fields are linear in intensity, so a frame's displacement is a weighted sum of precomputed fields
and one cv2.remap (backward map x -> x - D(x), so content moves by about +D).
Fields are (2, h, w) float32 in image pixels over `FaceWarper.box`.
"""
from __future__ import annotations

import cv2
import numpy as np

from mespot.synth.aus import AU_MOVES, LID_PAIRS, REACH
from mespot.synth.identities import Identity

BOX_MARGIN = 0.3          # face-box margin, fraction of the face width
REFERENCE_FACE_PX = 224   # amplitudes in timelines are pixels on a face this wide


class FaceBox:
    """An identity's face box and its pixel grid, where a renderer's warper moves the image."""

    def __init__(self, identity: Identity) -> None:
        self.identity = identity
        self.face_width = identity.face_width
        self.px_scale = self.face_width / REFERENCE_FACE_PX
        self.box = face_box(identity.mesh.astype(np.float64), self.face_width, identity.size)
        x0, y0, x1, y1 = self.box
        gx, gy = np.meshgrid(np.arange(x0, x1, dtype=np.float32), np.arange(y0, y1, dtype=np.float32))
        self.grid_x, self.grid_y = gx, gy

    def apply(self, base: np.ndarray, displacement: np.ndarray, out: np.ndarray) -> None:
        """Write `base` warped by `displacement` (2, h, w) over the face box into `out` (same size as base;
        `out` must already hold `base` outside the box)."""
        remap_box(base, self.box, self.grid_x, self.grid_y, displacement, out)


class FaceWarper(FaceBox):
    """Per-identity precomputation of the Gaussian renderer: face frame and motion fields."""

    def __init__(self, identity: Identity) -> None:
        super().__init__(identity)
        mesh = identity.mesh.astype(np.float64)
        # Face frame: +x from the subject's right eye to the left eye, +y towards the chin.
        right_eye = mesh[[33, 133]].mean(axis=0)
        left_eye = mesh[[263, 362]].mean(axis=0)
        ex = (left_eye - right_eye) / np.linalg.norm(left_eye - right_eye)
        self.ex = ex
        self.ey = np.array([-ex[1], ex[0]])
        self.centre = mesh.mean(axis=0)
        self._au_cache: dict[int, np.ndarray] = {}
        self.blink_field = self._blink_field()
        self.talk_field = self.expression_field((25, 26))

    def _field(self, points: np.ndarray, vectors: np.ndarray, sigmas: np.ndarray) -> np.ndarray:
        num = np.zeros((2,) + self.grid_x.shape, np.float64)
        den = np.zeros(self.grid_x.shape, np.float64)
        for (px, py), (vx, vy), s in zip(points, vectors, sigmas):
            g = np.exp(-((self.grid_x - px) ** 2 + (self.grid_y - py) ** 2) / (2 * s * s))
            num[0] += g * vx
            num[1] += g * vy
            den += g
        return (num / np.maximum(den, 1.0)).astype(np.float32)

    def _au_field(self, au: int) -> np.ndarray:
        """Unit field of one AU: its largest displacement is 1 px."""
        if au not in self._au_cache:
            points, vectors, sigmas = [], [], []
            for move in AU_MOVES[au]:
                for idx in move.points:
                    p = self.identity.mesh[idx].astype(np.float64)
                    if move.mirrored:
                        side = 1.0 if float(np.dot(p - self.centre, self.ex)) >= 0 else -1.0
                        dx = move.dx * side
                    else:
                        dx = move.dx
                    points.append(p)
                    vectors.append(dx * self.ex + move.dy * self.ey)
                    sigmas.append(REACH[move.reach] * self.face_width)
            field = self._field(np.array(points), np.array(vectors), np.array(sigmas))
            self._au_cache[au] = field / np.sqrt((field ** 2).sum(axis=0)).max()
        return self._au_cache[au]

    def expression_field(self, aus: tuple[int, ...]) -> np.ndarray:
        """Unit field of an AU combination (each AU at full intensity, the whole peak scaled to 1 px)."""
        field = sum(self._au_field(a) for a in aus)
        return (field / np.sqrt((field ** 2).sum(axis=0)).max()).astype(np.float32)

    def _blink_field(self) -> np.ndarray:
        """Full eye closure in pixels: the upper lids travel down to the lower lids."""
        mesh = self.identity.mesh.astype(np.float64)
        points = np.array([mesh[u] for u, _ in LID_PAIRS])
        vectors = np.array([mesh[lo] - mesh[u] for u, lo in LID_PAIRS])
        sigmas = np.full(len(points), REACH["lid"] * self.face_width)
        return self._field(points, vectors, sigmas)


def face_box(mesh: np.ndarray, face_width: float, size: tuple[int, int]) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1): the mesh's bounding box grown by BOX_MARGIN face widths, inside the image."""
    margin = BOX_MARGIN * face_width
    x0, y0 = np.floor(mesh.min(axis=0) - margin).astype(int)
    x1, y1 = np.ceil(mesh.max(axis=0) + margin).astype(int)
    return int(max(x0, 0)), int(max(y0, 0)), int(min(x1, size[0])), int(min(y1, size[1]))


def remap_box(base: np.ndarray, box: tuple[int, int, int, int], grid_x: np.ndarray, grid_y: np.ndarray,
              displacement: np.ndarray, out: np.ndarray) -> None:
    """One backward remap of the face box: content moves by about +displacement (2, h, w)."""
    x0, y0, x1, y1 = box
    out[y0:y1, x0:x1] = cv2.remap(base, grid_x - displacement[0], grid_y - displacement[1],
                                  cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101)
