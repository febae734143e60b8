"""The built-in example repository (``aivet scan --example``) and argument parsers, property-tested."""

from __future__ import annotations

import json
import pickletools
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aivet import repo
from aivet.cli import main as cli
from aivet.errors import AivetError, UsageError
from aivet.examples import EXEC_PAYLOAD, EXPECTED, SHELL_PAYLOAD, build_example, call_pickle, clean_pickle
from aivet.limits import Limits


def _globals_and_calls(data: bytes) -> tuple[list[str], int]:
    """Read a pickle's opcodes (pickletools only parses; it never executes)."""
    names, calls = [], 0
    for op, arg, _pos in pickletools.genops(data):
        if op.name == "GLOBAL":
            names.append(str(arg))
        if op.name == "REDUCE":
            calls += 1
    return names, calls


def test_example_layout(tmp_path: Path) -> None:
    dest = build_example(tmp_path / "demo")
    assert sorted(p.name for p in dest.iterdir()) == sorted(EXPECTED)
    config = json.loads((dest / "config.json").read_text())
    assert "auto_map" not in config  # the config is clean: nothing asks for remote code
    tok = json.loads((dest / "tokenizer_config.json").read_text())
    assert "{% for message in messages %}" in tok["chat_template"]


def test_example_safetensors_is_valid(tmp_path: Path) -> None:
    data = (build_example(tmp_path) / "model.safetensors").read_bytes()
    (n,) = struct.unpack_from("<Q", data)
    assert n % 8 == 0
    header = json.loads(data[8:8 + n])
    start, end = header["weight"]["data_offsets"]
    assert len(data) == 8 + n + end and data[8 + n:] == bytes(16)
    np = pytest.importorskip("numpy")
    assert np.frombuffer(data[8 + n + start:8 + n + end], dtype="<f4").tolist() == [0.0] * 4


def test_example_pickles_are_what_they_claim(tmp_path: Path) -> None:
    dest = build_example(tmp_path)
    assert _globals_and_calls((dest / "extra_state.pkl").read_bytes()) == ([], 0)
    assert _globals_and_calls((dest / "training_args.bin").read_bytes()) == (["os system"], 1)
    with zipfile.ZipFile(dest / "pytorch_model.bin") as zf:
        names = zf.namelist()
        assert "archive/data.pkl" in names and "archive/version" in names
        data_pkl = zf.read("archive/data.pkl")
    assert _globals_and_calls(data_pkl) == (["builtins exec"], 1)
    # the payloads are harmless even if some loader ran them
    assert SHELL_PAYLOAD.startswith("echo ") and not set(SHELL_PAYLOAD) & set(";|&`$<>()")
    assert EXEC_PAYLOAD.startswith("aivet_example = '") and "\n" not in EXEC_PAYLOAD
    assert SHELL_PAYLOAD.encode() in (dest / "training_args.bin").read_bytes()
    code = (dest / "modeling_demo.py").read_text()
    assert "os.environ['HF_TOKEN']" in code and "subprocess.run(['echo', 'hi']" in code
    compile(code, "modeling_demo.py", "exec")  # valid Python (compiled, never run)


def test_clean_pickle_round_trip_shape() -> None:
    ops = [op.name for op, _arg, _pos in pickletools.genops(clean_pickle())]
    assert ops == ["PROTO", "EMPTY_DICT", "BINPUT", "MARK", "BINUNICODE", "BININT1", "BINUNICODE", "BINUNICODE",
                   "SETITEMS", "STOP"]
    assert call_pickle("a", "b", "c").endswith(b"\x85R.")


def test_version_does_not_import_typer() -> None:
    code = ("import sys; sys.argv = ['aivet', '--version']; from aivet.cli import run; run(); "
            "print('typer' in sys.modules, 'rich' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.splitlines()[-1] == "False False"


# -- parsers of user input never fail with anything but a usage error ---------------------------

_limit_names = st.sampled_from(["max_files", "max-member-bytes", "max_compression_ratio", "MAX_FILES", "nope", ""])
_limit_values = st.one_of(st.text(max_size=12), st.sampled_from(["1", "8GiB", "1e3", "nan", "inf", "-2", "0x10",
                                                                  "1_000", "2.5", "1e400", "K"]))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.text(max_size=20), st.builds(lambda n, v: f"{n}={v}", _limit_names, _limit_values)),
                max_size=4))
def test_parse_limits_only_raises_usage_errors(items: list[str]) -> None:
    try:
        limits = cli.parse_limits(items)
    except UsageError:
        return
    assert isinstance(limits, Limits)
    assert limits.max_files > 0 and limits.max_compression_ratio > 0


@settings(max_examples=200, deadline=None)
@given(tail=st.text(max_size=40))
def test_hf_references_only_raise_aivet_errors(tail: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    import os

    cache = tmp_path_factory.mktemp("empty-hub")
    old = {k: os.environ.get(k) for k in ("HF_HUB_CACHE", "HF_HUB_OFFLINE")}
    os.environ["HF_HUB_CACHE"], os.environ["HF_HUB_OFFLINE"] = str(cache), "1"
    try:
        repo.resolve("hf://" + tail)
    except AivetError:
        pass
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
