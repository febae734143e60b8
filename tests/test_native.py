"""Compiled code in a repository: ELF, Mach-O, PE, WebAssembly and Python bytecode are reported, never cleared."""

from __future__ import annotations

import py_compile
import struct
import zipfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import aivet
from aivet.evidence import ArtifactStatus, Severity
from aivet.formats import native
from aivet.formats.sniff import Format, sniff


def elf(e_type: int = 3, machine: int = 62, bits: int = 64) -> bytes:
    """An ELF identification and header start, as a linker writes them (little-endian)."""
    ident = b"\x7fELF" + bytes([1 if bits == 32 else 2, 1, 1, 0]) + b"\x00" * 8
    return ident + struct.pack("<HHI", e_type, machine, 1) + b"\x00" * 200


def macho(cputype: int = 0x0100000C, filetype: int = 6) -> bytes:
    return b"\xcf\xfa\xed\xfe" + struct.pack("<iiI", cputype, 0, filetype) + b"\x00" * 100


def pe(machine: int = 0x8664, characteristics: int = 0x2022) -> bytes:
    dos = bytearray(b"MZ" + b"\x00" * 0x7E)
    struct.pack_into("<I", dos, 0x3C, 0x80)
    return bytes(dos) + b"PE\x00\x00" + struct.pack("<HHIIIHH", machine, 3, 0, 0, 0, 0xF0, characteristics) + b"\x00" * 64


def java_class() -> bytes:
    return b"\xca\xfe\xba\xbe" + struct.pack(">HH", 0, 61) + b"\x00" * 40


@pytest.mark.parametrize(("data", "family", "words", "library"), [
    (elf(), "ELF", "64-bit x86-64 shared object", True),
    (elf(2, 183), "ELF", "64-bit AArch64 executable", False),
    (elf(1, 3, 32), "ELF", "32-bit x86 relocatable object", True),
    (macho(), "Mach-O", "64-bit ARM64 dynamic library", True),
    (b"\xca\xfe\xba\xbe" + struct.pack(">I", 2) + b"\x00" * 40, "Mach-O", "universal binary for 2 architectures", True),
    (pe(), "PE", "x86-64 Windows DLL", True),
    (pe(0x14C, 0x0102), "PE", "x86 Windows executable", False),
    (b"\x00asm\x01\x00\x00\x00" + b"\x01" * 20, "WebAssembly", "WebAssembly module (version 1)", True),
    (java_class(), "Java", "Java class file", True),
    (b"\x7fELF\x09", "ELF", "ELF file with a malformed header", True),
])
def test_headers_are_described(data: bytes, family: str, words: str, library: bool) -> None:
    code = native.describe(data)
    assert code is not None and (code.family, code.description, code.library) == (family, words, library)
    assert sniff(data, "weights.bin", len(data)) is Format.COMPILED_CODE


@pytest.mark.parametrize("data", [
    b"MZ" + b"\x00" * 100,  # a DOS header with no PE signature where it points
    b"Mo\r\nhello",  # text
    b"\x00\x01\x00\x00\x00font",  # TrueType
    b"\x00as",
])
def test_lookalikes_are_not_compiled_code(data: bytes) -> None:
    assert native.describe(data) is None
    assert sniff(data, "x.bin", len(data)) is not Format.COMPILED_CODE


def test_real_bytecode_is_recognised(tmp_path: Path) -> None:
    src = tmp_path / "helper.py"
    src.write_text("VALUE = 1\n")
    pyc = Path(py_compile.compile(str(src), cfile=str(tmp_path / "helper.pyc")))
    code = native.describe(pyc.read_bytes())
    assert code is not None and code.family == "Python bytecode" and "3.11+" in code.description


def test_scan_reports_native_libraries_high_and_bytecode_medium(tmp_path: Path) -> None:
    (tmp_path / "kernels.so").write_bytes(elf())
    (tmp_path / "model.safetensors").write_bytes(pe())  # a DLL named like data
    src = tmp_path / "modeling.py"
    src.write_text("X = 1\n")
    py_compile.compile(str(src), cfile=str(tmp_path / "__pycache__" / "modeling.cpython-311.pyc"))
    ev = aivet.scan(tmp_path)
    by_file = {(f.location.path, f.rule_id): f for f in ev.findings}
    assert by_file[("kernels.so", "CODE-NATIVE-BINARY")].severity is Severity.HIGH
    assert by_file[("kernels.so", "CODE-NATIVE-BINARY")].details["kind"] == "64-bit x86-64 shared object"
    assert by_file[("model.safetensors", "CODE-NATIVE-BINARY")].severity is Severity.HIGH
    assert by_file[("model.safetensors", "SCAN-EXTENSION-MISMATCH")].details["content"] == "compiled-code"
    pyc = by_file[("__pycache__/modeling.cpython-311.pyc", "CODE-PYTHON-BYTECODE")]
    assert pyc.severity is Severity.MEDIUM
    formats = {a.path: (a.format, a.status) for a in ev.artifacts}
    assert formats["kernels.so"] == ("compiled-code", ArtifactStatus.ANALYZED)


def test_native_code_inside_an_archive_is_found(tmp_path: Path) -> None:
    with zipfile.ZipFile(tmp_path / "bundle.zip", "w") as zf:
        zf.writestr("pkg/_ops.so", elf())
        zf.writestr("README.txt", "kernels")
    ev = aivet.scan(tmp_path / "bundle.zip")
    hits = [f for f in ev.findings if f.rule_id == "CODE-NATIVE-BINARY"]
    assert len(hits) == 1 and hits[0].location.path == "bundle.zip!pkg/_ops.so"


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.sampled_from([elf(), macho(), pe(), java_class(), b"\x00asm\x01\x00\x00\x00"]))
def test_any_bytes_describe_or_not_without_error(tail: bytes, seed: bytes) -> None:
    """Cut and spoiled headers never raise: they are compiled code (maybe 'malformed') or not."""
    for data in (tail, seed[:len(tail) % (len(seed) + 1)] + tail, bytes(a ^ b for a, b in zip(seed, tail, strict=False))):
        code = native.describe(data)
        assert code is None or code.description
        assert (sniff(data, "f.bin", len(data)) is Format.COMPILED_CODE) == (code is not None) or not data \
            or sniff(data, "f.bin", len(data)) is not Format.COMPILED_CODE
