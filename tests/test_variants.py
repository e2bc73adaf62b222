"""Pseudo-identities (mespot/synth/variants.py): names, determinism, and the mesh staying on the face."""
from __future__ import annotations

import numpy as np
import pytest

from mespot.synth import variants
from mespot.synth.identities import MESH_AGREEMENT, Identity, IdentityError, _MeshFinder, list_identities, mesh_disagreement
from mespot.synth.variants import (MIDLINE, apply_word, base_name, make_variant, min_jacobian,
                                   mirror_permutation, split_token)


@pytest.fixture(scope="module")
def astronaut() -> Identity:
    return list_identities("astronaut", size=(640, 480))[0]


@pytest.fixture(scope="module")
def finder():
    f = _MeshFinder()
    yield f
    f.close()


def fresh_error(identity: Identity, finder: _MeshFinder) -> float:
    found = finder.faces(identity.image)
    assert found, f"{identity.name}: no face found in the varied image"
    return min(mesh_disagreement(identity.mesh, p) for p in found)


def test_mirror_permutation_swaps_sides_and_keeps_the_midline():
    perm = mirror_permutation()
    assert sorted(perm.tolist()) == list(range(468))
    assert np.array_equal(perm[perm], np.arange(468))                       # an involution
    assert set(np.flatnonzero(perm == np.arange(468)).tolist()) == set(MIDLINE)
    for a, b in [(33, 263), (133, 362), (61, 291), (234, 454), (159, 386), (70, 300), (105, 334)]:
        assert perm[a] == b and perm[b] == a


def test_spec_words_and_ranges():
    assert split_token("faces") == ("faces", [])
    assert split_token("faces~mirror~morph3") == ("faces", [["mirror", "morph3"]])
    assert split_token("~/faces~morph1") == ("~/faces", [["morph1"]])      # a home folder stays a path
    assert split_token("~/faces") == ("~/faces", [])
    assert split_token("a/b~mirror~mix2-4") == ("a/b", [["mirror", "mix2"], ["mirror", "mix3"], ["mirror", "mix4"]])
    assert base_name("grace_hopper~mirror~mix3") == "grace_hopper" == base_name("grace_hopper")
    for bad in ["faces~blur1", "faces~morph", "faces~mix4-2", "faces~mirror1", "faces~mix1-2~mirror"]:
        with pytest.raises(IdentityError):
            split_token(bad)


@pytest.mark.parametrize("word", ["mirror", "color1", "light1", "morph1", "morph2", "mix1", "mix2"])
def test_each_variant_keeps_the_mesh_on_the_face(astronaut, finder, word):
    v = make_variant(astronaut, word, finder)
    assert v.name == f"astronaut~{word}"
    assert v.image.shape == astronaut.image.shape and v.image.dtype == np.uint8
    assert fresh_error(v, finder) <= MESH_AGREEMENT
    assert np.abs(v.image.astype(int) - astronaut.image.astype(int)).mean() > 1.0   # it did change


def test_variants_are_deterministic_and_seeded_by_k_and_name(astronaut, finder):
    a = make_variant(astronaut, "mix3", finder)
    b = make_variant(astronaut, "mix3", finder)
    c = make_variant(astronaut, "mix4", finder)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.mesh, b.mesh)
    assert not np.array_equal(a.image, c.image)
    renamed = Identity("someone_else", astronaut.image, astronaut.mesh, astronaut.source)
    assert not np.array_equal(make_variant(renamed, "color3", finder).image,
                              make_variant(astronaut, "color3", finder).image)


def test_mirror_needs_the_permutation(astronaut, finder, monkeypatch):
    """The carried mirror mesh agrees with MediaPipe's mesh of the flipped face; without the
    re-indexing (left points left where the flip puts them) it would not."""
    v = make_variant(astronaut, "mirror", finder)
    assert fresh_error(v, finder) <= MESH_AGREEMENT
    flipped = astronaut.mesh.copy()
    flipped[:, 0] = astronaut.image.shape[1] - 1 - flipped[:, 0]
    assert mesh_disagreement(v.mesh, flipped) > 5 * MESH_AGREEMENT   # un-permuted: far off
    assert np.allclose(v.mesh[1], flipped[1])                         # the nose tip stays put


def test_morph_moves_the_face_as_mediapipe_sees_it(astronaut, finder):
    """The carried mesh moves as the face in the image does: MediaPipe's mesh of the morphed image
    moves from its mesh of the original by about the same displacement (regression slope near 1)."""
    before = min(finder.faces(astronaut.image), key=lambda p: mesh_disagreement(astronaut.mesh, p))
    sizes = []
    for k in range(5):
        v = make_variant(astronaut, f"morph{k}", finder)
        after = min(finder.faces(v.image), key=lambda p: mesh_disagreement(v.mesh, p))
        carried, measured = v.mesh - astronaut.mesh, after - before
        slope = float((carried * measured).sum() / (carried * carried).sum())
        assert 0.7 < slope < 1.3, (k, slope)
        sizes.append(float(np.abs(carried).max()) / astronaut.face_width)
    assert max(sizes) > 0.04          # the face shape really changes (points move by > 4 % of its width)


def test_morph_fields_never_fold(astronaut):
    for k in range(40):
        field = variants._morph_field(astronaut.mesh, variants._rng("astronaut", f"morph{k}"), 1.0)
        assert min_jacobian(field, astronaut.size, step=8) > 0.5, k


def test_a_variant_whose_mesh_is_off_the_face_is_refused(astronaut, finder, monkeypatch):
    width = astronaut.face_width

    def bad_warp(identity, field, step=4):   # moves the mesh down by 15 % of the face, not the image
        return identity.image, identity.mesh + np.float32([0, 0.15 * width])

    monkeypatch.setattr(variants, "_warp", bad_warp)
    with pytest.raises(IdentityError, match="off the varied face"):
        apply_word(astronaut, "morph1", finder)


def test_identity_spec_accepts_variant_words():
    faces = list_identities("astronaut,astronaut~mirror,astronaut~morph1-2", size=(640, 480))
    assert [f.name for f in faces] == ["astronaut", "astronaut~mirror", "astronaut~morph1", "astronaut~morph2"]
    assert faces[2].source.endswith("~morph1")
    with pytest.raises(IdentityError):
        list_identities("astronaut~wobble1")
