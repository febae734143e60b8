"""The log key: an Ed25519 key that signs tree heads, and its C2SP note encodings.

The private key lives in a PEM (PKCS#8) file readable only by its owner
(0600), created on first use with an atomic link so that two processes
starting at once agree on one key. Verifiers need only the public key, which
we write in the C2SP signed-note verifier-key form ``name+keyhash+base64(0x01 || key)``.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from aivet.ledger.errors import LedgerKeyError, LedgerUnavailable

__all__ = ["LogKey", "PublicKey", "key_id", "load_or_create_key", "parse_verifier_key"]

ED25519_ALG = 0x01  # C2SP signed-note signature type for Ed25519


def key_id(name: str, public: bytes) -> bytes:
    """The 4-byte key hash of a signed-note key: ``SHA-256(name || 0x0A || 0x01 || key)[:4]``."""
    return hashlib.sha256(name.encode("utf-8") + b"\n" + bytes([ED25519_ALG]) + public).digest()[:4]


def default_origin(public: bytes) -> str:
    """A log origin (and key name) unique to a key: ``aivet.local/ledger/<8 hex of its hash>``."""
    return f"aivet.local/ledger/{hashlib.sha256(public).hexdigest()[:8]}"


@dataclass(frozen=True)
class PublicKey:
    """A named Ed25519 verification key for checkpoints."""

    name: str
    raw: bytes

    @property
    def key_id(self) -> bytes:
        return key_id(self.name, self.raw)

    def verifier_key(self) -> str:
        """The C2SP ``vkey`` text: ``<name>+<hex key hash>+<base64(0x01 || key)>``."""
        blob = base64.b64encode(bytes([ED25519_ALG]) + self.raw).decode()
        return f"{self.name}+{self.key_id.hex()}+{blob}"

    def verify(self, signature: bytes, message: bytes) -> bool:
        """True when ``signature`` is this key's Ed25519 signature over ``message``."""
        try:
            Ed25519PublicKey.from_public_bytes(self.raw).verify(signature, message)
        except (InvalidSignature, ValueError):
            return False
        return True


def parse_verifier_key(text: str) -> PublicKey:
    """Parse a C2SP verifier key; raise :class:`LedgerKeyError` naming what is wrong."""
    parts = text.strip().split("+", 2)  # the base64 part may itself contain "+"
    if len(parts) != 3 or not parts[0]:
        raise LedgerKeyError("a log public key has the form NAME+KEYHASH+BASE64 (see `aivet ledger key`)")
    name, hash_hex, blob = parts
    try:
        raw = base64.b64decode(blob, validate=True)
        expected = bytes.fromhex(hash_hex)
    except ValueError as exc:
        raise LedgerKeyError(f"log public key is not valid hex/base64: {exc}") from None
    if len(raw) != 33 or raw[0] != ED25519_ALG:
        raise LedgerKeyError("log public key is not an Ed25519 signed-note key")
    key = PublicKey(name, raw[1:])
    if key.key_id != expected:
        raise LedgerKeyError("log public key's key hash does not match its name and key bytes")
    return key


@dataclass(frozen=True)
class LogKey:
    """A private log key with the name it signs under."""

    name: str
    private: Ed25519PrivateKey

    @property
    def public(self) -> PublicKey:
        raw = self.private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return PublicKey(self.name, raw)

    def sign(self, message: bytes) -> bytes:
        return self.private.sign(message)


def load_or_create_key(path: Path) -> Ed25519PrivateKey:
    """Read the Ed25519 key at ``path``, creating it (mode 0600) if it does not exist yet."""
    try:
        return _read_key(path)
    except FileNotFoundError:
        pass
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, pem)
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            # link() refuses to replace: if another process won the race, everyone uses its key.
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            tmp.unlink(missing_ok=True)
    except OSError as exc:
        raise LedgerUnavailable(f"cannot create the log key at {path}: {exc.strerror or exc}") from exc
    return _read_key(path)


def _read_key(path: Path) -> Ed25519PrivateKey:
    with open(path, "rb") as fh:
        mode = os.fstat(fh.fileno()).st_mode
        data = fh.read(64 * 1024)
    if os.name == "posix" and mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise LedgerKeyError(f"log key {path} is readable by other users; run: chmod 600 {path}")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise LedgerKeyError(f"log key {path} is not a readable PEM private key: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise LedgerKeyError(f"log key {path} is not an Ed25519 key")
    return key
