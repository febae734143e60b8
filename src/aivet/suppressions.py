"""Suppressions: findings a person reviewed and accepted, written down with their reason.

A CI job that gates model uploads needs a way to accept a reviewed finding (a
flash-attention patch in ``modeling_*.py``, a pickle of a class the team wrote)
without lowering ``--fail-on`` for everything else. A suppression file is TOML::

    [[suppress]]
    rule = "CODE-MONKEYPATCH"                 # a rule id, or a pattern such as "CODE-*"
    path = "modeling_*.py"                    # optional: pattern on the finding's path
    subject = "acme/llm-7b@*"                 # optional: pattern on the subject (hub repo@revision)
    sha256 = "9f86d081884c7d65..."            # the file's digest: needed for high and critical
    reason = "flash-attn patch, reviewed by security 2026-11-20 (SEC-123)"
    expires = 2027-03-01                      # optional: the entry stops applying after this day

What keeps this from becoming a hole:

* **Only the caller names the file** (``--suppressions FILE``). A file inside the scanned
  repository is never read: a model must not be able to suppress its own findings.
* **High and critical findings need a content pin.** An entry without ``sha256`` only
  suppresses findings below high; for the others the file must still hash to the digest
  the reviewer saw, so a later edit of a reviewed file is reported again.
* **Nothing disappears.** Suppressed findings move to ``Evidence.suppressed`` with their
  reason and the entry that matched; the ``suppressions`` record lists entries that
  matched nothing, expired ones and those that needed a pin, and every report shows them.

Patterns use shell-style wildcards (:func:`fnmatch.fnmatchcase`): ``*`` also matches
``/``, so ``path = "*.py"`` covers every Python file of the repository. A path inside an
archive is ``outer.zip!member``; its pin is the digest of the outer file.
"""

from __future__ import annotations

import datetime as _dt
import fnmatch
import hashlib
import os
import re
import stat
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from aivet.errors import UsageError
from aivet.evidence import Evidence, Finding, JSONValue, Record, Severity, SuppressedFinding

RECORD_KIND = "suppressions"
PIN_FROM = Severity.HIGH  # findings at or above this need an entry with sha256
MAX_FILE_BYTES = 1 << 20
MAX_ENTRIES = 10_000
_KEYS = frozenset({"rule", "path", "subject", "sha256", "reason", "expires"})
_RULE = re.compile(r"[A-Z0-9*?\[\]!-]+")
_SHA256 = re.compile(r"[0-9a-f]{64}")


class SuppressionError(UsageError):
    """The suppression file cannot be used: unreadable, not TOML, or an entry is wrong."""


@dataclass(frozen=True)
class Suppression:
    """One ``[[suppress]]`` entry. ``origin`` says where it was written (``file #n``)."""

    rule: str
    reason: str
    origin: str
    path: str | None = None
    subject: str | None = None
    sha256: str | None = None
    expires: _dt.date | None = None

    def covers(self, finding: Finding) -> bool:
        """Whether rule, path and subject match ``finding`` (pin and expiry are checked by :func:`apply`)."""
        return (fnmatch.fnmatchcase(finding.rule_id, self.rule)
                and (self.path is None or fnmatch.fnmatchcase(finding.location.path, self.path))
                and (self.subject is None or fnmatch.fnmatchcase(finding.subject, self.subject)))

    def describe(self) -> str:
        """``origin (rule, path)``: how reports name the entry."""
        scope = ", ".join(x for x in (self.rule, self.path, self.subject) if x)
        return f"{self.origin} ({scope})"


@dataclass(frozen=True)
class SuppressionFile:
    """The entries of one suppression file, and the digest of the file itself."""

    path: str
    sha256: str
    entries: tuple[Suppression, ...]


def load(path: str | os.PathLike[str], known_rules: Iterable[str] | None = None) -> SuppressionFile:
    """Read and check a suppression file; raises :class:`SuppressionError` naming the entry at fault.

    ``known_rules``: rule ids a ``rule`` pattern must match at least one of (a typo would
    otherwise suppress nothing, silently); defaults to the rule catalogue.
    """
    name = str(path)
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise SuppressionError(f"cannot read the suppression file {name}: {exc.strerror or exc}") from None
    if len(data) > MAX_FILE_BYTES:
        raise SuppressionError(f"{name}: larger than {MAX_FILE_BYTES} bytes; is this a suppression file?")
    try:
        document = tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise SuppressionError(f"{name}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise SuppressionError(f"{name}: not valid TOML: {exc}") from None
    if known_rules is None:
        from aivet import rules

        known_rules = rules.catalogue()
    known = tuple(known_rules)
    extra = sorted(set(document) - {"suppress"})
    if extra:
        raise SuppressionError(f"{name}: unknown table or key {extra[0]!r}; entries are [[suppress]] tables")
    raw = document.get("suppress", [])
    if not isinstance(raw, list) or not all(isinstance(item, dict) for item in raw):
        raise SuppressionError(f"{name}: 'suppress' must be an array of tables ([[suppress]])")
    if len(raw) > MAX_ENTRIES:
        raise SuppressionError(f"{name}: more than {MAX_ENTRIES} entries")
    entries = tuple(_entry(item, f"{name} #{i}", known) for i, item in enumerate(raw, 1))
    return SuppressionFile(name, hashlib.sha256(data).hexdigest(), entries)


def _entry(item: Mapping[str, object], origin: str, known: tuple[str, ...]) -> Suppression:
    unknown = sorted(set(item) - _KEYS)
    if unknown:
        raise SuppressionError(f"{origin}: unknown key {unknown[0]!r} (known: {', '.join(sorted(_KEYS))})")
    text = {key: item[key] for key in ("rule", "path", "subject", "sha256", "reason") if key in item}
    for key, value in text.items():
        if not isinstance(value, str):
            raise SuppressionError(f"{origin}: {key} must be a string, not {type(value).__name__}")
    rule = str(text.get("rule", "")).strip()
    reason = str(text.get("reason", "")).strip()
    if not rule:
        raise SuppressionError(f"{origin}: 'rule' is required (a rule id such as PICKLE-UNKNOWN-GLOBAL)")
    if not _RULE.fullmatch(rule):
        raise SuppressionError(f"{origin}: rule {rule!r} is not a rule id or pattern (upper case, digits, '-', '*')")
    if not any(fnmatch.fnmatchcase(r, rule) for r in known):
        raise SuppressionError(f"{origin}: rule {rule!r} matches no rule of `aivet rules`")
    if not reason:
        raise SuppressionError(f"{origin}: 'reason' is required: say who reviewed what, and why it is accepted")
    digest = text.get("sha256")
    if digest is not None:
        digest = str(digest).strip().lower().removeprefix("sha256:")
        if not _SHA256.fullmatch(digest):
            raise SuppressionError(f"{origin}: sha256 must be 64 hexadecimal digits")
    expires = item.get("expires")
    if expires is not None:
        if isinstance(expires, str):
            try:
                expires = _dt.date.fromisoformat(expires)
            except ValueError:
                raise SuppressionError(f"{origin}: expires {expires!r} is not a date (YYYY-MM-DD)") from None
        if isinstance(expires, _dt.datetime) or not isinstance(expires, _dt.date):
            raise SuppressionError(f"{origin}: expires must be a date (YYYY-MM-DD)")
    if rule.strip("*") == "" and text.get("path") is None and digest is None:
        raise SuppressionError(f"{origin}: rule {rule!r} with no path and no sha256 would accept every finding")
    return Suppression(rule, reason, origin, _optional(text.get("path")), _optional(text.get("subject")),
                       digest, expires)


def _optional(value: object) -> str | None:
    text = str(value).strip() if value is not None else ""
    return text or None


Hasher = Callable[[Finding], "str | None"]


def apply(evidence: Evidence, suppressions: SuppressionFile, hasher: Hasher, *,
          today: _dt.date | None = None) -> Evidence:
    """Move the findings the entries accept to ``Evidence.suppressed``; add a ``suppressions`` record.

    The first entry that accepts a finding is the one recorded. ``hasher`` gives the sha256 of
    the file a finding is in, or None (see :class:`TargetHasher`).
    """
    today = today or _dt.date.today()
    live = [e for e in suppressions.entries if e.expires is None or e.expires >= today]
    used: set[str] = set()
    refused: dict[tuple[str, str], set[str]] = {}  # (why, entry) -> paths
    kept: list[Finding] = []
    accepted: list[SuppressedFinding] = []
    for finding in evidence.findings:
        entry = _first(finding, live, hasher, refused)
        if entry is None:
            kept.append(finding)
            continue
        used.add(entry.origin)
        accepted.append(SuppressedFinding(finding, entry.reason, entry.origin))
    data: dict[str, JSONValue] = {
        "file": suppressions.path,
        "sha256": suppressions.sha256,
        "entries": len(suppressions.entries),
        "suppressed": len(accepted),
        "unused": [e.describe() for e in live if e.origin not in used
                   and not any(entry == e.describe() for _, entry in refused)],
        "expired": [e.describe() for e in suppressions.entries if e not in live],
        "refused": [{"entry": entry, "why": why, "paths": sorted(paths)[:20]}
                    for (why, entry), paths in refused.items()],
    }
    record = Record(RECORD_KIND, "", data)  # no subject: it is about the whole scan
    return replace(evidence, findings=tuple(kept), suppressed=evidence.suppressed + tuple(accepted),
                   records=evidence.records + (record,))


NEEDS_PIN = "matches a high or critical finding but has no sha256"
PIN_CHANGED = "pins a sha256 the file does not have (changed since the review?)"


def _first(finding: Finding, entries: list[Suppression], hasher: Hasher,
           refused: dict[tuple[str, str], set[str]]) -> Suppression | None:
    for entry in entries:
        if not entry.covers(finding):
            continue
        if entry.sha256 is None and finding.severity >= PIN_FROM:
            refused.setdefault((NEEDS_PIN, entry.describe()), set()).add(finding.location.path)
        elif entry.sha256 is not None and hasher(finding) != entry.sha256:
            refused.setdefault((PIN_CHANGED, entry.describe()), set()).add(finding.location.path)
        else:
            return entry
    return None


class TargetHasher:
    """sha256 of the file on disk that a finding is in (the outer file of an archive member).

    ``roots`` maps a subject id to ``(path, allowed_root)`` as the scan resolved it: the
    model directory (or single file) and the folder its symbolic links may resolve into
    (a hub snapshot's links point into its repository's ``blobs/``). A path that leaves
    that folder, or is not a regular file, has no digest. Each file is hashed once.
    """

    def __init__(self, roots: Mapping[str, tuple[Path, Path]]) -> None:
        self.roots = dict(roots)
        self.cache: dict[tuple[str, str], str | None] = {}

    def __call__(self, finding: Finding) -> str | None:
        outer = finding.location.path.split("!", 1)[0]
        key = (finding.subject, outer)
        if key not in self.cache:
            self.cache[key] = self._hash(finding.subject, outer)
        return self.cache[key]

    def _hash(self, subject_id: str, outer: str) -> str | None:
        if subject_id not in self.roots or not outer:
            return None
        path, allowed = self.roots[subject_id]
        candidate = path / outer if path.is_dir() else (path if outer == path.name else None)
        if candidate is None:
            return None
        try:
            real = candidate.resolve(strict=True)
            if not real.is_relative_to(allowed.resolve()):
                return None
            with open(real, "rb") as fh:
                if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
                    return None
                return hashlib.file_digest(fh, "sha256").hexdigest()
        except (OSError, RuntimeError):  # missing, unreadable, a symlink loop
            return None


def record_of(evidence: Evidence) -> Mapping[str, JSONValue] | None:
    """The data of the evidence's ``suppressions`` record, if suppressions were applied."""
    for record in evidence.records:
        if record.kind == RECORD_KIND:
            return record.data
    return None


def warnings(evidence: Evidence) -> list[str]:
    """One line per suppression entry a person should look at: refused, expired or unused."""
    data = record_of(evidence)
    if data is None:
        return []
    out: list[str] = []
    for item in _items(data.get("refused")):
        if isinstance(item, Mapping):
            paths = item.get("paths")
            shown = ", ".join(str(p) for p in paths[:3]) if isinstance(paths, (list, tuple)) else ""
            out.append(f"suppression {item.get('entry')} {item.get('why')}, not applied: {shown}")
    out.extend(f"suppression {item} has expired" for item in _items(data.get("expired")))
    out.extend(f"suppression {item} matched no finding" for item in _items(data.get("unused")))
    return out


def _items(value: JSONValue | None) -> tuple[JSONValue, ...]:
    return tuple(value) if isinstance(value, (list, tuple)) else ()
