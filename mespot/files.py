"""The file kinds mespot reads (image and video suffixes) and the order it reads a folder in.

Shared by the stream sources, spot-extract's dataset walk and the generator's identity folders, so
they agree on what is an image, what is a video, and that `img_2` comes before `img_10`.
"""
from __future__ import annotations

import re

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv")


def natural_key(name: str) -> list:
    """Sort key that orders `img_2` before `img_10` (digit runs compare as numbers, case ignored)."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]
