"""spot-extract: per-frame ROI flow features of a video, image folder or stream, as feature files.

  spot-extract clip.mp4 -o clip.npz                  one source (file, image folder, camera, URL)
  spot-extract DATASET_DIR -o FEATURE_DIR            every video file and image folder under
                                                     DATASET_DIR, one FEATURE_DIR/<name>.npz each
  spot-extract clip.mp4 -o clip.npz --model M.onnx   with the front-end model M was trained on

The output is the mespot feature-file format (features (T,12,2) float32, valid, timestamps,
roi_centres, meta with fps and the extractor config) that spot-train reads. Frames are resampled
to --fps by their timestamps. Dataset runs are parallel across videos and resumable: an existing
output is skipped unless --overwrite (files are written atomically, so an interrupted run leaves no
half file). A live source (camera, URL) runs until Ctrl-C, then writes what it has.
With --cluster ray a dataset's videos are Ray tasks instead of a local process pool: `ray` starts
Ray here (or joins RAY_ADDRESS), ray://HOST:PORT joins a cluster, whose nodes must see the dataset
and the output folder at the same paths (needs pip install 'mespot[ray]').
With --model the front-end (and the rate) is the one the model carries; a front-end option that
contradicts it is refused. A model that names no front-end (older files) gets the default one.
"""
from __future__ import annotations

import argparse
import os
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path

from mespot.errors import InputError
from mespot.stream.headmotion import REFLOW_PX
from mespot.stream.strategies import default_strategy, strategy_names

PROG = "spot-extract"


def build_parser() -> argparse.ArgumentParser:
    doc = __doc__.splitlines()
    parser = argparse.ArgumentParser(prog=PROG, description=doc[0], epilog="\n".join(doc[2:]),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", help="video file, image folder, camera index, URL, or a dataset folder")
    parser.add_argument("-o", "--output", type=Path, required=True,
                        help="OUT.npz for one source; a folder for a dataset")
    parser.add_argument("--fps", type=float, help="feature rate (default: the config's fps, 30 for live)")
    parser.add_argument("--config", default="live", metavar="NAME",
                        help="config name or YAML path whose fps is used when --fps is not given (default: live)")
    parser.add_argument("--image-fps", type=float, default=30.0,
                        help="frame rate of image folders, which carry no timestamps (default: 30)")
    parser.add_argument("--model", type=Path, metavar="PATH",
                        help="extract with the front-end this model (.onnx, .pt) was trained on (default: "
                             "the options below)")
    parser.add_argument("--flow", choices=strategy_names("flow"),
                        help=f"optical flow (default {default_strategy('flow')}): dis (real time) or tvl1 "
                             "(the reference's, very slow)")
    parser.add_argument("--crop-size", type=int, help="aligned face crop side in pixels (default: 128)")
    parser.add_argument("--tracker", metavar="SPEC",
                        help="landmarker: 'mesh' (default: MediaPipe's face-mesh model run directly), "
                             "'mesh-graph' (the MediaPipe graph) or a FaceLandmarker FILE.task")
    parser.add_argument("--head-motion", choices=strategy_names("head_motion"),
                        help=f"head motion taken off the flow: {default_strategy('head_motion')} (default: translation, roll and "
                             "scale fitted at rigid face points), similarity (the fit, then the reference's g "
                             "of docs/reference-model.md §2.2) or translation (that g alone)")
    parser.add_argument("--reflow-px", type=float, metavar="PX",
                        help=f"compute the flow again after undoing a fitted head motion above PX crop px per "
                             f"frame (default {REFLOW_PX}; 0: never; needs a similarity head motion)")
    parser.add_argument("--workers", type=int, default=max(1, min(4, os.cpu_count() or 1)),
                        help="parallel videos in dataset mode (default: CPU count, at most 4)")
    parser.add_argument("--cluster", metavar="ray|ray://HOST:PORT",
                        help="dataset mode: run the videos as Ray tasks (one CPU each) on this machine or a "
                             "cluster instead of --workers local processes; resumable the same way")
    parser.add_argument("--overwrite", action="store_true", help="recompute outputs that already exist")
    parser.add_argument("--quiet", action="store_true", help="no progress display")
    parser.add_argument("--verbose", action="store_true",
                        help="also show what the native libraries print (MediaPipe, TensorFlow Lite, FFmpeg, OpenCV)")
    return parser


def _is_dataset(path: Path) -> bool:
    """A folder is a dataset when it holds no images directly (else it is one image sequence)."""
    from mespot.files import IMAGE_SUFFIXES

    return path.is_dir() and not any(p.suffix.lower() in IMAGE_SUFFIXES for p in path.iterdir() if p.is_file())


def find_videos(root: Path) -> list[Path]:
    """Video files and image folders under `root`, in natural order of their relative paths."""
    from mespot.files import IMAGE_SUFFIXES, VIDEO_SUFFIXES, natural_key

    found = []
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        here = Path(folder)
        if folder != str(root) and any(Path(f).suffix.lower() in IMAGE_SUFFIXES for f in files):
            found.append(here)
            dirs.clear()            # an image sequence is a leaf
            continue
        found += [here / f for f in files if Path(f).suffix.lower() in VIDEO_SUFFIXES]
    return sorted(found, key=lambda p: natural_key(str(p.relative_to(root))))


def _output_name(video: Path) -> str:
    from mespot.files import VIDEO_SUFFIXES

    return (video.stem if video.suffix.lower() in VIDEO_SUFFIXES else video.name) + ".npz"


def _extract_one(source: str, output: str, fps: float, source_opts: dict, frontend_opts: dict) -> str:
    """Worker body (also used in-process): extract one source and save it atomically."""
    from mespot.featurefile import save_features
    from mespot.stream.frontend import extract_features

    ff = extract_features(source, fps=fps, source_opts=source_opts, **frontend_opts)
    ff.meta["tool"] = PROG
    save_features(output, ff)
    return output


def _progress(quiet: bool):
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                               TimeRemainingColumn)

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TimeRemainingColumn(), disable=quiet, transient=False)


def run_single(args, fps: float, source_opts: dict, frontend_opts: dict) -> int:
    from mespot.featurefile import save_features
    from mespot.stream.frontend import extract_features
    from mespot.stream.sources import SourceError

    if args.output.suffix != ".npz":
        raise InputError(f"output {str(args.output)!r} must end in .npz for a single source")
    if args.output.exists() and not args.overwrite:
        print(f"{PROG}: {args.output} exists, skipped (--overwrite to recompute)", file=sys.stderr)
        return 0
    with _progress(args.quiet) as progress:
        task = progress.add_task(f"extract {Path(args.source).name}", total=None)

        def report(done: int, total: int | None) -> None:
            progress.update(task, completed=done, total=total)

        try:
            ff = extract_features(args.source, fps=fps, progress=report, source_opts=source_opts,
                                  **frontend_opts)
        except SourceError as exc:
            raise InputError(str(exc)) from None
    ff.meta["tool"] = PROG
    save_features(args.output, ff)
    print(f"{args.output}: {len(ff)} frames at {fps:g} fps, {int(ff.valid.sum())} valid")
    return 0


def _extract_in_processes(workers: int, calls: list[tuple], finished) -> None:
    workers = max(1, min(workers, len(calls)))
    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
        futures = {pool.submit(_extract_one, *call): k for k, call in enumerate(calls)}
        for fut in as_completed(futures):
            finished(futures[fut], fut.exception())


def _extract_on_ray(address: str, calls: list[tuple], finished) -> None:
    from mespot.serve.cluster import ClusterUnavailable, map_on_ray

    try:
        map_on_ray(_extract_one, calls, address=address, on_done=finished)
    except ClusterUnavailable as exc:
        raise InputError(str(exc)) from None


def run_dataset(args, fps: float, image_fps: float, frontend_opts: dict) -> int:
    root = Path(args.source)
    videos = find_videos(root)
    if not videos:
        raise InputError(f"no video files or image folders under {str(root)!r}")
    names: dict[str, Path] = {}
    for v in videos:
        name = _output_name(v)
        if name in names:
            raise InputError(f"two videos would both write {name}: {names[name]} and {v}")
        names[name] = v
    if args.output.suffix == ".npz":
        raise InputError(f"output {str(args.output)!r} must be a folder for a dataset")
    args.output.mkdir(parents=True, exist_ok=True)
    todo = [(v, args.output / n) for n, v in names.items() if args.overwrite or not (args.output / n).exists()]
    skipped = len(videos) - len(todo)
    failures: list[str] = []
    calls = [(str(v), str(out), fps, {"fps": image_fps} if v.is_dir() else {}, frontend_opts) for v, out in todo]
    with _progress(args.quiet) as progress:
        task = progress.add_task(f"extract {len(todo)} videos ({skipped} done before)", total=len(todo))

        def finished(k: int, error: BaseException | None) -> None:
            if error is not None:      # one bad video must not stop the others; reported below
                failures.append(f"{todo[k][0]}: {error}")
            progress.advance(task)

        if args.cluster is not None:
            if calls:
                _extract_on_ray(args.cluster, calls, finished)
        else:
            _extract_in_processes(args.workers, calls, finished)
    print(f"{args.output}: {len(todo) - len(failures)} written, {skipped} skipped (already there), "
          f"{len(failures)} failed")
    for line in failures:
        print(f"{PROG}: failed: {line}", file=sys.stderr)
    return 1 if failures else 0


def _model_metadata(path: Path) -> dict:
    """What a model file says about itself (ONNX and checkpoints opened by their runtime)."""
    from mespot.engine.runtime import FORMATS, RuntimeUnavailable, open_runtime
    from mespot.engine.runtime.metadata import read_sidecar

    try:
        if path.suffix.lower() in FORMATS["tensorrt"].suffixes and path.suffix.lower() != ".onnx":
            return read_sidecar(path)
        backend = "torch" if path.suffix.lower() in FORMATS["torch"].suffixes else "onnx"
        return open_runtime(path, backend).metadata
    except (FileNotFoundError, ValueError, RuntimeUnavailable) as exc:
        raise InputError(str(exc)) from None


def _frontend_opts(args, fps: float | None) -> tuple[float, dict]:
    """The feature rate and FrontEnd options: the user's, or with --model the model's (the user's
    must agree with it). The front-end is built once here, so a problem fails before any worker."""
    from mespot.engine.runtime.metadata import metadata_frontend
    from mespot.stream.frontconfig import FrontEndMismatch, build_frontend, resolve_options
    from mespot.stream.tracker import TrackerError

    given = {"flow": args.flow, "crop_size": args.crop_size, "tracker": args.tracker,
             "head_motion": args.head_motion, "reflow_px": args.reflow_px}
    described = None
    if args.model is not None:
        meta = _model_metadata(args.model)
        described = metadata_frontend(meta)
        model_fps = float(described["fps"]) if described is not None else float(meta["fps"])
        if fps is not None and abs(fps - model_fps) > 1e-6:
            raise InputError(f"--fps {fps:g} contradicts the model {args.model} ({model_fps:g} fps); "
                             f"leave --fps out to use the model's")
        fps = model_fps
    elif given["reflow_px"] is None:
        given["reflow_px"] = REFLOW_PX
    try:
        opts = resolve_options(described, fps=fps, overrides=given)
        if described is not None or args.tracker:
            build_frontend(described, fps=fps, overrides=given).close()   # fail here, not in every worker
    except (FrontEndMismatch, TrackerError) as exc:
        where = f"model {args.model}: " if args.model is not None else ""
        raise InputError(f"{where}{exc}") from None
    opts.pop("fps")
    return fps, opts


def main(argv: list[str] | None = None) -> int:
    from mespot.cli.quiet import native_quiet

    args = build_parser().parse_args(argv)
    try:
        with native_quiet(not args.verbose):        # the pool's workers inherit the quiet descriptor
            return _main(args)
    except InputError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2


def _main(args) -> int:
    fps = args.fps
    if fps is None and args.model is None:
        from mespot.config import ConfigError, load_config
        try:
            fps = load_config(args.config).fps
        except ConfigError as exc:
            raise InputError(str(exc)) from None
    if (fps is not None and fps <= 0) or args.image_fps <= 0:
        raise InputError("--fps and --image-fps must be positive")
    if args.crop_size is not None and not 64 <= args.crop_size <= 512:
        raise InputError(f"--crop-size must be in 64..512, got {args.crop_size}")
    path = Path(args.source)
    from mespot.stream.sources import URL_SCHEMES
    if not (path.exists() or args.source.isdigit() or args.source.lower().startswith(URL_SCHEMES)):
        raise InputError(f"source {args.source!r} not found (not a file, folder, camera index or URL)")
    if args.cluster is not None and args.cluster != "ray" and not args.cluster.startswith("ray://"):
        raise InputError(f"--cluster {args.cluster}: expected ray or ray://HOST:PORT")
    fps, frontend_opts = _frontend_opts(args, fps)
    if path.is_dir() and _is_dataset(path):
        return run_dataset(args, fps, args.image_fps, frontend_opts)
    if args.cluster is not None:
        raise InputError("--cluster spreads the videos of a dataset folder; one source runs here")
    source_opts = {"fps": args.image_fps} if path.is_dir() else {}
    return run_single(args, fps, source_opts, frontend_opts)


if __name__ == "__main__":
    sys.exit(main())
