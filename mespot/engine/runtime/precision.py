"""Numeric precision of a runtime: what `precision=` means, and how far a reduced one is from fp32.

  fp32  IEEE float32 in every operation, on every device (the default). PyTorch on NVIDIA GPUs
        since Ampere otherwise runs convolutions in TF32 (10-bit mantissa), which moved the shipped
        model's probabilities by up to 1.1e-3 against ONNX Runtime on CPU (docs/gpu.md).
  tf32  float32 tensors, TF32 tensor-core arithmetic in convolutions and matrix products (CUDA only).
  fp16  half-precision weights and activations (torch backend; TensorRT builds an FP16 engine).
  bf16  bfloat16 weights and activations (torch backend).

A runtime opened with anything but plain fp32 on CPU measures its error once, when it is opened:
it runs `probe_features()` through itself and through an fp32 CPU reference of the same model and
keeps the largest differences (`precision_error()`), logs them once (logger `mespot.engine`) and
puts them in `describe()`, so a benchmark's JSON carries them. Reduced precision is never silent.

numpy only (the ONNX path imports this without torch).
"""
from __future__ import annotations

import logging
from typing import Any

import numpy as np

from mespot.engine.probs import logits_to_probs

PRECISIONS = ("fp32", "tf32", "fp16", "bf16")
PROBE_SHAPE = (4, 64)          # probe batch: 4 sequences of 64 indices
PROBE_SEED = 13

log = logging.getLogger("mespot.engine")


def check_precision(precision: str, backend: str, device: str, supported: tuple[str, ...]) -> str:
    """`precision` if `backend` on `device` runs it, else a ValueError in one line naming the valid ones."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; valid: {', '.join(PRECISIONS)}")
    if precision not in supported:
        raise ValueError(f"backend {backend} on {device} runs precision {', '.join(supported)}, not {precision}")
    return precision


def probe_features(metadata: dict[str, Any], shape: tuple[int, int] = PROBE_SHAPE,
                   seed: int = PROBE_SEED) -> np.ndarray:
    """(B, T, 12, 2) float32 features at the model's own input scale (its normalisation mean/std),
    with a few strong transients, so the probe exercises the range real features cover."""
    rng = np.random.default_rng(seed)
    mean = np.asarray(metadata["input_mean"], np.float32)
    std = np.asarray(metadata["input_std"], np.float32)
    x = rng.normal(0.0, 1.0, (*shape, 12, 2)).astype(np.float32)
    x[:, ::17] *= 4.0
    return x * std + mean


def precision_error(reference_logits: np.ndarray, logits: np.ndarray) -> dict[str, float]:
    """Largest absolute differences of logits and of probabilities, (B, 10, T) against the reference."""
    ref = np.asarray(reference_logits, np.float32)
    got = np.asarray(logits, np.float32)
    if ref.shape != got.shape:
        raise ValueError(f"logits {got.shape} against reference {ref.shape}")
    probs_ref = np.stack([logits_to_probs(r) for r in ref])
    probs_got = np.stack([logits_to_probs(g) for g in got])
    return {"max_abs_logit": float(np.abs(got - ref).max()),
            "max_abs_prob": float(np.abs(probs_got - probs_ref).max())}


def report_precision(name: str, device: str, precision: str, error: dict[str, float]) -> dict[str, Any]:
    """The record kept in describe(), logged once: a warning for a reduced precision (visible without
    any logging set-up), info for fp32 on another device (the parity a GPU must keep)."""
    record = {"precision": precision, "reference": "fp32 on cpu", "probe": list(PROBE_SHAPE), **error}
    log.log(logging.INFO if precision == "fp32" else logging.WARNING, "%s runtime on %s in %s: max |prob - fp32 CPU prob| = %.2g, max |logit diff| = %.2g "
                "(probe %dx%d indices)", name, device, precision, error["max_abs_prob"], error["max_abs_logit"],
                *PROBE_SHAPE)
    return record
