"""The error edge of every ``aivet`` command, without typer.

Exit codes: 0 clean (nothing at or over ``--fail-on``), 1 findings at or over
the threshold, 2 a usage or runtime error of the tool itself, 130 interrupted.
An :class:`~aivet.errors.AivetError` prints its ``diagnostics()``; anything
else prints a short bug notice (a traceback only with ``--debug`` or
``AIVET_DEBUG=1``). Both the typer commands and the quick path of
``aivet scan`` (:mod:`aivet.cli.quick`) end here, so they fail the same way.
"""

from __future__ import annotations

import os
import sys

BUG_URL = "https://github.com/aivet/aivet/issues"
_TRUE = ("1", "true", "yes", "on")


def debug_from_env() -> bool:
    """``AIVET_DEBUG=1``: show tracebacks instead of the short notices."""
    return os.environ.get("AIVET_DEBUG", "").strip().lower() in _TRUE


def err(message: str) -> None:
    """A line for people, on stderr."""
    sys.stderr.write(message + "\n")
    sys.stderr.flush()


def handle(exc: BaseException, *, debug: bool) -> int:
    """Turn an exception that reached the edge into its message and exit code; re-raise under debug."""
    from aivet.errors import AivetError

    if isinstance(exc, KeyboardInterrupt):
        err("aivet: interrupted")
        return 130
    if isinstance(exc, BrokenPipeError):
        # The reader went away (``aivet scan . | head``): say nothing more, and keep the interpreter
        # from failing again when it flushes stdout on exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 2
    if debug:
        raise exc
    if isinstance(exc, AivetError):
        err(f"aivet: error: {exc.diagnostics()}")
        return 2
    err(f"aivet: internal error: {type(exc).__name__}: {exc}\n"
        f"This is a bug in aivet. Please report it at {BUG_URL} with the command you ran "
        "and the output of the same command with --debug (or AIVET_DEBUG=1).")
    return 2


def write_stdout(text: str) -> None:
    """Write a report; a terminal that cannot show "—" or a non-ASCII file name gets escapes, not a crash."""
    try:
        sys.stdout.write(text)
    except UnicodeEncodeError:
        encoding = getattr(sys.stdout, "encoding", None) or "ascii"
        sys.stdout.write(text.encode(encoding, "backslashreplace").decode(encoding))
    sys.stdout.flush()


def isatty(stream: object) -> bool:
    """Whether ``stream`` is a terminal (False for anything without ``isatty``)."""
    check = getattr(stream, "isatty", None)
    return bool(check and check())
