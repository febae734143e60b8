"""X.509 chain validation for certificate-signed models (private PKI, a trust bundle).

Why our own path builder rather than a TLS policy: model-signing
certificates are code-signing certificates with no DNS names, which web-PKI
validators reject. The checks are the ones that matter here: each link is
signed by the next (signature and name), issuers are CAs, every certificate
is inside its validity window at the verification time, the chain ends at a
certificate of the trust bundle, and the leaf may sign (digitalSignature key
usage or codeSigning extended key usage).
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cryptography import x509

MAX_CHAIN = 10


class ChainProblem(Exception):
    """Why a chain is not acceptable; ``kind`` is ``untrusted``, ``expired`` or ``usage``."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    if cert.issuer != issuer.subject:
        return False
    try:
        cert.verify_directly_issued_by(issuer)
    except Exception:  # InvalidSignature, ValueError, TypeError: any failure means "not the issuer"
        return False
    return True


def _is_ca(cert: x509.Certificate) -> bool:
    from cryptography import x509

    try:
        bc = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        return False
    return bool(bc.ca)


def _check_time(cert: x509.Certificate, at: dt.datetime) -> None:
    if at < cert.not_valid_before_utc:
        raise ChainProblem("expired", f"certificate {cert.subject.rfc4514_string()!r} is not valid before {cert.not_valid_before_utc:%Y-%m-%d}")
    if at > cert.not_valid_after_utc:
        raise ChainProblem("expired", f"certificate {cert.subject.rfc4514_string()!r} expired on {cert.not_valid_after_utc:%Y-%m-%d}")


def _check_usage(leaf: x509.Certificate) -> None:
    from cryptography import x509
    from cryptography.x509.oid import ExtendedKeyUsageOID

    try:
        if leaf.extensions.get_extension_for_class(x509.KeyUsage).value.digital_signature:
            return
    except x509.ExtensionNotFound:
        pass
    try:
        if ExtendedKeyUsageOID.CODE_SIGNING in leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value:
            return
    except x509.ExtensionNotFound:
        pass
    raise ChainProblem("usage", "the signing certificate is not allowed to sign (no digitalSignature or codeSigning usage)")


def validate_chain(
    leaf: x509.Certificate,
    intermediates: list[x509.Certificate],
    anchors: list[x509.Certificate],
    at: dt.datetime | None = None,
) -> list[x509.Certificate]:
    """Return the path leaf -> anchor, or raise :class:`ChainProblem` saying what is wrong.

    Trust is decided first (an untrusted chain is reported as untrusted even if
    it is also expired); then validity at ``at`` (default: now); then usage.
    """
    when = at or dt.datetime.now(dt.UTC)
    path = [leaf]
    current = leaf
    anchor: x509.Certificate | None = None
    for _ in range(MAX_CHAIN):
        found = next((a for a in anchors if a == current or _issued_by(current, a)), None)
        if found is not None:
            anchor = found
            if found != current:
                path.append(found)
            break
        nxt = next((c for c in intermediates if c not in path and _is_ca(c) and _issued_by(current, c)), None)
        if nxt is None:
            break
        path.append(nxt)
        current = nxt
    if anchor is None:
        raise ChainProblem(
            "untrusted",
            f"the certificate {leaf.subject.rfc4514_string()!r} does not chain to a certificate of the trust bundle",
        )
    for issuer in path[1:]:
        if not _is_ca(issuer):
            raise ChainProblem("untrusted", f"{issuer.subject.rfc4514_string()!r} is not a CA certificate")
    for cert in path:
        _check_time(cert, when)
    _check_usage(leaf)
    return path
