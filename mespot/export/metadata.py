"""Putting runtime metadata into an exported ONNX file (metadata_props) and beside it (sidecar JSON).

The dict itself is defined in mespot.engine.runtime.metadata so runtimes can read it without the
exporter; this module only writes it.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import onnx

from mespot.engine.runtime.metadata import METADATA_KEY, write_sidecar


def embed_metadata(model: onnx.ModelProto, meta: dict[str, Any]) -> onnx.ModelProto:
    """Set METADATA_KEY (JSON) plus flat, human-readable keys for tools such as Netron."""
    flat = {
        METADATA_KEY: json.dumps(meta),
        "mespot.version": meta["mespot_version"],
        "mespot.fps": str(meta["fps"]),
        "mespot.window": str(meta["window"]),
        "mespot.right_context": str(meta["right_context"]),
    }
    keep = [p for p in model.metadata_props if p.key not in flat]
    del model.metadata_props[:]
    model.metadata_props.extend(keep)
    for key, value in flat.items():
        model.metadata_props.add(key=key, value=value)
    model.producer_name = "mespot"
    model.producer_version = meta["mespot_version"]
    return model


def write_onnx_with_metadata(model: onnx.ModelProto, path: Path, meta: dict[str, Any]) -> Path:
    """Check and save the model with metadata embedded; write the sidecar; return the sidecar path."""
    embed_metadata(model, meta)
    onnx.checker.check_model(model)
    tmp = path.with_name(path.name + ".tmp")
    onnx.save(model, str(tmp))
    tmp.replace(path)
    return write_sidecar(path, meta)
