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
from collections.abc import Callable

from aivet import rules
from aivet.analyzers.archive import Entry, Members, ctx_loc
from aivet.analyzers.context import Context
from aivet.analyzers.engine import Outcome
from aivet.analyzers.source import Source
from aivet.evidence import ArtifactStatus, Severity
from aivet.formats import FormatError, LimitExceeded
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
_STORAGE = re.compile(r"(?:\.data/|data/|constants/)\d+$")
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
            if rest not in ("data.pkl", "constants.pkl") and not (
                    rest.startswith("code/") and rest.endswith(".debug_pkl")):
                ctx.add(UNEXPECTED_MEMBER.finding(ctx_loc(ctx, source, entry.name), f"extra pickle {entry.name!r}",
                                                  member=entry.name))
            _pickle_member(members, entry, ctx, ecosystem)
        elif _STORAGE.match(rest):
            storages += 1  # raw tensor bytes: no loader executes them
        elif rest.startswith("code/") and rest.endswith(".py"):
            _torchscript_code(members, entry, ctx)
        elif rest in _KNOWN or rest.startswith(("extra/", ".data/")):
            continue
        else:
            ctx.add(UNEXPECTED_MEMBER.finding(ctx_loc(ctx, source, entry.name), f"member {entry.name!r} is not part of the "
                                              "layout PyTorch writes", member=entry.name))
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
    stops at the first STOP, so only their leading pickle is analysed (see docs/archives.md).
    """
    for entry in members.entries:
        if entry.name in _LEGACY_PICKLES:
            _pickle_member(members, entry, ctx)
        else:
            ctx.add(UNEXPECTED_MEMBER.finding(ctx_loc(ctx, members.source, entry.name), f"member {entry.name!r} is not part of "
                                              "a legacy PyTorch checkpoint", member=entry.name))
            members.analyze(entry)
    status = ArtifactStatus.PARTIAL if members.partial else ArtifactStatus.ANALYZED
    return Outcome("pytorch-legacy-tar", status)
