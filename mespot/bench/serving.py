"""`spot-bench streams --mode spot-live|ray`: N streams in ONE multi-stream spot-live.

The same question as the other modes of mespot.bench.streams (N camera-paced 640x480 streams at
30 fps, no drops), asked of what `spot-live --source A --source B ...` runs: mespot.serve's
Supervisor over its ProcessBackend (`spot-live`: a worker process per stream) or its RayBackend
(`ray`: a Ray actor per stream, Ray started here with this machine's CPUs), publishing through the
bus proxy. Everything is read back from the bus, as a subscriber would: each stream's final status
gives frames, rate and latency; each dropped frame is a hole in the scored frame numbers and is
dated by its number, as exactly as the process and thread modes date theirs. (Until 5 Dec drops
were dated by the first status reporting them, once a second, so a drop in the first second could
count as after it: these modes were judged more strictly than the others.)

`ray_footprint()` measures what Ray itself costs here: `ray.init()` time, and the resident memory
of the processes Ray starts (GCS, raylet, its helpers and idle workers) before any actor exists.
"""
from __future__ import annotations

import os
import time
from collections import defaultdict
from pathlib import Path

ACTOR_CPUS = 0.25            # what spot-live --cluster ray asks per stream by default


def dropped_frame_times(scored: set[int], dropped: int, fps: float) -> list[float] | None:
    """When each dropped frame was due (s from the first frame): a frame the capture queue dropped
    never gets a score, so it is a hole in the scored frame numbers. None when the holes are not
    exactly the `dropped` frames the stream's status counts."""
    if not scored:
        return None if dropped else []
    holes = sorted(set(range(min(scored), max(scored) + 1)) - scored)
    return [round(i / fps, 3) for i in holes] if len(holes) == dropped else None


def trial_serve(n: int, source: str, model: Path, frames: int, *, backend: str = "spot-live",
                fps: float = 30.0) -> list[dict]:
    """One trial: n streams of `source` played in real time (`fps`), in one multi-stream run."""
    from mespot.serve.bus import BusProxy
    from mespot.serve.specs import StreamSpec
    from mespot.serve.supervisor import ProcessBackend, Supervisor
    from mespot.serve.worker import Job

    # Camera-paced and dropping when late, exactly as the process and thread modes' loops.
    specs = [StreamSpec(f"bench-{k}", source, {"realtime": True, "drop_late": True}) for k in range(n)]
    statuses: dict[str, list[dict]] = defaultdict(list)
    scored: dict[str, set[int]] = defaultdict(set)

    class Collect:
        def on_message(self, message: dict) -> None:
            if message["topic"] == "status":
                statuses[message["stream"]].append(message)
            elif message["topic"] == "score":
                scored[message["stream"]].update(message["frames"])

    with BusProxy("tcp://127.0.0.1:*") as bus:
        job = Job(model=str(model), bus=bus.inner_endpoint, realtime=True, run_streams=tuple(s.id for s in specs))
        if backend == "ray":
            from mespot.serve.cluster import RayBackend
            runner = RayBackend(specs, job, actor_cpus=_fitted_actor_cpus(n), max_restarts=0)
        else:
            runner = ProcessBackend(specs, job, max_restarts=0)
        supervisor = Supervisor(specs, runner, bus, observers=[Collect()], all_topics=True)   # scores too
        try:
            supervisor.prepare()
            outcomes = supervisor.run()
        finally:
            supervisor.close()
    out = []
    for spec in specs:
        seen = statuses[spec.id]
        final = outcomes[spec.id].final_status
        if final is None:
            out.append({"error": f"{spec.id}: no final status ({outcomes[spec.id].worker.get('error')})"})
            continue
        drop_times = dropped_frame_times(scored[spec.id], final["dropped"]["capture"], fps)
        if drop_times is None:                 # the scores do not account for every drop: date by status
            drop_times, before = [], 0
            for s in seen:
                grew = s["dropped"]["capture"] - before
                drop_times += [round(s["uptime_s"], 3)] * max(grew, 0)
                before = s["dropped"]["capture"]
        e2e = final["latency_ms"].get("end_to_end") or {}
        out.append({"frames": final["frames"], "dropped": final["dropped"]["capture"],
                    "capture_drop_times_s": drop_times, "fps": final["fps"],
                    "end_to_end": {"n": final["frames"], "p50_ms": e2e.get("p50"), "p99_ms": e2e.get("p99")}
                    if e2e else {"n": 0}})
    return out


def _fitted_actor_cpus(n: int) -> float:
    """spot-live's default request per actor, or less when n streams would not fit at it (the
    bench asks what the machine carries, not what the default reserves); waits until the actors of
    the previous trial have given their CPUs back (ray.kill is asynchronous)."""
    import ray

    total = ray.cluster_resources().get("CPU", 0.0)
    deadline = time.monotonic() + 30.0
    while ray.available_resources().get("CPU", 0.0) < total - 1e-6 and time.monotonic() < deadline:
        time.sleep(0.2)
    return min(ACTOR_CPUS, total / n)


def _ray_processes(root_pid: int) -> dict[int, tuple[str, int]]:
    """pid -> (name, resident kB) of every descendant of root_pid (from /proc)."""
    children: dict[int, list[int]] = defaultdict(list)
    info: dict[int, tuple[str, int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            status = Path(f"/proc/{entry}/status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        pid, ppid = int(entry), int(fields["PPid"])
        children[ppid].append(pid)
        rss = int(fields.get("VmRSS", "0 kB").split()[0])
        info[pid] = (fields["Name"].strip(), rss)
    out, todo = {}, list(children[root_pid])
    while todo:
        pid = todo.pop()
        out[pid] = info[pid]
        todo += children[pid]
    return out


def ray_footprint(num_cpus: int | None = None, settle_s: float = 5.0) -> dict:
    """Ray's own start-up time and memory on this machine (started and stopped here)."""
    import ray

    t0 = time.monotonic()
    ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, log_to_driver=False, configure_logging=False)
    init_s = time.monotonic() - t0
    time.sleep(settle_s)                 # idle workers Ray pre-starts
    procs = _ray_processes(os.getpid())
    by_name: dict[str, int] = defaultdict(int)
    for name, rss in procs.values():
        by_name[name] += rss
    t1 = time.monotonic()

    @ray.remote(num_cpus=0)
    class Probe:
        def pid(self) -> int:
            return os.getpid()

    probe = Probe.remote()
    ray.get(probe.pid.remote())
    first_actor_s = time.monotonic() - t1
    ray.shutdown()
    return {"init_s": round(init_s, 2), "first_actor_s": round(first_actor_s, 2),
            "processes": len(procs), "rss_mb_total": round(sum(by_name.values()) / 1024, 1),
            "rss_mb_by_name": {k: round(v / 1024, 1) for k, v in sorted(by_name.items(), key=lambda kv: -kv[1])}}
