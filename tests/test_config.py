"""JSON configs: auto_map and custom pipelines, duplicate keys, chat templates, bounded parsing."""

from __future__ import annotations

import json
import sys
import types
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aivet.analyzers import config
from aivet.analyzers.context import Context, ScanOptions
from aivet.analyzers.engine import Outcome
from aivet.analyzers.source import Source
from aivet.evidence import ArtifactStatus, Finding, Location, Severity
from aivet.formats import FormatError, LimitExceeded
from aivet.limits import DEFAULT_LIMITS
from tests.fixtures.repo_files import fake_secrets
from tests.fixtures.work import HANG_TIMEOUT, growth, python_lines

REPO = frozenset({"config.json", "modeling_tiny.py", "configuration_tiny.py", "tokenization_tiny.py",
                  "sub/config.json", "sub/modeling_sub.py"})


def analyze(data: Any, name: str = "config.json", repo: frozenset[str] = REPO,
            **limits: int) -> tuple[list[Finding], Outcome]:
    text = data if isinstance(data, (str, bytes)) else json.dumps(data)
    raw = text.encode() if isinstance(text, str) else text
    ctx = Context("s", options=ScanOptions(limits=replace(DEFAULT_LIMITS, **limits)), repo_files=repo)
    return ctx.findings, config.analyze(Source.from_bytes(raw, name), ctx)


def ids(findings: list[Finding]) -> list[str]:
    return sorted(f.rule_id for f in findings)


def test_local_auto_map_is_one_low_finding() -> None:
    findings, outcome = analyze({"auto_map": {"AutoConfig": "configuration_tiny.TinyConfig",
                                              "AutoModel": "modeling_tiny.TinyModel"}})
    assert ids(findings) == ["CONFIG-REMOTE-CODE"]
    assert findings[0].severity is Severity.LOW
    assert findings[0].details["modules"] == ("configuration_tiny", "modeling_tiny")
    assert outcome.format == "hf-config"


def test_auto_map_into_another_repository_is_high() -> None:
    findings, _ = analyze({"auto_map": {"AutoModel": "evil-org/payload--modeling_evil.EvilModel"}})
    ext = [f for f in findings if f.rule_id == "CONFIG-REMOTE-CODE-EXTERNAL"]
    assert ext[0].severity is Severity.HIGH
    assert ext[0].details["repo"] == "evil-org/payload"
    assert ext[0].location.pointer == "/auto_map/AutoModel"


def test_auto_map_module_missing_from_the_repository() -> None:
    findings, _ = analyze({"auto_map": {"AutoModel": "modeling_gone.Model"}})
    missing = [f for f in findings if f.rule_id == "CONFIG-AUTO-MAP-MISSING"]
    assert missing[0].severity is Severity.MEDIUM and missing[0].details["expected_file"] == "modeling_gone.py"


def test_auto_map_is_resolved_relative_to_the_config() -> None:
    findings, _ = analyze({"auto_map": {"AutoModel": "modeling_sub.M"}}, name="sub/config.json")
    assert ids(findings) == ["CONFIG-REMOTE-CODE"]


def test_tokenizer_auto_map_lists_with_nulls() -> None:
    findings, outcome = analyze({"auto_map": {"AutoTokenizer": ["tokenization_tiny.T", None]}},
                                name="tokenizer_config.json")
    assert ids(findings) == ["CONFIG-REMOTE-CODE"]
    assert outcome.format == "tokenizer-config"


@pytest.mark.parametrize("ref", ["../../etc/passwd.x", "modeling_x", "a/b.C", "modeling x.M", "--m.C"])
def test_malformed_references(ref: str) -> None:
    findings, _ = analyze({"auto_map": {"AutoModel": ref}})
    assert "CONFIG-AUTO-MAP-INVALID" in ids(findings)


def test_custom_pipelines_are_remote_code_too() -> None:
    findings, _ = analyze({"custom_pipelines": {"my-task": {"impl": "other/repo--pipe.P", "pt": ["AutoModel"]},
                                                "local": {"impl": "modeling_tiny.Pipe"}}})
    assert {"CONFIG-REMOTE-CODE-EXTERNAL", "CONFIG-REMOTE-CODE"} <= set(ids(findings))


def test_duplicate_keys_are_a_parser_differential() -> None:
    text = '{"a": 1, "a": 2, "nested": {"b": 1, "b": 1}}'
    findings, _ = analyze(text)
    dup = [f for f in findings if f.rule_id == "CONFIG-DUPLICATE-KEY"]
    assert dup[0].severity is Severity.MEDIUM and dup[0].details["count"] == 2
    findings, _ = analyze('{"auto_map": {"AutoModel": "modeling_tiny.M"}, "auto_map": {}}')
    assert [f.severity for f in findings if f.rule_id == "CONFIG-DUPLICATE-KEY"] == [Severity.HIGH]


@pytest.mark.parametrize(("value", "severity"), [
    ("org/model..v2", Severity.INFO),  # '..' inside a name is not a path component
    ("./checkpoints/step-100", Severity.INFO),
    ("../../shared/ckpt", Severity.LOW),
    ("C:\\models\\llama", Severity.LOW),
    ("~/ckpt", Severity.LOW),
    ("https://example.org/model", Severity.LOW),
])
def test_reference_paths_that_leave_the_repository_are_low(value: str, severity: Severity) -> None:
    findings, _ = analyze({"_name_or_path": value})
    assert [f.severity for f in findings if f.rule_id == "CONFIG-EXTERNAL-REFERENCE"] == [severity]


def test_references_trust_flags_and_quantization() -> None:
    findings, _ = analyze({"_name_or_path": "/home/alice/ckpt", "base_model": "meta-llama/Llama-3.1-8B",
                           "model_kwargs": {"trust_remote_code": True},
                           "quantization_config": {"quant_method": "my-secret-quant"}})
    by = {f.rule_id: f for f in findings if f.rule_id != "CONFIG-EXTERNAL-REFERENCE"}
    refs = {f.details["key"]: f.severity for f in findings if f.rule_id == "CONFIG-EXTERNAL-REFERENCE"}
    assert refs == {"_name_or_path": Severity.LOW, "base_model": Severity.INFO}
    assert by["CONFIG-TRUST-REMOTE-CODE"].location.pointer == "/model_kwargs/trust_remote_code"
    assert by["CONFIG-QUANT-METHOD"].severity is Severity.LOW
    findings, _ = analyze({"quantization_config": {"quant_method": "gptq"}})
    assert findings == []


def _fake_template(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, Location]]:
    calls: list[tuple[str, Location]] = []
    fake = types.ModuleType("aivet.analyzers.template")

    def analyze_template(text: str, location: Location, ctx: Context, quota: object = None) -> ArtifactStatus:
        calls.append((text, location))
        return ArtifactStatus.ANALYZED

    fake.analyze_template = analyze_template  # type: ignore[attr-defined]
    fake.TemplateQuota = lambda ctx: None  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "aivet.analyzers.template", fake)
    return calls


def test_chat_templates_are_handed_to_the_template_analyzer(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _fake_template(monkeypatch)
    analyze({"chat_template": "{{ messages }}"}, name="tokenizer_config.json")
    analyze({"chat_template": [{"name": "default", "template": "A"}, {"name": "tool_use", "template": "B"}, 5]},
            name="chat_template.json")
    assert calls == [("{{ messages }}", Location("tokenizer_config.json", pointer="/chat_template")),
                     ("A", Location("chat_template.json", pointer="/chat_template/0/template")),
                     ("B", Location("chat_template.json", pointer="/chat_template/1/template"))]


def test_malformed_chat_template_shape(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_template(monkeypatch)
    findings, _ = analyze({"chat_template": {"x": 1}}, name="tokenizer_config.json")
    assert ids(findings) == ["CONFIG-CHAT-TEMPLATE-INVALID"]


def test_real_template_analyzer_is_reached_when_present() -> None:
    pytest.importorskip("aivet.analyzers.template")
    findings, _ = analyze({"chat_template": "{{ ''.__class__.__mro__[1].__subclasses__() }}"},
                          name="tokenizer_config.json")
    assert any(f.location.pointer == "/chat_template" and f.severity >= Severity.HIGH for f in findings)


def test_a_template_stopped_by_its_budget_makes_the_config_partial() -> None:
    from tests.fixtures.templates import CHATML

    findings, outcome = analyze({"chat_template": CHATML}, name="tokenizer_config.json")
    assert outcome.status is ArtifactStatus.ANALYZED
    findings, outcome = analyze({"chat_template": CHATML}, name="tokenizer_config.json", max_template_steps=5)
    assert outcome.status is ArtifactStatus.PARTIAL
    assert [f.details["limit"] for f in findings if f.rule_id == "SCAN-LIMIT-EXCEEDED"] == ["max_template_steps"]
    # one stopped template among several is enough
    findings, outcome = analyze({"chat_template": [{"name": "a", "template": "hi"},
                                                   {"name": "b", "template": CHATML}]},
                                name="chat_template.json", max_template_steps=30)
    assert outcome.status is ArtifactStatus.PARTIAL


def test_chat_templates_per_file_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _fake_template(monkeypatch)
    value = [{"name": f"t{i}", "template": f"T{i}"} for i in range(5)]
    findings, outcome = analyze({"chat_template": value}, name="chat_template.json", max_templates_per_file=2)
    assert [text for text, _ in calls] == ["T0", "T1"] and outcome.status is ArtifactStatus.PARTIAL
    [hit] = [f for f in findings if f.rule_id == "SCAN-LIMIT-EXCEEDED"]
    assert hit.details["limit"] == "max_templates_per_file" and hit.location.pointer == "/chat_template/2/template"


def test_secrets_anywhere_in_json_with_line_numbers() -> None:
    s = fake_secrets()
    text = json.dumps({"a": 1, "nested": {"token": s["hf"]}}, indent=2)
    findings, _ = analyze(text, name="adapter_config.json")
    hit = [f for f in findings if f.rule_id == "SECRET-HF-TOKEN"]
    assert hit and hit[0].location.line == 4 and s["hf"] not in json.dumps(hit[0].to_dict())


def test_invalid_json_named_json_is_a_parse_error() -> None:
    with pytest.raises(FormatError):
        analyze('{"a": 1,,}')


def test_invalid_json_not_named_json_is_treated_as_text() -> None:
    findings, outcome = analyze('{"a" oops ' + fake_secrets()["github"], name="mymodelconfig")
    assert outcome.format == "text" and ids(findings) == ["SECRET-GITHUB-TOKEN"]


def test_deep_nesting_is_bounded() -> None:
    findings, outcome = analyze("[" * 200_000 + "]" * 200_000)
    assert outcome.status is ArtifactStatus.PARTIAL
    assert ids(findings) == ["SCAN-LIMIT-EXCEEDED"]


def test_oversized_json_is_searched_but_not_parsed() -> None:
    findings, outcome = analyze(json.dumps({"x": "a" * 5000}), max_json_bytes=1000)
    assert outcome.status is ArtifactStatus.PARTIAL and ids(findings) == ["SCAN-LIMIT-EXCEEDED"]


def test_jsonl_lines_are_checked() -> None:
    assert analyze('{"a": 1}\n{"b": 2}\n', name="data.jsonl")[1].format == "jsonl"
    with pytest.raises(FormatError):
        analyze('{"a": 1}\n{oops\n', name="data.jsonl")


def _tokenizer_json(n: int) -> str:
    vocab = {f"tok{i}": i for i in range(n)}
    return json.dumps({"model": {"type": "BPE", "vocab": vocab, "merges": [f"a{i} b{i}" for i in range(n // 4)]}})


@pytest.mark.timeout(HANG_TIMEOUT)
def test_large_tokenizer_json_is_handled() -> None:
    findings, outcome = analyze(_tokenizer_json(200_000), name="tokenizer.json")
    assert outcome == Outcome("json") and findings == []


def test_tokenizer_json_work_is_linear_in_its_size() -> None:
    def work(n: int) -> int:
        (findings, outcome), lines = python_lines(lambda: analyze(_tokenizer_json(n), name="tokenizer.json"))
        assert outcome == Outcome("json") and findings == []
        return lines

    assert growth(work, 2000) <= 5  # linear gives about 4, quadratic about 16


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(
        st.sampled_from(["auto_map", "chat_template", "custom_pipelines", "trust_remote_code", "impl",
                         "quantization_config", "quant_method", "_name_or_path", "AutoModel", "x"]), children,
        max_size=5),
    max_leaves=40)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_json_values, st.sampled_from(["config.json", "tokenizer_config.json", "chat_template.json", "x.json"]))
def test_random_json_never_raises(value: Any, name: str) -> None:
    analyze(json.dumps(value), name=name)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300), st.sampled_from(["config.json", "notjson", "x.jsonl"]))
def test_random_bytes_raise_only_format_errors(data: bytes, name: str) -> None:
    try:
        analyze(data, name=name)
    except (FormatError, LimitExceeded):
        pass


def test_rule_catalogue_of_the_repository_checks() -> None:
    import re as _re

    from aivet import rules
    from aivet.analyzers import pycode, secrets

    for module, prefix in ((config, "CONFIG-"), (pycode, "CODE-"), (secrets, "SECRET-")):
        for rule in module.RULES:
            assert _re.fullmatch(r"[A-Z0-9]+(-[A-Z0-9]+)+", rule.id) and rule.id.startswith(prefix)
            assert rule.title and len(rule.description) > 40 and rule.atlas
            assert rules.get(rule.id) is rule
