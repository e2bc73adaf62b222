"""Streams as Ray actors (`spot-live --cluster ...`), and a Ray pool for `spot-extract --cluster`.

Ray is optional (`pip install 'mespot[ray]'`) and imported only here, only when asked for: one
stream, the process backend and every other test run without it. `connect` starts a new Ray on
this machine (`ray`), joins the cluster in RAY_ADDRESS when that is set, or joins one through Ray
Client (`ray://HOST:PORT`). With `--inference shared` the batched engine is an `EngineActor`.

Each stream is a `StreamActor` with a CPU request (`actor_cpus`) and `max_restarts`. Its
constructor builds the stream (mespot.serve.worker.StreamRunner) and publishes over tcp to the
bus proxy of the `spot-live` that started it. When its process dies, Ray runs the constructor
again; the restarted actor asks the `StreamRegistry` actor (one per run, no CPU) where its stream
was, and:

- numbers its frames from there: a paced stream (camera, URL, `realtime` file) resumes at the
  frame the clock has reached, so the frames nobody processed are a jump in frame numbers, a gap;
  a file read as fast as possible resumes after the newest frame it reported (reports come every
  PROGRESS_EVERY_S, so the last half second or less may be scored again, under the new `run`);
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
from dataclasses import replace

from mespot.serve.specs import StreamSpec
from mespot.serve.worker import Job, ResumeGuard, StreamRunner, StreamStartError, resume_index

EXTRA_HINT = "pip install 'mespot[ray]'"
CLIENT_TRIES = 3             # Ray Client joins (see _join_by_client)
ENGINE_READY_S = 120.0       # the shared engine's actor: scheduled, model opened and warmed up
POLL_S = 0.5                 # how often the supervisor asks the actors how they are
GIVE_UP_S = 120.0            # an actor unreachable this long (restarts exhausted, node lost) is given up
# A stream tells the registry how far it is at most this often: reporting every score message
# (11 calls a second a stream) cost 8 streams 0.12 of a core more on 2 cores (docs/scaling.md).
PROGRESS_EVERY_S = 0.5


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
        if address == "ray" and os.environ.get("RAY_ADDRESS"):
            ray.init(**kwargs)                       # joins that cluster
        elif address == "ray":
            # "local": a new Ray here, never a cluster found in Ray's temp files (ray.init()'s default)
            ray.init(address="local", num_cpus=num_cpus, **kwargs)
        elif address.startswith("ray://"):
            _join_by_client(ray, address)
        else:
            raise ClusterUnavailable(f"--cluster {address}: expected ray or ray://HOST:PORT")
    except ClusterUnavailable:
        raise
    except Exception as exc:         # Ray raises ConnectionError, RuntimeError, ValueError, ...
        line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        joining = address != "ray" or bool(os.environ.get("RAY_ADDRESS"))
        if joining and not os.environ.get("RAY_AUTH_MODE"):
            # Ray sends its token to an address given explicitly only when told to.
            line += (" (if the cluster uses Ray's token authentication, set RAY_AUTH_MODE=token and its "
                     "token in RAY_AUTH_TOKEN or ~/.ray/auth_token)")
        raise ClusterUnavailable(f"cannot start or join Ray at {address}: {line}") from None
    return ray


def _join_by_client(ray, address: str) -> None:
    """ray.init through Ray Client, tried CLIENT_TRIES times: Ray's client proxy forks a server
    per client, and on this 2-core VM that server sometimes dies at birth (its log: "SpecificServer
    startup failed"; about one join in three in a test loop); the client then hears "Initialization
    failure from server" after the proxy's 30 s wait, and a second join works."""
    for attempt in range(1, CLIENT_TRIES + 1):
        try:
            ray.init(address=address, log_to_driver=False)
            return
        except Exception as exc:             # ConnectionAbortedError today; matched by its message
            if "Initialization failure from server" not in str(exc) or attempt == CLIENT_TRIES:
                raise
            ray.shutdown()


def advertised_endpoint(bound: str, toward: str | None = None) -> str:
    """The endpoint other machines connect to for one bound on all interfaces: this machine's
    address on the route to `toward` (the cluster: ray://HOST:PORT or HOST:PORT), else the one
    its host name resolves to."""
    host = socket.gethostbyname(socket.gethostname())
    if toward:
        target = toward.split("://", 1)[-1].rsplit(":", 1)
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
                probe.connect((target[0], int(target[1]) if len(target) > 1 else 6379))   # no packet is sent
                host = probe.getsockname()[0]
        except (OSError, ValueError):
            pass
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
            start_index = resume_index(self.spec, self.job, info["last_index"], info["streaming_since"])

        sid = self.spec.id

        def guard(publisher, last):
            return ResumeGuard(publisher, last_apex=info["last_apex"], last_frame=last,
                               report_interval=lambda kind, apex: ray.get(registry.published.remote(sid, kind, apex)),
                               report_progress=lambda index: registry.progress.remote(sid, index),
                               progress_every_s=PROGRESS_EVERY_S)
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


class EngineActor:
    """The shared engine (mespot.serve.shared.EngineServer) as a Ray actor, for `--cluster ...
    --inference shared`: the model runs where Ray places this actor, on a GPU node when the run
    asks for `--device cuda` (the actor then requests one GPU), and the streams' actors reach it
    over tcp. It is not restarted: if it dies, every stream stops with an error (its RemoteEngine
    gets no answer)."""

    def __init__(self, job: dict) -> None:
        from mespot.engine.runtime import open_runtime
        from mespot.serve.shared import EngineServer

        j = Job.from_dict(job)
        runtime = open_runtime(j.model, j.backend, j.device, precision=j.precision)
        runtime.warm_up()
        # Where the streams' actors can reach it: this machine only when the bus is (Ray here).
        local = j.bus.startswith("tcp://127.0.0.1:")
        self.server = EngineServer(runtime, "tcp://127.0.0.1:*" if local else "tcp://0.0.0.0:*")

    def endpoint(self) -> str:
        import ray

        return self.server.endpoint.replace("0.0.0.0", ray.util.get_node_ip_address(), 1)

    def counts(self) -> dict[str, int]:
        return self.server.counts()


def stream_room(ray, actor_cpus: float) -> int:
    """How many stream actors asking `actor_cpus` each the cluster's live nodes hold at once (an
    actor cannot span nodes)."""
    return sum(int(node["Resources"].get("CPU", 0.0) / actor_cpus + 1e-9)
               for node in ray.nodes() if node.get("Alive"))


class RayBackend:
    """The supervisor's backend with one StreamActor per stream (mespot.serve.supervisor)."""

    name = "ray"

    def __init__(self, specs: list[StreamSpec], job: Job, *, address: str = "ray", actor_cpus: float = 0.25,
                 max_restarts: int = 3, shared_engine: bool = False) -> None:
        self._owns_ray = not (import_ray().is_initialized())
        self.ray = connect(address)
        self.specs, self.job = specs, job
        self.max_restarts = int(max_restarts)
        ray = self.ray
        self.room = stream_room(ray, actor_cpus)
        embedded = self._owns_ray and address == "ray" and not os.environ.get("RAY_ADDRESS")
        actors = len(specs) + int(shared_engine)
        if embedded and actors > self.room:
            # Ray would keep the others pending until the ready timeout; nothing can free CPUs here.
            self._give_up(f"{len(specs)} streams{' and the shared engine' if shared_engine else ''} at --actor-cpus "
                          f"{actor_cpus:g} do not fit this machine's Ray ({self.room} actors fit): lower --actor-cpus")
        self.actor_cpus = actor_cpus
        self.engine = None
        if shared_engine:
            gpus = 1 if job.device == "cuda" else 0
            if gpus and not ray.cluster_resources().get("GPU"):
                self._give_up("--inference shared --device cuda: the Ray cluster has no GPU")
            self.engine = ray.remote(EngineActor).options(num_cpus=actor_cpus, num_gpus=gpus,
                                                          max_restarts=0).remote(job.to_dict())
            try:
                job = replace(job, engine=ray.get(self.engine.endpoint.remote(), timeout=ENGINE_READY_S))
            except Exception as exc:        # GetTimeoutError, RayActorError (the model did not open there)
                line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                self._give_up(f"the shared engine's actor did not start: {line}")
            self.job = job
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

    def _give_up(self, why: str) -> None:
        if getattr(self, "engine", None) is not None:
            self.ray.kill(self.engine)
        if self._owns_ray:
            self.ray.shutdown()
        raise ClusterUnavailable(why)

    def engine_counts(self) -> dict[str, int] | None:
        """The shared engine actor's counts (EngineServer's), None without one or when it is gone."""
        if self.engine is None:
            return None
        try:
            return self.ray.get(self.engine.counts.remote(), timeout=10)
        except Exception:
            return None

    def prepare(self, timeout_s: float) -> None:
        ray = self.ray
        refs = {sid: a.ready.remote() for sid, a in self.actors.items()}
        try:
            answers = dict(zip(refs, ray.get(list(refs.values()), timeout=timeout_s)))
        except ray.exceptions.GetTimeoutError:
            waiting = [sid for sid, ref in refs.items() if not ray.wait([ref], timeout=0)[0]]
            self.close()
            raise StreamStartError(f"{len(waiting)} streams not ready on Ray after {timeout_s:g} s ({waiting[0]}, ...); "
                                   f"the cluster has room for {self.room} at --actor-cpus "
                                   f"{self.actor_cpus:g}") from None
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
        if self.engine is not None:
            ray.kill(self.engine)
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
