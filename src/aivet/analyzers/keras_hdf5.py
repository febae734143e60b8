"""Keras 2 HDF5 models (``.h5``): parsed by :mod:`aivet.formats.hdf5`, never by libhdf5.

Keras 2 keeps ``model_config`` and ``training_config`` as JSON string attributes on the root
group; every JSON string attribute of every object is decoded and checked with
:func:`aivet.analyzers.keras.check_keras_config`. The reader also reports what makes
libhdf5 open other files or load native code (external links, external storage, virtual
datasets, filter plugins) and datasets that declare far more data than the file holds. Only
when the structure cannot be read are the bytes scanned for configs instead
(:func:`find_json_configs`), and the file is then reported as partially analysed.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import replace
from typing import BinaryIO

from aivet import rules
from aivet.analyzers import paths
from aivet.analyzers.context import Context
from aivet.analyzers.engine import Outcome
from aivet.analyzers.keras import UNREADABLE_CONFIG, check_keras_config, pointer_token
from aivet.analyzers.source import Source
from aivet.evidence import ArtifactStatus, Severity
from aivet.formats import FormatError, LimitExceeded, hdf5
from aivet.rules import ATLAS_SUPPLY_CHAIN_MODEL, ATLAS_UNSAFE_ARTIFACTS, Rule

HDF5_EXTERNAL_LINK = Rule(
    "HDF5-EXTERNAL-LINK",
    "HDF5 external link makes the loader open another file",
    "A group member is an external link: a file name and a path in that file. h5py and Keras open "
    "that file when the member is read (the weights group, a layer, a soft link leading through it), "
    "so its contents stand in for this file's. High when the file name is absolute, has a '..' "
    "component or resolves outside the model directory (reads any HDF5 file the loader can, e.g. to "
    "leak it through the weights); medium when it cannot be checked (inside an archive it resolves "
    "against the loader's working directory) or the file is missing; low when it is a file of the "
    "repository (scanned on its own).",
    Severity.HIGH,
    (ATLAS_UNSAFE_ARTIFACTS, ATLAS_SUPPLY_CHAIN_MODEL),
    ("CWE-22", "CWE-73"),
)
HDF5_EXTERNAL_STORAGE = Rule(
    "HDF5-EXTERNAL-STORAGE",
    "HDF5 dataset reads its data from another file",
    "A dataset keeps its raw data in external files named by path (the external data files message), "
    "or is a virtual dataset mapping datasets of other HDF5 files. Reading the weights reads those "
    "bytes, whatever the file is: an absolute or '..' path, or one "
    "resolving outside the model directory, is an arbitrary file read into a tensor (high; cf. ONNX "
    "external data). Medium when it cannot be checked or is missing, low inside the repository.",
    Severity.HIGH,
    (ATLAS_UNSAFE_ARTIFACTS,),
    ("CWE-22", "CWE-73"),
)
HDF5_OVERSIZED_DATASET = Rule(
    "HDF5-OVERSIZED-DATASET",
    "HDF5 dataset declares far more data than the file holds",
    "A dataset's shape and type declare at least 1 GiB and more than 16 times the file's size. h5py "
    "and Keras allocate the whole declared array when a weight is read (chunks never written are "
    "filled in memory), so a small file can exhaust the loader's memory (CVE-2026-0897: a "
    "model.weights.h5 in a .keras archive). Weights that large are normally stored, not declared.",
    Severity.MEDIUM,
    (ATLAS_UNSAFE_ARTIFACTS,),
    ("CWE-400", "CWE-770"),
)
HDF5_FILTER_PLUGIN = Rule(
    "HDF5-FILTER-PLUGIN",
    "HDF5 dataset needs a filter plugin: native code the file does not carry",
    "A dataset's filter pipeline names a filter libhdf5 does not have built in (deflate, shuffle, "
    "fletcher32, szip, nbit and scaleoffset are; h5py registers its own LZF). Reading the dataset makes "
    "libhdf5 search its plugin directories (HDF5_PLUGIN_PATH, else a compiled-in default) and load the "
    "shared library that registers that filter id: the model needs native code it does not carry, and "
    "whatever library sits in the loader's plugin path runs. Common for compressed weights (Blosc, LZ4, "
    "Zstandard, bitshuffle through hdf5plugin); make sure the plugin path holds only trusted builds.",
    Severity.LOW,
    (ATLAS_SUPPLY_CHAIN_MODEL,),
    ("CWE-427", "CWE-829"),
)

RULES = (HDF5_EXTERNAL_LINK, HDF5_EXTERNAL_STORAGE, HDF5_OVERSIZED_DATASET, HDF5_FILTER_PLUGIN)

_CONFIG_START = re.compile(rb'\{\s*"(?:class_name|module)"\s*:')
_CHUNK = 1024 * 1024
_OVERLAP = 64
_MAX_CONFIGS = 1000  # candidate JSON objects per file; Keras writes two


def find_json_configs(stream: BinaryIO, size: int, max_bytes: int) -> list[tuple[int, bytes | None]]:
    """Locate JSON objects starting with ``{"class_name"`` or ``{"module"`` in a byte stream.

    Returns ``(offset, text)`` per object; ``text`` is ``None`` when the
    object is not closed within ``max_bytes`` (or before the end of the file).
    Objects nested inside an earlier one are not returned separately, and
    scanning resumes after the bytes already examined, so the work stays
    linear in the file size. Memory is bounded by ``max_bytes``.
    """
    found: list[tuple[int, bytes | None]] = []
    pos = 0
    while pos < size and len(found) < _MAX_CONFIGS:
        stream.seek(pos)
        chunk = stream.read(_CHUNK)
        if not chunk:
            break
        m = _CONFIG_START.search(chunk)
        if m is None:
            if len(chunk) < _CHUNK:
                break
            pos += len(chunk) - _OVERLAP
            continue
        start = pos + m.start()
        stream.seek(start)
        text, consumed = _balanced(stream, max_bytes)
        found.append((start, text))
        pos = start + max(consumed, 1)
    return found


_JSON_SPECIAL = re.compile(rb'["\\{}\[\]]')


def _balanced(stream: BinaryIO, max_bytes: int) -> tuple[bytes | None, int]:
    """Read one balanced JSON object (string- and escape-aware); return it and the bytes examined."""
    buf = bytearray()
    depth = 0
    in_string = False
    skip = 0  # index in the current block before which matches are escaped characters
    while len(buf) < max_bytes:
        block = stream.read(min(64 * 1024, max_bytes - len(buf)))
        if not block:
            return None, len(buf)
        for m in _JSON_SPECIAL.finditer(block):
            i = m.start()
            if i < skip:
                continue
            byte = block[i]
            if in_string:
                if byte == 0x5C:
                    skip = i + 2
                elif byte == 0x22:
                    in_string = False
            elif byte == 0x22:
                in_string = True
            elif byte == 0x7B or byte == 0x5B:
                depth += 1
            elif byte == 0x7D or byte == 0x5D:
                depth -= 1
                if depth <= 0:
                    buf += block[: i + 1]
                    return bytes(buf), len(buf)
        skip = max(0, skip - len(block))
        buf += block
    return None, len(buf)


_KERAS_ATTRIBUTES = ("model_config", "training_config")  # what Keras 2 load_model json-decodes
_BOM = b"\xef\xbb\xbf"
_MAX_PROBLEM_FINDINGS = 20  # unreadable parts reported one by one; the rest are counted in one finding


def analyze_hdf5(source: Source, ctx: Context) -> Outcome:
    """Check an HDF5 file's attributes for Keras configs, parsing its structure in pure Python.

    Every string attribute of the root group and of the objects reachable from it that
    holds JSON is decoded with :func:`json.loads` (so ``\\u`` escapes, dense attribute
    storage, variable-length strings and continuation blocks make no difference) and
    checked as a Keras config. When the structure cannot be read completely the file is
    PARTIAL, each problem is a finding, and the bytes are also scanned for configs.
    """
    limits = replace(hdf5.HDF5_LIMITS, max_value_bytes=ctx.limits.max_string_bytes,
                     max_objects=ctx.limits.max_hdf5_objects, max_messages=ctx.limits.max_hdf5_messages,
                     max_read_bytes=ctx.limits.max_hdf5_metadata_bytes)
    with source.open() as fh:
        if hdf5.superblock_offset(fh, source.size) is None:
            raise FormatError("missing HDF5 superblock signature", 0)
        try:
            contents = hdf5.read_attributes(fh, source.size, limits)
        except (FormatError, LimitExceeded) as exc:
            _structure_problem(exc, source, ctx)
            found = _byte_scan(fh, source, ctx, set())
            return Outcome("keras-hdf5" if found else "hdf5", ArtifactStatus.PARTIAL,
                           f"HDF5 structure not parsed ({str(exc)[:200]}); byte-scan fallback located "
                           f"{found} Keras config(s)")
        configs, checked, complete = _check_attributes(contents, source, ctx)
        _check_external(contents, source, ctx)
        _check_filters(contents, source, ctx)
        note = (f"structure parsed (superblock v{contents.superblock_version}, {contents.objects} object(s), "
                f"{len(contents.attributes)} attribute(s)); {configs} Keras config(s) read from attributes")
        for problem in contents.problems[:_MAX_PROBLEM_FINDINGS]:
            _report_problem(problem, source, ctx)
        if len(contents.problems) > _MAX_PROBLEM_FINDINGS:
            ctx.add(rules.PARSE_ERROR.finding(
                ctx.location(source), f"{len(contents.problems) - _MAX_PROBLEM_FINDINGS} more unreadable HDF5 "
                "part(s) not listed", format="hdf5", more=len(contents.problems) - _MAX_PROBLEM_FINDINGS))
        if contents.problems:
            found = _byte_scan(fh, source, ctx, checked)
            configs += found
            note += (f"; {len(contents.problems)} part(s) unreadable, byte-scan fallback located "
                     f"{found} more config(s)")
            complete = False
    status = ArtifactStatus.ANALYZED if complete else ArtifactStatus.PARTIAL
    version = next((a.value for a in contents.attributes
                    if a.path == "/" and a.name == "keras_version" and isinstance(a.value, bytes)), None)
    if version is not None:
        note += f"; keras_version {version[:40].decode('utf-8', 'replace')}"
    return Outcome("keras-hdf5" if configs else "hdf5", status, note)


def _check_attributes(contents: hdf5.Hdf5Contents, source: Source,
                      ctx: Context) -> tuple[int, set[bytes], bool]:
    """Check every JSON string attribute; return (Keras configs, digests of checked texts, complete)."""
    configs = 0
    checked: set[bytes] = set()
    complete = True
    for attr in contents.attributes:
        pointer = f"{attr.path.rstrip('/')}/@{pointer_token(attr.name)}"
        keras_attr = attr.name in _KERAS_ATTRIBUTES
        texts = _texts(attr.value)
        if keras_attr and not texts:
            ctx.add(UNREADABLE_CONFIG.finding(
                ctx.location(source, offset=attr.offset, pointer=pointer),
                f"{attr.name} attribute on {attr.path} is a {attr.type_class} value, not a JSON string",
                type_class=attr.type_class))
            complete = False
        for index, text in texts:
            where = pointer if index is None else f"{pointer}/{index}"
            body = text.strip()
            if body.startswith(_BOM):
                body = body[len(_BOM):].lstrip()
            if not body.startswith((b"{", b"[")) and not keras_attr:
                continue
            try:
                doc = json.loads(body)
            except (ValueError, RecursionError) as exc:
                if keras_attr or _CONFIG_START.match(body):
                    ctx.add(UNREADABLE_CONFIG.finding(
                        ctx.location(source, offset=attr.offset, pointer=where),
                        f"{attr.name} attribute on {attr.path} is not valid JSON: {exc}"))
                    complete = False
                continue
            checked.add(hashlib.sha256(body).digest())
            check_keras_config(doc, source, ctx, where, offset=attr.offset)
            if keras_attr or (isinstance(doc, dict) and ("class_name" in doc or "module" in doc)):
                configs += 1
    return configs, checked, complete


def _check_external(contents: hdf5.Hdf5Contents, source: Source, ctx: Context) -> None:
    """Report external links (with the soft links that lead through them), data kept in other files and
    datasets declaring far more data than the file holds."""
    via: dict[str, list[str]] = {}
    for link in contents.links:
        if link.kind == hdf5.SOFT and link.through is not None:
            via.setdefault(link.through, []).append(link.path)
    reported = 0
    for link in contents.links:
        if link.kind != hdf5.EXTERNAL or link.file is None:
            continue
        reported += 1
        if reported > ctx.limits.max_findings_per_file:
            break
        severity, why = paths.reference_verdict(link.file, source.fs_path, ctx.root)
        soft = via.get(link.path, [])
        note = f"; soft link(s) {', '.join(soft[:5])} lead through it" if soft else ""
        ctx.add(HDF5_EXTERNAL_LINK.finding(
            ctx.location(source, offset=link.offset, pointer=link.path),
            f"{link.path} is an external link to {link.target[:200]!r} in file {link.file[:200]!r} ({why}){note}",
            severity=severity, file=link.file[:1000], target=link.target[:1000], soft_links=soft[:50]))
    oversized = [d for d in contents.datasets
                 if d.nbytes >= _OVERSIZED_BYTES and d.nbytes > _OVERSIZED_RATIO * max(source.size, 1)]
    for dataset in oversized[:ctx.limits.max_findings_per_file]:
        ctx.add(HDF5_OVERSIZED_DATASET.finding(
            ctx.location(source, offset=dataset.offset, pointer=dataset.path),
            f"dataset {dataset.path} declares {dataset.nbytes} bytes (shape {dataset.shape}) in a file of "
            f"{source.size} bytes", shape=list(dataset.shape or ()), nbytes=dataset.nbytes,
            element_size=dataset.element_size))
    seen: set[tuple[str, str, str]] = set()
    for ext in contents.external_storage:
        if (ext.path, ext.file, ext.kind) in seen:
            continue  # a virtual dataset maps many regions of one source file
        seen.add((ext.path, ext.file, ext.kind))
        if len(seen) > ctx.limits.max_findings_per_file:
            break
        severity, why = paths.reference_verdict(ext.file, source.fs_path, ctx.root)
        if ext.kind == "virtual":
            message = (f"virtual dataset {ext.path} maps dataset {(ext.source_dataset or '')[:200]!r} of file "
                       f"{ext.file[:200]!r} ({why})")
        else:
            message = f"dataset {ext.path} reads {ext.size} bytes of its data from file {ext.file[:200]!r} ({why})"
        ctx.add(HDF5_EXTERNAL_STORAGE.finding(
            ctx.location(source, offset=ext.offset, pointer=ext.path), message, severity=severity,
            file=ext.file[:1000], kind=ext.kind, file_offset=ext.file_offset, size=ext.size,
            source_dataset=(ext.source_dataset or "")[:1000]))


_OVERSIZED_BYTES = 1 << 30
_OVERSIZED_RATIO = 16


# Filters libhdf5 has built in (deflate, shuffle, fletcher32, szip, nbit, scaleoffset), and LZF, which h5py
# (the reader Keras uses) registers from its own code when imported: none of them is looked up as a plugin.
_BUILTIN_FILTERS = frozenset({1, 2, 3, 4, 5, 6, 32000})
# A few filter ids registered with The HDF Group, named in findings.
_FILTER_NAMES = {305: "LZO", 307: "bzip2", 32001: "Blosc", 32004: "LZ4", 32008: "bitshuffle", 32013: "zfp",
                 32015: "Zstandard", 32017: "SZ", 32026: "Blosc2"}


def _check_filters(contents: hdf5.Hdf5Contents, source: Source, ctx: Context) -> None:
    """One finding per filter id libhdf5 would load from a plugin library, naming the datasets that need it."""
    needs: dict[int, list[tuple[hdf5.FilterPipeline, hdf5.Filter]]] = {}
    for pipeline in contents.filter_pipelines:
        for used in pipeline.filters:
            if used.filter_id not in _BUILTIN_FILTERS:
                needs.setdefault(used.filter_id, []).append((pipeline, used))
    for filter_id, uses in sorted(needs.items())[:ctx.limits.max_findings_per_file]:
        first, used = min(uses, key=lambda use: use[0].path)
        name = _FILTER_NAMES.get(filter_id, "")
        datasets = sorted({pipeline.path for pipeline, _ in uses})
        shown = ", ".join(datasets[:5]) + (f" and {len(datasets) - 5} more" if len(datasets) > 5 else "")
        ctx.add(HDF5_FILTER_PLUGIN.finding(
            ctx.location(source, offset=first.offset, pointer=first.path),
            f"filter {filter_id}{f' ({name})' if name else ''} is not built into libhdf5: reading {shown} loads it "
            "from a plugin library", filter_id=filter_id, filter_name=name, stored_name=used.name,
            optional=all(f.optional for _, f in uses), datasets=datasets[:50], count=len(datasets)))


def _texts(value: hdf5.Value) -> list[tuple[int | None, bytes]]:
    """The strings of an attribute value: ``(None, s)`` for a scalar, ``(i, s)`` for array items."""
    if isinstance(value, bytes):
        return [(None, value)]
    if isinstance(value, tuple):
        return [(i, v) for i, v in enumerate(value) if isinstance(v, bytes)]
    return []


def _structure_problem(exc: FormatError | LimitExceeded, source: Source, ctx: Context) -> None:
    loc = ctx.location(source, offset=exc.offset)
    if isinstance(exc, LimitExceeded):
        ctx.add(rules.LIMIT_EXCEEDED.finding(loc, f"HDF5 structure not read: {exc}", limit=_limit_name(exc.limit)))
    else:
        ctx.add(rules.PARSE_ERROR.finding(loc, f"HDF5 structure could not be parsed: {exc}; only a byte scan "
                                               "for Keras configs was done", format="hdf5"))


def _report_problem(problem: hdf5.Problem, source: Source, ctx: Context) -> None:
    pointer = f"{problem.path.rstrip('/')}/@{pointer_token(problem.attribute)}" if problem.attribute else problem.path
    loc = ctx.location(source, offset=problem.offset, pointer=pointer)
    message = f"HDF5 object {problem.path}: {problem.message}"
    if problem.kind == hdf5.OVER_LIMIT:
        ctx.add(rules.LIMIT_EXCEEDED.finding(loc, message, limit=_limit_name(problem.limit or "")))
    elif problem.kind == hdf5.UNSUPPORTED:
        ctx.add(rules.UNSUPPORTED.finding(loc, message, format="hdf5"))
    else:
        ctx.add(rules.PARSE_ERROR.finding(loc, message, format="hdf5"))


def _limit_name(limit: str) -> str:
    """The Limits field behind an Hdf5Limits field, where there is one (the others are fixed bounds)."""
    return _LIMITS_FIELDS.get(limit, f"hdf5.{limit}")


_LIMITS_FIELDS = {"max_value_bytes": "max_string_bytes", "max_objects": "max_hdf5_objects",
                  "max_messages": "max_hdf5_messages", "max_read_bytes": "max_hdf5_metadata_bytes"}


def _byte_scan(stream: BinaryIO, source: Source, ctx: Context, checked: set[bytes]) -> int:
    """Fallback: configs located by scanning the bytes; those already checked are skipped."""
    found = 0
    for offset, text in find_json_configs(stream, source.size, ctx.limits.max_string_bytes):
        if text is None:
            ctx.add(rules.LIMIT_EXCEEDED.finding(
                ctx.location(source, offset=offset),
                f"JSON object at offset {offset} is not closed within max_string_bytes", limit="max_string_bytes"))
            continue
        if hashlib.sha256(text).digest() in checked:
            continue
        try:
            doc = json.loads(text)
        except (ValueError, RecursionError) as exc:
            ctx.add(UNREADABLE_CONFIG.finding(ctx.location(source, offset=offset),
                                              f"Keras-like config at offset {offset} is not valid JSON: {exc}"))
            continue
        found += 1
        check_keras_config(doc, source, ctx, offset=offset)
    return found


__all__ = ["RULES", "analyze_hdf5", "find_json_configs"]
