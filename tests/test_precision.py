"""fp32 means fp32; reduced precision is an explicit option whose error is measured, never silent.

The GPU checks (torch CUDA against ONNX Runtime CPU within 1e-5, TF32 off inside the runtime) skip
without CUDA; scripts/gpu_checks.py does them on a GPU machine. The flag handling itself is plain
Python state and is tested here on CPU."""
from __future__ import annotations

import logging
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from engine_models import model_files
from mespot.engine.online import OnlineEngine, offline_probs
from mespot.engine.runtime import open_runtime
from mespot.engine.runtime.precision import PRECISIONS, precision_error, probe_features
from mespot.engine.runtime.torch import TorchRuntime, float32_mode, precision_flags

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU here (scripts/gpu_checks.py "
                                                                      "runs these checks on a GPU machine)")


def test_float32_mode_turns_tf32_off_for_the_call_and_restores_it():
    b = torch.backends
    before = (b.cuda.matmul.fp32_precision, b.cudnn.conv.fp32_precision, b.cudnn.rnn.fp32_precision)
    b.cudnn.conv.fp32_precision = b.cudnn.rnn.fp32_precision = "tf32"        # torch's own default
    try:
        with float32_mode(torch, "cuda"):
            assert (b.cuda.matmul.fp32_precision, b.cudnn.conv.fp32_precision) == ("ieee", "ieee")
        assert b.cudnn.conv.fp32_precision == "tf32"
        with float32_mode(torch, "cuda", tf32=True):
            assert (b.cuda.matmul.fp32_precision, b.cudnn.conv.fp32_precision) == ("tf32", "tf32")
        with pytest.raises(KeyError):
            with float32_mode(torch, "cuda"):
                raise KeyError("the flags come back even when the call fails")
        assert b.cudnn.conv.fp32_precision == "tf32" and b.cuda.matmul.fp32_precision == before[0]
        with float32_mode(torch, "cpu"):
            assert b.mkldnn.conv.fp32_precision == "ieee" and b.mkldnn.matmul.fp32_precision == "ieee"
    finally:
        b.cuda.matmul.fp32_precision, b.cudnn.conv.fp32_precision, b.cudnn.rnn.fp32_precision = before


def test_older_torch_gets_the_allow_tf32_flags():
    """torch before 2.9 has only allow_tf32; the flags must come from that API alone."""
    matmul = SimpleNamespace(allow_tf32=True)
    cudnn = SimpleNamespace(allow_tf32=True)
    old = SimpleNamespace(backends=SimpleNamespace(cuda=SimpleNamespace(matmul=matmul), cudnn=cudnn,
                                                   mkldnn=SimpleNamespace()))
    assert precision_flags(old, "cuda", False) == [(matmul, "allow_tf32", False), (cudnn, "allow_tf32", False)]
    with float32_mode(old, "cuda"):
        assert matmul.allow_tf32 is False and cudnn.allow_tf32 is False
    assert matmul.allow_tf32 is True and cudnn.allow_tf32 is True
    assert precision_flags(old, "cpu", False) == []


def test_every_torch_call_runs_in_ieee_float32(monkeypatch):
    _, ckpt, _ = model_files()
    runtime = open_runtime(ckpt, "torch")
    seen = []
    forward = runtime.model.forward

    def spy(x):
        seen.append(torch.backends.mkldnn.conv.fp32_precision)
        return forward(x)

    monkeypatch.setattr(runtime.model, "forward", spy)
    runtime.infer(np.zeros((11, 12, 2), np.float32))
    assert seen == ["ieee"]


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_reduced_precision_on_cpu_is_measured_and_reported(precision, caplog):
    model, ckpt, _ = model_files()
    fp32 = open_runtime(ckpt, "torch")
    with caplog.at_level(logging.WARNING, logger="mespot.engine"):
        reduced = open_runtime(ckpt, "torch", precision=precision)
    record = reduced.describe()["precision_error"]
    assert record["precision"] == precision and record["reference"] == "fp32 on cpu"
    assert 0 < record["max_abs_prob"] < 0.05 and record["max_abs_logit"] > record["max_abs_prob"] / 10
    assert f"in {precision}" in caplog.text and "max |prob - fp32 CPU prob|" in caplog.text
    x = probe_features(reduced.metadata)
    measured = precision_error(fp32.infer(x), reduced.infer(x))
    assert measured["max_abs_prob"] == pytest.approx(record["max_abs_prob"], abs=1e-7)
    assert model.gcn.weight.dtype == torch.float32          # the caller's model keeps its dtype
    assert "precision_error" not in fp32.describe() and fp32.describe()["precision"] == "fp32"


def test_precision_requests_are_checked():
    _, ckpt, onnx_path = model_files()
    with pytest.raises(ValueError, match="backend torch on cpu runs precision fp32, fp16, bf16, not tf32"):
        open_runtime(ckpt, "torch", precision="tf32")
    with pytest.raises(ValueError, match="backend onnx on cpu runs precision fp32, not fp16"):
        open_runtime(onnx_path, "onnx", precision="fp16")
    with pytest.raises(ValueError, match="unknown precision 'fp8'; valid: fp32, tf32, fp16, bf16"):
        open_runtime(ckpt, "torch", precision="fp8")
    with pytest.raises(ValueError, match="cuda_graphs needs device cuda"):
        open_runtime(ckpt, "torch", cuda_graphs=True)
    assert open_runtime(onnx_path, "onnx", precision="fp32").describe()["precision"] == "fp32"
    assert PRECISIONS == ("fp32", "tf32", "fp16", "bf16")


def test_probe_is_at_the_models_input_scale():
    meta = {"input_mean": [0.5, -1.0], "input_std": [2.0, 0.1]}
    x = probe_features(meta)
    assert x.shape == (4, 64, 12, 2) and x.dtype == np.float32
    np.testing.assert_allclose(x.reshape(-1, 2).mean(0), [0.5, -1.0], atol=0.15)
    assert 1.5 < x[..., 0].std() < 4.0 and 0.07 < x[..., 1].std() < 0.2


# -- on a GPU only ------------------------------------------------------------------------------------
@needs_cuda
def test_cuda_fp32_matches_onnx_cpu_offline_and_online():
    _, ckpt, onnx_path = model_files()
    gpu, cpu = open_runtime(ckpt, "torch", "cuda"), open_runtime(onnx_path, "onnx")
    assert gpu.describe()["precision_error"]["max_abs_prob"] <= 1e-5
    rng = np.random.default_rng(0)
    features = rng.normal(0.0, 0.5, (200, 12, 2)).astype(np.float32)
    valid = rng.random(200) > 0.05
    reference = offline_probs(cpu, features, valid)
    np.testing.assert_allclose(offline_probs(gpu, features, valid), reference, atol=1e-5, rtol=0)
    engine = OnlineEngine(gpu)
    online = np.full_like(reference, np.nan)
    for i in range(200):
        for j, row in engine.push(i, features[i], bool(valid[i])):
            online[j] = row
    for j, row in engine.flush():
        online[j] = row
    np.testing.assert_allclose(online, reference, atol=1e-5, rtol=0)


@needs_cuda
def test_cuda_tf32_is_reported():
    _, ckpt, _ = model_files()
    assert TorchRuntime.load(ckpt, "cuda", precision="tf32").describe()["precision_error"]["precision"] == "tf32"


@pytest.mark.parametrize("precision, use_tf32", [("fp32", "0"), ("tf32", "1")])
def test_onnx_cuda_provider_gets_tf32_off_and_a_silent_cpu_fallback_is_refused(monkeypatch, precision, use_tf32):
    """With CUDA 'available', the session is asked for the CUDA provider with use_tf32 set from the
    precision; ONNX Runtime here (CPU build) falls back to CPU, which must be refused, not used."""
    import onnxruntime

    from mespot.engine.runtime import RuntimeUnavailable

    _, _, onnx_path = model_files()
    asked = []
    real = onnxruntime.InferenceSession

    def session(path, sess_options=None, providers=None):
        asked.append(providers)
        return real(path, sess_options=sess_options, providers=["CPUExecutionProvider"])

    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    monkeypatch.setattr(onnxruntime, "InferenceSession", session)
    with pytest.raises(RuntimeUnavailable, match="could not start its CUDA provider"):
        open_runtime(onnx_path, "onnx", "cuda", precision=precision)
    assert asked == [[("CUDAExecutionProvider", {"use_tf32": use_tf32}), "CPUExecutionProvider"]]
