"""The quick path of ``aivet scan``: parse a well-formed command line without typer.

A scan of one checkpoint should cost little more than reading it, yet importing
typer, click and the modules they pull in takes longer than the scan itself
(see bench/RESULTS.md). So :func:`aivet.cli.run` hands ``aivet scan ...`` to
:func:`main` first. It understands exactly the options of the typer command,
spelled the plain ways (``--opt VALUE``, ``--opt=VALUE``, ``-o VALUE``, ``--``),
and returns ``None`` for anything else — ``--help``, an unknown option, a bad
choice, a missing value — so that typer parses it and gives its usual help and
errors. A test checks that :data:`OPTIONS` and the typer command agree.
"""

from __future__ import annotations

from pathlib import Path

from aivet.cli.scan_command import ScanRequest, run_scan

# Every spelling the typer command accepts -> (ScanRequest field, the value a flag sets, or None
# for an option that takes a value). Kept in step with aivet.cli.main.scan by tests/test_cli_quick.py.
OPTIONS: dict[str, tuple[str, object]] = {
    "--example": ("example", True),
    "--format": ("format", None),
    "-f": ("format", None),
    "--output": ("output", None),
    "-o": ("output", None),
    "--fail-on": ("fail_on", None),
    "--strict": ("strict", True),
    "--limit": ("limit", None),
    "--no-progress": ("no_progress", True),
    "--quiet": ("quiet", True),
    "-q": ("quiet", True),
    "--record": ("record", True),
    "--no-record": ("record", False),
    "--ledger": ("ledger", None),
    "--suppressions": ("suppressions", None),
}
# Options whose value must be one of these (typer compares them case-insensitively).
CHOICES: dict[str, tuple[str, ...]] = {
    "format": ("terminal", "json", "sarif"),
    "fail_on": ("info", "low", "medium", "high", "critical"),
}


def parse(args: list[str]) -> ScanRequest | None:
    """The request ``aivet scan ARGS`` asks for, or None when typer should parse ``args`` instead."""
    values: dict[str, object] = {}
    paths: list[str] = []
    limits: list[str] = []
    i = 0
    positional_only = False
    while i < len(args):
        arg = args[i]
        i += 1
        if positional_only or arg == "-" or not arg.startswith("-"):
            paths.append(arg)
            continue
        if arg == "--":
            positional_only = True
            continue
        name, eq, value = arg.partition("=") if arg.startswith("--") else (arg, "", "")
        if name not in OPTIONS:
            return None
        field, flag_value = OPTIONS[name]
        if flag_value is not None:
            if eq:
                return None  # "--strict=yes": typer's error
            values[field] = flag_value
            continue
        if not eq:
            if i >= len(args):
                return None  # "--format" with nothing after it
            value = args[i]
            i += 1
        if field in CHOICES:
            value = value.lower()
            if value not in CHOICES[field]:
                return None
        if field == "limit":
            limits.append(value)
        elif field == "output":
            if Path(value).is_dir():
                return None  # typer: "File ... is a directory"
            values[field] = Path(value)
        else:
            values[field] = value
    return ScanRequest(paths=tuple(paths), limit=tuple(limits), **values)  # type: ignore[arg-type]


def main(args: list[str]) -> int | None:
    """Run ``aivet scan ARGS`` and return its exit code, or None when typer must handle ``args``."""
    request = parse(args)
    if request is None:
        return None
    from aivet.cli.edge import debug_from_env, handle

    try:
        return run_scan(request)
    except (Exception, KeyboardInterrupt) as exc:
        return handle(exc, debug=debug_from_env())
