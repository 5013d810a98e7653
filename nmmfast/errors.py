"""`UserError`: a problem with what the user gave (a file, a setting), not a bug of nmmfast.

The command line reports a `UserError`, an `OSError` or a `ValueError` as one line,
`nmmfast <command>: <message>`, and exits with status 2; `--debug` shows the traceback instead.
Messages name the file and the problem.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable

__all__ = ["UserError", "fraction", "name_some", "positive_float", "positive_int"]


class UserError(Exception):
    """Bad input named by its message: the command line exits 2 with that message."""


def name_some(
    items: Iterable[object], limit: int = 10, *, quote: bool = False, sep: str = ", "
) -> str:
    """How a message names a few of many: the first `limit` items, then `... (+N)` for the
    rest (`quote`: each as its repr, for ids that may hold spaces)."""
    items = list(items)
    shown = [repr(item) if quote else str(item) for item in items[:limit]]
    rest = len(items) - limit
    return sep.join(shown) + (f"{sep}... (+{rest})" if rest > 0 else "")


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


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise argparse.ArgumentTypeError(f"must be finite, got {text}")
    return value


def positive_float(text: str) -> float:
    """argparse type of quantities that must be > 0 (learning rate, tolerance, fps)."""
    value = _number(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def fraction(text: str) -> float:
    """argparse type of a share in [0, 1) (label smoothing)."""
    value = _number(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {text}")
    return value
