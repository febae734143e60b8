"""Suppression files: loading, matching, content pins, reports and the gate (docs/suppressions.md)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from pathlib import Path

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import aivet
from aivet import suppressions
from aivet.cli import main as cli
from aivet.cli import quick
from aivet.errors import UsageError
from aivet.evidence import Evidence, Finding, Location, Severity, Subject
from aivet.report import ReportFormat, ReportOptions, render
from aivet.suppressions import SuppressionError
from tests.fixtures import marker_path, marker_shell

SCHEMA = json.loads((Path(__file__).parent.parent / "docs" / "evidence.schema.json").read_text(encoding="utf-8"))
RULES = ("PICKLE-DANGEROUS-GLOBAL", "PICKLE-UNSAFE-GLOBAL", "CODE-MONKEYPATCH", "CODE-EXEC", "CODE-HOOK")
# A medium finding: a cleanup hook whose callable comes from elsewhere (CODE-HOOK).
HOOK = 'import atexit\nimport shutil\natexit.register(shutil.rmtree, "cache")\n'


def _string(text: str) -> bytes:
    raw = text.encode()
    return b"X" + len(raw).to_bytes(4, "little") + raw


def _own_class_pickle() -> bytes:
    """A protocol-2 pickle of ``acme.training.Args()``: a class of the team's own code (high: not allowlisted)."""
    return b"\x80\x02cacme.training\nArgs\n)\x81}b."


def _system_pickle(marker_dir: Path) -> bytes:
    """``os.system(<touch marker>)``: critical; harmless if ever run (it only creates the marker)."""
    return b"\x80\x02cos\nsystem\n" + _string(marker_shell(marker_dir, "suppress")) + b"\x85R."


@pytest.fixture()
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "model"
    root.mkdir()
    (root / "training_args.bin").write_bytes(_own_class_pickle())
    (root / "evil.bin").write_bytes(_system_pickle(tmp_path))
    (root / "config.json").write_text('{"model_type": "llama"}')
    (root / "modeling_x.py").write_text(HOOK)
    return root


def _write(tmp_path: Path, text: str, name: str = "sup.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _rules(evidence: Evidence) -> set[tuple[str, str]]:
    return {(f.rule_id, f.location.path) for f in evidence.findings}


# -- loading -------------------------------------------------------------------------------------

def test_load_reads_every_key(tmp_path: Path) -> None:
    digest = "ab" * 32
    path = _write(tmp_path, f"""
[[suppress]]
rule = "PICKLE-*"
path = "training_args.bin"
subject = "acme/*"
sha256 = "sha256:{digest.upper()}"
reason = "  our own class (SEC-1)  "
expires = 2027-03-01

[[suppress]]
rule = "CODE-MONKEYPATCH"
reason = "flash-attn"
expires = "2027-01-31"
""")
    loaded = suppressions.load(path, RULES)
    first, second = loaded.entries
    assert (first.rule, first.path, first.subject, first.sha256, first.reason, first.expires) == (
        "PICKLE-*", "training_args.bin", "acme/*", digest, "our own class (SEC-1)", dt.date(2027, 3, 1))
    assert first.origin == f"{path} #1" and second.origin == f"{path} #2"
    assert second.expires == dt.date(2027, 1, 31) and second.path is None
    assert loaded.sha256 == _sha(path)


@pytest.mark.parametrize(("text", "message"), [
    ("[[suppress]]\nrule = 'PICKLE-UNSAFE-GLOBAL'\n", "'reason' is required"),
    ("[[suppress]]\nreason = 'x'\n", "'rule' is required"),
    ("[[suppress]]\nrule = 'PICKLE-UNSAFE-GLOBL'\nreason = 'x'\n", "matches no rule"),
    ("[[suppress]]\nrule = 'pickle-unsafe-global'\nreason = 'x'\n", "is not a rule id"),
    ("[[suppress]]\nrule = 'PICKLE-UNSAFE-GLOBAL'\nreason = 'x'\npaths = 'a'\n", "unknown key 'paths'"),
    ("[[suppress]]\nrule = 'PICKLE-UNSAFE-GLOBAL'\nreason = 'x'\nsha256 = 'abc'\n", "64 hexadecimal"),
    ("[[suppress]]\nrule = 'PICKLE-UNSAFE-GLOBAL'\nreason = 'x'\nexpires = 'soon'\n", "is not a date"),
    ("[[suppress]]\nrule = 'PICKLE-UNSAFE-GLOBAL'\nreason = 'x'\nexpires = 2027-01-01T00:00:00\n", "must be a date"),
    ("[[suppress]]\nrule = 'PICKLE-UNSAFE-GLOBAL'\nreason = 3\n", "reason must be a string"),
    ("[[suppress]]\nrule = '*'\nreason = 'everything'\n", "would accept every finding"),
    ("suppress = 'x'\n", "array of tables"),
    ("[ignore]\n", "unknown table or key 'ignore'"),
    ("[[suppress]\n", "not valid TOML"),
])
def test_bad_files_name_the_entry(tmp_path: Path, text: str, message: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(SuppressionError, match=message) as info:
        suppressions.load(path, RULES)
    assert isinstance(info.value, UsageError)  # the CLI turns it into exit code 2


def test_unreadable_huge_and_binary_files(tmp_path: Path) -> None:
    with pytest.raises(SuppressionError, match="cannot read"):
        suppressions.load(tmp_path / "missing.toml", RULES)
    with pytest.raises(SuppressionError, match="not UTF-8"):
        suppressions.load(_write(tmp_path, "") if False else _binary(tmp_path), RULES)
    huge = tmp_path / "huge.toml"
    huge.write_bytes(b"#" * (suppressions.MAX_FILE_BYTES + 1))
    with pytest.raises(SuppressionError, match="larger than"):
        suppressions.load(huge, RULES)


def _binary(tmp_path: Path) -> Path:
    path = tmp_path / "binary.toml"
    path.write_bytes(b"\xff\xfe[[suppress]]")
    return path


def test_default_rules_are_the_catalogue(tmp_path: Path) -> None:
    path = _write(tmp_path, "[[suppress]]\nrule = 'TEMPLATE-*'\nreason = 'x'\n")
    assert suppressions.load(path).entries[0].rule == "TEMPLATE-*"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(text=st.text(max_size=300) | st.sampled_from([
    "[[suppress]]\nrule = 'PICKLE-*'\nreason = 'r'\n", "[[suppress]]\nrule = 1\n", "[[suppress]]\n[[suppress]]\n",
    "suppress = [1, 2]\n", "[[suppress]]\nrule='CODE-EXEC'\nreason='r'\nexpires=1979-05-27T07:32:00Z\n"]))
def test_any_text_loads_or_fails_with_a_suppression_error(tmp_path: Path, text: str) -> None:
    path = _write(tmp_path, text, "fuzz.toml")
    try:
        loaded = suppressions.load(path, RULES)
    except SuppressionError:
        return
    assert all(e.reason and e.rule for e in loaded.entries)


# -- applying ------------------------------------------------------------------------------------

def test_medium_finding_is_suppressed_without_a_pin(repo: Path, tmp_path: Path) -> None:
    path = _write(tmp_path, "[[suppress]]\nrule = 'CODE-HOOK'\npath = 'modeling_*'\nreason = 'ours'\n")
    before = aivet.scan(repo)
    assert ("CODE-HOOK", "modeling_x.py") in _rules(before)
    after = aivet.scan(repo, suppressions=suppressions.load(path))
    assert ("CODE-HOOK", "modeling_x.py") not in _rules(after)
    [accepted] = after.suppressed
    assert accepted.finding.severity is Severity.MEDIUM
    assert (accepted.reason, accepted.entry) == ("ours", f"{path} #1")
    assert len(after.findings) + len(after.suppressed) == len(before.findings)
    record = suppressions.record_of(after)
    assert record is not None and record["suppressed"] == len(after.suppressed) and not record["unused"]
    assert not marker_path(tmp_path, "suppress").exists()


def test_critical_finding_needs_the_files_digest(repo: Path, tmp_path: Path) -> None:
    unpinned = _write(tmp_path, "[[suppress]]\nrule = 'PICKLE-DANGEROUS-GLOBAL'\npath = 'evil.bin'\nreason = 'no'\n")
    evidence = aivet.scan(repo, suppressions=suppressions.load(unpinned))
    assert ("PICKLE-DANGEROUS-GLOBAL", "evil.bin") in _rules(evidence)
    assert not evidence.suppressed
    [warning] = suppressions.warnings(evidence)
    assert "has no sha256, not applied: evil.bin" in warning

    pinned = _write(tmp_path, f"[[suppress]]\nrule = 'PICKLE-DANGEROUS-GLOBAL'\nsha256 = '{_sha(repo / 'evil.bin')}'\n"
                              "reason = 'red-team sample kept on purpose'\n")
    evidence = aivet.scan(repo, suppressions=suppressions.load(pinned))
    assert ("PICKLE-DANGEROUS-GLOBAL", "evil.bin") not in _rules(evidence)
    assert {s.finding.rule_id for s in evidence.suppressed} == {"PICKLE-DANGEROUS-GLOBAL"}
    assert suppressions.warnings(evidence) == []

    (repo / "evil.bin").write_bytes(_system_pickle(tmp_path) + b"\n")  # changed after the review
    evidence = aivet.scan(repo, suppressions=suppressions.load(pinned))
    assert ("PICKLE-DANGEROUS-GLOBAL", "evil.bin") in _rules(evidence)
    [warning] = suppressions.warnings(evidence)
    assert "pins a sha256 the file does not have" in warning


def test_expired_and_unused_entries_are_reported(repo: Path, tmp_path: Path) -> None:
    path = _write(tmp_path, """
[[suppress]]
rule = "CODE-HOOK"
reason = "was fine last year"
expires = 2020-01-01

[[suppress]]
rule = "CODE-EXEC"
reason = "no such code any more"
""")
    evidence = aivet.scan(repo, suppressions=suppressions.load(path))
    assert ("CODE-HOOK", "modeling_x.py") in _rules(evidence)
    warnings = suppressions.warnings(evidence)
    assert any("#1 (CODE-HOOK) has expired" in w for w in warnings)
    assert any("#2 (CODE-EXEC) matched no finding" in w for w in warnings)
    # The day it expires the entry still applies.
    today = aivet.scan(repo)
    applied = suppressions.apply(today, suppressions.load(path), lambda f: None, today=dt.date(2020, 1, 1))
    assert ("CODE-HOOK", "modeling_x.py") not in _rules(applied)


def test_first_matching_entry_wins_and_subject_patterns(repo: Path, tmp_path: Path) -> None:
    path = _write(tmp_path, """
[[suppress]]
rule = "CODE-HOOK"
subject = "other/*"
reason = "another model"

[[suppress]]
rule = "CODE-*"
path = "modeling_x.py"
reason = "first that matches"

[[suppress]]
rule = "CODE-HOOK"
reason = "second"
""")
    evidence = aivet.scan(repo, suppressions=suppressions.load(path))
    assert [s.reason for s in evidence.suppressed] == ["first that matches"]
    assert any("#1" in w and "matched no finding" in w for w in suppressions.warnings(evidence))
    assert any("#3" in w and "matched no finding" in w for w in suppressions.warnings(evidence))


def test_a_member_of_an_archive_is_pinned_by_the_outer_file(tmp_path: Path) -> None:
    import zipfile

    repo = tmp_path / "model"
    repo.mkdir()
    with zipfile.ZipFile(repo / "bundle.zip", "w") as zf:
        zf.writestr("inner/evil.pkl", _system_pickle(tmp_path))
    evidence = aivet.scan(repo)
    paths = {f.location.path for f in evidence.findings if f.rule_id == "PICKLE-DANGEROUS-GLOBAL"}
    assert paths == {"bundle.zip!inner/evil.pkl"}
    path = _write(tmp_path, f"[[suppress]]\nrule = 'PICKLE-DANGEROUS-GLOBAL'\npath = '*!inner/*'\n"
                            f"sha256 = '{_sha(repo / 'bundle.zip')}'\nreason = 'kept sample'\n")
    evidence = aivet.scan(repo, suppressions=suppressions.load(path))
    assert [s.finding.location.path for s in evidence.suppressed] == ["bundle.zip!inner/evil.pkl"]


def test_a_link_leaving_the_model_has_no_digest(tmp_path: Path) -> None:
    outside = tmp_path / "outside.bin"
    outside.write_bytes(_system_pickle(tmp_path))
    repo = tmp_path / "model"
    repo.mkdir()
    os.symlink(outside, repo / "evil.bin")
    finding = Finding("PICKLE-DANGEROUS-GLOBAL", Severity.CRITICAL, "x", Location("evil.bin"), "m")
    hasher = suppressions.TargetHasher({"m": (repo, repo)})
    assert hasher(finding) is None
    assert suppressions.TargetHasher({"m": (repo, tmp_path)})(finding) == _sha(outside)  # allowed root: followed
    missing = Finding("PICKLE-DANGEROUS-GLOBAL", Severity.CRITICAL, "x", Location("../outside.bin"), "m")
    assert hasher(missing) is None


def test_hub_snapshot_links_into_blobs_are_pinned(tmp_path: Path) -> None:
    """A pre-filled hub cache: snapshot files are links into the repository's blobs/."""
    cache = tmp_path / "hub" / "models--acme--llm"
    blob = cache / "blobs" / ("0" * 40)
    blob.parent.mkdir(parents=True)
    blob.write_bytes(_system_pickle(tmp_path))
    commit = "a" * 40
    snapshot = cache / "snapshots" / commit
    snapshot.mkdir(parents=True)
    os.symlink(Path("..") / ".." / "blobs" / blob.name, snapshot / "evil.bin")
    (cache / "refs").mkdir()
    (cache / "refs" / "main").write_text(commit)
    path = _write(tmp_path, f"[[suppress]]\nrule = 'PICKLE-DANGEROUS-GLOBAL'\nsubject = 'acme/llm@*'\n"
                            f"sha256 = '{_sha(blob)}'\nreason = 'kept'\n")
    evidence = aivet.scan(snapshot, suppressions=suppressions.load(path))
    assert not [f for f in evidence.findings if f.rule_id == "PICKLE-DANGEROUS-GLOBAL"]
    assert len(evidence.suppressed) == 1 and evidence.suppressed[0].finding.subject.startswith("acme/llm@")


def test_a_suppression_file_inside_the_model_is_never_read(repo: Path, tmp_path: Path) -> None:
    (repo / "aivet-suppressions.toml").write_text(
        f"[[suppress]]\nrule = 'PICKLE-*'\nsha256 = '{_sha(repo / 'evil.bin')}'\nreason = 'the model says so'\n")
    (repo / ".aivet.toml").write_text((repo / "aivet-suppressions.toml").read_text())
    evidence = aivet.scan(repo)
    assert ("PICKLE-DANGEROUS-GLOBAL", "evil.bin") in _rules(evidence) and not evidence.suppressed
    result = CliRunner().invoke(cli.app, ["scan", str(repo), "--no-progress"])
    assert result.exit_code == 1


# -- reports -------------------------------------------------------------------------------------

def _suppressed_evidence(repo: Path, tmp_path: Path) -> Evidence:
    path = _write(tmp_path, f"""
[[suppress]]
rule = "PICKLE-DANGEROUS-GLOBAL"
sha256 = "{_sha(repo / 'evil.bin')}"
reason = "kept on purpose (SEC-9)"

[[suppress]]
rule = "PICKLE-UNSAFE-GLOBAL"
sha256 = "{_sha(repo / 'training_args.bin')}"
reason = "our class"

[[suppress]]
rule = "CODE-HOOK"
reason = "cleanup hook"

[[suppress]]
rule = "CODE-EXEC"
reason = "stale"
""")
    return aivet.scan(repo, suppressions=suppressions.load(path))


def test_json_report_validates_and_round_trips(repo: Path, tmp_path: Path) -> None:
    evidence = _suppressed_evidence(repo, tmp_path)
    text = render(evidence, ReportFormat.JSON)
    data = json.loads(text)
    jsonschema.Draft202012Validator(SCHEMA).validate(data)
    assert data["schema_version"] == "1.1" and data["summary"]["suppressed"] == 3
    assert {s["suppression"]["reason"] for s in data["suppressed"]} == {"kept on purpose (SEC-9)", "our class",
                                                                         "cleanup hook"}
    assert data["gate"]["exit_code"] == 0
    assert Evidence.from_json(text) == evidence
    old = dict(data, schema_version="1.0")
    del old["suppressed"]
    assert Evidence.from_dict(old).suppressed == ()  # a 1.0 document reads as "nothing suppressed"


def test_terminal_report_lists_suppressed_findings_and_warnings(repo: Path, tmp_path: Path) -> None:
    evidence = _suppressed_evidence(repo, tmp_path)
    text = render(evidence, ReportFormat.TERMINAL)
    assert text.splitlines()[0].endswith("; 3 suppressed")
    assert "Suppressed (3), not counted for --fail-on:" in text
    assert "critical PICKLE-DANGEROUS-GLOBAL evil.bin — kept on purpose (SEC-9)" in " ".join(text.split())
    assert "warning: suppression" in text and "(CODE-EXEC) matched no finding" in text
    assert "exit code 0" in text


def test_sarif_keeps_suppressed_results(repo: Path, tmp_path: Path) -> None:
    evidence = _suppressed_evidence(repo, tmp_path)
    log = json.loads(render(evidence, ReportFormat.SARIF, ReportOptions(base=tmp_path)))
    run = log["runs"][0]
    marked = [r for r in run["results"] if "suppressions" in r]
    assert {r["ruleId"] for r in marked} == {"PICKLE-DANGEROUS-GLOBAL", "PICKLE-UNSAFE-GLOBAL", "CODE-HOOK"}
    assert all(r["suppressions"][0]["status"] == "accepted" and r["suppressions"][0]["kind"] == "external"
               for r in marked)
    rule_ids = [r["id"] for r in run["tool"]["driver"]["rules"]]
    assert all(r["ruleIndex"] == rule_ids.index(r["ruleId"]) for r in run["results"])
    notes = [n["message"]["text"] for n in run["invocations"][0].get("toolExecutionNotifications", [])]
    assert any("matched no finding" in n for n in notes)


def test_merge_keeps_suppressed_findings() -> None:
    f = Finding("CODE-EXEC", Severity.HIGH, "x", Location("a.py"), "s")
    from aivet.evidence import SuppressedFinding

    a = Evidence(subjects=(Subject("s", "directory", "s"),), suppressed=(SuppressedFinding(f, "r", "e #1"),))
    assert a.merge(Evidence(suppressed=a.suppressed)).suppressed == a.suppressed * 2


# -- command line and gate -------------------------------------------------------------------------

def _accept_ours(repo: Path, tmp_path: Path) -> Path:
    return _write(tmp_path, f"[[suppress]]\nrule = 'PICKLE-UNSAFE-GLOBAL'\nsha256 = '{_sha(repo / 'training_args.bin')}'\n"
                            "reason = 'ours'\n\n[[suppress]]\nrule = 'CODE-HOOK'\nreason = 'cleanup'\n")


def test_cli_exit_code_follows_what_is_left(repo: Path, tmp_path: Path) -> None:
    path = _accept_ours(repo, tmp_path)
    args = ["scan", str(repo), "--no-progress", "--suppressions", str(path), "--format", "json"]
    assert quick.parse(args[1:]) is not None and quick.parse(args[1:]).suppressions == str(path)  # type: ignore[union-attr]
    result = CliRunner().invoke(cli.app, args)
    assert result.exit_code == 1  # os.system is still there
    data = json.loads(result.stdout)
    assert sorted(s["rule_id"] for s in data["suppressed"]) == ["CODE-HOOK", "PICKLE-UNSAFE-GLOBAL"]
    (repo / "evil.bin").unlink()
    assert CliRunner().invoke(cli.app, args).exit_code == 0
    assert CliRunner().invoke(cli.app, ["scan", str(repo), "--no-progress"]).exit_code == 1


def test_cli_bad_suppression_file_is_exit_2_before_scanning(repo: Path, tmp_path: Path) -> None:
    path = _write(tmp_path, "[[suppress]]\nrule = 'PICKLE-UNSAFE-GLOBAL'\n")
    result = CliRunner().invoke(cli.app, ["scan", str(repo / "nope"), "--suppressions", str(path)])
    assert result.exit_code == 2
    assert "'reason' is required" in result.output and "#1" in result.output


def test_gate_sees_suppressed_count(repo: Path, tmp_path: Path) -> None:
    from aivet.gate import gate

    (repo / "evil.bin").unlink()
    path = _accept_ours(repo, tmp_path)
    plain = gate(repo, "strict")
    accepted = gate(repo, "strict", suppressions=suppressions.load(path))
    assert plain.decision.extra["facts"]["scan.suppressed"] == 0
    assert accepted.decision.extra["facts"]["scan.suppressed"] == 2
    assert "PICKLE-UNSAFE-GLOBAL" in plain.decision.extra["facts"]["scan.rules"]
    assert "PICKLE-UNSAFE-GLOBAL" not in accepted.decision.extra["facts"]["scan.rules"]
    fired = [r.rule for r in accepted.decision.reasons]
    assert "strict-suppressions-reviewed" in fired and "strict-suppressions-reviewed" not in [
        r.rule for r in plain.decision.reasons]
    result = CliRunner().invoke(cli.app, ["gate", str(repo), "--suppressions", str(path), "--format", "json"])
    assert result.exit_code in (0, 1), result.output
    assert json.loads(result.stdout)["evidence"]["summary"]["suppressed"] == 2


def test_recording_keeps_suppressed_findings_and_the_record(repo: Path, tmp_path: Path) -> None:
    from aivet import recording
    from aivet.ledger import Ledger

    evidence = _suppressed_evidence(repo, tmp_path)
    ledger = str(tmp_path / "ledger.db")
    [entry] = recording.record_scan(evidence, ledger=ledger)
    with Ledger.open(ledger) as log:
        stored = Evidence.from_dict(log.get(entry.index).body)
    assert stored.suppressed == evidence.suppressed
    assert suppressions.record_of(stored) == suppressions.record_of(evidence)


def test_a_single_file_target_is_pinned_by_its_own_digest(repo: Path, tmp_path: Path) -> None:
    evil = repo / "evil.bin"
    path = _write(tmp_path, f"[[suppress]]\nrule = 'PICKLE-DANGEROUS-GLOBAL'\npath = 'evil.bin'\n"
                            f"sha256 = '{_sha(evil)}'\nreason = 'kept sample'\n")
    evidence = aivet.scan(evil, suppressions=suppressions.load(path))
    assert not evidence.findings and [s.finding.location.path for s in evidence.suppressed] == ["evil.bin"]


_severities = st.sampled_from(list(Severity))
_paths = st.sampled_from(["a.py", "b/c.bin", "d.zip!e.pkl", "x y.json"])
_rule_ids = st.sampled_from(RULES)


@settings(max_examples=150, deadline=None)
@given(findings=st.lists(st.builds(lambda r, s, p: Finding(r, s, "m", Location(p), "subj"), _rule_ids, _severities,
                                   _paths), max_size=12),
       entries=st.lists(st.tuples(st.sampled_from([*RULES, "CODE-*", "PICKLE-*"]),
                                  st.none() | _paths | st.just("*"), st.booleans(), st.booleans()), max_size=5))
def test_apply_loses_nothing_and_never_accepts_an_unpinned_high(findings: list[Finding],
                                                                entries: list[tuple[str, str | None, bool, bool]]) -> None:
    pins = {p: hashlib.sha256(p.split("!")[0].encode()).hexdigest() for p in ["a.py", "b/c.bin", "d.zip!e.pkl",
                                                                             "x y.json"]}
    entry_objs = tuple(
        suppressions.Suppression(rule, "r", f"f #{i}", path=path,
                                 sha256=(hashlib.sha256((path or "a.py").split("!")[0].encode()).hexdigest()
                                         if pinned else None),
                                 expires=dt.date(2000, 1, 1) if expired else None)
        for i, (rule, path, pinned, expired) in enumerate(entries, 1))
    evidence = Evidence(subjects=(Subject("subj", "directory", "subj"),), findings=tuple(findings))
    out = suppressions.apply(evidence, suppressions.SuppressionFile("f", "0" * 64, entry_objs),
                             lambda f: pins[f.location.path], today=dt.date(2026, 1, 1))
    assert sorted(map(repr, out.findings + tuple(s.finding for s in out.suppressed))) == sorted(map(repr, findings))
    by_origin = {e.origin: e for e in entry_objs}
    for s in out.suppressed:
        entry = by_origin[s.entry]
        assert entry.covers(s.finding) and entry.expires is None
        if s.finding.severity >= Severity.HIGH:
            assert entry.sha256 == pins[s.finding.location.path]
