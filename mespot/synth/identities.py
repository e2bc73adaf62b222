"""Faces to animate: real photos or video frames, framed alike, with their face-mesh points.

An identity spec is a comma-separated list of
  astronaut      skimage.data.astronaut() (public domain), the default
  IMAGE          any image file; an image with several faces gives one identity per face
  FOLDER         every image (and video) file inside it, in natural sort order
  VIDEO          a video file: the first sampled frame in which a face is found
  ANY~WORD...    pseudo-identities of each face of ANY (mirror, color<k>, light<k>, morph<k>, mix<k>;
                 the last word may be a range such as mix1-4): see mespot/synth/variants.py
Every face is cropped with margin and rescaled so that it is `face_frac` of the output width, then
placed at a fixed spot of an output-sized frame; its 468 MediaPipe mesh points are found in
static-image mode and carried through the same transform, then checked against the face found again
in the framed image (`frame_checked`). Names are stable: the file stem (lower-case), with `_0`, `_1`,
... (left to right) for images that hold several faces.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from mespot.files import IMAGE_SUFFIXES, VIDEO_SUFFIXES, natural_key

MAX_FACES = 8
VIDEO_SCAN_FRAMES = 300     # frames of a video searched for a face
VIDEO_SCAN_STEP = 5
MESH_AGREEMENT = 0.03       # largest mean point distance, in face widths, between a framed face's
                            # mesh and the face found again in the framed image
REFRAME_ROUNDS = 3


class IdentityError(ValueError):
    """An identity spec that cannot be used; the message names the file or token."""


@dataclass(frozen=True)
class Identity:
    """A framed face: `image` is BGR uint8 (H, W, 3); `mesh` is (468, 2) float32 image pixels."""

    name: str
    image: np.ndarray
    mesh: np.ndarray
    source: str

    @property
    def face_width(self) -> float:
        """Pixels between the face-contour points at ear level (mesh 234 and 454)."""
        return float(np.linalg.norm(self.mesh[454] - self.mesh[234]))

    @property
    def size(self) -> tuple[int, int]:
        return self.image.shape[1], self.image.shape[0]


def _clean_name(stem: str) -> str:
    name = re.sub(r"[^0-9a-z]+", "_", stem.lower()).strip("_")
    return name or "face"


class _MeshFinder:
    """MediaPipe face mesh in static-image mode; returns every face's (468, 2) pixel points."""

    def __init__(self) -> None:
        import mediapipe as mp   # imported here: only identity building needs it

        self._mesh = mp.solutions.face_mesh.FaceMesh(
            static_image_mode=True, max_num_faces=MAX_FACES, refine_landmarks=False,
            min_detection_confidence=0.5)

    def faces(self, bgr: np.ndarray) -> list[np.ndarray]:
        h, w = bgr.shape[:2]
        result = self._mesh.process(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
        found = []
        for face in result.multi_face_landmarks or []:
            pts = np.array([[p.x * w, p.y * h] for p in face.landmark[:468]], dtype=np.float32)
            found.append(pts)
        # Stable order: left to right by face centre, so `photo_1` names the same face every run.
        return sorted(found, key=lambda p: (float(p[:, 0].mean()), float(p[:, 1].mean())))

    def close(self) -> None:
        self._mesh.close()


def _framing(mesh: np.ndarray, size: tuple[int, int], face_frac: float) -> tuple[float, np.ndarray]:
    """(scale, shift) that make the face `face_frac` of the output width, centred a little above the
    middle: output = source * scale + shift."""
    out_w, out_h = size
    face_w = float(np.linalg.norm(mesh[454] - mesh[234]))
    if face_w < 8:
        raise IdentityError(f"face too small to use ({face_w:.1f} px wide)")
    scale = face_frac * out_w / face_w
    centre = ((mesh.min(axis=0) + mesh.max(axis=0)) / 2).astype(np.float64)
    return scale, np.array([out_w / 2, out_h * 0.46]) - scale * centre


def frame_face(bgr: np.ndarray, mesh: np.ndarray, size: tuple[int, int], face_frac: float
               ) -> tuple[np.ndarray, np.ndarray]:
    """Scale and shift an image so the face is `face_frac` of the output width, centred a little above
    the middle; returns the output image (replicated borders where the source ends) and the mesh."""
    scale, shift = _framing(mesh, size, face_frac)
    m = np.array([[scale, 0, shift[0]], [0, scale, shift[1]]], dtype=np.float64)
    interp = cv2.INTER_CUBIC if scale > 1 else cv2.INTER_AREA
    image = cv2.warpAffine(bgr, m, size, flags=interp, borderMode=cv2.BORDER_REPLICATE)
    framed = (mesh.astype(np.float64) * scale + shift).astype(np.float32)
    return image, framed


def mesh_disagreement(a: np.ndarray, b: np.ndarray) -> float:
    """Mean distance between corresponding mesh points, in widths of mesh `a`'s face."""
    width = float(np.linalg.norm(a[454] - a[234]))
    return float(np.linalg.norm(a - b, axis=1).mean()) / max(width, 1e-6)


def frame_checked(bgr: np.ndarray, mesh: np.ndarray, size: tuple[int, int], face_frac: float,
                  finder: _MeshFinder, source: str) -> tuple[np.ndarray, np.ndarray]:
    """`frame_face`, then the face is found again in the framed image, where it is large.

    Why: a static fit of a small face in a group photo can sit off the face (multi_face.jpg's
    right-hand face came out with its eyes on the nose and its mouth on the chin), and every planted
    expression would then move the wrong part of the picture while the annotations claim it. When the
    fresh mesh disagrees by more than MESH_AGREEMENT face widths, the face is framed again from it
    (mapped back to the source image), up to REFRAME_ROUNDS times; faces that agree keep their
    first mesh, so their videos do not change.
    """
    for _ in range(REFRAME_ROUNDS):
        image, framed = frame_face(bgr, mesh, size, face_frac)
        found = finder.faces(image)
        if not found:
            raise IdentityError(f"{source}: the face is not found again once framed")
        fresh = min(found, key=lambda p: mesh_disagreement(framed, p))
        if mesh_disagreement(framed, fresh) <= MESH_AGREEMENT:
            return image, framed
        scale, shift = _framing(mesh, size, face_frac)
        mesh = ((fresh.astype(np.float64) - shift) / scale).astype(np.float32)
    raise IdentityError(f"{source}: the face mesh does not settle (it moved by more than "
                        f"{MESH_AGREEMENT:.0%} of the face width in each of {REFRAME_ROUNDS} framings)")


def _astronaut() -> np.ndarray:
    from skimage import data   # runtime dependency (spot-live --demo uses it too)

    return cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)


def _video_face_frame(path: Path, finder: _MeshFinder) -> tuple[np.ndarray, list[np.ndarray]]:
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise IdentityError(f"cannot open video {path}")
    try:
        for index in range(VIDEO_SCAN_FRAMES):
            ok, frame = cap.read()
            if not ok:
                break
            if index % VIDEO_SCAN_STEP:
                continue
            faces = finder.faces(frame)
            if faces:
                return frame, faces
    finally:
        cap.release()
    raise IdentityError(f"no face found in the first {VIDEO_SCAN_FRAMES} frames of {path}")


def _from_source(name: str, bgr: np.ndarray, faces: list[np.ndarray], source: str,
                 size: tuple[int, int], face_frac: float, one_face: bool, finder: _MeshFinder
                 ) -> list[Identity]:
    if one_face:   # videos: the largest face
        faces = [max(faces, key=lambda p: float(np.linalg.norm(p[454] - p[234])))]
    out = []
    for k, mesh in enumerate(faces):
        image, framed = frame_checked(bgr, mesh, size, face_frac, finder, source)
        out.append(Identity(name if len(faces) == 1 else f"{name}_{k}", image, framed, source))
    return out


def list_identities(spec: str = "astronaut", size: tuple[int, int] = (640, 480),
                    face_frac: float = 0.35) -> list[Identity]:
    """Parse an identity spec (see the module docstring) into framed identities, in spec order."""
    tokens = [t.strip() for t in spec.split(",") if t.strip()]
    if not tokens:
        raise IdentityError("empty identity list")
    finder = _MeshFinder()
    identities: list[Identity] = []
    try:
        for token in tokens:
            if "~" in token and not Path(token).expanduser().exists():
                from mespot.synth.variants import expand_token   # it imports this module
                identities.extend(expand_token(
                    token, finder, lambda base: _identities_for(base, finder, size, face_frac)))
            else:
                identities.extend(_identities_for(token, finder, size, face_frac))
    finally:
        finder.close()
    names = [i.name for i in identities]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise IdentityError(f"duplicate identity name(s) {', '.join(dupes)}; rename one of the files")
    return identities


def _identities_for(token: str, finder: _MeshFinder, size: tuple[int, int],
                    face_frac: float) -> list[Identity]:
    if token == "astronaut":
        bgr = _astronaut()
        faces = finder.faces(bgr)
        if not faces:
            raise IdentityError("MediaPipe found no face in skimage.data.astronaut()")
        return _from_source("astronaut", bgr, faces, "skimage.data.astronaut", size, face_frac, True, finder)
    path = Path(token).expanduser()
    if not path.exists():
        raise IdentityError(f"identity {token!r} is neither 'astronaut' nor an existing file or folder")
    if path.is_dir():
        files = sorted((p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES + VIDEO_SUFFIXES),
                       key=lambda p: natural_key(p.name))
        found: list[Identity] = []
        for p in files:
            try:
                found.extend(_identities_for(str(p), finder, size, face_frac))
            except IdentityError:
                continue   # a folder may hold pictures without faces; an explicit file may not
        if not found:
            raise IdentityError(f"no face found in any image or video in {path}")
        return found
    suffix = path.suffix.lower()
    if suffix in VIDEO_SUFFIXES:
        frame, faces = _video_face_frame(path, finder)
        return _from_source(_clean_name(path.stem), frame, faces, str(path), size, face_frac, True, finder)
    if suffix in IMAGE_SUFFIXES:
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise IdentityError(f"cannot read image {path}")
        faces = finder.faces(bgr)
        if not faces:
            raise IdentityError(f"no face found in {path}")
        return _from_source(_clean_name(path.stem), bgr, faces, str(path), size, face_frac, False, finder)
    raise IdentityError(f"{path}: not an image ({', '.join(sorted(IMAGE_SUFFIXES))}) "
                        f"or video ({', '.join(sorted(VIDEO_SUFFIXES))})")
