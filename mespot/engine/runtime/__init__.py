"""Runtimes that execute an exported AUW-GCN: one class per backend behind `Runtime`.

`open_runtime(path, backend, device)` validates the request against FORMATS and imports only the
chosen backend, so ONNX Runtime never pulls in torch.
"""
from mespot.engine.runtime.base import FORMATS, Format, Runtime, RuntimeUnavailable, open_runtime

__all__ = ["FORMATS", "Format", "Runtime", "RuntimeUnavailable", "open_runtime"]
