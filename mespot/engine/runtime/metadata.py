"""What a model file must carry so that any runtime can use it alone (no config file beside it).

A metadata dict (JSON-safe) with these keys:
  format          METADATA_FORMAT, bumped when a key changes meaning
  mespot_version  the package version that wrote it
  input / output  tensor names and layouts: features (B, T, 12, 2) raw float32, logits (B, 10, T)
  right_context   indices of look-ahead the model needs (5 for AUW-GCN); also its left context
  window          feature indices the online engine feeds per step
  fps             feature rate the model was trained at
  adjacency       (12, 12) list of floats; input_mean / input_std: per x/y channel (already inside
                  the graph: runtimes take raw features)
  config          mespot.config.Config.to_dict(), so decoding parameters travel with the model
  frontend        (optional) mespot.stream.frontend.FrontEnd.config() of the features the model was
                  trained on, so the live path builds that front-end (mespot.stream.frontconfig);
                  absent in older files and the authors' models, which get the default front-end
  source          free-form provenance (checkpoint path, epoch, exporter versions)
ONNX files hold it as the metadata_props entry METADATA_KEY (JSON text) and in the sidecar
`<model>.json`; TensorRT plans only in the sidecar. Pure Python: the live path reads it without torch.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mespot import __version__
from mespot.config import Config, ConfigError, config_from_dict
from mespot.engine.runtime.base import ModelError

METADATA_FORMAT = 1
METADATA_KEY = "mespot.metadata"
INPUT_NAME = "features"
OUTPUT_NAME = "logits"
REQUIRED_KEYS = ("format", "right_context", "window", "fps", "adjacency", "input_mean", "input_std",
                 "config")


def build_metadata(*, adjacency, input_mean, input_std, config: Config, fps: float, right_context: int,
                   window: int | None = None, source: dict[str, Any] | None = None,
                   frontend: dict[str, Any] | None = None) -> dict[str, Any]:
    """The metadata dict of one model; `window` defaults to the config's; `frontend` (None: not
    known) is the description of the front-end its training features came from."""
    window = int(config.window if window is None else window)
    if window < 2 * right_context + 1:
        raise ValueError(f"window {window} must be >= 2*right_context+1 = {2 * right_context + 1}")
    meta = {
        "format": METADATA_FORMAT,
        "mespot_version": __version__,
        "input": {"name": INPUT_NAME, "layout": "B,T,12,2", "dtype": "float32", "units": "raw ROI flow"},
        "output": {"name": OUTPUT_NAME, "layout": "B,10,T", "dtype": "float32"},
        "right_context": int(right_context),
        "window": window,
        "fps": float(fps),
        "adjacency": [[float(v) for v in row] for row in adjacency],
        "input_mean": [float(v) for v in input_mean],
        "input_std": [float(v) for v in input_std],
        "config": config.to_dict(),
        "source": dict(source or {}),
    }
    if frontend is not None:
        meta["frontend"] = dict(frontend)
    return meta


def check_metadata(meta: dict[str, Any], where: str) -> dict[str, Any]:
    """Return `meta` if it has every required key in a format this version reads and values that
    fit together; else raise ModelError naming `where` (the file) and the problem."""
    if not isinstance(meta, dict):
        raise ModelError(f"{where}: model metadata is a JSON {type(meta).__name__}, expected an object")
    missing = [k for k in REQUIRED_KEYS if k not in meta]
    if missing:
        raise ModelError(f"{where}: model metadata lacks {', '.join(missing)} (not exported by spot-export?)")
    if meta["format"] != METADATA_FORMAT:
        raise ModelError(f"{where}: model metadata format {meta['format']}, this mespot reads {METADATA_FORMAT}")
    _check_values(meta, where)
    return meta


def _check_values(meta: dict[str, Any], where: str) -> None:
    def whole(key: str, low: int) -> int:
        value = meta[key]
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise ModelError(f"{where}: {key} must be a whole number >= {low}, got {value!r}")
        return value

    right_context = whole("right_context", 0)
    window = whole("window", 1)
    if window < 2 * right_context + 1:
        raise ModelError(f"{where}: window {window} must be >= 2*right_context+1 = {2 * right_context + 1}")
    fps = meta["fps"]
    if not isinstance(fps, (int, float)) or isinstance(fps, bool) or not fps > 0:
        raise ModelError(f"{where}: fps must be a positive number, got {fps!r}")
    if not isinstance(meta["config"], dict):
        raise ModelError(f"{where}: config must be an object (a config's keys), got {meta['config']!r}")
    try:
        config = config_from_dict(meta["config"])
    except (ConfigError, TypeError, ValueError, AttributeError) as exc:
        raise ModelError(f"{where}: config: {exc}") from None
    if config.model_delay != right_context:
        raise ModelError(f"{where}: config model_delay {config.model_delay} disagrees with right_context "
                         f"{right_context}")
    frontend = meta.get("frontend")
    if frontend is not None and not isinstance(frontend, dict):
        raise ModelError(f"{where}: frontend must be an object (a front-end description), got {frontend!r}")


def metadata_config(meta: dict[str, Any]) -> Config:
    """The Config a model was exported with (decoding parameters, fps, window)."""
    return config_from_dict(meta["config"])


def metadata_frontend(meta: dict[str, Any]) -> dict[str, Any] | None:
    """The front-end description a model carries, or None (built before models carried one)."""
    frontend = meta.get("frontend")
    return dict(frontend) if frontend else None


def sidecar_path(model_path: str | Path) -> Path:
    """`model.onnx` -> `model.onnx.json` (the suffix is kept so model.onnx and model.engine never clash)."""
    model_path = Path(model_path)
    return model_path.with_name(model_path.name + ".json")


def write_sidecar(model_path: str | Path, meta: dict[str, Any]) -> Path:
    path = sidecar_path(model_path)
    path.write_text(json.dumps(meta, indent=1) + "\n")
    return path


def read_sidecar(model_path: str | Path) -> dict[str, Any]:
    path = sidecar_path(model_path)
    if not path.exists():
        raise FileNotFoundError(f"{model_path}: metadata sidecar {path} not found")
    return check_metadata(parse_metadata(path.read_bytes(), str(path)), str(path))


def parse_metadata(text: str | bytes, where: str) -> Any:
    """JSON text of a metadata dict; ModelError naming `where` when it is not JSON."""
    try:
        return json.loads(text)
    except UnicodeDecodeError:
        raise ModelError(f"{where}: model metadata is not text (expected JSON)") from None
    except json.JSONDecodeError as exc:
        raise ModelError(f"{where}: model metadata is not valid JSON ({exc.msg} at line {exc.lineno})") from None
