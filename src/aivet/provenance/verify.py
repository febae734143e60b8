"""Verify a signed model directory and say exactly what is wrong.

The result is never "verified" unless the signature is authentic *and* the
directory holds exactly the signed files with the signed digests. Every
problem is a :class:`~aivet.evidence.Finding` under a stable ``SIGN-...``
rule; the outcome is also one ``Record(kind="signature")`` for the evidence.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aivet.errors import AivetError, ArtifactError, EnvironmentFailure, UsageError
from aivet.evidence import Finding, Record, Severity
from aivet.provenance import hashing, keys
from aivet.provenance.bundle import Bundle, BundleError, SignatureMissing, pae, read_bundle
from aivet.provenance.directory import allowed_root_for, manifest_of, model_name
from aivet.provenance.manifest import DEFAULT_SIGNATURE_NAME, Manifest, PredicateError, diff
from aivet.rules import ATLAS_SUPPLY_CHAIN_MODEL, Rule

_ATLAS = (ATLAS_SUPPLY_CHAIN_MODEL,)


def _rule(rid: str, title: str, description: str, severity: Severity, cwe: str) -> Rule:
    return Rule(rid, title, description, severity, _ATLAS, (cwe,))


SIGN_MISSING = _rule(
    "SIGN-MISSING", "No signature", "The model directory has no signature file where one was expected, so its "
    "origin and integrity cannot be established.", Severity.HIGH, "CWE-345")
SIGN_BUNDLE_INVALID = _rule(
    "SIGN-BUNDLE-INVALID", "Unreadable signature bundle", "The signature file is truncated, corrupt or not a "
    "Sigstore bundle with a DSSE envelope; nothing it claims can be trusted.", Severity.HIGH, "CWE-347")
SIGN_PREDICATE_INVALID = _rule(
    "SIGN-PREDICATE-INVALID", "Wrong or inconsistent predicate", "The signed statement is not an OpenSSF Model "
    "Signing v1.0 predicate, its subject digest does not match its resources, or it names paths outside the "
    "model (such as '..').", Severity.HIGH, "CWE-22")
SIGN_WRONG_KEY = _rule(
    "SIGN-WRONG-KEY", "Signature does not verify", "The signature was not made by the given key or certificate "
    "(or the signed payload was altered).", Severity.CRITICAL, "CWE-347")
SIGN_CERT_UNTRUSTED = _rule(
    "SIGN-CERT-UNTRUSTED", "Untrusted certificate", "The signing certificate does not chain to the trust bundle.",
    Severity.CRITICAL, "CWE-296")
SIGN_CERT_EXPIRED = _rule(
    "SIGN-CERT-EXPIRED", "Expired certificate", "A certificate of the signing chain is outside its validity "
    "period at verification time.", Severity.HIGH, "CWE-298")
SIGN_CERT_USAGE = _rule(
    "SIGN-CERT-USAGE", "Certificate may not sign", "The signing certificate has neither digitalSignature key "
    "usage nor codeSigning extended key usage.", Severity.HIGH, "CWE-295")
SIGN_METHOD_MISMATCH = _rule(
    "SIGN-METHOD-MISMATCH", "Signature made with another method", "The bundle carries material for another "
    "signing method (a key, a certificate chain or Sigstore) than the one verification was asked for.",
    Severity.HIGH, "CWE-347")
SIGN_FILE_MODIFIED = _rule(
    "SIGN-FILE-MODIFIED", "Signed file modified", "A file's content differs from its signed digest.",
    Severity.CRITICAL, "CWE-494")
SIGN_FILE_ADDED = _rule(
    "SIGN-FILE-ADDED", "Unsigned file added", "A file is present that the signature does not cover; a loader may "
    "pick it up (a pickle beside safetensors, remote code).", Severity.HIGH, "CWE-494")
SIGN_FILE_REMOVED = _rule(
    "SIGN-FILE-REMOVED", "Signed file missing", "A file covered by the signature is missing.", Severity.HIGH,
    "CWE-494")
SIGN_FILE_RENAMED = _rule(
    "SIGN-FILE-RENAMED", "Signed file renamed", "A signed file's content is present under another name.",
    Severity.HIGH, "CWE-494")
SIGN_OTHER_MODEL = _rule(
    "SIGN-OTHER-MODEL", "Signature made for another directory", "The signature names another model and none of "
    "its files match this directory.", Severity.HIGH, "CWE-345")
SIGN_DIRECTORY_INVALID = _rule(
    "SIGN-DIRECTORY-INVALID", "Directory cannot be verified", "The directory holds something that verification "
    "refuses, such as a symbolic link leaving it, a special file, or more files than the limit.", Severity.HIGH,
    "CWE-59")

RULES = (
    SIGN_MISSING, SIGN_BUNDLE_INVALID, SIGN_PREDICATE_INVALID, SIGN_WRONG_KEY, SIGN_CERT_UNTRUSTED,
    SIGN_CERT_EXPIRED, SIGN_CERT_USAGE, SIGN_METHOD_MISMATCH, SIGN_FILE_MODIFIED, SIGN_FILE_ADDED,
    SIGN_FILE_REMOVED, SIGN_FILE_RENAMED, SIGN_OTHER_MODEL, SIGN_DIRECTORY_INVALID,
)


class VerificationFailure(ArtifactError):
    """An authenticity check failed; ``rule`` says which."""

    def __init__(self, rule: Rule, message: str) -> None:
        super().__init__(message)
        self.rule = rule


@dataclass(frozen=True)
class KeyVerifier:
    """Verify with the signer's ECDSA public key (PEM)."""

    public_key: Path

    def check(self) -> None:
        """Load the key now: an unreadable key is an error, not a finding about the model."""
        keys.load_public_key(self.public_key)

    def authenticate(self, bundle: Bundle) -> dict[str, Any]:
        """Check the DSSE signature; return facts about the signer for the record."""
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives.asymmetric import ec

        key = keys.load_public_key(self.public_key)
        if bundle.certificates:
            raise VerificationFailure(SIGN_METHOD_MISMATCH, "the bundle carries a certificate, not a public-key hint; "
                                      "verify with --certificate-chain / --sigstore")
        hint = keys.key_hint(key)
        if bundle.key_hint is not None and bundle.key_hint != hint:
            raise VerificationFailure(SIGN_WRONG_KEY, "the signature was made with another key (key hint mismatch)")
        try:
            key.verify(bundle.signatures[0], pae(bundle.payload_type, bundle.payload), ec.ECDSA(keys.hash_for(key)))
        except InvalidSignature:
            raise VerificationFailure(SIGN_WRONG_KEY, "the signature does not verify with this public key") from None
        return {"method": "key", "key_hint": hint}


@dataclass(frozen=True)
class CertificateVerifier:
    """Verify a certificate-chain signature against a trust bundle (PEM roots)."""

    trust: tuple[Path, ...]
    at: dt.datetime | None = None  # verification time; default now

    def check(self) -> None:
        """Load the trust bundle now (it must hold at least one certificate)."""
        if not keys.load_certificates(list(self.trust), "trust bundle"):
            raise UsageError("the trust bundle holds no certificate")

    def authenticate(self, bundle: Bundle) -> dict[str, Any]:
        """Validate the chain, then the signature with the leaf's key."""
        from cryptography import x509
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives.asymmetric import ec

        from aivet.provenance.pki import ChainProblem, validate_chain

        if not bundle.certificates or bundle.keyless:
            hint = "--key" if not bundle.certificates else "--sigstore"
            raise VerificationFailure(SIGN_METHOD_MISMATCH, f"the bundle carries no certificate chain; verify with {hint}")
        anchors = keys.load_certificates(list(self.trust), "trust bundle")
        try:
            certs = [x509.load_der_x509_certificate(c) for c in bundle.certificates]
        except ValueError as exc:
            raise BundleError(f"a certificate in the bundle is not valid DER: {exc}") from exc
        try:
            validate_chain(certs[0], certs[1:], anchors, self.at)
            key = certs[0].public_key()
            signer, issuer = certs[0].subject.rfc4514_string(), certs[0].issuer.rfc4514_string()
        except ChainProblem as exc:
            rule = {"expired": SIGN_CERT_EXPIRED, "usage": SIGN_CERT_USAGE}.get(exc.kind, SIGN_CERT_UNTRUSTED)
            raise VerificationFailure(rule, exc.message) from None
        except Exception as exc:  # cryptography parses extensions and keys lazily: malformed ones raise here
            raise VerificationFailure(SIGN_CERT_UNTRUSTED, f"a certificate in the bundle is malformed: {exc}") from None
        try:
            keys.check_curve(key, "the signing certificate's key")
        except ArtifactError as exc:
            raise VerificationFailure(SIGN_WRONG_KEY, str(exc)) from None
        assert isinstance(key, ec.EllipticCurvePublicKey)
        try:
            key.verify(bundle.signatures[0], pae(bundle.payload_type, bundle.payload), ec.ECDSA(keys.hash_for(key)))
        except InvalidSignature:
            raise VerificationFailure(SIGN_WRONG_KEY, "the signature does not verify with the certificate's key") from None
        return {"method": "certificate", "signer": signer, "issuer": issuer}


@dataclass(frozen=True)
class SigstoreVerifier:
    """Verify a keyless Sigstore signature for an identity and OIDC issuer (needs the network)."""

    identity: str
    issuer: str
    staging: bool = False

    def check(self) -> None:
        """Nothing to load locally: identity and issuer are plain strings."""

    def authenticate(self, bundle: Bundle) -> dict[str, Any]:
        """Delegate certificate, transparency-log and identity checks to sigstore-python."""
        from aivet.errors import MissingExtraError
        from aivet.provenance.signing import require_network

        if not bundle.keyless:
            raise VerificationFailure(SIGN_METHOD_MISMATCH, "the bundle is not a Sigstore keyless signature")
        require_network("tuf-repo-cdn.sigstore.dev")
        try:
            from sigstore.models import Bundle as SBundle  # type: ignore[import-not-found,unused-ignore]
            from sigstore.verify import Verifier, policy  # type: ignore[import-not-found,unused-ignore]
        except ImportError as exc:
            raise MissingExtraError("sigstore", "sigstore", "Sigstore keyless verification") from exc
        try:
            verifier = Verifier.staging() if self.staging else Verifier.production()
            sb = SBundle.from_json(bundle.raw or bundle.to_json())
            verifier.verify_dsse(sb, policy.Identity(identity=self.identity, issuer=self.issuer))
        except Exception as exc:  # sigstore's own error tree: a failed check either way
            raise VerificationFailure(SIGN_WRONG_KEY, f"Sigstore verification failed: {exc}") from None
        return {"method": "sigstore", "identity": self.identity, "issuer": self.issuer}


Verifier = KeyVerifier | CertificateVerifier | SigstoreVerifier


@dataclass(frozen=True)
class VerifyResult:
    """The outcome: ``ok`` only when nothing at all is wrong."""

    ok: bool
    findings: tuple[Finding, ...]
    record: Record
    manifest: Manifest | None = None
    checked: tuple[str, ...] = ()  # files whose digests were checked
    partial: bool = False

    @property
    def summary(self) -> str:
        """One line for a human."""
        if not self.ok:
            return f"verification FAILED: {len(self.findings)} problem(s)"
        if self.partial:
            total = len(self.manifest.files()) if self.manifest else 0
            return f"signature valid; {len(self.checked)} of {total} signed files checked and match (partial)"
        return f"verified: {len(self.checked)} files match the signature"


def verify_model(
    root: Path,
    verifier: Verifier,
    *,
    signature: Path | None = None,
    only: Iterable[str] | None = None,
    workers: int | None = None,
    progress: hashing.ProgressFn | None = None,
    on_total: Any = None,
    max_files: int = 1_000_000,
    allowed_root: Path | None = None,
) -> VerifyResult:
    """Verify ``root`` against its signature (default ``root/model.sig``).

    ``only`` restricts the content check to some files (partial verification
    of a huge model): the signature is still checked in full and the result
    says it is partial. Environment failures (unreadable disk) raise
    :class:`~aivet.errors.EnvironmentFailure`; everything about the artifact
    is a finding. Links may resolve inside ``allowed_root`` (default: the hub
    cache repository when ``root`` is a snapshot, else ``root``), so a snapshot
    verifies against a signature made on a plain copy of its files.
    """
    root = Path(root)
    allowed = allowed_root_for(root, allowed_root)
    sig_path = Path(signature) if signature is not None else root / DEFAULT_SIGNATURE_NAME
    subject = model_name(root)
    findings: list[Finding] = []
    facts: dict[str, Any] = {"action": "verify", "signature": str(sig_path)}

    def fail(rule: Rule, message: str, path: str = "", **details: Any) -> VerifyResult:
        findings.append(rule.finding(path or sig_path.name, message, subject=subject, **details))
        return _result(False, findings, subject, facts)

    verifier.check()  # a bad key or trust bundle is the caller's problem (exit 2), not a finding
    if signature is None and (sig_path.exists() or sig_path.is_symlink()) \
            and not hashing.plain_file_within(sig_path, allowed):
        # The model's own model.sig: a FIFO would block the read, a link out could read any file.
        return fail(SIGN_BUNDLE_INVALID, f"{sig_path.name!r} is not a regular file inside the model directory "
                                         "(a symbolic link leaving it, or a special file): not read")
    try:
        bundle = read_bundle(sig_path)
    except SignatureMissing as exc:
        return fail(SIGN_MISSING, str(exc))
    except BundleError as exc:
        return fail(SIGN_BUNDLE_INVALID, str(exc))
    try:
        facts.update(verifier.authenticate(bundle))
        statement = bundle.statement()
    except VerificationFailure as exc:
        return fail(exc.rule, str(exc))
    except BundleError as exc:
        return fail(SIGN_BUNDLE_INVALID, str(exc))
    try:
        manifest = Manifest.from_statement(statement)
    except PredicateError as exc:
        return fail(SIGN_PREDICATE_INVALID, str(exc))
    except ArtifactError as exc:  # not an in-toto statement, or a malformed serialization section
        return fail(SIGN_PREDICATE_INVALID, exc.diagnostics())
    facts.update(root_digest=manifest.root_digest(), serialization=manifest.serialization.to_dict(),
                 signed_name=manifest.model_name)
    if manifest.model_card:
        facts["model_card"] = dict(manifest.model_card)
    signed_files = manifest.files()
    wanted: list[str] | None = None
    if only is not None:
        wanted = sorted(set(only))
        for name in wanted:
            if name not in signed_files:
                findings.append(SIGN_FILE_ADDED.finding(name, f"{name!r} is not covered by the signature",
                                                        subject=subject))
        wanted = [n for n in wanted if n in signed_files]
    try:
        actual = manifest_of(root, manifest.serialization, only=wanted, workers=workers, progress=progress,
                             max_files=max_files, on_total=on_total, allowed_root=allowed)
    except EnvironmentFailure:
        raise
    except AivetError as exc:
        return fail(SIGN_DIRECTORY_INVALID, exc.diagnostics())
    expected = manifest
    if wanted is not None:
        keep = set(wanted)
        expected = Manifest(manifest.model_name, manifest.serialization,
                            tuple(r for r in manifest.resources if r.path in keep))
    d = diff(expected, actual)
    if not d.clean and manifest.model_name != subject and not (expected.files().keys() & actual.files().keys()):
        findings.append(SIGN_OTHER_MODEL.finding(
            sig_path.name, f"the signature was made for {manifest.model_name!r}, and none of its files are here",
            subject=subject, signed_name=manifest.model_name))
    for p in d.modified:
        findings.append(SIGN_FILE_MODIFIED.finding(p, f"{p!r} was modified after signing", subject=subject))
    for p in d.added:
        findings.append(SIGN_FILE_ADDED.finding(p, f"{p!r} is not covered by the signature", subject=subject))
    for p in d.removed:
        findings.append(SIGN_FILE_REMOVED.finding(p, f"{p!r} is signed but missing", subject=subject))
    for old, new in d.renamed:
        findings.append(SIGN_FILE_RENAMED.finding(new, f"{old!r} was renamed to {new!r}", subject=subject,
                                                  signed_name=old))
    checked = tuple(sorted(actual.files()))
    facts["checked_files"] = len(checked)
    facts["signed_files"] = len(signed_files)
    ok = not findings
    return VerifyResult(ok, tuple(findings), _record(ok, subject, facts, partial=wanted is not None), manifest,
                        checked, wanted is not None)


def _record(ok: bool, subject: str, facts: dict[str, Any], *, partial: bool = False) -> Record:
    status = ("partially-verified" if partial else "verified") if ok else "failed"
    return Record(kind="signature", subject=subject, data={**facts, "status": status})


def _result(ok: bool, findings: list[Finding], subject: str, facts: dict[str, Any]) -> VerifyResult:
    return VerifyResult(ok, tuple(findings), _record(ok, subject, facts))
