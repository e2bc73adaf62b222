"""Interval geometry shared by the live picker (mespot.stream) and offline decoding (mespot.eval).

It sits below both so that the live path needs nothing from `eval/`: the interval anchored at one
apex (boundary search, validity, length, score; docs/reference-model.md, section 6) and the temporal
IoU of two spans under either overlap rule. numpy only. Indices are feature indices, which in this
project are frame numbers (mespot.types).
"""
from __future__ import annotations

import numpy as np

from mespot.config import DecodingConfig
from mespot.engine.probs import kind_columns
from mespot.types import Interval

IOU_RULES = ("megc", "reference")


def _best_boundary(column: np.ndarray, positions: list[int]) -> int:
    """The position of the largest value; on ties the first listed (the nearest to the apex)."""
    best = positions[0]
    for p in positions[1:]:
        if column[p] > column[best]:
            best = p
    return best


def propose_at_apex(probs: np.ndarray, apex: int, kind: str, dec: DecodingConfig,
                    lo: int = 0, hi: int | None = None, frame_offset: int = 0) -> Interval | None:
    """The interval anchored at `apex`, or None when it fails the validity or length check.

    reference-model.md §6 steps 2-5: start s = argmax over d in start_range of P_start(max(apex - d, lo)), end
    e = argmax over d in end_range of P_end(min(apex + d, hi - 1)), ties to the nearest; valid if
    P_start(s) > P_end(s) and P_start(e) < P_end(e); kept if min_len <= e - s <= max_len; score
    P_start(s) * P_end(e) * P_apex(apex). Only rows lo..hi-1 of `probs` are read. Returned indices
    are shifted by `frame_offset`.
    """
    hi = len(probs) if hi is None else hi
    if not lo <= apex < hi:
        raise ValueError(f"apex {apex} outside the searched range [{lo}, {hi})")
    c_start, c_end, _, c_apex = kind_columns(kind)
    p_start, p_end = probs[:, c_start], probs[:, c_end]
    s_lo, s_hi = dec.start_range
    e_lo, e_hi = dec.end_range
    s = _best_boundary(p_start, [max(apex - d, lo) for d in range(s_lo, s_hi + 1)])
    e = _best_boundary(p_end, [min(apex + d, hi - 1) for d in range(e_lo, e_hi + 1)])
    if not (p_start[s] > p_end[s] and p_start[e] < p_end[e]):
        return None
    if not dec.min_len <= e - s <= dec.max_len:
        return None
    score = float(p_start[s]) * float(p_end[e]) * float(probs[apex, c_apex])
    return Interval(kind, s + frame_offset, apex + frame_offset, e + frame_offset, score)


def intersection_union(a: tuple[int, int], b: tuple[int, int], rule: str) -> tuple[int, int]:
    """Integer (intersection, union) of two (start, end) spans under `rule`.

    megc: inclusive frame sets, length end - start + 1 (an end before the start is an empty set).
    reference: length end - start, intersection max(min(ends) - max(starts), 0), union
    len_a + len_b - intersection (can be <= 0 for a stored end of 0).
    """
    if rule == "megc":
        len_a, len_b = max(a[1] - a[0] + 1, 0), max(b[1] - b[0] + 1, 0)
        inter = max(min(a[1], b[1]) - max(a[0], b[0]) + 1, 0) if len_a and len_b else 0
    elif rule == "reference":
        len_a, len_b = a[1] - a[0], b[1] - b[0]
        inter = max(min(a[1], b[1]) - max(a[0], b[0]), 0)
    else:
        raise ValueError(f"unknown IoU rule {rule!r}; valid: {', '.join(IOU_RULES)}")
    return inter, len_a + len_b - inter


def iou(a: tuple[int, int], b: tuple[int, int], rule: str = "megc") -> float:
    """Temporal IoU of two (start, end) spans under `rule` ('megc' or 'reference'); 0 if no union."""
    inter, union = intersection_union(a, b, rule)
    return inter / union if union > 0 else 0.0
