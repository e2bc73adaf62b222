"""Where optional reference material lives (never part of the repository).

`MESPOT_SHARED` points at a folder with `data/` and `media/`; otherwise `../shared` beside the
checkout is used. Callers get None when it is absent, so tests can skip with a reason.
"""
from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def shared_dir() -> Path | None:
    env = os.environ.get("MESPOT_SHARED")
    for cand in ([Path(env)] if env else []) + [REPO_ROOT.parent / "shared"]:
        if cand.is_dir():
            return cand
    return None


def shared_file(*parts: str) -> Path | None:
    root = shared_dir()
    if root is None:
        return None
    p = root.joinpath(*parts)
    return p if p.exists() else None
