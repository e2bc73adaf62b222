"""`spot-bench streams`: how many concurrent 30 fps 640x480 streams this machine sustains, no drops.

Every stream is the real live loop (mespot.bench.liveloop.run_live_loop) on its own camera-paced
copy of a 640x480 clip: frames are released at 30 fps and the capture queue drops the oldest frame
when its loop falls behind, exactly as with a camera. N streams are sustained when, over
`--seconds`, no stream drops a frame and every stream processes every frame.

Two ways to run N streams, both measured (the live pipeline is one stream per loop; spot-live runs
one per process):
- `process`: one process per stream, each with its own runtime (what N spot-live instances do);
- `thread`: one process, one loop thread per stream, all sharing ONE runtime (ONNX Runtime sessions
  are safe to call from several threads; the landmark model and flow release the GIL while they run).
- `spot-live` / `ray` (asked for by name, not part of `both`): all N streams in ONE multi-stream
  spot-live, a worker process or a Ray actor per stream, through the bus proxy
  (mespot.bench.serving, which also measures Ray's own start-up and memory).
N rises from 1 (or `--min`) until a trial drops frames after its first second, or `--max` is
reached; with `--repeats R` each N runs R trials and its median one (by drops) stands for it. Drops in
the first second (every stream acquiring its face at the same moment) are reported apart: the
verdict (`max_streams`) counts every drop, `max_streams_steady` only those after the first second.
Target (docs/benchmarks.md): at least 4, on `max_streams`.

`--inference-only` counts something else: the streams the model side alone carries when many
cameras' features meet in one engine (mespot.bench.capacity, docs/gpu.md).
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import sys
import tempfile
import threading
from pathlib import Path

TARGET_STREAMS = 4
STREAM_FPS = 30.0            # each stream: a 30 fps 640x480 camera, as the target says
MODES = ("process", "thread")
SERVE_MODES = ("spot-live", "ray")       # mespot.bench.serving
START_TIMEOUT_S = 300.0
STARTUP_S = 1.0              # drops in the first second (all streams acquiring a face at once) are shown apart


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = ("Every stream is the live loop on a copy of a 640x480 clip released at 30 fps, dropping "
                     "frames when it falls behind as a camera would. N rises from 1 until a trial drops frames. "
                     "Target: at least 4 streams without drops. Details: docs/benchmarks.md.")
    parser.add_argument("--max", type=int, default=8, metavar="N", help="most streams tried (default 8)")
    parser.add_argument("--min", type=int, default=1, metavar="N",
                        help="fewest streams tried (default 1): start near a limit found before; the figures "
                             "then count from N (0 when N itself drops)")
    parser.add_argument("--seconds", type=float, default=10.0, metavar="S", help="length of each trial (default 10 s)")
    parser.add_argument("--mode", choices=(*MODES, "both", *SERVE_MODES), default="both",
                        help="one process per stream, threads sharing one runtime, or both (default); "
                             "spot-live: one multi-stream spot-live (a worker process per stream); ray: "
                             "the same with a Ray actor per stream")
    parser.add_argument("--source", metavar="FILE|DIR", help="video file or image folder played by every stream "
                                         "(default: a generated 640x480 clip)")
    parser.add_argument("--model", type=Path, metavar="PATH", help="ONNX model (default: the shipped one)")
    parser.add_argument("--repeats", type=int, default=1, metavar="R",
                        help="trials per N (default 1); with more, N's verdict and figures are its median trial's "
                             "(by drops), so one stray dropped frame at the margin does not decide alone")
    parser.add_argument("--json", type=Path, metavar="OUT", help="write every trial as JSON")
    from mespot.bench import capacity

    capacity.add_arguments(parser)


def _process_stream(source: str, model: str, frames: int, barrier, results) -> None:
    """Entry point of one stream's process: open its runtime, wait for the others, run, report."""
    from mespot.bench.liveloop import run_live_loop
    from mespot.engine.runtime import open_runtime

    try:
        runtime = open_runtime(model, "onnx", "cpu", threads=1)
        runtime.warm_up()
        barrier.wait(START_TIMEOUT_S)
        results.put(run_live_loop(source, runtime, realtime=True, max_frames=frames).to_dict(with_events=False))
    except BaseException as exc:       # reported to the parent, which fails the trial
        barrier.abort()
        results.put({"error": f"{type(exc).__name__}: {exc}"})


def trial_processes(n: int, source: str, model: Path, frames: int) -> list[dict]:
    ctx = mp.get_context("spawn")     # mediapipe's graph threads do not survive fork
    barrier, results = ctx.Barrier(n), ctx.Queue()
    procs = [ctx.Process(target=_process_stream, args=(source, str(model), frames, barrier, results))
             for _ in range(n)]
    for p in procs:
        p.start()
    out = [results.get(timeout=START_TIMEOUT_S + frames) for _ in procs]
    for p in procs:
        p.join()
    return out


def trial_threads(n: int, source: str, runtime, frames: int) -> list[dict]:
    from mespot.bench.liveloop import run_live_loop

    out: list[dict] = [{} for _ in range(n)]
    barrier = threading.Barrier(n)

    def stream(k: int) -> None:
        try:
            barrier.wait(START_TIMEOUT_S)
            out[k] = run_live_loop(source, runtime, realtime=True, max_frames=frames,
                                   stream=f"bench-{k}").to_dict(with_events=False)
        except BaseException as exc:
            barrier.abort()
            out[k] = {"error": f"{type(exc).__name__}: {exc}"}

    threads = [threading.Thread(target=stream, args=(k,), name=f"bench-stream-{k}") for k in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def judge(n: int, streams: list[dict], frames: int) -> dict:
    """A trial's verdict: sustained when every stream ran, saw every frame and dropped none."""
    errors = [s["error"] for s in streams if "error" in s]
    ok = [s for s in streams if "error" not in s]
    dropped = sum(s["dropped"] for s in ok)
    short = sum(max(0, frames - s["frames"]) for s in ok)
    e2e = [s["end_to_end"] for s in ok if s["end_to_end"].get("n")]
    drop_times = sorted(t for s in ok for t in s.get("capture_drop_times_s", []))
    late = sum(t > STARTUP_S for t in drop_times)
    return {
        "streams": n,
        "sustained": not errors and dropped == 0 and short == 0,
        "dropped": dropped,
        "first_drop_s": drop_times[0] if drop_times else None,
        "dropped_after_startup": late,
        "steady_after_startup": not errors and late == 0,
        "frames_missing": short,
        "errors": errors,
        "fps_min": min((s["fps"] for s in ok), default=None),
        "end_to_end_p50_ms_worst": max((p["p50_ms"] for p in e2e), default=None),
        "end_to_end_p99_ms_worst": max((p["p99_ms"] for p in e2e), default=None),
        "per_stream": [{k: s.get(k) for k in ("frames", "dropped", "capture_drop_times_s", "fps", "end_to_end",
                                              "error")} for s in streams],
    }


def median_trial(repeats: list[dict]) -> dict:
    """The repeat with the median drops (after the first second, then all) stands for N; with an
    odd count its verdicts are the majority's. Every repeat's drops stay beside it."""
    ranked = sorted(repeats, key=lambda t: (t["dropped_after_startup"], t["dropped"], len(t["errors"])))
    chosen = dict(ranked[(len(ranked) - 1) // 2])
    if len(repeats) > 1:
        chosen["repeats"] = [{k: t[k] for k in ("dropped", "dropped_after_startup", "fps_min",
                                                 "end_to_end_p99_ms_worst", "load_avg")} for t in repeats]
    return chosen


def _largest(trials: list[dict], key: str) -> int:
    """The largest N such that every trial up to N has `key` true (0 if the first has not)."""
    best = 0
    for t in trials:
        if not t[key]:
            break
        best = t["streams"]
    return best


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import Progress

    from mespot.bench.liveloop import open_bench_runtime, render_bench_clip, resolve_models
    from mespot.bench.machine import describe_machine, load_average, one_line
    from mespot.stream.sources import SourceError, open_source

    if getattr(args, "inference_only", False):
        from mespot.bench import capacity

        return capacity.run(args)
    if not 1 <= args.min <= args.max or args.seconds < 1 or args.repeats < 1:
        print("spot-bench streams: need 1 <= --min <= --max, --repeats >= 1 and --seconds >= 1", file=sys.stderr)
        return 2
    if args.model is not None and not args.model.is_file():
        print(f"spot-bench streams: --model {args.model}: no such file", file=sys.stderr)
        return 2
    console = Console()
    machine = describe_machine()
    frames = int(round(args.seconds * STREAM_FPS))
    modes = MODES if args.mode == "both" else (args.mode,)
    ray_started = False
    result = {"bench": "streams", "target_streams": TARGET_STREAMS, "seconds": args.seconds, "fps": STREAM_FPS,
              "min_streams_tried": args.min, "repeats": args.repeats,
              "modes": {}, "machine": machine, "cpus_usable": len(os.sched_getaffinity(0))}
    with tempfile.TemporaryDirectory(prefix="mespot-streams-") as tmp:
        try:
            models = resolve_models(args.model, None, Path(tmp))
            if args.source:
                source = args.source
                open_source(source).close()
            else:
                with console.status(f"rendering a {frames}-frame 640x480 clip ..."):
                    source = str(render_bench_clip(Path(tmp) / "streams.mp4", frames, STREAM_FPS)[0])
        except (SourceError, FileNotFoundError) as exc:
            print(f"spot-bench streams: {exc}", file=sys.stderr)
            return 2
        result["source"] = args.source or f"generated 640x480 clip, {frames} frames"
        result["model"] = {"path": str(models.onnx), "trained": models.trained, "note": models.note}
        shared = open_bench_runtime(models, "onnx") if "thread" in modes else None
        if "ray" in modes:
            from mespot.bench.serving import ray_footprint
            import ray

            with console.status("measuring Ray's own start-up and memory ..."):
                result["ray"] = ray_footprint()
            ray.init(address="local", include_dashboard=False, log_to_driver=False, configure_logging=False)
            ray_started = True
        with Progress(console=console, refresh_per_second=2, transient=True) as progress:
            for mode in modes:
                task = progress.add_task(f"{mode}: {args.min}..{args.max} streams", total=args.max - args.min + 1)
                trials = []
                for n in range(args.min, args.max + 1):
                    repeats = []
                    for _ in range(args.repeats):
                        if mode in SERVE_MODES:
                            from mespot.bench.serving import trial_serve
                            streams = trial_serve(n, source, models.onnx, frames, backend=mode)
                        else:
                            streams = (trial_processes(n, source, models.onnx, frames) if mode == "process"
                                       else trial_threads(n, source, shared, frames))
                        repeats.append({**judge(n, streams, frames), "load_avg": load_average()})
                    trials.append(median_trial(repeats))
                    progress.advance(task)
                    if not trials[-1]["steady_after_startup"]:
                        break
                result["modes"][mode] = {
                    "max_streams": _largest(trials, "sustained"),
                    "max_streams_steady": _largest(trials, "steady_after_startup"),
                    "limit_reached": trials[-1]["steady_after_startup"], "trials": trials}
    if ray_started:
        import ray
        ray.shutdown()
    result["max_streams"] = max(m["max_streams"] for m in result["modes"].values())
    result["max_streams_steady"] = max(m["max_streams_steady"] for m in result["modes"].values())
    result["target_met"] = result["max_streams"] >= TARGET_STREAMS
    result["load_avg_end"] = load_average()
    for mode, m in result["modes"].items():
        last = m["trials"][-1]
        why = ("--max reached, the limit may be higher" if m["limit_reached"] else
               f"{last['streams']} streams: {last['dropped']} frames dropped, {last['dropped_after_startup']} "
               f"after the first {STARTUP_S:g} s"
               + (f", errors: {'; '.join(last['errors'])}" if last["errors"] else ""))
        console.print(f"{mode}: {m['max_streams']} concurrent 30 fps streams without drops, "
                      f"{m['max_streams_steady']} without drops after the first {STARTUP_S:g} s ({why})")
        for t in m["trials"]:
            each = (f" (each repeat's drops after the first {STARTUP_S:g} s: "
                    f"{', '.join(str(r['dropped_after_startup']) for r in t['repeats'])})" if "repeats" in t else "")
            console.print(f"  {t['streams']} streams: dropped {t['dropped']} ({t['dropped_after_startup']} after the "
                          f"first {STARTUP_S:g} s), slowest fps {t['fps_min']}, "
                          f"worst end-to-end p50 {t['end_to_end_p50_ms_worst']} ms, "
                          f"p99 {t['end_to_end_p99_ms_worst']} ms{each}")
    verdict = "PASS" if result["target_met"] else "MISS"
    console.print(f"target >= {TARGET_STREAMS} streams: {verdict} (best {result['max_streams']}, margin "
                  f"{result['max_streams'] - TARGET_STREAMS:+d})")
    if "ray" in result:
        r = result["ray"]
        console.print(f"ray: init {r['init_s']} s, first actor {r['first_actor_s']} s, {r['processes']} processes "
                      f"with {r['rss_mb_total']} MB resident before any stream")
    console.print(f"machine: {one_line(machine)}; load at end {result['load_avg_end']}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1) + "\n")
        console.print(f"wrote {args.json}")
    return 0
