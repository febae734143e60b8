"""Policy as code: the rule format, its validation (errors name file:line), and the engine's semantics."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aivet.evidence import Evidence, Finding, Location, Record, Severity
from aivet.policy import FIELDS, SHIPPED_PROFILES, DeclaredUse, PolicyError, Tier, Verdict, evaluate, load_policy
from aivet.policy.engine import facts, holds
from aivet.policy.model import AllOf, AnyOf, Not, Predicate
from tests.fixtures.work import HANG_TIMEOUT


def write(tmp_path: Path, text: str, name: str = "policy.toml") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8", "surrogateescape"))
    return path


def evidence(*, severity: Severity | None = None, status: str = "missing", license_: dict | None = None,
             conflicts: list[dict] | None = None, probes: list[dict] | None = None) -> Evidence:
    findings = ()
    if severity is not None:
        findings = (Finding("PICKLE-DANGEROUS-GLOBAL", severity, "x", Location("m.bin")),)
    records = [Record("signature", "m", {"status": status})]
    if license_ is not None:
        records.append(Record("license", "m", {"license": license_, "disagreement": None, "altered": False}))
    if conflicts is not None:
        records.append(Record("license-conflicts", "m", {"conflicts": conflicts}))
    for p in probes or ():
        records.append(Record("probe", "m", p))
    return Evidence(findings=findings, records=tuple(records))


APACHE = {"id": "apache-2.0", "family": "permissive", "commercial_use": True, "allows_derivatives": True,
          "monthly_user_cap": None, "osi_approved": True,
          "obligations": [{"kind": "notice", "text": "Keep the NOTICE file."}]}


# -- shipped profiles ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", SHIPPED_PROFILES)
def test_shipped_profiles_load_and_every_rule_cites_a_framework_item(name: str) -> None:
    policy = load_policy(name)
    assert policy.rules
    for rule in policy.rules:
        assert rule.cites, f"{name}: rule {rule.id} cites nothing"
        assert rule.description


def test_nist_profile_rules_cite_nist_owasp_or_atlas() -> None:
    policy = load_policy("nist")
    own = [r for r in policy.rules if r.id.startswith("nist-")]
    assert len(own) >= 4
    for rule in own:
        assert any(c.startswith("NIST AI") for c in rule.cites), rule.id
    cited = {c for r in policy.rules for c in r.cites}
    assert {"OWASP LLM03:2025", "OWASP LLM04:2025", "AML.T0011.000", "AML.T0010.003"} <= cited


def test_strict_extends_default() -> None:
    strict = load_policy("strict")
    assert strict.chain == ("strict", "default")
    assert strict.baseline is Tier.LIMITED
    ids = [r.id for r in strict.rules]
    assert ids.index("deny-unsafe-content") < ids.index("strict-require-signature")


# -- the engine ---------------------------------------------------------------------------------------


def test_default_clean_unsigned_permissive_is_allowed_with_obligations_and_says_unverified() -> None:
    d = evaluate(load_policy("default"), evidence(license_=APACHE, conflicts=[]))
    assert d.verdict is Verdict.ALLOW_WITH_OBLIGATIONS and d.exit_code == 0
    assert d.tier is Tier.LIMITED
    assert any("unverified" in r.message.lower() for r in d.reasons)
    assert "Keep the NOTICE file." in d.obligations
    assert d.extra["tier_policy"]["tier"] == "limited"
    assert d.evidence_sha256 and d.evidence_sha256.startswith("sha256:")


def test_strict_denies_the_same_model() -> None:
    d = evaluate(load_policy("strict"), evidence(license_=APACHE, conflicts=[]))
    assert d.verdict is Verdict.DENY and d.exit_code == 1
    assert "strict-require-signature" in [r.rule for r in d.reasons if r.effect == "deny"]


def test_critical_finding_is_denied_and_prohibited_with_cites() -> None:
    d = evaluate(load_policy("default"), evidence(severity=Severity.CRITICAL, status="verified", license_=APACHE))
    assert d.verdict is Verdict.DENY and d.tier is Tier.PROHIBITED
    first = d.reasons[0]
    assert first.rule == "deny-unsafe-content" and "AML.T0011.000" in first.cites
    assert "scan.max_severity=critical" in first.evidence


def test_license_conflict_of_severity_deny_denies() -> None:
    nc = dict(APACHE, id="cc-by-nc-4.0", family="creative-commons", commercial_use=False)
    conflict = [{"use": "commercial", "message": "no commercial use", "severity": "deny"}]
    d = evaluate(load_policy("default"), evidence(status="verified", license_=nc, conflicts=conflict))
    assert d.verdict is Verdict.DENY
    assert {"deny-license-conflict", "deny-non-commercial"} <= {r.rule for r in d.reasons}
    ok = evaluate(load_policy("default"), evidence(status="verified", license_=nc, conflicts=[]),
                  use=DeclaredUse(commercial=False))
    assert ok.verdict is Verdict.ALLOW_WITH_OBLIGATIONS


def test_user_cap_compares_two_fields() -> None:
    llama = dict(APACHE, id="llama3.1", family="llama", monthly_user_cap=700_000_000)
    ev = evidence(status="verified", license_=llama)
    assert evaluate(load_policy("default"), ev, use=DeclaredUse(monthly_users=800_000_000)).verdict is Verdict.DENY
    assert evaluate(load_policy("default"), ev, use=DeclaredUse(monthly_users=5000)).verdict is not Verdict.DENY
    assert evaluate(load_policy("default"), ev, use=DeclaredUse()).verdict is not Verdict.DENY  # unknown users


def test_failed_probes_from_the_ledger_raise_the_tier() -> None:
    ev = evidence(status="verified", license_=APACHE, probes=[{"probe": "prompt-injection", "passed": False},
                                                               {"probe": "leakage", "passed": True}])
    values = facts(ev, DeclaredUse())
    assert values["probe.runs"] == 2 and values["probe.failed"] == ["prompt-injection"]
    assert evaluate(load_policy("default"), ev).tier is Tier.ELEVATED


def test_clean_verified_permissive_without_obligations_is_plainly_allowed(tmp_path: Path) -> None:
    bare = dict(APACHE, obligations=[])
    d = evaluate(load_policy("default"), evidence(status="verified", license_=bare, conflicts=[]))
    assert d.verdict is Verdict.ALLOW and d.tier is Tier.MINIMAL and not d.obligations


def test_facts_cover_every_declared_field() -> None:
    assert set(facts(Evidence(), DeclaredUse())) == set(FIELDS)


def test_combinators() -> None:
    values = {"scan.findings": 3, "signature.status": "missing", "scan.rules": ["A", "B"]}
    gt = Predicate("scan.findings", ">", 2)
    ok = Predicate("signature.status", "==", "verified")
    assert holds(AnyOf((gt, ok)), values) and not holds(AllOf((gt, ok)), values)
    assert holds(Not(ok), values)
    assert holds(Predicate("scan.rules", "intersects", ("B", "C")), values)
    assert holds(Predicate("signature.status", "matches", "miss*"), values)
    assert not holds(Predicate("scan.findings", "<", 1), {"scan.findings": None})


def test_decision_round_trips_through_json() -> None:
    from aivet.policy.decision import Decision

    d = evaluate(load_policy("nist"), evidence(license_=APACHE, conflicts=[]))
    assert Decision.from_dict(d.to_dict()).to_dict() == d.to_dict()


# -- extending and bypassing --------------------------------------------------------------------------


def test_organisation_profile_extends_and_overrides_use(tmp_path: Path) -> None:
    path = write(tmp_path, """
extends = "default"
[use]
commercial = false
monthly_users = 5000
regions = ["eu"]

[[rule]]
id = "acme-no-gguf"
description = "ACME serves only safetensors."
cites = ["ACME-SEC-12"]
when = { field = "scan.rules", op = "contains", value = "GGUF-TEMPLATE" }
then = { verdict = "deny" }
""")
    policy = load_policy(path)
    assert policy.use == DeclaredUse(commercial=False, monthly_users=5000, regions=("EU",))
    assert policy.chain[1:] == ("default",)
    assert policy.rules[-1].id == "acme-no-gguf" and policy.rules[-1].origin.endswith("policy.toml:9")


def test_unsafe_bypass_switches_a_rule_off_and_says_so(tmp_path: Path) -> None:
    path = write(tmp_path, """
extends = "strict"
[[rule]]
id = "strict-require-signature"
replaces = true
unsafe_bypass = "internal mirror, signed out of band (ticket SEC-42)"
""")
    d = evaluate(load_policy(path), evidence(license_=APACHE, conflicts=[]))
    assert "strict-require-signature" not in [r.rule for r in d.reasons if r.effect == "deny"]
    note = d.reasons[0]
    assert note.rule == "strict-require-signature" and "UNSAFE BYPASS" in note.message and "SEC-42" in note.message


def test_redefining_an_inherited_rule_needs_replaces(tmp_path: Path) -> None:
    path = write(tmp_path, """extends = "default"

[[rule]]
id = "deny-unsafe-content"
when = { field = "scan.max_severity", op = ">=", value = "critical" }
then = { verdict = "deny" }
""")
    with pytest.raises(PolicyError, match=r"policy.toml:4: .*already defined.*replaces = true"):
        load_policy(path)


# -- errors name the place ----------------------------------------------------------------------------

BAD = [
    ("not toml", "[[rule]\nid = 1\n", r"policy.toml:1: not valid TOML"),
    ("unknown field", """[[rule]]
id = "r1"
when = { field = "scan.max_sevrity", op = ">=", value = "high" }
then = { verdict = "deny" }
""", r"policy.toml:3: rule 'r1': unknown evidence field 'scan.max_sevrity'; fields of 'scan'"),
    ("empty all-of", """

[[rule]]
id = "r2"
when = { all = [] }
then = { verdict = "deny" }
""", r"policy.toml:5: rule 'r2': empty all-of"),
    ("unknown verdict", """[[rule]]
id = "r3"
when = { field = "scan.findings", op = ">", value = 0 }
then = { verdict = "allow" }
""", r"policy.toml:4: rule 'r3': unknown verdict 'allow'"),
    ("wrong value type", """[[rule]]
id = "r4"
when = { field = "scan.findings", op = ">", value = "many" }
then = { tier = "elevated" }
""", r"policy.toml:3: rule 'r4': scan.findings is a int field"),
    ("bad operator", """[[rule]]
id = "r5"
when = { field = "use.commercial", op = ">", value = true }
then = { tier = "elevated" }
""", r"policy.toml:3: rule 'r5': operator '>' does not apply to use.commercial"),
    ("unknown tier", """[[rule]]
id = "r6"
when = { field = "scan.findings", op = ">", value = 0 }
then = { tier = "high" }
""", r"policy.toml:4: unknown tier 'high'"),
    ("bad severity", """[[rule]]
id = "r7"
when = { field = "scan.max_severity", op = ">=", value = "severe" }
then = { tier = "elevated" }
""", r"policy.toml:3: rule 'r7': unknown severity 'severe'"),
    ("missing when", """[[rule]]
id = "r8"
then = { tier = "elevated" }
""", r"policy.toml:2: rule 'r8' has no 'when'"),
    ("unknown use key", """[use]
commercial = true
users = 4
""", r"policy.toml:3: unknown key 'users' in \[use\]"),
    ("unknown extends", 'extends = "lenient"\n', r"no policy file .*lenient.* and no shipped profile"),
    ("duplicate id", """[[rule]]
id = "twice"
when = { field = "scan.findings", op = ">", value = 0 }
then = { tier = "elevated" }

[[rule]]
id = "twice"
when = { field = "scan.findings", op = ">", value = 1 }
then = { tier = "elevated" }
""", r"policy.toml:7: duplicate rule id 'twice'"),
    ("deep toml", "a = " + "[" * 50_000, r"policy.toml: not valid TOML: nested too deeply"),
    ("unknown top key", 'extend = "default"\n', r"policy.toml:1: unknown top-level key 'extend'"),
    ("not utf-8", "\udcff", r"cannot read the policy"),
    ("empty bypass", """extends = "default"
[[rule]]
id = "deny-unsafe-content"
replaces = true
unsafe_bypass = ""
""", r"policy.toml:5: rule 'deny-unsafe-content': unsafe_bypass must give the reason"),
]


@pytest.mark.parametrize(("what", "text", "message"), BAD, ids=[b[0] for b in BAD])
def test_policy_errors_name_the_place(tmp_path: Path, what: str, text: str, message: str) -> None:
    with pytest.raises(PolicyError, match=message):
        load_policy(write(tmp_path, text))


def test_extends_cycle_is_an_error(tmp_path: Path) -> None:
    write(tmp_path, 'extends = "b.toml"\n', "a.toml")
    write(tmp_path, 'extends = "a.toml"\n', "b.toml")
    with pytest.raises(PolicyError, match="extends cycle"):
        load_policy(tmp_path / "a.toml")


def test_policy_error_is_an_artifact_error_for_the_cli_edge() -> None:
    from aivet.errors import ArtifactError

    assert issubclass(PolicyError, ArtifactError)


# -- hostile policy files -----------------------------------------------------------------------------

_FRAGMENTS = st.sampled_from([
    "[[rule]]\n", 'id = "x"\n', "when = { all = [] }\n", 'when = { field = "scan.findings", op = ">", value = 1 }\n',
    'then = { verdict = "deny" }\n', 'then = { tier = "prohibited" }\n', 'extends = "default"\n', "[use]\n",
    "commercial = 1\n", "[tiers]\n", 'baseline = "minimal"\n', "when = { not = { not = {} } }\n", "= = =\n",
    'when = { any = [ { field = "license.id", op = "absent" } ] }\n', "[tiers.elevated]\n", "audit = 3\n",
    'unsafe_bypass = "r"\n', "replaces = true\n", '"\\u0000" = 1\n',
])


@pytest.mark.timeout(HANG_TIMEOUT)
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(_FRAGMENTS, max_size=12), st.binary(max_size=64))
def test_random_policies_load_or_fail_cleanly(tmp_path: Path, parts: list[str], noise: bytes) -> None:
    path = tmp_path / "fuzz.toml"
    path.write_bytes("".join(parts).encode() + noise)
    try:
        policy = load_policy(path)
    except PolicyError:
        pass
    else:
        evaluate(policy, evidence())


def test_deeply_nested_condition_is_refused(tmp_path: Path) -> None:
    cond = '{ field = "scan.findings", op = ">", value = 0 }'
    for _ in range(40):
        cond = "{ not = " + cond + " }"
    path = write(tmp_path, f'[[rule]]\nid = "deep"\nwhen = {cond}\nthen = {{ tier = "elevated" }}\n')
    with pytest.raises(PolicyError, match="nested deeper"):
        load_policy(path)


# -- hostile evidence (records read back from a ledger are only as good as whoever wrote them) ------------

_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=8,
)
_KEYS = st.sampled_from(["status", "signer", "license", "id", "family", "commercial_use", "monthly_user_cap",
                         "obligations", "conflicts", "publisher", "base_models", "declared_base_models",
                         "family_consistent", "probe", "passed", "license_name", "parameter_count"])
_RECORD = st.builds(
    lambda kind, data: Record(kind, "m", data),
    st.sampled_from(["signature", "license", "license-conflicts", "origin", "lineage", "bom", "probe", "other"]),
    st.dictionaries(_KEYS, _JSON, max_size=6),
)


_SHIPPED = [load_policy(name) for name in SHIPPED_PROFILES]


@settings(max_examples=200, deadline=None)
@given(st.lists(_RECORD, max_size=8))
def test_hostile_records_never_break_facts_or_evaluation(records: list[Record]) -> None:
    ev = Evidence(records=tuple(records))
    for policy in _SHIPPED:
        decision = evaluate(policy, ev, use=DeclaredUse(monthly_users=10))
        assert decision.verdict in Verdict
    values = facts(ev, DeclaredUse())
    for field_name, (ftype, _) in FIELDS.items():
        value = values[field_name]
        if ftype.value == "list":
            assert isinstance(value, list) and all(isinstance(v, str) for v in value), field_name
        elif value is not None and ftype.value in ("bool", "int"):
            assert type(value) is (bool if ftype.value == "bool" else int), field_name


def test_policy_read_is_bounded(tmp_path: Path) -> None:
    import os

    if not os.path.exists("/dev/zero"):
        pytest.skip("no /dev/zero")
    link = tmp_path / "zero.toml"
    link.symlink_to("/dev/zero")
    with pytest.raises(PolicyError, match="larger than"):
        load_policy(link)


# -- the optional Cedar backend -----------------------------------------------------------------------


def test_cedar_conditions_mix_with_typed_rules(tmp_path: Path) -> None:
    pytest.importorskip("cedarpy")
    path = write(tmp_path, """extends = "default"

[[rule]]
id = "acme-eu-commercial-needs-signature"
description = "Commercial EU deployments need a verified signature."
cites = ["ACME-EU-3"]
when = { all = [
  { cedar = 'context.use.commercial && context.use.regions.contains("EU")' },
  { cedar = 'context.signature.status != "verified" || context.scan.max_severity >= 2' },
] }
then = { verdict = "deny" }
""")
    policy = load_policy(path)
    ev = evidence(license_=APACHE, conflicts=[])
    d = evaluate(policy, ev, use=DeclaredUse(regions=("EU",)))
    assert d.verdict is Verdict.DENY and d.reasons[-1].rule == "acme-eu-commercial-needs-signature"
    assert "use.regions=[EU]" in d.reasons[-1].evidence
    assert evaluate(policy, ev, use=DeclaredUse(regions=("US",))).verdict is not Verdict.DENY
    signed = evidence(status="verified", license_=APACHE, conflicts=[])
    assert evaluate(policy, signed, use=DeclaredUse(regions=("EU",))).verdict is not Verdict.DENY


@pytest.mark.parametrize(("condition", "message"), [
    ('context.signature.state == "ok"', r"policy.toml:3: rule 'c': Cedar condition rejected: .*signature.state"),
    ("context.scan.findings >", r"policy.toml:3: rule 'c': Cedar condition rejected: .*parse error"),
    ('context.signature.status > 3', r"policy.toml:3: rule 'c': Cedar condition rejected"),
])
def test_cedar_condition_errors_name_the_place(tmp_path: Path, condition: str, message: str) -> None:
    pytest.importorskip("cedarpy")
    path = write(tmp_path, f"[[rule]]\nid = \"c\"\nwhen = {{ cedar = '{condition}' }}\nthen = {{ tier = \"elevated\" }}\n")
    with pytest.raises(PolicyError, match=message):
        load_policy(path)
