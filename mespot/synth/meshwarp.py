"""The piecewise renderer: a face moved piecewise-affinely over its face-mesh triangulation.

A second, independently designed way of moving a face (the first is mespot.synth.warp), so that a
model trained on one renderer's faces can be tested on the other's. Here the motion is defined only
at the 468 mesh points (mespot.synth.facs: pulls on regions, compact falloff) and spread over the
image by piecewise-affine interpolation over a Delaunay triangulation of the mesh plus a ring of
fixed points on the face box's border: inside each triangle the displacement is the barycentric
blend of its corners' moves, so skin moves with its mesh triangle (creases at triangle edges, no
Gaussian tails), and the face box border stays still.

Interface as mespot.synth.warp.FaceWarper (a FaceBox with unit fields (2, h, w) whose largest
displacement is 1 px, blink and talk fields in pixels), so mespot.synth.render draws with either.
"""
from __future__ import annotations

import numpy as np
from scipy import sparse
from scipy.spatial import Delaunay

from mespot.stream.landmarks import MESH_OF_IBUG
from mespot.synth.facs import FaceFrame, vertex_displacements
from mespot.synth.identities import Identity
from mespot.synth.warp import FaceBox

BORDER_POINTS_PER_SIDE = 8
BLINK_OVERSHOOT = 0.85    # a closing upper lid travels this far past the eye-corner line (in its height)


class MeshWarper(FaceBox):
    """Per-identity precomputation: triangulation, the sparse pixel-from-vertex interpolation and
    the motion fields."""

    def __init__(self, identity: Identity) -> None:
        super().__init__(identity)
        mesh = identity.mesh.astype(np.float64)
        self.frame = FaceFrame.of(mesh)
        self._interp = _interpolation_matrix(mesh, self.box, self.grid_x, self.grid_y)
        self._au_cache: dict[tuple[int, ...], np.ndarray] = {}
        self.blink_field = self._field(self._blink_moves(mesh))
        self.talk_field = self.expression_field((25, 26))

    def _field(self, moves: np.ndarray) -> np.ndarray:
        """(468, 2) vertex moves in pixels -> (2, h, w) float32 field over the box."""
        dense = self._interp @ moves            # border points are fixed: their rows of moves are 0
        return dense.T.reshape((2,) + self.grid_x.shape).astype(np.float32)

    def expression_field(self, aus: tuple[int, ...]) -> np.ndarray:
        """Unit field of an AU combination: its largest displacement is 1 px."""
        key = tuple(sorted(aus))
        if key not in self._au_cache:
            field = self._field(vertex_displacements(self.identity.mesh, key, self.frame))
            self._au_cache[key] = field / np.sqrt((field ** 2).sum(axis=0)).max()
        return self._au_cache[key]

    def _blink_moves(self, mesh: np.ndarray) -> np.ndarray:
        """Full eye closure: points above each eye-corner line inside the eye move down past it."""
        uv = self.frame.to_face(mesh)
        moves = np.zeros_like(uv)
        for outer, inner in ((36, 39), (45, 42)):
            a, b = uv[MESH_OF_IBUG[outer]], uv[MESH_OF_IBUG[inner]]
            half = np.linalg.norm(b - a) / 2
            rel = uv - (a + b) / 2
            along = rel @ ((b - a) / (2 * half))
            height = -(rel[:, 1])                     # > 0 above the corner line
            r = np.hypot(along / (1.15 * half), height / (0.75 * half))
            inside = np.clip(1.0 - r * r, 0.0, 1.0) ** 2
            upper = height > 0
            moves[upper, 1] += inside[upper] * height[upper] * (1 + BLINK_OVERSHOOT)
            moves[~upper, 1] -= inside[~upper] * (-height[~upper]) * 0.25
        return self.frame.to_image_vectors(moves)


def _interpolation_matrix(mesh: np.ndarray, box: tuple[int, int, int, int], gx: np.ndarray,
                          gy: np.ndarray) -> sparse.csr_matrix:
    """Sparse (pixels, 468) matrix: row p holds pixel p's barycentric weights on the mesh corners of
    its triangle (weights on the fixed border points are dropped: those never move)."""
    x0, y0, x1, y1 = box
    n_side = BORDER_POINTS_PER_SIDE
    t = np.linspace(0.0, 1.0, n_side, endpoint=False)
    xa, xb, ya, yb = float(x0), float(x1 - 1), float(y0), float(y1 - 1)   # the outermost pixels
    border = np.concatenate([
        np.c_[xa + t * (xb - xa), np.full(n_side, ya)], np.c_[np.full(n_side, xb), ya + t * (yb - ya)],
        np.c_[xb - t * (xb - xa), np.full(n_side, yb)], np.c_[np.full(n_side, xa), yb - t * (yb - ya)]])
    inside = (mesh[:, 0] > xa) & (mesh[:, 0] < xb) & (mesh[:, 1] > ya) & (mesh[:, 1] < yb)   # strictly
    if not inside.all():
        raise ValueError("face mesh reaches outside its face box")
    points = np.vstack([mesh, border])
    tri = Delaunay(points)
    pixels = np.c_[gx.ravel(), gy.ravel()].astype(np.float64)
    simplex = tri.find_simplex(pixels)
    if (simplex < 0).any():
        raise ValueError("face box pixels outside the triangulation")
    transform = tri.transform[simplex]                  # (P, 3, 2): inverse affine + offset
    bary2 = np.einsum("pij,pj->pi", transform[:, :2], pixels - transform[:, 2])
    weights = np.c_[bary2, 1.0 - bary2.sum(axis=1)]
    corners = tri.simplices[simplex]                    # (P, 3) point indices
    rows = np.repeat(np.arange(len(pixels)), 3)
    cols, vals = corners.ravel(), weights.ravel()
    keep = cols < len(mesh)
    return sparse.csr_matrix((vals[keep], (rows[keep], cols[keep])), shape=(len(pixels), len(mesh)))
