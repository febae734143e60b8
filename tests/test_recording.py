"""`--record`: scan, sign and verify append their evidence to the ledger, linked by model digest."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from typer.testing import CliRunner

from aivet.cli.main import app

runner = CliRunner()


def aivet(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args), env={"CI": "true", **(env or {})})
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def model(tmp_path: Path) -> Path:
    d = tmp_path / "model"
    d.mkdir()
    (d / "config.json").write_text('{"model_type": "llama"}')
    (d / "README.md").write_text("# a model\n")
    return d


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    priv = tmp_path / "signer.pem"
    pub = tmp_path / "signer.pub"
    priv.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    pub.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo))
    return priv, pub


@pytest.fixture(autouse=True)
def no_user_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIVET_CONFIG", str(tmp_path / "absent.toml"))
    monkeypatch.delenv("AIVET_RECORD", raising=False)
    monkeypatch.delenv("AIVET_LEDGER", raising=False)


def test_sign_scan_verify_are_recorded_under_one_model(model: Path, keys: tuple[Path, Path], tmp_path: Path) -> None:
    ledger = str(tmp_path / "log" / "ledger.db")
    priv, pub = keys
    code, _, err = aivet("sign", str(model), "--key", str(priv), "--no-progress", "--record", "--ledger", ledger)
    assert code == 0 and "Recorded as entry 0" in err
    code, _, err = aivet("scan", str(model), "--no-progress", "--record", "--ledger", ledger)
    assert code == 0 and "Recorded as entry 1" in err
    code, _, err = aivet("verify", str(model), "--key", str(pub), "--no-progress", "--record", "--ledger", ledger)
    assert code == 0 and "Recorded as entry 2" in err

    code, _, err = aivet("bom", str(model), "--no-progress", "--record", "--ledger", ledger,
                         "-o", str(tmp_path / "bom.json"))
    assert code == 0 and "Recorded as entry 3" in err

    code, out, _ = aivet("ledger", "model", str(model), "--ledger", ledger, "--json")
    assert code == 0
    listed = json.loads(out)
    assert [e["kind"] for e in listed["entries"]] == ["sign", "scan", "verify", "bom"]
    code, out, _ = aivet("ledger", "verify", "--ledger", ledger)
    assert code == 0


def test_a_failed_verification_is_recorded_too(model: Path, keys: tuple[Path, Path], tmp_path: Path) -> None:
    ledger = str(tmp_path / "ledger.db")
    priv, pub = keys
    assert aivet("sign", str(model), "--key", str(priv), "--no-progress")[0] == 0
    (model / "config.json").write_text('{"model_type": "evil"}')
    code, out, err = aivet("verify", str(model), "--key", str(pub), "--no-progress", "--record", "--ledger", ledger)
    assert code == 1 and "SIGN-FILE-MODIFIED" in out and "Recorded as entry 0" in err
    code, out, _ = aivet("ledger", "show", "0", "--ledger", ledger)
    body = json.loads(out)["body"]
    assert [f["rule_id"] for f in body["findings"]] == ["SIGN-FILE-MODIFIED"]


def test_settings_file_turns_recording_on_and_the_option_wins(model: Path, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    ledger = tmp_path / "configured.db"
    config = tmp_path / "config.toml"
    config.write_text(f'[ledger]\nrecord = true\nlocation = "{ledger}"\n')
    monkeypatch.setenv("AIVET_CONFIG", str(config))
    code, _, err = aivet("scan", str(model), "--no-progress")
    assert code == 0 and f"Recorded as entry 0 in {ledger}" in err
    code, _, err = aivet("scan", str(model), "--no-progress", "--no-record")
    assert code == 0 and "Recorded" not in err
    code, out, _ = aivet("ledger", "log", "--json")  # the settings file also names the ledger
    assert code == 0 and out.count('"kind": "scan"') == 1


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[ledger\nrecord = true", "not valid TOML"),
        ("[ledger]\nrecrod = true", "unknown key(s) in [ledger]: recrod"),
        ("[gateway]\nport = 1", "unknown section [gateway]"),
        ('[ledger]\nrecord = "yes"', "record must be true or false"),
    ],
)
def test_a_bad_settings_file_is_a_clear_error(model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             text: str, message: str) -> None:
    config = tmp_path / "config.toml"
    config.write_text(text)
    monkeypatch.setenv("AIVET_CONFIG", str(config))
    code, _, err = aivet("scan", str(model), "--no-progress")
    assert code == 2
    assert str(config) in err and message in err
    assert "Traceback" not in err


def test_model_digest_is_the_signed_root_digest_and_survives_re_signing(model: Path, keys: tuple[Path, Path]) -> None:
    from aivet.ledger.model import model_digest_of_directory

    priv, _ = keys
    before = model_digest_of_directory(model)
    code, out, _ = aivet("sign", str(model), "--key", str(priv), "--no-progress", "--json")
    assert code == 0
    assert json.loads(out)["data"]["root_digest"] in before
    assert model_digest_of_directory(model) == before  # model.sig itself is not part of the model
    assert aivet("sign", str(model), "--key", str(priv), "--no-progress")[0] == 0
    assert model_digest_of_directory(model) == before
