"""Spotting scores: matching predictions to ground truth, pooled precision / recall / F1.

Two rules (docs/evaluation.md):
- `megc` (default, the challenge's): a pair matches when IoU >= 0.5 on inclusive frame sets; each
  ground truth and each prediction is used at most once, and the number of matches is the maximum
  possible (maximum bipartite matching per video and kind), so the result never depends on row order.
- `reference` (the authors' code after its evaluation fix, reference-model.md §7 / §10.1): IoU > 0.5 on end - start
  lengths; each ground truth marks its argmax prediction; TP = distinct marked predictions.
Ground truth is used as stored (an end of 0 makes a row unmatchable, but it still counts in m).
Counts are pooled over videos; `overall` sums tp, n and m of both kinds before the ratios.
"""
from __future__ import annotations

import csv
import math
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Protocol

from mespot.config import KINDS
from mespot.data.annotations import KIND_OF_TYPE, TYPE_OF_KIND
from mespot.intervals import IOU_RULES, intersection_union
from mespot.types import Interval, check_kind

PREDICTION_COLUMNS = ("video_name", "start_frame", "end_frame", "score", "type_idx")
SCOPES = ("micro", "macro", "overall")


class Span(Protocol):
    """What matching needs of a row: annotations and predictions both provide it."""

    video: str
    onset: int
    offset: int
    kind: str


@dataclass(frozen=True)
class Prediction:
    """One spotted interval of a video, as in the prediction CSV (inclusive frame numbers)."""

    video: str
    onset: int         # the CSV's start_frame
    offset: int        # the CSV's end_frame
    score: float
    kind: str

    def __post_init__(self) -> None:
        check_kind(self.kind, "Prediction")

    @property
    def type_idx(self) -> int:
        return TYPE_OF_KIND[self.kind]

    @classmethod
    def from_interval(cls, video: str, interval: Interval) -> Prediction:
        return cls(video, interval.onset, interval.offset, interval.score, interval.kind)


@dataclass(frozen=True)
class Counts:
    """tp: matched predictions; n: predictions; m: ground-truth rows."""

    tp: int = 0
    n: int = 0
    m: int = 0

    def __add__(self, other: Counts) -> Counts:
        return Counts(self.tp + other.tp, self.n + other.n, self.m + other.m)

    def scores(self) -> dict[str, float | int]:
        """{'tp', 'n', 'm', 'precision', 'recall', 'f1'}; a ratio with a zero denominator is 0."""
        precision = self.tp / self.n if self.n else 0.0
        recall = self.tp / self.m if self.m else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        return {"tp": self.tp, "n": self.n, "m": self.m,
                "precision": precision, "recall": recall, "f1": f1}


def _is_match(gt: Span, pred: Span, rule: str) -> bool:
    inter, union = intersection_union((gt.onset, gt.offset), (pred.onset, pred.offset), rule)
    if union <= 0 or inter <= 0:
        return False
    return 2 * inter >= union if rule == "megc" else 2 * inter > union


def _max_bipartite(edges: list[list[int]], n_right: int) -> int:
    """Size of a maximum matching; edges[i] lists the right nodes left node i may take (Kuhn)."""
    return sum(owner >= 0 for owner in _matching(edges, n_right))


def _matching(edges: list[list[int]], n_right: int) -> list[int]:
    """A maximum matching as the left node owning each right node (-1: none)."""
    owner = [-1] * n_right

    def augment(i: int, seen: list[bool]) -> bool:
        for j in edges[i]:
            if not seen[j]:
                seen[j] = True
                if owner[j] == -1 or augment(owner[j], seen):
                    owner[j] = i
                    return True
        return False

    for i in range(len(edges)):
        augment(i, [False] * n_right)
    return owner


def found_ground_truth(gts: list[Span], preds: list[Span]) -> list[bool]:
    """Per ground truth of one video: matched by a prediction of its kind in the maximum one-to-one
    matching of the MEGC rule (the matching whose size is the true-positive count)."""
    return match_flags(gts, preds)[0]


def match_flags(gts: list[Span], preds: list[Span]) -> tuple[list[bool], list[bool]]:
    """One video under the MEGC rule: (per ground truth: found, i.e. not a false negative; per
    prediction: a true positive, else a false positive), from the one maximum one-to-one matching
    per kind whose size `match` counts as tp."""
    found, true = [False] * len(gts), [False] * len(preds)
    for kind in KINDS:
        left = [k for k, g in enumerate(gts) if g.kind == kind]
        right = [j for j, p in enumerate(preds) if p.kind == kind]
        edges = [[r for r, j in enumerate(right) if _is_match(gts[k], preds[j], "megc")] for k in left]
        for r, owner in enumerate(_matching(edges, len(right))):
            if owner >= 0:
                found[left[owner]] = True
                true[right[r]] = True
    return found, true


def _matched(gts: list[Span], preds: list[Span], rule: str) -> int:
    """True positives among the predictions of one video and kind."""
    if rule == "megc":
        edges = [[j for j, p in enumerate(preds) if _is_match(g, p, rule)] for g in gts]
        return _max_bipartite(edges, len(preds))
    marked = set()
    for g in gts:
        best_iou, best_j = 0.0, -1
        for j, p in enumerate(preds):
            inter, union = intersection_union((g.onset, g.offset), (p.onset, p.offset), rule)
            value = inter / union if union > 0 else 0.0
            if value > best_iou:
                best_iou, best_j = value, j
        if best_j >= 0 and _is_match(g, preds[best_j], rule):
            marked.add(best_j)
    return len(marked)


def match(gt_rows: Iterable[Span], pred_rows: Iterable[Span], rule: str = "megc") -> dict[str, Counts]:
    """Counts per kind ('micro', 'macro'), pooled over every video of either list."""
    if rule not in IOU_RULES:
        raise ValueError(f"unknown rule {rule!r}; valid: {', '.join(IOU_RULES)}")
    groups: dict[tuple[str, str], tuple[list, list]] = defaultdict(lambda: ([], []))
    for g in gt_rows:
        groups[(g.video, g.kind)][0].append(g)
    for p in pred_rows:
        groups[(p.video, p.kind)][1].append(p)
    counts = {kind: Counts() for kind in KINDS}
    for (_, kind), (gts, preds) in groups.items():
        counts[kind] = counts[kind] + Counts(_matched(gts, preds, rule), len(preds), len(gts))
    return counts


def summarise(counts: dict[str, Counts]) -> dict[str, dict[str, float | int]]:
    """{'micro', 'macro', 'overall'} -> scores; overall sums the kinds' counts first."""
    out = {kind: counts[kind].scores() for kind in KINDS}
    out["overall"] = (counts["micro"] + counts["macro"]).scores()
    return {scope: out[scope] for scope in SCOPES}


def evaluate(gt: Iterable[Span], pred: Iterable[Span], rule: str = "megc") -> dict[str, dict[str, float | int]]:
    """Pooled scores of predictions against ground truth under `rule`; see the module docstring."""
    return summarise(match(gt, pred, rule))


def read_predictions(path: str | Path) -> list[Prediction]:
    """Read a prediction CSV (`video_name,start_frame,end_frame,score,type_idx`); ValueError names the line."""
    path = Path(path)
    try:
        fh = open(path, newline="")
    except OSError as exc:
        raise ValueError(f"{path}: cannot read predictions ({exc.strerror})") from None
    with fh:
        try:
            return _read_prediction_rows(csv.DictReader(fh), path)
        except (UnicodeDecodeError, csv.Error) as exc:
            raise ValueError(f"{path}: not a readable CSV ({exc})") from None


def _read_prediction_rows(reader: csv.DictReader, path: Path) -> list[Prediction]:
    out = []
    missing = [c for c in PREDICTION_COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise ValueError(f"{path}:1: not a prediction CSV, missing column(s) {', '.join(missing)}")
    for record in reader:
        where = f"{path}:{reader.line_num}"
        try:
            start, end = int(record["start_frame"]), int(record["end_frame"])
            score, type_idx = float(record["score"]), int(record["type_idx"])
        except (TypeError, ValueError):
            raise ValueError(f"{where}: start_frame, end_frame and type_idx must be integers, "
                             f"score a number") from None
        if type_idx not in KIND_OF_TYPE:
            raise ValueError(f"{where}: type_idx must be 1 (macro) or 2 (micro), got {type_idx}")
        if not math.isfinite(score):
            raise ValueError(f"{where}: score is not finite")
        if not record["video_name"]:
            raise ValueError(f"{where}: empty video_name")
        out.append(Prediction(record["video_name"], start, end, score, KIND_OF_TYPE[type_idx]))
    return out


def write_predictions(path: str | Path, predictions: Iterable[Prediction]) -> None:
    """Write predictions in the CSV form `read_predictions` reads."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(PREDICTION_COLUMNS)
        for p in predictions:
            writer.writerow([p.video, p.onset, p.offset, repr(float(p.score)), p.type_idx])
