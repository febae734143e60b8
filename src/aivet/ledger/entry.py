"""Ledger entries: the envelope that is hashed into the tree, and the records handed back to callers.

A leaf of the tree is the canonical JSON *envelope* of an entry::

    {"body":{"sha256":"<hex>","size":N},"index":I,"kind":"scan","model":"sha256:..."|null,
     "time":"2026-11-23T16:00:00.000000Z","v":1}

The envelope commits to the body by its SHA-256, so a large body can be
stored (and deduplicated) by hash while the tree stays small; the body
itself is canonical JSON too (usually an Evidence document).
"""

from __future__ import annotations

import datetime as _dt
import enum
import json
import re
from dataclasses import dataclass
from typing import Any

from aivet.ledger.errors import LedgerCorrupt, LedgerUsageError

__all__ = ["EntryKind", "Entry", "EntryReceipt", "NewEntry", "envelope_bytes", "parse_envelope", "now"]

ENVELOPE_VERSION = 1
INLINE_BODY_MAX = 64 * 1024  # bodies above this go to the blobs table, stored once per distinct hash
_MODEL_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,15}:[0-9a-f]{16,128}$")
_TIME_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


class EntryKind(str, enum.Enum):
    """What an entry attests. An explicit list: a new producer adds its kind here."""

    SCAN = "scan"  # Evidence from `aivet scan`
    SIGN = "sign"  # a model signature was made
    VERIFY = "verify"  # a model signature was checked
    BOM = "bom"  # an AI bill of materials was written
    GATE = "gate"  # a policy decision
    PROBE = "probe"  # behavioural validation results
    AUDIT = "audit"  # a gateway audit event (`aivet serve`)

    @classmethod
    def parse(cls, text: str) -> EntryKind:
        """The kind named ``text``; raise :class:`LedgerUsageError` listing the valid kinds."""
        try:
            return cls(text)
        except ValueError:
            names = ", ".join(k.value for k in cls)
            raise LedgerUsageError(f"unknown ledger entry kind {text!r}; expected one of: {names}") from None


_KIND_TEXT = {k: k.value for k in EntryKind}  # Enum.value is a descriptor call: too slow per entry


def check_model_digest(model: str | None) -> str | None:
    """Validate a model digest (``algorithm:hex``, e.g. ``sha256:ab12...``)."""
    if model is not None and not _MODEL_RE.match(model):
        raise LedgerUsageError(f"model digest {model!r} is not of the form ALGORITHM:HEX (e.g. sha256:…)")
    return model


def now() -> str:
    """The current UTC time with microseconds, in the envelope's fixed format."""
    return _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def envelope_bytes(index: int, kind: EntryKind, model: str | None, time: str, body_sha256: str, body_size: int) -> bytes:
    """The canonical envelope. Built by formatting, which is canonical because every field is validated
    to need no escaping and the keys are written in sorted order (a test checks it against the encoder)."""
    model_json = "null" if model is None else f'"{model}"'
    return (
        f'{{"body":{{"sha256":"{body_sha256}","size":{body_size}}},"index":{index},"kind":"{_KIND_TEXT[kind]}",'
        f'"model":{model_json},"time":"{time}","v":{ENVELOPE_VERSION}}}'
    ).encode("ascii")


@dataclass(frozen=True)
class Envelope:
    """A parsed, validated envelope."""

    index: int
    kind: EntryKind
    model: str | None
    time: str
    body_sha256: str
    body_size: int


def parse_envelope(data: bytes) -> Envelope:
    """Parse envelope bytes strictly (exact canonical form); raise :class:`LedgerCorrupt` otherwise."""
    try:
        obj = json.loads(data)
        body = obj["body"]
        env = Envelope(
            index=obj["index"], kind=EntryKind(obj["kind"]), model=obj["model"], time=obj["time"],
            body_sha256=body["sha256"], body_size=body["size"],
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise LedgerCorrupt(f"entry envelope is malformed: {exc}") from None
    if (
        not isinstance(env.index, int) or isinstance(env.index, bool) or env.index < 0
        or not isinstance(env.body_size, int) or isinstance(env.body_size, bool) or env.body_size < 0
        or not isinstance(env.time, str) or not _TIME_RE.match(env.time)
        or not isinstance(env.body_sha256, str) or not _HEX64.match(env.body_sha256)
        or not (env.model is None or (isinstance(env.model, str) and _MODEL_RE.match(env.model)))
        or obj.get("v") != ENVELOPE_VERSION
    ):
        raise LedgerCorrupt("entry envelope has a field of the wrong type or form")
    if envelope_bytes(env.index, env.kind, env.model, env.time, env.body_sha256, env.body_size) != data:
        raise LedgerCorrupt(f"entry {env.index}: envelope is not in canonical form (extra fields or re-serialised)")
    return env


@dataclass(frozen=True)
class NewEntry:
    """An entry to append: its kind, a JSON body, and the model digest it is about (if any)."""

    kind: EntryKind | str
    body: Any
    model: str | None = None


@dataclass(frozen=True)
class EntryReceipt:
    """What an append returns: where the entry is and the signed tree head that first contains it."""

    index: int
    leaf_hash: str
    body_sha256: str
    tree_size: int
    root_hash: str
    checkpoint: str
    ledger: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index, "leaf_hash": self.leaf_hash, "body_sha256": self.body_sha256,
            "tree_size": self.tree_size, "root_hash": self.root_hash, "checkpoint": self.checkpoint,
            "ledger": self.ledger,
        }


@dataclass(frozen=True)
class Entry:
    """A stored entry as read back (not verified: use :meth:`Ledger.verify` for that)."""

    index: int
    kind: str
    model: str | None
    time: str
    leaf_hash: str
    body_sha256: str
    body: Any

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index, "kind": self.kind, "model": self.model, "time": self.time,
            "leaf_hash": self.leaf_hash, "body_sha256": self.body_sha256, "body": self.body,
        }
