"""The ``aivet`` command: thin typer commands over the library.

``main.py`` holds the root app and the error edge; sub-apps (``ledger`` and
later ``sign``, ``verify``, ``bom``, ``gate``, ``probe``, ``serve``) are listed
in :data:`aivet.cli.main.SUBCOMMANDS` and imported only when used.
"""

from __future__ import annotations

import sys


def run() -> None:
    """Entry point: answers ``--version`` without importing typer, else runs :mod:`aivet.cli.main`."""
    if sys.argv[1:] == ["--version"]:
        from aivet import __version__

        sys.stdout.write(f"aivet {__version__}\n")
        return
    from aivet.cli.main import run as run_main

    run_main()
