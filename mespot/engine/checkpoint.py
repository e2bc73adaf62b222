"""Model checkpoints: the project's own self-describing files and the authors' released ones.

Our format (a dict written with torch.save, loadable with `weights_only=True`):
  format "mespot-auwgcn", format_version 1, mespot_version, state_dict (AUWGCN keys, including the
  adjacency and input_mean/input_std buffers), adjacency (12x12 list), input_mean/input_std (2 floats,
  raw feature units), fps, config (Config.to_dict()), epoch, extra (free dict), frontend (the
  FrontEnd.config() of the training features, or None when not known; absent in older files).
The authors' format: {'epoch': int, 'state_dict': {...}} with the reference module names (reference-model.md §4),
optionally prefixed `module.` (DataParallel); those models get the fixed normalisation of reference-model.md §2.4.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

import mespot
from mespot.config import Config, config_from_dict
from mespot.engine.model import REFERENCE_MEAN, REFERENCE_STD, AUWGCN
from mespot.engine.runtime.base import ModelError, first_line

FORMAT = "mespot-auwgcn"
FORMAT_VERSION = 1

# Reference module name prefix -> ours. BatchNorm entries carry weight/bias/running_*/num_batches_tracked.
_AUTHOR_PREFIXES = {
    "graph_embedding.0.gc1.weight": "gcn.weight",
    "graph_embedding.0.gc1.bias": "gcn.bias",
    "graph_embedding.0.gc1.adj": "gcn.adjacency",
    "graph_embedding.0.bn1.": "gcn_bn.",
    "_sequential.": "temporal.",
    "_classification.weight": "head.weight",
}
_AUTHOR_REQUIRED = (
    "graph_embedding.0.gc1.weight", "graph_embedding.0.gc1.bias", "graph_embedding.0.gc1.adj",
    "graph_embedding.0.bn1.weight", "graph_embedding.0.bn1.running_mean",
    "_sequential.0.weight", "_sequential.1.weight", "_sequential.3.weight", "_sequential.4.weight",
    "_sequential.6.weight", "_sequential.7.weight", "_classification.weight",
)
_OURS_REQUIRED = ("format", "state_dict", "adjacency", "input_mean", "input_std", "fps", "config")


def save_checkpoint(path: str | Path, model: AUWGCN, *, config: Config, fps: float, epoch: int,
                    extra: dict[str, Any] | None = None, frontend: dict[str, Any] | None = None) -> None:
    """Write `model` with everything a runtime needs to use it (atomic: temp file then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "mespot_version": mespot.__version__,
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "adjacency": model.adjacency.astype(float).tolist(),
        "input_mean": model.input_mean.detach().cpu().tolist(),
        "input_std": model.input_std.detach().cpu().tolist(),
        "fps": float(fps),
        "config": config.to_dict(),
        "epoch": int(epoch),
        "extra": dict(extra or {}),
        "frontend": None if frontend is None else dict(frontend),
    }
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)


def _read(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:   # unpickling errors come in many types; name the file once
        raise ModelError(f"{path}: not a readable torch checkpoint ({_load_problem(exc)})") from None
    if not isinstance(data, dict):
        raise ModelError(f"{path}: checkpoint is a {type(data).__name__}, expected a dict")
    return data


def _load_problem(exc: Exception) -> str:
    """torch.load's reason in a few words: its weights-only refusal is a paragraph about PyTorch 2.6
    defaults, with the actual reason ("Unsupported operand 0") buried after `WeightsUnpickler error:`."""
    text = str(exc)
    marker = "WeightsUnpickler error:"
    if marker in text:
        reason = " ".join(text.split(marker, 1)[1].split("Check the documentation", 1)[0].split())
        return f"{type(exc).__name__}: {reason}" if reason else type(exc).__name__
    return first_line(exc)


def _is_ours(data: dict[str, Any]) -> bool:
    return data.get("format") == FORMAT


def _strip_module_prefix(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    if state and all(k.startswith("module.") for k in state):
        return {k[len("module."):]: v for k, v in state.items()}
    return dict(state)


def _authors_state(data: dict[str, Any]) -> dict[str, torch.Tensor] | None:
    """The authors' state_dict with the `module.` prefix removed, or None if it is not one."""
    state = data.get("state_dict")
    if not isinstance(state, dict):
        return None
    state = _strip_module_prefix(state)
    return state if all(k in state for k in _AUTHOR_REQUIRED) else None


def _convert_authors_state(state: dict[str, torch.Tensor], path: Path) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        for prefix, ours in _AUTHOR_PREFIXES.items():
            if key == prefix or (prefix.endswith(".") and key.startswith(prefix)):
                out[ours + key[len(prefix):] if prefix.endswith(".") else ours] = value
                break
        else:
            raise ValueError(f"{path}: unexpected key {key!r} in the authors' state_dict")
    return out


def _missing_keys_message(data: dict[str, Any], path: Path) -> str:
    state = data.get("state_dict")
    state_keys = set(_strip_module_prefix(state)) if isinstance(state, dict) else set()
    ours = [k for k in _OURS_REQUIRED if k not in data]
    authors = (["state_dict"] if not isinstance(state, dict)
               else [k for k in _AUTHOR_REQUIRED if k not in state_keys])
    return (f"{path}: neither a mespot checkpoint (missing {', '.join(ours)}) nor an AUW-GCN "
            f"authors' checkpoint (missing {', '.join(authors)})")


def _load_state(model: AUWGCN, state: dict[str, torch.Tensor], path: Path) -> None:
    # Old BatchNorm files may lack num_batches_tracked; it does not affect eval-mode outputs.
    result = model.load_state_dict(state, strict=False)
    missing = [k for k in result.missing_keys if not k.endswith("num_batches_tracked")]
    if missing or result.unexpected_keys:
        raise ValueError(f"{path}: state_dict mismatch (missing {missing}, unexpected {result.unexpected_keys})")


def _require_ours(data: dict, path: Path) -> None:
    missing = [k for k in _OURS_REQUIRED if k not in data]
    if missing:
        raise ValueError(f"{path}: mespot checkpoint missing {', '.join(missing)}")


def load_checkpoint(path: str | Path) -> AUWGCN:
    """A ready AUWGCN in eval mode from our file or the authors' file; ValueError for anything else."""
    path = Path(path)
    data = _read(path)
    if _is_ours(data):
        _require_ours(data, path)
        model = AUWGCN(adjacency=np.asarray(data["adjacency"], dtype=np.float32),
                       input_mean=tuple(data["input_mean"]), input_std=tuple(data["input_std"]))
        _load_state(model, data["state_dict"], path)
        return model.eval()
    state = _authors_state(data)
    if state is None:
        raise ValueError(_missing_keys_message(data, path))
    ours = _convert_authors_state(state, path)
    model = AUWGCN(adjacency=ours["gcn.adjacency"].cpu().numpy(),
                   input_mean=REFERENCE_MEAN, input_std=REFERENCE_STD)
    ours["input_mean"] = model.input_mean.clone()
    ours["input_std"] = model.input_std.clone()
    _load_state(model, ours, path)
    return model.eval()


def checkpoint_info(path: str | Path) -> dict[str, Any]:
    """What a checkpoint says about itself, without building the model.

    Keys: format ('mespot' | 'authors'), fps (None for the authors' files), config (a Config, or None
    for the authors' files), adjacency (12x12 float32), input_mean / input_std (tuples of 2 floats),
    epoch (int or None), mespot_version (or None), extra (dict), frontend (dict, or None when the
    file does not say: older files and the authors' ones).
    """
    path = Path(path)
    data = _read(path)
    if _is_ours(data):
        _require_ours(data, path)
        return {
            "format": "mespot",
            "fps": float(data["fps"]),
            "config": config_from_dict(data["config"]),
            "adjacency": np.asarray(data["adjacency"], dtype=np.float32),
            "input_mean": tuple(float(v) for v in data["input_mean"]),
            "input_std": tuple(float(v) for v in data["input_std"]),
            "epoch": data.get("epoch"),
            "mespot_version": data.get("mespot_version"),
            "extra": dict(data.get("extra") or {}),
            "frontend": dict(data["frontend"]) if data.get("frontend") else None,
        }
    state = _authors_state(data)
    if state is None:
        raise ValueError(_missing_keys_message(data, path))
    return {
        "format": "authors",
        "fps": None,
        "config": None,
        "adjacency": state["graph_embedding.0.gc1.adj"].cpu().numpy().astype(np.float32),
        "input_mean": REFERENCE_MEAN,
        "input_std": REFERENCE_STD,
        "epoch": data.get("epoch"),
        "mespot_version": None,
        "extra": {},
        "frontend": None,
    }
