"""`spot-bench streams --inference-only`: how many 30 fps streams one machine's INFERENCE carries.

The whole-loop count (`spot-bench streams`) runs capture, landmarks and flow per stream; this one
asks what the model side alone carries when many cameras' features meet in one server: N streams
each push one valid feature per step into one MultiStreamEngine (mespot.engine.multistream, what
such a server runs), i.e. per step one batched model call of N windows plus the engine's array
staging and emission. Features are random at the model's input scale; inference time does not
depend on their values.

N streams are CARRIED when the step time's p99 is within one frame period (1/30 s): every stream
gets its probabilities before its next frame. N doubles from `start` until a step misses that, then
bisects between the last N carried and the first missed (within 5%, while the time budget lasts).
Each trial also splits the mean step into the model call(s) and the engine's own staging.

`incremental` (not a runtime) measures mespot.engine.incremental.IncrementalEngine instead: the same
contract, each layer's newest column computed from cached ones in numpy (weights from the torch
checkpoint), equal to offline within 1e-5; its steps have no separate model call.

No mediapipe, OpenCV or ZeroMQ here: scripts/gpu_checks.py imports this from the source tree on a
GPU machine that has none of them.
"""
from __future__ import annotations

import time
import functools
from pathlib import Path
from typing import Any, Callable

import numpy as np

from mespot.engine.multistream import MultiStreamEngine

STREAM_FPS = 30.0
FRAME_PERIOD_MS = 1000.0 / STREAM_FPS
FEATURE_POOL = 4          # distinct feature steps cycled through (avoids generating N x 24 floats a step)


class TimedRuntime:
    """A runtime proxy that adds up the seconds spent in infer()."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.right_context, self.window = inner.right_context, inner.window
        self.seconds = 0.0

    def infer(self, x: np.ndarray) -> np.ndarray:
        t0 = time.perf_counter()
        out = self.inner.infer(x)
        self.seconds += time.perf_counter() - t0
        return out


def measure_step(runtime, streams: int, steps: int = 30, seed: int = 0,
                 make_engine: Callable[[int], Any] | None = None) -> dict[str, Any]:
    """Time `steps` steady-state steps of `streams` streams (after filling every ring). The engine
    is a MultiStreamEngine on `runtime`, or make_engine(capacity) (then there is no separate model
    call to time and `runtime` only gives the input scale)."""
    timed = TimedRuntime(runtime)
    engine = MultiStreamEngine(timed, capacity=streams) if make_engine is None else make_engine(streams)
    slots = engine.join(streams)
    rng = np.random.default_rng(seed)
    meta = getattr(runtime, "metadata", {})
    mean = np.asarray(meta.get("input_mean", (0.0, 0.0)), np.float32)
    std = np.asarray(meta.get("input_std", (1.0, 1.0)), np.float32)
    pool = (rng.normal(0.0, 1.0, (FEATURE_POOL, streams, 12, 2)) * std + mean).astype(np.float32)
    index = 0
    for _ in range(getattr(engine, "window", 2 * engine.delay + 1) + 1):   # fill: then every step is steady state
        engine.push(slots, np.full(streams, index), pool[index % FEATURE_POOL])
        index += 1
    step_ms, model_ms, rows = [], [], 0
    for _ in range(steps):
        timed.seconds = 0.0
        t0 = time.perf_counter()
        out = engine.push(slots, np.full(streams, index), pool[index % FEATURE_POOL])
        step_ms.append((time.perf_counter() - t0) * 1e3)
        model_ms.append(timed.seconds * 1e3)
        rows += len(out)
        index += 1
    if rows != streams * steps:
        raise RuntimeError(f"{streams} streams x {steps} steps emitted {rows} rows")
    a, m = np.asarray(step_ms), np.asarray(model_ms)
    p99 = float(np.percentile(a, 99))
    split = make_engine is None
    return {"streams": int(streams), "steps": int(steps),
            "step_p50_ms": round(float(np.percentile(a, 50)), 3), "step_p99_ms": round(p99, 3),
            "step_mean_ms": round(float(a.mean()), 3),
            "model_mean_ms": round(float(m.mean()), 3) if split else None,
            "staging_mean_ms": round(float((a - m).mean()), 3) if split else None,
            "staging_us_per_stream": round(float((a - m).mean()) * 1e3 / streams, 3) if split else None,
            "carried": p99 <= FRAME_PERIOD_MS}


def find_capacity(runtime, *, start: int = 64, max_streams: int = 1 << 20, steps: int = 30,
                  budget_s: float = 90.0, progress: Callable[[dict], None] | None = None,
                  measure: Callable[..., dict] = measure_step) -> dict[str, Any]:
    """The largest N whose steady-state step p99 fits a 30 fps frame period (see module doc)."""
    t_end = time.monotonic() + budget_s
    trials: list[dict] = []

    def trial(n: int) -> bool:
        t = measure(runtime, n, steps)
        trials.append(t)
        if progress is not None:
            progress(t)
        return t["carried"]

    carried, missed = 0, None
    n = max(1, min(start, max_streams))
    while True:                                           # down from `start` if even that misses
        if trial(n):
            carried = n
            break
        missed = n
        if n == 1 or time.monotonic() > t_end:
            break
        n //= 2
    while missed is None and carried < max_streams and time.monotonic() < t_end:
        n = min(2 * carried, max_streams)
        if trial(n):
            carried = n
        else:
            missed = n
    while (missed is not None and carried and missed - carried > max(1, carried // 20)
           and time.monotonic() < t_end):
        n = (carried + missed) // 2
        if trial(n):
            carried = n
        else:
            missed = n
    best = max(trials, key=lambda t: t["streams"] * FRAME_PERIOD_MS / max(t["step_mean_ms"], 1e-9))
    return {"max_streams": carried, "first_missed": missed,
            "limit_reached": missed is None,
            "frame_period_ms": round(FRAME_PERIOD_MS, 3),
            "by_mean_throughput": int(best["streams"] * FRAME_PERIOD_MS / best["step_mean_ms"]),
            "trials": sorted(trials, key=lambda t: t["streams"])}


def add_arguments(parser) -> None:
    """The --inference-only options of `spot-bench streams`."""
    g = parser.add_argument_group("--inference-only (the model side alone, many streams in one engine)")
    g.add_argument("--inference-only", action="store_true",
                   help="count the 30 fps streams the inference alone carries (MultiStreamEngine, one batched "
                        "model call per step), per --backend; no camera, landmarks or flow")
    g.add_argument("--backend", default="onnx,torch", metavar="LIST",
                   help="runtimes measured one after another: onnx, torch, with :cuda for a GPU, and incremental "
                        "(the numpy incremental engine; needs torch to read the checkpoint) (default onnx,torch)")
    g.add_argument("--checkpoint", type=Path, metavar="PATH",
                   help="mespot checkpoint for torch and incremental (default: the shipped one)")
    g.add_argument("--precision", default="fp32", metavar="P", help="fp32 (default), tf32, fp16 or bf16")
    g.add_argument("--threads", type=int, default=0, metavar="N",
                   help="CPU threads per runtime (default 0: the library's default, every core)")
    g.add_argument("--max-streams", type=int, default=1 << 20, metavar="N", help="largest N tried")
    g.add_argument("--steps", type=int, default=30, metavar="N", help="timed steps per trial (default 30)")
    g.add_argument("--budget", type=float, default=90.0, metavar="S",
                   help="seconds of search per backend before the best found so far is reported (default 90)")


def _print_trial(t: dict) -> None:
    split = "" if t["model_mean_ms"] is None else f" (model {t['model_mean_ms']} ms, staging {t['staging_mean_ms']} ms)"
    print(f"  {t['streams']:>8} streams: step p50 {t['step_p50_ms']} ms, p99 {t['step_p99_ms']} ms{split} "
          f"{'carried' if t['carried'] else 'MISSED'}", flush=True)


def run(args) -> int:
    """`spot-bench streams --inference-only`."""
    import json
    import os
    import sys
    import tempfile

    from mespot.bench.latency import parse_backends
    from mespot.bench.liveloop import open_bench_runtime, resolve_models
    from mespot.bench.machine import describe_machine, load_average, one_line
    from mespot.engine.runtime.base import RuntimeUnavailable
    from mespot.engine.runtime.precision import PRECISIONS
    from mespot.errors import InputError

    try:
        wanted = [w.strip() for w in args.backend.split(",") if w.strip()]
        runtimes = [w for w in wanted if w != "incremental"]
        specs = parse_backends(",".join(runtimes)) if runtimes else []
        specs = [w if w == "incremental" else specs[runtimes.index(w)] for w in wanted]
        if args.precision not in PRECISIONS:
            raise InputError(f"--precision {args.precision!r}; valid: {', '.join(PRECISIONS)}")
        if args.max_streams < 1 or args.steps < 2 or args.budget <= 0 or args.threads < 0:
            raise InputError("--max-streams >= 1, --steps >= 2, --budget > 0 and --threads >= 0 please")
    except InputError as exc:
        print(f"spot-bench streams: {exc}", file=sys.stderr)
        return 2
    machine = describe_machine()
    result: dict[str, Any] = {"bench": "streams-inference", "fps": STREAM_FPS,
                              "frame_period_ms": round(FRAME_PERIOD_MS, 3), "precision": args.precision,
                              "threads": args.threads or "library default", "backends": {}, "machine": machine}
    with tempfile.TemporaryDirectory(prefix="mespot-capacity-") as tmp:
        try:
            models = resolve_models(args.model, args.checkpoint, Path(tmp))
        except FileNotFoundError as exc:
            print(f"spot-bench streams: {exc}", file=sys.stderr)
            return 2
        result["model"] = {"path": str(models.onnx), "checkpoint": str(models.checkpoint), "trained": models.trained}
        for spec in specs:
            measure = measure_step
            try:
                if spec == "incremental":
                    from mespot.engine.incremental import IncrementalEngine, IncrementalWeights

                    if args.precision != "fp32":
                        raise ValueError("the incremental engine runs fp32 only")
                    runtime = open_bench_runtime(models, "torch", "fp32", threads=args.threads or None)
                    weights = IncrementalWeights.from_model(runtime.model)
                    measure = functools.partial(measure_step,
                                                make_engine=lambda n: IncrementalEngine(weights, capacity=n))
                else:
                    runtime = open_bench_runtime(models, spec, args.precision, threads=args.threads or None)
            except (RuntimeUnavailable, FileNotFoundError, ValueError, ImportError) as exc:
                result["backends"][spec] = {"error": str(exc)}
                print(f"{spec}: {exc}")
                continue
            print(f"{spec}: searching (budget {args.budget:g} s) ...", flush=True)
            found = find_capacity(runtime, max_streams=args.max_streams, steps=args.steps, budget_s=args.budget,
                                  measure=measure, progress=_print_trial)
            facts = runtime.describe()
            if spec == "incremental":
                facts = {"engine": "mespot.engine.incremental.IncrementalEngine (numpy)",
                         "weights_from": facts,
                         "blas_threads": os.environ.get("OPENBLAS_NUM_THREADS") or "numpy's default"}
            result["backends"][spec] = {"runtime": facts, **found}
            print(f"{spec}: {found['max_streams']} streams at {STREAM_FPS:g} fps (step p99 <= "
                  f"{FRAME_PERIOD_MS:.1f} ms){'; --max-streams reached' if found['limit_reached'] else ''}")
    result["load_avg_end"] = load_average()
    print(f"machine: {one_line(machine)}; load at end {result['load_avg_end']}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1) + "\n")
        print(f"wrote {args.json}")
    return 0 if any("error" not in b for b in result["backends"].values()) else 2
