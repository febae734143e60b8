"""Key and certificate loading for model signing, with errors a user can act on.

The specification allows ECDSA on NIST P-256, P-384 and P-521, each with the
hash of matching strength. Anything else (RSA, Ed25519, secp256k1) is refused
with the list of what is accepted.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING

from aivet.errors import ArtifactError, EnvironmentFailure, UsageError

if TYPE_CHECKING:  # keep `cryptography` out of start-up: scan-only users never pay for it
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.hashes import HashAlgorithm

ALLOWED_CURVES = {"secp256r1": 256, "secp384r1": 384, "secp521r1": 521}
MAX_KEY_FILE = 1024 * 1024


def _read(path: Path, what: str) -> bytes:
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_KEY_FILE + 1)
    except OSError as exc:
        raise EnvironmentFailure(f"cannot read the {what} {str(path)!r}: {exc}") from exc
    if len(data) > MAX_KEY_FILE:
        raise ArtifactError(f"the {what} {str(path)!r} is larger than {MAX_KEY_FILE} bytes")
    return data


def check_curve(key: object, where: str) -> None:
    """Refuse a key that is not ECDSA on a curve the specification allows."""
    from cryptography.hazmat.primitives.asymmetric import ec

    if not isinstance(key, (ec.EllipticCurvePublicKey, ec.EllipticCurvePrivateKey)):
        raise ArtifactError(f"{where} is a {type(key).__name__}; model signing needs an ECDSA key (P-256, P-384, P-521)")
    if key.curve.name not in ALLOWED_CURVES:
        raise ArtifactError(f"{where} uses the curve {key.curve.name}; allowed: P-256, P-384, P-521")


def hash_for(key: ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey) -> HashAlgorithm:
    """The signature hash the specification pairs with the key's curve."""
    from cryptography.hazmat.primitives import hashes

    size = key.curve.key_size
    if size == 256:
        return hashes.SHA256()
    if size == 384:
        return hashes.SHA384()
    return hashes.SHA512()


def load_private_key(path: Path, password: str | None = None) -> ec.EllipticCurvePrivateKey:
    """Load a PEM private key; a wrong or missing password is a :class:`UsageError`."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    data = _read(path, "private key")
    try:
        key = serialization.load_pem_private_key(data, password.encode() if password is not None else None)
    except TypeError as exc:
        if password is None:
            raise UsageError(f"the private key {str(path)!r} is encrypted: give its password") from exc
        raise UsageError(f"the private key {str(path)!r} is not encrypted: do not give a password") from exc
    except ValueError as exc:
        if password is not None and b"ENCRYPTED" in data:
            raise UsageError(f"wrong password for the private key {str(path)!r}") from exc
        raise ArtifactError(f"{str(path)!r} is not a readable PEM private key: {exc}") from exc
    except Exception as exc:  # cryptography raises UnsupportedAlgorithm for unknown curves/algorithms
        raise ArtifactError(f"{str(path)!r} holds an unsupported key: {exc}") from exc
    check_curve(key, f"the private key {str(path)!r}")
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return key


def load_public_key(path: Path) -> ec.EllipticCurvePublicKey:
    """Load a PEM public key (SubjectPublicKeyInfo)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    data = _read(path, "public key")
    try:
        key = serialization.load_pem_public_key(data)
    except Exception as exc:  # ValueError for corrupt PEM, UnsupportedAlgorithm for unknown curves
        raise ArtifactError(f"{str(path)!r} is not a readable PEM public key: {exc}") from exc
    check_curve(key, f"the public key {str(path)!r}")
    assert isinstance(key, ec.EllipticCurvePublicKey)
    return key


def key_hint(key: ec.EllipticCurvePublicKey) -> str:
    """The bundle's key hint: SHA-256 (hex) of the PEM SubjectPublicKeyInfo, as model_signing writes it."""
    from cryptography.hazmat.primitives import serialization

    pem = key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(pem).hexdigest()


def load_certificates(paths: list[Path] | tuple[Path, ...], what: str = "certificate file") -> list[x509.Certificate]:
    """Load every PEM certificate from ``paths`` (concatenated bundles are fine)."""
    from cryptography import x509

    out: list[x509.Certificate] = []
    for p in paths:
        data = _read(p, what)
        try:
            out.extend(x509.load_pem_x509_certificates(data))
        except ValueError as exc:
            raise ArtifactError(f"{str(p)!r} holds no readable PEM certificate: {exc}") from exc
    return out
