"""Evaluate a :class:`~aivet.policy.model.Policy` against Evidence: facts first, then rules, then a Decision.

:func:`facts` flattens an Evidence document and the declared use into the
typed fields of :data:`~aivet.policy.model.FIELDS` (the only things a policy
can read). :func:`evaluate` runs the rules in order; each rule that fires
adds one :class:`~aivet.policy.decision.Reason`. The decision is the highest
tier reached (never below the profile's baseline), *deny* when any deny rule
fired or the tier is prohibited, *allow with obligations* when obligations
remain, else *allow*.

Why our own rule format rather than Cedar or Rego: the decision must carry a
tier, obligations and a chain of reasons with framework citations, which
Cedar's permit/forbid answer does not model, and Rego has no maintained
wheel. Cedar (``cedarpy``) may come later as an optional backend; see
docs/policy.md.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

from aivet.evidence import ArtifactStatus, Evidence, Record, Severity
from aivet.policy.decision import Decision, Reason, Tier, Verdict
from aivet.policy.model import (
    FIELDS,
    AllOf,
    AnyOf,
    Cedar,
    Condition,
    DeclaredUse,
    FieldType,
    Not,
    Policy,
    PolicyRule,
)

__all__ = ["facts", "evaluate", "evidence_digest", "holds", "cedar_problems", "cedar_schema", "PROVENANCE_PREFIXES"]

# Findings under these prefixes come from provenance checks, not from the content scan.
PROVENANCE_PREFIXES = ("SIGN-", "BOM-", "LICENSE-", "ORIGIN-", "LINEAGE-", "PROBE-")
_SEVERITY_RANK = {"none": -1, **{s.value: s.rank for s in Severity}}


def _records(evidence: Evidence, kind: str) -> list[Record]:
    return [r for r in evidence.records if r.kind == kind]


def _last(evidence: Evidence, kind: str) -> Mapping[str, Any] | None:
    found = _records(evidence, kind)
    return found[-1].data if found else None


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _bool(value: Any) -> bool | None:
    return value if isinstance(value, bool) else None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _strings(value: Any) -> list[str]:
    if not isinstance(value, (list, tuple)):
        return []
    out = []
    for item in value:
        if isinstance(item, str):
            out.append(item)
        elif isinstance(item, Mapping) and isinstance(item.get("text"), str):  # an Obligation(kind, text)
            out.append(item["text"])
        elif isinstance(item, Mapping) and isinstance(item.get("message"), str):  # a Conflict
            out.append(item["message"])
    return out


def facts(evidence: Evidence, use: DeclaredUse) -> dict[str, Any]:
    """Every field of :data:`FIELDS`, read from ``evidence`` and ``use`` (``None`` where unknown)."""
    out: dict[str, Any] = {name: None for name in FIELDS}
    scan = [f for f in evidence.findings if not f.rule_id.startswith(PROVENANCE_PREFIXES)]
    worst = max((f.severity for f in scan), default=None)
    notable = [f for f in scan if f.severity >= Severity.LOW]
    out["scan.max_severity"] = worst.value if worst else "none"
    out["scan.findings"] = len(notable)
    out["scan.rules"] = sorted({f.rule_id for f in notable})
    out["scan.files"] = len(evidence.artifacts)
    out["scan.incomplete"] = sum(1 for a in evidence.artifacts if a.status is not ArtifactStatus.ANALYZED)
    out["scan.suppressed"] = len(evidence.suppressed)

    sig = _last(evidence, "signature")
    problems = sorted({f.rule_id for f in evidence.findings if f.rule_id.startswith("SIGN-")})
    status = _str(sig.get("status")) if sig else None
    if "SIGN-MISSING" in problems:
        status = "missing"
    out["signature.status"] = status or "missing"
    out["signature.problems"] = problems
    if sig:
        out["signature.method"] = _str(sig.get("method"))
        out["signature.signer"] = _str(sig.get("signer")) or _str(sig.get("identity")) or _str(sig.get("key_hint"))
        out["signature.issuer"] = _str(sig.get("issuer"))

    _license_facts(evidence, out)

    origin = _last(evidence, "origin")
    lineage = _last(evidence, "lineage")
    declared_bases = _strings(lineage.get("declared_base_models")) if lineage else []
    if origin:
        out["origin.publisher"] = _fact(origin.get("publisher"))
        out["origin.jurisdiction"] = _fact(origin.get("jurisdiction"))
        out["origin.family"] = _fact(origin.get("family"))
        bases = origin.get("base_models")
        out["origin.base_models"] = [b for b in (_fact(x) for x in bases) if b] if isinstance(bases, (list, tuple)) else []
    else:
        out["origin.base_models"] = []
    out["origin.declared"] = bool(out["origin.publisher"] or declared_bases or out["origin.base_models"])
    if lineage:
        out["lineage.family"] = _str(lineage.get("family"))
        out["lineage.family_consistent"] = _bool(lineage.get("family_consistent"))
        out["lineage.declared_base_models"] = declared_bases
        out["lineage.matched_base"] = _str(lineage.get("matched_base"))
        out["lineage.declared_base_consistent"] = _bool(lineage.get("declared_base_consistent"))
    else:
        out["lineage.declared_base_models"] = []

    bom = _last(evidence, "bom")
    out["bom.present"] = bom is not None
    out["bom.missing"] = [k for k in ("license", "parameter_count", "architecture") if bom is None or bom.get(k) is None]
    out["bom.problems"] = sorted({f.rule_id for f in evidence.findings if f.rule_id.startswith("BOM-")})

    probes = _records(evidence, "probe")
    out["probe.runs"] = len(probes)
    out["probe.failed"] = sorted({_probe_name(r.data) for r in probes if _probe_failed(r.data)})

    out["use.commercial"] = use.commercial
    out["use.internal_only"] = use.internal_only
    out["use.redistribution"] = use.redistribution
    out["use.fine_tune_release"] = use.fine_tune_release
    out["use.monthly_users"] = use.monthly_users
    out["use.regions"] = list(use.regions)
    out["use.use_case"] = use.use_case or None
    return out


def _license_facts(evidence: Evidence, out: dict[str, Any]) -> None:
    lic = _last(evidence, "license")
    out["license.obligations"] = []
    out["license.conflicts"] = []
    out["license.deny_conflicts"] = []
    if lic is not None:
        # LicenseReport.to_record: the license itself may be nested under "license" or be the record's body.
        nested = lic.get("license")
        info: Mapping[str, Any] = nested if isinstance(nested, Mapping) else lic
        out["license.id"] = _str(info.get("id"))
        out["license.spdx"] = _str(info.get("spdx"))
        out["license.family"] = _str(info.get("family"))
        out["license.commercial_use"] = _bool(info.get("commercial_use"))
        out["license.allows_derivatives"] = _bool(info.get("allows_derivatives"))
        out["license.monthly_user_cap"] = _int(info.get("monthly_user_cap"))
        out["license.osi_approved"] = _bool(info.get("osi_approved"))
        out["license.obligations"] = _strings(info.get("obligations"))
        out["license.disagreement"] = bool(lic.get("disagreement"))
        out["license.altered"] = bool(lic.get("altered"))
    conflicts = _last(evidence, "license-conflicts")
    if conflicts is not None:
        raw = conflicts.get("conflicts")
        items = [c for c in raw if isinstance(c, Mapping)] if isinstance(raw, (list, tuple)) else []
        out["license.conflicts"] = _strings(items)
        out["license.deny_conflicts"] = _strings([c for c in items if c.get("severity") == "deny"])


def _fact(value: Any) -> str | None:
    """An origin fact: ``{"value": ..., "source": ...}`` (or a plain string)."""
    if isinstance(value, Mapping):
        return _str(value.get("value"))
    return _str(value)


def _probe_name(data: Mapping[str, Any]) -> str:
    return _str(data.get("probe")) or _str(data.get("name")) or _str(data.get("category")) or "probe"


def _probe_failed(data: Mapping[str, Any]) -> bool:
    if data.get("passed") is False:
        return True
    return str(data.get("status", "")).lower() in ("fail", "failed")


# -- conditions ---------------------------------------------------------------------------------------


def _compare(ftype: FieldType, actual: Any, op: str, expected: Any) -> bool:
    if op == "present":
        return actual is not None
    if op == "absent":
        return actual is None
    if ftype is FieldType.LIST:
        items = set(actual or ())
        if op == "nonempty":
            return bool(items)
        if op == "empty":
            return not items
        if op == "contains":
            return expected in items
        if op == "not_contains":
            return expected not in items
        return bool(items & set(expected or ()))  # intersects
    if actual is None:
        return op in ("!=", "not_in")
    if ftype is FieldType.SEVERITY:
        actual = _SEVERITY_RANK.get(str(actual), -1)
        expected = (tuple(_SEVERITY_RANK[v] for v in expected) if isinstance(expected, tuple)
                    else _SEVERITY_RANK.get(str(expected), -1))
    elif ftype is FieldType.STR and op not in ("matches",):
        actual = str(actual).lower()
        expected = tuple(str(v).lower() for v in expected) if isinstance(expected, tuple) else str(expected).lower()
    if expected is None and op not in ("==", "!="):
        return False  # a value_field that is unknown: an ordering against nothing holds for nobody
    result: bool
    if op == "==":
        result = actual == expected
    elif op == "!=":
        result = actual != expected
    elif op == "<":
        result = actual < expected
    elif op == "<=":
        result = actual <= expected
    elif op == ">":
        result = actual > expected
    elif op == ">=":
        result = actual >= expected
    elif op == "in":
        result = actual in expected
    elif op == "not_in":
        result = actual not in expected
    elif op == "matches":
        result = fnmatch.fnmatchcase(str(actual), str(expected))
    else:  # pragma: no cover - the loader accepts only the operators above
        raise AssertionError(op)
    return result


def holds(condition: Condition, values: Mapping[str, Any]) -> bool:
    """Whether ``condition`` is true of the facts ``values``."""
    if isinstance(condition, AllOf):
        return all(holds(p, values) for p in condition.parts)
    if isinstance(condition, AnyOf):
        return any(holds(p, values) for p in condition.parts)
    if isinstance(condition, Not):
        return not holds(condition.part, values)
    if isinstance(condition, Cedar):
        return cedar_holds(condition, values)
    expected = values.get(condition.value_field) if condition.value_field else condition.value
    return _compare(FIELDS[condition.field][0], values.get(condition.field), condition.op, expected)


def _fields_of(condition: Condition | None) -> Iterable[str]:
    if condition is None:
        return
    if isinstance(condition, (AllOf, AnyOf)):
        for part in condition.parts:
            yield from _fields_of(part)
    elif isinstance(condition, Not):
        yield from _fields_of(condition.part)
    elif isinstance(condition, Cedar):
        yield from (f for f in FIELDS if f"context.{f}" in condition.text)
    else:
        yield condition.field
        if condition.value_field:
            yield condition.value_field


def _show(value: Any) -> str:
    if isinstance(value, list):
        items = [v if len(str(v)) <= 60 else str(v)[:57] + "..." for v in map(str, value[:3])]
        return "[" + ", ".join(items) + (f", … {len(value) - 3} more" if len(value) > 3 else "") + "]"
    if value is None:
        return "unknown"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# -- Cedar conditions (optional backend) ---------------------------------------------------------------

_CEDAR_TYPES: Mapping[FieldType, dict[str, Any]] = {
    FieldType.BOOL: {"type": "Boolean"}, FieldType.INT: {"type": "Long"}, FieldType.SEVERITY: {"type": "Long"},
    FieldType.STR: {"type": "String"}, FieldType.LIST: {"type": "Set", "element": {"type": "String"}},
}
# Cedar's validator insists on `has` guards for optional attributes; an unknown fact makes the
# condition false at run time instead (an evaluation error skips the permit), as for our predicates.
_CEDAR_OPTIONAL_NOTE = "unable to guarantee safety of access to optional attribute"


def _cedar() -> Any:
    try:
        import cedarpy  # type: ignore[import-not-found,unused-ignore]
    except ImportError as exc:
        from aivet.errors import MissingExtraError

        raise MissingExtraError("cedarpy", "cedar", "Cedar conditions in a policy") from exc
    return cedarpy


def cedar_schema() -> dict[str, Any]:
    """The Cedar schema of the gate's request: context attributes are the evidence fields, grouped by prefix."""
    groups: dict[str, dict[str, Any]] = {}
    for name, (ftype, _) in FIELDS.items():
        group, _, attr = name.partition(".")
        spec: dict[str, Any] = {**_CEDAR_TYPES[ftype], "required": ftype is FieldType.LIST}
        groups.setdefault(group, {"type": "Record", "attributes": {}})["attributes"][attr] = spec
    context = {"type": "Record", "attributes": groups}
    return {"": {"entityTypes": {"Gate": {}, "Model": {}},
                 "actions": {"deploy": {"appliesTo": {"principalTypes": ["Gate"], "resourceTypes": ["Model"],
                                                      "context": context}}}}}


def cedar_problems(policy: str) -> list[str]:
    """What Cedar's parser and validator say is wrong with ``policy`` (empty when it is usable)."""
    result = _cedar().validate_policies(policy, cedar_schema())
    return [str(e) for e in result.errors if _CEDAR_OPTIONAL_NOTE not in str(e)]


def _cedar_context(values: Mapping[str, Any]) -> dict[str, Any]:
    context: dict[str, Any] = {}
    for name, (ftype, _) in FIELDS.items():
        value = values.get(name)
        group, _, attr = name.partition(".")
        bucket = context.setdefault(group, {})
        if value is None:
            continue  # Cedar has no null: an unknown fact is an absent attribute
        bucket[attr] = _SEVERITY_RANK.get(str(value), -1) if ftype is FieldType.SEVERITY else value
    return context


def cedar_holds(condition: Cedar, values: Mapping[str, Any]) -> bool:
    """Evaluate a Cedar condition against the facts (an evaluation error counts as false)."""
    request = {"principal": {"type": "Gate", "id": "aivet"}, "action": {"type": "Action", "id": "deploy"},
               "resource": {"type": "Model", "id": "model"}, "context": _cedar_context(values)}
    return bool(_cedar().is_authorized(request, condition.policy(), []).allowed)


# -- the decision -------------------------------------------------------------------------------------


def evidence_digest(evidence: Evidence) -> str:
    """``sha256:<hex>`` of the Evidence document's canonical JSON (sorted keys, no spaces)."""
    text = json.dumps(evidence.to_dict(), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


def _reason(rule: PolicyRule, values: Mapping[str, Any]) -> tuple[Reason, list[str]]:
    then = rule.then
    read = tuple(dict.fromkeys(f"{f}={_show(values.get(f))}" for f in _fields_of(rule.when)))
    obligations = list(then.obligations)
    if then.obligations_from:
        obligations.extend(values.get(then.obligations_from) or ())
    message = rule.message or rule.description or rule.id
    if then.note:
        message = f"{message} ({then.note})" if message != then.note else message
    if then.deny:
        effect = "deny"
    elif then.tier is not None:
        effect = "tier"
    elif obligations:
        effect = "obligation"
    else:
        effect = "note"
    return Reason(rule.id, effect, message, then.tier, rule.cites, read), obligations


def evaluate(policy: Policy, evidence: Evidence, *, use: DeclaredUse | None = None, model: str | None = None,
             model_digest: str | None = None) -> Decision:
    """Decide on ``evidence`` under ``policy`` for ``use`` (default: the policy's own ``[use]``)."""
    use = use or policy.use
    values = facts(evidence, use)
    reasons: list[Reason] = []
    obligations: list[str] = []
    tier = policy.baseline
    denied = False
    for rule in policy.bypassed:
        reasons.append(Reason(rule.id, "note", f"UNSAFE BYPASS: rule switched off by the policy: {rule.unsafe_bypass}",
                              None, rule.cites, (rule.origin,)))
    for rule in policy.rules:
        if rule.when is None or not holds(rule.when, values):
            continue
        reason, added = _reason(rule, values)
        reasons.append(reason)
        obligations.extend(added)
        denied = denied or rule.then.deny
        if rule.then.tier is not None and rule.then.tier.rank > tier.rank:
            tier = rule.then.tier
    spec = policy.tiers[tier]
    obligations.extend(spec.obligations)
    obligations = list(dict.fromkeys(o for o in obligations if o))
    if denied or tier is Tier.PROHIBITED:
        verdict = Verdict.DENY
    elif obligations:
        verdict = Verdict.ALLOW_WITH_OBLIGATIONS
    else:
        verdict = Verdict.ALLOW
    subject = model or (evidence.subjects[0].location if evidence.subjects else "")
    extra = {
        "use": use.to_dict(),
        "tier_policy": spec.to_dict(),
        "profile_chain": list(policy.chain),
        "facts": values,
    }
    return Decision(subject, policy.name, tier, verdict, tuple(reasons), tuple(obligations), model_digest,
                    evidence_digest(evidence), extra)
