"""The output of policy: a risk tier, a verdict, and the chain of reasons behind them.

A :class:`Decision` is what ``aivet gate`` prints, records in the ledger and
hands to the gateway. Its JSON form (``to_dict``) is a stable interface:
fields are only ever added.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


class Tier(str, enum.Enum):
    """Deployment risk tiers, from least to most restricted (see docs/policy.md)."""

    MINIMAL = "minimal"  # any caller, standard guardrails
    LIMITED = "limited"  # authenticated callers, standard guardrails, obligations shown to users
    ELEVATED = "elevated"  # named teams only, strict guardrails, every call audited
    PROHIBITED = "prohibited"  # must not be deployed

    @property
    def rank(self) -> int:
        return list(Tier).index(self)


class Verdict(str, enum.Enum):
    ALLOW = "allow"
    ALLOW_WITH_OBLIGATIONS = "allow-with-obligations"
    DENY = "deny"

    @property
    def exit_code(self) -> int:
        """0 for allow (with or without obligations), 1 for deny."""
        return 1 if self is Verdict.DENY else 0


@dataclass(frozen=True)
class Reason:
    """One step of the decision: which policy rule fired, what it concluded, and why.

    ``effect`` is ``"deny"``, ``"tier"`` (raised the tier to ``tier``), ``"obligation"``
    or ``"note"``. ``cites`` names the framework items the rule implements
    (``"NIST AI 600-1 MS-2.6"``, ``"OWASP LLM03:2025"``, ``"AML.T0010.003"``).
    ``evidence`` points at what the rule read (``"findings[PICKLE-DANGEROUS-GLOBAL]"``,
    ``"records.license.id"``).
    """

    rule: str
    effect: str
    message: str
    tier: Tier | None = None
    cites: tuple[str, ...] = ()
    evidence: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"rule": self.rule, "effect": self.effect, "message": self.message}
        if self.tier is not None:
            out["tier"] = self.tier.value
        out["cites"] = list(self.cites)
        out["evidence"] = list(self.evidence)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Reason:
        tier = data.get("tier")
        return cls(str(data["rule"]), str(data["effect"]), str(data["message"]),
                   Tier(tier) if tier else None, tuple(data.get("cites", ())), tuple(data.get("evidence", ())))


@dataclass(frozen=True)
class Decision:
    """The policy's answer for one model under one profile."""

    model: str  # the subject: a directory, a hub repo id@revision
    profile: str  # the policy profile that decided (``default``, ``strict``, a file)
    tier: Tier
    verdict: Verdict
    reasons: tuple[Reason, ...] = ()
    obligations: tuple[str, ...] = ()  # plain-language duties of the deployer (license, policy)
    model_digest: str | None = None  # sha256:<manifest root> when known
    evidence_sha256: str | None = None  # digest of the Evidence document the decision read
    extra: Mapping[str, Any] = field(default_factory=dict)  # e.g. the declared intended use

    @property
    def exit_code(self) -> int:
        return self.verdict.exit_code

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "profile": self.profile,
            "tier": self.tier.value,
            "verdict": self.verdict.value,
            "exit_code": self.exit_code,
            "reasons": [r.to_dict() for r in self.reasons],
            "obligations": list(self.obligations),
            "model_digest": self.model_digest,
            "evidence_sha256": self.evidence_sha256,
            "extra": dict(self.extra),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Decision:
        return cls(
            model=str(data["model"]),
            profile=str(data["profile"]),
            tier=Tier(data["tier"]),
            verdict=Verdict(data["verdict"]),
            reasons=tuple(Reason.from_dict(r) for r in data.get("reasons", ())),
            obligations=tuple(data.get("obligations", ())),
            model_digest=data.get("model_digest"),
            evidence_sha256=data.get("evidence_sha256"),
            extra=dict(data.get("extra") or {}),
        )
