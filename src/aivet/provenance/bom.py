"""An AI bill of materials for a model directory: CycloneDX 1.6 ML-BOM (and SPDX 3.0.1, see :mod:`.spdx`).

The BOM lists the model as a ``machine-learning-model`` component whose
``modelCard`` carries what the files say about it (architecture, parameter
count, task, datasets) and whose nested ``file`` components carry every
file's SHA-256; licenses, base models (as pedigree ancestors) and the
signature (its file digest and the signed manifest's root digest, marked
*unverified*: a BOM is an inventory, ``aivet verify`` is the check) come
from the README front matter, ``config.json``, weight headers and
``model.sig``. Nothing is loaded or executed.

The document is built with cyclonedx-python-lib (imported lazily); the
library has no model-card class yet, so the model card and dataset data are
added to its JSON output and the result is checked against the CycloneDX 1.6
JSON schema before it is returned. The outcome is also Evidence: findings for
sources that could not be read and one ``Record(kind="bom")`` with the BOM's
serial number and digest, for the policy and the log.
"""

from __future__ import annotations

import enum
import hashlib
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from aivet.errors import AivetError, ArtifactError, EnvironmentFailure, UsageError
from aivet.evidence import Evidence, Finding, Record, Severity, Subject
from aivet.limits import DEFAULT_LIMITS, Limits
from aivet.provenance import hashing
from aivet.provenance.directory import allowed_root_for, model_name
from aivet.provenance.manifest import DEFAULT_IGNORE, DEFAULT_SIGNATURE_NAME
from aivet.rules import ATLAS_SUPPLY_CHAIN_MODEL, Rule

if TYPE_CHECKING:  # imported lazily at run time: `aivet rules` reads RULES without loading YAML
    from aivet.provenance.modelcard import ModelFacts, Problem

CYCLONEDX_SPEC_VERSION = "1.6"
PROPERTY_PREFIX = "aivet:"
VALIDATE_FILES = 250  # file components validated at each end of a longer list (see _sampled)

BOM_FRONT_MATTER_INVALID = Rule(
    "BOM-FRONT-MATTER-INVALID", "Model-card front matter unreadable",
    "The README's YAML front matter (license, base model, datasets) is malformed, too large, uses YAML "
    "aliases (an expansion bomb) or has fields of the wrong type. The BOM leaves those facts out, so "
    "license and lineage cannot be established from it.",
    Severity.LOW, (ATLAS_SUPPLY_CHAIN_MODEL,), ("CWE-20",))
BOM_CONFIG_INVALID = Rule(
    "BOM-CONFIG-INVALID", "config.json unreadable",
    "config.json is not a JSON object, is corrupt or is too large. The BOM has no architecture facts; "
    "a loader that reads the same file may fail or behave unexpectedly.",
    Severity.LOW, (ATLAS_SUPPLY_CHAIN_MODEL,), ("CWE-20",))
BOM_WEIGHTS_UNREADABLE = Rule(
    "BOM-WEIGHTS-UNREADABLE", "Weight header unreadable",
    "A safetensors or GGUF file's header cannot be parsed, so the parameter count is missing or "
    "incomplete. `aivet scan` reports what is wrong with the file.",
    Severity.LOW, (ATLAS_SUPPLY_CHAIN_MODEL,), ("CWE-20",))
BOM_SIGNATURE_UNREADABLE = Rule(
    "BOM-SIGNATURE-UNREADABLE", "Signature bundle unreadable",
    "The signature file exists but is not a model-signing bundle whose payload can be read, so the "
    "BOM records only its file digest, not the signed manifest.",
    Severity.MEDIUM, (ATLAS_SUPPLY_CHAIN_MODEL,), ("CWE-347",))

RULES = (BOM_FRONT_MATTER_INVALID, BOM_CONFIG_INVALID, BOM_WEIGHTS_UNREADABLE, BOM_SIGNATURE_UNREADABLE)
_RULE_FOR_PROBLEM = {"front-matter": BOM_FRONT_MATTER_INVALID, "config": BOM_CONFIG_INVALID,
                     "weights": BOM_WEIGHTS_UNREADABLE, "signature": BOM_SIGNATURE_UNREADABLE}
_URL = re.compile(r"^https?://[^\s<>\"{}|\\^`]+$")


class BomFormat(enum.StrEnum):
    """The BOM formats aivet writes."""

    CYCLONEDX = "cyclonedx"
    SPDX = "spdx"


class BomInvalid(AivetError):
    """aivet produced a BOM its format's schema rejects: a bug, reported rather than written."""


@dataclass(frozen=True)
class FileDigest:
    """One file of the model and its SHA-256."""

    name: str  # POSIX path relative to the model root
    size: int
    sha256: str


@dataclass(frozen=True)
class SignatureFacts:
    """What the signature file says, read without a key (so *unverified*)."""

    path: str  # as the BOM names it: relative to the model root when inside it
    sha256: str  # of the signature file itself
    root_digest: str | None = None  # the signed manifest's subject digest
    method: str | None = None  # "key", "certificate" or "sigstore"
    key_hint: str | None = None
    signed_name: str | None = None
    signed_files: int | None = None
    files_match: bool | None = None  # our digests equal the signed ones (None: not comparable)
    in_model: bool = True  # the signature file lies inside the model directory (and is listed as a file)

    def to_dict(self) -> dict[str, Any]:
        """JSON form for the evidence record."""
        return {k: v for k, v in self.__dict__.items() if v is not None} | {"status": "unverified"}


@dataclass(frozen=True)
class Inventory:
    """Everything a BOM writer needs: files with digests, model facts, signature facts."""

    name: str
    root: Path
    files: tuple[FileDigest, ...]
    facts: ModelFacts
    signature: SignatureFacts | None
    problems: tuple[Problem, ...]

    def content_digest(self) -> str:
        """SHA-256 over the files' raw digests in order, signature excluded.

        For a model signed with the defaults (SHA-256, whole files) this equals
        the signed manifest's root digest, so a BOM can be matched to a signature.
        """
        h = hashlib.sha256()
        sig = self.signature.path if self.signature and self.signature.in_model else None
        for f in self.files:
            if f.name != sig:
                h.update(bytes.fromhex(f.sha256))
        return h.hexdigest()


@dataclass(frozen=True)
class BomResult:
    """A written BOM: its text, parsed document, identity and the evidence about it."""

    format: BomFormat
    text: str
    document: dict[str, Any]
    serial_number: str
    sha256: str
    inventory: Inventory
    evidence: Evidence

    @property
    def findings(self) -> tuple[Finding, ...]:
        return self.evidence.findings

    @property
    def record(self) -> Record:
        return self.evidence.records[0]


def take_inventory(
    root: Path,
    *,
    signature: Path | None = None,
    name: str | None = None,
    limits: Limits = DEFAULT_LIMITS,
    workers: int | None = None,
    progress: hashing.ProgressFn | None = None,
    on_total: Callable[[int], None] | None = None,
    allowed_root: Path | None = None,
) -> Inventory:
    """Walk and hash ``root``, read its metadata and signature (default ``root/model.sig``).

    Raises :class:`~aivet.errors.UsageError` when ``root`` is not a directory
    and :class:`~aivet.errors.ArtifactError` when it cannot be inventoried
    (more than ``limits.max_files`` files, a link leaving it, a special file).
    Unreadable metadata is not an error: it is a :class:`Problem`. A
    ``signature`` given explicitly must exist; the default one may be absent.
    Links may resolve inside ``allowed_root`` (default: the hub cache
    repository when ``root`` is a snapshot, else ``root``).
    """
    from aivet.provenance.modelcard import collect

    root = Path(root)
    allowed = allowed_root_for(root, allowed_root)
    # Links inside the model are followed (each file is listed under its own name); links out are refused.
    entries = hashing.walk(root, DEFAULT_IGNORE, allow_symlinks=True, max_files=limits.max_files,
                           allowed_root=allowed)
    if on_total is not None:
        on_total(sum(e.size for e in entries))
    units = hashing.units_for(entries, None)
    digests = hashing.hash_units(units, "sha256", workers=workers, progress=progress)
    files = tuple(FileDigest(e.name, e.size, d.hex()) for e, d in zip(entries, digests, strict=True))
    facts = collect(root, entries, limits)
    problems = list(facts.problems)
    sig_path = Path(signature) if signature is not None else root / DEFAULT_SIGNATURE_NAME
    sig_facts: SignatureFacts | None = None
    if signature is not None and not sig_path.is_file():
        raise UsageError(f"the signature file {str(signature)!r} does not exist or is not a regular file")
    if signature is None and sig_path.is_symlink() and not hashing.plain_file_within(sig_path, allowed):
        raise ArtifactError(f"{DEFAULT_SIGNATURE_NAME!r} is a symbolic link that leaves the model directory")
    if sig_path.is_file():
        sig_facts, problem = _signature_facts(root, sig_path, files)
        if problem is not None:
            problems.append(problem)
    return Inventory(name or model_name(root), root, files, facts, sig_facts, tuple(problems))


def _signature_facts(root: Path, sig_path: Path, files: Sequence[FileDigest]) -> tuple[SignatureFacts, Problem | None]:
    """Digest the signature file and read its manifest without verifying it."""
    from aivet.provenance.bundle import BundleError, SignatureMissing, read_bundle
    from aivet.provenance.manifest import Manifest
    from aivet.provenance.modelcard import Problem

    listed = {f.name: f.sha256 for f in files}
    try:
        # The link itself, not its target: in a hub snapshot model.sig links into the cache's blobs.
        rel = (sig_path.parent.resolve() / sig_path.name).relative_to(root.resolve()).as_posix()
        in_model = rel in listed
    except (ValueError, OSError):
        rel, in_model = sig_path.name, False  # outside the model: named, never mixed up with its files
    try:
        # Inside the model it was just hashed with the other files; a huge hostile file is not read twice.
        digest = listed[rel] if in_model else hashing.hash_unit(hashing.Unit(_entry_for(sig_path, rel)),
                                                                "sha256").hex()
    except OSError as exc:
        raise EnvironmentFailure(f"cannot read the signature file {str(sig_path)!r}: {exc}") from exc
    try:
        bundle = read_bundle(sig_path)
        manifest = Manifest.from_statement(bundle.statement())
    except SignatureMissing as exc:  # removed between the digest and the read
        raise EnvironmentFailure(str(exc)) from exc
    except (BundleError, ArtifactError) as exc:
        return SignatureFacts(rel, digest, in_model=in_model), Problem("signature", rel, exc.diagnostics())
    method = "sigstore" if bundle.keyless else "certificate" if bundle.certificates else "key"
    match: bool | None = None
    ser = manifest.serialization
    if ser.method == "files" and ser.hash_type == "sha256":
        signed = {r.name: r.digest for r in manifest.resources}
        ours = {name: digest for name, digest in listed.items()
                if not (in_model and name == rel) and not hashing.is_ignored(name, ser.ignore_paths)}
        match = signed == ours
    return SignatureFacts(rel, digest, manifest.root_digest(), method, bundle.key_hint, manifest.model_name,
                          len(manifest.files()), match, in_model), None


def _entry_for(path: Path, name: str) -> hashing.FileEntry:
    st = path.stat()
    return hashing.FileEntry(name, path, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev)


# -- CycloneDX ---------------------------------------------------------------------------------


def _require_cyclonedx() -> None:
    try:
        import cyclonedx  # noqa: F401
    except ImportError as exc:  # a default dependency: only a broken installation lacks it
        raise EnvironmentFailure("writing a CycloneDX BOM needs cyclonedx-python-lib: "
                                 "pip install 'cyclonedx-python-lib[json-validation]>=11'") from exc


def _prop(name: str, value: object) -> Any:
    from cyclonedx.model import Property

    return Property(name=PROPERTY_PREFIX + name, value=str(value))


def _licenses(inv: Inventory) -> list[Any]:
    from cyclonedx.model import XsUri
    from cyclonedx.model.license import DisjunctiveLicense, LicenseAcknowledgement
    from cyclonedx.spdx import fixup_id

    front = inv.facts.front
    url = XsUri(front.license_link) if front.license_link and _URL.match(front.license_link) else None
    declared = LicenseAcknowledgement.DECLARED
    lic = front.license
    if lic and lic.lower() not in ("other", "unknown"):
        spdx_id = fixup_id(lic)
        if spdx_id:
            return [DisjunctiveLicense(id=spdx_id, url=url, acknowledgement=declared)]
        # Hugging Face ids such as "llama3.1" or "gemma" are not SPDX ids: keep them as names.
        return [DisjunctiveLicense(name=lic, url=url, acknowledgement=declared)]
    if front.license_name or url or lic:
        return [DisjunctiveLicense(name=front.license_name or lic or "other", url=url, acknowledgement=declared)]
    return []


def _hub_component(hub_id: str, kind: str, ref: str) -> Any:
    """A component for a Hugging Face model or dataset id (purl and link only when the id is well-formed)."""
    from cyclonedx.model import ExternalReference, ExternalReferenceType, XsUri
    from cyclonedx.model.component import Component, ComponentType
    from packageurl import PackageURL

    from aivet.provenance.modelcard import HUB_ID

    ctype = ComponentType.MACHINE_LEARNING_MODEL if kind == "model" else ComponentType.DATA
    purl = None
    refs = []
    if HUB_ID.match(hub_id):
        namespace, _, name = hub_id.rpartition("/")
        purl = PackageURL(type="huggingface", namespace=namespace or None, name=name) if kind == "model" else None
        path = hub_id if kind == "model" else f"datasets/{hub_id}"
        refs.append(ExternalReference(type=ExternalReferenceType.DISTRIBUTION, url=XsUri(f"https://huggingface.co/{path}")))
    return Component(type=ctype, name=hub_id, bom_ref=ref, purl=purl, external_references=refs)


def _model_card(inv: Inventory, dataset_refs: Sequence[str]) -> dict[str, Any]:
    """The CycloneDX 1.6 ``modelCard`` object (only fields with known values)."""
    facts, cfg = inv.facts, inv.facts.config
    params: dict[str, Any] = {}
    if facts.front.pipeline_tag:
        params["task"] = facts.front.pipeline_tag
    family = cfg.model_type or facts.gguf_architecture
    if family:
        params["architectureFamily"] = family
    if cfg.architectures:
        params["modelArchitecture"] = cfg.architectures[0]
    if dataset_refs:
        params["datasets"] = [{"ref": r} for r in dataset_refs]
    props: list[tuple[str, object]] = []
    if facts.parameters is not None:
        props += [("parameterCount", facts.parameters), ("parameterCountSource", facts.parameters_source)]
    for key, value in (("hiddenSize", cfg.hidden_size), ("layers", cfg.num_layers),
                       ("attentionHeads", cfg.num_heads), ("keyValueHeads", cfg.num_kv_heads),
                       ("intermediateSize", cfg.intermediate_size), ("vocabularySize", cfg.vocab_size),
                       ("contextLength", cfg.context_length), ("dtype", cfg.dtype),
                       ("quantization", cfg.quantization), ("transformersVersion", cfg.transformers_version)):
        if value is not None:
            props.append((key, value))
    props += [("architecture", a) for a in cfg.architectures[1:]]
    card: dict[str, Any] = {}
    if params:
        card["modelParameters"] = params
    if props:
        card["properties"] = [{"name": PROPERTY_PREFIX + k, "value": str(v)} for k, v in props]
    return card


def cyclonedx_document(inv: Inventory, *, tool_version: str | None = None) -> tuple[dict[str, Any], str]:
    """Build the CycloneDX 1.6 document for ``inv``; returns ``(document, serial number URN)``."""
    _require_cyclonedx()
    from cyclonedx.model import ExternalReference, ExternalReferenceType, HashAlgorithm, HashType, XsUri
    from cyclonedx.model.bom import Bom
    from cyclonedx.model.component import Component, ComponentType, Pedigree
    from cyclonedx.output import make_outputter
    from cyclonedx.schema import OutputFormat, SchemaVersion

    from aivet import __version__

    front, sig = inv.facts.front, inv.signature
    props = [_prop("content-root-sha256", inv.content_digest())]
    props += [_prop("language", lang) for lang in front.languages]
    if front.library_name:
        props.append(_prop("library-name", front.library_name))
    if front.base_model_relation:
        props.append(_prop("base-model-relation", front.base_model_relation))
    ext_refs = []
    if sig is not None:
        props += [_prop("signature:file", sig.path), _prop("signature:sha256", sig.sha256),
                  _prop("signature:status", "unverified")]
        if sig.root_digest:
            props.append(_prop("signature:manifest-root-sha256", sig.root_digest))
        if sig.method:
            props.append(_prop("signature:method", sig.method))
        if sig.files_match is not None:
            props.append(_prop("signature:files-match-manifest", str(sig.files_match).lower()))
        ext_refs.append(ExternalReference(
            type=ExternalReferenceType.ATTESTATION, url=XsUri(quote(sig.path)),  # an IRI: no raw spaces
            comment="OpenSSF Model Signing bundle (Sigstore, DSSE); unverified here: check it with `aivet verify`",
            hashes=[HashType(alg=HashAlgorithm.SHA_256, content=sig.sha256)]))
    ancestors = [_hub_component(b, "model", f"base-model:{b}") for b in front.base_models]
    model = Component(
        type=ComponentType.MACHINE_LEARNING_MODEL, name=inv.name, bom_ref="model",
        licenses=_licenses(inv), properties=props, external_references=ext_refs,
        pedigree=Pedigree(ancestors=ancestors) if ancestors else None,
        tags=list(front.tags) or None,
    )
    datasets = [_hub_component(d, "dataset", f"dataset:{d}") for d in front.datasets]
    bom = Bom(components=[model, *datasets])
    bom.metadata.tools.components.add(Component(type=ComponentType.APPLICATION, name="aivet",
                                                version=tool_version or __version__))
    text = make_outputter(bom, OutputFormat.JSON, SchemaVersion.V1_6).output_as_string()
    doc: dict[str, Any] = json.loads(text)
    # cyclonedx-python-lib models neither modelCard nor componentData yet, and is slow with many
    # components: add those and the file components to its output (see _file_components).
    card = _model_card(inv, [f"dataset:{d}" for d in front.datasets])
    for comp in doc.get("components", []):
        if comp.get("bom-ref") == "model":
            if card:
                comp["modelCard"] = card
            comp["components"] = _file_components(inv)
        elif str(comp.get("bom-ref", "")).startswith("dataset:"):
            comp["data"] = [{"type": "dataset", "name": comp["name"]}]
    return doc, str(doc["serialNumber"])


def _file_components(inv: Inventory) -> list[dict[str, Any]]:
    """The model's ``file`` components, in path order, in the JSON form cyclonedx-python-lib writes.

    Written as data rather than through the library: its components keep sorted sets of
    comparison tuples, which takes minutes for a model of 100,000 files (seconds for 3,000).
    """
    sig_name = inv.signature.path if inv.signature is not None and inv.signature.in_model else None
    out = []
    for f in inv.files:
        props = [{"name": PROPERTY_PREFIX + "size", "value": str(f.size)}]
        if f.name == sig_name:
            props.append({"name": PROPERTY_PREFIX + "role", "value": "signature"})
        out.append({"bom-ref": f"file:{f.name}", "hashes": [{"alg": "SHA-256", "content": f.sha256}],
                    "name": f.name, "properties": props, "type": "file"})
    return out


def _sampled(doc: dict[str, Any], keep: int) -> str:
    """The document as JSON with the model's file list cut to its first and last ``keep`` entries.

    Every file component comes from :func:`_file_components` and has the same shape; validating a
    sample keeps schema validation to seconds for models with hundreds of thousands of files.
    """
    copy = dict(doc)
    comps = []
    for comp in doc.get("components", []):
        files = comp.get("components")
        if comp.get("bom-ref") == "model" and isinstance(files, list) and len(files) > 2 * keep:
            comp = {**comp, "components": files[:keep] + files[-keep:]}
        comps.append(comp)
    copy["components"] = comps
    return json.dumps(copy)


def validate_cyclonedx(text: str) -> None:
    """Check a CycloneDX 1.6 JSON text against the schema (offline); :class:`BomInvalid` if it fails."""
    _require_cyclonedx()
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    try:
        error = JsonStrictValidator(SchemaVersion.V1_6).validate_str(text)
    except ImportError as exc:  # the json-validation extra (jsonschema) is missing
        raise EnvironmentFailure("validating a CycloneDX BOM needs jsonschema: "
                                 "pip install 'cyclonedx-python-lib[json-validation]>=11'") from exc
    if error is not None:
        raise BomInvalid(f"the CycloneDX BOM does not validate against the 1.6 schema: {error}")


# -- entry point -------------------------------------------------------------------------------


def build_bom(
    root: Path,
    fmt: BomFormat = BomFormat.CYCLONEDX,
    *,
    signature: Path | None = None,
    name: str | None = None,
    limits: Limits = DEFAULT_LIMITS,
    workers: int | None = None,
    validate: bool = True,
    progress: hashing.ProgressFn | None = None,
    on_total: Callable[[int], None] | None = None,
    allowed_root: Path | None = None,
) -> BomResult:
    """Inventory ``root`` and write its BOM in ``fmt``; the result carries text, identity and evidence.

    ``progress`` and ``on_total`` report hashing progress in bytes (as for
    signing). ``validate`` checks the document against its format's schema before it
    is returned (offline; a failure is :class:`BomInvalid`, a bug in aivet); for a
    CycloneDX BOM of more than ``2 * VALIDATE_FILES`` files a sample of the
    identically shaped file components is validated.
    """
    inv = take_inventory(root, signature=signature, name=name, limits=limits, workers=workers, progress=progress,
                         on_total=on_total, allowed_root=allowed_root)
    if fmt is BomFormat.CYCLONEDX:
        doc, serial = cyclonedx_document(inv)
        text = json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
        if validate:
            validate_cyclonedx(_sampled(doc, VALIDATE_FILES))
        spec = CYCLONEDX_SPEC_VERSION
    else:
        from aivet.provenance.spdx import SPDX_SPEC_VERSION, spdx_document, validate_spdx

        doc, serial = spdx_document(inv)
        text = json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
        if validate:
            validate_spdx(doc)
        spec = SPDX_SPEC_VERSION
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    return BomResult(fmt, text, doc, serial, digest, inv, _evidence(inv, fmt, spec, serial, digest))


def _evidence(inv: Inventory, fmt: BomFormat, spec: str, serial: str, digest: str) -> Evidence:
    """Findings for unreadable sources and the ``bom`` record (documented in docs/bom.md)."""
    subject = model_name(inv.root)  # as `aivet verify` names it, whatever --name the BOM shows
    findings = tuple(
        _RULE_FOR_PROBLEM[p.kind].finding(p.path, p.message, subject=subject) for p in inv.problems
    )
    facts, front = inv.facts, inv.facts.front
    data: dict[str, Any] = {
        "name": inv.name,
        "format": fmt.value,
        "spec_version": spec,
        "serial_number": serial,
        "sha256": digest,
        "files": len(inv.files),
        "total_bytes": sum(f.size for f in inv.files),
        "content_root_sha256": inv.content_digest(),
        "parameter_count": facts.parameters,
        "parameter_count_source": facts.parameters_source,
        "architecture": facts.config.architectures[0] if facts.config.architectures else None,
        "model_type": facts.config.model_type or facts.gguf_architecture,
        "license": front.license,
        "license_name": front.license_name,
        "license_link": front.license_link,
        "base_models": list(front.base_models),
        "datasets": list(front.datasets),
        "signature": inv.signature.to_dict() if inv.signature else None,
    }
    subj = Subject(id=subject, kind="directory", location=str(inv.root))
    return Evidence(subjects=(subj,), findings=findings, records=(Record(kind="bom", subject=subject, data=data),))
