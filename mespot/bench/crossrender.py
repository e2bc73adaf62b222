"""Scoring several models on the same recorded features, per renderer, AU family and AU combination.

Why: a generated benchmark says how far it can be trusted only when a model trained without one
renderer is scored on that renderer's videos. `spot-bench accuracy` streams each test video once
through the live path (the first model), keeps the front-end's features, and scores every model
here on those features with the picker's rule over whole valid runs, which equals the online
output interval for interval (tests/test_peakpicker.py; the bench checks it again for the first
model). Each model decodes with its own config (from its metadata), as spot-live would run it.

AU families (brows, nose, upper lip, mouth corners, lower lip and chin): an expression counts in
every family its AUs reach; eye and cheek AUs 5, 6, 7, 43 reach none of the model's 12 regions and
count in none.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mespot.config import KINDS
from mespot.types import Interval

AU_FAMILIES: dict[str, frozenset[int]] = {
    "brows": frozenset({1, 2, 4}),
    "nose": frozenset({9}),
    "upper lip": frozenset({10}),
    "mouth corners": frozenset({12, 14, 15, 20}),
    "lower lip and chin": frozenset({17, 23, 24, 25, 26}),
}
FAMILY_TARGET = 0.5


@dataclass
class RecordedVideo:
    """One test video as the front-end saw it: features (T, 12, 2), validity, planted truth with AUs."""

    name: str
    face: str
    renderer: str
    features: np.ndarray
    valid: np.ndarray
    truth: list[Interval] = field(default_factory=list)
    truth_aus: list[str] = field(default_factory=list)    # '1+2' per planted interval
    expressions: bool = True


def families_of(au: str) -> list[str]:
    """The AU families a combination string ('4+7+9') reaches, in AU_FAMILIES order."""
    aus = {int(a) for a in au.split("+") if a.strip().isdigit()}
    return [name for name, members in AU_FAMILIES.items() if aus & members]


def found_truths(video: str, truth: list[Interval], emitted: list[Interval]) -> list[bool]:
    """Per planted interval: matched one-to-one by an emitted interval of its kind (MEGC rule, the
    same maximum matching the F1 counts)."""
    from mespot.eval.metrics import Prediction, found_ground_truth

    return found_ground_truth([Prediction.from_interval(video, t) for t in truth],
                              [Prediction.from_interval(video, e) for e in emitted])


def recall_tables(videos: list[RecordedVideo], emitted: dict[str, list[Interval]]) -> dict:
    """{"families": {family: {found, total, recall}}, "combinations": {'kind au': {...}}}."""
    fam: dict[str, list[int]] = {f: [0, 0] for f in AU_FAMILIES}
    combos: dict[str, list[int]] = {}
    for v in videos:
        for truth, au, hit in zip(v.truth, v.truth_aus, found_truths(v.name, v.truth, emitted.get(v.name, []))):
            for f in families_of(au):
                fam[f][0] += hit
                fam[f][1] += 1
            key = f"{truth.kind} {au}"
            combos.setdefault(key, [0, 0])
            combos[key][0] += hit
            combos[key][1] += 1

    def table(counts: dict[str, list[int]]) -> dict:
        return {k: {"found": f, "total": n, "recall": round(f / n, 4) if n else None}
                for k, (f, n) in counts.items()}

    return {"families": table(fam), "combinations": table(dict(sorted(combos.items())))}


def decode_with(model_path: str | Path, videos: list[RecordedVideo]) -> tuple[dict[str, list[Interval]], object]:
    """Every video's intervals from one ONNX model under its own config (picker's rule, whole runs)."""
    from mespot.engine.online import offline_probs
    from mespot.engine.runtime import open_runtime
    from mespot.engine.runtime.metadata import metadata_config
    from mespot.stream.peakpicker import decode_offline_same_rule

    runtime = open_runtime(str(model_path), "onnx")
    config = metadata_config(runtime.metadata)
    out = {v.name: decode_offline_same_rule(offline_probs(runtime, v.features, v.valid), config)
           for v in videos}
    return out, config


def score_cell(videos: list[RecordedVideo], emitted: dict[str, list[Interval]]) -> dict:
    """MEGC scores, per-face scores and recall tables of one (model, renderer) cell."""
    from mespot.eval.metrics import Prediction, evaluate

    scored = [v for v in videos if v.expressions]

    def score(group: list[RecordedVideo]) -> dict:
        truth = [Prediction.from_interval(v.name, i) for v in group for i in v.truth]
        preds = [Prediction.from_interval(v.name, i) for v in group for i in emitted.get(v.name, [])]
        return evaluate(truth, preds, "megc")

    faces = sorted({v.face for v in scored})
    cell = {"scores": score(scored),
            "by_face": {f: score([v for v in scored if v.face == f]) for f in faces},
            **recall_tables(scored, emitted)}
    distractor = [v for v in videos if not v.expressions]
    if distractor:
        cell["distractor_intervals"] = sum(len(emitted.get(v.name, [])) for v in distractor)
    return cell


def matrix(models: dict[str, str], videos: list[RecordedVideo]) -> dict:
    """{model name: {renderer: cell}} for every model over every renderer's videos."""
    renderers = sorted({v.renderer for v in videos})
    out: dict[str, dict] = {}
    for name, path in models.items():
        emitted, _ = decode_with(path, videos)
        out[name] = {r: score_cell([v for v in videos if v.renderer == r], emitted) for r in renderers}
    return out


def print_matrix(result: dict, console=None) -> None:
    """The F1 matrix (models x renderers), then each cell's AU-family recall."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    renderers = sorted({r for cells in result.values() for r in cells})
    t = Table(title="online overall F1 (micro / macro) by model and test renderer, MEGC rule")
    t.add_column("model")
    for r in renderers:
        t.add_column(f"renderer {r}", justify="right")
    for name, cells in result.items():
        t.add_row(name, *(_f1_text(cells[r]) if r in cells else "-" for r in renderers))
    console.print(t)
    fam = Table(title=f"recall per AU family (found / planted); target >= {FAMILY_TARGET}")
    fam.add_column("model, renderer")
    for f in AU_FAMILIES:
        fam.add_column(f, justify="right")
    fam.add_column("distractor-only", justify="right")
    for name, cells in result.items():
        for r, cell in cells.items():
            row = [f"{d['found']}/{d['total']} = {d['recall']:.2f}" if d["total"] else "-"
                   for d in cell["families"].values()]
            fam.add_row(f"{name}, {r}", *row, str(cell.get("distractor_intervals", "-")))
    console.print(fam)
    cells = [(name, r, cell) for name, row in result.items() for r, cell in row.items()]
    combos = sorted({k for _, _, cell in cells for k in cell["combinations"]},
                    key=lambda k: (k.split()[0], [int(a) for a in k.split()[1].split("+") if a.isdigit()]))
    per_au = Table(title="found / planted per AU combination")
    per_au.add_column("kind, AUs")
    for name, r, _ in cells:
        per_au.add_column(f"{name}, {r}", justify="right")
    for key in combos:
        per_au.add_row(key, *(f"{cell['combinations'][key]['found']}/{cell['combinations'][key]['total']}"
                              if key in cell["combinations"] else "-" for _, _, cell in cells))
    console.print(per_au)


def _f1_text(cell: dict) -> str:
    s = cell["scores"]
    return f"{s['overall']['f1']:.3f} ({s['micro']['f1']:.3f} / {s['macro']['f1']:.3f})"
