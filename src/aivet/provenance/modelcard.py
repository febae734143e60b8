"""Facts about a model for its bill of materials, read from files without loading anything.

Three sources, each bounded and each allowed to be missing or broken:

* the README's YAML front matter (the Hugging Face model card metadata:
  license, base model, datasets, language, task, library, tags);
* ``config.json`` (architecture, sizes, context length, dtype, quantization);
* weight headers: safetensors JSON headers and GGUF tensor infos give the
  parameter count exactly (shapes times counts); tensor data is never read.

A source that cannot be read becomes a :class:`Problem` (the BOM is still
written, without those facts); nothing here raises for hostile content.
YAML is parsed with a safe loader that refuses anchors and aliases (the
"billion laughs" expansion) and nesting deeper than :data:`MAX_YAML_DEPTH`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml
from yaml.events import AliasEvent
from yaml.nodes import Node

from aivet.errors import ArtifactError
from aivet.formats import FormatError, LimitExceeded
from aivet.limits import DEFAULT_LIMITS, Limits
from aivet.provenance.hashing import FileEntry

MAX_YAML_DEPTH = 32  # real model cards nest 5-6 levels (model-index results)
MAX_VALUE_CHARS = 1024  # one string kept from metadata (ids, names, links); longer is cut
MAX_LIST_ITEMS = 1000  # items kept from one metadata list (tags, datasets, languages)
MAX_ENTRY_BYTES = 16 * 1024  # one entry's YAML when only some are parsed: 32 ids of 200 characters fit many times
# A Hugging Face "org/name" (or bare "name") id: only such ids become purls and hub links.
HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}(/[A-Za-z0-9][A-Za-z0-9._-]{0,95})?$")
_SPLIT_GGUF = re.compile(r"^(?P<stem>.*)-(?P<part>\d{5})-of-(?P<total>\d{5})\.gguf$", re.IGNORECASE)


class MetadataError(ArtifactError):
    """A metadata file (README front matter, config.json) is malformed or too large."""


@dataclass(frozen=True)
class Problem:
    """One source that could not be used, and why (becomes a finding)."""

    kind: str  # "front-matter" | "config" | "weights"
    path: str
    message: str


@dataclass(frozen=True)
class FrontMatter:
    """The model-card fields a BOM needs, type-checked; absent fields are empty."""

    license: str | None = None
    license_name: str | None = None
    license_link: str | None = None
    base_models: tuple[str, ...] = ()
    base_model_relation: str | None = None
    datasets: tuple[str, ...] = ()
    languages: tuple[str, ...] = ()
    pipeline_tag: str | None = None
    library_name: str | None = None
    tags: tuple[str, ...] = ()
    ignored: tuple[str, ...] = ()  # fields present but of the wrong type (reported, not used)
    # Why the front matter as a whole could not be parsed, when the fields above were read from
    # their own top-level entries instead (a broken or oversized model-index, say).
    salvaged: str | None = None

    @property
    def problems(self) -> tuple[str, ...]:
        """What a reader of this card should be told: salvage, and fields left out."""
        out = []
        if self.salvaged:
            out.append(f"{self.salvaged}; only the entries {', '.join(CARD_KEYS)} were read")
        if self.ignored:
            out.append(f"fields of the wrong type were left out: {', '.join(self.ignored)}")
        return tuple(out)


# The top-level entries FrontMatter reads: all that is parsed when the whole card cannot be.
CARD_KEYS = ("license", "license_name", "license_link", "base_model", "base_model_relation", "datasets",
             "language", "pipeline_tag", "library_name", "tags")


@dataclass(frozen=True)
class ConfigFacts:
    """What ``config.json`` says about the architecture."""

    model_type: str | None = None
    architectures: tuple[str, ...] = ()
    hidden_size: int | None = None
    num_layers: int | None = None
    num_heads: int | None = None
    num_kv_heads: int | None = None
    head_dim: int | None = None
    intermediate_size: int | None = None
    vocab_size: int | None = None
    context_length: int | None = None
    dtype: str | None = None
    quantization: str | None = None
    tie_embeddings: bool = False
    transformers_version: str | None = None


@dataclass(frozen=True)
class ModelFacts:
    """Everything the BOM writers use about the model itself."""

    front: FrontMatter = field(default_factory=FrontMatter)
    config: ConfigFacts = field(default_factory=ConfigFacts)
    parameters: int | None = None
    parameters_source: str | None = None  # "safetensors", "gguf" or "config-estimate"
    gguf_architecture: str | None = None
    problems: tuple[Problem, ...] = ()


# -- README front matter -------------------------------------------------------------------------


class _BoundedSafeLoader(yaml.SafeLoader):  # type: ignore[misc,unused-ignore]  # stubs optional
    """``yaml.SafeLoader`` that refuses aliases and deep nesting (bounded memory and recursion)."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        if self.check_event(AliasEvent):
            # An alias shares a node; a few nested ones expand to billions of items for any consumer.
            raise yaml.YAMLError("anchors and aliases are refused in model-card front matter")
        self._depth += 1
        if self._depth > MAX_YAML_DEPTH:
            raise yaml.YAMLError(f"front matter nested deeper than {MAX_YAML_DEPTH} levels")
        try:
            return super().compose_node(parent, index)  # type: ignore[no-any-return,unused-ignore]
        finally:
            self._depth -= 1


def extract_front_matter(text: str) -> str | None:
    """The YAML between the leading ``---`` line and the next ``---`` line, or None if there is none.

    A README without front matter is normal (``None``); one that opens front
    matter and never closes it is a :class:`MetadataError`.
    """
    if text.startswith("\ufeff"):
        text = text[1:]
    lines = text.splitlines(keepends=True)
    if not lines or lines[0].rstrip("\r\n").rstrip() != "---":
        return None
    for i in range(1, len(lines)):
        if lines[i].rstrip("\r\n").rstrip() in ("---", "..."):
            return "".join(lines[1:i])
    raise MetadataError("the front matter opened with '---' is never closed")


def parse_front_matter(data: bytes | str, limits: Limits = DEFAULT_LIMITS, *,
                       only: Collection[str] | None = None) -> FrontMatter:
    """Parse a README's front matter (bytes, or text already decoded) into :class:`FrontMatter`.

    The one model-card parser: the BOM, the license and origin checks and
    lineage all read the card through it. With ``only``, just those
    top-level entries (their key lines and the indented, ``-`` or comment
    lines under them, at most :data:`MAX_ENTRY_BYTES` each) are handed to the
    YAML parser: a card's long or broken ``model-index`` then costs no
    parsing and cannot hide a ``base_model`` from lineage.

    Without ``only``, YAML that is malformed, not a mapping, uses aliases, nests too deeply or
    is larger than ``limits.max_front_matter_bytes`` is read again entry by entry
    (:data:`CARD_KEYS`): what that finds is returned with the reason in ``salvaged``.
    Raises :class:`MetadataError` when that fails too (or with ``only``); it raises nothing
    else, whatever the input. Fields of the wrong type are left out and named in ``ignored``.
    """
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    yaml_text = extract_front_matter(text)
    if yaml_text is None:
        return FrontMatter()
    if only is not None:
        return _parse_yaml(_select_entries(yaml_text, frozenset(only)))
    try:
        if len(yaml_text.encode("utf-8", "surrogatepass")) > limits.max_front_matter_bytes:
            raise MetadataError(f"the front matter is larger than {limits.max_front_matter_bytes} bytes "
                                "(limit max_front_matter_bytes)")
        return _parse_yaml(yaml_text)
    except MetadataError as whole:
        try:
            salvage = _parse_yaml(_select_entries(yaml_text, frozenset(CARD_KEYS)))
        except MetadataError:
            raise whole from None
        return replace(salvage, salvaged=str(whole))


def _parse_yaml(yaml_text: str) -> FrontMatter:
    if not yaml_text:
        return FrontMatter()
    try:
        loader = _BoundedSafeLoader(yaml_text)
        try:
            doc = loader.get_single_data()
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        raise MetadataError(f"the front matter is not valid YAML: {_one_line(exc)}") from None
    except (RecursionError, ValueError, TypeError, OverflowError) as exc:
        # Constructors raise these for hostile scalars (a timestamp out of range, a huge integer).
        raise MetadataError(f"the front matter cannot be read: {_one_line(exc)}") from None
    if doc is None:
        return FrontMatter()
    if not isinstance(doc, dict):
        raise MetadataError(f"the front matter is a YAML {type(doc).__name__}, not a mapping")
    return _front_from_mapping(doc)


def _top_level_key(line: str) -> str | None:
    """The key a top-level ``key: value`` line opens (quotes removed), or None for any other line."""
    head, colon, _ = line.partition(":")
    if not colon:
        return None
    key = head.strip()
    if len(key) >= 2 and key[0] == key[-1] and key[0] in "'\"":
        key = key[1:-1]
    return key


def _select_entries(yaml_text: str, keys: frozenset[str]) -> str:
    """The lines of the top-level entries named in ``keys``; each entry cut at :data:`MAX_ENTRY_BYTES`."""
    wanted: list[str] = []
    current: str | None = None
    used: dict[str, int] = {}
    for line in yaml_text.splitlines(keepends=True):
        if line[:1] not in (" ", "\t", "-", "#", "\r", "\n"):  # a new top-level entry (or stray text)
            key = _top_level_key(line)
            current = key if key in keys else None
        if current is None:
            continue
        size = used.get(current, 0) + len(line)
        if size <= MAX_ENTRY_BYTES:  # a longer list is cut line by line: what fits is kept
            wanted.append(line)
            used[current] = size
    return "".join(wanted)


def _front_from_mapping(doc: Mapping[Any, Any]) -> FrontMatter:
    ignored: list[str] = []

    def one(key: str) -> str | None:
        value = doc.get(key)
        if value is None:
            return None
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            text = str(value).strip()
            return text[:MAX_VALUE_CHARS] or None
        ignored.append(key)
        return None

    def many(key: str, *, strings_only: bool = False) -> tuple[str, ...]:
        value = doc.get(key)
        if value is None:
            return ()
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list):
            ignored.append(key)
            return ()
        scalar = (str,) if strings_only else (str, int, float)
        out: list[str] = []
        for item in items[:MAX_LIST_ITEMS]:
            if isinstance(item, scalar) and not isinstance(item, bool):
                text = str(item).strip()[:MAX_VALUE_CHARS]
                if text and text not in out:
                    out.append(text)
            elif key not in ignored:  # the other items still count
                ignored.append(key)
        return tuple(out)

    return FrontMatter(
        license=one("license"),
        license_name=one("license_name"),
        license_link=one("license_link"),
        base_models=many("base_model", strings_only=True),  # repository ids: a YAML number is none
        base_model_relation=one("base_model_relation"),
        datasets=many("datasets"),
        languages=many("language"),
        pipeline_tag=one("pipeline_tag"),
        library_name=one("library_name"),
        tags=many("tags"),
        ignored=tuple(dict.fromkeys(ignored)),
    )


def read_front_matter(path: Path, limits: Limits = DEFAULT_LIMITS) -> FrontMatter:
    """Read a README's front matter, reading no more than the front matter limit needs."""
    budget = limits.max_front_matter_bytes + 64 * 1024  # room for the '---' lines and a BOM
    try:
        with open(path, "rb") as fh:
            data = fh.read(budget + 1)
    except OSError as exc:
        raise MetadataError(f"cannot read {path.name}: {exc.strerror or exc}") from exc
    if len(data) > budget:
        # Only the front matter matters: cut at the budget; an unclosed block then fails clearly.
        data = data[:budget]
        text = data.decode("utf-8", "replace")
        try:
            if extract_front_matter(text) is None:
                return FrontMatter()
        except MetadataError:
            raise MetadataError(f"the front matter is larger than {limits.max_front_matter_bytes} bytes "
                                "(limit max_front_matter_bytes)") from None
    return parse_front_matter(data, limits)


# -- config.json ----------------------------------------------------------------------------------


def _reject_constant(name: str) -> Any:
    raise ValueError(f"non-standard JSON constant {name}")


def parse_config(data: bytes) -> ConfigFacts:
    """Parse ``config.json`` bytes (:class:`MetadataError` when it is not a JSON object)."""
    try:
        doc = json.loads(data.decode("utf-8"), parse_constant=_reject_constant)
    except UnicodeDecodeError as exc:
        raise MetadataError(f"config.json is not UTF-8: {exc.reason}") from None
    except RecursionError:
        raise MetadataError("config.json is nested too deeply to decode") from None
    except ValueError as exc:  # JSONDecodeError, NaN, integers past the digit limit
        raise MetadataError(f"config.json is not valid JSON: {_one_line(exc)}") from None
    if not isinstance(doc, dict):
        raise MetadataError("config.json is not a JSON object")
    # Multimodal configs (LLaVA, Gemma 3, Qwen-VL) keep the language model's sizes in text_config.
    text_cfg = doc.get("text_config")
    sizes: Mapping[str, Any] = text_cfg if isinstance(text_cfg, dict) else {}

    def num(*keys: str) -> int | None:
        for source in (doc, sizes):
            for key in keys:
                value = source.get(key)
                if isinstance(value, int) and not isinstance(value, bool) and 0 < value < 2**63:
                    return value
        return None

    def text(key: str, source: Mapping[str, Any] = doc) -> str | None:
        value = source.get(key)
        return value[:MAX_VALUE_CHARS] if isinstance(value, str) and value else None

    archs = doc.get("architectures")
    architectures = tuple(a[:MAX_VALUE_CHARS] for a in archs[:16] if isinstance(a, str)) \
        if isinstance(archs, list) else ()
    quant = doc.get("quantization_config")
    tie = doc.get("tie_word_embeddings", sizes.get("tie_word_embeddings", False))
    return ConfigFacts(
        model_type=text("model_type"),
        architectures=architectures,
        hidden_size=num("hidden_size", "n_embd", "d_model"),
        num_layers=num("num_hidden_layers", "n_layer", "num_layers"),
        num_heads=num("num_attention_heads", "n_head"),
        num_kv_heads=num("num_key_value_heads"),
        head_dim=num("head_dim"),
        intermediate_size=num("intermediate_size", "n_inner", "ffn_dim"),
        vocab_size=num("vocab_size"),
        context_length=num("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"),
        dtype=text("torch_dtype") or text("dtype"),
        quantization=text("quant_method", quant) if isinstance(quant, dict) else None,
        tie_embeddings=tie is True,
        transformers_version=text("transformers_version"),
    )


def read_config(path: Path, limits: Limits = DEFAULT_LIMITS) -> ConfigFacts:
    """Read and parse ``config.json``, refusing files larger than ``limits.max_text_file_bytes``."""
    try:
        with open(path, "rb") as fh:
            data = fh.read(limits.max_text_file_bytes + 1)
    except OSError as exc:
        raise MetadataError(f"cannot read config.json: {exc.strerror or exc}") from exc
    if len(data) > limits.max_text_file_bytes:
        raise MetadataError(f"config.json is larger than {limits.max_text_file_bytes} bytes "
                            "(limit max_text_file_bytes)")
    return parse_config(data)


def estimate_parameters(cfg: ConfigFacts) -> int | None:
    """A decoder-only transformer's parameter count from its config (Llama layout), or None.

    Only used when no weight header can be read: embeddings, attention with
    grouped KV heads, a gated MLP and RMS norms. Other layouts are not guessed.
    """
    h, layers, heads, inter, vocab = (cfg.hidden_size, cfg.num_layers, cfg.num_heads, cfg.intermediate_size,
                                      cfg.vocab_size)
    if not (h and layers and heads and inter and vocab):
        return None
    head_dim = cfg.head_dim or h // heads
    kv = cfg.num_kv_heads or heads
    attention = h * heads * head_dim * 2 + h * kv * head_dim * 2  # q and o; k and v
    mlp = 3 * h * inter  # gate, up, down
    per_layer = attention + mlp + 2 * h  # two norms
    embeddings = vocab * h * (1 if cfg.tie_embeddings else 2)
    return embeddings + layers * per_layer + h


# -- weight headers ------------------------------------------------------------------------------


def safetensors_parameters(path: Path, size: int, limits: Limits = DEFAULT_LIMITS) -> int:
    """Elements in every tensor of a safetensors file, from its header only."""
    from aivet.formats.safetensors import read_header, tensors

    with open(path, "rb") as fh:
        header = read_header(fh, size, limits)
    return sum(spec.numel for spec in tensors(header))


def gguf_parameters(path: Path, size: int, limits: Limits = DEFAULT_LIMITS) -> tuple[int, str | None]:
    """Elements in every tensor of a GGUF file (from tensor infos) and its ``general.architecture``."""
    from aivet.formats.gguf import read_gguf

    with open(path, "rb") as fh:
        parsed = read_gguf(fh, size, limits)
    arch = parsed.get("general.architecture")
    arch_text = arch.text() if arch is not None else None
    return sum(t.elements for t in parsed.tensors), (arch_text[:MAX_VALUE_CHARS] if arch_text else None)


def _weight_kind(entry: FileEntry) -> str | None:
    """``"safetensors"`` or ``"gguf"`` when the content (not just the name) says so."""
    from aivet.formats.sniff import Format, sniff

    lower = entry.name.lower()
    if not lower.endswith((".safetensors", ".gguf")) or entry.size < 8:
        return None  # other weight formats carry no cheap, exact parameter count
    try:
        with open(entry.path, "rb") as fh:
            head = fh.read(64)
    except OSError:
        return None
    fmt = sniff(head, entry.name, entry.size)
    if fmt is Format.SAFETENSORS:
        return "safetensors"
    if fmt is Format.GGUF:
        return "gguf"
    return None


def collect(root: Path, entries: Sequence[FileEntry], limits: Limits = DEFAULT_LIMITS) -> ModelFacts:
    """Gather :class:`ModelFacts` for the model in ``root`` whose files are ``entries``."""
    problems: list[Problem] = []
    by_name = {e.name: e for e in entries}
    front = FrontMatter()
    readme = next((by_name[n] for n in ("README.md", "readme.md", "README.MD") if n in by_name), None)
    if readme is not None:
        try:
            front = read_front_matter(readme.path, limits)
        except MetadataError as exc:
            problems.append(Problem("front-matter", readme.name, str(exc)))
        problems.extend(Problem("front-matter", readme.name, text) for text in front.problems)
    config = ConfigFacts()
    if "config.json" in by_name:
        try:
            config = read_config(by_name["config.json"].path, limits)
        except MetadataError as exc:
            problems.append(Problem("config", "config.json", str(exc)))

    st_total = 0
    st_seen = False
    failed: set[str] = set()  # formats with an unreadable file: their sum would be silently low
    gguf_groups: dict[str, int] = {}
    gguf_arch: str | None = None
    for entry in entries:
        kind = _weight_kind(entry)
        if kind is None:
            continue
        try:
            if kind == "safetensors":
                st_total += safetensors_parameters(entry.path, entry.size, limits)
                st_seen = True
            else:
                count, arch = gguf_parameters(entry.path, entry.size, limits)
                gguf_arch = gguf_arch or arch
                # Shards of one split GGUF add up; separate GGUF files are usually quantisations of one model.
                m = _SPLIT_GGUF.match(entry.name)
                group = m.group("stem") if m else entry.name
                gguf_groups[group] = gguf_groups.get(group, 0) + count
        except (FormatError, LimitExceeded) as exc:
            failed.add(kind)
            problems.append(Problem("weights", entry.name, f"the {kind} header cannot be read: {exc}"))
        except OSError as exc:
            failed.add(kind)
            problems.append(Problem("weights", entry.name, f"cannot read the {kind} header: {exc.strerror or exc}"))
    parameters: int | None = None
    source: str | None = None
    if st_seen and "safetensors" not in failed:
        parameters, source = st_total, "safetensors"
    elif gguf_groups and "gguf" not in failed:
        parameters, source = max(gguf_groups.values()), "gguf"
    else:
        parameters = estimate_parameters(config)
        source = "config-estimate" if parameters is not None else None
    return ModelFacts(front, config, parameters, source, gguf_arch, tuple(problems))


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:500]
