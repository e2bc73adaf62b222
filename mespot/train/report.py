"""The results of a LOSO run, for machines (per_subject.csv, summary.json) and people (report.md + PNGs)."""
from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np

from mespot.config import KINDS
from mespot.train.results import FoldResult, pooled, pooled_f1_by_epoch

SELECTIONS = ("untrained", "honest", "oracle")
PER_SUBJECT_COLUMNS = (
    "subject", "videos", "gt_micro", "gt_macro", "untrained_f1",
    "honest_epoch", "honest_tp", "honest_n", "honest_m", "honest_f1",
    "oracle_epoch", "oracle_tp", "oracle_n", "oracle_m", "oracle_f1",
)


def _overall(fold: FoldResult, epoch: int) -> tuple[int, int, int]:
    c = fold.kind_counts(epoch)
    return (sum(c[k].tp for k in KINDS), sum(c[k].n for k in KINDS), sum(c[k].m for k in KINDS))


def per_subject_rows(folds: list[FoldResult]) -> list[dict[str, Any]]:
    rows = []
    for f in sorted(folds, key=lambda f: f.subject):
        gt = f.kind_counts(-1)
        row = {"subject": f.subject, "videos": len(f.videos), "gt_micro": gt["micro"].m,
               "gt_macro": gt["macro"].m, "untrained_f1": round(f.overall_f1(-1), 4)}
        for which, epoch in (("honest", f.honest_epoch), ("oracle", f.oracle_epoch)):
            tp, n, m = _overall(f, epoch)
            row.update({f"{which}_epoch": epoch, f"{which}_tp": tp, f"{which}_n": n, f"{which}_m": m,
                        f"{which}_f1": round(f.overall_f1(epoch), 4)})
        rows.append(row)
    return rows


def summary(folds: list[FoldResult], settings: dict[str, Any]) -> dict[str, Any]:
    return {
        "rule": settings["rule"],
        "config": settings["config"]["name"],
        "epochs": settings["epochs"],
        "honest_epoch": settings["honest_epoch"],
        "oracle_begin": settings["oracle_begin"],
        "subjects": sorted(f.subject for f in folds),
        **{which: pooled(folds, which) for which in SELECTIONS},
        "pooled_f1_by_epoch": {str(e): round(v, 4) for e, v in pooled_f1_by_epoch(folds).items()},
    }


def _plot_losses(folds: list[FoldResult], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    curves = [[s["loss"] for s in f.losses] for f in folds if f.losses]
    for f in folds:
        ax.plot([s["epoch"] for s in f.losses], [s["loss"] for s in f.losses], lw=0.8, alpha=0.5,
                label=f.subject if len(folds) <= 8 else None)
    if curves:
        n = min(len(c) for c in curves)
        ax.plot(range(n), np.mean([c[:n] for c in curves], axis=0), color="k", lw=2, label="mean over folds")
        ax.legend(fontsize=8)
    ax.set_yscale("log")
    ax.set(xlabel="epoch", ylabel="training loss (reference-model.md §5 total, log scale)",
           title="Training loss per held-out subject's fold")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_subjects(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = np.arange(len(rows))
    fig, ax = plt.subplots(figsize=(max(6, 0.45 * len(rows) + 2), 4))
    ax.bar(x - 0.27, [r["untrained_f1"] for r in rows], 0.27, label="untrained", color="#bbbbbb")
    ax.bar(x, [r["honest_f1"] for r in rows], 0.27, label="honest (fixed epoch)", color="#1f77b4")
    ax.bar(x + 0.27, [r["oracle_f1"] for r in rows], 0.27, label="oracle (best test epoch)", color="#ff7f0e")
    ax.set_xticks(x, [r["subject"] for r in rows], rotation=60, ha="right", fontsize=8)
    ax.set(ylabel="overall F1 on the held-out subject", ylim=(0, 1.02), title="Per-subject F1")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_f1_by_epoch(by_epoch: dict[int, float], honest_epoch: int, oracle_f1: float, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(list(by_epoch), list(by_epoch.values()), marker=".", label="pooled F1, all subjects at this epoch")
    ax.axvline(honest_epoch, color="#1f77b4", ls="--", label=f"honest epoch {honest_epoch}")
    ax.axhline(oracle_f1, color="#ff7f0e", ls=":", label=f"oracle (per-subject best) {oracle_f1:.3f}")
    ax.set(xlabel="epoch", ylabel="overall F1", ylim=(0, 1.02), title="Held-out F1 against epoch")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _markdown(summ: dict[str, Any], rows: list[dict[str, Any]], folds: list[FoldResult]) -> str:
    lines = [
        f"# LOSO report: config `{summ['config']}`, rule `{summ['rule']}`",
        "",
        f"{len(rows)} held-out subjects, {summ['epochs']} epochs per fold. Scores are pooled over subjects "
        "(TP, predictions and ground truths summed, then precision/recall/F1).",
        "",
        f"- **honest**: every subject at epoch {summ['honest_epoch']}, fixed before any test video was seen.",
        f"- **oracle**: the reference's choice, per subject the epoch >= {summ['oracle_begin']} with the best "
        "F1 on that subject's own test videos. It peeks at the test labels; it is shown only to compare "
        "with published numbers, which were selected this way.",
        "- **untrained**: the freshly initialised model, as a floor.",
        "",
        "| selection | micro P | micro R | micro F1 | macro P | macro R | macro F1 | overall TP/N/M | overall F1 |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for which in ("untrained", "honest", "oracle"):
        s = summ[which]
        mi, ma, ov = s["micro"], s["macro"], s["overall"]
        lines.append(f"| {which} | {mi['precision']:.3f} | {mi['recall']:.3f} | {mi['f1']:.3f} | "
                     f"{ma['precision']:.3f} | {ma['recall']:.3f} | {ma['f1']:.3f} | "
                     f"{ov['tp']}/{ov['n']}/{ov['m']} | **{ov['f1']:.3f}** |")
    gap = summ["oracle"]["overall"]["f1"] - summ["honest"]["overall"]["f1"]
    lines += ["", f"Oracle minus honest overall F1: {gap:+.3f}.", "",
              "![Per-subject F1](per_subject_f1.png)", "", "![F1 against epoch](f1_by_epoch.png)", "",
              "![Training loss](loss_curves.png)", "", "## Per subject", "",
              "| subject | videos | GT micro | GT macro | untrained F1 | honest TP/N/M | honest F1 | "
              "oracle epoch | oracle TP/N/M | oracle F1 |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['subject']} | {r['videos']} | {r['gt_micro']} | {r['gt_macro']} | "
                     f"{r['untrained_f1']:.3f} | {r['honest_tp']}/{r['honest_n']}/{r['honest_m']} | "
                     f"{r['honest_f1']:.3f} | {r['oracle_epoch']} | "
                     f"{r['oracle_tp']}/{r['oracle_n']}/{r['oracle_m']} | {r['oracle_f1']:.3f} |")
    seconds = sum(f.seconds for f in folds)
    lines += ["", f"Training segments per fold: {min(f.train_segments for f in folds)}.."
              f"{max(f.train_segments for f in folds)}; annotations skipped by the training repairs per fold: "
              f"{max(f.skipped_annotations for f in folds)} at most; compute {seconds:.0f} s in all.", ""]
    return "\n".join(lines)


def write_results(root: str | Path, folds: list[FoldResult], settings: dict[str, Any]) -> dict[str, Any]:
    """Write per_subject.csv, summary.json, report.md and three PNGs under `root`; return the summary."""
    root = Path(root)
    rows = per_subject_rows(folds)
    with open(root / "per_subject.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=PER_SUBJECT_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    summ = summary(folds, settings)
    (root / "summary.json").write_text(json.dumps(summ, indent=2))
    _plot_losses(folds, root / "loss_curves.png")
    _plot_subjects(rows, root / "per_subject_f1.png")
    _plot_f1_by_epoch({int(e): v for e, v in summ["pooled_f1_by_epoch"].items()}, summ["honest_epoch"],
                      summ["oracle"]["overall"]["f1"], root / "f1_by_epoch.png")
    (root / "report.md").write_text(_markdown(summ, rows, folds))
    return summ
