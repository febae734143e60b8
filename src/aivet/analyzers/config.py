"""JSON in model repositories: ``config.json``, tokenizer and processor configs, anything ``.json``.

Configs decide what code a loader runs. ``auto_map`` names the Python classes
``trust_remote_code=True`` imports, and may point into *another* repository
(``"org/repo--modeling_x.Model"``) whose code nobody reviewed with this one.
``custom_pipelines`` does the same for ``pipeline()``, and the ``image_processor`` /
``feature_extractor`` / ``video_processor`` objects nested in a processor config carry
their own ``auto_map`` (transformers reads the nested object as that processor's config).
The configs of sentence-transformers, diffusers and PEFT are checked by
:mod:`aivet.analyzers.config_libraries`. Tokenizer configs carry
the Jinja ``chat_template`` that renders every prompt (handed to
:mod:`aivet.analyzers.template`). The parse is strict and bounded: duplicate keys
are reported because parsers disagree about which value wins (a scanner may
see one ``auto_map`` and the loader another).
"""

from __future__ import annotations

import importlib
import json
import posixpath
import re
import time
from collections.abc import Iterator
from typing import Any

from aivet.analyzers.context import Context
from aivet.analyzers.engine import Outcome
from aivet.analyzers.paths import escapes_syntactically
from aivet.analyzers.secrets import read_text, scan_text_bounded
from aivet.analyzers.source import Source
from aivet.evidence import ArtifactStatus, Location, Severity
from aivet.formats import FormatError
from aivet.formats.safetensors import json_cost
from aivet.rules import ATLAS_EVADE, ATLAS_SUPPLY_CHAIN_MODEL, ATLAS_UNSAFE_ARTIFACTS, LIMIT_EXCEEDED, Rule

_ATLAS = (ATLAS_SUPPLY_CHAIN_MODEL, ATLAS_UNSAFE_ARTIFACTS)

REMOTE_CODE = Rule(
    "CONFIG-REMOTE-CODE", "Model needs trust_remote_code",
    "auto_map or custom_pipelines (or a sentence-transformers modules.json type, a diffusers "
    "model_index.json component or custom pipeline) name Python modules shipped in the repository; loading "
    "the model runs them (transformers and diffusers ask for trust_remote_code=True; sentence-transformers "
    "does not when the model is a local directory). The modules are analysed separately; this finding "
    "records that the model executes repository code at all.",
    Severity.LOW, _ATLAS, ("CWE-829",))
REMOTE_CODE_EXTERNAL = Rule(
    "CONFIG-REMOTE-CODE-EXTERNAL", "Remote code from another repository",
    "An auto_map, custom_pipelines or modules.json entry of the form 'org/repo--module.Class' (or a "
    "diffusers _class_name naming another repository or a community pipeline) makes the loader download "
    "and execute code from a different repository, which a review of this one does not cover and which "
    "can change at any time. A community pipeline, from diffusers' own mirror, is medium.",
    Severity.HIGH, _ATLAS, ("CWE-829", "CWE-494"))
AUTO_MAP_MISSING = Rule(
    "CONFIG-AUTO-MAP-MISSING", "auto_map names a module that is not in the repository",
    "The config points at a Python module the repository does not contain. Loading fails, or picks up "
    "a module of that name from somewhere else (another revision, the module path).",
    Severity.MEDIUM, _ATLAS, ("CWE-829",))
AUTO_MAP_INVALID = Rule(
    "CONFIG-AUTO-MAP-INVALID", "Malformed auto_map reference",
    "An auto_map or custom_pipelines reference is not 'module.Class' or 'org/repo--module.Class' "
    "(path separators, '..', odd characters): an attempt to steer the module loader.",
    Severity.MEDIUM, _ATLAS + (ATLAS_EVADE,), ("CWE-22",))
DUPLICATE_KEY = Rule(
    "CONFIG-DUPLICATE-KEY", "Duplicate key in JSON",
    "The same key appears twice in one object. Python keeps the last value, other parsers the first: "
    "a scanner and a loader can disagree about the content (parser differential).",
    Severity.MEDIUM, (ATLAS_EVADE,), ("CWE-436",))
TRUST_REMOTE_CODE = Rule(
    "CONFIG-TRUST-REMOTE-CODE", "Config enables trust_remote_code",
    "A configuration value sets trust_remote_code to true (for example in model_kwargs of a "
    "sentence-transformers config), so tools that honour it run repository code without asking.",
    Severity.MEDIUM, _ATLAS, ("CWE-829",))
EXTERNAL_REFERENCE = Rule(
    "CONFIG-EXTERNAL-REFERENCE", "Config refers to another model",
    "_name_or_path, base_model or base_model_name_or_path names another repository or a path on the "
    "publisher's machine. Recorded for lineage; a URL or absolute path is low.",
    Severity.INFO, (ATLAS_SUPPLY_CHAIN_MODEL,), ())
QUANT_METHOD = Rule(
    "CONFIG-QUANT-METHOD", "Unusual quantization method",
    "quantization_config names a quant_method that transformers does not ship; loading it needs custom "
    "code or a third-party package.",
    Severity.LOW, (ATLAS_SUPPLY_CHAIN_MODEL,), ("CWE-829",))
INVALID_TEMPLATE = Rule(
    "CONFIG-CHAT-TEMPLATE-INVALID", "chat_template has an unexpected shape",
    "chat_template must be a string or a list of {name, template} objects; anything else is rejected "
    "by some loaders and rendered by others.",
    Severity.LOW, (ATLAS_EVADE,), ("CWE-20",))

RULES = (REMOTE_CODE, REMOTE_CODE_EXTERNAL, AUTO_MAP_MISSING, AUTO_MAP_INVALID, DUPLICATE_KEY, TRUST_REMOTE_CODE,
         EXTERNAL_REFERENCE, QUANT_METHOD, INVALID_TEMPLATE)

# transformers' built-in quantizers (facts from its AutoQuantizationConfig mapping).
KNOWN_QUANT_METHODS = frozenset({
    "bitsandbytes", "bitsandbytes_4bit", "bitsandbytes_8bit", "gptq", "awq", "aqlm", "quanto", "eetq", "hqq",
    "compressed-tensors", "compressed_tensors", "fbgemm_fp8", "torchao", "bitnet", "vptq", "spqr", "fp8",
    "higgs", "quark", "auto-round", "auto_round", "mxfp4", "fp_quant", "optimum_quanto", "exl2", "exllama",
    "marlin", "gptq_marlin", "awq_marlin", "modelopt", "nvfp4", "gguf", "squeezellm", "deepspeedfp", "experts_int8",
    "mlx", "tpu_int8", "qqq", "ipex", "moe_wna16", "petit_nvfp4", "quantized"})
_TOKENIZER_NAMES = ("tokenizer_config.json", "chat_template.json", "processor_config.json",
                    "preprocessor_config.json", "special_tokens_map.json")
_MODULE_REF = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$")
_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,95}(/[A-Za-z0-9][A-Za-z0-9._\-]{0,95})?$")
_WALK_LIMIT = 200_000  # values visited looking for trust_remote_code (tokenizer.json holds millions)
# Limits.max_json_cost bounds the memory a JSON file may take to parse, estimated by
# aivet.formats.safetensors.json_cost: 64 MiB of "{}," would take 4 GiB; the largest real
# tokenizer.json files (a 262k vocabulary with half a million merges) estimate near 220 MiB.
# Processor sub-configs that transformers reads as a whole config, auto_map included
# (get_image_processor_dict: ``image_processor_dict.get("image_processor", image_processor_dict)``).
_NESTED_PROCESSORS = ("image_processor", "feature_extractor", "video_processor")
_SECURITY_KEYS = frozenset({"auto_map", "chat_template", "custom_pipelines", "trust_remote_code", "quant_method",
                            "tokenizer_class", "_name_or_path"})


class _Duplicates:
    """object_pairs_hook that builds dicts and remembers keys seen twice in one object."""

    def __init__(self) -> None:
        self.keys: list[str] = []
        self.count = 0

    def __call__(self, pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in pairs:
            if key in out:
                self.count += 1
                if len(self.keys) < 20 and key not in self.keys:
                    self.keys.append(key)
            out[key] = value
        return out


def parse_json(text: str) -> tuple[Any, _Duplicates]:
    """Parse JSON as Python loaders do, counting duplicate keys. Raises ValueError or RecursionError.

    NaN and Infinity are accepted because transformers accepts them: rejecting
    them would report a difference no loader sees.
    """
    dups = _Duplicates()
    return json.loads(text, object_pairs_hook=dups), dups


def analyze(source: Source, ctx: Context) -> Outcome:
    """Analyzer for JSON files: configs, tokenizer configs (chat templates), any other JSON."""
    limit = ctx.limits.max_json_bytes
    text, truncated = read_text(source, limit)
    _, secrets_stopped = scan_text_bounded(text, ctx.location(source), ctx)  # raw text: gives line numbers
    name = posixpath.basename(source.name).lower()
    if truncated:
        ctx.add(LIMIT_EXCEEDED.finding(ctx.location(source, offset=limit),
                                       f"JSON file larger than {limit} bytes; only searched for secrets",
                                       limit="max_json_bytes"))
        return Outcome("json", ArtifactStatus.PARTIAL, "too large to parse")
    if name.endswith(".jsonl"):
        return _analyze_lines(text, source, ctx, secrets_stopped)
    cost, max_cost = json_cost(text), ctx.limits.max_json_cost
    if cost > max_cost:
        ctx.add(LIMIT_EXCEEDED.finding(
            ctx.location(source), f"JSON would take about {cost >> 20} MiB to parse (more than "
            f"{max_cost >> 20} MiB); only searched for secrets", limit="max_json_cost"))
        return Outcome("json", ArtifactStatus.PARTIAL, "too costly to parse")
    try:
        data, dups = parse_json(text)
    except RecursionError:
        ctx.add(LIMIT_EXCEEDED.finding(ctx.location(source), "JSON nested too deeply to parse",
                                       limit="python-recursion"))
        return Outcome("json", ArtifactStatus.PARTIAL, "nested too deeply")
    except ValueError as exc:
        if name.endswith(".json"):
            raise FormatError(f"not valid JSON: {exc}",
                              getattr(exc, "pos", None) if isinstance(exc, json.JSONDecodeError) else None) from None
        return Outcome("text", ArtifactStatus.ANALYZED, "not JSON; searched for secrets")
    if dups.count:
        security = [k for k in dups.keys if k in _SECURITY_KEYS]
        ctx.add(DUPLICATE_KEY.finding(
            ctx.location(source), f"{dups.count} duplicate key(s): {', '.join(dups.keys[:5])}",
            severity=Severity.HIGH if security else None, keys=dups.keys, count=dups.count))
    fmt = "hf-config" if name == "config.json" else "tokenizer-config" if name in _TOKENIZER_NAMES else "json"
    # Keras 3 loads a directory holding config.json as it loads a .keras zip (and model_from_json
    # reads the same shape): a top-level class_name and config, which no transformers config has.
    from aivet.analyzers.keras import check_keras_json_config

    if check_keras_json_config(data, source, ctx):
        fmt = "keras-config"
    if isinstance(data, dict):
        templates = _check_config(data, source, ctx)
    else:
        templates = ArtifactStatus.ANALYZED
    # Imported here: config_libraries imports this module's rules.
    from aivet.analyzers.config_libraries import check_library_config

    libraries_complete = name == "tokenizer.json" or check_library_config(data, source, ctx)
    if name != "tokenizer.json":  # its millions of vocabulary entries hold no settings
        _trust_flags(data, source, ctx)
    if secrets_stopped:
        return Outcome(fmt, ArtifactStatus.PARTIAL, "secret search stopped early")
    if templates is not ArtifactStatus.ANALYZED:  # a template past its budget, or one not analysed
        return Outcome(fmt, ArtifactStatus.PARTIAL, "a chat template was not fully analysed")
    if not libraries_complete:
        return Outcome(fmt, ArtifactStatus.PARTIAL, "too many findings to report")
    return Outcome(fmt)


def _analyze_lines(text: str, source: Source, ctx: Context, secrets_stopped: bool) -> Outcome:
    deadline = ctx.deadline()
    max_lines, max_cost = ctx.limits.max_jsonl_lines, ctx.limits.max_json_cost
    for n, line in enumerate(_lines(text), 1):
        if n > max_lines or (n % 4096 == 0 and time.monotonic() > deadline):
            limit = "max_jsonl_lines" if n > max_lines else "max_seconds_per_file"
            ctx.add(LIMIT_EXCEEDED.finding(ctx.location(source, line=n), f"JSON lines checked up to line {n - 1}; "
                                           "the rest were only searched for secrets", limit=limit))
            return Outcome("jsonl", ArtifactStatus.PARTIAL, "too many lines")
        if not line.strip():
            continue
        if json_cost(line) > max_cost:
            ctx.add(LIMIT_EXCEEDED.finding(ctx.location(source, line=n), "JSON line too costly to parse",
                                           limit="max_json_cost"))
            return Outcome("jsonl", ArtifactStatus.PARTIAL, "too costly to parse")
        try:
            parse_json(line)
        except RecursionError:
            ctx.add(LIMIT_EXCEEDED.finding(ctx.location(source, line=n), "JSON nested too deeply to parse",
                                           limit="python-recursion"))
            return Outcome("jsonl", ArtifactStatus.PARTIAL, "nested too deeply")
        except ValueError as exc:
            raise FormatError(f"line {n} is not valid JSON: {exc}") from None
    if secrets_stopped:
        return Outcome("jsonl", ArtifactStatus.PARTIAL, "secret search stopped early")
    return Outcome("jsonl")


def _lines(text: str) -> Iterator[str]:
    """The lines of ``text`` one at a time (``splitlines`` would hold millions of strings at once)."""
    start, end = 0, len(text)
    while start < end:
        stop = text.find("\n", start)
        if stop < 0:
            stop = end
        yield text[start:stop]
        start = stop + 1


def _check_config(data: dict[str, Any], source: Source, ctx: Context) -> ArtifactStatus:
    """Check the settings of a config; return the status of its chat templates (ANALYZED when none)."""
    refs = _auto_map_refs(data.get("auto_map"), "", source, ctx)  # (pointer, reference)
    for nested in _NESTED_PROCESSORS:
        if isinstance(data.get(nested), dict):
            refs += _auto_map_refs(data[nested].get("auto_map"), f"/{nested}", source, ctx)
    pipelines = data.get("custom_pipelines")
    if isinstance(pipelines, dict):
        for task, spec in list(pipelines.items())[:64]:
            if isinstance(spec, dict):
                for key in ("impl", "pt", "tf"):
                    impls = spec.get(key)
                    for i, impl in enumerate(impls if isinstance(impls, list) else [impls]):
                        if isinstance(impl, str):
                            refs.append((f"/custom_pipelines/{_esc(task)}/{key}"
                                         + (f"/{i}" if isinstance(impls, list) else ""), impl))
    if refs:
        _check_refs(refs, source, ctx)
    _check_references(data, source, ctx)
    quant = data.get("quantization_config")
    if isinstance(quant, dict):
        method = quant.get("quant_method")
        if isinstance(method, str) and method.lower() not in KNOWN_QUANT_METHODS:
            ctx.add(QUANT_METHOD.finding(ctx.location(source, pointer="/quantization_config/quant_method"),
                                         f"quant_method {method[:80]!r} is not one transformers ships",
                                         quant_method=method[:80]))
    if "chat_template" in data:
        return _chat_templates(data["chat_template"], source, ctx)
    return ArtifactStatus.ANALYZED


def _auto_map_refs(auto_map: Any, base: str, source: Source, ctx: Context) -> list[tuple[str, str]]:
    """(pointer, reference) for each class reference of an ``auto_map`` object found at ``base``."""
    refs: list[tuple[str, str]] = []
    if isinstance(auto_map, dict):
        for key, value in auto_map.items():
            values = value if isinstance(value, list) else [value]
            for i, v in enumerate(values[:16]):
                if isinstance(v, str):
                    refs.append((f"{base}/auto_map/{_esc(key)}" + (f"/{i}" if isinstance(value, list) else ""), v))
    elif auto_map is not None:
        ctx.add(AUTO_MAP_INVALID.finding(ctx.location(source, pointer=f"{base}/auto_map"),
                                         f"auto_map is a {type(auto_map).__name__}, not an object"))
    return refs


def _check_refs(refs: list[tuple[str, str]], source: Source, ctx: Context) -> None:
    directory = posixpath.dirname(source.name)
    in_archive = "!" in source.path
    local_modules: list[str] = []
    for pointer, ref in refs:
        where = ctx.location(source, pointer=pointer)
        repo, sep, rest = ref.partition("--")
        if sep:
            if not _REPO_ID.match(repo) or not _MODULE_REF.match(rest):
                ctx.add(AUTO_MAP_INVALID.finding(where, f"malformed reference {ref[:120]!r}", reference=ref[:200]))
            ctx.add(REMOTE_CODE_EXTERNAL.finding(
                where, f"loads code from another repository: {repo[:100]} ({rest[:100]})",
                repo=repo[:200], reference=ref[:200]))
            continue
        if not _MODULE_REF.match(ref):
            ctx.add(AUTO_MAP_INVALID.finding(where, f"malformed reference {ref[:120]!r}", reference=ref[:200]))
            continue
        module = ref.rsplit(".", 1)[0]
        local_modules.append(module)
        module_file = posixpath.join(directory, module.replace(".", "/") + ".py")
        if not in_archive and ctx.repo_files and module_file not in ctx.repo_files:
            ctx.add(AUTO_MAP_MISSING.finding(where, f"{ref} needs {module_file}, which the repository does not contain",
                                             module=module, expected_file=module_file))
    if local_modules:
        modules = sorted(set(local_modules))
        first = refs[0][0]  # the object holding the references: /auto_map, /image_processor/auto_map...
        container = first[:first.index("/auto_map/") + 9] if "/auto_map/" in first else "/" + first.split("/")[1]
        ctx.add(REMOTE_CODE.finding(ctx.location(source, pointer=container),
                                    f"loading runs repository code: {', '.join(modules[:8])}", modules=modules[:32]))


def _check_references(data: dict[str, Any], source: Source, ctx: Context) -> None:
    for key in ("_name_or_path", "base_model", "base_model_name_or_path"):
        value = data.get(key)
        if not isinstance(value, str) or not value.strip():
            continue
        ctx.add(EXTERNAL_REFERENCE.finding(
            ctx.location(source, pointer=f"/{key}"), f"{key} is {value[:120]!r}",
            severity=reference_severity(value), key=key, value=value[:200]))


def reference_severity(value: str) -> Severity | None:
    """LOW for a model reference that leaves the repository's world (a URL, a path outside it), else default.

    A hub id or a relative path is expected; a path that leaves the repository or a URL is odd.
    """
    odd = escapes_syntactically(value) or value.startswith(("http://", "https://", "file:"))
    return Severity.LOW if odd else None


def _chat_templates(value: Any, source: Source, ctx: Context) -> ArtifactStatus:
    """Analyse each chat template; PARTIAL when one was skipped or stopped at a limit."""
    templates: list[tuple[str, str]] = []
    if isinstance(value, str):
        templates.append(("/chat_template", value))
    elif isinstance(value, list):
        for i, item in enumerate(value[:256]):
            if isinstance(item, dict) and isinstance(item.get("template"), str):
                templates.append((f"/chat_template/{i}/template", item["template"]))
            else:
                ctx.add(INVALID_TEMPLATE.finding(ctx.location(source, pointer=f"/chat_template/{i}"),
                                                 "entry is not a {name, template} object"))
    elif value is not None:
        ctx.add(INVALID_TEMPLATE.finding(ctx.location(source, pointer="/chat_template"),
                                         f"chat_template is a {type(value).__name__}"))
    if not templates:
        return ArtifactStatus.ANALYZED
    try:
        template = importlib.import_module("aivet.analyzers.template")
    except ModuleNotFoundError as exc:  # the template analyzer is optional while it is being written
        if exc.name != "aivet.analyzers.template":
            raise
        return ArtifactStatus.PARTIAL
    status = ArtifactStatus.ANALYZED
    max_templates = ctx.limits.max_templates_per_file
    if len(templates) > max_templates:
        ctx.add(LIMIT_EXCEEDED.finding(ctx.location(source, pointer=templates[max_templates][0]),
                                       f"{len(templates)} chat templates; only the first {max_templates} "
                                       "were analysed", limit="max_templates_per_file"))
        templates, status = templates[:max_templates], ArtifactStatus.PARTIAL
    quota = template.TemplateQuota(ctx)
    for pointer, text in templates:
        if len(text) > ctx.limits.max_string_bytes:
            ctx.add(LIMIT_EXCEEDED.finding(ctx.location(source, pointer=pointer),
                                           f"chat template of {len(text)} characters not analysed",
                                           limit="max_string_bytes"))
            status = ArtifactStatus.PARTIAL
            continue
        where = Location(source.path, pointer=pointer)
        if template.analyze_template(text, where, ctx, quota) is not ArtifactStatus.ANALYZED:
            status = ArtifactStatus.PARTIAL
    return status


def _trust_flags(data: Any, source: Source, ctx: Context) -> None:
    cap = ctx.limits.max_findings_per_file
    found = 0
    for pointer, value in _walk(data):
        if pointer.rsplit("/", 1)[-1] == "trust_remote_code" and value is True:
            found += 1
            if found <= cap:
                ctx.add(TRUST_REMOTE_CODE.finding(ctx.location(source, pointer=pointer),
                                                  f"{pointer} is true: tools that read it run repository code"))
    if found > cap:
        ctx.add(LIMIT_EXCEEDED.finding(ctx.location(source), f"{found - cap} more trust_remote_code flags not "
                                       "reported", limit="max_findings_per_file"))


def _walk(data: Any) -> Iterator[tuple[str, Any]]:
    """(pointer, value) for nested values, iteratively and bounded."""
    stack: list[tuple[str, Any]] = [("", data)]
    visited = 0
    while stack and visited < _WALK_LIMIT:
        pointer, value = stack.pop()
        visited += 1
        yield pointer, value
        if isinstance(value, dict):
            stack.extend((f"{pointer}/{_esc(str(k))}", v) for k, v in value.items() if isinstance(v, (dict, list, bool)))
        elif isinstance(value, list):
            stack.extend((f"{pointer}/{i}", v) for i, v in enumerate(value) if isinstance(v, (dict, list)))


def pointer_token(key: str) -> str:
    """Escape one JSON pointer token (RFC 6901)."""
    return key.replace("~", "~0").replace("/", "~1")


_esc = pointer_token
