"""Reports: render an :class:`~aivet.evidence.Evidence` document for people and machines.

Formats come from an explicit registry (:data:`RENDERERS`), one module per
format, imported on first use so that ``aivet --version`` stays quick. Every
renderer has the signature ``render(evidence, options) -> str`` and reads only
the Evidence (and the rule catalogue for titles); none of them knows how the
scan was done.
"""

from __future__ import annotations

import enum
import importlib
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from aivet.evidence import ArtifactStatus, Evidence, Finding, Severity

__all__ = [
    "ReportFormat",
    "ReportOptions",
    "RENDERERS",
    "render",
    "exit_code",
    "failing",
    "verdict",
    "printable",
    "utf8_safe",
    "not_fully_analysed",
]


class ReportFormat(str, enum.Enum):
    """The report formats ``aivet scan --format`` accepts."""

    TERMINAL = "terminal"
    JSON = "json"
    SARIF = "sarif"


# ReportFormat -> (module, function). A test checks the mapping is exhaustive.
RENDERERS: dict[ReportFormat, tuple[str, str]] = {
    ReportFormat.TERMINAL: ("aivet.report.terminal", "render"),
    ReportFormat.JSON: ("aivet.report.json", "render"),
    ReportFormat.SARIF: ("aivet.report.sarif", "render"),
}

DEFAULT_FAIL_ON = Severity.MEDIUM


@dataclass(frozen=True)
class ReportOptions:
    """How to render: the gate threshold and, for the terminal, colour, width and verbosity.

    ``base`` is the directory SARIF paths are made relative to (the root of
    the repository that code scanning will show the results against); it
    defaults to the working directory at render time.
    """

    fail_on: Severity = DEFAULT_FAIL_ON
    color: bool = False
    width: int = 100
    quiet: bool = False  # terminal: the verdict line only
    base: Path | None = None
    extra: dict[str, str] = field(default_factory=dict)  # free-form notes for the terminal footer


Renderer = Callable[[Evidence, ReportOptions], str]


def _renderer(fmt: ReportFormat) -> Renderer:
    module, name = RENDERERS[fmt]
    fn: Renderer = getattr(importlib.import_module(module), name)
    return fn


def render(evidence: Evidence, fmt: ReportFormat | str, options: ReportOptions | None = None) -> str:
    """Render ``evidence`` in format ``fmt`` (a :class:`ReportFormat` or its name)."""
    return _renderer(ReportFormat(fmt))(evidence, options or ReportOptions())


def failing(evidence: Evidence, fail_on: Severity) -> tuple[Finding, ...]:
    """The findings that make the gate fail: those at or above ``fail_on``."""
    return evidence.at_or_above(fail_on)


def exit_code(evidence: Evidence, fail_on: Severity) -> int:
    """0 when nothing is at or above ``fail_on``, 1 otherwise (2 is for errors of the tool)."""
    return 1 if failing(evidence, fail_on) else 0


def not_fully_analysed(evidence: Evidence) -> tuple[int, ...]:
    """Indexes of artifacts the scanner could not analyse completely."""
    return tuple(i for i, a in enumerate(evidence.artifacts) if a.status is not ArtifactStatus.ANALYZED)


def _outer(path: str) -> str:
    return path.split("!", 1)[0]


def verdict(evidence: Evidence, fail_on: Severity) -> str:
    """One line that answers "is it safe to load?", e.g.

    ``2 critical, 1 high findings in 3 of 12 files — not safe to load``.
    """
    total = len({(a.subject, _outer(a.path)) for a in evidence.artifacts})
    bad = failing(evidence, fail_on)
    if bad:
        counts = _counts(bad)
        parts = ", ".join(f"{n} {sev.value}" for sev, n in counts)
        noun = "finding" if len(bad) == 1 else "findings"
        hit = len({(f.subject, _outer(f.location.path)) for f in bad})
        return f"{parts} {noun} in {hit} of {total} files{_suppressed(evidence)} — not safe to load"
    below = len(evidence.findings)
    text = f"no findings at or above {fail_on.value} in {total} files"
    if below:
        text += f" ({below} below the threshold)"
    text += _suppressed(evidence)
    incomplete = len(not_fully_analysed(evidence))
    if incomplete:
        text += f"; {incomplete} not fully analysed — review them before loading"
    return text


def _suppressed(evidence: Evidence) -> str:
    n = len(evidence.suppressed)
    return f"; {n} suppressed" if n else ""


def _counts(findings: Iterable[Finding]) -> list[tuple[Severity, int]]:
    counts: dict[Severity, int] = {}
    for f in findings:
        counts[f.severity] = counts.get(f.severity, 0) + 1
    return sorted(counts.items(), key=lambda kv: kv[0], reverse=True)


_CONTROL = {c: f"\\x{c:02x}" for c in [*range(0x00, 0x20), 0x7F, *range(0x80, 0xA0)] if c not in (0x09,)}
_CONTROL[0x09] = "\\t"


def printable(text: str) -> str:
    """Make untrusted text safe to print: no terminal control sequences, no lone surrogates.

    File names, messages and pickle arguments come from hostile files; an
    ANSI escape in a file name must not be able to rewrite the verdict line.
    """
    if text.isprintable() and text.isascii():
        return text
    return utf8_safe(text).translate(_CONTROL)


def utf8_safe(text: str) -> str:
    """``text`` without lone surrogates: bytes of non-UTF-8 file names become ``\\xNN``."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        pass
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a surrogate that no file name decoding produces
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


def relative_base(options: ReportOptions) -> Path:
    """The directory SARIF and terminal paths are made relative to."""
    return options.base if options.base is not None else Path(os.getcwd())
