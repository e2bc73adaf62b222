"""Joining a Ray cluster started apart (`ray start --head`), as spot-live does on a real cluster.

A module of its own: the cluster is a second Ray on this machine, apart from tests/test_cluster.py's
in-process one, and is stopped by stopping the `ray start --block` process that owns it (never
`ray stop`, which would stop every Ray here). Skipped when the ray extra is not installed.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

pytest.importorskip("ray", reason="the ray extra is not installed (pip install -e '.[ray]')")

from helpers import free_port, free_tcp_endpoint  # noqa: E402


def test_spot_live_joins_a_running_cluster_by_ray_address_and_by_ray_client(model_path, tmp_path):
    """A cluster started apart (`ray start --head`, as on a head node), joined twice by a spot-live
    process: with RAY_ADDRESS and `--cluster ray` (a driver on the cluster), and with
    `--cluster ray://HOST:PORT` (Ray Client); both run their two streams to the end. The streams'
    actors reach the bus by the address spot-live advertises (it binds all interfaces then). The
    head claims 4 CPUs and each actor asks 1.5: both fit only there, not in a Ray of this 2-core
    machine's own, so a run that did not join would not end."""
    from mespot.bench.liveloop import render_bench_clip

    clip = render_bench_clip(tmp_path / "c.mp4", 60, seed=4)[0]
    ray_cli = str(Path(sys.executable).with_name("ray"))
    gcs, client = free_port(), free_port()
    temp = tempfile.mkdtemp(prefix="mespot-ray-", dir="/tmp")       # short: Ray's socket paths live there
    # Ray 2.60 clusters ask for a token; a driver joining by address sends one only when told to
    # (RAY_AUTH_MODE=token), as on a real cluster. A token of the test's own leaves ~/.ray alone.
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    env.pop("RAY_ADDRESS", None)
    env.pop("RAY_AUTH_TOKEN_PATH", None)
    t0 = time.monotonic()
    head = subprocess.Popen([ray_cli, "start", "--head", "--block", "--port", str(gcs), "--ray-client-server-port",
                             str(client), "--num-cpus", "4", "--include-dashboard", "false", "--temp-dir", temp,
                             "--disable-usage-stats"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    for line in head.stdout:                   # `ray start` says when the head node is up
        if "Ray runtime started" in line:
            break
    else:
        pytest.fail(f"ray start --head ended (code {head.wait()}) without starting")
    print(f"\nray start --head: {time.monotonic() - t0:.1f} s")
    try:
        for how, extra_env, cluster in [("RAY_ADDRESS", {"RAY_ADDRESS": f"127.0.0.1:{gcs}"}, "ray"),
                                        ("Ray Client", {}, f"ray://127.0.0.1:{client}")]:
            rec = tmp_path / f"{how}.jsonl"
            t1 = time.monotonic()
            done = subprocess.run([sys.executable, "-m", "mespot.cli.live", "--source", str(clip), "--source",
                                   str(clip), "--cluster", cluster, "--model", str(model_path), "--no-ui",
                                   "--record", str(rec), "--pub", free_tcp_endpoint(), "--actor-cpus", "1.5"],
                                  env={**env, **extra_env}, capture_output=True, text=True, timeout=300)
            print(f"{how}: rc {done.returncode} in {time.monotonic() - t1:.1f} s")
            assert done.returncode == 0, done.stderr[-2000:]
            ended = [m for m in map(json.loads, rec.read_text().splitlines()) if m["topic"] == "status"
                     and m["state"] == "ended"]
            assert sorted((m["stream"], m["frames"]) for m in ended) == [("c", 60), ("c-2", 60)], how
    finally:
        head.send_signal(signal.SIGTERM)       # `ray start --block` stops its node's processes
        try:
            head.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
            head.wait(10)
        head.stdout.close()
        shutil.rmtree(temp, ignore_errors=True)
