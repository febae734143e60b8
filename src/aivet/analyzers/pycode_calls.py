"""What remote code's calls and strings mean, for :mod:`aivet.analyzers.pycode`.

The name tables (which resolved call names execute code, start processes, use the
network, deserialise, load native code, download from the Hub or write files), the
path patterns for credential stores and start-up files, the small syntax predicates
the checker consults, and how folded values are shown in finding text. Nothing here
walks a tree or adds a finding: the checks themselves stay in ``pycode``.
"""

from __future__ import annotations

import ast
import re
import reprlib

from aivet.analyzers.paths import escapes_syntactically
from aivet.analyzers.pyfold import Resolver, keyword_arg

EXEC_CALLS = frozenset({"builtins.exec", "builtins.eval", "builtins.compile", "builtins.execfile",
                        "code.InteractiveInterpreter.runsource", "runpy.run_path", "runpy.run_module",
                        # stdlib helpers that exec a string they are given
                        "code.InteractiveConsole", "code.InteractiveInterpreter", "code.interact",
                        "code.compile_command", "codeop.compile_command", "timeit.timeit", "timeit.repeat",
                        "timeit.Timer", "pdb.run", "pdb.runeval", "pdb.runctx", "cProfile.run", "cProfile.runctx",
                        "profile.run", "profile.runctx", "bdb.Bdb.run", "trace.Trace.run", "trace.Trace.runctx"})
# Load and run a Python file given by path (or bytes), past the import system's review of names.
FILE_LOADERS = frozenset({"importlib.util.spec_from_file_location", "importlib.machinery.SourceFileLoader",
                          "importlib.machinery.SourcelessFileLoader", "importlib.machinery.ExtensionFileLoader",
                          "importlib.util.spec_from_loader", "imp.load_source", "imp.load_compiled",
                          "imp.load_dynamic", "imp.load_module", "zipimport.zipimporter"})
LOADER_METHODS = frozenset({"exec_module", "load_module"})  # spec.loader.exec_module(m): the loaded code runs
PROCESS_PREFIXES = ("subprocess.", "pty.spawn", "os.exec", "os.spawn", "os.posix_spawn", "commands.",
                    "asyncio.create_subprocess_", "popen2.", "posix.exec", "posix.spawn", "posix.posix_spawn",
                    "nt.exec", "nt.spawn", "_posixsubprocess.", "_winapi.CreateProcess", "distutils.spawn.spawn")
PROCESS_CALLS = frozenset({"os.system", "os.popen", "os.startfile", "os.forkpty", "os.fork", "pty.fork", "platform.popen", "posix.system",
                           "posix.popen", "nt.system", "nt.startfile", "pydoc.pipepager", "pydoc.tempfilepager",
                           "asyncio.subprocess.create_subprocess_exec", "asyncio.subprocess.create_subprocess_shell"})
# subprocess names that are constants or exception types, not calls that start anything
PROCESS_NOT_CALLS = frozenset({"subprocess.PIPE", "subprocess.STDOUT", "subprocess.DEVNULL",
                               "subprocess.CalledProcessError", "subprocess.TimeoutExpired",
                               "subprocess.SubprocessError", "subprocess.CompletedProcess"})
NETWORK_MODULES = ("socket", "urllib.request", "urllib2", "urllib3", "http.client", "httplib", "requests",
                   "httpx", "aiohttp", "ftplib", "smtplib", "poplib", "imaplib", "telnetlib", "paramiko",
                   "pycurl", "websocket", "websockets", "xmlrpc.client", "dns.resolver", "_socket", "ssl",
                   "http.server", "socketserver", "xmlrpc.server", "webbrowser", "nntplib", "grpc", "zmq",
                   "asyncio.open_connection", "asyncio.start_server", "asyncio.open_unix_connection",
                   "multiprocessing.connection", "urllib.urlopen", "urllib.urlretrieve")
NETWORK_BENIGN = frozenset({"socket.gethostname", "socket.getfqdn", "socket.AF_INET", "socket.SOCK_STREAM",
                            "requests.exceptions", "requests.utils"})
# Name lookups: benign for the local host, DNS exfiltration (f"{token}.evil.example") for a built name.
DNS_LOOKUPS = frozenset({"socket.gethostbyname", "socket.gethostbyname_ex", "socket.getaddrinfo",
                         "socket.gethostbyaddr"})
DESERIALIZE_CALLS = frozenset({
    "marshal.loads", "marshal.load", "pickle.loads", "pickle.load", "pickle.Unpickler", "_pickle.loads",
    "_pickle.load", "cPickle.loads", "cPickle.load", "dill.loads", "dill.load", "cloudpickle.loads",
    "cloudpickle.load", "joblib.load", "shelve.open", "types.CodeType", "types.FunctionType",
    "jsonpickle.decode", "yaml.unsafe_load", "yaml.full_load", "yaml.unsafe_load_all", "yaml.full_load_all",
    "pandas.read_pickle", "shelve.DbfilenameShelf", "torch.package.PackageImporter"})
NATIVE_PREFIXES = ("ctypes.", "cffi.", "_ctypes.", "torch.ops.load_library", "torch.classes.load_library",
                   "torch.utils.cpp_extension.load")  # the last compiles C++ on load
IMPORT_CALLS = frozenset({"builtins.__import__", "importlib.import_module", "importlib.__import__",
                          "imp.load_source", "importlib.machinery.SourceFileLoader"})
HUB_DOWNLOADS = frozenset({"huggingface_hub.hf_hub_download", "huggingface_hub.snapshot_download",
                           "transformers.utils.cached_file", "transformers.utils.hub.cached_file"})
CREDENTIAL_CALLS = frozenset({"huggingface_hub.HfFolder.get_token", "huggingface_hub.get_token",
                              "huggingface_hub.utils.get_token", "keyring.get_password",
                              "keyring.get_credential", "browser_cookie3.load", "browser_cookie3.chrome",
                              "browser_cookie3.firefox", "getpass.getpass", "win32crypt.CryptUnprotectData",
                              "huggingface_hub.get_stored_tokens", "huggingface_hub.utils.get_stored_tokens",
                              "huggingface_hub.utils._auth.get_token", "huggingface_hub.utils._auth.get_stored_tokens",
                              "huggingface_hub.utils._auth._get_token_from_file"})
# Constants that name credential files: referring to them is reading the token (huggingface_hub.constants)
CREDENTIAL_CONSTANTS = frozenset({"huggingface_hub.constants.HF_TOKEN_PATH",
                                  "huggingface_hub.constants.HF_STORED_TOKENS_PATH"})
WRITE_CALLS = frozenset({"shutil.copy", "shutil.copy2", "shutil.copyfile", "shutil.copytree", "shutil.move",
                         "shutil.rmtree", "os.remove", "os.unlink", "os.rmdir", "os.removedirs", "os.rename",
                         "os.replace", "os.chmod", "os.chown", "os.symlink", "os.link", "os.truncate",
                         "pathlib.Path.write_text", "pathlib.Path.write_bytes", "pathlib.Path.unlink",
                         "pathlib.Path.rmdir", "pathlib.Path.touch", "pathlib.Path.symlink_to",
                         "shutil.unpack_archive", "io.FileIO", "pathlib.Path.rename", "pathlib.Path.replace",
                         "pathlib.Path.hardlink_to", "os.makedirs", "os.mkdir", "pathlib.Path.mkdir"})
# Calls whose second argument is the path written (the first is read): copy("x", "/usr/bin/x")
WRITE_SECOND_ARG = frozenset({"shutil.copy", "shutil.copy2", "shutil.copyfile", "shutil.copytree", "shutil.move",
                              "os.rename", "os.replace", "os.symlink", "os.link", "shutil.unpack_archive"})
# Creating a directory only matters when it is a start-up location (a cache directory under ~ is common).
MKDIR_CALLS = frozenset({"os.makedirs", "os.mkdir", "pathlib.Path.mkdir"})
# Where the interpreter looks for .pth files and site customisation: anything written below is persistence.
SITE_DIRS = frozenset({"site.getsitepackages", "site.getusersitepackages", "site.USER_SITE", "site.USER_BASE",
                       "sysconfig.get_paths", "sysconfig.get_path", "distutils.sysconfig.get_python_lib",
                       "site.PREFIXES"})
# Where transformers keeps the remote code and snapshots of every model: a file written there runs the
# next time any of those models loads (poisoning other repositories).
HF_CACHE_DIRS = frozenset({"transformers.utils.HF_MODULES_CACHE", "transformers.dynamic_module_utils.HF_MODULES_CACHE",
                           "transformers.utils.hub.HF_MODULES_CACHE", "huggingface_hub.constants.HF_HUB_CACHE",
                           "huggingface_hub.constants.HUGGINGFACE_HUB_CACHE", "transformers.utils.hub.TRANSFORMERS_CACHE",
                           "transformers.TRANSFORMERS_CACHE", "huggingface_hub.constants.HF_HOME"})
# Base directories outside the repository: a path built on them is written outside.
OUTSIDE_DIRS = frozenset({"sys.prefix", "sys.exec_prefix", "sys.base_prefix", "tempfile.gettempdir",
                          "os.path.expanduser", "pathlib.Path.home", "sys.executable",
                          "os.environ.HOME"}) | SITE_DIRS

# Calls that install code to run later or on every event: delayed payloads, tracing and audit hooks.
HOOK_CALLS = frozenset({"sys.settrace", "sys.setprofile", "threading.settrace", "threading.setprofile",
                        "threading.settrace_all_threads", "threading.setprofile_all_threads", "sys.addaudithook",
                        "atexit.register", "signal.signal", "os.register_at_fork", "readline.set_startup_hook",
                        "readline.set_pre_input_hook", "sys.meta_path.insert", "sys.meta_path.append",
                        "sys.path_hooks.insert", "sys.path_hooks.append", "sys.set_asyncgen_hooks",
                        "threading.Timer", "sched.scheduler.enter", "gc.callbacks.append",
                        "sys.monitoring.register_callback", "codecs.register", "sys.setasyncgenhooks"})
# Interpreter hooks replaced by assignment (sys.excepthook = f) or mutated.
HOOK_ATTRIBUTES = frozenset({"sys.excepthook", "sys.displayhook", "sys.breakpointhook", "sys.unraisablehook",
                             "threading.excepthook", "sys.meta_path", "sys.path_hooks", "sys.path_importer_cache",
                             "warnings.showwarning", "builtins.__import__"})
# Modules whose functions, replaced at run time, change what security depends on: patched by remote
# code they turn every later load, download or process into the attacker's.
SENSITIVE_MODULES = ("builtins", "os", "sys", "subprocess", "socket", "ssl", "importlib", "pickle", "marshal",
                     "torch.load", "torch.serialization", "safetensors", "huggingface_hub", "requests", "urllib",
                     "http", "hashlib", "hmac", "secrets", "json", "shutil", "tempfile", "io", "zipfile",
                     "tarfile", "transformers.dynamic_module_utils", "transformers.utils.hub", "site")
# Environment variables that decide what code, library or server later processes use.
ENV_HIJACK_VARS = re.compile(
    r"(?i)^(LD_PRELOAD|LD_LIBRARY_PATH|LD_AUDIT|DYLD_INSERT_LIBRARIES|DYLD_LIBRARY_PATH|PYTHONPATH|PYTHONHOME"
    r"|PYTHONSTARTUP|PYTHONINSPECT|PYTHONUSERBASE|PYTHONBREAKPOINT|PYTHONWARNINGS|PYTHONEXECUTABLE|BASH_ENV|ENV"
    r"|PATH|PERL5OPT|NODE_OPTIONS|RUBYOPT|PIP_INDEX_URL|PIP_EXTRA_INDEX_URL|PIP_TRUSTED_HOST|UV_INDEX_URL"
    r"|UV_EXTRA_INDEX_URL|HF_ENDPOINT|HF_HUB_ENDPOINT|HUGGINGFACE_CO_RESOLVE_ENDPOINT"
    r"|REQUESTS_CA_BUNDLE|SSL_CERT_FILE|SSL_CERT_DIR|CURL_CA_BUNDLE|HTTPS?_PROXY|ALL_PROXY|NO_PROXY"
    r"|TRANSFORMERS_TRUST_REMOTE_CODE|HF_HUB_TRUST_REMOTE_CODE|GIT_SSH_COMMAND|GIT_ASKPASS|SSH_ASKPASS"
    r"|TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD)$")  # the last turns torch.load's safe default off for the process
# Of those, the ones legitimate code also sets now and then (a CUDA library path): medium, not high.
ENV_HIJACK_MEDIUM_VARS = re.compile(r"(?i)^(PATH|LD_LIBRARY_PATH|DYLD_LIBRARY_PATH|PYTHONPATH|PYTHONHOME|PYTHONUSERBASE"
                               r"|NO_PROXY|PYTHONWARNINGS)$")
# Attribute names reached for by introspection escapes (().__class__.__base__.__subclasses__() and the like).
INTROSPECTION_ATTRS = frozenset({"__globals__", "f_globals", "f_builtins", "__subclasses__", "gi_frame",
                                 "tb_frame", "cr_frame", "f_back"})
# Last components of callables that, referred to without being called (passed, stored, aliased),
# still run code or processes later: atexit.register(os.system, ...), Thread(target=os.system).
REFERENCE_LEAVES = frozenset({"exec", "eval", "compile", "execfile", "system", "popen", "Popen", "run", "call",
                              "check_call", "check_output", "getoutput", "getstatusoutput", "startfile",
                              "__import__", "import_module", "run_path", "run_module"})

CREDENTIAL_PATHS = re.compile(
    r"(?i)(\.ssh(?:/|$)|id_rsa|id_ed25519|id_ecdsa|authorized_keys|\.aws/credentials|\.aws/config|\.netrc"
    r"|huggingface/token|\.huggingface/token|\.git-credentials|\.docker/config\.json|/etc/shadow|/etc/passwd"
    r"|\.kube/config|\.gnupg|\.pypirc|gh/hosts\.yml|\.config/gcloud|application_default_credentials"
    r"|\.azure/|google-chrome|chromium|mozilla/firefox|Login Data|Local State|Cookies\.sqlite|\.password-store"
    r"|keychain|\.local/share/keyrings|wallet\.dat|\.bash_history|\.zsh_history)")
PERSISTENCE_PATHS = re.compile(
    r"(?i)(\.bashrc|\.bash_profile|\.profile|\.zshrc|\.zprofile|\.config/fish|authorized_keys|/etc/cron"
    r"|crontab|/var/spool/cron|\.config/autostart|/etc/rc\.local|/etc/profile|/etc/systemd|\.config/systemd"
    r"|sitecustomize\.py|usercustomize\.py|site-packages/[^/]*\.pth$|\.pth$|/etc/ld\.so\.preload"
    r"|LaunchAgents|LaunchDaemons|huggingface/modules|transformers_modules|huggingface/hub/models--)")
SECRET_ENV_NAME = re.compile(r"(?i)(TOKEN|SECRET|PASSW(OR)?D|CREDENTIAL|API_?KEY|ACCESS_?KEY|PRIVATE_?KEY|"
                             r"AUTH|SESSION|COOKIE|_KEY$)")
REMOTE_LOADERS = ("from_pretrained", "pipeline", "from_config", "load", "snapshot_download", "AutoModel",
                  "load_dataset")
BASE64_BLOB = re.compile(r"[A-Za-z0-9+/=\s]+")
HEX_BLOB = re.compile(r"[0-9a-fA-F\s]+")
BLOB_MIN = 512  # a string literal this long made only of base64/hex characters is worth a look
SAFE_ENCODINGS = frozenset({"utf-8", "utf-8-sig", "ascii", "latin-1", "iso-8859-1", "cp1252", "iso-8859-15",
                            "utf8", "latin1"})

MAX_HINT_NODES = 200  # nodes of a path expression looked at for site-packages or start-up file names
_REPR = reprlib.Repr()  # lists shown in messages: a few items, each cut short
_REPR.maxlist, _REPR.maxstring, _REPR.maxlevel = 8, 40, 2


def is_network_module(name: str) -> bool:
    """Whether ``name`` is a network module or something in one."""
    return any(name == m or name.startswith(m + ".") for m in NETWORK_MODULES)


def is_main_guard(test: ast.expr) -> bool:
    """Whether ``test`` is ``__name__ == "__main__"``."""
    return (isinstance(test, ast.Compare) and isinstance(test.left, ast.Name) and test.left.id == "__name__"
            and len(test.comparators) == 1 and isinstance(test.comparators[0], ast.Constant)
            and test.comparators[0].value == "__main__")


def kw_is(node: ast.Call, name: str, value: object) -> bool:
    """Whether keyword ``name`` of the call is the constant ``value`` (``True``, ``None``)."""
    v = keyword_arg(node, name)
    return isinstance(v, ast.Constant) and v.value is value


def is_pip_install(node: ast.Call, r: Resolver) -> bool:
    """Whether a process call's command line (folded) runs ``pip install`` or the like."""
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


def outside_repo(path: str) -> bool:
    """Whether a path remote code writes leaves the repository by its spelling alone.

    The shared judgement of :func:`aivet.analyzers.paths.escapes_syntactically` (absolute,
    UNC, drive letter, ``~``, any ``..`` component, NUL), plus paths that start at an
    environment variable (``$HOME/.bashrc``, ``%APPDATA%``), which the shell or
    ``os.path.expandvars`` turn into absolute paths. An empty path names nothing.
    """
    return bool(path) and (escapes_syntactically(path) or path.startswith(("$", "%")))


def short_repr(value: object) -> str:
    """``repr`` of a folded value, cut to about 80 characters for a finding message."""
    if isinstance(value, (str, bytes)) and len(value) > 200:
        # Only the ends are shown, so only the ends are turned into text: a call on a
        # megabyte value must not copy it (the message is made for every call).
        return repr(value[:60])[:60] + "…" + repr(value[-12:])[-12:]
    if isinstance(value, list):
        return _REPR.repr(value)[:80]
    text = repr(value)
    return text if len(text) <= 80 else text[:60] + "…" + text[-12:]


def path_hint(r: Resolver, node: ast.expr) -> str | None:
    """What the pieces of an unfoldable path say: "site-packages", "the Hugging Face cache", a start-up file, "outside".

    ``site.getsitepackages()[0] + '/x.pth'`` has no constant value, but its pieces name
    site-packages and a ``.pth`` file. Names are followed to their assignments (a few).
    """
    stack: list[ast.AST] = [node]
    seen = follows = 0
    outside = site = hf = False
    while stack and seen < MAX_HINT_NODES:
        n = stack.pop()
        seen += 1
        if isinstance(n, ast.Constant) and isinstance(n.value, str) and PERSISTENCE_PATHS.search(n.value):
            return n.value
        if isinstance(n, (ast.Call, ast.Attribute, ast.Subscript, ast.Name)):
            q = r.qualname(n.func if isinstance(n, ast.Call) else n)
            site = site or q in SITE_DIRS
            hf = hf or q in HF_CACHE_DIRS
            outside = outside or q in OUTSIDE_DIRS
        if isinstance(n, ast.Name) and follows < 8:
            follows += 1
            stack.extend(r.assigned.get(n.id, [])[-2:])
        stack.extend(ast.iter_child_nodes(n))
    return "site-packages" if site else "the Hugging Face cache" if hf else "outside" if outside else None


def trusts_remote_code(r: Resolver, node: ast.Call) -> bool:
    """Whether the call passes trust_remote_code=True: literally, through a name, or in ``**{...}``."""
    values: list[ast.expr] = []
    for k in node.keywords:
        if k.arg == "trust_remote_code":
            values.append(k.value)
        elif k.arg is None and isinstance(k.value, ast.Dict):
            for key, value in zip(k.value.keys, k.value.values, strict=True):
                folded = r.fold(key) if key is not None else None
                if folded is not None and folded.text == "trust_remote_code":
                    values.append(value)
    for v in values:
        if isinstance(v, ast.Name):  # T = True; ...(trust_remote_code=T)
            v = next(iter(r.assigned.get(v.id, [])[-1:]), v)
        if isinstance(v, ast.Constant) and v.value is True:
            return True
    return False


def is_local_lookup(r: Resolver, node: ast.Call, name: str) -> bool:
    """socket.gethostbyname('localhost') or of gethostname(): not network; of a built name: DNS exfiltration."""
    if name not in DNS_LOOKUPS:
        return False
    arg = node.args[0] if node.args else None
    return (isinstance(arg, ast.Constant) or isinstance(arg, ast.Call) and r.qualname(arg.func) in (
        "socket.gethostname", "socket.getfqdn", "platform.node"))


def is_safe_yaml(r: Resolver, node: ast.Call) -> bool:
    """Whether yaml.load is given a safe loader (SafeLoader, CSafeLoader, BaseLoader)."""
    loader = keyword_arg(node, "Loader") or (node.args[1] if len(node.args) > 1 else None)
    return r.qualname(loader) in ("yaml.SafeLoader", "yaml.CSafeLoader", "yaml.BaseLoader", "yaml.CBaseLoader")


def names_in(node: ast.AST) -> set[str]:
    """Names used in a small expression (bounded: the first MAX_HINT_NODES nodes)."""
    out: set[str] = set()
    for i, n in enumerate(ast.walk(node)):
        if i >= MAX_HINT_NODES:
            break
        if isinstance(n, ast.Name):
            out.add(n.id)
    return out
