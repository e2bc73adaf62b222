"""Streams as Ray actors (`spot-live --cluster ...`), and a Ray pool for `spot-extract --cluster`.

Ray is optional (`pip install 'mespot[ray]'`) and imported only here, only when asked for: one
stream, the process backend and every other test run without it. `connect` starts Ray on this
machine (`ray`: `ray.init()`, which joins the cluster in RAY_ADDRESS instead when that is set) or
joins one (`ray://HOST:PORT`, Ray Client).

Each stream is a `StreamActor` with a CPU request (`actor_cpus`) and `max_restarts`. Its
constructor builds the stream (mespot.serve.worker.StreamRunner) and publishes over tcp to the
bus proxy of the `spot-live` that started it. When its process dies, Ray runs the constructor
again; the restarted actor asks the `StreamRegistry` actor (one per run, no CPU) where its stream
was, and:

- numbers its frames from there: a paced stream (camera, URL, `realtime` file) resumes at the
  frame the clock has reached, a file read as fast as possible after the newest frame it reported,
  so the frames nobody processed are a jump in frame numbers, a gap;
- publishes with `run` = the restart count (its `seq` starts again at 0) and `restarts` in every
  status;
- refuses an interval whose apex is not after the last one published for its kind (ResumeGuard):
  no interval is published twice. Intervals published before the crash were on the bus already;
  an expression still undecided when the process died is lost with its frames.
"""
from __future__ import annotations

import os
import socket
import time
import uuid

from mespot.serve.specs import StreamSpec
from mespot.serve.worker import Job, ResumeGuard, StreamRunner, StreamStartError, paced

EXTRA_HINT = "pip install 'mespot[ray]'"
POLL_S = 0.5                 # how often the supervisor asks the actors how they are
GIVE_UP_S = 120.0            # an actor unreachable this long (restarts exhausted, node lost) is given up


class ClusterUnavailable(Exception):
    """Ray is not installed, or the cluster cannot be reached: one line for the user."""


def import_ray():
    try:
        import ray
    except ImportError:
        raise ClusterUnavailable(f"--cluster needs Ray, which is not installed: {EXTRA_HINT}") from None
    return ray


def connect(address: str = "ray", *, num_cpus: int | None = None):
    """Ray, initialised: `ray` starts it here (or joins RAY_ADDRESS), `ray://HOST:PORT` joins a
    cluster through Ray Client. Returns the ray module; ClusterUnavailable when it cannot."""
    ray = import_ray()
    if ray.is_initialized():
        return ray
    kwargs = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
    try:
        if address == "ray":
            ray.init(num_cpus=num_cpus, **kwargs)
        elif address.startswith("ray://"):
            ray.init(address=address, log_to_driver=False)
        else:
            raise ClusterUnavailable(f"--cluster {address}: expected ray or ray://HOST:PORT")
    except ClusterUnavailable:
        raise
    except Exception as exc:         # Ray raises ConnectionError, RuntimeError, ValueError, ...
        line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ClusterUnavailable(f"cannot start or join Ray at {address}: {line}") from None
    return ray


def advertised_endpoint(bound: str) -> str:
    """The endpoint other machines connect to for one bound on all interfaces."""
    host = socket.gethostbyname(socket.gethostname())
    return bound.replace("0.0.0.0", host, 1)


class StreamRegistry:
    """Where each stream is, across restarts of its actor (one small actor per spot-live run)."""

    def __init__(self) -> None:
        self.streams: dict[str, dict] = {}
        self.stopping = False

    def started(self, sid: str) -> dict:
        """A stream's actor is (re)starting: its run number and what the earlier runs left."""
        e = self.streams.setdefault(sid, {"runs": 0, "streaming_since": None, "last_index": -1, "last_apex": {},
                                          "started_at": [], "published": []})
        e["started_at"].append(time.time())
        info = dict(e, run=e["runs"], stopping=self.stopping)
        e["runs"] += 1
        return info

    def streaming(self, sid: str, since: float) -> None:
        if self.streams[sid]["streaming_since"] is None:
            self.streams[sid]["streaming_since"] = since

    def progress(self, sid: str, index: int) -> None:
        e = self.streams[sid]
        e["last_index"] = max(e["last_index"], int(index))

    def published(self, sid: str, kind: str, apex: int) -> None:
        e = self.streams[sid]
        e["last_apex"][kind] = max(e["last_apex"].get(kind, -1), int(apex))
        e["published"].append((kind, int(apex), e["runs"] - 1))

    def stop(self) -> None:
        self.stopping = True

    def info(self, sid: str | None = None) -> dict:
        return dict(self.streams) if sid is None else dict(self.streams.get(sid, {}))


class StreamActor:
    """One stream (see the module). Methods: ready, start, poll, stop."""

    def __init__(self, spec: dict, job: dict, registry_name: str) -> None:
        ray = import_ray()
        self.spec, self.job = StreamSpec.from_dict(spec), Job.from_dict(job)
        # By name, not a handle argument: a restart must not depend on an argument object kept in
        # the object store (Ray warns about exactly that).
        self.registry = registry = ray.get_actor(registry_name)
        info = ray.get(registry.started.remote(self.spec.id))
        self.run = info["run"]
        self.error: str | None = None
        self.runner: StreamRunner | None = None
        start_index = 0
        if self.run > 0:
            start_index = info["last_index"] + 1
            since = info["streaming_since"]
            if since is not None and paced(self.spec, self.job):
                fps = _config_fps(self.job)
                start_index = max(start_index, int((time.time() - since) * fps))

        sid = self.spec.id

        def guard(publisher, last):
            return ResumeGuard(publisher, last_apex=info["last_apex"], last_frame=last,
                               report_interval=lambda kind, apex: ray.get(registry.published.remote(sid, kind, apex)),
                               report_progress=lambda index: registry.progress.remote(sid, index))
        try:
            self.runner = StreamRunner(self.spec, self.job, run=self.run, start_index=start_index, guard=guard)
            if not self.runner.wait_connected():
                raise StreamStartError(f"stream {sid}: the bus at {self.job.bus} did not answer")
        except StreamStartError as exc:
            self.error = str(exc)
            return
        if self.run > 0 and not info["stopping"]:
            self.runner.start()                  # a restart: the others are streaming already

    def ready(self) -> str | None:
        """None when the stream is built and connected, else why not (one line)."""
        return self.error

    def start(self) -> bool:
        if self.runner is not None and self.runner._thread is None:
            self.registry.streaming.remote(self.spec.id, time.time())
            self.runner.start()
        return True

    def poll(self) -> dict:
        if self.runner is None:
            return {"state": "error", "error": self.error, "run": self.run}
        st = self.runner.status
        return {"state": st.state, "summary": st.summary, "error": st.error, "run": self.run,
                "suppressed": getattr(self.runner.sink, "suppressed", 0), "pid": os.getpid()}

    def stop(self, wait_for_source: bool = True) -> bool:
        if self.runner is not None and self.runner._thread is not None:
            self.runner.stop(wait_for_source=wait_for_source)
        return True


def _config_fps(job: Job) -> float:
    from mespot.config import load_config
    from mespot.engine.runtime.metadata import metadata_config

    if job.config:
        return load_config(job.config).fps
    from mespot.engine.runtime import open_runtime

    return metadata_config(open_runtime(job.model, job.backend, job.device).metadata).fps


class RayBackend:
    """The supervisor's backend with one StreamActor per stream (mespot.serve.supervisor)."""

    name = "ray"

    def __init__(self, specs: list[StreamSpec], job: Job, *, address: str = "ray", actor_cpus: float = 0.25,
                 max_restarts: int = 3) -> None:
        self._owns_ray = not (import_ray().is_initialized())
        self.ray = connect(address)
        self.specs, self.job = specs, job
        self.max_restarts = int(max_restarts)
        ray = self.ray
        name = f"mespot-registry-{uuid.uuid4().hex[:12]}"
        self.registry = ray.remote(num_cpus=0)(StreamRegistry).options(name=name).remote()
        actor_class = ray.remote(StreamActor)
        self.actors = {s.id: actor_class.options(num_cpus=actor_cpus, max_restarts=self.max_restarts,
                                                 max_task_retries=0).remote(s.to_dict(), job.to_dict(), name)
                       for s in specs}
        self._done: dict[str, dict] = {}
        self._unreachable_since: dict[str, float] = {}
        self._last_poll = 0.0
        self._pending = {}

    def prepare(self, timeout_s: float) -> None:
        ray = self.ray
        refs = {sid: a.ready.remote() for sid, a in self.actors.items()}
        try:
            answers = dict(zip(refs, ray.get(list(refs.values()), timeout=timeout_s)))
        except ray.exceptions.GetTimeoutError:
            self.close()
            raise StreamStartError(f"streams not ready on Ray after {timeout_s:g} s") from None
        except ray.exceptions.RayActorError as exc:
            self.close()
            raise StreamStartError(f"a stream's actor died while starting: {str(exc).splitlines()[0]}") from None
        failed = [why for why in answers.values() if why]
        if failed:
            self.close()
            raise StreamStartError(failed[0])

    def start(self) -> None:
        self.ray.get([a.start.remote() for a in self.actors.values()])

    def stop(self, *, wait_for_source: bool = True) -> None:
        self.registry.stop.remote()
        for sid, a in self.actors.items():
            if sid not in self._done:
                a.stop.remote(wait_for_source)

    def poll(self) -> dict[str, dict]:
        """Streams whose actor is done: id -> its report. Asked at most every POLL_S."""
        now = time.monotonic()
        if now - self._last_poll < POLL_S:
            return dict(self._done)
        self._last_poll = now
        ray = self.ray
        for sid, a in self.actors.items():
            if sid not in self._done and sid not in self._pending:
                self._pending[sid] = a.poll.remote()
        ready, _ = ray.wait(list(self._pending.values()), num_returns=len(self._pending), timeout=0.2)
        for sid, ref in list(self._pending.items()):
            if ref not in ready:
                continue
            del self._pending[sid]
            try:
                report = ray.get(ref)
            except ray.exceptions.RayActorError:          # dead or restarting
                first = self._unreachable_since.setdefault(sid, now)
                if now - first > GIVE_UP_S:
                    self._done[sid] = {"state": "error", "error": f"actor unreachable for {GIVE_UP_S:g} s"}
                continue
            self._unreachable_since.pop(sid, None)
            if report["state"] in ("ended", "error"):
                self._done[sid] = {**report.get("summary", {}), **report}
        return dict(self._done)

    def restarts(self) -> dict[str, int]:
        info = self.ray.get(self.registry.info.remote())
        return {sid: e["runs"] - 1 for sid, e in info.items()}

    def close(self) -> None:
        """Kill the actors (they have ended, or are asked to), and stop Ray if this run started it."""
        ray = self.ray
        for a in self.actors.values():
            ray.kill(a, no_restart=True)
        ray.kill(self.registry)
        if self._owns_ray:
            ray.shutdown()


def map_on_ray(fn, calls: list[tuple], *, address: str = "ray", cpus_per_call: float = 1.0, on_done=None) -> None:
    """Run fn(*args) for every args in `calls` as Ray tasks (spot-extract --cluster): each asks for
    `cpus_per_call` CPUs, is retried twice if its worker dies, and `on_done(k, error or None)` is
    called as each finishes (on this thread, in finishing order). Ray is stopped afterwards if this
    call started it."""
    owns = not import_ray().is_initialized()
    ray = connect(address)
    try:
        remote = ray.remote(num_cpus=cpus_per_call, max_retries=2)(fn)
        refs = {remote.remote(*args): k for k, args in enumerate(calls)}
        pending = list(refs)
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            for ref in done:
                try:
                    ray.get(ref)
                    error = None
                except ray.exceptions.RayTaskError as exc:
                    error = exc.cause if isinstance(exc.cause, BaseException) else exc
                except ray.exceptions.RayError as exc:         # a worker or node lost for good
                    error = exc
                if on_done is not None:
                    on_done(refs[ref], error)
    finally:
        if owns:
            ray.shutdown()
