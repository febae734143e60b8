"""GGUF analyzer: metadata sanity, tensor layout and the embedded chat templates.

GGUF holds no code, but llama.cpp-based runtimes render the embedded
``tokenizer.chat_template`` with Jinja (CVE-2024-34359: llama-cpp-python used a
non-sandboxed environment), and a header that the C loader and a Python tool
read differently is a way to hide content. The reader in
:mod:`aivet.formats.gguf` parses the header with bounds; this module turns
what it found into findings and hands every chat template to
:func:`aivet.analyzers.template.analyze_template`.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from aivet.analyzers.context import Context
from aivet.analyzers.engine import Outcome
from aivet.analyzers.safetensors import Reporter, inspect_region
from aivet.analyzers.source import Source
from aivet.analyzers.template import TemplateQuota, analyze_template
from aivet.evidence import ArtifactStatus, Severity
from aivet.formats import gguf
from aivet.rules import ATLAS_EVADE, ATLAS_SUPPLY_CHAIN_MODEL, ATLAS_UNSAFE_ARTIFACTS, Rule

FORMAT = "gguf"
CHAT_TEMPLATE_KEY = "tokenizer.chat_template"

DUPLICATE_KEY = Rule(
    "GGUF-DUPLICATE-KEY",
    "Duplicate metadata key",
    "The same metadata key appears twice. llama.cpp rejects such files while other readers keep the first "
    "or the last value, so a scanner and a runtime may see different chat templates or settings. Keys are "
    "compared as llama.cpp looks them up, up to the first NUL byte: its duplicate check compares whole "
    "keys, but its lookups use strcmp, so `tokenizer.chat_template\\0x` placed first shadows the real key.",
    Severity.HIGH,
    (ATLAS_EVADE, ATLAS_SUPPLY_CHAIN_MODEL),
    ("CWE-436",),
)
DUPLICATE_TENSOR = Rule(
    "GGUF-DUPLICATE-TENSOR",
    "Duplicate tensor name",
    "Two tensor infos share a name. llama.cpp rejects the file; other readers pick one of them.",
    Severity.HIGH,
    (ATLAS_EVADE,),
    ("CWE-436",),
)
INVALID_KEY = Rule(
    "GGUF-INVALID-KEY",
    "Metadata key is not printable UTF-8",
    "A metadata key is empty, not valid UTF-8 or contains control characters or spaces. Real writers "
    "use dotted lower-case names; odd keys are used to hide values from tools that list metadata.",
    Severity.LOW,
    (ATLAS_EVADE,),
    ("CWE-20",),
)
MALFORMED_METADATA = Rule(
    "GGUF-MALFORMED-METADATA",
    "Metadata value has the wrong shape",
    "A well-known key has the wrong type (a chat template that is not a string, an architecture that is "
    "not a string), a bool is neither 0 nor 1, or an array nests arrays, which llama.cpp does not read.",
    Severity.LOW,
    (ATLAS_EVADE,),
    ("CWE-20",),
)
BINARY_METADATA = Rule(
    "GGUF-BINARY-METADATA",
    "Binary data in a string metadata value",
    "A string value is not valid UTF-8 or holds NUL bytes: GGUF strings are text, so this is data "
    "smuggled in metadata. High when it starts like a pickle or an archive.",
    Severity.MEDIUM,
    (ATLAS_EVADE, ATLAS_UNSAFE_ARTIFACTS),
    ("CWE-506",),
)
ARCHITECTURE = Rule(
    "GGUF-UNKNOWN-ARCHITECTURE",
    "Missing or unknown general.architecture",
    "The file names no architecture, or one llama.cpp does not know. Informational: new architectures "
    "appear often, but a model that no runtime can load deserves a second look.",
    Severity.INFO,
    (ATLAS_SUPPLY_CHAIN_MODEL,),
    ("CWE-1357",),
)
BAD_ALIGNMENT = Rule(
    "GGUF-BAD-ALIGNMENT",
    "Invalid alignment",
    "general.alignment is not a power-of-two uint32, or a tensor's data offset is not a multiple of the "
    "alignment. Loaders reject or misplace such tensors.",
    Severity.HIGH,
    (ATLAS_EVADE,),
    ("CWE-20",),
)
MALFORMED_TENSOR = Rule(
    "GGUF-MALFORMED-TENSOR",
    "Invalid tensor info",
    "A tensor's dimensions overflow, its row is not a whole number of quantisation blocks, its name is "
    "longer than ggml allows, or its data lies past the end of the file. Loaders that trust the header "
    "read out of bounds.",
    Severity.HIGH,
    (ATLAS_EVADE,),
    ("CWE-20", "CWE-125"),
)
UNKNOWN_TENSOR_TYPE = Rule(
    "GGUF-UNKNOWN-TENSOR-TYPE",
    "Unknown or removed ggml tensor type",
    "The tensor type id is not a current ggml type, so its size cannot be checked and current loaders "
    "reject it.",
    Severity.MEDIUM,
    (ATLAS_EVADE,),
    ("CWE-20",),
)
OVERLAP = Rule(
    "GGUF-TENSOR-OVERLAP",
    "Tensors overlap in the data section",
    "Two tensors claim the same bytes: one can alias or hide another.",
    Severity.HIGH,
    (ATLAS_EVADE,),
    ("CWE-20",),
)
UNREFERENCED_DATA = Rule(
    "GGUF-UNREFERENCED-DATA",
    "Bytes no tensor claims",
    "The data section has a gap larger than alignment padding, or the file continues after the last "
    "tensor. Runtimes ignore these bytes, which makes them a place to smuggle a second file. High when "
    "the bytes are an executable format.",
    Severity.MEDIUM,
    (ATLAS_EVADE, ATLAS_UNSAFE_ARTIFACTS),
    ("CWE-506",),
)

RULES = (DUPLICATE_KEY, DUPLICATE_TENSOR, INVALID_KEY, MALFORMED_METADATA, BINARY_METADATA, ARCHITECTURE,
         BAD_ALIGNMENT, MALFORMED_TENSOR, UNKNOWN_TENSOR_TYPE, OVERLAP, UNREFERENCED_DATA)

# Architectures llama.cpp knows (LLM_ARCH names), as of late 2025. Unknown ones are only informational.
KNOWN_ARCHITECTURES = frozenset("""
clip llama llama4 deci falcon falcon-h1 baichuan grok gpt2 gptj gptneox mpt starcoder starcoder2 refact
bert modern-bert nomic-bert nomic-bert-moe neo-bert jina-bert-v2 jina-bert-v3 eurobert bloom stablelm
qwen qwen2 qwen2moe qwen2vl qwen3 qwen3moe qwen3next qwen3vl qwen3vlmoe phi2 phi3 phimoe plamo plamo2
codeshell orion internlm2 minicpm minicpm3 gemma gemma2 gemma3 gemma3n gemma-embedding rwkv6 rwkv6qwen2
rwkv7 arwkv7 mamba mamba2 jamba xverse command-r cohere2 dbrx olmo olmo2 olmoe openelm arctic deepseek
deepseek2 chatglm glm4 glm4moe bitnet t5 t5encoder jais nemotron nemotron_h exaone exaone4 granite
granitemoe granitehybrid chameleon wavtokenizer-dec plm bailingmoe bailingmoe2 dots1 arcee ernie4_5
ernie4_5-moe hunyuan-moe hunyuan-dense smollm3 gpt-oss lfm2 lfm2moe dream smallthinker llada llada-moe
seed_oss grovemoe apertus minimax-m2 cogvlm mistral3 llama-embed kimi-linear
""".split())

_INT64_MAX = 2**63 - 1
_PAYLOAD_MAGIC = ((b"\x80\x02", "pickle"), (b"\x80\x03", "pickle"), (b"\x80\x04", "pickle"),
                  (b"\x80\x05", "pickle"), (b"PK\x03\x04", "zip archive"), (b"\x1f\x8b", "gzip stream"))


def analyze(source: Source, ctx: Context) -> Outcome:
    """Parse a GGUF header (never tensor data) and check its metadata, templates and tensor layout."""
    with source.open() as fh:
        parsed = gguf.read_gguf(fh, source.size, ctx.limits, ctx.deadline())
    report = Reporter(source, ctx)
    _check_metadata(parsed, source, ctx, report)
    _check_tensors(parsed, source, ctx, report)
    report.close(RULES)
    status = ArtifactStatus.PARTIAL if report.partial else ArtifactStatus.ANALYZED
    return Outcome(FORMAT, status,
                   note=f"GGUF v{parsed.version}, {len(parsed.metadata)} keys, {len(parsed.tensors)} tensors")


def _check_metadata(parsed: gguf.GGUFFile, source: Source, ctx: Context, report: Reporter) -> None:
    # Keys are counted as llama.cpp looks them up (up to the first NUL): "k\0x" before "k" shadows it.
    counts = Counter(kv.c_key for kv in parsed.metadata)
    firsts: dict[str, gguf.KeyValue] = {}
    for kv in parsed.metadata:  # one pass: a search per duplicated key would be quadratic
        firsts.setdefault(kv.c_key, kv)
    templates, max_templates = 0, ctx.limits.max_templates_per_file  # each is a Jinja parse
    quota = TemplateQuota(ctx)
    for c_key, n in counts.items():
        if n > 1:
            first = firsts[c_key]
            shadow = f"; llama.cpp reads the first, {first.key!r}" if first.key != c_key else ""
            report.add(DUPLICATE_KEY, f"metadata key {c_key!r} appears {n} times{shadow}", offset=first.offset,
                       pointer=first.key, key=c_key, count=n, first_key=first.key)
    for kv in parsed.metadata:
        _check_key(kv, report)
        _check_value(kv, report)
        if kv.c_key == CHAT_TEMPLATE_KEY or kv.c_key.startswith(CHAT_TEMPLATE_KEY + "."):
            text = kv.text()
            if text is None:
                report.add(MALFORMED_METADATA, f"{kv.key} is a {kv.type.name.lower()}, not a string",
                           offset=kv.offset, pointer=kv.key, severity=Severity.MEDIUM, key=kv.key)
            elif templates >= max_templates:
                report.limit("max_templates_per_file",
                             f"more than {max_templates} chat templates; the rest were not analysed")
            else:
                templates += 1
                where = ctx.location(source, offset=kv.value_offset, pointer=kv.key)
                if analyze_template(text, where, ctx, quota) is not ArtifactStatus.ANALYZED:
                    report.partial = True  # the template says why (a LIMIT-EXCEEDED or parse finding)

    alignment = parsed.get("general.alignment")
    if alignment is not None:
        value = alignment.value
        if alignment.type is not gguf.ValueType.UINT32 or not isinstance(value, int) or value <= 0 \
                or value & (value - 1):
            report.add(BAD_ALIGNMENT, f"general.alignment is {_show(value)} ({alignment.type.name.lower()}); "
                       "it must be a power-of-two uint32", offset=alignment.value_offset,
                       pointer=alignment.key, value=_show(value))

    arch = parsed.get("general.architecture")
    if arch is None:
        report.add(ARCHITECTURE, "general.architecture is missing", offset=0)
    elif arch.text() is None:
        report.add(MALFORMED_METADATA, "general.architecture is not a string", offset=arch.value_offset,
                   pointer=arch.key)
    elif arch.text() not in KNOWN_ARCHITECTURES:
        name = arch.text() or ""
        report.add(ARCHITECTURE, f"architecture {name[:80]!r} is not one llama.cpp knows",
                   offset=arch.value_offset, pointer=arch.key, architecture=name[:200])


def _check_key(kv: gguf.KeyValue, report: Reporter) -> None:
    try:
        decoded = kv.raw_key.decode("utf-8")
    except UnicodeDecodeError:
        decoded = None
    if decoded is None or not decoded or not decoded.isprintable() or any(c.isspace() for c in decoded):
        why = "not valid UTF-8" if decoded is None else "empty" if not decoded else "not printable"
        report.add(INVALID_KEY, f"metadata key {kv.key[:120]!r} is {why}", offset=kv.offset, key=kv.key[:200])


def _check_value(kv: gguf.KeyValue, report: Reporter) -> None:
    value = kv.value
    where: dict[str, Any] = {"offset": kv.value_offset, "pointer": kv.key}
    if kv.type is gguf.ValueType.BOOL and not isinstance(value, bool):
        report.add(MALFORMED_METADATA, f"{kv.key} is a bool with byte value {value!r}", key=kv.key, **where)
    elif isinstance(value, gguf.ArrayValue) and value.nested_depth:
        report.add(MALFORMED_METADATA, f"{kv.key} nests arrays {value.nested_depth + 1} deep; llama.cpp "
                   "does not read nested arrays", key=kv.key, **where)
    elif isinstance(value, bytes):
        magic = next((name for m, name in _PAYLOAD_MAGIC if value.startswith(m)), None)
        try:
            value.decode("utf-8")
            binary = b"\x00" in value
        except UnicodeDecodeError:
            binary = True
        if magic or binary:
            report.add(BINARY_METADATA, f"{kv.key} holds {len(value)} bytes of "
                       + (f"what looks like a {magic}" if magic else "binary data"),
                       severity=Severity.HIGH if magic else None, key=kv.key, length=len(value),
                       content=magic or "binary", **where)


def _check_tensors(parsed: gguf.GGUFFile, source: Source, ctx: Context, report: Reporter) -> None:
    # ggml keeps names as C strings (ggml_set_name): "a\0x" and "a" are one tensor to it.
    names = Counter(t.raw_name.split(b"\0", 1)[0] for t in parsed.tensors)
    firsts: dict[bytes, gguf.TensorInfo] = {}
    for t in parsed.tensors:
        firsts.setdefault(t.raw_name.split(b"\0", 1)[0], t)
    for raw, n in names.items():
        if n > 1:
            first = firsts[raw]
            report.add(DUPLICATE_TENSOR, f"tensor {first.name!r} is described {n} times",
                       offset=first.info_offset, tensor=first.name, count=n)
    spans: list[tuple[int, int, str]] = []
    data_size = parsed.size - parsed.data_start
    for t in parsed.tensors:
        where: dict[str, Any] = {"offset": t.info_offset, "pointer": t.name, "tensor": t.name}
        if len(t.raw_name) > gguf.MAX_TENSOR_NAME:
            report.add(MALFORMED_TENSOR, f"tensor name of {len(t.raw_name)} bytes (ggml allows "
                       f"{gguf.MAX_TENSOR_NAME})", severity=Severity.MEDIUM, **where)
        if t.elements > _INT64_MAX or any(d > _INT64_MAX for d in t.dims):  # a zero dimension hides the rest
            report.add(MALFORMED_TENSOR, f"tensor {t.name!r} dimensions {list(t.dims)} overflow int64", **where)
            continue
        if t.offset % parsed.alignment:
            report.add(BAD_ALIGNMENT, f"tensor {t.name!r} data offset {t.offset} is not a multiple of "
                       f"{parsed.alignment}", **where)
        known = gguf.GGML_TYPES.get(t.ggml_type)
        if known is None:
            removed = gguf.REMOVED_GGML_TYPES.get(t.ggml_type)
            report.add(UNKNOWN_TENSOR_TYPE, f"tensor {t.name!r} has " + (
                f"removed ggml type {removed} ({t.ggml_type})" if removed else f"unknown ggml type {t.ggml_type}"),
                ggml_type=t.ggml_type, **where)
            continue
        nbytes = t.nbytes()
        if nbytes is None:
            report.add(MALFORMED_TENSOR, f"tensor {t.name!r}: first dimension {t.dims[0]} is not a multiple of "
                       f"the {known[0]} block size {known[1]}", **where)
            continue
        if t.offset + nbytes > data_size:
            report.add(MALFORMED_TENSOR, f"tensor {t.name!r} data [{t.offset}, {t.offset + nbytes}) lies past the "
                       f"end of the file (data section is {max(data_size, 0)} bytes)", **where)
            continue
        if nbytes:
            spans.append((t.offset, t.offset + nbytes, t.name))
    _check_layout(parsed, spans, source, ctx, report)


def _check_layout(parsed: gguf.GGUFFile, spans: list[tuple[int, int, str]], source: Source, ctx: Context,
                  report: Reporter) -> None:
    align = parsed.alignment
    cursor, last = 0, ""
    for begin, end, name in sorted(spans):
        if begin < cursor:
            report.add(OVERLAP, f"tensor {name!r} [{begin}, {end}) overlaps {last!r} (which ends at {cursor})",
                       offset=parsed.data_start + begin, tensor=name, other=last)
        elif begin - cursor >= align:  # more than the padding a writer inserts
            _unreferenced(parsed, source, ctx, report, cursor, begin - cursor, "gap")
        if end > cursor:
            cursor, last = end, name
    start = parsed.data_start + cursor if spans else parsed.infos_end
    padded = start + (-start % align)
    if parsed.size > padded:
        _unreferenced(parsed, source, ctx, report, start - parsed.data_start, parsed.size - start, "trailing")


def _unreferenced(parsed: gguf.GGUFFile, source: Source, ctx: Context, report: Reporter, rel: int,
                  length: int, kind: str) -> None:
    at = parsed.data_start + rel
    content, head = inspect_region(source, ctx, at, length, f"{kind}@{at}", report)
    if content is None and length <= len(head) and not head.strip(b"\x00"):
        return  # zero padding, as some writers leave
    what = "after the last tensor" if kind == "trailing" else "between tensors"
    report.add(UNREFERENCED_DATA, f"{length} bytes {what} belong to no tensor"
               + (f" and look like {content}" if content else ""), offset=at, length=length,
               content=content or "unknown", severity=Severity.HIGH if content else None)


def _show(value: object) -> str:
    text = repr(value) if not isinstance(value, gguf.ArrayValue) else f"array[{value.count}]"
    return text[:80]

