"""Kill one stream's worker mid-run and check what its restart published (both backends).

`run_and_kill` plays a rendered clip in real time as stream `cam0` through a Supervisor over the
given backend, kills the worker (`kill(backend)`) once frame 90 was scored, and returns what a
subscriber received; `check_restart` asserts the restart contract of docs/scaling.md: one new run,
back with a gap in frame numbers, `seq` from 0 again, no interval twice, and every interval an
uninterrupted run decides before the crash published before it.
"""
from __future__ import annotations

import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from helpers import free_tcp_endpoint
from mespot.client import Subscriber
from mespot.serve.bus import BusProxy
from mespot.serve.specs import StreamSpec
from mespot.serve.supervisor import Supervisor
from mespot.serve.worker import Job
from mespot.stream.messages import TOPICS

CLIP_FRAMES = 600            # 20 s played in real time: time to kill the worker and see it back, under load too
KILL_AFTER_FRAME = 90


@dataclass
class KilledRun:
    messages: list[dict]
    arrived: list[float]
    killed_at: float
    collected: object = None


def clip_and_reference(tmp_path: Path, model: Path):
    """The clip, and the config and intervals of an uninterrupted single-stream run of it."""
    from mespot.bench.liveloop import render_bench_clip
    from mespot.engine.runtime import open_runtime
    from mespot.stream.factory import build_pipeline

    clip = render_bench_clip(tmp_path / "clip.mp4", CLIP_FRAMES, seed=3)[0]
    with build_pipeline(str(clip), open_runtime(model, "onnx", "cpu")) as live:
        summary = live.run()
    return clip, live.config, summary.intervals


def run_and_kill(make_backend, clip: Path, model: Path, kill, collect=lambda backend: None) -> KilledRun:
    """make_backend(specs, job) -> a backend; kill(backend) kills cam0's worker; collect(backend),
    called at the end before the backend closes, gives KilledRun.collected."""
    specs = [StreamSpec("cam0", str(clip), {"realtime": True})]
    messages: list[dict] = []
    arrived: list[float] = []
    with BusProxy(free_tcp_endpoint()) as bus:
        sub = Subscriber(bus.pub_endpoint, topics=TOPICS, timeout=60.0, until_ended=True)

        def listen():
            for m in sub:
                messages.append(m)
                arrived.append(time.monotonic())

        listener = threading.Thread(target=listen)
        listener.start()
        backend = make_backend(specs, Job(model=str(model), bus=bus.inner_endpoint, run_streams=("cam0",)))
        supervisor = Supervisor(specs, backend, bus)
        try:
            supervisor.prepare(timeout_s=300)
            runner = threading.Thread(target=supervisor.run)
            runner.start()
            while not any(m["topic"] == "score" and m["frames"] and m["frames"][-1] >= KILL_AFTER_FRAME
                          for m in list(messages)):
                assert runner.is_alive(), "the stream ended before it could be killed"
                time.sleep(0.05)
            killed_at = time.monotonic()
            kill(backend)
            runner.join(120)
            assert not runner.is_alive()
            listener.join(60)
            collected = collect(backend)
        finally:
            supervisor.close()
            sub.close()
    return KilledRun(messages, arrived, killed_at, collected)


def check_restart(run: KilledRun, config, reference) -> list[tuple]:
    """Assert the restart contract; returns the intervals received (kind, onset, apex, offset)."""
    runs = defaultdict(list)
    for m, t in zip(run.messages, run.arrived):
        runs[m["run"]].append((m, t))
    assert sorted(runs) == [0, 1], "one restart, one new run"
    back = min(t for m, t in runs[1] if m["topic"] == "status")
    print(f"\nkilled at frame >= {KILL_AFTER_FRAME}; the stream's first status after the restart came "
          f"{back - run.killed_at:.2f} s after the kill")
    first_run = [m for m, _ in runs[0]]
    second_run = [m for m, _ in runs[1]]
    statuses = [m for m in second_run if m["topic"] == "status"]
    assert all(m["restarts"] == 1 for m in statuses) and statuses[-1]["state"] == "ended"
    for part in (first_run, second_run):           # each run's seq counts from 0 without a hole
        for topic in TOPICS:
            seqs = [m["seq"] for m in part if m["topic"] == topic]
            assert seqs == list(range(len(seqs))), topic
    before = [f for m in first_run if m["topic"] == "score" for f in m["frames"]]
    after = [f for m in second_run if m["topic"] == "score" for f in m["frames"]]
    assert after and min(after) > max(before) + 1, "the frames lost in the crash show as a gap"
    assert max(after) <= CLIP_FRAMES - 1

    got = [(m["kind"], m["onset_frame"], m["apex_frame"], m["offset_frame"])
           for m in first_run + second_run if m["topic"] == "interval"]
    assert len(got) == len(set(got)), "no interval published twice"
    # Every interval an uninterrupted run decides before the crash's frame was published before it.
    # (Playing in real time may drop a frame under load; the run before the crash must not have.)
    assert max(m["dropped"]["capture"] for m in first_run if m["topic"] == "status") == 0
    crash = max(before)
    decided_before = [(i.kind, i.onset, i.apex, i.offset) for i in reference
                      if i.apex + config.decision_delay(i.kind) < crash]
    first = {(m["kind"], m["onset_frame"], m["apex_frame"], m["offset_frame"]) for m in first_run
             if m["topic"] == "interval"}
    print(f"intervals: {len(first)} before the crash, {len(got) - len(first)} after; "
          f"{len(decided_before)} of the uninterrupted run's were decided before frame {crash}")
    assert decided_before, "the clip must have intervals before the crash for this check to mean anything"
    assert set(decided_before) <= first
    return got
