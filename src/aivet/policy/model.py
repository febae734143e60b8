"""Policy as code: the typed rule format, its evidence-field schema, and the TOML loader.

A policy is a TOML file (format documented in ``docs/policy.md``)::

    extends = "default"                 # a shipped profile or a path relative to this file
    [use]                               # the organisation's declared use
    commercial = true
    monthly_users = 5000
    regions = ["EU"]
    [tiers]
    baseline = "minimal"
    [tiers.elevated]
    obligations = ["Named teams only; every call audited."]
    [[rule]]
    id = "deny-code-exec"
    description = "A model file runs code when loaded."
    cites = ["OWASP LLM03:2025", "AML.T0011.000"]
    when = { any = [ { field = "scan.max_severity", op = ">=", value = "critical" } ] }
    then = { verdict = "deny" }

Every ``field`` is checked against :data:`FIELDS` when the file is loaded; an
unknown field, a value of the wrong type, an empty ``all``/``any`` or an
unknown verdict is a :class:`PolicyError` naming ``file:line``. ``tomllib``
reports no positions for values, so the line is found by locating the key's
text in the file (:func:`_line_of`).
"""

from __future__ import annotations

import enum
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from aivet.errors import ArtifactError
from aivet.evidence import Severity
from aivet.policy.decision import Tier

MAX_EXTENDS_DEPTH = 8  # a chain of profiles deeper than this is a mistake (or a cycle)
MAX_POLICY_BYTES = 1024 * 1024
MAX_CONDITION_DEPTH = 16
SHIPPED_PROFILES = ("default", "strict", "nist")


class PolicyError(ArtifactError):
    """A policy file that does not parse or does not make sense; the message names the place."""

    def __init__(self, message: str, *, source: str = "", line: int | None = None) -> None:
        where = source + (f":{line}" if line else "") if source else ""
        super().__init__(f"{where}: {message}" if where else message)
        self.source = source
        self.line = line


class FieldType(str, enum.Enum):
    """The type of an evidence field, which decides the operators and values allowed on it."""

    BOOL = "bool"
    INT = "int"
    STR = "str"
    SEVERITY = "severity"
    LIST = "list"  # a list of strings


# The evidence fields a policy may read: name -> (type, meaning). Built by :mod:`aivet.policy.engine`
# from Evidence plus the declared use; documented in docs/policy.md. Names are only ever added.
FIELDS: Mapping[str, tuple[FieldType, str]] = {
    "scan.max_severity": (FieldType.SEVERITY, "most severe scan finding (none when clean)"),
    "scan.findings": (FieldType.INT, "number of scan findings at LOW or above"),
    "scan.rules": (FieldType.LIST, "rule ids of the scan findings at LOW or above"),
    "scan.files": (FieldType.INT, "files scanned"),
    "scan.incomplete": (FieldType.INT, "files not fully analysed (partial, unsupported, error)"),
    "scan.suppressed": (FieldType.INT, "scan findings a suppression file accepted (--suppressions); not in the "
                                       "other scan fields"),
    "signature.status": (FieldType.STR, "verified | partially-verified | failed | unverified | missing"),
    "signature.method": (FieldType.STR, "key | certificate | sigstore"),
    "signature.signer": (FieldType.STR, "signer identity: certificate subject, Sigstore identity or key hint"),
    "signature.issuer": (FieldType.STR, "certificate issuer or OIDC issuer"),
    "signature.problems": (FieldType.LIST, "SIGN-* rule ids raised while verifying"),
    "license.id": (FieldType.STR, "license identifier (HF id or SPDX)"),
    "license.spdx": (FieldType.STR, "SPDX expression or LicenseRef"),
    "license.family": (FieldType.STR, "permissive, copyleft, weak-copyleft, creative-commons, openrail, llama, "
                       "gemma, qwen, deepseek, mistral, other, unknown"),
    "license.commercial_use": (FieldType.BOOL, "the license allows commercial use"),
    "license.allows_derivatives": (FieldType.BOOL, "the license allows derivatives"),
    "license.monthly_user_cap": (FieldType.INT, "monthly active users above which a separate license is needed"),
    "license.osi_approved": (FieldType.BOOL, "OSI-approved open-source license"),
    "license.obligations": (FieldType.LIST, "plain-language duties the license imposes"),
    "license.conflicts": (FieldType.LIST, "conflicts between the license and the declared use"),
    "license.deny_conflicts": (FieldType.LIST, "conflicts of severity deny"),
    "license.disagreement": (FieldType.BOOL, "model card and license text disagree"),
    "license.altered": (FieldType.BOOL, "license text altered from the known text"),
    "origin.publisher": (FieldType.STR, "publisher (hub organisation) when known"),
    "origin.jurisdiction": (FieldType.STR, "publisher's jurisdiction when known"),
    "origin.family": (FieldType.STR, "model family named by the repository or card"),
    "origin.base_models": (FieldType.LIST, "base models named by the card or repository"),
    "origin.declared": (FieldType.BOOL, "the model declares its origin (repo id, publisher or base model)"),
    "lineage.family": (FieldType.STR, "model family from config.json"),
    "lineage.family_consistent": (FieldType.BOOL, "config family agrees with the vocabulary"),
    "lineage.declared_base_models": (FieldType.LIST, "base_model entries of the model card"),
    "lineage.matched_base": (FieldType.STR, "registered base model the weights match"),
    "lineage.declared_base_consistent": (FieldType.BOOL, "weight match agrees with the declared base"),
    "bom.present": (FieldType.BOOL, "an AI BOM was built"),
    "bom.missing": (FieldType.LIST, "BOM facts missing: license, parameter_count, architecture"),
    "bom.problems": (FieldType.LIST, "BOM-* rule ids (unreadable sources)"),
    "probe.runs": (FieldType.INT, "behavioural probe results found in the ledger"),
    "probe.failed": (FieldType.LIST, "names of failed probes"),
    "use.commercial": (FieldType.BOOL, "declared use is commercial"),
    "use.internal_only": (FieldType.BOOL, "declared use is internal only"),
    "use.redistribution": (FieldType.BOOL, "the weights will be redistributed"),
    "use.fine_tune_release": (FieldType.BOOL, "a fine-tune will be released"),
    "use.monthly_users": (FieldType.INT, "expected monthly users"),
    "use.regions": (FieldType.LIST, "regions of deployment (e.g. EU, US)"),
    "use.use_case": (FieldType.STR, "declared use case"),
}

_COMMON_OPS = {"==", "!=", "present", "absent"}
OPS: Mapping[FieldType, frozenset[str]] = {
    FieldType.BOOL: frozenset(_COMMON_OPS),
    FieldType.INT: frozenset(_COMMON_OPS | {"<", "<=", ">", ">="}),
    FieldType.SEVERITY: frozenset(_COMMON_OPS | {"<", "<=", ">", ">=", "in", "not_in"}),
    FieldType.STR: frozenset(_COMMON_OPS | {"in", "not_in", "matches"}),
    FieldType.LIST: frozenset({"contains", "not_contains", "intersects", "nonempty", "empty"}),
}
_UNARY = {"present", "absent", "nonempty", "empty"}


@dataclass(frozen=True)
class Predicate:
    """``field op value``: one typed test of one evidence field (``value_field`` compares two fields)."""

    field: str
    op: str
    value: Any = None
    value_field: str | None = None


@dataclass(frozen=True)
class AllOf:
    """True when every part is true. Never empty (an empty all-of would allow everything)."""

    parts: tuple[Condition, ...]


@dataclass(frozen=True)
class AnyOf:
    """True when at least one part is true. Never empty."""

    parts: tuple[Condition, ...]


@dataclass(frozen=True)
class Not:
    """True when the part is false."""

    part: Condition


@dataclass(frozen=True)
class Cedar:
    """A condition written in Cedar (optional backend, ``pip install cedarpy``): true when this permit holds.

    ``text`` is the body of a Cedar ``when { ... }`` clause over ``context``, whose attributes are the
    evidence fields (``context.signature.status``; severities are numbers, see docs/policy.md).
    """

    text: str

    def policy(self) -> str:
        """The Cedar policy evaluated for this condition."""
        return f"permit(principal, action, resource) when {{ {self.text} }};"


Condition = Predicate | AllOf | AnyOf | Not | Cedar


class Effect(str, enum.Enum):
    DENY = "deny"
    TIER = "tier"
    OBLIGATION = "obligation"
    NOTE = "note"


@dataclass(frozen=True)
class Then:
    """What a rule concludes when it fires: deny, raise the tier, add obligations, or a note."""

    deny: bool = False
    tier: Tier | None = None
    obligations: tuple[str, ...] = ()
    obligations_from: str | None = None  # a list field whose items become obligations (license.obligations)
    note: str | None = None


@dataclass(frozen=True)
class PolicyRule:
    """One reviewed rule: an id, why it exists, the framework items it implements, when and then."""

    id: str
    description: str
    when: Condition | None
    then: Then
    cites: tuple[str, ...] = ()
    message: str = ""
    unsafe_bypass: str | None = None  # set: the rule is switched off, and every decision says so
    origin: str = ""  # file:line where it was defined


@dataclass(frozen=True)
class DeclaredUse:
    """The organisation's declared use of the model (policy ``[use]``, overridable on the command line)."""

    commercial: bool = True
    internal_only: bool = False
    redistribution: bool = False
    fine_tune_release: bool = False
    monthly_users: int | None = None
    regions: tuple[str, ...] = ()
    use_case: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON form, as recorded in the decision's ``extra.use``."""
        return {"commercial": self.commercial, "internal_only": self.internal_only,
                "redistribution": self.redistribution, "fine_tune_release": self.fine_tune_release,
                "monthly_users": self.monthly_users, "regions": list(self.regions), "use_case": self.use_case}


@dataclass(frozen=True)
class TierSpec:
    """What a tier means for deployment; the gateway enforces ``callers``, ``guardrails`` and ``audit``."""

    tier: Tier
    callers: str
    guardrails: str
    audit: bool
    obligations: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"tier": self.tier.value, "callers": self.callers, "guardrails": self.guardrails,
                "audit": self.audit, "obligations": list(self.obligations)}


DEFAULT_TIERS: Mapping[Tier, TierSpec] = {
    Tier.MINIMAL: TierSpec(Tier.MINIMAL, "any authenticated caller", "standard", False),
    Tier.LIMITED: TierSpec(Tier.LIMITED, "any authenticated caller", "standard", True),
    Tier.ELEVATED: TierSpec(Tier.ELEVATED, "named teams only", "strict", True),
    Tier.PROHIBITED: TierSpec(Tier.PROHIBITED, "none", "n/a", True),
}


@dataclass(frozen=True)
class Policy:
    """A loaded, validated policy: its profile chain, declared use, tiers and rules in evaluation order."""

    name: str
    chain: tuple[str, ...]  # this profile first, then what it extends
    use: DeclaredUse
    baseline: Tier
    tiers: Mapping[Tier, TierSpec]
    rules: tuple[PolicyRule, ...]
    description: str = ""
    bypassed: tuple[PolicyRule, ...] = field(default=())


# -- loading -------------------------------------------------------------------------------------------


@dataclass
class _Source:
    name: str  # what error messages call it: a path or "profile default"
    text: str
    lines: list[str]

    def line_of(self, needle: str, start: int = 1) -> int | None:
        return _line_of(self.lines, needle, start)

    def error(self, message: str, line: int | None) -> PolicyError:
        return PolicyError(message, source=self.name, line=line)


def _line_of(lines: Sequence[str], needle: str, start: int = 1) -> int | None:
    """The first 1-based line at or after ``start`` whose text contains ``needle``."""
    for i in range(max(start, 1) - 1, len(lines)):
        if needle in lines[i]:
            return i + 1
    for i in range(0, min(start - 1, len(lines))):  # the key may sit before (tables of a rule are unordered)
        if needle in lines[i]:
            return i + 1
    return None


def _read_profile(name: str, base: Path | None) -> tuple[_Source, Path | None]:
    """Text of a shipped profile (by name) or a policy file (a path, relative to ``base``)."""
    if name in SHIPPED_PROFILES:
        text = resources.files("aivet.policy.profiles").joinpath(f"{name}.toml").read_text(encoding="utf-8")
        return _Source(f"profile {name}", text, text.splitlines()), None
    path = Path(name)
    if base is not None and not path.is_absolute():
        path = base / path
    try:
        # Read at most one byte past the bound: a FIFO or /dev/zero reports size 0 and never ends.
        with path.open("rb") as handle:
            raw = handle.read(MAX_POLICY_BYTES + 1)
        if len(raw) > MAX_POLICY_BYTES:
            raise PolicyError(f"policy file is larger than {MAX_POLICY_BYTES} bytes", source=str(path))
        text = raw.decode("utf-8")
    except FileNotFoundError:
        shipped = ", ".join(SHIPPED_PROFILES)
        raise PolicyError(f"no policy file {str(path)!r} and no shipped profile of that name ({shipped})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError(f"cannot read the policy: {exc}", source=str(path)) from None
    return _Source(str(path), text, text.splitlines()), path.parent


_TOP_KEYS = {"extends", "description", "use", "tiers", "rule", "name"}
_RULE_KEYS = {"id", "description", "cites", "when", "then", "message", "unsafe_bypass", "replaces"}
_THEN_KEYS = {"verdict", "tier", "obligation", "obligations", "obligations_from", "note"}
_USE_KEYS = {"commercial", "internal_only", "redistribution", "fine_tune_release", "monthly_users", "regions",
             "use_case"}


def load_policy(name_or_path: str | Path) -> Policy:
    """Load a shipped profile (``default``, ``strict``, ``nist``) or a policy file, resolving ``extends``.

    Raises :class:`PolicyError` (naming file and line) for anything that does not parse or validate.
    """
    return _load(str(name_or_path), None, ())


def _load(name: str, base: Path | None, seen: tuple[str, ...]) -> Policy:
    src, here = _read_profile(name, base)
    if src.name in seen:
        raise src.error(f"extends cycle: {' -> '.join((*seen, src.name))}", src.line_of("extends"))
    if len(seen) >= MAX_EXTENDS_DEPTH:
        raise src.error(f"extends chain deeper than {MAX_EXTENDS_DEPTH}", None)
    try:
        data = tomllib.loads(src.text)
    except RecursionError:  # tomllib recurses once per nested array or inline table
        raise src.error("not valid TOML: nested too deeply", None) from None
    except tomllib.TOMLDecodeError as exc:
        # Python 3.11's TOMLDecodeError has no lineno attribute; its message ends "(at line N, column M)".
        found = re.search(r"\(at line (\d+), column \d+\)", str(exc))
        text = re.sub(r"\s*\(at line \d+, column \d+\)", "", str(exc))
        raise src.error(f"not valid TOML: {text}", int(found.group(1)) if found else None) from None
    unknown = set(data) - _TOP_KEYS
    if unknown:
        key = sorted(unknown)[0]
        raise src.error(f"unknown top-level key {key!r} (known: {', '.join(sorted(_TOP_KEYS))})", src.line_of(key))
    parent: Policy | None = None
    if "extends" in data:
        ext = data["extends"]
        if not isinstance(ext, str) or not ext:
            raise src.error("extends must be a profile name or a file path", src.line_of("extends"))
        parent = _load(ext, here, (*seen, src.name))
    use = _use(src, data.get("use", {}), parent.use if parent else DeclaredUse())
    baseline, tiers = _tiers(src, data.get("tiers", {}), parent)
    rules, bypassed = _rules(src, data.get("rule", []), parent)
    description = str(data.get("description", "")) or (parent.description if parent else "")
    label = name if name in SHIPPED_PROFILES else src.name
    return Policy(label, (label, *(parent.chain if parent else ())), use, baseline, tiers, rules, description,
                  bypassed)


def _use(src: _Source, raw: Any, base: DeclaredUse) -> DeclaredUse:
    if not isinstance(raw, dict):
        raise src.error("[use] must be a table", src.line_of("use"))
    line = src.line_of("[use]")
    unknown = set(raw) - _USE_KEYS
    if unknown:
        key = sorted(unknown)[0]
        raise src.error(f"unknown key {key!r} in [use] (known: {', '.join(sorted(_USE_KEYS))})",
                        src.line_of(key, line or 1))
    values: dict[str, Any] = dict(base.__dict__)
    for key, value in raw.items():
        where = src.line_of(key, line or 1)
        if key in ("commercial", "internal_only", "redistribution", "fine_tune_release"):
            if not isinstance(value, bool):
                raise src.error(f"[use] {key} must be true or false", where)
        elif key == "monthly_users":
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise src.error("[use] monthly_users must be a non-negative integer", where)
        elif key == "regions":
            if not isinstance(value, list) or not all(isinstance(r, str) for r in value):
                raise src.error("[use] regions must be a list of strings", where)
            value = tuple(r.upper() for r in value)
        elif not isinstance(value, str):
            raise src.error("[use] use_case must be a string", where)
        values[key] = value
    return DeclaredUse(**values)


def _tier(src: _Source, value: Any, where: int | None) -> Tier:
    try:
        return Tier(value)
    except ValueError:
        names = ", ".join(t.value for t in Tier)
        raise src.error(f"unknown tier {value!r} (expected one of: {names})", where) from None


def _tiers(src: _Source, raw: Any, parent: Policy | None) -> tuple[Tier, dict[Tier, TierSpec]]:
    baseline = parent.baseline if parent else Tier.MINIMAL
    tiers = dict(parent.tiers if parent else DEFAULT_TIERS)
    if not isinstance(raw, dict):
        raise src.error("[tiers] must be a table", src.line_of("tiers"))
    for key, value in raw.items():
        where = src.line_of(f"[tiers.{key}]") or src.line_of(key)
        if key == "baseline":
            baseline = _tier(src, value, where)
            continue
        tier = _tier(src, key, where)
        if not isinstance(value, dict) or set(value) - {"callers", "guardrails", "audit", "obligations"}:
            raise src.error(f"[tiers.{key}] takes callers, guardrails, audit and obligations", where)
        obligations = value.get("obligations", list(tiers[tier].obligations))
        if not isinstance(obligations, list) or not all(isinstance(o, str) for o in obligations):
            raise src.error(f"[tiers.{key}] obligations must be a list of strings", where)
        audit = value.get("audit", tiers[tier].audit)
        if not isinstance(audit, bool):
            raise src.error(f"[tiers.{key}] audit must be true or false", where)
        tiers[tier] = TierSpec(tier, str(value.get("callers", tiers[tier].callers)),
                               str(value.get("guardrails", tiers[tier].guardrails)), audit, tuple(obligations))
    return baseline, tiers


def _rules(src: _Source, raw: Any, parent: Policy | None) -> tuple[tuple[PolicyRule, ...], tuple[PolicyRule, ...]]:
    if not isinstance(raw, list):
        raise src.error("rule must be an array of tables ([[rule]])", src.line_of("rule"))
    rules = list(parent.rules if parent else ())
    bypassed = list(parent.bypassed if parent else ())
    cursor = 1
    own: set[str] = set()
    for item in raw:
        start = src.line_of("[[rule]]", cursor) or cursor
        cursor = start + 1
        rule = _rule(src, item, start)
        if rule.id in own:
            raise src.error(f"duplicate rule id {rule.id!r}", src.line_of(f'"{rule.id}"', start))
        own.add(rule.id)
        known = {r.id: i for i, r in enumerate(rules)}
        known_bypassed = {r.id for r in bypassed}
        if rule.id in known or rule.id in known_bypassed:
            if not (isinstance(item, dict) and item.get("replaces") is True):
                raise src.error(f"rule {rule.id!r} is already defined by an extended profile; "
                                "set replaces = true to replace it", src.line_of(f'"{rule.id}"', start))
            if rule.id in known:
                del rules[known[rule.id]]
            bypassed = [r for r in bypassed if r.id != rule.id]
        elif isinstance(item, dict) and item.get("replaces"):
            raise src.error(f"rule {rule.id!r} replaces nothing: no extended profile defines it",
                            src.line_of("replaces", start))
        (bypassed if rule.unsafe_bypass else rules).append(rule)
    return tuple(rules), tuple(bypassed)


def _rule(src: _Source, item: Any, start: int) -> PolicyRule:
    if not isinstance(item, dict):
        raise src.error("each [[rule]] must be a table", start)
    unknown = set(item) - _RULE_KEYS
    if unknown:
        key = sorted(unknown)[0]
        raise src.error(f"unknown key {key!r} in [[rule]] (known: {', '.join(sorted(_RULE_KEYS))})",
                        src.line_of(key, start))
    rid = item.get("id")
    if not isinstance(rid, str) or not rid.strip():
        raise src.error("a [[rule]] needs an id (a non-empty string)", start)
    where = src.line_of(f'"{rid}"', start) or start
    cites = item.get("cites", [])
    if not isinstance(cites, list) or not all(isinstance(c, str) for c in cites):
        raise src.error(f"rule {rid!r}: cites must be a list of strings", src.line_of("cites", where))
    bypass = item.get("unsafe_bypass")
    if bypass is not None and (not isinstance(bypass, str) or not bypass.strip()):
        raise src.error(f"rule {rid!r}: unsafe_bypass must give the reason (a non-empty string)",
                        src.line_of("unsafe_bypass", where))
    when: Condition | None = None
    if "when" in item:
        when = _condition(src, item["when"], rid, where, 0)
    elif bypass is None:
        raise src.error(f"rule {rid!r} has no 'when'", where)
    then = _then(src, item.get("then"), rid, where, bypass is not None)
    desc = item.get("description", "")
    message = item.get("message", "")
    if not isinstance(desc, str) or not isinstance(message, str):
        raise src.error(f"rule {rid!r}: description and message must be strings", where)
    return PolicyRule(rid, desc, when, then, tuple(cites), message, bypass, f"{src.name}:{where}")


def _condition(src: _Source, raw: Any, rid: str, where: int, depth: int) -> Condition:
    if depth > MAX_CONDITION_DEPTH:
        raise src.error(f"rule {rid!r}: conditions nested deeper than {MAX_CONDITION_DEPTH}", where)
    if not isinstance(raw, dict):
        raise src.error(f"rule {rid!r}: a condition must be a table", where)
    if "cedar" in raw:
        return _cedar(src, raw, rid, where)
    combinators = [k for k in ("all", "any", "not") if k in raw]
    if combinators:
        key = combinators[0]
        line = src.line_of(f"{key} =", where) or src.line_of(key, where) or where
        if len(raw) != 1:
            raise src.error(f"rule {rid!r}: '{key}' must be alone in its table", line)
        if key == "not":
            return Not(_condition(src, raw["not"], rid, where, depth + 1))
        parts = raw[key]
        if not isinstance(parts, list):
            raise src.error(f"rule {rid!r}: '{key}' takes a list of conditions", line)
        if not parts:
            kind = "all-of" if key == "all" else "any-of"
            raise src.error(f"rule {rid!r}: empty {kind} ('{key} = []') is not allowed", line)
        conds = tuple(_condition(src, p, rid, where, depth + 1) for p in parts)
        return AllOf(conds) if key == "all" else AnyOf(conds)
    return _predicate(src, raw, rid, where)


def _cedar(src: _Source, raw: Mapping[str, Any], rid: str, where: int) -> Cedar:
    from aivet.policy.engine import cedar_problems  # the backend lives with evaluation; imported on use

    line = src.line_of("cedar", where) or where
    text = raw["cedar"]
    if len(raw) != 1 or not isinstance(text, str) or not text.strip():
        raise src.error(f"rule {rid!r}: 'cedar' takes a Cedar condition (a non-empty string) and stands alone",
                        line)
    problems = cedar_problems(Cedar(text).policy())
    if problems:
        raise src.error(f"rule {rid!r}: Cedar condition rejected: {problems[0]}", line)
    return Cedar(text)


def _predicate(src: _Source, raw: Mapping[str, Any], rid: str, where: int) -> Predicate:
    name = raw.get("field")
    if not isinstance(name, str):
        raise src.error(f"rule {rid!r}: a condition needs 'field' (or all/any/not)", where)
    line = src.line_of(f'"{name}"', where) or where
    unknown = set(raw) - {"field", "op", "value", "value_field"}
    if unknown:
        raise src.error(f"rule {rid!r}: unknown key {sorted(unknown)[0]!r} in a condition", line)
    if name not in FIELDS:
        close = [f for f in FIELDS if f.split(".")[0] == name.split(".")[0]]
        hint = f"; fields of {name.split('.')[0]!r}: {', '.join(close)}" if close else "; see docs/policy.md"
        raise src.error(f"rule {rid!r}: unknown evidence field {name!r}{hint}", line)
    ftype = FIELDS[name][0]
    op = raw.get("op")
    if op not in OPS[ftype]:
        raise src.error(f"rule {rid!r}: operator {op!r} does not apply to {name} ({ftype.value}); "
                        f"use one of: {', '.join(sorted(OPS[ftype]))}", line)
    value = raw.get("value")
    other = raw.get("value_field")
    if op in _UNARY:
        if value is not None or other is not None:
            raise src.error(f"rule {rid!r}: operator {op!r} takes no value", line)
        return Predicate(name, op)
    if other is not None:
        if value is not None:
            raise src.error(f"rule {rid!r}: give value or value_field, not both", line)
        if other not in FIELDS or FIELDS[other][0] != ftype:
            raise src.error(f"rule {rid!r}: value_field {other!r} is not a {ftype.value} evidence field", line)
        return Predicate(name, op, None, other)
    if value is None:
        raise src.error(f"rule {rid!r}: operator {op!r} needs a value", line)
    return Predicate(name, op, _check_value(src, rid, name, ftype, op, value, line))


def _check_value(src: _Source, rid: str, name: str, ftype: FieldType, op: str, value: Any, line: int) -> Any:
    def bad(expected: str) -> PolicyError:
        return src.error(f"rule {rid!r}: {name} {op} needs {expected}, not {value!r}", line)

    if op in ("in", "not_in", "intersects"):
        if not isinstance(value, list) or not value:
            raise bad("a non-empty list")
        return tuple(_scalar(src, rid, name, ftype, v, line) for v in value)
    if ftype is FieldType.LIST:  # contains / not_contains
        if not isinstance(value, str):
            raise bad("a string")
        return value
    return _scalar(src, rid, name, ftype, value, line)


def _scalar(src: _Source, rid: str, name: str, ftype: FieldType, value: Any, line: int) -> Any:
    if ftype is FieldType.BOOL and isinstance(value, bool):
        return value
    if ftype is FieldType.INT and isinstance(value, int) and not isinstance(value, bool):
        return value
    if ftype in (FieldType.STR, FieldType.LIST) and isinstance(value, str):
        return value
    if ftype is FieldType.SEVERITY and isinstance(value, str):
        if value.lower() == "none":
            return "none"
        try:
            return Severity.parse(value).value
        except ValueError as exc:
            raise src.error(f"rule {rid!r}: {exc}", line) from None
    raise src.error(f"rule {rid!r}: {name} is a {ftype.value} field; {value!r} is not a {ftype.value}", line)


def _then(src: _Source, raw: Any, rid: str, where: int, bypassed: bool) -> Then:
    if raw is None and bypassed:
        return Then()
    line = src.line_of("then", where) or where
    if not isinstance(raw, dict) or not raw:
        raise src.error(f"rule {rid!r}: 'then' must be a table such as {{ verdict = \"deny\" }}", line)
    unknown = set(raw) - _THEN_KEYS
    if unknown:
        raise src.error(f"rule {rid!r}: unknown key {sorted(unknown)[0]!r} in 'then' "
                        f"(known: {', '.join(sorted(_THEN_KEYS))})", line)
    deny = False
    if "verdict" in raw:
        if raw["verdict"] != "deny":
            raise src.error(f"rule {rid!r}: unknown verdict {raw['verdict']!r} (a rule can only conclude "
                            "\"deny\"; allow is what remains when no rule denies)", src.line_of("verdict", where))
        deny = True
    tier = _tier(src, raw["tier"], src.line_of("tier", where)) if "tier" in raw else None
    obligations: list[str] = []
    if "obligation" in raw:
        if not isinstance(raw["obligation"], str):
            raise src.error(f"rule {rid!r}: obligation must be a string", line)
        obligations.append(raw["obligation"])
    if "obligations" in raw:
        if not isinstance(raw["obligations"], list) or not all(isinstance(o, str) for o in raw["obligations"]):
            raise src.error(f"rule {rid!r}: obligations must be a list of strings", line)
        obligations.extend(raw["obligations"])
    source = raw.get("obligations_from")
    if source is not None and (source not in FIELDS or FIELDS[source][0] is not FieldType.LIST):
        raise src.error(f"rule {rid!r}: obligations_from {source!r} is not a list evidence field", line)
    note = raw.get("note")
    if note is not None and not isinstance(note, str):
        raise src.error(f"rule {rid!r}: note must be a string", line)
    return Then(deny, tier, tuple(obligations), source, note)
