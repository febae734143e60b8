"""The shared ledger store: PostgreSQL, for teams appending from many machines.

Needs the optional extra ``aivet[postgres]`` (psycopg 3). Writers serialize on
a transaction-scoped advisory lock taken before the next index is read, so
indices are dense and unique however many clients append; readers use
REPEATABLE READ snapshots.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from aivet.errors import MissingExtraError
from aivet.ledger.entry import parse_envelope
from aivet.ledger.errors import LedgerCorrupt, LedgerUnavailable
from aivet.ledger.store import EntryRow, HeadRow, SqlTx, Store

__all__ = ["PostgresStore", "redact"]

SCHEMA = [
    "CREATE TABLE IF NOT EXISTS aivet_ledger_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE IF NOT EXISTS aivet_ledger_entries (
        idx BIGINT PRIMARY KEY, leaf BYTEA NOT NULL, kind TEXT NOT NULL, model TEXT, time TEXT NOT NULL,
        envelope BYTEA NOT NULL, body_sha256 TEXT NOT NULL, body BYTEA)""",
    "CREATE INDEX IF NOT EXISTS aivet_ledger_entries_model ON aivet_ledger_entries (model) WHERE model IS NOT NULL",
    "CREATE TABLE IF NOT EXISTS aivet_ledger_blobs (sha256 TEXT PRIMARY KEY, data BYTEA NOT NULL)",
    """CREATE TABLE IF NOT EXISTS aivet_ledger_nodes (level INTEGER NOT NULL, idx BIGINT NOT NULL, hash BYTEA NOT NULL,
        PRIMARY KEY (level, idx))""",
    "CREATE TABLE IF NOT EXISTS aivet_ledger_heads (size BIGINT PRIMARY KEY, root BYTEA NOT NULL, checkpoint TEXT NOT NULL)",
]
# One advisory lock id for the ledger: "aivetlg" as an integer.
_LOCK_ID = int.from_bytes(b"aivetlg", "big")
_TABLES = ("meta", "entries", "blobs", "nodes", "heads")


def redact(url: str) -> str:
    """The URL with any password replaced by ``***`` (for messages and logs)."""
    return re.sub(r"(://[^/:@]*:)[^@/]*@", r"\1***@", url)


def _qualify(sql: str) -> str:
    # The tables carry a prefix in PostgreSQL so that the ledger can share a database with other applications.
    for t in _TABLES:
        sql = re.sub(rf"\b(FROM|INTO|UPDATE|JOIN) {t}\b", rf"\1 aivet_ledger_{t}", sql)
    return sql


class PostgresTx(SqlTx):
    """A transaction on the PostgreSQL store."""

    P = "%s"

    def q(self, sql: str) -> str:
        return _qualify(sql.replace("?", "%s"))

    def nodes(self, keys: Sequence[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
        if not keys:
            return {}
        # One round trip whatever the number of keys: arrays joined against the primary keys.
        levels = [k[0] for k in keys if k[0] > 0]
        idxs = [k[1] for k in keys if k[0] > 0]
        leaves = [k[1] for k in keys if k[0] == 0]
        sql = (
            "SELECT 0, idx, leaf FROM aivet_ledger_entries WHERE idx = ANY(%s::bigint[]) UNION ALL "
            "SELECT n.level, n.idx, n.hash FROM aivet_ledger_nodes n "
            "JOIN unnest(%s::int[], %s::bigint[]) AS k(level, idx) ON n.level = k.level AND n.idx = k.idx"
        )
        self.cur.execute(sql, (leaves, levels, idxs))
        return {(int(r[0]), int(r[1])): bytes(r[2]) for r in self.cur.fetchall()}

    def proof_material(
        self, index: int, keys: Sequence[tuple[int, int]], *, latest: bool
    ) -> tuple[EntryRow | None, dict[tuple[int, int], bytes], HeadRow | None]:
        # One round trip for the latest head, the entry and every node of a proof.
        levels = [k[0] for k in keys if k[0] > 0]
        idxs = [k[1] for k in keys if k[0] > 0]
        leaves = [k[1] for k in keys if k[0] == 0]
        head_sql = (
            "SELECT -2, size, root, checkpoint, NULL::bytea FROM "
            "(SELECT size, root, checkpoint FROM aivet_ledger_heads ORDER BY size DESC LIMIT 1) h UNION ALL "
            if latest
            else ""
        )
        self.cur.execute(
            head_sql
            + "SELECT -1, idx, leaf, body_sha256, envelope FROM aivet_ledger_entries WHERE idx = %s "
            "UNION ALL SELECT 0, idx, leaf, NULL, NULL FROM aivet_ledger_entries WHERE idx = ANY(%s::bigint[]) "
            "UNION ALL SELECT n.level, n.idx, n.hash, NULL, NULL FROM aivet_ledger_nodes n "
            "JOIN unnest(%s::int[], %s::bigint[]) AS k(level, idx) ON n.level = k.level AND n.idx = k.idx",
            (index, leaves, levels, idxs),
        )
        entry: EntryRow | None = None
        head: HeadRow | None = None
        nodes: dict[tuple[int, int], bytes] = {}
        for r in self.cur.fetchall():
            if r[0] == -2:
                head = HeadRow(int(r[1]), bytes(r[2]), r[3])
            elif r[0] == -1:
                # kind, model and time are read from the envelope, which the proof carries anyway
                env = parse_envelope(bytes(r[4]))
                entry = EntryRow(int(r[1]), bytes(r[2]), env.kind.value, env.model, env.time, bytes(r[4]), r[3], None)
            else:
                nodes[(int(r[0]), int(r[1]))] = bytes(r[2])
        return entry, nodes, head

    def put_meta(self, values: dict[str, str]) -> None:
        self.cur.executemany(
            "INSERT INTO aivet_ledger_meta (key, value) VALUES (%s, %s) ON CONFLICT (key) DO NOTHING", list(values.items())
        )

    def add(
        self,
        entries: Sequence[EntryRow],
        blobs: Sequence[tuple[str, bytes]],
        nodes: Sequence[tuple[int, int, bytes]],
        heads: Sequence[HeadRow],
    ) -> None:
        if len(entries) <= 64:
            self._add_small(entries, blobs, nodes, heads)
            return
        # COPY is PostgreSQL's bulk path: one message stream instead of a round trip per row.
        with self.cur.copy(
            "COPY aivet_ledger_entries (idx, leaf, kind, model, time, envelope, body_sha256, body) FROM STDIN"
        ) as copy:
            for e in entries:
                copy.write_row((e.index, e.leaf, e.kind, e.model, e.time, e.envelope, e.body_sha256, e.body))
        if blobs:
            self.cur.executemany(
                "INSERT INTO aivet_ledger_blobs (sha256, data) VALUES (%s, %s) ON CONFLICT (sha256) DO NOTHING", blobs
            )
        if nodes:
            with self.cur.copy("COPY aivet_ledger_nodes (level, idx, hash) FROM STDIN") as copy:
                for n in nodes:
                    copy.write_row(n)
        self.cur.executemany(
            "INSERT INTO aivet_ledger_heads (size, root, checkpoint) VALUES (%s, %s, %s)",
            [(h.size, h.root, h.checkpoint) for h in heads],
        )


    def _add_small(
        self,
        entries: Sequence[EntryRow],
        blobs: Sequence[tuple[str, bytes]],
        nodes: Sequence[tuple[int, int, bytes]],
        heads: Sequence[HeadRow],
    ) -> None:
        # A pipeline sends every statement at once and waits once: a single append costs one round trip.
        with self.cur.connection.pipeline():
            self.cur.executemany(
                "INSERT INTO aivet_ledger_entries (idx, leaf, kind, model, time, envelope, body_sha256, body) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                [(e.index, e.leaf, e.kind, e.model, e.time, e.envelope, e.body_sha256, e.body) for e in entries],
            )
            if blobs:
                self.cur.executemany(
                    "INSERT INTO aivet_ledger_blobs (sha256, data) VALUES (%s, %s) ON CONFLICT (sha256) DO NOTHING", blobs
                )
            if nodes:
                self.cur.executemany("INSERT INTO aivet_ledger_nodes (level, idx, hash) VALUES (%s, %s, %s)", nodes)
            self.cur.executemany(
                "INSERT INTO aivet_ledger_heads (size, root, checkpoint) VALUES (%s, %s, %s)",
                [(h.size, h.root, h.checkpoint) for h in heads],
            )


class PostgresStore(Store):
    """A ledger in a PostgreSQL database (tables prefixed ``aivet_ledger_``)."""

    def __init__(self, url: str, *, connect_timeout: int = 10) -> None:
        self.location = redact(url)
        try:
            import psycopg
        except ImportError:
            raise MissingExtraError("psycopg", "postgres", "a PostgreSQL ledger") from None
        self._psycopg: Any = psycopg
        try:
            self.conn = psycopg.connect(url, connect_timeout=connect_timeout, autocommit=True)
        except psycopg.Error as exc:
            raise LedgerUnavailable(f"cannot connect to the PostgreSQL ledger {self.location}: {_first_line(exc)}") from exc
        except Exception as exc:  # a malformed URL raises ProgrammingError or ValueError depending on the part
            raise LedgerUnavailable(f"cannot use the PostgreSQL ledger URL {self.location}: {_first_line(exc)}") from exc
        with self.write() as tx:
            for statement in SCHEMA:
                tx.cur.execute(statement)

    @contextmanager
    def _tx(self, exclusive: bool, snapshot: bool = True) -> Iterator[PostgresTx]:
        psycopg = self._psycopg
        # Explicit BEGIN on an autocommit connection: one round trip opens the transaction with its
        # isolation level (and, for writers, takes the lock), which matters for millisecond proofs.
        begin = f"BEGIN; SELECT pg_advisory_xact_lock({_LOCK_ID})" if exclusive else "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"
        cur = self.conn.cursor()
        try:
            if not snapshot:  # autocommit statements: no BEGIN/COMMIT round trips
                yield PostgresTx(cur)
                return
            cur.execute(begin)
            try:
                yield PostgresTx(cur)
            except BaseException:
                if not self.conn.closed:
                    cur.execute("ROLLBACK")
                raise
            cur.execute("COMMIT")
        except psycopg.errors.DiskFull as exc:
            self._reset()
            raise LedgerUnavailable(f"cannot write the ledger {self.location}: the server's disk is full") from exc
        except psycopg.errors.DataCorrupted as exc:
            self._reset()
            raise LedgerCorrupt(f"ledger {self.location}: {_first_line(exc)}") from exc
        except psycopg.OperationalError as exc:
            self._reset()
            raise LedgerUnavailable(f"lost the PostgreSQL ledger {self.location}: {_first_line(exc)}") from exc
        except psycopg.Error as exc:
            self._reset()
            raise LedgerUnavailable(f"ledger {self.location}: database error: {_first_line(exc)}") from exc
        finally:
            cur.close()

    def _reset(self) -> None:
        try:
            if not self.conn.closed:
                self.conn.execute("ROLLBACK")
        except Exception:  # noqa: BLE001 - the connection may be gone; the original error is what matters
            pass

    def read(self, snapshot: bool = True) -> AbstractContextManager[PostgresTx]:
        return self._tx(False, snapshot)

    def write(self) -> AbstractContextManager[PostgresTx]:
        return self._tx(True)

    def close(self) -> None:
        self.conn.close()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
