"""The HTML decision report: structure, escaping, bounds, and what a person sees in headless Chromium.

The Chromium tests need Debian's ``chromium`` package (``apt-get install -y chromium``);
they skip, saying so, only when no Chromium binary is found.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import re
import shutil
import struct
import subprocess
import zlib
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aivet import __version__
from aivet.evidence import Artifact, ArtifactStatus, Evidence, Finding, Location, Record, Severity, Subject
from aivet.policy.decision import Decision, Reason, Tier, Verdict
from aivet.report import decision_html
from aivet.report.decision_html import render_html

HOSTILE_NAME = "<img src=x onerror=alert(1)>.pkl"
HOSTILE_MESSAGE = "calls os.system('</style><script>alert(2)</script>')"
HOSTILE_ARG = '"><script>document.title="pwned"</script><img src=x onerror=alert(3)>'
RLO_NAME = "model\u202egpj.pkl"  # Trojan Source style bidi override (CVE-2021-42574)
WHEN = "2026-11-23T18:00:00Z"
MODEL_DIGEST = "sha256:" + "ab" * 32
EVIDENCE_DIGEST = "sha256:" + "cd" * 32

# Elements the renderer writes; anything else in its output means markup leaked in.
ALLOWED_TAGS = {"html", "head", "meta", "title", "style", "body", "header", "div", "p", "h1", "h2", "h3", "h4",
                "span", "dl", "dt", "dd", "main", "section", "ol", "ul", "li", "code", "strong", "table",
                "thead", "tbody", "tr", "th", "td", "footer"}


def _finding(rule: str, sev: Severity, msg: str, path: str, **details: Any) -> Finding:
    return Finding(rule, sev, msg, Location(path, offset=12), subject="m", details=details)


def sample(verdict: Verdict = Verdict.DENY, tier: Tier = Tier.PROHIBITED) -> tuple[Decision, Evidence]:
    """A decision over evidence with every section filled and hostile strings in the model's names."""
    findings = (
        _finding("PICKLE-DANGEROUS-GLOBAL", Severity.CRITICAL, HOSTILE_MESSAGE, f"weights.zip!{HOSTILE_NAME}",
                 callable="os.system", args=[HOSTILE_ARG]),
        _finding("PICKLE-UNKNOWN-GLOBAL", Severity.HIGH, "imports an unknown global", RLO_NAME),
        _finding("TEMPLATE-SUSPICIOUS", Severity.MEDIUM, "template reads an attribute", "tokenizer_config.json"),
        _finding("CONFIG-REMOTE-CODE", Severity.LOW, "auto_map names remote code", "config.json"),
        _finding("SCAN-UNSUPPORTED", Severity.INFO, "format seen but not analysed", "notes.bin"),
    )
    evidence = Evidence(
        subjects=(Subject("m", "directory", "/models/m"),),
        artifacts=(
            Artifact(f"weights.zip!{HOSTILE_NAME}", "pickle", 100, ArtifactStatus.ANALYZED, "m"),
            Artifact("big.pkl", "pickle", 10, ArtifactStatus.PARTIAL, "m", note="stopped after max_opcodes"),
            Artifact("broken.safetensors", "safetensors", 5, ArtifactStatus.ERROR, "m", note="<b>bad header</b>"),
        ),
        findings=findings,
        records=(
            Record("signature", "m", {"status": "failed", "method": "key", "signature": "model.sig"}),
            Record("license", "m", {"id": "llama3.1", "obligations": ["Display 'Built with Llama'",
                                                                     "Ask Meta for a license above 700M MAU"],
                                    "conflicts": ["incompatible with Apache-2.0 code in the same repo"],
                                    "source": "README.md front matter"}),
            Record("origin", "m", {"publisher": "example-org", "country": "XX", "verified_org": False}),
            Record("lineage", "m", {"family": "llama", "matched_base": "meta-llama/Llama-3.1-8B",
                                    "matches": [{"name": "meta-llama/Llama-3.1-8B", "similarity": 0.998}]}),
            Record("bom", "m", {"format": "cyclonedx", "files": 3, "total_bytes": 115}),
            Record("probe", "m", {"suite": "jailbreak", "passed": 9, "failed": 1}),
        ),
        tool={"name": "aivet", "version": __version__},
        created="2026-11-23T17:59:00Z",
    )
    decision = Decision(
        model=f"/models/{HOSTILE_NAME}",
        profile="default",
        tier=tier,
        verdict=verdict,
        reasons=(
            Reason("scan.code-execution", "deny", "A pickle imports os.system: loading runs code.",
                   Tier.PROHIBITED, ("OWASP LLM03:2025", "AML.T0010.003"),
                   ("findings[PICKLE-DANGEROUS-GLOBAL]",)),
            Reason("license.restricted-use", "obligation", "The Llama 3.1 license restricts use.",
                   None, ("NIST AI 600-1 GV-1.6",), ("records.license.id",)),
            Reason("signature.absent", "tier", "No valid signature.", Tier.ELEVATED),
        ),
        obligations=("Display 'Built with Llama' in the product.", "Do not use it to train other models."),
        model_digest=MODEL_DIGEST,
        evidence_sha256=EVIDENCE_DIGEST,
        extra={"intended_use": "internal chat assistant"},
    )
    return decision, evidence


class _Tags(HTMLParser):
    """Collects elements, attributes and visible text, as a browser's tokenizer would see them."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []
        self.text: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))
        if tag in ("style", "title"):
            self._skip += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in ("style", "title"):
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.text.append(data)


def _parse(page: str) -> _Tags:
    p = _Tags()
    p.feed(page)
    p.close()
    return p


def _assert_inert(page: str) -> None:
    parsed = _parse(page)
    names = {t for t, _ in parsed.tags}
    assert names <= ALLOWED_TAGS, names - ALLOWED_TAGS
    for tag, attrs in parsed.tags:
        for name, value in attrs:
            assert not name.startswith("on"), (tag, name)
            assert name not in ("src", "href", "action", "srcset", "style"), (tag, name)
            assert "javascript:" not in (value or "").lower()
    assert page.count("<style>") == 1 and page.count("</style>") == 1


# -- structure, without a browser ---------------------------------------------------------------


def test_page_is_self_contained_html5_with_strict_csp() -> None:
    decision, evidence = sample()
    page = render_html(decision, evidence, generated=WHEN)
    assert page.startswith("<!DOCTYPE html>\n<html lang=\"en\">")
    head = page[: page.index("</head>")]
    # The CSP meta comes before any content, so it governs the whole document.
    assert head.index("Content-Security-Policy") < head.index("<title>") < head.index("<style>")
    csp = html.unescape(re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', head)[1])  # type: ignore[index]
    assert "default-src 'none'" in csp and "script-src 'none'" in csp and "unsafe-inline" not in csp
    css = page[page.index("<style>") + 7: page.index("</style>")]
    digest = base64.b64encode(hashlib.sha256(css.encode("utf-8")).digest()).decode()
    assert f"style-src 'sha256-{digest}'" in csp  # only our own stylesheet may apply
    assert "@media print" in css
    assert not re.search(r"https?://|url\(|@import|<link|<script", page, re.IGNORECASE)
    _assert_inert(page)


def test_sections_come_in_reading_order() -> None:
    decision, evidence = sample()
    page = render_html(decision, evidence, generated=WHEN)
    marks = ['id="verdict"', 'id="why"', 'id="obligations"', 'id="evidence"', 'id="findings"',
             'id="records-signature"', 'id="records-license"', 'id="records-origin"', 'id="records-lineage"',
             'id="records-bom"', 'id="records-other"', 'id="gaps"', "<footer>"]
    positions = [page.index(m) for m in marks]
    assert positions == sorted(positions)
    text = " ".join(_parse(page).text)
    assert text.lstrip().startswith("aivet deployment decision ✗ Deny Do not deploy this model.")


@pytest.mark.parametrize(("verdict", "tier", "headline", "meaning"), [
    (Verdict.DENY, Tier.PROHIBITED, "Deny", "must not be deployed"),
    (Verdict.ALLOW_WITH_OBLIGATIONS, Tier.LIMITED, "Allow with obligations", "obligations shown to users"),
    (Verdict.ALLOW, Tier.MINIMAL, "Allow", "any caller, standard guardrails"),
])
def test_verdict_banner_names_verdict_and_tier(verdict: Verdict, tier: Tier, headline: str, meaning: str) -> None:
    decision, evidence = sample(verdict, tier)
    page = render_html(decision, evidence, generated=WHEN)
    assert f'class="banner verdict-{verdict.value}"' in page
    h1 = re.search(r'<h1 class="verdict" id="verdict">(.*?)</h1>', page)[1]  # type: ignore[index]
    assert h1.endswith(headline)
    tier_row = page.split("<dt>Tier</dt><dd>", 1)[1].split("</dd>", 1)[0]
    assert tier_row.startswith(f'<span class="tier-pill">{tier.value}</span> ') and meaning in tier_row
    assert f"<title>aivet decision: {headline} — /models/&lt;img" in page


def test_reasons_keep_order_effect_and_citations() -> None:
    decision, evidence = sample()
    page = render_html(decision, evidence, generated=WHEN)
    why = page[page.index('id="why"'): page.index('id="obligations"')]
    assert why.index("scan.code-execution") < why.index("license.restricted-use") < why.index("signature.absent")
    assert '<li class="effect-deny"><span class="effect">Deny → prohibited</span>' in why
    assert '<span class="effect">Obligation</span>' in why
    assert '<span class="effect">Tier → elevated</span>' in why
    for cite in ("OWASP LLM03:2025", "AML.T0010.003", "NIST AI 600-1 GV-1.6"):
        assert f'<span class="cite">{cite}</span>' in why
    assert "<code>findings[PICKLE-DANGEROUS-GLOBAL]</code>" in why
    obligations = page[page.index('id="obligations"'): page.index('id="evidence"')]
    assert "<li>Display &#x27;Built with Llama&#x27; in the product.</li>" in obligations
    assert "internal chat assistant" in obligations


def test_findings_grouped_by_severity_with_text_badges() -> None:
    decision, evidence = sample()
    page = render_html(decision, evidence, generated=WHEN)
    heads = [page.index(f'id="sev-{s}"') for s in ("critical", "high", "medium", "low", "info")]
    assert heads == sorted(heads)
    for sev in Severity:
        # Severity is written out, so it does not rest on colour alone.
        assert f'<span class="badge sev-{sev.value}">{sev.value}</span> <code class="rule">' in page
    assert "Critical (1)" in page and "Info (1)" in page
    assert "at <code>weights.zip!&lt;img src=x onerror=alert(1)&gt;.pkl</code>, byte offset 12" in page
    # Rule titles come from the catalogue where the rule is known.
    assert "SCAN-UNSUPPORTED</code> — " in page


def test_records_and_gaps_render() -> None:
    decision, evidence = sample()
    page = render_html(decision, evidence, generated=WHEN)
    assert '<span class="status tone-bad">failed</span>' in page
    assert '<code class="rule">llama3.1</code>' in page
    assert "<li>Ask Meta for a license above 700M MAU</li>" in page
    assert '<div class="conflict">incompatible with Apache-2.0 code in the same repo</div>' in page
    assert "<dt>publisher</dt><dd>example-org</dd>" in page and "<dt>verified_org</dt><dd>no</dd>" in page
    assert "meta-llama/Llama-3.1-8B" in page and "<dt>similarity</dt><dd>0.998</dd>" in page
    assert "<dt>total_bytes</dt><dd>115</dd>" in page
    assert "<h4>probe</h4>" in page
    gaps = page[page.index('id="gaps"'):]
    assert "Files not fully analysed (2)" in gaps and "big.pkl" in gaps and "broken.safetensors" in gaps
    assert "&lt;b&gt;bad header&lt;/b&gt;" in gaps
    assert HOSTILE_NAME not in gaps  # analysed completely: not a gap


def _luminance(hex_rgb: str) -> float:
    def channel(v: int) -> float:
        c = v / 255
        return c / 12.92 if c <= 0.03928 else float(((c + 0.055) / 1.055) ** 2.4)

    r, g, b = (int(hex_rgb[i: i + 2], 16) for i in (1, 3, 5))
    return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)


def _contrast(fg: str, bg: str) -> float:
    hi, lo = sorted((_luminance(fg), _luminance(bg)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def test_colours_meet_wcag_aa_contrast() -> None:
    css = decision_html._CSS
    # Banner: white text on the verdict colour.
    for var in ("deny", "oblige", "allow"):
        bg = re.search(rf"--{var}: (#[0-9a-f]{{6}})", css)[1]  # type: ignore[index]
        assert _contrast("#ffffff", bg) >= 4.5, var
    # Severity badges and status pills: their own text on their own background.
    pairs = re.findall(r"\.(?:sev|tone)-\w+ \{ background: (#[0-9a-f]{6}); color: (#[0-9a-f]{6});", css)
    assert len(pairs) == 8
    for bg, fg in pairs:
        assert _contrast(fg, bg) >= 4.5, (fg, bg)


def test_footer_has_versions_times_and_digests() -> None:
    decision, evidence = sample()
    footer = render_html(decision, evidence, generated=WHEN).split("<footer>", 1)[1]
    for text in (f"aivet {__version__}, generated {WHEN}", "created 2026-11-23T17:59:00Z", MODEL_DIGEST,
                 EVIDENCE_DIGEST):
        assert text in footer


def test_hostile_strings_are_inert_and_visible() -> None:
    decision, evidence = sample()
    page = render_html(decision, evidence, generated=WHEN)
    _assert_inert(page)
    for raw in (HOSTILE_NAME, "</style><script>", HOSTILE_ARG):
        assert raw not in page
        assert html.escape(raw) in page  # still readable by the reviewer
    # A bidi override cannot reorder the name on screen; it is shown as an escape.
    assert "\u202e" not in page and "model\\u202egpj.pkl" in page


def test_empty_evidence_says_so() -> None:
    decision = Decision("m", "default", Tier.MINIMAL, Verdict.ALLOW)
    page = render_html(decision, Evidence(), title="Review 42", generated=WHEN)
    assert "<title>Review 42</title>" in page
    for text in ("The policy recorded no reasons.", "None: the policy places no duties", "<p>No findings.</p>",
                 "No signature record in the evidence.", "Every file was analysed completely.", "unknown"):
        assert text in page
    _assert_inert(page)


def test_output_is_bounded_for_hostile_volumes() -> None:
    decision, _ = sample()
    nested: Any = "leaf"
    for _ in range(60):
        nested = {"k": [nested]}
    many = tuple(_finding("PICKLE-UNKNOWN-GLOBAL", Severity.HIGH, "x" * 5000, f"f{i}.pkl", arg="y" * 10_000)
                 for i in range(2000))
    evidence = Evidence(findings=many, records=(Record("lineage", "m", {"deep": nested,
                                                                         "wide": list(range(10_000))}),))
    page = render_html(decision, evidence, generated=WHEN)
    assert len(page) < 3_000_000
    assert page.count('<li class="finding">') == decision_html.MAX_FINDINGS_PER_SEVERITY
    assert "… and 1800 more high findings" in page
    assert "see the JSON report" in page and "… and 9960 more items" in page
    assert "(5000 characters)" in page and "(10000 characters)" in page


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.text(max_size=60), message=st.text(max_size=60), key=st.text(max_size=20),
       value=st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
                          lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=4),
                          max_leaves=20))
def test_any_strings_render_inert(name: str, message: str, key: str, value: Any) -> None:
    decision = Decision(name, message, Tier.ELEVATED, Verdict.ALLOW_WITH_OBLIGATIONS,
                        reasons=(Reason(name, message, message, cites=(name,)),), obligations=(message,),
                        model_digest=name, extra={key: value})
    evidence = Evidence(
        subjects=(Subject(name, name, name),),
        artifacts=(Artifact(name, message, 1, ArtifactStatus.ERROR, name, note=message),),
        findings=(Finding(name, Severity.HIGH, message, Location(name, pointer=message), name, {key: value}),),
        records=(Record(key, name, {key: value}), Record("license", name, {"id": name, "conflicts": [message]})),
        tool={"name": name}, created=message,
    )
    page = render_html(decision, evidence, title=message, generated=WHEN)
    page.encode("utf-8")  # lone surrogates were made visible, not passed through
    _assert_inert(page)
    assert '<h1 class="verdict" id="verdict">' in page


# -- in headless Chromium --------------------------------------------------------------------------

CHROMIUM = next((p for p in (shutil.which("chromium"), shutil.which("chromium-browser")) if p), None)
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="Debian's chromium package is not installed (apt-get install -y chromium)")

BANNER_RGB = {"deny": (0xB9, 0x1C, 0x1C), "allow-with-obligations": (0xB4, 0x53, 0x09),
              "allow": (0x15, 0x80, 0x3D)}
WINDOW = (1200, 1600)

# Test-only: swapped in for the page's CSP so that this script may measure the layout.
_MEASURE = """<script>
const r = (id) => { const b = document.getElementById(id).getBoundingClientRect();
  return {top: b.top, bottom: b.bottom, left: b.left, right: b.right}; };
const bg = getComputedStyle(document.getElementById('verdict-banner')).backgroundColor;
document.body.setAttribute('data-measure', JSON.stringify(
  {verdict: r('verdict'), banner: r('verdict-banner'), why: r('why'), bg: bg, height: innerHeight}));
</script>"""
# Test-only: must NOT run, because the page's own CSP forbids scripts.
_PROBE = "<script>document.body.setAttribute('data-ran', 'yes')</script>"


def _chromium(tmp: Path, url: str, *extra: str) -> str:
    assert CHROMIUM is not None
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--disable-extensions", "--hide-scrollbars", f"--user-data-dir={tmp / 'profile'}",
           f"--window-size={WINDOW[0]},{WINDOW[1]}", *extra, url]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def _png_rows(path: Path, rows: int) -> tuple[int, list[bytes]]:
    """Decode the first ``rows`` rows of an 8-bit RGB/RGBA PNG (what Chromium writes) to raw pixels."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width, channels = 8, bytearray(), 0, 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos: pos + 8])
        body = data[pos + 8: pos + 8 + length]
        if kind == b"IHDR":
            width, _h, depth, color, _c, _f, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and color in (2, 6) and interlace == 0
            channels = 3 if color == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    stride = width * channels
    raw = zlib.decompressobj().decompress(bytes(idat), rows * (stride + 1))
    out: list[bytes] = []
    prev = bytearray(stride)
    for y in range(rows):
        ftype, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1: (y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - channels] if i >= channels else 0
            b = prev[i]
            c = prev[i - channels] if i >= channels else 0
            if ftype == 1:
                line[i] = (line[i] + a) & 0xFF
            elif ftype == 2:
                line[i] = (line[i] + b) & 0xFF
            elif ftype == 3:
                line[i] = (line[i] + ((a + b) >> 1)) & 0xFF
            elif ftype == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
        out.append(bytes(line))
        prev = line
    return channels, out


class _Dom(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One report (allow with obligations, hostile names), rendered three ways by Chromium."""
    tmp = tmp_path_factory.mktemp("chromium")
    decision, evidence = sample(Verdict.ALLOW_WITH_OBLIGATIONS, Tier.LIMITED)
    page = render_html(decision, evidence, generated=WHEN)
    report = tmp / "report.html"
    report.write_text(page, encoding="utf-8")
    probe = tmp / "probe.html"
    probe.write_text(page.replace("</body>", _PROBE + "</body>"), encoding="utf-8")
    measure = tmp / "measure.html"
    measure.write_text(re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", page)
                       .replace("</body>", _MEASURE + "</body>"), encoding="utf-8")
    shot = tmp / "report.png"
    _chromium(tmp, report.as_uri(), f"--screenshot={shot}")
    return {
        "verdict": decision.verdict.value,
        "shot": shot,
        "dom": _chromium(tmp, probe.as_uri(), "--dump-dom"),
        "measure": _chromium(tmp, measure.as_uri(), "--dump-dom"),
    }


@needs_chromium
def test_chromium_shows_verdict_on_first_screen(rendered: dict[str, Any]) -> None:
    dom = _Dom()
    dom.feed(rendered["measure"])
    body = next(attrs for tag, attrs in dom.tags if tag == "body")
    m = json.loads(body["data-measure"] or "{}")
    assert m["banner"]["top"] == 0
    assert 0 < m["verdict"]["top"] and m["verdict"]["bottom"] < 300 < m["height"]
    assert m["banner"]["bottom"] < m["why"]["top"] < m["height"]  # the reasons start on the first screen too
    assert m["bg"] == "rgb({}, {}, {})".format(*BANNER_RGB[rendered["verdict"]])


@needs_chromium
def test_chromium_screenshot_top_is_verdict_colour(rendered: dict[str, Any]) -> None:
    channels, rows = _png_rows(rendered["shot"], 120)
    want = BANNER_RGB[rendered["verdict"]]

    def near(px: tuple[int, ...], rgb: tuple[int, int, int], tol: int = 6) -> bool:
        return all(abs(a - b) <= tol for a, b in zip(px, rgb, strict=False))

    top = [tuple(row[x * channels: x * channels + 3]) for row in rows[:100] for x in range(0, WINDOW[0], 10)]
    coloured = sum(near(px, want) for px in top)
    assert coloured > 0.8 * len(top), f"top of the page is not the verdict colour {want}"
    # White text (the heading) is drawn on the banner.
    text_rows = [tuple(row[x * channels: x * channels + 3]) for row in rows[30:120] for x in range(0, 600)]
    assert any(near(px, (255, 255, 255), 20) for px in text_rows)


@needs_chromium
def test_chromium_dom_has_content_and_nothing_injected(rendered: dict[str, Any]) -> None:
    dom_text = rendered["dom"]
    dom = _Dom()
    dom.feed(dom_text)
    names = [t for t, _ in dom.tags]
    # Only the test's probe script exists, and the page's CSP stopped it from running.
    assert names.count("script") == 1 and "img" not in names and "iframe" not in names
    body = next(attrs for tag, attrs in dom.tags if tag == "body")
    assert "data-ran" not in body
    assert not any(k.startswith("on") for _, attrs in dom.tags for k in attrs)
    text = html.unescape(re.sub(r"<[^>]+>", " ", dom_text))
    for seen in ("Allow with obligations", "Deploy only if every obligation below is met.", "limited",
                 "A pickle imports os.system: loading runs code.", "Do not use it to train other models.",
                 HOSTILE_NAME, "</style><script>alert(2)</script>", "Files not fully analysed (2)"):
        assert seen in text
    for sev in Severity:
        assert f'<span class="badge sev-{sev.value}">{sev.value}</span>' in dom_text
