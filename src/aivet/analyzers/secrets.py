"""Secrets left in model repositories: API tokens, cloud keys, private keys, passwords in URLs.

A model repository is published for anyone to download, so a credential in
its README, config or remote code is a leaked credential (and a hint that the
publisher's pipeline leaks more). Detection uses provider-specific patterns
with fixed prefixes and lengths, which keeps false positives low; Shannon
entropy is only a supporting signal that turns obvious placeholders
(``hf_xxxx...``, AWS's documented ``...EXAMPLE`` key) into LOW findings.

Secrets are never written into findings: messages and details carry a
redacted form (known prefix, an ellipsis and the last four characters).
:func:`scan_text` is reused by the config and Python analyzers.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace

from aivet.analyzers.context import Context
from aivet.analyzers.engine import Outcome
from aivet.analyzers.source import Source
from aivet.evidence import ArtifactStatus, Location, Severity
from aivet.rules import ATLAS_CREDENTIALS, LIMIT_EXCEEDED, Rule

_CWE_HARDCODED = ("CWE-798",)
_CWE_CLEARTEXT = ("CWE-312",)


def _rule(rule_id: str, title: str, what: str, severity: Severity = Severity.HIGH,
          cwe: tuple[str, ...] = _CWE_HARDCODED) -> Rule:
    why = (" Anyone who downloads the repository can use it; revoke and rotate it, then remove it "
           "from the repository history.")
    return Rule(rule_id, title, what + why, severity, (ATLAS_CREDENTIALS,), cwe)


HF_TOKEN = _rule("SECRET-HF-TOKEN", "Hugging Face access token",
                 "A Hugging Face user access token (hf_...). With write scope it can push to every "
                 "repository its owner can, including replacing model weights.")
OPENAI_KEY = _rule("SECRET-OPENAI-KEY", "OpenAI API key", "An OpenAI API key (sk-..., sk-proj-...).")
ANTHROPIC_KEY = _rule("SECRET-ANTHROPIC-KEY", "Anthropic API key", "An Anthropic API key (sk-ant-...).")
AWS_KEY = _rule("SECRET-AWS-KEY", "AWS access key",
                "An AWS access key id (AKIA/ASIA...) or secret access key. Together they sign requests "
                "to the owner's AWS account.")
GITHUB_TOKEN = _rule("SECRET-GITHUB-TOKEN", "GitHub token",
                     "A GitHub personal access, OAuth, app or refresh token (ghp_, gho_, ghs_, ghu_, ghr_, "
                     "github_pat_).")
GITLAB_TOKEN = _rule("SECRET-GITLAB-TOKEN", "GitLab token", "A GitLab personal access token (glpat-...).")
SLACK_TOKEN = _rule("SECRET-SLACK-TOKEN", "Slack token", "A Slack bot, user or app token (xoxb-, xoxp-, ...).")
GOOGLE_API_KEY = _rule("SECRET-GOOGLE-API-KEY", "Google API key", "A Google Cloud API key (AIza...).",
                       Severity.MEDIUM)
STRIPE_KEY = _rule("SECRET-STRIPE-KEY", "Stripe live secret key", "A Stripe live secret or restricted key.")
PRIVATE_KEY = _rule("SECRET-PRIVATE-KEY", "Private key",
                    "A PEM or OpenSSH private key block (RSA, EC, DSA, OpenSSH, PGP or encrypted). "
                    "It may sign code, open SSH sessions or decrypt traffic.")
JWT = _rule("SECRET-JWT", "JSON Web Token",
            "A signed JSON Web Token. Often a bearer credential for an API session; it may have "
            "expired, which is why the default is medium.", Severity.MEDIUM)
DATABASE_URL = _rule("SECRET-DATABASE-URL", "Password in a database URL",
                     "A connection URL (postgres://, mysql://, mongodb://, redis://, amqp://...) that "
                     "embeds a password.", Severity.HIGH, _CWE_CLEARTEXT)
AZURE_STORAGE = _rule("SECRET-AZURE-STORAGE-KEY", "Azure storage connection string",
                      "An Azure storage connection string with an account key.")

RULES = (HF_TOKEN, OPENAI_KEY, ANTHROPIC_KEY, AWS_KEY, GITHUB_TOKEN, GITLAB_TOKEN, SLACK_TOKEN,
         GOOGLE_API_KEY, STRIPE_KEY, PRIVATE_KEY, JWT, DATABASE_URL, AZURE_STORAGE)


@dataclass(frozen=True)
class Secret:
    """One secret found in a text: what it is, where, and a redacted form safe to print."""

    rule: Rule
    kind: str
    start: int  # character offset in the text
    end: int
    redacted: str
    entropy: float
    placeholder: bool  # looks like documentation or a template, not a live credential
    extra: tuple[tuple[str, str], ...] = ()


# -- patterns ---------------------------------------------------------------------------------
# Each starts with a fixed prefix so the regex engine can skip quickly through large files (a
# leading look-behind would defeat that optimisation, so the left boundary is checked in code);
# boundaries keep a token from matching inside a longer identifier.
_E = r"(?![A-Za-z0-9_\-])"
_WORD = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")


@dataclass(frozen=True)
class _Detector:
    rule: Rule
    kind: str
    pattern: re.Pattern[str]
    prefix_len: int  # characters of the fixed prefix kept when redacting
    body_group: int = 0  # the group whose entropy is measured
    check: Callable[[re.Match[str], str], Secret | None] | None = None


def _d(rule: Rule, kind: str, pattern: str, prefix_len: int, body_group: int = 0,
       check: Callable[[re.Match[str], str], Secret | None] | None = None) -> _Detector:
    return _Detector(rule, kind, re.compile(_left_bounded(pattern)), prefix_len, body_group, check)


_LITERAL_HEAD = re.compile(r"[A-Za-z0-9_]+(?:-[A-Za-z0-9_]+)*-?")


def _left_bounded(pattern: str) -> str:
    """``pattern`` with a left-boundary look-behind placed just after its literal prefix.

    A match inside a longer identifier is rejected anyway (the check in :func:`find_secrets`),
    but without this each start inside a run such as ``eyJeyJeyJ...`` would scan the whole
    bounded body again (thousands of steps per character). After the prefix, the look-behind
    keeps the engine's fast literal search and rejects those starts at once.
    """
    head = _LITERAL_HEAD.match(pattern)
    if head is None or len(head.group(0)) < 2:
        return pattern
    lit = head.group(0)
    return f"{lit}(?<![A-Za-z0-9_\\-]{re.escape(lit)}){pattern[len(lit):]}"


def shannon_entropy(text: str) -> float:
    """Bits per character of ``text`` (0.0 for an empty string)."""
    if not text:
        return 0.0
    n = len(text)
    return -sum(c / n * math.log2(c / n) for c in Counter(text).values())


def redact(secret: str, keep_prefix: int = 4) -> str:
    """Show only a known prefix and the last four characters: ``hf_…WXYZ``."""
    if len(secret) <= keep_prefix + 8:
        return secret[: min(keep_prefix, 3)] + "…"
    return f"{secret[:keep_prefix]}…{secret[-4:]}"


_PLACEHOLDER_WORDS = ("example", "xxxx", "your", "placeholder", "dummy", "redacted", "changeme", "sample",
                      "fake", "test")


def _is_placeholder(body: str, entropy: float) -> bool:
    lower = body.lower()
    if any(w in lower for w in _PLACEHOLDER_WORDS):
        return True
    # Real tokens are random: a long body with few distinct characters is a template.
    return entropy < 3.0 or len(set(body)) < 10


def _check_private_key(m: re.Match[str], text: str) -> Secret | None:
    # A key block has a base64 body after the header; a sentence naming the header does not.
    after = text[m.end(): m.end() + 400]
    if not re.search(r"[A-Za-z0-9+/=]{40,}", after):
        return None
    body = re.search(r"[A-Za-z0-9+/=]{40,}", after)
    entropy = shannon_entropy(body.group(0)) if body else 0.0
    return Secret(PRIVATE_KEY, "private-key", m.start(), m.end(), m.group(0) + "…", entropy, entropy < 3.0,
                  (("key_type", (m.group(1) or "").strip() or "PKCS8"),))


def _b64url_json(part: str) -> object:
    padded = part + "=" * (-len(part) % 4)
    try:
        return json.loads(base64.urlsafe_b64decode(padded))
    except (ValueError, binascii.Error):
        return None


def _check_jwt(m: re.Match[str], text: str) -> Secret | None:
    token = m.group(0)
    header = _b64url_json(token.split(".", 1)[0])
    if not isinstance(header, dict) or "alg" not in header:
        return None
    sig = token.rsplit(".", 1)[1]
    entropy = shannon_entropy(sig)
    alg = str(header.get("alg"))
    return Secret(JWT, "jwt", m.start(), m.end(), redact(token, 3), entropy,
                  alg.lower() == "none" or entropy < 3.0, (("alg", alg[:20]),))


_DB_PLACEHOLDER_PASSWORDS = frozenset(
    "password pass passwd pwd secret changeme pass123 password123 xxx xxxx xxxxx xxxxxx *** **** ***** "
    "****** mysecretpassword yourpassword example root admin test".split())
_LOCAL_HOSTS = ("localhost", "127.0.0.1", "0.0.0.0", "::1", "host", "hostname", "example.com", "db", "database")


_DB_SCHEME = re.compile(r"(?i)(?<![A-Za-z0-9+])(postgres(?:ql)?|mysql|mariadb|mongodb(?:\+srv)?|rediss?|amqps?|mssql"
                        r"|sqlserver|oracle)\Z")


def _check_db_url(m: re.Match[str], text: str) -> Secret | None:
    # The pattern starts at "://" (fast to find); the scheme is checked looking back from it.
    scheme_match = _DB_SCHEME.search(text, max(0, m.start() - 16), m.start())
    if scheme_match is None:
        return None
    scheme, user, password, host = scheme_match.group(1), m.group(1), m.group(2), m.group(3)
    lower = password.lower()
    if (lower in _DB_PLACEHOLDER_PASSWORDS or password.startswith(("$", "{", "<", "%", "["))
            or "xxx" in lower or "your" in lower or "***" in password):
        return None
    local = host.lower().split(":")[0] in _LOCAL_HOSTS or host.lower().endswith((".example.com", ".local"))
    redacted = f"{scheme}://{user}:****@{host}"
    return Secret(DATABASE_URL, "database-url", scheme_match.start(), m.end(), redacted,
                  shannon_entropy(password), local, (("scheme", scheme), ("host", host[:100])))


def _check_azure(m: re.Match[str], text: str) -> Secret | None:
    key = m.group(2)
    # The storage emulator's documented development key is public, not a leak.
    placeholder = key.startswith("Eby8vdM02xNOcqFl") or _is_placeholder(key, shannon_entropy(key))
    return Secret(AZURE_STORAGE, "azure-storage-key", m.start(), m.end(),
                  f"AccountName={m.group(1)};AccountKey={redact(key, 0)}", shannon_entropy(key), placeholder,
                  (("account", m.group(1)[:64]),))


_DETECTORS: tuple[_Detector, ...] = (
    _d(HF_TOKEN, "huggingface-token", r"hf_[A-Za-z0-9]{34,64}" + _E, 3),
    _d(ANTHROPIC_KEY, "anthropic-key", r"sk-ant-[A-Za-z0-9]{2,10}-[A-Za-z0-9_\-]{32,200}" + _E, 7),
    _d(OPENAI_KEY, "openai-key",
       r"sk-(?!ant-)(?:proj-|svcacct-|admin-)?(?=[A-Za-z0-9_\-]{0,200}[0-9])"
       r"(?=[A-Za-z0-9_\-]{0,200}[A-Z])[A-Za-z0-9_\-]{32,200}" + _E, 3),
    _d(AWS_KEY, "aws-access-key-id", r"A(?:KIA|SIA)[A-Z0-9]{16}(?![A-Z0-9])", 4),
    _d(AWS_KEY, "aws-secret-access-key",
       r"(?:aws_secret_access_key|AWS_SECRET_ACCESS_KEY|awsSecretAccessKey|aws_secret_key|AWS_SECRET_KEY)[\"']?\s*[:=]\s*[\"']?([A-Za-z0-9/+]{40})(?![A-Za-z0-9/+])", 0, 1),
    _d(GITHUB_TOKEN, "github-token", r"gh[pousr]_[A-Za-z0-9]{36,76}" + _E, 4),
    _d(GITHUB_TOKEN, "github-fine-grained-token", r"github_pat_[A-Za-z0-9_]{60,100}" + _E, 11),
    _d(GITLAB_TOKEN, "gitlab-token", r"glpat-[A-Za-z0-9_\-]{20,64}" + _E, 6),
    _d(SLACK_TOKEN, "slack-token", r"xox[baprs]-[0-9A-Za-z]{6,}-[0-9A-Za-z\-]{8,200}" + _E, 5),
    _d(GOOGLE_API_KEY, "google-api-key", r"AIza[0-9A-Za-z_\-]{35}" + _E, 4),
    _d(STRIPE_KEY, "stripe-key", r"sk_live_[0-9A-Za-z]{24,128}" + _E, 8),
    _d(STRIPE_KEY, "stripe-restricted-key", r"rk_live_[0-9A-Za-z]{24,128}" + _E, 8),
    _d(PRIVATE_KEY, "private-key",
       r"-----BEGIN ((?:RSA |EC |OPENSSH |DSA |ENCRYPTED |PGP )?)PRIVATE KEY(?: BLOCK)?-----", 0,
       check=_check_private_key),
    _d(JWT, "jwt", r"eyJ[A-Za-z0-9_\-]{8,2000}\.eyJ[A-Za-z0-9_\-]{8,8000}\.[A-Za-z0-9_\-]{16,2000}" + _E, 3,
       check=_check_jwt),
    _d(DATABASE_URL, "database-url",
       r"://([^:/?#@\s'\"]{1,128}):([^@/?#\s'\"]{1,256})@([^/?#\s'\"]{1,255})", 0, check=_check_db_url),
    _d(AZURE_STORAGE, "azure-storage-key",
       r"AccountName=([^;\s'\"]{1,64});\s*AccountKey=([A-Za-z0-9+/=]{40,128})", 0, check=_check_azure),
)
_AWS_SECRET_NEAR = re.compile(r"(?<![A-Za-z0-9/+])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])")


# Limits.max_secret_candidates bounds the pattern matches examined per detector and text. Each
# costs Python work (entropy, a JWT header decoded, the window around an AWS key id), so a file
# made of token-shaped strings would otherwise cost seconds per megabyte; the default is far
# more than are ever reported (max_findings_per_file).


def find_secrets(text: str) -> list[Secret]:
    """Every secret in ``text``, in order of position (no overlaps)."""
    return search_secrets(text, None)[0]


def search_secrets(text: str, max_candidates: int | None) -> tuple[list[Secret], bool]:
    """The secrets in ``text`` in order of position, and whether the search stopped early.

    At most ``max_candidates`` matches of each detector are examined (``None``: all); when a
    detector has more, the second value is true and later secrets may be missing.
    """
    found: list[Secret] = []
    stopped = False
    for det in _DETECTORS:
        for n, m in enumerate(det.pattern.finditer(text)):
            if max_candidates is not None and n >= max_candidates:
                stopped = True
                break
            if det.rule is not DATABASE_URL and m.start() > 0 and text[m.start() - 1] in _WORD:
                continue
            if det.check is not None:
                secret = det.check(m, text)
                if secret is None:
                    continue
            else:
                token = m.group(det.body_group)
                body = token[det.prefix_len:] if det.body_group == 0 else token
                entropy = shannon_entropy(body)
                secret = Secret(det.rule, det.kind, m.start(det.body_group), m.end(det.body_group),
                                redact(token, det.prefix_len if det.prefix_len else 4), entropy,
                                _is_placeholder(body, entropy))
                if det.kind == "aws-access-key-id":
                    secret = _with_nearby_aws_secret(secret, text)
            found.append(secret)
    found.sort(key=lambda s: (s.start, -(s.end - s.start)))
    kept: list[Secret] = []
    for s in found:  # an Anthropic key also looks like an OpenAI one, a JWT may hold a token: keep the first
        if kept and s.start < kept[-1].end:
            continue
        kept.append(s)
    return kept, stopped


def _with_nearby_aws_secret(secret: Secret, text: str) -> Secret:
    window = text[max(0, secret.start - 300): secret.end + 300]
    for m in _AWS_SECRET_NEAR.finditer(window):
        candidate = m.group(0)
        if shannon_entropy(candidate) > 4.0 and re.search(r"[a-z]", candidate) and re.search(r"[A-Z]", candidate):
            return replace(secret, extra=secret.extra + (("secret_access_key_nearby", redact(candidate, 0)),))
    return secret


_REDACT_ANY = re.compile("|".join(f"(?:{d.pattern.pattern.replace('(?i)', '')})" for d in _DETECTORS
                                  if d.check is None and "(?i)" not in d.pattern.pattern))


def redact_text(text: str) -> str:
    """``text`` with every token-shaped secret replaced by its redacted form (for messages)."""
    return _REDACT_ANY.sub(lambda m: redact(m.group(0)), text)


def scan_text(text: str, location_base: Location, ctx: Context) -> int:
    """Report the secrets in ``text`` as findings; returns how many were reported.

    ``location_base`` says where ``text`` sits: its ``line`` (1-based, the line of
    the text's first character) is added to line numbers inside the text; with a
    ``pointer`` and no line (a JSON string value) findings keep the pointer only.
    """
    return scan_text_bounded(text, location_base, ctx)[0]


def scan_text_bounded(text: str, location_base: Location, ctx: Context) -> tuple[int, bool]:
    """:func:`scan_text`, also saying whether the search was cut short (the caller's artifact is then PARTIAL).

    A cut-short search adds a LIMIT-EXCEEDED finding itself.
    """
    max_candidates = ctx.limits.max_secret_candidates
    secrets, stopped = search_secrets(text, max_candidates)
    if stopped:
        ctx.add(LIMIT_EXCEEDED.finding(
            location_base, f"more than {max_candidates} candidate matches of one secret pattern; the search "
            "stopped there and later secrets may be missing", limit="max_secret_candidates"))
    if not secrets:
        return 0, stopped
    cap = ctx.limits.max_findings_per_file
    newlines, counted_to = 0, 0  # line numbers by counting forward: the secrets are in order
    for n, s in enumerate(secrets):
        if n >= cap:
            more = "at least " if stopped else ""
            ctx.add(LIMIT_EXCEEDED.finding(location_base, f"{more}{len(secrets) - cap} more secrets not reported",
                                           limit="max_findings_per_file"))
            break
        newlines += text.count("\n", counted_to, s.start)
        counted_to = s.start
        line: int | None = newlines + 1
        if location_base.line is not None:
            line = location_base.line + (line or 1) - 1
        elif location_base.pointer is not None:
            line = None
        where = Location(location_base.path, offset=None, line=line, pointer=location_base.pointer)
        severity = Severity.LOW if s.placeholder else None
        hint = " (looks like a placeholder)" if s.placeholder else ""
        ctx.add(s.rule.finding(where, f"{s.rule.title}: {s.redacted}{hint}", severity=severity,
                               kind=s.kind, redacted=s.redacted, entropy=round(s.entropy, 2),
                               placeholder=s.placeholder, **dict(s.extra)))
    return min(len(secrets), cap), stopped


def read_text(source: Source, limit: int) -> tuple[str, bool]:
    """Read at most ``limit`` bytes of ``source`` as text (undecodable bytes replaced).

    Returns ``(text, truncated)``.
    """
    with source.open() as fh:
        data = fh.read(limit + 1)
    truncated = len(data) > limit
    return data[:limit].decode("utf-8", "replace"), truncated


def analyze_text(source: Source, ctx: Context) -> Outcome:
    """Analyzer for plain text files (README, licences, YAML, notes): report secrets."""
    limit = ctx.limits.max_text_file_bytes
    text, truncated = read_text(source, limit)
    _, stopped = scan_text_bounded(text, ctx.location(source), ctx)
    if truncated:
        ctx.add(LIMIT_EXCEEDED.finding(
            ctx.location(source, offset=limit),
            f"text file larger than {limit} bytes; only the first {limit} bytes were searched for secrets",
            limit="max_text_file_bytes"))
        return Outcome("text", ArtifactStatus.PARTIAL, "truncated")
    if stopped:
        return Outcome("text", ArtifactStatus.PARTIAL, "secret search stopped early")
    return Outcome("text")
