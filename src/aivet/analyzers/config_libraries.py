"""JSON configs of sentence-transformers, diffusers and PEFT that make a loader import or fetch code.

transformers is not the only library whose configs name code. Facts read from
the libraries' own sources (sentence-transformers v2.2.2 to v5.1.2, diffusers
and PEFT as of August 2026):

* **sentence-transformers** ``modules.json``: each entry's ``type`` is imported
  by dotted path and its ``load`` called. A type outside ``sentence_transformers.``
  of the form ``module.Class`` is first loaded from ``module.py`` in the
  repository (with ``trust_remote_code``, *or without it whenever the model is
  a local directory*), ``org/repo--module.Class`` from another repository, and
  anything else is imported from the installed packages (v2.2.2 imports every
  type that way, unasked). ``Dense`` configs import and call
  ``activation_function`` (no check at all); CrossEncoder ``config.json`` does
  the same with ``sentence_transformers.activation_fn`` (before v4.0 also
  ``sbert_ce_default_activation_function``, unchecked; since v4.0 only under
  ``torch.`` unless ``trust_remote_code``); ``Router``/``Asym`` import each of
  ``types`` and ``WordEmbeddings`` its ``tokenizer_class``. Before v2.3 the
  ``model_args`` of ``sentence_bert_config.json`` reached ``from_pretrained``
  unchanged (``trust_remote_code`` included; that flag is reported by
  :mod:`aivet.analyzers.config` wherever it appears); ``code_revision`` there
  still does. ``config_sentence_transformers.json`` names no code (prompts,
  a similarity function chosen from an enum, versions).
* **diffusers** ``model_index.json``: each component ``[library, class]`` is
  imported with ``importlib.import_module(library)`` unless ``library`` is a
  ``diffusers.pipelines`` submodule or ``<component>/<library>.py`` exists in
  the repository (then that file is run, with ``trust_remote_code``). A Hub
  download refuses libraries outside diffusers/transformers/onnxruntime.training,
  a local directory imports any. ``_class_name`` as ``[module, Class]`` loads a
  custom pipeline: ``module.py`` from the repository, ``pipeline.py`` from the
  repository ``org/name``, or a community pipeline of that name from the
  ``diffusers/community-pipelines-mirror`` dataset -- the last without asking
  for ``trust_remote_code``. ``modular_model_index.json`` components carry a
  ``type_hint`` ``[library, class]`` (imported, never from the repository) and
  the repository their weights come from. Component ``config.json`` files with
  ``auto_map`` are handled by :mod:`aivet.analyzers.config`.
* **PEFT** ``adapter_config.json``: ``AutoPeftModel`` imports
  ``auto_mapping.parent_library`` (any module until the import allowlist of
  April 2026: transformers, diffusers, lerobot, megatron), LoRA imports
  ``megatron_core`` when ``megatron_config`` is set (any module until then,
  ``megatron.`` since), and ``peft_type`` selects a config class from PEFT's own
  table; ``base_model_name_or_path`` is reported as lineage by
  :mod:`aivet.analyzers.config`.

Checked and found to name no code: timm ``config.json`` (an architecture name
looked up in timm's registry), open_clip ``open_clip_config.json`` (model and
preprocessing settings; a Hugging Face text tower by repository id), GLiNER
``gliner_config.json`` (encoder repository ids), transformers
``generation_config.json`` (custom generation code is a repository file,
``custom_generate/generate.py``, not a config value).
"""

from __future__ import annotations

import posixpath
import re
from typing import Any

from aivet.analyzers.allowlist import Classification, classify
from aivet.analyzers.config import (
    AUTO_MAP_INVALID,
    EXTERNAL_REFERENCE,
    REMOTE_CODE,
    REMOTE_CODE_EXTERNAL,
    pointer_token,
    reference_severity,
)
from aivet.analyzers.context import Context
from aivet.analyzers.paths import escape_reason
from aivet.analyzers.source import Source
from aivet.evidence import Finding, Location, Severity
from aivet.rules import ATLAS_EVADE, ATLAS_SUPPLY_CHAIN_MODEL, ATLAS_UNSAFE_ARTIFACTS, LIMIT_EXCEEDED, Rule

_ATLAS = (ATLAS_SUPPLY_CHAIN_MODEL, ATLAS_UNSAFE_ARTIFACTS)

LOADER_IMPORT = Rule(
    "CONFIG-LOADER-IMPORT", "Config makes a loader import a Python object by name",
    "A model library's config names a module or class outside the library's own namespace, and the "
    "loader imports it by that name and calls what it finds: sentence-transformers modules.json types, "
    "Dense and CrossEncoder activation functions, Router types; diffusers component libraries; PEFT "
    "auto_mapping.parent_library and megatron_core. Importing runs the module's top-level code, so a config "
    "can reach any installed package. High when the name is under a module that runs commands, code or I/O.",
    Severity.MEDIUM, _ATLAS, ("CWE-470", "CWE-829"))
CODE_REVISION = Rule(
    "CONFIG-CODE-REVISION", "Config pins the revision of remote code",
    "model_args, config_args or tokenizer_args (or their *_kwargs spellings) set code_revision: "
    "transformers then fetches the model's remote code from that revision of the repository, not from the "
    "revision whose files were reviewed with the weights.",
    Severity.MEDIUM, _ATLAS, ("CWE-829", "CWE-494"))
SUBFOLDER_ESCAPE = Rule(
    "CONFIG-SUBFOLDER-ESCAPE", "Component folder leaves the repository",
    "A modules.json path, a model_index.json component name or a Router module id names the folder a "
    "component is loaded from; an absolute name or '..' makes the loader read that component's code "
    "references, config and weights from elsewhere on the machine.",
    Severity.MEDIUM, (ATLAS_SUPPLY_CHAIN_MODEL, ATLAS_EVADE), ("CWE-22",))
PEFT_TYPE = Rule(
    "CONFIG-PEFT-TYPE-UNKNOWN", "Adapter type that PEFT does not ship",
    "peft_type names an adapter method outside PEFT's own table: loading it needs a third-party package "
    "or code that registers the type first.",
    Severity.LOW, (ATLAS_SUPPLY_CHAIN_MODEL,), ("CWE-829",))

RULES = (LOADER_IMPORT, CODE_REVISION, SUBFOLDER_ESCAPE, PEFT_TYPE)

# diffusers LOADABLE_CLASSES keys: libraries a Hub download accepts for components.
DIFFUSERS_LIBRARIES = frozenset({"diffusers", "transformers", "onnxruntime.training"})
# Subpackages of diffusers.pipelines (and pipelines.deprecated, re-exported), which model_index.json may
# name as a component's library (["stable_diffusion", "StableDiffusionSafetyChecker"]).
DIFFUSERS_PIPELINE_MODULES = frozenset("""
    ace_step allegro animatediff anyflow audioldm2 aura_flow bria bria_fibo chroma chronoedit cogvideo cogview3
    cogview4 consisid consistency_models controlnet controlnet_hunyuandit controlnet_sd3 cosmos ddim ddpm
    deepfloyd_if diffusion_gemma dit dreamlite easyanimate ernie_image flux flux2 glm_image helios hidream_image
    hunyuan_image hunyuan_video hunyuan_video1_5 hunyuandit ideogram4 joyimage kandinsky kandinsky2_2 kandinsky3
    kandinsky5 kolors krea2 latent_consistency_models latent_diffusion latte ledits_pp llada2 longcat_audio_dit
    longcat_image ltx ltx2 lucy lumina lumina2 marigold mochi motif_video nucleusmoe_image omnigen ovis_image pag
    pixart_alpha prx qwenimage sana sana_video shap_e skyreels_v2 stable_audio stable_audio_3 stable_cascade
    stable_diffusion stable_diffusion_3 stable_diffusion_xl stable_video_diffusion t2i_adapter visualcloze wan
    z_image onnx_utils deprecated alt_diffusion amused audio_diffusion audioldm blip_diffusion controlnet_xs
    dance_diffusion i2vgen_xl latent_diffusion_uncond musicldm paint_by_example pia pndm repaint score_sde_ve
    semantic_stable_diffusion spectrogram_diffusion stable_diffusion_attend_and_excite stable_diffusion_diffedit
    stable_diffusion_gligen stable_diffusion_ldm3d stable_diffusion_panorama stable_diffusion_safe
    stable_diffusion_sag stable_diffusion_variants stochastic_karras_ve text_to_video_synthesis unclip
    unidiffuser versatile_diffusion vq_diffusion wuerstchen
""".split())
# PeftType values (peft/utils/peft_types.py).
PEFT_TYPES = frozenset("""
    PROMPT_TUNING MULTITASK_PROMPT_TUNING P_TUNING PREFIX_TUNING LORA ADALORA ADAMSS BOFT ADAPTION_PROMPT IA3
    BEFT LILY LOHA LOKR OFT POLY LN_TUNING VERA FROD PVERA FOURIERFT GLORA XLORA HRA VBLORA UNILORA CPT MISS
    RANDLORA ROAD TRAINABLE_TOKENS HIRA SHIRA C3A WAVEFT OSF DELORA GRALORA CARTRIDGE TINYLORA PSOFT PEANUT
    SUPERTUNING DEFT
""".split())
# PEFT's default import allowlist for auto_mapping.parent_library (megatron-core imports as megatron).
_PEFT_PARENTS = ("transformers", "diffusers", "lerobot", "megatron")
_TORCH = ("torch",)

# (JSON path, packages the loader's own checks trust, who imports the value). Activation paths are
# only import names when dotted: transformers configs use "gelu_new" under the same key. Dense's
# activation_function is checked in Dense configs only (they always hold in_features and out_features).
_DENSE_SITE = (("activation_function",), _TORCH, "sentence-transformers Dense imports and calls it")
_IMPORT_SITES: tuple[tuple[tuple[str, ...], tuple[str, ...], str], ...] = (
    (("sentence_transformers", "activation_fn"), _TORCH,
     "sentence-transformers CrossEncoder imports and calls it (outside torch. with trust_remote_code)"),
    (("sbert_ce_default_activation_function",), _TORCH,
     "sentence-transformers CrossEncoder before v4.0 imports and calls it, unasked"),
)
_ARG_KEYS = ("model_args", "model_kwargs", "config_args", "config_kwargs", "tokenizer_args", "tokenizer_kwargs")
_DOTTED = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
_CLASS_REF = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\.[A-Za-z_][A-Za-z0-9_]*$")  # what a dynamic module loader takes
_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,95}/[A-Za-z0-9][A-Za-z0-9._\-]{0,95}$")
_MODULE_NAMES = ("modules.json",)
_DIFFUSERS_INDEX = ("model_index.json", "modular_model_index.json")


class _Checker:
    """Findings for one config, capped at ``max_findings_per_file``; repository code is one finding."""

    def __init__(self, source: Source, ctx: Context) -> None:
        self.source, self.ctx = source, ctx
        self.directory = posixpath.dirname(source.name)
        self.in_archive = "!" in source.path
        self.local: list[tuple[str, str]] = []  # (pointer, module) of repository code
        self.count = 0

    def add(self, finding: Finding) -> None:
        self.count += 1
        if self.count <= self.ctx.limits.max_findings_per_file:
            self.ctx.add(finding)

    def where(self, pointer: str | None) -> Location:
        return self.ctx.location(self.source, pointer=pointer)

    def in_repo(self, relative: str) -> bool:
        """Whether the repository holds ``relative`` (next to this config); unknown counts as no."""
        path = posixpath.normpath(posixpath.join(self.directory, relative))
        return not self.in_archive and path in self.ctx.repo_files

    def finish(self) -> bool:
        if self.local:
            modules = sorted({m for _, m in self.local})
            self.add(REMOTE_CODE.finding(self.where(self.local[0][0]),
                                         f"loading runs repository code: {', '.join(modules[:8])}",
                                         modules=modules[:32]))
        cap = self.ctx.limits.max_findings_per_file
        if self.count > cap:
            self.ctx.add(LIMIT_EXCEEDED.finding(self.where(None), f"{self.count - cap} more findings about "
                                               "library configs not reported", limit="max_findings_per_file"))
            return False
        return True

    # --- shared checks ---------------------------------------------------------------------------

    def invalid(self, pointer: str, ref: str, why: str) -> None:
        self.add(AUTO_MAP_INVALID.finding(self.where(pointer), f"{why}: {ref[:120]!r}", reference=ref[:200]))

    def external(self, pointer: str, repo: str, ref: str, message: str, severity: Severity | None = None) -> None:
        self.add(REMOTE_CODE_EXTERNAL.finding(self.where(pointer), message, severity=severity,
                                              repo=repo[:200], reference=ref[:200]))

    def subfolder(self, pointer: str, name: str) -> None:
        reason = escape_reason(name)
        if reason is not None or name.startswith("~"):
            self.add(SUBFOLDER_ESCAPE.finding(self.where(pointer), f"component folder {name[:120]!r} "
                                              f"{reason or 'starts with ~'}", folder=name[:200]))

    def imported(self, pointer: str, name: str, trusted: tuple[str, ...], who: str) -> None:
        """``name`` is imported by dotted path; a finding unless it is under a trusted package."""
        if not _DOTTED.match(name):
            self.invalid(pointer, name, "not an importable dotted name")
            return
        verdict, reason = classify(name)
        if verdict is not Classification.DANGEROUS and any(name == p or name.startswith(p + ".") for p in trusted):
            return
        dangerous = verdict is Classification.DANGEROUS
        self.add(LOADER_IMPORT.finding(
            self.where(pointer), f"{who}: {name[:120]}" + (f" ({reason})" if dangerous else ""),
            severity=Severity.HIGH if dangerous else None, name=name[:200]))

    # --- sentence-transformers ---------------------------------------------------------------------

    def st_type(self, pointer: str, ref: str, *, dynamic: bool, who: str) -> None:
        """A sentence-transformers module type; ``dynamic``: repository code is tried first."""
        if dynamic and "--" in ref:
            repo, _, rest = ref.partition("--")
            if not _REPO_ID.match(repo) or not _CLASS_REF.match(rest):
                self.invalid(pointer, ref, "malformed reference")
            self.external(pointer, repo, ref, f"module type loads code from another repository: {repo[:100]} "
                          f"({rest[:100]}), with trust_remote_code or from any local directory")
            return
        if not _DOTTED.match(ref) or "." not in ref:
            self.invalid(pointer, ref, "module type is not a dotted class path")
            return
        if ref.startswith("sentence_transformers."):
            # The library's own module classes; a lower-case last part reaches a module or function
            # (``sentence_transformers.util.misc.importlib``), which is no module class.
            if ref.rsplit(".", 1)[1][:1].isupper() and classify(ref)[0] is not Classification.DANGEROUS:
                return
        elif dynamic and _CLASS_REF.match(ref) and self.in_repo(ref.split(".")[0] + ".py"):
            self.local.append((pointer, ref.split(".")[0]))
            return
        self.imported(pointer, ref, (), who)

    def st_modules(self, data: list[Any]) -> None:
        for i, entry in enumerate(data):
            if not isinstance(entry, dict):
                continue
            path, ref = entry.get("path"), entry.get("type")
            if isinstance(path, str):
                self.subfolder(f"/{i}/path", path)
            if isinstance(ref, str):
                self.st_type(f"/{i}/type", ref, dynamic=True,
                             who="sentence-transformers imports this module type and calls its load")

    def st_router(self, data: dict[str, Any], *, named: bool) -> None:
        """Router (``router_config.json``) or legacy Asym (a ``config.json`` recognised by its keys).

        When the file is recognised by its keys only, plain words among ``types`` are someone
        else's vocabulary, not import paths, and are left alone.
        """
        types = data.get("types")
        if not isinstance(types, dict):
            return
        for key, ref in types.items():
            pointer = f"/types/{pointer_token(key)}"
            if isinstance(ref, str) and (named or "." in ref):
                self.subfolder(pointer, key)
                self.st_type(pointer, ref, dynamic=False,
                             who="sentence-transformers Router imports this module type and calls its load")

    # --- diffusers ---------------------------------------------------------------------------------

    def diffusers_index(self, data: dict[str, Any]) -> None:
        cls = data.get("_class_name")
        if isinstance(cls, list) and cls and isinstance(cls[0], str):
            self.custom_pipeline("/_class_name/0", cls[0])
        for key, value in data.items():
            if key.startswith("_") or not isinstance(value, list) or len(value) < 2:
                continue
            pointer = "/" + pointer_token(key)
            self.subfolder(pointer, key)
            if isinstance(value[0], str):
                self.component(pointer + "/0", key, value[0], in_repo_allowed=True)
            if len(value) >= 3 and isinstance(value[2], dict):
                self.modular_spec(pointer + "/2", value[2])

    def component(self, pointer: str, folder: str, library: str, *, in_repo_allowed: bool) -> None:
        if library in DIFFUSERS_LIBRARIES or library in DIFFUSERS_PIPELINE_MODULES:
            return
        if in_repo_allowed and escape_reason(folder) is None and self.in_repo(f"{folder}/{library}.py"):
            self.local.append((pointer, f"{folder}/{library}"))
            return
        self.imported(pointer, library, ("diffusers", "transformers"),
                      "diffusers imports this library for a component (from a local directory; a Hub download "
                      "refuses libraries it does not know)")

    def custom_pipeline(self, pointer: str, module: str) -> None:
        if escape_reason(module) is None and self.in_repo(module + ".py"):
            self.local.append((pointer, module))
        elif module.endswith(".py") or "\\" in module or escape_reason(module) is not None:
            self.invalid(pointer, module, "custom pipeline names a file path")
        elif "/" in module:
            if not _REPO_ID.match(module):
                self.invalid(pointer, module, "malformed repository id")
            self.external(pointer, module, module, f"custom pipeline code (pipeline.py) from another repository: "
                          f"{module[:100]}")
        elif _DOTTED.match(module):
            self.external(pointer, "diffusers/community-pipelines-mirror", module,
                          f"community pipeline {module[:100]!r} is downloaded from diffusers' community mirror and "
                          "run without asking for trust_remote_code", severity=Severity.MEDIUM)
        else:
            self.invalid(pointer, module, "malformed custom pipeline name")

    def modular_spec(self, pointer: str, spec: dict[str, Any]) -> None:
        hint = spec.get("type_hint")
        if isinstance(hint, list) and hint and isinstance(hint[0], str):
            self.component(pointer + "/type_hint/0", "", hint[0], in_repo_allowed=False)
        for key in ("repo", "pretrained_model_name_or_path"):
            value = spec.get(key)
            if isinstance(value, str) and value.strip():
                self.add(EXTERNAL_REFERENCE.finding(
                    self.where(f"{pointer}/{key}"), f"component weights from {value[:120]!r}",
                    severity=reference_severity(value), key=key, value=value[:200]))

    # --- PEFT and loader arguments -------------------------------------------------------------------

    def peft(self, data: dict[str, Any]) -> None:
        mapping = data.get("auto_mapping")
        if isinstance(mapping, dict) and isinstance(mapping.get("parent_library"), str):
            self.imported("/auto_mapping/parent_library", mapping["parent_library"], _PEFT_PARENTS,
                          "PEFT AutoPeftModel imports it to find the base model class")
        if data.get("megatron_config") and isinstance(data.get("megatron_core"), str):
            self.imported("/megatron_core", data["megatron_core"], ("megatron",),
                          "PEFT LoRA imports it to build Megatron parallel layers")
        kind = data.get("peft_type")
        if isinstance(kind, str) and kind not in PEFT_TYPES:
            self.add(PEFT_TYPE.finding(self.where("/peft_type"), f"peft_type {kind[:80]!r} is not one PEFT ships",
                                       peft_type=kind[:80]))

    def import_sites(self, data: dict[str, Any]) -> None:
        dense = "in_features" in data and "out_features" in data
        for path, trusted, who in _IMPORT_SITES + ((_DENSE_SITE,) if dense else ()):
            value: Any = data
            for key in path:
                value = value.get(key) if isinstance(value, dict) else None
            if isinstance(value, str) and "." in value:
                self.imported("/" + "/".join(path), value, trusted, who)

    def loader_args(self, data: dict[str, Any]) -> None:
        for key in _ARG_KEYS:
            args = data.get(key)
            revision = args.get("code_revision") if isinstance(args, dict) else None
            if isinstance(revision, str) and revision.strip():
                self.add(CODE_REVISION.finding(self.where(f"/{key}/code_revision"),
                                               f"{key} fetches remote code from revision {revision[:80]!r}",
                                               revision=revision[:80]))


def check_library_config(data: Any, source: Source, ctx: Context) -> bool:
    """Findings for the library-specific code references of one parsed JSON file.

    Returns ``False`` when ``max_findings_per_file`` cut the report short.
    Works on any shape of ``data`` (wrong types are skipped or reported, never raised).
    """
    checker = _Checker(source, ctx)
    name = posixpath.basename(source.name).lower()
    if isinstance(data, list) and name in _MODULE_NAMES:
        checker.st_modules(data)
    elif isinstance(data, dict):
        if name in _DIFFUSERS_INDEX:
            checker.diffusers_index(data)
        if name == "router_config.json" or ("types" in data and "structure" in data and "parameters" in data):
            checker.st_router(data, named=name == "router_config.json")
        if name == "wordembedding_config.json" and isinstance(data.get("tokenizer_class"), str):
            checker.st_type("/tokenizer_class", data["tokenizer_class"], dynamic=False,
                            who="sentence-transformers WordEmbeddings imports this tokenizer class")
        checker.import_sites(data)
        checker.peft(data)
        checker.loader_args(data)
    return checker.finish()
