"""``aivet.ledger``: a tamper-evident, append-only Merkle log of attestations (RFC 9162 style).

Scan results, signatures and their checks, BOMs, gate decisions, probe
results and gateway audit events are appended as canonical JSON (RFC 8785),
linked to the model by its manifest digest. Every append ends with a tree
head signed by the log key as a C2SP checkpoint; proofs come out in the shape
of a Sigstore bundle's ``inclusionProof``. The default store is a SQLite file
in the user's data directory; ``postgresql://`` URLs select a shared server.

Typical use::

    from aivet.ledger import record
    receipt = record(evidence, kind="scan", model_digest="sha256:…")

    from aivet.ledger import Ledger
    with Ledger.open() as log:
        report = log.verify()

Offline audit needs only an export and the public key::

    from aivet.ledger import verify_export, parse_verifier_key
    verify_export("ledger.jsonl", parse_verifier_key(text)).ok
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aivet.evidence import Evidence

from aivet.ledger.entry import Entry, EntryKind, EntryReceipt, NewEntry
from aivet.ledger.errors import LedgerCorrupt, LedgerKeyError, LedgerUnavailable, LedgerUsageError
from aivet.ledger.keys import PublicKey, parse_verifier_key
from aivet.ledger.log import Ledger
from aivet.ledger.verify import VerifyReport, verify_consistency_document, verify_entry_proof, verify_export

__all__ = [
    "Entry",
    "EntryKind",
    "EntryReceipt",
    "Ledger",
    "LedgerCorrupt",
    "LedgerKeyError",
    "LedgerUnavailable",
    "LedgerUsageError",
    "NewEntry",
    "PublicKey",
    "VerifyReport",
    "parse_verifier_key",
    "record",
    "verify_consistency_document",
    "verify_entry_proof",
    "verify_export",
]


def record(
    evidence: Evidence | Any,
    *,
    kind: str,
    ledger: str | None = None,
    model_digest: str | None = None,
) -> EntryReceipt:
    """Append ``evidence`` (an :class:`~aivet.evidence.Evidence` or any JSON value) to the ledger.

    ``kind`` is an :class:`EntryKind` value (``"scan"``, ``"sign"``, ...).
    ``ledger`` is a path or ``postgresql://`` URL (default: ``$AIVET_LEDGER`` or
    the user's data directory). ``model_digest`` (``sha256:<hex>``, the model's
    manifest digest) links the entry to the model for ``aivet ledger model``;
    leave it ``None`` when no manifest digest is known. Returns once the entry
    is durable.
    """
    body = evidence.to_dict() if hasattr(evidence, "to_dict") else evidence
    with Ledger.open(ledger) as log:
        return log.append(EntryKind.parse(kind), body, model=model_digest)
