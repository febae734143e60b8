"""Which license a model is under, what it obliges the deployer to do, and where it clashes with the intended use.

Sources, all read without executing anything and each bounded:

* the README's YAML front matter (``license``, ``license_name``,
  ``license_link``: the Hugging Face model-card fields), parsed by
  :func:`aivet.provenance.modelcard.read_front_matter`;
* license files at the top of the model directory (``LICENSE*``,
  ``LICENCE*``, ``COPYING*``, ``LICENSE-MODEL``; ``NOTICE``; ``USE_POLICY.md``),
  of which at most ``limits.max_license_file_bytes`` are read.

Texts are normalised (case, punctuation, whitespace, bullets, copyright
lines) and matched against :data:`aivet.policy.license_data.FINGERPRINTS`:
an anchor phrase names the license, its key clauses must all be there, and
short permissive texts are also compared with the canonical text over word
shingles. A text that names a license but lacks a key clause (a Llama license
without its 700-million-user clause, an MIT text with a non-commercial rider)
is *altered*: it is reported as ``other``, never as the original.

The tool reports facts and obligations; the organisation's policy decides.
Nothing here is legal advice.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aivet.errors import ArtifactError
from aivet.evidence import Record
from aivet.limits import DEFAULT_LIMITS, Limits
from aivet.policy import license_data as data
from aivet.provenance.hashing import plain_file_within
from aivet.provenance.modelcard import read_front_matter

__all__ = [
    "Conflict",
    "IntendedUse",
    "LicenseInfo",
    "LicenseReport",
    "LicenseSource",
    "Obligation",
    "TextMatch",
    "conflicts",
    "identify_license",
    "license_info",
    "match_text",
    "normalise",
    "resolve_card_license",
]

RECORD_KIND = "license"
MAX_LICENSE_FILES = 16  # a model repo has a handful; more is noise or a trap
SHINGLE = 4  # words per shingle: long enough to keep order, short enough to survive reflowed lines
MIN_CANONICAL_COVER = 0.9  # share of the canonical text's shingles a faithful copy keeps
MAX_EXTRA_SHARE = 0.2  # share of a copy's shingles that may be absent from the canonical text (titles, years)
_AMBIGUOUS = {"bsd", "gpl", "lgpl", "cc", "openrail"}  # HF family ids: the text names the member
_EU = {"eu", "european union", "at", "be", "bg", "hr", "cy", "cz", "dk", "ee", "fi", "fr", "de", "gr", "hu", "ie",
       "it", "lv", "lt", "lu", "mt", "nl", "pl", "pt", "ro", "sk", "si", "es", "se"}
# Phrases that, added to a permissive text, restrict what the original allows.
_RIDERS = re.compile(r"\b(non commercial|noncommercial|not for commercial|research purposes only|"
                     r"research use only|no commercial use|commercial use is prohibited)\b")
_LICENSE_FILE = re.compile(r"^(licen[cs]e|copying)([-_. ].*)?$", re.IGNORECASE)
_NOTICE_FILE = re.compile(r"^notice([-_.].*)?$", re.IGNORECASE)
_POLICY_FILE = re.compile(r"^(use[-_ ]?policy|acceptable[-_ ]use[-_ ]policy|prohibited[-_ ]use[-_ ]policy)"
                          r"([-_.].*)?$", re.IGNORECASE)
# Use cases that commonly fall under the restricted-use lists of RAIL, Gemma, DeepSeek and Llama policies.
_SENSITIVE_USES = ("military", "weapon", "surveillance", "law enforcement", "biometric", "medical", "legal advice",
                   "credit", "employment", "hiring", "immigration", "critical infrastructure", "election")


@dataclass(frozen=True)
class Obligation:
    """One duty the license puts on whoever uses or passes on the model, in plain words."""

    kind: str  # see the kinds in aivet.policy.license_data
    text: str


@dataclass(frozen=True)
class IntendedUse:
    """What the organisation means to do with the model, as the policy declares it."""

    commercial: bool = True
    internal_only: bool = False
    redistribution: bool = False
    fine_tune_release: bool = False
    monthly_users: int | None = None
    regions: tuple[str, ...] = ()  # ISO country codes or "EU" where the model is deployed or the deployer sits
    use_case: str = ""


@dataclass(frozen=True)
class LicenseInfo:
    """What aivet knows about one license."""

    id: str  # our stable id: "llama3.1", "apache-2.0", "gemma", "other", "unknown"
    name: str
    spdx: str | None  # SPDX id, or a LicenseRef- for licenses outside the SPDX list
    family: str
    commercial_use: bool | None  # None: cannot be told
    allows_derivatives: bool | None
    monthly_user_cap: int | None
    obligations: tuple[Obligation, ...]
    osi_approved: bool

    def to_dict(self) -> dict[str, Any]:
        """The JSON form used in the license record."""
        return {"id": self.id, "name": self.name, "spdx": self.spdx, "family": self.family,
                "commercial_use": self.commercial_use, "allows_derivatives": self.allows_derivatives,
                "monthly_user_cap": self.monthly_user_cap, "osi_approved": self.osi_approved,
                "obligations": [{"kind": o.kind, "text": o.text} for o in self.obligations]}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> LicenseInfo:
        """Inverse of :meth:`to_dict`."""
        cap = d.get("monthly_user_cap")
        return cls(str(d["id"]), str(d["name"]), d.get("spdx"), str(d["family"]), d.get("commercial_use"),
                   d.get("allows_derivatives"), int(cap) if cap is not None else None,
                   tuple(Obligation(str(o["kind"]), str(o["text"])) for o in d.get("obligations", ())),
                   bool(d.get("osi_approved", False)))


@dataclass(frozen=True)
class Conflict:
    """A clash between the license and the intended use."""

    use: str  # "commercial" | "redistribution" | "fine-tune-release" | "monthly-users" | "region" | "use-case" ...
    message: str
    severity: str  # "deny": the use is not allowed; "review": needs a lawyer's look


@dataclass(frozen=True)
class LicenseSource:
    """One place that said something about the license."""

    kind: str  # "front-matter" | "license-file" | "notice" | "use-policy"
    path: str  # relative to the model directory
    value: str  # what it said: an HF id, our id, or "" when nothing could be read
    confidence: float  # 0..1
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "path": self.path, "value": self.value, "confidence": round(self.confidence, 3),
                "detail": self.detail}


@dataclass(frozen=True)
class TextMatch:
    """The outcome of matching one license text."""

    license_id: str | None  # the license the text names (even when altered)
    confidence: float
    altered: bool
    missing: tuple[str, ...] = ()  # key clauses absent, riders added
    similarity: float | None = None  # canonical-text shingle cover, where a canonical text is shipped
    detail: str = ""


@dataclass(frozen=True)
class LicenseReport:
    """The license aivet settled on, every source it read, and where they disagree."""

    license: LicenseInfo
    sources: tuple[LicenseSource, ...]
    disagreement: str | None
    altered: bool

    def to_record(self, subject: str) -> Record:
        """The Evidence record (kind ``"license"``) for ``subject``."""
        return Record(RECORD_KIND, subject, {
            "license": self.license.to_dict(),
            "sources": [s.to_dict() for s in self.sources],
            "disagreement": self.disagreement,
            "altered": self.altered,
            "hf_license_list": data.HF_LIST_VERSION,
        })

    @classmethod
    def from_record(cls, record: Record) -> LicenseReport:
        """Rebuild a report from its Evidence record (for policy, which reads only Evidence)."""
        d: Mapping[str, Any] = record.to_dict()["data"]  # type: ignore[assignment,unused-ignore]
        sources = tuple(LicenseSource(str(s["kind"]), str(s["path"]), str(s["value"]), float(s["confidence"]),
                                      str(s.get("detail", ""))) for s in d.get("sources", ()))
        return cls(LicenseInfo.from_dict(d["license"]), sources, d.get("disagreement"), bool(d.get("altered")))


# -- catalogue -----------------------------------------------------------------------------------


def license_info(license_id: str) -> LicenseInfo:
    """The catalogue entry for one of our ids (``KeyError`` for an id we do not know)."""
    e = data.CATALOGUE[license_id]
    return LicenseInfo(e.id, e.name, e.spdx, e.family, e.commercial_use, e.allows_derivatives, e.monthly_user_cap,
                       tuple(Obligation(k, t) for k, t in e.obligations), e.osi_approved)


def _altered_info(original: LicenseInfo, missing: tuple[str, ...]) -> LicenseInfo:
    what = "; ".join(missing) or "text differs"
    return LicenseInfo(
        "other", f"Modified {original.name}", None, "other", None, None, original.monthly_user_cap,
        (Obligation(data.REVIEW, f"The license text resembles the {original.name} but differs ({what}): read it; "
                                 "the original's terms cannot be assumed."),),
        False)


def resolve_card_license(license: str | None, name: str | None = None,
                         link: str | None = None) -> tuple[str | None, float, str]:
    """``(our id, confidence, detail)`` for model-card ``license`` / ``license_name`` / ``license_link`` values."""
    lic = (license or "").strip().lower()
    if not lic:
        return None, 0.0, "no license field"
    if lic != "other":
        found = data.HF_IDS.get(lic)
        if found is None:
            return "other", 0.4, f"license {license!r} is not a Hugging Face license id"
        conf = 0.6 if found in _AMBIGUOUS else 1.0
        return found, conf, "family id: the license text names the variant" if found in _AMBIGUOUS else ""
    key = (name or "").strip().lower()
    if key in data.HF_IDS:
        return data.HF_IDS[key], 0.9, f"license: other, license_name: {name}"
    low_link = (link or "").strip().lower()
    for hint, lid in data.LINK_HINTS:
        if hint in low_link:
            return lid, 0.8, f"license: other, license_link: {link}"
    return "other", 0.5, f"license: other, license_name: {name or '-'}"


# -- text matching ---------------------------------------------------------------------------------

_COPYRIGHT_LINE = re.compile(r"^[ \t>*#-]*(copyright\b|\(c\)|©|all rights reserved).*$", re.IGNORECASE | re.MULTILINE)
_QUOTES = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u2013": "-", "\u2014": "-"})


def normalise(text: str) -> str:
    """Lower-case words separated by single spaces: punctuation, bullets and copyright/holder lines dropped.

    ``++`` (as in "Open RAIL++-M") becomes the word ``plusplus`` so that it survives.
    """
    text = _COPYRIGHT_LINE.sub(" ", text.translate(_QUOTES))
    text = text.lower().replace("++", " plusplus ")
    return " ".join(re.findall(r"[a-z0-9]+", text))


def _has(phrase: str, head: str, norm: str | None = None) -> bool:
    """Whether the first part of ``phrase`` is in ``head`` and any ``&&`` parts are in ``norm`` (default ``head``)."""
    first, *rest = (p.strip() for p in phrase.split("&&"))
    whole = f" {norm if norm is not None else head} "
    return f" {first} " in f" {head} " and all(f" {p} " in whole for p in rest)


def _shingles(norm: str) -> set[int]:
    words = norm.split()
    return {hash(" ".join(words[i:i + SHINGLE])) for i in range(max(0, len(words) - SHINGLE + 1))}


def match_text(text: str) -> TextMatch:
    """Match one license text against the fingerprints; never raises for any string."""
    norm = normalise(text)
    head = " ".join(norm.split()[:data.HEAD_WORDS])
    for fp in data.FINGERPRINTS:
        if not any(_has(anchor, head, norm) for anchor in fp.anchors):
            continue
        info = license_info(fp.license_id)
        missing = [what for pattern, what in fp.required if not re.search(rf"\b{pattern}\b", norm)]
        similarity: float | None = None
        if fp.canonical:
            canon, ours = _shingles(normalise(fp.canonical)), _shingles(norm)
            similarity = len(canon & ours) / len(canon) if canon else 0.0
            extra = len(ours - canon) / len(ours) if ours else 1.0
            if similarity < MIN_CANONICAL_COVER:
                missing.append(f"only {similarity:.0%} of the canonical text is present")
            if extra > MAX_EXTRA_SHARE:
                missing.append(f"{extra:.0%} of the text is not in the canonical {info.name}")
        if info.family == "permissive" and (rider := _RIDERS.search(norm)):
            missing.append(f"an added restriction ({rider.group(0)!r}) the {info.name} does not have")
        if missing:
            return TextMatch(fp.license_id, 0.5, True, tuple(missing), similarity,
                             f"resembles the {info.name} but lacks or changes: {'; '.join(missing)}")
        published = data.PUBLISHED_TEXT_SHA256.get(fp.license_id)
        if published is not None:
            if hashlib.sha256(norm.encode()).hexdigest() in published:
                return TextMatch(fp.license_id, 1.0, False, (), similarity,
                                 f"matches the published {info.name} word for word")
            return TextMatch(fp.license_id, 0.8, False, (), similarity,
                             f"has every key clause of the {info.name} but its wording differs from the "
                             "published text: compare the two before relying on it")
        confidence = similarity if similarity is not None else 0.95
        return TextMatch(fp.license_id, confidence, False, (), similarity, f"matches the {info.name}")
    return TextMatch(None, 0.0, False, (), None, "no known license text recognised")


def _match_notice(text: str) -> str | None:
    head = " ".join(normalise(text).split()[:data.HEAD_WORDS])
    for fp in data.FINGERPRINTS:
        if fp.license_id in data.CATALOGUE and not fp.canonical and any(_has(a, head) for a in fp.anchors):
            return fp.license_id
    return None


def _match_policy(text: str) -> str | None:
    head = " ".join(normalise(text).split()[:data.HEAD_WORDS])
    return next((lid for phrase, lid in data.POLICY_FINGERPRINTS if _has(phrase, head)), None)


# -- model directory -------------------------------------------------------------------------------


def _candidate_files(model_dir: Path, link: str | None) -> list[tuple[str, Path]]:
    """``(kind, path)`` for the license-bearing files, model licenses first, code licenses last."""
    try:
        entries = sorted(model_dir.iterdir(), key=lambda p: p.name)
    except OSError:
        return []
    found: list[tuple[int, str, Path]] = []
    names = {p.name for p in entries}
    if link and "://" not in link and link in names:
        found.append((-1, "license-file", model_dir / link))
    for p in entries:
        if any(p == f[2] for f in found):
            continue
        low = p.name.lower()
        if _LICENSE_FILE.match(p.name):
            rank = 0 if "model" in low else 2 if "code" in low else 1
            found.append((rank, "license-file", p))
        elif _NOTICE_FILE.match(p.name):
            found.append((3, "notice", p))
        elif _POLICY_FILE.match(p.name):
            found.append((4, "use-policy", p))
    found.sort(key=lambda f: (f[0], f[2].name))
    return [(kind, path) for _, kind, path in found[:MAX_LICENSE_FILES]]


def _read_prefix(path: Path, root: Path, limit: int) -> tuple[str | None, str]:
    """Up to ``limit`` bytes of a regular file inside ``root``, decoded; ``(None, why)`` when unreadable."""
    if path.is_symlink() and not _plain_file_inside(path, root):
        return None, "symlink out of the model directory: not read"
    if not _plain_file_inside(path, root):
        return None, "not a regular file"
    try:
        with open(path, "rb") as fh:
            raw = fh.read(limit + 1)
    except OSError as exc:
        return None, f"cannot read: {exc}"
    note = ""
    if len(raw) > limit:
        raw = raw[:limit]
        note = f"only the first {limit} bytes were read (limit max_license_file_bytes)"
    return raw.decode("utf-8", "replace"), note


def _compatible(card: str, text: str) -> bool:
    if card == text or card == "other":
        return True
    if card in _AMBIGUOUS:
        family = license_info(text).family
        return text.startswith(card) or (card == "openrail" and family == "openrail") or \
            (card == "cc" and family == "creative-commons")
    return card == "bsd" and text.startswith("bsd")


def identify_license(model_dir: Path, *, limits: Limits = DEFAULT_LIMITS,
                     allowed_root: Path | None = None) -> LicenseReport:
    """Identify the license of the model in ``model_dir`` from its card and license files.

    Never raises for the directory's content: unreadable or hostile files
    become sources with confidence 0 and a detail saying why. A license file
    outweighs the card (it is the text that binds); an altered license text
    makes the result ``other`` with ``altered=True``. Files are read only when
    they resolve inside ``allowed_root`` (default ``model_dir``; the hub cache
    repository for a snapshot, whose files are links into its blobs).
    """
    model_dir = Path(model_dir)
    allowed = Path(allowed_root) if allowed_root is not None else model_dir
    sources: list[LicenseSource] = []
    card_id: str | None = None
    link: str | None = None
    readme = next((p for p in sorted(_safe_listdir(model_dir)) if p.name.lower() == "readme.md"), None)
    if readme is not None and not _plain_file_inside(readme, allowed):
        sources.append(LicenseSource("front-matter", readme.name, "", 0.0,
                                     "not a regular file inside the model directory: not read"))
    elif readme is not None:
        try:
            fm = read_front_matter(readme, limits)
        except ArtifactError as exc:
            sources.append(LicenseSource("front-matter", readme.name, "", 0.0, f"unreadable: {exc}"))
        else:
            link = fm.license_link
            card_id, conf, detail = resolve_card_license(fm.license, fm.license_name, fm.license_link)
            if card_id is not None:
                value = fm.license or ""
                if fm.license_name:
                    value += f" ({fm.license_name})"
                if fm.salvaged:
                    detail = f"{detail}; read from its own entry: {fm.salvaged}".lstrip("; ")
                sources.append(LicenseSource("front-matter", readme.name, value, conf,
                                             f"{detail}; resolved to {card_id}".lstrip("; ")))

    text_id: str | None = None
    text_src: str | None = None
    altered: TextMatch | None = None
    altered_src = ""
    unrecognised = False
    for kind, path in _candidate_files(model_dir, link):
        text, note = _read_prefix(path, allowed, limits.max_license_file_bytes)
        if text is None:
            sources.append(LicenseSource(kind, path.name, "", 0.0, note))
            continue
        if kind == "use-policy":
            pid = _match_policy(text)
            sources.append(LicenseSource(kind, path.name, pid or "", 0.8 if pid else 0.0,
                                         "; ".join(x for x in (f"acceptable use policy of {pid}" if pid else
                                                               "not a known use policy", note) if x)))
            continue
        if kind == "notice":
            nid = _match_notice(text)
            sources.append(LicenseSource(kind, path.name, nid or "", 0.5 if nid else 0.0,
                                         "; ".join(x for x in ("names " + nid if nid else "names no known license",
                                                               note) if x)))
            continue
        m = match_text(text)
        detail = "; ".join(x for x in (m.detail, note) if x)
        sources.append(LicenseSource(kind, path.name, m.license_id or "", m.confidence, detail))
        if m.altered and altered is None:
            altered, altered_src = m, path.name
        elif m.license_id and not m.altered and text_id is None:
            text_id, text_src = m.license_id, path.name
        elif m.license_id is None:
            unrecognised = True

    disagreement: str | None = None
    if altered is not None and altered.license_id is not None:
        original = license_info(altered.license_id)
        info = _altered_info(original, altered.missing)
        disagreement = (f"{altered_src} resembles the {original.name} but lacks or changes: "
                        f"{'; '.join(altered.missing)}; it is not treated as the original")
        if card_id and card_id not in ("other", altered.license_id):
            disagreement += f"; the model card says {card_id}"
        return LicenseReport(info, tuple(sources), disagreement, True)
    if text_id is not None:
        info = license_info(text_id)
        if card_id is not None and not _compatible(card_id, text_id):
            disagreement = (f"the model card says {card_id} but {text_src} is the {info.name} text; "
                            "the license file is taken as binding")
        return LicenseReport(info, tuple(sources), disagreement, False)
    if card_id is not None:
        if unrecognised and card_id in ("other", "unknown"):
            return LicenseReport(license_info("other"), tuple(sources), None, False)
        return LicenseReport(license_info(card_id), tuple(sources), None, False)
    return LicenseReport(license_info("other" if unrecognised else "unknown"), tuple(sources), None, False)


def _plain_file_inside(path: Path, root: Path) -> bool:
    """A regular file (not a FIFO or device that could block a read) that resolves inside ``root``."""
    return plain_file_within(path, root)


def _safe_listdir(model_dir: Path) -> list[Path]:
    try:
        return [p for p in model_dir.iterdir()]
    except OSError:
        return []


# -- conflicts with the intended use ---------------------------------------------------------------


# Licenses that forbid using the model (or its outputs) to improve other language models.
_NO_IMPROVING_OTHER_MODELS = frozenset({"llama2", "tongyi-qianwen", "tongyi-qianwen-research"})


def conflicts(info: LicenseInfo, use: IntendedUse) -> tuple[Conflict, ...]:
    """Where the declared use clashes with the license: ``deny`` when not allowed, ``review`` when unclear."""
    out: list[Conflict] = []
    unresolved = info.family in ("other", "unknown") and info.commercial_use is None
    if unresolved:
        what = "no license was found" if info.family == "unknown" else f"the license ({info.name}) is not identified"
        out.append(Conflict("license", f"{what}: any use needs the license read first", "review"))
    if use.commercial and info.commercial_use is False:
        out.append(Conflict("commercial", f"the {info.name} does not allow commercial use", "deny"))
    if use.redistribution or use.fine_tune_release:
        if info.family == "copyleft":
            out.append(Conflict("redistribution", f"the {info.name} is copyleft: what you distribute must carry the "
                                                  "same license and its source (unsettled for weights)", "review"))
        if info.family == "creative-commons" and any(o.kind == data.SHARE_ALIKE for o in info.obligations):
            out.append(Conflict("redistribution", f"the {info.name} is share-alike: adaptations must carry the same "
                                                  "license", "review"))
    if use.fine_tune_release and info.allows_derivatives is False:
        out.append(Conflict("fine-tune-release", f"the {info.name} does not allow sharing adapted versions", "deny"))
    if use.fine_tune_release and info.id in _NO_IMPROVING_OTHER_MODELS:
        out.append(Conflict("fine-tune-release", f"the {info.name} forbids using the model or its outputs to "
                                                 "improve any other large language model", "review"))
    if info.id == "agpl-3.0" and not use.internal_only:
        out.append(Conflict("network-use", "the AGPL obliges offering source to users who interact with a modified "
                                           "version over a network", "review"))
    if info.monthly_user_cap is not None and use.monthly_users is not None \
            and use.monthly_users > info.monthly_user_cap:
        out.append(Conflict("monthly-users", f"{use.monthly_users:,} monthly users is above the {info.name}'s "
                                             f"{info.monthly_user_cap:,} cap: a separate license from the licensor "
                                             "is needed", "deny"))
    entry = data.CATALOGUE.get(info.id)
    if entry is not None and entry.eu_multimodal_restricted and any(r.strip().lower() in _EU for r in use.regions):
        out.append(Conflict("region", f"the {info.name}'s use policy withholds its multimodal models from "
                                      "individuals and companies domiciled in the EU", "review"))
    restricted = any(o.kind in (data.USE_RESTRICTIONS, data.AUP) for o in info.obligations)
    case = use.use_case.lower()
    if restricted and case and any(word in case for word in _SENSITIVE_USES):
        out.append(Conflict("use-case", f"the use case {use.use_case!r} may fall under the {info.name}'s "
                                        "restricted uses", "review"))
    if use.redistribution and not use.internal_only and info.family in ("openrail", "gemma", "deepseek"):
        out.append(Conflict("redistribution", f"the {info.name}'s use restrictions must be passed on as an "
                                              "enforceable provision to everyone you distribute to", "review"))
    return tuple(out)
