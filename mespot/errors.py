"""The one error class for a user's bad input at a command line.

Every CLI (spot-live, spot-extract, spot-train, spot-bench) raises InputError for a problem with what
the user asked for (an argument, a missing file, a model that contradicts an option) and prints it
as one line, exit status 2. Library code raises its own specific errors; the CLIs translate them.
"""
from __future__ import annotations


class InputError(Exception):
    """A problem with what the user asked for: printed as one line, exit status 2."""
