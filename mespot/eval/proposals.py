"""Intervals from per-index probabilities: apex candidates, boundary search, NMS (SPEC 6).

numpy only: the live path's causal peak-picker imports `propose_at_apex` and `iou`. Probabilities are
the (T, 8) table of `mespot.engine.probs` (PROB_COLUMNS). All indices are feature indices, which in
this project are frame numbers (mespot.types); the reference reports index + 1 as the frame, which
`frame_offset=1` reproduces where its numbers are wanted.
"""
from __future__ import annotations

import numpy as np

from mespot.config import KINDS, Config, DecodingConfig
from mespot.engine.probs import kind_columns
from mespot.featurefile import valid_runs
from mespot.types import Interval

IOU_RULES = ("megc", "reference")
REFERENCE_SEGMENT = 256


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

    SPEC 6 steps 2-5: start s = argmax over d in start_range of P_start(max(apex - d, lo)), end
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


def propose(probs: np.ndarray, kind: str, dec: DecodingConfig, lo: int = 0, hi: int | None = None,
            frame_offset: int = 0) -> list[Interval]:
    """Every interval anchored at an index in [lo, hi) whose P_apex exceeds the threshold, in order."""
    hi = len(probs) if hi is None else hi
    apex_prob = probs[lo:hi, kind_columns(kind)[3]]
    out = []
    for apex in np.flatnonzero(apex_prob > dec.apex_threshold) + lo:
        interval = propose_at_apex(probs, int(apex), kind, dec, lo, hi, frame_offset)
        if interval is not None:
            out.append(interval)
    return out


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


def nms(intervals: list[Interval], top_k: int, iou_threshold: float = 0.5) -> list[Interval]:
    """The reference's greedy NMS over one video and kind, highest score first (SPEC 6).

    Repeatedly take the highest remaining score (first on ties); stop at a score of 0 or after
    `top_k` kept; zero every other interval whose IoU with it (reference rule, end - start lengths)
    is > `iou_threshold`.
    """
    if len({i.kind for i in intervals}) > 1:
        raise ValueError("nms takes the intervals of one kind; split micro and macro first")
    scores = np.array([i.score for i in intervals], dtype=np.float64)
    kept: list[Interval] = []
    while len(kept) < top_k and len(scores) and scores.max() > 0:
        best = int(np.argmax(scores))
        chosen = intervals[best]
        kept.append(chosen)
        scores[best] = 0.0
        for j in np.flatnonzero(scores > 0):
            other = intervals[j]
            if iou((chosen.onset, chosen.offset), (other.onset, other.offset), "reference") > iou_threshold:
                scores[j] = 0.0
    return kept


def _sorted(intervals: list[Interval]) -> list[Interval]:
    return sorted(intervals, key=lambda i: (i.onset, i.offset, i.kind))


def decode_offline(probs: np.ndarray, config: Config, valid: np.ndarray | None = None) -> list[Interval]:
    """One video's intervals of both kinds, sorted by onset, in feature indices.

    Each maximal valid run is searched on its own (no boundary search crosses a gap), then the
    proposals of all runs go through one per-video NMS with the kind's top_k.
    """
    probs = np.asarray(probs)
    if probs.ndim != 2 or probs.shape[1] != 8:
        raise ValueError(f"expected probabilities of shape (T, 8), got {probs.shape}")
    if valid is not None and len(valid) != len(probs):
        raise ValueError(f"valid has {len(valid)} entries, probabilities {len(probs)}")
    runs = [(0, len(probs))] if valid is None else valid_runs(valid)
    out: list[Interval] = []
    for kind in KINDS:
        dec = config.decoding(kind)
        proposals = [i for lo, hi in runs for i in propose(probs, kind, dec, lo, hi)]
        out.extend(nms(proposals, dec.top_k))
    return _sorted(out)


def decode_reference_segments(probs: np.ndarray, config: Config,
                              segment_length: int = REFERENCE_SEGMENT,
                              frame_offset: int = 1) -> list[Interval]:
    """The reference's decoding, to reproduce the authors' numbers (SPEC 6).

    The sequence is cut into consecutive `segment_length` pieces; the boundary search is clipped to
    the piece holding the apex; the result is shifted by `frame_offset` (the reference's +1). The
    reference reads probabilities at the zero-padded tail of the last segment: pass the sequence
    with that padding (what `load_reference_segments` reassembles) to reproduce it exactly.
    """
    probs = np.asarray(probs)
    if probs.ndim != 2 or probs.shape[1] != 8:
        raise ValueError(f"expected probabilities of shape (T, 8), got {probs.shape}")
    out: list[Interval] = []
    for kind in KINDS:
        dec = config.decoding(kind)
        proposals = []
        for lo in range(0, len(probs), segment_length):
            hi = min(lo + segment_length, len(probs))
            proposals.extend(propose(probs, kind, dec, lo, hi, frame_offset))
        out.extend(nms(proposals, dec.top_k))
    return _sorted(out)
