"""aivet: vet open-weight AI models before and while they run.

The library API is small and stable::

    import aivet
    evidence = aivet.scan("path/to/model")      # -> aivet.Evidence
    for finding in evidence.findings: ...

Imports are lazy so that ``aivet`` starts quickly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from aivet.analyzers import scan
    from aivet.evidence import Evidence, Finding, Location, Severity

__all__ = ["Evidence", "Finding", "Location", "Severity", "scan", "__version__"]


def __getattr__(name: str) -> Any:
    if name == "scan":
        from aivet.analyzers import scan

        return scan
    if name in ("Evidence", "Finding", "Location", "Severity"):
        from aivet import evidence

        return getattr(evidence, name)
    raise AttributeError(f"module 'aivet' has no attribute {name!r}")
