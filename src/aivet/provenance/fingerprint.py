"""Weight fingerprints: a compact sketch of a model's tensors that survives fine-tuning.

A fingerprint is computed from safetensors headers and a bounded sample of
tensor values, without loading the model and without numpy:

* every floating-point tensor with at least two dimensions and
  :data:`MIN_ELEMENTS` elements is sampled at :data:`BLOCKS` blocks of
  :data:`BLOCK_LEN` consecutive elements (1,024 values). The block positions
  come from a hash of the tensor's *shape*, never its name, so two models with
  the same shapes are sampled at the same positions even when their tensors
  were renamed or reordered. Contiguous blocks keep the I/O to about
  :data:`BLOCKS` pages per tensor, whatever the model's size.
* the samples become a bit string: bit *i* is set when sample *i* is above the
  samples' median (a sign sketch, as in SimHash). For jointly Gaussian values
  the fraction of differing bits ``h`` estimates the correlation
  ``r = cos(pi * h)`` -- and a XOR plus a popcount compares two tensors.

Two models are compared by pairing each tensor of one with its most similar
tensor *of the same shape* in the other (so dropped, duplicated or reordered
layers pair up) and taking the median over the tensors that found a partner
(so a few changed tensors -- a resized embedding, a fresh head -- do not
decide). Fine-tunes, merged LoRA deltas, continued training, pruning and dtype
changes keep the correlation with the base high (typically > 0.8);
independently initialised models of identical shapes score near 0. Row
permutations of hidden units (a deliberate evasion) are *not* undone.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import mmap
import os
import stat
import struct
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aivet.errors import ArtifactError
from aivet.formats import FormatError, LimitExceeded
from aivet.formats.safetensors import TensorSpec, read_header, tensors
from aivet.limits import DEFAULT_LIMITS, Limits

__all__ = [
    "BLOCKS",
    "BLOCK_LEN",
    "FINGERPRINT_VERSION",
    "Fingerprint",
    "FingerprintError",
    "Similarity",
    "TensorSketch",
    "compare",
    "fingerprint_files",
    "fingerprint_model",
    "safetensors_files",
]

FINGERPRINT_VERSION = 1
BLOCKS = 32  # blocks sampled per tensor
BLOCK_LEN = 32  # consecutive elements per block
SAMPLES = BLOCKS * BLOCK_LEN
MIN_ELEMENTS = 4096  # smaller tensors are too small for overlapping blocks to be independent samples
MIN_PAIRED = 3  # a score from fewer paired tensors is reported but never a match

# dtype -> (struct code, bytes per element); BF16 is read as u16 and widened to F32.
_DTYPES: Mapping[str, tuple[str, int]] = {"F32": ("f", 4), "F16": ("e", 2), "BF16": ("H", 2), "F64": ("d", 8)}
_SEED = b"aivet-lineage-v1"


class FingerprintError(ArtifactError):
    """A model's weights cannot be fingerprinted: no safetensors, a corrupt file, a bound hit."""


@dataclass(frozen=True)
class TensorSketch:
    """The sketch of one tensor: its shape, the sign bits of its samples and their spread."""

    shape: tuple[int, ...]
    bits: int  # SAMPLES bits; bit i set when sample i is above the samples' median
    scale: float  # median absolute deviation of the samples (an order statistic, for display)
    name: str = ""  # for display only: matching never uses names

    def to_dict(self) -> dict[str, Any]:
        return {"shape": list(self.shape), "bits": f"{self.bits:0{SAMPLES // 4}x}",
                "scale": self.scale, "name": self.name}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TensorSketch:
        shape, bits = data.get("shape"), data.get("bits")
        if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
            raise ValueError("sketch shape is not a list of non-negative integers")
        if not isinstance(bits, str) or len(bits) > SAMPLES // 4:
            raise ValueError("sketch bits are not a hex string of the right length")
        value = int(bits, 16)
        if value < 0:
            raise ValueError("sketch bits are negative")
        scale = data.get("scale", 0.0)
        return cls(tuple(shape), value, float(scale) if isinstance(scale, (int, float)) else 0.0,
                   str(data.get("name", "")))


@dataclass(frozen=True)
class Fingerprint:
    """The sketches of a model's tensors, in storage order, and a digest naming them."""

    tensors: tuple[TensorSketch, ...]
    files: int = 0
    skipped: int = 0  # tensors not sketched: 1-D, too small, integer or quantised dtypes
    truncated: bool = False  # ``max_lineage_tensors`` stopped the sampling early
    version: int = FINGERPRINT_VERSION

    @property
    def digest(self) -> str:
        """``sha256:`` of the canonical sketches (shapes and bits, not names or scales)."""
        h = hashlib.sha256(f"aivet-fingerprint-v{self.version}\n".encode())
        for t in self.tensors:
            h.update(f"{'x'.join(map(str, t.shape))}:{t.bits:x}\n".encode())
        return "sha256:" + h.hexdigest()

    def to_dict(self) -> dict[str, Any]:
        return {"version": self.version, "files": self.files, "skipped": self.skipped,
                "truncated": self.truncated, "tensors": [t.to_dict() for t in self.tensors]}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Fingerprint:
        """Rebuild a fingerprint; raises ``ValueError`` for anything malformed or of another version."""
        if data.get("version") != FINGERPRINT_VERSION:
            raise ValueError(f"fingerprint version {data.get('version')!r} is not {FINGERPRINT_VERSION}")
        tensors = data.get("tensors")
        if not isinstance(tensors, list):
            raise ValueError("fingerprint has no tensor list")
        return cls(tuple(TensorSketch.from_dict(t) for t in tensors if isinstance(t, dict)),
                   _count(data.get("files")), _count(data.get("skipped")), data.get("truncated") is True)


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


@dataclass(frozen=True)
class Similarity:
    """How alike two fingerprints are: the median best-pair correlation and how much was paired."""

    score: float  # median over paired tensors of the estimated correlation (-1..1); 0 when nothing paired
    paired: int  # tensors of the candidate that found a same-shape partner
    total: int  # sketched tensors of the candidate
    per_tensor: tuple[float, ...] = field(default=(), repr=False)

    @property
    def coverage(self) -> float:
        return self.paired / self.total if self.total else 0.0

    def matches(self, threshold: float) -> bool:
        """True when the score reaches ``threshold`` on at least :data:`MIN_PAIRED` paired tensors."""
        return self.paired >= min(MIN_PAIRED, self.total) > 0 and self.score >= threshold


# -- sampling -------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1024)
def block_starts(shape: tuple[int, ...]) -> tuple[int, ...]:
    """Element offsets of the sampled blocks of a tensor of ``shape`` (a pure function of the shape)."""
    numel = math.prod(shape)
    span = numel - BLOCK_LEN + 1
    if span <= 0:
        return ()
    seed = hashlib.sha256(_SEED + ("x".join(map(str, shape))).encode()).digest()
    # Our own generator (sha256 in counter mode) rather than random.Random: the positions are part
    # of the fingerprint format and must not move with a Python release.
    return tuple(
        int.from_bytes(hashlib.sha256(seed + i.to_bytes(4, "little")).digest()[:8], "little") % span
        for i in range(BLOCKS)
    )


def _decode(buf: Any, offset: int, dtype: str) -> list[float]:
    code, _ = _DTYPES[dtype]
    raw = struct.unpack_from(f"<{BLOCK_LEN}{code}", buf, offset)
    if dtype == "BF16":  # bfloat16 is the top half of a float32
        return list(struct.unpack(f"<{BLOCK_LEN}f", struct.pack(f"<{BLOCK_LEN}I", *(v << 16 for v in raw))))
    return [float(v) for v in raw]


def sketch_values(values: Sequence[float]) -> tuple[int, float] | None:
    """Sign bits of ``values`` about their median and their median absolute deviation.

    Returns ``None`` when the values carry no signal (constant, or mostly one value:
    zero-initialised biases, masks), which would otherwise pair with anything.
    """
    clean = [v if math.isfinite(v) else 0.0 for v in values]
    ordered = sorted(clean)
    median = ordered[len(ordered) // 2]
    above = sum(1 for v in clean if v > median)
    below = sum(1 for v in clean if v < median)
    if min(above, below) < len(clean) // 8:
        return None
    bits = 0
    for i, v in enumerate(clean):
        if v > median:
            bits |= 1 << i
    mad = sorted(abs(v - median) for v in clean)[len(clean) // 2]
    return bits, mad


def _eligible(spec: TensorSpec) -> bool:
    return spec.dtype in _DTYPES and len(spec.shape) >= 2 and math.prod(spec.shape) >= MIN_ELEMENTS


def _specs(path: Path, fh: Any, size: int, limits: Limits) -> Iterator[tuple[TensorSpec | None, int]]:
    """Yield (eligible spec or None, data start) for each tensor entry, checking it against the file."""
    header = read_header(fh, size, limits)
    for spec in tensors(header):
        name = spec.name
        expected = spec.expected_bytes()
        if expected is not None and spec.end - spec.begin != expected:
            raise FormatError(f"tensor {name!r} holds {spec.end - spec.begin} bytes, its shape needs {expected}", 8)
        if spec.end > header.buffer_size:
            raise FormatError(f"tensor {name!r} ends at {spec.end}, past the data buffer "
                              f"({header.buffer_size} bytes)", header.data_start + spec.begin)
        yield (spec if _eligible(spec) else None), header.data_start


def fingerprint_files(paths: Iterable[Path], limits: Limits = DEFAULT_LIMITS) -> Fingerprint:
    """Fingerprint the tensors of the given safetensors files, in that order.

    Raises :class:`FingerprintError` naming the file for a corrupt or truncated
    file or a bound hit (``max_header_bytes``). At most
    ``limits.max_lineage_tensors`` tensors are sampled; the rest are left out
    and the fingerprint is marked ``truncated``. The bytes read per tensor are
    bounded by :data:`SAMPLES` elements, whatever the file's size.
    """
    sketches: list[TensorSketch] = []
    skipped = files = 0
    truncated = False
    for path in paths:
        files += 1
        try:
            if not stat.S_ISREG(os.stat(path).st_mode):  # a FIFO or device would block or never end
                raise FingerprintError(f"{path}: not a regular file")
            with open(path, "rb") as fh:
                size = os.fstat(fh.fileno()).st_size
                specs = list(_specs(path, fh, size, limits))
                wanted = [(s, start) for s, start in specs if s is not None]
                skipped += len(specs) - len(wanted)
                if not wanted:
                    continue
                with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
                    for spec, start in wanted:
                        if len(sketches) >= limits.max_lineage_tensors:
                            truncated = True
                            break
                        sketch = _sketch(mm, start, spec)
                        if sketch is None:
                            skipped += 1
                        else:
                            sketches.append(sketch)
        except FormatError as exc:
            at = f" at byte {exc.offset}" if exc.offset is not None else ""
            raise FingerprintError(f"{path}: not a valid safetensors file{at}: {exc}") from None
        except LimitExceeded as exc:
            raise FingerprintError(f"{path}: {exc} (limit {exc.limit})") from None
        except (OSError, ValueError, struct.error) as exc:  # mmap of a file truncated while reading, unreadable file
            raise FingerprintError(f"{path}: cannot read the tensors: {exc}") from None
        if truncated:
            break
    return Fingerprint(tuple(sketches), files, skipped, truncated)


def _sketch(mm: mmap.mmap, data_start: int, spec: TensorSpec) -> TensorSketch | None:
    _, width = _DTYPES[spec.dtype]
    base = data_start + spec.begin
    values: list[float] = []
    for start in block_starts(spec.shape):
        values.extend(_decode(mm, base + start * width, spec.dtype))
    made = sketch_values(values)
    if made is None:
        return None
    return TensorSketch(spec.shape, made[0], made[1], spec.name)


def safetensors_files(model_dir: Path, limits: Limits = DEFAULT_LIMITS, *,
                      allowed_root: Path | None = None) -> list[Path]:
    """The ``*.safetensors`` files under ``model_dir``, sorted by relative path (links to files followed).

    Directory links are not followed, so a link cannot lead the walk outside the model; a file link
    must resolve inside ``allowed_root`` (default ``model_dir``; the hub cache repository around a
    snapshot), else :class:`FingerprintError`.
    """
    from aivet.provenance.hashing import plain_file_within

    allowed = Path(allowed_root) if allowed_root is not None else Path(model_dir)
    found: list[Path] = []
    for root, dirs, names in os.walk(model_dir, followlinks=False):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(names):
            if name.endswith(".safetensors"):
                path = Path(root) / name
                if path.is_symlink() and not plain_file_within(path, allowed):
                    raise FingerprintError(f"{path}: a symbolic link that leaves the model directory (not read)")
                found.append(path)
                if len(found) > limits.max_files:
                    raise FingerprintError(f"{model_dir}: more than {limits.max_files} safetensors files")
    return sorted(found, key=lambda p: p.relative_to(model_dir).as_posix())


def fingerprint_model(model_dir: str | os.PathLike[str], limits: Limits = DEFAULT_LIMITS, *,
                      allowed_root: Path | None = None) -> Fingerprint:
    """Fingerprint a model directory (or a single ``.safetensors`` file).

    Links in a directory must resolve inside ``allowed_root`` (default: the directory).

    Raises :class:`FingerprintError` when there is no safetensors file, when
    none holds a tensor that can be sampled, or when a file is corrupt.
    """
    path = Path(model_dir)
    if not path.exists():
        raise FingerprintError(f"{path}: no such file or directory")
    files = [path] if path.is_file() else \
        safetensors_files(path, limits, allowed_root=allowed_root) if path.is_dir() else []
    if not files:
        raise FingerprintError(f"{path}: no .safetensors weights to fingerprint (convert other formats first)")
    fp = fingerprint_files(files, limits)
    if not fp.tensors:
        raise FingerprintError(f"{path}: no floating-point matrix of at least {MIN_ELEMENTS} elements to sample")
    return fp


# -- comparison -----------------------------------------------------------------------------


def _correlation(a: int, b: int) -> float:
    return math.cos(math.pi * (a ^ b).bit_count() / SAMPLES)


def compare(candidate: Fingerprint, reference: Fingerprint) -> Similarity:
    """How strongly ``candidate`` derives from ``reference`` (asymmetric: the candidate's tensors are paired).

    Each candidate tensor is paired with the reference tensor of the same shape
    whose sketch is closest; the score is the median of those correlations.
    """
    by_shape: dict[tuple[int, ...], list[int]] = {}
    for t in reference.tensors:
        by_shape.setdefault(t.shape, []).append(t.bits)
    best: list[float] = []
    for t in candidate.tensors:
        partners = by_shape.get(t.shape)
        if partners:
            best.append(max(_correlation(t.bits, b) for b in partners))
    if not best:
        return Similarity(0.0, 0, len(candidate.tensors))
    ordered = sorted(best)
    mid = len(ordered) // 2
    median = ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2
    return Similarity(round(median, 4), len(best), len(candidate.tensors), tuple(round(b, 4) for b in best))
