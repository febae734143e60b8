"""Policy: risk tiers, licenses, shipped profiles, and the decision they lead to.

``load_policy("default")`` reads a shipped profile or a policy file
(:mod:`aivet.policy.model`); :func:`evaluate` turns Evidence plus the declared
use into a :class:`Decision` (:mod:`aivet.policy.engine`). The format is
documented in docs/policy.md.
"""

from aivet.policy.decision import Decision, Reason, Tier, Verdict
from aivet.policy.engine import evaluate, facts
from aivet.policy.model import FIELDS, SHIPPED_PROFILES, DeclaredUse, Policy, PolicyError, load_policy

__all__ = [
    "FIELDS",
    "SHIPPED_PROFILES",
    "Decision",
    "DeclaredUse",
    "Policy",
    "PolicyError",
    "Reason",
    "Tier",
    "Verdict",
    "evaluate",
    "facts",
    "load_policy",
]
