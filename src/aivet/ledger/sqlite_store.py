"""The embedded ledger store: one SQLite file in WAL mode, nothing to start.

Durability: ``synchronous=FULL`` makes every commit reach the disk before
the append returns, so an acknowledged entry survives ``kill -9`` and power
loss. Concurrency: writers take ``BEGIN IMMEDIATE`` (the database's single
write lock) and wait up to ``busy_timeout`` for each other; readers see a
consistent snapshot without blocking writers.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

from aivet.ledger.errors import LedgerCorrupt, LedgerUnavailable
from aivet.ledger.store import EntryRow, HeadRow, SqlTx, Store

__all__ = ["SqliteStore"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS entries (
    idx INTEGER PRIMARY KEY, leaf BLOB NOT NULL, kind TEXT NOT NULL, model TEXT, time TEXT NOT NULL,
    envelope BLOB NOT NULL, body_sha256 TEXT NOT NULL, body BLOB);
CREATE INDEX IF NOT EXISTS entries_model ON entries (model) WHERE model IS NOT NULL;
CREATE TABLE IF NOT EXISTS blobs (sha256 TEXT PRIMARY KEY, data BLOB NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS nodes (level INTEGER NOT NULL, idx INTEGER NOT NULL, hash BLOB NOT NULL,
    PRIMARY KEY (level, idx)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS heads (size INTEGER PRIMARY KEY, root BLOB NOT NULL, checkpoint TEXT NOT NULL);
"""

BUSY_TIMEOUT_S = 60.0


def _translate(exc: sqlite3.Error, path: str) -> Exception:
    text = str(exc)
    if "disk is full" in text or "disk I/O error" in text:
        return LedgerUnavailable(f"cannot write the ledger {path}: the disk is full or failing ({text})")
    if isinstance(exc, sqlite3.DatabaseError) and ("not a database" in text or "malformed" in text):
        return LedgerCorrupt(f"ledger {path} is not a readable SQLite database ({text})")
    if "locked" in text or "busy" in text:
        return LedgerUnavailable(f"ledger {path} stayed locked by another writer for {BUSY_TIMEOUT_S:.0f} s")
    if "readonly" in text or "unable to open" in text:
        return LedgerUnavailable(f"cannot open the ledger {path} for writing ({text})")
    return LedgerUnavailable(f"ledger {path}: database error: {text}")


class SqliteTx(SqlTx):
    """A transaction on the SQLite store."""

    def put_meta(self, values: dict[str, str]) -> None:
        self.cur.executemany("INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)", list(values.items()))

    def add(
        self,
        entries: Sequence[EntryRow],
        blobs: Sequence[tuple[str, bytes]],
        nodes: Sequence[tuple[int, int, bytes]],
        heads: Sequence[HeadRow],
    ) -> None:
        self.cur.executemany(
            "INSERT INTO entries (idx, leaf, kind, model, time, envelope, body_sha256, body) VALUES (?,?,?,?,?,?,?,?)",
            [(e.index, e.leaf, e.kind, e.model, e.time, e.envelope, e.body_sha256, e.body) for e in entries],
        )
        if blobs:
            self.cur.executemany("INSERT OR IGNORE INTO blobs (sha256, data) VALUES (?, ?)", blobs)
        self.cur.executemany("INSERT INTO nodes (level, idx, hash) VALUES (?, ?, ?)", nodes)
        self.cur.executemany("INSERT INTO heads (size, root, checkpoint) VALUES (?, ?, ?)", [(h.size, h.root, h.checkpoint) for h in heads])


class SqliteStore(Store):
    """A ledger in one SQLite file."""

    def __init__(self, path: Path, *, create: bool = True) -> None:
        self.path = path
        self.location = str(path)
        if not create and not path.exists():
            raise LedgerUnavailable(f"no ledger at {path}")
        try:
            if create:
                path.parent.mkdir(parents=True, exist_ok=True)
            self.conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=FULL")
            self.conn.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
            with self.write() as tx:
                for statement in SCHEMA.split(";"):
                    if statement.strip():
                        tx.cur.execute(statement)
        except sqlite3.Error as exc:
            raise _translate(exc, self.location) from exc
        except OSError as exc:
            raise LedgerUnavailable(f"cannot create the ledger {path}: {exc.strerror or exc}") from exc

    @contextmanager
    def _tx(self, begin: str) -> Iterator[SqliteTx]:
        cur = self.conn.cursor()
        try:
            cur.execute(begin)
            try:
                yield SqliteTx(cur)
            except BaseException:
                self.conn.rollback()
                raise
            cur.execute("COMMIT")
        except sqlite3.Error as exc:
            if self.conn.in_transaction:
                self.conn.rollback()
            raise _translate(exc, self.location) from exc
        finally:
            cur.close()

    def read(self, snapshot: bool = True) -> AbstractContextManager[SqliteTx]:
        return self._tx("BEGIN DEFERRED")  # cheap in SQLite: always a snapshot

    def write(self) -> AbstractContextManager[SqliteTx]:
        return self._tx("BEGIN IMMEDIATE")

    def close(self) -> None:
        self.conn.close()

    def set_max_pages(self, pages: int) -> None:
        """Cap the database size (tests use this to simulate a full disk)."""
        self.conn.execute(f"PRAGMA max_page_count={int(pages)}")
