"""The shared currency of aivet: :class:`Finding`, :class:`Artifact` and :class:`Evidence`.

Every analyzer, signer and probe produces these records; policy reads only
them and every report renders only them. They are frozen, typed and
round-trip through JSON without loss (``Evidence.from_dict(e.to_dict()) == e``).

The JSON schema is versioned by :data:`SCHEMA_VERSION` and documented in
``docs/evidence-schema.md``. Fields are only ever added; a field's meaning never
changes within a major schema version.
"""

from __future__ import annotations

import datetime as _dt
import enum
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

SCHEMA_VERSION = "1.1"

JSONValue = Any  # a value that json.dumps accepts: str, int, float, bool, None, list, dict


class Severity(str, enum.Enum):
    """How bad a finding is. Ordered: ``Severity.HIGH > Severity.LOW``."""

    INFO = "info"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return _RANK[self]

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Severity):
            return NotImplemented
        return self.rank < other.rank

    def __le__(self, other: object) -> bool:
        if not isinstance(other, Severity):
            return NotImplemented
        return self.rank <= other.rank

    def __gt__(self, other: object) -> bool:
        if not isinstance(other, Severity):
            return NotImplemented
        return self.rank > other.rank

    def __ge__(self, other: object) -> bool:
        if not isinstance(other, Severity):
            return NotImplemented
        return self.rank >= other.rank

    @classmethod
    def parse(cls, text: str) -> Severity:
        """Parse a severity name, case-insensitively (``"High"`` -> ``HIGH``)."""
        try:
            return cls(text.strip().lower())
        except ValueError:
            names = ", ".join(s.value for s in cls)
            raise ValueError(f"unknown severity {text!r}; expected one of: {names}") from None


_RANK = {s: i for i, s in enumerate(Severity)}


class ArtifactStatus(str, enum.Enum):
    """What the scanner managed to do with one file."""

    ANALYZED = "analyzed"  # parsed completely by a reader for its format
    PARTIAL = "partial"  # parsed, but a limit stopped the reader early (a finding says which)
    UNSUPPORTED = "unsupported"  # recognised content we cannot analyse (a finding says so)
    ERROR = "error"  # could not be parsed (a finding says why; fail closed)
    SKIPPED = "skipped"  # deliberately not read (e.g. a symlink leaving the repository)


def _freeze(value: JSONValue) -> JSONValue:
    """Return a hashable, immutable copy of a JSON-like value."""
    if isinstance(value, Mapping):
        return FrozenDict((str(k), _freeze(v)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    return value


def _thaw(value: JSONValue) -> JSONValue:
    if isinstance(value, Mapping):
        return {k: _thaw(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [_thaw(v) for v in value]
    return value


class FrozenDict(Mapping[str, JSONValue]):
    """A small immutable, hashable mapping used for finding details."""

    __slots__ = ("_data", "_hash")

    def __init__(self, items: Iterable[tuple[str, JSONValue]] | Mapping[str, JSONValue] = ()) -> None:
        data = dict(items.items() if isinstance(items, Mapping) else items)
        self._data = data
        self._hash: int | None = None

    def __getitem__(self, key: str) -> JSONValue:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __hash__(self) -> int:
        if self._hash is None:
            self._hash = hash(tuple(sorted(self._data.items(), key=lambda kv: kv[0])))
        return self._hash

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Mapping):
            return dict(self._data) == dict(other)
        return NotImplemented

    def __repr__(self) -> str:
        return f"FrozenDict({self._data!r})"


@dataclass(frozen=True)
class Location:
    """Where in a repository a finding is.

    ``path`` is repository-relative and POSIX-style. Members of archives and
    containers are joined with ``!`` (``model.zip!archive/data.pkl``), as
    ``jar:`` URLs do. ``offset`` is a byte offset inside the innermost member;
    ``line`` a 1-based line in a text file; ``pointer`` a JSON pointer
    (RFC 6901) or a key path inside structured metadata.
    """

    path: str
    offset: int | None = None
    line: int | None = None
    pointer: str | None = None

    def to_dict(self) -> dict[str, JSONValue]:
        out: dict[str, JSONValue] = {"path": self.path}
        if self.offset is not None:
            out["offset"] = self.offset
        if self.line is not None:
            out["line"] = self.line
        if self.pointer is not None:
            out["pointer"] = self.pointer
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, JSONValue]) -> Location:
        return cls(
            path=str(data["path"]),
            offset=data.get("offset"),
            line=data.get("line"),
            pointer=data.get("pointer"),
        )

    def __str__(self) -> str:
        text = self.path
        if self.line is not None:
            text += f":{self.line}"
        if self.offset is not None:
            text += f"@{self.offset}"
        if self.pointer:
            text += f"#{self.pointer}"
        return text


@dataclass(frozen=True)
class Finding:
    """One thing an analyzer found, tied to a rule and a location.

    ``details`` holds rule-specific, JSON-serialisable facts (for a pickle
    call: the callable and its constant arguments). ``subject`` names the
    :class:`Subject` (model) the finding belongs to.
    """

    rule_id: str
    severity: Severity
    message: str
    location: Location
    subject: str = ""
    details: Mapping[str, JSONValue] = field(default_factory=FrozenDict)

    def __post_init__(self) -> None:
        if not isinstance(self.details, FrozenDict):
            object.__setattr__(self, "details", _freeze(self.details))
        if not isinstance(self.severity, Severity):
            object.__setattr__(self, "severity", Severity(self.severity))

    def to_dict(self) -> dict[str, JSONValue]:
        return {
            "rule_id": self.rule_id,
            "severity": self.severity.value,
            "message": self.message,
            "location": self.location.to_dict(),
            "subject": self.subject,
            "details": _thaw(self.details),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, JSONValue]) -> Finding:
        return cls(
            rule_id=str(data["rule_id"]),
            severity=Severity(data["severity"]),
            message=str(data["message"]),
            location=Location.from_dict(data["location"]),
            subject=str(data.get("subject", "")),
            details=data.get("details") or {},
        )


@dataclass(frozen=True)
class SuppressedFinding:
    """A finding that a suppression entry accepted: kept, with the reason a person gave.

    ``entry`` names the entry (``FILE #N``); see :mod:`aivet.suppressions`.
    """

    finding: Finding
    reason: str
    entry: str

    def to_dict(self) -> dict[str, JSONValue]:
        return {**self.finding.to_dict(), "suppression": {"reason": self.reason, "entry": self.entry}}

    @classmethod
    def from_dict(cls, data: Mapping[str, JSONValue]) -> SuppressedFinding:
        how = data.get("suppression") or {}
        return cls(Finding.from_dict(data), str(how.get("reason", "")), str(how.get("entry", "")))


@dataclass(frozen=True)
class Artifact:
    """One file (or archive member) the scanner looked at, and what it made of it."""

    path: str
    format: str
    size: int
    status: ArtifactStatus
    subject: str = ""
    note: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.status, ArtifactStatus):
            object.__setattr__(self, "status", ArtifactStatus(self.status))

    def to_dict(self) -> dict[str, JSONValue]:
        out: dict[str, JSONValue] = {
            "path": self.path,
            "format": self.format,
            "size": self.size,
            "status": self.status.value,
            "subject": self.subject,
        }
        if self.note:
            out["note"] = self.note
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, JSONValue]) -> Artifact:
        return cls(
            path=str(data["path"]),
            format=str(data["format"]),
            size=int(data["size"]),
            status=ArtifactStatus(data["status"]),
            subject=str(data.get("subject", "")),
            note=str(data.get("note", "")),
        )


@dataclass(frozen=True)
class Subject:
    """A model the evidence is about: a directory, a file, or a hub repository revision.

    ``id`` is stable within one Evidence document and referenced by findings
    and artifacts. For Hugging Face repositories ``repo_id`` and ``revision``
    (the commit hash) are set.
    """

    id: str
    kind: str  # "directory" | "file" | "hf-cache" | "hf-repo"
    location: str
    repo_id: str | None = None
    revision: str | None = None

    def to_dict(self) -> dict[str, JSONValue]:
        out: dict[str, JSONValue] = {"id": self.id, "kind": self.kind, "location": self.location}
        if self.repo_id is not None:
            out["repo_id"] = self.repo_id
        if self.revision is not None:
            out["revision"] = self.revision
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, JSONValue]) -> Subject:
        return cls(
            id=str(data["id"]),
            kind=str(data["kind"]),
            location=str(data["location"]),
            repo_id=data.get("repo_id"),
            revision=data.get("revision"),
        )


@dataclass(frozen=True)
class Record:
    """A typed fact other than a finding: a signature check, a license, lineage, a probe result.

    ``kind`` names the record type (``"signature"``, ``"license"``, ...);
    ``data`` is that type's JSON body, documented with the producer.
    """

    kind: str
    subject: str
    data: Mapping[str, JSONValue] = field(default_factory=FrozenDict)

    def __post_init__(self) -> None:
        if not isinstance(self.data, FrozenDict):
            object.__setattr__(self, "data", _freeze(self.data))

    def to_dict(self) -> dict[str, JSONValue]:
        return {"kind": self.kind, "subject": self.subject, "data": _thaw(self.data)}

    @classmethod
    def from_dict(cls, data: Mapping[str, JSONValue]) -> Record:
        return cls(kind=str(data["kind"]), subject=str(data["subject"]), data=data.get("data") or {})


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class Evidence:
    """Everything aivet learned about one or more models, in one serialisable document."""

    subjects: tuple[Subject, ...] = ()
    artifacts: tuple[Artifact, ...] = ()
    findings: tuple[Finding, ...] = ()
    records: tuple[Record, ...] = ()
    suppressed: tuple[SuppressedFinding, ...] = ()  # accepted by a suppression file; not in ``findings``
    tool: Mapping[str, JSONValue] = field(default_factory=lambda: FrozenDict({"name": "aivet", "version": _version()}))
    created: str = field(default_factory=_now)
    schema_version: str = SCHEMA_VERSION

    def __post_init__(self) -> None:
        if not isinstance(self.tool, FrozenDict):
            object.__setattr__(self, "tool", _freeze(self.tool))

    # -- queries ---------------------------------------------------------------------------
    @property
    def max_severity(self) -> Severity | None:
        """The most severe finding's severity, or ``None`` when there are no findings."""
        return max((f.severity for f in self.findings), default=None)

    def at_or_above(self, threshold: Severity) -> tuple[Finding, ...]:
        """Findings whose severity is at least ``threshold``."""
        return tuple(f for f in self.findings if f.severity >= threshold)

    def findings_for(self, path: str) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.location.path == path)

    @property
    def clean(self) -> bool:
        """True when nothing at LOW or above was found and every artifact was analysed."""
        return not self.at_or_above(Severity.LOW) and all(
            a.status in (ArtifactStatus.ANALYZED,) for a in self.artifacts
        )

    def merge(self, other: Evidence) -> Evidence:
        """Combine two documents (e.g. a scan and a signature check) into one."""
        seen = {s.id for s in self.subjects}
        return replace(
            self,
            subjects=self.subjects + tuple(s for s in other.subjects if s.id not in seen),
            artifacts=self.artifacts + other.artifacts,
            findings=self.findings + other.findings,
            records=self.records + other.records,
            suppressed=self.suppressed + other.suppressed,
        )

    # -- serialisation ---------------------------------------------------------------------
    def to_dict(self) -> dict[str, JSONValue]:
        counts = {s.value: 0 for s in Severity}
        for f in self.findings:
            counts[f.severity.value] += 1
        return {
            "schema_version": self.schema_version,
            "tool": _thaw(self.tool),
            "created": self.created,
            "summary": {
                "artifacts": len(self.artifacts),
                "findings": len(self.findings),
                "by_severity": counts,
                "max_severity": self.max_severity.value if self.max_severity else None,
                "suppressed": len(self.suppressed),
            },
            "subjects": [s.to_dict() for s in self.subjects],
            "artifacts": [a.to_dict() for a in self.artifacts],
            "findings": [f.to_dict() for f in self.findings],
            "records": [r.to_dict() for r in self.records],
            "suppressed": [s.to_dict() for s in self.suppressed],
        }

    def to_json(self, *, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False, sort_keys=False)

    @classmethod
    def from_dict(cls, data: Mapping[str, JSONValue]) -> Evidence:
        major = str(data.get("schema_version", "")).split(".")[0]
        if major != SCHEMA_VERSION.split(".")[0]:
            raise ValueError(f"unsupported evidence schema version {data.get('schema_version')!r}")
        return cls(
            subjects=tuple(Subject.from_dict(s) for s in data.get("subjects", [])),
            artifacts=tuple(Artifact.from_dict(a) for a in data.get("artifacts", [])),
            findings=tuple(Finding.from_dict(f) for f in data.get("findings", [])),
            records=tuple(Record.from_dict(r) for r in data.get("records", [])),
            suppressed=tuple(SuppressedFinding.from_dict(s) for s in data.get("suppressed", [])),
            tool=data.get("tool") or {},
            created=str(data.get("created", "")),
            schema_version=str(data["schema_version"]),
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> Evidence:
        return cls.from_dict(json.loads(text))


def _version() -> str:
    from aivet import __version__

    return __version__
