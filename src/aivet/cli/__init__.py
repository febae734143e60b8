"""The ``aivet`` command: thin typer commands over the library.

``main.py`` holds the root app; ``edge.py`` the error edge; ``quick.py`` parses
plain ``aivet scan`` lines without importing typer; sub-apps (``ledger`` and
later ``sign``, ``verify``, ``bom``, ``gate``, ``probe``, ``serve``) are listed
in :data:`aivet.cli.main.SUBCOMMANDS` and imported only when used.
"""

from __future__ import annotations

import sys


def run() -> None:
    """Entry point: ``--version`` and well-formed ``aivet scan`` lines without typer, else :mod:`aivet.cli.main`."""
    args = sys.argv[1:]
    if args == ["--version"]:
        from aivet import __version__

        sys.stdout.write(f"aivet {__version__}\n")
        return
    if args[:1] == ["scan"]:
        from aivet.cli.quick import main as quick_scan

        code = quick_scan(args[1:])
        if code is not None:
            sys.exit(code)
    from aivet.cli.main import run as run_main

    run_main()
