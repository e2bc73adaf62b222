"""PyTorch backend: runs a mespot checkpoint (.pt) directly, on CPU or CUDA.

Numerics (mespot.engine.runtime.precision): `precision="fp32"` (default) means IEEE float32 in every
convolution and matrix product. PyTorch itself lets cuDNN convolutions use TF32 on Ampere and later
GPUs unless told otherwise, so every model call runs inside `float32_mode`, which sets torch's
fp32-precision flags for that call only and restores them after (they are process-wide, so the
scope holds a lock: torch calls of several threads through this backend run one at a time).
`tf32`, `fp16` and `bf16` are explicit choices; their error against fp32 on CPU is measured once
when the runtime is opened and kept in describe() (as is fp32's on a GPU).

On CUDA, batches of exactly `window` indices (the online engine's steady state) are replayed as
CUDA graphs in batch buckets (mespot.engine.runtime.graphs); other shapes run eagerly.

Also the one place that turns an in-memory AUWGCN into runtime metadata (`model_metadata`), used
by the exporter so ONNX files and checkpoints describe themselves identically.
"""
from __future__ import annotations

import copy
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from mespot.config import Config, load_config
from mespot.engine.runtime.base import Runtime, RuntimeUnavailable
from mespot.engine.priors import PRIOR_COUNTS, prior_adjacency
from mespot.engine.runtime.metadata import build_metadata
from mespot.engine.runtime.precision import check_precision, precision_error, probe_features, report_precision

CUDA_PRECISIONS = ("fp32", "tf32", "fp16", "bf16")
CPU_PRECISIONS = ("fp32", "fp16", "bf16")      # TF32 is an NVIDIA tensor-core mode
_FLAGS_LOCK = threading.Lock()


def _import_torch():
    try:
        import torch
    except ImportError as exc:
        raise RuntimeUnavailable("backend torch needs PyTorch: pip install 'mespot[train]'") from exc
    return torch


def model_metadata(model, *, config: Config, fps: float, window: int | None = None,
                   source: dict[str, Any] | None = None, frontend: dict[str, Any] | None = None) -> dict[str, Any]:
    """Metadata of an AUWGCN: its adjacency and normalisation buffers plus config, fps, window and
    the front-end of its training features (None: not known)."""
    from mespot.engine.model import RIGHT_CONTEXT

    return build_metadata(
        adjacency=model.adjacency, input_mean=model.input_mean.detach().cpu().tolist(),
        input_std=model.input_std.detach().cpu().tolist(), config=config, fps=fps,
        right_context=RIGHT_CONTEXT, window=window, source=source, frontend=frontend)


def checkpoint_config(info: dict[str, Any], path: Path | str) -> Config:
    """The config a checkpoint was trained with; for the authors' files (which carry none) the
    dataset config whose prior adjacency the file holds."""
    if info["config"] is not None:
        return info["config"]
    for name in PRIOR_COUNTS:
        if np.allclose(info["adjacency"], prior_adjacency(name), atol=1e-6):
            return load_config(name)
    raise ValueError(f"{path}: an authors' checkpoint with an unknown adjacency; pass a config explicitly")


def precision_flags(torch, device: str, tf32: bool) -> list[tuple[Any, str, Any]]:
    """(object, attribute, value) settings that make `device`'s float32 convolutions and matrix
    products IEEE float32 (or TF32 where `tf32`). torch >= 2.9 (2.11 and 2.13 both) documents the
    `fp32_precision` attributes; older versions only the `allow_tf32` flags. Only one of the two
    APIs is ever touched: torch refuses to report the old flags once they disagree with the new."""
    b = torch.backends
    new_api = hasattr(b.cuda.matmul, "fp32_precision") and hasattr(b.cudnn, "conv")
    if device == "cuda":
        if new_api:
            mode = "tf32" if tf32 else "ieee"
            flags = [(b.cuda.matmul, "fp32_precision", mode), (b.cudnn.conv, "fp32_precision", mode)]
            if hasattr(b.cudnn, "rnn"):           # kept equal to conv, so the legacy getter stays readable
                flags.append((b.cudnn.rnn, "fp32_precision", mode))
            return flags
        return [(b.cuda.matmul, "allow_tf32", bool(tf32)), (b.cudnn, "allow_tf32", bool(tf32))]
    if new_api and hasattr(b.mkldnn, "conv"):      # oneDNN could otherwise be told to use bf16 for fp32
        return [(b.mkldnn.matmul, "fp32_precision", "ieee"), (b.mkldnn.conv, "fp32_precision", "ieee")]
    return []


@contextmanager
def float32_mode(torch, device: str, tf32: bool = False) -> Iterator[None]:
    """Run the body with `precision_flags`, restoring every flag it changed afterwards."""
    flags = precision_flags(torch, device, tf32)
    with _FLAGS_LOCK:
        changed = []
        try:
            for obj, name, value in flags:
                old = getattr(obj, name)
                if old != value:
                    setattr(obj, name, value)
                    changed.append((obj, name, old))
            yield
        finally:
            for obj, name, old in reversed(changed):
                setattr(obj, name, old)


class TorchRuntime(Runtime):
    """An AUWGCN in eval mode; `threads` sets torch's process-wide intra-op thread count.

    precision: fp32 | tf32 (cuda) | fp16 | bf16. cuda_graphs: replay window-length batches as CUDA
    graphs (default: on for cuda; cuda only)."""

    name = "torch"

    def __init__(self, model, metadata: dict[str, Any], device: str = "cpu", precision: str = "fp32",
                 cuda_graphs: bool | None = None) -> None:
        super().__init__(metadata, device)
        torch = _import_torch()
        if device == "cuda" and not torch.cuda.is_available():
            raise RuntimeUnavailable("backend torch: CUDA requested but torch.cuda.is_available() is False")
        self.precision = check_precision(precision, self.name, device,
                                         CUDA_PRECISIONS if device == "cuda" else CPU_PRECISIONS)
        if cuda_graphs and device != "cuda":
            raise ValueError(f"cuda_graphs needs device cuda, not {device!r}")
        self._torch = torch
        self._tf32 = precision == "tf32"
        self.dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(precision, torch.float32)
        reference = None
        if device != "cpu" or precision != "fp32":
            probe = probe_features(metadata)
            reference = _cpu_fp32_logits(torch, model, probe)
        if self.dtype != torch.float32:
            model = copy.deepcopy(model)           # the caller's model keeps its dtype
        self.model = model.to(device=device, dtype=self.dtype).eval()
        self.graphs = None
        if cuda_graphs or (cuda_graphs is None and device == "cuda"):
            from mespot.engine.runtime.graphs import GraphSet, cuda_capture

            self.graphs = GraphSet(cuda_capture(torch, self._forward_scoped, self.window, device), self.window)
        self.precision_error = None
        if reference is not None:
            try:
                got = self._eager(probe)
            except RuntimeError as exc:            # an operator without a kernel for this dtype/device
                raise ValueError(f"backend torch on {device} cannot run precision {precision} here: "
                                 f"{str(exc).splitlines()[0]}") from None
            self.precision_error = report_precision(self.name, device, precision, precision_error(reference, got))

    @classmethod
    def load(cls, path: Path, device: str = "cpu", threads: int | None = None, precision: str = "fp32",
             cuda_graphs: bool | None = None) -> "TorchRuntime":
        torch = _import_torch()
        from mespot.engine.checkpoint import checkpoint_info, load_checkpoint

        if threads:
            torch.set_num_threads(int(threads))
        model = load_checkpoint(path)
        info = checkpoint_info(path)
        config = checkpoint_config(info, path)
        fps = config.fps if info["fps"] is None else float(info["fps"])
        meta = model_metadata(model, config=config, fps=fps, frontend=info["frontend"],
                              source={"checkpoint": str(path), "epoch": info.get("epoch")})
        return cls(model, meta, device, precision=precision, cuda_graphs=cuda_graphs)

    def _forward(self, x):
        """float32 (B, T, 12, 2) device tensor -> float32 (B, 10, T) logits, at this precision."""
        return self.model(x.to(self.dtype)).float()

    def _forward_scoped(self, x):
        with float32_mode(self._torch, self.device, self._tf32):
            return self._forward(x)

    def _eager(self, x: np.ndarray) -> np.ndarray:
        torch = self._torch
        with torch.inference_mode():
            out = self._forward_scoped(torch.from_numpy(x).to(self.device))
            return out.cpu().numpy()

    def _infer_batch(self, x: np.ndarray) -> np.ndarray:
        if self.graphs is not None and x.shape[1] == self.window:
            return self.graphs.run(x)
        return self._eager(x)

    def describe(self) -> dict:
        facts = {**super().describe(), "precision": self.precision}
        if self.precision_error is not None:
            facts["precision_error"] = self.precision_error
        if self.graphs is not None:
            facts["cuda_graphs"] = {"frames": self.graphs.frames, "buckets": list(self.graphs.buckets),
                                    "captured": list(self.graphs.captured)}
        return facts


def _cpu_fp32_logits(torch, model, features: np.ndarray) -> np.ndarray:
    """The reference a precision is measured against: the model in float32 on CPU, IEEE arithmetic."""
    reference = copy.deepcopy(model).to(device="cpu", dtype=torch.float32).eval()
    with torch.inference_mode(), float32_mode(torch, "cpu"):
        return reference(torch.from_numpy(features)).numpy()
