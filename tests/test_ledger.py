"""The ledger against both stores: appends, proofs, verification, tampering, export/import, bad environments.

Every test taking ``location`` runs on SQLite and on a throwaway PostgreSQL
(tests/pg.py), so the two stores are held to one behaviour.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from aivet.evidence import Evidence, Finding, Location, Severity
from aivet.ledger import (
    EntryKind,
    Ledger,
    LedgerCorrupt,
    LedgerKeyError,
    LedgerUnavailable,
    LedgerUsageError,
    NewEntry,
    parse_verifier_key,
    record,
    verify_consistency_document,
    verify_entry_proof,
    verify_export,
)
from aivet.ledger.checkpoint import sign_checkpoint
from aivet.ledger.keys import LogKey
from aivet.ledger.merkle import leaf_hash
from tests import pg

MODEL = "sha256:" + "ab" * 32


@pytest.fixture(params=["sqlite", "postgres"])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "ledger.db")
    return pg.server().new_database()


@pytest.fixture
def key_path(tmp_path: Path) -> Path:
    return tmp_path / "log.key"


@pytest.fixture
def log(location: str, key_path: Path) -> Iterator[Ledger]:
    with Ledger.open(location, key_path=key_path) as ledger:
        yield ledger


def fill(log: Ledger, n: int) -> None:
    """n entries: some single appends, the rest in batches, a few linked to MODEL."""
    singles = min(n, 5)
    for i in range(singles):
        log.append("scan", {"i": i, "score": i / 3}, model=MODEL if i % 2 else None)
    rest = [NewEntry(EntryKind.BOM, {"i": i}) for i in range(singles, n)]
    for start in range(0, len(rest), 7):
        log.append_many(rest[start : start + 7])


# -- raw SQL for tampering, on either store ----------------------------------------------------------


def sql(location: str, statement: str, params: tuple[Any, ...] = ()) -> None:
    if location.startswith("postgresql://"):
        import psycopg

        table_sql = statement
        for t in ("meta", "entries", "blobs", "nodes", "heads"):
            table_sql = table_sql.replace(f" {t} ", f" aivet_ledger_{t} ").replace(f" {t}(", f" aivet_ledger_{t}(")
        with psycopg.connect(location, autocommit=True) as conn:
            conn.execute(table_sql.replace("?", "%s"), params)
    else:
        conn = sqlite3.connect(location)
        with conn:
            conn.execute(statement, params)
        conn.close()


def problems(log: Ledger) -> str:
    report = log.verify()
    assert not report.ok, "verify reported a tampered log as intact"
    return "\n".join(report.problems)


# -- basics ------------------------------------------------------------------------------------------


def test_append_returns_durable_receipts_with_signed_heads(log: Ledger) -> None:
    r0 = log.append("scan", {"hello": "world"}, model=MODEL)
    assert (r0.index, r0.tree_size) == (0, 1)
    receipts = log.append_many([NewEntry("bom", {"n": i}) for i in range(3)])
    assert [r.index for r in receipts] == [1, 2, 3]
    assert {r.tree_size for r in receipts} == {4}
    assert receipts[0].checkpoint == log.checkpoint()
    assert log.size() == 4
    e = log.get(0)
    assert e.body == {"hello": "world"} and e.kind == "scan" and e.model == MODEL
    assert e.body_sha256 == hashlib.sha256(b'{"hello":"world"}').hexdigest()
    assert [x.index for x in log.for_model(MODEL)] == [0]
    assert log.verify().ok


def test_kinds_digests_and_bodies_are_validated(log: Ledger) -> None:
    with pytest.raises(LedgerUsageError, match="unknown ledger entry kind"):
        log.append("deploy", {})
    with pytest.raises(LedgerUsageError, match="ALGORITHM:HEX"):
        log.append("scan", {}, model="not a digest")
    with pytest.raises(LedgerUsageError, match="NaN"):
        log.append("scan", {"x": float("nan")})
    with pytest.raises(LedgerUsageError, match="no entry 0"):
        log.get(0)
    assert log.size() == 0


def test_large_bodies_are_stored_once_by_hash(log: Ledger) -> None:
    big = {"blob": "x" * 200_000}
    a = log.append("probe", big)
    b = log.append("probe", big)
    assert a.body_sha256 == b.body_sha256
    assert log.get(1).body == big
    assert log.verify().ok


def test_record_appends_evidence(location: str, key_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIVET_LEDGER_KEY", str(key_path))
    ev = Evidence(findings=(Finding("PICKLE-DANGEROUS-GLOBAL", Severity.HIGH, "os.system", Location("m.pkl", offset=3)),))
    receipt = record(ev, kind="scan", ledger=location, model_digest=MODEL)
    with Ledger.open(location, key_path=key_path) as log:
        assert log.get(receipt.index).body == json.loads(json.dumps(ev.to_dict()))
        assert log.for_model(MODEL)[0].index == receipt.index


# -- proofs --------------------------------------------------------------------------------------------


def test_every_inclusion_and_consistency_proof_verifies(log: Ledger) -> None:
    fill(log, 40)
    key = log.public_key()
    for i in range(40):
        entry = log.inclusion_proof(i)
        assert verify_entry_proof(entry, key) == i
        assert base64.b64decode(entry["canonicalizedBody"]).startswith(b'{"body":')
    # against an older signed head
    old = log.inclusion_proof(2, tree_size=3)
    assert old["inclusionProof"]["treeSize"] == "3" and verify_entry_proof(old, key) == 2
    for m in range(0, 41, 3):
        for n in range(m, 41, 5):
            verify_consistency_document(log.consistency_proof(m, n), key)


def test_bad_proofs_are_rejected(log: Ledger) -> None:
    fill(log, 12)
    key = log.public_key()
    entry = log.inclusion_proof(5)
    forged = json.loads(json.dumps(entry))
    forged["canonicalizedBody"] = base64.b64encode(b'{"forged":1}').decode()
    with pytest.raises(LedgerCorrupt, match="does not lead"):
        verify_entry_proof(forged, key)
    moved = json.loads(json.dumps(entry))
    moved["logIndex"] = moved["inclusionProof"]["logIndex"] = "6"
    with pytest.raises(LedgerCorrupt):
        verify_entry_proof(moved, key)
    other = LogKey(key.name, __import__("cryptography.hazmat.primitives.asymmetric.ed25519", fromlist=["x"]).Ed25519PrivateKey.generate())
    with pytest.raises(LedgerCorrupt, match="not signed by the log key|invalid signature"):
        verify_entry_proof(entry, other.public)
    doc = log.consistency_proof(5, 12)
    doc["hashes"][0] = base64.b64encode(b"\x00" * 32).decode()
    with pytest.raises(LedgerCorrupt, match="not an append-only extension"):
        verify_consistency_document(doc, key)
    with pytest.raises(LedgerUsageError):
        log.inclusion_proof(12)
    with pytest.raises(LedgerUsageError):
        log.consistency_proof(5, 13)


# -- tampering: verify must never call a tampered log intact -------------------------------------------


def test_edited_body_is_detected(log: Ledger, location: str) -> None:
    fill(log, 20)
    sql(location, "UPDATE entries SET body = ? WHERE idx = 7", (b'{"i":700}',))
    assert "entry 7: body does not match" in problems(log)


def test_edited_envelope_is_detected(log: Ledger, location: str) -> None:
    fill(log, 20)
    row = log.inclusion_proof(3)
    env = base64.b64decode(row["canonicalizedBody"]).replace(b'"kind":"bom"', b'"kind":"gate"')
    sql(location, "UPDATE entries SET envelope = ?, leaf = ? WHERE idx = 9", (env.replace(b'"index":3', b'"index":9'), leaf_hash(env)))
    text = problems(log)
    assert "does not match the entries" in text


def test_deleted_row_is_detected(log: Ledger, location: str) -> None:
    fill(log, 20)
    sql(location, "DELETE FROM entries WHERE idx = 4")
    assert "entry 4 is missing" in problems(log)


def test_deleted_tail_is_detected_by_heads(log: Ledger, location: str) -> None:
    fill(log, 20)
    sql(location, "DELETE FROM entries WHERE idx >= 18")
    assert "signed for size 20 but the log has only 18" in problems(log)


def test_rollback_of_entries_and_heads_is_caught_by_a_saved_checkpoint(log: Ledger, location: str) -> None:
    fill(log, 20)
    saved = log.checkpoint()
    assert saved is not None
    for statement in ("DELETE FROM entries WHERE idx >= 18", "DELETE FROM heads WHERE size > 18",
                      "DELETE FROM nodes WHERE level = 1 AND idx = 9", "DELETE FROM nodes WHERE level = 2 AND idx = 4"):
        sql(location, statement)
    fill_more = log.verify(trusted_checkpoint=saved)
    assert not fill_more.ok and "trusted checkpoint covers 20" in "\n".join(fill_more.problems)


def test_inserted_row_is_detected(log: Ledger, location: str) -> None:
    fill(log, 20)
    env = b'{"body":{"sha256":"' + hashlib.sha256(b"{}").hexdigest().encode() + b'","size":2},"index":20,"kind":"gate","model":null,"time":"2026-01-01T00:00:00.000000Z","v":1}'
    sql(location, "INSERT INTO entries (idx, leaf, kind, model, time, envelope, body_sha256, body) VALUES (?,?,?,?,?,?,?,?)",
        (20, leaf_hash(env), "gate", None, "2026-01-01T00:00:00.000000Z", env, hashlib.sha256(b"{}").hexdigest(), b"{}"))
    assert "not covered by any valid signed tree head" in problems(log)


def test_swapped_rows_are_detected(log: Ledger, location: str) -> None:
    fill(log, 20)
    sql(location, "UPDATE entries SET idx = -1 WHERE idx = 3")
    sql(location, "UPDATE entries SET idx = 3 WHERE idx = 11")
    sql(location, "UPDATE entries SET idx = 11 WHERE idx = -1")
    text = problems(log)
    assert "rows swapped or renumbered" in text and "does not match the entries" in text


def test_forged_tree_head_signed_by_another_key_is_detected(log: Ledger, location: str) -> None:
    fill(log, 20)
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    # Rewrite entry 5 and re-sign the latest head with an attacker's key under the log's name.
    sql(location, "UPDATE entries SET body = ? WHERE idx = 19", (b'{"i":19000}',))
    attacker = LogKey(log.public_key().name, Ed25519PrivateKey.generate())
    root = log.root(20)
    sql(location, "UPDATE heads SET checkpoint = ? WHERE size = 20", (sign_checkpoint(attacker, 20, root),))
    text = problems(log)
    assert "not signed by the log key" in text


def test_edited_proof_node_is_detected(log: Ledger, location: str) -> None:
    fill(log, 20)
    sql(location, "UPDATE nodes SET hash = ? WHERE level = 2 AND idx = 1", (b"\x11" * 32,))
    assert "proof cache node (level 2, index 1)" in problems(log)


def test_edited_index_column_is_detected(log: Ledger, location: str) -> None:
    fill(log, 20)
    sql(location, "UPDATE entries SET model = ? WHERE idx = 2", (MODEL,))
    assert "columns differ from its signed envelope" in problems(log)


def test_replaced_ledger_key_is_detected(log: Ledger, location: str, tmp_path: Path) -> None:
    fill(log, 5)
    trusted = log.public_key()
    other = Ledger.open(str(tmp_path / "other.db"), key_path=tmp_path / "other.key")
    other.append("scan", {})
    sql(location, "UPDATE meta SET value = ? WHERE key = 'public_key'", (other.public_key().verifier_key(),))
    other.close()
    report = log.verify(trusted)
    assert not report.ok and "different public key" in "\n".join(report.problems)


# -- export and import ----------------------------------------------------------------------------------


def test_export_verifies_offline_and_imports_read_only(log: Ledger, tmp_path: Path) -> None:
    fill(log, 30)
    log.append("probe", {"big": "y" * 100_000})
    out = tmp_path / "audit.jsonl"
    assert log.export(out) == 31
    key = parse_verifier_key(log.public_key().verifier_key())
    report = verify_export(out, key)
    assert report.ok and report.size == 31 and report.heads_checked >= 10
    imported = Ledger.import_export(out, str(tmp_path / "imported.db"), key)
    assert imported.size() == 31 and imported.verify(key).ok
    assert imported.get(30).body == {"big": "y" * 100_000}
    with pytest.raises(LedgerUsageError, match="read-only"):
        imported.append("scan", {})
    imported.close()


def test_truncated_or_edited_exports_fail(log: Ledger, tmp_path: Path) -> None:
    fill(log, 12)
    out = tmp_path / "audit.jsonl"
    log.export(out)
    key = log.public_key()
    data = out.read_bytes()
    for cut in (0, 10, len(data) // 2, len(data) - 1, data.rindex(b'{"end"')):
        bad = tmp_path / f"cut{cut}.jsonl"
        bad.write_bytes(data[:cut])
        report = verify_export(bad, key)
        assert not report.ok, f"truncated at {cut} but verified"
        with pytest.raises(LedgerCorrupt):
            Ledger.import_export(bad, str(tmp_path / f"imp{cut}.db"), key)
    edited = tmp_path / "edited.jsonl"
    edited.write_bytes(data.replace(b'{\\"i\\":7}', b'{\\"i\\":8}'))
    assert data != edited.read_bytes() and not verify_export(edited, key).ok
    other = LogKey(key.name, __import__("cryptography.hazmat.primitives.asymmetric.ed25519", fromlist=["x"]).Ed25519PrivateKey.generate())
    assert not verify_export(out, other.public).ok


# -- bad environments ------------------------------------------------------------------------------------


def test_unreachable_postgres_gives_a_clear_error() -> None:
    pytest.importorskip("psycopg")
    with pytest.raises(LedgerUnavailable) as info:
        Ledger.open("postgresql://someone:s3cret@127.0.0.1:1/nodb")
    text = info.value.diagnostics()
    assert "cannot connect to the PostgreSQL ledger" in text and "s3cret" not in text and "***" in text


def test_misconfigured_postgres_url_gives_a_clear_error() -> None:
    pytest.importorskip("psycopg")
    with pytest.raises(LedgerUnavailable, match="PostgreSQL ledger"):
        Ledger.open("postgresql://127.0.0.1:99999999/x?sslmode=bogus")


def test_full_disk_is_reported_and_loses_nothing(tmp_path: Path) -> None:
    from aivet.ledger.sqlite_store import SqliteStore

    log = Ledger.open(str(tmp_path / "l.db"), key_path=tmp_path / "l.key")
    log.append("scan", {"ok": 1})
    assert isinstance(log.store, SqliteStore)
    log.store.set_max_pages(log.store.conn.execute("PRAGMA page_count").fetchone()[0])
    with pytest.raises(LedgerUnavailable, match="disk is full"):
        log.append_many([NewEntry("scan", {"pad": "z" * 5000, "i": i}) for i in range(50)])
    log.store.set_max_pages(1 << 30)
    assert log.size() == 1 and log.verify().ok
    log.close()


def test_a_corrupt_database_file_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "l.db"
    bad.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(LedgerCorrupt, match="not a readable SQLite database"):
        Ledger.open(str(bad), key_path=tmp_path / "l.key")


def test_log_key_is_private_and_bound_to_its_ledger(tmp_path: Path) -> None:
    db, key = tmp_path / "l.db", tmp_path / "l.key"
    with Ledger.open(str(db)) as log:  # key defaults to beside the database
        log.append("scan", {})
    assert key.exists() and stat.S_IMODE(key.stat().st_mode) == 0o600
    os.chmod(key, 0o644)
    with Ledger.open(str(db)) as log, pytest.raises(LedgerKeyError, match="chmod 600"):
        log.append("scan", {})
    os.chmod(key, 0o600)
    with Ledger.open(str(db), key_path=tmp_path / "another.key") as log, pytest.raises(LedgerKeyError, match="is not the key of ledger"):
        log.append("scan", {})
