"""Compiled code: executable headers (ELF, Mach-O, PE, WebAssembly) and Python bytecode.

Nothing here disassembles anything. The reader tells what kind of compiled code a file
holds from its fixed header (the first bytes :func:`aivet.formats.sniff.sniff` already
read), so that a finding can say "an x86-64 ELF shared object" rather than "unknown
binary". A header that is cut short or inconsistent still describes compiled code: the
magic number alone is what loaders act on.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

ELF_MAGIC = b"\x7fELF"
WASM_MAGIC = b"\x00asm"
_MACHO_MAGICS = {
    b"\xfe\xed\xfa\xce": (">", 32), b"\xce\xfa\xed\xfe": ("<", 32),
    b"\xfe\xed\xfa\xcf": (">", 64), b"\xcf\xfa\xed\xfe": ("<", 64),
}
_FAT_MAGICS = (b"\xca\xfe\xba\xbe", b"\xca\xfe\xba\xbf")  # fat Mach-O (32- and 64-bit offsets); also Java class files

# Machine names, for the few architectures models ship code for (anything else is shown as a number).
_ELF_MACHINES = {3: "x86", 8: "MIPS", 20: "PowerPC", 21: "PowerPC64", 22: "S390", 40: "ARM", 62: "x86-64",
                 183: "AArch64", 243: "RISC-V", 258: "LoongArch"}
_ELF_TYPES = {1: "relocatable object", 2: "executable", 3: "shared object", 4: "core dump"}
_MACHO_CPUS = {7: "x86", 0x01000007: "x86-64", 12: "ARM", 0x0100000C: "ARM64", 18: "PowerPC", 0x01000012: "PowerPC64"}
_MACHO_TYPES = {1: "object", 2: "executable", 6: "dynamic library", 8: "bundle", 7: "dynamic linker"}
_PE_MACHINES = {0x14C: "x86", 0x8664: "x86-64", 0xAA64: "ARM64", 0x1C4: "ARM", 0x200: "IA-64"}
# CPython bytecode magic numbers are little-endian 16-bit values followed by b"\r\n"; 3.0 used
# 3111 and every release since has a larger one (3.13: 3571). The range leaves room for later ones.
_PYC_MAGIC_RANGE = range(3000, 4096)
# The magic of the first alpha of each release: a bytecode file's magic is at least its release's.
_PYC_RELEASES = ((3571, "3.13"), (3531, "3.12"), (3495, "3.11"), (3439, "3.10"), (3425, "3.9"), (3413, "3.8"),
                 (3394, "3.7"), (3379, "3.6"), (3350, "3.5"), (3310, "3.4"), (3230, "3.3"), (3180, "3.2"),
                 (3150, "3.1"), (3000, "3.0"))


@dataclass(frozen=True)
class CompiledCode:
    """What a compiled-code header says: the family, and a one-line description of the rest."""

    family: str  # "ELF", "Mach-O", "PE", "WebAssembly", "Python bytecode"
    description: str  # e.g. "64-bit x86-64 shared object"
    library: bool  # a shared library / DLL / bundle: loaded into a running process


def looks_compiled(head: bytes) -> bool:
    """Whether ``head`` (a file's first bytes) starts compiled code that a loader or runtime runs."""
    return describe(head) is not None


def describe(head: bytes) -> CompiledCode | None:
    """Describe the compiled code ``head`` starts, or ``None`` if it is not compiled code."""
    if head.startswith(ELF_MAGIC):
        return _elf(head)
    if head[:4] in _MACHO_MAGICS:
        return _macho(head)
    if head[:4] in _FAT_MAGICS:
        return _fat(head)
    if head.startswith(b"MZ"):
        return _pe(head)
    if head.startswith(WASM_MAGIC) and len(head) >= 8:
        (version,) = struct.unpack_from("<I", head, 4)
        return CompiledCode("WebAssembly", f"WebAssembly module (version {version})", True)
    if len(head) >= 4 and head[2:4] == b"\r\n":
        magic = head[0] | head[1] << 8
        if magic in _PYC_MAGIC_RANGE:
            release = next(name for first, name in _PYC_RELEASES if magic >= first)
            return CompiledCode("Python bytecode", f"Python {release}+ bytecode (magic {magic})", False)
    return None


def _elf(head: bytes) -> CompiledCode:
    if len(head) < 20 or head[4] not in (1, 2) or head[5] not in (1, 2):
        return CompiledCode("ELF", "ELF file with a malformed header", True)
    bits = 32 if head[4] == 1 else 64
    order = "<" if head[5] == 1 else ">"
    e_type, e_machine = struct.unpack_from(order + "HH", head, 16)
    kind = _ELF_TYPES.get(e_type, f"type {e_type}")
    machine = _ELF_MACHINES.get(e_machine, f"machine {e_machine}")
    return CompiledCode("ELF", f"{bits}-bit {machine} {kind}", e_type != 2)


def _macho(head: bytes) -> CompiledCode:
    order, bits = _MACHO_MAGICS[head[:4]]
    if len(head) < 16:
        return CompiledCode("Mach-O", "Mach-O file with a malformed header", True)
    cputype, _, filetype = struct.unpack_from(order + "iiI", head, 4)
    cpu = _MACHO_CPUS.get(cputype & 0xFFFFFFFF, f"cpu {cputype}")
    kind = _MACHO_TYPES.get(filetype, f"file type {filetype}")
    return CompiledCode("Mach-O", f"{bits}-bit {cpu} {kind}", filetype != 2)


def _fat(head: bytes) -> CompiledCode:
    if len(head) < 8:
        return CompiledCode("Mach-O", "universal binary with a malformed header", True)
    (count,) = struct.unpack_from(">I", head, 4)
    # Java class files share the magic; their next word is (minor, major) with major >= 45.
    if count >= 45:
        return CompiledCode("Java", "Java class file", True)
    return CompiledCode("Mach-O", f"universal binary for {count} architecture{'s' if count != 1 else ''}", True)


def _pe(head: bytes) -> CompiledCode | None:
    """A PE image: ``MZ``, and the ``PE\\0\\0`` signature where the DOS header points."""
    if len(head) < 0x40:
        return None
    (at,) = struct.unpack_from("<I", head, 0x3C)
    if at + 24 > len(head) or head[at:at + 4] != b"PE\x00\x00":
        return None  # a DOS stub without a PE header, or bytes that only start with "MZ"
    machine, _, _, _, _, _, characteristics = struct.unpack_from("<HHIIIHH", head, at + 4)
    dll = bool(characteristics & 0x2000)
    name = _PE_MACHINES.get(machine, f"machine {machine:#x}")
    return CompiledCode("PE", f"{name} Windows {'DLL' if dll else 'executable'}", dll)
