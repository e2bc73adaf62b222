"""The runtime contract and the table of model formats (what each backend loads, where, with what).

Every runtime takes RAW features (normalisation is inside the graph) and returns logits:
  infer((B, T, 12, 2) float32) -> (B, 10, T) float32;  infer((T, 12, 2)) -> (10, T).
The returned array is owned by the caller (never a view of a runtime buffer that the next call
overwrites). `metadata` is the dict of mespot.engine.runtime.metadata.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mespot.types import N_ROIS

N_LOGITS = 10


@dataclass(frozen=True)
class Format:
    """One row of the format table, checked before any file is read or library imported."""

    backend: str
    suffixes: tuple[str, ...]      # model file suffixes this backend opens
    devices: tuple[str, ...]
    options: tuple[str, ...]       # keyword options open_runtime passes on
    module: str                    # imported only when chosen
    cls: str
    summary: str


FORMATS: dict[str, Format] = {f.backend: f for f in (
    Format("onnx", (".onnx",), ("cpu", "cuda"), ("threads", "precision"), "mespot.engine.runtime.onnx",
           "OnnxRuntime", "ONNX Runtime (default; CPU, or its CUDA provider with the [gpu] extra)"),
    Format("torch", (".pt", ".pth", ".ckpt"), ("cpu", "cuda"), ("threads", "precision", "cuda_graphs"),
           "mespot.engine.runtime.torch", "TorchRuntime", "PyTorch on a mespot checkpoint (needs the [train] extra)"),
    Format("tensorrt", (".onnx", ".engine", ".plan"), ("cuda",), ("precision", "fp16", "cache_dir", "max_batch",
           "max_frames"), "mespot.engine.runtime.tensorrt", "TensorRTRuntime",
           "TensorRT 10 engine built from the ONNX file (NVIDIA GPU; untested in this project)"),
)}


class RuntimeUnavailable(RuntimeError):
    """The backend's library or device is not present on this machine (message says how to get it)."""


class ModelError(ValueError):
    """A model file, or the metadata beside or inside it, that cannot be used: one line naming the
    file and the problem. A CLI catches it where it opens a model and raises mespot.errors.InputError
    with the same text: one line, exit 2 (mespot/errors.py says why it is not an InputError)."""


def first_line(exc: BaseException, limit: int = 160) -> str:
    """`Type: first line of the message`, shortened: libraries' messages run to many lines."""
    text = str(exc).strip().splitlines()
    line = text[0].strip() if text else ""
    if len(line) > limit:
        line = line[:limit - 3] + "..."
    return f"{type(exc).__name__}: {line}" if line else type(exc).__name__


def as_feature_batch(features: np.ndarray) -> tuple[np.ndarray, bool]:
    """(T,12,2) or (B,T,12,2) -> contiguous float32 (B,T,12,2) and whether a batch axis was given."""
    x = np.asarray(features, dtype=np.float32)
    batched = x.ndim == 4
    if not batched:
        x = x[None]
    if x.ndim != 4 or x.shape[2:] != (N_ROIS, 2) or x.shape[1] < 1 or x.shape[0] < 1:
        raise ValueError(f"features must be (T, 12, 2) or (B, T, 12, 2) with T >= 1, got {np.shape(features)}")
    return np.ascontiguousarray(x), batched


class Runtime(ABC):
    """Base of the per-backend runtimes: load in __init__, then warm_up() / infer()."""

    name: str = "runtime"

    def __init__(self, metadata: dict[str, Any], device: str) -> None:
        self.metadata = metadata
        self.device = device

    @property
    def right_context(self) -> int:
        return int(self.metadata["right_context"])

    @property
    def window(self) -> int:
        return int(self.metadata["window"])

    def infer(self, features: np.ndarray) -> np.ndarray:
        x, batched = as_feature_batch(features)
        logits = self._infer_batch(x)
        if logits.shape != (x.shape[0], N_LOGITS, x.shape[1]):
            raise RuntimeError(f"{self.name}: model returned {logits.shape} for input {x.shape}")
        return logits if batched else logits[0]

    @abstractmethod
    def _infer_batch(self, x: np.ndarray) -> np.ndarray:
        """(B, T, 12, 2) contiguous float32 -> (B, 10, T) float32 array owned by the caller."""

    def warm_up(self, lengths: tuple[int, ...] | None = None) -> None:
        """Run once per length (default: every length the online engine can use, 1..window) so the
        first frames of a stream do not pay for shape-specific set-up."""
        for t in lengths or range(1, self.window + 1):
            self.infer(np.zeros((t, N_ROIS, 2), np.float32))

    def check_right_context(self, where: str) -> None:
        """Measure how far one input index reaches in the output and compare it with the metadata's
        `right_context`: the online engine emits index j once j + right_context has arrived, so a
        wrong value silently changes every probability near a run's end (ModelError if so).

        One random window of `window` indices, then the same with its middle index changed: the
        outputs that move are those within the receptive half-width of the middle (seen up to
        window // 2, which covers any value the window admits, window >= 2 * right_context + 1)."""
        length, middle = self.window, self.window // 2
        x = np.random.default_rng(0).normal(0.0, 1.0, (length, N_ROIS, 2)).astype(np.float32)
        base = self.infer(x)
        x[middle] += 1.0
        moved = np.flatnonzero(np.abs(self.infer(x) - base).max(axis=0) > 1e-6)
        reach = int(np.abs(moved - middle).max()) if moved.size else -1
        if reach != min(self.right_context, middle):
            raise ModelError(f"{where}: right_context {self.right_context} disagrees with the model, "
                             f"whose output reaches {reach} indices (within a {length}-index window)")

    def describe(self) -> dict[str, Any]:
        """One line of facts for logs and benchmarks."""
        return {"backend": self.name, "device": self.device, "input": self.metadata["input"]["layout"],
                "output": self.metadata["output"]["layout"], "window": self.window,
                "right_context": self.right_context, "fps": self.metadata.get("fps")}


def check_request(model_path: str | Path, backend: str, device: str, options: dict[str, Any]) -> Format:
    """Validate a runtime request against FORMATS; raise ValueError/FileNotFoundError naming valid choices."""
    if backend not in FORMATS:
        raise ValueError(f"unknown backend {backend!r}; valid: {', '.join(FORMATS)}")
    fmt = FORMATS[backend]
    if device not in fmt.devices:
        raise ValueError(f"backend {backend} runs on {', '.join(fmt.devices)}, not {device!r}")
    bad = sorted(set(options) - set(fmt.options))
    if bad:
        valid = ", ".join(fmt.options) or "none"
        raise ValueError(f"option(s) {', '.join(bad)} do not apply to backend {backend}; valid: {valid}")
    path = Path(model_path)
    if path.suffix.lower() not in fmt.suffixes:
        raise ValueError(f"backend {backend} opens {', '.join(fmt.suffixes)} files, not {path.name!r}")
    if not path.is_file():
        raise FileNotFoundError(f"model file not found: {path}")
    return fmt


def open_runtime(model_path: str | Path, backend: str = "onnx", device: str = "cpu", **options) -> Runtime:
    """Open `model_path` with `backend` on `device`; options per FORMATS (e.g. threads=1,
    precision="fp16"; precision is fp32, tf32, fp16 or bf16, see mespot.engine.runtime.precision)."""
    import importlib

    fmt = check_request(model_path, backend, device, options)
    cls = getattr(importlib.import_module(fmt.module), fmt.cls)
    runtime = cls.load(Path(model_path), device=device, **options)
    runtime.check_right_context(str(model_path))
    return runtime
