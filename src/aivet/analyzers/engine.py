"""The scan engine: walk a repository, sniff each file, dispatch to its analyzer, fail closed."""

from __future__ import annotations

import importlib
import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

from aivet import rules
from aivet.analyzers.context import Context
from aivet.analyzers.source import Source
from aivet.evidence import ArtifactStatus, Severity
from aivet.formats import FormatError, LimitExceeded
from aivet.formats.sniff import (
    HEAD_BYTES,
    Format,
    extension,
    hdf5_superblock_offset,
    is_model_extension,
    sniff,
    zip_directory_offset,
)


@dataclass(frozen=True)
class Outcome:
    """What an analyzer reports about the source it read."""

    format: str
    status: ArtifactStatus = ArtifactStatus.ANALYZED
    note: str = ""


class Analyzer(Protocol):
    def __call__(self, source: Source, ctx: Context, /) -> Outcome: ...


# Format -> (module, function). Explicit and exhaustive (a test checks every Format is here);
# modules are imported on first use so that start-up stays quick.
ANALYZERS: dict[Format, tuple[str, str]] = {
    Format.PICKLE: ("aivet.analyzers.pickle", "analyze"),
    Format.NUMPY: ("aivet.analyzers.numpy", "analyze"),
    Format.ZIP: ("aivet.analyzers.archive", "analyze_zip"),
    Format.TAR: ("aivet.analyzers.archive", "analyze_tar"),
    Format.GZIP: ("aivet.analyzers.archive", "analyze_compressed"),
    Format.BZIP2: ("aivet.analyzers.archive", "analyze_compressed"),
    Format.XZ: ("aivet.analyzers.archive", "analyze_compressed"),
    Format.ZLIB: ("aivet.analyzers.archive", "analyze_compressed"),
    Format.LZ4: ("aivet.analyzers.archive", "analyze_compressed"),
    Format.SEVENZIP: ("aivet.analyzers.archive", "analyze_7z"),
    Format.HDF5: ("aivet.analyzers.keras_hdf5", "analyze_hdf5"),
    Format.GGUF: ("aivet.analyzers.gguf", "analyze"),
    Format.SAFETENSORS: ("aivet.analyzers.safetensors", "analyze"),
    Format.PROTOBUF: ("aivet.analyzers.protobuf", "analyze"),
    Format.PYTHON: ("aivet.analyzers.pycode", "analyze"),
    Format.JSON: ("aivet.analyzers.config", "analyze"),
    Format.JINJA: ("aivet.analyzers.template", "analyze_file"),
    Format.YAML: ("aivet.analyzers.yaml_config", "analyze"),
    Format.TEXT: ("aivet.analyzers.secrets", "analyze_text"),
    Format.COMPILED_CODE: ("aivet.analyzers.native", "analyze"),
    Format.BENIGN_BINARY: ("aivet.analyzers.engine", "analyze_benign"),
    Format.EMPTY: ("aivet.analyzers.engine", "analyze_empty"),
    Format.UNKNOWN: ("aivet.analyzers.engine", "analyze_unknown"),
}

# Names that promise a data-only format: executable content behind them is an evasion.
_DATA_ONLY_EXTENSIONS = {
    ".safetensors": {Format.SAFETENSORS},
    ".gguf": {Format.GGUF},
    ".npy": {Format.NUMPY},
    ".onnx": {Format.PROTOBUF},
    ".json": {Format.JSON, Format.TEXT},
    ".txt": {Format.TEXT, Format.JSON},
    ".md": {Format.TEXT},
    ".png": {Format.BENIGN_BINARY},
    ".jpg": {Format.BENIGN_BINARY},
}
_EXECUTABLE_FORMATS = {Format.PICKLE, Format.ZIP, Format.TAR, Format.GZIP, Format.BZIP2, Format.XZ,
                       Format.ZLIB, Format.LZ4, Format.SEVENZIP, Format.PYTHON, Format.HDF5, Format.COMPILED_CODE}


def _analyzer(fmt: Format) -> Analyzer:
    module, name = ANALYZERS[fmt]
    fn: Analyzer = getattr(importlib.import_module(module), name)
    return fn


def analyze_source(source: Source, ctx: Context, *, hint: str | None = None) -> ArtifactStatus:
    """Sniff ``source``, run its analyzer and record the artifact. Bad input becomes findings.

    A file is sniffed by its first bytes, but two kinds of container are found elsewhere by the
    libraries that open them: HDF5 after a user block (libhdf5 looks at 512, 1024, 2048 ...) and
    zip from its end (Python's zipfile, which Keras uses, allows any prefix). A file whose first
    bytes match nothing is analysed as the container found further in; a file that is one format
    from its first byte *and* such a container is a polyglot, analysed both ways.
    """
    fmt = Format.UNKNOWN
    try:
        with source.open() as fh:
            head = fh.read(HEAD_BYTES)
            fmt = sniff(head, hint or source.name, source.size)
            inner = _inner_containers(fh, head, source.size, fmt)
    except Exception as exc:  # noqa: BLE001 - an unreadable file (or member) is a finding, never a traceback
        why = exc.strerror or str(exc) if isinstance(exc, OSError) else f"{type(exc).__name__}: {exc}"
        ctx.add(rules.PARSE_ERROR.finding(ctx.location(source), f"cannot read: {why}", format=fmt.value))
        ctx.record(source, fmt.value, ArtifactStatus.ERROR, why)
        return ArtifactStatus.ERROR
    if inner and fmt in (Format.UNKNOWN, Format.BENIGN_BINARY):
        fmt, _ = inner.pop(0)  # e.g. an HDF5 file with a user block: that is what a loader opens
    outcome = _run(fmt, source, ctx)
    for face, offset in inner:
        ctx.add(rules.POLYGLOT.finding(
            ctx.location(source, offset=offset),
            f"{fmt.value} from its first byte, and a {face.value} container at offset {offset}",
            format=fmt.value, also=face.value, offset=offset))
        second = _run(face, source, ctx)
        worst = max(outcome.status, second.status, key=_STATUS_ORDER.index)
        outcome = Outcome(outcome.format, worst,
                          "; ".join(filter(None, (outcome.note, f"also {face.value}: {second.note or second.format}"))))
    ctx.record(source, outcome.format, outcome.status, outcome.note)
    return outcome.status


_STATUS_ORDER = (ArtifactStatus.SKIPPED, ArtifactStatus.ANALYZED, ArtifactStatus.PARTIAL, ArtifactStatus.UNSUPPORTED,
                 ArtifactStatus.ERROR)
# Formats nobody opens as a zip or HDF5 file: text is parsed by its own readers.
_TEXT_FORMATS = frozenset({Format.TEXT, Format.JSON, Format.PYTHON, Format.JINJA, Format.EMPTY})


def _inner_containers(fh: BinaryIO, head: bytes, size: int, fmt: Format) -> list[tuple[Format, int]]:
    """Containers a loader would find in this file other than at its first byte: (format, offset)."""
    if fmt in _TEXT_FORMATS:
        return []
    found: list[tuple[Format, int]] = []
    if fmt is not Format.HDF5 and (at := hdf5_superblock_offset(fh, size, head)) is not None:
        found.append((Format.HDF5, at))  # not at 0: the head would have sniffed as HDF5
    if fmt is not Format.ZIP and (at := zip_directory_offset(fh, size)) is not None:
        found.append((Format.ZIP, at))
    return found


def _run(fmt: Format, source: Source, ctx: Context) -> Outcome:
    """Run the analyzer for ``fmt``: whatever goes wrong becomes a finding and the outcome's status."""
    try:
        _check_extension(source, fmt, ctx)
        return _analyzer(fmt)(source, ctx)
    except LimitExceeded as exc:
        ctx.add(rules.LIMIT_EXCEEDED.finding(
            ctx.location(source, offset=exc.offset), f"{exc} (limit: {exc.limit})", limit=exc.limit))
        return Outcome(fmt.value, ArtifactStatus.PARTIAL, str(exc))
    except FormatError as exc:
        ctx.add(rules.PARSE_ERROR.finding(
            ctx.location(source, offset=exc.offset), f"cannot parse as {fmt.value}: {exc}", format=fmt.value))
        return Outcome(fmt.value, ArtifactStatus.ERROR, str(exc))
    except (RecursionError, MemoryError) as exc:
        ctx.add(rules.LIMIT_EXCEEDED.finding(
            ctx.location(source), f"{type(exc).__name__} while parsing {fmt.value}", limit="python"))
        return Outcome(fmt.value, ArtifactStatus.ERROR, type(exc).__name__)
    except OSError as exc:
        ctx.add(rules.PARSE_ERROR.finding(
            ctx.location(source), f"cannot read: {exc.strerror or exc}", format=fmt.value))
        return Outcome(fmt.value, ArtifactStatus.ERROR, str(exc))
    except Exception as exc:  # noqa: BLE001 - fail closed on any reader bug, never a traceback
        ctx.add(rules.PARSE_ERROR.finding(
            ctx.location(source),
            f"internal error while parsing {fmt.value}: {type(exc).__name__}: {exc}",
            format=fmt.value, internal=True))
        return Outcome(fmt.value, ArtifactStatus.ERROR, f"{type(exc).__name__}: {exc}")


def _check_extension(source: Source, fmt: Format, ctx: Context) -> None:
    expected = _DATA_ONLY_EXTENSIONS.get(extension(source.name))
    if expected and fmt not in expected and fmt in _EXECUTABLE_FORMATS:
        ctx.add(rules.NAME_MISMATCH.finding(
            ctx.location(source),
            f"named {extension(source.name)} but the content is {fmt.value}",
            severity=Severity.HIGH if fmt is Format.PICKLE else None,
            extension=extension(source.name), content=fmt.value))


def analyze_benign(source: Source, ctx: Context) -> Outcome:
    return Outcome(Format.BENIGN_BINARY.value)


def analyze_empty(source: Source, ctx: Context) -> Outcome:
    return Outcome(Format.EMPTY.value)


def analyze_unknown(source: Source, ctx: Context) -> Outcome:
    model_like = is_model_extension(source.name)
    severity = Severity.HIGH if (ctx.strict or model_like) else None
    why = "named like a model file but matches no known format" if model_like else "matches no known format"
    ctx.add(rules.UNKNOWN_FORMAT.finding(ctx.location(source), f"binary content {why}; not analysed",
                                         severity=severity))
    return Outcome(Format.UNKNOWN.value, ArtifactStatus.UNSUPPORTED, why)


# ---------------------------------------------------------------------------------------------
# Walking a directory
# ---------------------------------------------------------------------------------------------

def display_name(raw: str) -> str:
    """A printable, JSON-safe form of a file name that may not be valid UTF-8."""
    return raw.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def iter_files(top: Path, allowed_root: Path, ctx: Context) -> Iterator[tuple[Path, str]]:
    """Yield ``(path, display)`` for every regular file under ``top``.

    Symbolic links are followed only when they resolve inside ``allowed_root``
    (a Hugging Face snapshot links into its repository's ``blobs/``); links
    that leave it are reported and not read. ``.git`` is noted, not read.
    """
    allowed = allowed_root.resolve()
    count = 0
    stack: list[tuple[Path, str]] = [(top, "")]
    while stack:
        directory, prefix = stack.pop()
        try:
            entries = sorted(os.scandir(directory), key=lambda e: e.name)
        except OSError as exc:
            ctx.add(rules.PARSE_ERROR.finding(prefix or ".", f"cannot list directory: {exc.strerror or exc}"))
            continue
        for entry in entries:
            display = prefix + display_name(entry.name)
            path = Path(entry.path)
            if entry.is_dir(follow_symlinks=False):
                if entry.name == ".git":
                    ctx.record(Source(display, 0, _no_open), "git-metadata", ArtifactStatus.SKIPPED,
                               "version-control metadata is not loaded by model loaders")
                    continue
                stack.append((path, display + "/"))
                continue
            if entry.is_symlink():
                try:
                    target = path.resolve(strict=True)
                except (OSError, RuntimeError):
                    target = None
                if target is None or not target.is_relative_to(allowed):
                    ctx.add(rules.SYMLINK_ESCAPE.finding(
                        display, f"symbolic link to {display_name(os.readlink(entry.path))} leaves the repository",
                        target=display_name(os.readlink(entry.path))))
                    ctx.record(Source(display, 0, _no_open), "symlink", ArtifactStatus.SKIPPED, "link leaves the repository")
                    continue
                if target.is_dir():
                    continue  # the directory is scanned under its real name
                file_path = target
            else:
                try:
                    mode = entry.stat(follow_symlinks=False).st_mode
                except OSError:
                    continue
                if not stat.S_ISREG(mode):
                    ctx.record(Source(display, 0, _no_open), "special-file", ArtifactStatus.SKIPPED,
                               "not a regular file")
                    continue
                file_path = path
            count += 1
            if count > ctx.limits.max_files:
                ctx.add(rules.LIMIT_EXCEEDED.finding(
                    ".", f"more than {ctx.limits.max_files} files; the rest were not scanned", limit="max_files"))
                return
            yield file_path, display


def _no_open() -> BinaryIO:
    raise OSError("not readable")


def scan_files(files: list[tuple[Path, str]], ctx: Context,
               progress: Callable[[str, int], None] | None = None) -> None:
    for fs_path, display in files:
        try:
            source = Source.from_file(fs_path, display)
        except OSError as exc:
            ctx.add(rules.PARSE_ERROR.finding(display, f"cannot read: {exc.strerror or exc}"))
            continue
        ctx.analyze(source)
        if progress is not None:
            progress(display, source.size)
