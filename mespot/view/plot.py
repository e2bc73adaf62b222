"""`spot-plot`: a run's probability curves, thresholds and intervals as a PNG or SVG (matplotlib).

A run is read from a `spot-live --record` JSONL file (its `score` and `interval` messages,
docs/protocol.md) or computed offline from a feature file and a model (the offline reference pass,
mespot.engine.online.offline_probs, and the live picker's rule over the whole sequence,
mespot.stream.peakpicker.decode_offline_same_rule, which the tests hold equal to the live picker).
With annotations, each interval is marked TP or FP and each annotated span found or FN under the
MEGC rule, by the project's own matching (mespot.eval.metrics.match_flags), and the figure's title
carries the same counts spot-eval prints.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mespot.config import KINDS, Config
from mespot.engine.probs import PROB_COLUMNS, kind_columns
from mespot.types import Interval

SUFFIXES = (".png", ".svg")
COLOURS = {"start": "tab:green", "end": "tab:red", "none": "0.7", "apex": "black"}
TP_COLOUR, FP_COLOUR, FN_COLOUR, FOUND_COLOUR = "tab:green", "tab:red", "tab:orange", "tab:blue"


@dataclass
class RunCurves:
    """One run: probabilities per frame (NaN where the frame had no features) and its intervals."""

    name: str                          # the stream id, or the feature file's stem
    probs: np.ndarray                  # (T, 8) float32 in PROB_COLUMNS order, row = frame number
    intervals: list[Interval]
    source: str                        # what it was read from, for the title
    notes: list[str] = field(default_factory=list)

    @property
    def valid(self) -> np.ndarray:
        return np.isfinite(self.probs).all(axis=1)


def read_record(path: str | Path, stream: str | None = None) -> RunCurves:
    """A run from a spot-live JSONL recording; ValueError (naming the file and line) when it is not one."""
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: cannot read the recording ({getattr(exc, 'strerror', None) or exc})") from None
    messages = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            m = json.loads(line)
        except json.JSONDecodeError:
            raise ValueError(f"{path}:{n}: not a JSON line (want a spot-live --record file)") from None
        if not isinstance(m, dict) or "topic" not in m:
            raise ValueError(f"{path}:{n}: not a mespot message (no 'topic'; want a spot-live --record file)")
        messages.append((n, m))
    streams = sorted({str(m.get("stream")) for _, m in messages if m.get("topic") in ("score", "interval")})
    if stream is None:
        if len(streams) > 1:
            raise ValueError(f"{path}: holds streams {', '.join(streams)}; choose one with --stream")
        stream = streams[0] if streams else None
    elif stream not in streams:
        raise ValueError(f"{path}: no stream {stream!r}; it holds {', '.join(streams) or 'none'}")
    rows: dict[int, list | None] = {}
    intervals = []
    for n, m in messages:
        if m.get("stream") != stream:
            continue
        try:
            if m["topic"] == "score":
                if list(m["columns"]) != list(PROB_COLUMNS):
                    raise ValueError(f"{path}:{n}: score columns {m['columns']} are not {list(PROB_COLUMNS)}")
                for frame, ok, p in zip(m["frames"], m["valid"], m["probs"]):
                    rows[int(frame)] = [float(v) for v in p] if ok and p is not None else None
            elif m["topic"] == "interval":
                intervals.append(Interval(m["kind"], int(m["onset_frame"]), int(m["apex_frame"]),
                                          int(m["offset_frame"]), float(m["score"])))
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, ValueError) and str(exc).startswith(str(path)):
                raise
            raise ValueError(f"{path}:{n}: malformed {m.get('topic')} message ({type(exc).__name__}: {exc})") from None
    if not rows:
        raise ValueError(f"{path}: no score messages for stream {stream!r} (recorded with --score-rate 0?)")
    probs = np.full((max(rows) + 1, len(PROB_COLUMNS)), np.nan, np.float32)
    for frame, row in rows.items():
        if row is not None:
            probs[frame] = row
    return RunCurves(str(stream), probs, sorted(intervals, key=lambda i: (i.apex, i.kind)), str(path))


def offline_run(features_path: str | Path, runtime, config: Config) -> RunCurves:
    """A run computed from a feature file (spot-extract) with a model: what the live path would show."""
    from mespot.engine.online import offline_probs
    from mespot.featurefile import load_features
    from mespot.stream.peakpicker import decode_offline_same_rule

    features_path = Path(features_path)
    ff = load_features(features_path)
    probs = offline_probs(runtime, ff.features, ff.valid)
    intervals = decode_offline_same_rule(probs, config, ff.valid)
    return RunCurves(features_path.stem, probs, intervals, f"{features_path.name} (offline)")


@dataclass(frozen=True)
class Marked:
    """The intervals and annotated spans of one video, each with its MEGC verdict."""

    predicted: list[tuple[Interval, bool | None]]      # True TP, False FP, None: no annotations given
    annotated: list[tuple[Interval, bool]]             # True found, False FN
    scores: dict | None                                # spot-eval's table (micro, macro, overall)


def mark(run: RunCurves, annotations: list | None) -> Marked:
    """TP/FP per interval and found/FN per annotated span (mespot.eval.metrics, MEGC rule)."""
    if annotations is None:
        return Marked([(i, None) for i in run.intervals], [], None)
    from mespot.eval.metrics import Prediction, evaluate, match_flags

    preds = [Prediction.from_interval(run.name, i) for i in run.intervals]
    gts = [a for a in annotations]
    found, true = match_flags(gts, preds)
    spans = [Interval(a.kind, a.onset, min(max(a.apex, a.onset), max(a.offset, a.onset)), max(a.offset, a.onset))
             for a in gts]
    return Marked(list(zip(run.intervals, true)), list(zip(spans, found)), evaluate(gts, preds))


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, stop) of each run of True."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)))


def draw(run: RunCurves, config: Config, out: str | Path, marked: Marked, *, frames: tuple[int, int] | None = None) -> Path:
    """Write the figure (PNG or SVG by suffix): one panel per kind, frames on x."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    plt.rcParams["svg.fonttype"] = "none"          # SVG text stays text (searchable, smaller)

    out = Path(out)
    lo, hi = frames if frames is not None else (0, len(run.probs))
    hi = min(hi, len(run.probs))
    x = np.arange(lo, hi)
    width = float(np.clip((hi - lo) / 60.0, 8.0, 22.0)) + 2.2         # + the legend on the right
    fig, axes = plt.subplots(len(KINDS), 1, figsize=(width, 6.4), sharex=True, squeeze=False)
    for ax, kind in zip(axes[:, 0], KINDS):
        cols = kind_columns(kind)
        for name, col in zip(("start", "end", "none", "apex"), cols):
            ax.plot(x, run.probs[lo:hi, col], color=COLOURS[name], lw=0.7 if name == "none" else 1.2,
                    ls="--" if name == "none" else "-", label=f"P {name}", zorder=1 if name == "none" else 2)
        threshold = config.decoding(kind).apex_threshold
        ax.axhline(threshold, color="0.35", ls=":", lw=1.0, label=f"apex threshold {threshold:g}")
        for a, b in _runs(~run.valid[lo:hi]):
            ax.axvspan(lo + a - 0.5, lo + b - 0.5, color="0.88", lw=0, zorder=0)
        counts = {"TP": 0, "FP": 0, "FN": 0}
        for interval, verdict in marked.predicted:
            if interval.kind != kind or interval.offset < lo or interval.onset >= hi:
                continue
            colour = {True: TP_COLOUR, False: FP_COLOUR, None: "tab:purple"}[verdict]
            ax.axvspan(interval.onset - 0.5, interval.offset + 0.5, ymin=0.1, color=colour, alpha=0.22, lw=0)
            label = {True: "TP", False: "FP", None: ""}[verdict]
            if verdict is not None:
                counts[label] += 1
            ax.text(0.5 * (interval.onset + interval.offset), 1.06, f"{label} {interval.score:.2f}".strip(),
                    ha="center", va="bottom", fontsize=7, color=colour, clip_on=True)
        for span, found in marked.annotated:
            if span.kind != kind or span.offset < lo or span.onset >= hi:
                continue
            colour = FOUND_COLOUR if found else FN_COLOUR
            ax.plot([span.onset - 0.5, span.offset + 0.5], [-0.06, -0.06], color=colour, lw=5, solid_capstyle="butt")
            if not found:
                counts["FN"] += 1
                ax.text(0.5 * (span.onset + span.offset), -0.15, "FN", ha="center", va="top", fontsize=7, color=colour)
        title = f"{kind}"
        if marked.scores is not None:
            s = marked.scores[kind]
            title += (f": TP {counts['TP']}, FP {counts['FP']}, FN {counts['FN']} (MEGC rule, IoU >= 0.5; "
                      f"F1 {s['f1']:.2f})")
        ax.set_title(title, fontsize=9, loc="left")
        ax.set_ylim(-0.2, 1.2)
        ax.set_ylabel("probability")
        handles, labels = ax.get_legend_handles_labels()
        extra = [Patch(color=TP_COLOUR, alpha=0.3, label="interval TP"), Patch(color=FP_COLOUR, alpha=0.3, label="interval FP"),
                 Patch(color=FOUND_COLOUR, label="annotated, found"), Patch(color=FN_COLOUR, label="annotated, FN (missed)")] \
            if marked.scores is not None else [Patch(color="tab:purple", alpha=0.3, label="interval")]
        ax.legend(handles + extra, labels + [p.get_label() for p in extra], fontsize=7, loc="upper left",
                  bbox_to_anchor=(1.005, 1.0), borderaxespad=0.0)
    axes[-1, 0].set_xlabel("frame")
    axes[-1, 0].set_xlim(lo - 0.5, hi - 0.5)
    head = f"{run.name} ({run.source}); config {config.name}"
    if marked.scores is not None:
        o = marked.scores["overall"]
        head += f"; overall TP {o['tp']} of {o['n']} intervals, {o['m']} annotated, F1 {o['f1']:.2f}"
    fig.suptitle(head, fontsize=10)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
