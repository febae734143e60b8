"""JSON report: the Evidence document itself, plus the gate that was applied.

The body is exactly :meth:`Evidence.to_dict` (so ``Evidence.from_json`` reads
a report back); the report adds one top-level key, ``gate``, recording the
threshold and the exit code the CLI derived from it. The schema is
``docs/evidence.schema.json``, described in ``docs/evidence-schema.md``.
"""

from __future__ import annotations

import json
from typing import Any

from aivet.evidence import Evidence
from aivet.report import ReportOptions, exit_code, failing, utf8_safe


def to_dict(evidence: Evidence, options: ReportOptions) -> dict[str, Any]:
    """The report as a JSON-ready dict (Evidence fields plus ``gate``)."""
    data = evidence.to_dict()
    data["gate"] = {
        "fail_on": options.fail_on.value,
        "failing_findings": len(failing(evidence, options.fail_on)),
        "exit_code": exit_code(evidence, options.fail_on),
    }
    clean: dict[str, Any] = _clean(data)
    return clean


def render(evidence: Evidence, options: ReportOptions) -> str:
    """Render the JSON report (UTF-8 safe: undecodable file names appear as ``\\xNN``)."""
    return json.dumps(to_dict(evidence, options), indent=2, ensure_ascii=False) + "\n"


def _clean(value: Any) -> Any:
    # Lone surrogates (from file names that are not UTF-8) cannot be written as UTF-8 JSON.
    if isinstance(value, str):
        return utf8_safe(value)
    if isinstance(value, dict):
        return {_clean(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value
