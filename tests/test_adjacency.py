"""AU co-occurrence prior: the counting rule on hand-made rows and the shipped matrices."""
from __future__ import annotations

import numpy as np

from mespot.data.adjacency import build_adjacency, cooccurrence_counts
from mespot.data.annotations import Annotation, load_annotations
from mespot.engine.priors import PRIOR_COUNTS, prior_adjacency


def _rows(*aus: str) -> list[Annotation]:
    return [Annotation("s", "s_v", 1, 2, 3, "macro", au) for au in aus]


def test_single_au_counts_its_own_rois():
    c = cooccurrence_counts(_rows("12", "4+12+38"))      # AU4 and AU38 are not mapped
    expected = np.zeros((12, 12), np.int64)
    expected[8, 8] = expected[10, 10] = 2
    assert np.array_equal(c, expected)


def test_pairs_add_symmetric_edges_and_exact_tokens_only():
    c = cooccurrence_counts(_rows("1+2", "L12+12E+A1B"))  # the second row has no exact token
    for i in (0, 1, 4, 5):
        for j in (2, 3):
            assert c[i, j] == 1 and c[j, i] == 1
    assert c.sum() == 2 * 4 * 2
    assert np.trace(c) == 0                               # no edges within one AU's ROIs


def test_pair_sharing_rois_adds_two():
    c = cooccurrence_counts(_rows("12+14"))
    assert (c[8, 8], c[10, 10], c[8, 10], c[10, 8]) == (2, 2, 2, 2)
    assert c.sum() == 8


def test_rows_are_normalised_and_nose_rows_stay_zero():
    adj = build_adjacency(_rows("1+2", "12", "25+12"))
    assert adj.dtype == np.float32 and adj.shape == (12, 12)
    nonzero = adj.sum(axis=1) > 0
    np.testing.assert_allclose(adj.sum(axis=1)[nonzero], 1.0, atol=1e-6)
    assert not adj[6].any() and not adj[7].any() and not adj[:, 6].any()


def test_reproduces_the_casme2_prior(shared_path):
    ann = load_annotations(shared_path("data", "annotations", "casme2.csv"))
    assert np.array_equal(cooccurrence_counts(ann), np.array(PRIOR_COUNTS["casme2"]))
    shipped = np.load(shared_path("data", "adjacency", "casme2.npy"))
    np.testing.assert_allclose(build_adjacency(ann), shipped, atol=1e-6, rtol=0)


def test_samm_csv_does_not_give_the_samm_prior(shared_path):
    # reference-model.md §2.5: samm.npy was built from another label file; the builder must not pretend otherwise.
    ann = load_annotations(shared_path("data", "annotations", "samm_lv_25fps.csv"))
    shipped = np.load(shared_path("data", "adjacency", "samm.npy"))
    assert np.abs(build_adjacency(ann) - shipped).max() > 1e-3


def test_builtin_priors_equal_the_shipped_files(shared_path):
    for name in ("casme2", "samm"):
        shipped = np.load(shared_path("data", "adjacency", f"{name}.npy"))
        np.testing.assert_allclose(prior_adjacency(name), shipped, atol=1e-6, rtol=0)
