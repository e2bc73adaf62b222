"""Logits to per-index probabilities (numpy only: the live path must not need torch).

The probability table has one row per feature index and the columns of PROB_COLUMNS.
"""
from __future__ import annotations

import numpy as np

PROB_COLUMNS = ("micro_start", "micro_end", "micro_none", "micro_apex",
                "macro_start", "macro_end", "macro_none", "macro_apex")
COL = {name: i for i, name in enumerate(PROB_COLUMNS)}


def logits_to_probs(logits: np.ndarray) -> np.ndarray:
    """(10, T) logits -> (T, 8) float32 probabilities in PROB_COLUMNS order.

    Rows 0-2 and 3-5 are the micro and macro (start, end, none) softmaxes, rows 6-7 the apex
    sigmoids. Written as few numpy calls as it can be: the live loop calls it once a frame with T = 1,
    when each call costs tens of microseconds after a frame period of idle.
    """
    logits = np.asarray(logits, dtype=np.float64)
    if logits.ndim != 2 or logits.shape[0] != 10:
        raise ValueError(f"expected logits of shape (10, T), got {logits.shape}")
    groups = logits[:6].reshape(2, 3, -1)                       # (kind, class, T)
    e = np.exp(groups - groups.max(axis=1, keepdims=True))
    soft = e / e.sum(axis=1, keepdims=True)
    apex = 1.0 / (1.0 + np.exp(-logits[6:8]))                   # (kind, T)
    out = np.empty((logits.shape[1], 8), np.float32)
    by_kind = out.reshape(-1, 2, 4)                             # a view: (T, kind, column)
    by_kind[:, :, :3] = soft.transpose(2, 0, 1)
    by_kind[:, :, 3] = apex.T
    return out


def kind_columns(kind: str) -> tuple[int, int, int, int]:
    """Column indices (start, end, none, apex) of one kind in the probability table."""
    return COL[f"{kind}_start"], COL[f"{kind}_end"], COL[f"{kind}_none"], COL[f"{kind}_apex"]
