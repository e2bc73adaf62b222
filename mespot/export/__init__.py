"""Exporters: torch -> ONNX (+ sidecar metadata) -> TensorRT plan, each checked against PyTorch.

EXPORT_FORMATS is the table `spot-export` validates a request against before loading anything;
the exporter modules import torch/onnx/tensorrt and are imported only when used.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ExportFormat:
    name: str
    suffix: str                    # the output file must end with it (never silently rewritten)
    options: tuple[str, ...]       # CLI options that apply beyond --checkpoint/-o/--config/--fps/--window
    needs: str                     # the library that must be importable, checked before any work
    summary: str


EXPORT_FORMATS: dict[str, ExportFormat] = {f.name: f for f in (
    ExportFormat("onnx", ".onnx", (), "onnx",
                 "ONNX (opset 18, dynamic batch and time) for ONNX Runtime; the live default"),
    ExportFormat("engine", ".engine", ("fp16", "max_batch", "max_frames"), "tensorrt",
                 "TensorRT 10 plan via ONNX (raw plan + OUT.json sidecar); untested in this project"),
)}
