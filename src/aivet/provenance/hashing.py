"""Fast, bounded hashing of a model directory: per file or per shard, on every core.

Why threads and not processes: ``hashlib`` (OpenSSL) and ``blake3`` release
the GIL for large updates, so a thread pool reading big chunks reaches
the machine's hashing limit without process start-up or pickling costs, and
2,000 small files do not pay for a process pool. Memory is bounded by
``workers * buffer_size`` whatever the file sizes.

Units of work are :class:`Unit` (a whole file, or a ``[start, end)`` shard of
one, as the OpenSSF Model Signing specification names them ``path:start:end``).
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

from aivet.errors import ArtifactError, EnvironmentFailure, MissingExtraError, UsageError

MiB = 1024 * 1024
DEFAULT_BUFFER = 4 * MiB  # big enough to amortise syscalls, small enough to stay in L2/L3
DEFAULT_SHARD_SIZE = 1_000_000_000  # the specification's default shard size
ALGORITHMS = ("sha256", "blake2b", "blake3")
# Units up to this size are hashed by the calling thread (a thread hand-off costs more than hashing them).
_SMALL_FILE = 256 * 1024
_BLAKE3_BUFFER = 16 * MiB

ProgressFn = Callable[[int], None]


class _Hasher(Protocol):
    def update(self, data: bytes | memoryview, /) -> object: ...

    def digest(self) -> bytes: ...


def new_hasher(algorithm: str, *, threads: int = 1) -> _Hasher:
    """A fresh streaming hasher for ``algorithm`` (``sha256``, ``blake2b`` or ``blake3``).

    ``threads`` > 1 lets BLAKE3 (a tree hash) spread one large update over
    several cores; SHA-256 and BLAKE2b are sequential and ignore it.
    """
    if algorithm == "sha256":
        return hashlib.sha256()
    if algorithm == "blake2b":
        return hashlib.blake2b()
    if algorithm == "blake3":
        try:
            import blake3  # lazy: only BLAKE3 users pay for the import
        except ImportError as exc:
            raise MissingExtraError("blake3", "blake3", "BLAKE3 hashing") from exc
        hasher: _Hasher = blake3.blake3(max_threads=threads if threads > 1 else 1)
        return hasher
    raise UsageError(f"unknown hash algorithm {algorithm!r}; expected one of: {', '.join(ALGORITHMS)}")


@dataclass(frozen=True)
class FileEntry:
    """A regular file of the model, with the stat facts the digest cache keys on."""

    name: str  # POSIX path relative to the model root, as the manifest spells it
    path: Path
    size: int
    mtime_ns: int
    ctime_ns: int
    inode: int
    device: int


@dataclass(frozen=True)
class Unit:
    """One thing to hash: a whole file (``start is None``) or the shard ``[start, end)``."""

    entry: FileEntry
    start: int | None = None
    end: int | None = None

    @property
    def name(self) -> str:
        """The resource name used in a manifest (``path`` or ``path:start:end``)."""
        if self.start is None:
            return self.entry.name
        return f"{self.entry.name}:{self.start}:{self.end}"

    @property
    def length(self) -> int:
        if self.start is None or self.end is None:
            return self.entry.size
        return self.end - self.start


def is_ignored(name: str, ignore: Iterable[str]) -> bool:
    """True if ``name`` equals an ignore path or lies under one (ignore paths are directory-aware)."""
    return _is_ignored(tuple(name.split("/")), _ignore_parts(ignore))


def _ignore_parts(ignore: Iterable[str]) -> tuple[tuple[str, ...], ...]:
    return tuple(p for p in (PurePosixPath(item).parts for item in ignore) if p)


def _is_ignored(parts: tuple[str, ...], ignore: tuple[tuple[str, ...], ...]) -> bool:
    return any(parts[: len(ip)] == ip for ip in ignore)


def walk(
    root: Path,
    ignore: Sequence[str] = (),
    *,
    allow_symlinks: bool = False,
    max_files: int = 1_000_000,
    allowed_root: Path | None = None,
) -> list[FileEntry]:
    """List the regular files under ``root`` (sorted by name), skipping ignored paths.

    Symbolic links that leave ``allowed_root`` (default: ``root``) are always
    refused; links inside ``root`` are followed only with ``allow_symlinks``
    (the specification's default is to refuse every link). An ``allowed_root``
    wider than ``root`` is a Hugging Face cache repository (``models--org--name``)
    around a snapshot: a link from the snapshot to a regular file elsewhere in
    it is the cache's storage (``../../blobs/<hash>``), followed whatever
    ``allow_symlinks`` says and listed under the link's own name, so a snapshot
    hashes exactly like a plain copy of its files. Special files (pipes,
    sockets, devices) are refused: opening a FIFO would block forever. More
    than ``max_files`` files is a :class:`ArtifactError`, so a directory with
    millions of entries fails clearly instead of exhausting memory.
    """
    root = Path(root)
    try:
        real_root = root.resolve(strict=True)
    except OSError as exc:
        raise UsageError(f"model directory {str(root)!r} cannot be read: {exc}") from exc
    if not real_root.is_dir():
        raise UsageError(f"{str(root)!r} is not a directory")
    real_allowed = real_root
    if allowed_root is not None:
        try:
            real_allowed = Path(allowed_root).resolve(strict=True)
        except OSError as exc:
            raise UsageError(f"allowed root {str(allowed_root)!r} cannot be read: {exc}") from exc
        if not is_within(real_root, real_allowed):
            raise UsageError(f"model directory {str(root)!r} is not inside the allowed root {str(allowed_root)!r}")
    out: list[FileEntry] = []
    stack: list[tuple[Path, str]] = [(root, "")]
    # Directories already listed, by (device, inode): a link back to one would make the walk endless.
    root_st = os.stat(real_root)
    seen_dirs: set[tuple[int, int]] = {(root_st.st_dev, root_st.st_ino)}
    ignore_parts = _ignore_parts(ignore)  # parsed once: walks of millions of files call the test per entry
    while stack:
        directory, prefix = stack.pop()
        try:
            with os.scandir(directory) as it:
                entries = list(it)
        except OSError as exc:
            raise EnvironmentFailure(f"cannot list {str(directory)!r}: {exc}") from exc
        for de in entries:
            name = f"{prefix}{de.name}"
            if ignore_parts and _is_ignored(tuple(name.split("/")), ignore_parts):
                continue
            path = Path(de.path)
            try:
                st = de.stat(follow_symlinks=False)
            except OSError as exc:
                raise EnvironmentFailure(f"cannot stat {name!r}: {exc}") from exc
            if stat.S_ISLNK(st.st_mode):
                target = _link_target(path, real_allowed, name)
                # A link out of the snapshot but inside its cache repository is how the hub stores files.
                storage = not is_within(target, real_root)
                if not allow_symlinks and not storage:
                    raise ArtifactError(
                        f"{name!r} is a symbolic link; links are refused unless allow_symlinks is set "
                        "(the model signing specification's default)"
                    )
                st = os.stat(target)
                if storage and not stat.S_ISREG(st.st_mode):
                    raise ArtifactError(f"{name!r} links to a directory or special file outside the model directory")
            if stat.S_ISDIR(st.st_mode):
                if (st.st_dev, st.st_ino) in seen_dirs:
                    raise ArtifactError(f"{name!r} links back to a directory already in the model (a loop)")
                seen_dirs.add((st.st_dev, st.st_ino))
                stack.append((path, name + "/"))
                continue
            if not stat.S_ISREG(st.st_mode):
                raise ArtifactError(f"{name!r} is neither a regular file nor a directory (a pipe, socket or device)")
            out.append(FileEntry(name, path, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev))
            if len(out) > max_files:
                raise ArtifactError(f"the model has more than {max_files} files (limit max_files)")
    out.sort(key=lambda e: e.name.split("/"))  # the specification's order: by path components
    return out


def is_within(path: Path, root: Path) -> bool:
    """True if the (already resolved) ``path`` is ``root`` or lies under it."""
    return path == root or root in path.parents


def plain_file_within(path: Path, allowed_root: Path) -> bool:
    """A regular file (not a FIFO or device that could block a read) that resolves inside ``allowed_root``.

    The check every reader of single metadata files (README, LICENSE,
    config.json) makes before opening one: a link is followed only when its
    target stays inside ``allowed_root`` (the model directory, or the hub
    cache repository around a snapshot).
    """
    try:
        return path.is_file() and is_within(path.resolve(strict=True), Path(allowed_root).resolve(strict=True))
    except (OSError, RuntimeError):
        return False


def _link_target(path: Path, real_allowed: Path, name: str) -> Path:
    """Resolve a link and refuse it if it leaves the allowed root (or dangles)."""
    try:
        target = path.resolve(strict=True)
    except (OSError, RuntimeError) as exc:
        raise ArtifactError(f"{name!r} is a broken or looping symbolic link") from exc
    if not is_within(target, real_allowed):
        raise ArtifactError(f"{name!r} is a symbolic link that leaves the model directory (to {str(target)!r})")
    return target


def units_for(entries: Iterable[FileEntry], shard_size: int | None) -> list[Unit]:
    """Split files into hashing units: whole files, or shards of ``shard_size`` bytes.

    A zero-length file is one shard ``0:0``, as in the specification.
    """
    units: list[Unit] = []
    for entry in entries:
        if shard_size is None:
            units.append(Unit(entry))
            continue
        if shard_size <= 0:
            raise UsageError("shard size must be positive")
        start = 0
        while True:
            end = min(start + shard_size, entry.size)
            units.append(Unit(entry, start, end))
            start = end
            if start >= entry.size:
                break
    return units


def hash_unit(
    unit: Unit,
    algorithm: str,
    *,
    chunk_size: int = DEFAULT_BUFFER,
    progress: ProgressFn | None = None,
    threads: int = 1,
) -> bytes:
    """Digest one unit in chunks of at most ``chunk_size`` bytes (bounded memory for any file size).

    A file that shrinks under us is an :class:`ArtifactError` (we never hash a
    prefix and call it the file); a file that grows is hashed to its recorded size.
    """
    hasher = new_hasher(algorithm, threads=threads)
    remaining = unit.length
    try:
        with open(unit.entry.path, "rb", buffering=0) as fh:
            if unit.start:
                fh.seek(unit.start)
            while remaining > 0:
                # read() rather than readinto() a long-lived buffer: on this machine's kernel the
                # first pass of readinto() in a process costs ~0.4 s of system time per GB
                # (measured; bench/RESULTS_hashing.md), while read()'s short-lived chunks come
                # from reused heap pages. Memory stays bounded by chunk_size per thread.
                chunk = fh.read(min(chunk_size, remaining))
                if not chunk:
                    raise ArtifactError(f"{unit.entry.name!r} changed size while it was hashed")
                hasher.update(chunk)
                remaining -= len(chunk)
                if progress is not None:
                    progress(len(chunk))
    except OSError as exc:
        raise EnvironmentFailure(f"cannot read {unit.entry.name!r}: {exc}") from exc
    return hasher.digest()


def hash_units(
    units: Sequence[Unit],
    algorithm: str,
    *,
    workers: int | None = None,
    buffer_size: int = DEFAULT_BUFFER,
    progress: ProgressFn | None = None,
) -> list[bytes]:
    """Digest every unit on ``workers`` threads (default: every CPU); results in input order."""
    new_hasher(algorithm)  # fail fast on an unknown algorithm or a missing extra
    if not units:
        return []
    n = workers or os.cpu_count() or 1
    n = max(1, min(n, len(units)))
    if n == 1:
        return [hash_unit(u, algorithm, chunk_size=buffer_size, progress=progress) for u in units]

    # Small files cost more in thread hand-offs than in hashing: the calling thread does them
    # while the pool takes the large ones, largest first so that the workers finish together.
    big = sorted((i for i in range(len(units)) if units[i].length > _SMALL_FILE), key=lambda i: -units[i].length)
    small = [i for i in range(len(units)) if units[i].length <= _SMALL_FILE]
    results: list[bytes] = [b""] * len(units)
    small_chunk = min(buffer_size, _SMALL_FILE)
    if not big:
        return [hash_unit(u, algorithm, chunk_size=small_chunk, progress=progress) for u in units]
    if algorithm == "blake3" and len(big) < n:
        # Fewer big files than cores: BLAKE3's own tree parallelism keeps every core busy on each
        # file in turn, with larger chunks so each update is worth fanning out.
        for i in sorted(range(len(units)), key=lambda i: units[i].length <= _SMALL_FILE):
            results[i] = hash_unit(units[i], algorithm, chunk_size=max(buffer_size, _BLAKE3_BUFFER),
                                   progress=progress, threads=n)
        return results
    from concurrent.futures import ThreadPoolExecutor  # lazy: costs ~20 ms of start-up (logging)

    with ThreadPoolExecutor(max_workers=min(n, len(big)), thread_name_prefix="aivet-hash") as pool:
        futures = [(i, pool.submit(hash_unit, units[i], algorithm, chunk_size=buffer_size, progress=progress))
                   for i in big]
        for i in small:
            results[i] = hash_unit(units[i], algorithm, chunk_size=small_chunk, progress=progress)
        for i, fut in futures:
            results[i] = fut.result()
    return results


class DigestCache:
    """Digests of unchanged files, reused when a model is signed again (incremental re-hashing).

    An entry is reused only when size, mtime, ctime, inode and device all match
    and the algorithm and unit (whole file or shard range) are the same. ctime
    cannot be set by an unprivileged user, so a file rewritten with its old
    mtime restored is still re-hashed. The cache is used only when *signing*:
    verification always re-reads every byte it checks.
    """

    VERSION = 1

    def __init__(self, path: Path) -> None:
        self.path = path
        self._entries: dict[str, dict[str, Any]] = {}
        self._fresh: dict[str, dict[str, Any]] = {}
        self.hits = 0
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            if isinstance(raw, dict) and raw.get("version") == self.VERSION and isinstance(raw.get("entries"), dict):
                self._entries = {k: v for k, v in raw["entries"].items() if isinstance(v, dict)}
        except (OSError, ValueError):
            pass  # a missing or corrupt cache only costs a full re-hash

    @staticmethod
    def _key(unit: Unit, algorithm: str) -> str:
        return f"{algorithm}\0{unit.name}"

    @staticmethod
    def _stamp(entry: FileEntry) -> list[int]:
        return [entry.size, entry.mtime_ns, entry.ctime_ns, entry.inode, entry.device]

    def get(self, unit: Unit, algorithm: str) -> bytes | None:
        """The cached digest of ``unit``, or None if the file may have changed."""
        item = self._entries.get(self._key(unit, algorithm))
        if not item or item.get("stamp") != self._stamp(unit.entry):
            return None
        try:
            digest = bytes.fromhex(str(item.get("digest")))
        except ValueError:
            return None
        self.hits += 1
        return digest

    def put(self, unit: Unit, algorithm: str, digest: bytes) -> None:
        """Remember a digest (kept for the next :meth:`save`)."""
        self._fresh[self._key(unit, algorithm)] = {"stamp": self._stamp(unit.entry), "digest": digest.hex()}

    def save(self) -> None:
        """Write the entries of this run only (entries of deleted files drop out)."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps({"version": self.VERSION, "entries": self._fresh}), encoding="utf-8")
            os.replace(tmp, self.path)
        except OSError:
            pass  # the cache is an optimisation; failing to write it must not fail signing


def default_cache_path(root: Path) -> Path:
    """Where the digest cache of ``root`` lives: the user cache dir, keyed by the absolute path."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "aivet" / "digests"
    key = hashlib.sha256(str(Path(root).resolve()).encode("utf-8", "surrogateescape")).hexdigest()[:32]
    return base / f"{key}.json"


def hash_with_cache(
    units: Sequence[Unit],
    algorithm: str,
    *,
    cache: DigestCache | None = None,
    workers: int | None = None,
    progress: ProgressFn | None = None,
) -> list[bytes]:
    """Like :func:`hash_units`, reusing cached digests of unchanged files."""
    if cache is None:
        return hash_units(units, algorithm, workers=workers, progress=progress)
    results: list[bytes | None] = [cache.get(u, algorithm) for u in units]
    todo = [i for i, r in enumerate(results) if r is None]
    if progress is not None:
        progress(sum(units[i].length for i, r in enumerate(results) if r is not None))
    fresh = hash_units([units[i] for i in todo], algorithm, workers=workers, progress=progress)
    for i, digest in zip(todo, fresh, strict=True):
        results[i] = digest
    final = [r if r is not None else b"" for r in results]
    for unit, digest in zip(units, final, strict=True):
        cache.put(unit, algorithm, digest)
    cache.save()
    return final
