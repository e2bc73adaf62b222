"""`spot-bench latency`: the whole live loop per stage and end to end, against the physical floor.

For each `--backend` the real live loop (mespot.bench.liveloop.run_live_loop, what spot-live runs)
plays the source twice: paced like a camera (realtime: frames dropped when the loop falls behind)
and as fast as possible (throughput). Per stage and end to end (capture stamp to the end of
publishing) it reports p50/p95/p99/max over every frame, the throughput, the frames dropped, the
model alone per online window, and the delay of each published interval after its offset frame's
capture. Once per run: the physical floor (landmarks alone + flow alone on the same frames,
mespot.bench.floor) with TV-L1 beside it.

The JSON's top level is the first backend's realtime run (ONNX Runtime by default); every backend's
runs are under `backends`. Targets (docs/benchmarks.md; ONNX Runtime on CPU, 640x480, realtime run): whole loop
p50 <= 7 ms, p99 <= 12 ms, p50 at most 1.5x the floor's p50. Each is printed PASS or MISS with its
margin and stored in `targets`; a miss is never hidden and does not change the exit code.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from mespot.engine.runtime.precision import PRECISIONS
from mespot.errors import InputError
from mespot.stream.pipeline import STAGES

TARGETS = (  # (name, figure key in the result, limit, unit)
    ("whole loop p50", ("end_to_end", "p50_ms"), 7.0, "ms"),
    ("whole loop p99", ("end_to_end", "p99_ms"), 12.0, "ms"),
    ("whole loop / floor (p50)", ("ratio_to_floor",), 1.5, "x"),
)
TARGET_BACKEND = "onnx"
PACED_MODEL_CALLS = 100      # model-alone calls timed after a frame's idle time
STAGE_ROWS = tuple(s for s in STAGES if s != "end_to_end")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = ("Runs the live loop camera-paced (realtime) and as fast as possible per backend, then the "
                     "landmark model and the flow alone on the same frames (the floor). Targets, ONNX Runtime "
                     "realtime run: whole loop p50 <= 7 ms, p99 <= 12 ms, p50 <= 1.5x the floor; each printed "
                     "PASS or MISS with its margin. Figures and JSON layout: docs/benchmarks.md.")
    parser.add_argument("--source", metavar="FILE|DIR", help="video file or image folder (default: a generated 640x480 clip)")
    parser.add_argument("--backend", default="onnx", metavar="LIST",
                        help="comma-separated runtimes compared side by side: onnx, torch, tensorrt, "
                             "with :cuda for a GPU (e.g. onnx,torch or onnx:cuda); default onnx")
    parser.add_argument("--precision", choices=PRECISIONS, default="fp32",
                        help="model arithmetic for every backend (default fp32); a reduced precision's measured "
                             "error goes in each runtime's JSON entry")
    parser.add_argument("--frames", type=int, default=300, metavar="N",
                        help="frames per run (the generated clip's length; default 300 = 10 s)")
    parser.add_argument("--model", type=Path, metavar="PATH", help="ONNX model (default: the shipped one)")
    parser.add_argument("--checkpoint", type=Path, metavar="PATH", help="mespot checkpoint for --backend torch")
    parser.add_argument("--model-calls", type=int, default=500, metavar="N",
                        help="calls timed for the model alone per window (default 500)")
    parser.add_argument("--tvl1-pairs", type=int, default=5, metavar="N", help="crop pairs timed with TV-L1 (default 5)")
    parser.add_argument("--seed", type=int, default=0, metavar="N", help="seed of the generated clip (default 0)")
    parser.add_argument("--repeats", type=int, default=3, metavar="N",
                        help="paired runs (live loop, then its floor) in turn; the pair with the median ratio to "
                             "the floor is reported and every pair is kept in the JSON (default 3: on a shared "
                             "machine one pair's ratio moved between 1.37 and 1.60)")
    parser.add_argument("--view", choices=("web", "rrd"),
                        help="also run spot-live's rerun view (the 'view' extra) in every live loop: web (served on "
                             "free ports, no browser attached) or rrd (saved to a temporary file); its frames shown "
                             "and dropped go in the JSON (docs/view.md)")
    parser.add_argument("--json", type=Path, metavar="OUT", help="write every figure as JSON")
    parser.add_argument("--plot", type=Path, metavar="OUT.png", help="draw the per-stage distributions")
    only = parser.add_mutually_exclusive_group()
    only.add_argument("--realtime-only", action="store_true", help="only the camera-paced run")
    only.add_argument("--fast-only", action="store_true", help="only the as-fast-as-possible run")


def parse_backends(text: str) -> list[str]:
    """'onnx,torch:cuda' -> ['onnx', 'torch:cuda'], each checked against the runtime format table."""
    from mespot.engine.runtime.base import FORMATS

    specs = [s.strip() for s in text.split(",") if s.strip()]
    if not specs:
        raise InputError("--backend is empty")
    for spec in specs:
        name, _, device = spec.partition(":")
        if name not in FORMATS:
            raise InputError(f"unknown backend {name!r}; valid: {', '.join(FORMATS)}")
        if device and device not in FORMATS[name].devices:
            raise InputError(f"backend {name} runs on {', '.join(FORMATS[name].devices)}, not {device!r}")
    if len(set(specs)) != len(specs):
        raise InputError(f"--backend lists a runtime twice: {text}")
    return specs


def _check_args(args) -> list[str]:
    if args.frames < 12:
        raise InputError(f"--frames must be at least 12 (the model needs 11), got {args.frames}")
    if args.model_calls < 1 or args.tvl1_pairs < 0 or args.repeats < 1:
        raise InputError("--model-calls and --repeats must be positive, --tvl1-pairs >= 0")
    for flag, path in (("--model", args.model), ("--checkpoint", args.checkpoint)):
        if path is not None and not path.is_file():
            raise InputError(f"{flag} {path}: no such file")
    if args.plot is not None:
        if args.plot.suffix.lower() != ".png":
            raise InputError(f"--plot wants a .png file, got {args.plot}")
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise InputError("--plot needs matplotlib (pip install matplotlib)") from None
    if getattr(args, "view", None) is not None:
        from mespot.view import require

        require("rerun", "view", "--view")
    return parse_backends(args.backend)


def evaluate_targets(result: dict) -> list[dict]:
    """PASS/MISS per target with the margin (limit - measured; negative is a miss)."""
    out = []
    for name, key, limit, unit in TARGETS:
        value = result
        for k in key:
            value = value.get(k) if isinstance(value, dict) else None
        if value is None:
            out.append({"target": name, "limit": limit, "unit": unit, "measured": None, "verdict": "NOT MEASURED"})
            continue
        margin = limit - value
        out.append({"target": name, "limit": limit, "unit": unit, "measured": round(value, 3),
                    "margin": round(margin, 3), "margin_pct": round(100.0 * margin / limit, 1),
                    "verdict": "PASS" if value <= limit else "MISS"})
    return out


def _view_target(args) -> str | None:
    if getattr(args, "view", None) is None:
        return None
    if args.view == "web":
        return "web"
    return str(Path(args._view_dir) / "view.rrd")


def _run_backend(spec, models, source, args, progress, fps: float) -> dict:
    from mespot.bench.liveloop import open_bench_runtime, run_live_loop, time_model_alone

    runtime = open_bench_runtime(models, spec, args.precision)
    out = {"runtime": runtime.describe(), "model": str(models.path_for(spec.partition(":")[0]))}
    modes = [m for m, skip in (("realtime", args.fast_only), ("fast", args.realtime_only)) if not skip]
    for mode in modes:
        task = progress.add_task(f"{spec}: live loop, {mode}", total=args.frames)
        loop = run_live_loop(source, runtime, realtime=mode == "realtime", max_frames=args.frames,
                             progress=lambda: progress.advance(task), view=_view_target(args))
        out[mode] = loop.to_dict()
        out[f"_{mode}_stage_ms"] = loop.stage_ms          # raw values for the plot, not written
    task = progress.add_task(f"{spec}: model alone", total=None)
    out["model_alone"] = time_model_alone(runtime, args.model_calls)
    if not args.fast_only:        # the same call after a camera frame's idle time (cold caches)
        out["model_alone_paced"] = time_model_alone(runtime, min(args.model_calls, PACED_MODEL_CALLS),
                                                    pause_s=1.0 / fps)
    progress.remove_task(task)
    return out


def _floor_ratios(run: dict, physical: dict) -> dict:
    """The floor a run is judged against and the ratios: a camera-paced run's end_to_end against
    the paced floor, a fast run's in_loop (its end_to_end is queueing) against the back-to-back one."""
    paced = run["mode"] == "realtime" and physical.get("paced") is not None
    floor = physical["paced"]["floor"] if paced else physical["floor"]
    loop = run["end_to_end"] if run["mode"] == "realtime" else run["in_loop"]

    def ratio(a: dict, b: dict, key: str) -> float | None:
        return round(a[key] / b[key], 3) if key in a and b.get(key) else None

    return {"floor": floor, "floor_kind": "paced" if paced else "back to back",
            "ratio_to_floor": ratio(loop, floor, "p50_ms"), "ratio_to_floor_p99": ratio(loop, floor, "p99_ms"),
            "ratio_to_unpaced_floor": ratio(loop, physical["floor"], "p50_ms")}


def compose(backends: dict, physical: dict, *, source: str, models, machine: dict, fps: float, args) -> dict:
    """The result JSON: top level from the first backend that ran (its realtime run if any)."""
    from mespot.bench.machine import load_average

    first = next(name for name, b in backends.items() if "error" not in b)
    for b in backends.values():
        for mode in ("realtime", "fast"):
            if mode in b:
                b[mode].update(_floor_ratios(b[mode], physical))
    b = backends[first]
    main = b.get("realtime") or b["fast"]
    result = {
        "bench": "latency",
        "source": source,
        "model": {"path": str(models.path_for(first.partition(":")[0])), "trained": models.trained,
                  "note": models.note},
        "backend": first,
        "mode": main["mode"],
        "stages": main["stages"],
        "in_loop": main["in_loop"],
        "end_to_end": main["end_to_end"],
        "floor": main["floor"],
        "floor_kind": main["floor_kind"],
        "ratio_to_floor": main["ratio_to_floor"],
        "ratio_to_floor_p99": main["ratio_to_floor_p99"],
        "ratio_to_unpaced_floor": main["ratio_to_unpaced_floor"],
        "fps": (b.get("fast") or main)["fps"],
        "realtime_fps": b["realtime"]["fps"] if "realtime" in b else None,
        "frames": main["frames"],
        "dropped": main["dropped"],
        "view": main.get("view"),
        "cpu_ms_per_frame": main["cpu_ms_per_frame"],
        # how many such streams the cores could carry by CPU time alone (an upper bound: no contention)
        "streams_by_cpu_time": (int(machine["cores"] // main["cpu_cores_busy"])
                                if main["mode"] == "realtime" and main["cpu_cores_busy"] else None),
        "event_delay": main["event_delay"],
        "model_alone": b["model_alone"],
        "physical": physical,
        "backends": {k: {m: v for m, v in x.items() if not m.startswith("_")} for k, x in backends.items()},
        "machine": machine,
        "load_avg_end": load_average(),
        "settings": {"frames": args.frames, "fps": fps, "backends": list(backends),
                     "model_calls": args.model_calls, "seed": args.seed, "view": getattr(args, "view", None)},
    }
    if first == TARGET_BACKEND and result["mode"] == "realtime":
        result["targets"] = evaluate_targets(result)
    else:
        result["targets"] = [{"target": name, "limit": limit, "unit": unit, "verdict": "NOT MEASURED",
                              "why": "targets are for ONNX Runtime on CPU, camera-paced run"}
                             for name, _, limit, unit in TARGETS]
    return result


def median_pair(pairs: list[dict]) -> tuple[dict, dict, dict]:
    """The pair (live loop and its floor, measured one after the other) with the median ratio to the
    floor, with a `repeats` list of every pair's headline figures; its backends and floor dicts.

    One pair is reported whole rather than medians taken figure by figure, so that every number on
    top (stages, end to end, floor, ratio) comes from the same two runs."""
    ranked = sorted(range(len(pairs)), key=lambda k: pairs[k]["ratio_to_floor"] or 0.0)
    chosen = ranked[(len(pairs) - 1) // 2]
    result = dict(pairs[chosen])
    backends, physical = result.pop("_backends"), result.pop("_physical")
    physical["tvl1"] = pairs[0]["_physical"]["tvl1"]          # TV-L1 is timed in the first pair only
    result["repeats"] = [{"end_to_end_p50_ms": p["end_to_end"]["p50_ms"], "end_to_end_p99_ms": p["end_to_end"]["p99_ms"],
                          "floor_p50_ms": p["floor"]["p50_ms"], "ratio_to_floor": p["ratio_to_floor"],
                          "reported": k == chosen} for k, p in enumerate(pairs)]
    return result, backends, physical


def _ms(p: dict, key: str) -> str:
    return f"{p[key]:.2f} ms" if key in p else "-"


def print_report(console, result: dict, backends: dict) -> None:
    from rich.table import Table

    from mespot.bench.machine import one_line

    ran = [k for k, b in backends.items() if "error" not in b]
    table = Table(title=f"live loop per frame, ms: p50 / p99 ({result['source']})")
    table.add_column("stage")
    runs = [(k, m) for k in ran for m in ("realtime", "fast") if m in backends[k]]
    for k, m in runs:
        table.add_column(f"{k} {m}", justify="right")
    rows = [(s, lambda r, s=s: r["stages"][s]) for s in STAGE_ROWS]
    rows += [("in loop (no queue)", lambda r: r["in_loop"]),
             ("landmarks+flow", lambda r: r["landmarks_plus_flow"]),
             ("all but lm+flow", lambda r: r["beyond_landmarks_flow"]),
             ("END TO END", lambda r: r["end_to_end"]),
             ("event delay", lambda r: r["event_delay"])]
    for label, get in rows:
        cells = []
        for k, m in runs:
            p = get(backends[k][m])
            cells.append(f"{p['p50_ms']:.2f} / {p['p99_ms']:.2f}" if p.get("n") else "-")
        table.add_row(label, *cells)
    table.add_row("frames / dropped", *(f"{backends[k][m]['frames']} / {backends[k][m]['dropped']}" for k, m in runs))
    table.add_row("throughput fps", *(f"{backends[k][m]['fps']:.1f}" for k, m in runs))
    table.add_row("CPU ms / frame", *(f"{backends[k][m]['cpu_ms_per_frame']}" for k, m in runs))
    if any("view" in backends[k][m] for k, m in runs):
        table.add_row("view shown / dropped", *(f"{backends[k][m]['view']['frames_shown']} / "
                                                f"{backends[k][m]['view']['dropped']}" if "view" in backends[k][m]
                                                else "-" for k, m in runs))
    console.print(table)
    for k in ran:
        p = backends[k]["model_alone"]
        paced = backends[k].get("model_alone_paced")
        console.print(f"model alone, {k}, window {p['window']}: back to back p50 {p['p50_ms']:.3f} ms, p99 "
                      f"{p['p99_ms']:.3f} ms" + (f"; after {paced['pause_ms']:g} ms idle p50 {paced['p50_ms']:.3f} ms, "
                                                 f"p99 {paced['p99_ms']:.3f} ms" if paced else ""))
    for k, b in backends.items():
        if "error" in b:
            console.print(f"{k}: not measured ({b['error']})", style="yellow")
    ph = result["physical"]
    console.print(f"floor (landmarks alone + flow alone, {ph['frames']} frames) back to back: p50 "
                  f"{_ms(ph['floor'], 'p50_ms')}, p99 {_ms(ph['floor'], 'p99_ms')}  [landmarks p50 "
                  f"{_ms(ph['landmarks'], 'p50_ms')}, DIS flow p50 {_ms(ph['flow'], 'p50_ms')}, decode p50 "
                  f"{_ms(ph['decode'], 'p50_ms')}]")
    if ph.get("paced"):
        pp = ph["paced"]
        console.print(f"floor paced like a camera: p50 {_ms(pp['floor'], 'p50_ms')}, p99 {_ms(pp['floor'], 'p99_ms')}  "
                      f"[landmarks p50 {_ms(pp['landmarks'], 'p50_ms')}, DIS flow p50 {_ms(pp['flow'], 'p50_ms')}]")
    if ph["tvl1"].get("n"):
        console.print(f"peer: reference TV-L1 flow on the same {ph['crop_px'][0]} px crops: p50 "
                      f"{_ms(ph['tvl1'], 'p50_ms')} per frame ({ph['tvl1']['ratio_to_dis']}x DIS)")
    console.print(f"whole loop / floor ({result['floor_kind']}): {result['ratio_to_floor']}x at p50, "
                  f"{result['ratio_to_floor_p99']}x at p99; against the back-to-back floor "
                  f"{result['ratio_to_unpaced_floor']}x at p50")
    if len(result.get("repeats", ())) > 1:
        pairs = "; ".join(f"{r['end_to_end_p50_ms']:.2f} / {r['floor_p50_ms']:.2f} ms = {r['ratio_to_floor']}x"
                          + (" (reported)" if r["reported"] else "") for r in result["repeats"])
        console.print(f"paired runs, whole loop p50 / floor p50: {pairs}")
    for t in result["targets"]:
        if t["verdict"] == "NOT MEASURED":
            console.print(f"  {t['target']} <= {t['limit']} {t['unit']}: NOT MEASURED ({t.get('why', '')})")
            continue
        style = "green" if t["verdict"] == "PASS" else "bold red"
        console.print(f"  {t['target']} <= {t['limit']} {t['unit']}: [{style}]{t['verdict']}[/{style}] "
                      f"measured {t['measured']} {t['unit']}, margin {t['margin']:+.3f} {t['unit']} "
                      f"({t['margin_pct']:+.1f}%)")
    if result["streams_by_cpu_time"] is not None:
        console.print(f"CPU time of the process per frame (all threads): {result['cpu_ms_per_frame']} ms; by CPU "
                      f"time alone {result['machine']['cores']} cores carry {result['streams_by_cpu_time']} such streams")
    console.print(f"model: {result['model']['note']}")
    console.print(f"machine: {one_line(result['machine'])}; load at end {result['load_avg_end']}")


def plot_stages(path: Path, backends: dict, physical: dict) -> None:
    """Box plots of every stage's per-frame time, one panel per backend run, with the floor that run
    is judged against (see compose) and the p50 target."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [k for k, b in backends.items() if "error" not in b]
    modes = [m for m in ("realtime", "fast") if any(f"_{m}_stage_ms" in backends[k] for k in names)]
    fig, axes = plt.subplots(len(modes), len(names), figsize=(6.0 * len(names), 4.2 * len(modes)),
                             sharex=True, sharey=True, squeeze=False)
    labels = [*STAGE_ROWS, "in_loop", "end_to_end"]
    for ax, (k, m) in zip(axes.T.ravel(), [(k, m) for k in names for m in modes]):
        data = backends[k][f"_{m}_stage_ms"]
        values = [[max(v, 1e-3) for v in data[s]] for s in labels]
        ax.boxplot(values, orientation="horizontal", whis=(1, 99), showfliers=True, flierprops={"markersize": 2})
        ax.set_yticks(range(1, len(labels) + 1), labels)
        ax.set_xscale("log")
        run = backends[k][m]
        floor = run.get("floor", physical["floor"]).get("p50_ms")
        if floor:
            ax.axvline(floor, color="tab:green", linestyle="--",
                       label=f"floor p50 {floor:.2f} ms ({run.get('floor_kind', 'back to back')})")
        ax.axvline(7.0, color="tab:red", linestyle=":", label="target p50 7 ms")
        ax.set_title(f"{k}, {m} ({len(data['end_to_end'])} frames)")
        ax.set_xlabel("ms per frame (log; whiskers p1-p99)")
        ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import Progress

    from mespot.bench.floor import measure_floor
    from mespot.bench.liveloop import render_bench_clip, resolve_models
    from mespot.bench.machine import describe_machine
    from mespot.config import ConfigError, load_config
    from mespot.engine.runtime.base import RuntimeUnavailable
    from mespot.stream.frontconfig import FrontEndMismatch
    from mespot.stream.sources import SourceError

    console = Console(stderr=False)
    try:
        specs = _check_args(args)
    except InputError as exc:
        print(f"spot-bench latency: {exc}", file=sys.stderr)
        return 2
    machine = describe_machine()
    fps = load_config("live").fps            # spot-live's default rate: camera and model
    with tempfile.TemporaryDirectory(prefix="mespot-bench-") as tmp:
        args._view_dir = tmp
        try:
            models = resolve_models(args.model, args.checkpoint, Path(tmp))
            if args.source:
                source, what = args.source, args.source
            else:
                with console.status(f"rendering a {args.frames}-frame 640x480 clip ..."):
                    clip, planted = render_bench_clip(Path(tmp) / "bench.mp4", args.frames, fps, args.seed)
                source = str(clip)
                what = f"generated 640x480 clip, {args.frames} frames, {planted} planted expressions"
            pairs = []
            with Progress(console=console, refresh_per_second=4, transient=True) as progress:
                for repeat in range(args.repeats):
                    backends: dict[str, dict] = {}
                    for spec in specs:
                        try:
                            backends[spec] = _run_backend(spec, models, source, args, progress, fps)
                        except (RuntimeUnavailable, FileNotFoundError, ConfigError, FrontEndMismatch, ValueError) as exc:
                            backends[spec] = {"error": str(exc)}     # ValueError: a precision it lacks
                    if not any("error" not in b for b in backends.values()):
                        for spec, b in backends.items():
                            print(f"spot-bench latency: {spec}: {b['error']}", file=sys.stderr)
                        return 2
                    task = progress.add_task(f"floor: landmarks and flow alone, TV-L1 (pair {repeat + 1} of "
                                             f"{args.repeats})", total=None)
                    physical = measure_floor(source, fps=fps, max_frames=args.frames,
                                             tvl1_pairs=args.tvl1_pairs if repeat == 0 else 0,
                                             paced=not args.fast_only)
                    progress.remove_task(task)
                    pairs.append(compose(backends, physical, source=what, models=models, machine=machine,
                                         fps=fps, args=args) | {"_backends": backends, "_physical": physical})
        except (SourceError, FileNotFoundError) as exc:
            print(f"spot-bench latency: {exc}", file=sys.stderr)
            return 2
    result, backends, physical = median_pair(pairs)
    print_report(console, result, backends)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1) + "\n")
        console.print(f"wrote {args.json}")
    if args.plot:
        plot_stages(args.plot, backends, physical)
        console.print(f"wrote {args.plot}")
    return 0
