"""The one table of the front-end's interchangeable stages: flow methods and head-motion modes.

A stage is given by name (`make_strategy("flow", "dis")`) or as an object already built, which is
returned as it is. An unknown name is refused with the valid ones listed, so a CLI can take its
choices from `strategy_names` instead of repeating them. The first name of each kind is the default.
"""
from __future__ import annotations

from typing import Any, Callable

from mespot.stream.flow import DisFlow, TvL1Flow
from mespot.stream.headmotion import HEAD_MOTION_MODES

_TABLE: dict[str, dict[str, Callable[[], Any]]] = {
    "flow": {"dis": DisFlow, "tvl1": TvL1Flow},
    "head_motion": {mode.name: (lambda mode=mode: mode) for mode in HEAD_MOTION_MODES},
}


class UnknownStrategy(ValueError):
    """A name not in the table; the message lists the valid ones."""


def strategy_kinds() -> tuple[str, ...]:
    return tuple(_TABLE)


def _kind(kind: str) -> dict[str, Callable[[], Any]]:
    if kind not in _TABLE:
        raise UnknownStrategy(f"unknown stage {kind!r}; valid: {', '.join(_TABLE)}")
    return _TABLE[kind]


def strategy_names(kind: str) -> tuple[str, ...]:
    """The valid names of one kind, the default first."""
    return tuple(_kind(kind))


def default_strategy(kind: str) -> str:
    return strategy_names(kind)[0]


def make_strategy(kind: str, spec: Any) -> Any:
    """The stage object for `spec`: a name from the table (a fresh object), or an object as it is."""
    if not isinstance(spec, str):
        return spec
    table = _kind(kind)
    if spec not in table:
        raise UnknownStrategy(f"unknown {kind.replace('_', ' ')} {spec!r}; valid: {', '.join(table)}")
    return table[spec]()
