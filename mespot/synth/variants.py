"""Pseudo-identities: new faces made from a framed identity, with the face mesh carried along.

A variant is named by appending `~WORD` to the identity's name; words chain left to right:

  mirror     the image flipped left-right; mesh points are re-indexed so that each keeps its
             anatomical meaning (a left eye corner stays a left eye corner)
  color<k>   white balance, gamma and a skin-tone shift (lightness and chroma of skin-coloured
             pixels near the face)
  light<k>   a directional light: a smooth brightness gradient across the face, from a random side
  morph<k>   a smooth warp of the image that changes the face's shape: width/height ratio, jaw width,
             eye distance, mouth height and brow height; the mesh goes through the same warp
  mix<k>     a random combination: mirror (half the time), color, light (70 %) and morph

`k` is any non-negative integer; every random draw comes from (k, the word, the name the variant is
made from), so `grace_hopper~morph2` is the same face in every run and `astronaut~morph2` is a
different morph. An identity spec token (see identities.py) may end in such words, and the last
word may be a range `WORDa-b` (`build/faces/train~mix1-4` gives four mixes of every face).

Every variant is checked as `frame_checked` checks a framed face: MediaPipe is run again on the new
image and the mean distance between the carried mesh and the fresh one must stay within
MESH_AGREEMENT face widths. A morph that fails is retried at half strength (same name, so still
deterministic); anything else that fails raises IdentityError.
"""
from __future__ import annotations

import hashlib
import re
from typing import Callable

import cv2
import numpy as np

from mespot.synth.identities import MESH_AGREEMENT, Identity, IdentityError, _MeshFinder, mesh_disagreement

KINDS = ("mirror", "color", "light", "morph", "mix")
MORPH_RETRIES = 2            # a morph whose mesh check fails is retried at 1/2, then 1/4 strength

# The 28 MediaPipe face-mesh points on the face's midline map to themselves in a mirror image; every
# other point below 248 swaps with one point of 248..467, in order (3<->248, 7<->249, 20<->250, ...,
# 33<->263, 61<->291, 234<->454, ..., 247<->467). Found by matching each point of the mesh that
# MediaPipe gives for a flipped face to the flipped original mesh (10 faces, mean error 1.2 % of the
# face width, every point under 2 %), and checked in tests/test_variants.py.
MIDLINE = (0, 1, 2, 4, 5, 6, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 94, 151, 152, 164, 168,
           175, 195, 197, 199, 200)


def mirror_permutation() -> np.ndarray:
    """perm[k] = the point that becomes point k when the face is mirrored (an involution)."""
    perm = np.arange(468)
    left = [k for k in range(248) if k not in MIDLINE]
    for a, b in zip(left, range(248, 468)):
        perm[a], perm[b] = b, a
    return perm


def base_name(name: str) -> str:
    """The real face a (pseudo-)identity comes from: `grace_hopper~mirror~mix3` -> `grace_hopper`.
    Splits must keep every name with the same base together (a variant is not a new person)."""
    return name.split("~", 1)[0]


def _rng(name: str, word: str) -> np.random.Generator:
    digest = hashlib.sha256(f"{name}~{word}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def _face_frame(mesh: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Face centre, unit axis along the eyes (towards the face's left, mesh 263), unit axis
    towards the chin, and the face width (mesh 234 to 454)."""
    centre = mesh.mean(axis=0).astype(np.float64)
    u = (mesh[263] - mesh[33]).astype(np.float64)
    u /= max(np.linalg.norm(u), 1e-6)
    v = np.array([-u[1], u[0]])
    if np.dot(v, mesh[152] - mesh[10]) < 0:    # chin (152) below the forehead (10)
        v = -v
    return centre, u, v, float(np.linalg.norm(mesh[454] - mesh[234]))


# --- colour and light -------------------------------------------------------------------------

def _face_mask(shape: tuple[int, int], mesh: np.ndarray, grow: float) -> np.ndarray:
    """Soft mask: 1 inside the mesh's convex hull, falling off over `grow` face widths."""
    h, w = shape
    mask = np.zeros((h, w), np.uint8)
    cv2.fillConvexPoly(mask, cv2.convexHull(mesh.astype(np.int32)), 255)
    fw = float(np.linalg.norm(mesh[454] - mesh[234]))
    sigma = max(grow * fw, 1.0)
    return cv2.GaussianBlur(mask.astype(np.float32) / 255.0, (0, 0), sigma)


def _color(identity: Identity, rng: np.random.Generator, strength: float = 1.0) -> np.ndarray:
    img = identity.image.astype(np.float32) / 255.0
    # white balance: per-channel gains, normalised so that the mean gain is 1
    gains = np.exp(rng.uniform(-0.12, 0.12, 3) * strength)
    img = img * (gains / gains.mean()).astype(np.float32)
    # gamma
    img = np.clip(img, 0, 1) ** np.float32(np.exp(rng.uniform(-0.35, 0.35) * strength))
    # skin-tone shift: pixels whose chroma is near the face's, near the face, in Lab
    lab = cv2.cvtColor(img, cv2.COLOR_BGR2LAB)
    core = _face_mask(img.shape[:2], identity.mesh, 0.02) > 0.9
    ab_face = np.median(lab[core][:, 1:], axis=0) if core.any() else np.median(lab[..., 1:].reshape(-1, 2), 0)
    chroma_d = np.linalg.norm(lab[..., 1:] - ab_face, axis=2)
    skin = np.exp(-(chroma_d / 12.0) ** 2) * np.clip(_face_mask(img.shape[:2], identity.mesh, 0.8) * 3, 0, 1)
    l_scale = np.exp(rng.uniform(-0.3, 0.12) * strength)
    da, db = rng.uniform(-3, 7) * strength, rng.uniform(-5, 9) * strength
    lab[..., 0] = lab[..., 0] * (1 + (l_scale - 1) * skin)
    lab[..., 1] += da * skin
    lab[..., 2] += db * skin
    img = cv2.cvtColor(lab, cv2.COLOR_LAB2BGR)
    return np.clip(img * 255 + 0.5, 0, 255).astype(np.uint8)


def _light(identity: Identity, rng: np.random.Generator, strength: float = 1.0) -> np.ndarray:
    h, w = identity.image.shape[:2]
    centre, _, _, fw = _face_frame(identity.mesh)
    angle = rng.uniform(0, 2 * np.pi)
    d = np.array([np.cos(angle), np.sin(angle)])
    slope = rng.uniform(0.2, 0.55) * strength          # brightness change per face width
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    t = ((xs - centre[0]) * d[0] + (ys - centre[1]) * d[1]) / fw
    gain = np.exp(slope * np.tanh(t / 0.8) * 0.8)      # linear across the face, levelling off beyond
    gain *= np.exp(rng.uniform(-0.15, 0.1) * strength)  # overall exposure
    img = identity.image.astype(np.float32) * gain[..., None]
    return np.clip(img + 0.5, 0, 255).astype(np.uint8)


# --- geometry ---------------------------------------------------------------------------------

def _morph_field(mesh: np.ndarray, rng: np.random.Generator, strength: float
                 ) -> Callable[[np.ndarray], np.ndarray]:
    """A smooth forward displacement D(p) for points p (N, 2): face shape changes expressed in the
    face frame, faded out beyond about 1.5 face widths from the face centre."""
    centre, u, v, fw = _face_frame(mesh)
    right_eye = mesh[[33, 133, 159, 145]].mean(axis=0)
    left_eye = mesh[[263, 362, 386, 374]].mean(axis=0)
    eye_v = float(np.dot((right_eye + left_eye) / 2 - centre, v)) / fw
    mouth = mesh[[13, 14, 61, 291]].mean(axis=0)
    brows = mesh[[105, 334, 66, 296]].mean(axis=0)
    width = rng.uniform(-0.12, 0.12) * strength        # relative change of face width
    height = rng.uniform(-0.09, 0.09) * strength       # relative change of face height
    jaw = rng.uniform(-0.12, 0.12) * strength          # extra relative width below the eyes
    eyes = rng.uniform(-0.04, 0.04) * strength       # each eye moves out (+) or in, face widths
    mouth_dy = rng.uniform(-0.04, 0.04) * strength   # mouth moves down (+) or up, face widths
    brow_dy = rng.uniform(-0.035, 0.035) * strength      # brows move down (+) or up, face widths

    def bump(p: np.ndarray, at: np.ndarray, sigma: float) -> np.ndarray:
        return np.exp(-np.sum((p - at) ** 2, axis=1) / (2 * (sigma * fw) ** 2))

    def field(p: np.ndarray) -> np.ndarray:
        q = p.astype(np.float64) - centre
        a = q @ u / fw                                  # across the face, face widths
        b = q @ v / fw                                  # down the face
        r = np.sqrt(a ** 2 + b ** 2)
        fade = np.exp(-(r / 1.3) ** 4)
        below = np.clip((b - eye_v) / 0.6, 0, 1)        # 0 at eye level, 1 at the chin
        du = a * (width + jaw * below) * fade
        dv = b * height * fade
        d = np.outer(du * fw, u) + np.outer(dv * fw, v)
        d += np.outer(-eyes * fw * bump(p, right_eye, 0.14), u)
        d += np.outer(eyes * fw * bump(p, left_eye, 0.14), u)
        d += np.outer(mouth_dy * fw * bump(p, mouth, 0.16), v)
        d += np.outer(brow_dy * fw * bump(p, brows, 0.2), v)
        return d

    return field


def _warp(identity: Identity, field: Callable[[np.ndarray], np.ndarray],
          step: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Apply the forward displacement `field` to the image and to the mesh. The image needs the
    inverse map: p with p + D(p) = q for every output pixel q, found by a fixed-point iteration on
    a grid of every `step`-th pixel (D is smooth) and interpolated to the full image."""
    h, w = identity.image.shape[:2]
    gh, gw = (h - 1) // step + 2, (w - 1) // step + 2     # grid reaching past the last pixel
    ys, xs = np.mgrid[0:gh, 0:gw] * step
    q = np.stack([xs.ravel(), ys.ravel()], axis=1).astype(np.float64)
    p = q.copy()
    for _ in range(8):          # contraction: |dD/dp| is well below 1
        p = q - field(p)
    grid_x = p[:, 0].reshape(gh, gw).astype(np.float32)
    grid_y = p[:, 1].reshape(gh, gw).astype(np.float32)
    # value at pixel (x, y) = grid value at (x / step, y / step): bilinear, via remap on the grid
    fy, fx = np.mgrid[0:h, 0:w].astype(np.float32) / step
    map_x = cv2.remap(grid_x, fx, fy, cv2.INTER_LINEAR)
    map_y = cv2.remap(grid_y, fx, fy, cv2.INTER_LINEAR)
    image = cv2.remap(identity.image, map_x, map_y, cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
    mesh = (identity.mesh.astype(np.float64) + field(identity.mesh)).astype(np.float32)
    return image, mesh


def min_jacobian(field: Callable[[np.ndarray], np.ndarray], size: tuple[int, int], step: int = 4) -> float:
    """Smallest determinant of the warp's Jacobian (1 + dD/dp) over a grid: > 0 means no fold."""
    w, h = size
    ys, xs = np.mgrid[0:h:step, 0:w:step]
    p = np.stack([xs.ravel(), ys.ravel()], axis=1).astype(np.float64)
    e = 0.5
    dx = (field(p + [e, 0]) - field(p - [e, 0])) / (2 * e)
    dy = (field(p + [0, e]) - field(p - [0, e])) / (2 * e)
    det = (1 + dx[:, 0]) * (1 + dy[:, 1]) - dx[:, 1] * dy[:, 0]
    return float(det.min())


# --- variants ---------------------------------------------------------------------------------

_WORD = re.compile(r"^(mirror|(color|light|morph|mix)(\d+))$")


def parse_word(word: str) -> tuple[str, int | None]:
    m = _WORD.match(word)
    if not m:
        raise IdentityError(f"unknown variant {word!r}: use mirror, color<k>, light<k>, morph<k> or mix<k>")
    return (m.group(1), None) if m.group(1) == "mirror" else (m.group(2), int(m.group(3)))


def _mirror(identity: Identity) -> tuple[np.ndarray, np.ndarray]:
    w = identity.image.shape[1]
    image = np.ascontiguousarray(identity.image[:, ::-1])
    flipped = identity.mesh.copy()
    flipped[:, 0] = (w - 1) - flipped[:, 0]
    return image, flipped[mirror_permutation()].astype(np.float32)


def _check(image: np.ndarray, mesh: np.ndarray, finder: _MeshFinder) -> float:
    found = finder.faces(image)
    if not found:
        return float("inf")
    return min(mesh_disagreement(mesh, p) for p in found)


def apply_word(identity: Identity, word: str, finder: _MeshFinder) -> Identity:
    """One variant step: the identity `identity` changed by `word`, mesh checked."""
    kind, _ = parse_word(word)
    name = f"{identity.name}~{word}"
    source = f"{identity.source} ~{word}"
    if kind == "mix":
        rng = _rng(identity.name, word)
        steps = (["mirror"] if rng.random() < 0.5 else []) + [f"color{word[3:]}"]
        steps += [f"light{word[3:]}"] if rng.random() < 0.7 else []
        steps += [f"morph{word[3:]}"]
        current = identity
        for step in steps:
            current = apply_word(current, step, finder)
        return Identity(name, current.image, current.mesh, f"{source} ({'+'.join(steps)})")
    attempts = MORPH_RETRIES + 1 if kind == "morph" else 1
    for attempt in range(attempts):
        strength = 0.5 ** attempt
        rng = _rng(identity.name, word)
        if kind == "mirror":
            image, mesh = _mirror(identity)
        elif kind == "color":
            image, mesh = _color(identity, rng), identity.mesh
        elif kind == "light":
            image, mesh = _light(identity, rng), identity.mesh
        else:
            field = _morph_field(identity.mesh, rng, strength)
            image, mesh = _warp(identity, field)
        error = _check(image, mesh, finder)
        if error <= MESH_AGREEMENT:
            note = f" (strength {strength:g})" if strength != 1 else ""
            return Identity(name, image, mesh, source + note)
    raise IdentityError(f"{name}: the face mesh is off the varied face ({error:.1%} of the face width, "
                        f"limit {MESH_AGREEMENT:.0%})")


def make_variant(identity: Identity, words: str | list[str], finder: _MeshFinder | None = None) -> Identity:
    """`identity` changed by each word in turn (`"mirror~morph2"` or `["mirror", "morph2"]`)."""
    if isinstance(words, str):
        words = [w for w in words.split("~") if w]
    own = finder is None
    finder = finder or _MeshFinder()
    try:
        for word in words:
            identity = apply_word(identity, word, finder)
    finally:
        if own:
            finder.close()
    return identity


def split_token(token: str) -> tuple[str, list[list[str]]]:
    """`base~w1~w2a-b` -> ("base", [[w1, w2a], ..., [w1, w2b]]); a token without `~` -> (token, [])."""
    m = re.search(r"(~[a-z0-9-]+)+$", token)       # words never hold '/' or '.', so '~/x' is a path
    if not m or m.start() == 0:
        return token, []
    base, words = token[:m.start()], m.group(0)[1:].split("~")
    *head, last = words
    for word in head:
        parse_word(word)
    m = re.match(r"^(color|light|morph|mix)(\d+)-(\d+)$", last)
    if m:
        lo, hi = int(m.group(2)), int(m.group(3))
        if hi < lo:
            raise IdentityError(f"empty variant range {last!r}")
        return base, [head + [f"{m.group(1)}{k}"] for k in range(lo, hi + 1)]
    parse_word(last)
    return base, [head + [last]]


def expand_token(token: str, finder: _MeshFinder, resolve: Callable[[str], list[Identity]]) -> list[Identity]:
    """The identities of spec token `base~words...`: `resolve(base)` gives the framed faces, and
    every chain of words (several when the last word is a range) is applied to each of them."""
    base, chains = split_token(token)
    faces = resolve(base)
    if not chains:
        return faces
    return [make_variant(face, chain, finder) for face in faces for chain in chains]
