"""Sign a model directory in the OpenSSF Model Signing format.

Signers are a small explicit family: :class:`KeySigner` (an ECDSA private
key), :class:`CertificateSigner` (a key plus its X.509 chain, for PKI) and
:class:`SigstoreSigner` (keyless; needs the network and the ``sigstore``
extra). Each turns DSSE pre-authentication bytes into a signature plus the
bundle's verification material.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aivet.errors import ArtifactError, EnvironmentFailure, MissingExtraError, OfflineError, UsageError
from aivet.evidence import Record
from aivet.provenance import hashing, keys
from aivet.provenance.bundle import PAYLOAD_TYPE, Bundle, pae
from aivet.provenance.directory import allowed_root_for, hub_repo_root, ignore_list, manifest_of
from aivet.provenance.manifest import DEFAULT_SIGNATURE_NAME, Manifest, Serialization


@dataclass(frozen=True)
class KeySigner:
    """Sign with an ECDSA private key (P-256, P-384 or P-521) in a PEM file."""

    private_key: Path
    password: str | None = None

    def sign(self, payload: bytes) -> Bundle:
        """Sign a statement and wrap it in a bundle that carries the key hint."""
        from cryptography.hazmat.primitives.asymmetric import ec

        key = keys.load_private_key(self.private_key, self.password)
        sig = key.sign(pae(PAYLOAD_TYPE, payload), ec.ECDSA(keys.hash_for(key)))
        return Bundle(payload, (sig,), key_hint=keys.key_hint(key.public_key()))


@dataclass(frozen=True)
class CertificateSigner:
    """Sign with a private key whose certificate chains to a trust anchor (PKI)."""

    private_key: Path
    certificate: Path
    chain: tuple[Path, ...] = ()
    password: str | None = None

    def sign(self, payload: bytes) -> Bundle:
        """Sign and embed the leaf certificate followed by the intermediates."""
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec

        key = keys.load_private_key(self.private_key, self.password)
        leaf = keys.load_certificates([self.certificate], "signing certificate")
        if len(leaf) != 1:
            raise ArtifactError(f"{str(self.certificate)!r} must hold exactly one (the signing) certificate")
        if leaf[0].public_key() != key.public_key():
            raise ArtifactError("the signing certificate does not belong to the private key")
        chain = keys.load_certificates(list(self.chain), "certificate chain")
        sig = key.sign(pae(PAYLOAD_TYPE, payload), ec.ECDSA(keys.hash_for(key)))
        der = tuple(c.public_bytes(serialization.Encoding.DER) for c in [leaf[0], *chain])
        return Bundle(payload, (sig,), certificates=der)


@dataclass(frozen=True)
class SigstoreSigner:
    """Keyless signing through Sigstore (Fulcio certificate, Rekor entry): needs the network."""

    identity_token: str | None = None
    staging: bool = False
    host: str = field(default="fulcio.sigstore.dev")

    def sign(self, payload: bytes) -> Bundle:
        """Sign through the public Sigstore instance (sigstore-python does the protocol)."""
        require_network(self.host)
        try:
            from sigstore.models import ClientTrustConfig  # type: ignore[import-not-found,unused-ignore]
            from sigstore.oidc import Issuer  # type: ignore[import-not-found,unused-ignore]
            from sigstore.sign import SigningContext  # type: ignore[import-not-found,unused-ignore]
        except ImportError as exc:
            raise MissingExtraError("sigstore", "sigstore", "Sigstore keyless signing") from exc
        from sigstore import dsse  # type: ignore[import-not-found,unused-ignore]

        try:
            config = ClientTrustConfig.staging() if self.staging else ClientTrustConfig.production()
            ctx = SigningContext.from_trust_config(config)
            from sigstore.oidc import IdentityToken  # type: ignore[import-not-found,unused-ignore]

            token = IdentityToken(self.identity_token) if self.identity_token else Issuer(
                config.signing_config.get_oidc_url()
            ).identity_token()
            stmt = dsse.Statement(payload)
            with ctx.signer(token) as signer:
                result = signer.sign_dsse(stmt)
            raw = result.to_json().encode()
        except Exception as exc:  # network and protocol failures of a third-party client
            raise EnvironmentFailure(f"Sigstore signing failed: {exc}") from exc
        from aivet.provenance.bundle import parse_bundle

        return parse_bundle(raw)


Signer = KeySigner | CertificateSigner | SigstoreSigner


def require_network(host: str, port: int = 443, timeout: float = 3.0) -> None:
    """Raise :class:`OfflineError` unless ``host`` resolves and accepts a TCP connection."""
    import socket

    try:
        with socket.create_connection((host, port), timeout=timeout):
            return
    except OSError as exc:
        raise OfflineError(
            f"Sigstore keyless signing needs the network, and {host} cannot be reached ({exc}). "
            "Sign with a key (--key) or a certificate (--certificate) instead, or retry online."
        ) from exc


@dataclass(frozen=True)
class SignResult:
    """What :func:`sign_model` did."""

    signature: Path
    manifest: Manifest
    record: Record
    cache_hits: int = 0


def sign_model(
    root: Path,
    signer: Signer,
    *,
    signature: Path | None = None,
    hash_type: str = "sha256",
    shard_size: int | None = None,
    ignore_paths: Iterable[str] = (),
    ignore_git: bool = True,
    allow_symlinks: bool = False,
    model_card: Mapping[str, Any] | None = None,
    workers: int | None = None,
    progress: hashing.ProgressFn | None = None,
    on_total: Any = None,
    use_cache: bool = False,
    max_files: int = 1_000_000,
    allowed_root: Path | None = None,
) -> SignResult:
    """Hash ``root``, sign the statement, write the bundle (default ``root/model.sig``).

    ``shard_size`` selects the specification's sharded mode (one huge file
    hashes on every core). ``model_card`` (license, authors, base model, ...)
    is signed with the digests: it cannot be changed without breaking the
    signature. ``use_cache`` reuses digests of files unchanged since the last
    signing (incremental re-hashing).

    A Hugging Face cache snapshot (``allowed_root`` None: auto-detected) is
    hashed like a plain copy of its files, but the signature must be written
    outside the cache (``signature``): a file added to a snapshot is not part
    of the hub revision and would confuse the cache. :class:`UsageError`
    otherwise.
    """
    root = Path(root)
    hub = Path(allowed_root) if allowed_root is not None else hub_repo_root(root)
    if hub is not None:
        _refuse_signature_in_cache(root, hub, signature)
    sig_path = Path(signature) if signature is not None else root / DEFAULT_SIGNATURE_NAME
    ser = Serialization(
        method="shards" if shard_size else "files",
        hash_type=hash_type,
        allow_symlinks=allow_symlinks,
        ignore_paths=ignore_list(root, sig_path, ignore_paths, ignore_git=ignore_git),
        shard_size=shard_size or None,
    )
    cache = hashing.DigestCache(hashing.default_cache_path(root)) if use_cache else None
    card = _check_card(model_card)
    manifest = manifest_of(
        root, ser, workers=workers, progress=progress, cache=cache, max_files=max_files, model_card=card,
        on_total=on_total, allowed_root=allowed_root_for(root, allowed_root),
    )
    payload = json.dumps(manifest.to_statement(), indent=2).encode("utf-8")
    bundle = signer.sign(payload)
    try:
        sig_path.write_text(bundle.to_json(), encoding="utf-8")
    except OSError as exc:
        raise EnvironmentFailure(f"cannot write the signature {str(sig_path)!r}: {exc}") from exc
    record = Record(
        kind="signature",
        subject=manifest.model_name,
        data={
            "action": "sign",
            "status": "signed",
            "method": type(signer).__name__.replace("Signer", "").lower(),
            "signature": str(sig_path),
            "root_digest": manifest.root_digest(),
            "serialization": manifest.serialization.to_dict(),
            "resources": len(manifest.resources),
            "model_card": dict(card) if card else None,
        },
    )
    return SignResult(sig_path, manifest, record, cache.hits if cache else 0)


def _refuse_signature_in_cache(root: Path, hub: Path, signature: Path | None) -> None:
    """Refuse to write a signature anywhere inside a hub cache repository (``hub``)."""
    real_hub = hub.resolve()
    if real_hub == root.resolve():
        return  # an explicit allowed root equal to the model root: a plain directory
    if signature is None:
        raise UsageError(
            f"{str(root)!r} is a Hugging Face cache snapshot: aivet does not write model.sig into the cache. "
            "Sign with --signature PATH outside the cache (and verify with the same --signature), or sign a "
            "plain copy of the files (`hf download ORG/NAME --local-dir DIR`)."
        )
    where = Path(signature).parent.resolve() / Path(signature).name
    if where == real_hub or real_hub in where.parents:
        raise UsageError(f"the signature {str(signature)!r} would be written inside the Hugging Face cache "
                         f"repository {str(hub)!r}; write it outside the cache")


def _check_card(card: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Model-card metadata must be a small JSON object (it is signed verbatim)."""
    if not card:
        return None
    text = json.dumps(dict(card))
    if len(text) > 1024 * 1024:
        raise ArtifactError("model-card metadata is larger than 1 MiB")
    out: dict[str, Any] = json.loads(text)
    return out
