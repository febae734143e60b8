"""Chat-template analyzer: Jinja2 templates are parsed, never rendered, and their syntax tree is checked.

Chat templates ship inside ``tokenizer_config.json``, GGUF metadata and
standalone ``.jinja`` files, and every serving stack renders them on each
request. Hugging Face renders them in an immutable sandbox, but other
runtimes have not (CVE-2024-34359: llama-cpp-python rendered GGUF templates
with a plain ``jinja2.Environment``), so a template that reaches for
``__globals__`` is a remote-code-execution attempt. Templates can also poison
every conversation without any code: an instruction injected into each prompt,
or a branch that changes behaviour when a trigger word appears.

``jinja2.Environment.parse`` only lexes and parses; nothing here compiles or
renders the untrusted text. Names that payloads assemble from pieces are rebuilt
by :mod:`aivet.analyzers.template_fold`.

Analysis is bounded twice over: a deterministic work budget (:attr:`~aivet.limits.Limits.max_template_steps`) and
the file's deadline (``Limits.max_seconds_per_file``). When either runs out, the findings
made so far stay, the whole text still goes through the regular-expression checks, and a
``SCAN-LIMIT-EXCEEDED`` finding marks the template as only partly analysed (fail closed).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from itertools import islice
from typing import Any

import jinja2
import jinja2.ext
from jinja2 import nodes

from aivet import rules as engine_rules
from aivet.analyzers.context import Context
from aivet.analyzers.engine import Outcome
from aivet.analyzers.source import Source
from aivet.analyzers.template_fold import TemplateResolver, WorkBudget
from aivet.evidence import ArtifactStatus, Location, Severity
from aivet.formats import FormatError, LimitExceeded
from aivet.rules import ATLAS_EVADE, ATLAS_PROMPT_INJECTION, ATLAS_SUPPLY_CHAIN_MODEL, ATLAS_UNSAFE_ARTIFACTS, Rule

FORMAT = "jinja"

SANDBOX_ESCAPE = Rule(
    "TEMPLATE-SANDBOX-ESCAPE",
    "Chat template reaches for Python internals",
    "The template accesses dunder or private attributes (__class__, __globals__, __subclasses__, "
    "__builtins__ ...), directly, through item access, the attr filter or strings built to hide the name. "
    "A sandbox blocks this; runtimes that render templates without one (CVE-2024-34359 in "
    "llama-cpp-python) execute arbitrary code on the first chat request.",
    Severity.CRITICAL,
    (ATLAS_UNSAFE_ARTIFACTS, ATLAS_SUPPLY_CHAIN_MODEL),
    ("CWE-1336", "CWE-94"),
)
SSTI_GADGET = Rule(
    "TEMPLATE-SSTI-GADGET",
    "Chat template uses a server-side template injection gadget",
    "The template refers to objects that template-injection exploits use to reach Python globals "
    "(lipsum, cycler, joiner, namespace, self, config, request, url_for, get_flashed_messages). Chat "
    "templates have no use for them beyond namespace() and, rarely, cycler()/joiner(); attribute access on "
    "any of them is critical.",
    Severity.HIGH,
    (ATLAS_UNSAFE_ARTIFACTS,),
    ("CWE-1336",),
)
DANGEROUS_NAME = Rule(
    "TEMPLATE-DANGEROUS-NAME",
    "Chat template names an OS or code-execution function",
    "The template refers to os, subprocess, popen, system, eval, exec, __import__ or similar, as a "
    "variable, an attribute or inside a string. A chat template only formats messages.",
    Severity.HIGH,
    (ATLAS_UNSAFE_ARTIFACTS,),
    ("CWE-78", "CWE-94"),
)
DUNDER_STRING = Rule(
    "TEMPLATE-DUNDER-STRING",
    "Chat template contains a Python-internals name in a string",
    "A string in the template (possibly assembled from pieces) spells a Python internal such as __class__ "
    "or __globals__. Payloads hide attribute names in strings to slip past scanners.",
    Severity.HIGH,
    (ATLAS_UNSAFE_ARTIFACTS, ATLAS_EVADE),
    ("CWE-1336",),
)
INCLUDE = Rule(
    "TEMPLATE-INCLUDE",
    "Chat template loads other templates",
    "{% include %}, {% import %}, {% from %} or {% extends %} make the renderer load other templates, "
    "which in a non-sandboxed runtime can mean reading files from the serving machine.",
    Severity.HIGH,
    (ATLAS_UNSAFE_ARTIFACTS,),
    ("CWE-98", "CWE-22"),
)
UNPARSEABLE = Rule(
    "TEMPLATE-UNPARSEABLE",
    "Chat template cannot be parsed",
    "The template is not valid Jinja2 for aivet's parser, so its content could not be checked. Another "
    "runtime's Jinja dialect may still render it. Fail closed: treat as unverified.",
    Severity.HIGH,
    (ATLAS_EVADE,),
    ("CWE-20",),
)
LARGE = Rule(
    "TEMPLATE-LARGE",
    "Very large chat template",
    "Real chat templates are a few kilobytes. A very large one hides content from review and costs "
    "time on every request.",
    Severity.MEDIUM,
    (ATLAS_EVADE,),
    ("CWE-400",),
)
HIDDEN_INSTRUCTION = Rule(
    "TEMPLATE-HIDDEN-INSTRUCTION",
    "Chat template injects instructions into conversations",
    "Literal text in the template tells the model to ignore or override instructions, keep secrets from "
    "the user, exfiltrate data, or promote links. Because the template wraps every conversation, this is "
    "a persistent prompt injection planted in the model's packaging.",
    Severity.MEDIUM,
    (ATLAS_PROMPT_INJECTION, ATLAS_SUPPLY_CHAIN_MODEL),
    ("CWE-74",),
)
CONDITIONAL_TRIGGER = Rule(
    "TEMPLATE-CONDITIONAL-TRIGGER",
    "Chat template branches on words in message content",
    "The template tests whether message content contains or equals a literal phrase and changes what "
    "it emits. Real templates branch on roles and control tokens, not on words: this is how a backdoor "
    "trigger is planted in the packaging rather than the weights.",
    Severity.MEDIUM,
    (ATLAS_PROMPT_INJECTION, ATLAS_SUPPLY_CHAIN_MODEL),
    ("CWE-506",),
)
EMBEDDED_URL = Rule(
    "TEMPLATE-EMBEDDED-URL",
    "Chat template text contains a URL",
    "A URL in the text the template adds to every prompt can steer the model to cite or fetch it.",
    Severity.LOW,
    (ATLAS_PROMPT_INJECTION,),
    ("CWE-74",),
)

RULES = (SANDBOX_ESCAPE, SSTI_GADGET, DANGEROUS_NAME, DUNDER_STRING, INCLUDE, UNPARSEABLE, LARGE,
         HIDDEN_INSTRUCTION, CONDITIONAL_TRIGGER, EMBEDDED_URL)

LARGE_TEMPLATE_CHARS = 100_000  # the largest real tool-calling templates are ~30 KB
MAX_FINDINGS_PER_RULE = 20
EXCERPT = 200
# The work budget per template is Limits.max_template_steps, in steps of about half a microsecond
# (see template_fold.WorkBudget). Real templates need under 30,000; benign-shaped templates at
# max_template_bytes (512 KiB of text, tags or tool schemas) need under 1.5 million. Hostile ones
# stop at the default 3 million, after ~2 s.
# The regular-expression pass over text that was not (fully) analysed as a tree: its own
# allowance, so that it still runs after the tree walk spent the budget or the deadline.
MAX_RAW_TEXT_STEPS = 4_000_000
RAW_CHUNK = 64 * 1024  # raw text is scanned in pieces, charged as it goes
RAW_OVERLAP = 512  # longer than any match of the text patterns, so none is cut in two
# Steps per character scanned, from measurements of the patterns below on hostile text.
_INSTRUCTION_STEPS_PER_CHAR = 2  # nine patterns with bounded gaps: up to ~1.4 us per character
_DANGEROUS_CHARS_PER_STEP = 2  # dunder, code and include patterns: ~0.2 us per character

# Attribute names that no chat template needs and every sandbox escape uses.
SENSITIVE_ATTRS = frozenset({
    "func_globals", "func_code", "func_closure", "f_globals", "f_locals", "f_builtins", "f_back", "f_code",
    "gi_frame", "gi_code", "cr_frame", "cr_code", "ag_frame", "tb_frame", "tb_next", "co_code", "mro",
    "im_func", "im_self", "im_class", "_module", "_TemplateReference__context", "environment",
})
DANGEROUS_ATTRS = frozenset({
    "popen", "system", "spawnl", "spawnle", "spawnlp", "spawnv", "spawnve", "spawnvp", "execl", "execle",
    "execlp", "execv", "execve", "execvp", "fork", "check_output", "check_call", "getoutput",
    "getstatusoutput", "Popen", "import_module", "load_module", "eval", "exec", "compile", "subprocess",
    "os", "builtins", "sys", "modules", "getattr", "setattr", "unlink", "rmtree", "remove", "__import__",
})
DANGEROUS_NAMES = frozenset({
    "os", "subprocess", "sys", "builtins", "eval", "exec", "compile", "open", "getattr", "setattr", "delattr",
    "globals", "locals", "vars", "importlib", "import_module", "popen", "system", "breakpoint", "socket",
    "shutil", "pty", "__import__", "__builtins__", "input",
})
GADGETS = frozenset({"cycler", "joiner", "lipsum", "namespace", "self", "config", "request", "url_for",
                     "get_flashed_messages"})
_CALLABLE_GADGETS_OK: dict[str, Severity | None] = {"namespace": None, "cycler": Severity.LOW, "joiner": Severity.LOW}
_ATTR_FILTERS = frozenset({"attr", "map", "selectattr", "rejectattr", "sort", "groupby", "unique", "sum",
                           "min", "max", "format"})
_CONTENT_KEYS = frozenset({"content", "text"})
_STRING_METHODS = frozenset({"lower", "upper", "strip", "lstrip", "rstrip", "split", "rsplit", "replace",
                             "title", "capitalize", "casefold"})

_DUNDER_TEXT = re.compile(
    r"__(class|mro|subclasses|globals|builtins|import|init|base|bases|dict|getattribute|getattr|code|"
    r"loader|spec|reduce|reduce_ex|self|func|closure|module|call|new|subclasshook)__"
    r"|\b(func_globals|f_globals|gi_frame|_TemplateReference__context)\b")
_CODE_TEXT = re.compile(
    r"\bos\.(system|popen|exec\w*|spawn\w*)\b|\bsubprocess\.\w+|__import__|\bimportlib\b|"
    r"\beval\s*\(|\bexec\s*\(|\bimport\s+os\b")
_PRIVATE_FIELD = re.compile(r"\{[^{}]*(\.|\[)_")  # '{0.__class__}'.format(x)
_LETTERS = re.compile(r"[^\W\d_].*?[^\W\d_]", re.S)  # two letters, anywhere
_INCLUDE_TAG = re.compile(r"\{%-?\s*(include|import|extends|from)\b")
_URL = re.compile(r"\b(?:https?|ftp)://[^\s'\"<>]{3,}", re.I)
# Phrases that clean templates never contain: overriding instructions, secrecy, exfiltration, promotion.
# Two-gap patterns commit to the nearest middle word ((?>...)) and allow a wider second gap:
# trying every middle word made "must add must add ..." cost 8 us per character.
_INSTRUCTION_PATTERNS = tuple(re.compile(p, re.I | re.S) for p in (
    r"\b(ignore|disregard|forget|override|bypass)\b(?>.{0,40}?\b(previous|prior|above|earlier|all|any|other|"
    r"user'?s?|system|safety|original)\b).{0,90}?\b(instructions?|rules|guidelines|prompts?|polic(y|ies)|"
    r"restrictions|filters)\b",
    r"\b(do not|don't|never)\s+(tell|reveal|inform|mention|disclose|let)\b.{0,30}\b(user|anyone|them|"
    r"human)\b",
    r"\b(exfiltrat\w*|send|post|upload|forward|transmit|leak)\b.{0,60}\b(to|at)\s+(https?://|"
    r"\w+@\w+\.\w+)",
    r"\b(passwords?|api[ _-]?keys?|access tokens?|credentials?|credit card)\b.{0,60}\b(send|include|append|"
    r"encode|output|reveal|collect)\b",
    r"\b(send|include|append|encode|output|reveal|collect)\b.{0,60}\b(passwords?|api[ _-]?keys?|"
    r"credentials?|credit card)\b",
    r"\b(always|must)\b(?>.{0,40}?\b(include|insert|add|append|recommend|mention|link to|promote)\b)"
    r".{0,100}?(https?://|\blinks?\b|\burls?\b|\bwebsite\b)",
    r"\b(developer|jailbreak|unrestricted|god|dan)\s+mode\b",
    r"\bwithout\s+(any\s+)?(restrictions|filters|safety|censorship)\b",
    r"\b(you have no|there are no)\s+(restrictions|rules|limits|guidelines)\b",
))


class _GenerationTag(jinja2.ext.Extension):
    """``{% generation %}...{% endgeneration %}``: the Hugging Face marker for assistant tokens."""

    tags = {"generation"}

    def parse(self, parser: Any) -> nodes.Node:
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
        return nodes.Scope(body, lineno=lineno)


# Parsing only: this environment never compiles or renders anything.
_ENV = jinja2.Environment(extensions=[jinja2.ext.loopcontrols, jinja2.ext.do, _GenerationTag])


@dataclass
class _Sink:
    """Where findings go, with the template's line mapped into the location or the details."""

    location: Location
    ctx: Context
    lines_in_location: bool
    counts: dict[str, int]
    seen: set[int]

    def add(self, rule: Rule, message: str, lineno: int | None, *, key: str = "",
            severity: Severity | None = None, **details: Any) -> None:
        # Keys can hold 4 KB resolved strings; 10^5 of them were kept whole before.
        dedupe = hash((rule.id, key or message))
        if dedupe in self.seen:
            return
        self.seen.add(dedupe)
        self.counts[rule.id] = self.counts.get(rule.id, 0) + 1
        if self.counts[rule.id] > MAX_FINDINGS_PER_RULE:
            return
        location = self.location
        if lineno is not None:
            if self.lines_in_location:
                location = replace(location, line=lineno)
            else:
                details["template_line"] = lineno
        self.ctx.add(rule.finding(location, message, severity=severity, **details))


class TemplateQuota:
    """The chat-template text one file may have parsed: ``Limits.max_template_bytes`` in all.

    Jinja's parse cannot be interrupted (about 200 KB a second), so a file of many large
    templates is bounded by what it parses in total, not per template.
    """

    def __init__(self, ctx: Context) -> None:
        self.left = ctx.limits.max_template_bytes


def analyze_template(text: str, location: Location, ctx: Context,
                     quota: TemplateQuota | None = None) -> ArtifactStatus:
    """Check one chat template string; findings go to ``ctx`` at ``location``.

    Called for ``chat_template`` values in configs and GGUF metadata; ``quota`` is the
    file's (one per call when not given). Never raises for hostile input: an unparseable,
    oversized or too costly template is a finding. Returns ANALYZED, PARTIAL (a limit
    stopped the analysis) or ERROR (unparseable), for the caller's own artifact status.
    """
    return _analyze(text, location, ctx, lines_in_location=False, quota=quota)


def analyze_file(source: Source, ctx: Context) -> Outcome:
    """Analyse a standalone ``.jinja`` chat template file."""
    limit = ctx.limits.max_text_file_bytes
    if source.size > limit:
        raise LimitExceeded("max_text_file_bytes", f"template file of {source.size} bytes", 0)
    with source.open() as fh:
        data = fh.read(limit + 1)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FormatError(f"template is not UTF-8: {exc.reason}", exc.start) from None
    status = _analyze(text, ctx.location(source), ctx, lines_in_location=True)
    return Outcome(FORMAT, status)


def _analyze(text: str, location: Location, ctx: Context, *, lines_in_location: bool,
             quota: TemplateQuota | None = None) -> ArtifactStatus:
    sink = _Sink(location, ctx, lines_in_location, {}, set())
    budget = WorkBudget(ctx.limits.max_template_steps, ctx.deadline())
    quota = quota or TemplateQuota(ctx)
    if len(text) > LARGE_TEMPLATE_CHARS:
        sink.add(LARGE, f"chat template is {len(text)} characters long", None, length=len(text))
    if len(text) > quota.left:
        # Jinja parses ~200 KB a second: past the limit only the linear text checks run.
        used = ctx.limits.max_template_bytes - quota.left
        spent = f" ({used} already parsed in this file)" if used else ""
        ctx.add(engine_rules.LIMIT_EXCEEDED.finding(
            location, f"chat template of {len(text)} characters not parsed{spent}", limit="max_template_bytes"))
        _raw_text_checks(text, sink, "oversized")
        _close(sink)
        return ArtifactStatus.PARTIAL
    quota.left -= len(text)
    status = ArtifactStatus.ANALYZED
    try:
        tree = _ENV.parse(text)
    except RecursionError:
        sink.add(UNPARSEABLE, "template nests too deeply to parse", None)
        status = ArtifactStatus.ERROR
    except Exception as exc:  # noqa: BLE001 - any parser failure on hostile text is a finding
        line = getattr(exc, "lineno", None)
        sink.add(UNPARSEABLE, f"template does not parse: {type(exc).__name__}: {str(exc)[:EXCERPT]}",
                 line if isinstance(line, int) else None)
        status = ArtifactStatus.ERROR
    if status is ArtifactStatus.ERROR:
        _raw_text_checks(text, sink, "unparseable")
        _close(sink)
        return status
    checker: _TreeCheck | None = None
    try:
        budget.check_deadline()  # parsing a large template can itself take seconds
        checker = _TreeCheck(tree, sink, budget)
        checker.run()
    except RecursionError:
        ctx.add(engine_rules.LIMIT_EXCEEDED.finding(location, "chat template nests too deeply to analyse",
                                                    limit="python"))
        status = ArtifactStatus.PARTIAL
    except LimitExceeded as exc:
        # Fail closed: what was found stays, and a payload the walk did not reach is still
        # looked for in the text (obfuscated ones are not; the finding says so).
        line = checker.line if checker is not None else None
        where = f" at template line {line}" if line is not None else ""
        ctx.add(engine_rules.LIMIT_EXCEEDED.finding(
            location, f"chat template only partly analysed: {exc}{where} (limit: {exc.limit}); the rest was "
            "only searched as text", limit=exc.limit, steps=budget.used, template_line=line))
        status = ArtifactStatus.PARTIAL
    if status is ArtifactStatus.PARTIAL:
        _raw_text_checks(text, sink, "partly analysed")
    _close(sink)
    return status


def _close(sink: _Sink) -> None:
    for rule in RULES:
        extra = sink.counts.get(rule.id, 0) - MAX_FINDINGS_PER_RULE
        if extra > 0:
            sink.ctx.add(rule.finding(sink.location, f"{extra} more {rule.id} findings were not listed",
                                      omitted=extra))


def _raw_text_checks(text: str, sink: _Sink, why: str) -> None:
    """What can still be said about a template that was not (fully) walked as a tree.

    ``why``: unparseable, oversized, partly analysed. Runs on its own budget, in chunks:
    first the code-execution patterns over the whole text, then the instruction patterns.
    """
    budget = WorkBudget(MAX_RAW_TEXT_STEPS)
    phase, scanned = "code", 0
    try:
        for start, chunk in _chunks(text):
            budget.charge(1 + len(chunk) // _DANGEROUS_CHARS_PER_STEP)
            for m in _DUNDER_TEXT.finditer(chunk):
                sink.add(DUNDER_STRING, f"{why} template mentions {m.group(0)!r}", None, key=m.group(0))
            for m in _CODE_TEXT.finditer(chunk):
                sink.add(DANGEROUS_NAME, f"{why} template mentions {m.group(0)!r}", None, key=m.group(0))
            for m in _INCLUDE_TAG.finditer(chunk):
                sink.add(INCLUDE, f"{why} template uses {{% {m.group(1)} %}}", None, key=m.group(1))
            scanned = min(len(text), start + RAW_CHUNK)
        phase, scanned = "instruction", 0
        for start, chunk in _chunks(text):
            _instruction_checks(chunk, None, sink, budget)
            scanned = min(len(text), start + RAW_CHUNK)
    except LimitExceeded as exc:
        sink.ctx.add(engine_rules.LIMIT_EXCEEDED.finding(
            sink.location, f"{phase} pattern checks of the {why} template stopped at character {scanned} of "
            f"{len(text)}", limit=exc.limit, scanned=scanned, length=len(text), checks=phase))


def _chunks(text: str) -> Iterator[tuple[int, str]]:
    """Overlapping pieces of ``text``: (start offset, piece)."""
    start = 0
    while True:
        yield start, text[start:start + RAW_CHUNK + RAW_OVERLAP]
        start += RAW_CHUNK
        if start >= len(text):
            return


def _instruction_checks(text: str, lineno: int | None, sink: _Sink, budget: WorkBudget) -> None:
    budget.charge(1 + len(text) * _INSTRUCTION_STEPS_PER_CHAR)
    for pattern in _INSTRUCTION_PATTERNS:
        m = pattern.search(text)
        if m:
            excerpt = _excerpt(text, m.start(), m.end())
            sink.add(HIDDEN_INSTRUCTION, f"template text injects an instruction: {excerpt!r}", lineno,
                     key=excerpt, text=excerpt)
    for m in _URL.finditer(text):
        sink.add(EMBEDDED_URL, f"template text contains the URL {m.group(0)[:EXCERPT]!r}", lineno,
                 key=m.group(0), url=m.group(0)[:EXCERPT])


def _excerpt(text: str, start: int, end: int) -> str:
    a = max(0, start - 40)
    return " ".join(text[a:min(len(text), end + 40)].split())[:EXCERPT]


def _is_dunder(name: str) -> bool:
    return len(name) > 4 and name.startswith("__") and name.endswith("__")


class _TreeCheck:
    """One pass over a parsed template: collects the tree, then checks every node."""

    def __init__(self, tree: nodes.Template, sink: _Sink, budget: WorkBudget) -> None:
        self.sink = sink
        self.budget = budget
        self.parents: dict[int, nodes.Node] = {}
        self.all: list[nodes.Node] = []
        stack: list[nodes.Node] = [tree]
        while stack:  # iterative: hostile nesting must not exhaust the Python stack here
            node = stack.pop()
            budget.charge()
            self.all.append(node)
            children = list(node.iter_child_nodes())
            for child in children:
                self.parents[id(child)] = node
            stack.extend(reversed(children))  # popped in document order: a budget stops at a line
        self.stored: set[str] = {"loop", "caller", "varargs", "kwargs"}
        self.assignments: dict[str, nodes.Node] = {}
        for node in self.all:
            if isinstance(node, nodes.Name) and node.ctx in ("store", "param"):
                self.stored.add(node.name)
            elif isinstance(node, nodes.Macro):
                self.stored.add(node.name)
            if isinstance(node, nodes.Assign) and isinstance(node.target, nodes.Name):
                self.assignments.setdefault(node.target.name, node.node)
        self.content_names = self._content_names()
        self.resolver = TemplateResolver(self.assignments, budget)
        self.line: int | None = None  # the template line being checked, for a budget that runs out
        self.escaped: set[str] = set()  # names already reported as sandbox escapes
        self.strings_seen: set[str] = set()
        self.formats_seen: set[str] = set()

    # -- message-content taint, for trigger detection -------------------------------------------
    def _content_names(self) -> set[str]:
        names: set[str] = set()
        for _ in range(4):  # a few rounds reach set a = message.content; set b = a|trim
            for name, value in self.assignments.items():
                if name not in names and self.is_content(value, names):
                    names.add(name)
        return names

    def is_content(self, node: nodes.Node | None, names: set[str] | None = None, depth: int = 0) -> bool:
        """Whether ``node`` is message text (``message.content``, a variable set from it, a transform of it)."""
        names = self.content_names if names is None else names
        if node is None or depth > 30:
            return False
        self.budget.charge()
        if isinstance(node, nodes.Name):
            return node.name in names
        if isinstance(node, nodes.Getattr):
            return node.attr in _CONTENT_KEYS
        if isinstance(node, nodes.Getitem):
            key = node.arg.value if isinstance(node.arg, nodes.Const) else None
            if isinstance(key, str):
                return key in _CONTENT_KEYS
            return self.is_content(node.node, names, depth + 1)  # an index or slice of content
        if isinstance(node, nodes.Filter):
            return self.is_content(node.node, names, depth + 1)
        if isinstance(node, nodes.Call) and isinstance(node.node, nodes.Getattr) \
                and node.node.attr in _STRING_METHODS:
            return self.is_content(node.node.node, names, depth + 1)
        if isinstance(node, nodes.Concat):
            return any(self.is_content(n, names, depth + 1) for n in node.nodes)
        return False

    # -- the checks ------------------------------------------------------------------------------
    def run(self) -> None:
        """Check every node; raises :class:`LimitExceeded` when the budget or the deadline is spent."""
        for node in self.all:
            line = getattr(node, "lineno", None)
            self.line = line
            self.budget.charge()
            if isinstance(node, nodes.Getattr):
                self._check_attribute(node.attr, line, "attribute", direct=True)
            elif isinstance(node, nodes.Getitem):
                key = self.resolver.resolve(node.arg)
                if isinstance(key, str):
                    self._check_attribute(key, line, "item", direct=False)
            elif isinstance(node, (nodes.Filter, nodes.Test, nodes.Call)):
                self._check_call(node, line)
            elif isinstance(node, nodes.Name) and node.ctx == "load":
                self._check_name(node, line)
            elif isinstance(node, (nodes.Include, nodes.Import, nodes.FromImport, nodes.Extends)):
                target = self.resolver.resolve(node.template)
                tag = {nodes.Include: "include", nodes.Import: "import", nodes.FromImport: "from",
                       nodes.Extends: "extends"}[type(node)]
                sink_text = f"{{% {tag} %}} loads another template" + (f" ({str(target)[:EXCERPT]!r})" if target else "")
                self.sink.add(INCLUDE, sink_text, line, key=f"{tag}:{target}:{line}", tag=tag,
                              target=str(target)[:EXCERPT] if target is not None else None)
            elif isinstance(node, nodes.TemplateData):
                _instruction_checks(node.data, line, self.sink, self.budget)
            elif isinstance(node, nodes.Const) and isinstance(node.value, str):
                _instruction_checks(node.value, line, self.sink, self.budget)
            if isinstance(node, (nodes.If, nodes.CondExpr)) or (isinstance(node, nodes.For) and node.test):
                self._check_trigger(node, line)
        # Second pass: strings that spell internals, unless already reported where they are used.
        for node in self.all:
            if isinstance(node, nodes.Expr):
                self.line = getattr(node, "lineno", None)
                self.budget.charge()
                self._check_string(node, self.line)

    def _check_attribute(self, name: str, line: int | None, how: str, *, direct: bool) -> None:
        private = direct and name.startswith("_")
        if _is_dunder(name) or name in SENSITIVE_ATTRS or private:
            self.escaped.add(name)
            self.sink.add(SANDBOX_ESCAPE, f"template accesses {how} {name[:EXCERPT]!r}", line,
                          key=f"{name}:{line}", attribute=name[:EXCERPT])
        elif name in DANGEROUS_ATTRS:
            self.sink.add(DANGEROUS_NAME, f"template accesses {how} {name!r}", line, key=f"{name}:{line}",
                          name=name)

    def _check_call(self, node: nodes.Filter | nodes.Test | nodes.Call, line: int | None) -> None:
        keywords = [k for k in node.kwargs if isinstance(k, nodes.Keyword)]
        values = [self.resolver.resolve(a) for a in node.args] + [self.resolver.resolve(k.value) for k in keywords]
        keys = [str(k.key) for k in keywords]
        for key in keys:
            if _is_dunder(key):
                self.sink.add(DUNDER_STRING, f"keyword argument named {key!r}", line, key=key, text=key)
        attr_position = isinstance(node, nodes.Call) or (isinstance(node, nodes.Filter)
                                                         and node.name in _ATTR_FILTERS)
        for value in values:
            if not isinstance(value, str):
                continue
            if attr_position and (_is_dunder(value) or value in SENSITIVE_ATTRS):
                self.escaped.add(value)
                self.sink.add(SANDBOX_ESCAPE, f"template passes {value[:EXCERPT]!r} as an attribute name"
                              + (f" to |{node.name}" if isinstance(node, nodes.Filter) else ""), line,
                              key=f"{value}:{line}", attribute=value[:EXCERPT])
            elif attr_position and value in DANGEROUS_ATTRS:
                self.sink.add(DANGEROUS_NAME, f"template passes {value!r} as an attribute name", line,
                              key=f"{value}:{line}", name=value)
        if isinstance(node, nodes.Call) and isinstance(node.node, nodes.Getattr) and node.node.attr == "format" \
                or isinstance(node, nodes.Filter) and node.name == "format":
            fmt = self.resolver.resolve(node.node.node if isinstance(node, nodes.Call) and isinstance(
                node.node, nodes.Getattr) else node.node)
            if not isinstance(fmt, str) or fmt in self.formats_seen:
                return  # one search per distinct format string, as for strings
            self.formats_seen.add(fmt)
            self.budget.charge(1 + len(fmt) // _DANGEROUS_CHARS_PER_STEP)
            if _PRIVATE_FIELD.search(fmt):
                self.sink.add(SANDBOX_ESCAPE, f"format string reaches for private attributes: {fmt[:EXCERPT]!r}",
                              line, key=f"fmt:{fmt}", text=fmt[:EXCERPT])

    def _check_name(self, node: nodes.Name, line: int | None) -> None:
        name = node.name
        if name in self.stored:
            return
        parent = self.parents.get(id(node))
        if name in GADGETS:
            if isinstance(parent, (nodes.Getattr, nodes.Getitem)) and parent.node is node:
                self.sink.add(SSTI_GADGET, f"template reaches into the {name!r} object", line,
                              key=f"{name}:attr:{line}", severity=Severity.CRITICAL, gadget=name)
            elif isinstance(parent, nodes.Call) and parent.node is node and name in _CALLABLE_GADGETS_OK:
                severity = _CALLABLE_GADGETS_OK[name]
                if severity is not None:
                    self.sink.add(SSTI_GADGET, f"template calls {name}()", line, key=f"{name}:call",
                                  severity=severity, gadget=name)
            else:
                self.sink.add(SSTI_GADGET, f"template uses the {name!r} object", line, key=f"{name}:{line}",
                              gadget=name)
        elif name in DANGEROUS_NAMES:
            self.sink.add(DANGEROUS_NAME, f"template refers to {name!r}", line, key=f"{name}:{line}", name=name)

    def _check_string(self, node: nodes.Node, line: int | None) -> None:
        value = self.resolver.resolve(node)
        if not isinstance(value, str) or not value or value in self.strings_seen:
            return  # one search per distinct string: a variable used 10^4 times is searched once
        self.strings_seen.add(value)
        # Report each assembled string once, at the outermost expression that builds it.
        parent = self.parents.get(id(node))
        if isinstance(parent, nodes.Expr) and isinstance(self.resolver.resolve(parent), str):
            return
        self.budget.charge(1 + len(value) // _DANGEROUS_CHARS_PER_STEP)
        m = _DUNDER_TEXT.search(value)
        if m and value not in self.escaped:
            self.sink.add(DUNDER_STRING, f"string spells {m.group(0)!r}: {value[:EXCERPT]!r}", line,
                          key=f"{value}", text=value[:EXCERPT])
        m = _CODE_TEXT.search(value)
        if m:
            self.sink.add(DANGEROUS_NAME, f"string contains {m.group(0)!r}: {value[:EXCERPT]!r}", line,
                          key=f"code:{value}", text=value[:EXCERPT])

    def _check_trigger(self, node: nodes.If | nodes.CondExpr | nodes.For, line: int | None) -> None:
        test = node.test
        branch: str | None = None
        for phrase, how in self._triggers(test):
            if branch is None:
                branch = _branch_text(node, self.budget)
            self.sink.add(CONDITIONAL_TRIGGER, f"template branches when message content {how} {phrase!r}",
                          line, key=f"{phrase}:{line}", trigger=phrase[:EXCERPT], branch=branch)

    def _triggers(self, test: nodes.Node | None) -> Iterator[tuple[str, str]]:
        if test is None:
            return
        stack: list[nodes.Node] = [test]
        while stack:
            node = stack.pop()
            self.budget.charge()
            stack.extend(node.iter_child_nodes())
            if isinstance(node, nodes.Compare):
                left = node.expr
                for operand in node.ops:
                    right = operand.expr
                    if operand.op in ("in", "notin"):
                        phrase = self.resolver.resolve(left)
                        if isinstance(phrase, str) and _trigger_like(phrase) and self.is_content(right):
                            yield phrase, "contains"
                    elif operand.op in ("eq", "ne"):
                        for a, b in ((left, right), (right, left)):
                            phrase = self.resolver.resolve(a)
                            if isinstance(phrase, str) and _trigger_like(phrase) and self.is_content(b):
                                yield phrase, "equals"
                    left = right
            elif isinstance(node, nodes.Call) and isinstance(node.node, nodes.Getattr) \
                    and node.node.attr in ("startswith", "endswith", "find", "count", "index", "__contains__") \
                    and self.is_content(node.node.node):
                for arg in node.args:
                    phrase = self.resolver.resolve(arg)
                    if isinstance(phrase, str) and _trigger_like(phrase):
                        yield phrase, f"{node.node.attr}()"


def _trigger_like(phrase: str) -> bool:
    """A word or phrase, not a control token such as ``<tool_call>``, ``[INST]`` or ``/no_think``."""
    text = phrase.strip()
    if len(text) < 3 or not _LETTERS.search(text):  # a Python loop per character here took seconds
        return False
    if text[0] in "<[{|/" or text[-1] in ">]}|":
        return False
    return True


_BRANCH_NODES = 64  # nodes looked at for a branch's text: nested triggers each walked the rest once


def _branch_text(node: nodes.Node, budget: WorkBudget) -> str:
    """The literal text a branch emits (its first nodes only), for the finding's details."""
    parts: list[str] = []
    size = 0
    stack: list[nodes.Node] = list(reversed((getattr(node, "body", None) or [])[:_BRANCH_NODES]))
    expr = getattr(node, "expr1", None)
    if expr is not None:
        stack.append(expr)
    for _ in range(_BRANCH_NODES):
        if not stack or size >= EXCERPT:
            break
        budget.charge()
        child = stack.pop()
        if isinstance(child, nodes.TemplateData):
            parts.append(child.data[:EXCERPT])
        elif isinstance(child, nodes.Const) and isinstance(child.value, str):
            parts.append(child.value[:EXCERPT])
        else:
            stack.extend(reversed(list(islice(child.iter_child_nodes(), _BRANCH_NODES))))
            continue
        size += len(parts[-1])
    return " ".join(" ".join(parts).split())[:EXCERPT]
