"""The ``aivet`` command end to end: CliRunner for most cases, a real subprocess for a few."""

from __future__ import annotations

import importlib.util
import io
import json
import os
import subprocess
import sys
import types
from pathlib import Path

import jsonschema
import pytest
import typer
from typer.testing import CliRunner

from aivet import __version__, rules
from aivet.cli import main as cli
from aivet.cli.progress import ScanProgress, progress_wanted
from aivet.errors import ArtifactError
from aivet.limits import DEFAULT_LIMITS

SCHEMA = json.loads((Path(__file__).parent.parent / "docs" / "evidence.schema.json").read_text(encoding="utf-8"))
runner = CliRunner()

# Content whose handling lives in the engine itself, so these tests do not depend on analyzers.
UNKNOWN_BLOB = b"\x00\xff\x00\xfe" * 16  # matches no format: SCAN-UNKNOWN-FORMAT, low
PNG = b"\x89PNG\r\n\x1a\n" + bytes(32)  # benign binary: no finding


def invoke(*args: str, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    return runner.invoke(cli.app, list(args), env={"CI": "true", **(env or {})})


@pytest.fixture
def clean_dir(tmp_path: Path) -> Path:
    d = tmp_path / "clean"
    d.mkdir()
    (d / "logo.png").write_bytes(PNG)
    (d / "empty.txt").write_bytes(b"")
    return d


@pytest.fixture
def low_dir(tmp_path: Path) -> Path:
    d = tmp_path / "low"
    d.mkdir()
    (d / "blob.xyz").write_bytes(UNKNOWN_BLOB)
    return d


@pytest.fixture
def escape_dir(tmp_path: Path) -> Path:
    d = tmp_path / "escape"
    d.mkdir()
    (tmp_path / "secret.txt").write_text("outside\n")
    (d / "weights.bin").symlink_to(tmp_path / "secret.txt")
    return d


def test_version() -> None:
    result = invoke("--version")
    assert result.exit_code == 0
    assert result.stdout.strip() == f"aivet {__version__}"


def test_no_arguments_shows_help() -> None:
    result = invoke()
    assert result.exit_code in (0, 2)
    assert "scan" in result.output and "rules" in result.output


def test_scan_clean_exits_0(clean_dir: Path) -> None:
    result = invoke("scan", str(clean_dir))
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("✓ no findings at or above medium in 2 files")


@pytest.mark.parametrize(("fail_on", "code"), [("info", 1), ("low", 1), ("LOW", 1), ("medium", 0), ("high", 0),
                                               ("critical", 0)])
def test_fail_on_threshold_low_finding(low_dir: Path, fail_on: str, code: int) -> None:
    result = invoke("scan", str(low_dir), "--fail-on", fail_on)
    assert result.exit_code == code, result.output
    assert "SCAN-UNKNOWN-FORMAT" in result.stdout


@pytest.mark.parametrize(("fail_on", "code"), [("medium", 1), ("high", 1), ("critical", 0)])
def test_fail_on_threshold_high_finding(escape_dir: Path, fail_on: str, code: int) -> None:
    result = invoke("scan", str(escape_dir), "--fail-on", fail_on)
    assert result.exit_code == code, result.output
    assert "REPO-SYMLINK-ESCAPE" in result.stdout


def test_strict_raises_unknown_formats(low_dir: Path) -> None:
    assert invoke("scan", str(low_dir), "--fail-on", "high").exit_code == 0
    assert invoke("scan", str(low_dir), "--fail-on", "high", "--strict").exit_code == 1


def test_json_output_validates(escape_dir: Path, low_dir: Path) -> None:
    result = invoke("scan", str(escape_dir), str(low_dir), "--format", "json")
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    jsonschema.Draft202012Validator(SCHEMA).validate(data)
    assert data["gate"] == {"fail_on": "medium", "failing_findings": 1, "exit_code": 1}
    assert {f["rule_id"] for f in data["findings"]} == {"REPO-SYMLINK-ESCAPE", "SCAN-UNKNOWN-FORMAT"}
    assert [s["kind"] for s in data["subjects"]] == ["directory", "directory"]


def test_sarif_output_to_file(escape_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "report.sarif"
    result = invoke("scan", str(escape_dir), "-f", "sarif", "-o", str(out))
    assert result.exit_code == 1
    assert result.stdout == ""
    assert "Wrote the sarif report" in result.stderr and "not safe to load" in result.stderr
    log = json.loads(out.read_text(encoding="utf-8"))
    assert log["version"] == "2.1.0"
    (res,) = log["runs"][0]["results"]
    assert res["ruleId"] == "REPO-SYMLINK-ESCAPE" and res["level"] == "error"
    assert res["locations"][0]["physicalLocation"]["artifactLocation"]["uri"].endswith("weights.bin")


def test_terminal_output_to_file_has_no_colour(escape_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "report.txt"
    assert invoke("scan", str(escape_dir), "-o", str(out)).exit_code == 1
    text = out.read_text(encoding="utf-8")
    assert "\x1b[" not in text and "REPO-SYMLINK-ESCAPE" in text


def test_quiet(escape_dir: Path) -> None:
    result = invoke("scan", str(escape_dir), "--quiet")
    assert result.exit_code == 1
    assert result.stdout.count("\n") == 1


def test_missing_path_exits_2(tmp_path: Path) -> None:
    result = invoke("scan", str(tmp_path / "nope"))
    assert result.exit_code == 2
    assert "no such file or directory" in result.stderr
    assert "Traceback" not in result.output


@pytest.mark.parametrize("args", [
    ["scan", "--fail-on", "bogus", "."],
    ["scan", "--format", "html", "."],
    ["scan", "--no-such-option"],
    ["scan"],
    ["scan", "--example", "."],
    ["scan", ".", "--limit", "max_files"],
    ["scan", ".", "--limit", "max_flies=3"],
    ["scan", ".", "--limit", "max_files=lots"],
    ["scan", ".", "--limit", "max_files=-1"],
    ["scan", "hf://not a ref"],
    ["rules", "--format", "yaml"],
    ["no-such-command"],
])
def test_bad_arguments_exit_2_cleanly(args: list[str]) -> None:
    result = invoke(*args)
    assert result.exit_code == 2, (args, result.output)
    assert "Traceback" not in result.output
    assert result.stderr.strip()
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_limit_messages_name_the_problem() -> None:
    assert "unknown limit 'max_flies'" in invoke("scan", ".", "--limit", "max_flies=3").stderr
    assert "known limits:" in invoke("scan", ".", "--limit", "max_flies=3").stderr
    assert "nothing to scan" in invoke("scan").stderr


def test_parse_limits() -> None:
    limits = cli.parse_limits(["max_member_bytes=8GiB", "max-files=1_000", "max_compression_ratio=50.5",
                               "max_header_bytes=2M"])
    assert limits.max_member_bytes == 8 * 1024**3
    assert limits.max_files == 1000
    assert limits.max_compression_ratio == 50.5
    assert limits.max_header_bytes == 2_000_000
    assert limits.max_pickle_opcodes == DEFAULT_LIMITS.max_pickle_opcodes
    assert cli.parse_limits([]) is DEFAULT_LIMITS


def test_limit_is_applied(tmp_path: Path) -> None:
    d = tmp_path / "many"
    d.mkdir()
    for i in range(5):
        (d / f"f{i}.png").write_bytes(PNG)
    result = invoke("scan", str(d), "--limit", "max_files=2", "-f", "json")
    data = json.loads(result.stdout)
    assert any(f["rule_id"] == "SCAN-LIMIT-EXCEEDED" and f["details"]["limit"] == "max_files"
               for f in data["findings"])


def test_internal_error_is_short_and_exits_2(clean_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import aivet.analyzers

    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("reader bug")

    monkeypatch.setattr(aivet.analyzers, "scan", boom)
    result = invoke("scan", str(clean_dir))
    assert result.exit_code == 2
    assert "internal error: RuntimeError: reader bug" in result.stderr
    assert "This is a bug in aivet" in result.stderr and "--debug" in result.stderr
    assert "Traceback" not in result.output
    debug = runner.invoke(cli.app, ["--debug", "scan", str(clean_dir)], env={"CI": "true"})
    assert isinstance(debug.exception, RuntimeError)
    env_debug = invoke("scan", str(clean_dir), env={"AIVET_DEBUG": "1"})
    assert isinstance(env_debug.exception, RuntimeError)


def test_aivet_error_prints_diagnostics(clean_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import aivet.analyzers

    class Bad(ArtifactError):
        def diagnostics(self) -> str:
            return "the policy file is not valid: line 3"

    def bad(*args: object, **kwargs: object) -> None:
        raise Bad("x")

    monkeypatch.setattr(aivet.analyzers, "scan", bad)
    result = invoke("scan", str(clean_dir))
    assert result.exit_code == 2
    assert result.stderr.strip() == "aivet: error: the policy file is not valid: line 3"


def test_unwritable_output_exits_2(clean_dir: Path, tmp_path: Path) -> None:
    result = invoke("scan", str(clean_dir), "-o", str(tmp_path / "no" / "such" / "dir" / "r.json"))
    assert result.exit_code == 2
    assert "cannot write the report" in result.stderr


# -- rules -------------------------------------------------------------------------------------

def test_rules_table_lists_the_whole_catalogue() -> None:
    result = invoke("rules")
    assert result.exit_code == 0
    header = next(line for line in result.stdout.splitlines() if "ID" in line and "Severity" in line)
    for column in ("Title", "ATLAS", "CWE"):
        assert column in header
    for rule in rules.catalogue().values():
        line = next(line for line in result.stdout.splitlines() if f" {rule.id} " in line)
        assert rule.severity.value in line
        for ref in (*rule.atlas, *rule.cwe):
            assert ref in result.stdout


def test_rules_json_and_markdown() -> None:
    data = json.loads(invoke("rules", "--format", "json").stdout)
    assert [r["id"] for r in data] == list(rules.catalogue())
    assert all({"id", "title", "description", "severity", "atlas", "cwe"} <= set(r) for r in data)
    md = invoke("rules", "-f", "markdown").stdout
    assert md.startswith("# aivet rules")
    for rule in rules.catalogue().values():
        assert f"\n## {rule.id}\n" in md
        assert f"[`{rule.id}`](#{rule.id.lower()})" in md


# -- sub-apps and the example ------------------------------------------------------------------

def test_sub_apps_mount_lazily_and_share_the_edge(monkeypatch: pytest.MonkeyPatch) -> None:
    sub = typer.Typer()

    @sub.command()
    def hello(name: str) -> None:
        if name == "bad":
            raise ArtifactError("bad entry")
        typer.echo(f"hello {name}")

    @sub.command()
    def other() -> None:
        typer.echo("other")

    def greet(name: str, loud: bool = False) -> None:
        """Say hello."""
        if name == "crash":
            raise ValueError("oops")
        typer.echo(f"hi {name}" + ("!" if loud else ""))

    module = types.ModuleType("aivet_test_subapp")
    module.app = sub  # type: ignore[attr-defined]
    module.greet = greet  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "aivet_test_subapp", module)
    monkeypatch.setitem(cli.SUBCOMMANDS, "demo", ("aivet_test_subapp", "app"))
    monkeypatch.setitem(cli.SUBCOMMANDS, "greet", ("aivet_test_subapp", "greet"))
    assert invoke("demo", "hello", "you").stdout == "hello you\n"
    bad = invoke("demo", "hello", "bad")
    assert bad.exit_code == 2 and "aivet: error: bad entry" in bad.stderr
    assert invoke("greet", "you", "--loud").stdout == "hi you!\n"
    crash = invoke("greet", "crash")
    assert crash.exit_code == 2 and "internal error: ValueError: oops" in crash.stderr
    help_text = invoke("--help").stdout
    assert "demo" in help_text and "greet" in help_text


def test_example_scan(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # build the example under tmp_path
    result = invoke("scan", "--example", "-f", "json")
    assert result.exit_code == 1, result.output
    assert "Built the example model repository in" in result.stderr
    data = json.loads(result.stdout)
    jsonschema.Draft202012Validator(SCHEMA).validate(data)
    paths = {a["path"] for a in data["artifacts"]}
    assert {"config.json", "model.safetensors", "training_args.bin", "pytorch_model.bin", "modeling_demo.py",
            "README.md", "tokenizer_config.json", "extra_state.pkl"} <= paths
    assert str(tmp_path) in result.stderr
    if importlib.util.find_spec("aivet.analyzers.pickle") is None:
        pytest.skip("the pickle analyzer is not there yet")
    bad = {f["location"]["path"] for f in data["findings"] if f["severity"] in ("high", "critical")}
    assert "training_args.bin" in bad
    assert any(p.startswith("pytorch_model.bin") for p in bad)
    assert "model.safetensors" not in bad and "extra_state.pkl" not in bad


# -- progress --------------------------------------------------------------------------------

def test_progress_only_when_someone_watches(monkeypatch: pytest.MonkeyPatch) -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr(sys, "stderr", Tty())
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setenv("TERM", "xterm")
    assert progress_wanted(quiet=False, no_progress=False)
    assert not progress_wanted(quiet=True, no_progress=False)
    assert not progress_wanted(quiet=False, no_progress=True)
    monkeypatch.setenv("CI", "true")
    assert not progress_wanted(quiet=False, no_progress=False)
    monkeypatch.setenv("CI", "0")
    assert progress_wanted(quiet=False, no_progress=False)
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    assert not progress_wanted(quiet=False, no_progress=False)


def test_progress_bar_draws_files_and_bytes() -> None:
    from rich.console import Console

    buf = io.StringIO()
    console = Console(file=buf, force_terminal=True, width=160)
    with ScanProgress(True, delay=0, console=console) as bar:
        bar.on_start(2, 2048)
        bar.advance("a.bin", 1024)
        bar.advance("dir/b.bin", 1024)
        assert bar.shown
    assert "2/2 files" in buf.getvalue()


def test_progress_disabled_or_fast_draws_nothing() -> None:
    with ScanProgress(False) as off:
        off.on_start(1, 10**12)
        off.advance("x", 1)
    assert not off.shown
    with ScanProgress(True, delay=30) as quick:
        quick.on_start(1, 10)
        quick.advance("x", 10)
    assert not quick.shown


# -- a real process ----------------------------------------------------------------------------

def _run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "AIVET_"))}
    env["CI"] = "true"
    return subprocess.run([sys.executable, "-m", "aivet", *args], capture_output=True, text=True, timeout=120,
                          env=env, cwd=cwd, encoding="utf-8")


def test_subprocess_exit_codes(clean_dir: Path, escape_dir: Path, tmp_path: Path) -> None:
    version = _run("--version")
    assert version.returncode == 0 and version.stdout == f"aivet {__version__}\n"
    clean = _run("scan", str(clean_dir))
    assert clean.returncode == 0, clean.stderr
    dirty = _run("scan", str(escape_dir), "--format", "json")
    assert dirty.returncode == 1
    jsonschema.Draft202012Validator(SCHEMA).validate(json.loads(dirty.stdout))
    missing = _run("scan", str(tmp_path / "missing"))
    assert missing.returncode == 2
    assert "no such file or directory" in missing.stderr and "Traceback" not in missing.stderr
    usage = _run("scan", "--fail-on", "severe", str(clean_dir))
    assert usage.returncode == 2 and "Traceback" not in usage.stderr
