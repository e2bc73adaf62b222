"""Run several streams at once: one worker per stream, one bus, one place that watches them.

    Supervisor ── BusProxy (XSUB/XPUB) ◄── worker per stream (ProcessBackend: a process each;
        │                                   mespot.serve.cluster.RayBackend: a Ray actor each)
        └── monitor SUB on the bus: the latest `status` of every stream (dashboard, summary),
            and with `record` every message into one JSONL file

The supervisor talks to its workers only through a backend (`prepare`, `start`, `stop`, `poll`,
`close`) and reads what they do only from the bus, the same messages any subscriber gets, so the
dashboard and the summary describe exactly what was published.

Order of a run: the monitor subscribes; the backend builds every stream (each worker opens its
source, model and front-end and waits until the bus forwards the monitor's subscription); if one
cannot start, all are stopped and its one-line reason raised (StreamStartError); optionally wait for
an outside subscriber; then all start at once. The run ends when every stream's worker is done and
its final status has been read (or `stop()` was asked, once to finish cleanly, twice to also stop
waiting for blocked sources).
"""
from __future__ import annotations

import multiprocessing as mp
import os
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Protocol

from mespot.serve.bus import BusProxy
from mespot.serve.specs import StreamSpec
from mespot.serve.worker import Job, SharedProgress, StreamStartError, process_main, resume_index
from mespot.stream.messages import decode

# Each stream's worker gets one thread per library pool unless the user's environment says otherwise:
# N workers each starting an OpenMP pool per core oversubscribe the machine (measured: 8 streams on
# 2 cores dropped 34-44 frames each without this and none with it; docs/scaling.md). Ray sets
# OMP_NUM_THREADS for its actors the same way.
WORKER_THREAD_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
READY_TIMEOUT_S = 300.0       # building a stream (model, tracker, source) on a loaded machine
DRAIN_S = 2.0                 # after the workers end: how long to wait for final statuses in flight


class Backend(Protocol):
    name: str

    def prepare(self, timeout_s: float) -> None: ...

    def start(self) -> None: ...

    def stop(self, *, wait_for_source: bool = True) -> None: ...

    def poll(self) -> dict[str, dict]: ...

    def close(self) -> None: ...


class ProcessBackend:
    """A spawned process per stream (mediapipe's threads do not survive fork), each running its
    StreamRunner with its own runtime. A worker that dies after the start (killed, crashed; a
    non-zero exit without a report) is started again, up to `max_restarts` times, resuming as a
    Ray actor does: from the frame `resume_index` gives, with `run` = its restart count and a
    guard that refuses intervals an earlier run published (SharedProgress keeps both across the
    crash). Past `max_restarts` its stream ends as an error naming the exit code."""

    name = "processes"

    def __init__(self, specs: list[StreamSpec], job: Job, *, max_restarts: int = 3) -> None:
        self.specs, self.job = {s.id: s for s in specs}, job
        self.max_restarts = int(max_restarts)
        self._ctx = ctx = mp.get_context("spawn")
        self._go, self._stop, self._abandon = ctx.Event(), ctx.Event(), ctx.Event()
        self._results = ctx.Queue()
        self._progress = {s.id: SharedProgress(ctx) for s in specs}
        self._runs = {s.id: 0 for s in specs}
        self._streaming_since: float | None = None
        self._procs = {s.id: self._process(s, run=0, start_index=0) for s in specs}
        self._done: dict[str, dict] = {}

    def _process(self, spec: StreamSpec, *, run: int, start_index: int):
        return self._ctx.Process(target=process_main, name=f"mespot-stream-{spec.id}", daemon=True,
                                 args=(spec.to_dict(), self.job.to_dict(), self._go, self._stop, self._abandon,
                                       self._results, self._progress[spec.id], run, start_index))

    def _launch(self, procs) -> None:
        added = {k: v for k, v in WORKER_THREAD_ENV.items() if k not in os.environ}
        os.environ.update(added)                 # inherited by the spawned workers only: this
        try:                                     # process's libraries have their pools already
            for p in procs:
                p.start()
        finally:
            for k in added:
                del os.environ[k]

    def prepare(self, timeout_s: float) -> None:
        self._launch(self._procs.values())
        ready: set[str] = set()
        deadline = time.monotonic() + timeout_s
        while len(ready) < len(self._procs):
            try:
                kind, sid, info = self._results.get(timeout=0.5)
            except queue.Empty:
                dead = [s for s, p in self._procs.items() if s not in ready and not p.is_alive()]
                if dead:
                    self.stop()
                    raise StreamStartError(f"stream {dead[0]}: its worker process exited "
                                           f"(code {self._procs[dead[0]].exitcode}) before it was ready")
                if time.monotonic() > deadline:
                    self.stop()
                    raise StreamStartError(f"streams not ready after {timeout_s:g} s: "
                                           f"{', '.join(sorted(set(self._procs) - ready))}")
                continue
            if kind == "failed":
                self.stop()
                raise StreamStartError(info)
            ready.add(sid)

    def start(self) -> None:
        self._streaming_since = time.time()
        self._go.set()

    def stop(self, *, wait_for_source: bool = True) -> None:
        self._stop.set()
        if not wait_for_source:
            self._abandon.set()

    def _drain(self) -> None:
        while True:
            try:
                kind, sid, info = self._results.get_nowait()
            except queue.Empty:
                return
            if kind == "done":
                self._done[sid] = info
            elif kind == "failed":                  # a restarted worker that could not start again
                self._done[sid] = {"state": "error", "error": info}

    def poll(self) -> dict[str, dict]:
        """Streams whose worker is done: id -> its summary (state, frames, ...). Restarts a dead one."""
        self._drain()
        for sid, p in list(self._procs.items()):
            if sid in self._done or p.exitcode is None:
                continue
            time.sleep(0.1)                 # its last report may still be in the queue's pipe
            self._drain()
            if sid in self._done:
                continue
            if p.exitcode != 0 and self._runs[sid] < self.max_restarts and not self._stop.is_set():
                self._restart(sid)
            else:
                restarted = f" (after {self._runs[sid]} restarts)" if self._runs[sid] else ""
                self._done[sid] = {"state": "error", "error": f"worker process exited with code {p.exitcode}{restarted}"}
        return dict(self._done)

    def _restart(self, sid: str) -> None:
        spec, progress = self.specs[sid], self._progress[sid]
        self._runs[sid] += 1
        start = resume_index(spec, self.job, progress.last_index, self._streaming_since)
        self._procs[sid] = self._process(spec, run=self._runs[sid], start_index=start)
        self._launch([self._procs[sid]])

    def close(self) -> None:
        self.stop()
        for p in self._procs.values():
            if p.pid is not None:
                p.join(10.0)
                if p.is_alive():
                    p.terminate()
                    p.join(5.0)


class BusObserver:
    """Receives what the supervisor reads from the bus (the multi-stream dashboard is one)."""

    def on_message(self, message: dict) -> None:
        pass


@dataclass
class StreamOutcome:
    """One stream's end: its final status as published (None if none arrived) and the worker's report."""

    id: str
    final_status: dict | None = None
    worker: dict = field(default_factory=dict)
    restarts: int = 0

    @property
    def state(self) -> str:
        if self.final_status is not None:
            return self.final_status["state"]
        return self.worker.get("state", "error")


class Supervisor:
    """One multi-stream run over `backend` (see the module). `record`: a JsonlRecorder-like sink
    that gets every message of every stream; observers get every message the monitor reads:
    `status` and `interval`, or every topic with `record` or `all_topics`."""

    def __init__(self, specs: list[StreamSpec], backend: Backend, proxy: BusProxy, *, record=None,
                 observers=(), all_topics: bool = False) -> None:
        self.specs, self.backend, self.proxy = specs, backend, proxy
        self.record = record
        self.observers = list(observers)
        topics = (b"",) if record is not None or all_topics else (b"status", b"interval")
        self._monitor = proxy.subscriber(topics)
        self._own_interval_subs = 1                 # the monitor's own subscription reaching `interval`
        self._stop_requests = 0
        self._stop_lock = threading.Lock()
        self.latest: dict[str, dict] = {}
        self.outcomes = {s.id: StreamOutcome(s.id) for s in specs}

    def prepare(self, timeout_s: float = READY_TIMEOUT_S) -> None:
        self.backend.prepare(timeout_s)

    def wait_for_subscriber(self, timeout_s: float) -> bool:
        """Wait for an outside subscriber to the intervals of every stream (any one of them counts)."""
        key = f"interval/{self.specs[0].id}/".encode()
        return self.proxy.wait_for_subscriber(timeout_s, key, own=self._own_interval_subs)

    def stop(self) -> None:
        """Thread-safe: the first call finishes every stream cleanly, the second also stops
        waiting for sources blocked in a read."""
        with self._stop_lock:
            self._stop_requests += 1
            self.backend.stop(wait_for_source=self._stop_requests == 1)

    def run(self) -> dict[str, StreamOutcome]:
        self.backend.start()
        finished: dict[str, dict] = {}
        drain_until = None
        while True:
            self._read(0.1)
            finished = self.backend.poll()
            if len(finished) == len(self.specs):
                if drain_until is None:
                    drain_until = time.monotonic() + DRAIN_S
                if all(self._ended(s.id) for s in self.specs) or time.monotonic() > drain_until:
                    break
        self._read(0.05)
        for sid, info in finished.items():
            self.outcomes[sid].worker = info
        return self.outcomes

    def _ended(self, sid: str) -> bool:
        return self.outcomes[sid].final_status is not None

    def _read(self, wait_s: float) -> None:
        if not self._monitor.poll(int(wait_s * 1000)):
            return
        while self._monitor.poll(0):
            key, payload = self._monitor.recv_multipart()
            message = decode(key, payload)
            if self.record is not None:
                self.record.write(message["topic"], payload)
            if message["topic"] == "status":
                sid = message["stream"]
                self.latest[sid] = message
                if sid in self.outcomes:
                    self.outcomes[sid].restarts = int(message.get("restarts", 0))
                    if message["state"] in ("ended", "error"):
                        self.outcomes[sid].final_status = message
            for observer in self.observers:
                observer.on_message(message)

    def close(self) -> None:
        self.backend.close()
        if not self._monitor.closed:
            self._monitor.close(linger=0)

