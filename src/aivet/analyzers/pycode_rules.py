"""The rules of remote-code analysis (``CODE-*``): one place for their ids, text and default severity.

:mod:`aivet.analyzers.pycode` re-exports :data:`RULES` for the catalogue; the checks in
``pycode`` and its helper modules (``pycode_tamper``) raise them.
"""

from __future__ import annotations

from typing import Any, Protocol

from aivet.evidence import Severity
from aivet.rules import (
    ATLAS_EVADE,
    ATLAS_MALICIOUS_PACKAGE,
    ATLAS_SUPPLY_CHAIN_MODEL,
    ATLAS_UNSAFE_ARTIFACTS,
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
                    "The file (or part of it) is not valid Python for the scanner's parser, so that part could not "
                    "be analysed. A newer Python may still import it (type statements, PEP 695 generics, PEP 701 "
                    "f-strings, t-strings, except without brackets), and another file may read and run it: fail "
                    "closed. The blocks around each error are skipped and the rest analysed; high when the "
                    "skipped text names exec, processes, sockets or decoders.", Severity.MEDIUM, (ATLAS_EVADE,),
                    ("CWE-20",))
ENCODING = Rule("CODE-ENCODING", "Python file is not UTF-8",
                "The file is not valid in its declared encoding; undecodable bytes were replaced before "
                "analysis.", Severity.LOW, (ATLAS_EVADE,), ("CWE-176",))
ENV_HIJACK = Rule(
    "CODE-ENV-HIJACK", "Sets environment variables that change what runs",
    "Writes LD_PRELOAD, PYTHONPATH, PYTHONSTARTUP, PIP_INDEX_URL, HF_ENDPOINT, proxy or CA-bundle variables and "
    "the like: every process started afterwards (and some libraries in this one) loads the attacker's library, "
    "module, package index or server." + _WHY, Severity.HIGH, _ATLAS, ("CWE-426", "CWE-15"))
MONKEYPATCH = Rule(
    "CODE-MONKEYPATCH", "Replaces functions of other modules",
    "Assigns to attributes of imported modules (torch.load = ..., setattr(transformers.X, 'from_pretrained', "
    "...)), to sys.modules or to a function's __code__: later calls by the user's own code run the attacker's "
    "function. High for security-relevant modules (builtins, os, sys, subprocess, socket, ssl, importlib, "
    "pickle, huggingface_hub, transformers' remote-code loader), medium otherwise." + _WHY,
    Severity.MEDIUM, _ATLAS + (ATLAS_EVADE,), ("CWE-913",))
HOOK = Rule(
    "CODE-HOOK", "Installs interpreter hooks or delayed callbacks",
    "sys.settrace/setprofile, sys.addaudithook, atexit.register, signal.signal, threading.Timer, sys.meta_path or "
    "sys.path_hooks entries, sys.excepthook, or sys.path entries outside the repository: code that runs later, "
    "on every call or import, or that hides activity from audit hooks." + _WHY,
    Severity.MEDIUM, _ATLAS + (ATLAS_EVADE,), ("CWE-829",))

RULES = (EXEC, OBFUSCATED_EXEC, PROCESS, PIP_INSTALL, NETWORK, CREDENTIAL_ACCESS, SECRET_ENV, EXFILTRATION,
         WRITE_OUTSIDE, PERSISTENCE, DESERIALIZATION, UNSAFE_TORCH_LOAD, NATIVE, DYNAMIC_IMPORT, OBFUSCATION,
         NESTED_REMOTE_CODE, HUB_DOWNLOAD, SYNTAX_ERROR, ENCODING, ENV_HIJACK, MONKEYPATCH, HOOK)


class Reporter(Protocol):
    """What the checks need of the report: adding one finding."""

    def add(self, rule: Rule, line: int, message: str, *, severity: Severity | None = None, **details: Any) -> None:
        ...
