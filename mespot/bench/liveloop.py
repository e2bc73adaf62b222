"""The real live loop, assembled and timed for the latency and streams benchmarks.

`run_live_loop` runs exactly what `spot-live` runs (mespot.stream.factory: source -> CaptureThread
-> the model's FrontEnd -> OnlineEngine -> CausalPeakPicker -> MessageBus with a ZeroMQ publisher), and records, per frame, the
pipeline's own stage times (mespot.stream.pipeline.STAGES, milliseconds) through its `on_frame`
observer, and per published interval its delay after the offset frame's capture.

A paced file stands in for a camera (`realtime=True`): frames are released at the file's own
timestamps and the capture queue drops the oldest frame when the loop falls behind, as it would
with a camera, so `dropped` counts frames a camera would have lost. Unpaced (`realtime=False`) the
file is read as fast as the loop takes frames (back-pressure, nothing lost): that gives the loop's
throughput, and its capture stage is then queueing, not latency.

Models: the shipped default model (mespot.models) when present; otherwise, only for timing, an
untrained AUW-GCN of the shipped architecture exported the normal way (needs torch). Inference time
does not depend on the weights; intervals found by an untrained model mean nothing.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mespot.stream.pipeline import STAGES, FrameRecord, PipelineObserver

BENCH_STREAM = "bench"
# Derived per-frame figure: the loop's own work, end_to_end minus the wait in the capture queue.
IN_LOOP = "in_loop"


def summarize(values_ms) -> dict:
    """p50/p95/p99/max/mean in ms and the count n; only n (= 0) for no values."""
    a = np.asarray(list(values_ms), dtype=np.float64)
    if a.size == 0:
        return {"n": 0}
    p50, p95, p99 = np.percentile(a, [50, 95, 99])
    return {"p50_ms": round(float(p50), 3), "p95_ms": round(float(p95), 3), "p99_ms": round(float(p99), 3),
            "max_ms": round(float(a.max()), 3), "mean_ms": round(float(a.mean()), 3), "n": int(a.size)}


# -- the source ------------------------------------------------------------------------------------
def render_bench_clip(path: Path, frames: int, fps: float = 30.0, seed: int = 0) -> tuple[Path, int]:
    """A 640x480 mp4 of the public-domain astronaut with planted micro- and macro-expressions among
    blinks, head motion and noise (mespot.synth), `frames` long; returns (path, planted count)."""
    from mespot.synth.identities import list_identities
    from mespot.synth.render import render_video
    from mespot.synth.timeline import plan_timeline

    identity = list_identities("astronaut", size=(640, 480))[0]
    per_kind = max(1, frames // 150)
    timeline = plan_timeline(frames, fps, seed, counts={"micro": per_kind, "macro": per_kind})
    return render_video(identity, timeline, path), len(timeline.intervals())


# -- the model -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BenchModels:
    """Model files per backend: ONNX (onnx, tensorrt) and a mespot checkpoint (torch)."""

    onnx: Path | None
    checkpoint: Path | None
    trained: bool
    note: str

    def path_for(self, backend: str) -> Path:
        path = self.checkpoint if backend == "torch" else self.onnx
        if path is None:
            raise FileNotFoundError(f"no model file for backend {backend} (pass "
                                    f"{'--checkpoint' if backend == 'torch' else '--model'})")
        return path


def resolve_models(onnx: Path | None, checkpoint: Path | None, workdir: Path) -> BenchModels:
    """The given files, else the shipped default ones, else an untrained export into `workdir`."""
    from mespot.models import ModelNotFound, default_model_path

    def shipped(backend: str) -> Path | None:
        try:
            return default_model_path(backend)
        except ModelNotFound:
            return None

    if onnx is not None or checkpoint is not None:
        return BenchModels(onnx, checkpoint, True, "given on the command line")
    onnx, checkpoint = shipped("onnx"), shipped("torch")
    if onnx is not None:
        return BenchModels(onnx, checkpoint, True, "the shipped default model")
    return untrained_models(workdir)


def untrained_models(workdir: Path) -> BenchModels:
    """An AUW-GCN with its initial weights, saved and exported like a trained one (timing only)."""
    try:
        from mespot.config import load_config
        from mespot.engine.checkpoint import save_checkpoint
        from mespot.engine.model import AUWGCN
        from mespot.export.onnx import export_onnx
    except ImportError as exc:
        raise FileNotFoundError("no shipped model and no torch to make a stand-in: pass --model "
                                "FILE.onnx (made with spot-export)") from exc
    config = load_config("live")
    checkpoint = workdir / "untrained.pt"
    save_checkpoint(checkpoint, AUWGCN().eval(), config=config, fps=config.fps, epoch=0)
    onnx = workdir / "untrained.onnx"
    export_onnx(checkpoint, onnx, window=config.window)
    return BenchModels(onnx, checkpoint, False,
                       "UNTRAINED stand-in (no shipped model yet): timings valid, intervals meaningless")


def open_bench_runtime(models: BenchModels, spec: str, precision: str = "fp32", threads: int | None = 1):
    """Open backend spec 'name[:device]' (onnx, onnx:cuda, torch, torch:cuda, tensorrt), `threads`
    threads for the CPU runtimes (1: what the live loop uses), warmed up for every online window
    length. A precision other than fp32 (or any on a GPU) carries its measured error in describe()."""
    from mespot.engine.runtime import open_runtime

    backend, _, device = spec.partition(":")
    device = device or ("cuda" if backend == "tensorrt" else "cpu")
    options = {"threads": threads} if device == "cpu" and threads else {}
    options["precision"] = precision
    runtime = open_runtime(models.path_for(backend), backend, device, **options)
    runtime.warm_up()
    return runtime


def time_model_alone(runtime, calls: int, *, pause_s: float = 0.0, seed: int = 0) -> dict:
    """The model alone on one online window ((1, window, 12, 2) random features), per call; with
    `pause_s` the machine idles that long before each call (as between a camera's frames)."""
    rng = np.random.default_rng(seed)
    windows = rng.normal(0.0, 0.5, (calls, 1, runtime.window, 12, 2)).astype(np.float32)
    times = []
    for w in windows:
        if pause_s:
            time.sleep(pause_s)
        t0 = time.perf_counter()
        runtime.infer(w)
        times.append((time.perf_counter() - t0) * 1e3)
    return {"window": runtime.window, "pause_ms": round(pause_s * 1e3, 1), **summarize(times)}


# -- the loop --------------------------------------------------------------------------------------
class LoopRecorder(PipelineObserver):
    """Collects every frame's stage times and every interval's delay; stops the loop at `max_frames`."""

    def __init__(self, max_frames: int | None = None, progress=None) -> None:
        self.max_frames = max_frames
        self.progress = progress
        self.pipeline = None
        self.stage_ms: dict[str, list[float]] = {s: [] for s in (*STAGES, IN_LOOP)}
        self.valid = 0
        self.event_delay_ms: list[float] = []
        self.events: list[dict] = []
        self.drop_times_s: list[float] = []      # seconds from the first frame, one per dropped frame
        self._dropped = 0
        self._t_first: float | None = None

    def on_frame(self, record: FrameRecord) -> None:
        for name, value in record.stage_ms.items():
            self.stage_ms[name].append(value)
        self.stage_ms[IN_LOOP].append(record.stage_ms["end_to_end"] - record.stage_ms["capture"])
        self.valid += record.valid
        if self._t_first is None:
            self._t_first = record.t_monotonic
        dropped = self.pipeline.capture.dropped
        if dropped > self._dropped:
            self.drop_times_s += [round(record.t_monotonic - self._t_first, 3)] * (dropped - self._dropped)
            self._dropped = dropped
        if self.progress is not None:
            self.progress()
        if self.max_frames is not None and len(self.stage_ms["end_to_end"]) >= self.max_frames:
            self.pipeline.stop()

    def on_interval(self, interval, message: dict) -> None:
        if message.get("delay_ms") is not None:
            self.event_delay_ms.append(float(message["delay_ms"]))
        self.events.append({"kind": interval.kind, "onset": interval.onset, "apex": interval.apex,
                            "offset": interval.offset, "delay_ms": message.get("delay_ms")})


@dataclass
class LoopResult:
    realtime: bool
    frames: int
    valid: int
    seconds: float
    dropped: dict[str, int]
    stage_ms: dict[str, list[float]] = field(repr=False)
    event_delay_ms: list[float]
    events: list[dict]
    source_stats: dict[str, int]
    drop_times_s: list[float]
    cpu_s: float                 # CPU time of the whole process (every thread) during the run
    view: dict | None = None     # with a rerun view: frames it showed and dropped (mespot.view.live_view)

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self, *, with_events: bool = True) -> dict:
        """The JSON form: percentiles per stage (+ in_loop), end_to_end, fps, drops, event delays."""
        ms = self.stage_ms
        out = {
            "mode": "realtime" if self.realtime else "fast",
            "frames": self.frames, "valid_frames": self.valid, "seconds": round(self.seconds, 3),
            "fps": round(self.fps, 2), "dropped": sum(self.dropped.values()), "dropped_by": self.dropped,
            "capture_drop_times_s": self.drop_times_s,
            "cpu_ms_per_frame": round(self.cpu_s * 1e3 / self.frames, 3) if self.frames else None,
            "cpu_cores_busy": round(self.cpu_s / self.seconds, 3) if self.seconds > 0 else None,
            "source_stats": self.source_stats,
            "stages": {s: summarize(self.stage_ms[s]) for s in STAGES if s != "end_to_end"},
            "in_loop": summarize(self.stage_ms[IN_LOOP]),
            "end_to_end": summarize(self.stage_ms["end_to_end"]),
            # the floor's work as it ran inside the loop, and what the loop adds to it, per frame
            "landmarks_plus_flow": summarize(lm + fl for lm, fl in zip(ms["landmarks"], ms["flow"])),
            "beyond_landmarks_flow": summarize(e - lm - fl for e, lm, fl in
                                               zip(ms["end_to_end"], ms["landmarks"], ms["flow"])),
            "event_delay": {"intervals": len(self.event_delay_ms), **summarize(self.event_delay_ms)},
        }
        if self.view is not None:
            out["view"] = self.view
        if with_events:
            out["events"] = self.events
        return out


def run_live_loop(source_spec: str, runtime, *, realtime: bool, max_frames: int | None = None, endpoint: str = "tcp://127.0.0.1:*",
                  stream: str = BENCH_STREAM, progress=None, view: str | None = None) -> LoopResult:
    """Run the live loop once over `source_spec` with `runtime` (shared, not closed here).

    Built by the factory spot-live uses (mespot.stream.factory.build_pipeline), so with the model's
    own config, front-end and spot-live's default score rate; `progress()` is called after each
    frame (progress bars). `view`: also run spot-live's rerun view, as `--view` does: 'web' (served
    on free ports, no browser attached) or a FILE.rrd path (mespot.view.live_view).
    """
    from mespot.stream.factory import build_pipeline
    from mespot.stream.sinks import ZmqPublisher

    recorder = LoopRecorder(max_frames, progress)
    publisher = ZmqPublisher(endpoint, linger_ms=0)
    try:
        with build_pipeline(source_spec, runtime, sinks=[publisher], stream=stream, realtime=realtime,
                            capture_policy="drop_oldest" if realtime else "block",
                            observers=[recorder]) as live:
            recorder.pipeline = live.pipeline
            shown = None
            if view is not None:
                from mespot.view.live_view import free_port, open_live_view

                shown = open_live_view(view, stream=stream, config=live.config, frontend=live.frontend.config(),
                                       web_port=free_port())
                shown.start()
                live.pipeline.observers.append(shown)
            cpu0 = time.process_time()
            try:
                summary = live.run()
            finally:
                if shown is not None:
                    shown.close()
                    shown.shutdown()
            cpu_s = time.process_time() - cpu0
    finally:
        publisher.close()
    return LoopResult(realtime=realtime, frames=summary.frames, valid=summary.valid_frames,
                      seconds=summary.seconds, dropped=dict(summary.dropped),
                      stage_ms=recorder.stage_ms, event_delay_ms=recorder.event_delay_ms,
                      events=recorder.events, source_stats=dict(live.source.stats),
                      drop_times_s=recorder.drop_times_s, cpu_s=cpu_s,
                      view=None if shown is None else {"target": view, "frames_shown": shown.frames_logged,
                                                       "dropped": shown.dropped_frames,
                                                       "dropped_rows": shown.dropped_rows})
