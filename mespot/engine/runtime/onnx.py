"""ONNX Runtime backend: the default for live spotting. Imports no torch (a test checks this).

Metadata is read from the file's own metadata_props (the sidecar JSON is only a fallback for files
whose props were stripped by another tool).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from mespot.engine.runtime.base import ModelError, Runtime, RuntimeUnavailable, first_line
from mespot.engine.runtime.metadata import (INPUT_NAME, METADATA_KEY, check_metadata, parse_metadata,
                                            read_sidecar)


def _import_onnxruntime():
    try:
        import onnxruntime
    except ImportError as exc:
        raise RuntimeUnavailable("backend onnx needs onnxruntime: pip install onnxruntime") from exc
    return onnxruntime


class OnnxRuntime(Runtime):
    """One InferenceSession; `threads` caps intra-op threads (1 is fastest for an 11-index window)."""

    name = "onnx"

    def __init__(self, session, metadata: dict, device: str) -> None:
        super().__init__(metadata, device)
        self.session = session
        inputs = [i.name for i in session.get_inputs()]
        if inputs != [INPUT_NAME]:
            raise ModelError(f"ONNX model inputs {inputs}, expected [{INPUT_NAME!r}]")
        self._output_names = [session.get_outputs()[0].name]

    @classmethod
    def load(cls, path: Path, device: str = "cpu", threads: int | None = 1) -> "OnnxRuntime":
        ort = _import_onnxruntime()
        providers = ["CPUExecutionProvider"]
        if device == "cuda":
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise RuntimeUnavailable(
                    "ONNX Runtime here has no CUDA provider; install onnxruntime-gpu or use --device cpu")
            providers.insert(0, "CUDAExecutionProvider")
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = int(threads)
            opts.inter_op_num_threads = 1
        try:
            session = ort.InferenceSession(str(path), sess_options=opts, providers=providers)
        except Exception as exc:      # InvalidProtobuf, Fail, InvalidGraph, ...: ORT's own types
            raise ModelError(f"{path}: not a model ONNX Runtime can load ({first_line(exc)})") from None
        props = session.get_modelmeta().custom_metadata_map
        if METADATA_KEY in props:
            meta = check_metadata(parse_metadata(props[METADATA_KEY], str(path)), str(path))
        else:
            meta = read_sidecar(path)
        return cls(session, meta, device)

    def _infer_batch(self, x: np.ndarray) -> np.ndarray:
        return self.session.run(self._output_names, {INPUT_NAME: x})[0]

    def describe(self) -> dict:
        return {**super().describe(), "providers": self.session.get_providers()}
