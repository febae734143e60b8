"""Sigstore bundle (v0.3 JSON) carrying a DSSE envelope: reading and writing, strictly.

Only what model signing uses is modelled: ``mediaType``, ``verificationMaterial``
(a public-key hint, an X.509 chain, or a single Sigstore certificate, plus
transparency-log entries kept as raw JSON) and ``dsseEnvelope`` (base64 payload,
payload type, signatures). Any malformed or truncated bundle is an
:class:`BundleError` naming the field, never a ``KeyError`` or a false pass.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aivet.errors import ArtifactError, EnvironmentFailure

MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
ACCEPTED_MEDIA_TYPES = (MEDIA_TYPE, "application/vnd.dev.sigstore.bundle+json;version=0.3")
PAYLOAD_TYPE = "application/vnd.in-toto+json"
MAX_BUNDLE_BYTES = 256 * 1024 * 1024  # a manifest of ~1M files is ~150 MB of JSON; more is refused


class BundleError(ArtifactError):
    """The signature file is not a usable Sigstore bundle."""


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE pre-authentication encoding: what is actually signed (DSSE protocol v1)."""
    t = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload), payload)


@dataclass(frozen=True)
class Bundle:
    """A parsed bundle; ``certificates`` are DER, leaf first."""

    payload: bytes
    signatures: tuple[bytes, ...]
    payload_type: str = PAYLOAD_TYPE
    key_hint: str | None = None
    certificates: tuple[bytes, ...] = ()
    keyless: bool = False  # a Sigstore (Fulcio) certificate rather than a PKI chain
    tlog_entries: tuple[Any, ...] = ()
    media_type: str = MEDIA_TYPE
    raw: bytes = field(default=b"", compare=False, repr=False)  # as read: handed whole to sigstore-python

    def to_json(self) -> str:
        """Serialise as model_signing and sigstore-python write it."""
        vm: dict[str, Any] = {}
        if self.certificates and self.keyless:
            vm["certificate"] = {"rawBytes": _b64(self.certificates[0])}
        elif self.certificates:
            vm["x509CertificateChain"] = {"certificates": [{"rawBytes": _b64(c)} for c in self.certificates]}
        else:
            vm["publicKey"] = {"hint": self.key_hint or ""}
        vm["tlogEntries"] = list(self.tlog_entries)
        doc = {
            "mediaType": self.media_type,
            "verificationMaterial": vm,
            "dsseEnvelope": {
                "payload": _b64(self.payload),
                "payloadType": self.payload_type,
                "signatures": [{"sig": _b64(s), "keyid": ""} for s in self.signatures],
            },
        }
        return json.dumps(doc, indent=2)

    def statement(self) -> Any:
        """The DSSE payload decoded as JSON (:class:`BundleError` if it is not)."""
        if self.payload_type != PAYLOAD_TYPE:
            raise BundleError(f"the DSSE payload type is {self.payload_type!r}, not {PAYLOAD_TYPE!r}")
        try:
            return json.loads(self.payload)
        except (ValueError, RecursionError) as exc:
            raise BundleError(f"the DSSE payload is not valid JSON: {exc}") from exc


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(value: Any, where: str) -> bytes:
    if not isinstance(value, str):
        raise BundleError(f"{where} is missing or not a string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BundleError(f"{where} is not valid base64") from exc


def _obj(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise BundleError(f"{where} is missing or not an object")
    return value


def parse_bundle(data: bytes) -> Bundle:
    """Parse bundle JSON bytes; every defect is a :class:`BundleError`."""
    if len(data) > MAX_BUNDLE_BYTES:
        raise BundleError(f"the signature file is larger than {MAX_BUNDLE_BYTES} bytes")
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise BundleError(f"the signature file is not valid JSON (truncated or corrupt): {exc}") from exc
    doc = _obj(doc, "the bundle")
    media = doc.get("mediaType")
    if media not in ACCEPTED_MEDIA_TYPES:
        raise BundleError(f"unsupported bundle media type {media!r}; expected {MEDIA_TYPE!r}")
    vm = _obj(doc.get("verificationMaterial"), "verificationMaterial")
    env = _obj(doc.get("dsseEnvelope"), "dsseEnvelope (a message-signature bundle cannot sign a model)")
    payload = _unb64(env.get("payload"), "dsseEnvelope.payload")
    ptype = env.get("payloadType")
    if not isinstance(ptype, str):
        raise BundleError("dsseEnvelope.payloadType is missing")
    sigs_raw = env.get("signatures")
    if not isinstance(sigs_raw, list) or not sigs_raw:
        raise BundleError("dsseEnvelope.signatures is missing or empty")
    if len(sigs_raw) != 1:
        raise BundleError("a model signature bundle has exactly one signature")
    sigs = tuple(_unb64(_obj(s, "a signature").get("sig"), "dsseEnvelope.signatures[].sig") for s in sigs_raw)
    tlog = vm.get("tlogEntries", [])
    if not isinstance(tlog, list):
        raise BundleError("verificationMaterial.tlogEntries is not a list")
    hint: str | None = None
    certs: tuple[bytes, ...] = ()
    keyless = False
    if "publicKey" in vm:
        raw_hint = _obj(vm["publicKey"], "verificationMaterial.publicKey").get("hint")
        if raw_hint is not None and not isinstance(raw_hint, str):
            raise BundleError("verificationMaterial.publicKey.hint is not a string")
        hint = raw_hint or None
    elif "x509CertificateChain" in vm:
        chain = _obj(vm["x509CertificateChain"], "verificationMaterial.x509CertificateChain").get("certificates")
        if not isinstance(chain, list) or not chain:
            raise BundleError("the certificate chain is empty")
        certs = tuple(_unb64(_obj(c, "a certificate").get("rawBytes"), "certificate rawBytes") for c in chain)
    elif "certificate" in vm:
        certs = (_unb64(_obj(vm["certificate"], "certificate").get("rawBytes"), "certificate rawBytes"),)
        keyless = True
    else:
        raise BundleError("verificationMaterial has no public key, certificate chain or certificate")
    return Bundle(payload, sigs, ptype, hint, certs, keyless, tuple(tlog), str(media), bytes(data))


def read_bundle(path: Path) -> Bundle:
    """Read and parse a signature file (bounded size)."""
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_BUNDLE_BYTES + 1)
    except FileNotFoundError as exc:
        raise SignatureMissing(f"no signature file at {str(path)!r}") from exc
    except OSError as exc:
        raise EnvironmentFailure(f"cannot read the signature file {str(path)!r}: {exc}") from exc
    return parse_bundle(data)


class SignatureMissing(ArtifactError):
    """The model has no signature where one was expected."""
