"""The scan context: limits, where findings go, and recursion into nested content."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from aivet.analyzers.source import Source
from aivet.evidence import Artifact, ArtifactStatus, Finding, Location
from aivet.limits import DEFAULT_LIMITS, Limits


@dataclass
class ScanOptions:
    limits: Limits = DEFAULT_LIMITS
    strict: bool = False  # default-deny: unknown formats and unlisted globals are HIGH


@dataclass
class Context:
    """Collects findings and artifacts for one subject (model) while it is scanned.

    Analyzers call :meth:`add` for findings and :meth:`analyze` to scan a
    nested source (an archive member, an embedded pickle); the engine does
    the sniffing, the dispatch and the error handling.
    """

    subject: str
    options: ScanOptions = field(default_factory=ScanOptions)
    root: Path | None = None  # repository root on disk, for checks of paths that escape it
    findings: list[Finding] = field(default_factory=list)
    artifacts: list[Artifact] = field(default_factory=list)
    on_bytes: Callable[[int], None] | None = None  # progress callback
    repo_files: frozenset[str] = frozenset()  # repository-relative paths, for cross-file checks

    @property
    def limits(self) -> Limits:
        return self.options.limits

    @property
    def strict(self) -> bool:
        return self.options.strict

    def add(self, finding: Finding) -> None:
        if finding.subject != self.subject:
            finding = Finding(
                finding.rule_id, finding.severity, finding.message, finding.location, self.subject, finding.details
            )
        self.findings.append(finding)

    def location(self, source: Source, *, offset: int | None = None, line: int | None = None,
                 pointer: str | None = None) -> Location:
        return Location(source.path, offset=offset, line=line, pointer=pointer)

    def record(self, source: Source, fmt: str, status: ArtifactStatus, note: str = "") -> None:
        self.artifacts.append(Artifact(source.path, fmt, source.size, status, self.subject, note))

    def analyze(self, source: Source, *, hint: str | None = None) -> ArtifactStatus:
        """Sniff and analyse ``source`` (a file or nested member). Never raises for bad input."""
        from aivet.analyzers.engine import analyze_source

        return analyze_source(source, self, hint=hint)

    def deadline(self) -> float:
        return time.monotonic() + self.limits.max_seconds_per_file
