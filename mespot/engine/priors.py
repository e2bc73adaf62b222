"""The two AU co-occurrence priors of the reference model, as raw integer counts.

Counts are facts about the annotations (reference-model.md §2.5/2.6): `casme2` is what the counting procedure gives
on the CAS(ME)^2 CSV, `samm` is recovered from the shipped matrix and its row sums (reference-model.md §2.5: 70, 114,
235, 200). Row-normalising them (L1 + 1e-6) gives the shipped matrices to float32 precision; a test
checks both against the reference .npy files when they are present. numpy only: the live path uses it.
"""
from __future__ import annotations

import numpy as np

_CASME2_COUNTS = [
    [0, 0, 23, 23, 0, 0, 0, 0, 1, 0, 1, 0],
    [0, 0, 23, 23, 0, 0, 0, 0, 1, 0, 1, 0],
    [23, 23, 6, 0, 23, 23, 0, 0, 2, 0, 2, 0],
    [23, 23, 0, 6, 23, 23, 0, 0, 2, 0, 2, 0],
    [0, 0, 23, 23, 0, 0, 0, 0, 1, 0, 1, 0],
    [0, 0, 23, 23, 0, 0, 0, 0, 1, 0, 1, 0],
    [0] * 12,
    [0] * 12,
    [1, 1, 2, 2, 1, 1, 0, 0, 177, 2, 34, 2],
    [0, 0, 0, 0, 0, 0, 0, 0, 2, 6, 2, 0],
    [1, 1, 2, 2, 1, 1, 0, 0, 34, 2, 177, 2],
    [0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 2, 6],
]

_SAMM_COUNTS = [
    [4, 0, 22, 22, 0, 0, 0, 0, 4, 7, 4, 7],
    [0, 4, 22, 22, 0, 0, 0, 0, 4, 7, 4, 7],
    [22, 22, 2, 0, 22, 22, 0, 0, 5, 7, 5, 7],
    [22, 22, 0, 2, 22, 22, 0, 0, 5, 7, 5, 7],
    [0, 0, 22, 22, 4, 0, 0, 0, 4, 7, 4, 7],
    [0, 0, 22, 22, 0, 4, 0, 0, 4, 7, 4, 7],
    [0] * 12,
    [0] * 12,
    [4, 4, 5, 5, 4, 4, 0, 0, 127, 22, 38, 22],
    [7, 7, 7, 7, 7, 7, 0, 0, 22, 66, 22, 48],
    [4, 4, 5, 5, 4, 4, 0, 0, 38, 22, 127, 22],
    [7, 7, 7, 7, 7, 7, 0, 0, 22, 48, 22, 66],
]

PRIOR_COUNTS = {"casme2": _CASME2_COUNTS, "samm": _SAMM_COUNTS}


def row_normalise(counts: np.ndarray) -> np.ndarray:
    """Row-stochastic matrix as the reference builds it: row / (L1 norm + 1e-6), float32."""
    counts = np.asarray(counts, dtype=np.float64)
    return (counts / (np.abs(counts).sum(axis=1, keepdims=True) + 1e-6)).astype(np.float32)


def prior_adjacency(name: str) -> np.ndarray:
    """The reference prior `name` ('casme2' or 'samm') as a (12, 12) float32 matrix."""
    if name not in PRIOR_COUNTS:
        raise ValueError(f"unknown adjacency prior {name!r}; valid: {', '.join(PRIOR_COUNTS)} or a .npy path")
    return row_normalise(np.array(PRIOR_COUNTS[name]))


def resolve_adjacency(spec: str) -> np.ndarray:
    """A config's `adjacency` value: a prior name or a path to a (12, 12) .npy file."""
    if spec in PRIOR_COUNTS:
        return prior_adjacency(spec)
    adj = np.load(spec).astype(np.float32)
    if adj.shape != (12, 12):
        raise ValueError(f"adjacency {spec} has shape {adj.shape}, expected (12, 12)")
    return adj
