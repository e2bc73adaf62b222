"""The one error class for a user's bad input at a command line.

Every CLI (spot-live, spot-extract, spot-train, spot-bench) raises InputError for a problem with what
the user asked for (an argument, a missing file, a model that contradicts an option) and prints it
as one line, exit status 2. Library code raises its own specific errors; the CLIs translate them.
A bad model, sidecar or model metadata is mespot.engine.runtime.base.ModelError, a ValueError that
names the file: every CLI that opens a model turns it into an InputError where it opens it. It is
deliberately not an InputError itself: a benchmark or an export that meets a broken model it made
or shipped has a fault, not a user's typo, and keeps its traceback.
"""
from __future__ import annotations


class InputError(Exception):
    """A problem with what the user asked for: printed as one line, exit status 2."""
