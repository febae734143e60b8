"""Terminal report: the verdict first, then findings by subject and file, then gaps.

Order matters to a reader deciding whether to load a model: the verdict line;
the findings grouped by model (hub repo id and revision) and file, most severe
first; then every file that was *not* fully analysed, so that nothing reads
as "no issues" silently; then the formats seen. Everything taken from a model
file passes through :func:`aivet.report.printable` so that hostile names
cannot drive the terminal.

The report is built as :class:`Line` objects (text spans with a rich style
each). With colour, rich prints them and wraps at the terminal width; without
(a pipe, a file, CI logs) they are joined as plain text, which is what rich
prints there too, and rich is not even imported: that is most of a small scan's
start-up.
"""

from __future__ import annotations

import io
import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator

from aivet.evidence import Artifact, Evidence, Finding, Severity, Subject
from aivet.report import ReportOptions, exit_code, failing, not_fully_analysed, printable, verdict

STYLE = {
    Severity.CRITICAL: "bold white on red",
    Severity.HIGH: "bold red",
    Severity.MEDIUM: "bold yellow",
    Severity.LOW: "cyan",
    Severity.INFO: "dim",
}
MAX_DETAILS = 3
MAX_VALUE = 120
MAX_FINDINGS_PER_FILE = 50  # past that, a count: a hostile file can raise thousands
MAX_SUPPRESSED_SHOWN = 20


class Line:
    """One line of the report: text spans, each with a rich style ("" for none)."""

    __slots__ = ("spans",)

    def __init__(self, text: str = "", style: str = "") -> None:
        self.spans: list[tuple[str, str]] = [(text, style)] if text else []

    def append(self, text: str, style: str = "") -> None:
        self.spans.append((text, style))

    @property
    def plain(self) -> str:
        return "".join(text for text, _ in self.spans)


def render(evidence: Evidence, options: ReportOptions) -> str:
    """Render the terminal report; ANSI colours (and wrapping at ``options.width``) only when ``options.color``."""
    lines = report_lines(evidence, options)
    if not options.color:
        return "".join(line.plain + "\n" for line in lines)
    from rich.console import Console
    from rich.text import Text

    buf = io.StringIO()
    console = Console(file=buf, force_terminal=True, color_system="standard", width=options.width,
                      highlight=False, emoji=False)
    for line in lines:
        console.print(Text.assemble(*line.spans))
    return buf.getvalue()


def report_lines(evidence: Evidence, options: ReportOptions) -> Iterator[Line]:
    """The report, line by line."""
    bad = failing(evidence, options.fail_on)
    style = "bold red" if bad else ("bold yellow" if not_fully_analysed(evidence) else "bold green")
    yield Line(("✗ " if bad else "✓ ") + verdict(evidence, options.fail_on), style)
    if options.quiet:
        return
    subjects = {s.id: s for s in evidence.subjects}
    by_subject: dict[str, dict[str, list[Finding]]] = defaultdict(lambda: defaultdict(list))
    for f in evidence.findings:
        by_subject[f.subject][f.location.path.split("!", 1)[0]].append(f)
    sizes = {(a.subject, a.path): a for a in evidence.artifacts}
    order = [s.id for s in evidence.subjects] + sorted(k for k in by_subject if k not in subjects)
    for subject_id in order:
        files = by_subject.get(subject_id)
        yield Line()
        yield _subject_header(subjects.get(subject_id), subject_id, files)
        if not files:
            continue
        ranked = sorted(files.items(), key=lambda kv: (-max(f.severity.rank for f in kv[1]), kv[0]))
        for path, findings in ranked:
            yield _file_header(path, sizes.get((subject_id, path)))
            findings.sort(key=lambda f: (-f.severity.rank, f.location.path, f.location.offset or 0,
                                         f.location.line or 0))
            for f in findings[:MAX_FINDINGS_PER_FILE]:
                yield from _finding_lines(f, path)
            if len(findings) > MAX_FINDINGS_PER_FILE:
                more = _summary(findings[MAX_FINDINGS_PER_FILE:])
                yield Line(f"      … and {len(findings) - MAX_FINDINGS_PER_FILE} more ({more})", "dim")
    yield from _gaps(evidence)
    yield from _suppressed(evidence)
    yield Line()
    yield Line(_formats_line(evidence.artifacts), "dim")
    code = exit_code(evidence, options.fail_on)
    yield Line(f"Threshold: {options.fail_on.value} (--fail-on); exit code {code}", "dim")


def _subject_header(subject: Subject | None, subject_id: str, files: dict[str, list[Finding]] | None) -> Line:
    text = Line("▌ ", "bold")
    if subject is not None and subject.repo_id:
        text.append(printable(subject.repo_id), "bold")
        text.append(f" @ {printable(subject.revision or '?')}", "bold magenta")
        refs = subject.id.partition(" (")[2].rstrip(")")
        if refs:
            text.append(f" ({printable(refs)})", "magenta")
        text.append(f"  {printable(subject.location)}", "dim")
    else:
        text.append(printable(subject.location if subject is not None else subject_id or "(no subject)"),
                    "bold")
    if files:
        findings = [f for fs in files.values() for f in fs]
        text.append(f"  — {_summary(findings)}")
    else:
        text.append("  — no findings", "green")
    return text


def _file_header(path: str, artifact: Artifact | None) -> Line:
    text = Line("  ")
    text.append(printable(path), "bold underline")
    if artifact is not None:
        text.append(f"  ({artifact.format}, {_size(artifact.size)})", "dim")
    return text


def _finding_lines(f: Finding, outer: str) -> Iterator[Line]:
    head = Line("    ")
    head.append(f" {f.severity.value.upper():<8} ", STYLE[f.severity])
    head.append(f" {f.rule_id} ", "bold")
    head.append(printable(f.message))
    yield head
    where = _where(f, outer)
    if where:
        yield Line(f"               at {where}", "dim")
    # Key details only: what the message already says is not repeated.
    shown = [(k, v) for k, v in f.details.items()
             if v not in (None, False, 0, 1, "", ()) and k not in _BOOKKEEPING and not _said(v, f.message)]
    for key, value in shown[:MAX_DETAILS]:
        yield Line(f"               {printable(key)}: {_value(value)}", "dim")
    if len(shown) > MAX_DETAILS:
        yield Line(f"               … {len(shown) - MAX_DETAILS} more details in --format json", "dim")


# Details that the severity or the message already convey; --format json keeps them.
_BOOKKEEPING = frozenset({"classification", "internal", "format"})


def _said(value: object, message: str) -> bool:
    if isinstance(value, str):
        return bool(value) and value in message
    if isinstance(value, tuple) and value:
        return all(isinstance(v, str) and v in message for v in value)
    return False


def _where(f: Finding, outer: str) -> str:
    loc = f.location
    parts = []
    member = loc.path[len(outer) + 1:] if loc.path != outer else ""
    if member:
        parts.append(f"member {printable(member)}")
    if loc.line is not None:
        parts.append(f"line {loc.line}")
    if loc.offset is not None:
        parts.append(f"offset {loc.offset}")
    if loc.pointer:
        parts.append(f"key {printable(loc.pointer)}")
    return ", ".join(parts)


def _value(value: object) -> str:
    text = value if isinstance(value, str) else json.dumps(_plain(value), ensure_ascii=False, default=str)
    text = printable(text)
    return text if len(text) <= MAX_VALUE else text[: MAX_VALUE - 1] + "…"


def _plain(value: object) -> object:
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if hasattr(value, "items"):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def _summary(findings: Iterable[Finding]) -> str:
    counts = Counter(f.severity for f in findings)
    return ", ".join(f"{counts[s]} {s.value}" for s in sorted(counts, reverse=True))


def _gaps(evidence: Evidence) -> Iterator[Line]:
    gaps = [evidence.artifacts[i] for i in not_fully_analysed(evidence)]
    if not gaps:
        return
    yield Line()
    yield Line(f"Not fully analysed ({len(gaps)}) — these files were not cleared:", "bold yellow")
    many = len(evidence.subjects) > 1
    for a in gaps:
        line = Line("  ")
        if many:
            line.append(f"[{printable(a.subject)}] ", "magenta")
        line.append(f"{a.status.value:<11}", "yellow")
        line.append(printable(a.path))
        line.append(f"  ({a.format})", "dim")
        if a.note:
            line.append(f"  {_value(a.note)}", "dim")
        yield line


def _suppressed(evidence: Evidence) -> Iterator[Line]:
    """Findings a suppression file accepted (one line each, capped), then entries to look at."""
    if not evidence.suppressed and all(r.kind != "suppressions" for r in evidence.records):
        return  # no suppression file: nothing to import
    from aivet.suppressions import warnings

    notes = warnings(evidence)
    if not evidence.suppressed and not notes:
        return
    yield Line()
    if evidence.suppressed:
        yield Line(f"Suppressed ({len(evidence.suppressed)}), not counted for --fail-on:", "bold")
    for s in evidence.suppressed[:MAX_SUPPRESSED_SHOWN]:
        f = s.finding
        yield Line(f"  {f.severity.value:<8} {f.rule_id} {printable(f.location.path)} — {printable(s.reason)} "
                   f"({printable(s.entry)})", "dim")
    if len(evidence.suppressed) > MAX_SUPPRESSED_SHOWN:
        yield Line(f"  … and {len(evidence.suppressed) - MAX_SUPPRESSED_SHOWN} more (see --format json)", "dim")
    for note in notes:
        yield Line(f"  warning: {printable(note)}", "yellow")


def _formats_line(artifacts: Iterable[Artifact]) -> str:
    counts = Counter(a.format for a in artifacts)
    if not counts:
        return "Formats: none (nothing to scan)"
    return "Formats: " + ", ".join(f"{n} {fmt}" for fmt, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def _size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"  # pragma: no cover
