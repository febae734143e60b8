"""Where a ledger lives and where its key is: ``--ledger``, ``$AIVET_LEDGER``, or the user's data directory.

A location is a file path (SQLite) or a ``postgresql://`` / ``postgres://``
URL. The private log key sits beside a SQLite file (``ledger.db`` ->
``ledger.key``); for PostgreSQL it lives in the user's data directory under a
name derived from the URL, or wherever ``$AIVET_LEDGER_KEY`` points, so that
every machine appending to a shared log can be given the same key file.
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

from aivet.ledger.postgres_store import redact
from aivet.ledger.store import Store

__all__ = ["data_dir", "resolve_location", "is_postgres", "default_key_path", "open_store"]

ENV_LEDGER = "AIVET_LEDGER"
ENV_KEY = "AIVET_LEDGER_KEY"


def data_dir() -> Path:
    """The per-user data directory of aivet (XDG on Linux, the platform's convention elsewhere)."""
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        xdg = os.environ.get("XDG_DATA_HOME", "")
        base = Path(xdg) if os.path.isabs(xdg) else Path.home() / ".local" / "share"
    return base / "aivet"


def is_postgres(location: str) -> bool:
    """True for a PostgreSQL URL."""
    return location.startswith(("postgresql://", "postgres://"))


def resolve_location(ledger: str | os.PathLike[str] | None = None) -> str:
    """The ledger to use: the argument, else ``$AIVET_LEDGER``, else ``[ledger] location`` in the
    settings file (:mod:`aivet.settings`), else ``<data dir>/ledger.db``."""
    if ledger:
        return os.fspath(ledger)
    env = os.environ.get(ENV_LEDGER, "").strip()
    if env:
        return env
    from aivet.settings import load

    return load().ledger or str(data_dir() / "ledger.db")


def default_key_path(location: str) -> Path:
    """Where the private log key of ``location`` is kept (``$AIVET_LEDGER_KEY`` wins)."""
    env = os.environ.get(ENV_KEY, "").strip()
    if env:
        return Path(env)
    if is_postgres(location):
        tag = hashlib.sha256(redact(location).encode()).hexdigest()[:12]
        return data_dir() / f"ledger-{tag}.key"
    path = Path(location)
    return path.with_name(path.name + ".key") if path.suffix == ".key" else path.with_suffix(".key")


def open_store(location: str, *, create: bool = True) -> Store:
    """Open (and create if needed) the store at ``location``."""
    if is_postgres(location):
        from aivet.ledger.postgres_store import PostgresStore

        return PostgresStore(location)
    from aivet.ledger.sqlite_store import SqliteStore

    return SqliteStore(Path(location).expanduser(), create=create)
