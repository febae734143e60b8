"""Compiled code shipped in a model repository: native libraries, executables, Python bytecode.

A model repository has no need for machine code. When one is there, something is meant to
load it: remote code calling ``ctypes.CDLL`` or ``torch.ops.load_library``, an AOTInductor
package, a custom-op wheel unpacked in place. aivet cannot tell what machine code does,
so the file is reported for what it is, loudly, and never passes as "no issues".
Python bytecode is reported too: a ``.pyc`` is imported in place of a missing source file,
and bytecode cannot be reviewed the way source can.
"""

from __future__ import annotations

from aivet.analyzers.context import Context
from aivet.analyzers.engine import Outcome
from aivet.analyzers.source import Source
from aivet.evidence import Severity
from aivet.formats import FormatError
from aivet.formats.native import describe
from aivet.formats.sniff import HEAD_BYTES, Format
from aivet.rules import ATLAS_SUPPLY_CHAIN_MODEL, ATLAS_UNSAFE_ARTIFACTS, Rule

NATIVE_CODE = Rule(
    "CODE-NATIVE-BINARY",
    "Compiled machine code in the repository",
    "The file is an executable or a shared library (ELF, Mach-O, PE or WebAssembly). Model loaders, "
    "remote code (ctypes, torch.ops.load_library) and compiled-model runtimes load such files into the "
    "process, where they run with its full rights. aivet does not disassemble machine code: only load "
    "it from a publisher you trust, and prefer source you can review.",
    Severity.HIGH,
    (ATLAS_SUPPLY_CHAIN_MODEL, ATLAS_UNSAFE_ARTIFACTS),
    ("CWE-829", "CWE-506"),
)
PYTHON_BYTECODE = Rule(
    "CODE-PYTHON-BYTECODE",
    "Compiled Python bytecode in the repository",
    "The file is CPython bytecode (.pyc). Python imports a .pyc in place of a missing source file, and "
    "bytecode cannot be reviewed like source; aivet analyses Python source, not bytecode. Stray "
    "__pycache__ files are usually harmless leftovers, but remove them or review where they came from.",
    Severity.MEDIUM,
    (ATLAS_SUPPLY_CHAIN_MODEL,),
    ("CWE-829",),
)

RULES = (NATIVE_CODE, PYTHON_BYTECODE)


def analyze(source: Source, ctx: Context) -> Outcome:
    """Report the compiled code ``source`` holds (its header says what it is)."""
    head = source.head(HEAD_BYTES)
    code = describe(head)
    if code is None:  # sniffing said compiled code: only a changing file gets here
        raise FormatError("the compiled-code header could not be read again")
    rule = PYTHON_BYTECODE if code.family == "Python bytecode" else NATIVE_CODE
    ctx.add(rule.finding(ctx.location(source), f"{code.description}: compiled code aivet cannot analyse",
                         family=code.family, kind=code.description, library=code.library))
    return Outcome(Format.COMPILED_CODE.value, note=code.description)
