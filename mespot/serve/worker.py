"""One stream's whole pipeline inside a worker (a process, or a Ray actor): StreamRunner.

The runner builds exactly what a single `spot-live` builds (mespot.stream.factory.build_pipeline,
the model's own front-end and config) and publishes through a ZmqPublisher that *connects* to the
bus proxy (mespot.serve.bus), so a stream's messages are the same bytes a single-stream run sends.

A supervised restart (a Ray actor, or a worker process the ProcessBackend starts again) makes a
new runner with `run` = the restart count and `start_index` = the frame number the stream has
reached by then (`resume_index`): the source restarts there (a file is seeked; a camera simply
continues) and its frames are numbered from it, so the frames the dead worker never processed
show as a jump in frame numbers, a gap, not as a new stream starting at 0. `guard` (a Sink
wrapping the publisher) sees every message before it leaves: both backends use a ResumeGuard to
record progress and to refuse an interval that was already published before a crash (its record:
`SharedProgress` for processes, the StreamRegistry actor for Ray).
"""
from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterator

from mespot.serve.specs import StreamSpec
from mespot.stream.pipeline import FrameRecord, PipelineObserver
from mespot.stream.sinks import DEFAULT_HWM, Sink, ZmqPublisher
from mespot.stream.sources import Source

SUBSCRIBED_WAIT_S = 10.0      # how long a worker waits for the bus to forward the monitor's subscription


class StreamStartError(Exception):
    """A stream could not start (its source, model, front-end or the bus): one line for the user."""


@dataclass(frozen=True)
class Job:
    """What every stream of one spot-live run shares: the model, the rate/decoding, the bus."""

    model: str
    bus: str                                  # the proxy's inner endpoint (publishers connect)
    backend: str = "onnx"
    device: str = "cpu"
    precision: str = "fp32"
    config: str | None = None                 # a config name or path; None: the model's own
    hwm: int = DEFAULT_HWM
    score_rate_hz: float = 10.0
    realtime: bool = False                    # every stream's default; a stream's own option wins
    run_streams: tuple[str, ...] = ()         # every id of the run, carried in each status
    threads: int = 1                          # ONNX Runtime threads per stream
    engine: str | None = None                 # a shared engine's endpoint (mespot.serve.shared); None: own model

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Job":
        return cls(**{**d, "run_streams": tuple(d.get("run_streams", ()))})


class ShiftedSource(Source):
    """A source whose frame numbers start at `offset` (a restarted stream, see the module)."""

    def __init__(self, inner: Source, offset: int) -> None:
        super().__init__()
        self.inner, self.offset = inner, int(offset)
        self.fps, self.is_live, self.duration_s = inner.fps, inner.is_live, inner.duration_s

    @property
    def stats(self) -> dict[str, int]:
        return self.inner.stats

    def _frames(self) -> Iterator:                 # pragma: no cover - __iter__ is overridden
        return iter(())

    def __iter__(self):
        for frame in self.inner:
            yield replace(frame, index=frame.index + self.offset)

    def close(self) -> None:
        self.inner.close()

    def describe(self) -> str:
        return f"{self.inner.describe()} from frame {self.offset}"


class LastFrame(PipelineObserver):
    """The newest frame number the loop processed (what a restart resumes after)."""

    def __init__(self) -> None:
        self.index: int | None = None

    def on_frame(self, record: FrameRecord) -> None:
        self.index = record.index


class ResumeGuard(Sink):
    """Wraps a stream's publisher for a supervisor that restarts it (mespot.serve.cluster).

    Before an interval leaves, `report_interval(kind, apex)` is called (synchronously: a crash
    after it and before the send loses that one interval, never duplicates it); an interval whose
    apex is not after the last one reported for its kind (`last_apex`, carried over from the runs
    before a restart) is refused and counted in `suppressed`: intervals of one kind are published
    in apex order, so such an interval was already published by an earlier run. With a `score`
    or `status`, at most every `progress_every_s`, the newest processed frame goes to
    `report_progress(index)`, the resume point of a restart: a stream read as fast as possible
    may score the frames of that last fraction of a second again after a restart.
    """

    def __init__(self, publisher: Sink, *, report_interval: Callable[[str, int], None],
                 report_progress: Callable[[int], None], last_apex: dict[str, int] | None = None,
                 last_frame: LastFrame | None = None, progress_every_s: float = 0.0) -> None:
        self.publisher = publisher
        self.report_interval, self.report_progress = report_interval, report_progress
        self.last_apex = dict(last_apex or {})
        self.last_frame = last_frame
        self.progress_every_s = float(progress_every_s)
        self._next_progress = 0.0
        self.suppressed = 0

    @property
    def dropped(self) -> int:                      # type: ignore[override]
        return self.publisher.dropped

    def write(self, topic: str, payload: bytes) -> None:
        self.write_routed(topic.encode(), topic, payload)

    def write_routed(self, key: bytes, topic: str, payload: bytes) -> None:
        if topic == "interval":
            message = json.loads(payload)
            kind, apex = message["kind"], int(message["apex_frame"])
            if apex <= self.last_apex.get(kind, -1):
                self.suppressed += 1
                return
            self.report_interval(kind, apex)
            self.last_apex[kind] = apex
        elif self.last_frame is not None and self.last_frame.index is not None:
            now = time.monotonic()
            if now >= self._next_progress:
                self._next_progress = now + self.progress_every_s
                self.report_progress(self.last_frame.index)
        self.publisher.write_routed(key, topic, payload)

    def flush(self) -> None:
        self.publisher.flush()

    def poll(self) -> None:
        self.publisher.poll()

    def close(self) -> None:
        self.publisher.close()

    def on_error(self, error: BaseException) -> None:
        self.publisher.on_error(error)

    def on_end(self) -> None:
        self.publisher.on_end()


@dataclass
class RunnerState:
    state: str = "starting"                   # starting | running | ended | error
    summary: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


def paced(spec: StreamSpec, job: Job) -> bool:
    """Whether the stream runs on the clock (a camera, a URL, or a file played in real time): then
    a restart resumes where the clock is, not after the last frame processed."""
    from mespot.stream.sources import URL_SCHEMES

    source = spec.source
    live = isinstance(source, int) or source.strip().isdigit() or source.lower().startswith(URL_SCHEMES)
    return live or bool(spec.options.get("realtime", job.realtime))


def stream_fps(job: Job) -> float:
    """The frame rate every stream of the job runs at (its config's, else the model's)."""
    from mespot.config import load_config
    from mespot.engine.runtime.metadata import metadata_config

    if job.config:
        return load_config(job.config).fps
    return metadata_config(metadata_runtime(job.model).metadata).fps


def metadata_runtime(model: str):
    """The model opened on this CPU only to read what it carries (config, front-end): where it
    runs may be elsewhere (a shared engine, a GPU node)."""
    from mespot.engine.runtime import open_runtime

    return open_runtime(model, "torch" if str(model).endswith(".pt") else "onnx", "cpu")


def resume_index(spec: StreamSpec, job: Job, last_index: int, streaming_since: float | None) -> int:
    """The first frame number of a restarted stream: after the newest frame the dead worker
    reported, or, for a stream on the clock (`paced`), the frame the clock has reached since the
    stream started at `streaming_since` (time.time()), whichever is later."""
    index = int(last_index) + 1
    if streaming_since is not None and paced(spec, job):
        index = max(index, int((time.time() - streaming_since) * stream_fps(job)))
    return index


class SharedProgress:
    """What a restart of a stream's worker process needs, in shared memory that outlives the
    process: the newest frame it processed and the newest apex it published per kind (-1: none).
    A write is visible to the supervisor at once, so a SIGKILL loses nothing already written."""

    KINDS = ("micro", "macro")

    def __init__(self, ctx) -> None:
        self.values = ctx.Array("q", 1 + len(self.KINDS), lock=False)
        for k in range(len(self.values)):
            self.values[k] = -1

    @property
    def last_index(self) -> int:
        return int(self.values[0])

    def last_apex(self) -> dict[str, int]:
        return {kind: int(self.values[1 + k]) for k, kind in enumerate(self.KINDS) if self.values[1 + k] >= 0}

    def guard(self, publisher: Sink, last: LastFrame) -> ResumeGuard:
        """The ResumeGuard of a (re)started worker: it writes here and refuses what an earlier
        run published."""
        slot = {kind: 1 + k for k, kind in enumerate(self.KINDS)}

        def report_interval(kind: str, apex: int) -> None:
            self.values[slot[kind]] = apex

        def report_progress(index: int) -> None:
            self.values[0] = index
        return ResumeGuard(publisher, report_interval=report_interval, report_progress=report_progress,
                           last_apex=self.last_apex(), last_frame=last)


def _open_source(spec: StreamSpec, job: Job, fps: float, start_index: int) -> Source:
    from mespot.stream.sources import VideoFileSource, open_source

    realtime = spec.options.get("realtime", job.realtime)
    source = open_source(spec.source, realtime=realtime, target_fps=fps, **spec.source_options())
    if start_index <= 0:
        return source
    if isinstance(source, VideoFileSource):
        # The file stands in for a camera: resume where the camera would be now.
        import cv2

        source._cap.set(cv2.CAP_PROP_POS_FRAMES, int(round(start_index * source.fps / fps)))
    elif not source.is_live:                        # an image folder: skip the files already due
        source.files = source.files[int(round(start_index * source.fps / fps)):]
    return ShiftedSource(source, start_index)


class StreamRunner:
    """Build one stream (raises StreamStartError with one line), then `start()` it on a thread.

    run: restart count (0 first); start_index: first frame number (a restart's resume point);
    guard: a function (publisher, LastFrame) -> Sink that wraps the publisher (default: none).
    """

    def __init__(self, spec: StreamSpec, job: Job, *, run: int = 0, start_index: int = 0,
                 guard: Callable[[ZmqPublisher, LastFrame], Sink] | None = None, observers=()) -> None:
        from mespot.config import ConfigError, load_config
        from mespot.engine.runtime import RuntimeUnavailable, open_runtime
        from mespot.models import ModelNotFound
        from mespot.stream.factory import build_pipeline, pipeline_config
        from mespot.stream.frontconfig import FrontEndMismatch
        from mespot.stream.sinks import PublishError
        from mespot.stream.sources import SourceError
        from mespot.stream.tracker import TrackerError

        self.spec, self.job, self.run_number = spec, job, int(run)
        self.last = LastFrame()
        self.status = RunnerState()
        self._thread: threading.Thread | None = None
        where = f"stream {spec.id}"
        try:
            if job.engine is None:
                options = {"threads": job.threads} if job.backend == "onnx" else {}
                self.runtime = open_runtime(job.model, job.backend, job.device, precision=job.precision, **options)
            else:                       # the model runs in the shared engine: here only its metadata is read
                self.runtime = metadata_runtime(job.model)
            config = pipeline_config(self.runtime, load_config(job.config) if job.config else None)
        except (ModelNotFound, FileNotFoundError, ValueError, RuntimeUnavailable, ConfigError) as exc:
            raise StreamStartError(f"{where}: model {job.model}: {exc}") from None
        try:
            self.source = _open_source(spec, job, config.fps, start_index)
        except SourceError as exc:
            raise StreamStartError(f"{where}: {exc}") from None
        try:
            self.publisher = ZmqPublisher(job.bus, hwm=job.hwm, connect=True)
        except PublishError as exc:
            self.source.close()
            raise StreamStartError(f"{where}: {exc}") from None
        sink = guard(self.publisher, self.last) if guard is not None else self.publisher
        self.sink = sink
        extra = {"run_streams": list(job.run_streams or (spec.id,)), "restarts": self.run_number}
        self.remote = None
        if job.engine is not None:
            from mespot.serve.shared import RemoteEngine

            self.remote = RemoteEngine(job.engine)
        try:
            self.live = build_pipeline(self.source, self.runtime, config=config, sinks=[sink], stream=spec.id,
                                       capture_policy=spec.capture_policy,
                                       score_rate_hz=job.score_rate_hz, observers=[self.last, *observers],
                                       run=self.run_number, extra_status=extra, engine=self.remote)
        except (FrontEndMismatch, TrackerError) as exc:
            self.source.close()
            self.publisher.close()
            if self.remote is not None:
                self.remote.close()
            raise StreamStartError(f"{where}: model {job.model}: {exc}") from None
        if self.remote is None:
            self.runtime.warm_up()
        self.config = config

    def wait_connected(self, timeout_s: float = SUBSCRIBED_WAIT_S) -> bool:
        """Wait until the bus forwards a subscription to this stream's status (the supervisor's
        monitor subscribes before any worker starts), so its first messages are not lost."""
        return self.publisher.wait_for_subscriber(timeout_s, "status", self.spec.id)

    def start(self) -> None:
        def work() -> None:
            self.status.state = "running"
            try:
                summary = self.live.run()
                self.status.summary = _summary_dict(summary)
                self.status.state = summary.state
            except BaseException as exc:        # the pipeline already published status `error`
                self.status.state, self.status.error = "error", f"{type(exc).__name__}: {exc}"
            finally:
                self.live.close()
                if self.remote is not None:
                    self.remote.close()

        self._thread = threading.Thread(target=work, name=f"mespot-stream-{self.spec.id}", daemon=True)
        self._thread.start()

    def stop(self, *, wait_for_source: bool = True) -> None:
        self.live.pipeline.stop(wait_for_source=wait_for_source)

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the stream to end; True when it has."""
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def close(self) -> None:
        """For a runner that was built but never started."""
        if self._thread is None:
            self.source.close()
            self.live.close()
            self.publisher.close()
            if self.remote is not None:
                self.remote.close()


def _summary_dict(summary) -> dict[str, Any]:
    return {"state": summary.state, "frames": summary.frames, "valid_frames": summary.valid_frames,
            "seconds": round(summary.seconds, 3), "fps": round(summary.fps, 3),
            "intervals": {k: sum(i.kind == k for i in summary.intervals) for k in ("micro", "macro")},
            "dropped": summary.dropped, "error": summary.error}


def process_main(spec: dict, job: dict, go, stop, abandon, results, progress: SharedProgress | None = None,
                 run: int = 0, start_index: int = 0) -> None:
    """Entry point of a stream's worker process (multiprocessing, spawn): build, report ready (or
    the one-line reason it cannot start), wait for `go`, stream until the end or `stop`, report.
    A restart (`run` > 0) starts at `start_index` and publishes through `progress`'s guard."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)      # the supervisor owns Ctrl-C and tells us via `stop`
    spec_obj = StreamSpec.from_dict(spec)
    try:
        runner = StreamRunner(spec_obj, Job.from_dict(job), run=run, start_index=start_index,
                              guard=None if progress is None else progress.guard)
        if not runner.wait_connected():
            runner.close()
            results.put(("failed", spec_obj.id, f"stream {spec_obj.id}: the bus did not answer within "
                                               f"{SUBSCRIBED_WAIT_S:g} s"))
            return
    except StreamStartError as exc:
        results.put(("failed", spec_obj.id, str(exc)))
        return
    except BaseException as exc:
        results.put(("failed", spec_obj.id, f"stream {spec_obj.id}: {type(exc).__name__}: {exc}"))
        return
    results.put(("ready", spec_obj.id, None))
    while not go.wait(0.1):
        if stop.is_set():
            runner.close()
            results.put(("done", spec_obj.id, {"state": "ended", "frames": 0}))
            return
    runner.start()
    stopped = False
    while not runner.join(0.1):
        if abandon.is_set():
            runner.stop(wait_for_source=False)
        elif stop.is_set() and not stopped:
            runner.stop()
            stopped = True
    results.put(("done", spec_obj.id, {**runner.status.summary, "state": runner.status.state,
                                       "error": runner.status.error or runner.status.summary.get("error")}))
    time.sleep(0.05)
