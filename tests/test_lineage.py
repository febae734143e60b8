"""Lineage: config facts, family, tokenizer hash, declared base, the registry, the record and the CLI."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aivet.errors import AivetError, UsageError
from aivet.evidence import Evidence, Record
from aivet.formats import FormatError
from aivet.provenance.fingerprint import FingerprintError, fingerprint_model
from aivet.provenance.lineage import (
    LineageError,
    describe,
    infer_family,
    parse_config,
    parse_front_matter,
    parse_tokenizer,
    parse_vocab_merges,
)
from aivet.provenance.registry import Registry
from tests.test_lineage_models import DERIVATIVES, make_base, write_model

LLAMA3 = {
    "architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": 128256, "hidden_size": 4096,
    "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 128,
    "intermediate_size": 14336, "max_position_embeddings": 131072, "rope_theta": 500000.0,
    "rope_scaling": {"rope_type": "llama3", "factor": 8.0}, "_name_or_path": "meta-llama/Llama-3.1-8B",
}


# -- config and family ------------------------------------------------------------------------


def test_config_facts_of_a_llama3_config() -> None:
    cfg = parse_config(json.dumps(LLAMA3).encode())
    assert cfg.model_type == "llama" and cfg.architectures == ("LlamaForCausalLM",)
    assert cfg.shape["num_key_value_heads"] == 8 and cfg.shape["rope_theta"] == 500000
    assert cfg.rope_scaling == "llama3" and cfg.name_or_path == "meta-llama/Llama-3.1-8B"
    family, reasons, consistent = infer_family(cfg)
    assert family == "llama" and consistent is True
    assert any("128256" in r for r in reasons)


def test_relabelled_config_is_flagged_by_its_vocabulary() -> None:
    # A Llama 3 model whose config was renamed to Mistral keeps Llama 3's vocabulary size.
    cfg = parse_config(json.dumps({**LLAMA3, "model_type": "mistral", "architectures": ["MistralForCausalLM"]}).encode())
    family, _, consistent = infer_family(cfg)
    assert family == "mistral" and consistent is False
    # The shape digest ignores names: the relabelled config has the same shape as the original.
    assert cfg.shape_digest == parse_config(json.dumps(LLAMA3).encode()).shape_digest


def test_family_from_architecture_or_vocabulary_when_model_type_is_missing() -> None:
    by_arch = parse_config(json.dumps({"architectures": ["Qwen2ForCausalLM"]}).encode())
    assert infer_family(by_arch)[0] == "qwen"
    by_vocab = parse_config(json.dumps({"vocab_size": 256000}).encode())
    assert infer_family(by_vocab)[0] == "gemma"
    assert infer_family(parse_config(b"{}")) == (None, (), None)


def test_multimodal_text_config_supplies_the_shape() -> None:
    cfg = parse_config(json.dumps({"model_type": "llava", "text_config": {"model_type": "llama",
                                   "hidden_size": 4096, "vocab_size": 32000}}).encode())
    assert cfg.model_type == "llama" and cfg.shape["hidden_size"] == 4096


def test_config_values_of_the_wrong_type_are_ignored() -> None:
    cfg = parse_config(json.dumps({"model_type": ["x"], "architectures": "Llama", "hidden_size": True,
                                   "vocab_size": -5, "rope_theta": "1e4", "rope_scaling": [1]}).encode())
    assert cfg.model_type is None and cfg.architectures == () and cfg.shape == {} and cfg.rope_scaling is None


@pytest.mark.parametrize("data", [b"", b"[]", b"{", b"\xff\xfe", b'"text"', b"[" * 100_000])
def test_bad_config_is_a_format_error(data: bytes) -> None:
    from aivet.formats import LimitExceeded

    with pytest.raises((FormatError, LimitExceeded)):
        parse_config(data)


# -- tokenizer ----------------------------------------------------------------------------------


def _tokenizer_json(vocab: dict[str, int], merges: list[object], added: int = 0) -> bytes:
    return json.dumps({"version": "1.0", "model": {"type": "BPE", "vocab": vocab, "merges": merges},
                       "added_tokens": [{"id": 1000 + i, "content": f"<x{i}>"} for i in range(added)]}).encode()


VOCAB = {"a": 0, "b": 1, "ab": 2, "c": 3, "abc": 4}


def test_tokenizer_hash_is_canonical_across_layouts() -> None:
    old = parse_tokenizer(_tokenizer_json(VOCAB, ["a b", "ab c"]))
    new = parse_tokenizer(_tokenizer_json(dict(reversed(list(VOCAB.items()))), [["a", "b"], ["ab", "c"]]))
    slow = parse_vocab_merges(json.dumps(VOCAB).encode(), b"#version: 0.2\na b\nab c\n")
    assert old.vocab_hash == new.vocab_hash == slow.vocab_hash
    assert (old.vocab_size, old.merges) == (5, 2)


def test_added_chat_tokens_keep_the_vocabulary_hash() -> None:
    base = parse_tokenizer(_tokenizer_json(VOCAB, ["a b"]))
    chat = parse_tokenizer(_tokenizer_json(VOCAB, ["a b"], added=3))
    assert chat.vocab_hash == base.vocab_hash and chat.added_tokens == 3


def test_changed_vocabulary_or_merges_change_the_hash() -> None:
    base = parse_tokenizer(_tokenizer_json(VOCAB, ["a b"])).vocab_hash
    assert parse_tokenizer(_tokenizer_json({**VOCAB, "d": 5}, ["a b"])).vocab_hash != base
    assert parse_tokenizer(_tokenizer_json(VOCAB, ["a b", "ab c"])).vocab_hash != base
    assert parse_tokenizer(_tokenizer_json({**VOCAB, "a": 3, "c": 0}, ["a b"])).vocab_hash != base


def test_unigram_tokenizer_hashes_its_pieces() -> None:
    data = json.dumps({"model": {"type": "Unigram", "vocab": [["<unk>", 0.0], ["a", -1.5]]}}).encode()
    facts = parse_tokenizer(data)
    assert facts.vocab_size == 2 and facts.merges == 0


@pytest.mark.parametrize("data", [b"{}", b'{"model": 3}', b'{"model": {"vocab": "x"}}', b"nope"])
def test_tokenizer_without_a_vocabulary_is_a_format_error(data: bytes) -> None:
    with pytest.raises(FormatError):
        parse_tokenizer(data)


# -- README front matter ------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "expected"), [
    ("---\nbase_model: meta-llama/Llama-3.1-8B\n---\n# x", (("meta-llama/Llama-3.1-8B",), None)),
    ("---\nbase_model:\n- a/b\n- c/d\n- a/b\nbase_model_relation: merge\n---\n", (("a/b", "c/d"), "merge")),
    ("---\nbase_model: [a/b, 3, {x: 1}]\n---\n", (("a/b",), None)),
    ("# no front matter\nbase_model: x\n", ((), None)),
    ("---\nbase_model: x\n", ((), None)),  # never closed
    ("---\n: : bad yaml [\n---\n", ((), None)),
    ("---\n!!python/object/apply:os.system ['true']\n---\n", ((), None)),  # safe_load refuses tags
    ("---\n- a\n- b\n---\n", ((), None)),
    ("\ufeff---\r\nbase_model: a/b\r\n---\r\n", (("a/b",), None)),  # BOM, CRLF
    ("---\nbase_model: a/b\n...\n", (("a/b",), None)),  # YAML's document end marker
    ("----\nbase_model: a/b\n---\n", ((), None)),  # not an opening line
    ("---\nbase_model: a/b\n---- not a close\n", ((), None)),
    ("---\nlicense: mit\nmodel-index:\n- name: x\n  results: [\nbase_model:\n  - a/b\n---\n", (("a/b",), None)),
    ("---\nbase_model:\n" + "- a/b\n" * 50_000 + "---\n", (("a/b",), None)),  # long lists are cut, quickly
])
def test_front_matter(text: str, expected: tuple[tuple[str, ...], str | None]) -> None:
    assert parse_front_matter(text) == expected


# -- describe, the record, the registry ---------------------------------------------------------


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("lineage")
    base = make_base(0, layers=3)
    out = {
        "base": write_model(root / "base", base),
        "tuned": write_model(root / "tuned", DERIVATIVES["merged-lora"](base), base_model="org/base"),
        "liar": write_model(root / "liar", DERIVATIVES["continued-training"](base), base_model="org/other"),
        "other": write_model(root / "other", make_base(7, layers=3)),
    }
    (out["tuned"] / "tokenizer.json").write_bytes(_tokenizer_json(VOCAB, ["a b"]))
    return out


def test_register_and_match_rank_the_base_first(models: dict[str, Path], tmp_path: Path) -> None:
    with Registry.open(tmp_path / "reg.db") as reg:
        for name in ("base", "other"):
            reg.register(f"org/{name}", fingerprint_model(models[name]), family="llama")
        info = describe(models["tuned"], registry=reg)
        assert [m.name for m in info.matches] == ["org/base", "org/other"]
        assert info.matches[0].matched and not info.matches[1].matched
        assert info.best_match is not None and info.best_match.name == "org/base"
        assert info.declared_base_consistent is True
        liar = describe(models["liar"], registry=reg)
        assert liar.best_match is not None and liar.declared_base_consistent is False
        assert describe(models["other"], registry=reg).best_match.name == "org/other"  # type: ignore[union-attr]


def test_the_record_round_trips_through_evidence(models: dict[str, Path], tmp_path: Path) -> None:
    with Registry.open(tmp_path / "reg.db") as reg:
        reg.register("org/base", fingerprint_model(models["base"]))
        record = describe(models["tuned"], registry=reg).to_record("subject-1")
    assert record.kind == "lineage" and record.subject == "subject-1"
    data = record.to_dict()["data"]
    for key in ("family", "model_type", "declared_base_models", "tokenizer_hash", "fingerprint_digest", "matches"):
        assert key in data
    assert data["family"] == "llama" and data["declared_base_models"] == ["org/base"]
    assert data["tokenizer_hash"].startswith("sha256:") and data["matches"][0]["name"] == "org/base"
    assert data["matches"][0]["same_tokenizer"] is None  # the base was registered without a tokenizer
    assert data["matches"][0]["same_family"] is None
    ev = Evidence(records=(record,))
    assert Evidence.from_json(ev.to_json()).records == (record,)
    assert Record.from_dict(record.to_dict()) == record


def test_matches_say_whether_tokenizer_and_family_agree(models: dict[str, Path], tmp_path: Path) -> None:
    tok = parse_tokenizer(_tokenizer_json(VOCAB, ["a b"])).vocab_hash
    with Registry.open(tmp_path / "reg.db") as reg:
        reg.register("same", fingerprint_model(models["base"]), family="llama", tokenizer_hash=tok)
        reg.register("differs", fingerprint_model(models["other"]), family="qwen", tokenizer_hash="sha256:00")
        data = describe(models["tuned"], registry=reg).to_record("s").to_dict()["data"]
    by_name = {m["name"]: m for m in data["matches"]}
    assert by_name["same"]["same_tokenizer"] is True and by_name["same"]["same_family"] is True
    assert by_name["differs"]["same_tokenizer"] is False and by_name["differs"]["same_family"] is False


def test_duplicate_names_need_replace(models: dict[str, Path], tmp_path: Path) -> None:
    fp = fingerprint_model(models["base"])
    with Registry.open(tmp_path / "reg.db") as reg:
        reg.register("x", fp)
        with pytest.raises(UsageError):
            reg.register("x", fp)
        reg.register("x", fp, replace=True)
        with pytest.raises(UsageError):
            reg.register("  ", fp)
        assert [e.name for e in reg.entries()] == ["x"]
        assert reg.remove("x") and not reg.remove("x")


def test_damaged_registry_rows_are_skipped(models: dict[str, Path], tmp_path: Path) -> None:
    import sqlite3

    with Registry.open(tmp_path / "reg.db") as reg:
        reg.register("good", fingerprint_model(models["base"]))
    conn = sqlite3.connect(tmp_path / "reg.db")
    conn.execute("INSERT INTO lineage_models VALUES ('bad', 'd', NULL, NULL, NULL, 't', '{\"version\": 1, \"tensors\": [{\"shape\": \"x\"}]}')")
    conn.execute("INSERT INTO lineage_models VALUES ('worse', 'd', NULL, NULL, NULL, 't', 'not json')")
    conn.commit()
    conn.close()
    with Registry.open(tmp_path / "reg.db") as reg:
        info = describe(models["tuned"], registry=reg)
    assert [m.name for m in info.matches] == ["good"]
    assert any("2 registry rows" in n for n in info.notes)


def test_a_registry_that_is_not_sqlite_is_an_environment_error(tmp_path: Path) -> None:
    path = tmp_path / "reg.db"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(AivetError, match="lineage registry"):
        Registry.open(path)
    with pytest.raises(UsageError):
        Registry.open(tmp_path / "missing.db", create=False)


def test_missing_config_tokenizer_and_weights_are_notes(tmp_path: Path) -> None:
    info = describe(tmp_path)
    assert info.config is None and info.family is None and info.fingerprint is None
    assert any("config.json" in n for n in info.notes) and any("fingerprint" in n for n in info.notes)
    (tmp_path / "config.json").write_text("{not json")
    assert any("config.json unusable" in n for n in describe(tmp_path).notes)
    with pytest.raises(LineageError):
        describe(tmp_path / "nope")
    with Registry.open(tmp_path / "reg.db") as reg, pytest.raises(LineageError, match="no .safetensors"):
        describe(tmp_path, registry=reg)


# -- bad weights --------------------------------------------------------------------------------


def _st(header: dict[str, object], data: bytes = b"", claimed: int | None = None) -> bytes:
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw) if claimed is None else claimed) + raw + data


@pytest.mark.parametrize(("blob", "message"), [
    (b"", "too short"),
    (struct.pack("<Q", 10**15) + b"{}", "header claims"),
    (_st({"w": {"dtype": "F32", "shape": [64, 64], "data_offsets": [0, 16384]}}), "past the data buffer"),
    (_st({"w": {"dtype": "F32", "shape": [64, 64], "data_offsets": [0, 8]}}, b"\0" * 8), "shape needs"),
    (_st({"w": {"dtype": "F32", "shape": "64"}}), "missing field"),
    (b"\x02\0\0\0\0\0\0\0[]", "start with"),
])
def test_corrupt_safetensors_is_a_clear_error(tmp_path: Path, blob: bytes, message: str) -> None:
    (tmp_path / "model.safetensors").write_bytes(blob)
    with pytest.raises(FingerprintError, match=message) as info:
        fingerprint_model(tmp_path)
    assert "model.safetensors" in info.value.diagnostics()


def test_huge_claimed_shapes_read_nothing_beyond_the_file(tmp_path: Path) -> None:
    # 2**40 elements claimed: the size check fails before a single value is read.
    blob = _st({"w": {"dtype": "BF16", "shape": [2**20, 2**20], "data_offsets": [0, 2**41]}}, b"\0" * 64)
    (tmp_path / "model.safetensors").write_bytes(blob)
    with pytest.raises(FingerprintError, match="past the data buffer"):
        fingerprint_model(tmp_path)


def test_a_fifo_named_like_weights_does_not_block(tmp_path: Path) -> None:
    import os

    os.mkfifo(tmp_path / "model.safetensors")
    with pytest.raises(FingerprintError, match="not a regular file"):
        fingerprint_model(tmp_path)


def test_only_integer_and_small_tensors_is_a_clear_error(tmp_path: Path) -> None:
    import numpy as np
    from safetensors.numpy import save_file

    save_file({"i": np.zeros((64, 64), np.int8), "b": np.ones(10, np.float32),
               "z": np.zeros((64, 64), np.float32)}, str(tmp_path / "model.safetensors"))
    with pytest.raises(FingerprintError, match="no floating-point matrix"):
        fingerprint_model(tmp_path)


# -- CLI ----------------------------------------------------------------------------------------


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> CliRunner:
    from aivet.cli import main

    monkeypatch.setitem(main.SUBCOMMANDS, "lineage", ("aivet.cli.lineage", "app"))
    monkeypatch.setenv("AIVET_LINEAGE_REGISTRY", str(tmp_path / "env-registry.db"))
    return CliRunner()


def _run(runner: CliRunner, *args: str) -> tuple[int, str]:
    from aivet.cli.main import app

    result = runner.invoke(app, ["lineage", *args])
    return result.exit_code, result.output


def test_cli_register_match_list_remove(cli: CliRunner, models: dict[str, Path], tmp_path: Path) -> None:
    reg = str(tmp_path / "reg.db")
    code, out = _run(cli, "register", str(models["base"]), "--name", "org/base", "--registry", reg)
    assert code == 0 and "registered 'org/base'" in out
    code, out = _run(cli, "register", str(models["base"]), "--name", "org/base", "--registry", reg)
    assert code == 2 and "already registered" in out
    code, out = _run(cli, "match", str(models["tuned"]), "--registry", reg)
    assert code == 0 and "MATCH" in out and "org/base" in out
    code, out = _run(cli, "match", str(models["other"]), "--registry", reg)
    assert code == 1 and "MATCH" not in out
    code, out = _run(cli, "match", str(models["liar"]), "--registry", reg, "--json")
    data = json.loads(out)["data"]
    assert code == 0 and data["matched_base"] == "org/base" and data["declared_base_consistent"] is False
    code, out = _run(cli, "list", "--registry", reg)
    assert code == 0 and out.startswith("org/base\tllama")
    assert _run(cli, "remove", "org/base", "--registry", reg)[0] == 0
    assert _run(cli, "remove", "org/base", "--registry", reg)[0] == 1


def test_cli_uses_the_environment_registry_and_fails_cleanly(cli: CliRunner, models: dict[str, Path],
                                                            tmp_path: Path) -> None:
    code, out = _run(cli, "match", str(models["tuned"]))
    assert code == 2 and "no lineage registry" in out
    assert _run(cli, "register", str(models["base"]), "--name", "b")[0] == 0
    assert (tmp_path / "env-registry.db").is_file()
    code, out = _run(cli, "register", str(tmp_path / "missing"), "--name", "m")
    assert code == 2 and "not a model directory" in out
    empty = tmp_path / "empty"
    empty.mkdir()
    code, out = _run(cli, "register", str(empty), "--name", "m")
    assert code == 2 and "no .safetensors" in out


def test_cli_show(cli: CliRunner, models: dict[str, Path]) -> None:
    code, out = _run(cli, "show", str(models["tuned"]), "--json")
    data = json.loads(out)["data"]
    assert code == 0 and data["family"] == "llama" and data["fingerprint_digest"].startswith("sha256:")
    code, out = _run(cli, "show", str(models["tuned"]), "--no-fingerprint")
    assert code == 0 and "declared base: org/base" in out
