"""Shared fixtures: reference material from ../shared (skipped with a reason when absent), and a model
for the tests that run spot-live end to end."""
from __future__ import annotations

from pathlib import Path

import pytest

from mespot.paths import shared_file


def _need(*parts: str):
    p = shared_file(*parts)
    if p is None:
        pytest.skip(f"reference file shared/{'/'.join(parts)} not present (set MESPOT_SHARED or place ../shared)")
    return p


@pytest.fixture
def shared_path():
    """Call with path parts under shared/, e.g. shared_path('media', 'single_face.mp4')."""
    return _need


@pytest.fixture(scope="session")
def model_path(tmp_path_factory) -> Path:
    """The shipped model when present, else a freshly initialised AUW-GCN exported to ONNX."""
    from mespot.models import ModelNotFound, default_model_path

    try:
        return default_model_path()
    except ModelNotFound:
        import torch

        from mespot.config import load_config
        from mespot.engine.model import AUWGCN
        from mespot.export.onnx import export_onnx

        torch.manual_seed(0)
        path = tmp_path_factory.mktemp("model") / "random.onnx"
        export_onnx(AUWGCN().eval(), path, config=load_config("live"), fps=30.0)
        return path
