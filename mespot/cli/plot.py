"""`spot-plot`: draw a run's probability curves, thresholds and intervals (PNG or SVG).

From a `spot-live --record` JSONL file, or offline from a feature file (spot-extract) and a model.
With --gt, the annotated spans too, and each interval marked TP or FP, each span found or FN,
under the MEGC rule (IoU >= 0.5, one-to-one; the same matching spot-eval counts).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mespot.errors import InputError


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="spot-plot", description=__doc__.splitlines()[0].replace("`", ""),
        epilog="Examples: spot-plot run.jsonl -o run.png --gt demo.csv ; "
               "spot-plot --features clip.npz -o clip.svg (docs/view.md)")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("record", nargs="?", type=Path, metavar="RUN.jsonl", help="a spot-live --record file")
    what.add_argument("--features", type=Path, metavar="FILE.npz",
                      help="a feature file (spot-extract): run the model over it offline instead")
    p.add_argument("-o", "--out", type=Path, required=True, metavar="OUT.png|OUT.svg", help="the figure to write")
    p.add_argument("--gt", type=Path, metavar="ANNOTATIONS.csv",
                   help="annotation CSV (subject,video_name,start_frame,apex_frame,end_frame,type_idx,au)")
    p.add_argument("--video", metavar="NAME",
                   help="the annotation rows' video_name (default: the run's stream id, or the feature file's stem)")
    p.add_argument("--stream", metavar="ID", help="the stream to draw when the recording holds several")
    p.add_argument("--model", type=Path, metavar="PATH",
                   help="ONNX model: runs --features, and its config gives the thresholds (default: the shipped one)")
    p.add_argument("--config", metavar="NAME|PATH", help="decoding config for the thresholds (default: the model's own)")
    p.add_argument("--frames", metavar="A:B", help="draw only frames A to B-1")
    return p


def _frames(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    try:
        a, b = (int(v) for v in text.split(":"))
    except ValueError:
        raise InputError(f"--frames {text!r}: want A:B, two frame numbers") from None
    if not 0 <= a < b:
        raise InputError(f"--frames {text!r}: want 0 <= A < B")
    return a, b


def _config(args):
    """The thresholds' config: --config, else the model's own (from its sidecar, no model loaded)."""
    from mespot.config import ConfigError, load_config
    from mespot.engine.runtime.metadata import metadata_config, read_sidecar
    from mespot.models import ModelNotFound, default_model_path

    try:
        if args.config is not None:
            return load_config(args.config)
        model = args.model if args.model is not None else default_model_path("onnx")
        return metadata_config(read_sidecar(model))
    except (ConfigError, ModelNotFound, FileNotFoundError, KeyError, ValueError) as exc:
        raise InputError(f"no config for the thresholds: {exc} (pass --config)") from None


def _run(args) -> int:
    from mespot.view import require
    from mespot.view.plot import SUFFIXES, draw, mark, offline_run, read_record

    if args.out.suffix.lower() not in SUFFIXES:
        raise InputError(f"-o {args.out}: want a .png or .svg file")
    if not args.out.parent.is_dir():
        raise InputError(f"cannot write {args.out}: folder {args.out.parent} does not exist")
    frames = _frames(args.frames)
    require("matplotlib", "view", "spot-plot")
    config = _config(args)
    if args.record is not None:
        if not args.record.is_file():
            raise InputError(f"{args.record}: no such file")
        try:
            run = read_record(args.record, args.stream)
        except ValueError as exc:
            raise InputError(str(exc)) from None
    else:
        if args.stream is not None:
            raise InputError("--stream is for a recording, not --features")
        run = _offline(args, config)
    annotations = None
    if args.gt is not None:
        from mespot.data.annotations import load_annotations

        try:
            gt = load_annotations(args.gt)
        except ValueError as exc:
            raise InputError(str(exc)) from None
        video = args.video or run.name
        annotations = gt.for_video(video)
        if not annotations:
            raise InputError(f"{args.gt}: no rows for video {video!r} (it has {', '.join(gt.videos()) or 'none'}); "
                             f"choose one with --video")
    marked = mark(run, annotations)
    out = draw(run, config, args.out, marked, frames=frames)
    line = f"wrote {out}: {run.name}, {len(run.probs)} frames, {len(run.intervals)} intervals"
    if marked.scores is not None:
        o = marked.scores["overall"]
        line += f"; TP {o['tp']}, FP {o['n'] - o['tp']}, FN {o['m'] - o['tp']} (MEGC rule)"
    print(line)
    return 0


def _offline(args, config):
    from mespot.engine.runtime import RuntimeUnavailable, open_runtime
    from mespot.models import ModelNotFound, default_model_path
    from mespot.view.plot import offline_run

    if not args.features.is_file():
        raise InputError(f"{args.features}: no such file")
    try:
        model = args.model if args.model is not None else default_model_path("onnx")
        runtime = open_runtime(model, "onnx", "cpu")
    except (ModelNotFound, FileNotFoundError, ValueError, RuntimeUnavailable) as exc:
        raise InputError(str(exc)) from None
    try:
        return offline_run(args.features, runtime, config)
    except (ValueError, KeyError, OSError) as exc:
        raise InputError(f"{args.features}: not a feature file spot-extract writes ({exc})") from None


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return _run(args)
    except InputError as exc:
        print(f"spot-plot: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
