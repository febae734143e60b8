"""Errors of the ledger, under aivet's one exception root.

A ledger that fails verification is *not* an exception: :func:`Ledger.verify`
returns a report listing every problem. Exceptions are for things that stop
an operation: an unreachable database, a bad export file, a wrong key.
"""

from __future__ import annotations

from aivet.errors import ArtifactError, EnvironmentFailure, UsageError


class LedgerUnavailable(EnvironmentFailure):
    """The ledger's store cannot be opened or written: unreachable server, full disk, permissions."""


class LedgerCorrupt(ArtifactError):
    """The stored log, an export file, a proof or a checkpoint is malformed or does not verify."""


class LedgerKeyError(ArtifactError):
    """The log key is missing, unreadable, or does not belong to this ledger."""


class LedgerUsageError(UsageError):
    """A request the ledger cannot satisfy: an index past the end, an unknown entry kind."""
