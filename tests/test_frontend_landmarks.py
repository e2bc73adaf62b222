"""Mesh -> iBUG mapping against hand-read positions, and which face the tracker follows.

Both face-mesh trackers are checked: 'mesh' (the landmark model run directly, the default) and
'mesh-graph' (the legacy tracking graph).
"""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from mespot.stream.landmarks import MESH_OF_IBUG, ROI_IBUG, mesh_indices
from mespot.stream.tracker import FaceSelector, MediaPipeMeshTracker, face_box, make_tracker

TRACKERS = ("mesh", "mesh-graph")

# Pixel boxes (x0, x1, y0, y1) read by hand from a 4-8x zoom of shared/media/single_face.jpg
# (572x562): where each anatomical point is on that face, independent of any landmark model.
HAND_BOXES = {
    18: (202, 216, 212, 229),   # image-left brow, 2nd from outer end
    19: (213, 227, 211, 228),   # image-left brow, middle
    20: (225, 239, 211, 228),   # image-left brow, 2nd from inner end
    23: (297, 311, 208, 226),   # image-right brow, 2nd from inner end
    24: (312, 327, 207, 225),   # image-right brow, middle
    25: (327, 343, 209, 227),   # image-right brow, 2nd from outer end
    28: (259, 275, 252, 270),   # upper nose bridge
    29: (257, 276, 270, 290),   # lower nose bridge
    30: (257, 278, 282, 300),   # nose tip
    39: (243, 254, 243, 255),   # image-left eye, inner corner
    42: (288, 299, 242, 254),   # image-right eye, inner corner
    48: (229, 244, 321, 335),   # mouth corner, image-left
    51: (261, 281, 313, 327),   # top of the upper lip, centre
    54: (305, 323, 318, 334),   # mouth corner, image-right
    57: (263, 285, 345, 359),   # bottom of the lower lip, centre
}


@pytest.fixture(scope="module", params=TRACKERS)
def single_face_mesh(request):
    """The mesh on single_face.jpg after three frames: acquisition, then two tracked frames."""
    from mespot.paths import shared_file

    path = shared_file("media", "single_face.jpg")
    if path is None:
        pytest.skip("reference file shared/media/single_face.jpg not present (set MESPOT_SHARED)")
    image = cv2.imread(str(path))
    tracker = make_tracker(request.param)
    for _ in range(3):
        mesh = tracker.track(image)
        assert mesh is not None, f"{request.param}: no face found in single_face.jpg"
    tracker.close()
    return mesh


@pytest.mark.parametrize("ibug", sorted(HAND_BOXES))
def test_mapped_point_lies_in_hand_checked_box(single_face_mesh, ibug):
    x, y = single_face_mesh[MESH_OF_IBUG[ibug]]
    x0, x1, y0, y1 = HAND_BOXES[ibug]
    assert x0 <= x <= x1 and y0 <= y <= y1, f"iBUG {ibug} at ({x:.1f}, {y:.1f}), expected in {HAND_BOXES[ibug]}"


def test_every_roi_and_spec_point_is_mapped_and_checked():
    needed = set(ROI_IBUG) | {29, 30, 39, 42}
    assert needed <= set(HAND_BOXES) and needed <= set(MESH_OF_IBUG)
    assert len(mesh_indices(ROI_IBUG)) == 12
    with pytest.raises(KeyError):
        mesh_indices((0,))       # jaw: deliberately unmapped


def _square(cx: float, cy: float, half: float) -> np.ndarray:
    return np.array([[cx - half, cy - half], [cx + half, cy + half], [cx, cy]], dtype=np.float32)


def test_selector_takes_largest_then_follows_the_track():
    sel = FaceSelector(max_shift=0.5)
    small, big = _square(100, 100, 20), _square(300, 100, 40)
    assert sel.choose([small, big]) is big
    # A bigger face appears elsewhere: the followed one (moved a little) is kept.
    bigger = _square(500, 300, 80)
    moved = _square(305, 102, 40)
    assert sel.choose([bigger, moved, small]) is moved
    # The followed face is gone: lost (None), then the next frame acquires the largest again.
    assert sel.choose([bigger, small]) is None
    assert sel.choose([small, bigger]) is bigger
    assert sel.choose([]) is None


@pytest.mark.parametrize("spec", TRACKERS)
def test_tracker_follows_the_largest_face_of_a_group(shared_path, spec):
    image = cv2.imread(str(shared_path("media", "multi_face.jpg")))
    tracker = make_tracker(spec, max_faces=4)
    faces = tracker._faces(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
    assert len(faces) >= 2, "multi_face.jpg should show several faces"
    size = np.array([image.shape[1], image.shape[0]])
    boxes = [face_box(f * size) for f in faces]
    largest = max(boxes, key=lambda b: (b[2] - b[0]) * (b[3] - b[1]))
    centre = np.array([(largest[0] + largest[2]) / 2, (largest[1] + largest[3]) / 2])
    width = largest[2] - largest[0]
    for _ in range(5):                          # acquisition, then tracking frames
        mesh = tracker.track(image)
        assert mesh is not None
        b = face_box(mesh)
        assert np.linalg.norm(np.array([(b[0] + b[2]) / 2, (b[1] + b[3]) / 2]) - centre) < 0.5 * width
    tracker.close()


def test_tracker_choice_errors_are_clear(tmp_path):
    from mespot.stream.tracker import TrackerError, make_tracker

    with pytest.raises(TrackerError, match="not found"):
        make_tracker(str(tmp_path / "face_landmarker.task"))
    bogus = tmp_path / "bogus.task"
    bogus.write_bytes(b"not a model bundle")
    with pytest.raises(TrackerError, match="cannot load FaceLandmarker"):
        make_tracker(str(bogus))
    with pytest.raises(TrackerError, match="valid: 'mesh', 'mesh-graph'"):
        make_tracker("dlib")


def test_follow_window_contains_the_face_stays_in_the_image_and_recentres():
    tracker = MediaPipeMeshTracker()
    face = _square(600, 100, 40)                     # near the right edge of a 640x480 image
    tracker._window = window = tracker._window_for(face, 640, 480)
    x0, y0, x1, y1 = window
    assert 0 <= x0 and 0 <= y0 and x1 <= 640 and y1 <= 480
    assert x1 - x0 == y1 - y0 == int(2.2 * 80)
    assert x0 <= 560 and 640 <= x1                   # the face box is inside
    assert not tracker._drifted(_square(598, 101, 40), 640, 480)      # small motion: window stays
    assert tracker._drifted(_square(530, 100, 40), 640, 480)          # drifted: re-centre
    assert tracker._drifted(_square(600, 100, 70), 640, 480)          # grew: re-size
    tracker.close()
