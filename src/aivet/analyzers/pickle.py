"""Analyzer for pickle streams: raw pickles, joblib files, legacy PyTorch checkpoints.

The stream is emulated symbolically by :mod:`aivet.analyzers.pickle_vm` (never
unpickled); every global it imports or calls is classified by
:mod:`aivet.analyzers.allowlist`. :func:`analyze_pickle` is reused by the torch,
numpy and archive analyzers for pickles inside other containers.
"""

from __future__ import annotations

import contextlib
import mmap
from collections.abc import Iterator
from typing import Any

from aivet import rules
from aivet.analyzers.allowlist import Classification, classify
from aivet.analyzers.context import Context
from aivet.analyzers.engine import Outcome
from aivet.analyzers.pickle_values import Result
from aivet.analyzers.pickle_vm import PickleVM
from aivet.analyzers.source import Source
from aivet.evidence import ArtifactStatus, Severity
from aivet.formats import FormatError, LimitExceeded
from aivet.rules import (
    ATLAS_EVADE,
    ATLAS_SUPPLY_CHAIN_MODEL,
    ATLAS_UNSAFE_ARTIFACTS,
    Rule,
)

DANGEROUS_GLOBAL = Rule(
    "PICKLE-DANGEROUS-GLOBAL",
    "Pickle imports a known-dangerous callable",
    "The pickle imports (and usually calls) a global that runs commands or code, imports modules, "
    "opens files or sockets, or reaches other callables (os.system, builtins.eval, getattr, "
    "pydoc.locate, pip.main...). Loading it with pickle, torch.load or joblib.load runs that call.",
    Severity.CRITICAL,
    (ATLAS_UNSAFE_ARTIFACTS, ATLAS_SUPPLY_CHAIN_MODEL),
    ("CWE-502", "CWE-94"),
)
UNSAFE_GLOBAL = Rule(
    "PICKLE-UNSAFE-GLOBAL",
    "Pickle uses a global that is not on the allowlist",
    "The pickle imports a global that aivet does not know to be a pure data constructor. Any "
    "callable reachable by import can be abused, and blocklists are routinely bypassed, so unknown "
    "globals are reported: high when called or handed to a call or persistent id, medium when only "
    "referenced (high in --strict mode).",
    Severity.HIGH,
    (ATLAS_UNSAFE_ARTIFACTS, ATLAS_SUPPLY_CHAIN_MODEL),
    ("CWE-502",),
)
UNRESOLVED_GLOBAL = Rule(
    "PICKLE-UNRESOLVED-GLOBAL",
    "Pickle calls something whose name cannot be determined statically",
    "The callable is chosen at load time: a STACK_GLOBAL whose name is computed, a copyreg extension "
    "code (EXT1/2/4), a global name with control or non-ASCII characters, or a call on a value that "
    "is not a resolvable global. These are scanner-evasion techniques.",
    Severity.HIGH,
    (ATLAS_EVADE, ATLAS_UNSAFE_ARTIFACTS),
    ("CWE-502", "CWE-693"),
)
SUSPICIOUS_BUILD = Rule(
    "PICKLE-SUSPICIOUS-BUILD",
    "Pickle BUILD or container fill can run or rewrite code",
    "BUILD applies state to an object through __setstate__ or attribute assignment, and APPEND / "
    "SETITEM call methods of the object they fill. Using a global as state, building a module or "
    "class object itself, building the same object twice (installing __setstate__) or filling "
    "something that is not a plain list, set or dict can overwrite attributes of loaded code or "
    "call a referenced global without a visible call.",
    Severity.HIGH,
    (ATLAS_UNSAFE_ARTIFACTS,),
    ("CWE-502", "CWE-915"),
)
NESTED_PICKLE = Rule(
    "PICKLE-NESTED-PICKLE",
    "Pickle embeds another pickle",
    "A bytes constant inside the pickle is itself a pickle (possibly passed to pickle.loads). Nested "
    "pickles hide payloads from scanners that read only the outer stream; aivet emulates them too.",
    Severity.MEDIUM,
    (ATLAS_EVADE,),
    ("CWE-502",),
)
TRAILING_DATA = Rule(
    "PICKLE-TRAILING-DATA",
    "Data after the end of the pickle",
    "Bytes follow the pickle's STOP opcode that are not another pickle. Loaders ignore them, but they "
    "can hide a second payload for a custom loader or confuse scanners.",
    Severity.LOW,
    (ATLAS_EVADE,),
    ("CWE-20",),
)

RULES = (DANGEROUS_GLOBAL, UNSAFE_GLOBAL, UNRESOLVED_GLOBAL, SUSPICIOUS_BUILD, NESTED_PICKLE, TRAILING_DATA)

_ANOMALY_RULES = {"unresolved": UNRESOLVED_GLOBAL, "build": SUSPICIOUS_BUILD, "nested": NESTED_PICKLE,
                  "trailing": TRAILING_DATA}


def analyze(source: Source, ctx: Context) -> Outcome:
    """Analyze a file whose content is a pickle stream (format ``pickle``, ``joblib`` or ``pytorch-legacy``)."""
    return analyze_pickle(source, ctx)


@contextlib.contextmanager
def _bytes_of(source: Source, limit: int) -> Iterator[Any]:
    """The source's bytes: memory-mapped for files on disk, read (bounded) otherwise."""
    if source.fs_path is not None and source.size > 0:
        with open(source.fs_path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            yield mm
        return
    with source.open() as stream:
        yield stream.read(limit)


def analyze_pickle(source: Source, ctx: Context, *, ecosystem: str | None = None,
                   format_name: str = "pickle") -> Outcome:
    """Emulate the pickle stream in ``source`` and report the globals it uses.

    ``ecosystem`` (``"torch"``, ``"numpy"``, ``"joblib"``...) narrows the allowlist to what
    that loader needs. Findings are added to ``ctx`` even when the stream turns out to be
    malformed or too large; then FormatError / LimitExceeded is raised for the engine to report.
    """
    limit = ctx.limits.max_pickle_bytes
    truncated = source.size > limit
    with _bytes_of(source, limit) as data:
        vm = PickleVM(data, ctx.limits, ecosystem=ecosystem, end=limit)
        try:
            result = vm.run()
        except (FormatError, LimitExceeded) as exc:
            _report(source, ctx, vm.result, ecosystem)
            if truncated and isinstance(exc, FormatError):
                exc = LimitExceeded("max_pickle_bytes", f"pickle larger than {limit} bytes", limit)
            if isinstance(exc, FormatError):
                raise
            _unfinished(source, ctx, exc)
            return Outcome(format_name, ArtifactStatus.PARTIAL, str(exc))
        finally:
            vm.data = b""  # drop the reference before the map is closed
    fmt = format_name
    if result.legacy_torch:
        fmt = "pytorch-legacy"
    elif result.joblib_arrays or any(n.startswith("joblib.") for n in result.uses):
        fmt = "joblib"
    _report(source, ctx, result, "torch" if result.legacy_torch and ecosystem is None else ecosystem)
    note = f"{len(result.uses)} globals, {result.pickles} pickle(s)"
    if result.persistent_count:
        note += f", {result.persistent_count} persistent ids"
    if truncated:
        _unfinished(source, ctx, LimitExceeded("max_pickle_bytes", f"pickle larger than {limit} bytes", limit))
        return Outcome(fmt, ArtifactStatus.PARTIAL, note)
    return Outcome(fmt, ArtifactStatus.ANALYZED, note)


def _unfinished(source: Source, ctx: Context, exc: LimitExceeded) -> None:
    """Report a pickle a limit stopped part way: high, because what follows is code a loader runs.

    Padding is cheap (about 50 MB of opcodes reach ``max_pickle_opcodes``), so a payload placed
    past a limit must not be quieter than the payload itself would have been.
    """
    ctx.add(rules.LIMIT_EXCEEDED.finding(
        ctx.location(source, offset=exc.offset),
        f"{exc}: the rest of the pickle was not analysed, and a loader would run it "
        f"(raise it with --limit {exc.limit}=... for a file you trust more)",
        severity=Severity.HIGH, limit=exc.limit))


def _report(source: Source, ctx: Context, result: Result, ecosystem: str | None) -> None:
    """Turn emulation results into findings: one per non-allowlisted global, plus anomalies."""
    for use in result.uses.values():
        verdict, reason = classify(use.name, ecosystem)
        if verdict is Classification.SAFE and use.verdict is not None:
            verdict, reason = use.verdict, use.reason
        if verdict is Classification.SAFE:
            continue
        called = use.calls > 0
        if verdict is Classification.DANGEROUS:
            rule, severity = DANGEROUS_GLOBAL, Severity.CRITICAL
        else:
            rule = UNSAFE_GLOBAL
            # Handed to a call or a BUILD, a global may be called by it: as loud as a call.
            severity = Severity.HIGH if called or use.passed_to or ctx.strict else Severity.MEDIUM
        first_call = use.samples[0][1] if use.samples else None
        offset = use.samples[0][0] if use.samples else use.first_offset
        if called:
            times = f" ({use.calls} calls)" if use.calls > 1 else ""
            message = f"pickle calls {first_call}{times}: {reason}"
        elif use.passed_to:
            message = f"pickle passes {use.name} to {use.passed_to}, which may call it: {reason}"
        else:
            message = f"pickle references {use.name}: {reason}"
        ctx.add(rule.finding(
            ctx.location(source, offset=offset), message, severity=severity,
            **{"global": use.name}, call=first_call, calls=[text for _, text in use.samples],
            call_count=use.calls, references=use.references, classification=verdict.value,
            opcode=use.first_opcode, setstate=use.setstate, nested=use.nested, passed_to=use.passed_to))
    for anomaly in result.anomalies:
        rule = _ANOMALY_RULES[anomaly.kind]
        ctx.add(rule.finding(ctx.location(source, offset=anomaly.offset), anomaly.message, **anomaly.details))
    if result.anomaly_count > len(result.anomalies):
        ctx.add(UNRESOLVED_GLOBAL.finding(
            ctx.location(source), f"{result.anomaly_count - len(result.anomalies)} more anomalies not listed",
            severity=Severity.MEDIUM, omitted=result.anomaly_count - len(result.anomalies)))
