"""Ray (`mespot[ray]`): streams as actors that come back after a crash, and spot-extract on Ray.

One local Ray for the whole module (2 CPUs). Skipped, with the reason, when Ray is not installed:
`make test` installs the extra, so CI runs these. The test that Ray is not needed without
--cluster is in tests/test_serve.py (it blocks the import).
"""
from __future__ import annotations

import threading
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

ray = pytest.importorskip("ray", reason="the ray extra is not installed (pip install -e '.[ray]')")

from helpers import free_tcp_endpoint, write_video  # noqa: E402
from mespot.client import Subscriber  # noqa: E402
from mespot.serve.bus import BusProxy  # noqa: E402
from mespot.serve.cluster import RayBackend  # noqa: E402
from mespot.serve.specs import StreamSpec  # noqa: E402
from mespot.serve.supervisor import Supervisor  # noqa: E402
from mespot.serve.worker import Job  # noqa: E402
from mespot.stream.messages import TOPICS  # noqa: E402

CLIP_FRAMES = 600            # 20 s played in real time: time to kill the actor and see it back, under load too


@pytest.fixture(scope="module")
def local_ray():
    t0 = time.monotonic()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    print(f"\nray.init on this machine: {time.monotonic() - t0:.1f} s")
    yield ray
    ray.shutdown()


def _reference(clip: Path, model: Path):
    """Intervals of an uninterrupted single-stream run of `clip` (read as fast as possible)."""
    from mespot.engine.runtime import open_runtime
    from mespot.stream.factory import build_pipeline

    with build_pipeline(str(clip), open_runtime(model, "onnx", "cpu")) as live:
        summary = live.run()
    return live.config, summary.intervals


def test_a_killed_stream_actor_comes_back_with_a_gap_and_no_repeated_interval(local_ray, model_path, tmp_path):
    from mespot.bench.liveloop import render_bench_clip

    clip = render_bench_clip(tmp_path / "clip.mp4", CLIP_FRAMES, seed=3)[0]
    config, reference = _reference(clip, model_path)
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
        job = Job(model=str(model_path), bus=bus.inner_endpoint, run_streams=("cam0",))
        backend = RayBackend(specs, job, actor_cpus=0.5, max_restarts=2)
        supervisor = Supervisor(specs, backend, bus)
        try:
            supervisor.prepare(timeout_s=300)
            runner = threading.Thread(target=supervisor.run)
            runner.start()
            while not any(m["topic"] == "score" and m["frames"] and m["frames"][-1] >= 90 for m in list(messages)):
                assert runner.is_alive(), "the stream ended before it could be killed"
                time.sleep(0.05)
            killed_at = time.monotonic()
            ray.kill(backend.actors["cam0"], no_restart=False)
            runner.join(120)
            assert not runner.is_alive()
            listener.join(60)
            published = ray.get(backend.registry.info.remote("cam0"))["published"]
        finally:
            supervisor.close()
            sub.close()

    runs = defaultdict(list)
    for m, t in zip(messages, arrived):
        runs[m["run"]].append((m, t))
    assert sorted(runs) == [0, 1], "one restart, one new run"
    back = min(t for m, t in runs[1] if m["topic"] == "status")
    print(f"\nkilled at frame >= 90; the stream's first status after the restart came "
          f"{back - killed_at:.2f} s after the kill")
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
    assert sorted((k, a) for k, _, a, _ in got) == sorted((k, a) for k, a, _ in published), \
        "every interval the actors published reached the subscriber"
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


def test_spot_live_cluster_ray_runs_two_streams(local_ray, model_path, tmp_path):
    """The CLI path: --cluster ray with Ray already up here (the fixture's) runs both streams."""
    import json

    from mespot.bench.liveloop import render_bench_clip
    from mespot.cli.live import main

    clip = render_bench_clip(tmp_path / "c.mp4", 60, seed=4)[0]
    rec = tmp_path / "rec.jsonl"
    rc = main(["--source", str(clip), "--source", str(clip), "--cluster", "ray", "--model", str(model_path),
               "--no-ui", "--record", str(rec), "--pub", free_tcp_endpoint(), "--actor-cpus", "0.5"])
    assert rc == 0
    ended = [m for m in map(json.loads, rec.read_text().splitlines()) if m["topic"] == "status"
             and m["state"] == "ended"]
    assert sorted((m["stream"], m["frames"]) for m in ended) == [("c", 60), ("c-2", 60)]


def test_spot_extract_on_ray_equals_the_process_pool_and_resumes(local_ray, tmp_path):
    from mespot.cli.extract import main
    from mespot.featurefile import load_features

    data = tmp_path / "data"
    for k in range(3):
        write_video(data / f"s{k}" / f"v{k}.avi", 12 + k)
    assert main([str(data), "-o", str(tmp_path / "pool"), "--quiet", "--workers", "2"]) == 0
    assert main([str(data), "-o", str(tmp_path / "ray"), "--quiet", "--cluster", "ray"]) == 0
    names = sorted(p.name for p in (tmp_path / "ray").iterdir())
    assert names == ["v0.npz", "v1.npz", "v2.npz"]
    for name in names:
        a, b = load_features(tmp_path / "pool" / name), load_features(tmp_path / "ray" / name)
        assert np.array_equal(a.features, b.features) and np.array_equal(a.valid, b.valid)
    (tmp_path / "ray" / "v1.npz").unlink()
    stamps = {n: (tmp_path / "ray" / n).stat().st_mtime_ns for n in ("v0.npz", "v2.npz")}
    assert main([str(data), "-o", str(tmp_path / "ray"), "--quiet", "--cluster", "ray"]) == 0
    assert (tmp_path / "ray" / "v1.npz").exists()
    assert stamps == {n: (tmp_path / "ray" / n).stat().st_mtime_ns for n in stamps}, "done files are kept"
