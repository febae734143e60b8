"""Which callables and modules named in a config are worth a finding, and how loud.

A config names a callable (Hydra ``_target_``, HyperPyYAML ``!new:``, ``class_path``) or a module
(``!module:``, mmengine ``custom_imports``) that the loader imports. The pickle allowlist
(:mod:`aivet.analyzers.allowlist`) decides what is dangerous; the packages of the ecosystems whose
configs these are (torch, NeMo, SpeechBrain, Lightning, ...) are trusted and only summarised; the
repository's own modules are analysed on their own; anything else is whatever is installed under
that name on the loading machine.
"""

from __future__ import annotations

import posixpath
import re

from aivet.analyzers.allowlist import Classification, classify
from aivet.analyzers.yaml_compose import SCALAR, SEQUENCE, Node
from aivet.evidence import Severity

MODULE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")

# Packages whose callables ML configs instantiate all the time (NeMo, SpeechBrain, Lightning, Hydra
# projects, detectron2, mmengine): summarised, not reported one by one. The pickle allowlist's
# dangerous names (torch.load, torch.hub, numpy.load ...) are checked first and stay critical.
ECOSYSTEM_PACKAGES = frozenset("""
    torch torchaudio torchvision torchmetrics torchtext nemo nemo_text_processing megatron.core
    transformer_engine apex lhotse speechbrain sentencepiece omegaconf hydra lightning pytorch_lightning
    lightning_fabric transformers tokenizers timm detectron2 fvcore mmengine mmcv mmdet mmseg mmpretrain
    einops numpy scipy sklearn librosa collections datetime math
""".split()) | frozenset("""
    operator typing random itertools string enum dataclasses copy statistics numbers fractions decimal re uuid
    calendar textwrap bisect heapq
""".split())  # pure standard-library helpers configs use (operator.add, random.seed); the dangerous ones
# (operator.attrgetter / methodcaller, logging.config, functools.partial) stay with the allowlist's verdict.
# Callables in those packages that read or write files, fetch, or resolve further callables from
# their arguments: not summarised.
_INDIRECT = frozenset("""
    hydra.utils.call hydra.utils.instantiate hydra.utils.get_method hydra.utils.get_class
    hydra.utils.get_object hydra.utils.get_static_method hydra._internal.utils._locate
    hydra._internal.utils.locate nemo.utils.model_utils.import_class_by_path
    nemo.core.classes.common.Serialization.from_config_dict speechbrain.utils.importutils.lazy_export
    mmengine.utils.import_modules_from_strings mmengine.registry.build_from_cfg
""".split())
_RISKY_LAST = frozenset("""
    load load_state_dict_from_url save download download_url download_file urlretrieve fetch exec eval
    system popen Popen spawn run call import_module locate load_library open write remove rmtree
""".split())


def target_verdict(name: str, bare_builtins: bool, repo_files: frozenset[str] = frozenset(),
                   base_dir: str | None = "") -> tuple[Severity | None, str]:
    """How loud a callable named in a config is: ``(None, why)`` for the ecosystem's own packages.

    ``bare_builtins``: a name without a dot is a builtin (``pydoc.locate``, HyperPyYAML);
    jsonargparse resolves short class names among registered subclasses instead.
    """
    name = name.strip()
    if not MODULE_NAME.fullmatch(name):
        return Severity.MEDIUM, "not a dotted Python name"
    if "." not in name and not bare_builtins:
        return None, "short class name resolved among registered subclasses"
    canon = name if "." in name else f"builtins.{name}"
    verdict, why = classify(canon)
    if verdict is Classification.DANGEROUS:
        return Severity.CRITICAL, why
    if canon in _INDIRECT or canon.startswith("hydra._internal."):
        return Severity.HIGH, "resolves another callable named in its arguments"
    if verdict is Classification.SAFE:
        return None, "allowlisted"
    if package_of(canon) in ECOSYSTEM_PACKAGES:
        if canon.rsplit(".", 1)[-1] in _RISKY_LAST:
            return Severity.MEDIUM, "reads or writes files, fetches, or runs what its arguments name"
        return None, "the ecosystem's own package"
    if _in_repository(canon, repo_files, base_dir):
        return Severity.LOW, "the repository's own code (analysed separately)"
    return Severity.MEDIUM, "a module outside the known ML packages: whatever is installed under that name runs"


_INDIRECT_ARGS = ("path", "name", "cls", "class_path", "func", "_args_")


def indirect_name(args: Node) -> str | None:
    """The dotted name an indirect resolver (``hydra.utils.get_method``) is given in its mapping."""
    for key, value in args.pairs():
        if key.kind != SCALAR or key.value not in _INDIRECT_ARGS:
            continue
        if value.kind == SEQUENCE and value.children:
            value = value.children[0]
        if value.kind == SCALAR and value.tag is None and MODULE_NAME.fullmatch(value.value.strip()):
            return value.value.strip()
    return None


def module_verdict(name: str, repo_files: frozenset[str] = frozenset(),
                   base_dir: str | None = "") -> tuple[Severity | None, str]:
    """How loud a module a config imports is (HyperPyYAML ``!module:``, mmengine ``custom_imports``).

    Importing runs only the module's own top-level code: a command-running module is high (the
    loader now holds it; calling into it takes another tag), not critical.
    """
    name = name.strip()
    if not MODULE_NAME.fullmatch(name):
        return Severity.MEDIUM, "not a dotted Python name"
    verdict, why = classify(name)
    if verdict is Classification.DANGEROUS or name.split(".")[0] == "builtins":
        return Severity.HIGH, f"{why}; a model config has no reason to import it"
    if package_of(name) in ECOSYSTEM_PACKAGES:
        return None, "the ecosystem's own package"
    if _in_repository(name, repo_files, base_dir):
        return Severity.LOW, "the repository's own code (analysed separately)"
    return Severity.MEDIUM, "a module outside the known ML packages: whatever is installed under that name runs"


def package_of(name: str) -> str:
    """The package a dotted name counts under (``megatron.core`` and the like are two parts)."""
    parts = name.split(".")
    two = ".".join(parts[:2])
    return two if two in ECOSYSTEM_PACKAGES else parts[0]


def _in_repository(name: str, repo_files: frozenset[str], base_dir: str | None) -> bool:
    if base_dir is None:  # inside an archive: the repository's files are not beside it
        return False
    parts = name.split(".")
    for base in {"", base_dir}:
        for n in range(len(parts), 0, -1):
            stem = posixpath.join(base, *parts[:n])
            if f"{stem}.py" in repo_files or f"{stem}/__init__.py" in repo_files:
                return True
    return False
