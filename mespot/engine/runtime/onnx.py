"""ONNX Runtime backend: the default for live spotting. Imports no torch (a test checks this).

Metadata is read from the file's own metadata_props (the sidecar JSON is only a fallback for files
whose props were stripped by another tool).

On `device="cuda"` the session uses ONNX Runtime's CUDA execution provider, which only the
`onnxruntime-gpu` package has (the `[gpu]` extra); the provider list is built from
`onnxruntime.get_available_providers()` and the session is refused if it did not actually get the
provider (ONNX Runtime otherwise falls back to CPU quietly when CUDA libraries are missing). That
provider uses TF32 unless told not to, so precision fp32 passes `use_tf32=0` and tf32 `use_tf32=1`;
on a GPU the error against a CPU session of the same file is measured when the runtime opens.
UNTESTED here: no GPU and no onnxruntime-gpu on our machines.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from mespot.engine.runtime.base import ModelError, Runtime, RuntimeUnavailable, first_line
from mespot.engine.runtime.metadata import (INPUT_NAME, METADATA_KEY, check_metadata, parse_metadata,
                                            read_sidecar)
from mespot.engine.runtime.precision import check_precision, precision_error, probe_features, report_precision

CUDA_PROVIDER = "CUDAExecutionProvider"


def _import_onnxruntime():
    try:
        import onnxruntime
    except ImportError as exc:
        raise RuntimeUnavailable("backend onnx needs onnxruntime: pip install onnxruntime") from exc
    return onnxruntime


class OnnxRuntime(Runtime):
    """One InferenceSession; `threads` caps intra-op threads (1 is fastest for an 11-index window;
    None: ONNX Runtime's default, one per core, whose workers then do not spin between calls)."""

    name = "onnx"

    def __init__(self, session, metadata: dict, device: str, precision: str = "fp32") -> None:
        super().__init__(metadata, device)
        self.session = session
        self.precision = precision
        self.precision_error = None
        inputs = [i.name for i in session.get_inputs()]
        if inputs != [INPUT_NAME]:
            raise ModelError(f"ONNX model inputs {inputs}, expected [{INPUT_NAME!r}]")
        self._output_names = [session.get_outputs()[0].name]

    @classmethod
    def load(cls, path: Path, device: str = "cpu", threads: int | None = 1,
             precision: str = "fp32") -> "OnnxRuntime":
        ort = _import_onnxruntime()
        check_precision(precision, cls.name, device, ("fp32", "tf32") if device == "cuda" else ("fp32",))
        session = _session(ort, path, device, threads, precision)
        props = session.get_modelmeta().custom_metadata_map
        if METADATA_KEY in props:
            meta = check_metadata(parse_metadata(props[METADATA_KEY], str(path)), str(path))
        else:
            meta = read_sidecar(path)
        runtime = cls(session, meta, device, precision)
        if device != "cpu":
            probe = probe_features(meta)
            reference = cls(_session(ort, path, "cpu", threads, "fp32"), meta, "cpu").infer(probe)
            runtime.precision_error = report_precision(cls.name, device, precision,
                                                       precision_error(reference, runtime.infer(probe)))
        return runtime

    def _infer_batch(self, x: np.ndarray) -> np.ndarray:
        return self.session.run(self._output_names, {INPUT_NAME: x})[0]

    def describe(self) -> dict:
        facts = {**super().describe(), "providers": self.session.get_providers(), "precision": self.precision}
        if self.precision_error is not None:
            facts["precision_error"] = self.precision_error
        return facts


def _session(ort, path: Path, device: str, threads: int | None, precision: str):
    providers: list = ["CPUExecutionProvider"]
    if device == "cuda":
        if CUDA_PROVIDER not in ort.get_available_providers():
            raise RuntimeUnavailable("ONNX Runtime here has no CUDA provider; pip install 'mespot[gpu]' "
                                     "(onnxruntime-gpu in place of onnxruntime) or use --device cpu")
        providers.insert(0, (CUDA_PROVIDER, {"use_tf32": "1" if precision == "tf32" else "0"}))
    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = int(threads)
        opts.inter_op_num_threads = 1
    if threads != 1:
        # A pool's workers otherwise spin between calls and take the cores from everything else in
        # the process: here torch's CPU pushes went from 0.4 to 116 ms (p50) after one pooled call.
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        session = ort.InferenceSession(str(path), sess_options=opts, providers=providers)
    except Exception as exc:      # InvalidProtobuf, Fail, InvalidGraph, ...: ORT's own types
        raise ModelError(f"{path}: not a model ONNX Runtime can load ({first_line(exc)})") from None
    if device == "cuda" and CUDA_PROVIDER not in session.get_providers():
        raise RuntimeUnavailable(f"ONNX Runtime could not start its CUDA provider (session providers: "
                                 f"{session.get_providers()}); check the CUDA and cuDNN libraries it needs")
    return session
