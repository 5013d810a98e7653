"""`UserError`: a problem with what the user gave (a file, a setting), not a bug of nmmfast.

The command line reports a `UserError`, an `OSError` or a `ValueError` as one line,
`nmmfast <command>: <message>`, and exits with status 2; `--debug` shows the traceback instead.
Messages name the file and the problem.
"""

from __future__ import annotations

import argparse

__all__ = ["UserError", "positive_int"]


class UserError(Exception):
    """Bad input named by its message: the command line exits 2 with that message."""


def positive_int(text: str) -> int:
    """argparse type of counts that must be at least 1 (beam width, steps, epochs, batch size):
    a bad value is refused when the arguments are parsed, before any work starts."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value
