"""The built-in example: a small model repository with planted problems, built in code.

``aivet scan --example`` builds it in a temporary directory and scans it, so a
new user sees what findings look like without downloading anything. Every
payload is harmless even if some other tool were to load the files: the
pickle calls ``os.system`` with an ``echo``, the PyTorch-style checkpoint
calls ``exec`` on a string assignment, the remote-code module only echoes.
The pickles are written opcode by opcode; nothing here pickles an object.
"""

from __future__ import annotations

import json
import struct
import zipfile
from pathlib import Path

__all__ = ["build_example", "EXPECTED"]

# What the example demonstrates, by file: used by the tests and the README.
EXPECTED: dict[str, str] = {
    "config.json": "clean",
    "tokenizer_config.json": "clean (a normal chat template)",
    "model.safetensors": "clean",
    "extra_state.pkl": "clean (a pickled dict of numbers and strings)",
    "training_args.bin": "malicious: a pickle that calls os.system('echo ...')",
    "pytorch_model.bin": "malicious: a PyTorch zip whose data.pkl calls builtins.exec",
    "modeling_demo.py": "suspicious remote code: reads HF_TOKEN and runs a subprocess",
    "README.md": "clean",
}

SHELL_PAYLOAD = "echo aivet-example: this command would run when the file is loaded"
EXEC_PAYLOAD = "aivet_example = 'this assignment would run when the checkpoint is loaded'"

_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|' + message['role'] + '|>\\n' + message['content'] + '<|end|>\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}"
)

_MODELING = '''"""Remote code for the aivet demo model (loaded only with trust_remote_code=True)."""

import os
import subprocess


def _telemetry():
    # The kind of thing aivet looks for: a credential read and a process started at import time.
    token = os.environ['HF_TOKEN']
    subprocess.run(['echo', 'hi'], check=False)
    return len(token)


class DemoForCausalLM:
    def __init__(self, config):
        self.config = config
        _telemetry()
'''

_README = """# aivet demo model

A tiny model repository built by `aivet scan --example`. It is not a real
model: it holds a few clean files and a few with planted, harmless payloads
(a pickle that would run `echo`, a PyTorch checkpoint that would `exec` a
string assignment, remote code that reads `HF_TOKEN`). aivet reports them
without executing anything.
"""


def build_example(dest: Path) -> Path:
    """Write the example repository into ``dest`` (created if needed) and return ``dest``."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    config = {
        "architectures": ["DemoForCausalLM"],
        "model_type": "llama",
        "hidden_size": 2,
        "num_hidden_layers": 1,
        "vocab_size": 8,
        "torch_dtype": "float32",
    }
    (dest / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    tokenizer = {
        "bos_token": "<s>",
        "eos_token": "</s>",
        "model_max_length": 2048,
        "tokenizer_class": "PreTrainedTokenizerFast",
        "chat_template": _CHAT_TEMPLATE,
    }
    (dest / "tokenizer_config.json").write_text(json.dumps(tokenizer, indent=2) + "\n", encoding="utf-8")
    (dest / "model.safetensors").write_bytes(safetensors_bytes())
    (dest / "extra_state.pkl").write_bytes(clean_pickle())
    (dest / "training_args.bin").write_bytes(call_pickle("os", "system", SHELL_PAYLOAD))
    _torch_zip(dest / "pytorch_model.bin", call_pickle("builtins", "exec", EXEC_PAYLOAD))
    (dest / "modeling_demo.py").write_text(_MODELING, encoding="utf-8")
    (dest / "README.md").write_text(_README, encoding="utf-8")
    return dest


def safetensors_bytes() -> bytes:
    """A valid safetensors file: one 2x2 float32 tensor of zeros."""
    header = {
        "__metadata__": {"format": "pt"},
        "weight": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]},
    }
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)  # the format pads the header to 8 bytes with spaces
    return struct.pack("<Q", len(text)) + text + bytes(16)


def _unicode(text: str) -> bytes:
    data = text.encode("utf-8")
    return b"X" + struct.pack("<I", len(data)) + data  # BINUNICODE


def clean_pickle() -> bytes:
    """Protocol 2 pickle of ``{'step': 100, 'lr': 'cosine'}``, opcode by opcode."""
    return (
        b"\x80\x02"  # PROTO 2
        b"}q\x00"  # EMPTY_DICT, BINPUT 0
        b"("  # MARK
        + _unicode("step") + b"Kd"  # BININT1 100
        + _unicode("lr") + _unicode("cosine")
        + b"u."  # SETITEMS, STOP
    )


def call_pickle(module: str, name: str, argument: str) -> bytes:
    """Protocol 2 pickle that would call ``module.name(argument)`` when loaded."""
    return (
        b"\x80\x02"  # PROTO 2
        + f"c{module}\n{name}\n".encode("ascii")  # GLOBAL
        + _unicode(argument)
        + b"\x85"  # TUPLE1
        + b"R"  # REDUCE: the call
        + b"."  # STOP
    )


def _torch_zip(path: Path, data_pkl: bytes) -> None:
    """A PyTorch-style checkpoint: a stored zip with ``archive/data.pkl`` and its siblings."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr("archive/data.pkl", data_pkl)
        zf.writestr("archive/byteorder", "little")
        zf.writestr("archive/version", "3\n")
        zf.writestr("archive/.data/serialization_id", "0123456789012345678901234567890123456789")
