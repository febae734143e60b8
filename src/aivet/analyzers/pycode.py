"""Python shipped in model repositories: the code ``trust_remote_code=True`` runs.

``modeling_*.py``, ``configuration_*.py``, ``tokenization_*.py`` (and any other
``.py``) are imported by ``transformers`` when a user passes
``trust_remote_code=True``; whatever runs at import time, or when the model is
built, runs with the user's rights. This analyzer reads the source with
:func:`ast.parse` (never importing or executing it), resolves import aliases
and the usual obfuscations (``getattr(os, 'sys'+'tem')``,
``__import__('o'+'s')``, base64/zlib/rot13/hex/``chr`` payloads fed to
``exec``), and reports process execution, network use, credential theft,
writes outside the repository, deserialisation and obfuscation. Calls that run
at import time (module level, class bodies, decorators, default arguments)
are one severity level higher than the same call inside a function.

Ordinary ``transformers``-style modeling code (torch, math, logging,
``os.path.join``, warnings, typing) must stay silent at MEDIUM and above.

The pieces: name resolution and constant folding in :mod:`aivet.analyzers.pyfold`
(bounded decoders in :mod:`~aivet.analyzers.pycode_decode`); what call names and paths
mean in :mod:`~aivet.analyzers.pycode_calls`; the ``CODE-*`` rules in
:mod:`~aivet.analyzers.pycode_rules`; which function bodies run on import (callbacks,
metaclasses, ``__init_subclass__``) in :mod:`~aivet.analyzers.pycode_import_time`;
tampering (references to dangerous callables, environment hijacking, monkeypatching,
hooks, introspection) in :mod:`~aivet.analyzers.pycode_tamper`; and parsing that fails
closed on syntax this interpreter lacks in :mod:`~aivet.analyzers.pycode_recover`.
"""

from __future__ import annotations

import ast
import io
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from aivet.analyzers.context import Context
from aivet.analyzers.engine import Outcome
from aivet.analyzers.pycode_calls import (
    BASE64_BLOB,
    BLOB_MIN,
    CREDENTIAL_CALLS,
    CREDENTIAL_CONSTANTS,
    CREDENTIAL_PATHS,
    DESERIALIZE_CALLS,
    EXEC_CALLS,
    FILE_LOADERS,
    HEX_BLOB,
    HUB_DOWNLOADS,
    IMPORT_CALLS,
    INTROSPECTION_ATTRS,
    LOADER_METHODS,
    MKDIR_CALLS,
    NATIVE_PREFIXES,
    NETWORK_BENIGN,
    PERSISTENCE_PATHS,
    PROCESS_CALLS,
    PROCESS_PREFIXES,
    REMOTE_LOADERS,
    SECRET_ENV_NAME,
    WRITE_CALLS,
    WRITE_SECOND_ARG,
    is_local_lookup,
    is_main_guard,
    is_network_module,
    is_pip_install,
    is_safe_yaml,
    kw_is,
    names_in,
    outside_repo,
    path_hint,
    short_repr,
    trusts_remote_code,
)
from aivet.analyzers.pycode_decode import decode_blob, looks_like_python, token_estimate
from aivet.analyzers.pycode_import_time import functions_run_at_import
from aivet.analyzers.pycode_recover import decode_source, parse_recovering, report_syntax, risky_words
from aivet.analyzers.pycode_rules import (
    CREDENTIAL_ACCESS,
    DESERIALIZATION,
    DYNAMIC_IMPORT,
    EXEC,
    EXFILTRATION,
    HUB_DOWNLOAD,
    NATIVE,
    NESTED_REMOTE_CODE,
    NETWORK,
    OBFUSCATED_EXEC,
    OBFUSCATION,
    PERSISTENCE,
    PIP_INSTALL,
    PROCESS,
    SECRET_ENV,
    SYNTAX_ERROR,
    UNSAFE_TORCH_LOAD,
    WRITE_OUTSIDE,
)
from aivet.analyzers.pycode_rules import RULES as CODE_RULES
from aivet.analyzers.pycode_tamper import TamperChecks, dangerous_reference
from aivet.analyzers.pyfold import FoldBudget, Folded, Resolver, keyword_arg
from aivet.analyzers.secrets import redact_text, scan_text
from aivet.analyzers.source import Source
from aivet.evidence import ArtifactStatus, Severity
from aivet.formats import LimitExceeded
from aivet.rules import LIMIT_EXCEEDED, Rule

RULES = CODE_RULES  # the catalogue reads this module's RULES (rules.RULE_MODULES)

_LEVELS = list(Severity)
_DEADLINE_EVERY = 4096  # nodes walked between two looks at the clock
_MAX_SCOPE_LINES = 10  # lines remembered per scope for the exfiltration finding (it shows ten)
_MAX_RECOVERY_ATTEMPTS = 16  # syntax errors skipped over per file before giving up on the rest
_RISKY_MODULES = frozenset({"os", "subprocess", "socket", "ctypes", "builtins", "pty", "posix", "nt", "marshal",
                            "pickle", "urllib", "requests", "http", "shutil", "importlib", "runpy", "code"})
_RECOVERY_PARSES = 4  # re-parsing after syntax errors may cost this many parses of the largest allowed file


def _raise(sev: Severity) -> Severity:
    return _LEVELS[min(len(_LEVELS) - 1, _LEVELS.index(sev) + 1)]


@dataclass
class _Scope:
    """A function body, or the module body (everything that runs at import time)."""

    name: str
    import_time: bool
    credentials: list[int] = field(default_factory=list)  # lines that read credentials / secret env
    network: list[int] = field(default_factory=list)  # lines with network calls


@dataclass
class _Report:
    source: Source
    ctx: Context
    depth: int  # 0 for the file itself, 1+ for code decoded from it
    base_line: int  # line in the file where decoded code sits (0 for the file itself)
    via: str  # how decoded code was obtained ("base64 -> exec")
    count: int = 0
    dropped: int = 0
    seen: set[tuple[str, int, str]] = field(default_factory=set)
    fold_budget: FoldBudget | None = None  # shared by the file and the code decoded from it
    partial: bool = False  # a bound stopped part of the analysis

    def budget(self) -> FoldBudget:
        """The folding budget of this file, made on first use."""
        if self.fold_budget is None:
            self.fold_budget = FoldBudget(self.ctx.limits.max_fold_steps, deadline=self.ctx.deadline())
        return self.fold_budget

    def add(self, rule: Rule, line: int, message: str, *, severity: Severity | None = None, **details: Any) -> None:
        line_no = self.base_line or line
        key = (rule.id, line_no, message)
        if key in self.seen:
            return
        if self.count >= self.ctx.limits.max_findings_per_file:
            self.dropped += 1  # not remembered: the set would grow with every call in the file
            return
        self.seen.add(key)
        self.count += 1
        if self.depth:
            details = {**details, "decoded_depth": self.depth, "decoded_via": self.via, "decoded_line": line}
            message = f"{message} (in code decoded by {self.via})"
        details = {k: redact_text(v) if isinstance(v, str) else v for k, v in details.items()}
        self.ctx.add(rule.finding(self.ctx.location(self.source, line=line_no), redact_text(message),
                                  severity=severity, **details))


def analyze(source: Source, ctx: Context) -> Outcome:
    """Analyzer for Python source files (remote code): parse, never import."""
    limit = ctx.limits.max_text_file_bytes
    with source.open() as fh:
        data = fh.read(limit + 1)
    truncated = len(data) > limit
    data = data[:limit]
    text, note = decode_source(data, source, ctx)
    status = ArtifactStatus.ANALYZED
    if truncated:
        ctx.add(LIMIT_EXCEEDED.finding(ctx.location(source, offset=limit),
                                       f"Python file larger than {limit} bytes; only the start was analysed",
                                       limit="max_text_file_bytes"))
        status = ArtifactStatus.PARTIAL
    scan_text(text, ctx.location(source), ctx)
    report = _Report(source, ctx, 0, 0, "")
    analyze_python_text(text, report, truncated=truncated)
    if report.partial:
        status = ArtifactStatus.PARTIAL
    if report.dropped:
        ctx.add(LIMIT_EXCEEDED.finding(ctx.location(source), f"{report.dropped} more findings not reported",
                                       limit="max_findings_per_file"))
    return Outcome("python", status, note)


def analyze_python_text(text: str, report: _Report, *, truncated: bool = False) -> None:
    """Parse ``text`` and report what it does; a syntax error is a finding."""
    budget = report.budget()
    tokens, max_tokens = token_estimate(text), report.ctx.limits.max_python_tokens  # decoded code included
    if budget.tokens + tokens > max_tokens:
        # ast.parse holds about a kilobyte per node at its peak: a megabyte of "0," would take
        # half a gigabyte. Too much code (or decoded code) is a bound hit, not a parse.
        # Padding a payload with comments must not lower its severity below high: look at the words.
        report.partial = True
        words = risky_words(text)
        report.add(LIMIT_EXCEEDED, 1, f"about {tokens} Python tokens; more than {max_tokens} per file (with the "
                   "code decoded from it) are not parsed" + (f"; the text uses {', '.join(words)}" if words else ""),
                   severity=Severity.HIGH if words else None, limit="max_python_tokens", names=words)
        return
    budget.tokens += tokens
    # Re-parsing after a syntax error costs a parse each time: at most _RECOVERY_PARSES file-sized parses.
    attempts = min(_MAX_RECOVERY_ATTEMPTS, _RECOVERY_PARSES * max_tokens // max(tokens, 1))
    try:
        recovered = parse_recovering(text.replace("\x00", ""), attempts)
    except (RecursionError, MemoryError, ValueError) as exc:
        report.add(SYNTAX_ERROR, 1, f"Python parser gave up: {type(exc).__name__}", error=type(exc).__name__,
                   severity=Severity.HIGH if risky_words(text) else None)
        return
    if recovered.errors:
        report_syntax(report, recovered, text, truncated)
    if recovered.tree is not None:
        _Checker(recovered.tree, report).run()


class _Checker(TamperChecks):
    report: _Report

    def __init__(self, tree: ast.Module, report: _Report) -> None:
        self.tree = tree
        self.report = report
        self.resolver = Resolver(tree, report.ctx.limits.max_decoded_bytes, report.budget())
        self.module = _Scope("<module>", True)
        self.scopes: list[_Scope] = [self.module]
        self.credential_lines: set[int] = set()
        # Bodies that run on import although they are not at module level: called or registered from
        # module code, metaclass and __init_subclass__ hooks (see pycode_import_time).
        self.called_at_import = functions_run_at_import(tree, self.resolver.qualname)

    # -- traversal ------------------------------------------------------------------------------
    def _walk(self) -> Iterator[tuple[ast.AST, _Scope]]:
        """Every node with the scope it runs in; iterative, so deep trees cannot overflow the stack."""
        stack: list[tuple[ast.AST, _Scope]] = [(self.tree, self.module)]
        while stack:
            node, scope = stack.pop()
            yield node, scope
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                # Decorators and defaults run when the def runs; the body only when called.
                if id(node) in self.called_at_import:
                    inner = _Scope(f"{getattr(node, 'name', '')}() called at import", True)
                else:
                    inner = _Scope(getattr(node, "name", "<lambda>"), False)
                self.scopes.append(inner)
                outer_parts: list[ast.AST] = [*node.args.defaults, *(d for d in node.args.kw_defaults if d)]
                if not isinstance(node, ast.Lambda):
                    outer_parts += node.decorator_list
                    body: list[ast.AST] = list(node.body)
                else:
                    body = [node.body]
                stack.extend((c, scope) for c in reversed(outer_parts))
                stack.extend((c, inner) for c in reversed(body))
                continue
            if isinstance(node, ast.If) and is_main_guard(node.test):
                inner = _Scope("__main__", False)
                self.scopes.append(inner)
                stack.extend((c, inner) for c in reversed(node.body))
                stack.extend((c, scope) for c in reversed(node.orelse))
                continue
            stack.extend((c, scope) for c in reversed(list(ast.iter_child_nodes(node))))

    def run(self) -> None:
        deadline = self.resolver.budget.deadline
        callees: set[int] = set()  # callee expressions: what is called is not a mere reference
        for n, (node, scope) in enumerate(self._walk()):
            if n % _DEADLINE_EVERY == 0 and time.monotonic() > deadline:
                raise LimitExceeded("max_seconds_per_file", "Python analysis ran out of time")
            if isinstance(node, ast.Call):
                callees.add(id(node.func))
                if isinstance(node.func, ast.Attribute) and node.func.attr == "__call__":
                    callees.add(id(node.func.value))  # os.system.__call__('id') calls os.system
                self._call(node, scope)
                if id(node) not in callees:
                    self.reference(node)
            elif isinstance(node, (ast.Name, ast.Attribute)):
                if isinstance(node.ctx, ast.Load) and id(node) not in callees:
                    self.reference(node)
                if isinstance(node, ast.Attribute) and node.attr in INTROSPECTION_ATTRS:
                    self.introspection(node)
                if (node.id if isinstance(node, ast.Name) else node.attr) in ("HF_TOKEN_PATH", "HF_STORED_TOKENS_PATH"):
                    self._credential_constant(node, scope)
            elif isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign)):
                self.assignment(node, scope.import_time)
                if isinstance(node, ast.Assign) and all(self._plain_alias(t) for t in node.targets):
                    callees.add(id(node.value))  # f = os.popen; f('id'): reported where f is called
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                self._import(node)
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                self._string(node, scope)
            elif isinstance(node, ast.Subscript):
                self._subscript(node, scope)
                self.namespace_subscript(node)
            elif isinstance(node, (ast.BinOp, ast.JoinedStr)):
                self._assembled_path(node, scope)
            elif isinstance(node, ast.Dict) and any(k is None and self.resolver.qualname(v) == "os.environ"
                                                    for k, v in zip(node.keys, node.values, strict=True)):
                self._env_dump(node, scope)  # {**os.environ}
            elif isinstance(node, (ast.For, ast.comprehension)):
                if self.resolver.qualname(node.iter) == "os.environ":
                    self._env_dump(node, scope, values=False)
        self._exfiltration()
        if self.resolver.budget.exhausted:
            self.report.partial = True
            self.report.add(LIMIT_EXCEEDED, 1, f"constant folding stopped after {self.report.ctx.limits.max_fold_steps} "
                            "steps; later expressions were not de-obfuscated", limit="max_fold_steps")

    # -- checks ---------------------------------------------------------------------------------
    def _plain_alias(self, target: ast.expr) -> bool:
        """A name bound once (so calls through it resolve to this value) and called somewhere by that name."""
        return (isinstance(target, ast.Name) and target.id in self.resolver.called
                and len(self.resolver.assigned.get(target.id, ())) == 1 and target.id not in self.resolver.defined)

    def _sev(self, rule: Rule, scope: _Scope, base: Severity | None = None) -> Severity:
        sev = base or rule.severity
        return _raise(sev) if scope.import_time else sev

    def _where(self, scope: _Scope) -> str:
        if scope is self.module:
            return "at import time"
        return f"in {scope.name}" if scope.import_time else f"in {scope.name}()"

    def _import(self, node: ast.Import | ast.ImportFrom) -> None:
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
        for name in names:
            if name and is_network_module(name):
                self.report.add(NETWORK, node.lineno, f"imports network module {name}", severity=Severity.LOW,
                                module=name)
            if name.split(".")[0] in ("ctypes", "cffi", "_ctypes"):
                self.report.add(NATIVE, node.lineno, f"imports {name}", severity=Severity.LOW, module=name)
            if name.split(".")[0] in ("marshal",):
                self.report.add(DESERIALIZATION, node.lineno, f"imports {name}", severity=Severity.LOW, module=name)
        if isinstance(node, ast.ImportFrom) and node.module and not node.level:
            # from os import system as run_kernel, never called here: re-exported for another file to call
            for a in node.names:
                full = f"{node.module}.{a.name}"
                rule = dangerous_reference(full)
                if rule is not None and (a.asname or a.name) not in self.resolver.called:
                    self.report.add(rule, node.lineno, f"imports {full} without calling it here (re-exported for "
                                    "another file, or called under another name)", call=full)

    def _call(self, node: ast.Call, scope: _Scope) -> None:
        r = self.resolver
        name = r.callee(node)
        if name is None:
            self._dynamic_callee(node, scope)
            return
        line = node.lineno
        text = self._call_text(name, node)
        where = self._where(scope)
        if name in EXEC_CALLS:
            self._exec(node, name, text, scope)
        elif name.startswith(("ctypes.pythonapi.PyRun_", "ctypes.pythonapi.Py_CompileString")):
            self.report.add(EXEC, line, f"runs Python source through the C API {where}: {text}",
                            severity=self._sev(EXEC, scope), call=text)
        elif name in ("torch.hub.load", "torch.hub.list", "torch.hub.help"):
            self.report.add(NESTED_REMOTE_CODE, line, f"runs hubconf.py of a GitHub repository (torch.hub) {where}: "
                            f"{text}", severity=self._sev(NESTED_REMOTE_CODE, scope), call=text)
        elif name in ("torch.serialization.add_safe_globals", "torch.serialization.safe_globals"):
            self.report.add(UNSAFE_TORCH_LOAD, line, f"widens the weights_only allowlist of torch.load {where}: {text}",
                            call=text)
        elif name == "torch.hub.load_state_dict_from_url" and not kw_is(node, "weights_only", True):
            self.report.add(UNSAFE_TORCH_LOAD, line, f"unpickles a file fetched from a URL {where}: {text}",
                            severity=self._sev(UNSAFE_TORCH_LOAD, scope, Severity.HIGH), call=text)
        elif name in FILE_LOADERS:
            self.report.add(EXEC, line, f"loads Python code from a file {where}: {text}",
                            severity=self._sev(EXEC, scope), call=text)
        elif name in PROCESS_CALLS or name.startswith(PROCESS_PREFIXES):
            if is_pip_install(node, r):
                self.report.add(PIP_INSTALL, line, f"installs packages {where}: {text}",
                                severity=self._sev(PIP_INSTALL, scope), call=text)
            else:
                self.report.add(PROCESS, line, f"runs a process {where}: {text}", severity=self._sev(PROCESS, scope),
                                call=text)
        elif name in ("pip.main", "pip._internal.main", "pip._internal.cli.main.main"):
            self.report.add(PIP_INSTALL, line, f"calls pip {where}: {text}", severity=self._sev(PIP_INSTALL, scope),
                            call=text)
        elif is_network_module(name) and name not in NETWORK_BENIGN and not name.startswith(
                ("requests.exceptions.", "urllib.request.pathname2url")) and not is_local_lookup(self.resolver, node, name):
            _note(scope.network, line)
            self.report.add(NETWORK, line, f"network call {where}: {text}", severity=self._sev(NETWORK, scope),
                            call=text)
        elif name in DESERIALIZE_CALLS or (name in ("yaml.load", "yaml.load_all") and not is_safe_yaml(self.resolver, node)):
            self.report.add(DESERIALIZATION, line, f"{name} {where}: {text}",
                            severity=self._sev(DESERIALIZATION, scope), call=text)
            self._embedded_pickle(node, name)
        elif name.startswith(NATIVE_PREFIXES):
            self.report.add(NATIVE, line, f"native code {where}: {text}", severity=self._sev(NATIVE, scope),
                            call=text)
        elif name in IMPORT_CALLS:
            self._dynamic_import(node, name, text, scope)
        elif name in CREDENTIAL_CALLS:
            _note(scope.credentials, line)
            self.report.add(CREDENTIAL_ACCESS, line, f"reads credentials {where}: {text}",
                            severity=self._sev(CREDENTIAL_ACCESS, scope), call=text)
        elif name in ("torch.load", "torch.serialization.load"):
            if kw_is(node, "weights_only", False) or (keyword_arg(node, "pickle_module") is not None
                                                       and not kw_is(node, "weights_only", True)):
                # An explicit opt-out of the safe default (PyTorch >= 2.6 loads weights only), or a
                # pickle_module, which turns that default off (torch.serialization._default_to_weights_only).
                self.report.add(UNSAFE_TORCH_LOAD, line, f"torch.load with weights_only=False {where}: {text}",
                                severity=self._sev(UNSAFE_TORCH_LOAD, scope, Severity.HIGH), call=text)
            elif not kw_is(node, "weights_only", True):
                self.report.add(UNSAFE_TORCH_LOAD, line, f"torch.load without weights_only=True {where}: {text}",
                                call=text)
            self._embedded_pickle(node, name)
        elif name in ("numpy.load",) and kw_is(node, "allow_pickle", True):
            self.report.add(UNSAFE_TORCH_LOAD, line, f"numpy.load with allow_pickle=True {where}: {text}", call=text)  # safe-load: message text
        elif name in HUB_DOWNLOADS:
            self._hub_download(node, name, text, scope)
        elif name in ("builtins.getattr",):
            self._getattr(node, scope)
        elif name in ("os.getenv", "os.environ.get", "os.environ.pop", "os.environ.setdefault", "os.getenvb",
                      "os.environ.__getitem__"):
            self._env_name(node.args[0] if node.args else None, node, scope)
            if name == "os.environ.setdefault":
                self.env_call(name, node, scope.import_time)
        elif name in ("builtins.setattr",):
            self.setattr_call(node)
        elif name.startswith(("os.putenv", "os.environ.")) and name in (
                "os.putenv", "os.environ.update", "os.environ.__setitem__"):
            self.env_call(name, node, scope.import_time)
        elif name in ("os.environ.copy", "os.environ.items", "os.environ.values", "os.environ.keys",
                      "builtins.dict", "json.dumps", "builtins.str", "builtins.repr") and (
                name.startswith("os.environ.") or any(r.qualname(a) == "os.environ" for a in node.args)):
            self._env_dump(node, scope, values=name != "os.environ.keys")
        self.hook_call(name, node)
        if name in ("builtins.open", "io.open", "codecs.open", "os.open", "pathlib.Path.open") or name in WRITE_CALLS:
            self._file_access(node, name, text, scope)
        if trusts_remote_code(r, node) and name.rsplit(".", 1)[-1] in REMOTE_LOADERS:
            target = r.fold(node.args[0]) if node.args else None
            repo = target.text[:200] if target and target.text is not None else None
            self.report.add(NESTED_REMOTE_CODE, line,
                            f"loads {repo or 'another repository'} with trust_remote_code=True {where}: {text}",
                            severity=self._sev(NESTED_REMOTE_CODE, scope), call=text, repo=repo)
        self._path_args(node, scope)

    def _call_text(self, name: str, node: ast.Call) -> str:
        parts = []
        for a in [*node.args, *(k.value for k in node.keywords)][:6]:
            f = self.resolver.fold(a)
            if f is not None and f.value is not None:
                parts.append(short_repr(f.value))
            else:
                q = self.resolver.qualname(a)
                parts.append(q if q else "…")
        return f"{name}({', '.join(parts)})"[:300]

    def _exec(self, node: ast.Call, name: str, text: str, scope: _Scope) -> None:
        line = node.lineno
        arg = node.args[0] if node.args else None
        folded = self.resolver.fold(arg) if arg is not None else None
        decoders = self.resolver.decoders_in(arg) if arg is not None else []
        obfuscated = bool(folded and folded.obfuscated) or bool(decoders)
        how = " -> ".join(folded.steps) if folded and folded.steps else ", ".join(decoders)
        if obfuscated:
            self.report.add(OBFUSCATED_EXEC, line, f"{name} of code decoded by {how or 'a decoder'} {self._where(scope)}",
                            call=text, decoders=how)
        else:
            self.report.add(EXEC, line, f"{name} of dynamic code {self._where(scope)}: {text}",
                            severity=self._sev(EXEC, scope), call=text)
        if folded is not None and folded.text is not None:
            self._nested(folded.text, line, f"{how or 'constant'} -> {name.rsplit('.', 1)[-1]}")

    def _nested(self, code: str, line: int, via: str) -> None:
        rep = self.report
        if rep.depth >= rep.ctx.limits.max_decode_depth:
            rep.add(LIMIT_EXCEEDED, line, "decoded code nested too deep; inner layers not analysed",
                    limit="max_decode_depth")
            return
        budget = rep.budget()
        digest = hash(code)
        if digest in budget.decoded:
            return  # the same decoded code, run again (exec(x) in a loop body): analysed once
        budget.decoded.add(digest)
        inner = _Report(rep.source, rep.ctx, rep.depth + 1, rep.base_line or line,
                        f"{rep.via} / {via}" if rep.via else via, rep.count, 0, rep.seen, budget)
        analyze_python_text(code, inner)
        rep.count = inner.count
        rep.dropped += inner.dropped
        rep.partial = rep.partial or inner.partial

    def _dynamic_callee(self, node: ast.Call, scope: _Scope) -> None:
        # getattr(x, <computed>)(...) where the name could not be resolved.
        func = node.func
        if isinstance(func, ast.Call) and self.resolver.qualname(func.func) == "builtins.getattr":
            self._getattr(func, scope)
        elif isinstance(func, ast.Attribute) and func.attr in LOADER_METHODS:
            # spec.loader.exec_module(module): runs whatever file the spec was made from
            self.report.add(EXEC, node.lineno, f"runs a loaded module's code ({func.attr}) {self._where(scope)}",
                            severity=self._sev(EXEC, scope), call=func.attr)

    def _embedded_pickle(self, node: ast.Call, name: str) -> None:
        """A pickle load of bytes written in the source (``loads`` of a bytes literal): analyse the
        pickle itself, never load it."""
        if not node.args or self.report.depth:
            return
        arg = node.args[0]
        if name.rsplit(".", 1)[-1] != "loads":  # ``load`` of an io.BytesIO around a bytes literal
            if not (isinstance(arg, ast.Call) and arg.args and self.resolver.qualname(arg.func) == "io.BytesIO"):
                return
            arg = arg.args[0]
        blob = self.resolver.fold(arg)
        if blob is None or not isinstance(blob.value, bytes) or not blob.value:
            return
        data = blob.value
        src = self.report.source.child(f"line {node.lineno}: {name}", len(data), lambda: io.BytesIO(data))
        self.report.ctx.analyze(src, hint="embedded.pkl")

    def _hub_download(self, node: ast.Call, name: str, text: str, scope: _Scope) -> None:
        """Hub downloads are low; downloading Python, a native library or a .pth file is code from elsewhere."""
        target = keyword_arg(node, "filename") or (node.args[1] if len(node.args) > 1 else None)
        folded = self.resolver.fold(target) if target is not None else None
        fname = folded.text if folded is not None and folded.text is not None else ""
        if fname.lower().endswith((".py", ".pyc", ".so", ".dll", ".dylib", ".pth", ".sh", ".pyd")):
            self.report.add(HUB_DOWNLOAD, node.lineno, f"downloads code ({fname}) from the Hub {self._where(scope)}: "
                            f"{text}", severity=self._sev(HUB_DOWNLOAD, scope, Severity.HIGH), call=text)
        else:
            self.report.add(HUB_DOWNLOAD, node.lineno, f"downloads from the Hub {self._where(scope)}: {text}", call=text)

    def _getattr(self, node: ast.Call, scope: _Scope) -> None:
        if len(node.args) < 2:
            return
        attr = self.resolver.fold(node.args[1])
        if attr is not None and attr.text is not None and (attr.obfuscated or attr.composed):
            self.report.add(OBFUSCATION, node.lineno, f"attribute name assembled at run time: getattr(…, "
                            f"{short_repr(attr.text)})", attribute=attr.text[:100])
        elif attr is None:
            target = self.resolver.qualname(node.args[0])
            if target and target.split(".")[0] in ("os", "subprocess", "builtins", "socket", "sys", "importlib"):
                self.report.add(OBFUSCATION, node.lineno, f"attribute of {target} chosen at run time",
                                severity=self._sev(OBFUSCATION, scope), target=target)

    def _dynamic_import(self, node: ast.Call, name: str, text: str, scope: _Scope) -> None:
        arg = self.resolver.fold(node.args[0]) if node.args else None
        first = node.args[0] if node.args else None
        if (arg is None or arg.text is None) and isinstance(first, ast.Name) and first.id in self.resolver.iterated:
            # for m in ["os", "subprocess"]: import_module(m): the names are in the list
            names = self.resolver.fold(self.resolver.iterated[first.id])
            mods = [m for m in names.value[:64] if isinstance(m, str)] if names and isinstance(names.value, list) else []
            risky = [m for m in mods if m.split(".")[0] in _RISKY_MODULES]
            if risky:
                self.report.add(DYNAMIC_IMPORT, node.lineno, f"imports {', '.join(risky[:5])} by a loop variable "
                                f"{self._where(scope)}: {text}", severity=Severity.HIGH, call=text, module=risky[0])
                return
        if arg is None or arg.text is None:
            self.report.add(DYNAMIC_IMPORT, node.lineno, f"imports a computed module name {self._where(scope)}: {text}",
                            call=text)
        elif arg.obfuscated or arg.composed:
            self.report.add(OBFUSCATION, node.lineno, f"module name assembled at run time: {text}",
                            severity=Severity.HIGH, call=text, module=arg.text[:100])

    def _env_name(self, arg: ast.expr | None, node: ast.AST, scope: _Scope) -> None:
        folded = self.resolver.fold(arg) if arg is not None else None
        line = getattr(node, "lineno", 1)
        if (folded is None or folded.text is None) and isinstance(arg, ast.Name) and arg.id in self.resolver.iterated:
            # for k in ["HF_TOKEN", "AWS_SECRET_ACCESS_KEY"]: os.environ.get(k)
            names = self.resolver.fold(self.resolver.iterated[arg.id])
            if names is not None and isinstance(names.value, list):
                hit = next((v for v in names.value[:256] if isinstance(v, str) and SECRET_ENV_NAME.search(v)), None)
                folded = Folded(hit) if hit is not None else None
        if folded is None or folded.text is None:
            return
        var = folded.text
        if SECRET_ENV_NAME.search(var) and var not in ("TOKENIZERS_PARALLELISM",):
            _note(scope.credentials, line)
            self.report.add(SECRET_ENV, line, f"reads secret environment variable {var} {self._where(scope)}",
                            variable=var[:100])

    def _env_dump(self, node: ast.AST, scope: _Scope, *, values: bool = True) -> None:
        # Copying the values copies every secret in the environment (medium); the names alone are low.
        line = getattr(node, "lineno", 1)
        _note(scope.credentials, line)
        what = "copies the whole environment" if values else "lists the environment's variable names"
        self.report.add(SECRET_ENV, line, f"{what} {self._where(scope)}",
                        severity=Severity.MEDIUM if values else Severity.LOW, variable="*")

    def _subscript(self, node: ast.Subscript, scope: _Scope) -> None:
        if isinstance(node.ctx, ast.Load) and self.resolver.qualname(node.value) == "os.environ":
            self._env_name(node.slice, node, scope)

    def _string(self, node: ast.Constant, scope: _Scope) -> None:
        value = str(node.value)
        if len(value) < 4096 and CREDENTIAL_PATHS.search(value):
            self._credential_path(value, node.lineno, scope)
        if len(value) >= BLOB_MIN:
            self._blob(value, node.lineno)

    def _credential_constant(self, node: ast.Name | ast.Attribute, scope: _Scope) -> None:
        name = self.resolver.qualname(node)
        if name in CREDENTIAL_CONSTANTS and node.lineno not in self.credential_lines:
            self.credential_lines.add(node.lineno)
            _note(scope.credentials, node.lineno)
            self.report.add(CREDENTIAL_ACCESS, node.lineno, f"refers to the Hugging Face token file ({name}) "
                            f"{self._where(scope)}", severity=self._sev(CREDENTIAL_ACCESS, scope), path=name)

    def _credential_path(self, value: str, line: int, scope: _Scope) -> None:
        m = CREDENTIAL_PATHS.search(value)
        if m is None or line in self.credential_lines:
            return
        self.credential_lines.add(line)
        _note(scope.credentials, line)
        self.report.add(CREDENTIAL_ACCESS, line, f"refers to credential store {m.group(0)!r} {self._where(scope)}",
                        severity=self._sev(CREDENTIAL_ACCESS, scope), path=short_repr(value))

    def _assembled_path(self, node: ast.BinOp | ast.JoinedStr, scope: _Scope) -> None:
        # Path.home() / ".cache" / "huggingface" / "token", f"{home}/.ssh/id_rsa", "~" + "/.netrc"
        if isinstance(node, ast.BinOp) and not isinstance(node.op, (ast.Div, ast.Add)):
            return
        f = self.resolver.fold(node)
        if f is not None and f.text is not None and len(f.text) < 4096:
            self._credential_path(f.text, node.lineno, scope)

    def _path_args(self, node: ast.Call, scope: _Scope) -> None:
        # Paths assembled from pieces (Path.home() / ".ssh", os.path.join("~", ".aws", ...)).
        for a in node.args:
            if isinstance(a, ast.Constant):
                continue
            f = self.resolver.fold(a)
            if f is not None and f.text is not None and len(f.text) < 4096 and CREDENTIAL_PATHS.search(f.text):
                self._credential_path(f.text, node.lineno, scope)

    def _blob(self, value: str, line: int) -> None:
        stripped = value.strip()
        kind = "hex" if HEX_BLOB.fullmatch(stripped) else "base64" if BASE64_BLOB.fullmatch(stripped) else None
        if kind is None or " " in stripped[:200]:
            return
        decoded = decode_blob(stripped, kind, self.report.ctx.limits.max_decoded_bytes)
        self.report.add(OBFUSCATION, line, f"{len(value)}-character {kind} string literal", encoding=kind,
                        length=len(value))
        if decoded is not None and looks_like_python(decoded, self.report.ctx.limits.max_python_tokens):
            self._nested(decoded, line, f"{kind} literal")

    def _file_access(self, node: ast.Call, name: str, text: str, scope: _Scope) -> None:
        r = self.resolver
        path_node: ast.expr | None = node.args[0] if node.args else keyword_arg(node, "file") or keyword_arg(node, "path")
        if name.startswith("pathlib.Path.") and isinstance(node.func, ast.Attribute):
            path_node = node.func.value
        if name in WRITE_SECOND_ARG:  # copy(src, dst): the destination is written
            path_node = node.args[1] if len(node.args) > 1 else keyword_arg(node, "dst") or keyword_arg(
                node, "extract_dir")
        writing = name not in ("builtins.open", "io.open", "codecs.open", "os.open", "pathlib.Path.open")
        if not writing:
            mode_node = node.args[1] if len(node.args) > 1 else keyword_arg(node, "mode") or keyword_arg(node, "flags")
            mode = r.fold(mode_node) if mode_node is not None else None
            if mode is not None and mode.text is not None:
                writing = any(c in mode.text for c in "wax+")
            elif mode is not None and isinstance(mode.value, int) and name == "os.open":
                writing = mode.value & 3 != 0  # O_WRONLY / O_RDWR given as a number (577)
            elif mode_node is not None and name == "os.open":
                writing = "O_WRONLY" in ast.dump(mode_node) or "O_RDWR" in ast.dump(mode_node)
        if not writing:
            return
        path = r.fold(path_node) if path_node is not None else None
        target = path.text if path is not None and path.text is not None else None
        if target is None and path_node is not None and "__file__" in names_in(path_node):
            self.report.add(OBFUSCATION, node.lineno, f"deletes or rewrites its own source file {self._where(scope)}: "
                            f"{text}", severity=Severity.HIGH, call=text)
            return
        if target is None:
            hint = path_hint(self.resolver, path_node) if path_node is not None else None
            if hint in ("site-packages", "the Hugging Face cache"):
                self.report.add(PERSISTENCE, node.lineno, f"writes into {hint} {self._where(scope)}: {text}", call=text)
            elif hint is not None and PERSISTENCE_PATHS.search(hint):
                self.report.add(PERSISTENCE, node.lineno, f"writes start-up file {hint!r} {self._where(scope)}: "
                                f"{text}", call=text, path=hint[:200])
            elif hint == "outside" and name not in MKDIR_CALLS:
                self.report.add(WRITE_OUTSIDE, node.lineno, f"writes outside the repository {self._where(scope)}: "
                                f"{text}", severity=self._sev(WRITE_OUTSIDE, scope), call=text)
            return
        if PERSISTENCE_PATHS.search(target):
            self.report.add(PERSISTENCE, node.lineno, f"writes start-up file {target!r} {self._where(scope)}: {text}",
                            call=text, path=target[:200])
        elif outside_repo(target) and name not in MKDIR_CALLS:
            self.report.add(WRITE_OUTSIDE, node.lineno, f"writes outside the repository {self._where(scope)}: {text}",
                            severity=self._sev(WRITE_OUTSIDE, scope), call=text, path=target[:200])

    def _exfiltration(self) -> None:
        network = [(s, line) for s in self.scopes for line in s.network]
        creds = [(s, line) for s in self.scopes for line in s.credentials]
        if not network or not creds:
            return
        for scope in self.scopes:
            if scope.network and scope.credentials:
                self.report.add(EXFILTRATION, scope.network[0],
                                f"{scope.name} reads credentials (line {scope.credentials[0]}) and uses the network "
                                f"(line {scope.network[0]})", scope=scope.name,
                                credential_lines=scope.credentials[:10], network_lines=scope.network[:10])
                return
        self.report.add(EXFILTRATION, network[0][1],
                        f"the file reads credentials (line {creds[0][1]}) and uses the network (line "
                        f"{network[0][1]})", severity=Severity.HIGH, credential_lines=[c[1] for c in creds][:10],
                        network_lines=[n[1] for n in network][:10])


def _note(lines: list[int], line: int) -> None:
    if len(lines) < _MAX_SCOPE_LINES:
        lines.append(line)
