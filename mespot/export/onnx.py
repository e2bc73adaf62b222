"""torch -> ONNX export with dynamic batch and time axes, self-describing, checked against PyTorch.

The graph takes raw features (B, T, 12, 2) float32 named `features` and returns `logits`
(B, 10, T); normalisation and adjacency are constants inside it. Opset 18: the first the torch
dynamo exporter targets and supported by ONNX Runtime 1.32 and TensorRT 10.
"""
from __future__ import annotations

import logging
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mespot.config import Config
from mespot.engine.model import AUWGCN
from mespot.engine.runtime.metadata import INPUT_NAME, OUTPUT_NAME
from mespot.engine.runtime.onnx import OnnxRuntime
from mespot.engine.runtime.torch import checkpoint_config, model_metadata
from mespot.export.metadata import write_onnx_with_metadata

OPSET = 18
CHECK_LENGTHS = (1, 11, 64, 300)      # time lengths of the parity check (T=1 exercises pure padding)
CHECK_BATCH = 2
TOLERANCE = 1e-4


class ExportError(RuntimeError):
    """The exported model does not reproduce PyTorch within TOLERANCE (message has the numbers)."""


def resolve_model(model_or_checkpoint: AUWGCN | str | Path, config: Config | None,
                  fps: float | None) -> tuple[AUWGCN, Config, float, dict[str, Any], dict[str, Any] | None]:
    """An eval-mode model plus the config, fps, provenance and front-end to describe it with.

    For a checkpoint, config and fps default to what it carries, and the front-end is the one it
    carries (None when it names none); for a bare model config is required (front-end: pass
    `frontend=` to export_onnx).
    """
    if isinstance(model_or_checkpoint, AUWGCN):
        if config is None:
            raise ValueError("exporting a bare model needs config= (the checkpoint form carries one)")
        return model_or_checkpoint.eval(), config, float(config.fps if fps is None else fps), {}, None
    from mespot.engine.checkpoint import checkpoint_info, load_checkpoint

    path = Path(model_or_checkpoint)
    model = load_checkpoint(path)
    info = checkpoint_info(path)
    config = config or checkpoint_config(info, path)
    if fps is None:
        fps = config.fps if info["fps"] is None else info["fps"]
    source = {"checkpoint": str(path), "checkpoint_format": info["format"], "epoch": info.get("epoch")}
    return model, config, float(fps), source, info["frontend"]


def _torch_to_onnx(model: AUWGCN):
    example = torch.randn(CHECK_BATCH, 20, 12, 2)
    batch = torch.export.Dim("batch", min=1)
    frames = torch.export.Dim("time", min=1)
    quiet = logging.getLogger("torch.onnx")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                model, (example,), input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                dynamic_shapes=({0: batch, 1: frames},), opset_version=OPSET, dynamo=True,
                verbose=False, external_data=False)
    finally:
        quiet.setLevel(level)
    return strip_trace_metadata(program.model_proto)


def strip_trace_metadata(proto):
    """Drop the debugging notes torch's exporter attaches to nodes, inputs, outputs and the graph
    (`pkg.torch.*` and `namespace`: the Python stack trace with this machine's absolute paths, FX
    node text, module names): they describe the build, not the model, and a shipped file should
    not carry them. The graph, the weights and mespot's own metadata are untouched."""
    def visit(message) -> None:
        if message.DESCRIPTOR.name == "NodeProto":
            message.doc_string = ""
        for field, value in message.ListFields():
            if field.name == "metadata_props":
                keep = [(p.key, p.value) for p in value if not (p.key.startswith("pkg.torch.") or p.key == "namespace")]
                del value[:]
                for key, text in keep:
                    value.add(key=key, value=text)
            elif field.type == field.TYPE_MESSAGE:
                for item in (value if field.label == field.LABEL_REPEATED else [value]):
                    visit(item)
    visit(proto)
    return proto


def parity_check(model: AUWGCN, onnx_path: Path, *, lengths=CHECK_LENGTHS, seed: int = 0) -> dict[int, float]:
    """Largest |ONNX Runtime - PyTorch| logit difference per time length, on random raw features at
    the model's own input scale (mean + std * N(0, 1) per channel, the normalisation it carries):
    unit-variance raw features are tens of standard deviations out for a model trained on flows of
    a fraction of a pixel, and float32 rounding of the logits grows with them (1.2e-4 seen)."""
    runtime = OnnxRuntime.load(onnx_path)
    rng = np.random.default_rng(seed)
    mean = model.input_mean.detach().cpu().numpy()
    std = model.input_std.detach().cpu().numpy()
    diffs = {}
    for t in lengths:
        x = (mean + std * rng.normal(0.0, 1.0, (CHECK_BATCH, t, 12, 2))).astype(np.float32)
        with torch.inference_mode():
            expected = model(torch.from_numpy(x)).numpy()
        diffs[int(t)] = float(np.abs(runtime.infer(x) - expected).max())
    return diffs


def export_onnx(model_or_checkpoint: AUWGCN | str | Path, out_path: str | Path, *, config: Config | None = None,
                fps: float | None = None, window: int | None = None,
                tolerance: float = TOLERANCE, frontend: dict[str, Any] | None = None) -> dict[str, Any]:
    """Export to `out_path` (+ `out_path`.json), check it against PyTorch, return a report dict.

    Report keys: path, sidecar, opset, window, fps, max_abs_diff, diff_by_length, seconds, bytes.
    Raises ExportError (after writing the file, so it can be inspected) when the check fails.
    """
    started = time.perf_counter()
    model, config, fps, source, carried = resolve_model(model_or_checkpoint, config, fps)
    frontend = carried if frontend is None else frontend
    model = model.cpu().eval()
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    source = {**source, "torch": torch.__version__, "opset": OPSET}
    meta = model_metadata(model, config=config, fps=fps, window=window, source=source, frontend=frontend)
    sidecar = write_onnx_with_metadata(_torch_to_onnx(model), out_path, meta)
    diffs = parity_check(model, out_path)
    worst = max(diffs.values())
    report = {"path": str(out_path), "sidecar": str(sidecar), "opset": OPSET, "window": meta["window"],
              "fps": fps, "max_abs_diff": worst, "diff_by_length": diffs,
              "seconds": time.perf_counter() - started, "bytes": out_path.stat().st_size}
    if worst > tolerance:
        raise ExportError(f"{out_path}: ONNX differs from PyTorch by {worst:.3g} > {tolerance:g} "
                          f"(per length: {diffs})")
    return report
