"""`spot-bench streams --mode spot-live|ray`: N streams in ONE multi-stream spot-live.

The same question as the other modes of mespot.bench.streams (N camera-paced 640x480 streams at
30 fps, no drops), asked of what `spot-live --source A --source B ...` runs: mespot.serve's
Supervisor over its ProcessBackend (`spot-live`: a worker process per stream) or its RayBackend
(`ray`: a Ray actor per stream, Ray started here with this machine's CPUs), publishing through the
bus proxy. Everything is read back from the bus, as a subscriber would: each stream's final status
gives frames, rate and latency, and the statuses on the way (one a second) date the drops. A drop
is dated by the first status that reports it, so a drop in the first second reported by the status
at 1.0x s counts as after the first second: this mode is stricter about the first second than the
process and thread modes, which date each drop exactly.

`ray_footprint()` measures what Ray itself costs here: `ray.init()` time, and the resident memory
of the processes Ray starts (GCS, raylet, its helpers and idle workers) before any actor exists.
"""
from __future__ import annotations

import os
import time
from collections import defaultdict
from pathlib import Path

ACTOR_CPUS = 0.25            # what spot-live --cluster ray asks per stream by default


def trial_serve(n: int, source: str, model: Path, frames: int, *, backend: str = "spot-live") -> list[dict]:
    """One trial: n streams of `source` played in real time, in one multi-stream run."""
    from mespot.serve.bus import BusProxy
    from mespot.serve.specs import StreamSpec
    from mespot.serve.supervisor import ProcessBackend, Supervisor
    from mespot.serve.worker import Job

    # Camera-paced and dropping when late, exactly as the process and thread modes' loops.
    specs = [StreamSpec(f"bench-{k}", source, {"realtime": True, "drop_late": True}) for k in range(n)]
    statuses: dict[str, list[dict]] = defaultdict(list)

    class Collect:
        def on_message(self, message: dict) -> None:
            if message["topic"] == "status":
                statuses[message["stream"]].append(message)

    with BusProxy("tcp://127.0.0.1:*") as bus:
        job = Job(model=str(model), bus=bus.inner_endpoint, realtime=True, run_streams=tuple(s.id for s in specs))
        if backend == "ray":
            from mespot.serve.cluster import RayBackend
            runner = RayBackend(specs, job, actor_cpus=ACTOR_CPUS, max_restarts=0)
        else:
            runner = ProcessBackend(specs, job)
        supervisor = Supervisor(specs, runner, bus, observers=[Collect()])
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
    ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False, configure_logging=False)
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
