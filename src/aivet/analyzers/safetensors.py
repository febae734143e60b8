"""Safetensors analyzer: header consistency, data layout and metadata, from the header alone.

Safetensors is a data-only format, so a well-formed file cannot run code. What
matters is whether the file is *exactly* what it claims: a header that loaders
read differently (duplicate keys), tensors that overlap or leave holes, bytes
after the last tensor (a place to smuggle a pickle or archive that a second,
careless loader might read), and metadata that carries binary blobs.
"""

from __future__ import annotations

import base64
import binascii
import io
import re
from collections import Counter
from typing import Any

from aivet.analyzers.context import Context
from aivet.analyzers.engine import Outcome
from aivet.analyzers.source import Source
from aivet.evidence import ArtifactStatus, Severity
from aivet.formats import safetensors as st
from aivet.formats.sniff import HEAD_BYTES, Format, sniff
from aivet.rules import ATLAS_EVADE, ATLAS_SUPPLY_CHAIN_MODEL, ATLAS_UNSAFE_ARTIFACTS, LIMIT_EXCEEDED, Rule

FORMAT = "safetensors"

DUPLICATE_KEY = Rule(
    "SAFETENSORS-DUPLICATE-KEY",
    "Duplicate key in the safetensors header",
    "The JSON header names the same key twice. JSON parsers disagree about which value wins, so two "
    "loaders (or a scanner and a loader) can see different tensors or layouts: a parser-differential "
    "evasion.",
    Severity.HIGH,
    (ATLAS_EVADE, ATLAS_SUPPLY_CHAIN_MODEL),
    ("CWE-436", "CWE-694"),
)
MALFORMED_TENSOR = Rule(
    "SAFETENSORS-MALFORMED-TENSOR",
    "Invalid tensor entry in the safetensors header",
    "A tensor entry is not {dtype, shape, data_offsets: [begin, end]} with consistent values: begin after "
    "end, a size that differs from numel x itemsize, offsets outside the data buffer, or unknown fields. "
    "The reference loader rejects such files (unknown fields it silently ignores); other readers may trust "
    "the offsets and read out of bounds.",
    Severity.HIGH,
    (ATLAS_EVADE,),
    ("CWE-20", "CWE-125"),
)
UNKNOWN_DTYPE = Rule(
    "SAFETENSORS-UNKNOWN-DTYPE",
    "Tensor with a dtype outside the safetensors specification",
    "The dtype is not one the safetensors specification defines, so its size cannot be checked and "
    "loaders will reject or misread it.",
    Severity.HIGH,
    (ATLAS_EVADE,),
    ("CWE-20",),
)
OVERLAP = Rule(
    "SAFETENSORS-OVERLAP",
    "Tensors overlap in the data buffer",
    "Two tensors claim the same bytes. The reference loader rejects this; it lets one write alias "
    "another and hides data from checks that read each tensor once.",
    Severity.HIGH,
    (ATLAS_EVADE,),
    ("CWE-20",),
)
GAP = Rule(
    "SAFETENSORS-GAP",
    "Bytes in the data buffer belong to no tensor",
    "Part of the data buffer is covered by no tensor. The reference loader requires a contiguous "
    "layout; unreferenced bytes are a place to hide a payload.",
    Severity.MEDIUM,
    (ATLAS_EVADE,),
    ("CWE-20",),
)
TRAILING_DATA = Rule(
    "SAFETENSORS-TRAILING-DATA",
    "Data after the last tensor",
    "The file continues after the last tensor's bytes. Safetensors loaders ignore or reject it, which "
    "makes it a place to smuggle a second file (a pickle or an archive) past scanners. High when the "
    "trailing bytes are themselves an executable format.",
    Severity.MEDIUM,
    (ATLAS_EVADE, ATLAS_UNSAFE_ARTIFACTS),
    ("CWE-434", "CWE-506"),
)
BAD_METADATA = Rule(
    "SAFETENSORS-BAD-METADATA",
    "__metadata__ is not a map of strings",
    "The specification says __metadata__ maps strings to strings. Other shapes are rejected by the "
    "reference loader and are a way to carry structured payloads.",
    Severity.MEDIUM,
    (ATLAS_EVADE,),
    ("CWE-20",),
)
SUSPICIOUS_METADATA = Rule(
    "SAFETENSORS-SUSPICIOUS-METADATA",
    "Unusual value in __metadata__",
    "A metadata value is very large, binary-looking or encodes a serialised object (a base64 pickle or "
    "archive), or a well-known key has an unexpected value. Metadata is free text that tools display and "
    "sometimes parse; a serialised object there only waits for a loader that deserialises it.",
    Severity.LOW,
    (ATLAS_SUPPLY_CHAIN_MODEL,),
    ("CWE-502",),
)

NONSTANDARD_HEADER = Rule(
    "SAFETENSORS-NONSTANDARD-HEADER",
    "Safetensors header starts with whitespace",
    "The specification says the JSON header starts with '{'. The reference loader skips whitespace "
    "before it and loads the file, while stricter readers (and scanners that match on '{') refuse it or "
    "do not recognise the file at all: a parser differential no writer produces.",
    Severity.MEDIUM,
    (ATLAS_EVADE,),
    ("CWE-436", "CWE-20"),
)

RULES = (DUPLICATE_KEY, MALFORMED_TENSOR, UNKNOWN_DTYPE, OVERLAP, GAP, TRAILING_DATA, BAD_METADATA,
         SUSPICIOUS_METADATA, NONSTANDARD_HEADER)

KNOWN_FORMATS = frozenset({"pt", "tf", "flax", "mlx", "np", "numpy", "paddle", "jax", "torch", "pytorch"})
LARGE_METADATA_VALUE = 64 * 1024  # HF metadata values are short strings
MAX_PER_RULE = 20  # findings listed per rule; the rest are counted in one summary finding
# Unclaimed regions (gaps, trailing bytes) are sniffed per file up to Limits.max_inspected_regions,
# and analysed as nested files when executable up to Limits.max_analysed_regions. Each costs an
# open and a read (an analysis: a whole scan), and a header can describe a gap between every two
# of a quarter of a million tensors.
_EXECUTABLE = frozenset({Format.PICKLE, Format.ZIP, Format.TAR, Format.GZIP, Format.BZIP2, Format.XZ,
                         Format.ZLIB, Format.LZ4, Format.SEVENZIP, Format.PYTHON, Format.NUMPY, Format.HDF5})
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_BASE64 = re.compile(r"[A-Za-z0-9+/=\s]+")


class Reporter:
    """Adds findings, listing at most MAX_PER_RULE per rule and counting the rest."""

    def __init__(self, source: Source, ctx: Context) -> None:
        self.source, self.ctx = source, ctx
        self.counts: Counter[str] = Counter()
        self.inspected = 0  # unclaimed regions sniffed (see inspect_region)
        self.analysed = 0  # of those, analysed as nested files
        self.partial = False  # a bound stopped part of the analysis

    def limit(self, limit: str, message: str) -> None:
        """Report a bound hit once (a LIMIT-EXCEEDED finding); the artifact becomes PARTIAL."""
        if not self.partial:
            self.ctx.add(LIMIT_EXCEEDED.finding(self.ctx.location(self.source), message, limit=limit))
        self.partial = True

    def add(self, rule: Rule, message: str, *, offset: int | None = None, pointer: str | None = None,
            severity: Severity | None = None, **details: Any) -> None:
        self.counts[rule.id] += 1
        if self.counts[rule.id] <= MAX_PER_RULE:
            location = self.ctx.location(self.source, offset=offset, pointer=pointer)
            self.ctx.add(rule.finding(location, message, severity=severity, **details))

    def close(self, rules: tuple[Rule, ...]) -> None:
        for rule in rules:
            extra = self.counts[rule.id] - MAX_PER_RULE
            if extra > 0:
                self.ctx.add(rule.finding(self.ctx.location(self.source),
                                          f"{extra} more {rule.id} findings in this file were not listed",
                                          omitted=extra))


def pointer(key: str) -> str:
    """A JSON pointer (RFC 6901) to a top-level key."""
    return "/" + key.replace("~", "~0").replace("/", "~1")


def analyze(source: Source, ctx: Context) -> Outcome:
    """Check a safetensors file's header and layout; reads the header only, never tensor data."""
    with source.open() as fh:
        header = st.read_header(fh, source.size, ctx.limits)
    report = Reporter(source, ctx)
    if header.leading:
        report.add(NONSTANDARD_HEADER, f"the header starts with {header.leading} whitespace byte(s) before '{{'",
                   offset=8, leading=header.leading)
    for key in sorted(set(header.duplicates)):
        report.add(DUPLICATE_KEY, f"key {key!r} appears more than once in the header; loaders disagree on "
                   "which value wins", offset=8, key=key)

    specs: list[st.TensorSpec] = []
    for name, value in header.pairs:
        if name == st.METADATA_KEY:
            _check_metadata(value, report)
            continue
        spec = st.parse_tensor(name, value)
        if isinstance(spec, str):
            report.add(MALFORMED_TENSOR, f"tensor {name!r}: {spec}", offset=8, pointer=pointer(name), tensor=name)
            continue
        specs.append(spec)
        _check_tensor(spec, header, report)

    _check_layout(specs, header, source, ctx, report)
    report.close(RULES)
    status = ArtifactStatus.PARTIAL if report.partial else ArtifactStatus.ANALYZED
    return Outcome(FORMAT, status, note=f"{len(specs)} tensors")


def _check_tensor(spec: st.TensorSpec, header: st.RawHeader, report: Reporter) -> None:
    where: dict[str, Any] = {"offset": header.data_start + spec.begin, "pointer": pointer(spec.name)}
    if spec.dtype not in st.DTYPE_BITS:
        report.add(UNKNOWN_DTYPE, f"tensor {spec.name!r} has unknown dtype {spec.dtype!r}",
                   tensor=spec.name, dtype=spec.dtype, **where)
    else:
        expected = spec.expected_bytes()
        actual = spec.end - spec.begin
        if expected is None:
            report.add(MALFORMED_TENSOR, f"tensor {spec.name!r}: {spec.dtype} shape {list(spec.shape)} does not "
                       "fill a whole number of bytes", tensor=spec.name, **where)
        elif expected != actual:
            report.add(MALFORMED_TENSOR, f"tensor {spec.name!r} spans {actual} bytes but {spec.dtype} "
                       f"{list(spec.shape)} needs {expected}", tensor=spec.name, expected=expected,
                       actual=actual, **where)
    if spec.end > header.buffer_size:
        report.add(MALFORMED_TENSOR, f"tensor {spec.name!r} ends at {spec.end}, past the end of the "
                   f"{header.buffer_size}-byte data buffer", tensor=spec.name, end=spec.end,
                   buffer=header.buffer_size, **where)


def _check_layout(specs: list[st.TensorSpec], header: st.RawHeader, source: Source, ctx: Context,
                  report: Reporter) -> None:
    cursor = 0
    last = ""
    for spec in sorted((s for s in specs if s.end > s.begin), key=lambda s: (s.begin, s.end)):
        if spec.begin < cursor:
            report.add(OVERLAP, f"tensor {spec.name!r} [{spec.begin}, {spec.end}) overlaps {last!r} "
                       f"(which ends at {cursor})", offset=header.data_start + spec.begin,
                       pointer=pointer(spec.name), tensor=spec.name, other=last)
        elif spec.begin > cursor:
            start = min(cursor, header.buffer_size)
            length = min(spec.begin, header.buffer_size) - start
            if length > 0:
                kind, _ = inspect_region(source, ctx, header.data_start + start, length, f"gap@{start}", report)
                report.add(GAP, f"{length} bytes at buffer offset {start} belong to no tensor"
                           + (f" and look like {kind}" if kind else ""),
                           offset=header.data_start + start, length=length, content=kind or "unknown",
                           severity=Severity.HIGH if kind else None)
        if spec.end > cursor:
            cursor, last = spec.end, spec.name
    if cursor < header.buffer_size:
        length = header.buffer_size - cursor
        kind, _ = inspect_region(source, ctx, header.data_start + cursor, length, f"trailing@{cursor}", report)
        report.add(TRAILING_DATA, f"{length} bytes follow the last tensor"
                   + (f"; they look like {kind}" if kind else ""),
                   offset=header.data_start + cursor, length=length, content=kind or "unknown",
                   severity=Severity.HIGH if kind else None)


def inspect_region(source: Source, ctx: Context, start: int, length: int, member: str,
                   report: Reporter | None = None) -> tuple[str | None, bytes]:
    """Sniff ``length`` bytes at ``start`` of ``source``; analyse them as a nested file if executable.

    Returns the executable format's name (or ``None``) and the first bytes. Used for
    bytes that no tensor claims, in safetensors and GGUF files alike. With ``report``,
    at most ``max_inspected_regions`` regions are sniffed (then ``(None, b"")`` and a
    LIMIT-EXCEEDED finding) and ``max_analysed_regions`` analysed.
    """
    if report is not None:
        report.inspected += 1
        if report.inspected > ctx.limits.max_inspected_regions:
            report.limit("max_inspected_regions", f"more than {ctx.limits.max_inspected_regions} unclaimed regions; "
                         "the rest were not inspected")
            return None, b""
    with source.open() as fh:
        fh.seek(start)
        head = fh.read(min(length, HEAD_BYTES))
    try:
        fmt = sniff(head, member, length)
    except Exception:  # noqa: BLE001 - a sniffer bug must not hide the finding itself
        fmt = Format.UNKNOWN
    if fmt not in _EXECUTABLE:
        return None, head
    if report is not None:
        report.analysed += 1
        if report.analysed > ctx.limits.max_analysed_regions:
            report.limit("max_analysed_regions", f"more than {ctx.limits.max_analysed_regions} unclaimed regions hold "
                         "executable content; the rest were sniffed, not analysed")
            return fmt.value, head
    if length <= ctx.limits.in_memory_member_bytes and source.depth < ctx.limits.max_archive_depth:
        with source.open() as fh:
            fh.seek(start)
            data = fh.read(length)
        ctx.analyze(source.child(member, len(data), lambda: io.BytesIO(data)), hint=member)
    return fmt.value, head


def _check_metadata(value: Any, report: Reporter) -> None:
    where: dict[str, Any] = {"offset": 8, "pointer": pointer(st.METADATA_KEY)}
    if not isinstance(value, dict):
        report.add(BAD_METADATA, f"__metadata__ is a JSON {st.json_type(value)}, not an object", **where)
        return
    for key, item in value.items():
        at: dict[str, Any] = {"offset": 8, "pointer": pointer(st.METADATA_KEY) + pointer(key)}
        if not isinstance(item, str):
            report.add(BAD_METADATA, f"__metadata__[{key!r}] is a JSON {st.json_type(item)}, not a string",
                       key=key, **at)
            continue
        if key == "format" and item not in KNOWN_FORMATS:
            report.add(SUSPICIOUS_METADATA, f"__metadata__['format'] is {item[:80]!r}; expected one of "
                       f"{', '.join(sorted(KNOWN_FORMATS))}", key=key, value=item[:200], **at)
        blob = _serialized_blob(item)
        if blob:
            report.add(SUSPICIOUS_METADATA, f"__metadata__[{key!r}] holds a {blob}", key=key,
                       severity=Severity.HIGH, content=blob, **at)
        elif len(item) > LARGE_METADATA_VALUE:
            report.add(SUSPICIOUS_METADATA, f"__metadata__[{key!r}] is {len(item)} characters long",
                       key=key, length=len(item), **at)
        elif _CONTROL.search(item):
            report.add(SUSPICIOUS_METADATA, f"__metadata__[{key!r}] contains control characters",
                       key=key, value=item[:200], **at)


_MAGIC = ((b"\x80", "pickle"), (b"PK\x03\x04", "zip archive"), (b"\x1f\x8b", "gzip stream"),
          (b"\x93NUMPY", "numpy array"))


def _serialized_blob(text: str) -> str | None:
    """Name the serialised object ``text`` holds (raw or base64), if any."""
    raw = text[:64].encode("latin-1", "replace")  # JSON escapes like \u0080 stand for bytes
    for magic, name in _MAGIC:
        if raw.startswith(magic) and (magic != b"\x80" or raw[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05")):
            return name
    head = text[:64].strip()
    if len(head) >= 16 and _BASE64.fullmatch(head):
        try:
            decoded = base64.b64decode(head[: len(head) // 4 * 4], validate=False)
        except (binascii.Error, ValueError):
            return None
        for magic, name in _MAGIC:
            if decoded.startswith(magic) and (magic != b"\x80" or decoded[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05")):
                return f"base64-encoded {name}"
    return None
