"""Shared fixtures: reference material from ../shared (skipped with a reason when absent)."""
from __future__ import annotations

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
