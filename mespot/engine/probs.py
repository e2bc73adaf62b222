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
    sigmoids.
    """
    logits = np.asarray(logits)
    if logits.ndim != 2 or logits.shape[0] != 10:
        raise ValueError(f"expected logits of shape (10, T), got {logits.shape}")
    return logit_rows_to_probs(logits.T)


def logit_rows_to_probs(rows: np.ndarray) -> np.ndarray:
    """(R, 10) logits, one row per index -> (R, 8) float32 probabilities in PROB_COLUMNS order.

    The one implementation behind logits_to_probs and the multi-stream engine, so both give the
    same bits for the same logits whatever the rows' layout (they are made contiguous float64
    first). Written as few numpy calls as it can be: the live loop calls it once a frame with one
    row, when each call costs tens of microseconds after a frame period of idle.
    """
    rows = np.ascontiguousarray(rows, dtype=np.float64)
    if rows.ndim != 2 or rows.shape[1] != 10:
        raise ValueError(f"expected logit rows of shape (R, 10), got {rows.shape}")
    groups = rows[:, :6].reshape(-1, 2, 3)                      # (R, kind, class)
    e = np.exp(groups - groups.max(axis=2, keepdims=True))
    soft = e / e.sum(axis=2, keepdims=True)
    apex = 1.0 / (1.0 + np.exp(-rows[:, 6:8]))                  # (R, kind)
    out = np.empty((len(rows), 8), np.float32)
    by_kind = out.reshape(-1, 2, 4)                             # a view: (R, kind, column)
    by_kind[:, :, :3] = soft
    by_kind[:, :, 3] = apex
    return out


def kind_columns(kind: str) -> tuple[int, int, int, int]:
    """Column indices (start, end, none, apex) of one kind in the probability table."""
    return COL[f"{kind}_start"], COL[f"{kind}_end"], COL[f"{kind}_none"], COL[f"{kind}_apex"]
