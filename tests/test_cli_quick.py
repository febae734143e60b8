"""The quick path of ``aivet scan`` (no typer) must behave exactly like the typer command."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer.main
from typer.testing import CliRunner

from aivet.cli import main as cli
from aivet.cli import quick, run
from aivet.cli.scan_command import ScanRequest

UNKNOWN_BLOB = b"\x00\xff\x00\xfe" * 16  # SCAN-UNKNOWN-FORMAT, low
runner = CliRunner()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    d = tmp_path / "repo"
    d.mkdir()
    (d / "blob.xyz").write_bytes(UNKNOWN_BLOB)
    (tmp_path / "secret.txt").write_text("outside\n")
    (d / "weights.bin").symlink_to(tmp_path / "secret.txt")  # high: escapes the repository
    return d


def _typer_scan_params() -> list[Any]:
    group = typer.main.get_command(cli.app)
    command = group.get_command(None, "scan")  # type: ignore[attr-defined]
    return [p for p in command.params if p.param_type_name == "option"]


def test_options_match_the_typer_command() -> None:
    spellings: dict[str, tuple[str, object]] = {}
    for param in _typer_scan_params():
        field = {"fmt": "format"}.get(param.name, param.name)
        for opt in param.opts:
            spellings[opt] = (field, True if param.is_flag else None)
        for opt in param.secondary_opts:
            spellings[opt] = (field, False)
        choices = getattr(param.type, "choices", None)
        assert quick.CHOICES.get(field) == (tuple(choices) if choices else None), field
        assert field in ScanRequest._fields
    assert quick.OPTIONS == spellings


@pytest.mark.parametrize(("args", "expected"), [
    (["a", "b"], ScanRequest(paths=("a", "b"))),
    (["--format", "JSON", "a", "-o", "r.json"], ScanRequest(paths=("a",), format="json", output=Path("r.json"))),
    (["--format=sarif", "--fail-on=HIGH", "a"], ScanRequest(paths=("a",), format="sarif", fail_on="high")),
    (["-f", "json", "-q", "--strict", "--no-progress", "a"],
     ScanRequest(paths=("a",), format="json", quiet=True, strict=True, no_progress=True)),
    (["--limit", "max_files=2", "a", "--limit=max_header_bytes=1M"],
     ScanRequest(paths=("a",), limit=("max_files=2", "max_header_bytes=1M"))),
    (["--record", "--ledger", "l.db", "a"], ScanRequest(paths=("a",), record=True, ledger="l.db")),
    (["--record", "--no-record", "a"], ScanRequest(paths=("a",), record=False)),
    (["--", "-dash-named", "-"], ScanRequest(paths=("-dash-named", "-"))),
    (["--example"], ScanRequest(example=True)),
    ([], ScanRequest()),
])
def test_parse(args: list[str], expected: ScanRequest) -> None:
    assert quick.parse(args) == expected


@pytest.mark.parametrize("args", [
    ["--help"], ["-h", "a"], ["--no-such-option", "a"], ["-x"], ["--format", "html", "a"], ["--fail-on=severe"],
    ["a", "--format"], ["--strict=yes", "a"], ["-qf", "json", "a"], ["--debug", "a"], ["-o", "."],
])
def test_anything_unusual_goes_to_typer(args: list[str]) -> None:
    assert quick.parse(args) is None


def _quick(args: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["aivet", "scan", *args])
    monkeypatch.setenv("CI", "true")
    with pytest.raises(SystemExit) as exit_info:
        run()
    out, err = capsys.readouterr()
    return int(exit_info.value.code or 0), out, err


def _typer(args: list[str]) -> tuple[int, str, str]:
    result = runner.invoke(cli.app, ["scan", *args], env={"CI": "true"})
    return result.exit_code, result.stdout, result.stderr


def _comparable(fmt: str, text: str) -> object:
    if fmt == "terminal":
        return text
    data = json.loads(text)
    data.pop("created", None)  # the time of the scan
    if fmt == "sarif":
        for run_ in data["runs"]:
            run_.get("invocations", [{}])[0].pop("endTimeUtc", None)
            run_.get("invocations", [{}])[0].pop("startTimeUtc", None)
    return data


@pytest.mark.parametrize(("extra", "fmt"), [
    ([], "terminal"),
    (["-f", "json"], "json"),
    (["--format=sarif", "--fail-on", "critical"], "sarif"),
    (["-f", "json", "--strict", "--limit", "max_files=1"], "json"),
    (["-q", "--fail-on", "info"], "terminal"),
])
def test_quick_path_and_typer_agree(repo: Path, extra: list[str], fmt: str, capsys: pytest.CaptureFixture[str],
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    args = [str(repo), *extra]
    code, out, err = _quick(args, capsys, monkeypatch)
    t_code, t_out, t_err = _typer(args)
    assert code == t_code
    assert _comparable(fmt, out) == _comparable(fmt, t_out)
    assert err == t_err


@pytest.mark.parametrize("args", [
    [],  # nothing to scan
    ["--example", "x"],
    ["/no/such/path/anywhere"],
    ["x", "--limit", "max_flies=3"],
    ["x", "--limit", "max_files=-1"],
])
def test_errors_are_the_same_on_both_paths(args: list[str], capsys: pytest.CaptureFixture[str],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    code, out, err = _quick(args, capsys, monkeypatch)
    t_code, t_out, t_err = _typer(args)
    assert (code, out, err) == (t_code, t_out, t_err)
    assert code == 2 and err.startswith("aivet: error: ")


def test_report_file_and_unwritable_output(repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    report = tmp_path / "r.json"
    code, out, err = _quick([str(repo), "-f", "json", "-o", str(report)], capsys, monkeypatch)
    assert code == 1 and out == ""
    assert json.loads(report.read_text())["summary"]
    assert f"Wrote the json report to {report}." in err
    code, _, err = _quick([str(repo), "-o", str(tmp_path / "no" / "dir" / "r.txt")], capsys, monkeypatch)
    assert code == 2 and "cannot write the report" in err


def test_internal_errors_and_debug(repo: Path, capsys: pytest.CaptureFixture[str],
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import aivet.analyzers

    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("reader bug")

    monkeypatch.setattr(aivet.analyzers, "scan", boom)
    code, _, err = _quick([str(repo)], capsys, monkeypatch)
    assert code == 2
    assert "internal error: RuntimeError: reader bug" in err and "This is a bug in aivet" in err
    monkeypatch.setenv("AIVET_DEBUG", "1")
    monkeypatch.setattr(sys, "argv", ["aivet", "scan", str(repo)])
    with pytest.raises(RuntimeError, match="reader bug"):
        run()


def test_quick_path_imports_neither_typer_nor_click_nor_rich(repo: Path) -> None:
    script = (
        "import atexit, sys\n"
        "atexit.register(lambda: sys.stderr.write('LOADED=' + ','.join(sorted(\n"
        "    m for m in ('typer', 'click', 'rich', 'dataclasses_json') if m in sys.modules)) + '\\n'))\n"
        f"sys.argv = ['aivet', 'scan', {str(repo)!r}, '-f', 'json', '--no-progress']\n"
        "from aivet.cli import run\n"
        "run()\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          env={"CI": "true", "PATH": "/usr/bin:/bin"})
    assert done.returncode == 1, done.stderr
    assert json.loads(done.stdout)["findings"]
    assert "LOADED=\n" in done.stderr
    help_text = subprocess.run([sys.executable, "-m", "aivet", "scan", "--help"], capture_output=True, text=True,
                               timeout=120, env={"CI": "true", "PATH": "/usr/bin:/bin"})
    assert help_text.returncode == 0 and "--fail-on" in help_text.stdout  # typer answered


def test_broken_pipe_is_quiet(repo: Path) -> None:
    # `aivet scan . | head -c 10`: the reader goes away; no traceback, a non-zero exit.
    proc = subprocess.Popen([sys.executable, "-m", "aivet", "scan", str(repo), "-f", "json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={"CI": "true", "PATH": "/usr/bin:/bin"})
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # nothing will ever read the report
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 2
    assert "Traceback" not in err and "BrokenPipeError" not in err
