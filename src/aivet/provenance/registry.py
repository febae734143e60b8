"""A local registry of weight fingerprints: register known base models, rank a candidate against them.

One SQLite file, by default ``lineage.db`` in the user's aivet data directory
(``$AIVET_LINEAGE_REGISTRY`` or an explicit path overrides it). Each row holds
a name chosen by the user (usually the hub id, ``meta-llama/Llama-3.1-8B``),
the fingerprint as JSON, and the facts read from the model's config and
tokenizer. Rows that do not parse (a damaged or foreign file) are skipped and
counted, never trusted.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from aivet.errors import EnvironmentFailure, UsageError
from aivet.provenance.fingerprint import Fingerprint, compare

__all__ = ["DEFAULT_THRESHOLD", "ENV_REGISTRY", "Entry", "Match", "Registry", "default_registry_path"]

ENV_REGISTRY = "AIVET_LINEAGE_REGISTRY"
DEFAULT_THRESHOLD = 0.5  # median estimated correlation; see bench/RESULTS_lineage.md for the margin

_SCHEMA = """
CREATE TABLE IF NOT EXISTS lineage_models (
    name TEXT PRIMARY KEY,
    digest TEXT NOT NULL,
    family TEXT,
    model_type TEXT,
    tokenizer_hash TEXT,
    registered TEXT NOT NULL,
    fingerprint TEXT NOT NULL
)
"""


def default_registry_path() -> Path:
    """``$AIVET_LINEAGE_REGISTRY``, else ``lineage.db`` in the user's aivet data directory."""
    env = os.environ.get(ENV_REGISTRY, "").strip()
    if env:
        return Path(env).expanduser()
    from aivet.ledger.location import data_dir  # the one definition of the per-user data directory

    return data_dir() / "lineage.db"


@dataclass(frozen=True)
class Entry:
    """A registered model."""

    name: str
    digest: str
    family: str | None
    model_type: str | None
    tokenizer_hash: str | None
    registered: str
    fingerprint: Fingerprint

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "digest": self.digest, "family": self.family, "model_type": self.model_type,
                "tokenizer_hash": self.tokenizer_hash, "registered": self.registered,
                "tensors": len(self.fingerprint.tensors)}


@dataclass(frozen=True)
class Match:
    """One ranked candidate: a registered model and how strongly the subject's weights derive from it."""

    name: str
    score: float
    paired: int
    total: int
    matched: bool  # score >= threshold on enough paired tensors
    family: str | None = None
    tokenizer_hash: str | None = None
    digest: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "score": self.score, "paired": self.paired, "total": self.total,
                "matched": self.matched, "family": self.family, "tokenizer_hash": self.tokenizer_hash,
                "digest": self.digest}


class Registry:
    """The fingerprint registry in one SQLite file. Use as a context manager, or call :meth:`close`."""

    def __init__(self, path: Path, conn: sqlite3.Connection) -> None:
        self.path = path
        self._conn = conn
        self.skipped_rows = 0  # rows whose fingerprint did not parse during the last read

    @classmethod
    def open(cls, path: str | os.PathLike[str] | None = None, *, create: bool = True) -> Registry:
        """Open the registry at ``path`` (default :func:`default_registry_path`), creating it if asked."""
        where = Path(path).expanduser() if path else default_registry_path()
        if not create and not where.is_file():
            raise UsageError(f"no lineage registry at {where} (register a model first)")
        try:
            where.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(where)
            conn.execute(_SCHEMA)
            conn.commit()
        except (OSError, sqlite3.Error) as exc:
            raise EnvironmentFailure(f"cannot open the lineage registry {where}: {exc}") from exc
        return cls(where, conn)

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Close the database connection."""
        self._conn.close()

    def register(self, name: str, fingerprint: Fingerprint, *, family: str | None = None,
                 model_type: str | None = None, tokenizer_hash: str | None = None, replace: bool = False) -> Entry:
        """Store ``fingerprint`` under ``name``; an existing name is an error unless ``replace``."""
        name = name.strip()
        if not name:
            raise UsageError("a registered model needs a non-empty --name")
        now = _dt.datetime.now(_dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
        verb = "INSERT OR REPLACE" if replace else "INSERT"
        try:
            with self._conn:
                self._conn.execute(
                    f"{verb} INTO lineage_models VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (name, fingerprint.digest, family, model_type, tokenizer_hash, now, fingerprint.to_json()))
        except sqlite3.IntegrityError:
            raise UsageError(f"{name!r} is already registered (use --replace to overwrite it)") from None
        except sqlite3.Error as exc:
            raise EnvironmentFailure(f"cannot write the lineage registry {self.path}: {exc}") from exc
        return Entry(name, fingerprint.digest, family, model_type, tokenizer_hash, now, fingerprint)

    def remove(self, name: str) -> bool:
        """Delete ``name``; True when it was registered."""
        try:
            with self._conn:
                cur = self._conn.execute("DELETE FROM lineage_models WHERE name = ?", (name,))
        except sqlite3.Error as exc:
            raise EnvironmentFailure(f"cannot write the lineage registry {self.path}: {exc}") from exc
        return cur.rowcount > 0

    def entries(self) -> Iterator[Entry]:
        """Every registered model whose row parses, by name."""
        self.skipped_rows = 0
        try:
            rows = self._conn.execute(
                "SELECT name, digest, family, model_type, tokenizer_hash, registered, fingerprint "
                "FROM lineage_models ORDER BY name").fetchall()
        except sqlite3.Error as exc:
            raise EnvironmentFailure(f"cannot read the lineage registry {self.path}: {exc}") from exc
        for name, digest, family, model_type, tok, registered, blob in rows:
            try:
                fp = Fingerprint.from_dict(json.loads(blob))
            except (ValueError, TypeError, AttributeError, RecursionError, OverflowError):
                self.skipped_rows += 1
                continue
            yield Entry(str(name), str(digest), family, model_type, tok, str(registered), fp)

    def match(self, fingerprint: Fingerprint, *, threshold: float = DEFAULT_THRESHOLD, top: int = 5,
              exclude_digest: bool = False) -> tuple[Match, ...]:
        """Registered models ranked by how strongly ``fingerprint`` derives from them (best first).

        At most ``top`` candidates are returned (all when ``top`` <= 0). With
        ``exclude_digest`` an entry with the very same fingerprint digest (the
        model itself) is left out.
        """
        found: list[Match] = []
        for entry in self.entries():
            if exclude_digest and entry.digest == fingerprint.digest:
                continue
            sim = compare(fingerprint, entry.fingerprint)
            found.append(Match(entry.name, sim.score, sim.paired, sim.total, sim.matches(threshold),
                               entry.family, entry.tokenizer_hash, entry.digest))
        found.sort(key=lambda m: (-m.matched, -m.score, m.name))
        return tuple(found[:top] if top > 0 else found)
