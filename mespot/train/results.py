"""What a LOSO run keeps per fold, how folds pool into scores, and the run folder on disk.

Counts are stored per epoch and kind as {tp, n, m} (mespot.eval.metrics.Counts), so any selection
of epochs can be pooled afterwards without re-running inference.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mespot.config import KINDS
from mespot.eval.metrics import Counts, summarise

FOLD_FORMAT = 1


class RunDirError(Exception):
    """The output folder holds a run that cannot be continued as asked (message says why)."""


@dataclass
class FoldResult:
    """One held-out subject. counts: epoch -> kind -> {tp, n, m}; epoch -1 is the untrained model."""

    subject: str
    videos: list[str]
    honest_epoch: int
    oracle_epoch: int
    counts: dict[int, dict[str, dict[str, int]]]
    losses: list[dict[str, Any]] = field(default_factory=list)   # EpochStats as dicts, per epoch
    train_segments: int = 0
    skipped_annotations: int = 0
    seconds: float = 0.0

    def kind_counts(self, epoch: int) -> dict[str, Counts]:
        return {k: Counts(**self.counts[epoch][k]) for k in KINDS}

    def overall_f1(self, epoch: int) -> float:
        return summarise(self.kind_counts(epoch))["overall"]["f1"]

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["counts"] = {str(e): c for e, c in self.counts.items()}
        d["format"] = FOLD_FORMAT
        return d

    @staticmethod
    def from_json(d: dict[str, Any]) -> "FoldResult":
        d = dict(d)
        d.pop("format", None)
        d["counts"] = {int(e): c for e, c in d["counts"].items()}
        return FoldResult(**d)


def oracle_epoch(counts: dict[int, dict[str, dict[str, int]]], begin: int) -> int:
    """The reference's per-subject choice: max overall F1 among epochs >= begin, earliest on ties."""
    best, best_f1 = None, -1.0
    for epoch in sorted(e for e in counts if e >= begin):
        f1 = summarise({k: Counts(**counts[epoch][k]) for k in KINDS})["overall"]["f1"]
        if f1 > best_f1:
            best, best_f1 = epoch, f1
    if best is None:
        raise ValueError(f"no evaluated epoch >= {begin}")
    return best


def pooled(folds: list[FoldResult], which: str) -> dict[str, dict[str, float | int]]:
    """Scores pooled over subjects (reference-model.md §7) at each fold's 'honest' or 'oracle' epoch, or 'untrained'."""
    total = {k: Counts() for k in KINDS}
    for f in folds:
        epoch = {"honest": f.honest_epoch, "oracle": f.oracle_epoch, "untrained": -1}[which]
        for k, c in f.kind_counts(epoch).items():
            total[k] = total[k] + c
    return summarise(total)


def pooled_f1_by_epoch(folds: list[FoldResult]) -> dict[int, float]:
    """Overall F1 pooled over subjects with every subject at the same epoch (what a fixed epoch gets)."""
    common = set.intersection(*(set(f.counts) for f in folds)) - {-1}
    out = {}
    for epoch in sorted(common):
        total = {k: Counts() for k in KINDS}
        for f in folds:
            for k, c in f.kind_counts(epoch).items():
                total[k] = total[k] + c
        out[epoch] = summarise(total)["overall"]["f1"]
    return out


class RunDir:
    """The files of one LOSO run: settings.json, folds/<subject>.json|.pt, results and report."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.folds = self.root / "folds"

    def fold_json(self, subject: str) -> Path:
        return self.folds / f"{subject}.json"

    def fold_checkpoint(self, subject: str) -> Path:
        return self.folds / f"{subject}.pt"

    def prepare(self, settings: dict[str, Any], resume: bool) -> None:
        """Create the run or check that a resumed one used the same settings."""
        path = self.root / "settings.json"
        if path.exists():
            if not resume:
                raise RunDirError(f"{self.root} already holds a LOSO run; pass --resume to continue it "
                                      f"or choose another output folder")
            stored = json.loads(path.read_text())
            if stored != settings:
                changed = sorted(k for k in set(stored) | set(settings) if stored.get(k) != settings.get(k))
                raise RunDirError(f"{self.root} was run with different settings ({', '.join(changed)}); "
                                 f"use another output folder")
        self.folds.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(settings, indent=2, sort_keys=True))

    def load_fold(self, subject: str) -> FoldResult | None:
        path = self.fold_json(subject)
        return FoldResult.from_json(json.loads(path.read_text())) if path.exists() else None

    def save_fold(self, fold: FoldResult) -> None:
        tmp = self.fold_json(fold.subject).with_suffix(".json.tmp")
        tmp.write_text(json.dumps(fold.to_json(), indent=1))
        tmp.replace(self.fold_json(fold.subject))
