"""``aivet ledger`` end to end through typer: output, exit codes (0 intact, 1 tampered, 2 error)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aivet.cli.ledger import app
from aivet.ledger import verify_entry_proof

runner = CliRunner()


@pytest.fixture
def ledger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    db = tmp_path / "l.db"
    monkeypatch.setenv("AIVET_LEDGER", str(db))
    monkeypatch.delenv("AIVET_LEDGER_KEY", raising=False)
    doc = tmp_path / "ev.json"
    for i in range(6):
        doc.write_text(json.dumps({"scan": i}))
        result = runner.invoke(app, ["append", "scan", str(doc), "--model", "sha256:" + "12" * 32])
        assert result.exit_code == 0, result.output
    return db


def test_log_show_prove_consistency(ledger: Path) -> None:
    result = runner.invoke(app, ["log"])
    assert result.exit_code == 0 and "6 of 6 entries shown" in result.output
    shown = json.loads(runner.invoke(app, ["show", "3"]).output)
    assert shown["body"] == {"scan": 3}
    key = runner.invoke(app, ["key"]).output.strip()
    proof = json.loads(runner.invoke(app, ["prove", "4"]).output)
    from aivet.ledger import parse_verifier_key

    assert verify_entry_proof(proof, parse_verifier_key(key)) == 4
    cons = json.loads(runner.invoke(app, ["consistency", "2", "6"]).output)
    assert cons["oldSize"] == "2" and cons["hashes"]
    listed = json.loads(runner.invoke(app, ["model", "sha256:" + "12" * 32, "--json"]).output)
    assert len(listed["entries"]) == 6


def test_verify_exit_codes_and_export_audit(ledger: Path, tmp_path: Path) -> None:
    assert runner.invoke(app, ["verify"]).exit_code == 0
    key_file = tmp_path / "log.pub"
    key_file.write_text(runner.invoke(app, ["key"]).output)
    out = tmp_path / "audit.jsonl"
    assert runner.invoke(app, ["export", str(out)]).exit_code == 0
    assert runner.invoke(app, ["verify", "--export", str(out), "--public-key", str(key_file)]).exit_code == 0
    imported = tmp_path / "imported.db"
    result = runner.invoke(app, ["import", str(out), "--public-key", str(key_file), "--ledger", str(imported)])
    assert result.exit_code == 0 and "imported 6 entries" in result.output
    saved = tmp_path / "cp.txt"
    saved.write_text(runner.invoke(app, ["checkpoint"]).output)
    conn = sqlite3.connect(ledger)
    with conn:
        conn.execute("UPDATE entries SET body = ? WHERE idx = 2", (b'{"scan":99}',))
    conn.close()
    result = runner.invoke(app, ["verify", "--against", str(saved)])
    assert result.exit_code == 1 and "TAMPERED" in result.output and "NOT intact" in result.output
    out.write_bytes(out.read_bytes()[:-30])
    assert runner.invoke(app, ["verify", "--export", str(out), "--public-key", str(key_file)]).exit_code == 1


def test_errors_exit_2_with_a_message(ledger: Path) -> None:
    result = runner.invoke(app, ["show", "99"])
    assert result.exit_code == 2 and "no entry 99" in result.output
    result = runner.invoke(app, ["log", "--ledger", "postgresql://u:pw@127.0.0.1:1/x"])
    assert result.exit_code == 2 and "cannot connect" in result.output and "pw@" not in result.output
    result = runner.invoke(app, ["verify", "--export", "x.jsonl"])
    assert result.exit_code == 2 and "--public-key" in result.output


def test_model_accepts_a_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from aivet.ledger import record
    from aivet.ledger.model import model_digest_of_directory

    monkeypatch.setenv("AIVET_LEDGER", str(tmp_path / "l.db"))
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    (model / "weights.safetensors").write_bytes(b"\x00" * 64)
    digest = model_digest_of_directory(model)
    assert digest.startswith("sha256:") and len(digest) == 71
    record({"scan": "clean"}, kind="scan", model_digest=digest)
    record({"scan": "other"}, kind="scan")
    result = runner.invoke(app, ["model", str(model)])
    assert result.exit_code == 0 and f"model {digest}: 1 entries" in result.output
