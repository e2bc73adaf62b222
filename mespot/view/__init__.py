"""What a person sees of a run, outside the live path: the rerun live view (`spot-live --view`),
plots of a recorded or offline run (`spot-plot`), and Lab Streaming Layer outlets (`spot-live --lsl`).

Each heavy dependency is an optional extra imported only when used (`mespot[view]`: rerun-sdk;
`mespot[lsl]`: pylsl; matplotlib for plots comes with `mespot[train]` or `mespot[view]`), and a
missing one is one line naming the extra (`MissingExtra`).
"""
from __future__ import annotations

from mespot.errors import InputError


class MissingExtra(InputError):
    """An optional package is not installed: printed as one line naming the extra, exit status 2."""


def require(module: str, extra: str, what: str):
    """Import `module` or raise MissingExtra saying which extra of mespot installs it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtra(f"{what} needs the {extra!r} extra: pip install 'mespot[{extra}]' "
                           f"({exc.name or module} is not installed)") from None
