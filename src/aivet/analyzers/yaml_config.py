"""YAML in model repositories: configs that loaders turn into live Python objects.

Facts this analyzer relies on (checked against the libraries named, see docs/yaml.md):

* **PyYAML python tags** (``!!python/object/apply:``, ``object/new:``, ``object:``,
  ``name:``, ``module:``) import and call any callable under ``yaml.unsafe_load`` /
  ``yaml.load(Loader=yaml.Loader|UnsafeLoader)``. PyYAML 6's FullLoader still resolves
  ``python/name`` (modules already imported) and PyYAML < 5.4's FullLoader ran them all
  (CVE-2020-1747, CVE-2020-14343).
* **HyperPyYAML** (SpeechBrain ``hyperparams.yaml``): ``!new:``, ``!apply:``, ``!applyref:``
  and ``!name:`` locate callables with ``pydoc.locate`` (a bare name is a builtin:
  ``!apply:eval``) and call them; ``!module:`` imports; ``!include:`` reads another file.
  Its default loader is ``ruamel.yaml.Loader``, so PyYAML python tags run there too, and a
  plain scalar shaped like ``( ... )`` is re-parsed with PyYAML's unsafe ``yaml.Loader`` (the
  implicit ``!tuple``): a python tag hidden in such a string runs. A quoted one stays a
  string, unless a ``!ref`` points at it: the reference's round trip through ruamel may write
  it back unquoted, and then it runs (HyperPyYAML 1.2.3, depending on the characters inside).
* **Hydra / OmegaConf** ``_target_`` (NeMo ``model_config.yaml`` inside ``.nemo`` archives,
  CVE-2025-23304; detectron2 LazyConfig; Lightning projects), NeMo's legacy
  ``cls``/``target`` + ``params``, jsonargparse / LightningCLI ``class_path``, and
  mmengine ``custom_imports`` import what they name; ``${oc.env:VAR}`` reads the
  loader's environment; ``${eval:...}`` runs code where a project registered that resolver.
* **MLflow** ``MLmodel`` files: see :mod:`aivet.analyzers.yaml_mlflow`.

Parsing never constructs: :mod:`aivet.analyzers.yaml_compose` builds the node graph from
PyYAML's events, bounded, and every node is visited once (aliases are edges, not copies).
Targets are classified with the pickle allowlist (:mod:`aivet.analyzers.allowlist`) plus
the packages of the ecosystems whose configs these are: a dangerous callable is critical,
one from torch / NeMo / SpeechBrain / Lightning ... is summarised in one info finding, and
anything else is a finding of its own.
"""

from __future__ import annotations

import posixpath
import re
from collections import Counter
from typing import Any
from urllib.parse import unquote

from aivet.analyzers.allowlist import Classification, classify
from aivet.analyzers.config import TRUST_REMOTE_CODE, pointer_token
from aivet.analyzers.context import Context
from aivet.analyzers.engine import Outcome
from aivet.analyzers.paths import escape_reason
from aivet.analyzers.secrets import read_text, scan_text_bounded
from aivet.analyzers.source import Source
from aivet.analyzers.yaml_compose import MAPPING, PYTHON_TAG, SCALAR, SEQUENCE, Bounds, Composed, Node, compose
from aivet.analyzers.yaml_targets import (
    indirect_name,
    module_verdict,
    package_of,
    target_verdict,
)
from aivet.evidence import ArtifactStatus, Severity
from aivet.formats import FormatError, LimitExceeded
from aivet.limits import DEFAULT_LIMITS, Limits
from aivet.rules import (
    ATLAS_CREDENTIALS,
    ATLAS_EVADE,
    ATLAS_SUPPLY_CHAIN_MODEL,
    ATLAS_UNSAFE_ARTIFACTS,
    LIMIT_EXCEEDED,
    PARSE_ERROR,
    Rule,
)

_ATLAS = (ATLAS_SUPPLY_CHAIN_MODEL, ATLAS_UNSAFE_ARTIFACTS)

PYTHON_TAG_RULE = Rule(
    "YAML-PYTHON-TAG", "PyYAML python tag constructs Python objects",
    "A !!python/object/apply, object/new, object, name or module tag makes yaml.unsafe_load (and "
    "yaml.load with Loader or UnsafeLoader, HyperPyYAML's default ruamel Loader, and FullLoader before "
    "PyYAML 5.4) import the named callable and call it with arguments from the file: code execution on "
    "load. Critical unless the callable is a known data constructor (then medium: the file still needs an "
    "unsafe loader); high for python/module (an import that hands the loader a command-running module). "
    "Also raised, medium, for a python tag hidden inside a string, and critical inside a '( ... )' string "
    "that HyperPyYAML re-parses with PyYAML's unsafe Loader (plain, or quoted and reached by a !ref). "
    "Data-only tags (python/tuple ...) are summarised as info.",
    Severity.CRITICAL, _ATLAS, ("CWE-502", "CWE-94"))
INSTANTIATE_TARGET = Rule(
    "CONFIG-INSTANTIATE-TARGET", "Config instantiates a Python object by name",
    "A Hydra/OmegaConf _target_ (NeMo .nemo model_config.yaml, detectron2 LazyConfig, Lightning), NeMo's "
    "cls/target with params, a jsonargparse/LightningCLI class_path, an mmengine custom_imports entry, or a "
    "HyperPyYAML !new:, !apply:, !applyref:, !name: or !module: tag names a callable that the loader "
    "imports and calls when the model is loaded. Critical when it runs commands, code or I/O (os, "
    "subprocess, builtins.eval ...); high when it resolves yet another callable from its arguments "
    "(hydra.utils.call, import_class_by_path; critical when the name it is given is dangerous) or only "
    "imports a command-running module (!module:os, custom_imports); medium for a module that is neither "
    "the ecosystem's own nor the repository's; low for the repository's own code (analysed on its own); callables of torch, NeMo, "
    "SpeechBrain, Lightning and similar packages are summarised in one info finding.",
    Severity.MEDIUM, _ATLAS, ("CWE-470", "CWE-94"))
INCLUDE_ESCAPE = Rule(
    "YAML-INCLUDE-ESCAPE", "HyperPyYAML !include leaves the repository",
    "An !include: tag names an absolute path or one with '..': HyperPyYAML reads that YAML file from "
    "elsewhere on the machine and executes the tags in it.",
    Severity.MEDIUM, (ATLAS_SUPPLY_CHAIN_MODEL, ATLAS_EVADE), ("CWE-22",))
ENV_INTERPOLATION = Rule(
    "YAML-ENV-SECRET", "Config reads a secret from the environment",
    "An OmegaConf ${oc.env:VAR} (or the older ${env:VAR}) interpolation reads an environment variable "
    "whose name looks like a credential (token, key, password) on the machine that loads the model. The "
    "value then lives in the loaded config, which is logged, saved with checkpoints and can be placed in "
    "URLs the model fetches.",
    Severity.MEDIUM, (ATLAS_CREDENTIALS,), ("CWE-526", "CWE-200"))
CODE_INTERPOLATION = Rule(
    "YAML-CODE-INTERPOLATION", "Interpolation evaluates code",
    "An OmegaConf interpolation calls a resolver named eval, exec or python: projects commonly register "
    "Python's eval under that name (OmegaConf.register_new_resolver('eval', eval)), so the expression runs "
    "as code when the config is resolved. Low for plain arithmetic, high when the expression imports, "
    "calls or reaches dunder attributes.",
    Severity.MEDIUM, _ATLAS, ("CWE-95",))
REF_ARITHMETIC = Rule(
    "YAML-REF-POWER", "HyperPyYAML reference computes a power",
    "A !ref or !copy expression uses '**': HyperPyYAML evaluates reference arithmetic when the file loads, "
    "and a chain of powers (9 ** 9 ** 9) exhausts memory and time.",
    Severity.LOW, (ATLAS_EVADE,), ("CWE-400",))
DUPLICATE_KEY = Rule(
    "YAML-DUPLICATE-KEY", "Duplicate key in a YAML mapping",
    "The same key appears twice in one mapping. PyYAML (yaml.safe_load, yaml.unsafe_load) keeps the last "
    "value; OmegaConf (Hydra, NeMo) and ruamel.yaml (HyperPyYAML) refuse the file: tools disagree about "
    "the content (parser differential). High when the key decides what code runs (_target_, class_path, "
    "loader_module ...).",
    Severity.MEDIUM, (ATLAS_EVADE,), ("CWE-436",))
ANCHOR_REDEFINED = Rule(
    "YAML-ANCHOR-REDEFINED", "Anchor defined twice in one YAML document",
    "PyYAML and OmegaConf refuse a document that defines an anchor twice; ruamel.yaml (HyperPyYAML) accepts "
    "it and later aliases mean the second node: the same file means different things to different loaders.",
    Severity.MEDIUM, (ATLAS_EVADE,), ("CWE-436",))

MLFLOW_LOADER_MODULE = Rule(
    "MLFLOW-LOADER-MODULE", "MLmodel loads the model through code outside MLflow",
    "flavors.python_function.loader_module names the module mlflow.pyfunc.load_model imports (and whose "
    "_load_pyfunc it calls); MLflow's own flavors are mlflow.* modules. Any other module runs when the model "
    "loads: high when the model ships it in its code directory (prepended to sys.path) or it is a module "
    "that runs commands or I/O, medium for a module from the environment. A models-from-code python_model "
    "(a .py file MLflow executes) is low: the file is analysed on its own.",
    Severity.HIGH, _ATLAS, ("CWE-470", "CWE-829"))
MLFLOW_CODE_PATH = Rule(
    "MLFLOW-CODE-PATH", "MLmodel puts the model's code directory first on sys.path",
    "flavors.python_function.code names a directory of the model that MLflow prepends to sys.path before "
    "loading: its modules are imported by the loader and shadow installed packages of the same name. High "
    "when it holds a module named like a common package (numpy, sklearn, mlflow, cloudpickle ...) or lies "
    "outside the model (an absolute or '..' path: os.path.join keeps an absolute one as it is).",
    Severity.LOW, _ATLAS, ("CWE-427",))
MLFLOW_PICKLED_MODEL = Rule(
    "MLFLOW-PICKLED-MODEL", "MLflow flavor stores the model as a pickle",
    "The flavor loads its model with pickle or cloudpickle (sklearn pickled_model, a pyfunc python_model, "
    "a pytorch model_data directory saved with torch.save): loading runs whatever the pickle names. The "
    "pickle files are analysed on their own; this records that the model cannot be loaded without them.",
    Severity.LOW, _ATLAS, ("CWE-502",))

RULES = (PYTHON_TAG_RULE, INSTANTIATE_TARGET, INCLUDE_ESCAPE, ENV_INTERPOLATION, CODE_INTERPOLATION,
         REF_ARITHMETIC, DUPLICATE_KEY, ANCHOR_REDEFINED, MLFLOW_LOADER_MODULE, MLFLOW_CODE_PATH,
         MLFLOW_PICKLED_MODEL)

BOUNDS = Bounds(DEFAULT_LIMITS.max_yaml_events, DEFAULT_LIMITS.max_yaml_depth, DEFAULT_LIMITS.max_yaml_documents)


def bounds(limits: Limits) -> Bounds:
    """The composer's bounds for ``limits`` (``max_yaml_events``, ``max_yaml_depth``, ``max_yaml_documents``)."""
    return Bounds(limits.max_yaml_events, limits.max_yaml_depth, limits.max_yaml_documents)


YAML_SUFFIXES = (".yaml", ".yml")
_PY_CALLS = ("object/apply:", "object/new:", "object:", "name:", "module:")
_PY_DATA = frozenset("none bool str unicode bytes int long float complex list tuple dict".split())
_HYPER_CALLS = frozenset({"!new", "!apply", "!applyref", "!name", "!module"})
# Credential-like variable names; not PWD (the working directory), HF_HOME, AWS_REGION, TOKENIZERS_PARALLELISM,
# AUTHOR, which configs read all the time.
_SECRET_ENV = re.compile(r"(?i)(token(?!izer)|secret|passw|(?:^|_)pass(?:$|_)|_pwd(?:$|_)|api_?key|access_?key|"
                         r"private_?key|credential|auth(?!or)|cookie|session_?(?:key|token|secret)|signature)")
_RESOLVER_CALL = re.compile(r"\$\{\s*([A-Za-z_][\w.]*)\s*:")
_BRACE = re.compile(r"[{}]")
MAX_INTERPOLATIONS = 2_000  # resolver calls examined per file (each costs a bounded scan)
_MAX_INTERPOLATION_CHARS = 2_000
_CODE_RESOLVERS = frozenset({"eval", "exec", "python", "py", "pyeval", "lambda"})
_ARITHMETIC = re.compile(r"[\s0-9.+\-*/%()'\"${}\w]*")
_CODE_MARKERS = re.compile(r"__|import|\bos\.|subprocess|system|\bopen\s*\(|exec|eval|getattr|lambda|compile|"
                           r"globals|builtins")
_HIDDEN_PY = ("!!python/", "tag:yaml.org,2002:python/")
# Raw search when the YAML cannot be composed (too large, malformed): tags spelled out in the text.
_RAW_TAG = re.compile(r"(?:!!python/|tag:yaml\.org,2002:python/)(object/apply|object/new|object|name|module):([\w.%]+)"
                      r"|!(new|apply|applyref|name|module):([\w.%]+)")
_RAW_TAG_DIRECTIVE = re.compile(r"^%TAG[ \t]+(\S+)[ \t]+(tag:yaml\.org,2002:python/\S*|!(?:new|apply|applyref|name|"
                                r"module|include):\S*)", re.MULTILINE)
_SECURITY_KEYS = frozenset({"_target_", "class_path", "cls", "target", "params", "init_args", "_args_",
                            "custom_imports", "imports", "loader_module", "code", "python_model",
                            "trust_remote_code", "<<"})


def is_yaml_name(name: str) -> bool:
    """Whether a file name says YAML (``.yaml``, ``.yml``, MLflow's ``MLmodel``)."""
    lower = name.lower()
    return lower.endswith(YAML_SUFFIXES) or posixpath.basename(lower) == "mlmodel"


# Files read by CI, packaging and documentation tools, not by model loaders (matched on the path inside
# the repository; an archive member never matches: archives ship what a loader unpacks).
_TOOLING_DIRS = (".github/", ".gitlab/", ".circleci/", ".buildkite/", ".azure-pipelines/", ".devcontainer/")
_TOOLING_NAMES = re.compile(
    r"(\.gitlab-ci|\.travis|\.pre-commit-config|\.pre-commit-hooks|\.readthedocs|readthedocs|mkdocs|codecov|"
    r"\.codecov|\.yamllint|dependabot|action|azure-pipelines|bitbucket-pipelines|appveyor|\.appveyor|"
    r"docker-compose[\w.-]*|compose|environment|conda[\w.-]*|meta|citation|\.clang-format|\.clang-tidy|"
    r"\.golangci|\.goreleaser|\.mergify|\.markdownlint)\.ya?ml", re.IGNORECASE)


def is_tooling_yaml(path: str) -> bool:
    """Whether a repository path is a CI, packaging or docs config (not read by model loaders)."""
    if "!" in path:
        return False
    lower = "/" + path.lower().lstrip("/")
    if any(f"/{d}" in lower for d in _TOOLING_DIRS):
        return True
    return _TOOLING_NAMES.fullmatch(posixpath.basename(lower)) is not None


# Names model loaders read (SpeechBrain, NeMo, Lightning, MLflow ...): a parse failure there fails closed.
LOADER_NAMES = frozenset({"hyperparams.yaml", "hparams.yaml", "model_config.yaml", "mlmodel", "config.yaml",
                          "config.yml", "model.yaml", "inference.yaml", "params.yaml"})
_TEMPLATE_MARKERS = ("{{", "{%")


def _not_for_loaders(source: Source, text: str) -> str | None:
    """Why a YAML file that failed to parse is no model loader's input, or None (then it fails closed)."""
    if posixpath.basename(source.name.lower()) in LOADER_NAMES:
        return None
    if is_tooling_yaml(source.path):
        return "a tooling file no model loader reads"
    if any(marker in text for marker in _TEMPLATE_MARKERS):
        return "a template (Helm, Jinja): rendered before any YAML parser reads it"
    return None


def parse_yaml(data: bytes | str, bounds: Bounds = BOUNDS) -> Composed:
    """Compose YAML text (or UTF-8 bytes) into nodes, bounded; raises only FormatError / LimitExceeded."""
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    return compose(text, bounds)


def analyze(source: Source, ctx: Context) -> Outcome:
    """Analyzer for YAML files: python tags, instantiation targets, interpolations, MLmodel, secrets."""
    limit = ctx.limits.max_text_file_bytes
    text, truncated = read_text(source, limit)
    _, secrets_stopped = scan_text_bounded(text, ctx.location(source), ctx)
    report = Report(source, ctx)
    fmt = "mlmodel" if posixpath.basename(source.name) == "MLmodel" else "yaml"
    if truncated:
        report.raw_tags(text)
        ctx.add(LIMIT_EXCEEDED.finding(ctx.location(source, offset=limit),
                                       f"YAML file larger than {limit} bytes; only searched for tags and secrets",
                                       limit="max_text_file_bytes"))
        return Outcome(fmt, ArtifactStatus.PARTIAL, "too large to parse")
    try:
        composed = compose(text, report.bounds)
    except LimitExceeded as exc:
        report.raw_tags(text)
        ctx.add(LIMIT_EXCEEDED.finding(ctx.location(source, offset=exc.offset), f"{exc}; only searched for tags "
                                       "and secrets", limit=exc.limit))
        return Outcome(fmt, ArtifactStatus.PARTIAL, str(exc))
    except FormatError as exc:
        # A text file sniffed by a tag it mentions, that is not YAML at all: only a dangerous name is loud.
        report.raw_tags(text, minimum=None if is_yaml_name(source.name) else Severity.HIGH)
        why = _not_for_loaders(source, text) if is_yaml_name(source.name) else None
        if why is not None:
            # CI, packaging and docs configs are read by those tools, and a template is rendered before
            # any YAML parser sees it: a broken one is worth knowing, not a reason to fail the model (the
            # spelled-out tags were searched above; see docs/yaml.md).
            ctx.add(PARSE_ERROR.finding(ctx.location(source, offset=exc.offset), f"cannot parse as yaml: {exc} "
                                        f"({why})", severity=Severity.LOW, format="yaml"))
            return Outcome(fmt, ArtifactStatus.ERROR, str(exc))
        if is_yaml_name(source.name):
            raise  # fail closed: the engine reports it (high) like any file a loader cannot be trusted to read
        # Sniffed as YAML by its content (a python tag in a .txt file): what a loader would run is
        # reported above; prose that is not YAML is otherwise just text.
        return Outcome("text", ArtifactStatus.ANALYZED, "not YAML; searched for tags and secrets")
    report.events = composed.events
    for anchor, line in composed.redefined_anchors[:20]:
        report.add(ANCHOR_REDEFINED, None, f"anchor &{anchor} is defined again (line {line}): PyYAML refuses "
                   "the file, ruamel.yaml (HyperPyYAML) uses the second definition", line=line, anchor=anchor)
    for document in composed.documents:
        report.walk(document)
    if fmt == "mlmodel" and composed.documents:
        from aivet.analyzers.yaml_mlflow import check_mlmodel  # imported here: it imports this module

        check_mlmodel(composed.documents[0], report)
    report.summarise()
    if report.dropped:
        return Outcome(fmt, ArtifactStatus.PARTIAL, "too many findings to report")
    if secrets_stopped:
        return Outcome(fmt, ArtifactStatus.PARTIAL, "secret search stopped early")
    return Outcome(fmt, note="hyperpyyaml" if report.hyperpyyaml else "")


class Report:
    """Walks composed documents and adds findings for one source, capped per file."""

    def __init__(self, source: Source, ctx: Context) -> None:
        self.source, self.ctx = source, ctx
        self.count = 0
        self.dropped = 0
        self.trusted: Counter[str] = Counter()  # ecosystem package -> targets instantiated from it
        self.data_tags: Counter[str] = Counter()
        self.hyperpyyaml = False
        self.visited: set[int] = set()
        # Walk state: (node, parent entry, pointer token); a pointer is built only for a finding.
        self.entries: list[tuple[Node, int, str]] = []
        self.root: Node | None = None
        self.bounds = bounds(ctx.limits)
        self.events = 0  # events composed for this file; re-parsed strings (tuple scalars) share the budget
        self.interpolation_budget = MAX_INTERPOLATIONS

    # -- reporting -------------------------------------------------------------------------------

    def add(self, rule: Rule, entry: int | None, message: str, *, severity: Severity | None = None,
            line: int | None = None, **details: Any) -> None:
        """Add a finding at walk entry ``entry`` (its line and pointer), unless the per-file cap is reached."""
        pointer = None
        if entry is not None:
            line = line or self.entries[entry][0].line
            pointer = self.pointer(entry)
        self.add_at(rule, line, pointer, message, severity=severity, **details)

    def add_at(self, rule: Rule, line: int | None, pointer: str | None, message: str, *,
               severity: Severity | None = None, **details: Any) -> None:
        """Add a finding at an explicit line and pointer (checks that do not walk), capped per file."""
        self.count += 1
        if self.count > self.ctx.limits.max_findings_per_file:
            self.dropped += 1
            return
        self.ctx.add(rule.finding(self.ctx.location(self.source, line=line, pointer=pointer), message,
                                  severity=severity, **details))

    def pointer(self, entry: int) -> str:
        """The JSON pointer of walk entry ``entry`` inside its document (entry 0 is the document)."""
        tokens: list[str] = []
        while entry > 0:
            _, entry, token = self.entries[entry]
            tokens.append(token)
        return "/" + "/".join(reversed(tokens)) if tokens else ""

    def summarise(self) -> None:
        """The info findings that stand for many unremarkable items, and the count of dropped ones."""
        if self.trusted:
            packages = dict(sorted(self.trusted.items()))
            total = sum(packages.values())
            listed = ", ".join(f"{p} ({n})" for p, n in packages.items())
            self.ctx.add(INSTANTIATE_TARGET.finding(
                self.ctx.location(self.source), f"instantiates {total} object(s) from known ML packages when "
                f"loaded: {listed}", severity=Severity.INFO, packages=packages))
        if self.data_tags:
            tags = dict(sorted(self.data_tags.items()))
            self.ctx.add(PYTHON_TAG_RULE.finding(
                self.ctx.location(self.source), "data-only python tags (" + ", ".join(tags) + "): written by "
                "yaml.dump and read with a full or unsafe loader", severity=Severity.INFO, tags=tags))
        if self.dropped:
            self.ctx.add(LIMIT_EXCEEDED.finding(self.ctx.location(self.source), f"{self.dropped} more YAML "
                                                "findings not reported", limit="max_findings_per_file"))

    # -- walking ---------------------------------------------------------------------------------

    def walk(self, root: Node) -> None:
        """Check every node reachable from ``root`` once (aliases are followed, never re-walked)."""
        self.root = root
        self.entries = [(root, -1, "")]
        if id(root) in self.visited:
            return
        self.visited.add(id(root))
        stack = [0]
        while stack:
            entry = stack.pop()
            node = self.entries[entry][0]
            self.check(node, entry)
            children: list[tuple[Node, str]]
            if node.kind == MAPPING:
                children = []
                for key, value in node.pairs():
                    token = pointer_token(key.value) if key.kind == SCALAR else "?"
                    children.append((key, token))
                    children.append((value, token))
            elif node.kind == SEQUENCE:
                children = [(item, str(i)) for i, item in enumerate(node.children)]
            else:
                continue
            for child, token in reversed(children):
                if id(child) in self.visited:
                    continue
                self.visited.add(id(child))
                self.entries.append((child, entry, token))
                stack.append(len(self.entries) - 1)

    def check(self, node: Node, entry: int) -> None:
        if node.tag is not None:
            self.check_tag(node, entry)
        if node.kind == SCALAR:
            value = node.value
            if "${" in value:
                self.interpolations(value, entry)
            # Quoted too: a quoted "( ... )" stays a string in HyperPyYAML 1.2.3 unless a !ref points at it;
            # then the reference's ruamel round trip may write it back unquoted and it runs (verified for
            # some quotings, depending on the characters inside: so every quoting is reported).
            shaped = node.tag is None and value.startswith("(") and value.endswith(")") and "!" in value
            if not (shaped and self.tuple_string(value, entry, quoted=not node.plain)) and \
                    any(marker in value for marker in _HIDDEN_PY):
                self.add(PYTHON_TAG_RULE, entry, "a python tag is written inside a string value: it runs if "
                         "anything parses the string again as YAML with an unsafe loader", severity=Severity.MEDIUM)
        elif node.kind == MAPPING:
            self.check_mapping(node, entry)

    def check_tag(self, node: Node, entry: int, *, hidden: str = "") -> None:
        tag = node.tag or ""
        if tag.startswith(PYTHON_TAG):
            self.python_tag(tag[len(PYTHON_TAG):], entry, hidden)
            return
        head, colon, name = tag.partition(":")
        if colon and head in _HYPER_CALLS:
            self.hyperpyyaml = True
            how = "imports module" if head == "!module" else "calls" if head in ("!apply", "!applyref") else (
                "instantiates" if head == "!new" else "imports")
            self.target(name, entry, f"HyperPyYAML {head}: {how}", node=node, bare_builtins=True,
                        module=head == "!module")
        elif colon and head == "!include":
            self.hyperpyyaml = True
            reason = escape_reason(name) or ("~ (home directory)" if name.startswith("~") else None)
            if reason is not None:
                self.add(INCLUDE_ESCAPE, entry, f"!include:{name[:200]} reads a YAML file outside the "
                         f"repository ({reason})", path=name[:200])
        elif tag in ("!ref", "!copy"):
            self.hyperpyyaml = True
            if node.kind == SCALAR and "**" in node.value:
                self.add(REF_ARITHMETIC, entry, f"{tag} {node.value[:100]!r} computes a power when the file loads")
        elif tag == "!tuple" and node.kind == SCALAR and node.value.startswith("("):
            self.tuple_string(node.value, entry)

    def python_tag(self, rest: str, entry: int, hidden: str) -> None:
        for kind in _PY_CALLS:
            if rest.startswith(kind):
                break
        else:
            if rest in _PY_DATA:
                self.data_tags[rest] += 1
            else:  # no PyYAML constructor: loaders refuse the file
                self.add(PYTHON_TAG_RULE, entry, f"unknown python tag !!python/{rest[:100]}: PyYAML has no "
                         "constructor for it and refuses the file", severity=Severity.LOW, tag=rest[:100])
            return
        name = rest[len(kind):]
        verdict, why = classify(name if "." in name else f"builtins.{name}")
        where = hidden
        severity = Severity.HIGH if kind == "module:" else Severity.CRITICAL
        if verdict is Classification.SAFE:
            severity, why = Severity.MEDIUM, "a known data constructor, but only unsafe loaders read the file"
        self.add(PYTHON_TAG_RULE, entry, f"!!python/{kind}{name[:200]}{where}: {why}", severity=severity,
                 kind=kind.rstrip(":"), callable=name[:200], classification=verdict.value)

    def tuple_string(self, value: str, entry: int, *, quoted: bool = False) -> bool:
        """Report python tags in a ``( ... )`` string; whether there were any.

        HyperPyYAML's implicit !tuple: ``(a, b)`` -> ``yaml.load("[a, b]", Loader=yaml.Loader)``.
        """
        where = (" in a quoted '( ... )' string: HyperPyYAML re-parses it with PyYAML's unsafe Loader when a "
                 "!ref points at it" if quoted else " in a '( ... )' string HyperPyYAML re-parses with PyYAML's "
                 "unsafe Loader")
        try:
            composed = compose("[" + value[1:-1] + "]", self.bounds, events_used=self.events)
        except (FormatError, LimitExceeded):
            return False  # HyperPyYAML fails on it too: nothing is constructed
        self.events = composed.events
        stack = list(composed.documents)
        seen: set[int] = set()
        found = False
        while stack:
            node = stack.pop()
            if id(node) in seen:
                continue
            seen.add(id(node))
            if node.tag is not None and node.tag.startswith(PYTHON_TAG):
                self.check_tag(node, entry, hidden=where)
                found = True
            stack.extend(node.children)
        return found

    def check_mapping(self, node: Node, entry: int) -> None:
        keys: dict[str, Node] = {}
        duplicates: list[str] = []
        targets: list[Node] = []  # every _target_ value: PyYAML keeps the last, a first-wins reader the first
        for key, value in node.pairs():
            if key.kind != SCALAR:
                continue  # a sequence or mapping key: PyYAML and OmegaConf refuse it (unhashable)
            if key.value in keys and key.value not in duplicates:
                duplicates.append(key.value)
            keys[key.value] = value  # the last wins, as PyYAML's constructor does
            if key.value == "_target_":
                targets.append(value)
        if duplicates:
            security = [k for k in duplicates if k in _SECURITY_KEYS]
            self.add(DUPLICATE_KEY, entry, f"{len(duplicates)} duplicate key(s): {', '.join(duplicates[:5])}",
                     severity=Severity.HIGH if security else None, keys=duplicates[:20])
        for value in targets:
            self.target_value(value, entry, "Hydra/OmegaConf _target_: instantiate imports and calls", node)
        if "class_path" in keys:
            self.target_value(keys["class_path"], entry, "class_path: jsonargparse/LightningCLI imports and "
                              "instantiates", node, bare_builtins=False)
        for legacy in ("cls", "target"):
            if legacy in keys and "params" in keys:
                self.target_value(keys[legacy], entry, f"NeMo/Hydra 0.x {legacy} with params: instantiated",
                                  node)
        imports = keys.get("custom_imports")
        if imports is not None and imports.kind == MAPPING:
            listed = dict((k.value, v) for k, v in imports.pairs() if k.kind == SCALAR).get("imports")
            items = [listed] if listed is not None and listed.kind == SCALAR else (
                listed.children if listed is not None and listed.kind == SEQUENCE else [])
            for item in items:
                if item.kind == SCALAR:
                    self.target(item.value, entry, "mmengine custom_imports: imported when the config loads",
                                node=item, bare_builtins=False, module=True)
        flag = keys.get("trust_remote_code")
        if flag is not None and flag.kind == SCALAR and flag.tag is None and flag.plain and \
                flag.value.lower() in ("true", "yes", "on"):
            self.add(TRUST_REMOTE_CODE, entry, "trust_remote_code is true: tools that read it run repository code")

    def target_value(self, value: Node, entry: int, how: str, args: Node, bare_builtins: bool = True) -> None:
        if value.kind != SCALAR:
            return  # a tagged or structured target is reported by its own tag
        name = value.value.strip()
        if "${" in name:
            resolved = self.lookup(name)
            if resolved is None:
                self.add(INSTANTIATE_TARGET, entry, f"{how} a target computed by interpolation "
                         f"({name[:100]!r}), not checkable before load", target=name[:200])
                return
            name = resolved
        self.target(name, entry, how, node=args, bare_builtins=bare_builtins)

    def lookup(self, expr: str) -> str | None:
        """The scalar an absolute ``${a.b.c}`` interpolation names in the current document, if plain."""
        m = re.fullmatch(r"\$\{\s*([A-Za-z_][\w]*(?:\.[A-Za-z_][\w]*){0,31})\s*\}", expr)
        node = self.root
        if m is None or node is None:
            return None
        for part in m.group(1).split("."):
            if node.kind != MAPPING:
                return None
            found = [v for k, v in node.pairs() if k.kind == SCALAR and k.value == part]
            if not found:
                return None
            node = found[-1]
        return node.value if node.kind == SCALAR and "${" not in node.value else None

    def target(self, name: str, entry: int, how: str, *, node: Node, bare_builtins: bool,
               module: bool = False) -> None:
        """Classify one callable (or, ``module``, a module) a config makes the loader import or call."""
        if module:
            severity, why = module_verdict(name, self.ctx.repo_files, self.base_dir())
        else:
            severity, why = target_verdict(name, bare_builtins, self.ctx.repo_files, self.base_dir())
        if severity is Severity.HIGH and node.kind == MAPPING:
            # hydra.utils.get_method(path=...) and friends: the callable they resolve is named right here.
            named = indirect_name(node)
            if named is not None:
                inner, inner_why = target_verdict(named, True, self.ctx.repo_files, self.base_dir())
                if inner is Severity.CRITICAL:
                    severity, why = inner, f"resolves {named[:200]}: {inner_why}"
                else:
                    why = f"{why} ({named[:200]})"
        if severity is None:
            self.trusted[package_of(name)] += 1
            return
        self.add(INSTANTIATE_TARGET, entry, f"{how} {name[:200]}: {why}", severity=severity, target=name[:200])

    def base_dir(self) -> str | None:
        """The YAML file's directory in the repository ('' at its root), None for an archive member."""
        return None if "!" in self.source.path else posixpath.dirname(self.source.path)

    def interpolations(self, value: str, entry: int) -> None:
        for resolver, args in self.resolver_calls(value):
            if resolver in ("oc.env", "env"):
                var = args.split(",", 1)[0].strip().strip("'\"")
                if _SECRET_ENV.search(var):
                    self.add(ENV_INTERPOLATION, entry, f"${{{resolver}:{var[:100]}}} reads a credential from the "
                             "loading machine's environment", variable=var[:100])
            elif resolver in _CODE_RESOLVERS:
                code = args.strip()
                severity = Severity.HIGH if _CODE_MARKERS.search(code) else (
                    Severity.LOW if _ARITHMETIC.fullmatch(code) else Severity.MEDIUM)
                self.add(CODE_INTERPOLATION, entry, f"${{{resolver}:...}} evaluates {code[:120]!r} where the "
                         f"{resolver} resolver is registered", severity=severity, resolver=resolver,
                         expression=code[:200])

    def resolver_calls(self, value: str) -> list[tuple[str, str]]:
        """``(resolver, arguments)`` of the ``${resolver:...}`` calls in ``value``; nested braces balanced."""
        calls: list[tuple[str, str]] = []
        for m in _RESOLVER_CALL.finditer(value):
            self.interpolation_budget -= 1
            if self.interpolation_budget < 0:
                break
            depth, end = 1, len(value)
            for brace in _BRACE.finditer(value, m.end(), m.end() + _MAX_INTERPOLATION_CHARS):
                depth += 1 if brace.group() == "{" else -1
                if depth == 0:
                    end = brace.start()
                    break
            calls.append((m.group(1), value[m.end():min(end, m.end() + _MAX_INTERPOLATION_CHARS)]))
        return calls

    def raw_tags(self, text: str, minimum: Severity | None = None) -> None:
        """Report tags spelled out in text that could not be composed (too large or malformed).

        ``minimum``: report only names at least this severe (prose that merely mentions a tag).
        """
        directive = _RAW_TAG_DIRECTIVE.search(text)
        if directive is not None:  # handles hide the names from the search below
            self.add(PYTHON_TAG_RULE, None, f"%TAG directive maps {directive.group(1)[:20]} to "
                     f"{directive.group(2)[:60]} in text that was not parsed as YAML: tags written with that handle "
                     "import and call Python", severity=Severity.HIGH, line=text.count("\n", 0, directive.start()) + 1)
        seen: set[str] = set()
        lines, counted_to = 1, 0  # line numbers counted forward: matches come in order
        for m in _RAW_TAG.finditer(text):
            spelled = m.group(0)
            if spelled in seen:
                continue
            seen.add(spelled)
            lines += text.count("\n", counted_to, m.start())
            counted_to = m.start()
            if m.group(1):
                name = unquote(m.group(2))  # a tag's %-escapes are decoded by every YAML parser
                verdict, why = classify(name if "." in name else f"builtins.{name}")
                level = Severity.MEDIUM if verdict is Classification.SAFE else (
                    Severity.HIGH if m.group(1) == "module" else Severity.CRITICAL)
                if minimum is not None and level < minimum:
                    continue
                self.add(PYTHON_TAG_RULE, None, f"{spelled[:200]} in text that was not parsed as YAML: {why}",
                         severity=level, line=lines, callable=name[:200])
            else:
                severity, why = target_verdict(unquote(m.group(4)), True, self.ctx.repo_files, self.base_dir())
                if severity is not None and (minimum is None or severity >= minimum):
                    self.add(INSTANTIATE_TARGET, None, f"{spelled[:200]} in text that was not parsed as YAML: {why}",
                             severity=severity, line=lines, target=m.group(4)[:200])
            if len(seen) >= 1000:
                break
