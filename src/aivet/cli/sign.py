"""``aivet sign`` and ``aivet verify``: thin adapters over :mod:`aivet.provenance`.

Exit codes: 0 signed / verified, 1 verification failed (each problem is
printed with its rule id), 2 usage or environment error (raised as
:class:`~aivet.errors.AivetError` for the root command's error edge).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from aivet.cli.progress import ByteProgress
from aivet.errors import ArtifactError, UsageError

if TYPE_CHECKING:
    from aivet.repo import Target

_Model = Annotated[str, typer.Argument(metavar="MODEL", help="The model directory, a Hugging Face cache snapshot, "
                                       "or hf://ORG/NAME\\[@REVISION] (from the local hub cache; downloaded unless "
                                       "HF_HUB_OFFLINE is set).", show_default=False)]
_Signature = Annotated[
    Path | None, typer.Option("--signature", "-s", help="Signature file (default: MODEL/model.sig; "
                                                        "required outside the cache to sign a hub snapshot).")
]
_Workers = Annotated[int | None, typer.Option("--workers", help="Hashing threads (default: every CPU).")]
_Json = Annotated[bool, typer.Option("--json", help="Print the signature record as JSON.")]
_NoProgress = Annotated[bool, typer.Option("--no-progress", help="Never draw a progress bar.")]
_Record = Annotated[bool | None, typer.Option("--record/--no-record", show_default=False,
                                              help="Append the result to the ledger (default: the settings file).")]
_Ledger = Annotated[str | None, typer.Option("--ledger", metavar="PATH_OR_URL",
                                             help="Ledger to record in (SQLite path or postgresql:// URL).")]


def _record(kind: str, target: Target, record: Any, findings: tuple[Any, ...], option: bool | None,
            ledger: str | None) -> None:
    """Append a signature record (and any verification findings) to the ledger when recording is on."""
    from aivet import recording
    from aivet.evidence import Evidence, Subject

    if not recording.wanted(option):
        return
    from aivet.provenance.directory import model_digest

    model_dir, hub = target.path, target.hub_root
    location = target.subject.location if hub is not None else str(model_dir)
    subject = Subject(id=record.subject, kind=target.subject.kind, location=location,
                      repo_id=target.subject.repo_id, revision=target.subject.revision)
    evidence = Evidence(subjects=(subject,), findings=findings, records=(record,))
    digest = None
    if hub is not None:
        # A snapshot is linked by the digest of its files, as a plain copy of them would be (the
        # ledger's own digest refuses the cache's links); a refused snapshot is recorded unlinked.
        try:
            digest = model_digest(model_dir, allowed_root=hub)
        except ArtifactError:
            digest = None
    entry = recording.record(evidence, kind=kind, model_dir=None if hub is not None else model_dir, ledger=ledger,
                             model_digest=digest)
    typer.echo(f"Recorded as entry {entry.index} in {entry.ledger}", err=True)


def _model_card(license_: str | None, authors: list[str] | None, base_model: str | None,
                card_json: Path | None) -> dict[str, Any] | None:
    card: dict[str, Any] = {}
    if card_json is not None:
        try:
            loaded = json.loads(card_json.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise UsageError(f"cannot read the model-card JSON {str(card_json)!r}: {exc}") from exc
        if not isinstance(loaded, dict):
            raise UsageError("the model-card JSON must be an object")
        card.update(loaded)
    if license_:
        card["license"] = license_
    if authors:
        card["authors"] = list(authors)
    if base_model:
        card["base_model"] = base_model
    return card or None


def sign(
    model: _Model,
    key: Annotated[Path | None, typer.Option("--key", "-k", help="PEM ECDSA private key (P-256/384/521).")] = None,
    certificate: Annotated[
        Path | None, typer.Option("--certificate", help="Signing certificate (PEM) for the key: PKI signing.")
    ] = None,
    chain: Annotated[
        list[Path] | None, typer.Option("--chain", help="Intermediate certificates (PEM), repeatable.")
    ] = None,
    sigstore: Annotated[bool, typer.Option("--sigstore", help="Keyless Sigstore signing (needs the network).")] = False,
    identity_token: Annotated[str | None, typer.Option("--identity-token", help="OIDC token for --sigstore.")] = None,
    password_env: Annotated[
        str | None, typer.Option("--password-env", help="Name of an environment variable holding the key password.")
    ] = None,
    signature: _Signature = None,
    hash_type: Annotated[str, typer.Option("--hash", help="sha256 (interoperable), blake3 or blake2b.")] = "sha256",
    sharded: Annotated[bool, typer.Option("--sharded", help="Hash shards of 1 GB in parallel (huge files).")] = False,
    shard_size: Annotated[int | None, typer.Option("--shard-size", help="Shard size in bytes (implies --sharded).")] = None,
    ignore: Annotated[list[str] | None, typer.Option("--ignore", help="Path to leave unsigned, repeatable.")] = None,
    no_ignore_git: Annotated[bool, typer.Option("--no-ignore-git", help="Sign .git* paths too.")] = False,
    allow_symlinks: Annotated[bool, typer.Option("--allow-symlinks", help="Follow links inside the model.")] = False,
    license_: Annotated[str | None, typer.Option("--license", help="Signed model-card metadata: license.")] = None,
    author: Annotated[list[str] | None, typer.Option("--author", help="Signed metadata: author, repeatable.")] = None,
    base_model: Annotated[str | None, typer.Option("--base-model", help="Signed metadata: base model.")] = None,
    card_json: Annotated[Path | None, typer.Option("--card-json", help="Signed metadata from a JSON object.")] = None,
    incremental: Annotated[
        bool, typer.Option("--incremental", help="Reuse digests of files unchanged since the last signing.")
    ] = False,
    workers: _Workers = None,
    as_json: _Json = False,
    no_progress: _NoProgress = False,
    record: _Record = None,
    ledger: _Ledger = None,
) -> None:
    """Sign MODEL in the OpenSSF Model Signing format (a Sigstore bundle, default MODEL/model.sig).

    A Hugging Face snapshot (a cache path or an hf:// reference) is signed only with --signature
    outside the cache: aivet never writes into the cache.
    """
    from aivet.provenance import signing
    from aivet.repo import hub_repo_around, resolve_model

    password = None
    if password_env:
        password = os.environ.get(password_env)
        if password is None:
            raise UsageError(f"the environment variable {password_env!r} is not set")
    methods = sum([key is not None and certificate is None, certificate is not None, sigstore])
    if methods != 1:
        raise UsageError("choose exactly one signing method: --key, --key with --certificate, or --sigstore")
    signer: signing.Signer
    if sigstore:
        signer = signing.SigstoreSigner(identity_token=identity_token)
    elif certificate is not None:
        if key is None:
            raise UsageError("--certificate needs the certificate's private key (--key)")
        signer = signing.CertificateSigner(key, certificate, tuple(chain or ()), password)
    else:
        assert key is not None
        signer = signing.KeySigner(key, password)
    target = resolve_model(model)
    # Below a snapshot a folder is still cache content: sign_model then refuses to write into it.
    hub = target.hub_root or hub_repo_around(target.path)
    size = shard_size or (1_000_000_000 if sharded else None)
    bar = ByteProgress(not no_progress and not as_json, "hashing")
    try:
        result = signing.sign_model(
            target.path, signer, signature=signature, hash_type=hash_type, shard_size=size,
            ignore_paths=ignore or (), ignore_git=not no_ignore_git, allow_symlinks=allow_symlinks,
            model_card=_model_card(license_, author, base_model, card_json), workers=workers,
            progress=bar.advance, on_total=bar.total, use_cache=incremental, allowed_root=hub,
        )
    finally:
        bar.close()
    _record("sign", target, result.record, (), record, ledger)
    if as_json:
        typer.echo(json.dumps(result.record.to_dict(), indent=2))
        return
    extra = f" ({result.cache_hits} digests reused)" if incremental else ""
    typer.echo(f"signed {len(result.manifest.files())} files{extra} -> {result.signature}")


def verify(
    model: _Model,
    key: Annotated[Path | None, typer.Option("--key", "-k", help="The signer's PEM public key.")] = None,
    trust: Annotated[
        list[Path] | None, typer.Option("--trust", help="Trust bundle (PEM roots) for certificate signatures.")
    ] = None,
    sigstore: Annotated[bool, typer.Option("--sigstore", help="Verify a keyless Sigstore signature.")] = False,
    identity: Annotated[str | None, typer.Option("--identity", help="Expected signer identity (--sigstore).")] = None,
    issuer: Annotated[str | None, typer.Option("--issuer", help="Expected OIDC issuer (--sigstore).")] = None,
    signature: _Signature = None,
    only: Annotated[
        list[str] | None, typer.Option("--only", help="Check only this file's digest (partial), repeatable.")
    ] = None,
    workers: _Workers = None,
    as_json: _Json = False,
    no_progress: _NoProgress = False,
    record: _Record = None,
    ledger: _Ledger = None,
) -> None:
    """Verify MODEL against its signature; exit 1 unless it is exactly what was signed."""
    from aivet.provenance import verify as v
    from aivet.repo import resolve_model

    if sum([key is not None, bool(trust), sigstore]) != 1:
        raise UsageError("choose exactly one of --key PUBLIC_KEY, --trust BUNDLE or --sigstore")
    verifier: v.Verifier
    if sigstore:
        if not identity or not issuer:
            raise UsageError("--sigstore needs --identity and --issuer")
        verifier = v.SigstoreVerifier(identity, issuer)
    elif trust:
        verifier = v.CertificateVerifier(tuple(trust))
    else:
        assert key is not None
        verifier = v.KeyVerifier(key)
    target = resolve_model(model)
    bar = ByteProgress(not no_progress and not as_json, "verifying")
    try:
        result = v.verify_model(target.path, verifier, signature=signature, only=only, workers=workers,
                                progress=bar.advance, on_total=bar.total, allowed_root=target.allowed_root)
    finally:
        bar.close()
    _record("verify", target, result.record, tuple(result.findings), record, ledger)
    if as_json:
        out = {"record": result.record.to_dict(), "findings": [f.to_dict() for f in result.findings]}
        typer.echo(json.dumps(out, indent=2))
    else:
        for f in result.findings:
            typer.echo(f"{f.rule_id}: {f.message}")
        typer.echo(result.summary)
    if not result.ok:
        raise typer.Exit(1)
