"""Verification: recompute the whole log from its entries and check every signed tree head.

The same :class:`StreamVerifier` checks a live store and an exported file, so
an auditor's offline result is the one the operator sees. It streams: memory
stays O(log n) plus one batch of nodes, whatever the log's size.

:func:`verify_export` is the standalone check: it needs only the exported
file and the log's public key, and trusts nothing else in the file.
"""

from __future__ import annotations

import hashlib
import heapq
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from aivet.ledger.checkpoint import parse_checkpoint, verify_checkpoint
from aivet.ledger.entry import parse_envelope
from aivet.ledger.errors import LedgerCorrupt
from aivet.ledger.keys import PublicKey
from aivet.ledger.merkle import fold, leaf_hash, node_hash
from aivet.limits import DEFAULT_LIMITS, Limits

__all__ = [
    "VerifyReport",
    "StreamVerifier",
    "verify_export",
    "verify_entry_proof",
    "verify_consistency_document",
    "read_export",
    "EXPORT_FORMAT",
]

EXPORT_FORMAT = "aivet-ledger-export"
EXPORT_VERSION = 1
NODE_BATCH = 4096

NodeSink = Callable[[list[tuple[int, int, bytes]]], Iterable[str]]


@dataclass(frozen=True)
class VerifyReport:
    """The outcome of verifying a log. ``ok`` is true only when no problem at all was found."""

    ok: bool
    size: int
    heads_checked: int
    latest_checkpoint: str | None
    problems: tuple[str, ...]
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok, "size": self.size, "heads_checked": self.heads_checked,
            "latest_checkpoint": self.latest_checkpoint, "problems": list(self.problems), "notes": list(self.notes),
        }


@dataclass(order=True)
class _Head:
    size: int  # as stored beside the note (a store column or the note's own size line)
    note: str = field(compare=False)
    root: bytes | None = field(default=None, compare=False)  # as stored beside the note, if the source keeps one


@dataclass
class StreamVerifier:
    """Feed entries in stored order with :meth:`entry` and signed heads with :meth:`head`, then :meth:`finish`.

    A head is checked as soon as the entries it covers have been fed (feed it
    right after the entry that completes it, or earlier). ``node_sink``
    receives each batch of recomputed interior nodes and returns problems
    found comparing them with what the store holds (a store checks its proof
    cache that way). ``trusted_roots`` are (size -> root) pairs the caller
    trusts, e.g. from a checkpoint saved earlier: they catch a rolled-back log.
    """

    key: PublicKey
    node_sink: NodeSink | None = None
    limits: Limits = DEFAULT_LIMITS
    trusted_roots: dict[int, bytes] = field(default_factory=dict)
    count: int = 0
    problems: list[str] = field(default_factory=list)
    dropped: int = 0
    heads_checked: int = 0
    latest: str | None = None
    latest_size: int = 0
    _stack: list[tuple[int, int, bytes]] = field(default_factory=list)
    _pending_nodes: list[tuple[int, int, bytes]] = field(default_factory=list)
    _waiting: list[_Head] = field(default_factory=list)  # heap of heads beyond the entries fed so far

    def problem(self, text: str) -> None:
        """Record a problem (the list is bounded; the rest are counted)."""
        if len(self.problems) < self.limits.max_ledger_problems:
            self.problems.append(text)
        else:
            self.dropped += 1

    def head(self, note: str, size: int, stored_root: bytes | None = None) -> None:
        """Check a signed tree head (now if its entries are in, else once they are)."""
        if size <= 0:
            self.problem("a tree head for an empty tree is stored (aivet never writes one)")
        elif size < self.count:
            self.problem(f"signed tree head for size {size} is out of order")
        elif size == self.count:
            self._check_head(_Head(size, note, stored_root), self.root())
        else:
            heapq.heappush(self._waiting, _Head(size, note, stored_root))

    def _check_head(self, head: _Head, root: bytes) -> None:
        self.heads_checked += 1
        try:
            cp = verify_checkpoint(head.note, self.key)
        except LedgerCorrupt as exc:
            self.problem(f"tree head for size {head.size}: {exc.diagnostics()}")
            return
        if cp.size != head.size or (head.root is not None and head.root != cp.root):
            self.problem(f"tree head for size {head.size}: stored size/root columns differ from the signed checkpoint")
            return
        if cp.root != root:
            self.problem(
                f"signed tree head for size {cp.size} does not match the entries: "
                "an entry at or before that index was edited, deleted, inserted or reordered"
            )
            return
        if cp.size >= self.latest_size:
            self.latest, self.latest_size = head.note, cp.size

    def root(self) -> bytes:
        """The root over the entries fed so far."""
        return fold([h for _, _, h in self._stack]) if self._stack else hashlib.sha256(b"").digest()

    def entry(
        self,
        index: int,
        envelope: bytes,
        body: bytes | None,
        *,
        stored_leaf: bytes | None = None,
        columns: tuple[str, str | None, str, str] | None = None,
    ) -> None:
        """Check one entry (in stored order) and add it to the recomputed tree."""
        pos = self.count
        if index != pos:
            if index > pos:
                gap = f"entries {pos}..{index - 1} are" if index - 1 > pos else f"entry {pos} is"
                self.problem(f"{gap} missing (deleted rows)")
            else:
                self.problem(f"entry {index} appears again at position {pos} (duplicated or reordered rows)")
        leaf = leaf_hash(envelope)
        try:
            env = parse_envelope(envelope)
        except LedgerCorrupt as exc:
            self.problem(f"entry at position {pos}: {exc.diagnostics()}")
        else:
            if env.index != index:
                self.problem(f"entry stored as {index} says it is entry {env.index} (rows swapped or renumbered)")
            if body is None:
                self.problem(f"entry {index}: its body (sha256 {env.body_sha256}) is missing")
            elif len(body) != env.body_size or hashlib.sha256(body).hexdigest() != env.body_sha256:
                self.problem(f"entry {index}: body does not match the hash in its envelope (body edited)")
            if columns is not None and columns != (env.kind.value, env.model, env.time, env.body_sha256):
                self.problem(f"entry {index}: kind/model/time columns differ from its signed envelope (edited)")
        if stored_leaf is not None and stored_leaf != leaf:
            self.problem(f"entry {index}: stored leaf hash differs from its envelope's hash")
        # Extend the recomputed tree: a binary counter of perfect subtrees.
        level, node_index, h = 0, pos, leaf
        while self._stack and self._stack[-1][0] == level:
            _, left_index, left = self._stack.pop()
            h = node_hash(left, h)
            level += 1
            node_index = left_index >> 1
            self._pending_nodes.append((level, node_index, h))
        self._stack.append((level, node_index, h))
        self.count += 1
        trusted = self.trusted_roots.get(self.count)
        if trusted is not None and trusted != self.root():
            self.problem(f"the log is not an extension of the trusted checkpoint for size {self.count}: history was rewritten")
        while self._waiting and self._waiting[0].size <= self.count:
            self._check_head(heapq.heappop(self._waiting), self.root())
        if len(self._pending_nodes) >= NODE_BATCH:
            self._flush_nodes()

    def _flush_nodes(self) -> None:
        if self.node_sink is not None and self._pending_nodes:
            for text in self.node_sink(self._pending_nodes):
                self.problem(text)
        self._pending_nodes = []

    def finish(self) -> VerifyReport:
        """Check what is left and return the report."""
        self._flush_nodes()
        n = self.count
        for size in sorted(self.trusted_roots):
            if size > n:
                self.problem(f"the log has {n} entries but a trusted checkpoint covers {size}: entries were removed")
        for head in sorted(self._waiting):
            self.problem(f"a tree head is signed for size {head.size} but the log has only {n} entries (entries deleted)")
        self._waiting = []
        if n and self.latest is None:
            self.problem(f"no valid signed tree head covers the log's {n} entries")
        elif self.latest is not None and self.latest_size < n:
            self.problem(f"entries {self.latest_size}..{n - 1} are not covered by any valid signed tree head (inserted rows)")
        if self.dropped:
            self.problems.append(f"... and {self.dropped} more problems")
        notes = ("the log is empty",) if n == 0 else ()
        return VerifyReport(not self.problems, n, self.heads_checked, self.latest, tuple(self.problems), notes)


# -- exports -----------------------------------------------------------------------------------


def _line(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8") + b"\n"


def export_header(origin: str, public_key: str, size: int) -> bytes:
    return _line({"format": EXPORT_FORMAT, "version": EXPORT_VERSION, "origin": origin, "public_key": public_key, "size": size})


def export_entry(index: int, envelope: bytes, body: bytes) -> bytes:
    return _line({"i": index, "envelope": envelope.decode("utf-8"), "body": body.decode("utf-8")})


def export_head(note: str) -> bytes:
    return _line({"checkpoint": note})


def export_trailer(size: int, heads: int, digest: str) -> bytes:
    return _line({"end": {"size": size, "heads": heads, "sha256": digest}})


@dataclass(frozen=True)
class ExportRecord:
    """One line of an export: an entry, a checkpoint, or the header."""

    kind: str  # "header" | "entry" | "head"
    index: int = -1
    envelope: bytes = b""
    body: bytes = b""
    note: str = ""
    header: dict[str, Any] | None = None


def read_export(fh: IO[bytes], limits: Limits = DEFAULT_LIMITS) -> Iterator[ExportRecord]:
    """Parse an export strictly, line by line; raise :class:`LedgerCorrupt` on any defect, truncation included."""
    digest = hashlib.sha256()
    lineno = 0
    saw_end = False
    entries = heads = 0
    while True:
        raw = fh.readline(limits.max_ledger_line_bytes + 1)
        if not raw:
            break
        lineno += 1
        if saw_end:
            raise LedgerCorrupt(f"export line {lineno}: data after the end marker")
        if len(raw) > limits.max_ledger_line_bytes:
            raise LedgerCorrupt(f"export line {lineno} is longer than {limits.max_ledger_line_bytes} bytes")
        if not raw.endswith(b"\n"):
            raise LedgerCorrupt(f"export is truncated (line {lineno} is cut off)")
        try:
            obj = json.loads(raw)
        except ValueError as exc:
            raise LedgerCorrupt(f"export line {lineno} is not JSON: {exc}") from None
        if not isinstance(obj, dict):
            raise LedgerCorrupt(f"export line {lineno} is not a JSON object")
        try:
            if lineno == 1:
                if obj.get("format") != EXPORT_FORMAT or obj.get("version") != EXPORT_VERSION:
                    raise LedgerCorrupt("not an aivet ledger export (wrong format or version on line 1)")
                yield ExportRecord("header", header=obj)
            elif set(obj) == {"i", "envelope", "body"}:
                if not isinstance(obj["i"], int) or not isinstance(obj["envelope"], str) or not isinstance(obj["body"], str):
                    raise LedgerCorrupt(f"export line {lineno}: entry fields have the wrong types")
                entries += 1
                yield ExportRecord("entry", obj["i"], obj["envelope"].encode("utf-8"), obj["body"].encode("utf-8"))
            elif set(obj) == {"checkpoint"} and isinstance(obj["checkpoint"], str):
                heads += 1
                yield ExportRecord("head", note=obj["checkpoint"])
            elif set(obj) == {"end"} and isinstance(obj["end"], dict):
                end = obj["end"]
                if end.get("size") != entries or end.get("heads") != heads:
                    raise LedgerCorrupt(f"export trailer counts {end.get('size')} entries and {end.get('heads')} heads, file has {entries} and {heads}")
                if end.get("sha256") != digest.hexdigest():
                    raise LedgerCorrupt("export trailer's SHA-256 does not match the file (lines edited)")
                saw_end = True
            else:
                raise LedgerCorrupt(f"export line {lineno} is neither an entry, a checkpoint nor the end marker")
        except UnicodeEncodeError:
            raise LedgerCorrupt(f"export line {lineno} holds text that is not valid Unicode") from None
        digest.update(raw)
    if lineno == 0:
        raise LedgerCorrupt("export file is empty")
    if not saw_end:
        raise LedgerCorrupt("export is truncated: it ends before its end marker")


def verify_export(path: str | Path, public_key: PublicKey, limits: Limits = DEFAULT_LIMITS) -> VerifyReport:
    """Verify an exported log with nothing but the file and the log's public key.

    Never raises for a bad file: every defect, a truncated or malformed file
    included, is a problem in the returned report (so ``ok`` is false).
    """
    verifier = StreamVerifier(public_key, limits=limits)
    try:
        with open(path, "rb") as fh:
            for rec in read_export(fh, limits):
                if rec.kind == "header":
                    origin = (rec.header or {}).get("origin")
                    if origin != public_key.name:
                        verifier.problem(f"export is of log {origin!r}, the key given is for {public_key.name!r}")
                elif rec.kind == "entry":
                    verifier.entry(rec.index, rec.envelope, rec.body)
                else:
                    try:
                        size = parse_checkpoint(rec.note).size
                    except LedgerCorrupt as exc:
                        verifier.problem(exc.diagnostics())
                        continue
                    verifier.head(rec.note, size)
    except LedgerCorrupt as exc:
        verifier.problem(exc.diagnostics())
    except OSError as exc:
        verifier.problem(f"cannot read export {path}: {exc.strerror or exc}")
    return verifier.finish()


def _b64field(obj: Any, name: str) -> bytes:
    import base64

    value = obj.get(name) if isinstance(obj, dict) else None
    if not isinstance(value, str):
        raise LedgerCorrupt(f"proof field {name!r} is missing or not a string")
    try:
        return base64.b64decode(value, validate=True)
    except ValueError:  # binascii.Error, or non-ASCII text
        raise LedgerCorrupt(f"proof field {name!r} is not base64") from None


def _intfield(obj: Any, name: str) -> int:
    value = obj.get(name) if isinstance(obj, dict) else None
    # protobuf's JSON mapping writes int64 as a string; accept both spellings
    if isinstance(value, str) and value.isdigit() and value.isascii():
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    raise LedgerCorrupt(f"proof field {name!r} is missing or not a non-negative integer")


def verify_entry_proof(entry: dict[str, Any], public_key: PublicKey) -> int:
    """Check a transparency-log entry as ``aivet ledger prove`` writes it (Sigstore bundle shape).

    Verifies the checkpoint's signature with ``public_key``, that the proof's
    tree size and root are the checkpoint's, and that the inclusion proof puts
    ``canonicalizedBody`` at ``logIndex``. Returns the index; raises
    :class:`LedgerCorrupt` naming the first defect.
    """
    from aivet.ledger.merkle import HASH_SIZE, verify_inclusion

    proof = entry.get("inclusionProof") if isinstance(entry, dict) else None
    if not isinstance(proof, dict):
        raise LedgerCorrupt("entry has no inclusionProof object")
    envelope = proof.get("checkpoint", {}).get("envelope") if isinstance(proof.get("checkpoint"), dict) else None
    if not isinstance(envelope, str):
        raise LedgerCorrupt("inclusionProof has no checkpoint envelope")
    cp = verify_checkpoint(envelope, public_key)
    index, size, root = _intfield(proof, "logIndex"), _intfield(proof, "treeSize"), _b64field(proof, "rootHash")
    if size != cp.size or root != cp.root:
        raise LedgerCorrupt("inclusionProof's tree size or root hash differs from its signed checkpoint")
    if _intfield(entry, "logIndex") != index:
        raise LedgerCorrupt("entry's logIndex differs from its inclusionProof's")
    raw_hashes = proof.get("hashes")
    if not isinstance(raw_hashes, list) or len(raw_hashes) > 64:
        raise LedgerCorrupt("inclusionProof hashes must be a list of at most 64 hashes")
    hashes = [_b64field({"h": h}, "h") for h in raw_hashes]
    if any(len(h) != HASH_SIZE for h in hashes):
        raise LedgerCorrupt("an inclusionProof hash is not 32 bytes")
    leaf = leaf_hash(_b64field(entry, "canonicalizedBody"))
    if not verify_inclusion(leaf, index, size, hashes, root):
        raise LedgerCorrupt(f"inclusion proof for entry {index} does not lead to the signed root of size {size}")
    return index


def verify_consistency_document(doc: dict[str, Any], public_key: PublicKey | None = None) -> None:
    """Check a consistency proof as ``aivet ledger consistency`` writes it; raise :class:`LedgerCorrupt` if bad.

    With ``public_key``, any checkpoints included must be signed by it and match the roots.
    """
    from aivet.ledger.merkle import verify_consistency

    old, new = _intfield(doc, "oldSize"), _intfield(doc, "newSize")
    old_root, new_root = _b64field(doc, "oldRootHash"), _b64field(doc, "newRootHash")
    raw = doc.get("hashes")
    if not isinstance(raw, list) or len(raw) > 128:
        raise LedgerCorrupt("consistency proof hashes must be a list of at most 128 hashes")
    hashes = [_b64field({"h": h}, "h") for h in raw]
    if not verify_consistency(old, new, old_root, new_root, hashes):
        raise LedgerCorrupt(f"the tree of size {new} is not an append-only extension of the tree of size {old}")
    if public_key is not None:
        for field_name, size, root in (("oldCheckpoint", old, old_root), ("newCheckpoint", new, new_root)):
            note = doc.get(field_name)
            if note is None:
                continue
            cp = verify_checkpoint(str(note), public_key)
            if cp.size != size or cp.root != root:
                raise LedgerCorrupt(f"{field_name} does not match the proof's size and root")
