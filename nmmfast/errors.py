"""`UserError`: a problem with what the user gave (a file, a setting), not a bug of nmmfast.

The command line reports a `UserError`, an `OSError` or a `ValueError` as one line,
`nmmfast <command>: <message>`, and exits with status 2; `--debug` shows the traceback instead.
Messages name the file and the problem.
"""

from __future__ import annotations

__all__ = ["UserError"]


class UserError(Exception):
    """Bad input named by its message: the command line exits 2 with that message."""
