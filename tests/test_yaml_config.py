"""YAML configs that loaders turn into objects: python tags, HyperPyYAML, Hydra _target_, bypasses.

Loader facts behind the expectations were checked with PyYAML 6.0.3, HyperPyYAML 1.2.3,
OmegaConf 2.3.1, hydra-core 1.3.8 and ruamel.yaml 0.18 in a throwaway environment (docs/yaml.md).
"""

from __future__ import annotations

from pathlib import Path

import pytest

import aivet
from aivet.analyzers.context import Context, ScanOptions
from aivet.analyzers.source import Source
from aivet.analyzers.yaml_config import analyze, is_tooling_yaml
from aivet.analyzers.yaml_targets import module_verdict, target_verdict
from aivet.evidence import ArtifactStatus, Evidence, Finding, Severity
from aivet.formats.sniff import Format, sniff
from aivet.limits import Limits
from tests.fixtures import yaml_files
from tests.fixtures.repo_files import fake_secrets


def scan(tmp_path: Path, files: dict[str, str]) -> Evidence:
    root = tmp_path / "repo"
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return aivet.scan(root)


def loud(evidence: Evidence, at: Severity = Severity.MEDIUM) -> list[Finding]:
    return evidence.at_or_above(at)


def worst(evidence: Evidence, rule: str) -> Severity | None:
    levels = [f.severity for f in evidence.findings if f.rule_id == rule]
    return max(levels) if levels else None


# -- bypass attempts: each reaches the severity its loader deserves ------------------------------

C, H, M = Severity.CRITICAL, Severity.HIGH, Severity.MEDIUM
BYPASSES = [
    ("tag-directive", "%TAG !p! tag:yaml.org,2002:python/\n---\nx: !p!object/apply:os.system [id]\n",
     "YAML-PYTHON-TAG", C),
    ("verbatim-tag", "x: !<tag:yaml.org,2002:python/object/apply:os.system> [id]\n", "YAML-PYTHON-TAG", C),
    ("percent-escape", "x: !!python/object/apply:os%2Esystem [id]\n", "YAML-PYTHON-TAG", C),
    ("hyper-tag-directive", "%TAG !h! !apply:\n---\nx: !h!os.system [id]\n", "CONFIG-INSTANTIATE-TARGET", C),
    ("hyper-verbatim", "x: !<!apply:os.system> [id]\n", "CONFIG-INSTANTIATE-TARGET", C),
    ("merge-key", "b: &b {_target_: subprocess.Popen, args: [id]}\nm:\n  <<: *b\n  x: 1\n",
     "CONFIG-INSTANTIATE-TARGET", C),
    ("target-through-alias", "t: &t subprocess.Popen\nm: {_target_: *t, args: [id]}\n",
     "CONFIG-INSTANTIATE-TARGET", C),
    ("duplicate-target-first-bad", "m:\n  _target_: os.system\n  _target_: torch.nn.Identity\n",
     "CONFIG-INSTANTIATE-TARGET", C),
    ("duplicate-target-last-bad", "m:\n  _target_: torch.nn.Identity\n  _target_: os.system\n",
     "CONFIG-INSTANTIATE-TARGET", C),
    ("escaped-key", "m: {\"\\x5ftarget\\u005f\": os.system}\n", "CONFIG-INSTANTIATE-TARGET", C),
    ("complex-key-syntax", "m:\n  ? _target_\n  : os.system\n", "CONFIG-INSTANTIATE-TARGET", C),
    ("flow-style", "{m: {_target_: builtins.exec, _args_: ['print(1)']}}\n", "CONFIG-INSTANTIATE-TARGET", C),
    ("bom", "\ufeffm: {_target_: os.system}\n", "CONFIG-INSTANTIATE-TARGET", C),
    ("second-document", "lr: 1\n---\nm: {_target_: os.system}\n", "CONFIG-INSTANTIATE-TARGET", C),
    ("getattr-chain", "x: !!python/object/apply:builtins.getattr [!!python/name:builtins.__import__ , system]\n",
     "YAML-PYTHON-TAG", C),
    ("interpolated-target", "cmd: subprocess.Popen\nm: {_target_: '${cmd}', args: [id]}\n",
     "CONFIG-INSTANTIATE-TARGET", C),
    ("unresolvable-interpolated-target", "m: {_target_: '${oc.env:TARGET}'}\n", "CONFIG-INSTANTIATE-TARGET", M),
    ("get-method-path", "m: {_target_: hydra.utils.get_method, path: os.system}\n", "CONFIG-INSTANTIATE-TARGET", C),
    ("get-method-benign-path", "m: {_target_: hydra.utils.get_method, path: torch.nn.functional.relu}\n",
     "CONFIG-INSTANTIATE-TARGET", H),
    ("nested-in-args", "m: {_target_: builtins.list, _args_: [[{_target_: os.system, command: id}]]}\n",
     "CONFIG-INSTANTIATE-TARGET", C),
    ("partial", "m: {_target_: subprocess.run, _partial_: true}\n", "CONFIG-INSTANTIATE-TARGET", C),
    ("top-level-list", "- _target_: os.system\n  _args_: [id]\n", "CONFIG-INSTANTIATE-TARGET", C),
    ("bare-builtin-apply", "x: !apply:eval ['1']\n", "CONFIG-INSTANTIATE-TARGET", C),
    ("name-builtin", "x: !name:exec\n", "CONFIG-INSTANTIATE-TARGET", C),
    ("module-tag", "x: !module:subprocess\n", "CONFIG-INSTANTIATE-TARGET", H),
    ("python-module-tag", "x: !!python/module:os\n", "YAML-PYTHON-TAG", H),
    ("nemo-legacy-cls", "m: {cls: subprocess.Popen, params: {args: [id]}}\n", "CONFIG-INSTANTIATE-TARGET", C),
    ("class-path", "m: {class_path: os.system, init_args: {command: id}}\n", "CONFIG-INSTANTIATE-TARGET", C),
    ("custom-imports", "custom_imports: {imports: [os, mmdet.models]}\n", "CONFIG-INSTANTIATE-TARGET", H),
    ("custom-imports-unknown", "custom_imports: {imports: evilpkg}\n", "CONFIG-INSTANTIATE-TARGET", M),
    ("tuple-plain", "k: (3, !!python/object/apply:os.system [id])\n", "YAML-PYTHON-TAG", C),
    ("tuple-quoted", "k: \"(3, !!python/object/apply:os.system ['id'])\"\nj: !ref <k>\n", "YAML-PYTHON-TAG", C),
    ("explicit-tuple-tag", "k: !tuple (3, !!python/object/apply:os.system [id])\n", "YAML-PYTHON-TAG", C),
    ("tag-in-string", "k: \"!!python/object/apply:os.system [id]\"\n", "YAML-PYTHON-TAG", M),
    ("eval-resolver", "x: ${eval:'__import__(\"os\").system(\"id\")'}\n", "YAML-CODE-INTERPOLATION", H),
    ("trust-remote-code", "model: {_target_: transformers.AutoModel.from_pretrained, trust_remote_code: true}\n",
     "CONFIG-TRUST-REMOTE-CODE", None),
]


@pytest.mark.parametrize(("name", "text", "rule", "severity"), BYPASSES, ids=[b[0] for b in BYPASSES])
def test_bypass_attempts_are_reported(tmp_path: Path, name: str, text: str, rule: str,
                                      severity: Severity | None) -> None:
    evidence = scan(tmp_path, {"config.yaml": text})
    found = worst(evidence, rule)
    assert found is not None, [(f.rule_id, f.message) for f in evidence.findings]
    if severity is not None:
        assert found == severity, [(f.rule_id, f.severity.value, f.message) for f in evidence.findings]


def test_duplicate_target_is_also_a_high_differential(tmp_path: Path) -> None:
    evidence = scan(tmp_path, {"config.yaml": "m:\n  _target_: os.system\n  _target_: torch.nn.Identity\n"})
    assert worst(evidence, "YAML-DUPLICATE-KEY") == Severity.HIGH
    plain = scan(tmp_path / "b", {"config.yaml": "lr: 1\nlr: 2\n"})
    assert worst(plain, "YAML-DUPLICATE-KEY") == Severity.MEDIUM


def test_anchor_redefinition_is_a_differential(tmp_path: Path) -> None:
    evidence = scan(tmp_path, {"hyperparams.yaml": "a: &x 1\nb: &x 2\nc: *x\n"})
    assert worst(evidence, "YAML-ANCHOR-REDEFINED") == Severity.MEDIUM


def test_lookalike_and_non_string_keys_are_not_targets(tmp_path: Path) -> None:
    # Hydra matches the exact key "_target_"; a sequence key is refused by PyYAML and OmegaConf.
    evidence = scan(tmp_path, {"config.yaml": "a: {_t\u0430rget_: os.system}\nb: {? [_target_] : os.system}\n"
                                              "c: {\uff3ftarget_: os.system}\n"})
    assert not loud(evidence, Severity.HIGH)


def test_python_tag_severities(tmp_path: Path) -> None:
    evidence = scan(tmp_path, {"config.yaml": "a: !!python/object/apply:collections.OrderedDict [[]]\n"
                                              "b: !!python/tuple [1, 2]\nc: !!python/complex 1+2j\n"
                                              "d: !!python/nonsense x\n"})
    by_message = {f.message.split(":")[0]: f.severity for f in evidence.findings if f.rule_id == "YAML-PYTHON-TAG"}
    assert by_message["!!python/object/apply"] == Severity.MEDIUM  # a data constructor, still an unsafe loader
    assert Severity.INFO in by_message.values()  # python/tuple and complex are summarised
    assert any(f.severity == Severity.LOW and "nonsense" in f.message for f in evidence.findings)


def test_hyperpyyaml_include_and_ref(tmp_path: Path) -> None:
    evidence = scan(tmp_path, {"hyperparams.yaml": "a: 3\nb: !ref <a> ** 9 ** 9\nc: !include:sub/aug.yaml\n"
                                                   "d: !include:/etc/hparams.yaml\ne: !include:../x.yaml\n",
                               "sub/aug.yaml": "p: 1\n"})
    assert worst(evidence, "YAML-REF-POWER") == Severity.LOW
    escapes = [f for f in evidence.findings if f.rule_id == "YAML-INCLUDE-ESCAPE"]
    assert len(escapes) == 2 and all("sub/aug" not in f.message for f in escapes)


def test_env_secret_reads(tmp_path: Path) -> None:
    evidence = scan(tmp_path, {"config.yaml": "a: ${oc.env:HF_TOKEN}\nb: ${oc.env:HOME}\nc: ${env:AWS_SECRET_KEY,x}\n"
                                              "d: ${oc.env:DATA_DIR,/data}\n"})
    flagged = [f.details.get("variable") for f in evidence.findings if f.rule_id == "YAML-ENV-SECRET"]
    assert flagged == ["HF_TOKEN", "AWS_SECRET_KEY"]


def test_code_interpolation_severity_follows_the_expression(tmp_path: Path) -> None:
    evidence = scan(tmp_path, {"config.yaml": "a: ${eval:2*${n}}\nb: ${python:open('/etc/passwd').read()}\n"})
    levels = sorted(f.severity.rank for f in evidence.findings if f.rule_id == "YAML-CODE-INTERPOLATION")
    assert levels == [Severity.LOW.rank, Severity.HIGH.rank]


def test_repository_and_ecosystem_targets(tmp_path: Path) -> None:
    evidence = scan(tmp_path, {"config.yaml": "a: {_target_: mymodel.Net}\nb: {_target_: nemo.collections.asr.modules."
                                              "ConformerEncoder}\nc: {_target_: somepkg.Thing}\n"
                                              "d: {_target_: torch.hub.load}\n",
                               "mymodel.py": "class Net:\n    pass\n"})
    levels = {f.details.get("target"): f.severity for f in evidence.findings if f.rule_id == "CONFIG-INSTANTIATE-TARGET"}
    assert levels["mymodel.Net"] == Severity.LOW
    assert levels["somepkg.Thing"] == Severity.MEDIUM
    assert levels["torch.hub.load"] == Severity.CRITICAL
    summary = [f for f in evidence.findings if f.severity == Severity.INFO and f.rule_id == "CONFIG-INSTANTIATE-TARGET"]
    assert summary and summary[0].details["packages"] == {"nemo": 1}


@pytest.mark.parametrize(("name", "bare", "expected"), [
    ("os.system", True, Severity.CRITICAL), ("eval", True, Severity.CRITICAL), ("Linear", False, None),
    ("torch.nn.Linear", True, None), ("hydra.utils.call", True, Severity.HIGH), ("operator.add", True, None),
    ("operator.methodcaller", True, Severity.CRITICAL), ("re.compile", True, None),
    ("speechbrain.utils.data_utils.download_file", True, Severity.MEDIUM), ("not a name", True, Severity.MEDIUM),
])
def test_target_verdict(name: str, bare: bool, expected: Severity | None) -> None:
    assert target_verdict(name, bare)[0] == expected


def test_finding_cap_makes_the_file_partial() -> None:
    ctx = Context(subject="t", options=ScanOptions(limits=Limits(max_findings_per_file=5)))
    text = "".join(f"a{i}: !apply:os.system [id]\n" for i in range(20))
    outcome = analyze(Source.from_bytes(text.encode(), "hyperparams.yaml"), ctx)
    assert outcome.status is ArtifactStatus.PARTIAL
    assert sum(f.rule_id == "CONFIG-INSTANTIATE-TARGET" for f in ctx.findings) == 5
    assert any(f.rule_id == "SCAN-LIMIT-EXCEEDED" and "15 more" in f.message for f in ctx.findings)


# -- ordinary YAML stays quiet ----------------------------------------------------------------------

OPENAPI = """\
openapi: 3.0.3
info: {title: ASR API, version: '1.0'}
paths:
  /transcribe:
    post:
      security: [{bearerAuth: []}]
      requestBody:
        content: {audio/wav: {schema: {type: string, format: binary}}}
      responses:
        '200': {description: OK, content: {application/json: {schema: {$ref: '#/components/schemas/T'}}}}
components:
  securitySchemes:
    bearerAuth: {type: http, scheme: bearer}
  schemas:
    T: {type: object, properties: {text: {type: string}}}
"""
MODEL_CARD_YAML = """\
model-index:
- name: stt_en_conformer_ctc_large
  results:
  - task: {type: automatic-speech-recognition, name: Automatic Speech Recognition}
    dataset: {name: LibriSpeech (clean), type: librispeech_asr, config: clean, split: test}
    metrics: [{type: wer, value: 2.2, name: Test WER}]
license: cc-by-4.0
tags: [speech, "!important", NeMo]
"""
PRE_COMMIT = """\
repos:
  - repo: https://github.com/astral-sh/ruff-pre-commit
    rev: v0.6.9
    hooks:
      - id: ruff
        args: [--fix, "!tests/**"]
"""


def test_ordinary_yaml_raises_nothing(tmp_path: Path) -> None:
    evidence = scan(tmp_path, {".github/workflows/ci.yml": yaml_files.WORKFLOW, "deploy/k8s.yaml": yaml_files.K8S,
                               "docker-compose.yml": yaml_files.COMPOSE, "openapi.yaml": OPENAPI,
                               "card.yaml": MODEL_CARD_YAML, ".pre-commit-config.yaml": PRE_COMMIT,
                               "environment.yml": yaml_files.CONDA_ENV})
    assert not loud(evidence, Severity.LOW)
    assert {a.format for a in evidence.artifacts} == {"yaml"}
    assert all(a.status is ArtifactStatus.ANALYZED for a in evidence.artifacts)


def test_github_expressions_are_not_omegaconf(tmp_path: Path) -> None:
    # ${{ secrets.X }} is resolved by the Actions runner from the repository's secrets, not from the
    # environment of whoever loads a model: no YAML-ENV-SECRET.
    evidence = scan(tmp_path, {"ci.yml": "env: {T: '${{ secrets.HF_TOKEN }}', K: '${{ env.API_KEY }}'}\n"})
    assert not evidence.findings


def test_secrets_in_yaml_are_still_found(tmp_path: Path) -> None:
    token = fake_secrets()["hf"]
    evidence = scan(tmp_path, {"config.yaml": f"hub:\n  token: {token}\n"})
    assert any(f.rule_id.startswith("SECRET") for f in evidence.findings), evidence.findings


# -- sniffing and malformed files ------------------------------------------------------------------


@pytest.mark.parametrize(("name", "head", "expected"), [
    ("x.yaml", b"a: 1\n", Format.YAML), ("x.YML", b"a: 1\n", Format.YAML), ("d/MLmodel", b"flavors: {}\n", Format.YAML),
    ("params.txt", b"a: !!python/object/apply:os.system [id]\n", Format.YAML),
    ("notes.cfg", b"%YAML 1.1\n---\na: 1\n", Format.YAML),
    ("README.md", b"Use `!new:torch.nn.Linear` in hyperparams\n", Format.TEXT),
    ("config.json", b'{"a": "!!python/name:os.system"}', Format.JSON),
])
def test_sniffing(name: str, head: bytes, expected: Format) -> None:
    assert sniff(head, name, len(head)) is expected


def test_broken_loader_yaml_fails_closed(tmp_path: Path) -> None:
    for name in ("hyperparams.yaml", "model_config.yaml", "config.yaml", "MLmodel"):
        evidence = scan(tmp_path / name, {name: "a: [\n"})
        assert worst(evidence, "SCAN-PARSE-ERROR") == Severity.HIGH, name


def test_broken_tooling_yaml_is_low(tmp_path: Path) -> None:
    evidence = scan(tmp_path, {".github/workflows/ci.yml": "jobs: [\n", "environment.yml": "a: b: c\n"})
    assert [f.severity for f in evidence.findings] == [Severity.LOW, Severity.LOW]
    assert is_tooling_yaml(".gitlab-ci.yml") and not is_tooling_yaml("hyperparams.yaml")
    assert not is_tooling_yaml("m.nemo!environment.yml")  # an archive ships what a loader unpacks


def test_broken_yaml_still_reports_spelled_out_payloads(tmp_path: Path) -> None:
    evidence = scan(tmp_path, {".github/workflows/ci.yml": "a: !apply:os.system [id]\nb: [\n"})
    assert worst(evidence, "CONFIG-INSTANTIATE-TARGET") == Severity.CRITICAL


def test_prose_mentioning_tags_is_not_an_alarm(tmp_path: Path) -> None:
    # sniffed as YAML by the tag it mentions, but not YAML: only a dangerous name is loud
    evidence = scan(tmp_path, {"NOTES.txt": "Write !new:mypkg.Model in the file: then run it.\nkey: a: b\n",
                               "BAD.txt": "Never write !apply:os.system in a config: it runs.\nkey: a: b\n"})
    assert [(f.location.path, f.severity) for f in loud(evidence)] == [("BAD.txt", Severity.CRITICAL)]


def test_the_corpus_area_builds(tmp_path: Path) -> None:
    samples = yaml_files.build(tmp_path / "c", tmp_path / "m")
    assert sum(s.malicious for s in samples) >= 10 and sum(not s.malicious for s in samples) >= 8


@pytest.mark.parametrize(("name", "expected"), [
    ("os", Severity.HIGH), ("builtins", Severity.HIGH), ("mmdet.models", None), ("evilpkg", Severity.MEDIUM),
])
def test_module_verdict(name: str, expected: Severity | None) -> None:
    assert module_verdict(name)[0] == expected


def test_broken_templates_are_low_but_loader_names_fail_closed(tmp_path: Path) -> None:
    helm = "{{- if .Values.enabled }}\napiVersion: v1\nkind: ConfigMap\n{{- end }}\n"
    evidence = scan(tmp_path, {"chart/templates/cm.yaml": helm, "config.yaml": helm})
    levels = {f.location.path: f.severity for f in evidence.findings if f.rule_id == "SCAN-PARSE-ERROR"}
    assert levels == {"chart/templates/cm.yaml": Severity.LOW, "config.yaml": Severity.HIGH}


@pytest.mark.parametrize(("variable", "secret"), [
    ("HF_TOKEN", True), ("WANDB_API_KEY", True), ("AWS_SECRET_ACCESS_KEY", True), ("DB_PASSWORD", True),
    ("DB_PWD", True), ("GITHUB_AUTH", True), ("HOME", False), ("PWD", False), ("HF_HOME", False),
    ("TOKENIZERS_PARALLELISM", False), ("AWS_REGION", False), ("AUTHOR", False), ("OPENAI_BASE_URL", False),
])
def test_credential_like_variable_names(tmp_path: Path, variable: str, secret: bool) -> None:
    evidence = scan(tmp_path, {"config.yaml": f"x: ${{oc.env:{variable}}}\n"})
    assert bool(worst(evidence, "YAML-ENV-SECRET")) is secret
