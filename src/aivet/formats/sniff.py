"""Decide a file's format from its content (the name is only a tie-breaker for text)."""

from __future__ import annotations

import enum
import struct
from typing import BinaryIO

HEAD_BYTES = 4096  # how much of a file sniffing reads
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


class Format(str, enum.Enum):
    PICKLE = "pickle"  # raw pickle stream (also joblib, legacy torch, dill/cloudpickle)
    NUMPY = "numpy"  # .npy
    ZIP = "zip"  # any zip: torch checkpoints, TorchScript, .keras, .npz are told apart inside
    TAR = "tar"  # any tar: legacy torch tar checkpoints are told apart inside
    GZIP = "gzip"
    BZIP2 = "bzip2"
    XZ = "xz"
    ZLIB = "zlib"  # raw zlib stream (joblib's compressed format)
    LZ4 = "lz4"  # lz4 frame (joblib)
    SEVENZIP = "7z"
    HDF5 = "hdf5"  # Keras HDF5 (.h5) and other HDF5 files
    GGUF = "gguf"
    SAFETENSORS = "safetensors"
    PROTOBUF = "protobuf"  # ONNX and TensorFlow SavedModel: told apart by structure
    PYTHON = "python"
    JSON = "json"
    JINJA = "jinja"
    YAML = "yaml"  # .yaml/.yml, MLflow MLmodel, or text carrying PyYAML/HyperPyYAML constructor tags
    TEXT = "text"
    COMPILED_CODE = "compiled-code"  # ELF, Mach-O, PE, WebAssembly, Python bytecode
    BENIGN_BINARY = "benign-binary"  # images, PDFs, fonts: data formats that no model loader executes
    EMPTY = "empty"
    UNKNOWN = "unknown"


_PICKLE_FIRST_OPCODES = frozenset(b"(.0123FIJKLMNPQRSTUVXabcdeghijklmoprstu}])\x80\x81\x82\x83\x84\x85\x86\x87\x88\x89\x8a\x8b\x8c\x8d\x8e\x8f\x90\x91\x92\x93\x94\x95\x96\x97\x98")
_BENIGN_MAGIC = (
    b"\x89PNG\r\n\x1a\n",
    b"\xff\xd8\xff",  # JPEG
    b"GIF87a",
    b"GIF89a",
    b"%PDF-",
    b"RIFF",  # WAV / WEBP
    b"wOFF",
    b"wOF2",
    b"\x00\x01\x00\x00\x00",  # TrueType
    b"OggS",
    b"fLaC",
    b"ID3",
)
_MODEL_EXTENSIONS = frozenset(
    ".bin .pt .pth .ckpt .pkl .pickle .joblib .h5 .hdf5 .keras .onnx .pb .gguf .ggml .safetensors "
    ".npy .npz .tar .zip .gz .7z .msgpack .model .dat .mar .nemo .pdparams .sav .pt2 .distcp".split()
)


def extension(name: str) -> str:
    dot = name.rfind(".")
    return name[dot:].lower() if dot > name.rfind("/") else ""


def is_model_extension(name: str) -> bool:
    return extension(name) in _MODEL_EXTENSIONS


def sniff(head: bytes, name: str, size: int) -> Format:
    """Return the format of a file from its first bytes (``head``), name and total size."""
    if size == 0 or not head:
        return Format.EMPTY
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")):
        return Format.ZIP
    if head.startswith(b"\x93NUMPY"):
        return Format.NUMPY
    if head.startswith(b"GGUF"):
        return Format.GGUF
    if head.startswith(HDF5_SIGNATURE):
        return Format.HDF5
    if head.startswith(b"\x1f\x8b"):
        return Format.GZIP
    if head.startswith(b"BZh") and len(head) > 3 and head[3:4].isdigit():
        return Format.BZIP2
    if head.startswith(b"\xfd7zXZ\x00"):
        return Format.XZ
    if head.startswith(b"7z\xbc\xaf\x27\x1c"):
        return Format.SEVENZIP
    if head.startswith(b"\x04\x22\x4d\x18"):
        return Format.LZ4
    if head.startswith(b"\x5d\x00\x00"):  # lzma-alone (joblib compress="lzma"); not a pickle start
        return Format.XZ
    if head.startswith(b"ZF0x"):  # joblib's legacy zlib container
        return Format.ZLIB
    if len(head) > 262 and head[257:262] == b"ustar":
        return Format.TAR
    if _looks_like_safetensors(head, size):
        return Format.SAFETENSORS
    if _looks_compiled(head):  # before pickle: "MZ" and some bytecode magics are pickle opcodes too
        return Format.COMPILED_CODE
    if head[0] == 0x80 and len(head) > 1 and head[1] <= 5:
        return Format.PICKLE
    if head[0] == 0x78 and len(head) > 1 and (head[0] * 256 + head[1]) % 31 == 0 and _inflates(head):
        return Format.ZLIB
    if head.startswith(_BENIGN_MAGIC):
        return Format.BENIGN_BINARY
    # Protobuf before text: a small graph with no NUL byte decodes as UTF-8 and would
    # otherwise escape analysis as "text".
    if (extension(name) in (".pb", ".onnx") or any(b < 9 or 13 < b < 32 for b in head[:64])) and _looks_like_protobuf(
        head
    ):
        return Format.PROTOBUF
    text = _as_text(head)
    if text is not None:
        return _sniff_text(text, name)
    if name.lower().endswith((".py", ".pyw")) and b"\x00" not in head:
        return Format.PYTHON  # a coding cookie (latin-1 ...) still imports and runs
    if _looks_like_old_pickle(head):
        return Format.PICKLE
    if _looks_like_protobuf(head):
        return Format.PROTOBUF
    return Format.UNKNOWN


# -- containers that loaders find beyond the first byte ------------------------------------------

def hdf5_superblock_offset(fh: BinaryIO, size: int, head: bytes = b"") -> int | None:
    """Where the HDF5 superblock is, as libhdf5 searches: offset 0, then 512, 1024, 2048 ... (after a
    *user block* of arbitrary bytes) up to the end of the file. ``head``, the file's first bytes if
    already read, saves reads for the offsets it covers."""
    pos = 0
    while pos + 8 <= size:
        if pos + 8 <= len(head):
            probe = head[pos:pos + 8]
        else:
            fh.seek(pos)
            probe = fh.read(8)
        if probe == HDF5_SIGNATURE:
            return pos
        pos = 512 if pos == 0 else pos * 2
    return None


_EOCD = b"PK\x05\x06"  # zip end of central directory record
_EOCD_SIZE = 22


def zip_directory_offset(fh: BinaryIO, size: int) -> int | None:
    """Where the central directory of a zip ending the file starts, if the file ends with one.

    zipfile (and so Keras) finds an archive by its end record, whatever precedes it; it is a zip
    when the record's central directory really is where the record says (ending just before the
    record, starting with a central directory header)."""
    if size < _EOCD_SIZE:
        return None
    tail_len = min(size, 65535 + _EOCD_SIZE)
    fh.seek(size - tail_len)
    tail = fh.read(tail_len)
    at = tail.rfind(_EOCD)
    if at < 0 or at + _EOCD_SIZE > len(tail):
        return None
    entries, cd_size = struct.unpack_from("<HI", tail, at + 10)
    cd_start = size - tail_len + at - cd_size
    if entries == 0 or cd_start < 0:
        return None
    fh.seek(cd_start)
    return cd_start if fh.read(4) == b"PK\x01\x02" else None


def _inflates(head: bytes) -> bool:
    """Whether ``head`` starts a zlib stream that decompresses. The two-byte header check alone
    passes text such as ``x = 1`` (0x78 0x20), which would then never be read as Python."""
    import zlib

    try:
        zlib.decompressobj().decompress(head[:1024], 1)
    except zlib.error:
        return False
    return True


def _looks_compiled(head: bytes) -> bool:
    """Executable headers and Python bytecode (:mod:`aivet.formats.native`, imported only for candidates)."""
    if head[:1] in b"\x7f\xfe\xce\xcf\xcaM\x00" or head[2:4] == b"\r\n":
        from aivet.formats import native

        return native.looks_compiled(head)
    return False


def _looks_like_safetensors(head: bytes, size: int) -> bool:
    if len(head) < 9:
        return False
    (n,) = struct.unpack_from("<Q", head)
    # A header length past the end of the file is still safetensors (a hostile or truncated
    # one): the analyzer reports it precisely. Text never has two NUL high bytes. The reference
    # loader (serde_json) skips JSON whitespace before the '{' the specification requires.
    rest = head[8:].lstrip(b" \t\n\r")
    return (rest[:1] == b"{" or (not rest and len(head) >= 64)) and 2 <= n < 2**48


def _as_text(head: bytes) -> str | None:
    if b"\x00" in head:
        return None
    try:
        return head.decode("utf-8")
    except UnicodeDecodeError as exc:
        # A multi-byte character cut at the end of the head is still text.
        if exc.start >= len(head) - 4:
            return head[: exc.start].decode("utf-8")
        return None


def _sniff_text(text: str, name: str) -> Format:
    lower = name.lower()
    if lower.endswith(".pbtxt"):  # protobuf text format: TensorFlow loads saved_model.pbtxt like saved_model.pb
        return Format.PROTOBUF
    stripped = text.lstrip()
    if lower.endswith((".py", ".pyw")) or stripped.startswith("#!") and "python" in stripped.split("\n", 1)[0]:
        return Format.PYTHON
    if lower.endswith((".jinja", ".jinja2", ".j2")):
        return Format.JINJA
    if lower.endswith((".yaml", ".yml")) or lower.rsplit("/", 1)[-1] == "mlmodel" or _looks_like_yaml(stripped, lower):
        return Format.YAML
    if stripped[:1] in ("{", "[") and (lower.endswith((".json", ".jsonl")) or lower.endswith("config")):
        return Format.JSON
    if stripped[:1] == "{" and '"' in stripped[:64]:
        return Format.JSON
    if _looks_like_old_pickle(text.encode("utf-8", "surrogatepass")) and not lower.endswith(
        (".md", ".txt", ".json", ".yaml", ".yml", ".cfg", ".toml", ".ini", ".csv", ".model", ".vocab")
    ):
        return Format.PICKLE
    return Format.TEXT


# Tags that make a YAML loader import and call Python (PyYAML python tags, HyperPyYAML shortcuts): in
# any text file but documentation and JSON, they mean the file is YAML for someone's loader.
_YAML_CODE_TAGS = ("!!python/", "tag:yaml.org,2002:python/", "!new:", "!apply:", "!applyref:", "!name:", "!module:")
_YAML_EXEMPT = (".json", ".jsonl", ".md", ".markdown", ".rst", ".html", ".htm", ".ipynb")


def _looks_like_yaml(stripped: str, lower: str) -> bool:
    if stripped.startswith("%YAML"):
        return True
    return not lower.endswith(_YAML_EXEMPT) and any(tag in stripped for tag in _YAML_CODE_TAGS)


def _looks_like_old_pickle(head: bytes) -> bool:
    """Protocol 0/1 pickles have no header: check the first opcodes form a plausible stream."""
    if not head or head[0] not in _PICKLE_FIRST_OPCODES:
        return False
    from aivet.formats import pickle_ops

    return pickle_ops.plausible_stream(head)


def _looks_like_protobuf(head: bytes) -> bool:
    from aivet.formats import protobuf

    return protobuf.plausible_message(head)
