"""SARIF 2.1.0 report, shaped for GitHub code scanning.

One run; ``tool.driver.rules`` holds the catalogue entries of the rules the
results use (with ``security-severity`` so GitHub ranks them); each result
points at the outermost file on disk, relative to the report's base directory.
Archive members and hub revisions are not files GitHub can show, so they go in
the message and in ``logicalLocations``. Byte offsets are given only for
findings in a file itself, never for offsets inside a compressed member.
See ``docs/sarif.md``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import quote

from aivet import __version__, rules
from aivet.evidence import Evidence, Finding, Severity, Subject
from aivet.report import ReportOptions, relative_base, utf8_safe

SCHEMA_URI = "https://json.schemastore.org/sarif-2.1.0.json"
INFORMATION_URI = "https://github.com/aivet/aivet"
RULES_DOC_URI = "https://github.com/aivet/aivet/blob/main/docs/rules.md"
MAX_RESULTS = 25_000  # GitHub code scanning rejects runs with more results than this

SECURITY_SEVERITY = {
    Severity.CRITICAL: "9.5",
    Severity.HIGH: "8.0",
    Severity.MEDIUM: "5.5",
    Severity.LOW: "3.0",
    Severity.INFO: "0.0",
}
LEVEL = {
    Severity.CRITICAL: "error",
    Severity.HIGH: "error",
    Severity.MEDIUM: "warning",
    Severity.LOW: "note",
    Severity.INFO: "note",
}
FINGERPRINT_KEY = "aivetFinding/v1"


def render(evidence: Evidence, options: ReportOptions) -> str:
    """Render the SARIF 2.1.0 log as JSON text."""
    return json.dumps(to_sarif(evidence, options), indent=2, ensure_ascii=False) + "\n"


def to_sarif(evidence: Evidence, options: ReportOptions) -> dict[str, Any]:
    """The SARIF log as a JSON-ready dict."""
    base = relative_base(options)
    subjects = {s.id: s for s in evidence.subjects}
    catalogue = rules.catalogue()
    order = {rule_id: i for i, rule_id in enumerate(catalogue)}
    accepted = [s.finding for s in evidence.suppressed]
    used = sorted({f.rule_id for f in (*evidence.findings, *accepted)}, key=lambda r: (order.get(r, len(order)), r))
    index = {rule_id: i for i, rule_id in enumerate(used)}
    findings = sorted(evidence.findings, key=lambda f: f.severity, reverse=True)
    results = [_result(f, index[f.rule_id], subjects.get(f.subject), base) for f in findings[:MAX_RESULTS]]
    # Accepted findings stay in the log, marked as suppressed (SARIF 3.35), after the active ones.
    for s in evidence.suppressed[:max(0, MAX_RESULTS - len(results))]:
        result = _result(s.finding, index[s.finding.rule_id], subjects.get(s.finding.subject), base)
        result["suppressions"] = [{"kind": "external", "status": "accepted", "justification": s.reason,
                                   "properties": {"entry": s.entry}}]
        results.append(result)
    dropped = len(findings) + len(evidence.suppressed) - len(results)
    run: dict[str, Any] = {
        "tool": {
            "driver": {
                "name": "aivet",
                "informationUri": INFORMATION_URI,
                "semanticVersion": __version__,
                "version": __version__,
                "rules": [_rule(catalogue.get(r), r) for r in used],
            }
        },
        "results": results,
        "columnKind": "unicodeCodePoints",
        "invocations": [_invocation(evidence, dropped)],
        "properties": {"subjects": [s.to_dict() for s in evidence.subjects]},
    }
    return {"$schema": SCHEMA_URI, "version": "2.1.0", "runs": [_strings(run)]}


def rule_name(rule_id: str) -> str:
    """``PICKLE-DANGEROUS-GLOBAL`` -> ``PickleDangerousGlobal`` (SARIF's ``name`` is an identifier)."""
    return "".join(part.capitalize() for part in re.split(r"[^A-Za-z0-9]+", rule_id) if part)


def _rule(rule: rules.Rule | None, rule_id: str) -> dict[str, Any]:
    if rule is None:  # a finding from a rule outside the catalogue (a plug-in): describe it minimally
        rule = rules.Rule(rule_id, rule_id, "No description in the aivet rule catalogue.", Severity.MEDIUM)
    tags = ["security", *rule.atlas, *rule.cwe]
    return {
        "id": rule.id,
        "name": rule_name(rule.id),
        "shortDescription": {"text": rule.title},
        "fullDescription": {"text": rule.description},
        "help": {
            "text": f"{rule.title}. {rule.description}",
            "markdown": f"**{rule.title}**\n\n{rule.description}\n\n"
            + (f"MITRE ATLAS: {', '.join(rule.atlas)}. " if rule.atlas else "")
            + (f"CWE: {', '.join(rule.cwe)}." if rule.cwe else ""),
        },
        "helpUri": f"{RULES_DOC_URI}#{rule.id.lower()}",
        "defaultConfiguration": {"level": LEVEL[rule.severity]},
        "properties": {
            "tags": tags,
            "security-severity": SECURITY_SEVERITY[rule.severity],
            "precision": "high",
            "problem.severity": _problem_severity(rule.severity),
        },
    }


def _problem_severity(severity: Severity) -> str:
    return {"error": "error", "warning": "warning", "note": "recommendation"}[LEVEL[severity]]


def _result(finding: Finding, rule_index: int, subject: Subject | None, base: Path) -> dict[str, Any]:
    loc = finding.location
    outer, _, member = loc.path.partition("!")
    where = []
    if member:
        where.append(f"in archive member {member}")
    if subject is not None and subject.repo_id:
        where.append(f"in {subject.repo_id}@{subject.revision}")
    text = finding.message + (f" ({'; '.join(where)})" if where else "")
    physical: dict[str, Any] = {"artifactLocation": {"uri": _uri(outer, subject, base)}}
    # GitHub requires region.startLine on every result (the SARIF SDK's GH1003 check); a finding in a
    # binary file points at line 1, i.e. the file, and keeps its exact position in byteOffset.
    region: dict[str, Any] = {"startLine": loc.line if loc.line is not None and loc.line >= 1 else 1}
    if loc.offset is not None and loc.offset >= 0 and not member:
        region["byteOffset"] = loc.offset
    physical["region"] = region
    location: dict[str, Any] = {"physicalLocation": physical}
    logical = []
    if member:
        logical.append({"fullyQualifiedName": loc.path, "name": member, "kind": "member"})
    if loc.pointer:
        logical.append({"fullyQualifiedName": f"{loc.path}#{loc.pointer}", "name": loc.pointer, "kind": "property"})
    if logical:
        location["logicalLocations"] = logical
    properties: dict[str, Any] = {"severity": finding.severity.value, "subject": finding.subject, "path": loc.path}
    if loc.offset is not None and member:
        properties["memberOffset"] = loc.offset
    if finding.details:
        properties["details"] = json.loads(json.dumps(dict(finding.details), default=str))
    return {
        "ruleId": finding.rule_id,
        "ruleIndex": rule_index,
        "level": LEVEL[finding.severity],
        "message": {"text": text},
        "locations": [location],
        "partialFingerprints": {FINGERPRINT_KEY: fingerprint(finding, subject)},
        "properties": properties,
    }


def fingerprint(finding: Finding, subject: Subject | None = None) -> str:
    """A stable hash of what the finding is, not of the words used to report it.

    Rule id, the full path (with archive members), the pointer, the details
    and the hub repo id: the same problem in the same file keeps its alert
    across runs and across revisions; offsets and messages may change freely.
    """
    details = {k: v for k, v in dict(finding.details).items() if "offset" not in k}
    key = {
        "rule": finding.rule_id,
        "path": finding.location.path,
        "pointer": finding.location.pointer,
        "repo": subject.repo_id if subject is not None else None,
        "details": details,
    }
    blob = json.dumps(key, sort_keys=True, ensure_ascii=True, default=str)
    return hashlib.sha256(utf8_safe(blob).encode("utf-8")).hexdigest()


def _uri(path: str, subject: Subject | None, base: Path) -> str:
    """A relative URI (POSIX, percent-encoded) for a repository path, from the report base."""
    rel = PurePosixPath(path)
    if subject is not None and subject.kind in ("directory", "file"):
        root = Path(subject.location)
        on_disk = root.parent / rel if subject.kind == "file" else root / rel
        try:
            rel = PurePosixPath(Path(os.path.relpath(on_disk.absolute(), base.absolute())).as_posix())
        except ValueError:  # another drive on Windows
            pass
        if rel.parts and rel.parts[0] == "..":
            rel = PurePosixPath(path)
    text = utf8_safe(str(rel)).lstrip("/")
    return quote(text, safe="/-._~!$&'()*+,;=:@")


def _invocation(evidence: Evidence, dropped: int) -> dict[str, Any]:
    notes = []
    for artifact in evidence.artifacts:
        if artifact.status.value == "analyzed":
            continue
        notes.append({
            "level": "warning" if artifact.status.value in ("error", "partial") else "note",
            "message": {"text": f"{artifact.path}: {artifact.status.value}"
                                + (f" ({artifact.note})" if artifact.note else "")},
            "descriptor": {"id": f"artifact-{artifact.status.value}"},
        })
    if any(r.kind == "suppressions" for r in evidence.records):
        from aivet.suppressions import warnings

        notes.extend({"level": "warning", "message": {"text": line}, "descriptor": {"id": "suppression-entry"}}
                     for line in warnings(evidence))
    if dropped:
        notes.append({"level": "warning", "message": {"text": f"{dropped} findings left out (GitHub's limit)"},
                      "descriptor": {"id": "results-truncated"}})
    invocation: dict[str, Any] = {"executionSuccessful": True}
    if notes:
        invocation["toolExecutionNotifications"] = notes[:1000]
    return invocation


def _strings(value: Any) -> Any:
    if isinstance(value, str):
        return utf8_safe(value)
    if isinstance(value, dict):
        return {k: _strings(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_strings(v) for v in value]
    return value
