"""Renderings of a policy :class:`~aivet.policy.decision.Decision`: terminal, JSON and SARIF.

* JSON is ``Decision.to_dict()`` under ``"decision"`` plus the Evidence it
  read under ``"evidence"`` — a stable interface (fields are only added).
* SARIF 2.1.0 has one result per reason that denied or raised the tier, with
  the policy rule as the SARIF rule and its framework citations as tags, so a
  CI gate shows *why* a model was refused next to the scan's own results.
* The terminal text puts the verdict and tier first, then reasons with their
  citations, obligations, and a one-line evidence summary.

The HTML report lives in :mod:`aivet.report.decision_html`.
"""

from __future__ import annotations

import io
import json
from typing import Any

from aivet import __version__
from aivet.evidence import Evidence
from aivet.policy.decision import Decision, Reason, Verdict
from aivet.report import printable, utf8_safe

__all__ = ["render_json", "render_sarif", "render_terminal", "to_sarif"]

SCHEMA_URI = "https://json.schemastore.org/sarif-2.1.0.json"
POLICY_DOC_URI = "https://github.com/aivet/aivet/blob/main/docs/policy.md"
_LEVEL = {"deny": "error", "tier": "warning"}
_SECURITY_SEVERITY = {"deny": "9.0", "prohibited": "9.0", "elevated": "6.0", "limited": "3.0", "minimal": "1.0"}


def render_json(decision: Decision, evidence: Evidence) -> str:
    """The decision and its evidence as one JSON document."""
    doc = {"decision": decision.to_dict(), "evidence": evidence.to_dict()}
    return utf8_safe(json.dumps(doc, indent=2, ensure_ascii=False, default=str)) + "\n"


def _sarif_rule(reason: Reason) -> dict[str, Any]:
    return {
        "id": reason.rule,
        "name": reason.rule,
        "shortDescription": {"text": reason.message},
        "helpUri": POLICY_DOC_URI,
        "properties": {"tags": ["policy", *reason.cites], "cites": list(reason.cites)},
    }


def _security_severity(reason: Reason) -> str:
    if reason.effect == "deny":
        return _SECURITY_SEVERITY["deny"]
    return _SECURITY_SEVERITY.get(reason.tier.value if reason.tier else "", "1.0")


def to_sarif(decision: Decision, evidence: Evidence) -> dict[str, Any]:
    """The SARIF log as a JSON-ready dict (one run, one result per deny or tier reason)."""
    shown = [r for r in decision.reasons if r.effect in _LEVEL]
    rule_ids = list(dict.fromkeys(r.rule for r in shown))
    rules = []
    for rid in rule_ids:
        first = next(r for r in shown if r.rule == rid)
        rule = _sarif_rule(first)
        rule["properties"]["security-severity"] = _security_severity(first)
        rules.append(rule)
    results = []
    for reason in shown:
        text = reason.message
        if reason.tier is not None:
            text += f" (tier: {reason.tier.value})"
        if reason.evidence:
            text += " [" + "; ".join(reason.evidence) + "]"
        results.append({
            "ruleId": reason.rule,
            "ruleIndex": rule_ids.index(reason.rule),
            "level": _LEVEL[reason.effect],
            "message": {"text": text},
            "locations": [{"physicalLocation": {"artifactLocation": {"uri": _uri(decision.model)}}}],
            "properties": {"effect": reason.effect, "cites": list(reason.cites),
                           "tier": reason.tier.value if reason.tier else None},
        })
    run: dict[str, Any] = {
        "tool": {"driver": {"name": "aivet-policy", "informationUri": POLICY_DOC_URI,
                            "semanticVersion": __version__, "version": __version__, "rules": rules}},
        "results": results,
        "invocations": [{"executionSuccessful": True, "exitCode": decision.exit_code}],
        "properties": {
            "profile": decision.profile,
            "verdict": decision.verdict.value,
            "tier": decision.tier.value,
            "obligations": list(decision.obligations),
            "model_digest": decision.model_digest,
            "evidence_sha256": decision.evidence_sha256,
            "subjects": [s.to_dict() for s in evidence.subjects],
        },
    }
    return {"$schema": SCHEMA_URI, "version": "2.1.0", "runs": [run]}


def _uri(path: str) -> str:
    from urllib.parse import quote

    text = utf8_safe(path).replace("\\", "/").rstrip("/") or "."
    return quote(text, safe="/:@-._~") + "/"


def render_sarif(decision: Decision, evidence: Evidence) -> str:
    """SARIF 2.1.0 text."""
    return json.dumps(to_sarif(decision, evidence), indent=2, ensure_ascii=False) + "\n"


_VERDICT_STYLE = {Verdict.ALLOW: "bold green", Verdict.ALLOW_WITH_OBLIGATIONS: "bold yellow", Verdict.DENY: "bold red"}
_EFFECT_MARK = {"deny": "✗ deny", "tier": "▲ tier", "obligation": "• duty", "note": "· note"}


def render_terminal(decision: Decision, evidence: Evidence, *, color: bool = False, width: int = 100) -> str:
    """Human text: verdict and tier, reasons with citations, obligations, an evidence summary."""
    from rich.console import Console
    from rich.markup import escape

    console = Console(record=True, width=width, color_system="standard" if color else None, force_terminal=color,
                      file=io.StringIO(), highlight=False, soft_wrap=True)

    def say(markup: str) -> None:
        console.print(markup)

    style = _VERDICT_STYLE[decision.verdict]
    say(f"[{style}]{decision.verdict.value.upper()}[/]  tier [bold]{decision.tier.value}[/]  "
        f"(profile {escape(printable(decision.profile))})")
    say(f"model: {escape(printable(decision.model))}")
    tier_policy = decision.extra.get("tier_policy")
    if isinstance(tier_policy, dict):
        say(f"  callers: {escape(str(tier_policy.get('callers')))}; guardrails: "
            f"{escape(str(tier_policy.get('guardrails')))}; audit every call: "
            f"{'yes' if tier_policy.get('audit') else 'no'}")
    if decision.reasons:
        say("\n[bold]Why[/]")
        for r in decision.reasons:
            tier = f" → {r.tier.value}" if r.tier is not None else ""
            say(f"  {_EFFECT_MARK.get(r.effect, r.effect)}{tier}  [bold]{escape(r.rule)}[/]: {escape(printable(r.message))}")
            if r.cites:
                say(f"      cites: {escape(', '.join(r.cites))}")
            if r.evidence:
                say(f"      read: {escape(printable('; '.join(r.evidence)))}")
    if decision.obligations:
        say("\n[bold]Obligations[/]")
        for o in decision.obligations:
            say(f"  - {escape(printable(o))}")
    say("\n[bold]Evidence[/]")
    say(f"  {escape(_summary(decision, evidence))}")
    return console.export_text(styles=color)


def _summary(decision: Decision, evidence: Evidence) -> str:
    facts = decision.extra.get("facts")
    f: dict[str, Any] = dict(facts) if isinstance(facts, dict) else {}
    parts = [
        f"{f.get('scan.files', len(evidence.artifacts))} files scanned, worst finding {f.get('scan.max_severity')}",
        f"signature {f.get('signature.status')}",
        f"license {f.get('license.id') or 'unknown'} ({f.get('license.family') or 'unknown'})",
        f"family {f.get('lineage.family') or 'unknown'}",
        f"{f.get('probe.runs') or 0} probe results",
    ]
    return printable("; ".join(parts))
