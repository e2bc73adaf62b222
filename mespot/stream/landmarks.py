"""MediaPipe face mesh (468 points) to the iBUG 68-point indices the reference uses.

The reference (reference-model.md §2.1, 2.2) places its ROIs and its head-motion box on 68-point iBUG landmarks
(0-based). MediaPipe's mesh has no such points, so each iBUG point we need is mapped to the mesh
vertex at the same anatomical place. Only the points this project uses are mapped:

| iBUG (0-based) | where                                    | mesh vertex |
|---|---|---|
| 18, 19, 20     | image-left brow: 2nd from outer, middle, 2nd from inner (upper contour) | 63, 105, 66 |
| 23, 24, 25     | image-right brow: 2nd from inner, middle, 2nd from outer               | 296, 334, 293 |
| 27, 28         | nose bridge: between the eyes, upper bridge                            | 168, 197 |
| 29, 30         | lower nose bridge, nose tip                                            | 5, 4 |
| 36, 39         | image-left eye: outer corner, inner corner                             | 33, 133 |
| 42, 45         | image-right eye: inner corner, outer corner                            | 362, 263 |
| 48, 54         | mouth corners, image-left and image-right                              | 61, 291 |
| 51, 57         | outer lip contour: top of the upper lip, bottom of the lower lip       | 0, 17 |

"image-left" is the subject's right. Checked by hand against single_face.jpg of the shared reference
media (tests/test_frontend_landmarks.py holds the hand-read pixel boxes).
"""
from __future__ import annotations

import numpy as np

MESH_SIZE = 468

MESH_OF_IBUG: dict[int, int] = {
    18: 63, 19: 105, 20: 66,
    23: 296, 24: 334, 25: 293,
    27: 168, 28: 197, 29: 5, 30: 4,
    36: 33, 39: 133, 42: 362, 45: 263,
    48: 61, 51: 0, 54: 291, 57: 17,
}

# reference-model.md §2.1: the landmark at the centre of each of the 12 ROIs (graph nodes 0..11), iBUG 0-based.
ROI_IBUG: tuple[int, ...] = (18, 19, 20, 23, 24, 25, 28, 30, 48, 51, 54, 57)
# Points that barely move with expressions, used to fit the alignment (eye corners, upper nose).
ALIGN_IBUG: tuple[int, ...] = (36, 39, 42, 45, 27, 28)
# reference-model.md §2.2: inner eye corners set the head-motion box margin; 29 and 30 span the box.
INNER_EYE_IBUG: tuple[int, int] = (39, 42)
NOSE_BOX_IBUG: tuple[int, int] = (29, 30)

def mesh_indices(ibug_ids: tuple[int, ...]) -> np.ndarray:
    """Mesh vertex indices for the given iBUG ids, as an index array for fancy indexing."""
    missing = [i for i in ibug_ids if i not in MESH_OF_IBUG]
    if missing:
        raise KeyError(f"iBUG point(s) {missing} have no mesh mapping; mapped: {sorted(MESH_OF_IBUG)}")
    return np.array([MESH_OF_IBUG[i] for i in ibug_ids], dtype=np.intp)
