"""Argument types shared by the CLIs: numbers with a lower bound, refused with one clear line."""
from __future__ import annotations

import argparse


def at_least(kind, low, *, strict: bool = False):
    """An argparse type: `kind(text)` that is >= low (> low when strict)."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if value < low or (strict and value == low):
            raise argparse.ArgumentTypeError(f"must be {'>' if strict else '>='} {low}, got {text}")
        return value
    return parse


def positive(kind):
    """An argparse type: `kind(text)` that is > 0."""
    return at_least(kind, 0, strict=True)
