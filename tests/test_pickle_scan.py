"""Pickle files through the whole scanner: ``aivet.scan(path)`` on the corpus and on edge cases."""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import aivet
from aivet.analyzers.context import Context
from aivet.analyzers.pickle import RULES, analyze_pickle
from aivet.analyzers.pickle_vm import INERT_MIN_BYTES, PickleVM
from aivet.analyzers.source import Source
from aivet.evidence import Evidence, Severity
from aivet.limits import Limits
from tests.fixtures import Sample, marker_path
from tests.fixtures.pickles import Ops, build
from tests.fixtures.work import HANG_TIMEOUT


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Sample], Path]:
    root = tmp_path_factory.mktemp("pickles")
    markers = tmp_path_factory.mktemp("pickle-markers")
    return build(root, markers), markers


@pytest.fixture(scope="module")
def results(corpus: tuple[list[Sample], Path]) -> dict[str, Evidence]:
    return {s.name: aivet.scan(s.path) for s in corpus[0]}


def test_rules_are_well_formed() -> None:
    for rule in RULES:
        assert rule.id.startswith("PICKLE-") and rule.id.upper() == rule.id
        assert rule.atlas and rule.cwe and len(rule.description) > 80


def test_every_malicious_pickle_is_caught(corpus: tuple[list[Sample], Path], results: dict[str, Evidence]) -> None:
    missed = []
    for sample in corpus[0]:
        if not sample.malicious:
            continue
        ev = results[sample.name]
        found = {f.rule_id for f in ev.findings}
        if ev.max_severity is None or ev.max_severity < sample.min_severity or not set(sample.expect_rules) <= found:
            missed.append(f"{sample.name} ({sample.technique}): {ev.max_severity} {sorted(found)}")
    assert not missed, "\n".join(missed)


def test_clean_pickles_are_quiet_and_complete(corpus: tuple[list[Sample], Path],
                                              results: dict[str, Evidence]) -> None:
    noisy = []
    for sample in corpus[0]:
        if sample.malicious:
            continue
        ev = results[sample.name]
        if ev.at_or_above(Severity.LOW) or any(a.status.value != "analyzed" for a in ev.artifacts):
            noisy.append(f"{sample.name}: {[f.message for f in ev.findings]} {[a.to_dict() for a in ev.artifacts]}")
    assert not noisy, "\n".join(noisy)


def test_formats_are_named(results: dict[str, Evidence]) -> None:
    assert results["pickle-clean-joblib-tree"].artifacts[0].format == "joblib"
    assert results["pickle-clean-dict-p0"].artifacts[0].format == "pickle"
    if "pickle-clean-torch-legacy" in results:
        assert results["pickle-clean-torch-legacy"].artifacts[0].format == "pytorch-legacy"


def test_finding_details(corpus: tuple[list[Sample], Path], results: dict[str, Evidence]) -> None:
    finding = next(f for f in results["pickle-os-system-p2"].findings if f.rule_id == "PICKLE-DANGEROUS-GLOBAL")
    sample = next(s for s in corpus[0] if s.name == "pickle-os-system-p2")
    assert finding.location.offset == len(sample.path.read_bytes()) - 2  # the REDUCE that calls it
    assert finding.severity is Severity.CRITICAL
    assert finding.details["global"] == "os.system"
    assert finding.details["call"].startswith("os.system(\"touch '")
    assert finding.details["classification"] == "dangerous"
    assert finding.details["opcode"] == "GLOBAL"
    chain = results["pickle-getattr-import-p4"].findings
    rendered = {f.details["global"]: f.details["call"] for f in chain}
    assert rendered["builtins.getattr"] == "builtins.getattr(<builtins.__import__('os')>, 'system')"
    assert rendered["os.system"].startswith("os.system(")


def test_the_payloads_are_live(corpus: tuple[list[Sample], Path], tmp_path: Path) -> None:
    """A real pickle.load runs a corpus payload (so the corpus is real) and aivet never does."""
    samples, markers = corpus
    live = [s for s in samples if "live" in s.tags]
    for sample in live:
        aivet.scan(sample.path)
    assert sorted(p.name for p in markers.iterdir()) == []
    for sample in (live[0], next(s for s in live if s.name == "pickle-getattr-import-p4")):
        code = f"import pickle; pickle.load(open({str(sample.path)!r}, 'rb'))"
        subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, timeout=60)
        marker = marker_path(markers, sample.name)
        assert marker.exists(), sample.name
        marker.unlink()


def test_unknown_global_severity_depends_on_use_and_strict(tmp_path: Path) -> None:
    ref_only = tmp_path / "ref.pkl"
    ref_only.write_bytes(Ops(2).glob("mypkg", "Thing").stop())
    finding = aivet.scan(ref_only).findings[0]
    assert (finding.rule_id, finding.severity) == ("PICKLE-UNSAFE-GLOBAL", Severity.MEDIUM)
    assert aivet.scan(ref_only, strict=True).findings[0].severity is Severity.HIGH
    called = tmp_path / "call.pkl"
    called.write_bytes(Ops(2).glob("mypkg", "Thing").empty_tuple().reduce().stop())
    assert aivet.scan(called).findings[0].severity is Severity.HIGH


def test_repeated_calls_are_one_finding(tmp_path: Path) -> None:
    ops = Ops(2).mark()
    for i in range(50):
        ops.call1("os", "system", f"echo {i}")
    path = tmp_path / "many.pkl"
    path.write_bytes(ops.raw(b"l").stop())
    findings = aivet.scan(path).findings
    assert len(findings) == 1
    assert findings[0].details["call_count"] == 50
    assert len(findings[0].details["calls"]) == Limits().max_reported_calls_per_global


def test_truncated_pickle_reports_findings_and_the_error(tmp_path: Path) -> None:
    path = tmp_path / "cut.pkl"
    path.write_bytes(Ops(2).call1("os", "system", "id").stop()[:-1] + b"(")
    ev = aivet.scan(path)
    assert {f.rule_id for f in ev.findings} == {"PICKLE-DANGEROUS-GLOBAL", "SCAN-PARSE-ERROR"}
    assert ev.artifacts[0].status.value == "error"


def test_in_memory_and_mapped_sources_agree(tmp_path: Path) -> None:
    data = Ops(4).call1("os", "system", "id").stop()
    path = tmp_path / "x.pkl"
    path.write_bytes(data)
    mapped, memory = Context("s"), Context("s")
    analyze_pickle(Source.from_file(path, "x.pkl"), mapped)
    analyze_pickle(Source.from_bytes(data, "x.pkl"), memory, ecosystem="torch")
    assert [f.to_dict() for f in mapped.findings] == [f.to_dict() for f in memory.findings]


def test_byte_limit_makes_the_artifact_partial(tmp_path: Path) -> None:
    path = tmp_path / "big.pkl"
    path.write_bytes(pickle.dumps(list(range(5000)), protocol=2))
    ev = aivet.scan(path, limits=Limits(max_pickle_bytes=1000))
    assert [f.rule_id for f in ev.findings] == ["SCAN-LIMIT-EXCEEDED"]
    assert ev.artifacts[0].status.value == "partial"


@pytest.mark.timeout(HANG_TIMEOUT)
def test_many_small_objects_take_the_fast_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A scaled-down version of the benchmark in docs/pickle.md (300k objects there).

    Its speed is measured in bench/; here, without a clock, that a whole scan of it takes the
    data-only walk (no Python work per object) and never enters the emulator's opcode loop.
    """
    data = pickle.dumps([{"id": i, "name": f"item{i}", "vals": [i, i + 1.5], "tag": None}
                         for i in range(30_000)], protocol=4)
    assert len(data) >= INERT_MIN_BYTES
    path = tmp_path / "many.pkl"
    path.write_bytes(data)
    emulated: list[int] = []
    real_loop = PickleVM._loop

    def loop(self: PickleVM, pos: int) -> Any:
        emulated.append(pos)
        return real_loop(self, pos)

    monkeypatch.setattr(PickleVM, "_loop", loop)
    ev = aivet.scan(path)
    assert not ev.findings and ev.artifacts[0].status.value == "analyzed"
    assert emulated == []


@pytest.mark.parametrize("limits", [Limits(max_pickle_opcodes=2_000), Limits(max_pickle_bytes=4_096)],
                         ids=["opcodes", "bytes"])
def test_a_payload_past_a_limit_is_as_loud_as_the_payload(tmp_path: Path, limits: Limits) -> None:
    """Padding is cheap: a pickle the limit cut short is high (a loader runs the rest), not medium."""
    padding = Ops(2)
    for i in range(20_000):  # past the first 64 KiB chunk (limits are checked per chunk); not data-only
        padding.int(i).raw(b"0")  # push, POP
    data = padding.glob("os", "system").str("true").tup1().reduce().stop()
    (tmp_path / "padded.pkl").write_bytes(data)
    ev = aivet.scan(tmp_path, limits=limits)
    limit_findings = [f for f in ev.findings if f.rule_id == "SCAN-LIMIT-EXCEEDED"]
    assert limit_findings and all(f.severity is Severity.HIGH for f in limit_findings)
    assert "not analysed" in limit_findings[0].message
    assert ev.artifacts[0].status.value == "partial"
    assert not [f for f in ev.findings if f.rule_id == "PICKLE-DANGEROUS-GLOBAL"]  # it was past the limit
