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

from aivet.analyzers.pyfold import Resolver, keyword_arg

EXEC_CALLS = frozenset({"builtins.exec", "builtins.eval", "builtins.compile", "builtins.execfile",
                        "code.InteractiveInterpreter.runsource", "runpy.run_path", "runpy.run_module"})
PROCESS_PREFIXES = ("subprocess.", "pty.spawn", "os.exec", "os.spawn", "os.posix_spawn", "commands.",
                    "asyncio.create_subprocess_", "popen2.")
PROCESS_CALLS = frozenset({"os.system", "os.popen", "os.startfile", "os.forkpty", "platform.popen"})
NETWORK_MODULES = ("socket", "urllib.request", "urllib2", "urllib3", "http.client", "httplib", "requests",
                   "httpx", "aiohttp", "ftplib", "smtplib", "poplib", "imaplib", "telnetlib", "paramiko",
                   "pycurl", "websocket", "websockets", "xmlrpc.client", "dns.resolver")
NETWORK_BENIGN = frozenset({"socket.gethostname", "socket.getfqdn", "socket.gethostbyname", "socket.AF_INET",
                            "socket.SOCK_STREAM", "requests.exceptions", "requests.utils"})
DESERIALIZE_CALLS = frozenset({
    "marshal.loads", "marshal.load", "pickle.loads", "pickle.load", "pickle.Unpickler", "_pickle.loads",
    "_pickle.load", "cPickle.loads", "cPickle.load", "dill.loads", "dill.load", "cloudpickle.loads",
    "cloudpickle.load", "joblib.load", "shelve.open", "types.CodeType", "types.FunctionType",
    "jsonpickle.decode", "yaml.unsafe_load", "yaml.full_load"})
NATIVE_PREFIXES = ("ctypes.", "cffi.", "_ctypes.", "torch.utils.cpp_extension.load")  # the last compiles C++ on load
IMPORT_CALLS = frozenset({"builtins.__import__", "importlib.import_module", "importlib.__import__",
                          "imp.load_source", "importlib.machinery.SourceFileLoader"})
HUB_DOWNLOADS = frozenset({"huggingface_hub.hf_hub_download", "huggingface_hub.snapshot_download",
                           "transformers.utils.cached_file", "transformers.utils.hub.cached_file"})
CREDENTIAL_CALLS = frozenset({"huggingface_hub.HfFolder.get_token", "huggingface_hub.get_token",
                              "huggingface_hub.utils.get_token", "keyring.get_password",
                              "keyring.get_credential", "browser_cookie3.load", "browser_cookie3.chrome",
                              "browser_cookie3.firefox", "getpass.getpass", "win32crypt.CryptUnprotectData"})
WRITE_CALLS = frozenset({"shutil.copy", "shutil.copy2", "shutil.copyfile", "shutil.copytree", "shutil.move",
                         "shutil.rmtree", "os.remove", "os.unlink", "os.rmdir", "os.removedirs", "os.rename",
                         "os.replace", "os.chmod", "os.chown", "os.symlink", "os.link", "os.truncate",
                         "pathlib.Path.write_text", "pathlib.Path.write_bytes", "pathlib.Path.unlink",
                         "pathlib.Path.rmdir", "pathlib.Path.touch", "pathlib.Path.symlink_to"})

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
    r"|LaunchAgents|LaunchDaemons)")
SECRET_ENV_NAME = re.compile(r"(?i)(TOKEN|SECRET|PASSW(OR)?D|CREDENTIAL|API_?KEY|ACCESS_?KEY|PRIVATE_?KEY|"
                             r"AUTH|SESSION|COOKIE|_KEY$)")
REMOTE_LOADERS = ("from_pretrained", "pipeline", "from_config", "load", "snapshot_download", "AutoModel",
                  "load_dataset")
BASE64_BLOB = re.compile(r"[A-Za-z0-9+/=\s]+")
HEX_BLOB = re.compile(r"[0-9a-fA-F\s]+")
BLOB_MIN = 512  # a string literal this long made only of base64/hex characters is worth a look
SAFE_ENCODINGS = frozenset({"utf-8", "utf-8-sig", "ascii", "latin-1", "iso-8859-1", "cp1252", "iso-8859-15",
                            "utf8", "latin1"})

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
    """Whether ``path`` is absolute, home-relative or climbs out with ``..``."""
    p = path.replace("\\", "/")
    return (p.startswith(("/", "~")) or re.match(r"^[A-Za-z]:/", p) is not None or "/../" in f"/{p}/"
            or p.startswith("$HOME"))


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
