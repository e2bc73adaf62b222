"""TensorRT 10 backend: an engine built from the exported ONNX file, run on CUDA memory owned by torch.

UNTESTED in this project: TensorRT cannot be installed on our machines (its wheels fetch their
libraries from a host we cannot reach), so this is written against the documented TensorRT 10
Python API (named tensors, set_input_shape, set_tensor_address, execute_async_v3) and its tests
skip. What it does:
- opening a .onnx builds (or reuses) a plan in a cache whose file name is keyed by the ONNX file's
  hash, TensorRT version, GPU name and compute capability, precision and profile, so a plan is never
  reused on another GPU or TensorRT version;
- opening a .engine/.plan reads the RAW plan plus its sidecar `<plan>.json` (never a header glued to
  the plan) and refuses a plan built for another TensorRT version or GPU;
- one optimisation profile: batch 1..max_batch, time 1..max_frames (opt: batch 1, the online window);
  a shape outside it is a ValueError naming the limits;
- input/output device buffers are allocated once at the profile maximum and reused;
- precision (docs/gpu.md): TensorRT lets float32 layers use TF32 unless its TF32 builder flag is
  cleared, so plans are built without it unless `precision="tf32"`; `precision="fp16"` (or the
  older `fp16=True`) adds the FP16 flag. Its error is checked by `spot-export --format engine`
  against ONNX Runtime, not measured again at open.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from mespot.engine.runtime.base import N_LOGITS, N_ROIS, Runtime, RuntimeUnavailable
from mespot.engine.runtime.precision import check_precision
from mespot.engine.runtime.metadata import (INPUT_NAME, METADATA_KEY, OUTPUT_NAME, check_metadata,
                                            read_sidecar, sidecar_path, write_sidecar)

DEFAULT_MAX_BATCH = 8
DEFAULT_MAX_FRAMES = 1024
WORKSPACE_BYTES = 1 << 28


def _import_tensorrt():
    try:
        import tensorrt as trt
    except ImportError as exc:
        raise RuntimeUnavailable(
            "backend tensorrt needs TensorRT 10 and an NVIDIA GPU (pip install tensorrt-cu12); "
            "use --backend onnx here") from exc
    return trt


def _import_cuda_torch():
    try:
        import torch
    except ImportError as exc:
        raise RuntimeUnavailable("backend tensorrt uses torch for CUDA memory: pip install 'mespot[train]'") from exc
    if not torch.cuda.is_available():
        raise RuntimeUnavailable("backend tensorrt needs a CUDA GPU; torch.cuda.is_available() is False")
    return torch


def build_target() -> dict[str, Any]:
    """What a plan is only valid for: TensorRT version and this GPU."""
    trt = _import_tensorrt()
    torch = _import_cuda_torch()
    major, minor = torch.cuda.get_device_capability()
    return {"tensorrt": trt.__version__, "gpu": torch.cuda.get_device_name(),
            "compute_capability": f"{major}.{minor}"}


def profile_shapes(window: int, max_batch: int, max_frames: int) -> dict[str, list[int]]:
    if not 1 <= window <= max_frames or max_batch < 1:
        raise ValueError(f"profile needs 1 <= window {window} <= max_frames {max_frames}, max_batch {max_batch} >= 1")
    return {"min": [1, 1, N_ROIS, 2], "opt": [1, window, N_ROIS, 2], "max": [max_batch, max_frames, N_ROIS, 2]}


def build_plan(onnx_bytes: bytes, *, profile: dict[str, list[int]], fp16: bool = False, tf32: bool = False) -> bytes:
    """ONNX -> serialized TensorRT plan with one optimisation profile on the input's batch/time axes."""
    trt = _import_tensorrt()
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)          # explicit batch is the only mode in TensorRT 10
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_bytes):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f"TensorRT could not parse the ONNX model: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, WORKSPACE_BYTES)
    if not tf32:
        config.clear_flag(trt.BuilderFlag.TF32)     # on by default in TensorRT: fp32 means fp32
    if fp16:
        config.set_flag(trt.BuilderFlag.FP16)
    opt_profile = builder.create_optimization_profile()
    opt_profile.set_shape(INPUT_NAME, tuple(profile["min"]), tuple(profile["opt"]), tuple(profile["max"]))
    config.add_optimization_profile(opt_profile)
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise RuntimeError("TensorRT failed to build the engine (see its log above)")
    return bytes(plan)


def _onnx_metadata(path: Path) -> dict[str, Any]:
    if sidecar_path(path).exists():
        return read_sidecar(path)
    import onnx

    props = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
    if METADATA_KEY not in props:
        raise ValueError(f"{path}: no mespot metadata (export it with spot-export)")
    return check_metadata(json.loads(props[METADATA_KEY]), str(path))


def write_plan(plan_path: Path, plan: bytes, meta: dict[str, Any], *, target: dict[str, Any],
               profile: dict[str, list[int]], fp16: bool) -> None:
    """Raw plan bytes at plan_path; the model metadata plus build facts in the sidecar."""
    plan_path.parent.mkdir(parents=True, exist_ok=True)
    plan_path.write_bytes(plan)
    write_sidecar(plan_path, {**meta, "engine": {**target, "profile": profile, "fp16": bool(fp16)}})


class TensorRTRuntime(Runtime):
    name = "tensorrt"

    def __init__(self, plan: bytes, metadata: dict[str, Any]) -> None:
        super().__init__(metadata, "cuda")
        trt = _import_tensorrt()
        torch = _import_cuda_torch()
        self._torch = torch
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        self.engine = self._runtime.deserialize_cuda_engine(plan)
        if self.engine is None:
            raise RuntimeError("TensorRT could not deserialize the plan (built by another version?)")
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        if sorted(names) != sorted([INPUT_NAME, OUTPUT_NAME]):
            raise ValueError(f"engine tensors {names}, expected {INPUT_NAME!r} and {OUTPUT_NAME!r}")
        profile = metadata["engine"]["profile"]
        self.max_batch, self.max_frames = profile["max"][0], profile["max"][1]
        self._stream = torch.cuda.Stream()
        self._input = torch.empty(self.max_batch * self.max_frames * N_ROIS * 2, dtype=torch.float32, device="cuda")
        self._output = torch.empty(self.max_batch * N_LOGITS * self.max_frames, dtype=torch.float32, device="cuda")
        self.context.set_tensor_address(INPUT_NAME, self._input.data_ptr())
        self.context.set_tensor_address(OUTPUT_NAME, self._output.data_ptr())

    @classmethod
    def load(cls, path: Path, device: str = "cuda", fp16: bool = False, cache_dir: str | Path | None = None,
             max_batch: int = DEFAULT_MAX_BATCH, max_frames: int = DEFAULT_MAX_FRAMES,
             precision: str | None = None) -> "TensorRTRuntime":
        tf32 = False
        if precision is not None:
            check_precision(precision, cls.name, device, ("fp32", "tf32", "fp16"))
            fp16, tf32 = precision == "fp16", precision == "tf32"
        target = build_target()
        if path.suffix.lower() in (".engine", ".plan"):
            meta = read_sidecar(path)
            built = {k: meta.get("engine", {}).get(k) for k in target}
            if built != target:
                raise ValueError(f"{path} was built for {built}, this machine is {target}; "
                                 f"rebuild it with spot-export --format engine")
            return cls(path.read_bytes(), meta)
        onnx_bytes = path.read_bytes()
        meta = _onnx_metadata(path)
        profile = profile_shapes(int(meta["window"]), max_batch, max_frames)
        key = json.dumps({"onnx": hashlib.sha256(onnx_bytes).hexdigest(), **target, "fp16": bool(fp16),
                          "tf32": bool(tf32), "profile": profile}, sort_keys=True)
        digest = hashlib.sha256(key.encode()).hexdigest()[:16]
        cache = Path(cache_dir) if cache_dir else path.parent / ".engine-cache"
        plan_path = cache / f"{path.stem}-{digest}.engine"
        if not plan_path.exists():
            write_plan(plan_path, build_plan(onnx_bytes, profile=profile, fp16=fp16, tf32=tf32), meta,
                       target=target, profile=profile, fp16=fp16)
        return cls(plan_path.read_bytes(), read_sidecar(plan_path))

    def _infer_batch(self, x: np.ndarray) -> np.ndarray:
        b, t = x.shape[:2]
        if not (1 <= b <= self.max_batch and 1 <= t <= self.max_frames):
            raise ValueError(f"input batch {b} x time {t} outside the engine profile "
                             f"(batch 1..{self.max_batch}, time 1..{self.max_frames}); rebuild with larger limits")
        torch = self._torch
        with torch.cuda.stream(self._stream):
            self._input[:x.size].view(x.shape).copy_(torch.from_numpy(x), non_blocking=False)
            if not self.context.set_input_shape(INPUT_NAME, x.shape):
                raise ValueError(f"TensorRT rejected input shape {x.shape}")
            if not self.context.execute_async_v3(self._stream.cuda_stream):
                raise RuntimeError("TensorRT execute_async_v3 failed")
            out = self._output[:b * N_LOGITS * t].view(b, N_LOGITS, t).cpu()
        self._stream.synchronize()
        return out.numpy()

    def describe(self) -> dict:
        return {**super().describe(), **{k: self.metadata["engine"][k] for k in ("tensorrt", "gpu", "fp16")}}
