"""Rules: the stable ids behind every finding.

A :class:`Rule` has a stable id (never reused, never renamed), a short title,
a description of what it detects and why it matters, a default severity and
its MITRE ATLAS technique and CWE where one fits. Each analyzer module
declares the rules it raises in a module-level ``RULES`` tuple; the
catalogue below lists those modules explicitly (no import side effects), and
``aivet rules`` prints it.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from aivet.evidence import Finding, Location, Severity

# MITRE ATLAS techniques used below (https://atlas.mitre.org/techniques/)
ATLAS_SUPPLY_CHAIN_MODEL = "AML.T0010.003"  # ML Supply Chain Compromise: Model
ATLAS_SUPPLY_CHAIN_DATA = "AML.T0010.002"  # ML Supply Chain Compromise: Data
ATLAS_SUPPLY_CHAIN_SOFTWARE = "AML.T0010.001"  # ML Supply Chain Compromise: ML Software
ATLAS_MALICIOUS_PACKAGE = "AML.T0011.001"  # User Execution: Malicious Package
ATLAS_UNSAFE_ARTIFACTS = "AML.T0011.000"  # User Execution: Unsafe ML Artifacts
ATLAS_PROMPT_INJECTION = "AML.T0051"  # LLM Prompt Injection
ATLAS_EVADE = "AML.T0015"  # Evade ML Model (used for scanner evasion)
ATLAS_CREDENTIALS = "AML.T0055"  # Unsecured Credentials


@dataclass(frozen=True)
class Rule:
    id: str
    title: str
    description: str
    severity: Severity
    atlas: tuple[str, ...] = ()
    cwe: tuple[str, ...] = ()

    def finding(
        self,
        location: Location | str,
        message: str,
        *,
        severity: Severity | None = None,
        subject: str = "",
        **details: Any,
    ) -> Finding:
        """Make a finding for this rule (``severity`` overrides the rule's default)."""
        if isinstance(location, str):
            location = Location(location)
        return Finding(
            rule_id=self.id,
            severity=severity or self.severity,
            message=message,
            location=location,
            subject=subject,
            details=details,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "description": self.description,
            "severity": self.severity.value,
            "atlas": list(self.atlas),
            "cwe": list(self.cwe),
        }


# Rules raised by the scan engine itself, for any format.
PARSE_ERROR = Rule(
    "SCAN-PARSE-ERROR",
    "File could not be parsed",
    "The file looks like a model format but is truncated, corrupt or deliberately malformed. "
    "aivet fails closed: a file it cannot read is reported, never passed as clean. Loaders are "
    "often more lenient than parsers, so a malformed file can still carry a working payload.",
    Severity.HIGH,
    (ATLAS_EVADE, ATLAS_UNSAFE_ARTIFACTS),
    ("CWE-20",),
)
LIMIT_EXCEEDED = Rule(
    "SCAN-LIMIT-EXCEEDED",
    "A safety limit stopped the analysis",
    "A bound on untrusted input (size, opcode count, nesting depth, member count) was reached, "
    "so part of the file was not analysed. Raise the limit only for files you trust more.",
    Severity.MEDIUM,
    (ATLAS_EVADE,),
    ("CWE-400",),
)
UNKNOWN_FORMAT = Rule(
    "SCAN-UNKNOWN-FORMAT",
    "Binary file of unknown format",
    "A binary file whose content matches no format aivet understands. It was not analysed. "
    "In --strict mode this is high: model repositories should hold only known formats.",
    Severity.LOW,
    (ATLAS_EVADE,),
    ("CWE-434",),
)
UNSUPPORTED = Rule(
    "SCAN-UNSUPPORTED",
    "Format recognised but not analysable here",
    "The content was recognised but cannot be analysed with the installed extras "
    "(for example 7z without py7zr). The message says what to install.",
    Severity.MEDIUM,
    (ATLAS_EVADE,),
    ("CWE-1104",),
)
SYMLINK_ESCAPE = Rule(
    "REPO-SYMLINK-ESCAPE",
    "Symbolic link leaves the repository",
    "A symbolic link points outside the model repository. Loaders follow it, so a repository "
    "can read (or overwrite) files on the machine that loads it. It was not followed.",
    Severity.HIGH,
    (ATLAS_UNSAFE_ARTIFACTS,),
    ("CWE-59",),
)
NAME_MISMATCH = Rule(
    "SCAN-EXTENSION-MISMATCH",
    "File content does not match its extension",
    "The file name claims one format but the content is another (for example a pickle named "
    ".safetensors). Loaders often dispatch on content, scanners on names: a classic evasion.",
    Severity.MEDIUM,
    (ATLAS_EVADE,),
    ("CWE-646",),
)

POLYGLOT = Rule(
    "SCAN-POLYGLOT",
    "File is valid as two formats at once",
    "The file is one format from its first byte and also a container found elsewhere: an HDF5 file "
    "whose superblock sits after a user block (libhdf5 and h5py look at 512, 1024, 2048... bytes), "
    "or a zip found from its end record (Python's zipfile, and so Keras, accept any prefix). Which "
    "face a loader sees depends on the API it is opened with, so a scanner that reads only the "
    "first one can be shown a harmless file. Both faces are analysed; the file itself is suspect.",
    Severity.MEDIUM,
    (ATLAS_EVADE,),
    ("CWE-434",),
)

ENGINE_RULES = (PARSE_ERROR, LIMIT_EXCEEDED, UNKNOWN_FORMAT, UNSUPPORTED, SYMLINK_ESCAPE, NAME_MISMATCH, POLYGLOT)

# Modules that declare ``RULES``. Listed explicitly so the catalogue is complete and ordered.
RULE_MODULES = (
    "aivet.analyzers.pickle",
    "aivet.analyzers.archive",
    "aivet.analyzers.torch",
    "aivet.analyzers.torch_formats",
    "aivet.analyzers.numpy",
    "aivet.analyzers.keras",
    "aivet.analyzers.keras_hdf5",
    "aivet.analyzers.savedmodel",
    "aivet.analyzers.onnx",
    "aivet.analyzers.gguf",
    "aivet.analyzers.safetensors",
    "aivet.analyzers.pycode",
    "aivet.analyzers.native",
    "aivet.analyzers.config",
    "aivet.analyzers.config_libraries",
    "aivet.analyzers.template",
    "aivet.analyzers.secrets",
    "aivet.analyzers.yaml_config",
    "aivet.provenance.verify",
    "aivet.provenance.bom",
)


@lru_cache(maxsize=1)
def catalogue() -> Mapping[str, Rule]:
    """Every rule aivet can raise, by id."""
    rules: dict[str, Rule] = {}
    for rule in ENGINE_RULES:
        rules[rule.id] = rule
    for name in RULE_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:  # a module not written yet must not break `aivet rules`
            if exc.name != name:
                raise
            continue
        for rule in getattr(module, "RULES", ()):
            if rule.id in rules and rules[rule.id] is not rule:
                raise RuntimeError(f"duplicate rule id {rule.id}")
            rules[rule.id] = rule
    return rules


def get(rule_id: str) -> Rule:
    return catalogue()[rule_id]
