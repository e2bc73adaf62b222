"""The AU co-occurrence graph prior built from annotation rows (reference-model.md §2.5).

The count is the reference's, kept exactly so that `casme2.npy` is reproduced: per row, the AU
tokens that are exactly one of the six mapped AUs survive; one survivor adds 1 to the diagonal of
each of its ROIs, several add 1 to both (i, j) and (j, i) for every ROI pair of every unordered pair
of survivors. Rows with no survivor are skipped. ROIs are the graph nodes of reference-model.md §2.1.
"""
from __future__ import annotations

from itertools import combinations
from typing import Iterable

import numpy as np

from mespot.data.annotations import Annotation, AnnotationSet
from mespot.engine.priors import row_normalise
from mespot.types import N_ROIS

# AU -> graph nodes, as the reference maps them (its AU1/AU2 brow assignment is reversed relative to
# FACS, reference-model.md §10.8; kept so the shipped priors are reproduced). Nose nodes 6 and 7 carry no AU.
AU_TO_ROIS: dict[str, tuple[int, ...]] = {
    "1": (0, 1, 4, 5),
    "2": (2, 3),
    "12": (8, 10),
    "14": (8, 10),
    "25": (9, 11),
    "26": (9, 11),
}


def _rows(annotations: AnnotationSet | Iterable[Annotation]) -> Iterable[Annotation]:
    return annotations.rows if isinstance(annotations, AnnotationSet) else annotations


def cooccurrence_counts(annotations: AnnotationSet | Iterable[Annotation]) -> np.ndarray:
    """(12, 12) int64 raw co-occurrence counts over all given rows (micro and macro alike)."""
    counts = np.zeros((N_ROIS, N_ROIS), dtype=np.int64)
    for a in _rows(annotations):
        aus = [token for token in a.au.split("+") if token in AU_TO_ROIS]
        if len(aus) == 1:
            for i in AU_TO_ROIS[aus[0]]:
                counts[i, i] += 1
        for au_a, au_b in combinations(aus, 2):
            for i in AU_TO_ROIS[au_a]:
                for j in AU_TO_ROIS[au_b]:
                    counts[i, j] += 1
                    counts[j, i] += 1
    return counts


def build_adjacency(annotations: AnnotationSet | Iterable[Annotation]) -> np.ndarray:
    """(12, 12) float32 row-stochastic prior, as the reference's `make_coc_matrix`."""
    return row_normalise(cooccurrence_counts(annotations))
