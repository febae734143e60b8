"""User settings: a small TOML file, overridden by environment variables and options.

The file is ``$AIVET_CONFIG``, else ``$XDG_CONFIG_HOME/aivet/config.toml``
(``~/.config/aivet/config.toml``). Recognised keys::

    [ledger]
    record = true                      # append scan/sign/verify evidence to the ledger
    location = "postgresql://host/db"  # or a path; default: the user's data directory

``AIVET_RECORD=1``/``0`` overrides ``record``; ``AIVET_LEDGER`` overrides ``location``.
A file that does not parse, or holds an unknown key, is an error naming the file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from aivet.errors import UsageError

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}
_KNOWN = {"ledger": {"record", "location"}}


@dataclass(frozen=True)
class Settings:
    record: bool = False
    ledger: str | None = None


def config_path() -> Path:
    explicit = os.environ.get("AIVET_CONFIG", "").strip()
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CONFIG_HOME", "")
    base = Path(xdg) if os.path.isabs(xdg) else Path.home() / ".config"
    return base / "aivet" / "config.toml"


def load() -> Settings:
    """Read the settings file (if any) and apply the environment."""
    path = config_path()
    data: dict[str, object] = {}
    if path.is_file():
        import tomllib  # only when there is a file: start-up stays quick

        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise UsageError(f"{path}: not valid TOML: {exc}") from exc
        except OSError as exc:
            raise UsageError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    for section, value in data.items():
        if section not in _KNOWN or not isinstance(value, dict):
            raise UsageError(f"{path}: unknown section [{section}] (known: {', '.join(sorted(_KNOWN))})")
        unknown = set(value) - _KNOWN[section]
        if unknown:
            raise UsageError(f"{path}: unknown key(s) in [{section}]: {', '.join(sorted(unknown))}")
    ledger_section = data.get("ledger", {})
    assert isinstance(ledger_section, dict)
    record = ledger_section.get("record", False)
    location = ledger_section.get("location")
    if not isinstance(record, bool):
        raise UsageError(f"{path}: [ledger] record must be true or false")
    if location is not None and not isinstance(location, str):
        raise UsageError(f"{path}: [ledger] location must be a string")
    env = os.environ.get("AIVET_RECORD")
    if env is not None:
        value = env.strip().lower()
        if value not in _TRUE | _FALSE:
            raise UsageError(f"AIVET_RECORD={env!r}: expected 1 or 0")
        record = value in _TRUE
    return Settings(record=record, ledger=os.environ.get("AIVET_LEDGER") or location)
