"""The shipped default model: present, small, self-describing, runnable without torch, held out right."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mespot.bench.accuracy import HELD_OUT_FACES
from mespot.config import KINDS, load_config
from mespot.models import MODEL_DIR, default_model_path
from mespot.paths import REPO_ROOT

MAX_BYTES = 2_000_000

NO_TORCH_SCRIPT = r"""
import importlib.abc, sys

class NoTorch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError(f"torch is blocked in this test ({name})")
        return None

sys.meta_path.insert(0, NoTorch())
import numpy as np
from mespot.engine.online import OnlineEngine, offline_probs
from mespot.engine.runtime import open_runtime
from mespot.models import default_model_path

runtime = open_runtime(default_model_path("onnx"), "onnx")
engine = OnlineEngine(runtime)
rng = np.random.default_rng(0)
features = rng.normal(0, 0.3, size=(60, 12, 2)).astype(np.float32)
valid = np.ones(60, bool)
rows = []
for i in range(60):
    rows += engine.push(i, features[i], True)
rows += engine.flush()
online = np.stack([r for _, r in rows])
offline = offline_probs(runtime, features, valid)
assert [i for i, _ in rows] == list(range(60)), [i for i, _ in rows]
assert np.isfinite(online).all() and online.shape == (60, 8)
print(float(np.abs(online - offline).max()), "torch" in sys.modules)
"""


def test_shipped_files_present_and_small():
    for name in ("default.onnx", "default.onnx.json", "default.pt"):
        path = MODEL_DIR / name
        assert path.is_file(), f"{path} missing: run scripts/make_default_model.sh"
        assert path.stat().st_size < MAX_BYTES, f"{name} is {path.stat().st_size} bytes"
    assert default_model_path("onnx") == MODEL_DIR / "default.onnx"
    assert b"pkg.torch.onnx" not in (MODEL_DIR / "default.onnx").read_bytes(), "build notes in the shipped model"


def test_package_data_ships_the_model_files():
    text = (REPO_ROOT / "pyproject.toml").read_text()
    assert '"models/*"' in text


def test_runs_under_onnx_runtime_without_torch():
    done = subprocess.run([sys.executable, "-c", NO_TORCH_SCRIPT], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    diff, torch_loaded = done.stdout.split()
    assert torch_loaded == "False"
    assert float(diff) < 1e-5            # the online engine equals one offline pass


def test_metadata_matches_the_live_config():
    meta = json.loads((MODEL_DIR / "default.onnx.json").read_text())
    live = load_config("live")
    assert meta["fps"] == live.fps
    assert meta["window"] == live.window
    assert meta["right_context"] == live.model_delay
    for kind in KINDS:
        shipped = meta["config"]["decoding"][kind]
        expected = live.to_dict()["decoding"][kind]
        assert {k: list(v) if isinstance(v, tuple) else v for k, v in expected.items()} == shipped, kind


def test_bench_identities_were_not_trained_on():
    pytest.importorskip("torch")
    from mespot.engine.checkpoint import checkpoint_info

    info = checkpoint_info(MODEL_DIR / "default.pt")
    trained = set(info["extra"]["trained_on_subjects"])
    assert trained, "the checkpoint does not say what it was trained on"
    assert not trained & set(HELD_OUT_FACES)
    # the man of single_face.mp4 (the real-smile test) appears in single_face.jpg and both .mov clips
    assert not trained & {"single_face", "face_noface", "noface_face"}
    # pseudo-identities (NAME~mix1, NAME~mirror) count as their face: none of a test or validation face
    from mespot.synth.variants import base_name

    assert not {base_name(s) for s in trained} & (set(HELD_OUT_FACES) | {"justin", "pexels_woman"})
    assert info["config"].name == "live"


def test_model_card_says_what_it_is_and_is_not():
    card = (REPO_ROOT / "docs" / "model-card.md").read_text()
    assert "scripts/make_default_model.sh" in card
    assert "not trained on real micro-expression data" in card
    for name in ("CAS(ME)", "SAMM", "spot-extract", "spot-train", "spot-bench accuracy"):
        assert name in card, name
    assert Path(REPO_ROOT / "scripts" / "make_default_model.sh").is_file()


def test_shipped_files_name_the_default_front_end_they_were_trained_with():
    """The features of the shipped model came from the default front-end (docs/model-card.md); the
    ONNX file, its sidecar and the checkpoint say so, so spot-live builds exactly that one."""
    from mespot.engine.runtime import open_runtime
    from mespot.stream.frontend import FrontEnd

    default = FrontEnd(30.0)
    try:
        expected = json.loads(json.dumps(default.config()))
    finally:
        default.close()
    assert expected["head_motion"] == "similarity-no-g" and expected["reflow_px"] == 0.25
    assert json.loads((MODEL_DIR / "default.onnx.json").read_text())["frontend"] == expected
    assert open_runtime(MODEL_DIR / "default.onnx", "onnx").metadata["frontend"] == expected
    pytest.importorskip("torch")
    from mespot.engine.checkpoint import checkpoint_info

    assert checkpoint_info(MODEL_DIR / "default.pt")["frontend"] == expected
