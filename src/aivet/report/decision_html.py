"""The HTML decision report: one self-contained file people attach to a review.

Order follows the reader's question, "may we deploy this model, and why?":
the verdict in large type and colour with the tier and what it means; then
*Why* (the policy's reasons in order); then *Obligations*; then the evidence
behind it (findings by severity, signature, license, origin, lineage, BOM,
files not fully analysed); then a footer with versions, times and digests.

Everything that came from a model repository (file names, messages, pickle
arguments, license texts) is attacker-controlled. Every string passes through
:func:`_text` (lone surrogates, control and bidi-override characters made
visible, then :func:`html.escape`) — there is no other path into the page. As a
second wall, a ``Content-Security-Policy`` meta allows no scripts at all and
only the one stylesheet the renderer wrote (by its SHA-256), so markup that
somehow slipped through could neither run nor restyle the page.

The output is bounded whatever the evidence holds: at most
:data:`MAX_FINDINGS_PER_SEVERITY` findings per severity, :data:`MAX_ITEMS`
entries per list or mapping, :data:`MAX_DEPTH` levels of nesting and
:data:`MAX_TEXT` characters per value
(:data:`MAX_LINE` per message or path); what is cut is counted on the page.
"""

from __future__ import annotations

import base64
import datetime as _dt
import hashlib
import html
import json
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from aivet import __version__
from aivet.evidence import Artifact, Evidence, Finding, Record, Severity, Subject
from aivet.policy.decision import Decision, Reason, Tier, Verdict
from aivet.report import not_fully_analysed, utf8_safe

__all__ = ["render_html", "TIER_MEANING", "VERDICT_HEADLINE"]

MAX_FINDINGS_PER_SEVERITY = 200  # a hostile file can raise thousands; the JSON report keeps them all
MAX_ITEMS = 40  # entries shown per list or mapping in record data and finding details
MAX_DEPTH = 4  # nesting shown in record data; deeper values are summarised
MAX_TEXT = 400  # characters shown per value in record data and finding details
MAX_LINE = 2000  # characters shown of any other string (messages, paths, reasons)
MAX_GAPS = 200  # files-not-fully-analysed rows

VERDICT_HEADLINE: Mapping[Verdict, tuple[str, str]] = {
    Verdict.DENY: ("Deny", "Do not deploy this model."),
    Verdict.ALLOW_WITH_OBLIGATIONS: ("Allow with obligations",
                                     "Deploy only if every obligation below is met."),
    Verdict.ALLOW: ("Allow", "May be deployed under the guardrails of its tier."),
}

TIER_MEANING: Mapping[Tier, str] = {
    Tier.MINIMAL: "any caller, standard guardrails",
    Tier.LIMITED: "authenticated callers only, standard guardrails, obligations shown to users",
    Tier.ELEVATED: "named teams only, strict guardrails, every call audited",
    Tier.PROHIBITED: "must not be deployed",
}

_EFFECT_LABEL = {"deny": "Deny", "tier": "Tier", "obligation": "Obligation", "note": "Note"}

# Record kinds with their own section, in page order; other kinds go under "Other records".
_RECORD_SECTIONS = (
    ("signature", "Signature"),
    ("license", "License"),
    ("origin", "Origin"),
    ("lineage", "Lineage"),
    ("bom", "Bill of materials"),
)

# Signature statuses and how they read; anything else is shown as a warning.
_SIGNATURE_TONE = {"verified": "ok", "signed": "ok", "partially-verified": "warn", "failed": "bad",
                   "unsigned": "warn", "missing": "warn"}

# Characters that would let a hostile name reorder or hide what is around it (Trojan Source,
# CVE-2021-42574) or that HTML forbids; shown as visible escapes instead.
_UNSAFE = {c: f"\\x{c:02x}" for c in [*range(0x00, 0x20), 0x7F, *range(0x80, 0xA0)] if c not in (0x09, 0x0A)}
_UNSAFE.update({c: f"\\u{c:04x}" for c in [0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F),
                                              *range(0x2066, 0x206A), 0xFEFF]})

_CSS = """
:root { color-scheme: light; --ink: #1f2937; --muted: #4b5563; --rule: #d1d5db; --paper: #ffffff;
  --deny: #b91c1c; --oblige: #b45309; --allow: #15803d; }
* { box-sizing: border-box; }
html { background: var(--paper); }
body { margin: 0; color: var(--ink); font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto,
  "DejaVu Sans", sans-serif; }
main, .banner-inner, footer { max-width: 1080px; margin: 0 auto; padding: 0 24px; }
code, .mono { font-family: ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace; font-size: 0.92em; }
.wrap, code, dd, .msg, td { overflow-wrap: anywhere; }
.banner { color: #ffffff; padding: 28px 0 24px; border-bottom: 6px solid rgba(0, 0, 0, 0.25); }
.verdict-deny { background: var(--deny); }
.verdict-allow-with-obligations { background: var(--oblige); }
.verdict-allow { background: var(--allow); }
.kicker { margin: 0; font-size: 0.85rem; letter-spacing: 0.08em; text-transform: uppercase; opacity: 0.95; }
.verdict { margin: 4px 0 6px; font-size: 3rem; line-height: 1.1; font-weight: 800; }
.verdict .mark { display: inline-block; width: 1.1em; }
.advice { margin: 0 0 14px; font-size: 1.25rem; font-weight: 600; }
.facts { display: grid; grid-template-columns: max-content 1fr; gap: 2px 16px; margin: 0; }
.facts dt { font-weight: 700; }
.facts dd { margin: 0; }
.tier-pill { display: inline-block; padding: 0 10px; border: 2px solid #ffffff; border-radius: 999px;
  font-weight: 800; text-transform: uppercase; letter-spacing: 0.04em; }
h2 { margin: 32px 0 10px; padding-bottom: 4px; border-bottom: 2px solid var(--rule); font-size: 1.45rem; }
h3 { margin: 22px 0 8px; font-size: 1.15rem; }
h4 { margin: 14px 0 6px; font-size: 1rem; }
.muted { color: var(--muted); }
ol.reasons, ul.findings { padding: 0; list-style: none; }
ol.reasons { counter-reset: reason; }
.reasons li { counter-increment: reason; position: relative; padding: 10px 12px 10px 48px;
  border: 1px solid var(--rule); border-left-width: 6px; border-radius: 6px; margin: 0 0 8px; }
.reasons li::before { content: counter(reason); position: absolute; left: 14px; top: 10px; font-weight: 800;
  color: var(--muted); }
.reasons li.effect-deny { border-left-color: var(--deny); }
.reasons li.effect-tier, .reasons li.effect-obligation { border-left-color: var(--oblige); }
.reasons li.effect-note { border-left-color: #6b7280; }
.effect { display: inline-block; min-width: 6.5em; padding: 0 8px; margin-right: 6px; border-radius: 4px;
  font-size: 0.8rem; font-weight: 800; text-transform: uppercase; text-align: center;
  background: #e5e7eb; color: #111827; }
.effect-deny .effect { background: var(--deny); color: #ffffff; }
.effect-tier .effect, .effect-obligation .effect { background: #fde68a; color: #78350f; }
.msg { margin: 4px 0; white-space: pre-wrap; }
.cites { margin: 4px 0 0; font-size: 0.85rem; color: var(--muted); }
.cite { display: inline-block; padding: 0 6px; margin: 2px 4px 0 0; border: 1px solid var(--rule);
  border-radius: 4px; color: var(--ink); background: #f9fafb; }
ul.obligations li { margin: 0 0 6px; }
.counts { display: flex; flex-wrap: wrap; gap: 8px; margin: 8px 0 4px; padding: 0; list-style: none; }
.badge { display: inline-block; min-width: 5.6em; padding: 1px 8px; border-radius: 4px; text-align: center;
  font-size: 0.78rem; font-weight: 800; letter-spacing: 0.04em; text-transform: uppercase;
  border: 1px solid transparent; }
.sev-critical { background: #7f1d1d; color: #ffffff; }
.sev-high { background: #c2410c; color: #ffffff; }
.sev-medium { background: #fde68a; color: #713f12; border-color: #d97706; }
.sev-low { background: #dbeafe; color: #1e3a8a; border-color: #93c5fd; }
.sev-info { background: #f3f4f6; color: #374151; border-color: #d1d5db; }
.finding { padding: 8px 12px; margin: 0 0 8px; border: 1px solid var(--rule); border-radius: 6px; }
.finding .rule { font-weight: 700; }
.where { margin: 2px 0; font-size: 0.88rem; color: var(--muted); }
dl.data { display: grid; grid-template-columns: minmax(8em, max-content) 1fr; gap: 2px 14px; margin: 4px 0;
  font-size: 0.9rem; }
dl.data dt { color: var(--muted); font-weight: 600; }
dl.data dd { margin: 0; }
dl.data dl.data { margin: 0; padding-left: 8px; border-left: 2px solid var(--rule); }
ul.data { margin: 0; padding-left: 18px; }
.card { padding: 10px 14px; margin: 0 0 10px; border: 1px solid var(--rule); border-radius: 6px; }
.card > :first-child { margin-top: 0; }
.card p { margin: 4px 0; }
.status { display: inline-block; padding: 0 8px; border-radius: 4px; font-weight: 800; }
.tone-ok { background: #dcfce7; color: #14532d; }
.tone-warn { background: #fef3c7; color: #78350f; }
.tone-bad { background: #fee2e2; color: #7f1d1d; }
.conflict { padding: 6px 10px; margin: 6px 0; border-left: 5px solid var(--deny); background: #fef2f2; }
table { width: 100%; border-collapse: collapse; font-size: 0.9rem; }
th, td { text-align: left; vertical-align: top; padding: 4px 8px; border-bottom: 1px solid var(--rule); }
th { background: #f3f4f6; }
footer { margin-top: 40px; padding-top: 12px; padding-bottom: 24px; border-top: 2px solid var(--rule);
  font-size: 0.85rem; color: var(--muted); }
footer dl.data dt { color: var(--muted); }
@media print {
  body { font-size: 10.5pt; }
  * { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
  .banner { padding: 14px 0; }
  main, .banner-inner, footer { max-width: none; padding: 0 8mm; }
  .finding, .reasons li, .card, tr { break-inside: avoid; }
  h2, h3 { break-after: avoid; }
}
"""

_CSP = ("default-src 'none'; style-src 'sha256-"
        + base64.b64encode(hashlib.sha256(_CSS.encode("utf-8")).digest()).decode("ascii")
        + "'; img-src 'none'; script-src 'none'; base-uri 'none'; form-action 'none'")


def render_html(decision: Decision, evidence: Evidence, *, title: str | None = None,
                generated: str | None = None) -> str:
    """Render ``decision`` and the ``evidence`` it read as one self-contained HTML5 page.

    ``title`` defaults to "aivet decision: <verdict> — <model>". ``generated`` is the
    time shown in the footer (ISO 8601); it defaults to now, and tests pin it.
    The page has no scripts, no external resources and escapes every string.
    """
    headline = VERDICT_HEADLINE[decision.verdict][0]
    page_title = title if title is not None else f"aivet decision: {headline} — {decision.model}"
    when = generated or _dt.datetime.now(_dt.UTC).replace(microsecond=0).isoformat().replace(
        "+00:00", "Z")
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">',
        '<meta name="referrer" content="no-referrer">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_text(page_title)}</title>",
        f"<style>{_CSS}</style>",
        "</head>",
        "<body>",
        _banner(decision, evidence),
        "<main>",
        _why(decision.reasons),
        _obligations(decision),
        _evidence(evidence),
        "</main>",
        _footer(decision, evidence, when),
        "</body>",
        "</html>",
    ]
    return "\n".join(parts) + "\n"


# -- header ------------------------------------------------------------------------------------


def _banner(decision: Decision, evidence: Evidence) -> str:
    headline, advice = VERDICT_HEADLINE[decision.verdict]
    mark = {"deny": "✗", "allow-with-obligations": "!", "allow": "✓"}[decision.verdict.value]
    facts = [
        ("Model", f'<span class="wrap">{_text(decision.model)}</span>'),
        ("Tier", f'<span class="tier-pill">{_text(decision.tier.value)}</span> '
                 f"{_text(TIER_MEANING[decision.tier])}"),
        ("Profile", _text(decision.profile)),
        ("Evidence", _text(_evidence_line(evidence))),
    ]
    rows = "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in facts)
    return (
        f'<header class="banner verdict-{decision.verdict.value}" id="verdict-banner">'
        '<div class="banner-inner">'
        '<p class="kicker">aivet deployment decision</p>'
        f'<h1 class="verdict" id="verdict"><span class="mark" aria-hidden="true">{mark}</span>'
        f"{_text(headline)}</h1>"
        f'<p class="advice">{_text(advice)}</p>'
        f'<dl class="facts">{rows}</dl>'
        "</div></header>"
    )


def _evidence_line(evidence: Evidence) -> str:
    files = len({(a.subject, a.path.split("!", 1)[0]) for a in evidence.artifacts})
    text = f"{files} file{'' if files == 1 else 's'} scanned, {_count_text(evidence.findings)}"
    gaps = len(not_fully_analysed(evidence))
    if gaps:
        text += f", {gaps} not fully analysed"
    return text


def _count_text(findings: Iterable[Finding]) -> str:
    counts = Counter(f.severity for f in findings)
    if not counts:
        return "no findings"
    total = sum(counts.values())
    per = ", ".join(f"{counts[s]} {s.value}" for s in sorted(counts, reverse=True))
    return f"{total} finding{'' if total == 1 else 's'} ({per})"


# -- why and obligations -------------------------------------------------------------------------


def _why(reasons: tuple[Reason, ...]) -> str:
    out = ['<section aria-labelledby="why"><h2 id="why">Why</h2>']
    if not reasons:
        out.append('<p class="muted">The policy recorded no reasons.</p></section>')
        return "".join(out)
    out.append('<ol class="reasons">')
    for r in reasons:
        effect = r.effect.lower()
        css = effect if effect in _EFFECT_LABEL else "note"
        label = _EFFECT_LABEL.get(effect, r.effect)
        if r.tier is not None:
            label += f" → {r.tier.value}"
        out.append(f'<li class="effect-{css}"><span class="effect">{_text(label)}</span>'
                   f'<code>{_text(r.rule)}</code><p class="msg">{_text(r.message)}</p>')
        if r.cites:
            cites = "".join(f'<span class="cite">{_text(c)}</span>' for c in r.cites[:MAX_ITEMS])
            out.append(f'<p class="cites">Implements: {cites}</p>')
        if r.evidence:
            refs = ", ".join(f"<code>{_text(e)}</code>" for e in r.evidence[:MAX_ITEMS])
            out.append(f'<p class="cites">Read: {refs}</p>')
        out.append("</li>")
    out.append("</ol></section>")
    return "".join(out)


def _obligations(decision: Decision) -> str:
    out = ['<section aria-labelledby="obligations"><h2 id="obligations">Obligations</h2>']
    if decision.obligations:
        out.append('<ul class="obligations">')
        out.extend(f"<li>{_text(o)}</li>" for o in decision.obligations)
        out.append("</ul>")
    else:
        out.append('<p class="muted">None: the policy places no duties on the deployer.</p>')
    if decision.extra:
        out.append('<h3>Decision context</h3>')
        out.append(_data(decision.extra, 0))
    out.append("</section>")
    return "".join(out)


# -- evidence ---------------------------------------------------------------------------------------


def _evidence(evidence: Evidence) -> str:
    out = ['<section aria-labelledby="evidence"><h2 id="evidence">Evidence</h2>']
    out.append(_subjects(evidence.subjects))
    out.append(_findings(evidence))
    by_kind: dict[str, list[Record]] = {}
    for rec in evidence.records:
        by_kind.setdefault(rec.kind, []).append(rec)
    for kind, heading in _RECORD_SECTIONS:
        out.append(_records(kind, heading, by_kind.pop(kind, [])))
    if by_kind:
        out.append('<h3 id="records-other">Other records</h3>')
        for kind, recs in sorted(by_kind.items()):
            out.append(f"<h4>{_text(kind)}</h4>")
            out.extend(_record_card(kind, r) for r in recs[:MAX_ITEMS])
    out.append(_gaps(evidence))
    out.append("</section>")
    return "".join(out)


def _subjects(subjects: tuple[Subject, ...]) -> str:
    if not subjects:
        return ""
    rows = []
    for s in subjects:
        ref = f"{s.repo_id} @ {s.revision or '?'}" if s.repo_id else ""
        rows.append(f"<tr><td><code>{_text(s.id)}</code></td><td>{_text(s.kind)}</td>"
                    f"<td class=\"wrap\">{_text(s.location)}</td><td>{_text(ref)}</td></tr>")
    return ('<h3 id="subjects">Models</h3><table><thead><tr><th scope="col">Subject</th><th scope="col">Kind</th>'
            '<th scope="col">Location</th><th scope="col">Hub revision</th></tr></thead><tbody>'
            + "".join(rows[:MAX_ITEMS]) + "</tbody></table>" + _more(len(rows), MAX_ITEMS, "models"))


def _findings(evidence: Evidence) -> str:
    out = ['<h3 id="findings">Findings</h3>']
    if not evidence.findings:
        out.append('<p>No findings.</p>')
        return "".join(out)
    counts = Counter(f.severity for f in evidence.findings)
    out.append('<ul class="counts" aria-label="Findings by severity">')
    for sev in sorted(Severity, reverse=True):
        out.append(f'<li><span class="badge sev-{sev.value}">{sev.value}</span> {counts.get(sev, 0)}</li>')
    out.append("</ul>")
    titles = _rule_titles()
    many = len(evidence.subjects) > 1
    for sev in sorted(counts, reverse=True):
        group = sorted((f for f in evidence.findings if f.severity is sev),
                       key=lambda f: (f.location.path, f.location.offset or 0, f.location.line or 0))
        out.append(f'<h4 id="sev-{sev.value}">{sev.value.capitalize()} ({len(group)})</h4><ul class="findings">')
        out.extend(_finding(f, titles.get(f.rule_id), many) for f in group[:MAX_FINDINGS_PER_SEVERITY])
        out.append("</ul>")
        out.append(_more(len(group), MAX_FINDINGS_PER_SEVERITY, f"{sev.value} findings (see the JSON report)"))
    return "".join(out)


def _finding(f: Finding, title: str | None, many_subjects: bool) -> str:
    head = (f'<span class="badge sev-{f.severity.value}">{f.severity.value}</span> '
            f'<code class="rule">{_text(f.rule_id)}</code>')
    if title:
        head += f" — {_text(title)}"
    where = _where(f)
    if many_subjects and f.subject:
        where += f" in {_text(f.subject)}"
    details = _data(f.details, 1) if f.details else ""
    return (f'<li class="finding">{head}<p class="msg">{_text(f.message)}</p>'
            f'<p class="where">at {where}</p>{details}</li>')


def _where(f: Finding) -> str:
    loc = f.location
    parts = [f"<code>{_text(loc.path)}</code>"]
    if loc.line is not None:
        parts.append(f"line {loc.line}")
    if loc.offset is not None:
        parts.append(f"byte offset {loc.offset}")
    if loc.pointer:
        parts.append(f"key <code>{_text(loc.pointer)}</code>")
    return ", ".join(parts)


def _rule_titles() -> Mapping[str, str]:
    """Rule titles from the catalogue; the report must still render if a module is broken."""
    from aivet import rules

    try:
        return {rid: rule.title for rid, rule in rules.catalogue().items()}
    except (ImportError, RuntimeError):
        return {}


def _records(kind: str, heading: str, recs: list[Record]) -> str:
    out = [f'<h3 id="records-{kind}">{_text(heading)}</h3>']
    if not recs:
        out.append(f'<p class="muted">No {_text(heading.lower())} record in the evidence.</p>')
        return "".join(out)
    out.extend(_record_card(kind, r) for r in recs[:MAX_ITEMS])
    out.append(_more(len(recs), MAX_ITEMS, f"{kind} records"))
    return "".join(out)


def _record_card(kind: str, rec: Record) -> str:
    data = dict(rec.data)
    head: list[str] = []
    if rec.subject:
        head.append(f'<p class="muted">Model <code>{_text(rec.subject)}</code></p>')
    if kind == "signature" and "status" in data:
        status = str(data.pop("status"))
        tone = _SIGNATURE_TONE.get(status, "warn")
        head.append(f'<p>Status: <span class="status tone-{tone}">{_text(status)}</span></p>')
    elif kind == "license":
        head.extend(_license_head(data))
    return f'<div class="card">{"".join(head)}{_data(data, 0) if data else ""}</div>'


def _license_head(data: dict[str, Any]) -> list[str]:
    """License id, obligations and conflicts up front; the rest of the record follows generically."""
    out = []
    for key in ("id", "spdx_id", "spdx", "license"):
        if isinstance(data.get(key), str):
            out.append(f'<p>License: <code class="rule">{_text(data.pop(key))}</code></p>')
            break
    obligations = data.pop("obligations", None)
    if isinstance(obligations, (list, tuple)) and obligations:
        items = "".join(f"<li>{_value(o, 1)}</li>" for o in obligations[:MAX_ITEMS])
        out.append(f'<h4>License obligations</h4><ul class="data">{items}</ul>'
                   + _more(len(obligations), MAX_ITEMS, "obligations"))
    conflicts = data.pop("conflicts", None)
    if isinstance(conflicts, (list, tuple)) and conflicts:
        out.append('<h4>Conflicts</h4>' + "".join(
            f'<div class="conflict">{_value(c, 1)}</div>' for c in conflicts[:MAX_ITEMS]))
    elif conflicts is not None and not isinstance(conflicts, (list, tuple)):
        data["conflicts"] = conflicts
    return out


def _gaps(evidence: Evidence) -> str:
    idx = not_fully_analysed(evidence)
    out = [f'<h3 id="gaps">Files not fully analysed ({len(idx)})</h3>']
    if not idx:
        out.append("<p>Every file was analysed completely.</p>")
        return "".join(out)
    out.append('<p>These files were <strong>not cleared</strong>: review them before deploying.</p>'
               '<table><thead><tr><th scope="col">File</th><th scope="col">Status</th><th scope="col">Format</th>'
               '<th scope="col">Note</th></tr></thead><tbody>')
    out.extend(_gap_row(evidence.artifacts[i]) for i in idx[:MAX_GAPS])
    out.append("</tbody></table>")
    out.append(_more(len(idx), MAX_GAPS, "files"))
    return "".join(out)


def _gap_row(a: Artifact) -> str:
    return (f"<tr><td><code>{_text(a.path)}</code></td><td>{_text(a.status.value)}</td>"
            f"<td>{_text(a.format)}</td><td>{_text(_clip(a.note))}</td></tr>")


# -- footer --------------------------------------------------------------------------------------------


def _footer(decision: Decision, evidence: Evidence, when: str) -> str:
    tool = evidence.tool
    made_by = f"{tool.get('name', '?')} {tool.get('version', '?')}"
    rows = [
        ("Report", f"aivet {__version__}, generated {when}"),
        ("Evidence", f"created {evidence.created or '?'} by {made_by}, schema {evidence.schema_version}"),
        ("Model digest", decision.model_digest or "unknown"),
        ("Evidence digest", decision.evidence_sha256 or "unknown"),
        ("Profile", decision.profile),
    ]
    body = "".join(f"<dt>{_text(k)}</dt><dd><code>{_text(v)}</code></dd>" for k, v in rows)
    return f'<footer><dl class="data">{body}</dl></footer>'


# -- generic values ------------------------------------------------------------------------------------


def _data(value: Any, depth: int) -> str:
    """A record's or finding's JSON-like data as nested definition lists, bounded in size and depth."""
    if isinstance(value, Mapping):
        items = list(value.items())
        if not items:
            return '<span class="muted">(empty)</span>'
        if depth >= MAX_DEPTH:
            return f'<span class="muted">({len(items)} entries; see the JSON report)</span>'
        rows = "".join(f"<dt>{_text(str(k))}</dt><dd>{_value(v, depth + 1)}</dd>" for k, v in items[:MAX_ITEMS])
        return f'<dl class="data">{rows}</dl>' + _more(len(items), MAX_ITEMS, "entries")
    return _value(value, depth)


def _value(value: Any, depth: int) -> str:
    if isinstance(value, Mapping):
        return _data(value, depth)
    if isinstance(value, (list, tuple)):
        if not value:
            return '<span class="muted">(none)</span>'
        if all(_scalar(v) for v in value):
            shown = ", ".join(_scalar_text(v) for v in value[:MAX_ITEMS])
            return shown + _more(len(value), MAX_ITEMS, "items", inline=True)
        if depth >= MAX_DEPTH:
            return f'<span class="muted">({len(value)} items; see the JSON report)</span>'
        rows = "".join(f"<li>{_value(v, depth + 1)}</li>" for v in value[:MAX_ITEMS])
        return f'<ul class="data">{rows}</ul>' + _more(len(value), MAX_ITEMS, "items")
    return _scalar_text(value)


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, (str, int, float, bool))


def _scalar_text(value: Any) -> str:
    if value is None:
        return '<span class="muted">none</span>'
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, float)):
        return _text(str(value))
    if isinstance(value, str):
        return _text(_clip(value))
    # Not JSON: should not happen with Evidence, but the page must still render.
    return _text(_clip(json.dumps(value, default=str)))


def _clip(text: str, limit: int = MAX_TEXT) -> str:
    return text if len(text) <= limit else text[: limit - 1] + f"… ({len(text)} characters)"


def _more(total: int, shown: int, noun: str, *, inline: bool = False) -> str:
    if total <= shown:
        return ""
    tag = "span" if inline else "p"
    return f'<{tag} class="muted"> … and {total - shown} more {_text(noun)}</{tag}>'


def _text(text: str) -> str:
    """The one way untrusted text enters the page: clipped, made visible, then escaped for HTML."""
    return html.escape(utf8_safe(_clip(text, MAX_LINE)).translate(_UNSAFE), quote=True)
