"""Signed tree heads as C2SP checkpoints in signed notes (the format Rekor, Go's sumdb and witnesses use).

A checkpoint is the note text::

    <origin>\\n
    <tree size, decimal>\\n
    <base64 root hash>\\n

followed by a blank line and one or more signature lines
``— <key name> <base64(4-byte key hash || Ed25519 signature)>``, each signing
the note text byte for byte (including its final newline).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

from aivet.ledger.errors import LedgerCorrupt
from aivet.ledger.keys import LogKey, PublicKey
from aivet.ledger.merkle import HASH_SIZE

__all__ = ["Checkpoint", "sign_checkpoint", "parse_checkpoint", "verify_checkpoint"]

_SIG_PREFIX = "\u2014 "  # an em dash and a space
_MAX_NOTE = 1 << 20


@dataclass(frozen=True)
class Checkpoint:
    """A parsed (not yet trusted) checkpoint; :func:`verify_checkpoint` decides whether to trust it."""

    origin: str
    size: int
    root: bytes
    text: str  # the signed note text
    signatures: tuple[tuple[str, bytes, bytes], ...]  # (key name, key hash, signature)

    def note(self) -> str:
        """The complete signed note."""
        lines = "".join(f"{_SIG_PREFIX}{n} {base64.b64encode(k + s).decode()}\n" for n, k, s in self.signatures)
        return f"{self.text}\n{lines}"


def body(origin: str, size: int, root: bytes) -> str:
    """The note text of a checkpoint."""
    return f"{origin}\n{size}\n{base64.b64encode(root).decode()}\n"


def sign_checkpoint(key: LogKey, size: int, root: bytes) -> str:
    """A signed note over the checkpoint for ``size`` and ``root``, named after ``key``."""
    text = body(key.name, size, root)
    sig = key.sign(text.encode("utf-8"))
    return f"{text}\n{_SIG_PREFIX}{key.name} {base64.b64encode(key.public.key_id + sig).decode()}\n"


def parse_checkpoint(note: str) -> Checkpoint:
    """Parse a signed checkpoint note strictly; raise :class:`LedgerCorrupt` naming the defect."""
    if len(note) > _MAX_NOTE:
        raise LedgerCorrupt("checkpoint note is larger than 1 MiB")
    text, sep, sigs = note.rpartition("\n\n")
    if not sep or not sigs.endswith("\n"):
        raise LedgerCorrupt("checkpoint is not a signed note (no blank line before signatures)")
    text += "\n"
    lines = text.split("\n")[:-1]
    if len(lines) < 3:
        raise LedgerCorrupt("checkpoint needs origin, tree size and root hash lines")
    origin, size_text, root_text = lines[0], lines[1], lines[2]
    if not origin or not size_text.isdigit() or (size_text != "0" and size_text.startswith("0")) or not size_text.isascii():
        raise LedgerCorrupt(f"checkpoint has a malformed origin or tree size line: {size_text!r}")
    try:
        root = base64.b64decode(root_text, validate=True)
    except ValueError:  # binascii.Error, or non-ASCII text
        raise LedgerCorrupt("checkpoint root hash is not base64") from None
    if len(root) != HASH_SIZE:
        raise LedgerCorrupt(f"checkpoint root hash has {len(root)} bytes, expected {HASH_SIZE}")
    signatures = []
    for line in sigs[:-1].split("\n"):
        if not line.startswith(_SIG_PREFIX):
            raise LedgerCorrupt(f"malformed signature line in checkpoint: {line[:80]!r}")
        name, _, blob = line[len(_SIG_PREFIX) :].rpartition(" ")
        try:
            raw = base64.b64decode(blob, validate=True)
        except ValueError:  # binascii.Error, or non-ASCII text
            raise LedgerCorrupt("checkpoint signature is not base64") from None
        if not name or len(raw) < 5:
            raise LedgerCorrupt("checkpoint signature line lacks a key name or signature")
        signatures.append((name, raw[:4], raw[4:]))
    return Checkpoint(origin, int(size_text), root, text, tuple(signatures))


def verify_checkpoint(note: str, key: PublicKey) -> Checkpoint:
    """Parse ``note`` and check that ``key`` signed it; raise :class:`LedgerCorrupt` if not."""
    cp = parse_checkpoint(note)
    if cp.origin != key.name:
        raise LedgerCorrupt(f"checkpoint is for log {cp.origin!r}, not {key.name!r}")
    for name, kid, sig in cp.signatures:
        if name == key.name and kid == key.key_id:
            if key.verify(sig, cp.text.encode("utf-8")):
                return cp
            raise LedgerCorrupt(f"checkpoint for size {cp.size} has an invalid signature by {key.name}")
    raise LedgerCorrupt(f"checkpoint for size {cp.size} is not signed by the log key {key.name} (forged or foreign)")
