"""Leave-one-subject-out training and evaluation, with the honest and the oracle epoch side by side.

Per fold: train on every other subject (normalisation from their valid features), decode the held-out
subject's videos offline after each epoch from `oracle_begin` on, and count matches under `rule`.
Two selections are reported:
- honest: one epoch fixed before any test data is seen: `train.fixed_epoch`, or the last trained
  epoch when a shorter `epochs` is asked for. The same epoch for every subject.
- oracle: the reference's choice (reference-model.md §5), per subject the epoch >= `train.epoch_begin` with the best
  overall F1 on that subject's own test videos. Optimistic by construction; shown for comparison with
  the paper's table only.
Each finished fold is written to RUN_DIR/folds/<subject>.json (and its honest model to <subject>.pt)
at once, so an interrupted run resumes where it stopped.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from mespot.config import KINDS, Config
from mespot.data.adjacency import build_adjacency
from mespot.data.annotations import AnnotationSet
from mespot.data.videos import VideoFeatures, common_frontend
from mespot.engine.checkpoint import save_checkpoint
from mespot.engine.model import AUWGCN
from mespot.engine.priors import resolve_adjacency
from mespot.eval.metrics import Counts, match, summarise
from mespot.train.dataset import BuildReport, build_segments, normalisation_stats
from mespot.train.inference import predict_videos
from mespot.train.loop import EpochStats, make_model, train_model
from mespot.train.report import write_results
from mespot.train.results import FoldResult, RunDir, oracle_epoch


@dataclass(frozen=True)
class Selection:
    """Which epochs a run evaluates and which it reports (all 0-based)."""

    epochs: int
    honest_epoch: int
    oracle_begin: int

    @staticmethod
    def for_run(config: Config, epochs: int | None) -> "Selection":
        epochs = config.train.epochs if epochs is None else int(epochs)
        if epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {epochs}")
        return Selection(epochs, min(config.train.fixed_epoch, epochs - 1),
                         min(config.train.epoch_begin, epochs - 1))

    def evaluated(self) -> range:
        return range(min(self.honest_epoch, self.oracle_begin), self.epochs)


def _count_dict(counts: dict[str, Counts]) -> dict[str, dict[str, int]]:
    return {k: {"tp": c.tp, "n": c.n, "m": c.m} for k, c in counts.items()}


def run_fold(subject: str, videos: list[VideoFeatures], annotations: AnnotationSet, config: Config,
             selection: Selection, *, rule: str = "megc", adjacency_from_training: bool = False,
             checkpoint_path: Path | None = None,
             on_epoch: Callable[[EpochStats, float | None], None] | None = None) -> FoldResult:
    """Train without `subject`, evaluate on it. on_epoch(stats, held-out overall F1 or None).

    adjacency_from_training: build the AU prior from the training subjects' rows only (reference-model.md §2.5)
    instead of the config's prior, which the reference counted over all subjects (reference-model.md §10.8).
    """
    test = [v for v in videos if v.subject == subject]
    train_videos = [v for v in videos if v.subject != subject]
    if not test or not train_videos:
        raise ValueError(f"fold {subject}: needs videos of the subject and of at least one other subject")
    test_names = {v.video for v in test}
    gt = [a for a in annotations.rows if a.video in test_names]
    t0 = time.perf_counter()
    report = BuildReport()
    segments = build_segments(train_videos, annotations, config.train, report)
    mean, std = normalisation_stats(train_videos)
    if adjacency_from_training:
        train_names = {v.video for v in train_videos}
        adjacency = build_adjacency([a for a in annotations.rows if a.video in train_names])
    else:
        adjacency = resolve_adjacency(config.adjacency)

    def evaluate(model: AUWGCN) -> dict[str, dict[str, int]]:
        return _count_dict(match(gt, predict_videos(model, test, config), rule))

    counts = {-1: evaluate(make_model(config.train, adjacency=adjacency, input_mean=mean, input_std=std).eval())}
    losses: list[dict[str, Any]] = []
    evaluated = set(selection.evaluated())

    def after_epoch(epoch: int, model: AUWGCN, stats: EpochStats) -> None:
        losses.append(asdict(stats))
        f1 = None
        if epoch in evaluated:
            counts[epoch] = evaluate(model)
            f1 = summarise({k: Counts(**counts[epoch][k]) for k in KINDS})["overall"]["f1"]
        if epoch == selection.honest_epoch and checkpoint_path is not None:
            save_checkpoint(checkpoint_path, model, config=config, fps=config.fps, epoch=epoch,
                            extra={"loso_held_out": subject}, frontend=common_frontend(train_videos))
        if on_epoch is not None:
            on_epoch(stats, f1)

    train_model(segments, config.train, adjacency=adjacency, input_mean=mean, input_std=std,
                epochs=selection.epochs, on_epoch=after_epoch, fps=config.fps)
    return FoldResult(subject=subject, videos=sorted(test_names), honest_epoch=selection.honest_epoch,
                      oracle_epoch=oracle_epoch(counts, selection.oracle_begin), counts=counts,
                      losses=losses, train_segments=len(segments),
                      skipped_annotations=len(report.skipped), seconds=time.perf_counter() - t0)


def run_settings(config: Config, selection: Selection, rule: str,
                 adjacency_from_training: bool = False) -> dict[str, Any]:
    """What must not change between a run and its resumption (JSON-comparable)."""
    return json.loads(json.dumps({"config": config.to_dict(), "epochs": selection.epochs,
                                  "honest_epoch": selection.honest_epoch,
                                  "oracle_begin": selection.oracle_begin, "rule": rule,
                                  "adjacency": "training subjects" if adjacency_from_training
                                  else config.adjacency}))


def loso_subjects(videos: list[VideoFeatures], subjects: list[str] | None = None) -> list[str]:
    """The held-out subjects: all subjects with videos, or the requested ones (checked)."""
    have = sorted({v.subject for v in videos})
    if len(have) < 2:
        raise ValueError(f"LOSO needs at least two subjects with videos, found {len(have)}: {have}")
    if not subjects:
        return have
    unknown = [s for s in subjects if s not in have]
    if unknown:
        raise ValueError(f"unknown subject(s) {', '.join(unknown)}; subjects with videos: {', '.join(have)}")
    return list(dict.fromkeys(subjects))


def run_loso(videos: list[VideoFeatures], annotations: AnnotationSet, config: Config, out_dir: str | Path,
             *, epochs: int | None = None, subjects: list[str] | None = None, rule: str = "megc",
             adjacency_from_training: bool = False, resume: bool = False,
             show_progress: bool = True) -> list[FoldResult]:
    """Every fold (resumable), then per_subject.csv, summary.json and the report in `out_dir`."""
    selection = Selection.for_run(config, epochs)
    held_out = loso_subjects(videos, subjects)
    run = RunDir(out_dir)
    settings = run_settings(config, selection, rule, adjacency_from_training)
    run.prepare(settings, resume)
    folds: list[FoldResult] = []
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeRemainingColumn(), TextColumn("{task.fields[status]}"))
    with Progress(*columns, disable=not show_progress) as progress:
        all_task = progress.add_task("subjects", total=len(held_out), status="")
        for subject in held_out:
            done = run.load_fold(subject) if resume else None
            if done is not None:
                folds.append(done)
                progress.update(all_task, advance=1, status=f"{subject} resumed")
                continue
            fold_task = progress.add_task(f"  {subject}", total=selection.epochs, status="")

            def on_epoch(stats: EpochStats, f1: float | None, task=fold_task) -> None:
                shown = f"loss {stats.loss:.4f}" + ("" if f1 is None else f"  held-out F1 {f1:.3f}")
                progress.update(task, advance=1, status=shown)

            fold = run_fold(subject, videos, annotations, config, selection, rule=rule,
                            adjacency_from_training=adjacency_from_training,
                            checkpoint_path=run.fold_checkpoint(subject), on_epoch=on_epoch)
            run.save_fold(fold)
            folds.append(fold)
            progress.remove_task(fold_task)
            progress.update(all_task, advance=1,
                            status=f"{subject}: honest F1 {fold.overall_f1(fold.honest_epoch):.3f}, "
                                   f"oracle {fold.overall_f1(fold.oracle_epoch):.3f}")
    write_results(run.root, folds, settings)
    return folds
