from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aivet.evidence import (
    Artifact,
    ArtifactStatus,
    Evidence,
    Finding,
    Location,
    Record,
    Severity,
    Subject,
)

json_scalars = st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=20)
json_values = st.recursive(json_scalars, lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=8), c, max_size=3), max_leaves=10)

findings = st.builds(
    Finding,
    rule_id=st.from_regex(r"[A-Z]{3,8}-[A-Z-]{3,20}", fullmatch=True),
    severity=st.sampled_from(list(Severity)),
    message=st.text(max_size=50),
    location=st.builds(Location, path=st.text(min_size=1, max_size=30), offset=st.none() | st.integers(0, 2**40),
                       line=st.none() | st.integers(1, 10**6), pointer=st.none() | st.text(max_size=10)),
    subject=st.text(max_size=10),
    details=st.dictionaries(st.text(max_size=8), json_values, max_size=4),
)


def test_severity_is_ordered_and_parses() -> None:
    assert Severity.INFO < Severity.LOW < Severity.MEDIUM < Severity.HIGH < Severity.CRITICAL
    assert max([Severity.LOW, Severity.CRITICAL, Severity.HIGH]) is Severity.CRITICAL
    assert Severity.parse(" High ") is Severity.HIGH
    with pytest.raises(ValueError, match="expected one of"):
        Severity.parse("severe")


@settings(deadline=None)  # Hypothesis' default 200 ms deadline is a wall-clock assertion
@given(st.lists(findings, max_size=5))
def test_evidence_round_trips_through_json(items: list[Finding]) -> None:
    ev = Evidence(
        subjects=(Subject("s", "directory", "/m"), Subject("r@abc", "hf-cache", "/c", repo_id="o/n", revision="abc")),
        artifacts=(Artifact("a.pkl", "pickle", 10, ArtifactStatus.ANALYZED, "s"),),
        findings=tuple(items),
        records=(Record("signature", "s", {"verified": False, "why": ["x"]}),),
    )
    again = Evidence.from_json(ev.to_json())
    assert again == ev
    assert json.loads(again.to_json()) == json.loads(ev.to_json())


def test_findings_are_immutable_and_hashable() -> None:
    f = Finding("X-Y", Severity.HIGH, "m", Location("p"), details={"args": ["a", {"b": 1}]})
    with pytest.raises(AttributeError):
        f.message = "other"  # type: ignore[misc]
    assert hash(f) == hash(Finding("X-Y", Severity.HIGH, "m", Location("p"), details={"args": ["a", {"b": 1}]}))
    assert f.to_dict()["details"] == {"args": ["a", {"b": 1}]}


def test_summary_and_queries() -> None:
    ev = Evidence(findings=(
        Finding("A", Severity.LOW, "m", Location("x")),
        Finding("B", Severity.CRITICAL, "m", Location("y")),
    ))
    assert ev.max_severity is Severity.CRITICAL
    assert [f.rule_id for f in ev.at_or_above(Severity.MEDIUM)] == ["B"]
    summary = ev.to_dict()["summary"]
    assert summary["by_severity"]["critical"] == 1 and summary["max_severity"] == "critical"
    assert not ev.clean
    assert Evidence().clean and Evidence().max_severity is None


def test_merge_keeps_subjects_unique() -> None:
    a = Evidence(subjects=(Subject("s", "directory", "/m"),), findings=(Finding("A", "low", "m", Location("x")),))
    b = Evidence(subjects=(Subject("s", "directory", "/m"),), records=(Record("license", "s", {"spdx": "MIT"}),))
    merged = a.merge(b)
    assert len(merged.subjects) == 1 and len(merged.findings) == 1 and len(merged.records) == 1


def test_unknown_schema_major_is_rejected() -> None:
    data = Evidence().to_dict()
    data["schema_version"] = "2.0"
    with pytest.raises(ValueError, match="schema version"):
        Evidence.from_dict(data)
