"""The storage interface of the ledger, and the SQL shared by its implementations.

A store keeps five tables: ``meta`` (origin, public key), ``entries`` (one row
per leaf: the canonical envelope, its leaf hash and the body when small),
``blobs`` (large bodies by SHA-256), ``nodes`` (the root of every perfect
subtree above the leaves, for O(log n) proofs) and ``heads`` (every signed
checkpoint). Nothing in a store is trusted: :mod:`aivet.ledger.verify`
recomputes it all from the envelopes and checks heads against the log key.

Writers run inside :meth:`Store.write`, which serializes appenders across
processes (SQLite ``BEGIN IMMEDIATE``; PostgreSQL an advisory transaction
lock), so the next index is assigned under the lock.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

from aivet.ledger.merkle import NodeKey

__all__ = ["EntryRow", "HeadRow", "Store", "Tx", "SqlTx"]


@dataclass(frozen=True)
class EntryRow:
    """One stored leaf. ``body`` is ``None`` when the body lives in ``blobs`` under ``body_sha256``."""

    index: int
    leaf: bytes
    kind: str
    model: str | None
    time: str
    envelope: bytes
    body_sha256: str
    body: bytes | None


@dataclass(frozen=True)
class HeadRow:
    """One stored signed tree head."""

    size: int
    root: bytes
    checkpoint: str


class Tx(abc.ABC):
    """One transaction on a store. Write methods are only valid inside :meth:`Store.write`."""

    @abc.abstractmethod
    def size(self) -> int:
        """Number of entries (the next index)."""

    @abc.abstractmethod
    def nodes(self, keys: Sequence[NodeKey]) -> dict[NodeKey, bytes]:
        """Roots of the given perfect subtrees (level 0 = leaf hashes); missing keys are absent."""

    def proof_material(
        self, index: int, keys: Sequence[NodeKey], *, latest: bool
    ) -> tuple[EntryRow | None, dict[NodeKey, bytes], HeadRow | None]:
        """The entry at ``index``, the given nodes, and (if ``latest``) the latest head.

        A store may fetch all three in one round trip; the caller checks that
        the head is the one it computed ``keys`` for, and asks again if not.
        """
        rows = self.entries(index, index + 1)
        return (rows[0] if rows else None), self.nodes(keys), (self.latest_head() if latest else None)

    @abc.abstractmethod
    def entries(self, start: int, end: int) -> list[EntryRow]:
        """Entries with ``start <= index < end`` in index order (as stored: gaps possible)."""

    @abc.abstractmethod
    def next_index(self, start: int) -> int | None:
        """The smallest stored index ``>= start``, or ``None``."""

    @abc.abstractmethod
    def entries_for_model(self, model: str, limit: int) -> list[EntryRow]:
        """Entries linked to a model digest, oldest first."""

    @abc.abstractmethod
    def blob(self, sha256: str) -> bytes | None:
        """A large body by its hash."""

    @abc.abstractmethod
    def heads(self) -> Iterator[HeadRow]:
        """Every stored head, smallest size first."""

    @abc.abstractmethod
    def head(self, size: int) -> HeadRow | None:
        """The head for exactly ``size`` entries, if one was signed."""

    @abc.abstractmethod
    def latest_head(self) -> HeadRow | None:
        """The head with the largest size."""

    @abc.abstractmethod
    def node_range(self, level: int, start: int, end: int) -> dict[int, bytes]:
        """Stored nodes of one level with ``start <= index < end``."""

    @abc.abstractmethod
    def node_count(self) -> int:
        """Number of stored interior nodes."""

    @abc.abstractmethod
    def meta(self) -> dict[str, str]:
        """All metadata."""

    # -- writes ---------------------------------------------------------------------------------
    @abc.abstractmethod
    def put_meta(self, values: dict[str, str]) -> None:
        """Insert metadata keys that are not set yet (never overwrites)."""

    @abc.abstractmethod
    def add(self, entries: Sequence[EntryRow], blobs: Sequence[tuple[str, bytes]], nodes: Sequence[tuple[int, int, bytes]], heads: Sequence[HeadRow]) -> None:
        """Write new entries, blobs, interior nodes and the signed heads covering them."""


class Store(abc.ABC):
    """A ledger database."""

    location: str  # for messages; never contains a password

    @abc.abstractmethod
    def read(self, snapshot: bool = True) -> AbstractContextManager[Tx]:
        """A read-only transaction; ``snapshot=False`` lets each statement see the latest commit.

        Proofs need no snapshot: the log is append-only, so every node that a
        signed head's proof needs was committed with or before that head.
        """

    @abc.abstractmethod
    def write(self) -> AbstractContextManager[Tx]:
        """An exclusive write transaction, serialized with every other writer."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release connections."""


class SqlTx(Tx):
    """:class:`Tx` over a DB-API cursor; subclasses set the parameter marker and a few dialect bits."""

    P = "?"

    def __init__(self, cur: Any) -> None:
        self.cur = cur

    def q(self, sql: str) -> str:
        return sql.replace("?", self.P) if self.P != "?" else sql

    def _one(self, sql: str, params: Sequence[Any] = ()) -> Any:
        self.cur.execute(self.q(sql), params)
        return self.cur.fetchone()

    def _all(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        self.cur.execute(self.q(sql), params)
        return list(self.cur.fetchall())

    def size(self) -> int:
        row = self._one("SELECT MAX(idx) FROM entries")
        return 0 if row is None or row[0] is None else int(row[0]) + 1

    def nodes(self, keys: Sequence[NodeKey]) -> dict[NodeKey, bytes]:
        if not keys:
            return {}
        leaves = [i for lvl, i in keys if lvl == 0]
        inner = [(lvl, i) for lvl, i in keys if lvl > 0]
        parts: list[str] = []
        params: list[Any] = []
        if leaves:
            parts.append(f"SELECT 0, idx, leaf FROM entries WHERE idx IN ({','.join('?' * len(leaves))})")
            params += leaves
        if inner:
            cond = " OR ".join("(level = ? AND idx = ?)" for _ in inner)
            parts.append(f"SELECT level, idx, hash FROM nodes WHERE {cond}")
            params += [x for key in inner for x in key]
        return {(int(r[0]), int(r[1])): bytes(r[2]) for r in self._all(" UNION ALL ".join(parts), params)}

    _ENTRY_COLS = "idx, leaf, kind, model, time, envelope, body_sha256, body"

    @staticmethod
    def _entry(r: Any) -> EntryRow:
        return EntryRow(int(r[0]), bytes(r[1]), r[2], r[3], r[4], bytes(r[5]), r[6], None if r[7] is None else bytes(r[7]))

    def entries(self, start: int, end: int) -> list[EntryRow]:
        rows = self._all(f"SELECT {self._ENTRY_COLS} FROM entries WHERE idx >= ? AND idx < ? ORDER BY idx", (start, end))
        return [self._entry(r) for r in rows]

    def next_index(self, start: int) -> int | None:
        row = self._one("SELECT MIN(idx) FROM entries WHERE idx >= ?", (start,))
        return None if row is None or row[0] is None else int(row[0])

    def entries_for_model(self, model: str, limit: int) -> list[EntryRow]:
        rows = self._all(f"SELECT {self._ENTRY_COLS} FROM entries WHERE model = ? ORDER BY idx LIMIT ?", (model, limit))
        return [self._entry(r) for r in rows]

    def blob(self, sha256: str) -> bytes | None:
        row = self._one("SELECT data FROM blobs WHERE sha256 = ?", (sha256,))
        return None if row is None else bytes(row[0])

    def heads(self) -> Iterator[HeadRow]:
        last = -1
        while True:  # paged so that a million heads never sit in memory at once
            rows = self._all("SELECT size, root, checkpoint FROM heads WHERE size > ? ORDER BY size LIMIT 5000", (last,))
            if not rows:
                return
            for r in rows:
                yield HeadRow(int(r[0]), bytes(r[1]), r[2])
            last = int(rows[-1][0])

    def head(self, size: int) -> HeadRow | None:
        r = self._one("SELECT size, root, checkpoint FROM heads WHERE size = ?", (size,))
        return None if r is None else HeadRow(int(r[0]), bytes(r[1]), r[2])

    def latest_head(self) -> HeadRow | None:
        r = self._one("SELECT size, root, checkpoint FROM heads ORDER BY size DESC LIMIT 1")
        return None if r is None else HeadRow(int(r[0]), bytes(r[1]), r[2])

    def node_range(self, level: int, start: int, end: int) -> dict[int, bytes]:
        rows = self._all("SELECT idx, hash FROM nodes WHERE level = ? AND idx >= ? AND idx < ?", (level, start, end))
        return {int(r[0]): bytes(r[1]) for r in rows}

    def node_count(self) -> int:
        return int(self._one("SELECT COUNT(*) FROM nodes")[0])

    def meta(self) -> dict[str, str]:
        return {str(k): str(v) for k, v in self._all("SELECT key, value FROM meta")}
