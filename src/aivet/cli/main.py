"""The root ``aivet`` command: argument handling, the error edge, exit codes.

Exit codes: 0 clean (nothing at or over ``--fail-on``), 1 findings at or over
the threshold, 2 a usage or runtime error of the tool itself. The one place
that catches errors is :class:`EdgeGroup`, which hands them to
:func:`aivet.cli.edge.handle`. Heavy modules (reports, analyzers,
rich.progress, huggingface_hub) are imported inside the commands; what
``aivet scan`` does lives in :mod:`aivet.cli.scan_command`, shared with the
quick path of :mod:`aivet.cli.quick`.
"""

from __future__ import annotations

import enum
import importlib
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
import typer.main
from typer.core import TyperGroup

from aivet import __version__
from aivet.cli.edge import debug_from_env, handle, isatty, write_stdout
from aivet.cli.scan_command import parse_limits
from aivet.report import ReportFormat

__all__ = ["app", "parse_limits", "run", "SUBCOMMANDS"]

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
    return debug_from_env() or bool(ctx is not None and getattr(ctx, "params", {}).get("debug"))


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
        except (Exception, KeyboardInterrupt) as exc:  # noqa: BLE001 - the edge: every failure gets an exit code
            raise typer.Exit(handle(exc, debug=_debug_enabled(ctx))) from None


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
    suppressions: Annotated[str | None, typer.Option(
        "--suppressions", metavar="FILE", help="Accept the reviewed findings listed in FILE (TOML; see "
                                               "docs/suppressions.md). Never read from the scanned model.")] = None,
) -> None:
    """Scan model repositories for malicious or unsafe content; nothing is loaded or executed."""
    from aivet.cli.scan_command import ScanRequest, run_scan

    request = ScanRequest(paths=tuple(paths or ()), example=example, format=fmt.value, output=output,
                          fail_on=fail_on.value, strict=strict, limit=tuple(limit or ()), no_progress=no_progress,
                          quiet=quiet, record=record, ledger=ledger, suppressions=suppressions)
    raise typer.Exit(run_scan(request))


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

    write_stdout(rules_view.render(fmt.value, color=isatty(sys.stdout)))


def run() -> None:
    """Console-script entry point (``aivet``)."""
    if sys.argv[1:] == ["--version"]:  # answer without importing typer, click or rich
        sys.stdout.write(f"aivet {__version__}\n")
        return
    app(prog_name="aivet")


if __name__ == "__main__":
    run()
