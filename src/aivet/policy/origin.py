"""Origin facts: who published a model, which family it belongs to, and where its publisher is based.

Every fact carries its source ("hub repo id org", "config.json: model_type
'qwen2'", "license: Qwen License Agreement (Alibaba Cloud, China)"). The tool
reports; the organisation's policy weighs. Jurisdiction is never guessed: it
comes from a publisher or license whose home country is a public fact
(:data:`aivet.policy.license_data.KNOWN_PUBLISHERS`, the catalogue's
licensors), and stays unknown otherwise.

Family comes from :mod:`aivet.provenance.lineage` (``parse_config`` and
``infer_family``); base models from the README front matter, parsed by
:func:`aivet.provenance.modelcard.read_front_matter`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aivet.errors import ArtifactError
from aivet.evidence import Record
from aivet.formats import FormatError, LimitExceeded
from aivet.limits import DEFAULT_LIMITS, Limits
from aivet.policy import license_data as data
from aivet.policy.licenses import LicenseInfo, identify_license
from aivet.provenance.hashing import plain_file_within
from aivet.provenance.lineage import infer_family, parse_config
from aivet.provenance.modelcard import read_front_matter

__all__ = ["Fact", "OriginFacts", "origin_facts"]

RECORD_KIND = "origin"
_ORG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")
# Family names spelled in base-model ids, used only when config.json names none.
_NAME_FAMILIES = (("llama", "llama"), ("qwen", "qwen"), ("mistral", "mistral"), ("mixtral", "mistral"),
                  ("gemma", "gemma"), ("deepseek", "deepseek"), ("phi-", "phi"), ("falcon", "falcon"))


@dataclass(frozen=True)
class Fact:
    """One statement about the model's origin and where it was read."""

    value: str
    source: str

    def to_dict(self) -> dict[str, str]:
        return {"value": self.value, "source": self.source}


@dataclass(frozen=True)
class OriginFacts:
    """What the files and the repository id say about where a model comes from."""

    publisher: Fact | None
    family: Fact | None
    jurisdiction: Fact | None
    base_models: tuple[Fact, ...]
    licensor: Fact | None = None  # who grants the license (the upstream publisher for fine-tunes)
    notes: tuple[str, ...] = field(default=())  # sources that could not be read, and why

    def to_record(self, subject: str) -> Record:
        """The Evidence record (kind ``"origin"``) for ``subject``."""
        def one(f: Fact | None) -> dict[str, str] | None:
            return f.to_dict() if f else None

        body: dict[str, Any] = {
            "publisher": one(self.publisher), "family": one(self.family), "jurisdiction": one(self.jurisdiction),
            "base_models": [f.to_dict() for f in self.base_models], "licensor": one(self.licensor),
            "notes": list(self.notes),
        }
        return Record(RECORD_KIND, subject, body)


# Hub cache directory prefix -> the prefix of the typed repo id ("datasets/org/name").
_CACHE_KINDS = {"models--": "", "datasets--": "datasets/", "spaces--": "spaces/"}


def _repo_id_from_path(model_dir: Path) -> str | None:
    """The repo id from a Hugging Face cache path (``models--org--name/snapshots/<rev>``), if it is one.

    Datasets and Spaces keep their type: ``datasets--org--name`` gives ``datasets/org/name``.
    """
    for part in (model_dir, *model_dir.parents):
        name = part.name
        for prefix, typed in _CACHE_KINDS.items():
            if name.startswith(prefix):
                pieces = name[len(prefix):].split("--")
                if len(pieces) == 2 and all(_ORG.match(p) for p in pieces):
                    return typed + "/".join(pieces)
    return None


def _org(repo_id: str | None) -> str | None:
    """The organisation in a hub repo id: ``org`` in ``org/name``, ``datasets/org/name`` or ``spaces/org/name``."""
    if not repo_id:
        return None
    for typed in ("datasets/", "spaces/"):
        if repo_id.startswith(typed):
            repo_id = repo_id[len(typed):]
            break
    org, sep, _ = repo_id.partition("/")
    return org if sep and _ORG.match(org) else None


def _family_from_names(names: tuple[str, ...]) -> tuple[str, str] | None:
    for name in names:
        low = name.lower().rsplit("/", 1)[-1]
        for needle, family in _NAME_FAMILIES:
            if needle in low:
                return family, name
    return None


def origin_facts(model_dir: Path, *, repo_id: str | None = None, license: LicenseInfo | None = None,
                 limits: Limits = DEFAULT_LIMITS, allowed_root: Path | None = None) -> OriginFacts:
    """Gather origin facts for the model in ``model_dir``; never raises for the directory's content.

    ``repo_id`` is the hub id (``org/name``) when known; for a Hugging Face
    cache path it is read from the path. ``license`` is the identified license
    (identified here when not given). README and config.json are read only
    when they resolve inside ``allowed_root`` (default ``model_dir``; the hub
    cache repository for a snapshot).
    """
    model_dir = Path(model_dir)
    allowed = Path(allowed_root) if allowed_root is not None else model_dir
    notes: list[str] = []
    repo_source = "hub repo id org"
    if repo_id is None:
        repo_id = _repo_id_from_path(model_dir)
        repo_source = "hub cache path org"

    base_models: tuple[Fact, ...] = ()
    readme = next((p for p in _listdir(model_dir) if p.name.lower() == "readme.md"), None)
    if readme is not None and plain_file_within(readme, allowed):
        try:
            fm = read_front_matter(readme, limits)
            base_models = tuple(Fact(b, "README front matter: base_model") for b in fm.base_models)
            if fm.salvaged:
                notes.append(f"README front matter: {fm.salvaged}; base_model read from its own entry")
        except ArtifactError as exc:
            notes.append(f"README front matter unreadable: {exc}")

    family: Fact | None = None
    name_or_path: str | None = None
    config = model_dir / "config.json"
    if plain_file_within(config, allowed):
        try:
            with open(config, "rb") as fh:
                raw = fh.read(limits.max_json_bytes + 1)
            if len(raw) > limits.max_json_bytes:
                raise LimitExceeded("max_json_bytes", "config.json is too large", limits.max_json_bytes)
            cfg = parse_config(raw)
            name_or_path = cfg.name_or_path
            fam, reasons, _consistent = infer_family(cfg)
            if fam:
                family = Fact(fam, "config.json: " + (reasons[0] if reasons else "model_type"))
        except (OSError, FormatError, LimitExceeded) as exc:
            notes.append(f"config.json unreadable: {exc}")
    if family is None:
        named = _family_from_names(tuple(f.value for f in base_models))
        if named:
            family = Fact(named[0], f"README front matter: base_model {named[1]!r}")

    publisher: Fact | None = None
    jurisdiction: Fact | None = None
    org_source: tuple[str, str] | None = None
    if (org := _org(repo_id)) is not None:
        org_source = (org, repo_source)
    elif name_or_path and name_or_path.count("/") == 1 and _ORG.match(name_or_path.split("/", 1)[0]) \
            and not name_or_path.startswith((".", "/")):
        org_source = (name_or_path.split("/", 1)[0], "config.json: _name_or_path org")
    if org_source:
        org, src = org_source
        known = data.KNOWN_PUBLISHERS.get(org.lower())
        if known:
            publisher = Fact(known[0], f"{src} {org!r}")
            jurisdiction = Fact(known[1], f"{src} {org!r} ({known[0]}, {known[1]})")
        else:
            publisher = Fact(org, f"{src} (declared by the repository, not verified)")

    if license is None:
        license = identify_license(model_dir, limits=limits, allowed_root=allowed).license
    licensor: Fact | None = None
    entry = data.CATALOGUE.get(license.id)
    if entry is not None and entry.publisher:
        where = f", {entry.jurisdiction}" if entry.jurisdiction else ""
        licensor = Fact(entry.publisher, f"license: {entry.name} ({entry.publisher}{where})")
        if jurisdiction is None and entry.jurisdiction:
            jurisdiction = Fact(entry.jurisdiction, f"license: {entry.name} ({entry.publisher}, {entry.jurisdiction})")
    return OriginFacts(publisher, family, jurisdiction, base_models, licensor, tuple(notes))


def _listdir(model_dir: Path) -> list[Path]:
    try:
        return sorted(model_dir.iterdir())
    except OSError:
        return []
