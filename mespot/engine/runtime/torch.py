"""PyTorch backend: runs a mespot checkpoint (.pt) directly, on CPU or CUDA.

Also the one place that turns an in-memory AUWGCN into runtime metadata (`model_metadata`), used
by the exporter so ONNX files and checkpoints describe themselves identically.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from mespot.config import Config, load_config
from mespot.engine.runtime.base import Runtime, RuntimeUnavailable
from mespot.engine.priors import PRIOR_COUNTS, prior_adjacency
from mespot.engine.runtime.metadata import build_metadata


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


class TorchRuntime(Runtime):
    """An AUWGCN in eval mode; `threads` sets torch's process-wide intra-op thread count."""

    name = "torch"

    def __init__(self, model, metadata: dict[str, Any], device: str = "cpu") -> None:
        super().__init__(metadata, device)
        torch = _import_torch()
        if device == "cuda" and not torch.cuda.is_available():
            raise RuntimeUnavailable("backend torch: CUDA requested but torch.cuda.is_available() is False")
        self._torch = torch
        self.model = model.to(device).eval()

    @classmethod
    def load(cls, path: Path, device: str = "cpu", threads: int | None = None) -> "TorchRuntime":
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
        return cls(model, meta, device)

    def _infer_batch(self, x: np.ndarray) -> np.ndarray:
        torch = self._torch
        with torch.inference_mode():
            out = self.model(torch.from_numpy(x).to(self.device))
        return out.float().cpu().numpy()
