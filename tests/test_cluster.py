"""Ray (`mespot[ray]`): streams as actors that come back after a crash, and spot-extract on Ray.

One local Ray for the whole module (2 CPUs). Skipped, with the reason, when Ray is not installed:
`make test` installs the extra, so CI runs these. The test that Ray is not needed without
--cluster is in tests/test_serve.py (it blocks the import).
"""
from __future__ import annotations

import time

import numpy as np
import pytest

ray = pytest.importorskip("ray", reason="the ray extra is not installed (pip install -e '.[ray]')")

from helpers import by_stream, free_tcp_endpoint, stream_results, write_video  # noqa: E402
from killed_stream import check_restart, clip_and_reference, run_and_kill  # noqa: E402
from mespot.serve.cluster import RayBackend  # noqa: E402


@pytest.fixture(scope="module")
def local_ray():
    t0 = time.monotonic()
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    print(f"\nray.init on this machine: {time.monotonic() - t0:.1f} s")
    yield ray
    ray.shutdown()


def test_a_killed_stream_actor_comes_back_with_a_gap_and_no_repeated_interval(local_ray, model_path, tmp_path):
    clip, config, reference = clip_and_reference(tmp_path, model_path)
    run = run_and_kill(lambda specs, job: RayBackend(specs, job, actor_cpus=0.5, max_restarts=2), clip, model_path,
                       lambda backend: ray.kill(backend.actors["cam0"], no_restart=False),
                       collect=lambda backend: ray.get(backend.registry.info.remote("cam0"))["published"])
    got = check_restart(run, config, reference)
    published = run.collected
    assert sorted((k, a) for k, _, a, _ in got) == sorted((k, a) for k, a, _ in published), \
        "every interval the actors published reached the subscriber"


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


def test_the_shared_engine_as_an_actor_gives_each_stream_its_single_stream_results(local_ray, model_path, tmp_path,
                                                                                      capsys):
    """--cluster ray --inference shared: the engine is a Ray actor the streams' actors call; each
    stream's intervals and per-frame probabilities equal a single-stream spot-live's."""
    from mespot.bench.liveloop import render_bench_clip
    from mespot.cli.live import main

    clips = [render_bench_clip(tmp_path / f"s{seed}.mp4", 90, seed=seed)[0] for seed in (1, 2)]
    rec = tmp_path / "rec.jsonl"
    rc = main(["--source", str(clips[0]), "--source", str(clips[1]), "--cluster", "ray", "--inference", "shared",
               "--model", str(model_path), "--no-ui", "--record", str(rec), "--pub", free_tcp_endpoint(),
               "--actor-cpus", "0.5"])
    assert rc == 0
    assert "shared engine: 180 pushes" in capsys.readouterr().out
    got = by_stream(rec)
    for clip in clips:
        single = tmp_path / f"{clip.stem}.jsonl"
        assert main(["--source", str(clip), "--model", str(model_path), "--no-ui", "--record", str(single),
                     "--pub", free_tcp_endpoint()]) == 0
        expected = stream_results(by_stream(single)[clip.stem])
        assert len(expected[1]) == 90 and stream_results(got[clip.stem]) == expected, clip.stem


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

