"""Runtimes: same logits as the PyTorch model, self-describing, torch-free ONNX path, clear errors."""
from __future__ import annotations

import importlib.util
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from engine_models import CONFIG, WINDOW, model_files
from mespot.engine.runtime import FORMATS, RuntimeUnavailable, open_runtime
from mespot.engine.runtime.metadata import metadata_config


def torch_logits(model, x: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        return model(torch.from_numpy(x)).numpy()


@pytest.mark.parametrize("backend", ["onnx", "torch"])
def test_runtime_matches_model_batched_and_single(backend):
    model, ckpt, onnx_path = model_files()
    runtime = open_runtime(onnx_path if backend == "onnx" else ckpt, backend)
    x = np.random.default_rng(0).normal(0.0, 1.0, (3, 37, 12, 2)).astype(np.float32)
    batched = runtime.infer(x)
    assert batched.shape == (3, 10, 37) and batched.dtype == np.float32
    np.testing.assert_allclose(batched, torch_logits(model, x), atol=1e-5, rtol=0)
    single = runtime.infer(x[1].astype(np.float64))          # any float dtype, no batch axis
    assert single.shape == (10, 37)
    np.testing.assert_allclose(single, batched[1], atol=1e-5, rtol=0)


@pytest.mark.parametrize("backend", ["onnx", "torch"])
def test_metadata_describes_the_model(backend):
    model, ckpt, onnx_path = model_files()
    runtime = open_runtime(onnx_path if backend == "onnx" else ckpt, backend)
    meta = runtime.metadata
    np.testing.assert_allclose(np.array(meta["adjacency"]), model.adjacency, atol=1e-7)
    np.testing.assert_allclose(meta["input_mean"], [0.01, -0.02], atol=1e-7)
    np.testing.assert_allclose(meta["input_std"], [0.5, 0.7], atol=1e-7)
    assert meta["fps"] == CONFIG.fps and runtime.right_context == 5
    assert metadata_config(meta).micro == CONFIG.micro and metadata_config(meta).macro == CONFIG.macro
    assert runtime.window == (WINDOW if backend == "onnx" else CONFIG.window)


def test_onnx_runtime_needs_no_torch():
    """Live spotting must run where torch is not installed: block it and run a model."""
    _, _, onnx_path = model_files()
    script = textwrap.dedent(f"""
        import sys
        class NoTorch:
            def find_spec(self, name, path=None, target=None):
                if name == "torch" or name.startswith("torch."):
                    raise ImportError("torch is blocked in this test")
        sys.meta_path.insert(0, NoTorch())
        import numpy as np
        from mespot.engine.runtime import open_runtime
        from mespot.engine.online import OnlineEngine, offline_probs
        from mespot.engine.multistream import MultiStreamEngine
        rt = open_runtime({str(onnx_path)!r})
        x = np.random.default_rng(0).normal(size=(30, 12, 2)).astype(np.float32)
        assert rt.infer(x).shape == (10, 30)
        eng = OnlineEngine(rt)
        rows = [r for i in range(30) for r in eng.push(i, x[i], True)] + eng.flush()
        ref = offline_probs(rt, x, np.ones(30, bool))
        assert np.abs(np.stack([r for _, r in rows]) - ref).max() < 1e-5
        multi = MultiStreamEngine(rt)
        s = multi.join(2)
        got = [multi.push(s, [i, i], np.stack([x[i], x[i]])) for i in range(30)] + [multi.flush()]
        assert np.array_equal(np.concatenate([g.probs[g.stream == s[1]] for g in got]), np.stack([r for _, r in rows]))
        assert not any(m == "torch" or m.startswith("torch.") for m in sys.modules)
        print("ok")
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_request_errors_name_valid_choices(tmp_path):
    _, ckpt, onnx_path = model_files()
    with pytest.raises(ValueError, match="unknown backend 'tflite'; valid: onnx, torch, tensorrt"):
        open_runtime(onnx_path, "tflite")
    with pytest.raises(FileNotFoundError, match="model file not found"):
        open_runtime(tmp_path / "absent.onnx")
    with pytest.raises(ValueError, match=r"backend onnx opens \.onnx files"):
        open_runtime(ckpt, "onnx")
    with pytest.raises(ValueError, match="runs on cuda, not 'cpu'"):
        open_runtime(onnx_path, "tensorrt", "cpu")
    with pytest.raises(ValueError, match="fp16 do not apply to backend onnx; valid: threads, precision"):
        open_runtime(onnx_path, "onnx", fp16=True)
    assert set(FORMATS) == {"onnx", "torch", "tensorrt"}


def test_onnx_without_metadata_is_refused(tmp_path):
    import onnx

    _, _, onnx_path = model_files()
    bare = onnx.load(str(onnx_path))
    del bare.metadata_props[:]
    onnx.save(bare, str(tmp_path / "bare.onnx"))
    with pytest.raises(FileNotFoundError, match="sidecar"):
        open_runtime(tmp_path / "bare.onnx")


def test_infer_rejects_wrong_shapes():
    _, _, onnx_path = model_files()
    runtime = open_runtime(onnx_path)
    for bad in (np.zeros((5, 12, 3)), np.zeros((0, 12, 2)), np.zeros((12, 2))):
        with pytest.raises(ValueError, match=r"\(T, 12, 2\)"):
            runtime.infer(bad)


@pytest.mark.skipif(importlib.util.find_spec("tensorrt") is not None, reason="TensorRT is installed here")
def test_tensorrt_missing_is_a_clear_error():
    _, _, onnx_path = model_files()
    with pytest.raises(RuntimeUnavailable, match="TensorRT 10"):
        open_runtime(onnx_path, "tensorrt", "cuda")


@pytest.mark.skipif(importlib.util.find_spec("tensorrt") is None or not torch.cuda.is_available(),
                    reason="TensorRT and a CUDA GPU are not available (TensorRT cannot be installed here)")
def test_tensorrt_matches_onnx(tmp_path):
    _, _, onnx_path = model_files()
    trt_runtime = open_runtime(onnx_path, "tensorrt", "cuda", cache_dir=tmp_path, max_frames=512)
    x = np.random.default_rng(0).normal(size=(2, 300, 12, 2)).astype(np.float32)
    np.testing.assert_allclose(trt_runtime.infer(x), open_runtime(onnx_path).infer(x), atol=1e-4, rtol=0)
    assert len(list(tmp_path.glob("*.engine"))) == 1
    open_runtime(onnx_path, "tensorrt", "cuda", cache_dir=tmp_path, max_frames=512)   # reuses the plan
    assert len(list(tmp_path.glob("*.engine"))) == 1
    with pytest.raises(ValueError, match="outside the engine profile"):
        trt_runtime.infer(np.zeros((600, 12, 2), np.float32))


def test_onnx_cuda_request_without_provider_is_clear():
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this ONNX Runtime has a CUDA provider")
    _, _, onnx_path = model_files()
    with pytest.raises(RuntimeUnavailable, match="no CUDA provider"):
        open_runtime(onnx_path, "onnx", "cuda")


def test_a_thread_pool_does_not_spin_between_calls():
    """Pooled sessions (threads != 1) must leave the cores to the rest of the process between calls."""
    _, _, onnx_path = model_files()
    pooled = open_runtime(onnx_path, threads=None).session.get_session_options()
    assert pooled.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    single = open_runtime(onnx_path, threads=1).session.get_session_options()
    assert single.intra_op_num_threads == 1
