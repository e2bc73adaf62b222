"""A non-trivial AUWGCN (random weights AND batch-norm statistics, non-zero normalisation) and its
ONNX export, built once per test session and shared by the engine, runtime and export tests."""
from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from pathlib import Path

import torch

from mespot.config import load_config
from mespot.engine.model import AUWGCN

CONFIG = load_config("live")
WINDOW = 11


def make_model(seed: int = 0) -> AUWGCN:
    torch.manual_seed(seed)
    model = AUWGCN(input_mean=(0.01, -0.02), input_std=(0.5, 0.7))
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm1d):
                m.running_mean.normal_(0.0, 0.3)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0.0, 0.2)
    return model.eval()


@functools.cache
def workdir() -> Path:
    path = Path(tempfile.mkdtemp(prefix="mespot-engine-tests-"))
    atexit.register(shutil.rmtree, path, True)
    return path


@functools.cache
def model_files() -> tuple[AUWGCN, Path, Path]:
    """(model, checkpoint .pt, ONNX export) of make_model(), written once."""
    from mespot.engine.checkpoint import save_checkpoint
    from mespot.export.onnx import export_onnx

    model = make_model()
    ckpt = workdir() / "model.pt"
    save_checkpoint(ckpt, model, config=CONFIG, fps=CONFIG.fps, epoch=7)
    onnx_path = workdir() / "model.onnx"
    export_onnx(ckpt, onnx_path, window=WINDOW)
    return model, ckpt, onnx_path
