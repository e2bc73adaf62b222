"""The piecewise renderer's action units: FACS appearance changes as pulls on regions of the face.

Written independently of mespot.synth.aus (the Gaussian renderer's definitions), from the FACS
appearance descriptions, and defined in another way: a region is not a list of mesh points but a
place on the face, given by a few named landmarks (iBUG-68 meaning, mapped to the mesh by
mespot.stream.landmarks.MESH_OF_IBUG) and an offset in face units, and a pull moves every mesh
point near that place with a compact biweight falloff, optionally only on one side of the mouth or
eye line. The face frame: origin midway between the eye centres, u from the subject's right eye to
the left one, v towards the chin, unit = the distance between the eye centres (D). `lateral` pulls
point outward on each side of the midline (u < 0 for the subject's right side).

What each AU does (FACS appearance changes, paraphrased):
  1  inner brow raiser: the inner ends of the brows and the central forehead skin go up
  2  outer brow raiser: the outer ends of the brows go up, the lateral forehead with them
  4  brow lowerer: brows pulled down and towards each other, skin between them bunches
  5  upper lid raiser: the upper lid goes up, more of the eye shows
  6  cheek raiser: the cheeks and the skin below the eyes go up, the lower lids bulge up
  7  lid tightener: the lower lids go up and straighten, the eye opening narrows
  43 eyes closed: the upper lids come down over the eyes
  9  nose wrinkler: skin along the nose and the nostril wings pulled up, inner brows pulled down,
     upper lip raised a little
  10 upper lip raiser: centre of the upper lip up, nostril wings up and wider
  12 lip corner puller: corners up and out along the cheekbone, cheeks raised
  14 dimpler: corners tightened and drawn back into the cheek (a small outward, upward move)
  15 lip corner depressor: corners pulled down, lower lip stretched down at the sides
  17 chin raiser: chin boss and lower lip pushed up, the mouth takes an inverted-U shape
  20 lip stretcher: corners pulled sideways, lips flattened
  23 lip tightener: lips narrowed and drawn in, corners slightly inward
  24 lip pressor: lips pressed together, the upper down and the lower up
  25 lips part: lower lip drops away from the upper
  26 jaw drop: the jaw, chin and lower lip go down
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mespot.stream.landmarks import MESH_OF_IBUG


@dataclass(frozen=True)
class Pull:
    """Move the mesh near `at` (iBUG ids averaged, plus `offset` (du, dv) in D) by (du, dv) * weight.

    radius: reach in D (biweight falloff, zero beyond); side: "above"/"below" keeps only points on
    that side of the mouth line ("mouth") or of the eye line ("eyes"), softly over 0.08 D.
    """

    at: tuple[int, ...]
    du: float
    dv: float
    radius: float
    offset: tuple[float, float] = (0.0, 0.0)
    lateral: bool = False      # True: one pull per side, du outward, `at`/`offset` given for the right side
    side: str | None = None    # None, "above" or "below"
    line: str = "mouth"        # the line `side` refers to


# Mirror of each right-side iBUG id (the brows 17-21 <-> 26-22, eyes, mouth corners).
_MIRROR = {18: 25, 19: 24, 20: 23, 36: 45, 39: 42, 48: 54}

AU_PULLS: dict[int, tuple[Pull, ...]] = {
    1: (Pull((20,), 0.1, -1.0, 0.45, lateral=True, side="above", line="eyes"),
        Pull((19,), 0.0, -0.45, 0.4, lateral=True, side="above", line="eyes"),
        Pull((20, 23), 0.0, -0.7, 0.55, offset=(0.0, -0.35), side="above", line="eyes")),
    2: (Pull((18,), 0.15, -1.0, 0.45, offset=(-0.1, 0.0), lateral=True, side="above", line="eyes"),
        Pull((19,), 0.0, -0.5, 0.4, lateral=True, side="above", line="eyes"),
        Pull((18,), 0.0, -0.5, 0.5, offset=(0.0, -0.35), lateral=True, side="above", line="eyes")),
    4: (Pull((20,), -0.65, 0.8, 0.45, lateral=True),
        Pull((19,), -0.3, 0.55, 0.4, lateral=True),
        Pull((20, 23), 0.0, 0.35, 0.3, offset=(0.0, -0.1))),
    5: (Pull((36, 39), 0.0, -0.6, 0.3, offset=(0.0, -0.08), lateral=True, side="above", line="eyes"),),
    6: (Pull((36,), 0.1, -1.0, 0.5, offset=(0.05, 0.55), lateral=True, side="below", line="eyes"),
        Pull((36, 39), 0.0, -0.35, 0.3, offset=(0.0, 0.12), lateral=True, side="below", line="eyes")),
    7: (Pull((36, 39), 0.0, -0.7, 0.3, offset=(0.0, 0.1), lateral=True, side="below", line="eyes"),
        Pull((36, 39), 0.0, 0.15, 0.25, offset=(0.0, -0.1), lateral=True, side="above", line="eyes")),
    43: (Pull((36, 39), 0.0, 1.0, 0.3, offset=(0.0, -0.1), lateral=True, side="above", line="eyes"),),
    9: (Pull((28, 29), 0.0, -0.7, 0.35),
        Pull((30,), -0.15, -1.0, 0.3, offset=(-0.3, -0.05), lateral=True),
        Pull((30,), 0.0, -0.45, 0.3),
        Pull((39,), 0.0, -0.5, 0.35, offset=(0.0, 0.45), lateral=True),
        Pull((51,), 0.0, -0.4, 0.3, side="above"),
        Pull((20,), -0.15, 0.4, 0.35, lateral=True)),
    10: (Pull((51,), 0.0, -1.0, 0.4, side="above"),
         Pull((30,), 0.25, -0.45, 0.3, offset=(-0.3, 0.0), lateral=True),
         Pull((48,), 0.1, -0.4, 0.35, offset=(0.1, -0.3), lateral=True)),
    12: (Pull((48,), 0.75, -0.65, 0.4, lateral=True),
         Pull((48,), 0.3, -0.55, 0.5, offset=(-0.2, -0.45), lateral=True),
         Pull((36,), 0.0, -0.15, 0.3, offset=(0.1, 0.15), lateral=True)),
    14: (Pull((48,), 0.6, -0.15, 0.3, lateral=True),
         Pull((48,), 0.2, 0.0, 0.4, offset=(-0.15, 0.0), lateral=True)),
    15: (Pull((48,), 0.2, 1.0, 0.4, lateral=True),
         Pull((57,), 0.1, 0.4, 0.35, offset=(-0.25, 0.0), lateral=True, side="below"),
         Pull((48,), 0.15, 0.5, 0.45, offset=(0.0, 0.4), lateral=True, side="below")),
    17: (Pull((57,), 0.0, -1.0, 0.6, offset=(0.0, 0.55), side="below"),
         Pull((57,), 0.0, -0.6, 0.35, side="below"),
         Pull((48,), 0.0, 0.25, 0.25, lateral=True)),
    20: (Pull((48,), 1.0, 0.15, 0.35, lateral=True),
         Pull((57,), 0.35, 0.1, 0.3, offset=(-0.25, 0.0), lateral=True, side="below")),
    23: (Pull((48,), -0.55, 0.0, 0.3, lateral=True),
         Pull((51,), 0.0, 0.3, 0.3, side="above"),
         Pull((57,), 0.0, -0.3, 0.3, side="below")),
    24: (Pull((51,), 0.0, 0.55, 0.35, side="above"),
         Pull((57,), 0.0, -0.7, 0.35, side="below"),
         Pull((48,), -0.15, 0.0, 0.25, lateral=True),
         Pull((57,), 0.0, -0.2, 0.5, offset=(0.0, 0.5), side="below")),
    25: (Pull((57,), 0.0, 1.0, 0.45, side="below"),
         Pull((51,), 0.0, -0.2, 0.35, side="above")),
    26: (Pull((57,), 0.0, 1.0, 1.0, offset=(0.0, 0.4), side="below"),
         Pull((57,), 0.0, 0.8, 0.45, side="below")),
}
SUPPORTED_AUS = tuple(sorted(AU_PULLS))


@dataclass(frozen=True)
class FaceFrame:
    """A face's frame from its mesh: origin, unit axes (image pixels) and the unit D in pixels."""

    origin: np.ndarray
    u: np.ndarray
    v: np.ndarray
    unit_px: float

    @classmethod
    def of(cls, mesh: np.ndarray) -> "FaceFrame":
        m = mesh.astype(np.float64)
        right = m[[MESH_OF_IBUG[36], MESH_OF_IBUG[39]]].mean(axis=0)
        left = m[[MESH_OF_IBUG[42], MESH_OF_IBUG[45]]].mean(axis=0)
        d = float(np.linalg.norm(left - right))
        u = (left - right) / d
        return cls((left + right) / 2, u, np.array([-u[1], u[0]]), d)

    def to_face(self, points: np.ndarray) -> np.ndarray:
        rel = points.astype(np.float64) - self.origin
        return np.stack([rel @ self.u, rel @ self.v], axis=-1) / self.unit_px

    def to_image_vectors(self, vectors: np.ndarray) -> np.ndarray:
        """Face-unit displacement vectors (N, 2) -> image pixels."""
        return (vectors[:, :1] * self.u + vectors[:, 1:] * self.v) * self.unit_px


def _biweight(d: np.ndarray, radius: float) -> np.ndarray:
    x = np.clip(d / radius, 0.0, 1.0)
    return (1.0 - x * x) ** 2


def _line_side(points_uv: np.ndarray, a: np.ndarray, b: np.ndarray, side: str) -> np.ndarray:
    """Soft 0..1 gate: 1 on `side` ("above" = towards the brows) of the line through a and b."""
    t = b - a
    normal = np.array([-t[1], t[0]]) / (np.linalg.norm(t) + 1e-12)
    if normal[1] < 0:
        normal = -normal            # normal points towards the chin
    signed = (points_uv - a) @ normal
    s = signed if side == "below" else -signed
    return np.clip(0.5 + s / 0.16, 0.0, 1.0)


def vertex_displacements(mesh: np.ndarray, aus: tuple[int, ...], frame: FaceFrame | None = None
                         ) -> np.ndarray:
    """(468, 2) image-pixel displacement of every mesh point for the AUs at full intensity; its
    largest point move is 1 (the caller scales it to the expression's peak)."""
    frame = frame or FaceFrame.of(mesh)
    uv = frame.to_face(mesh)
    ibug = {k: uv[v] for k, v in MESH_OF_IBUG.items()}
    lines = {"mouth": (ibug[48], ibug[54]), "eyes": (ibug[36], ibug[45])}
    move = np.zeros_like(uv)
    for au in aus:
        for pull in AU_PULLS[au]:
            sides = (("r", 1.0), ("l", -1.0)) if pull.lateral else (("c", 1.0),)
            for name, sign in sides:
                ids = pull.at if name != "l" else tuple(_MIRROR.get(i, i) for i in pull.at)
                centre = np.mean([ibug[i] for i in ids], axis=0)
                # offsets and du are written for the right side (u < 0): mirrored on the left
                off = np.array([pull.offset[0] * (sign if pull.lateral else 1.0), pull.offset[1]])
                du = -pull.du * sign if pull.lateral else pull.du
                w = _biweight(np.linalg.norm(uv - (centre + off), axis=1), pull.radius)
                if pull.side is not None:
                    w = w * _line_side(uv, *lines[pull.line], pull.side)
                move += w[:, None] * np.array([du, pull.dv])
    pixels = frame.to_image_vectors(move)
    peak = float(np.sqrt((pixels ** 2).sum(axis=1)).max())
    if peak <= 0:
        raise ValueError(f"AUs {aus} move no mesh point")
    return pixels / peak
