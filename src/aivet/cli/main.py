"""The root ``aivet`` command: argument handling, the error edge, exit codes.

Exit codes: 0 clean (nothing at or over ``--fail-on``), 1 findings at or over
the threshold, 2 a usage or runtime error of the tool itself. The one place
that catches errors is :class:`EdgeGroup` — an :class:`~aivet.errors.AivetError`
prints its ``diagnostics()``, anything else a short bug notice (a traceback
only with ``--debug`` or ``AIVET_DEBUG=1``). Heavy modules (reports, analyzers,
rich.progress, huggingface_hub) are imported inside the commands.
"""

from __future__ import annotations

import enum
import importlib
import os
import shutil
import sys
import tempfile
from dataclasses import fields, replace
from pathlib import Path
from typing import Annotated, Any

import typer
import typer.main
from typer.core import TyperGroup

from aivet import __version__
from aivet.errors import AivetError
from aivet.errors import UsageError as AivetUsageError
from aivet.evidence import Severity
from aivet.limits import DEFAULT_LIMITS, Limits
from aivet.report import ReportFormat

BUG_URL = "https://github.com/aivet/aivet/issues"

# Commands mounted as ``aivet NAME``: name -> (module, attribute). The attribute is a typer.Typer
# (a group of sub-commands, e.g. ``aivet ledger ...``) or a plain command function (``aivet sign``).
# Imported only when the command is used (or --help lists it). One line per command.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "bom": ("aivet.cli.bom", "bom"),
    "gate": ("aivet.cli.gate", "gate"),
    "ledger": ("aivet.cli.ledger", "app"),
    "lineage": ("aivet.cli.lineage", "app"),
    "sign": ("aivet.cli.sign", "sign"),
    "verify": ("aivet.cli.sign", "verify"),
}


def _debug_enabled(ctx: Any) -> bool:
    if os.environ.get("AIVET_DEBUG", "").strip().lower() in ("1", "true", "yes", "on"):
        return True
    return bool(ctx is not None and getattr(ctx, "params", {}).get("debug"))


def _err(message: str) -> None:
    typer.echo(message, err=True)


# typer's own control flow (exit codes, usage errors, --help) passes through the edge untouched.
_PASS_THROUGH: tuple[type[BaseException], ...] = (
    typer.Exit,
    typer.Abort,
    *(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException"),
)


class EdgeGroup(TyperGroup):
    """The root group: lazy sub-apps, and the single place where errors become exit code 2."""

    def list_commands(self, ctx: Any) -> list[str]:
        names = list(super().list_commands(ctx))
        return names + [n for n in SUBCOMMANDS if n not in names]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name in SUBCOMMANDS:
            module, attr = SUBCOMMANDS[cmd_name]
            target = getattr(importlib.import_module(module), attr)
            if not isinstance(target, typer.Typer):  # a plain function: a single command
                holder = typer.Typer(add_completion=False)
                holder.command(name=cmd_name)(target)
                target = holder
            command = typer.main.get_command(target)
            command.name = cmd_name
            return command
        return super().get_command(ctx, cmd_name)

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except _PASS_THROUGH:
            raise
        except AivetError as exc:
            if _debug_enabled(ctx):
                raise
            _err(f"aivet: error: {exc.diagnostics()}")
            raise typer.Exit(2) from None
        except KeyboardInterrupt:
            _err("aivet: interrupted")
            raise typer.Exit(130) from None
        except Exception as exc:  # noqa: BLE001 - the edge: a bug must still end in exit code 2
            if _debug_enabled(ctx):
                raise
            _err(f"aivet: internal error: {type(exc).__name__}: {exc}\n"
                 f"This is a bug in aivet. Please report it at {BUG_URL} with the command you ran "
                 "and the output of the same command with --debug (or AIVET_DEBUG=1).")
            raise typer.Exit(2) from None


app = typer.Typer(
    cls=EdgeGroup,
    name="aivet",
    help="Vet open-weight AI models: scan model repositories for malicious payloads without executing them.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"aivet {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit.",
                                          callback=_version_callback, is_eager=True)] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks for internal errors.",
                                        envvar="AIVET_DEBUG")] = False,
) -> None:
    """aivet: inspect model repositories (local, Hugging Face cache, hf://) without running them."""


class FailOn(str, enum.Enum):
    info = "info"
    low = "low"
    medium = "medium"
    high = "high"
    critical = "critical"


@app.command()
def scan(
    paths: Annotated[list[str] | None, typer.Argument(
        help="Model directories, files, Hugging Face cache directories or hf://ORG/NAME[@REVISION].",
        show_default=False)] = None,
    example: Annotated[bool, typer.Option("--example", help="Build the built-in example repository and scan it.")]
    = False,
    fmt: Annotated[ReportFormat, typer.Option("--format", "-f", help="Report format.", case_sensitive=False)]
    = ReportFormat.TERMINAL,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write the report to FILE instead of stdout.",
                                                metavar="FILE", dir_okay=False)] = None,
    fail_on: Annotated[FailOn, typer.Option("--fail-on", help="Exit 1 when a finding is at or above this severity.",
                                            case_sensitive=False)] = FailOn.medium,
    strict: Annotated[bool, typer.Option("--strict", help="Default-deny: unknown formats and unlisted globals are "
                                                          "high.")] = False,
    limit: Annotated[list[str] | None, typer.Option("--limit", metavar="NAME=VALUE",
                                                    help="Override a safety limit, e.g. max_member_bytes=8GiB "
                                                         "(repeatable; see docs/cli.md).")] = None,
    no_progress: Annotated[bool, typer.Option("--no-progress", help="Never show a progress bar.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Terminal report: the verdict line only; no "
                                                              "progress, no notes.")] = False,
    record: Annotated[bool | None, typer.Option("--record/--no-record", help="Append the evidence to the ledger "
                                                "(default: the settings file, see docs/ledger.md).",
                                                show_default=False)] = None,
    ledger: Annotated[str | None, typer.Option("--ledger", metavar="PATH_OR_URL",
                                               help="Ledger to record in (SQLite path or postgresql:// URL).")]
    = None,
) -> None:
    """Scan model repositories for malicious or unsafe content; nothing is loaded or executed."""
    from aivet import report
    from aivet.cli.progress import ScanProgress, progress_wanted

    targets = list(paths or [])
    if example and targets:
        raise AivetUsageError("give either PATHs or --example, not both")
    if not example and not targets:
        raise AivetUsageError("nothing to scan: give at least one PATH (or --example to scan the built-in demo)")
    limits = parse_limits(limit or [])
    if example:
        from aivet.examples import build_example

        dest = build_example(Path(tempfile.mkdtemp(prefix="aivet-example-")))
        if not quiet:
            _err(f"Built the example model repository in {dest} (it is left there for you to look at).")
        targets = [str(dest)]

    from aivet.analyzers import scan as scan_paths

    with ScanProgress(progress_wanted(quiet=quiet, no_progress=no_progress)) as bar:
        evidence = scan_paths(*targets, limits=limits, strict=strict, progress=bar.advance, on_start=bar.on_start)

    _record_scan(evidence, record, ledger, quiet)
    threshold = Severity(fail_on.value)
    to_tty = output is None and _isatty(sys.stdout)
    options = report.ReportOptions(
        fail_on=threshold,
        color=to_tty and "NO_COLOR" not in os.environ,
        width=shutil.get_terminal_size((100, 24)).columns if to_tty else 100,
        quiet=quiet,
    )
    text = report.render(evidence, fmt, options)
    if output is None:
        _write_stdout(text)
    else:
        try:
            output.write_text(text, encoding="utf-8")
        except OSError as exc:
            from aivet.errors import EnvironmentFailure

            raise EnvironmentFailure(f"cannot write the report to {output}: {exc.strerror or exc}") from exc
        if not quiet:
            _err(f"Wrote the {fmt.value} report to {output}.")
            if fmt is not ReportFormat.TERMINAL:
                _err(report.printable(report.verdict(evidence, threshold)))
    raise typer.Exit(report.exit_code(evidence, threshold))


def _record_scan(evidence: Any, option: bool | None, ledger: str | None, quiet: bool) -> None:
    from aivet import recording

    if not recording.wanted(option):
        return
    for entry in recording.record_scan(evidence, ledger=ledger):
        if not quiet:
            _err(f"Recorded as entry {entry.index} in {entry.ledger}"
                 + (f" (model {entry.model_digest[:19]}…)" if entry.model_digest else ""))


class RulesFormat(str, enum.Enum):
    table = "table"
    json = "json"
    markdown = "markdown"


@app.command("rules")
def rules_command(
    fmt: Annotated[RulesFormat, typer.Option("--format", "-f", help="Output format.", case_sensitive=False)]
    = RulesFormat.table,
) -> None:
    """List every rule aivet can raise: id, severity, title, MITRE ATLAS and CWE."""
    from aivet.cli import rules_view

    _write_stdout(rules_view.render(fmt.value, color=_isatty(sys.stdout)))


def parse_limits(items: list[str], base: Limits = DEFAULT_LIMITS) -> Limits:
    """Apply ``NAME=VALUE`` overrides to ``base`` (sizes accept K/M/G/KiB/MiB/GiB suffixes)."""
    known = {f.name for f in fields(Limits)}
    changes: dict[str, Any] = {}
    for item in items:
        name, sep, raw = item.partition("=")
        name = name.strip().lower().replace("-", "_")
        if not sep or not raw.strip():
            raise AivetUsageError(f"--limit {item!r}: expected NAME=VALUE, e.g. max_member_bytes=8GiB")
        if name not in known:
            raise AivetUsageError(f"--limit {item!r}: unknown limit {name!r}; known limits: {', '.join(sorted(known))}")
        current = getattr(base, name)
        try:
            value: float = float(_number(raw)) if isinstance(current, float) else int(_number(raw))
        except ValueError:
            raise AivetUsageError(f"--limit {item!r}: {raw!r} is not a number") from None
        if value <= 0:
            raise AivetUsageError(f"--limit {item!r}: must be greater than zero")
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


def _isatty(stream: Any) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def _write_stdout(text: str) -> None:
    # A report must never die on a terminal that cannot show "—" or a non-ASCII file name.
    try:
        sys.stdout.write(text)
    except UnicodeEncodeError:
        encoding = getattr(sys.stdout, "encoding", None) or "ascii"
        sys.stdout.write(text.encode(encoding, "backslashreplace").decode(encoding))
    sys.stdout.flush()


def run() -> None:
    """Console-script entry point (``aivet``)."""
    if sys.argv[1:] == ["--version"]:  # answer without importing typer, click or rich
        sys.stdout.write(f"aivet {__version__}\n")
        return
    app(prog_name="aivet")


if __name__ == "__main__":
    run()
