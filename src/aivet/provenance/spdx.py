"""SPDX 3.0.1 document with the AI and Dataset profiles, written with ``spdx-python-model``.

The same inventory as the CycloneDX BOM (:mod:`aivet.provenance.bom`): the
model is an ``ai_AIPackage`` that ``contains`` one ``software_File`` per file
(each ``verifiedUsing`` a SHA-256 ``Hash``), is ``trainedOn`` its datasets
(``dataset_DatasetPackage``), is a ``descendantOf`` its base models and
``hasDeclaredLicense`` the license of its model card. The signature and the
content root digest are recorded as ``Annotation``s (unverified).

``spdx-python-model`` is an optional dependency (``aivet[spdx]``), imported
lazily. Validation is offline: the bindings check every property's type
while the document is built and the required properties while it is
serialised; the JSON is then read back with the same bindings, and, when
the official JSON schema is shipped as package data
(:data:`SCHEMA_RESOURCE`), checked against it with ``jsonschema``.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from typing import TYPE_CHECKING, Any

from aivet.errors import MissingExtraError
from aivet.provenance.modelcard import HUB_ID

if TYPE_CHECKING:
    from aivet.provenance.bom import Inventory

SPDX_SPEC_VERSION = "3.0.1"
SCHEMA_RESOURCE = ("aivet.data.spdx", "spdx-json-schema-3.0.1.json")  # (package, file) when shipped
_LICENSE_REF = re.compile(r"[^A-Za-z0-9.-]+")


def _model() -> Any:
    try:
        from spdx_python_model import v3_0_1
    except ImportError as exc:
        raise MissingExtraError("spdx_python_model", "spdx", "writing an SPDX 3 document") from exc
    return v3_0_1


def _license_expression(lic: str | None, name: str | None) -> str | None:
    """An SPDX license expression for a model-card license (``LicenseRef-`` for non-SPDX ids)."""
    from cyclonedx.spdx import fixup_id  # the SPDX license list ships with cyclonedx-python-lib

    if lic and lic.lower() not in ("other", "unknown"):
        spdx_id = fixup_id(lic)
        if spdx_id:
            return spdx_id
    text = name or lic
    if not text:
        return None
    ref = _LICENSE_REF.sub("-", text).strip("-")[:200]
    return f"LicenseRef-{ref}" if ref else None


def spdx_document(inv: Inventory, *, tool_version: str | None = None) -> tuple[dict[str, Any], str]:
    """Build the SPDX 3.0.1 JSON-LD document for ``inv``; returns ``(document, document spdxId)``."""
    m = _model()
    from aivet import __version__

    base = f"https://spdx.org/spdxdocs/aivet-{_slug(inv.name)}-{uuid.uuid4()}"
    counter = iter(range(1, 10**9))

    def new_id(kind: str) -> str:
        return f"{base}#SPDXRef-{kind}-{next(counter)}"

    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    ci = m.CreationInfo(specVersion=SPDX_SPEC_VERSION, created=now)
    agent = m.SoftwareAgent(spdxId=new_id("Agent"), name="aivet", creationInfo=ci)
    tool = m.Tool(spdxId=new_id("Tool"), name=f"aivet {tool_version or __version__}", creationInfo=ci)
    ci.createdBy = [agent]
    ci.createdUsing = [tool]
    elements: list[Any] = [agent, tool]

    facts, front, cfg = inv.facts, inv.facts.front, inv.facts.config
    model = m.ai_AIPackage(spdxId=new_id("Model"), name=inv.name, creationInfo=ci,
                           software_primaryPurpose=m.software_SoftwarePurpose.model,
                           ai_autonomyType=m.PresenceType.noAssertion)
    type_of_model = [t for t in (cfg.model_type or facts.gguf_architecture, *cfg.architectures) if t]
    if type_of_model:
        model.ai_typeOfModel = type_of_model
    if front.pipeline_tag:
        model.ai_domain = [front.pipeline_tag]
    hyper: list[tuple[str, object]] = []
    if facts.parameters is not None:
        hyper += [("parameterCount", facts.parameters), ("parameterCountSource", facts.parameters_source)]
    for key, value in (("hiddenSize", cfg.hidden_size), ("layers", cfg.num_layers),
                       ("attentionHeads", cfg.num_heads), ("keyValueHeads", cfg.num_kv_heads),
                       ("intermediateSize", cfg.intermediate_size), ("vocabularySize", cfg.vocab_size),
                       ("contextLength", cfg.context_length), ("dtype", cfg.dtype),
                       ("quantization", cfg.quantization)):
        if value is not None:
            hyper.append((key, value))
    if hyper:
        model.ai_hyperparameter = [m.DictionaryEntry(key=k, value=str(v)) for k, v in hyper]
    elements.append(model)

    files = []
    for f in inv.files:
        fe = m.software_File(spdxId=new_id("File"), name=f.name, creationInfo=ci,
                             software_fileKind=m.software_FileKindType.file,
                             verifiedUsing=[m.Hash(algorithm=m.HashAlgorithm.sha256, hashValue=f.sha256)])
        files.append(fe)
    elements += files
    relationships: list[Any] = []

    def relate(src: Any, rtype: Any, targets: list[Any]) -> None:
        if targets:
            relationships.append(m.Relationship(spdxId=new_id("Relationship"), creationInfo=ci, from_=src,
                                                relationshipType=rtype, to=targets))

    relate(model, m.RelationshipType.contains, files)
    datasets = []
    for d in front.datasets:
        ds = m.dataset_DatasetPackage(spdxId=new_id("Dataset"), name=d, creationInfo=ci,
                                      software_primaryPurpose=m.software_SoftwarePurpose.data,
                                      dataset_datasetType=[m.dataset_DatasetType.noAssertion])
        if HUB_ID.match(d):
            ds.software_downloadLocation = f"https://huggingface.co/datasets/{d}"
        datasets.append(ds)
    elements += datasets
    relate(model, m.RelationshipType.trainedOn, datasets)
    bases = []
    for b in front.base_models:
        bp = m.ai_AIPackage(spdxId=new_id("BaseModel"), name=b, creationInfo=ci,
                            software_primaryPurpose=m.software_SoftwarePurpose.model)
        if HUB_ID.match(b):
            bp.software_downloadLocation = f"https://huggingface.co/{b}"
            namespace, _, name = b.rpartition("/")
            bp.software_packageUrl = f"pkg:huggingface/{namespace + '/' if namespace else ''}{name}"
        bases.append(bp)
    elements += bases
    relate(model, m.RelationshipType.descendantOf, bases)
    expression = _license_expression(front.license, front.license_name)
    if expression:
        lic = m.simplelicensing_LicenseExpression(spdxId=new_id("License"), creationInfo=ci,
                                                  simplelicensing_licenseExpression=expression)
        elements.append(lic)
        relate(model, m.RelationshipType.hasDeclaredLicense, [lic])
    elements += relationships

    notes = [f"aivet: content root SHA-256 (over the files' digests, signature excluded): {inv.content_digest()}"]
    sig = inv.signature
    if sig is not None:
        text = f"aivet: signature {sig.path} SHA-256 {sig.sha256} (unverified)"
        if sig.root_digest:
            text += f"; signed manifest root SHA-256 {sig.root_digest}"
        if sig.files_match is not None:
            text += f"; files match the signed manifest: {str(sig.files_match).lower()}"
        notes.append(text)
    for note in notes:
        elements.append(m.Annotation(spdxId=new_id("Annotation"), creationInfo=ci, subject=model,
                                     annotationType=m.AnnotationType.other, statement=note))

    doc = m.SpdxDocument(spdxId=base, name=f"AI BOM of {inv.name}", creationInfo=ci, rootElement=[model],
                         element=elements,
                         profileConformance=[m.ProfileIdentifierType.core, m.ProfileIdentifierType.software,
                                             m.ProfileIdentifierType.ai, m.ProfileIdentifierType.dataset,
                                             m.ProfileIdentifierType.simpleLicensing])
    objset = m.SHACLObjectSet([doc, *elements])
    try:
        data: dict[str, Any] = m.JSONLDSerializer().serialize_data(objset)
    except ValueError as exc:  # a required property is missing: a bug in this module
        from aivet.provenance.bom import BomInvalid

        raise BomInvalid(f"the SPDX document is incomplete: {exc}") from exc
    return data, base


def validate_spdx(document: dict[str, Any]) -> None:
    """Check an SPDX 3.0.1 JSON-LD document offline; :class:`~aivet.provenance.bom.BomInvalid` if it fails.

    The document is decoded with the SPDX bindings (types, enumerations,
    references) and, when the official JSON schema is shipped, validated
    against it.
    """
    from aivet.provenance.bom import BomInvalid

    m = _model()
    try:
        objset = m.SHACLObjectSet()
        m.JSONLDDeserializer().deserialize_data(json.loads(json.dumps(document)), objset)
    except (ValueError, TypeError, KeyError) as exc:
        raise BomInvalid(f"the SPDX document does not read back with the SPDX 3.0.1 bindings: {exc}") from exc
    if not any(isinstance(o, m.SpdxDocument) for o in objset.foreach()):
        raise BomInvalid("the SPDX document has no SpdxDocument element")
    schema = load_schema()
    if schema is None:
        return
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema)
    error = jsonschema.exceptions.best_match(validator.iter_errors(document))
    if error is not None:
        raise BomInvalid(f"the SPDX document does not validate against the SPDX 3.0.1 schema: {error.message}")


def load_schema() -> dict[str, Any] | None:
    """The shipped SPDX 3.0.1 JSON schema, or None when it is not shipped with this installation."""
    from importlib import resources

    package, name = SCHEMA_RESOURCE
    try:
        text = resources.files(package).joinpath(name).read_text(encoding="utf-8")
    except (ModuleNotFoundError, FileNotFoundError, OSError):
        return None
    schema: dict[str, Any] = json.loads(text)
    return schema


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-")[:64] or "model"
