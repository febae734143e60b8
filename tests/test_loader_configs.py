"""Configs of sentence-transformers, diffusers and PEFT that make a loader import or fetch code.

Facts behind each case are in :mod:`aivet.analyzers.config_libraries` (read from the
libraries' sources); here every config is built in code: what the libraries write
(must stay at info), what an attacker writes, and shapes no library writes.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import aivet
from aivet.analyzers import config, config_libraries
from aivet.analyzers.context import Context, ScanOptions
from aivet.analyzers.engine import Outcome
from aivet.analyzers.source import Source
from aivet.evidence import ArtifactStatus, Finding, Severity
from aivet.limits import DEFAULT_LIMITS
from tests.fixtures import loader_configs as lc
from tests.fixtures.work import HANG_TIMEOUT, growth, python_lines

REPO = frozenset({"modules.json", "custom_st.py", "pkg/deep.py", "model_index.json", "unet/my_unet.py",
                  "pipeline_mine.py", "processing_x.py", "image_processing_x.py"})


def analyze(data: Any, name: str, repo: frozenset[str] = REPO, **limits: int) -> tuple[list[Finding], Outcome]:
    raw = (data if isinstance(data, str) else json.dumps(data)).encode()
    ctx = Context("s", options=ScanOptions(limits=replace(DEFAULT_LIMITS, **limits)), repo_files=repo)
    return ctx.findings, config.analyze(Source.from_bytes(raw, name), ctx)


def rules(findings: list[Finding]) -> list[str]:
    return sorted(f.rule_id for f in findings)


def one(findings: list[Finding], rule: str) -> Finding:
    [hit] = [f for f in findings if f.rule_id == rule]
    return hit


# --- what the libraries themselves write: nothing above info ---------------------------------------

GENERATION_CONFIG = {"bos_token_id": 128000, "do_sample": True, "eos_token_id": [128001, 128008, 128009],
                     "temperature": 0.6, "top_p": 0.9, "transformers_version": "4.45.0"}
CLIP_PREPROCESSOR = {"crop_size": {"height": 224, "width": 224}, "do_center_crop": True, "do_normalize": True,
                     "do_resize": True, "image_processor_type": "CLIPImageProcessor", "processor_class": "CLIPProcessor",
                     "image_mean": [0.48145466, 0.4578275, 0.40821073], "resample": 3, "size": {"shortest_edge": 224}}
CLEAN_REPOS: dict[str, dict[str, Any]] = {
    "sentence-transformer": lc.sentence_transformer(),
    "cross-encoder": lc.cross_encoder(),
    "stable-diffusion": lc.stable_diffusion(),
    "lora": lc.lora(),
    "peft-auto-mapping": lc.lora(**{"adapter_config.json": dict(
        lc.LORA, task_type=None, auto_mapping={"base_model_class": "LlamaForCausalLM",
                                               "parent_library": "transformers.models.llama.modeling_llama"})}),
    "processors": {"config.json": lc.BERT_CONFIG, "preprocessor_config.json": CLIP_PREPROCESSOR,
                   "processor_config.json": {"processor_class": "LlavaProcessor", "patch_size": 14,
                                             "image_processor": CLIP_PREPROCESSOR},
                   "generation_config.json": GENERATION_CONFIG},
    "router": {"modules.json": [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Router"}],
               "router_config.json": {"types": {"query": "sentence_transformers.models.StaticEmbedding",
                                                "document": "sentence_transformers.models.Transformer"},
                                      "structure": {"query": ["query"], "document": ["document"]},
                                      "parameters": {"default_route": "document"}}},
    "sparse-encoder": {"modules.json": [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.sparse_encoder.models.MLMTransformer"},
        {"idx": 1, "name": "1", "path": "1_SpladePooling",
         "type": "sentence_transformers.sparse_encoder.models.SpladePooling"}]},
    "sdxl-modular": {"modular_model_index.json": {
        "_blocks_class_name": "StableDiffusionXLAutoBlocks", "_class_name": "StableDiffusionXLModularPipeline",
        "unet": [None, None, {"repo": "stabilityai/stable-diffusion-xl-base-1.0", "subfolder": "unet",
                              "type_hint": ["diffusers", "UNet2DConditionModel"], "revision": None}],
        "text_encoder": [None, None, {"repo": "stabilityai/stable-diffusion-xl-base-1.0", "subfolder": "text_encoder",
                                      "type_hint": ["transformers", "CLIPTextModel"], "revision": None}]}},
    "word-embeddings": {"modules.json": [{"idx": 0, "name": "0", "path": "0_WordEmbeddings",
                                          "type": "sentence_transformers.models.WordEmbeddings"}],
                        "0_WordEmbeddings/wordembedding_config.json": {
                            "tokenizer_class":
                                "sentence_transformers.models.tokenizer.WhitespaceTokenizer.WhitespaceTokenizer",
                            "update_embeddings": False}},
}


@pytest.mark.parametrize("kind", sorted(CLEAN_REPOS))
def test_configs_the_libraries_write_stay_at_info(kind: str, tmp_path: Path) -> None:
    evidence = aivet.scan(lc.write_repo(tmp_path / kind, CLEAN_REPOS[kind]))
    assert [f for f in evidence.findings if f.severity > Severity.INFO] == []
    assert {a.status for a in evidence.artifacts} == {ArtifactStatus.ANALYZED}


def test_config_sentence_transformers_and_generation_config_name_no_code() -> None:
    st_config = lc.sentence_transformer()["config_sentence_transformers.json"]
    assert analyze(st_config, "config_sentence_transformers.json")[0] == []
    assert analyze(GENERATION_CONFIG, "generation_config.json")[0] == []


# --- sentence-transformers modules.json ----------------------------------------------------------------


@pytest.mark.parametrize(("type_", "rule", "severity"), [
    ("custom_st.MyModule", "CONFIG-REMOTE-CODE", Severity.LOW),  # custom_st.py ships with the model
    ("org/repo--custom_st.MyModule", "CONFIG-REMOTE-CODE-EXTERNAL", Severity.HIGH),
    ("st_plugin.Module", "CONFIG-LOADER-IMPORT", Severity.MEDIUM),  # not in the repo: an installed package
    ("pkg.deep.Module", "CONFIG-LOADER-IMPORT", Severity.MEDIUM),  # two dots: the dynamic loader refuses it
    ("os.system", "CONFIG-LOADER-IMPORT", Severity.HIGH),
    ("builtins.eval", "CONFIG-LOADER-IMPORT", Severity.HIGH),
    ("sentence_transformers.util.misc.importlib", "CONFIG-LOADER-IMPORT", Severity.MEDIUM),  # not a class
    ("../evil.Module", "CONFIG-AUTO-MAP-INVALID", Severity.MEDIUM),
    ("nodots", "CONFIG-AUTO-MAP-INVALID", Severity.MEDIUM),
])
def test_modules_json_types(type_: str, rule: str, severity: Severity) -> None:
    modules = lc.ST_MODULES + [{"idx": 3, "name": "3", "path": "3_X", "type": type_}]
    findings, outcome = analyze(modules, "modules.json")
    hit = one(findings, rule)
    assert hit.severity is severity and hit.location.pointer == "/3/type"
    assert {f.rule_id for f in findings} == {rule} and outcome.status is ArtifactStatus.ANALYZED


def test_modules_json_external_reference_that_is_malformed_is_also_invalid() -> None:
    findings, _ = analyze([{"type": "not a repo--x.Y"}], "modules.json")
    assert rules(findings) == ["CONFIG-AUTO-MAP-INVALID", "CONFIG-REMOTE-CODE-EXTERNAL"]


def test_repository_module_needs_the_file_next_to_modules_json() -> None:
    findings, _ = analyze([{"type": "custom_st.M"}], "sub/modules.json")  # sub/custom_st.py is absent
    assert rules(findings) == ["CONFIG-LOADER-IMPORT"]
    findings, _ = analyze([{"type": "custom_st.M"}], "modules.json", repo=frozenset())  # a file alone: unknown
    assert rules(findings) == ["CONFIG-LOADER-IMPORT"]
    findings, _ = analyze([{"type": "custom_st.A"}, {"type": "custom_st.B"}], "modules.json")
    assert rules(findings) == ["CONFIG-REMOTE-CODE"] and findings[0].details["modules"] == ("custom_st",)


@pytest.mark.parametrize("path", ["../outside", "/etc", "C:\\models", "~/x", "a/../../b"])
def test_module_paths_that_leave_the_repository(path: str) -> None:
    findings, _ = analyze([{"idx": 0, "name": "0", "path": path, "type": "sentence_transformers.models.Pooling"}],
                          "modules.json")
    hit = one(findings, "CONFIG-SUBFOLDER-ESCAPE")
    assert hit.severity is Severity.MEDIUM and hit.location.pointer == "/0/path"


# --- other sentence-transformers configs ------------------------------------------------------------------


@pytest.mark.parametrize(("data", "pointer", "severity"), [
    ({"in_features": 8, "out_features": 8, "activation_function": "my_acts.Swish"}, "/activation_function",
     Severity.MEDIUM),
    ({"in_features": 8, "out_features": 8, "activation_function": "code.interact"}, "/activation_function",
     Severity.HIGH),
    ({"in_features": 8, "out_features": 8, "activation_function": "torch.hub.load"}, "/activation_function",
     Severity.HIGH),  # under torch, still bad
    ({"sentence_transformers": {"activation_fn": "evil.Act"}}, "/sentence_transformers/activation_fn",
     Severity.MEDIUM),
    ({"sbert_ce_default_activation_function": "webbrowser.open_new"}, "/sbert_ce_default_activation_function",
     Severity.HIGH),
])
def test_activation_functions_are_imported_and_called(data: dict[str, Any], pointer: str, severity: Severity) -> None:
    findings, _ = analyze(data, "2_Dense/config.json")
    hit = one(findings, "CONFIG-LOADER-IMPORT")
    assert hit.severity is severity and hit.location.pointer == pointer


@pytest.mark.parametrize("value", ["gelu_new", "torch.nn.modules.activation.Tanh", "torch.nn.modules.linear.Identity",
                                   "torch.nn.modules.activation.Sigmoid", 3, None, ["x.y"]])
def test_ordinary_activation_values_are_quiet(value: Any) -> None:
    assert analyze({"in_features": 8, "out_features": 8, "activation_function": value,
                    "sentence_transformers": {"activation_fn": value}}, "config.json")[0] == []


def test_activation_function_outside_a_dense_config_is_someone_elses_setting() -> None:
    assert analyze({"activation_function": "jax.nn.gelu", "hidden_size": 8}, "config.json")[0] == []


def test_router_and_asym_types() -> None:
    data = {"types": {"q": "sentence_transformers.models.StaticEmbedding", "../d": "router_ext.Enc"},
            "structure": {"q": ["q"]}, "parameters": {}}
    findings, _ = analyze(data, "config.json")  # the legacy Asym file name
    assert rules(findings) == ["CONFIG-LOADER-IMPORT", "CONFIG-SUBFOLDER-ESCAPE"]
    assert one(findings, "CONFIG-LOADER-IMPORT").location.pointer == "/types/..~1d"
    # a repository module is not loaded by Router: it is an import like any other
    findings, _ = analyze({"types": {"q": "custom_st.M"}}, "router_config.json")
    assert rules(findings) == ["CONFIG-LOADER-IMPORT"]
    # recognised by its keys only: plain words are another tool's vocabulary
    assert analyze({"types": {"a": "int", "b": "str"}, "structure": {}, "parameters": {}}, "x.json")[0] == []
    assert rules(analyze({"types": {"a": "word"}}, "router_config.json")[0]) == ["CONFIG-AUTO-MAP-INVALID"]


def test_word_embeddings_tokenizer_class() -> None:
    findings, _ = analyze({"tokenizer_class": "evil_tok.Tokenizer"}, "0_WordEmbeddings/wordembedding_config.json")
    assert one(findings, "CONFIG-LOADER-IMPORT").location.pointer == "/tokenizer_class"
    # transformers' tokenizer_class is a plain class name, looked up, never imported by path
    assert analyze({"tokenizer_class": "LlamaTokenizer"}, "tokenizer_config.json")[0] == []


@pytest.mark.parametrize("key", ["model_args", "model_kwargs", "config_args", "config_kwargs", "tokenizer_args",
                                 "tokenizer_kwargs"])
def test_loader_arguments_that_pin_or_enable_remote_code(key: str) -> None:
    findings, _ = analyze({key: {"trust_remote_code": True, "code_revision": "v2-unreviewed"}},
                          "sentence_bert_config.json")
    assert rules(findings) == ["CONFIG-CODE-REVISION", "CONFIG-TRUST-REMOTE-CODE"]
    hit = one(findings, "CONFIG-CODE-REVISION")
    assert hit.severity is Severity.MEDIUM and hit.location.pointer == f"/{key}/code_revision"
    assert one(findings, "CONFIG-TRUST-REMOTE-CODE").severity is Severity.MEDIUM
    assert analyze({key: {"code_revision": " ", "torch_dtype": "auto"}}, "sentence_bert_config.json")[0] == []


# --- diffusers ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("component", "rule", "severity"), [
    (["my_unet", "MyUNet"], "CONFIG-REMOTE-CODE", Severity.LOW),  # unet/my_unet.py ships with the model
    (["unet_ext", "UNet"], "CONFIG-LOADER-IMPORT", Severity.MEDIUM),
    (["subprocess", "Popen"], "CONFIG-LOADER-IMPORT", Severity.HIGH),
    (["../x", "UNet"], "CONFIG-AUTO-MAP-INVALID", Severity.MEDIUM),
])
def test_diffusers_component_libraries(component: list[str], rule: str, severity: Severity) -> None:
    findings, _ = analyze(dict(lc.SD_INDEX, unet=component), "model_index.json")
    hit = one(findings, rule)
    assert hit.severity is severity and hit.location.pointer == "/unet/0" and len(findings) == 1


@pytest.mark.parametrize(("module", "rule", "severity"), [
    ("pipeline_mine", "CONFIG-REMOTE-CODE", Severity.LOW),
    ("attacker/sd-pipe", "CONFIG-REMOTE-CODE-EXTERNAL", Severity.HIGH),
    ("lpw_stable_diffusion", "CONFIG-REMOTE-CODE-EXTERNAL", Severity.MEDIUM),
    ("/tmp/pipe.py", "CONFIG-AUTO-MAP-INVALID", Severity.MEDIUM),
    ("pipe.py", "CONFIG-AUTO-MAP-INVALID", Severity.MEDIUM),
    ("a b c", "CONFIG-AUTO-MAP-INVALID", Severity.MEDIUM),
])
def test_diffusers_custom_pipelines(module: str, rule: str, severity: Severity) -> None:
    findings, _ = analyze(dict(lc.SD_INDEX, _class_name=[module, "Pipe"]), "model_index.json")
    hit = one(findings, rule)
    assert hit.severity is severity and hit.location.pointer == "/_class_name/0"


def test_diffusers_component_folders_that_leave_the_repository() -> None:
    findings, _ = analyze({"_class_name": "StableDiffusionPipeline", "../../vae": ["diffusers", "AutoencoderKL"]},
                          "model_index.json")
    assert rules(findings) == ["CONFIG-SUBFOLDER-ESCAPE"] and findings[0].location.pointer == "/..~1..~1vae"


def test_modular_components_name_libraries_and_other_repositories() -> None:
    spec = {"repo": "https://example.org/weights", "subfolder": "unet", "type_hint": ["evil_ext", "UNet"]}
    findings, _ = analyze({"_class_name": "X", "unet": [None, None, spec]}, "modular_model_index.json")
    assert one(findings, "CONFIG-LOADER-IMPORT").location.pointer == "/unet/2/type_hint/0"
    ref = one(findings, "CONFIG-EXTERNAL-REFERENCE")
    assert ref.severity is Severity.LOW and ref.location.pointer == "/unet/2/repo"
    # type_hint libraries are never loaded from the repository, even when a file of that name exists
    findings, _ = analyze({"unet": [None, None, {"type_hint": ["my_unet", "U"]}]}, "modular_model_index.json")
    assert rules(findings) == ["CONFIG-LOADER-IMPORT"]


def test_component_config_auto_map_is_resolved_in_its_folder() -> None:
    findings, _ = analyze({"_class_name": "MyUNet", "auto_map": {"AutoModel": "my_unet.MyUNet"}}, "unet/config.json")
    assert rules(findings) == ["CONFIG-REMOTE-CODE"]
    findings, _ = analyze({"auto_map": {"ModularPipelineBlocks": "blocks.MyBlocks"}}, "modular_config.json")
    assert rules(findings) == ["CONFIG-AUTO-MAP-MISSING", "CONFIG-REMOTE-CODE"]


# --- PEFT ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("parent", "severity"), [
    ("transformers.models.llama.modeling_llama", None), ("diffusers.models", None), ("lerobot.policies.act", None),
    ("peft_ext.models", Severity.MEDIUM), ("transformers_evil", Severity.MEDIUM), ("os", Severity.HIGH),
    ("transformers.models.x.os.system", Severity.HIGH),
])
def test_peft_auto_mapping_parent_library(parent: str, severity: Severity | None) -> None:
    data = dict(lc.LORA, task_type=None, auto_mapping={"base_model_class": "M", "parent_library": parent})
    findings = [f for f in analyze(data, "adapter_config.json")[0] if f.rule_id != "CONFIG-EXTERNAL-REFERENCE"]
    assert [f.severity for f in findings] == ([severity] if severity else [])
    if severity:
        assert findings[0].location.pointer == "/auto_mapping/parent_library"


def test_peft_megatron_core_is_imported_only_with_megatron_config() -> None:
    def loader_imports(**changes: Any) -> list[Finding]:
        return [f for f in analyze(dict(lc.LORA, **changes), "adapter_config.json")[0]
                if f.rule_id == "CONFIG-LOADER-IMPORT"]

    assert loader_imports(megatron_core="evil.core") == []  # megatron_config is null: nothing is imported
    assert loader_imports(megatron_config={"tp": 2}) == []  # the default megatron.core
    [hit] = loader_imports(megatron_config={"tp": 2}, megatron_core="evil.core")
    assert hit.location.pointer == "/megatron_core" and hit.severity is Severity.MEDIUM


def test_peft_types_and_base_model_lineage() -> None:
    findings, _ = analyze(dict(lc.LORA, peft_type="SUPER_LORA"), "adapter_config.json")
    assert rules(findings) == ["CONFIG-EXTERNAL-REFERENCE", "CONFIG-PEFT-TYPE-UNKNOWN"]
    assert one(findings, "CONFIG-PEFT-TYPE-UNKNOWN").severity is Severity.LOW
    ref = one(findings, "CONFIG-EXTERNAL-REFERENCE")
    assert ref.severity is Severity.INFO and ref.location.pointer == "/base_model_name_or_path"
    findings, _ = analyze(dict(lc.LORA, base_model_name_or_path="../../private/ckpt"), "adapter_config.json")
    assert one(findings, "CONFIG-EXTERNAL-REFERENCE").severity is Severity.LOW
    for kind in ("LORA", "ADALORA", "IA3", "PREFIX_TUNING", "XLORA"):
        assert rules(analyze(dict(lc.LORA, peft_type=kind), "adapter_config.json")[0]) == [
            "CONFIG-EXTERNAL-REFERENCE"]


# --- transformers processors: auto_map at the top and in nested processor configs ---------------------------


def test_processor_auto_maps_top_level_and_nested() -> None:
    top = dict(CLIP_PREPROCESSOR, auto_map={"AutoImageProcessor": "image_processing_x.XImageProcessor",
                                            "AutoProcessor": "processing_x.XProcessor"})
    findings, _ = analyze(top, "preprocessor_config.json")
    assert rules(findings) == ["CONFIG-REMOTE-CODE"] and findings[0].location.pointer == "/auto_map"
    nested = {"processor_class": "XProcessor", "auto_map": {"AutoProcessor": "processing_x.XProcessor"},
              "image_processor": dict(CLIP_PREPROCESSOR, auto_map={"AutoImageProcessor": "image_processing_x.X"}),
              "video_processor": {"auto_map": {"AutoVideoProcessor": "video_processing_gone.V"}},
              "feature_extractor": {"auto_map": "not-an-object"}}
    findings, _ = analyze(nested, "processor_config.json")
    assert rules(findings) == ["CONFIG-AUTO-MAP-INVALID", "CONFIG-AUTO-MAP-MISSING", "CONFIG-REMOTE-CODE"]
    assert one(findings, "CONFIG-AUTO-MAP-MISSING").location.pointer == \
        "/video_processor/auto_map/AutoVideoProcessor"
    assert one(findings, "CONFIG-AUTO-MAP-INVALID").location.pointer == "/feature_extractor/auto_map"
    assert one(findings, "CONFIG-REMOTE-CODE").details["modules"] == (
        "image_processing_x", "processing_x", "video_processing_gone")
    findings, _ = analyze({"image_processor": {"auto_map": {"AutoImageProcessor": "evil/x--image_processing_x.P"}}},
                          "processor_config.json")
    assert one(findings, "CONFIG-REMOTE-CODE-EXTERNAL").location.pointer == \
        "/image_processor/auto_map/AutoImageProcessor"


# --- bad input: wrong types, huge arrays, deep nesting --------------------------------------------------------


@pytest.mark.parametrize(("name", "data"), [
    ("modules.json", {"type": "os.system"}),  # an object, not a list: the loader fails to iterate it
    ("modules.json", [1, "x", None, [], {"type": 5, "path": ["a"]}, {"type": None}, {}]),
    ("modules.json", []),
    ("model_index.json", ["diffusers", "X"]),
    ("model_index.json", {"_class_name": [], "unet": [1, 2], "vae": ["diffusers"], "x": {"a": 1}, "y": [None, 3]}),
    ("model_index.json", {"_class_name": [5, "X"], "unet": [None, None, "spec"], "vae": [None, None, {"type_hint": 3}]}),
    ("adapter_config.json", {"auto_mapping": ["transformers"], "peft_type": 7, "megatron_core": 1,
                             "megatron_config": True}),
    ("adapter_config.json", {"auto_mapping": {"parent_library": None}, "peft_type": None}),
    ("router_config.json", {"types": ["sentence_transformers.models.Transformer"], "structure": 1}),
    ("router_config.json", {"types": {"a": 1, "b": None}}),
    ("config.json", {"sentence_transformers": "torch.x", "activation_function": {"a": 1}}),
    ("sentence_bert_config.json", {"model_args": ["code_revision"], "config_args": {"code_revision": 3}}),
    ("processor_config.json", {"image_processor": [], "video_processor": "x", "feature_extractor": {"auto_map": None}}),
    ("wordembedding_config.json", {"tokenizer_class": ["x"]}),
])
def test_wrong_shapes_are_quiet(name: str, data: Any) -> None:
    findings, outcome = analyze(data, name)
    assert findings == [] and outcome.status is ArtifactStatus.ANALYZED


def test_findings_per_file_are_capped() -> None:
    modules = [{"type": f"evil_{i}.M", "path": f"../{i}"} for i in range(500)]
    findings, outcome = analyze(modules, "modules.json", max_findings_per_file=10)
    assert len(findings) == 11 and outcome.status is ArtifactStatus.PARTIAL
    assert one(findings, "SCAN-LIMIT-EXCEEDED").details["limit"] == "max_findings_per_file"


def test_deeply_nested_model_index_is_a_limit_finding() -> None:
    text = '{"unet": ' + "[" * 100_000 + "]" * 100_000 + "}"
    findings, outcome = analyze(text, "model_index.json")
    assert rules(findings) == ["SCAN-LIMIT-EXCEEDED"] and outcome.status is ArtifactStatus.PARTIAL


def test_work_on_huge_configs_is_linear() -> None:
    def work(n: int) -> int:
        modules = [{"idx": i, "name": str(i), "path": f"{i}_P", "type": "sentence_transformers.models.Pooling"}
                   for i in range(n)]
        index = {f"c{i}": ["diffusers", "UNet2DConditionModel"] for i in range(n)}
        (findings, _), lines = python_lines(lambda: analyze(modules, "modules.json"))
        (more, _), lines2 = python_lines(lambda: analyze(index, "model_index.json"))
        assert findings == [] and more == []
        return lines + lines2

    assert growth(work, 500) <= 5  # linear gives about 4, quadratic about 16


_NAMES = ["modules.json", "model_index.json", "modular_model_index.json", "adapter_config.json", "router_config.json",
          "wordembedding_config.json", "sentence_bert_config.json", "processor_config.json", "config.json"]
_KEYS = ["type", "path", "_class_name", "unet", "auto_mapping", "parent_library", "megatron_core",
         "megatron_config", "peft_type", "types", "structure", "tokenizer_class", "activation_function",
         "sentence_transformers", "activation_fn", "model_args", "code_revision", "trust_remote_code",
         "image_processor", "auto_map", "type_hint", "repo", "AutoModel"]
_leaves = (st.none() | st.booleans() | st.integers() | st.text(max_size=12)
           | st.sampled_from(["os.system", "custom_st.M", "a/b--c.D", "../x", "LORA", "diffusers", "x.py", ""]))
_json_values = st.recursive(
    _leaves, lambda children: st.lists(children, max_size=4) | st.dictionaries(
        st.sampled_from(_KEYS) | st.text(max_size=6), children, max_size=5),
    max_leaves=30)


@pytest.mark.timeout(HANG_TIMEOUT)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(_NAMES), _json_values)
def test_random_library_configs_never_crash_a_scan(name: str, value: Any) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        files = {name: value, "custom_st.py": "class M:\n    pass\n"}
        evidence = aivet.scan(lc.write_repo(Path(tmp) / "repo", files))
    internal = [f for f in evidence.findings if f.details.get("internal")]
    assert internal == []
    assert all(f.rule_id != "SCAN-PARSE-ERROR" for f in evidence.findings)


def test_rule_catalogue() -> None:
    from aivet import rules as catalogue

    assert config_libraries.RULES
    for rule in config_libraries.RULES:
        assert rule.id.startswith("CONFIG-") and catalogue.get(rule.id) is rule
        assert rule.title and len(rule.description) > 40 and rule.atlas and rule.cwe
