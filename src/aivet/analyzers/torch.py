"""PyTorch checkpoints: zip checkpoints, TorchScript archives and legacy tar checkpoints.

The archive reader (:mod:`aivet.analyzers.archive`) has already checked the
container's structure and hands over bounded access to its members. Here we
decide which members a PyTorch loader would execute and analyse those:

* every ``*.pkl`` member (``data.pkl`` is what ``torch.load`` unpickles;
  ``constants.pkl`` is what ``torch.jit.load`` reads; attackers hide payloads in
  either, and in extra pickles a later tool might read) with the pickle
  analyzer in its ``torch`` ecosystem, where tensor rebuild globals are known;
* TorchScript source under ``code/``: calls that leave the TorchScript
  runtime (custom operator namespaces, custom classes, Python modules);
* members torch never writes, recursively, so a payload parked beside the
  checkpoint is still seen.

Tensor storages (``data/<n>``) are raw numbers that no loader executes; they
are counted and not read.
"""

from __future__ import annotations

import importlib
import re
import struct
from collections.abc import Callable
from typing import BinaryIO

from aivet import rules
from aivet.analyzers.archive import Entry, Members, bytes_opener, ctx_loc
from aivet.analyzers.context import Context
from aivet.analyzers.engine import Outcome
from aivet.analyzers.source import Source
from aivet.evidence import ArtifactStatus, Severity
from aivet.formats import FormatError, LimitExceeded
from aivet.formats.pickle_ops import iter_ops
from aivet.rules import ATLAS_EVADE, ATLAS_SUPPLY_CHAIN_MODEL, ATLAS_UNSAFE_ARTIFACTS, Rule

CUSTOM_OP = Rule(
    "TORCH-CUSTOM-OP",
    "TorchScript calls an operator outside PyTorch's own namespaces",
    "TorchScript code calls ops.<namespace>.<op> for a namespace other than aten, prim, quantized "
    "and the other namespaces PyTorch ships. Such an operator comes from a native library the "
    "loading process has registered: the model only runs where that library is loaded, and the "
    "library (not the model) decides what the call does.",
    Severity.MEDIUM,
    (ATLAS_SUPPLY_CHAIN_MODEL,),
    ("CWE-829",),
)
CUSTOM_CLASS = Rule(
    "TORCH-CUSTOM-CLASS",
    "TorchScript uses a custom C++ class",
    "TorchScript code refers to __torch__.torch.classes.<namespace> outside PyTorch's own "
    "namespaces: a class implemented in a native extension that must be loaded beforehand.",
    Severity.LOW,
    (ATLAS_SUPPLY_CHAIN_MODEL,),
    ("CWE-829",),
)
SCRIPT_PYTHON_ACCESS = Rule(
    "TORCH-SCRIPT-PYTHON-ACCESS",
    "TorchScript source names Python runtime or file-system facilities",
    "TorchScript source in the archive names os, subprocess, builtins, eval, exec, open or similar. "
    "torch.jit.script never emits these; their presence means the archive's code was written or "
    "edited by hand, to reach the host when the model is loaded or run.",
    Severity.HIGH,
    (ATLAS_UNSAFE_ARTIFACTS,),
    ("CWE-94",),
)
UNEXPECTED_MEMBER = Rule(
    "TORCH-UNEXPECTED-MEMBER",
    "Checkpoint holds a member PyTorch does not write",
    "The checkpoint contains a member outside the layout torch.save / torch.jit.save produce. It was "
    "analysed on its own; executable content in it is reported separately. Extra members are where "
    "payloads hide from scanners that only read data.pkl.",
    Severity.LOW,
    (ATLAS_EVADE,),
    ("CWE-434",),
)
MULTIPLE_ARCHIVES = Rule(
    "TORCH-MULTIPLE-RECORDS",
    "Checkpoint holds more than one top-level record directory",
    "PyTorch reads the record directory named by the first member; a second directory with its own "
    "data.pkl is read by other tools. Two views of one file is a scanner-evasion pattern.",
    Severity.MEDIUM,
    (ATLAS_EVADE,),
    ("CWE-436",),
)

RULES = (CUSTOM_OP, CUSTOM_CLASS, SCRIPT_PYTHON_ACCESS, UNEXPECTED_MEMBER, MULTIPLE_ARCHIVES)

# Operator namespaces PyTorch itself (and its first-party domain libraries) register.
_BUILTIN_OP_NAMESPACES = frozenset({
    "aten", "prim", "quantized", "_quantized", "quantized_decomposed", "_caffe2", "profiler", "cuda",
    "mkldnn", "mkldnn_prepacked", "_test", "onednn", "fbgemm", "xnnpack", "prepacked", "sparse",
    "torchvision", "torchaudio", "torchtext", "image", "c10d", "_c10d_functional", "inductor",
    "debugprims", "higher_order", "_prims",
})
_BUILTIN_CLASS_NAMESPACES = frozenset({"quantized", "xnnpack", "mkldnn", "_torchbind_test", "torchvision",
                                       "torchaudio", "sparse", "onednn", "c10d", "dist_c10d", "dist_rpc"})
_OP_CALL = re.compile(r"\bops\.([A-Za-z_]\w*)\.([A-Za-z_]\w*)")
_CUSTOM_CLASS = re.compile(r"__torch__\.torch\.classes\.([A-Za-z_]\w*)\.([A-Za-z_]\w*)")
_PYTHON_ACCESS = re.compile(
    r"(?<![\w.])(os|sys|subprocess|builtins|importlib|socket|shutil|ctypes|pty|posix|runpy)\.\w+"
    r"|(?<![\w.])(eval|exec|compile|__import__|open|globals|locals|breakpoint|input)\s*\("
)
# String literals are blanked before matching: TorchScript names exception types in strings
# (ops.prim.RaiseException(msg, "builtins.ValueError")) and module attributes as getattr(self, "0").
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
_STORAGE = re.compile(r"(?:\.data/|data/|constants/|traced_inputs/)\d+$")
_KNOWN = frozenset({"data.pkl", "constants.pkl", "byteorder", "version", ".format_version", ".storage_alignment",
                    ".data/version", ".data/serialization_id"})
_MAX_CODE_BYTES = 8 * 1024 * 1024


def _record_prefix(name: str) -> tuple[str, str]:
    """``archive/data/0`` -> (``archive``, ``data/0``); a name without a directory has an empty prefix."""
    if "/" in name:
        head, rest = name.split("/", 1)
        return head, rest
    return "", name


def _pickle_runner(ecosystem: str) -> Callable[[Source, Context], Outcome] | None:
    """The pickle analyzer bound to ``ecosystem``, or ``None`` when it is not installed."""
    try:
        pickle_scan = importlib.import_module("aivet.analyzers.pickle")
    except ModuleNotFoundError as exc:
        if exc.name != "aivet.analyzers.pickle":
            raise
        return None

    def run(source: Source, ctx: Context) -> Outcome:
        outcome: Outcome = pickle_scan.analyze_pickle(source, ctx, ecosystem=ecosystem, format_name="pickle")
        return outcome

    return run


def analyze_member_pickle(source: Source, ctx: Context, ecosystem: str = "torch") -> ArtifactStatus:
    """Analyse one pickle member in ``ecosystem``, failing closed like the engine does.

    TorchScript archives use ``ecosystem="torchscript"``: torch.jit.load unpickles them with its
    C++ unpickler, which resolves ``__torch__.*`` classes from the archive's own code and knows the
    ``torch.jit._pickle`` list builders, so those names are legitimate there and nowhere else.
    """
    runner = _pickle_runner(ecosystem)
    if runner is None:
        return ctx.analyze(source)
    try:
        outcome = runner(source, ctx)
    except LimitExceeded as exc:
        ctx.add(rules.LIMIT_EXCEEDED.finding(ctx.location(source, offset=exc.offset),
                                             f"{exc} (limit: {exc.limit})", limit=exc.limit))
        outcome = Outcome("pickle", ArtifactStatus.PARTIAL, str(exc))
    except FormatError as exc:
        ctx.add(rules.PARSE_ERROR.finding(ctx.location(source, offset=exc.offset),
                                          f"cannot parse as pickle: {exc}", format="pickle"))
        outcome = Outcome("pickle", ArtifactStatus.ERROR, str(exc))
    except RecursionError as exc:
        ctx.add(rules.LIMIT_EXCEEDED.finding(ctx.location(source), f"{type(exc).__name__} while parsing pickle",
                                             limit="python"))
        outcome = Outcome("pickle", ArtifactStatus.ERROR, type(exc).__name__)
    except Exception as exc:  # noqa: BLE001 - fail closed on any reader bug, as the engine does
        ctx.add(rules.PARSE_ERROR.finding(ctx.location(source), f"internal error while parsing pickle: "
                                          f"{type(exc).__name__}: {exc}", format="pickle", internal=True))
        outcome = Outcome("pickle", ArtifactStatus.ERROR, f"{type(exc).__name__}: {exc}")
    ctx.record(source, outcome.format, outcome.status, outcome.note)
    return outcome.status


def _pickle_member(members: Members, entry: Entry, ctx: Context, ecosystem: str = "torch") -> None:
    try:
        with members.materialize(entry) as child:
            if child is not None:
                analyze_member_pickle(child, ctx, ecosystem)
    except FormatError as exc:
        ctx.add(rules.PARSE_ERROR.finding(ctx_loc(ctx, members.source, entry.name), str(exc), member=entry.name))
        members.partial = True


def analyze_torch_zip(members: Members, ctx: Context, format_name: str) -> Outcome:
    """Analyse a PyTorch zip checkpoint or TorchScript archive (``format_name``) given its members."""
    source = members.source
    split = [(entry, *_record_prefix(entry.name)) for entry in members.entries]
    prefixes = sorted({head for _, head, rest in split if rest in ("data.pkl", "byteorder", "version")})
    if len(prefixes) > 1:
        ctx.add(MULTIPLE_ARCHIVES.finding(ctx.location(source), f"record directories {prefixes}: loaders read "
                                          "only one of them", records=prefixes))
    storages = 0
    ecosystem = "torchscript" if format_name == "torchscript" else "torch"
    for entry, _, rest in split:
        if entry.name.endswith((".pkl", ".debug_pkl")):
            # torch.jit.trace (2.x) also records its example inputs: traced_inputs.pkl + traced_inputs/<n>.
            if rest not in ("data.pkl", "constants.pkl", "traced_inputs.pkl") and not (
                    rest.startswith("code/") and rest.endswith(".debug_pkl")):
                ctx.add(UNEXPECTED_MEMBER.finding(ctx_loc(ctx, source, entry.name), f"extra pickle {entry.name!r}",
                                                  member=entry.name))
            _pickle_member(members, entry, ctx, ecosystem)
        elif _STORAGE.match(rest):
            storages += 1  # raw tensor bytes: no loader executes them
        elif rest.startswith("code/") and rest.endswith(".py"):
            _torchscript_code(members, entry, ctx)
        elif rest in _KNOWN:
            continue
        elif rest.startswith(("extra/", ".data/")):
            members.analyze(entry)  # written by torch (extra files), analysed by content like any file
        else:
            ctx.add(UNEXPECTED_MEMBER.finding(ctx_loc(ctx, source, entry.name), f"member {entry.name!r} is not part of the "
                                              "layout PyTorch writes", member=entry.name))
            if rest.lower().endswith(".pkl"):
                # PyTorch's reader looks names up without regard to case: "DATA.PKL" is its data.pkl.
                _pickle_member(members, entry, ctx, ecosystem)
            else:
                members.analyze(entry)
    status = ArtifactStatus.PARTIAL if members.partial else ArtifactStatus.ANALYZED
    return Outcome(format_name, status, f"{storages} tensor storages not read")


def _torchscript_code(members: Members, entry: Entry, ctx: Context) -> None:
    if entry.size > _MAX_CODE_BYTES:
        ctx.add(rules.LIMIT_EXCEEDED.finding(ctx_loc(ctx, members.source, entry.name), f"TorchScript file {entry.name!r} is "
                                             f"larger than {_MAX_CODE_BYTES} bytes; not read", limit="max_text_file_bytes"))
        members.partial = True
        return
    with members.materialize(entry) as child:
        if child is None:
            return
        with child.open() as fh:
            text = fh.read(_MAX_CODE_BYTES).decode("utf-8", "replace")
        scan_torchscript(text, child, ctx)
        ctx.record(child, "torchscript-code", ArtifactStatus.ANALYZED)


def scan_torchscript(text: str, source: Source, ctx: Context) -> None:
    """Report TorchScript calls in ``text`` that reach outside the TorchScript runtime."""
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = _STRING.sub('""', raw)
        for m in _OP_CALL.finditer(line):
            if m.group(1) not in _BUILTIN_OP_NAMESPACES:
                ctx.add(CUSTOM_OP.finding(ctx.location(source, line=lineno), f"calls custom operator "
                                          f"ops.{m.group(1)}.{m.group(2)}", namespace=m.group(1), op=m.group(2)))
        for m in _CUSTOM_CLASS.finditer(line):
            if m.group(1) not in _BUILTIN_CLASS_NAMESPACES:
                ctx.add(CUSTOM_CLASS.finding(ctx.location(source, line=lineno), f"uses custom class "
                                             f"torch.classes.{m.group(1)}.{m.group(2)}", namespace=m.group(1)))
        for m in _PYTHON_ACCESS.finditer(line):
            ctx.add(SCRIPT_PYTHON_ACCESS.finding(ctx.location(source, line=lineno),
                                                 f"TorchScript names {m.group(0).rstrip('( ')}",
                                                 name=m.group(0).rstrip("( ")))


# Legacy tar checkpoints (PyTorch < 0.4 wrote a tar of four members, each starting with a pickle).
_LEGACY_PICKLES = ("sys_info", "pickle", "storages", "tensors")


def analyze_torch_tar(members: Members, ctx: Context) -> Outcome:
    """Analyse a legacy tar checkpoint: the pickles ``sys_info``, ``pickle``, ``storages``, ``tensors``.

    ``storages`` and ``tensors`` start with a pickle followed by raw bytes; the pickle analyzer
    stops at raw bytes, so the records after each block of raw bytes are found by walking the
    layout torch's legacy loader reads, and analysed one by one (see docs/archives.md).
    """
    for entry in members.entries:
        if entry.name in ("storages", "tensors"):
            _legacy_records(members, entry, ctx)
        elif entry.name in _LEGACY_PICKLES:
            _pickle_member(members, entry, ctx)
        else:
            ctx.add(UNEXPECTED_MEMBER.finding(ctx_loc(ctx, members.source, entry.name), f"member {entry.name!r} is not part of "
                                              "a legacy PyTorch checkpoint", member=entry.name))
            members.analyze(entry)
    status = ArtifactStatus.PARTIAL if members.partial else ArtifactStatus.ANALYZED
    return Outcome("pytorch-legacy-tar", status)


# torch's legacy loader reads ``storages`` as: a pickled count, then per storage a pickled
# (key, location, storage type), an int64 element count and that many elements of raw bytes,
# then a pickled list of views; and ``tensors`` as: a pickled count, then per tensor a pickled
# (key, storage id, type) and a binary header (int32 ndim, 4 bytes, ndim sizes, ndim strides,
# an offset). Every pickle in there is unpickled with the full unpickler: a payload after the
# first block of raw bytes runs like one in ``pickle``.
_STORAGE_TYPE = re.compile(rb"(BFloat16|ComplexDouble|ComplexFloat|Double|Float|Half|Long|Int|Short|Char|Byte|Bool"
                           rb"|QInt8|QUInt8|QInt32|QUInt4x2|QUInt2x4)Storage")
_ELEMENT_SIZE = {b"BFloat16": 2, b"ComplexDouble": 16, b"ComplexFloat": 8, b"Double": 8, b"Float": 4, b"Half": 2,
                 b"Long": 8, b"Int": 4, b"Short": 2, b"Char": 1, b"Byte": 1, b"Bool": 1, b"QInt8": 1, b"QUInt8": 1,
                 b"QInt32": 4, b"QUInt4x2": 1, b"QUInt2x4": 1}
_MAX_RECORD_PICKLE = 1 << 20  # one record's pickle is a short tuple; a larger one ends the walk
_MAX_RECORDS = 1 << 16


def _legacy_records(members: Members, entry: Entry, ctx: Context) -> None:
    """Analyse a legacy ``storages`` or ``tensors`` member: its leading pickles, then every record pickle."""
    try:
        with members.materialize(entry) as child:
            if child is None:
                return
            analyze_member_pickle(child, ctx)  # the leading pickles, up to the first raw bytes
            with child.open() as fh:
                _walk_records(members, entry, ctx, fh, child.size)
    except FormatError as exc:
        ctx.add(rules.PARSE_ERROR.finding(ctx_loc(ctx, members.source, entry.name), str(exc), member=entry.name))
        members.partial = True


def _walk_records(members: Members, entry: Entry, ctx: Context, fh: BinaryIO, size: int) -> None:
    pos, after_raw = 0, False
    for index in range(_MAX_RECORDS):
        if pos >= size:
            return
        window, end = _record_at(fh, pos)
        if after_raw:  # pickles before the first raw bytes were read with the member itself
            record = window if end is None else window[:end]
            analyze_member_pickle(members.source.child(f"{entry.name}@{pos}", len(record), bytes_opener(record)), ctx)
        if end is None:
            return  # not a pickle where the layout puts one: the analysis above reported it
        pos += end
        skip = _raw_after(entry.name, index, window[:end], fh, pos)
        if skip is None or pos + skip > size:
            return
        after_raw = after_raw or skip > 0
        pos += skip


def _record_at(fh: BinaryIO, pos: int) -> tuple[bytes, int | None]:
    """The bytes at ``pos`` that hold one record pickle, and where it ends (``None``: no pickle there).

    Records are short tuples: reads start at 4 KiB and double up to :data:`_MAX_RECORD_PICKLE`, so
    a file of many storages costs a small read per record, not a megabyte.
    """
    n = 4096
    while True:
        fh.seek(pos)
        window = fh.read(n)
        end = _pickle_end(window)
        if end is not None or len(window) < n or n >= _MAX_RECORD_PICKLE:
            return window, end
        n *= 2


def _raw_after(member: str, index: int, record: bytes, fh: BinaryIO, pos: int) -> int | None:
    """How many raw bytes follow pickle number ``index`` at ``pos``; ``None`` when that cannot be told."""
    fh.seek(pos)
    if member == "storages":
        kinds = _STORAGE_TYPE.findall(record)
        if not kinds:
            return 0  # the count or the list of views: another pickle (or the end) follows
        head = fh.read(8)
        if len(head) < 8:
            return None
        (count,) = struct.unpack("<q", head)
        return 8 + count * _ELEMENT_SIZE[kinds[-1]] if count >= 0 else None
    if index == 0:
        return 0  # the count of tensors
    head = fh.read(4)
    if len(head) < 4:
        return None
    (ndim,) = struct.unpack("<i", head)
    return 8 + 16 * ndim + 8 if 0 <= ndim <= 64 else None


def _pickle_end(data: bytes) -> int | None:
    """Where the pickle at the start of ``data`` ends (just past STOP), or ``None`` when it does not."""
    try:
        for offset, code, _ in iter_ops(data):
            if code == 0x2E:  # STOP
                return offset + 1
    except FormatError:
        return None
    return None
    return None
