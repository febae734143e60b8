"""What ``aivet scan`` does once its arguments are parsed, without typer.

Two front ends call :func:`run_scan`: the typer command in :mod:`aivet.cli.main`
(help, completion-grade errors) and the quick path in :mod:`aivet.cli.quick`,
which parses well-formed scan invocations itself so that a scan does not pay
typer's and click's start-up. Whatever either of them parses ends up here, so
both behave the same.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from aivet.cli.edge import err, isatty, write_stdout
from aivet.errors import UsageError
from aivet.limits import DEFAULT_LIMITS, Limits

if TYPE_CHECKING:
    from aivet.evidence import Evidence


class ScanRequest(NamedTuple):
    """A parsed ``aivet scan`` command line (the option names are the long options')."""

    paths: tuple[str, ...] = ()
    example: bool = False
    format: str = "terminal"  # a aivet.report.ReportFormat value
    output: Path | None = None
    fail_on: str = "medium"  # a aivet.evidence.Severity value
    strict: bool = False
    limit: tuple[str, ...] = ()
    no_progress: bool = False
    quiet: bool = False
    record: bool | None = None
    ledger: str | None = None
    suppressions: str | None = None  # a suppression file (TOML), see docs/suppressions.md


def run_scan(request: ScanRequest) -> int:
    """Scan, write the report, record it if asked; return the exit code (0 clean, 1 findings)."""
    from aivet import report
    from aivet.cli.progress import ScanProgress, progress_wanted
    from aivet.evidence import Severity

    targets = list(request.paths)
    if request.example and targets:
        raise UsageError("give either PATHs or --example, not both")
    if not request.example and not targets:
        raise UsageError("nothing to scan: give at least one PATH (or --example to scan the built-in demo)")
    limits = parse_limits(request.limit)
    accepted = None
    if request.suppressions is not None:
        from aivet import suppressions

        accepted = suppressions.load(request.suppressions)
    if request.example:
        import tempfile

        from aivet.examples import build_example

        dest = build_example(Path(tempfile.mkdtemp(prefix="aivet-example-")))
        if not request.quiet:
            err(f"Built the example model repository in {dest} (it is left there for you to look at).")
        targets = [str(dest)]

    from aivet.analyzers import scan as scan_paths

    with ScanProgress(progress_wanted(quiet=request.quiet, no_progress=request.no_progress)) as bar:
        evidence = scan_paths(*targets, limits=limits, strict=request.strict, progress=bar.advance,
                              on_start=bar.on_start, suppressions=accepted)

    _record(evidence, request)
    fmt = report.ReportFormat(request.format)
    threshold = Severity(request.fail_on)
    output = request.output
    to_tty = output is None and isatty(sys.stdout)
    options = report.ReportOptions(
        fail_on=threshold,
        color=to_tty and "NO_COLOR" not in os.environ,
        width=_terminal_width() if to_tty else 100,
        quiet=request.quiet,
    )
    text = report.render(evidence, fmt, options)
    if accepted is not None and not request.quiet and (fmt is not report.ReportFormat.TERMINAL or output is not None):
        from aivet.suppressions import warnings

        for line in warnings(evidence):  # the terminal report shows them itself
            err(f"warning: {report.printable(line)}")
    if output is None:
        write_stdout(text)
    else:
        try:
            output.write_text(text, encoding="utf-8")
        except OSError as exc:
            from aivet.errors import EnvironmentFailure

            raise EnvironmentFailure(f"cannot write the report to {output}: {exc.strerror or exc}") from exc
        if not request.quiet:
            err(f"Wrote the {fmt.value} report to {output}.")
            if fmt is not report.ReportFormat.TERMINAL:
                err(report.printable(report.verdict(evidence, threshold)))
    return report.exit_code(evidence, threshold)


def _terminal_width() -> int:
    import shutil

    return shutil.get_terminal_size((100, 24)).columns


def _record(evidence: Evidence, request: ScanRequest) -> None:
    from aivet import recording

    if not recording.wanted(request.record):
        return
    for entry in recording.record_scan(evidence, ledger=request.ledger):
        if not request.quiet:
            err(f"Recorded as entry {entry.index} in {entry.ledger}"
                + (f" (model {entry.model_digest[:19]}…)" if entry.model_digest else ""))


def parse_limits(items: tuple[str, ...] | list[str], base: Limits = DEFAULT_LIMITS) -> Limits:
    """Apply ``NAME=VALUE`` overrides to ``base`` (sizes accept K/M/G/KiB/MiB/GiB suffixes)."""
    from dataclasses import fields, replace

    known = {f.name for f in fields(base)}
    changes: dict[str, Any] = {}
    for item in items:
        name, sep, raw = item.partition("=")
        name = name.strip().lower().replace("-", "_")
        if not sep or not raw.strip():
            raise UsageError(f"--limit {item!r}: expected NAME=VALUE, e.g. max_member_bytes=8GiB")
        if name not in known:
            raise UsageError(f"--limit {item!r}: unknown limit {name!r}; known limits: {', '.join(sorted(known))}")
        current = getattr(base, name)
        try:
            value: float = float(_number(raw)) if isinstance(current, float) else int(_number(raw))
        except ValueError:
            raise UsageError(f"--limit {item!r}: {raw!r} is not a number") from None
        if value <= 0:
            raise UsageError(f"--limit {item!r}: must be greater than zero")
        changes[name] = value
    return replace(base, **changes) if changes else base


_SUFFIXES = {"k": 1000, "m": 1000**2, "g": 1000**3, "t": 1000**4,
             "kib": 1024, "mib": 1024**2, "gib": 1024**3, "tib": 1024**4, "kb": 1000, "mb": 1000**2, "gb": 1000**3}


def _number(raw: str) -> float:
    text = raw.strip().lower().replace("_", "")
    for suffix in sorted(_SUFFIXES, key=len, reverse=True):
        if text.endswith(suffix) and text[: -len(suffix)]:
            return float(text[: -len(suffix)]) * _SUFFIXES[suffix]
    number = float(text)
    if number != number or number in (float("inf"), float("-inf")):
        raise ValueError(raw)
    return number
