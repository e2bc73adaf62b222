"""The front-end a model was trained with, rebuilt from its description and checked against it.

`FrontEnd.config()` describes everything that changes the features. It is stored in every feature
file (meta "extractor"), carried by training into the checkpoint and by export into the ONNX
metadata and its sidecar (key "frontend"), so spot-live, spot-bench and `spot-extract --model`
build the very front-end the model saw. A model without that key (older files, the authors'
checkpoints) gets the default front-end. A user's explicit option that contradicts the model, or a
description this installation cannot rebuild exactly, is refused (FrontEndMismatch), never bent.
"""
from __future__ import annotations

import json
from typing import Any

from mespot.stream.frontend import FrontEnd
from mespot.stream.tracker import canonical_tracker_spec, tracker_spec

# FrontEnd keyword options a user may set (CLI flags of the same name with dashes).
USER_OPTIONS = ("tracker", "flow", "crop_size", "roi_radius", "head_motion", "reflow_px")


class FrontEndMismatch(ValueError):
    """A front-end that is not the one a model (or a set of feature files) was made with."""


def _plain(value: Any) -> Any:
    """The JSON form of a value (tuples become lists), so stored and built descriptions compare."""
    return json.loads(json.dumps(value))


def differences(expected: dict, actual: dict, prefix: str = "") -> list[str]:
    """'key: expected vs actual' for every leaf where two front-end descriptions differ."""
    expected, actual = _plain(expected), _plain(actual)
    out = []
    for key in sorted(set(expected) | set(actual)):
        a, b = expected.get(key), actual.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += differences(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key}: {a!r} vs {b!r}")
    return out


def frontend_options(config: dict) -> dict[str, Any]:
    """FrontEnd keyword options (fps included) that rebuild the front-end `config` describes."""
    try:
        opts = {"fps": float(config["fps"]), "tracker": tracker_spec(config["tracker"]),
                "flow": config["flow"]["method"], "crop_size": int(config["crop_size"]),
                "roi_radius": int(config["roi_radius"]), "max_jump": float(config["max_jump"]),
                "head_motion": config["head_motion"], "reflow_px": config["reflow_px"]}
    except (KeyError, TypeError, ValueError) as exc:
        raise FrontEndMismatch(f"the model's front-end description is incomplete ({type(exc).__name__}: "
                               f"{exc})") from None
    if "max_faces" in config["tracker"]:
        opts["max_faces"] = int(config["tracker"]["max_faces"])
    return opts


def _same_option(name: str, given: Any, wanted: Any) -> bool:
    if name == "tracker":
        return canonical_tracker_spec(given) == canonical_tracker_spec(wanted)
    if name == "reflow_px":
        return (given or None) == (wanted or None)
    return given == wanted


def resolve_options(config: dict | None, *, fps: float, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """FrontEnd keyword options (fps included) for the front-end `config` describes (None: the
    default one), with the user's explicit `overrides` (None values ignored). Without a description
    the overrides shape the default front-end; with one they must agree with it (FrontEndMismatch),
    and so must `fps`."""
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    unknown = set(given) - set(USER_OPTIONS)
    if unknown:
        raise ValueError(f"unknown front-end options {sorted(unknown)}; valid: {', '.join(USER_OPTIONS)}")
    if config is None:
        if "reflow_px" in given:
            given["reflow_px"] = given["reflow_px"] or None          # 0: never
        return {"fps": float(fps), **given}
    opts = frontend_options(config)
    for name, value in given.items():
        if not _same_option(name, value, opts[name]):
            flag = "--" + name.replace("_", "-")
            raise FrontEndMismatch(f"{flag} {value} contradicts the model's front-end ({name} {opts[name]}); "
                                   f"leave {flag} out to use the model's")
    if abs(opts["fps"] - fps) > 1e-6:
        raise FrontEndMismatch(f"the model's front-end runs at {opts['fps']:g} fps, not {fps:g} fps")
    return opts


def build_frontend(config: dict | None, *, fps: float, overrides: dict[str, Any] | None = None) -> FrontEnd:
    """The front-end `config` (a FrontEnd.config() dict) describes, or the default one when None,
    with the options of `resolve_options`. The built front-end's own config must equal the
    description, else FrontEndMismatch names what differs."""
    frontend = FrontEnd(**resolve_options(config, fps=fps, overrides=overrides))
    if config is not None:
        diff = differences(config, frontend.config())
        if diff:
            frontend.close()
            raise FrontEndMismatch(f"this installation cannot rebuild the model's front-end exactly "
                                   f"(model vs here: {'; '.join(diff)})")
    return frontend
