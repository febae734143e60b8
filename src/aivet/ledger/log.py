"""The ledger: an append-only Merkle log of attestations with signed tree heads.

:class:`Ledger` ties a :class:`~aivet.ledger.store.Store` to a log key. Appends
canonicalise and hash bodies outside the lock, then, inside one exclusive
transaction, assign indices, extend the tree, store every newly completed
perfect subtree and a signed checkpoint. Proofs are O(log n) node lookups.
"""

from __future__ import annotations

import base64
import datetime as _dt
import hashlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aivet.ledger.canonical import canonical_json
from aivet.ledger.checkpoint import parse_checkpoint, sign_checkpoint, verify_checkpoint
from aivet.ledger.entry import (
    INLINE_BODY_MAX,
    Entry,
    EntryKind,
    EntryReceipt,
    NewEntry,
    check_model_digest,
    envelope_bytes,
    now,
    parse_envelope,
)
from aivet.ledger.errors import LedgerCorrupt, LedgerKeyError, LedgerUnavailable, LedgerUsageError
from aivet.ledger.keys import LogKey, PublicKey, default_origin, load_or_create_key, parse_verifier_key
from aivet.ledger.location import default_key_path, open_store, resolve_location
from aivet.ledger.merkle import (
    EMPTY_ROOT,
    NodeKey,
    consistency_ranges,
    fold,
    inclusion_ranges,
    leaf_hash,
    node_hash,
    range_keys,
)
from aivet.ledger.store import EntryRow, HeadRow, Store, Tx
from aivet.ledger.verify import (
    StreamVerifier,
    VerifyReport,
    export_entry,
    export_head,
    export_header,
    export_trailer,
    read_export,
    verify_export,
)
from aivet.limits import DEFAULT_LIMITS, Limits

__all__ = ["Ledger"]

ENTRY_KIND_NAME = "aivet-entry"
VERIFY_BATCH = 5000


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@dataclass(frozen=True)
class _Prepared:
    kind: EntryKind
    kind_text: str
    model: str | None
    body: bytes
    body_sha256: str


class Ledger:
    """An open ledger. Use :meth:`open`; close it (or use ``with``) when done."""

    def __init__(self, store: Store, key_path: Path, limits: Limits = DEFAULT_LIMITS) -> None:
        self.store = store
        self.key_path = key_path
        self.limits = limits
        self._key: LogKey | None = None
        self._public: PublicKey | None = None
        self._size_hint: int | None = None  # the latest head's size as last seen, for one-round-trip proofs

    @classmethod
    def open(cls, location: str | None = None, *, key_path: str | Path | None = None) -> Ledger:
        """Open the ledger at ``location`` (a path or ``postgresql://`` URL; default: see :mod:`.location`)."""
        loc = resolve_location(location)
        store = open_store(loc)
        return cls(store, Path(key_path) if key_path else default_key_path(loc))

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the store's connection."""
        self.store.close()

    @property
    def location(self) -> str:
        """Where the ledger is (passwords redacted)."""
        return self.store.location

    # -- keys -----------------------------------------------------------------------------------
    def public_key(self) -> PublicKey:
        """The key this ledger's heads are signed with, as recorded in the ledger itself.

        A new ledger takes the key file's key. Prefer a key obtained out of
        band for verification: whoever can edit the database can edit this.
        """
        if self._public is None:
            with self.store.read() as tx:
                meta = tx.meta()
            self._public = parse_verifier_key(meta["public_key"]) if "public_key" in meta else self._signing_key().public
        return self._public

    def _signing_key(self) -> LogKey:
        if self._key is not None:
            return self._key
        with self.store.read() as tx:
            meta = tx.meta()
        if meta.get("read_only") == "1":
            raise LedgerUsageError(f"ledger {self.location} was imported for audit and is read-only")
        private = load_or_create_key(self.key_path)
        raw = LogKey("x", private).public.raw
        if "public_key" in meta:
            recorded = parse_verifier_key(meta["public_key"])
            if recorded.raw != raw:
                raise LedgerKeyError(
                    f"the log key {self.key_path} is not the key of ledger {self.location} "
                    f"(the ledger's key is {recorded.verifier_key()})"
                )
            self._key = LogKey(recorded.name, private)
            return self._key
        key = LogKey(default_origin(raw), private)
        with self.store.write() as tx:
            tx.put_meta({"origin": key.name, "public_key": key.public.verifier_key(), "format": "1"})
            meta = tx.meta()
        if parse_verifier_key(meta["public_key"]).raw != raw:  # another process initialised it with another key
            raise LedgerKeyError(f"ledger {self.location} was initialised with a different key than {self.key_path}")
        self._key = key
        return key

    # -- appends --------------------------------------------------------------------------------
    def append(self, kind: EntryKind | str, body: Any, *, model: str | None = None) -> EntryReceipt:
        """Append one entry and return its receipt (durable once this returns)."""
        return self.append_many([NewEntry(kind, body, model)])[0]

    def append_many(self, items: Sequence[NewEntry]) -> list[EntryReceipt]:
        """Append entries in one transaction under one signed tree head; indices are consecutive."""
        if not items:
            return []
        key = self._signing_key()
        prepared = []
        for item in items:  # the expensive part happens before taking the lock
            data = canonical_json(item.body)
            kind = item.kind if isinstance(item.kind, EntryKind) else EntryKind.parse(item.kind)
            prepared.append(_Prepared(kind, kind.value, check_model_digest(item.model), data, hashlib.sha256(data).hexdigest()))
        stamp = now()
        with self.store.write() as tx:
            n = tx.size()
            stack = self._frontier(tx, n)
            rows: list[EntryRow] = []
            blobs: list[tuple[str, bytes]] = []
            nodes: list[tuple[int, int, bytes]] = []
            for j, p in enumerate(prepared):
                index = n + j
                env = envelope_bytes(index, p.kind, p.model, stamp, p.body_sha256, len(p.body))
                leaf = leaf_hash(env)
                inline = len(p.body) <= INLINE_BODY_MAX
                if not inline:
                    blobs.append((p.body_sha256, p.body))
                rows.append(EntryRow(index, leaf, p.kind_text, p.model, stamp, env, p.body_sha256, p.body if inline else None))
                level, node_index, h = 0, index, leaf
                while stack and stack[-1][0] == level:
                    _, left_index, left = stack.pop()
                    h = node_hash(left, h)
                    level += 1
                    node_index = left_index >> 1
                    nodes.append((level, node_index, h))
                stack.append((level, node_index, h))
            size = n + len(prepared)
            root = fold([h for _, _, h in stack])
            note = sign_checkpoint(key, size, root)
            tx.add(rows, blobs, nodes, [HeadRow(size, root, note)])
        return [
            EntryReceipt(r.index, r.leaf.hex(), r.body_sha256, size, root.hex(), note, self.location) for r in rows
        ]

    @staticmethod
    def _frontier(tx: Tx, n: int) -> list[tuple[int, int, bytes]]:
        if n == 0:
            return []
        keys = range_keys(0, n)
        got = tx.nodes(keys)
        missing = [k for k in keys if k not in got]
        if missing:
            raise LedgerCorrupt(f"the stored tree lacks node(s) {missing[:3]}: the ledger was tampered with; run verify")
        return [(lvl, idx, got[(lvl, idx)]) for lvl, idx in keys]

    # -- reads ----------------------------------------------------------------------------------
    def size(self) -> int:
        """Number of entries."""
        with self.store.read() as tx:
            return tx.size()

    def checkpoint(self) -> str | None:
        """The latest signed tree head (a C2SP checkpoint note), or ``None`` for an empty log."""
        with self.store.read() as tx:
            head = tx.latest_head()
        return None if head is None else head.checkpoint

    def _to_entry(self, tx: Tx, row: EntryRow) -> Entry:
        data = row.body if row.body is not None else tx.blob(row.body_sha256)
        body = None if data is None else json.loads(data)
        return Entry(row.index, row.kind, row.model, row.time, row.leaf.hex(), row.body_sha256, body)

    def get(self, index: int) -> Entry:
        """The entry at ``index``."""
        with self.store.read() as tx:
            rows = tx.entries(index, index + 1)
            if not rows:
                raise LedgerUsageError(f"ledger {self.location} has no entry {index} (it has {tx.size()})")
            return self._to_entry(tx, rows[0])

    def entries(self, start: int = 0, limit: int = 100) -> list[Entry]:
        """Up to ``limit`` entries from index ``start``."""
        with self.store.read() as tx:
            return [self._to_entry(tx, r) for r in tx.entries(start, start + max(0, limit))]

    def for_model(self, digest: str, limit: int = 1000) -> list[Entry]:
        """Entries linked to the model with manifest ``digest``, oldest first."""
        check_model_digest(digest)
        with self.store.read() as tx:
            return [self._to_entry(tx, r) for r in tx.entries_for_model(digest, limit)]

    # -- proofs ---------------------------------------------------------------------------------
    @staticmethod
    def _range_hashes(tx: Tx, ranges: Sequence[tuple[int, int]]) -> list[bytes]:
        per_range = [range_keys(a, b) for a, b in ranges]
        wanted: list[NodeKey] = sorted({k for keys in per_range for k in keys})
        got = tx.nodes(wanted)
        if len(got) != len(wanted):
            raise LedgerCorrupt("the stored tree lacks nodes needed for this proof: the ledger was tampered with; run verify")
        return [fold([got[k] for k in keys]) for keys in per_range]

    def root(self, size: int) -> bytes:
        """The tree's root hash at ``size`` entries."""
        if size == 0:
            return EMPTY_ROOT
        with self.store.read() as tx:
            if size > tx.size():
                raise LedgerUsageError(f"the ledger has only {tx.size()} entries, not {size}")
            return self._range_hashes(tx, [(0, size)])[0]

    def inclusion_proof(self, index: int, tree_size: int | None = None) -> dict[str, Any]:
        """A Sigstore-style transparency log entry with an ``inclusionProof`` for entry ``index``.

        The proof is against the latest signed tree head, or the head for
        ``tree_size`` when given (a head must exist for that size).
        """
        with self.store.read(snapshot=False) as tx:
            head: HeadRow | None = None
            if tree_size is not None:
                head = tx.head(tree_size)
                if head is None:
                    raise LedgerUsageError(f"no signed tree head for size {tree_size}")
            # Guess the latest size from the last proof; the store returns the real latest head with the
            # nodes, and a stale guess (the log grew) costs one more try.
            size = head.size if head is not None else self._size_hint
            for _ in range(8):
                if size is None or not 0 <= index < size:
                    size = self._latest_size(tx, index)
                per_range = [range_keys(a, b) for a, b in inclusion_ranges(index, size)]
                wanted = sorted({k for keys in per_range for k in keys})
                entry, got, latest = tx.proof_material(index, wanted, latest=tree_size is None)
                if latest is not None:
                    self._size_hint = latest.size
                    if latest.size != size:
                        size = latest.size
                        continue
                    head = latest
                break
            if head is None or head.size != size:
                raise LedgerUnavailable(f"ledger {self.location} kept growing during the proof; try again")
            if entry is None:
                raise LedgerCorrupt(f"entry {index} is missing from the store: run verify")
            if len(got) != len(wanted):
                raise LedgerCorrupt("the stored tree lacks nodes needed for this proof: the ledger was tampered with; run verify")
            hashes = [fold([got[k] for k in keys]) for keys in per_range]
        cp = parse_checkpoint(head.checkpoint)
        return {
            "logIndex": str(index),
            "logId": {"keyId": _b64(hashlib.sha256(self.public_key().raw).digest())},
            "kindVersion": {"kind": ENTRY_KIND_NAME, "version": "1"},
            "integratedTime": str(_unix(entry.time)),
            "canonicalizedBody": _b64(entry.envelope),
            "inclusionProof": {
                "logIndex": str(index),
                "rootHash": _b64(cp.root),
                "treeSize": str(cp.size),
                "hashes": [_b64(h) for h in hashes],
                "checkpoint": {"envelope": head.checkpoint},
            },
        }

    @staticmethod
    def _latest_size(tx: Tx, index: int) -> int:
        latest = tx.latest_head()
        if latest is None:
            raise LedgerUsageError("the ledger is empty")
        if not 0 <= index < latest.size:
            raise LedgerUsageError(f"entry {index} is not in the tree of size {latest.size}")
        return latest.size

    def consistency_proof(self, old_size: int, new_size: int) -> dict[str, Any]:
        """An RFC 9162 consistency proof between two tree sizes, with their roots (and heads where stored)."""
        with self.store.read() as tx:
            n = tx.size()
            if not 0 <= old_size <= new_size <= n:
                raise LedgerUsageError(f"need 0 <= OLD_SIZE <= NEW_SIZE <= {n} (the ledger's size)")
            roots = self._range_hashes(tx, [(0, s) for s in (old_size, new_size) if s > 0])
            hashes = self._range_hashes(tx, consistency_ranges(old_size, new_size))
            heads = {s: h.checkpoint for s in (old_size, new_size) if (h := tx.head(s)) is not None}
        old_root = roots[0] if old_size else EMPTY_ROOT
        new_root = roots[-1] if new_size else EMPTY_ROOT
        return {
            "oldSize": str(old_size),
            "newSize": str(new_size),
            "oldRootHash": _b64(old_root),
            "newRootHash": _b64(new_root),
            "hashes": [_b64(h) for h in hashes],
            "oldCheckpoint": heads.get(old_size),
            "newCheckpoint": heads.get(new_size),
        }

    # -- verification ---------------------------------------------------------------------------
    def verify(self, public_key: PublicKey | None = None, *, trusted_checkpoint: str | None = None) -> VerifyReport:
        """Recompute the whole log and check every stored node and signed head.

        ``public_key`` is the key to trust; by default the key file's key, or
        (noted in the report) the key recorded in the ledger. A
        ``trusted_checkpoint`` saved earlier also catches a log rolled back to
        an earlier state or rewritten after it.
        """
        notes: list[str] = []
        key = public_key or self._trusted_key(notes)
        with self.store.read() as tx:
            verifier = StreamVerifier(key, node_sink=lambda batch: _check_nodes(tx, batch), limits=self.limits)
            meta = tx.meta()
            if "public_key" in meta and parse_verifier_key(meta["public_key"]).raw != key.raw:
                verifier.problem("the ledger records a different public key than the one trusted")
            if trusted_checkpoint is not None:
                try:
                    cp = verify_checkpoint(trusted_checkpoint, key)
                    verifier.trusted_roots[cp.size] = cp.root
                except LedgerCorrupt as exc:
                    verifier.problem(f"the trusted checkpoint given does not verify: {exc.diagnostics()}")
            heads = tx.heads()
            nxt = next(heads, None)
            start = tx.next_index(-(2**62))  # rows with negative indices are tampering too
            while start is not None:
                rows = tx.entries(start, start + VERIFY_BATCH)
                for row in rows:
                    while nxt is not None and nxt.size <= verifier.count:
                        verifier.head(nxt.checkpoint, nxt.size, nxt.root)
                        nxt = next(heads, None)
                    body = row.body if row.body is not None else tx.blob(row.body_sha256)
                    verifier.entry(
                        row.index, row.envelope, body, stored_leaf=row.leaf,
                        columns=(row.kind, row.model, row.time, row.body_sha256),
                    )
                # the next stored index, even past a gap wider than a batch (deleted rows)
                start = tx.next_index(start + VERIFY_BATCH)
            while nxt is not None:
                verifier.head(nxt.checkpoint, nxt.size, nxt.root)
                nxt = next(heads, None)
            expected_nodes = verifier.count - bin(verifier.count).count("1")
            report = verifier.finish()
            stored_nodes = tx.node_count()
        problems = list(report.problems)
        if stored_nodes != expected_nodes:
            problems.append(f"the proof cache holds {stored_nodes} interior nodes, a tree of {report.size} has {expected_nodes} (rows inserted or deleted)")
        return VerifyReport(not problems, report.size, report.heads_checked, report.latest_checkpoint, tuple(problems), tuple(notes) + report.notes)

    def _trusted_key(self, notes: list[str]) -> PublicKey:
        if self.key_path.exists():
            try:
                return self._signing_key().public
            except LedgerUsageError:
                pass  # an imported ledger has no private key; fall through to its recorded key
        notes.append("trusting the public key recorded in the ledger itself; pass the log's key to rule out a replaced key")
        with self.store.read() as tx:
            meta = tx.meta()
        if "public_key" not in meta:
            if self.size() == 0:
                return PublicKey("empty", b"\x00" * 32)  # nothing to verify against any key
            raise LedgerKeyError(f"ledger {self.location} records no public key and no key file is at {self.key_path}")
        return parse_verifier_key(meta["public_key"])

    # -- export and import ----------------------------------------------------------------------
    def export(self, path: str | Path) -> int:
        """Write the whole log (entries, bodies, every signed head) to ``path``; return the entry count."""
        key = self.public_key()
        digest = hashlib.sha256()
        count = heads_written = 0
        target = Path(path)
        tmp = target.with_name(target.name + ".partial")
        with self.store.read() as tx, open(tmp, "wb") as fh:

            def put(line: bytes) -> None:
                digest.update(line)
                fh.write(line)

            n = tx.size()
            put(export_header(key.name, key.verifier_key(), n))
            heads = tx.heads()
            nxt = next(heads, None)
            for start in range(0, n, VERIFY_BATCH):
                for row in tx.entries(start, start + VERIFY_BATCH):
                    body = row.body if row.body is not None else tx.blob(row.body_sha256)
                    if body is None:
                        raise LedgerCorrupt(f"entry {row.index}'s body is missing from the store: run verify")
                    put(export_entry(row.index, row.envelope, body))
                    count += 1
                    while nxt is not None and nxt.size <= count:
                        put(export_head(nxt.checkpoint))
                        heads_written += 1
                        nxt = next(heads, None)
            while nxt is not None:
                put(export_head(nxt.checkpoint))
                heads_written += 1
                nxt = next(heads, None)
            fh.write(export_trailer(count, heads_written, digest.hexdigest()))
            fh.flush()
        tmp.replace(target)
        return count

    @classmethod
    def import_export(cls, path: str | Path, location: str, public_key: PublicKey, limits: Limits = DEFAULT_LIMITS) -> Ledger:
        """Verify an export against ``public_key`` and load it into a new, read-only ledger at ``location``."""
        report = verify_export(path, public_key, limits)
        if not report.ok:
            raise LedgerCorrupt(f"export {path} does not verify: " + "; ".join(report.problems[:5]))
        store = open_store(location)
        ledger = cls(store, default_key_path(location), limits)
        try:
            with store.write() as tx:
                if tx.size() or tx.meta():
                    raise LedgerUsageError(f"ledger {store.location} is not empty; import into a new one")
                tx.put_meta({"origin": public_key.name, "public_key": public_key.verifier_key(), "format": "1", "read_only": "1"})
                with open(path, "rb") as fh:
                    _load(tx, read_export(fh, limits))
        except BaseException:
            ledger.close()
            raise
        return ledger


def _load(tx: Tx, records: Iterator[Any]) -> None:
    rows: list[EntryRow] = []
    blobs: list[tuple[str, bytes]] = []
    nodes: list[tuple[int, int, bytes]] = []
    heads: list[HeadRow] = []
    stack: list[tuple[int, int, bytes]] = []
    def flush() -> None:
        if rows or heads:
            tx.add(rows, blobs, nodes, heads)
        rows.clear()
        blobs.clear()
        nodes.clear()
        heads.clear()

    for rec in records:
        if rec.kind == "entry":
            env = parse_envelope(rec.envelope)
            leaf = leaf_hash(rec.envelope)
            inline = len(rec.body) <= INLINE_BODY_MAX
            if not inline:
                blobs.append((env.body_sha256, rec.body))
            rows.append(EntryRow(rec.index, leaf, env.kind.value, env.model, env.time, rec.envelope, env.body_sha256, rec.body if inline else None))
            level, node_index, h = 0, rec.index, leaf
            while stack and stack[-1][0] == level:
                _, left_index, left = stack.pop()
                h = node_hash(left, h)
                level += 1
                node_index = left_index >> 1
                nodes.append((level, node_index, h))
            stack.append((level, node_index, h))
            if len(rows) >= VERIFY_BATCH:
                flush()
        elif rec.kind == "head":
            cp = parse_checkpoint(rec.note)
            heads.append(HeadRow(cp.size, cp.root, rec.note))
    flush()


def _check_nodes(tx: Tx, batch: list[tuple[int, int, bytes]]) -> Iterator[str]:
    by_level: dict[int, list[tuple[int, bytes]]] = {}
    for level, idx, h in batch:
        by_level.setdefault(level, []).append((idx, h))
    for level, items in by_level.items():
        lo, hi = items[0][0], items[-1][0]
        stored = tx.node_range(level, lo, hi + 1)
        for idx, h in items:
            if stored.get(idx) != h:
                yield f"proof cache node (level {level}, index {idx}) differs from the recomputed tree (edited)"


def _unix(stamp: str) -> int:
    when = _dt.datetime.strptime(stamp[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=_dt.UTC)
    return int(when.timestamp())
