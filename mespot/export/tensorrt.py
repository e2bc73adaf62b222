"""torch -> ONNX -> TensorRT plan, written raw with a sidecar, and checked against PyTorch.

UNTESTED in this project (TensorRT cannot be installed here); written against the TensorRT 10
Python API. The ONNX file is kept beside the plan (same stem, .onnx) as the inspectable artifact.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from mespot.config import Config
from mespot.engine.model import AUWGCN
from mespot.engine.runtime.metadata import read_sidecar
from mespot.engine.runtime.tensorrt import (DEFAULT_MAX_BATCH, DEFAULT_MAX_FRAMES, TensorRTRuntime, build_plan,
                                            build_target, profile_shapes, write_plan)
from mespot.export.onnx import CHECK_LENGTHS, TOLERANCE, ExportError, export_onnx, resolve_model

FP16_TOLERANCE = 5e-2     # half precision inside the engine; the logits feed a softmax/sigmoid


def export_engine(model_or_checkpoint: AUWGCN | str | Path, out_path: str | Path, *, config: Config | None = None,
                  fps: float | None = None, window: int | None = None, fp16: bool = False,
                  max_batch: int = DEFAULT_MAX_BATCH, max_frames: int = DEFAULT_MAX_FRAMES) -> dict[str, Any]:
    """Write OUT.onnx (checked), then the plan OUT and OUT.json; return a report with both checks."""
    target = build_target()                       # fails early, before exporting, without TensorRT/GPU
    model, config, fps, _, _ = resolve_model(model_or_checkpoint, config, fps)
    out_path = Path(out_path)
    onnx_path = out_path.with_suffix(".onnx")
    onnx_report = export_onnx(model_or_checkpoint, onnx_path, config=config, fps=fps, window=window)
    meta = read_sidecar(onnx_path)
    profile = profile_shapes(int(meta["window"]), max_batch, max_frames)
    plan = build_plan(onnx_path.read_bytes(), profile=profile, fp16=fp16)
    write_plan(out_path, plan, meta, target=target, profile=profile, fp16=fp16)
    runtime = TensorRTRuntime(plan, read_sidecar(out_path))
    rng = np.random.default_rng(0)
    diffs = {}
    for t in (t for t in CHECK_LENGTHS if t <= max_frames):
        x = rng.normal(0.0, 1.0, (min(2, max_batch), t, 12, 2)).astype(np.float32)
        with torch.inference_mode():
            expected = model.cpu().eval()(torch.from_numpy(x)).numpy()
        diffs[t] = float(np.abs(runtime.infer(x) - expected).max())
    worst = max(diffs.values())
    tolerance = FP16_TOLERANCE if fp16 else TOLERANCE
    report = {"path": str(out_path), "onnx": onnx_report, "engine": target, "fp16": fp16, "profile": profile,
              "max_abs_diff": worst, "diff_by_length": diffs, "bytes": out_path.stat().st_size}
    if worst > tolerance:
        raise ExportError(f"{out_path}: TensorRT differs from PyTorch by {worst:.3g} > {tolerance:g}")
    return report
