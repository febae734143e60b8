"""The signed manifest: an in-toto statement over file (or shard) digests.

The layout follows the OpenSSF Model Signing specification v1.0 (predicate
type ``https://model_signing/signature/v1.0``): one subject named after the
model directory whose ``sha256`` is computed over the concatenated raw
digests of the resources in the order listed; a predicate with a
``serialization`` section (method, hash type, symlink policy, ignore paths,
shard size) and a ``resources`` list of ``{name, algorithm, digest}``.
Verifiers of v1.0 ignore other predicate fields, so aivet adds signed
model-card metadata under :data:`MODEL_CARD_KEY` without breaking them.

Parsing is strict: anything a verifier relies on is type-checked, and names
that could leave the model directory (``..``, absolute, backslashes, NUL)
are refused before any file is opened.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from aivet.errors import ArtifactError, UsageError

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://model_signing/signature/v1.0"
MODEL_CARD_KEY = "aivet.dev/model_card/v1"
DEFAULT_IGNORE = (".git", ".github", ".gitignore", ".gitattributes")
DEFAULT_SIGNATURE_NAME = "model.sig"
_HEX_LEN = {"sha256": 64, "blake2b": 128, "blake3": 64}
MAX_RESOURCES = 10_000_000  # a manifest listing more is refused (bounded memory while verifying)


@dataclass(frozen=True)
class Serialization:
    """How the manifest was made; a verifier re-hashes the directory the same way."""

    method: str = "files"  # "files" or "shards"
    hash_type: str = "sha256"
    allow_symlinks: bool = False
    ignore_paths: tuple[str, ...] = ()
    shard_size: int | None = None

    def __post_init__(self) -> None:
        if self.method not in ("files", "shards"):
            raise UsageError(f"unknown serialization method {self.method!r}")
        if self.hash_type not in _HEX_LEN:
            raise UsageError(f"unknown hash type {self.hash_type!r}")
        if (self.method == "shards") != (self.shard_size is not None):
            raise UsageError("a shard size is given exactly when the method is 'shards'")
        if self.shard_size is not None and self.shard_size <= 0:
            raise UsageError("shard size must be positive")

    @property
    def algorithm(self) -> str:
        """The ``algorithm`` of each resource (``sha256``, or ``sha256-sharded-N`` for shards)."""
        if self.method == "shards":
            return f"{self.hash_type}-sharded-{self.shard_size}"
        return self.hash_type

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"method": self.method, "hash_type": self.hash_type}
        if self.shard_size is not None:
            out["shard_size"] = self.shard_size
        out["allow_symlinks"] = self.allow_symlinks
        if self.ignore_paths:
            out["ignore_paths"] = list(self.ignore_paths)
        return out

    @classmethod
    def from_dict(cls, data: Any) -> Serialization:
        """Parse a ``serialization`` section strictly (:class:`ArtifactError` when malformed)."""
        if not isinstance(data, Mapping):
            raise ArtifactError("predicate.serialization is not an object")
        method = data.get("method")
        hash_type = data.get("hash_type")
        allow = data.get("allow_symlinks", False)
        ignore = data.get("ignore_paths", [])
        if method not in ("files", "shards"):
            raise ArtifactError(f"unknown serialization method {method!r}")
        if hash_type not in _HEX_LEN:
            raise ArtifactError(f"unsupported hash type {hash_type!r}")
        if not isinstance(allow, bool):
            raise ArtifactError("serialization.allow_symlinks is not a boolean")
        if not isinstance(ignore, list) or not all(isinstance(p, str) for p in ignore):
            raise ArtifactError("serialization.ignore_paths is not a list of strings")
        shard: int | None = None
        if method == "shards":
            raw = data.get("shard_size")
            # Protobuf Struct turns integers into floats: accept 4.0, refuse 4.5 and booleans.
            if isinstance(raw, bool) or not isinstance(raw, (int, float)) or raw != int(raw) or raw <= 0:
                raise ArtifactError(f"invalid shard_size {raw!r}")
            shard = int(raw)
        return cls(str(method), str(hash_type), allow, tuple(ignore), shard)


@dataclass(frozen=True)
class Resource:
    """One signed item: a file or a shard ``path:start:end``, with its hex digest."""

    name: str
    algorithm: str
    digest: str

    @property
    def path(self) -> str:
        """The file the resource belongs to."""
        return self.name.rsplit(":", 2)[0] if self.algorithm.count("-sharded-") else self.name


@dataclass(frozen=True)
class Manifest:
    """A model's signed content: name, serialization and resources (sorted as signed)."""

    model_name: str
    serialization: Serialization
    resources: tuple[Resource, ...]
    model_card: Mapping[str, Any] | None = field(default=None, compare=False)

    def root_digest(self) -> str:
        """SHA-256 over the raw resource digests in listed order (the subject digest)."""
        h = hashlib.sha256()
        for r in self.resources:
            h.update(bytes.fromhex(r.digest))
        return h.hexdigest()

    def by_name(self) -> dict[str, Resource]:
        return {r.name: r for r in self.resources}

    def files(self) -> dict[str, list[Resource]]:
        """Resources grouped by file path (one per file, or the file's shards)."""
        out: dict[str, list[Resource]] = {}
        for r in self.resources:
            out.setdefault(r.path, []).append(r)
        return out

    def to_statement(self) -> dict[str, Any]:
        """The in-toto statement that gets signed."""
        predicate: dict[str, Any] = {
            "serialization": self.serialization.to_dict(),
            "resources": [{"name": r.name, "algorithm": r.algorithm, "digest": r.digest} for r in self.resources],
        }
        if self.model_card:
            predicate[MODEL_CARD_KEY] = dict(self.model_card)
        return {
            "_type": STATEMENT_TYPE,
            "subject": [{"name": self.model_name, "digest": {"sha256": self.root_digest()}}],
            "predicateType": PREDICATE_TYPE,
            "predicate": predicate,
        }

    @classmethod
    def from_statement(cls, st: Any) -> Manifest:
        """Parse and check a statement; :class:`ArtifactError` says exactly what is wrong."""
        if not isinstance(st, Mapping):
            raise ArtifactError("the signed payload is not a JSON object")
        if st.get("_type") != STATEMENT_TYPE:
            raise ArtifactError(f"the payload is not an in-toto v1 statement (_type {st.get('_type')!r})")
        if st.get("predicateType") != PREDICATE_TYPE:
            raise PredicateError(f"wrong predicate type {st.get('predicateType')!r}; expected {PREDICATE_TYPE!r}")
        subjects = st.get("subject")
        if not isinstance(subjects, list) or len(subjects) != 1 or not isinstance(subjects[0], Mapping):
            raise PredicateError("the statement must have exactly one subject")
        name = subjects[0].get("name")
        digest = subjects[0].get("digest")
        if not isinstance(name, str) or not isinstance(digest, Mapping) or not isinstance(digest.get("sha256"), str):
            raise PredicateError("the subject has no name or no sha256 digest")
        pred = st.get("predicate")
        if not isinstance(pred, Mapping):
            raise PredicateError("the predicate is not an object")
        ser = Serialization.from_dict(pred.get("serialization"))
        raw = pred.get("resources")
        if not isinstance(raw, list):
            raise PredicateError("predicate.resources is not a list")
        if len(raw) > MAX_RESOURCES:
            raise PredicateError(f"the manifest lists more than {MAX_RESOURCES} resources")
        resources = []
        seen: set[str] = set()
        for item in raw:
            if not isinstance(item, Mapping):
                raise PredicateError("a resource is not an object")
            rname, alg, dig = item.get("name"), item.get("algorithm"), item.get("digest")
            if not isinstance(rname, str) or not isinstance(alg, str) or not isinstance(dig, str):
                raise PredicateError("a resource lacks name, algorithm or digest strings")
            if alg != ser.algorithm:
                raise PredicateError(f"resource {rname!r} uses {alg!r} but the serialization says {ser.algorithm!r}")
            if len(dig) != _HEX_LEN[ser.hash_type] or any(c not in "0123456789abcdef" for c in dig):
                raise PredicateError(f"resource {rname!r} has a malformed digest")
            check_name(rname, sharded=ser.method == "shards")
            if rname in seen:
                raise PredicateError(f"resource {rname!r} is listed twice")
            seen.add(rname)
            resources.append(Resource(rname, alg, dig))
        card = pred.get(MODEL_CARD_KEY)
        if card is not None and (not isinstance(card, Mapping) or _depth(card) > 16):
            raise PredicateError("the signed model-card metadata is not a small JSON object")
        m = cls(name, ser, tuple(resources), dict(card) if isinstance(card, Mapping) else None)
        if m.root_digest() != digest["sha256"]:
            raise PredicateError("the subject digest does not match the listed resources (inconsistent manifest)")
        return m


def _depth(value: Any, level: int = 0) -> int:
    """Nesting depth of a JSON value, stopping early past 16 (bounded recursion)."""
    if level > 16:
        return level
    if isinstance(value, Mapping):
        return max((_depth(v, level + 1) for v in value.values()), default=level + 1)
    if isinstance(value, list):
        return max((_depth(v, level + 1) for v in value), default=level + 1)
    return level


class PredicateError(ArtifactError):
    """The statement is well-formed JSON but not a valid model-signing predicate."""


def check_name(name: str, *, sharded: bool) -> None:
    """Refuse resource names that could point outside the model directory."""
    path = name
    if sharded:
        parts = name.rsplit(":", 2)
        if len(parts) != 3 or not parts[1].isdigit() or not parts[2].isdigit() or int(parts[1]) > int(parts[2]):
            raise PredicateError(f"shard name {name!r} is not 'path:start:end'")
        path = parts[0]
    pp = PurePosixPath(path)
    if (
        not path
        or pp.is_absolute()
        or "\\" in path
        or "\0" in path
        or any(p in ("..", ".", "") for p in path.split("/"))
    ):
        raise PredicateError(f"resource name {name!r} is not a plain relative path inside the model")


def sort_key(name: str, sharded: bool = False) -> tuple[tuple[str, ...], int, int]:
    """The specification's order: by path components, then shard start and end."""
    # Names are already checked to be normal relative paths, so splitting on "/" gives their parts.
    if sharded and name.count(":") >= 2:
        head, s, e = name.rsplit(":", 2)
        if s.isdigit() and e.isdigit():
            return (tuple(head.split("/")), int(s), int(e))
    return (tuple(name.split("/")), 0, 0)


def make_manifest(
    model_name: str,
    serialization: Serialization,
    digests: Sequence[tuple[str, bytes]],
    model_card: Mapping[str, Any] | None = None,
) -> Manifest:
    """Build a manifest from ``(resource name, raw digest)`` pairs, in canonical order."""
    sharded = serialization.method == "shards"
    ordered = sorted(digests, key=lambda nd: sort_key(nd[0], sharded))
    res = tuple(Resource(n, serialization.algorithm, d.hex()) for n, d in ordered)
    return Manifest(model_name, serialization, res, dict(model_card) if model_card else None)


@dataclass(frozen=True)
class ManifestDiff:
    """How the directory differs from what was signed, file by file."""

    modified: tuple[str, ...] = ()
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    renamed: tuple[tuple[str, str], ...] = ()  # (signed name, current name)

    @property
    def clean(self) -> bool:
        return not (self.modified or self.added or self.removed or self.renamed)


def diff(expected: Manifest, actual: Manifest) -> ManifestDiff:
    """Compare per file; a removed file whose content reappears under a new name is a rename."""
    exp, act = expected.files(), actual.files()

    def content(rs: list[Resource]) -> tuple[tuple[str, str], ...]:
        # Shard names embed the path; compare the ranges and digests only.
        return tuple((r.name[len(r.path) :], r.digest) for r in rs)

    modified = sorted(p for p in exp.keys() & act.keys() if content(exp[p]) != content(act[p]))
    removed = sorted(exp.keys() - act.keys())
    added = sorted(act.keys() - exp.keys())
    renamed: list[tuple[str, str]] = []
    by_content: dict[tuple[tuple[str, str], ...], list[str]] = {}
    for p in added:
        by_content.setdefault(content(act[p]), []).append(p)
    for p in list(removed):
        candidates = by_content.get(content(exp[p]))
        if candidates:
            new = candidates.pop(0)
            renamed.append((p, new))
            removed.remove(p)
            added.remove(new)
    return ManifestDiff(tuple(modified), tuple(added), tuple(removed), tuple(renamed))
