"""The model shipped inside the package, used by `spot-live` when no --model is given.

default.onnx (ONNX Runtime, the live default; its metadata sidecar beside it) and default.pt (the
PyTorch checkpoint it was exported from). How it was trained and what it is not: the model card in
this folder.
"""
from __future__ import annotations

from pathlib import Path

MODEL_DIR = Path(__file__).resolve().parent
DEFAULT_FILES = {"onnx": "default.onnx", "torch": "default.pt", "tensorrt": "default.onnx"}


class ModelNotFound(FileNotFoundError):
    """The shipped model file is absent; the message says what to do instead."""


def default_model_path(backend: str = "onnx") -> Path:
    """The shipped model file a runtime `backend` opens (TensorRT builds its engine from the ONNX file)."""
    if backend not in DEFAULT_FILES:
        raise ValueError(f"unknown backend {backend!r}; valid: {', '.join(DEFAULT_FILES)}")
    path = MODEL_DIR / DEFAULT_FILES[backend]
    if not path.is_file():
        raise ModelNotFound(f"no default model at {path} (this build ships none); "
                            "pass --model PATH to a model made with spot-export")
    return path
