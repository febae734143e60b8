"""PT2 archives: what ``torch.export.save`` and AOTInductor packages hold, and what their loaders run.

**PT2 archives** (``torch.export.save``, ``torch._inductor.aoti_compile_and_package``) are
zips whose members sit under one root directory (the file's stem)::

    <root>/archive_format                      "pt2"
    <root>/archive_version, byteorder, .data/version, .data/serialization_id
    <root>/models/<model>.json                 the exported graph (JSON)
    <root>/data/weights/<model>_weights_config.json     payload config: which weight_N is raw
    <root>/data/weights/weight_N               raw tensor bytes, or a torch.save blob (use_pickle)
    <root>/data/constants/<model>_constants_config.json
    <root>/data/constants/tensor_N | custom_obj_N | opaque_obj_N
    <root>/data/sample_inputs/<model>.pt       torch.save blob
    <root>/data/aotinductor/<model>/...        AOTInductor: compiled .so, its .cpp, metadata JSON
    <root>/extra/..., data/executorch/..., data/mtia/...

What a loader executes decides what is read: ``torch.export.load`` hands pickled weights,
pickled constants and the sample inputs to ``torch.load`` (``weights_only=False`` for the
first two, a fallback to it for the third), opaque constants to ``pickle.loads``, and the
graph's symbolic shape expressions to ``sympy.sympify``, which evaluates them as Python.
``torch._inductor.aoti_load_package`` loads the compiled ``.so`` into the process (and
compiles shipped ``.cpp`` first when no ``.so`` is there). Raw weights are numbers: they
are counted, not read.

Distributed Checkpoint shards (zip archives back to back) are read by
:mod:`aivet.analyzers.archive_sequence`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from aivet import rules
from aivet.analyzers.archive import Entry, Members, ctx_loc
from aivet.analyzers.context import Context
from aivet.analyzers.engine import Outcome
from aivet.analyzers.source import Source
from aivet.analyzers.torch import (
    _BUILTIN_CLASS_NAMESPACES,
    _BUILTIN_OP_NAMESPACES,
    CUSTOM_CLASS,
    CUSTOM_OP,
    UNEXPECTED_MEMBER,
    _pickle_member,
    analyze_member_pickle,
)
from aivet.evidence import ArtifactStatus, Severity
from aivet.formats import FormatError, LimitExceeded
from aivet.formats.safetensors import json_cost
from aivet.rules import ATLAS_EVADE, ATLAS_SUPPLY_CHAIN_MODEL, ATLAS_UNSAFE_ARTIFACTS, Rule

PT2_COMPILED_CODE = Rule(
    "TORCH-PT2-COMPILED-CODE",
    "PT2 package carries compiled code",
    "The PT2 archive holds AOTInductor output: a shared library that torch._inductor.aoti_load_package "
    "(torch.export.pt2_archive load_pt2) loads into the process, or C++ source and objects it compiles "
    "and loads when no library is shipped. Machine code cannot be reviewed like the exported graph; "
    "load such a package only from a publisher you trust. Each binary is also reported on its own.",
    Severity.HIGH,
    (ATLAS_SUPPLY_CHAIN_MODEL, ATLAS_UNSAFE_ARTIFACTS),
    ("CWE-829", "CWE-506"),
)
PT2_SYMBOLIC_CODE = Rule(
    "TORCH-PT2-SYMBOLIC-CODE",
    "Exported program holds a shape expression that is Python code",
    "torch.export.load rebuilds symbolic shapes by passing each expr_str of the graph to sympy.sympify, "
    "which evaluates the string as Python with builtins in scope. torch.export writes only arithmetic "
    "over shape symbols there; names, attributes, strings or statements beyond that run code when the "
    "program is loaded.",
    Severity.HIGH,
    (ATLAS_UNSAFE_ARTIFACTS,),
    ("CWE-95",),
)
PT2_UNSAFE_TARGET = Rule(
    "TORCH-PT2-UNSAFE-TARGET",
    "Exported graph calls a Python function outside PyTorch's operators",
    "A graph node's target is resolved by torch.export.load through getattr from the torch, operator "
    "or math module and called whenever the program runs. torch.export writes operator overloads "
    "(torch.ops.*), symbolic-shape helpers (torch.sym_*) and arithmetic from operator and math; any "
    "other torch function (torch.load, torch.hub.load, ...) or a dunder attribute is a way to run code.",
    Severity.HIGH,
    (ATLAS_UNSAFE_ARTIFACTS, ATLAS_EVADE),
    ("CWE-94",),
)

RULES = (PT2_COMPILED_CODE, PT2_SYMBOLIC_CODE, PT2_UNSAFE_TARGET)



# ---------------------------------------------------------------------------------------------
# PT2 archives
# ---------------------------------------------------------------------------------------------

# Records PyTorchFileWriter and PT2ArchiveWriter write themselves; nothing loads code from them.
_PT2_BOOKKEEPING = frozenset({"archive_format", "archive_version", "byteorder", "version", ".data/version",
                              ".data/serialization_id", ".format_version", ".storage_alignment"})
_MODEL_JSON = re.compile(r"models/[^/]+\.json")
_PAYLOAD_CONFIG = re.compile(r"data/(weights|constants)/[^/]+_(?:weights|constants|model_param|model_constants)"
                             r"_config\.json")
_PAYLOAD = re.compile(r"data/(weights|constants)/([^/]+)")
_SAMPLE_INPUTS = re.compile(r"data/sample_inputs/[^/]+\.pt|extra/[^/]+\.forward\.sample_input\.pt")
_AOTI = "data/aotinductor/"
# AOTInductor files that are, or become, machine code in the process: libraries and objects it
# loads, GPU kernels the library loads, C++ it compiles when no library is shipped.
_COMPILED_SUFFIXES = (".so", ".dll", ".dylib", ".pyd", ".o", ".obj", ".a", ".cubin", ".fatbin", ".hsaco",
                      ".spv", ".ptx", ".cpp", ".cc", ".cu", ".h", ".hpp")
# AOTInductor weights kept beside the library (mmap'd or external): raw bytes it reads itself.
_AOTI_RAW_WEIGHTS = ("_serialized_weights.bin", "_weights.blob")
_MAX_CONFIG_BYTES = 64 * 1024 * 1024  # a payload config names every weight once: real ones are < 10 MiB


@dataclass
class _Payloads:
    """What the payload configs say about data/weights and data/constants files."""

    raw: set[str]  # "weights/weight_0": raw tensor bytes
    pickled: set[str]  # "weights/weight_3", "constants/custom_obj_0": read by an unpickler


def analyze_pt2(members: Members, ctx: Context) -> Outcome:
    """Analyse a PT2 archive given bounded access to its ``members``.

    Pickle-bearing members go through the torch pickle analysis, JSON members through the JSON
    analyzer plus the exported-program checks, AOTInductor members through :meth:`Context.analyze`
    (compiled code is also reported once for the package), raw weights are counted. Members the
    PT2 layout does not explain are reported and analysed.
    """
    source = members.source
    first = members.entries[0].name if members.entries else ""
    root = first.split("/", 1)[0] + "/" if "/" in first else ""
    payloads = _Payloads(set(), set())
    later: list[tuple[Entry, str]] = []
    # Configs first: they say which weight and constant files are raw numbers.
    for entry in members.entries:
        rest = entry.name[len(root):] if entry.name.startswith(root) else None
        if rest is not None and _PAYLOAD_CONFIG.fullmatch(rest):
            _payload_config(members, entry, rest, ctx, payloads)
        elif rest is not None and rest.startswith(_AOTI) and rest.endswith(("/weights_config.json",
                                                                           "/custom_objs_config.json")):
            _aoti_config(members, entry, ctx, payloads)
        else:
            later.append((entry, rest if rest is not None else ""))
    raw = 0
    compiled: list[str] = []
    for entry, rest in later:
        if not entry.name.startswith(root):
            _unexpected(members, entry, ctx, f"member {entry.name!r} is outside the archive root {root!r}: "
                                             "torch reads only records under the root")
        elif rest in _PT2_BOOKKEEPING:
            continue
        elif rest.endswith((".pkl", ".debug_pkl")):
            # No PT2 loader reads a .pkl member, but torch.load of the same file does (data.pkl).
            ctx.add(UNEXPECTED_MEMBER.finding(ctx_loc(ctx, source, entry.name), f"extra pickle {entry.name!r}",
                                              member=entry.name))
            _pickle_member(members, entry, ctx)
        elif _MODEL_JSON.fullmatch(rest):
            _program(members, entry, ctx)
        elif _SAMPLE_INPUTS.fullmatch(rest):
            _pickled(members, entry, ctx)
        elif (m := _PAYLOAD.fullmatch(rest)) is not None and not rest.endswith(".json"):
            key = f"{m.group(1)}/{m.group(2)}"
            if key in payloads.raw and key not in payloads.pickled:
                raw += 1  # raw tensor bytes: no loader executes them
            elif key in payloads.pickled or m.group(2).endswith(".pt"):
                _pickled(members, entry, ctx)  # use_pickle payloads, legacy <model>.pt files
            else:
                _unexpected(members, entry, ctx, f"member {entry.name!r} is named by no payload config")
        elif rest.startswith(_AOTI):
            lower = rest.lower()
            if lower.endswith(_AOTI_RAW_WEIGHTS):
                raw += 1  # constants the compiled library maps as bytes; no unpickler reads them
                continue
            if lower.endswith(_COMPILED_SUFFIXES) or lower.endswith("/cmakelists.txt"):
                compiled.append(entry.name)
            members.analyze(entry)
        elif rest.startswith(("extra/", "data/executorch/", "data/mtia/", "xl_model_weights/")):
            members.analyze(entry)  # written by torch from user content: analysed as whatever it is
        else:
            _unexpected(members, entry, ctx, f"member {entry.name!r} is not part of the layout PT2 archives have")
    if compiled:
        shown = ", ".join(compiled[:10]) + (f" and {len(compiled) - 10} more" if len(compiled) > 10 else "")
        ctx.add(PT2_COMPILED_CODE.finding(ctx.location(source), f"AOTInductor package with {len(compiled)} compiled "
                                          f"or to-be-compiled files: {shown}", files=compiled[:100],
                                          count=len(compiled)))
    status = ArtifactStatus.PARTIAL if members.partial else ArtifactStatus.ANALYZED
    note = f"{raw} raw tensor payloads not read" + (", AOTInductor compiled code" if compiled else "")
    return Outcome("pt2", status, note)


def _unexpected(members: Members, entry: Entry, ctx: Context, message: str) -> None:
    ctx.add(UNEXPECTED_MEMBER.finding(ctx_loc(ctx, members.source, entry.name), message, member=entry.name))
    members.analyze(entry)


def _pickled(members: Members, entry: Entry, ctx: Context) -> None:
    """A member torch.load or pickle.loads reads: a torch.save zip, or a bare pickle."""
    try:
        with members.materialize(entry) as child:
            if child is None:
                return
            if child.head(4) in (b"PK\x03\x04", b"PK\x05\x06"):
                ctx.analyze(child)  # a torch.save zip: analysed as the checkpoint it is
            else:
                analyze_member_pickle(child, ctx)  # a bare pickle (legacy torch.save, pickle.dumps)
    except FormatError as exc:
        ctx.add(rules.PARSE_ERROR.finding(ctx_loc(ctx, members.source, entry.name), str(exc), member=entry.name))
        members.partial = True


def _read_json(members: Members, entry: Entry, ctx: Context, limit: int) -> tuple[Source | None, Any]:
    """Materialise ``entry``, run the JSON analyzer on it (secrets, duplicate keys) and decode it within bounds."""
    loc = ctx_loc(ctx, members.source, entry.name)
    if entry.size > limit:
        ctx.add(rules.LIMIT_EXCEEDED.finding(loc, f"{entry.name!r} is larger than {limit} bytes; not read",
                                             limit="max_json_bytes"))
        members.partial = True
        return None, None
    try:
        with members.materialize(entry) as child:
            if child is None:
                return None, None
            ctx.analyze(child)
            with child.open() as fh:
                raw = fh.read(limit + 1)
    except FormatError as exc:
        ctx.add(rules.PARSE_ERROR.finding(loc, str(exc), member=entry.name))
        members.partial = True
        return None, None
    if json_cost(raw) > ctx.limits.max_json_cost:
        ctx.add(rules.LIMIT_EXCEEDED.finding(loc, f"{entry.name!r} would take too much memory to decode",
                                             limit="max_json_cost"))
        members.partial = True
        return child, None
    try:
        return child, json.loads(raw)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        # Reported here too: bytes that do not even sniff as JSON never reach the JSON analyzer.
        ctx.add(rules.PARSE_ERROR.finding(loc, f"cannot parse as JSON: {exc}", member=entry.name))
        members.partial = True
        return child, None


def _payload_config(members: Members, entry: Entry, rest: str, ctx: Context, payloads: _Payloads) -> None:
    """Read a PayloadConfig: ``{"config": {fqn: {"path_name": ..., "use_pickle": bool, ...}}}``."""
    _, data = _read_json(members, entry, ctx, min(_MAX_CONFIG_BYTES, ctx.limits.max_json_bytes))
    kind = rest.split("/", 2)[1]  # weights or constants
    config = data.get("config") if isinstance(data, dict) else None
    if not isinstance(config, dict):
        return
    for meta in config.values():
        if not isinstance(meta, dict) or not isinstance(meta.get("path_name"), str):
            continue
        key = f"{kind}/{meta['path_name']}"
        # Only an explicit use_pickle: false makes a file raw; anything else is read as a pickle.
        (payloads.raw if meta.get("use_pickle") is False else payloads.pickled).add(key)


def _aoti_config(members: Members, entry: Entry, ctx: Context, payloads: _Payloads) -> None:
    """AOTInductor's configs: ``weights_config.json`` maps weights to ``[file, shape, stride, offset]``
    (torch.save blobs in data/weights/), ``custom_objs_config.json`` names to ``custom_obj_N`` files
    (torch._C._pickle_save archives in data/constants/)."""
    _, data = _read_json(members, entry, ctx, min(_MAX_CONFIG_BYTES, ctx.limits.max_json_bytes))
    if not isinstance(data, dict):
        return
    weights = entry.name.endswith("/weights_config.json")
    for value in data.values():
        if weights and isinstance(value, list) and value and isinstance(value[0], str):
            payloads.pickled.add(f"weights/{value[0]}")
        elif not weights and isinstance(value, str):
            payloads.pickled.add(f"constants/{value}")


# --- the exported program (models/<name>.json) -------------------------------------------------

# Operator and math functions torch.export emits for symbolic arithmetic (torch/_export/serde
# serialize.py _SYM_OPS) and getitem; operator.call, attrgetter and methodcaller are not here.
_OPERATOR_TARGETS = frozenset("""
    getitem eq ne le ge lt gt neg pos mul add sub floordiv mod pow truediv and_ or_ xor not_ invert abs
    lshift rshift matmul
""".split())
_TORCH_SYM_TARGET = re.compile(r"torch\._?sym_[a-z_]+")
_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
_DOTTED = re.compile(rf"{_IDENT}(?:\.{_IDENT})*")
# What torch.export prints into expr_str: sympy's srepr (Add(Symbol('s0', integer=True), Integer(1)))
# in torch 2.x, infix str() (s0 + 1) in older archives. Functions: the deserializer's own
# torch.utils._sympy.functions names, and the sympy classes srepr names for shape arithmetic.
_SYMPY_FUNCTIONS = frozenset("""
    FloorDiv ModularIndexing Where PythonMod Mod CleanDiv CeilToInt FloorToInt CeilDiv LShift RShift
    PowByNatural FloatPow FloatTrueDiv IntTrueDiv IsNonOverlappingAndDenseIndicator TruncToFloat TruncToInt
    RoundToInt RoundDecimal ToFloat Identity OpaqueUnaryFn_sqrt BitwiseFn_bitwise_and BitwiseFn_bitwise_or
    BitwiseFn_bitwise_xor
    Symbol Integer Rational Float Add Mul Pow Max Min Abs floor ceiling sqrt exp log Eq Ne Lt Le Gt Ge
    Equality Unequality StrictLessThan LessThan StrictGreaterThan GreaterThan And Or Not Xor Piecewise
    ExprCondPair ITE Tuple
""".split())
_SYMPY_CONSTANTS = frozenset("oo zoo nan pi E true false True False None".split())
_SHAPE_SYMBOL = re.compile(r"[a-z]{1,5}[0-9]+")  # s0, u3, zuf1, ps2: torch's SymT prefixes and an index
_EXPR_TOKEN = re.compile(r"""\s*(?:
      (?P<num>\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)
    | (?P<str>'[A-Za-z0-9_.+-]{0,64}'|"[A-Za-z0-9_.+-]{0,64}")
    | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
    | (?P<op>\*\*|//|==|!=|<=|>=|[-+*/%(),<>&|~^=])
)""", re.X)
_MAX_WALK = 20_000_000  # JSON values visited per program (bounded by max_json_cost already; a backstop)


def unsafe_shape_expr(expr: str) -> str | None:
    """Why ``expr`` is more than the shape arithmetic torch.export prints, or ``None`` when it is only that.

    sympy.sympify evaluates the string as Python, so the check is an allowlist of tokens: numbers,
    short name-like string literals (Symbol('s0')), operators, shape symbols and constants, calls
    of listed sympy/torch functions, and keyword arguments (integer=True). Attribute access,
    other names, other strings and statements are what code needs, and are refused.
    """
    tokens: list[tuple[str, str]] = []
    pos = 0
    while pos < len(expr):
        m = _EXPR_TOKEN.match(expr, pos)
        if m is None:
            rest = expr[pos:].lstrip()
            return f"character {rest[0]!r} at {len(expr) - len(rest)}" if rest else None
        kind = m.lastgroup or ""
        tokens.append((kind, m.group(kind)))
        pos = m.end()
    for i, (kind, text) in enumerate(tokens):
        if text == "=" and kind == "op" and not (i >= 2 and tokens[i - 1][0] == "name" and tokens[i - 2][1] in "(,"):
            return "an assignment"
        if kind != "name":
            continue
        after = tokens[i + 1][1] if i + 1 < len(tokens) else ""
        if after == "(":
            if text not in _SYMPY_FUNCTIONS:
                return f"call of {text!r}"
        elif after == "=" and i > 0 and tokens[i - 1][1] in ("(", ","):
            if text.startswith("__") or not text.islower():
                return f"keyword {text!r}"  # sympy assumptions (integer=True) and precision=53
        elif text not in _SYMPY_CONSTANTS and not _SHAPE_SYMBOL.fullmatch(text):
            return f"name {text!r}"
    return None


def _target_problem(target: str) -> tuple[str, Severity | None] | None:
    """What is wrong with a node target; ``None`` for an operator, helper or arithmetic torch emits."""
    if target.startswith("#"):
        return None  # an extension operator, looked up in a registry the loading process filled
    if not _DOTTED.fullmatch(target):
        return None  # left unresolved by the deserializer (a string target), so nothing is called
    parts = target.split(".")
    if any(len(p) > 4 and p.startswith("__") and p.endswith("__") for p in parts):
        return "reaches interpreter internals through a dunder attribute", None
    if parts[0] == "_operator":
        return None if len(parts) == 2 and parts[1] in _OPERATOR_TARGETS else (
            f"operator function {'.'.join(parts[1:])} is not arithmetic", None)
    if parts[0] == "math":
        return None if len(parts) == 2 else ("attribute of a math function", Severity.MEDIUM)
    if parts[0] != "torch":
        return None  # not resolved from any module: stays a string
    if len(parts) >= 4 and parts[1] == "ops":
        return None  # torch.ops.<namespace>.<op>[.<overload>]: custom namespaces are reported apart
    if _TORCH_SYM_TARGET.fullmatch(target):
        return None
    return f"calls the Python function {target}", None


def _walk(data: Any) -> Iterator[dict[str, Any]]:
    """Every JSON object in ``data``, without recursion (hostile nesting is as deep as json allows)."""
    stack = [data]
    visited = 0
    while stack:
        node = stack.pop()
        visited += 1
        if visited > _MAX_WALK:
            raise LimitExceeded("max_json_cost", "exported program has too many JSON values to check")
        if isinstance(node, dict):
            yield node
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)


def _program(members: Members, entry: Entry, ctx: Context) -> None:
    """An exported program: JSON analysis, then its targets, custom classes and shape expressions."""
    child, data = _read_json(members, entry, ctx, ctx.limits.max_json_bytes)
    if child is None or data is None:
        return
    try:
        check_program(data, child, ctx)
    except LimitExceeded as exc:
        ctx.add(rules.LIMIT_EXCEEDED.finding(ctx.location(child), f"{exc} (limit: {exc.limit})", limit=exc.limit))
        members.partial = True


def check_program(data: Any, source: Source, ctx: Context) -> None:
    """Report what in a decoded exported program (``models/<name>.json``) runs code when loaded or run."""
    seen: set[tuple[str, str]] = set()

    def once(kind: str, value: str) -> bool:
        if (kind, value) in seen:
            return False
        seen.add((kind, value))
        return True

    for obj in _walk(data):
        target = obj.get("target")
        if isinstance(target, str) and "inputs" in obj and once("target", target):
            _check_target(target, source, ctx)
        expr = obj.get("expr_str")
        if isinstance(expr, str) and once("expr", expr):
            why = unsafe_shape_expr(expr)
            if why is not None:
                ctx.add(PT2_SYMBOLIC_CODE.finding(ctx.location(source), f"shape expression {expr[:200]!r} holds "
                                                  f"{why}: sympy.sympify evaluates it as Python", expr=expr[:1000]))
        fqn = obj.get("class_fqn")
        if isinstance(fqn, str) and once("class", fqn):
            m = re.match(r"__torch__\.torch\.classes\.(\w+)\.(\w+)", fqn)
            if m is None or m.group(1) not in _BUILTIN_CLASS_NAMESPACES:
                ctx.add(CUSTOM_CLASS.finding(ctx.location(source), f"exported program uses custom class {fqn}",
                                             namespace=m.group(1) if m else fqn))


def _check_target(target: str, source: Source, ctx: Context) -> None:
    problem = _target_problem(target)
    if problem is not None:
        why, severity = problem
        ctx.add(PT2_UNSAFE_TARGET.finding(ctx.location(source), f"graph node target {target[:200]!r}: {why}",
                                          severity=severity, target=target[:1000]))
        return
    parts = target.split(".")
    if parts[:2] == ["torch", "ops"] and len(parts) >= 4 and parts[2] not in _BUILTIN_OP_NAMESPACES:
        ctx.add(CUSTOM_OP.finding(ctx.location(source), f"exported program calls custom operator "
                                  f"ops.{parts[2]}.{parts[3]}", namespace=parts[2], op=parts[3]))
