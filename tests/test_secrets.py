"""Secrets in repository text: specific patterns, redaction, line numbers, placeholders."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aivet.analyzers import secrets
from aivet.analyzers.context import Context, ScanOptions
from aivet.analyzers.source import Source
from aivet.evidence import ArtifactStatus, Finding, Location, Severity
from aivet.limits import DEFAULT_LIMITS
from tests.fixtures.repo_files import fake_secrets
from tests.fixtures.work import HANG_TIMEOUT, growth, python_lines

S = fake_secrets()

EXPECTED = {
    "hf": "SECRET-HF-TOKEN",
    "openai": "SECRET-OPENAI-KEY",
    "anthropic": "SECRET-ANTHROPIC-KEY",
    "aws_id": "SECRET-AWS-KEY",
    "github": "SECRET-GITHUB-TOKEN",
    "gitlab": "SECRET-GITLAB-TOKEN",
    "slack": "SECRET-SLACK-TOKEN",
    "google": "SECRET-GOOGLE-API-KEY",
    "stripe": "SECRET-STRIPE-KEY",
    "pem": "SECRET-PRIVATE-KEY",
    "jwt": "SECRET-JWT",
    "db": "SECRET-DATABASE-URL",
    "azure": "SECRET-AZURE-STORAGE-KEY",
}


def text_findings(text: str, name: str = "README.md", **limits: int) -> tuple[list[Finding], ArtifactStatus]:
    ctx = Context("s", options=ScanOptions(limits=replace(DEFAULT_LIMITS, **limits)))
    outcome = secrets.analyze_text(Source.from_bytes(text.encode(), name), ctx)
    return ctx.findings, outcome.status


@pytest.mark.parametrize("kind", sorted(EXPECTED))
def test_each_kind_is_found_redacted_and_located(kind: str) -> None:
    secret = S[kind]
    findings, status = text_findings(f"# Model\n\nsome text\nconfig: {secret}\nmore\n")
    assert status is ArtifactStatus.ANALYZED
    assert [f.rule_id for f in findings] == [EXPECTED[kind]]
    f = findings[0]
    assert f.location.line == 4
    assert f.severity >= Severity.MEDIUM
    dumped = json.dumps(f.to_dict())
    # Never the secret itself: not the whole, not its random middle.
    assert secret not in dumped and secret[8:-6] not in dumped
    assert "…" in f.details["redacted"] or "****" in f.details["redacted"]


def test_redacted_form_keeps_prefix_and_last_four() -> None:
    assert secrets.redact(S["hf"], 3) == "hf_…" + S["hf"][-4:]
    assert secrets.redact_text(f"token={S['github']} end") == f"token=ghp_…{S['github'][-4:]} end"


def test_aws_secret_key_next_to_its_id_is_noted() -> None:
    findings, _ = text_findings(f"aws_access_key_id={S['aws_id']}\nsecret={S['aws_secret']}\n")
    assert findings[0].details.get("secret_access_key_nearby")
    assert S["aws_secret"] not in json.dumps([f.to_dict() for f in findings])


@pytest.mark.parametrize("text", [
    "hf_" + "x" * 34,
    "AKIA" + "IOSFODNN7" + "EXAMPLE",
    "postgres://user:password@localhost:5432/db",
    "mysql://root:${DB_PASSWORD}@db:3306/x",
])
def test_placeholders_are_low_or_ignored(text: str) -> None:
    findings, _ = text_findings(f"example: {text}\n")
    assert all(f.severity <= Severity.LOW for f in findings)


@pytest.mark.parametrize("text", [
    "Use `hf_hub_download` to fetch files; see https://huggingface.co/meta-llama/Llama-3.1-8B.",
    "sha256: 3f786850e387550fdab836ed7e6dc881de23001b and commit abcdef0123456789abcdef0123456789abcdef01",
    "The header -----BEGIN RSA PRIVATE KEY----- starts a PEM key block.",
    "sk-learn and scikit-learn are the same; task-specific-sk-model",
    "Visit https://user@example.com/path and ftp://host/file",
    "eyJ is how base64 JSON starts; eyJhbGciOi.eyJzdWIi.not-a-real-signature",
    "tokenizer vocabulary: hf_model, hf_token, ghp_, AKIA, AIza",
])
def test_ordinary_text_is_quiet(text: str) -> None:
    findings, _ = text_findings(text)
    assert findings == []


def test_json_string_values_keep_their_pointer() -> None:
    ctx = Context("s")
    secrets.scan_text(f"key {S['hf']}", Location("config.json", pointer="/note"), ctx)
    assert ctx.findings[0].location.pointer == "/note" and ctx.findings[0].location.line is None


def test_line_offsets_add_to_a_base_line() -> None:
    ctx = Context("s")
    secrets.scan_text(f"a\nb\n{S['hf']}", Location("x.py", line=10), ctx)
    assert ctx.findings[0].location.line == 12


def test_oversized_text_is_partial_but_searched() -> None:
    findings, status = text_findings(f"{S['github']}\n" + "x" * 5000, max_text_file_bytes=1000)
    assert status is ArtifactStatus.PARTIAL
    assert {f.rule_id for f in findings} == {"SECRET-GITHUB-TOKEN", "SCAN-LIMIT-EXCEEDED"}


def test_finding_count_is_capped() -> None:
    many = "\n".join(fake_secrets(i)["hf"] for i in range(30))
    findings, _ = text_findings(many, max_findings_per_file=5)
    assert len([f for f in findings if f.rule_id == "SECRET-HF-TOKEN"]) == 5
    assert any(f.rule_id == "SCAN-LIMIT-EXCEEDED" for f in findings)


def test_non_utf8_text_is_read_with_replacement() -> None:
    ctx = Context("s")
    data = b"caf\xe9 \xff\xfe " + S["hf"].encode()
    secrets.analyze_text(Source.from_bytes(data, "notes.txt"), ctx)
    assert [f.rule_id for f in ctx.findings] == ["SECRET-HF-TOKEN"]


@pytest.mark.timeout(HANG_TIMEOUT)  # catastrophic regex backtracking would hang here
def test_large_plain_text_finishes() -> None:
    text = ('"lorem": 1234, "ipsum_dolor": 5, "sit amet": 7, http://example.com/x:y@z\n' * 60_000)
    assert secrets.find_secrets(text) == []


def test_plain_text_costs_python_work_linear_in_its_size() -> None:
    line = '"lorem": 1234, "ipsum_dolor": 5, "sit amet": 7, http://example.com/x:y@z\n'

    def work(n: int) -> int:
        found, lines = python_lines(lambda: secrets.find_secrets(line * n))
        assert found == []
        return lines

    assert growth(work, 500) <= 5


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(["hf_", "sk-", "sk-ant-", "AKIA", "ghp_", "github_pat_", "glpat-", "xoxb-", "AIza",
                                 "sk_live_", "-----BEGIN PRIVATE KEY-----", "eyJ", ".", "://", ":", "@", "\n",
                                 "AccountName=a;AccountKey=", "postgres", "A", "z", "9", "+", "/", "=", " ",
                                 "Ab3dE5gH7jK9mN1pQ3sT5vX7zA9cE1gI3kM5o"]), max_size=80).map("".join))
def test_random_token_soup_never_raises_and_never_leaks(text: str) -> None:
    ctx = Context("s")
    secrets.scan_text(text, Location("x.txt"), ctx)
    for f in ctx.findings:
        assert f.location.line is not None and f.location.line >= 1
        assert "…" in f.details["redacted"] or "****" in f.details["redacted"] or f.rule_id == "SECRET-PRIVATE-KEY"
