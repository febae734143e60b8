"""Lineage: which family a model belongs to, which base it declares, and which base its weights match.

Four independent sources, each read without executing anything:

* ``config.json`` -- ``architectures``, ``model_type`` and the shape numbers
  (vocabulary, hidden size, layers, attention heads and key/value heads, head
  size, RoPE base and scaling). The family is named from ``model_type`` (or the
  architecture) and cross-checked against the vocabulary size: a config
  relabelled to another family usually keeps its tokenizer's size.
* the tokenizer -- a hash of the vocabulary and merges of ``tokenizer.json``
  (or ``vocab.json`` + ``merges.txt``) in one canonical form, so that both
  layouts of the same tokenizer hash alike. Added tokens are counted apart:
  fine-tunes add chat tokens but keep the base vocabulary.
* the README front matter -- ``base_model`` (a string or a list) and
  ``base_model_relation``, as the Hugging Face model card defines them.
* the weight fingerprint (:mod:`aivet.provenance.fingerprint`), ranked against
  a local :class:`~aivet.provenance.registry.Registry`.

:func:`describe` gathers them into a :class:`Lineage`; :meth:`Lineage.to_record`
turns it into the Evidence record of kind ``"lineage"``.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aivet.errors import ArtifactError
from aivet.evidence import Record
from aivet.formats import FormatError, LimitExceeded
from aivet.limits import DEFAULT_LIMITS, Limits
from aivet.provenance.directory import allowed_root_for
from aivet.provenance.fingerprint import Fingerprint, FingerprintError, fingerprint_model
from aivet.provenance.hashing import plain_file_within
from aivet.provenance.registry import DEFAULT_THRESHOLD, Match, Registry

__all__ = [
    "ConfigFacts",
    "Lineage",
    "LineageError",
    "TokenizerFacts",
    "describe",
    "infer_family",
    "parse_config",
    "parse_front_matter",
    "parse_tokenizer",
    "parse_vocab_merges",
]

RECORD_KIND = "lineage"
MAX_BASE_MODELS = 32
MAX_NAME_CHARS = 200  # one declared base model id kept in the record
_FRONT_KEYS = ("base_model", "base_model_relation")  # the front matter entries lineage reads

# model_type -> family. Families group the variants a policy treats alike (Llama 2 and 3 are both "llama").
_FAMILIES: Mapping[str, str] = {
    "llama": "llama", "llama4": "llama", "llama4_text": "llama", "mllama": "llama",
    "mistral": "mistral", "mixtral": "mistral", "mistral3": "mistral", "ministral": "mistral",
    "qwen2": "qwen", "qwen2_moe": "qwen", "qwen3": "qwen", "qwen3_moe": "qwen", "qwen2_vl": "qwen",
    "qwen2_5_vl": "qwen", "qwen": "qwen",
    "gemma": "gemma", "gemma2": "gemma", "gemma3": "gemma", "gemma3_text": "gemma", "gemma3n": "gemma",
    "phi": "phi", "phi3": "phi", "phimoe": "phi", "phi4": "phi",
    "deepseek_v2": "deepseek", "deepseek_v3": "deepseek", "deepseek": "deepseek",
    "gpt2": "gpt2", "gpt_neox": "gpt-neox", "gptj": "gpt-j", "gpt_oss": "gpt-oss", "falcon": "falcon",
    "starcoder2": "starcoder", "gpt_bigcode": "starcoder", "olmo": "olmo", "olmo2": "olmo", "mpt": "mpt",
    "bloom": "bloom", "opt": "opt", "t5": "t5", "bert": "bert", "roberta": "roberta", "cohere": "command-r",
    "cohere2": "command-r", "internlm2": "internlm", "internlm3": "internlm", "baichuan": "baichuan",
    "chatglm": "glm", "glm": "glm", "glm4": "glm", "granite": "granite", "granitemoe": "granite",
    "exaone": "exaone", "stablelm": "stablelm", "yi": "yi", "smollm3": "smollm", "jamba": "jamba",
}
# Vocabulary sizes characteristic of a family's tokenizer (config vocab_size, padding included).
_VOCAB_FAMILIES: Mapping[int, tuple[str, ...]] = {
    32000: ("llama", "mistral", "yi"), 128256: ("llama",), 202048: ("llama",), 32768: ("mistral",),
    131072: ("mistral",), 151936: ("qwen",), 152064: ("qwen",), 151665: ("qwen",), 256000: ("gemma",),
    262144: ("gemma",), 262208: ("gemma",), 32064: ("phi",), 100352: ("phi",), 51200: ("phi",),
    102400: ("deepseek",), 129280: ("deepseek",), 50257: ("gpt2",), 50304: ("gpt-neox", "olmo"),
    50432: ("gpt-neox",), 65024: ("falcon",), 49152: ("starcoder", "granite", "smollm"), 250880: ("bloom",),
}
_ARCH_SUFFIXES = ("ForCausalLM", "ForConditionalGeneration", "LMHeadModel", "Model", "ForSequenceClassification")
# Shape numbers read from the config (first name found wins); text_config is consulted for multimodal models.
_SHAPE_KEYS: Mapping[str, tuple[str, ...]] = {
    "vocab_size": ("vocab_size", "padded_vocab_size"),
    "hidden_size": ("hidden_size", "n_embd", "d_model"),
    "num_layers": ("num_hidden_layers", "n_layer", "num_layers"),
    "num_attention_heads": ("num_attention_heads", "n_head", "num_heads"),
    "num_key_value_heads": ("num_key_value_heads", "multi_query_group_num", "n_head_kv"),
    "head_dim": ("head_dim", "kv_channels"),
    "intermediate_size": ("intermediate_size", "n_inner", "ffn_dim"),
    "max_position_embeddings": ("max_position_embeddings", "n_positions", "seq_length"),
    "rope_theta": ("rope_theta", "rotary_emb_base"),
}


class LineageError(ArtifactError):
    """A lineage input (config, tokenizer, weights) is unusable; the message names the file."""


@dataclass(frozen=True)
class ConfigFacts:
    """What ``config.json`` says about the architecture. Values of the wrong type are left out."""

    model_type: str | None
    architectures: tuple[str, ...]
    shape: Mapping[str, float | int]  # keys of _SHAPE_KEYS that were present and numeric
    rope_scaling: str | None = None  # rope_scaling.rope_type / type, e.g. "llama3", "yarn"
    name_or_path: str | None = None  # _name_or_path: often the hub id of the model it was saved from

    @property
    def shape_digest(self) -> str:
        """``sha256:`` over the shape numbers and RoPE scaling: equal for same-shaped models, whatever their names."""
        text = json.dumps({**self.shape, "rope_scaling": self.rope_scaling}, sort_keys=True)
        return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class TokenizerFacts:
    """A canonical hash of a tokenizer's vocabulary and merges."""

    kind: str  # "tokenizer.json" | "vocab.json+merges.txt" | "sentencepiece"
    vocab_hash: str  # sha256: over (id, token) pairs and merges
    vocab_size: int
    merges: int
    added_tokens: int = 0


@dataclass(frozen=True)
class Lineage:
    """Everything lineage found about one model directory."""

    path: str
    config: ConfigFacts | None
    family: str | None
    family_reasons: tuple[str, ...]
    family_consistent: bool | None  # False when the vocabulary size points to another family
    declared_base_models: tuple[str, ...]
    base_model_relation: str | None
    tokenizer: TokenizerFacts | None
    fingerprint: Fingerprint | None
    matches: tuple[Match, ...] = ()
    threshold: float = DEFAULT_THRESHOLD
    notes: tuple[str, ...] = field(default=())  # why a source is missing or unusable

    @property
    def best_match(self) -> Match | None:
        """The highest-ranked registered model the weights match, if any."""
        return next((m for m in self.matches if m.matched), None)

    @property
    def declared_base_consistent(self) -> bool | None:
        """Whether the weight match agrees with the declared base (None when nothing matched or nothing was declared)."""
        best = self.best_match
        declared = {d.lower() for d in self.declared_base_models}
        if best is None or not declared:
            return None
        return best.name.lower() in declared

    def _match_dict(self, match: Match) -> dict[str, Any]:
        """A match, plus whether the subject's tokenizer and family agree with the registered model's."""
        ours = self.tokenizer.vocab_hash if self.tokenizer else None
        same_tok = None if ours is None or match.tokenizer_hash is None else ours == match.tokenizer_hash
        same_family = None if self.family is None or match.family is None else self.family == match.family
        return {**match.to_dict(), "same_tokenizer": same_tok, "same_family": same_family}

    def to_record(self, subject: str) -> Record:
        """The Evidence record (kind ``"lineage"``) for ``subject``."""
        cfg = self.config
        data: dict[str, Any] = {
            "family": self.family,
            "family_reasons": list(self.family_reasons),
            "family_consistent": self.family_consistent,
            "model_type": cfg.model_type if cfg else None,
            "architectures": list(cfg.architectures) if cfg else [],
            "shape": dict(cfg.shape) if cfg else {},
            "rope_scaling": cfg.rope_scaling if cfg else None,
            "shape_digest": cfg.shape_digest if cfg else None,
            "config_name_or_path": cfg.name_or_path if cfg else None,
            "declared_base_models": list(self.declared_base_models),
            "base_model_relation": self.base_model_relation,
            "tokenizer_hash": self.tokenizer.vocab_hash if self.tokenizer else None,
            "tokenizer": None if self.tokenizer is None else {
                "kind": self.tokenizer.kind, "vocab_size": self.tokenizer.vocab_size,
                "merges": self.tokenizer.merges, "added_tokens": self.tokenizer.added_tokens},
            "fingerprint_digest": self.fingerprint.digest if self.fingerprint else None,
            "fingerprint_tensors": len(self.fingerprint.tensors) if self.fingerprint else 0,
            "fingerprint_truncated": self.fingerprint.truncated if self.fingerprint else False,
            "threshold": self.threshold,
            "matches": [self._match_dict(m) for m in self.matches],
            "matched_base": self.best_match.name if self.best_match else None,
            "declared_base_consistent": self.declared_base_consistent,
            "notes": list(self.notes),
        }
        return Record(RECORD_KIND, subject, data)


# -- config.json ----------------------------------------------------------------------------


def _loads(data: bytes, what: str) -> Any:
    try:
        return json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise FormatError(f"{what} is not UTF-8: {exc.reason}", exc.start) from None
    except RecursionError:
        raise LimitExceeded("max_metadata_depth", f"{what} nests too deeply to decode", 0) from None
    except ValueError as exc:
        raise FormatError(f"{what} is not valid JSON: {exc}", getattr(exc, "pos", None)) from None


def _number(value: Any) -> int | float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int) and 0 <= value < 2**63:
        return value
    if isinstance(value, float) and math.isfinite(value) and value >= 0:
        return int(value) if value.is_integer() else value
    return None


def _short_str(value: Any, limit: int = 200) -> str | None:
    return value.strip()[:limit] if isinstance(value, str) and value.strip() else None


def parse_config(data: bytes) -> ConfigFacts:
    """Read the architecture facts from the bytes of a ``config.json``.

    Raises :class:`FormatError` when it is not a JSON object; unexpected value
    types are ignored (a hostile config cannot make a field appear).
    """
    obj = _loads(data, "config.json")
    if not isinstance(obj, dict):
        raise FormatError("config.json is not a JSON object", 0)
    text_cfg = obj.get("text_config")
    scopes = [obj] + ([text_cfg] if isinstance(text_cfg, dict) else [])
    shape: dict[str, int | float] = {}
    for key, names in _SHAPE_KEYS.items():
        for scope in scopes:
            found = next((n for n in (_number(scope.get(k)) for k in names) if n is not None), None)
            if found is not None:
                shape[key] = found
                break
    archs = obj.get("architectures")
    architectures = tuple(a for a in (_short_str(x) for x in archs[:16]) if a) if isinstance(archs, list) else ()
    model_type = _short_str(obj.get("model_type"), 64)
    if isinstance(text_cfg, dict) and model_type is not None and model_type not in _FAMILIES:
        model_type = _short_str(text_cfg.get("model_type"), 64) or model_type
    scaling = next((s.get("rope_scaling") for s in scopes if isinstance(s.get("rope_scaling"), dict)), None)
    rope = _short_str(scaling.get("rope_type") or scaling.get("type"), 32) if isinstance(scaling, dict) else None
    return ConfigFacts(model_type, architectures, shape, rope, _short_str(obj.get("_name_or_path")))


def infer_family(config: ConfigFacts) -> tuple[str | None, tuple[str, ...], bool | None]:
    """Name the family from ``model_type`` or the architecture; check it against the vocabulary size.

    Returns ``(family, reasons, consistent)``; ``consistent`` is False when the
    vocabulary size is characteristic of other families only, None when it says nothing.
    """
    reasons: list[str] = []
    family = None
    if config.model_type and config.model_type.lower() in _FAMILIES:
        family = _FAMILIES[config.model_type.lower()]
        reasons.append(f"model_type {config.model_type!r}")
    else:
        for arch in config.architectures:
            stem = arch
            for suffix in _ARCH_SUFFIXES:
                if stem.endswith(suffix) and len(stem) > len(suffix):
                    stem = stem[: -len(suffix)]
                    break
            if stem.lower() in _FAMILIES:
                family = _FAMILIES[stem.lower()]
                reasons.append(f"architecture {arch!r}")
                break
    vocab = config.shape.get("vocab_size")
    hinted = _VOCAB_FAMILIES.get(vocab) if isinstance(vocab, int) else None
    consistent: bool | None = None
    if hinted:
        reasons.append(f"vocab_size {vocab} is typical of {', '.join(hinted)}")
        if family is None and len(hinted) == 1:
            family = hinted[0]
        consistent = family in hinted
    return family, tuple(reasons), consistent


# -- tokenizer ------------------------------------------------------------------------------


def _canonical_hash(vocab: Mapping[str, Any] | Sequence[Any], merges: Sequence[Any]) -> tuple[str, int, int]:
    h = hashlib.sha256(b"aivet-tokenizer-v1\n")
    pairs: list[tuple[int, str]] = []
    if isinstance(vocab, Mapping):
        pairs = [(i, str(tok)) for tok, i in vocab.items() if isinstance(i, int) and not isinstance(i, bool)]
    else:  # Unigram: [[piece, score], ...]; the id is the position
        pairs = [(i, str(p[0])) for i, p in enumerate(vocab) if isinstance(p, list) and p and isinstance(p[0], str)]
    for i, tok in sorted(pairs):
        h.update(f"{i}\t{json.dumps(tok)}\n".encode())
    h.update(b"merges\n")
    count = 0
    for m in merges:
        if isinstance(m, str):  # the older "a b" form; tokens never hold a space there
            parts = m.split(" ", 1)
        elif isinstance(m, list) and all(isinstance(p, str) for p in m):
            parts = m
        else:
            continue
        h.update(json.dumps(parts).encode() + b"\n")
        count += 1
    return "sha256:" + h.hexdigest(), len(pairs), count


def parse_tokenizer(data: bytes) -> TokenizerFacts:
    """Hash the vocabulary and merges of a ``tokenizer.json``; raises :class:`FormatError` if it has none."""
    obj = _loads(data, "tokenizer.json")
    model = obj.get("model") if isinstance(obj, dict) else None
    if not isinstance(model, dict) or not isinstance(model.get("vocab"), (dict, list)):
        raise FormatError("tokenizer.json has no model.vocab", 0)
    merges = model.get("merges")
    digest, size, count = _canonical_hash(model["vocab"], merges if isinstance(merges, list) else [])
    added = obj.get("added_tokens")
    return TokenizerFacts("tokenizer.json", digest, size, count, len(added) if isinstance(added, list) else 0)


def parse_vocab_merges(vocab: bytes, merges: bytes | None) -> TokenizerFacts:
    """Hash a GPT-2 style ``vocab.json`` (+ ``merges.txt``) exactly as the same tokenizer.json would hash."""
    obj = _loads(vocab, "vocab.json")
    if not isinstance(obj, dict):
        raise FormatError("vocab.json is not a JSON object", 0)
    lines: list[Any] = []
    if merges is not None:
        text = merges.decode("utf-8", errors="replace")
        lines = [ln for ln in text.splitlines() if ln and not ln.startswith("#version")]
    digest, size, count = _canonical_hash(obj, lines)
    return TokenizerFacts("vocab.json+merges.txt", digest, size, count)


# -- README front matter ---------------------------------------------------------------------


def parse_front_matter(text: str) -> tuple[tuple[str, ...], str | None]:
    """``(base_model entries, base_model_relation)`` from a model card's YAML front matter; never raises.

    A view of :func:`aivet.provenance.modelcard.parse_front_matter`, the one
    model-card parser, reading only the top-level ``base_model`` and
    ``base_model_relation`` entries: a card's long or broken ``model-index``
    never reaches the YAML parser, which keeps the work small whatever the
    card holds. Only string values are taken; a card that cannot be read
    declares nothing.
    """
    from aivet.provenance.modelcard import MetadataError
    from aivet.provenance.modelcard import parse_front_matter as parse_card

    try:
        front = parse_card(text, only=_FRONT_KEYS)
    except MetadataError:
        return (), None
    bases = tuple(dict.fromkeys(b[:MAX_NAME_CHARS] for b in front.base_models))[:MAX_BASE_MODELS]
    relation = front.base_model_relation
    return bases, relation[:32] if relation else None


# -- gathering ------------------------------------------------------------------------------


def _read(path: Path, limit: int, limit_name: str, allowed: Path) -> bytes:
    if not plain_file_within(path, allowed):
        # A link out of the model (or out of its hub cache repository) is never followed.
        raise FormatError(f"{path.name} is a symbolic link that leaves the model directory, or not a regular file",
                          0)
    with open(path, "rb") as fh:
        data = fh.read(limit + 1)
    if len(data) > limit:
        raise LimitExceeded(limit_name, f"{path.name} is larger than {limit} bytes", limit)
    return data


def _tokenizer(model_dir: Path, limits: Limits, allowed: Path) -> TokenizerFacts | None:
    if (model_dir / "tokenizer.json").is_file():
        return parse_tokenizer(_read(model_dir / "tokenizer.json", limits.max_json_bytes, "max_json_bytes", allowed))
    if (model_dir / "vocab.json").is_file():
        merges_path = model_dir / "merges.txt"
        merges = _read(merges_path, limits.max_json_bytes, "max_json_bytes", allowed) \
            if merges_path.is_file() else None
        return parse_vocab_merges(_read(model_dir / "vocab.json", limits.max_json_bytes, "max_json_bytes", allowed),
                                  merges)
    if (model_dir / "tokenizer.model").is_file():  # sentencepiece protobuf: hashed as bytes
        data = _read(model_dir / "tokenizer.model", limits.max_json_bytes, "max_json_bytes", allowed)
        return TokenizerFacts("sentencepiece", "sha256:" + hashlib.sha256(data).hexdigest(), 0, 0)
    return None


def describe(model_dir: str | os.PathLike[str], *, registry: Registry | None = None,
             threshold: float = DEFAULT_THRESHOLD, top: int = 5, fingerprint: bool = True,
             limits: Limits = DEFAULT_LIMITS, allowed_root: Path | None = None) -> Lineage:
    """Gather the lineage of ``model_dir``: config, family, declared base, tokenizer hash, fingerprint, matches.

    A missing or unreadable config, tokenizer or README becomes a note (the
    other sources still count). Unusable weights raise :class:`LineageError`
    only when ``registry`` is given (a match was asked for); otherwise they are
    a note too. Raises :class:`LineageError` when ``model_dir`` is not a directory.
    Links are followed only inside ``allowed_root`` (default: the hub cache
    repository when ``model_dir`` is a snapshot, else ``model_dir``).
    """
    root = Path(model_dir)
    if not root.is_dir():
        raise LineageError(f"{root}: not a model directory")
    allowed = allowed_root_for(root, allowed_root)
    notes: list[str] = []
    config: ConfigFacts | None = None
    tok: TokenizerFacts | None = None
    bases: tuple[str, ...] = ()
    relation: str | None = None
    try:
        if (root / "config.json").is_file():
            config = parse_config(_read(root / "config.json", limits.max_json_bytes, "max_json_bytes", allowed))
        else:
            notes.append("no config.json: family not inferred")
    except (FormatError, LimitExceeded, OSError) as exc:
        notes.append(f"config.json unusable: {exc}")
    try:
        tok = _tokenizer(root, limits, allowed)
        if tok is None:
            notes.append("no tokenizer.json, vocab.json or tokenizer.model")
    except (FormatError, LimitExceeded, OSError) as exc:
        notes.append(f"tokenizer unusable: {exc}")
    readme = root / "README.md"
    if readme.is_file():
        try:
            bases, relation = parse_front_matter(
                _read(readme, limits.max_text_file_bytes, "max_text_file_bytes", allowed)
                .decode("utf-8", errors="replace"))
        except (FormatError, LimitExceeded, OSError) as exc:
            notes.append(f"README.md unusable: {exc}")
    family, reasons, consistent = infer_family(config) if config else (None, (), None)
    fp: Fingerprint | None = None
    matches: tuple[Match, ...] = ()
    if fingerprint or registry is not None:
        try:
            fp = fingerprint_model(root, limits, allowed_root=allowed)
        except FingerprintError as exc:
            if registry is not None:
                raise LineageError(exc.diagnostics()) from None
            notes.append(f"no weight fingerprint: {exc}")
    if fp is not None and registry is not None:
        matches = registry.match(fp, threshold=threshold, top=top)
        if registry.skipped_rows:
            notes.append(f"{registry.skipped_rows} registry rows could not be read")
    return Lineage(str(root), config, family, reasons, consistent, bases, relation, tok, fp, matches,
                   threshold, tuple(notes))
