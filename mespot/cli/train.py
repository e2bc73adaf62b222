"""spot-train: train AUW-GCN models from feature files and an annotation CSV.

  spot-train loso --features DIR --annotations CSV --config casme2 -o RUN_DIR
      leave-one-subject-out: per subject, train on the others and evaluate on it; reports the honest
      F1 (one epoch fixed in advance) beside the reference's oracle F1 (best epoch per test subject).
  spot-train fit --features DIR --annotations CSV --config live -o model.pt
      one model on all given subjects, saved as a self-describing checkpoint.
  spot-train adjacency ANNOTATIONS.csv -o OUT.npy
      the AU co-occurrence prior (reference-model.md §2.5) of an annotation file.
`--reference-segments DIR` replaces `--features` for the authors' released segment files.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.console import Console

from mespot.config import ConfigError, load_config
from mespot.errors import InputError

PROG = "spot-train"


def _add_data_arguments(p: argparse.ArgumentParser) -> None:
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--features", type=Path, metavar="DIR",
                     help="folder of <video>.npz feature files written by spot-extract")
    src.add_argument("--reference-segments", type=Path, metavar="DIR",
                     help="folder of the authors' released segment files (<video>_<offset>.npz)")
    p.add_argument("--annotations", type=Path, required=True, metavar="CSV",
                   help="interval annotations (subject,video_name,start_frame,apex_frame,end_frame,type_idx,au)")
    p.add_argument("--config", default="casme2", metavar="NAME",
                   help="config name in configs/ or a YAML path (default: casme2)")
    p.add_argument("--epochs", type=int, metavar="N", help="override train.epochs of the config")
    p.add_argument("--subjects", nargs="+", metavar="S", help="only these subjects (see each command)")
    p.add_argument("--fps", type=float, help="feature rate of --reference-segments (default: the config's fps)")
    p.add_argument("--threads", type=int, metavar="N",
                   help="torch CPU threads (default: torch's choice; 1 is often fastest for this small "
                        "model on a busy machine)")
    p.add_argument("--quiet", action="store_true", help="no progress display")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0],
                                     epilog="\n".join(__doc__.splitlines()[2:]),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    loso = sub.add_parser("loso", help="leave-one-subject-out training and evaluation",
                          description="Leave-one-subject-out: honest (fixed epoch) and oracle (best test "
                                      "epoch, the reference's choice) F1 side by side. --subjects limits "
                                      "the held-out subjects; training always uses every other subject.")
    _add_data_arguments(loso)
    loso.add_argument("-o", "--output", type=Path, required=True, metavar="RUN_DIR",
                      help="folder for folds/, per_subject.csv, summary.json, report.md and plots")
    loso.add_argument("--rule", choices=("megc", "reference"), default="megc",
                      help="matching rule: megc (IoU >= 0.5, one-to-one; default) or reference (reference-model.md §7)")
    loso.add_argument("--resume", action="store_true", help="keep finished folds of RUN_DIR, run the rest")
    loso.add_argument("--adjacency-from-training", action="store_true",
                      help="per fold, build the AU prior from the training subjects' annotations only "
                           "(the built-in priors were counted over all subjects, test ones included)")
    loso.set_defaults(run=_run_loso)

    fit = sub.add_parser("fit", help="train one model on all given subjects and save a checkpoint",
                         description="Train one model on every video of the given subjects (--subjects: "
                                     "only these). Trains train.fixed_epoch + 1 epochs, the epoch LOSO's "
                                     "honest score describes, unless --epochs is given.")
    _add_data_arguments(fit)
    fit.add_argument("-o", "--output", type=Path, required=True, metavar="MODEL.pt", help="checkpoint to write")
    fit.set_defaults(run=_run_fit)

    adj = sub.add_parser("adjacency", help="AU co-occurrence prior of an annotation CSV (reference-model.md §2.5)",
                         description="Write the 12x12 row-normalised AU co-occurrence matrix of an "
                                     "annotation CSV as float32 .npy (usable as a config's `adjacency`).")
    adj.add_argument("annotations", type=Path, metavar="ANNOTATIONS.csv")
    adj.add_argument("-o", "--output", type=Path, required=True, metavar="OUT.npy")
    adj.set_defaults(run=_run_adjacency)
    return parser


def _load(args: argparse.Namespace, console: Console):
    """Config, annotations and videos from the command line; InputError for anything unusable."""
    from mespot.data.annotations import load_annotations
    from mespot.data.videos import common_frontend, load_feature_dir, load_reference_segments

    try:
        config = load_config(args.config)
        annotations = load_annotations(args.annotations)
        if args.features is not None:
            videos = load_feature_dir(args.features, annotations)
        else:
            fps = config.fps if args.fps is None else args.fps
            videos = load_reference_segments(args.reference_segments, fps=fps, annotations=annotations)
    except (ConfigError, ValueError, FileNotFoundError) as exc:
        raise InputError(str(exc)) from None
    if not videos:
        raise InputError("no videos to train on")
    try:
        common_frontend(videos)         # one model matches one front-end: refuse a mix before training
    except ValueError as exc:
        raise InputError(str(exc)) from None
    rates = sorted({v.fps for v in videos})
    if any(abs(r - config.fps) > 1e-6 for r in rates):
        raise InputError(f"features are at {', '.join(f'{r:g}' for r in rates)} fps but config "
                         f"{config.name!r} is for {config.fps:g} fps (its ranges are in feature indices)")
    if args.epochs is not None and args.epochs < 1:
        raise InputError(f"--epochs must be >= 1, got {args.epochs}")
    if args.threads is not None:
        if args.threads < 1:
            raise InputError(f"--threads must be >= 1, got {args.threads}")
        import torch
        torch.set_num_threads(args.threads)
    counts = annotations.issue_counts()
    odd = ", ".join(f"{code}: {n}" for code, n in sorted(counts.items()))
    console.print(f"{len(annotations.rows)} annotations ({odd or 'no oddities'}), {len(videos)} videos of "
                  f"{len({v.subject for v in videos})} subjects, config {config.name} at {config.fps:g} fps")
    return config, annotations, videos


def _run_loso(args: argparse.Namespace, console: Console) -> int:
    from mespot.train.loso import loso_subjects, run_loso
    from mespot.train.results import RunDirError

    config, annotations, videos = _load(args, console)
    try:
        loso_subjects(videos, args.subjects)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    try:
        folds = run_loso(videos, annotations, config, args.output, epochs=args.epochs,
                         subjects=args.subjects, rule=args.rule, resume=args.resume,
                         adjacency_from_training=args.adjacency_from_training,
                         show_progress=not args.quiet)
    except RunDirError as exc:
        raise InputError(str(exc)) from None
    _print_summary(console, args.output, len(folds))
    return 0


def _print_summary(console: Console, run_dir: Path, n_folds: int) -> None:
    import json

    from rich.table import Table

    summ = json.loads((run_dir / "summary.json").read_text())
    table = Table(title=f"LOSO, {n_folds} subjects, rule {summ['rule']} (pooled)")
    table.add_column("selection")
    for scope in ("micro", "macro", "overall"):
        table.add_column(f"{scope} F1", justify="right")
    table.add_column("overall TP/N/M", justify="right")
    labels = {"untrained": "untrained", "honest": f"honest (epoch {summ['honest_epoch']})",
              "oracle": f"oracle (best epoch >= {summ['oracle_begin']} per test subject)"}
    for which, label in labels.items():
        s = summ[which]
        table.add_row(label, *(f"{s[k]['f1']:.3f}" for k in ("micro", "macro", "overall")),
                      f"{s['overall']['tp']}/{s['overall']['n']}/{s['overall']['m']}")
    console.print(table)
    console.print(f"report: {run_dir / 'report.md'}")


def _run_fit(args: argparse.Namespace, console: Console) -> int:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from mespot.data.videos import common_frontend
    from mespot.engine.checkpoint import save_checkpoint
    from mespot.engine.priors import resolve_adjacency
    from mespot.train.dataset import BuildReport, build_segments, normalisation_stats
    from mespot.train.loop import train_model

    config, annotations, videos = _load(args, console)
    if args.subjects:
        have = {v.subject for v in videos}
        unknown = [s for s in args.subjects if s not in have]
        if unknown:
            raise InputError(f"unknown subject(s) {', '.join(unknown)}; subjects with videos: "
                             f"{', '.join(sorted(have))}")
        videos = [v for v in videos if v.subject in set(args.subjects)]
    epochs = config.train.fixed_epoch + 1 if args.epochs is None else args.epochs
    report = BuildReport()
    segments = build_segments(videos, annotations, config.train, report)
    if len(segments) == 0:
        raise InputError("no training segments: the given videos hold no usable annotated expression")
    mean, std = normalisation_stats(videos)
    try:
        adjacency = resolve_adjacency(config.adjacency)
    except (ValueError, OSError) as exc:
        raise InputError(f"config adjacency: {exc}") from None
    console.print(f"{len(segments)} training segments from {report.intervals_used} intervals "
                  f"({len(report.skipped)} annotations skipped), {epochs} epochs")
    losses: list[float] = []
    columns = (TextColumn("training"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
               TextColumn("{task.fields[status]}"))
    with Progress(*columns, disable=args.quiet) as progress:
        task = progress.add_task("fit", total=epochs, status="")

        def on_epoch(epoch, model, stats) -> None:
            losses.append(stats.loss)
            progress.update(task, advance=1, status=f"loss {stats.loss:.4f}")

        model = train_model(segments, config.train, adjacency=adjacency, input_mean=mean, input_std=std,
                            epochs=epochs, on_epoch=on_epoch, fps=config.fps)
    extra = {"trained_on_subjects": sorted({v.subject for v in videos}), "videos": len(videos),
             "segments": len(segments), "intervals": report.intervals_used,
             "annotations": str(args.annotations), "final_loss": losses[-1]}
    save_checkpoint(args.output, model, config=config, fps=config.fps, epoch=epochs - 1, extra=extra,
                    frontend=common_frontend(videos))
    console.print(f"wrote {args.output} (epoch {epochs - 1}, final loss {losses[-1]:.4f})")
    return 0


def _run_adjacency(args: argparse.Namespace, console: Console) -> int:
    import numpy as np

    from mespot.data.adjacency import build_adjacency
    from mespot.data.annotations import load_annotations

    try:
        annotations = load_annotations(args.annotations)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    adjacency = build_adjacency(annotations)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    np.save(args.output, adjacency)
    console.print(f"wrote {args.output}: 12x12 prior from {len(annotations.rows)} annotations")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    console = Console(stderr=False, quiet=getattr(args, "quiet", False))
    try:
        return int(args.run(args, console))
    except InputError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
