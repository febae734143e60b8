"""``aivet bom``: CycloneDX 1.6 ML-BOM and SPDX 3.0.1 AI profile of generated model directories.

Every model directory is built here: a llama-like ``config.json``, a README
with Hugging Face front matter, safetensors shards written byte by byte, a
GGUF file from the shared fixture writer, and a signature made with aivet's
own signer and a fresh EC key. CycloneDX output is checked with
cyclonedx-python-lib's strict JSON validator for schema 1.6 (offline).
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from typer.testing import CliRunner

from aivet.errors import ArtifactError, UsageError
from aivet.evidence import Evidence
from aivet.limits import DEFAULT_LIMITS
from aivet.provenance import signing
from aivet.provenance.bom import BomFormat, BomInvalid, build_bom, take_inventory
from aivet.provenance.modelcard import estimate_parameters, parse_config
from tests.fixtures import marker_path, marker_shell
from tests.fixtures.gguf_files import GGUFSpec, Tensor, base_kvs, gguf_bytes

cyclonedx_validation = pytest.importorskip("cyclonedx.validation.json")
from cyclonedx.schema import SchemaVersion  # noqa: E402

LLAMA_CONFIG: dict[str, Any] = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "vocab_size": 100,
    "max_position_embeddings": 4096,
    "torch_dtype": "bfloat16",
    "tie_word_embeddings": False,
    "transformers_version": "4.46.0",
}
README = """---
license: apache-2.0
base_model:
  - meta-llama/Llama-3.1-8B
base_model_relation: finetune
datasets:
  - HuggingFaceFW/fineweb-edu
  - open-web-math/open-web-math
language: [en, de]
pipeline_tag: text-generation
library_name: transformers
tags: [llama, aivet-test]
---
# Tiny llama

A model card body that the BOM does not read.
"""


def safetensors_bytes(tensors: dict[str, tuple[str, tuple[int, ...]]]) -> bytes:
    """A safetensors file written by hand: header JSON with shapes, zero-filled data."""
    itemsize = {"F32": 4, "BF16": 2, "F16": 2}
    header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, (dtype, shape) in tensors.items():
        n = itemsize[dtype]
        for d in shape:
            n *= d
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + n]}
        offset += n
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw + b"\0" * offset


SHARD_1 = {"model.embed_tokens.weight": ("BF16", (100, 64)), "model.layers.0.mlp.up_proj.weight": ("BF16", (128, 64))}
SHARD_2 = {"lm_head.weight": ("BF16", (100, 64)), "model.norm.weight": ("F32", (64,))}
SHARD_PARAMS = 100 * 64 + 128 * 64 + 100 * 64 + 64


def make_model(root: Path, *, readme: str | None = README, config: str | None = None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "config.json").write_text(config if config is not None else json.dumps(LLAMA_CONFIG))
    if readme is not None:
        (root / "README.md").write_text(readme)
    (root / "model-00001-of-00002.safetensors").write_bytes(safetensors_bytes(SHARD_1))
    (root / "model-00002-of-00002.safetensors").write_bytes(safetensors_bytes(SHARD_2))
    (root / "tokenizer_config.json").write_text('{"model_max_length": 4096}')
    (root / "sub").mkdir(exist_ok=True)
    (root / "sub" / "notes.txt").write_text("nested file\n")
    (root / ".git").mkdir(exist_ok=True)
    (root / ".git" / "HEAD").write_text("ref: refs/heads/main\n")  # never listed: git metadata
    return root


def write_key(path: Path) -> Path:
    key = ec.generate_private_key(ec.SECP256R1())
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    return path


@pytest.fixture
def model(tmp_path: Path) -> Path:
    return make_model(tmp_path / "tiny-llama")


def validate_cdx(text: str) -> None:
    error = cyclonedx_validation.JsonStrictValidator(SchemaVersion.V1_6).validate_str(text)
    assert error is None, str(error)


def component(doc: dict[str, Any], ref: str) -> dict[str, Any]:
    found = [c for c in doc["components"] if c.get("bom-ref") == ref]
    assert len(found) == 1, ref
    return found[0]


def props(obj: dict[str, Any]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for p in obj.get("properties", []):
        out.setdefault(p["name"], []).append(p["value"])
    return out


def rule_ids(result: Any) -> list[str]:
    return [f.rule_id for f in result.findings]


# -- CycloneDX --------------------------------------------------------------------------------


def test_cyclonedx_ml_bom_validates_and_carries_the_model_card(model: Path) -> None:
    result = build_bom(model)
    validate_cdx(result.text)
    doc = json.loads(result.text)
    assert doc["bomFormat"] == "CycloneDX" and doc["specVersion"] == "1.6"
    m = component(doc, "model")
    assert m["type"] == "machine-learning-model" and m["name"] == "tiny-llama"
    card = m["modelCard"]
    params = card["modelParameters"]
    assert params["task"] == "text-generation"
    assert params["architectureFamily"] == "llama"
    assert params["modelArchitecture"] == "LlamaForCausalLM"
    refs = [d["ref"] for d in params["datasets"]]
    assert refs == ["dataset:HuggingFaceFW/fineweb-edu", "dataset:open-web-math/open-web-math"]
    for ref in refs:  # every dataset reference resolves to a data component
        ds = component(doc, ref)
        assert ds["type"] == "data" and ds["data"][0]["type"] == "dataset"
    card_props = props(card)
    assert card_props["aivet:parameterCount"] == [str(SHARD_PARAMS)]
    assert card_props["aivet:parameterCountSource"] == ["safetensors"]
    assert card_props["aivet:contextLength"] == ["4096"]
    assert card_props["aivet:keyValueHeads"] == ["2"]
    assert m["licenses"] == [{"license": {"id": "Apache-2.0", "acknowledgement": "declared"}}]
    (base,) = m["pedigree"]["ancestors"]
    assert base["name"] == "meta-llama/Llama-3.1-8B"
    assert base["purl"] == "pkg:huggingface/meta-llama/Llama-3.1-8B"
    assert base["type"] == "machine-learning-model"
    model_props = props(m)
    assert sorted(model_props["aivet:language"]) == ["de", "en"]
    assert model_props["aivet:base-model-relation"] == ["finetune"]
    assert set(m["tags"]) == {"llama", "aivet-test"}


def test_every_file_is_listed_with_its_sha256(model: Path) -> None:
    doc = build_bom(model).document
    files = {c["name"]: c for c in component(doc, "model")["components"]}
    on_disk = sorted(p.relative_to(model).as_posix() for p in model.rglob("*")
                     if p.is_file() and ".git" not in p.parts)
    assert sorted(files) == on_disk
    for name, comp in files.items():
        assert comp["type"] == "file"
        assert comp["hashes"] == [{"alg": "SHA-256", "content": hashlib.sha256((model / name).read_bytes()).hexdigest()}]
        assert props(comp)["aivet:size"] == [str((model / name).stat().st_size)]


def test_evidence_record_names_the_serial_and_digest(model: Path) -> None:
    result = build_bom(model)
    record = result.record
    assert record.kind == "bom" and record.subject == "tiny-llama"
    assert record.data["serial_number"] == result.document["serialNumber"] == result.serial_number
    assert record.data["sha256"] == hashlib.sha256(result.text.encode()).hexdigest() == result.sha256
    assert record.data["parameter_count"] == SHARD_PARAMS
    assert record.data["license"] == "apache-2.0"
    assert list(record.data["base_models"]) == ["meta-llama/Llama-3.1-8B"]
    assert result.findings == ()
    again = Evidence.from_json(result.evidence.to_json())  # serialisable for the log and the policy
    assert again.records == result.evidence.records


def test_name_option(model: Path) -> None:
    result = build_bom(model, name="org/tiny-llama")
    assert component(result.document, "model")["name"] == "org/tiny-llama"
    assert result.record.data["name"] == "org/tiny-llama" and result.record.subject == "tiny-llama"


def test_serial_numbers_are_unique(model: Path) -> None:
    assert build_bom(model).serial_number != build_bom(model).serial_number


def test_signature_digest_and_signed_root(model: Path, tmp_path: Path) -> None:
    key = write_key(tmp_path / "signer.pem")
    signed = signing.sign_model(model, signing.KeySigner(key))
    result = build_bom(model)
    validate_cdx(result.text)
    m = component(result.document, "model")
    p = props(m)
    sig_sha = hashlib.sha256((model / "model.sig").read_bytes()).hexdigest()
    assert p["aivet:signature:file"] == ["model.sig"]
    assert p["aivet:signature:sha256"] == [sig_sha]
    assert p["aivet:signature:status"] == ["unverified"]
    assert p["aivet:signature:method"] == ["key"]
    assert p["aivet:signature:manifest-root-sha256"] == [signed.manifest.root_digest()]
    assert p["aivet:signature:files-match-manifest"] == ["true"]
    # With default signing options our content root digest equals the signed subject digest.
    assert p["aivet:content-root-sha256"] == [signed.manifest.root_digest()]
    (att,) = m["externalReferences"]
    assert att["type"] == "attestation" and att["url"] == "model.sig"
    assert att["hashes"] == [{"alg": "SHA-256", "content": sig_sha}]
    sig_file = next(c for c in m["components"] if c["name"] == "model.sig")
    assert props(sig_file)["aivet:role"] == ["signature"]
    assert result.record.data["signature"]["root_digest"] == signed.manifest.root_digest()
    assert result.record.data["signature"]["status"] == "unverified"


def test_files_changed_after_signing_are_visible(model: Path, tmp_path: Path) -> None:
    signing.sign_model(model, signing.KeySigner(write_key(tmp_path / "k.pem")))
    (model / "tokenizer_config.json").write_text('{"model_max_length": 1}')
    p = props(component(build_bom(model).document, "model"))
    assert p["aivet:signature:files-match-manifest"] == ["false"]


def test_signature_outside_the_directory(model: Path, tmp_path: Path) -> None:
    sig = tmp_path / "else where.sig"
    signed = signing.sign_model(model, signing.KeySigner(write_key(tmp_path / "k.pem")), signature=sig)
    result = build_bom(model, signature=sig)
    p = props(component(result.document, "model"))
    assert p["aivet:signature:file"] == ["else where.sig"]
    validate_cdx(result.text)
    assert component(result.document, "model")["externalReferences"][0]["url"] == "else%20where.sig"
    assert p["aivet:signature:sha256"] == [hashlib.sha256(sig.read_bytes()).hexdigest()]
    assert p["aivet:signature:manifest-root-sha256"] == [signed.manifest.root_digest()]
    assert p["aivet:signature:files-match-manifest"] == ["true"]
    assert p["aivet:content-root-sha256"] == [signed.manifest.root_digest()]


@pytest.mark.parametrize("content", [b"", b"{not json", b'{"mediaType": "x"}', b"\xff\xfe" * 100])
def test_corrupt_signature_is_a_finding_not_a_crash(model: Path, content: bytes) -> None:
    (model / "model.sig").write_bytes(content)
    result = build_bom(model)
    validate_cdx(result.text)
    assert rule_ids(result) == ["BOM-SIGNATURE-UNREADABLE"]
    p = props(component(result.document, "model"))
    assert p["aivet:signature:sha256"] == [hashlib.sha256(content).hexdigest()]
    assert "aivet:signature:manifest-root-sha256" not in p


def test_gguf_parameter_count_and_architecture(tmp_path: Path) -> None:
    root = tmp_path / "gguf-model"
    root.mkdir()
    tensors = [Tensor("token_embd.weight", (8, 4)), Tensor("output.weight", (8, 4)), Tensor("norm", (4,))]
    (root / "tiny-q8.gguf").write_bytes(gguf_bytes(GGUFSpec(base_kvs(), tensors)))
    # A second quantisation of the same model is not added to the first.
    (root / "tiny-f32.gguf").write_bytes(gguf_bytes(GGUFSpec(base_kvs(), tensors)))
    result = build_bom(root)
    validate_cdx(result.text)
    card = component(result.document, "model")["modelCard"]
    assert card["modelParameters"]["architectureFamily"] == "llama"
    assert props(card)["aivet:parameterCount"] == ["68"]
    assert props(card)["aivet:parameterCountSource"] == ["gguf"]


def test_split_gguf_shards_add_up(tmp_path: Path) -> None:
    root = tmp_path / "split"
    root.mkdir()
    for i, t in enumerate([Tensor("a", (10, 10)), Tensor("b", (5,))], start=1):
        (root / f"m-{i:05d}-of-00002.gguf").write_bytes(gguf_bytes(GGUFSpec(base_kvs(), [t])))
    assert build_bom(root).record.data["parameter_count"] == 105


def test_config_estimate_matches_llama_3_1_8b() -> None:
    cfg = parse_config(json.dumps({
        "model_type": "llama", "hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
        "num_attention_heads": 32, "num_key_value_heads": 8, "vocab_size": 128256, "tie_word_embeddings": False,
    }).encode())
    assert estimate_parameters(cfg) == 8_030_261_248  # the published parameter count


def test_config_estimate_used_without_weights(tmp_path: Path) -> None:
    root = tmp_path / "no-weights"
    root.mkdir()
    (root / "config.json").write_text(json.dumps(LLAMA_CONFIG))
    data = build_bom(root).record.data
    assert data["parameter_count_source"] == "config-estimate"
    assert data["parameter_count"] == estimate_parameters(parse_config(json.dumps(LLAMA_CONFIG).encode()))


def test_multimodal_text_config_sizes() -> None:
    cfg = parse_config(json.dumps({"model_type": "llava", "text_config": {"hidden_size": 8, "vocab_size": 5}}).encode())
    assert cfg.hidden_size == 8 and cfg.vocab_size == 5 and cfg.model_type == "llava"


@pytest.mark.parametrize(("front", "expected"), [
    ("license: llama3.1\n", {"license": {"name": "llama3.1", "acknowledgement": "declared"}}),
    ("license: other\nlicense_name: deepseek\nlicense_link: https://example.com/LICENSE\n",
     {"license": {"name": "deepseek", "url": "https://example.com/LICENSE", "acknowledgement": "declared"}}),
    ("license: mit\nlicense_link: 'not a url'\n", {"license": {"id": "MIT", "acknowledgement": "declared"}}),
])
def test_license_mapping(tmp_path: Path, front: str, expected: dict[str, Any]) -> None:
    root = make_model(tmp_path / "m", readme=f"---\n{front}---\n")
    result = build_bom(root)
    validate_cdx(result.text)
    assert component(result.document, "model")["licenses"] == [expected]


def test_readme_without_front_matter_and_no_readme(tmp_path: Path) -> None:
    for readme in ("# Just a title\n", None):
        root = make_model(tmp_path / f"m{readme is None}", readme=readme)
        result = build_bom(root)
        validate_cdx(result.text)
        assert result.findings == ()
        assert "licenses" not in component(result.document, "model")


# -- hostile and broken input -------------------------------------------------------------------


BILLION_LAUGHS = "---\n" + "a: &a ['lol','lol','lol','lol','lol','lol','lol','lol','lol']\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)},*{chr(97 + i)},*{chr(97 + i)},*{chr(97 + i)},*{chr(97 + i)},"
    f"*{chr(97 + i)},*{chr(97 + i)},*{chr(97 + i)},*{chr(97 + i)}]\n" for i in range(8)) + "license: mit\n---\n"


@pytest.mark.parametrize(("name", "readme"), [
    ("unclosed", "---\nlicense: mit\n# no closing line\n"),
    ("bad-syntax", "---\nlicense: [mit\n---\n"),
    ("tabs", "---\nlicense:\n\t- mit\n---\n"),
    ("list-top-level", "---\n- license\n- mit\n---\n"),
    ("scalar-top-level", "---\njust a string\n---\n"),
    ("billion-laughs", BILLION_LAUGHS),
    ("deep-nesting", "---\nx: " + "[" * 5000 + "]" * 5000 + "\n---\n"),
    ("wrong-types", "---\nlicense: [mit, apache-2.0]\ndatasets: {a: 1}\nbase_model: [{x: 1}]\n---\n"),
    ("bad-timestamp", "---\nlicense: 2024-13-45\n---\n"),
    ("duplicate-anchor", "---\na: &x 1\nb: &x 2\n---\n"),
])
def test_hostile_front_matter_is_a_finding(tmp_path: Path, name: str, readme: str) -> None:
    root = make_model(tmp_path / name, readme=readme)
    result = build_bom(root)
    validate_cdx(result.text)  # the BOM is still written, without the unreadable facts
    assert "BOM-FRONT-MATTER-INVALID" in rule_ids(result), name
    assert result.findings[0].location.path == "README.md"


def test_python_tags_in_front_matter_never_run(tmp_path: Path, marker_dir: Path) -> None:
    """PyYAML's unsafe loaders construct ``!!python/object/apply`` (CVE-2017-18342); safe_load refuses it."""
    payload = marker_shell(marker_dir, "yaml-apply")
    readme = f"---\nlicense: !!python/object/apply:os.system [{json.dumps(payload)}]\n---\n"
    result = build_bom(make_model(tmp_path / "m", readme=readme))
    assert rule_ids(result) == ["BOM-FRONT-MATTER-INVALID"]
    assert not marker_path(marker_dir, "yaml-apply").exists()


def test_oversized_front_matter_is_bounded(tmp_path: Path) -> None:
    limits = replace(DEFAULT_LIMITS, max_front_matter_bytes=1024)
    big = "---\ntags:\n" + "".join(f"  - tag{i}\n" for i in range(2000)) + "---\n"
    result = build_bom(make_model(tmp_path / "m", readme=big), limits=limits)
    assert rule_ids(result) == ["BOM-FRONT-MATTER-INVALID"]
    assert "max_front_matter_bytes" in result.findings[0].message
    # A huge README whose front matter never closes within the budget is cut, not read whole.
    huge = "---\n" + "x: y\n" * 100_000
    result = build_bom(make_model(tmp_path / "m2", readme=huge), limits=limits)
    assert "max_front_matter_bytes" in result.findings[0].message


@pytest.mark.parametrize(("name", "config"), [
    ("not-json", "{broken"),
    ("array", "[1, 2, 3]"),
    ("nan", '{"hidden_size": NaN}'),
    ("deep", "[" * 100_000 + "]" * 100_000),
    ("huge-int", '{"hidden_size": ' + "9" * 5000 + "}"),
    ("empty", ""),
])
def test_broken_config_is_a_finding(tmp_path: Path, name: str, config: str) -> None:
    result = build_bom(make_model(tmp_path / name, config=config))
    validate_cdx(result.text)
    assert rule_ids(result) == ["BOM-CONFIG-INVALID"]
    card = component(result.document, "model")["modelCard"]
    assert "architectureFamily" not in card.get("modelParameters", {})


def test_config_of_wrong_types_is_ignored_field_by_field(tmp_path: Path) -> None:
    cfg = {"model_type": 5, "architectures": "Llama", "hidden_size": True, "num_hidden_layers": -3,
           "vocab_size": 2**80, "quantization_config": [1]}
    result = build_bom(make_model(tmp_path / "m", config=json.dumps(cfg)))
    validate_cdx(result.text)
    assert result.findings == ()
    assert "modelArchitecture" not in component(result.document, "model")["modelCard"].get("modelParameters", {})


def test_non_utf8_and_oversized_config(tmp_path: Path) -> None:
    make_model(tmp_path / "a")
    (tmp_path / "a" / "config.json").write_bytes(b'{"model_type": "\xff"}')
    assert rule_ids(build_bom(tmp_path / "a")) == ["BOM-CONFIG-INVALID"]
    limits = replace(DEFAULT_LIMITS, max_text_file_bytes=16)
    result = build_bom(make_model(tmp_path / "b"), limits=limits)
    assert rule_ids(result) == ["BOM-CONFIG-INVALID"] and "max_text_file_bytes" in result.findings[0].message


def test_corrupt_weight_header_drops_the_count(tmp_path: Path) -> None:
    root = make_model(tmp_path / "m")
    (root / "model-00002-of-00002.safetensors").write_bytes(struct.pack("<Q", 10**12) + b"{}")
    result = build_bom(root)
    validate_cdx(result.text)
    assert rule_ids(result) == ["BOM-WEIGHTS-UNREADABLE"]
    # One unreadable shard: the safetensors sum would be low, so the config estimate is used instead.
    assert result.record.data["parameter_count_source"] == "config-estimate"


def test_pickle_named_safetensors_is_not_parsed_as_one(tmp_path: Path) -> None:
    root = make_model(tmp_path / "m")
    (root / "model-00002-of-00002.safetensors").write_bytes(b"\x80\x04K\x01.")  # content decides, not the name
    result = build_bom(root)
    assert result.findings == ()
    assert result.record.data["parameter_count"] == 100 * 64 + 128 * 64


def test_too_many_files_is_a_clear_error(model: Path) -> None:
    with pytest.raises(ArtifactError, match="max_files"):
        build_bom(model, limits=replace(DEFAULT_LIMITS, max_files=3))


def test_symlink_leaving_the_model_is_refused(model: Path, tmp_path: Path) -> None:
    (tmp_path / "secret.txt").write_text("outside")
    os.symlink(tmp_path / "secret.txt", model / "link.txt")
    with pytest.raises(ArtifactError, match="leaves the model directory"):
        take_inventory(model)


def test_not_a_directory(tmp_path: Path) -> None:
    with pytest.raises(UsageError):
        build_bom(tmp_path / "missing")


def test_explicit_signature_must_exist(model: Path, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="signature"):
        build_bom(model, signature=tmp_path / "missing.sig")


# -- SPDX 3.0.1 ---------------------------------------------------------------------------------

spdx_model = pytest.importorskip("spdx_python_model")


def spdx_elements(doc: dict[str, Any]) -> list[dict[str, Any]]:
    assert doc["@context"] == "https://spdx.org/rdf/3.0.1/spdx-context.jsonld"
    graph: list[dict[str, Any]] = doc["@graph"]
    return graph


def test_spdx_ai_profile_document(model: Path, tmp_path: Path) -> None:
    signed = signing.sign_model(model, signing.KeySigner(write_key(tmp_path / "k.pem")))
    result = build_bom(model, BomFormat.SPDX)
    assert result.record.data["format"] == "spdx" and result.record.data["spec_version"] == "3.0.1"
    graph = spdx_elements(json.loads(result.text))
    by_id = {e.get("spdxId"): e for e in graph}
    (doc,) = [e for e in graph if e["type"] == "SpdxDocument"]
    assert doc["spdxId"] == result.serial_number
    assert {"ai", "dataset", "software", "core"} <= set(doc["profileConformance"])
    (root_id,) = doc["rootElement"]
    model_el = by_id[root_id]
    assert model_el["type"] == "ai_AIPackage" and model_el["software_primaryPurpose"] == "model"
    hyper = {h["key"]: h["value"] for h in model_el["ai_hyperparameter"]}
    assert hyper["parameterCount"] == str(SHARD_PARAMS) and hyper["contextLength"] == "4096"
    assert model_el["ai_typeOfModel"] == ["llama", "LlamaForCausalLM"]
    assert model_el["ai_domain"] == ["text-generation"]
    rels = {e["relationshipType"]: e for e in graph if e["type"] == "Relationship"}
    assert {"contains", "trainedOn", "descendantOf", "hasDeclaredLicense"} <= set(rels)
    files = {by_id[t]["name"]: by_id[t] for t in rels["contains"]["to"]}
    for name in ("config.json", "sub/notes.txt", "model.sig"):
        (h,) = files[name]["verifiedUsing"]
        assert h["algorithm"] == "sha256"
        assert h["hashValue"] == hashlib.sha256((model / name).read_bytes()).hexdigest()
    datasets = sorted(by_id[t]["name"] for t in rels["trainedOn"]["to"])
    assert datasets == ["HuggingFaceFW/fineweb-edu", "open-web-math/open-web-math"]
    (lic,) = rels["hasDeclaredLicense"]["to"]
    assert by_id[lic]["simplelicensing_licenseExpression"] == "Apache-2.0"
    (base,) = rels["descendantOf"]["to"]
    assert by_id[base]["software_packageUrl"] == "pkg:huggingface/meta-llama/Llama-3.1-8B"
    notes = " ".join(e["statement"] for e in graph if e["type"] == "Annotation")
    assert signed.manifest.root_digest() in notes and "unverified" in notes


def test_spdx_reads_back_and_rejects_tampering(model: Path) -> None:
    from aivet.provenance.spdx import validate_spdx

    result = build_bom(model, BomFormat.SPDX)
    validate_spdx(json.loads(result.text))
    doc = json.loads(result.text)
    for element in doc["@graph"]:
        if element["type"] == "software_File":
            element["verifiedUsing"][0]["algorithm"] = "not-an-algorithm"
    with pytest.raises(BomInvalid):
        validate_spdx(doc)


def test_spdx_checked_against_a_shipped_schema(model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from aivet.provenance import spdx

    document = build_bom(model, BomFormat.SPDX).document
    ok = {"type": "object", "required": ["@context", "@graph"]}
    monkeypatch.setattr(spdx, "load_schema", lambda: ok)
    spdx.validate_spdx(document)
    monkeypatch.setattr(spdx, "load_schema", lambda: {"type": "object", "required": ["missing"]})
    with pytest.raises(BomInvalid, match="schema"):
        spdx.validate_spdx(document)


def test_spdx_non_spdx_license_becomes_a_license_ref(tmp_path: Path) -> None:
    root = make_model(tmp_path / "m", readme="---\nlicense: other\nlicense_name: Llama 3.1 Community\n---\n")
    graph = spdx_elements(build_bom(root, BomFormat.SPDX).document)
    (lic,) = [e for e in graph if e["type"] == "simplelicensing_LicenseExpression"]
    assert lic["simplelicensing_licenseExpression"] == "LicenseRef-Llama-3.1-Community"


# -- CLI --------------------------------------------------------------------------------------


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch) -> Any:
    from aivet.cli import main

    monkeypatch.setitem(main.SUBCOMMANDS, "bom", ("aivet.cli.bom", "bom"))
    runner = CliRunner()

    def run(*args: str) -> Any:
        return runner.invoke(main.app, ["bom", *args])

    return run


def test_cli_writes_cyclonedx_to_stdout(cli: Any, model: Path) -> None:
    result = cli(str(model))
    assert result.exit_code == 0, result.output
    validate_cdx(result.stdout)


def test_cli_output_file_spdx_and_evidence(cli: Any, model: Path, tmp_path: Path) -> None:
    out, ev = tmp_path / "bom.spdx.json", tmp_path / "evidence.json"
    result = cli(str(model), "--format", "spdx", "--output", str(out), "--evidence", str(ev))
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text())["@context"].endswith("spdx-context.jsonld")
    evidence = Evidence.from_json(ev.read_text())
    (record,) = evidence.records
    assert record.kind == "bom" and record.data["sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()


def test_cli_warns_on_bad_metadata_and_strict_fails(cli: Any, tmp_path: Path) -> None:
    root = make_model(tmp_path / "m", config="{broken")
    result = cli(str(root))
    assert result.exit_code == 0
    assert "warning: BOM-CONFIG-INVALID config.json" in result.stderr
    validate_cdx(result.stdout)
    strict = cli(str(root), "--strict")
    assert strict.exit_code == 2 and "aivet: error:" in strict.stderr and not strict.stdout


@pytest.mark.parametrize("problem", ["missing", "too-many", "bad-limit", "unwritable"])
def test_cli_errors_exit_2(cli: Any, model: Path, tmp_path: Path, problem: str) -> None:
    args = {
        "missing": [str(tmp_path / "nope")],
        "too-many": [str(model), "--limit", "max_files=2"],
        "bad-limit": [str(model), "--limit", "max_nonsense=2"],
        "unwritable": [str(model), "--output", str(tmp_path / "no" / "such" / "dir.json")],
    }[problem]
    result = cli(*args)
    assert result.exit_code == 2
    assert result.stderr.startswith("aivet: error:")
    assert "Traceback" not in result.output and not result.stdout


def test_real_safetensors_writer_and_crlf_front_matter(tmp_path: Path) -> None:
    np = pytest.importorskip("numpy")
    save_file = pytest.importorskip("safetensors.numpy").save_file
    root = tmp_path / "m"
    root.mkdir()
    save_file({"w": np.zeros((3, 7), dtype=np.float16), "b": np.zeros((7,), dtype=np.float32)},
              str(root / "model.safetensors"))
    (root / "README.md").write_bytes(b"\xef\xbb\xbf---\r\nlicense: mit\r\ndatasets: a/b\r\n---\r\nbody\r\n")
    result = build_bom(root)
    validate_cdx(result.text)
    assert result.findings == ()
    assert result.record.data["parameter_count"] == 28
    assert result.record.data["license"] == "mit" and list(result.record.data["datasets"]) == ["a/b"]


@pytest.mark.parametrize("fmt", list(BomFormat))
def test_odd_file_names_and_minimal_directory(tmp_path: Path, fmt: BomFormat) -> None:
    root = tmp_path / "odd model ü"
    root.mkdir()
    for name in ("weird name ü %20.txt", "a#b?.bin", "日本語.json", "-dash"):
        (root / name).write_bytes(b"x")
    result = build_bom(root, fmt)
    names = {c["name"] for c in component(result.document, "model")["components"]} if fmt is BomFormat.CYCLONEDX \
        else {e["name"] for e in result.document["@graph"] if e["type"] == "software_File"}
    assert names == {"weird name ü %20.txt", "a#b?.bin", "日本語.json", "-dash"}
    if fmt is BomFormat.CYCLONEDX:
        validate_cdx(result.text)
    assert result.record.data["parameter_count"] is None


def test_large_file_lists_validate_a_sample(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import aivet.provenance.bom as bom_module

    root = tmp_path / "many"
    root.mkdir()
    for i in range(20):
        (root / f"f{i:02d}.txt").write_text(str(i))
    monkeypatch.setattr(bom_module, "VALIDATE_FILES", 5)
    seen: list[str] = []
    original = bom_module.validate_cyclonedx
    monkeypatch.setattr(bom_module, "validate_cyclonedx", lambda text: (seen.append(text), original(text)))
    result = build_bom(root)
    (sampled,) = seen
    names = [c["name"] for c in component(json.loads(sampled), "model")["components"]]
    assert names == [f"f{i:02d}.txt" for i in (0, 1, 2, 3, 4, 15, 16, 17, 18, 19)]
    assert len(component(result.document, "model")["components"]) == 20
    validate_cdx(result.text)  # and the whole document is valid too
