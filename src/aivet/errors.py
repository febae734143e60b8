"""One exception root, split by who is at fault.

``AivetError`` is the only exception the CLI catches; it prints
``diagnostics()`` and exits with code 2. ``ArtifactError`` means the untrusted
input (a model, a signature, a policy) is bad; ``EnvironmentError_`` means
the environment failed (disk, network, database). Readers of model content do
not raise for hostile input: they turn it into findings (fail closed).
"""

from __future__ import annotations


class AivetError(Exception):
    """Base of every error aivet raises on purpose."""

    def diagnostics(self) -> str:
        """A human explanation, with what to do about it where we know."""
        return str(self)


class UsageError(AivetError):
    """The caller asked for something that cannot be done (bad argument, bad option)."""


class ArtifactError(AivetError):
    """The untrusted artifact itself is bad: a model, a signature bundle, a policy file."""


class EnvironmentFailure(AivetError):
    """The environment failed: a file system, the network, a database."""


class OfflineError(EnvironmentFailure):
    """A network resource was needed but the machine is offline (or HF_HUB_OFFLINE is set)."""


class MissingExtraError(EnvironmentFailure):
    """An optional dependency is needed; the message names the extra to install."""

    def __init__(self, module: str, extra: str, purpose: str) -> None:
        super().__init__(f"{purpose} needs the optional module {module!r}: pip install 'aivet[{extra}]'")
        self.module = module
        self.extra = extra
