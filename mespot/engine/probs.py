"""Logits to per-index probabilities (numpy only: the live path must not need torch).

The probability table has one row per feature index and the columns of PROB_COLUMNS.
"""
from __future__ import annotations

import numpy as np

PROB_COLUMNS = ("micro_start", "micro_end", "micro_none", "micro_apex",
                "macro_start", "macro_end", "macro_none", "macro_apex")
COL = {name: i for i, name in enumerate(PROB_COLUMNS)}


def _softmax3(x: np.ndarray) -> np.ndarray:
    x = x - x.max(axis=0, keepdims=True)
    e = np.exp(x)
    return e / e.sum(axis=0, keepdims=True)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def logits_to_probs(logits: np.ndarray) -> np.ndarray:
    """(10, T) logits -> (T, 8) float32 probabilities in PROB_COLUMNS order."""
    logits = np.asarray(logits, dtype=np.float64)
    if logits.ndim != 2 or logits.shape[0] != 10:
        raise ValueError(f"expected logits of shape (10, T), got {logits.shape}")
    micro = _softmax3(logits[0:3])
    macro = _softmax3(logits[3:6])
    out = np.stack([micro[0], micro[1], micro[2], _sigmoid(logits[6]),
                    macro[0], macro[1], macro[2], _sigmoid(logits[7])], axis=1)
    return out.astype(np.float32)


def kind_columns(kind: str) -> tuple[int, int, int, int]:
    """Column indices (start, end, none, apex) of one kind in the probability table."""
    return COL[f"{kind}_start"], COL[f"{kind}_end"], COL[f"{kind}_none"], COL[f"{kind}_apex"]
