"""`spot-synth`: write an annotated dataset of generated expression videos from real faces.

Faces (photos, video frames, or the default public-domain astronaut) are animated with facial
action units drawn from the AU co-occurrence of the real benchmarks, mixed with blinks, head
motion, talking, lighting changes, noise and compression that must not be reported. The output
(DIR/videos/*.mp4, DIR/annotations.csv, DIR/manifest.json) is in the benchmark CSV form, so
spot-extract / spot-train / spot-eval run on it unchanged. Same --seed, same bytes.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import replace

from mespot.cli.args import positive
from mespot.config import ConfigError, load_config


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like 640x480, got {text!r}") from None
    if w < 64 or h < 64:
        raise argparse.ArgumentTypeError(f"size {w}x{h} is too small (at least 64x64)")
    return w, h


def _rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def _px_range(text: str) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LO,HI in pixels, got {text!r}") from None
    if not 0 < lo <= hi:
        raise argparse.ArgumentTypeError(f"need 0 < LO <= HI, got {text}")
    return lo, hi


def _quality_range(text: str) -> tuple[int, int]:
    try:
        lo, hi = (int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LO,HI integers, got {text!r}") from None
    if not 1 <= lo <= hi <= 100:
        raise argparse.ArgumentTypeError(f"need 1 <= LO <= HI <= 100, got {text}")
    return lo, hi


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="spot-synth", description=__doc__.split("\n\n")[0],
                                epilog="Example: spot-synth --out data/synth --identities "
                                       "astronaut,../shared/media/multi_face.jpg --videos 12 --minutes 2")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (created)")
    p.add_argument("--identities", default="astronaut", metavar="LIST",
                   help="comma-separated: 'astronaut', image files (one identity per face), folders, "
                        "video files (default: astronaut)")
    p.add_argument("--videos", type=positive(int), default=4, metavar="N",
                   help="number of videos; identities are used in turn (default 4)")
    p.add_argument("--minutes", type=positive(float), default=1.0, metavar="M",
                   help="length of each video in minutes (default 1)")
    p.add_argument("--seed", type=int, default=0, metavar="S", help="dataset seed (default 0)")
    p.add_argument("--fps", type=positive(float), default=30.0, help="frame rate (default 30)")
    p.add_argument("--size", type=_size, default=(640, 480), metavar="WxH", help="frame size (default 640x480)")
    p.add_argument("--no-expressions", action="store_true",
                   help="distractors only (blinks, head motion, talking, light, noise): no annotations")
    p.add_argument("--micro-per-min", type=_rate, default=None, metavar="R",
                   help="micro-expressions per minute (default 2.5)")
    p.add_argument("--macro-per-min", type=_rate, default=None, metavar="R",
                   help="macro-expressions per minute (default 4)")
    p.add_argument("--micro-px", type=_px_range, default=None, metavar="LO,HI",
                   help="micro-expression peak displacement on a 224-px-wide face (default 1,2)")
    p.add_argument("--macro-px", type=_px_range, default=None, metavar="LO,HI",
                   help="macro-expression peak displacement on a 224-px-wide face (default 3,8)")
    p.add_argument("--jpeg-quality", type=_quality_range, default=None, metavar="LO,HI",
                   help="also re-encode every frame as JPEG at a random quality in LO..HI (1-100; default off)")
    p.add_argument("--renderer", default="gaussian", choices=("gaussian", "piecewise"),
                   help="how faces are moved: 'gaussian' (Gaussian fields around mesh points, the "
                        "original) or 'piecewise' (piecewise-affine over the mesh triangulation, its "
                        "own action units); default gaussian")
    p.add_argument("--variety", default="standard", choices=("standard", "wide"),
                   help="'wide': every nuisance over a wider range (amplitudes, asymmetric and held "
                        "profiles, head turns and nods up to 15 degrees, zoom, flicker, blur, JPEG "
                        "quality, blinks, talking) and each video's frame size (640x360, 640x480, "
                        "1280x720) and face width (90-320 px) drawn, so --size is not used; the "
                        "rate, amplitude and JPEG options given explicitly win (default standard)")
    p.add_argument("--config", default="live", metavar="NAME|YAML",
                   help="config whose decoding limits planted intervals respect (default live)")
    p.add_argument("--force", action="store_true",
                   help="replace a dataset already in --out (its videos are deleted first)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from mespot.synth.dataset import DatasetExistsError, Framing, generate_dataset
    from mespot.synth.identities import IdentityError, list_identities
    from mespot.synth.timeline import SynthParams

    params = SynthParams.wide() if args.variety == "wide" else SynthParams()
    if args.micro_per_min is not None:
        params = replace(params, micro_per_min=args.micro_per_min)
    if args.macro_per_min is not None:
        params = replace(params, macro_per_min=args.macro_per_min)
    if args.micro_px is not None:
        params = replace(params, micro_peak_px=args.micro_px)
    if args.macro_px is not None:
        params = replace(params, macro_peak_px=args.macro_px)
    if args.jpeg_quality is not None:
        params = replace(params, jpeg_quality=args.jpeg_quality)
    try:
        config = load_config(args.config)
        identities = list_identities(args.identities, size=args.size)
    except (ConfigError, IdentityError) as exc:
        print(f"spot-synth: {exc}", file=sys.stderr)
        return 2
    try:
        manifest = generate_dataset(args.out, identities, n_videos=args.videos, minutes=args.minutes,
                                    seed=args.seed, fps=args.fps, expressions=not args.no_expressions,
                                    params=params, config=config, progress=not args.quiet,
                                    overwrite=args.force, renderer=args.renderer,
                                    framing=Framing() if args.variety == "wide" else None)
    except DatasetExistsError as exc:
        print(f"spot-synth: {exc} (--force)", file=sys.stderr)
        return 2
    n_micro = sum(e["kind"] == "micro" for v in manifest["videos"] for e in v["expressions"])
    n_macro = sum(e["kind"] == "macro" for v in manifest["videos"] for e in v["expressions"])
    print(f"wrote {len(manifest['videos'])} videos ({', '.join(i['name'] for i in manifest['identities'])}) "
          f"with {n_macro} macro and {n_micro} micro expressions to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
