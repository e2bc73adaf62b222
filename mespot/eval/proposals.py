"""Intervals from per-index probabilities: apex candidates, boundary search, NMS (reference-model.md §6).

The interval anchored at one apex and the IoU rules live in mespot.intervals, shared with the live
causal peak-picker. numpy only. Probabilities are the (T, 8) table of `mespot.engine.probs` (PROB_COLUMNS). All indices are feature indices, which in
this project are frame numbers (mespot.types); the reference reports index + 1 as the frame, which
`frame_offset=1` reproduces where its numbers are wanted.
"""
from __future__ import annotations

import numpy as np

from mespot.config import KINDS, Config, DecodingConfig
from mespot.engine.probs import kind_columns
from mespot.featurefile import valid_runs
from mespot.intervals import iou, propose_at_apex
from mespot.types import Interval

REFERENCE_SEGMENT = 256


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


def nms(intervals: list[Interval], top_k: int, iou_threshold: float = 0.5) -> list[Interval]:
    """The reference's greedy NMS over one video and kind, highest score first (reference-model.md §6).

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
    """The reference's decoding, to reproduce the authors' numbers (reference-model.md §6).

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
