"""`spot-export`: turn a checkpoint into a self-describing ONNX file or TensorRT plan, checked numerically.

Examples:
  spot-export --checkpoint runs/model.pt -o models/live.onnx
  spot-export --format engine --fp16 --checkpoint runs/model.pt -o models/live.engine
The output carries the adjacency, normalisation, fps, window and decoding parameters (ONNX
metadata and a sidecar OUT.json). The export is run against PyTorch on random input of several
lengths and the largest difference is printed; it fails (exit 1) above 1e-4 (5e-2 for --fp16).
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path

from mespot.export import EXPORT_FORMATS

EXIT_USAGE = 2


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="spot-export", description=__doc__.split("\n")[0].split(": ", 1)[1],
                                epilog=__doc__.split("\n", 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--format", default="onnx", metavar="FMT",
                   help="; ".join(f"{f.name}: {f.summary}" for f in EXPORT_FORMATS.values()) + " (default onnx)")
    p.add_argument("--checkpoint", required=True, help="a mespot checkpoint (.pt) or an authors' AUW-GCN file")
    p.add_argument("-o", "--output", required=True, help="output file (.onnx for onnx, .engine for engine)")
    p.add_argument("--config", help="config name or YAML path (default: the one inside the checkpoint)")
    p.add_argument("--fps", type=float, help="feature rate to record (default: the checkpoint's)")
    p.add_argument("--window", type=int, help="online window in indices, >= 11 (default: the config's)")
    p.add_argument("--fp16", action="store_true", help="engine only: allow half precision inside TensorRT")
    p.add_argument("--max-batch", type=int, help="engine only: largest batch of the optimisation profile (8)")
    p.add_argument("--max-frames", type=int, help="engine only: longest time axis of the profile (1024)")
    p.add_argument("--json", action="store_true", help="print the export report as one JSON object")
    return p


def _usage_error(message: str) -> int:
    print(f"spot-export: {message}", file=sys.stderr)
    return EXIT_USAGE


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    fmt = EXPORT_FORMATS.get(args.format)
    if fmt is None:
        return _usage_error(f"unknown format {args.format!r}; valid: {', '.join(EXPORT_FORMATS)}")
    given = [name for name in ("fp16", "max_batch", "max_frames") if getattr(args, name) not in (None, False)]
    misplaced = [name for name in given if name not in fmt.options]
    if misplaced:
        flags = ", ".join("--" + n.replace("_", "-") for n in misplaced)
        valid = [f.name for f in EXPORT_FORMATS.values() if set(misplaced) <= set(f.options)]
        return _usage_error(f"{flags}: only for --format {', '.join(valid)}, not {fmt.name}")
    out = Path(args.output)
    if out.suffix.lower() != fmt.suffix:
        return _usage_error(f"--format {fmt.name} writes {fmt.suffix} files; -o {out} has another suffix")
    if not Path(args.checkpoint).is_file():
        return _usage_error(f"checkpoint not found: {args.checkpoint}")
    if args.window is not None and args.window < 11:
        return _usage_error(f"--window {args.window} is below 11 (2 x the model's right context + 1)")
    if importlib.util.find_spec(fmt.needs) is None:
        return _usage_error(f"--format {fmt.name} needs the {fmt.needs} package, which is not installed here"
                            + ("; TensorRT needs an NVIDIA GPU and pip install tensorrt-cu12" if fmt.name == "engine" else ""))

    from rich.console import Console

    from mespot.config import ConfigError, load_config
    from mespot.engine.runtime import RuntimeUnavailable

    console = Console(stderr=True)
    try:
        config = load_config(args.config) if args.config else None
    except ConfigError as exc:
        return _usage_error(str(exc))
    with console.status(f"exporting {args.checkpoint} to {fmt.name} ..."):
        try:
            if fmt.name == "onnx":
                from mespot.export.onnx import export_onnx
                report = export_onnx(args.checkpoint, out, config=config, fps=args.fps, window=args.window)
            else:
                from mespot.export.tensorrt import export_engine
                limits = {k: getattr(args, k) for k in ("max_batch", "max_frames") if getattr(args, k)}
                report = export_engine(args.checkpoint, out, config=config, fps=args.fps, window=args.window,
                                       fp16=args.fp16, **limits)
        except (ValueError, RuntimeUnavailable) as exc:   # the user's input, or a missing GPU/library
            return _usage_error(str(exc))
        except RuntimeError as exc:      # ExportError (parity failed), RuntimeUnavailable, build failure
            print(f"spot-export: {exc}", file=sys.stderr)
            return 1
    if args.json:
        print(json.dumps(report))
    else:
        print(f"wrote {report['path']} ({report['bytes']} bytes, window {report.get('window', '-')}); "
              f"largest |export - PyTorch| = {report['max_abs_diff']:.3g} over lengths "
              f"{', '.join(map(str, report['diff_by_length']))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
