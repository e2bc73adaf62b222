"""The installable wheel: built from the checkout, installed into a fresh venv outside it, and run.

What this proves: the wheel alone carries everything mespot reads at run time (code, the shipped
model and its sidecar, the named configs, package data), its console scripts work, and nothing is
imported from the checkout (the test asserts where `mespot` comes from).
What it does not prove: that the pinned dependencies resolve from the package index. Installing
them again would take minutes and need the network, so the fresh venv sees the dependencies already
installed for the tests through a .pth file that lists this interpreter's site-packages folders. A
plain folder line in a .pth adds that folder to sys.path without running the .pth files inside it,
so the editable install's import hook there stays inactive, and the wheel is installed with
--no-deps.
"""
from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from helpers import free_tcp_endpoint, write_video
from mespot.paths import REPO_ROOT

pytestmark = pytest.mark.slow


def _run(cmd, **kw):
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=600, **kw)
    assert proc.returncode == 0, f"{cmd}: exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A fresh venv holding only the mespot wheel; returns its bin folder."""
    work = tmp_path_factory.mktemp("wheel")
    src = work / "src"               # a copy, so the build writes nothing into the checkout
    shutil.copytree(REPO_ROOT / "mespot", src / "mespot",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO_ROOT / name, src / name)
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
          "-w", work / "dist", src])
    [wheel] = (work / "dist").glob("mespot-*.whl")
    venv = work / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", venv])
    [site_packages] = (venv / "lib").glob("python*/site-packages")
    (site_packages / "_mespot_test_deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    _run([sys.executable, "-m", "pip", "--python", venv / "bin" / "python", "install", "--no-deps",
          "--no-index", "-q", wheel])
    return venv / "bin"


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MESPOT_SHARED", "PYTHONHOME")}


def test_wheel_imports_mespot_from_the_venv_with_configs(installed, tmp_path):
    out = _run([installed / "python", "-c",
                "import mespot, mespot.config as c; print(mespot.__file__); "
                "print(sorted(p.stem for p in c.CONFIG_DIR.glob('*.yaml'))); print(float(c.load_config('live').fps))"],
               cwd=tmp_path, env=_env()).stdout.splitlines()
    assert Path(out[0]).is_relative_to(installed.parent), f"mespot imported from {out[0]}, not the wheel"
    assert out[1:] == ["['casme2', 'live', 'samm']", "30.0"]


def test_wheel_runs_spot_live_demo_and_spot_extract(installed, tmp_path):
    live = _run([installed / "spot-live", "--demo", "--no-ui", "--pub", free_tcp_endpoint()], cwd=tmp_path,
                env=_env())
    assert "planted expressions found" in live.stdout and live.stderr == "", live.stderr
    clip = write_video(tmp_path / "clip.avi", 10)
    out = tmp_path / "clip.npz"
    _run([installed / "spot-extract", clip, "-o", out, "--quiet"], cwd=tmp_path, env=_env())
    with np.load(out) as saved:        # the default config (live) came from the wheel: 30 fps rows
        assert len(saved["valid"]) == 10
