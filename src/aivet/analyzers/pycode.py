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
Name resolution, constant folding and the bounded decoders live in
:mod:`aivet.analyzers.pyfold`; what call names and paths mean (the tables the
checks consult) in :mod:`aivet.analyzers.pycode_calls`.
"""

from __future__ import annotations

import ast
import io
import time
import tokenize
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from aivet.analyzers.context import Context
from aivet.analyzers.engine import Outcome
from aivet.analyzers.pycode_calls import (
    BASE64_BLOB,
    BLOB_MIN,
    CREDENTIAL_CALLS,
    CREDENTIAL_PATHS,
    DESERIALIZE_CALLS,
    EXEC_CALLS,
    HEX_BLOB,
    HUB_DOWNLOADS,
    IMPORT_CALLS,
    NATIVE_PREFIXES,
    NETWORK_BENIGN,
    PERSISTENCE_PATHS,
    PROCESS_CALLS,
    PROCESS_PREFIXES,
    REMOTE_LOADERS,
    SAFE_ENCODINGS,
    SECRET_ENV_NAME,
    WRITE_CALLS,
    is_main_guard,
    is_network_module,
    is_pip_install,
    kw_is,
    outside_repo,
    short_repr,
)
from aivet.analyzers.pyfold import (
    FoldBudget,
    Resolver,
    decode_blob,
    keyword_arg,
    looks_like_python,
    slow_codec,
    token_estimate,
)
from aivet.analyzers.secrets import redact_text, scan_text
from aivet.analyzers.source import Source
from aivet.evidence import ArtifactStatus, Severity
from aivet.formats import LimitExceeded
from aivet.rules import (
    ATLAS_EVADE,
    ATLAS_MALICIOUS_PACKAGE,
    ATLAS_SUPPLY_CHAIN_MODEL,
    ATLAS_UNSAFE_ARTIFACTS,
    LIMIT_EXCEEDED,
    Rule,
)

_ATLAS = (ATLAS_SUPPLY_CHAIN_MODEL, ATLAS_MALICIOUS_PACKAGE)
_WHY = " Remote code runs with the rights of whoever loads the model (trust_remote_code=True)."

EXEC = Rule("CODE-EXEC", "Dynamic code execution in remote code",
            "exec(), eval() or compile() on code built at run time. The code that runs is not the code "
            "a reviewer reads." + _WHY, Severity.HIGH, _ATLAS, ("CWE-95",))
OBFUSCATED_EXEC = Rule("CODE-OBFUSCATED-EXEC", "Execution of decoded or obfuscated code",
                       "exec()/eval()/compile() fed by base64, hex, zlib, rot13, marshal or chr() decoding: "
                       "hiding a payload from review is the signature of malware. The decoded code is "
                       "analysed too." + _WHY, Severity.CRITICAL, _ATLAS + (ATLAS_EVADE,), ("CWE-95", "CWE-506"))
PROCESS = Rule("CODE-PROCESS", "Starts a process or shell command",
               "subprocess, os.system, os.popen, os.exec*/spawn*, pty.spawn or similar. Model code has no "
               "need to run programs." + _WHY, Severity.HIGH, _ATLAS, ("CWE-78",))
PIP_INSTALL = Rule("CODE-PIP-INSTALL", "Installs packages at run time",
                   "Runs pip install (through a subprocess or pip's API): it pulls and runs code that was "
                   "never part of the reviewed repository." + _WHY, Severity.HIGH, _ATLAS, ("CWE-494",))
NETWORK = Rule("CODE-NETWORK", "Network access in remote code",
               "Sockets or HTTP/FTP/SMTP/SSH clients (socket, urllib.request, http.client, requests, httpx, "
               "aiohttp, ftplib, smtplib, paramiko). Model code loading local weights needs no network; an "
               "import alone is low, a call medium (high at import time)." + _WHY,
               Severity.MEDIUM, _ATLAS, ("CWE-200",))
CREDENTIAL_ACCESS = Rule("CODE-CREDENTIAL-ACCESS", "Reads credential stores",
                         "Refers to credential files or stores: ~/.ssh, ~/.aws/credentials, ~/.netrc, the "
                         "Hugging Face token, ~/.git-credentials, Docker config, /etc/shadow, browser "
                         "profiles, keyrings." + _WHY, Severity.HIGH, _ATLAS, ("CWE-522",))
SECRET_ENV = Rule("CODE-SECRET-ENV", "Reads secret environment variables",
                  "Reads environment variables named like secrets (TOKEN, SECRET, KEY, PASSWORD, CREDENTIAL) "
                  "or copies the whole environment." + _WHY, Severity.MEDIUM, _ATLAS, ("CWE-526",))
EXFILTRATION = Rule("CODE-EXFILTRATION", "Credentials read and network used together",
                    "The same function (or the module body) reads credentials or secret environment "
                    "variables and uses the network: the pattern of a credential stealer." + _WHY,
                    Severity.CRITICAL, _ATLAS, ("CWE-200", "CWE-522"))
WRITE_OUTSIDE = Rule("CODE-WRITE-OUTSIDE", "Writes or deletes files outside the repository",
                     "open() for writing, shutil copy/move/rmtree or os.remove on an absolute path, the home "
                     "directory or a path with '..'." + _WHY, Severity.HIGH, _ATLAS, ("CWE-73",))
PERSISTENCE = Rule("CODE-PERSISTENCE", "Writes to start-up or login files",
                   "Writes shell start-up files (~/.bashrc, ~/.profile), SSH authorized_keys, cron tables, "
                   "Python .pth or sitecustomize files: code that survives the model being deleted." + _WHY,
                   Severity.CRITICAL, _ATLAS, ("CWE-506",))
DESERIALIZATION = Rule("CODE-DESERIALIZATION", "Unsafe deserialisation or code objects in remote code",
                       "marshal.loads, pickle/dill/joblib loads or types.CodeType/FunctionType built from "
                       "data: code that is not in the source file." + _WHY, Severity.HIGH,
                       _ATLAS + (ATLAS_UNSAFE_ARTIFACTS,), ("CWE-502",))
UNSAFE_TORCH_LOAD = Rule("CODE-UNSAFE-TORCH-LOAD", "torch.load without weights_only=True",
                         "torch.load (or numpy.load with allow_pickle=True) unpickles arbitrary objects: a "  # safe-load: rule text, not a call
                         "pickle fetched or shipped alongside runs code on load.", Severity.MEDIUM,
                         (ATLAS_UNSAFE_ARTIFACTS,), ("CWE-502",))
NATIVE = Rule("CODE-NATIVE", "Native code through ctypes or cffi",
              "Loads shared libraries or calls C functions directly, beyond what a Python-level review "
              "can follow." + _WHY, Severity.MEDIUM, _ATLAS, ("CWE-111",))
DYNAMIC_IMPORT = Rule("CODE-DYNAMIC-IMPORT", "Imports a module chosen at run time",
                      "__import__ or importlib.import_module with a name that is computed, which hides "
                      "what is imported from review.", Severity.MEDIUM, _ATLAS + (ATLAS_EVADE,), ("CWE-470",))
OBFUSCATION = Rule("CODE-OBFUSCATION", "Obfuscated names or encoded blobs",
                   "Attribute or module names assembled from pieces ('sys'+'tem'), long base64/hex string "
                   "literals, chr() sequences or an unusual source encoding: ways to hide intent from "
                   "readers and scanners.", Severity.MEDIUM, (ATLAS_EVADE,), ("CWE-506",))
NESTED_REMOTE_CODE = Rule("CODE-NESTED-REMOTE-CODE", "Loads other repositories with trust_remote_code",
                          "Calls from_pretrained/pipeline/... with trust_remote_code=True: code from another "
                          "repository, not reviewed with this one, runs too.", Severity.HIGH,
                          (ATLAS_SUPPLY_CHAIN_MODEL,), ("CWE-829",))
HUB_DOWNLOAD = Rule("CODE-HUB-DOWNLOAD", "Downloads files from the Hub at run time",
                    "hf_hub_download/snapshot_download fetch files that are not part of this repository's "
                    "scan.", Severity.LOW, (ATLAS_SUPPLY_CHAIN_MODEL,), ("CWE-829",))
SYNTAX_ERROR = Rule("CODE-SYNTAX-ERROR", "Python file does not parse",
                    "The file is not valid Python, so it could not be analysed. It cannot be imported "
                    "either, but another file may read and run it.", Severity.LOW, (ATLAS_EVADE,), ("CWE-20",))
ENCODING = Rule("CODE-ENCODING", "Python file is not UTF-8",
                "The file is not valid in its declared encoding; undecodable bytes were replaced before "
                "analysis.", Severity.LOW, (ATLAS_EVADE,), ("CWE-176",))

RULES = (EXEC, OBFUSCATED_EXEC, PROCESS, PIP_INSTALL, NETWORK, CREDENTIAL_ACCESS, SECRET_ENV, EXFILTRATION,
         WRITE_OUTSIDE, PERSISTENCE, DESERIALIZATION, UNSAFE_TORCH_LOAD, NATIVE, DYNAMIC_IMPORT, OBFUSCATION,
         NESTED_REMOTE_CODE, HUB_DOWNLOAD, SYNTAX_ERROR, ENCODING)

_LEVELS = list(Severity)
_DEADLINE_EVERY = 4096  # nodes walked between two looks at the clock
_MAX_SCOPE_LINES = 10  # lines remembered per scope for the exfiltration finding (it shows ten)


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
    text, note = _decode(data, source, ctx)
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


def _decode(data: bytes, source: Source, ctx: Context) -> tuple[str, str]:
    """Decode as Python would (PEP 263 coding cookie), replacing what does not decode."""
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
    except (SyntaxError, LookupError):
        encoding = "utf-8"
    if encoding.lower().replace("_", "-") not in SAFE_ENCODINGS:
        ctx.add(OBFUSCATION.finding(ctx.location(source, line=1),
                                    f"source declares the unusual encoding {encoding!r}, a known way to hide "
                                    "code from readers", encoding=encoding))
    if slow_codec(encoding):
        ctx.add(ENCODING.finding(ctx.location(source), f"{encoding} is too slow to decode untrusted input; read as "
                                 "UTF-8 with undecodable bytes replaced", encoding=encoding))
        return data.decode("utf-8", "replace"), f"not decoded as {encoding}"
    try:
        return data.decode(encoding), ""
    except (UnicodeDecodeError, LookupError):
        text = data.decode("utf-8", "replace")
        ctx.add(ENCODING.finding(ctx.location(source), f"not valid {encoding}; undecodable bytes replaced",
                                 encoding=encoding))
        return text, f"not valid {encoding}"


def analyze_python_text(text: str, report: _Report, *, truncated: bool = False) -> None:
    """Parse ``text`` and report what it does; a syntax error is a finding."""
    budget = report.budget()
    tokens, max_tokens = token_estimate(text), report.ctx.limits.max_python_tokens  # decoded code included
    if budget.tokens + tokens > max_tokens:
        # ast.parse holds about a kilobyte per node at its peak: a megabyte of "0," would take
        # half a gigabyte. Too much code (or decoded code) is a bound hit, not a parse.
        report.partial = True
        report.add(LIMIT_EXCEEDED, 1, f"about {tokens} Python tokens; more than {max_tokens} per file (with the "
                   "code decoded from it) are not parsed", limit="max_python_tokens")
        return
    budget.tokens += tokens
    try:
        tree = ast.parse(text.replace("\x00", ""))
    except SyntaxError as exc:
        hint = " (the file was truncated at the size limit)" if truncated else ""
        report.add(SYNTAX_ERROR, exc.lineno or 1, f"not valid Python: {exc.msg}{hint}", error=str(exc.msg))
        return
    except (RecursionError, MemoryError, ValueError) as exc:
        report.add(SYNTAX_ERROR, 1, f"Python parser gave up: {type(exc).__name__}", error=type(exc).__name__)
        return
    _Checker(tree, report).run()


class _Checker:
    def __init__(self, tree: ast.Module, report: _Report) -> None:
        self.tree = tree
        self.report = report
        self.resolver = Resolver(tree, report.ctx.limits.max_decoded_bytes, report.budget())
        self.module = _Scope("<module>", True)
        self.scopes: list[_Scope] = [self.module]
        self.credential_lines: set[int] = set()
        self.called_at_import = self._functions_called_at_import()

    # -- traversal ------------------------------------------------------------------------------
    def _functions_called_at_import(self) -> set[int]:
        """ids of module-level functions that run on import: called from the module body, or from such a function.

        Malware often defines a harmless-looking function and calls it at the bottom of the file;
        its body then runs on import just like module-level code.
        """
        defs = {n.name: n for n in self.tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
        if not defs:
            return set()

        def callees(nodes: list[ast.AST], skip_defs: bool) -> set[str]:
            out: set[str] = set()
            stack = list(nodes)
            while stack:
                node = stack.pop()
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in defs:
                    out.add(node.func.id)
                if skip_defs and isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                    stack.extend([*node.args.defaults, *(d for d in node.args.kw_defaults if d)])
                    if not isinstance(node, ast.Lambda):
                        stack.extend(node.decorator_list)
                    continue
                if skip_defs and isinstance(node, ast.If) and is_main_guard(node.test):
                    stack.extend(node.orelse)
                    continue
                stack.extend(ast.iter_child_nodes(node))
            return out

        reached: set[str] = set()
        todo = list(callees(list(self.tree.body), True))
        while todo:
            name = todo.pop()
            if name in reached:
                continue
            reached.add(name)
            todo.extend(callees(list(defs[name].body), False) - reached)
        return {id(defs[n]) for n in reached}

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
        for n, (node, scope) in enumerate(self._walk()):
            if n % _DEADLINE_EVERY == 0 and time.monotonic() > deadline:
                raise LimitExceeded("max_seconds_per_file", "Python analysis ran out of time")
            if isinstance(node, ast.Call):
                self._call(node, scope)
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                self._import(node)
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                self._string(node, scope)
            elif isinstance(node, ast.Subscript):
                self._subscript(node, scope)
            elif isinstance(node, (ast.BinOp, ast.JoinedStr)):
                self._assembled_path(node, scope)
            elif isinstance(node, (ast.For, ast.comprehension)):
                if self.resolver.qualname(node.iter) == "os.environ":
                    self._env_dump(node, scope)
        self._exfiltration()
        if self.resolver.budget.exhausted:
            self.report.partial = True
            self.report.add(LIMIT_EXCEEDED, 1, f"constant folding stopped after {self.report.ctx.limits.max_fold_steps} "
                            "steps; later expressions were not de-obfuscated", limit="max_fold_steps")

    # -- checks ---------------------------------------------------------------------------------
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

    def _call(self, node: ast.Call, scope: _Scope) -> None:
        r = self.resolver
        name = r.qualname(node.func)
        if name is None:
            self._dynamic_callee(node, scope)
            return
        line = node.lineno
        text = self._call_text(name, node)
        where = self._where(scope)
        if name in EXEC_CALLS:
            self._exec(node, name, text, scope)
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
                ("requests.exceptions.", "urllib.request.pathname2url")):
            _note(scope.network, line)
            self.report.add(NETWORK, line, f"network call {where}: {text}", severity=self._sev(NETWORK, scope),
                            call=text)
        elif name in DESERIALIZE_CALLS:
            self.report.add(DESERIALIZATION, line, f"{name} {where}: {text}",
                            severity=self._sev(DESERIALIZATION, scope), call=text)
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
            if not kw_is(node, "weights_only", True):
                self.report.add(UNSAFE_TORCH_LOAD, line, f"torch.load without weights_only=True {where}: {text}",
                                call=text)
        elif name in ("numpy.load",) and kw_is(node, "allow_pickle", True):
            self.report.add(UNSAFE_TORCH_LOAD, line, f"numpy.load with allow_pickle=True {where}: {text}", call=text)  # safe-load: message text
        elif name in HUB_DOWNLOADS:
            self.report.add(HUB_DOWNLOAD, line, f"downloads from the Hub {where}: {text}", call=text)
        elif name in ("builtins.getattr",):
            self._getattr(node, scope)
        elif name in ("os.getenv", "os.environ.get", "os.environ.pop", "os.environ.setdefault", "os.getenvb",
                      "os.environ.__getitem__"):
            self._env_name(node.args[0] if node.args else None, node, scope)
        elif name in ("os.environ.copy", "os.environ.items", "os.environ.values", "os.environ.keys",
                      "builtins.dict", "json.dumps", "builtins.str", "builtins.repr") and (
                name.startswith("os.environ.") or any(r.qualname(a) == "os.environ" for a in node.args)):
            self._env_dump(node, scope)
        if name in ("builtins.open", "io.open", "codecs.open", "os.open", "pathlib.Path.open") or name in WRITE_CALLS:
            self._file_access(node, name, text, scope)
        if kw_is(node, "trust_remote_code", True) and name.rsplit(".", 1)[-1] in REMOTE_LOADERS:
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
        if arg is None or arg.text is None:
            self.report.add(DYNAMIC_IMPORT, node.lineno, f"imports a computed module name {self._where(scope)}: {text}",
                            call=text)
        elif arg.obfuscated or arg.composed:
            self.report.add(OBFUSCATION, node.lineno, f"module name assembled at run time: {text}",
                            severity=Severity.HIGH, call=text, module=arg.text[:100])

    def _env_name(self, arg: ast.expr | None, node: ast.AST, scope: _Scope) -> None:
        folded = self.resolver.fold(arg) if arg is not None else None
        line = getattr(node, "lineno", 1)
        if folded is None or folded.text is None:
            return
        var = folded.text
        if SECRET_ENV_NAME.search(var) and var not in ("TOKENIZERS_PARALLELISM",):
            _note(scope.credentials, line)
            self.report.add(SECRET_ENV, line, f"reads secret environment variable {var} {self._where(scope)}",
                            variable=var[:100])

    def _env_dump(self, node: ast.AST, scope: _Scope) -> None:
        line = getattr(node, "lineno", 1)
        _note(scope.credentials, line)
        self.report.add(SECRET_ENV, line, f"copies the whole environment {self._where(scope)}",
                        severity=Severity.LOW, variable="*")

    def _subscript(self, node: ast.Subscript, scope: _Scope) -> None:
        if isinstance(node.ctx, ast.Load) and self.resolver.qualname(node.value) == "os.environ":
            self._env_name(node.slice, node, scope)

    def _string(self, node: ast.Constant, scope: _Scope) -> None:
        value = str(node.value)
        if len(value) < 4096 and CREDENTIAL_PATHS.search(value):
            self._credential_path(value, node.lineno, scope)
        if len(value) >= BLOB_MIN:
            self._blob(value, node.lineno)

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
        writing = name not in ("builtins.open", "io.open", "codecs.open", "os.open", "pathlib.Path.open")
        if not writing:
            mode_node = node.args[1] if len(node.args) > 1 else keyword_arg(node, "mode") or keyword_arg(node, "flags")
            mode = r.fold(mode_node) if mode_node is not None else None
            if mode is not None and mode.text is not None:
                writing = any(c in mode.text for c in "wax+")
            elif mode_node is not None and name == "os.open":
                writing = "O_WRONLY" in ast.dump(mode_node) or "O_RDWR" in ast.dump(mode_node)
        if not writing:
            return
        path = r.fold(path_node) if path_node is not None else None
        target = path.text if path is not None and path.text is not None else None
        if target is None:
            return
        if PERSISTENCE_PATHS.search(target):
            self.report.add(PERSISTENCE, node.lineno, f"writes start-up file {target!r} {self._where(scope)}: {text}",
                            call=text, path=target[:200])
        elif outside_repo(target):
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
