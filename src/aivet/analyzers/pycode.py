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
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from aivet.evidence import ArtifactStatus, Severity
from aivet.rules import (
    ATLAS_EVADE,
    ATLAS_MALICIOUS_PACKAGE,
    ATLAS_SUPPLY_CHAIN_MODEL,
    ATLAS_UNSAFE_ARTIFACTS,
    LIMIT_EXCEEDED,
    Rule,
)
from aivet.analyzers.context import Context
from aivet.analyzers.engine import Outcome
from aivet.analyzers.secrets import redact_text, scan_text
from aivet.analyzers.source import Source

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
                         "torch.load (or numpy.load with allow_pickle=True) unpickles arbitrary objects: a "
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

# -- what calls mean ----------------------------------------------------------------------------

_EXEC_CALLS = frozenset({"builtins.exec", "builtins.eval", "builtins.compile", "builtins.execfile",
                         "code.InteractiveInterpreter.runsource", "runpy.run_path", "runpy.run_module"})
_PROCESS_PREFIXES = ("subprocess.", "pty.spawn", "os.exec", "os.spawn", "os.posix_spawn", "commands.",
                     "asyncio.create_subprocess_", "popen2.")
_PROCESS_CALLS = frozenset({"os.system", "os.popen", "os.startfile", "os.forkpty", "platform.popen"})
_NETWORK_MODULES = ("socket", "urllib.request", "urllib2", "urllib3", "http.client", "httplib", "requests",
                    "httpx", "aiohttp", "ftplib", "smtplib", "poplib", "imaplib", "telnetlib", "paramiko",
                    "pycurl", "websocket", "websockets", "xmlrpc.client", "dns.resolver")
_NETWORK_BENIGN = frozenset({"socket.gethostname", "socket.getfqdn", "socket.gethostbyname", "socket.AF_INET",
                             "socket.SOCK_STREAM", "requests.exceptions", "requests.utils"})
_DESERIALIZE_CALLS = frozenset({
    "marshal.loads", "marshal.load", "pickle.loads", "pickle.load", "pickle.Unpickler", "_pickle.loads",
    "_pickle.load", "cPickle.loads", "cPickle.load", "dill.loads", "dill.load", "cloudpickle.loads",
    "cloudpickle.load", "joblib.load", "shelve.open", "types.CodeType", "types.FunctionType",
    "jsonpickle.decode", "yaml.unsafe_load", "yaml.full_load"})
_NATIVE_PREFIXES = ("ctypes.", "cffi.", "_ctypes.", "torch.utils.cpp_extension.load")  # the last compiles C++ on load
_IMPORT_CALLS = frozenset({"builtins.__import__", "importlib.import_module", "importlib.__import__",
                           "imp.load_source", "importlib.machinery.SourceFileLoader"})
_HUB_DOWNLOADS = frozenset({"huggingface_hub.hf_hub_download", "huggingface_hub.snapshot_download",
                            "transformers.utils.cached_file", "transformers.utils.hub.cached_file"})
_CREDENTIAL_CALLS = frozenset({"huggingface_hub.HfFolder.get_token", "huggingface_hub.get_token",
                               "huggingface_hub.utils.get_token", "keyring.get_password",
                               "keyring.get_credential", "browser_cookie3.load", "browser_cookie3.chrome",
                               "browser_cookie3.firefox", "getpass.getpass", "win32crypt.CryptUnprotectData"})
_WRITE_CALLS = frozenset({"shutil.copy", "shutil.copy2", "shutil.copyfile", "shutil.copytree", "shutil.move",
                          "shutil.rmtree", "os.remove", "os.unlink", "os.rmdir", "os.removedirs", "os.rename",
                          "os.replace", "os.chmod", "os.chown", "os.symlink", "os.link", "os.truncate",
                          "pathlib.Path.write_text", "pathlib.Path.write_bytes", "pathlib.Path.unlink",
                          "pathlib.Path.rmdir", "pathlib.Path.touch", "pathlib.Path.symlink_to"})

_CREDENTIAL_PATHS = re.compile(
    r"(?i)(\.ssh(?:/|$)|id_rsa|id_ed25519|id_ecdsa|authorized_keys|\.aws/credentials|\.aws/config|\.netrc"
    r"|huggingface/token|\.huggingface/token|\.git-credentials|\.docker/config\.json|/etc/shadow|/etc/passwd"
    r"|\.kube/config|\.gnupg|\.pypirc|gh/hosts\.yml|\.config/gcloud|application_default_credentials"
    r"|\.azure/|google-chrome|chromium|mozilla/firefox|Login Data|Local State|Cookies\.sqlite|\.password-store"
    r"|keychain|\.local/share/keyrings|wallet\.dat|\.bash_history|\.zsh_history)")
_PERSISTENCE_PATHS = re.compile(
    r"(?i)(\.bashrc|\.bash_profile|\.profile|\.zshrc|\.zprofile|\.config/fish|authorized_keys|/etc/cron"
    r"|crontab|/var/spool/cron|\.config/autostart|/etc/rc\.local|/etc/profile|/etc/systemd|\.config/systemd"
    r"|sitecustomize\.py|usercustomize\.py|site-packages/[^/]*\.pth$|\.pth$|/etc/ld\.so\.preload"
    r"|LaunchAgents|LaunchDaemons)")
_SECRET_ENV_NAME = re.compile(r"(?i)(TOKEN|SECRET|PASSW(OR)?D|CREDENTIAL|API_?KEY|ACCESS_?KEY|PRIVATE_?KEY|"
                              r"AUTH|SESSION|COOKIE|_KEY$)")
_REMOTE_LOADERS = ("from_pretrained", "pipeline", "from_config", "load", "snapshot_download", "AutoModel",
                   "load_dataset")
_BASE64_BLOB = re.compile(r"[A-Za-z0-9+/=\s]+")
_HEX_BLOB = re.compile(r"[0-9a-fA-F\s]+")
_BLOB_MIN = 512  # a string literal this long made only of base64/hex characters is worth a look
_SAFE_ENCODINGS = frozenset({"utf-8", "utf-8-sig", "ascii", "latin-1", "iso-8859-1", "cp1252", "iso-8859-15",
                             "utf8", "latin1"})

_LEVELS = list(Severity)


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

    def add(self, rule: Rule, line: int, message: str, *, severity: Severity | None = None, **details: Any) -> None:
        line_no = self.base_line or line
        key = (rule.id, line_no, message)
        if key in self.seen:
            return
        self.seen.add(key)
        if self.count >= self.ctx.limits.max_findings_per_file:
            self.dropped += 1
            return
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
    if report.dropped:
        ctx.add(LIMIT_EXCEEDED.finding(ctx.location(source), f"{report.dropped} more findings not reported",
                                       limit="max_findings_per_file"))
    return Outcome("python", status, note)


def analyze_code(code: str, source: Source, ctx: Context, *, line: int = 0, via: str = "") -> None:
    """Analyse Python ``code`` found inside ``source`` (a string a pickle passes to exec, a notebook cell).

    With ``via`` (how the code was obtained, e.g. ``"pickle exec argument"``) findings are
    reported as decoded code at ``line`` of ``source``.
    """
    report = _Report(source, ctx, 1 if via else 0, line, via)
    analyze_python_text(code, report)


def _decode(data: bytes, source: Source, ctx: Context) -> tuple[str, str]:
    """Decode as Python would (PEP 263 coding cookie), replacing what does not decode."""
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
    except (SyntaxError, LookupError):
        encoding = "utf-8"
    if encoding.lower().replace("_", "-") not in _SAFE_ENCODINGS:
        ctx.add(OBFUSCATION.finding(ctx.location(source, line=1),
                                    f"source declares the unusual encoding {encoding!r}, a known way to hide "
                                    "code from readers", encoding=encoding))
    try:
        return data.decode(encoding), ""
    except (UnicodeDecodeError, LookupError):
        text = data.decode("utf-8", "replace")
        ctx.add(ENCODING.finding(ctx.location(source), f"not valid {encoding}; undecodable bytes replaced",
                                 encoding=encoding))
        return text, f"not valid {encoding}"


def analyze_python_text(text: str, report: _Report, *, truncated: bool = False) -> None:
    """Parse ``text`` and report what it does; a syntax error is a finding."""
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
        self.resolver = Resolver(tree, report.ctx.limits.max_decoded_bytes)
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
                if skip_defs and isinstance(node, ast.If) and _is_main_guard(node.test):
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
            if isinstance(node, ast.If) and _is_main_guard(node.test):
                inner = _Scope("__main__", False)
                self.scopes.append(inner)
                stack.extend((c, inner) for c in reversed(node.body))
                stack.extend((c, scope) for c in reversed(node.orelse))
                continue
            stack.extend((c, scope) for c in reversed(list(ast.iter_child_nodes(node))))

    def run(self) -> None:
        for node, scope in self._walk():
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
            if name and _is_network_module(name):
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
        if name in _EXEC_CALLS:
            self._exec(node, name, text, scope)
        elif name in _PROCESS_CALLS or name.startswith(_PROCESS_PREFIXES):
            if _is_pip_install(node, r):
                self.report.add(PIP_INSTALL, line, f"installs packages {where}: {text}",
                                severity=self._sev(PIP_INSTALL, scope), call=text)
            else:
                self.report.add(PROCESS, line, f"runs a process {where}: {text}", severity=self._sev(PROCESS, scope),
                                call=text)
        elif name in ("pip.main", "pip._internal.main", "pip._internal.cli.main.main"):
            self.report.add(PIP_INSTALL, line, f"calls pip {where}: {text}", severity=self._sev(PIP_INSTALL, scope),
                            call=text)
        elif _is_network_module(name) and name not in _NETWORK_BENIGN and not name.startswith(
                ("requests.exceptions.", "urllib.request.pathname2url")):
            scope.network.append(line)
            self.report.add(NETWORK, line, f"network call {where}: {text}", severity=self._sev(NETWORK, scope),
                            call=text)
        elif name in _DESERIALIZE_CALLS:
            self.report.add(DESERIALIZATION, line, f"{name} {where}: {text}",
                            severity=self._sev(DESERIALIZATION, scope), call=text)
        elif name.startswith(_NATIVE_PREFIXES):
            self.report.add(NATIVE, line, f"native code {where}: {text}", severity=self._sev(NATIVE, scope),
                            call=text)
        elif name in _IMPORT_CALLS:
            self._dynamic_import(node, name, text, scope)
        elif name in _CREDENTIAL_CALLS:
            scope.credentials.append(line)
            self.report.add(CREDENTIAL_ACCESS, line, f"reads credentials {where}: {text}",
                            severity=self._sev(CREDENTIAL_ACCESS, scope), call=text)
        elif name in ("torch.load", "torch.serialization.load"):
            if not _kw_is(node, "weights_only", True):
                self.report.add(UNSAFE_TORCH_LOAD, line, f"torch.load without weights_only=True {where}: {text}",
                                call=text)
        elif name in ("numpy.load",) and _kw_is(node, "allow_pickle", True):
            self.report.add(UNSAFE_TORCH_LOAD, line, f"numpy.load with allow_pickle=True {where}: {text}", call=text)
        elif name in _HUB_DOWNLOADS:
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
        if name in ("builtins.open", "io.open", "codecs.open", "os.open", "pathlib.Path.open") or name in _WRITE_CALLS:
            self._file_access(node, name, text, scope)
        if _kw_is(node, "trust_remote_code", True) and name.rsplit(".", 1)[-1] in _REMOTE_LOADERS + (
                "from_pretrained",):
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
                parts.append(_short_repr(f.value))
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
        inner = _Report(rep.source, rep.ctx, rep.depth + 1, rep.base_line or line,
                        f"{rep.via} / {via}" if rep.via else via, rep.count, 0, rep.seen)
        analyze_python_text(code, inner)
        rep.count = inner.count
        rep.dropped += inner.dropped

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
                            f"{_short_repr(attr.text)})", attribute=attr.text[:100])
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
        if _SECRET_ENV_NAME.search(var) and var not in ("TOKENIZERS_PARALLELISM",):
            scope.credentials.append(line)
            self.report.add(SECRET_ENV, line, f"reads secret environment variable {var} {self._where(scope)}",
                            variable=var[:100])

    def _env_dump(self, node: ast.AST, scope: _Scope) -> None:
        line = getattr(node, "lineno", 1)
        scope.credentials.append(line)
        self.report.add(SECRET_ENV, line, f"copies the whole environment {self._where(scope)}",
                        severity=Severity.LOW, variable="*")

    def _subscript(self, node: ast.Subscript, scope: _Scope) -> None:
        if isinstance(node.ctx, ast.Load) and self.resolver.qualname(node.value) == "os.environ":
            self._env_name(node.slice, node, scope)

    def _string(self, node: ast.Constant, scope: _Scope) -> None:
        value = str(node.value)
        if len(value) < 4096 and _CREDENTIAL_PATHS.search(value):
            self._credential_path(value, node.lineno, scope)
        if len(value) >= _BLOB_MIN:
            self._blob(value, node.lineno)

    def _credential_path(self, value: str, line: int, scope: _Scope) -> None:
        m = _CREDENTIAL_PATHS.search(value)
        if m is None or line in self.credential_lines:
            return
        self.credential_lines.add(line)
        scope.credentials.append(line)
        self.report.add(CREDENTIAL_ACCESS, line, f"refers to credential store {m.group(0)!r} {self._where(scope)}",
                        severity=self._sev(CREDENTIAL_ACCESS, scope), path=_short_repr(value))

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
            if f is not None and f.text is not None and len(f.text) < 4096 and _CREDENTIAL_PATHS.search(f.text):
                self._credential_path(f.text, node.lineno, scope)

    def _blob(self, value: str, line: int) -> None:
        stripped = value.strip()
        kind = "hex" if _HEX_BLOB.fullmatch(stripped) else "base64" if _BASE64_BLOB.fullmatch(stripped) else None
        if kind is None or " " in stripped[:200]:
            return
        decoded = _decode_blob(stripped, kind, self.report.ctx.limits.max_decoded_bytes)
        self.report.add(OBFUSCATION, line, f"{len(value)}-character {kind} string literal", encoding=kind,
                        length=len(value))
        if decoded is not None and _looks_like_python(decoded):
            self._nested(decoded, line, f"{kind} literal")

    def _file_access(self, node: ast.Call, name: str, text: str, scope: _Scope) -> None:
        r = self.resolver
        path_node: ast.expr | None = node.args[0] if node.args else _kw(node, "file") or _kw(node, "path")
        if name.startswith("pathlib.Path.") and isinstance(node.func, ast.Attribute):
            path_node = node.func.value
        writing = name not in ("builtins.open", "io.open", "codecs.open", "os.open", "pathlib.Path.open")
        if not writing:
            mode_node = node.args[1] if len(node.args) > 1 else _kw(node, "mode") or _kw(node, "flags")
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
        if _PERSISTENCE_PATHS.search(target):
            self.report.add(PERSISTENCE, node.lineno, f"writes start-up file {target!r} {self._where(scope)}: {text}",
                            call=text, path=target[:200])
        elif _outside_repo(target):
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


def _is_network_module(name: str) -> bool:
    return any(name == m or name.startswith(m + ".") for m in _NETWORK_MODULES)


def _is_main_guard(test: ast.expr) -> bool:
    return (isinstance(test, ast.Compare) and isinstance(test.left, ast.Name) and test.left.id == "__name__"
            and len(test.comparators) == 1 and isinstance(test.comparators[0], ast.Constant)
            and test.comparators[0].value == "__main__")


def _kw(node: ast.Call, name: str) -> ast.expr | None:
    for k in node.keywords:
        if k.arg == name:
            return k.value
    return None


def _kw_is(node: ast.Call, name: str, value: object) -> bool:
    v = _kw(node, name)
    return isinstance(v, ast.Constant) and v.value is value


def _is_pip_install(node: ast.Call, r: Resolver) -> bool:
    words: list[str] = []
    for a in node.args[:1]:
        f = r.fold(a)
        if f is not None and f.text is not None:
            words += f.text.split()
        elif isinstance(a, (ast.List, ast.Tuple)):
            for e in a.elts[:20]:
                fe = r.fold(e)
                words.append(fe.text if fe is not None and fe.text is not None else "?")
    for i, w in enumerate(words[:-1]):
        if (w.endswith("pip") or w.endswith("pip3") or w in ("uv", "conda", "mamba")) and words[i + 1] in (
                "install", "add"):
            return True
    return False


def _outside_repo(path: str) -> bool:
    p = path.replace("\\", "/")
    return (p.startswith(("/", "~")) or re.match(r"^[A-Za-z]:/", p) is not None or "/../" in f"/{p}/"
            or p.startswith("$HOME"))


def _looks_like_python(text: str) -> bool:
    if not text.isprintable() and not all(c.isprintable() or c in "\n\r\t" for c in text[:4096]):
        return False
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    return any(isinstance(n, (ast.Call, ast.Import, ast.ImportFrom)) for n in ast.walk(tree))




# ---------------------------------------------------------------------------------------------
# Name resolution and constant folding: what a call really is, what a string really says
# ---------------------------------------------------------------------------------------------

FoldValue = str | bytes | int | list[object]
_MAX_FOLD_DEPTH = 40
_MAX_LIST = 100_000
_MAX_ASSIGNMENTS = 8  # assignments to one name tried when folding it
_BUILTINS = frozenset({"exec", "eval", "compile", "execfile", "__import__", "open", "getattr", "setattr",
                       "globals", "vars", "locals", "chr", "ord", "bytes", "bytearray", "str", "dict", "repr",
                       "map", "input", "breakpoint", "memoryview"})
_PATH_TYPES = frozenset({"pathlib.Path", "pathlib.PosixPath", "pathlib.WindowsPath", "pathlib.PurePath",
                         "pathlib.PurePosixPath"})
_DECODERS = frozenset({
    "base64.b64decode", "base64.standard_b64decode", "base64.urlsafe_b64decode", "base64.decodebytes",
    "base64.decodestring", "base64.b32decode", "base64.b16decode", "base64.b85decode", "base64.a85decode",
    "binascii.a2b_base64", "binascii.unhexlify", "binascii.a2b_hex", "bytes.fromhex", "builtins.bytes.fromhex",
    "codecs.decode", "codecs.encode", "zlib.decompress", "gzip.decompress", "bz2.decompress", "lzma.decompress",
    "marshal.loads", "pickle.loads", "builtins.chr"})
# Names a star import from these modules would bring in and that matter to the checks above.
_STAR_INTERESTING = frozenset({"system", "popen", "run", "call", "Popen", "check_output", "check_call",
                               "getoutput", "execv", "execve", "execl", "spawnv", "b64decode", "decompress",
                               "loads", "urlopen", "import_module", "getenv", "environ", "remove", "rmtree"})


@dataclass(frozen=True)
class Folded:
    """The constant value of an expression, and how it was obtained."""

    value: FoldValue
    obfuscated: bool = False  # went through a decoder (base64, hex, zlib, rot13, chr, reversal)
    composed: bool = False  # assembled from pieces (concatenation, join, f-string)
    steps: tuple[str, ...] = ()

    @property
    def text(self) -> str | None:
        """The value as text (bytes decoded as UTF-8), or ``None`` when it is not text."""
        if isinstance(self.value, str):
            return self.value
        if isinstance(self.value, bytes):
            try:
                return self.value.decode("utf-8")
            except UnicodeDecodeError:
                return None
        return None


def _join(parts: list[Folded], value: FoldValue, step: str | None = None) -> Folded:
    steps = tuple(s for p in parts for s in p.steps)
    if step:
        steps += (step,)
    return Folded(value, any(p.obfuscated for p in parts) or step is not None,
                  True if step is None else any(p.composed for p in parts), steps[-8:])


class Resolver:
    """Resolves names to dotted qualified names and folds constant expressions of one module.

    Scoping is deliberately flat (one namespace for the whole file): a scanner
    over-approximates, and remote code rarely rebinds ``os`` per function.
    """

    def __init__(self, tree: ast.Module, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.aliases: dict[str, str] = {}
        self.assigned: dict[str, list[ast.expr]] = {}
        self.defined: set[str] = set()
        self.star: list[str] = []
        self._qual_cache: dict[str, str | None] = {}
        self._fold_cache: dict[str, Folded | None] = {}
        self._resolving: set[str] = set()
        self._folding: set[str] = set()
        self._bound: set[str] = set()  # comprehension variables bound while folding (not cached)
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for a in node.names:
                    if a.asname:
                        self.aliases[a.asname] = a.name
                    else:
                        top = a.name.split(".")[0]
                        self.aliases[top] = top
            elif isinstance(node, ast.ImportFrom):
                base = ("." * node.level) + (node.module or "")
                for a in node.names:
                    if a.name == "*":
                        self.star.append(base)
                    else:
                        self.aliases[a.asname or a.name] = f"{base}.{a.name}" if node.module else f"{base}{a.name}"
            elif isinstance(node, ast.Assign):
                for t in node.targets:
                    if isinstance(t, ast.Name):
                        self.assigned.setdefault(t.id, []).append(node.value)
            elif isinstance(node, (ast.AnnAssign, ast.NamedExpr)) and isinstance(node.target, ast.Name) and node.value:
                self.assigned.setdefault(node.target.id, []).append(node.value)
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                self.defined.add(node.name)
            elif isinstance(node, ast.arg):
                self.defined.add(node.arg)
        for values in self.assigned.values():
            values.sort(key=lambda v: (getattr(v, "lineno", 0), getattr(v, "col_offset", 0)))

    # -- qualified names ------------------------------------------------------------------------
    def qualname(self, node: ast.AST | None, depth: int = 0) -> str | None:
        """``sp.run`` -> ``subprocess.run`` after ``import subprocess as sp``; ``None`` if unknown."""
        if node is None or depth > _MAX_FOLD_DEPTH:
            return None
        d = depth + 1
        if isinstance(node, ast.Name):
            return self._name(node.id, d)
        if isinstance(node, ast.Attribute):
            base = self.qualname(node.value, d)
            if base is None:
                return None
            base = base.removesuffix(".__dict__")
            return f"{base}.{node.attr}" if base != "<globals>" else self._name(node.attr, d)
        if isinstance(node, ast.Call):
            return self._call_result(node, d)
        if isinstance(node, ast.Subscript):
            base = self.qualname(node.value, d)
            key = self.fold(node.slice, d)
            if base is None or key is None or key.text is None:
                return None
            base = base.removesuffix(".__dict__")
            if base == "sys.modules":
                return key.text
            if base == "<globals>":
                return "builtins" if key.text == "__builtins__" else self._name(key.text, d)
            return f"{base}.{key.text}"
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
            return "pathlib.Path" if self.qualname(node.left, d) in _PATH_TYPES else None
        return None

    def _name(self, name: str, depth: int) -> str | None:
        if name in self.aliases:
            return self.aliases[name]
        if name in ("__builtins__", "builtins"):
            return "builtins"
        if name in self._qual_cache:
            return self._qual_cache[name]
        if name in self._resolving:  # x = f(x): a cycle, not a module
            return None
        self._resolving.add(name)
        try:
            found = self._name_uncached(name, depth)
        finally:
            self._resolving.discard(name)
        self._qual_cache[name] = found
        return found

    def _name_uncached(self, name: str, depth: int) -> str | None:
        for value in reversed(self.assigned.get(name, [])[-_MAX_ASSIGNMENTS:]):
            if isinstance(value, (ast.Name, ast.Attribute, ast.Call, ast.Subscript)):
                found = self.qualname(value, depth + 1)
                if found is not None:
                    return found
        if name in self.assigned or name in self.defined:
            return None
        if name in _BUILTINS:
            return f"builtins.{name}"
        for module in self.star:
            if name in _STAR_INTERESTING and not module.startswith("."):
                return f"{module}.{name}"
        return None

    def _call_result(self, node: ast.Call, depth: int) -> str | None:
        """The qualified name of what a call returns, for the few calls that return modules or names."""
        func = self.qualname(node.func, depth)
        if func is None:
            return None
        if func in ("builtins.__import__", "importlib.import_module", "importlib.__import__") and node.args:
            f = self.fold(node.args[0], depth)
            return f.text if f is not None and f.text else None
        if func == "builtins.getattr" and len(node.args) >= 2:
            base = self.qualname(node.args[0], depth)
            attr = self.fold(node.args[1], depth)
            if base is None or attr is None or attr.text is None:
                return None
            return self._name(attr.text, depth) if base == "<globals>" else f"{base.removesuffix('.__dict__')}.{attr.text}"
        if func in ("builtins.globals", "builtins.locals") or (func == "builtins.vars" and not node.args):
            return "<globals>"
        if func == "builtins.vars" and node.args:
            return self.qualname(node.args[0], depth)
        if func in _PATH_TYPES or func in ("pathlib.Path.home", "pathlib.Path.cwd", "pathlib.Path.expanduser",
                                           "pathlib.Path.resolve"):
            return "pathlib.Path"
        return None

    # -- constant folding -----------------------------------------------------------------------
    def fold(self, node: ast.AST | None, depth: int = 0) -> Folded | None:
        """The constant value of ``node`` if it can be computed without running anything."""
        if node is None or depth > _MAX_FOLD_DEPTH:
            return None
        try:
            result = self._fold(node, depth + 1)
        except (ValueError, TypeError, OverflowError, LookupError, UnicodeError, MemoryError, RecursionError):
            return None
        if result is not None and isinstance(result.value, (str, bytes)) and len(result.value) > self.max_bytes:
            return None
        return result

    def _fold(self, node: ast.AST, d: int) -> Folded | None:
        if isinstance(node, ast.Constant):
            v = node.value
            return Folded(v) if isinstance(v, (str, bytes)) or (isinstance(v, int) and not isinstance(v, bool)) else None
        if isinstance(node, ast.Name):
            return self._fold_name(node.id, d)
        if isinstance(node, ast.JoinedStr):
            parts = [self.fold(v.value if isinstance(v, ast.FormattedValue) else v, d) for v in node.values]
            if any(p is None or p.text is None for p in parts):
                return None
            ok = [p for p in parts if p is not None]
            return _join(ok, "".join(str(p.text) for p in ok))
        if isinstance(node, ast.BinOp):
            return self._binop(node, d)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            inner = self.fold(node.operand, d)
            return Folded(-inner.value) if inner is not None and isinstance(inner.value, int) else None
        if isinstance(node, (ast.List, ast.Tuple)):
            items = [self.fold(e, d) for e in node.elts[:_MAX_LIST]]
            if any(i is None for i in items):
                return None
            ok = [i for i in items if i is not None]
            return Folded([i.value for i in ok], any(i.obfuscated for i in ok), any(i.composed for i in ok))
        if isinstance(node, ast.Subscript):
            return self._subscript(node, d)
        if isinstance(node, ast.Call):
            return self._call(node, d)
        if isinstance(node, (ast.GeneratorExp, ast.ListComp)):
            return self._comprehension(node, d)
        return None

    def _fold_name(self, name: str, d: int) -> Folded | None:
        # Memoised, and a name being folded is not folded again (x = x + 1), so that
        # many reassignments cannot make folding exponential.
        cacheable = name not in self._bound
        if cacheable and name in self._fold_cache:
            return self._fold_cache[name]
        if name in self._folding:
            return None
        self._folding.add(name)
        try:
            found = None
            for value in reversed(self.assigned.get(name, [])[-_MAX_ASSIGNMENTS:]):
                found = self.fold(value, d)
                if found is not None:
                    break
        finally:
            self._folding.discard(name)
        if cacheable:
            self._fold_cache[name] = found
        return found

    def _binop(self, node: ast.BinOp, d: int) -> Folded | None:
        if isinstance(node.op, ast.Div):  # pathlib: Path.home() / ".ssh" / "id_rsa"
            left, right = self.fold(node.left, d), self.fold(node.right, d)
            if left is not None and right is not None and left.text is not None and right.text is not None:
                return _join([left, right], left.text.rstrip("/") + "/" + right.text)
            return None
        left, right = self.fold(node.left, d), self.fold(node.right, d)
        if left is None or right is None:
            return None
        a, b = left.value, right.value
        if isinstance(node.op, ast.Add) and type(a) is type(b) and isinstance(a, (str, bytes, list)):
            return _join([left, right], a + b)  # type: ignore[operator]
        if isinstance(node.op, ast.Mult) and isinstance(a, (str, bytes)) and isinstance(b, int):
            if len(a) * max(b, 0) > self.max_bytes:
                return None
            return _join([left, right], a * b)
        if isinstance(a, int) and isinstance(b, int) and abs(a) < 1 << 32 and abs(b) < 1 << 32:
            ops = {ast.Add: a + b, ast.Sub: a - b, ast.BitXor: a ^ b, ast.Mult: a * b}
            if type(node.op) in ops:
                return Folded(ops[type(node.op)], left.obfuscated or right.obfuscated)
        return None

    def _subscript(self, node: ast.Subscript, d: int) -> Folded | None:
        base = self.fold(node.value, d)
        if base is None or not isinstance(base.value, (str, bytes, list)):
            return None
        sl = node.slice
        if isinstance(sl, ast.Slice):
            bounds = [self.fold(x, d) if x is not None else None for x in (sl.lower, sl.upper, sl.step)]
            vals = [b.value if b is not None and isinstance(b.value, int) else None for b in bounds]
            if any(x is not None and b is None for x, b in zip((sl.lower, sl.upper, sl.step), bounds, strict=True)):
                return None
            if vals[2] == 0:
                return None
            value = base.value[slice(vals[0], vals[1], vals[2])]
            step = "reverse" if vals[2] is not None and vals[2] < 0 else None
            return Folded(value, base.obfuscated or step is not None, base.composed,
                          base.steps + ((step,) if step else ()))
        index = self.fold(sl, d)
        if index is not None and isinstance(index.value, int) and isinstance(base.value, list):
            item = base.value[index.value]
            return Folded(item, base.obfuscated, base.composed, base.steps) if isinstance(item, (str, bytes, int)) else None
        return None

    def _comprehension(self, node: ast.GeneratorExp | ast.ListComp, d: int) -> Folded | None:
        # chr(c) for c in [...]  /  chr(c ^ k) for c in [...]: the classic character-code disguise.
        if len(node.generators) != 1 or node.generators[0].ifs or not isinstance(node.generators[0].target, ast.Name):
            return None
        gen = node.generators[0]
        seq = self.fold(gen.iter, d)
        if seq is None or not isinstance(seq.value, (list, bytes, str)) or len(seq.value) > _MAX_LIST:
            return None
        var = gen.target.id if isinstance(gen.target, ast.Name) else ""
        out: list[object] = []
        saved = self.assigned.get(var)
        self._bound.add(var)
        try:
            for item in seq.value:
                self.assigned[var] = [ast.Constant(item)]  # type: ignore[arg-type]  # folded constants only
                f = self.fold(node.elt, d)
                if f is None:
                    return None
                out.append(f.value)
        finally:
            self._bound.discard(var)
            if saved is None:
                self.assigned.pop(var, None)
            else:
                self.assigned[var] = saved
        steps = ("chr",) if any(isinstance(n, ast.Call) and self.qualname(n.func) == "builtins.chr"
                                for n in ast.walk(node.elt)) else ()
        return Folded(out, seq.obfuscated or bool(steps), seq.composed, seq.steps + steps)

    def _call(self, node: ast.Call, d: int) -> Folded | None:
        func = node.func
        if isinstance(func, ast.Attribute):
            method = self._method(func, node, d)
            if method is not None:
                return method
        name = self.qualname(func, d)
        if name is None:
            return None
        args = [self.fold(a, d) for a in node.args[:3]]
        first = args[0] if args else None
        if name == "builtins.chr" and first is not None and isinstance(first.value, int):
            return Folded(chr(first.value), True, first.composed, first.steps + ("chr",))
        if name in ("builtins.bytes", "builtins.bytearray") and first is not None:
            if isinstance(first.value, list) and all(isinstance(x, int) for x in first.value):
                return Folded(bytes(first.value), True, first.composed, first.steps + ("bytes",))  # type: ignore[arg-type]
            if isinstance(first.value, str):
                return Folded(first.value.encode("utf-8"), first.obfuscated, first.composed, first.steps)
            return first if isinstance(first.value, bytes) else None
        if name == "builtins.str" and first is not None and isinstance(first.value, str):
            return first
        if name == "builtins.str" and first is not None and isinstance(first.value, bytes) and len(args) > 1:
            return Folded(first.value.decode("utf-8"), first.obfuscated, first.composed, first.steps)
        if name == "builtins.map" and len(node.args) == 2 and self.qualname(node.args[0], d) == "builtins.chr":
            seq = self.fold(node.args[1], d)
            if seq is not None and isinstance(seq.value, (list, bytes)) and all(isinstance(x, int) for x in seq.value):
                return Folded([chr(x) for x in seq.value if isinstance(x, int)], True, seq.composed, seq.steps + ("chr",))
            return None
        if name in ("builtins.list", "builtins.tuple", "builtins.reversed") and first is not None:
            if isinstance(first.value, (list, str, bytes)):
                items = list(first.value)
                if name == "builtins.reversed":
                    return Folded(items[::-1], True, first.composed, first.steps + ("reverse",))
                return Folded(items, first.obfuscated, first.composed, first.steps)
            return None
        if name in ("os.path.expanduser", "os.path.expandvars", "os.path.abspath", "os.path.normpath") and first:
            return first
        if name == "os.path.join" and args and all(a is not None and a.text is not None for a in args):
            ok = [a for a in args if a is not None]
            return _join(ok, "/".join(str(a.text).rstrip("/") for a in ok))
        if name in ("pathlib.Path.home", "os.path.expanduser") and not node.args:
            return Folded("~")
        if name in _PATH_TYPES:
            if not node.args:
                return Folded(".")
            return first
        if name in _DECODERS and first is not None:
            return self._decode(name, first, args[1:], node, d)
        return None

    def _method(self, func: ast.Attribute, node: ast.Call, d: int) -> Folded | None:
        if self.qualname(func.value, d) == "pathlib.Path" and func.attr in ("home",):
            return Folded("~")
        base = self.fold(func.value, d)
        if base is None:
            return None
        args = [self.fold(a, d) for a in node.args[:3]]
        v = base.value
        m = func.attr
        if m == "join" and isinstance(v, (str, bytes)) and len(args) == 1 and args[0] is not None:
            items = args[0].value
            if isinstance(items, list) and all(type(x) is type(v) for x in items):
                return _join([base, args[0]], v.join(items))  # type: ignore[arg-type]
            return None
        if m in ("decode", "encode") and isinstance(v, (str, bytes)):
            enc = args[0].text if args and args[0] is not None and args[0].text else "utf-8"
            if enc.lower().replace("-", "_") in ("rot13", "rot_13", "hex", "base64", "zlib", "bz2"):
                return self._decode("codecs.decode", base, [args[0]] if args else [], node, d)
            if m == "decode" and isinstance(v, bytes):
                return Folded(v.decode(enc, "replace"), base.obfuscated, base.composed, base.steps)
            if m == "encode" and isinstance(v, str):
                return Folded(v.encode(enc, "replace"), base.obfuscated, base.composed, base.steps)
            return None
        if m == "replace" and isinstance(v, (str, bytes)) and len(args) >= 2 and args[0] is not None and args[1] is not None:
            old, new = args[0].value, args[1].value
            if type(old) is type(v) and type(new) is type(v):
                return _join([base], v.replace(old, new))  # type: ignore[arg-type]
            return None
        if m in ("lower", "upper", "strip", "lstrip", "rstrip", "swapcase") and isinstance(v, str) and not node.args:
            return Folded(getattr(v, m)(), base.obfuscated, base.composed, base.steps)
        if m == "fromhex" and isinstance(func.value, ast.Name) and func.value.id in ("bytes", "bytearray"):
            return None  # handled as bytes.fromhex below (base folded to nothing)
        return None

    def _decode(self, name: str, data: Folded, rest: list[Folded | None], node: ast.Call, d: int) -> Folded | None:
        import base64
        import binascii
        import codecs

        v = data.value
        step = name.rsplit(".", 1)[-1]
        if name == "codecs.decode" or name == "codecs.encode":
            enc = rest[0].text if rest and rest[0] is not None and rest[0].text else None
            if enc is None:
                enc_node = _kw(node, "encoding")
                enc_f = self.fold(enc_node, d) if enc_node is not None else None
                enc = enc_f.text if enc_f is not None else None
            if enc is None:
                return None
            key = enc.lower().replace("-", "_")
            if key in ("rot13", "rot_13") and isinstance(v, str):
                out: FoldValue = codecs.decode(v, "rot13")
            elif key in ("hex", "hex_codec") and isinstance(v, (str, bytes)):
                out = binascii.unhexlify(v)
            elif key in ("base64", "base64_codec", "base_64") and isinstance(v, (str, bytes)):
                out = base64.b64decode(v)
            elif key in ("zlib", "zlib_codec") and isinstance(v, bytes):
                out = _bounded_zlib(v, self.max_bytes)
            else:
                return None
            step = key
        elif name in ("zlib.decompress", "gzip.decompress", "bz2.decompress", "lzma.decompress") and isinstance(v, bytes):
            out = _bounded_decompress(name.split(".")[0], v, self.max_bytes)
        elif name in ("binascii.unhexlify", "binascii.a2b_hex", "bytes.fromhex", "builtins.bytes.fromhex") and isinstance(v, (str, bytes)):
            out = bytes.fromhex(v) if isinstance(v, str) else binascii.unhexlify(v)
        elif name.startswith("base64.") or name == "binascii.a2b_base64":
            if not isinstance(v, (str, bytes)):
                return None
            decoders: dict[str, Callable[[str | bytes], bytes]] = {
                "b32decode": base64.b32decode, "b16decode": base64.b16decode, "b85decode": base64.b85decode,
                "a85decode": base64.a85decode, "urlsafe_b64decode": base64.urlsafe_b64decode}
            fn = decoders.get(step)
            out = fn(v) if fn is not None else base64.b64decode(v)
        else:
            return None
        return Folded(out, True, data.composed, data.steps + (step,))

    def decoders_in(self, node: ast.AST) -> list[str]:
        """Decoding calls anywhere inside ``node`` (bounded walk), e.g. ``['base64.b64decode']``."""
        found: list[str] = []
        for i, n in enumerate(ast.walk(node)):
            if i > 2000:
                break
            if isinstance(n, ast.Call):
                q = self.qualname(n.func)
                if q in _DECODERS and q not in found:
                    found.append(q)
                elif isinstance(n.func, ast.Attribute) and n.func.attr == "fromhex" and "bytes.fromhex" not in found:
                    found.append("bytes.fromhex")
        return found


def _bounded_decompress(kind: str, data: bytes, limit: int) -> bytes:
    import bz2
    import lzma
    import zlib

    if kind == "zlib":
        return _bounded_zlib(data, limit)
    if kind == "gzip":
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        out = d.decompress(data, limit + 1)
    elif kind == "bz2":
        out = bz2.BZ2Decompressor().decompress(data, limit + 1)
    else:
        out = lzma.LZMADecompressor().decompress(data, limit + 1)
    if len(out) > limit:
        raise ValueError("decompressed payload over the limit")
    return out


def _bounded_zlib(data: bytes, limit: int) -> bytes:
    import zlib

    out = zlib.decompressobj().decompress(data, limit + 1)
    if len(out) > limit:
        raise ValueError("decompressed payload over the limit")
    return out


def _decode_blob(text: str, kind: str, limit: int) -> str | None:
    """Decode a long hex/base64 literal (and a zlib layer inside it) to text, if it is text."""
    import base64
    import binascii
    import zlib

    compact = "".join(text.split())
    try:
        raw = bytes.fromhex(compact) if kind == "hex" else base64.b64decode(compact + "=" * (-len(compact) % 4))
        if raw[:1] == b"\x78":
            try:
                raw = _bounded_zlib(raw, limit)
            except (zlib.error, ValueError):
                pass
        return raw[:limit].decode("utf-8")
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return None


def _short_repr(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:60] + "…" + text[-12:]
