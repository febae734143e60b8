"""Origin facts: publisher, family, jurisdiction and base models, each with its source (issue #5, part 5)."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aivet.policy.licenses import license_info
from aivet.policy.origin import Fact, origin_facts
from tests.fixtures import license_texts as lt


def _model(root: Path, files: dict[str, str | bytes]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        (root / name).write_bytes(content.encode() if isinstance(content, str) else content)
    return root


def test_known_publisher_gives_publisher_and_jurisdiction(tmp_path: Path) -> None:
    d = _model(tmp_path / "m", {"config.json": json.dumps({"model_type": "qwen2", "vocab_size": 152064}),
                                "README.md": "---\nlicense: other\nlicense_name: qwen\n---\n"})
    facts = origin_facts(d, repo_id="Qwen/Qwen2.5-72B-Instruct")
    assert facts.publisher == Fact("Alibaba Cloud", "hub repo id org 'Qwen'")
    assert facts.jurisdiction is not None and facts.jurisdiction.value == "China"
    assert "hub repo id org" in facts.jurisdiction.source
    assert facts.family is not None and facts.family.value == "qwen"
    assert facts.family.source.startswith("config.json: model_type")
    assert facts.licensor is not None and facts.licensor.value == "Alibaba Cloud"


def test_fine_tune_jurisdiction_comes_from_the_license_with_its_source(tmp_path: Path) -> None:
    d = _model(tmp_path / "m", {"README.md": "---\nbase_model: meta-llama/Llama-3.1-8B-Instruct\n---\n",
                                "LICENSE": lt.llama3x("3.1")})
    facts = origin_facts(d, repo_id="someone/llama-ft")
    assert facts.publisher is not None and facts.publisher.value == "someone"
    assert "not verified" in facts.publisher.source
    assert facts.jurisdiction is not None and facts.jurisdiction.value == "United States"
    assert facts.jurisdiction.source.startswith("license: Llama 3.1")
    assert facts.base_models == (Fact("meta-llama/Llama-3.1-8B-Instruct", "README front matter: base_model"),)
    assert facts.family is not None and facts.family.value == "llama"  # from the base model's name: no config
    assert "base_model" in facts.family.source


def test_unknown_stays_unknown(tmp_path: Path) -> None:
    facts = origin_facts(_model(tmp_path / "m", {"config.json": "{}"}))
    assert (facts.publisher, facts.family, facts.jurisdiction, facts.base_models, facts.licensor) == \
        (None, None, None, (), None)


def test_hub_cache_path_names_the_org(tmp_path: Path) -> None:
    d = _model(tmp_path / "models--mistralai--Mistral-7B-v0.1" / "snapshots" / "abc123", {})
    facts = origin_facts(d, license=license_info("apache-2.0"))
    assert facts.publisher == Fact("Mistral AI", "hub cache path org 'mistralai'")
    assert facts.jurisdiction is not None and facts.jurisdiction.value == "France"


def test_config_name_or_path_is_a_fallback(tmp_path: Path) -> None:
    d = _model(tmp_path / "m", {"config.json": json.dumps({"model_type": "deepseek_v3",
                                                            "_name_or_path": "deepseek-ai/DeepSeek-V3"})})
    facts = origin_facts(d)
    assert facts.publisher is not None and facts.publisher.source.startswith("config.json: _name_or_path")
    assert facts.jurisdiction is not None and facts.jurisdiction.value == "China"


def test_broken_inputs_become_notes(tmp_path: Path) -> None:
    d = _model(tmp_path / "m", {"config.json": b"\xff{", "README.md": "---\nbase_model: [x\n---\n"})
    facts = origin_facts(d)
    assert facts.family is None and len(facts.notes) == 2


def test_record(tmp_path: Path) -> None:
    d = _model(tmp_path / "m", {"config.json": json.dumps({"model_type": "gemma2"})})
    record = origin_facts(d, repo_id="google/gemma-2-9b", license=license_info("gemma")).to_record("m")
    body = json.loads(json.dumps(record.to_dict()))
    assert body["kind"] == "origin"
    assert body["data"]["publisher"] == {"value": "Google LLC", "source": "hub repo id org 'google'"}
    assert body["data"]["family"]["value"] == "gemma"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2000), st.text(max_size=300), st.none() | st.text(max_size=40))
def test_random_inputs_never_raise(config: bytes, readme: str, repo_id: str | None) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        d = _model(Path(tmp), {"config.json": config, "README.md": "---\n" + readme + "\n---\n"})
        facts = origin_facts(d, repo_id=repo_id)
        facts.to_record("m").to_dict()


def test_fifo_files_do_not_block(tmp_path: Path) -> None:
    import os

    d = _model(tmp_path / "m", {})
    for name in ("README.md", "config.json", "LICENSE"):
        os.mkfifo(d / name)
    facts = origin_facts(d)
    assert facts.family is None and facts.base_models == ()


def test_dataset_and_space_ids_name_their_org_not_their_type(tmp_path: Path) -> None:
    d = _model(tmp_path / "m", {})
    for repo_id in ("datasets/meta-llama/eval-set", "spaces/meta-llama/demo"):
        facts = origin_facts(d, repo_id=repo_id, license=license_info("apache-2.0"))
        assert facts.publisher == Fact("Meta Platforms, Inc.", "hub repo id org 'meta-llama'"), repo_id
    cached = _model(tmp_path / "datasets--someone--corpus" / "snapshots" / "abc123", {})
    facts = origin_facts(cached, license=license_info("apache-2.0"))
    assert facts.publisher is not None and facts.publisher.value == "someone"
    assert facts.publisher.source.startswith("hub cache path org")
