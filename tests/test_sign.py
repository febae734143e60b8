"""Sign and verify in the OpenSSF Model Signing format: interop with model_signing, and every failure mode."""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
from pathlib import Path

import pytest
import typer
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from typer.testing import CliRunner

from aivet.errors import ArtifactError, OfflineError, UsageError
from aivet.provenance import signing
from aivet.provenance.verify import CertificateVerifier, KeyVerifier, verify_model

# ---------------------------------------------------------------- fixtures built by code


def write_key(path: Path, curve: ec.EllipticCurve | None = None, password: bytes | None = None) -> Path:
    key = ec.generate_private_key(curve or ec.SECP256R1())
    enc = serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, enc))
    path.with_suffix(".pub").write_bytes(
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return path


def make_model(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "config.json").write_text('{"model_type": "llama"}')
    (root / "model.safetensors").write_bytes(os.urandom(300_000))
    (root / "tokenizer").mkdir()
    (root / "tokenizer" / "vocab.txt").write_text("a\nb\n")
    (root / ".git").mkdir()
    (root / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    return root


@pytest.fixture
def model(tmp_path: Path) -> Path:
    return make_model(tmp_path / "my-model")


@pytest.fixture
def key(tmp_path: Path) -> Path:
    return write_key(tmp_path / "signer.pem")


def rules(result: object) -> set[str]:
    return {f.rule_id for f in result.findings}  # type: ignore[attr-defined]


NOW = dt.datetime.now(dt.UTC)


def _cert(subject: str, key: ec.EllipticCurvePrivateKey, issuer: tuple[str, ec.EllipticCurvePrivateKey] | None,
          *, ca: bool, days: tuple[int, int] = (-1, 365), usage: bool = True) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    iname = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer[0])]) if issuer else name
    b = (
        x509.CertificateBuilder().subject_name(name).issuer_name(iname).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW + dt.timedelta(days=days[0])).not_valid_after(NOW + dt.timedelta(days=days[1]))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        b = b.add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
    elif usage:
        b = b.add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True)
        b = b.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
    return b.sign(issuer[1] if issuer else key, hashes.SHA256())


def _pem(path: Path, *certs: x509.Certificate) -> Path:
    path.write_bytes(b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs))
    return path


@pytest.fixture
def pki(tmp_path: Path) -> dict[str, Path]:
    """A root CA, an intermediate and a code-signing leaf; plus an unrelated root and an expired leaf."""
    d = tmp_path / "pki"
    d.mkdir()
    root_k, int_k, leaf_k, other_k = (ec.generate_private_key(ec.SECP384R1()) for _ in range(4))
    root = _cert("Test Root", root_k, None, ca=True)
    inter = _cert("Test Intermediate", int_k, ("Test Root", root_k), ca=True)
    leaf = _cert("Model Publisher", leaf_k, ("Test Intermediate", int_k), ca=False)
    expired = _cert("Model Publisher", leaf_k, ("Test Intermediate", int_k), ca=False, days=(-30, -1))
    no_usage = _cert("Model Publisher", leaf_k, ("Test Intermediate", int_k), ca=False, usage=False)
    other = _cert("Other Root", other_k, None, ca=True)
    (d / "leaf.key").write_bytes(leaf_k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                      serialization.NoEncryption()))
    return {
        "key": d / "leaf.key", "leaf": _pem(d / "leaf.pem", leaf), "chain": _pem(d / "int.pem", inter),
        "root": _pem(d / "root.pem", root), "other": _pem(d / "other.pem", other),
        "expired": _pem(d / "expired.pem", expired), "no_usage": _pem(d / "nousage.pem", no_usage),
    }


# ---------------------------------------------------------------- round trips and interop


def test_sign_then_verify_key(model: Path, key: Path) -> None:
    res = signing.sign_model(model, signing.KeySigner(key))
    assert res.signature == model / "model.sig"
    names = {r.name for r in res.manifest.resources}
    assert names == {"config.json", "model.safetensors", "tokenizer/vocab.txt"}  # .git and model.sig ignored
    assert res.record.kind == "signature" and res.record.data["status"] == "signed"
    out = verify_model(model, KeyVerifier(key.with_suffix(".pub")))
    assert out.ok, out.findings
    assert out.record.data["status"] == "verified" and out.summary.startswith("verified")


def test_reference_verifies_aivet_signature(model: Path, key: Path) -> None:
    model_signing = pytest.importorskip("model_signing")
    signing.sign_model(model, signing.KeySigner(key), model_card={"license": "apache-2.0", "base_model": "x/y"})
    model_signing.verifying.Config().use_elliptic_key_verifier(public_key=key.with_suffix(".pub")).verify(
        model, model / "model.sig")


def test_aivet_verifies_reference_signature(model: Path, key: Path) -> None:
    model_signing = pytest.importorskip("model_signing")
    cfg = model_signing.hashing.Config().set_ignored_paths(paths=["model.sig"])
    model_signing.signing.Config().use_elliptic_key_signer(private_key=key).set_hashing_config(cfg).sign(
        model, model / "model.sig")
    assert verify_model(model, KeyVerifier(key.with_suffix(".pub"))).ok


@pytest.mark.parametrize("algorithm", ["blake3"])
def test_blake3_interop_both_ways(model: Path, key: Path, algorithm: str) -> None:
    model_signing = pytest.importorskip("model_signing")
    pytest.importorskip("blake3")
    signing.sign_model(model, signing.KeySigner(key), hash_type=algorithm)
    model_signing.verifying.Config().use_elliptic_key_verifier(public_key=key.with_suffix(".pub")).verify(
        model, model / "model.sig")
    cfg = model_signing.hashing.Config().use_file_serialization(hashing_algorithm=algorithm)
    model_signing.signing.Config().use_elliptic_key_signer(private_key=key).set_hashing_config(
        cfg.set_ignored_paths(paths=["model.sig"])).sign(model, model / "model.sig")
    assert verify_model(model, KeyVerifier(key.with_suffix(".pub"))).ok


def test_reference_sharded_signature_verifies_with_aivet(model: Path, key: Path) -> None:
    model_signing = pytest.importorskip("model_signing")
    cfg = model_signing.hashing.Config().use_shard_serialization(shard_size=65536)
    model_signing.signing.Config().use_elliptic_key_signer(private_key=key).set_hashing_config(
        cfg.set_ignored_paths(paths=["model.sig"])).sign(model, model / "model.sig")
    assert verify_model(model, KeyVerifier(key.with_suffix(".pub"))).ok
    # and the same manifest comes out of aivet's own sharded mode
    ours = signing.sign_model(model, signing.KeySigner(key), shard_size=65536, signature=model / "ours.sig",
                              ignore_paths=["model.sig"])
    theirs = json.loads(base64.b64decode(json.loads((model / "model.sig").read_text())["dsseEnvelope"]["payload"]))
    assert {(r["name"], r["digest"]) for r in theirs["predicate"]["resources"]} == {
        (r.name, r.digest) for r in ours.manifest.resources}


@pytest.mark.parametrize("curve", [ec.SECP256R1(), ec.SECP384R1(), ec.SECP521R1()])
def test_every_allowed_curve_interop(tmp_path: Path, model: Path, curve: ec.EllipticCurve) -> None:
    model_signing = pytest.importorskip("model_signing")
    k = write_key(tmp_path / f"{curve.name}.pem", curve)
    signing.sign_model(model, signing.KeySigner(k))
    model_signing.verifying.Config().use_elliptic_key_verifier(public_key=k.with_suffix(".pub")).verify(
        model, model / "model.sig")


def test_certificate_chain_interop_both_ways(model: Path, pki: dict[str, Path]) -> None:
    model_signing = pytest.importorskip("model_signing")
    pytest.importorskip("OpenSSL")
    signing.sign_model(model, signing.CertificateSigner(pki["key"], pki["leaf"], (pki["chain"],)))
    res = verify_model(model, CertificateVerifier((pki["root"],)))
    assert res.ok, res.findings
    assert res.record.data["signer"] == "CN=Model Publisher"
    model_signing.verifying.Config().use_certificate_verifier(certificate_chain=[pki["root"]]).verify(
        model, model / "model.sig")
    (model / "model.sig").unlink()
    model_signing.signing.Config().use_certificate_signer(
        private_key=pki["key"], signing_certificate=pki["leaf"], certificate_chain=[pki["chain"]]
    ).set_hashing_config(model_signing.hashing.Config().set_ignored_paths(paths=["model.sig"])).sign(
        model, model / "model.sig")
    assert verify_model(model, CertificateVerifier((pki["root"],))).ok


# ---------------------------------------------------------------- what verification reports


@pytest.fixture
def signed(model: Path, key: Path) -> tuple[Path, KeyVerifier]:
    signing.sign_model(model, signing.KeySigner(key))
    return model, KeyVerifier(key.with_suffix(".pub"))


def test_modified_added_removed_renamed(signed: tuple[Path, KeyVerifier]) -> None:
    model, v = signed
    (model / "config.json").write_text('{"model_type": "evil"}')
    (model / "extra.pkl").write_bytes(b"\x80\x04N.")
    (model / "tokenizer" / "vocab.txt").unlink()
    (model / "model.safetensors").rename(model / "weights.safetensors")
    res = verify_model(model, v)
    assert not res.ok and res.record.data["status"] == "failed"
    by_rule = {(f.rule_id, f.location.path) for f in res.findings}
    assert by_rule == {
        ("SIGN-FILE-MODIFIED", "config.json"), ("SIGN-FILE-ADDED", "extra.pkl"),
        ("SIGN-FILE-REMOVED", "tokenizer/vocab.txt"), ("SIGN-FILE-RENAMED", "weights.safetensors"),
    }
    assert "verified" not in res.summary


def test_wrong_key(signed: tuple[Path, KeyVerifier], tmp_path: Path) -> None:
    model, _ = signed
    other = write_key(tmp_path / "other.pem")
    assert rules(verify_model(model, KeyVerifier(other.with_suffix(".pub")))) == {"SIGN-WRONG-KEY"}


def test_tampered_payload_with_forged_hint(signed: tuple[Path, KeyVerifier]) -> None:
    model, v = signed
    doc = json.loads((model / "model.sig").read_text())
    st = json.loads(base64.b64decode(doc["dsseEnvelope"]["payload"]))
    st["predicate"]["resources"] = st["predicate"]["resources"][:1]
    doc["dsseEnvelope"]["payload"] = base64.b64encode(json.dumps(st).encode()).decode()
    (model / "model.sig").write_text(json.dumps(doc))
    assert rules(verify_model(model, v)) == {"SIGN-WRONG-KEY"}


def test_signature_for_another_directory(tmp_path: Path, key: Path) -> None:
    other = make_model(tmp_path / "other-model")
    signing.sign_model(other, signing.KeySigner(key))
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "weights.bin").write_bytes(b"different")
    res = verify_model(mine, KeyVerifier(key.with_suffix(".pub")), signature=other / "model.sig")
    assert "SIGN-OTHER-MODEL" in rules(res) and not res.ok


@pytest.mark.parametrize(
    "mutate, rule",
    [
        (lambda raw: raw[: len(raw) // 2], "SIGN-BUNDLE-INVALID"),
        (lambda raw: b"", "SIGN-BUNDLE-INVALID"),
        (lambda raw: raw.replace(b"bundle.v0.3+json", b"bundle.v9+json"), "SIGN-BUNDLE-INVALID"),
        (lambda raw: raw.replace(b'"payload": "', b'"payload": "!!'), "SIGN-BUNDLE-INVALID"),
        (lambda raw: json.dumps({"mediaType": json.loads(raw)["mediaType"]}).encode(), "SIGN-BUNDLE-INVALID"),
    ],
    ids=["truncated", "empty", "media-type", "bad-base64", "no-envelope"],
)
def test_corrupt_bundles(signed: tuple[Path, KeyVerifier], mutate, rule: str) -> None:  # type: ignore[no-untyped-def]
    model, v = signed
    sig = model / "model.sig"
    sig.write_bytes(mutate(sig.read_bytes()))
    res = verify_model(model, v)
    assert rules(res) == {rule} and not res.ok


def _resign_statement(model: Path, key: Path, edit) -> None:  # type: ignore[no-untyped-def]
    """Sign a hand-edited statement with the right key: only the predicate checks can catch it."""
    doc = json.loads((model / "model.sig").read_text())
    st = json.loads(base64.b64decode(doc["dsseEnvelope"]["payload"]))
    edit(st)
    payload = json.dumps(st).encode()
    bundle = signing.KeySigner(key).sign(payload)
    (model / "model.sig").write_text(bundle.to_json())


def test_wrong_predicate_type(signed: tuple[Path, KeyVerifier], key: Path) -> None:
    model, v = signed
    _resign_statement(model, key, lambda st: st.update(predicateType="https://slsa.dev/provenance/v1"))
    assert rules(verify_model(model, v)) == {"SIGN-PREDICATE-INVALID"}


def test_manifest_with_dotdot_is_refused(signed: tuple[Path, KeyVerifier], key: Path, tmp_path: Path) -> None:
    model, v = signed
    (tmp_path / "secret").write_text("x")

    def edit(st: dict) -> None:  # type: ignore[type-arg]
        st["predicate"]["resources"][0]["name"] = "../secret"

    _resign_statement(model, key, edit)
    res = verify_model(model, v)
    assert rules(res) == {"SIGN-PREDICATE-INVALID"} and not res.ok
    assert "../secret" in res.findings[0].message


def test_inconsistent_root_digest(signed: tuple[Path, KeyVerifier], key: Path) -> None:
    model, v = signed
    _resign_statement(model, key, lambda st: st["subject"][0]["digest"].update(sha256="0" * 64))
    assert rules(verify_model(model, v)) == {"SIGN-PREDICATE-INVALID"}


def test_missing_signature(model: Path, key: Path) -> None:
    assert rules(verify_model(model, KeyVerifier(key.with_suffix(".pub")))) == {"SIGN-MISSING"}


def test_symlink_leaving_directory_is_refused(signed: tuple[Path, KeyVerifier], tmp_path: Path) -> None:
    model, v = signed
    (tmp_path / "outside.bin").write_bytes(b"x")
    (model / "link.bin").symlink_to(tmp_path / "outside.bin")
    res = verify_model(model, v)
    assert rules(res) == {"SIGN-DIRECTORY-INVALID"} and "leaves the model directory" in res.findings[0].message
    with pytest.raises(ArtifactError, match="leaves the model directory"):
        signing.sign_model(model, signing.KeySigner(Path("unused")), allow_symlinks=True)


def test_certificate_failures(model: Path, pki: dict[str, Path]) -> None:
    signing.sign_model(model, signing.CertificateSigner(pki["key"], pki["leaf"], (pki["chain"],)))
    assert rules(verify_model(model, CertificateVerifier((pki["other"],)))) == {"SIGN-CERT-UNTRUSTED"}
    signing.sign_model(model, signing.CertificateSigner(pki["key"], pki["leaf"], ()))  # intermediate left out
    assert rules(verify_model(model, CertificateVerifier((pki["root"],)))) == {"SIGN-CERT-UNTRUSTED"}
    signing.sign_model(model, signing.CertificateSigner(pki["key"], pki["expired"], (pki["chain"],)))
    assert rules(verify_model(model, CertificateVerifier((pki["root"],)))) == {"SIGN-CERT-EXPIRED"}
    signing.sign_model(model, signing.CertificateSigner(pki["key"], pki["no_usage"], (pki["chain"],)))
    assert rules(verify_model(model, CertificateVerifier((pki["root"],)))) == {"SIGN-CERT-USAGE"}
    # a key signature checked as a certificate signature, and the other way round
    signing.sign_model(model, signing.KeySigner(pki["key"]))
    assert rules(verify_model(model, CertificateVerifier((pki["root"],)))) == {"SIGN-METHOD-MISMATCH"}


def test_garbage_certificates_in_bundle(model: Path, pki: dict[str, Path]) -> None:
    from aivet.provenance.bundle import read_bundle

    signing.sign_model(model, signing.CertificateSigner(pki["key"], pki["leaf"], (pki["chain"],)))
    b = read_bundle(model / "model.sig")
    for certs in ((b"\x30\x03\x02\x01\x01",), (b.certificates[0][:-40],), (b.certificates[0], b"junk")):
        forged = type(b)(b.payload, b.signatures, certificates=certs)
        (model / "model.sig").write_text(forged.to_json())
        res = verify_model(model, CertificateVerifier((pki["root"],)))
        assert not res.ok and rules(res) <= {"SIGN-BUNDLE-INVALID", "SIGN-CERT-UNTRUSTED"}


def test_key_problems(tmp_path: Path, model: Path) -> None:
    enc = write_key(tmp_path / "enc.pem", password=b"correct horse")
    with pytest.raises(UsageError, match="wrong password"):
        signing.sign_model(model, signing.KeySigner(enc, "wrong"))
    with pytest.raises(UsageError, match="encrypted"):
        signing.sign_model(model, signing.KeySigner(enc))
    signing.sign_model(model, signing.KeySigner(enc, "correct horse"))
    k1 = ec.generate_private_key(ec.SECP256K1())
    (tmp_path / "k1.pem").write_bytes(k1.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                       serialization.NoEncryption()))
    with pytest.raises(ArtifactError, match="secp256k1"):
        signing.sign_model(model, signing.KeySigner(tmp_path / "k1.pem"))
    ed = ed25519.Ed25519PrivateKey.generate()
    (tmp_path / "ed.pem").write_bytes(ed.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                       serialization.NoEncryption()))
    with pytest.raises(ArtifactError, match="ECDSA"):
        signing.sign_model(model, signing.KeySigner(tmp_path / "ed.pem"))
    (tmp_path / "bad.pem").write_bytes(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
    with pytest.raises(ArtifactError):
        signing.sign_model(model, signing.KeySigner(tmp_path / "bad.pem"))
    (tmp_path / "bad.pub").write_bytes(b"garbage")
    with pytest.raises(ArtifactError):
        verify_model(model, KeyVerifier(tmp_path / "bad.pub"))


def test_sigstore_offline_is_a_clear_error(model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_network(*args: object, **kwargs: object) -> None:
        raise OSError("network is unreachable")

    monkeypatch.setattr("socket.create_connection", no_network)
    with pytest.raises(OfflineError, match="needs the network"):
        signing.sign_model(model, signing.SigstoreSigner())


# ---------------------------------------------------------------- beyond the reference


def test_signed_model_card_is_bound(model: Path, key: Path) -> None:
    signing.sign_model(model, signing.KeySigner(key), model_card={"license": "apache-2.0", "authors": ["A"],
                                                                  "base_model": "meta-llama/Llama-3.1-8B"})
    res = verify_model(model, KeyVerifier(key.with_suffix(".pub")))
    assert res.ok and res.record.data["model_card"]["base_model"] == "meta-llama/Llama-3.1-8B"
    # changing the card without the key breaks the signature
    doc = json.loads((model / "model.sig").read_text())
    st = json.loads(base64.b64decode(doc["dsseEnvelope"]["payload"]))
    st["predicate"]["aivet.dev/model_card/v1"]["license"] = "mit"
    doc["dsseEnvelope"]["payload"] = base64.b64encode(json.dumps(st).encode()).decode()
    (model / "model.sig").write_text(json.dumps(doc))
    assert rules(verify_model(model, KeyVerifier(key.with_suffix(".pub")))) == {"SIGN-WRONG-KEY"}


def test_partial_verification(model: Path, key: Path) -> None:
    signing.sign_model(model, signing.KeySigner(key), shard_size=100_000)
    v = KeyVerifier(key.with_suffix(".pub"))
    (model / "tokenizer" / "vocab.txt").write_text("changed")  # not checked in a partial verification
    res = verify_model(model, v, only=["model.safetensors"])
    assert res.ok and res.partial and res.checked == ("model.safetensors",)
    assert "partial" in res.summary and res.record.data["status"] == "partially-verified"
    assert rules(verify_model(model, v, only=["tokenizer/vocab.txt"])) == {"SIGN-FILE-MODIFIED"}
    assert rules(verify_model(model, v, only=["nope.bin"])) == {"SIGN-FILE-ADDED"}
    (model / "model.safetensors").unlink()
    assert rules(verify_model(model, v, only=["model.safetensors"])) == {"SIGN-FILE-REMOVED"}


def test_incremental_resign_reuses_digests(model: Path, key: Path, monkeypatch: pytest.MonkeyPatch,
                                           tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    first = signing.sign_model(model, signing.KeySigner(key), use_cache=True)
    assert first.cache_hits == 0
    (model / "config.json").write_text('{"model_type": "mistral"}')
    second = signing.sign_model(model, signing.KeySigner(key), use_cache=True)
    assert second.cache_hits == 2  # safetensors and vocab reused, config re-hashed
    assert verify_model(model, KeyVerifier(key.with_suffix(".pub"))).ok


# ---------------------------------------------------------------- the command line


def _app() -> typer.Typer:
    from aivet.cli import sign as cli

    app = typer.Typer()
    app.command("sign")(cli.sign)
    app.command("verify")(cli.verify)
    return app


def test_cli_exit_codes(model: Path, key: Path) -> None:
    runner = CliRunner()
    app = _app()
    r = runner.invoke(app, ["sign", str(model), "--key", str(key), "--license", "mit"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["verify", str(model), "--key", str(key.with_suffix(".pub"))])
    assert r.exit_code == 0 and "verified" in r.output
    (model / "config.json").write_text("{}")
    r = runner.invoke(app, ["verify", str(model), "--key", str(key.with_suffix(".pub")), "--json"])
    assert r.exit_code == 1
    out = json.loads(r.output)
    assert out["record"]["data"]["status"] == "failed"
    assert [f["rule_id"] for f in out["findings"]] == ["SIGN-FILE-MODIFIED"]
    r = runner.invoke(app, ["verify", str(model)])
    assert r.exit_code != 0 and isinstance(r.exception, UsageError)


def test_rules_are_well_formed() -> None:
    from aivet.provenance.verify import RULES

    ids = [r.id for r in RULES]
    assert len(ids) == len(set(ids)) and all(i.startswith("SIGN-") and i.upper() == i for i in ids)
    assert all(r.description and r.atlas and r.cwe for r in RULES)


def test_reference_command_line_both_ways(model: Path, key: Path) -> None:
    """The `model_signing` command (always per-file SHA-256) verifies aivet's default signature, and back."""
    import shutil
    import subprocess
    import sys

    exe = shutil.which("model_signing", path=str(Path(sys.executable).parent))
    if exe is None:
        pytest.skip("model_signing command not installed")
    signing.sign_model(model, signing.KeySigner(key), model_card={"license": "mit"})
    subprocess.run([exe, "verify", "key", str(model), "--signature", str(model / "model.sig"),
                    "--public_key", str(key.with_suffix(".pub"))], check=True, capture_output=True)
    (model / "model.sig").unlink()
    subprocess.run([exe, "sign", "key", str(model), "--signature", str(model / "model.sig"),
                    "--private_key", str(key)], check=True, capture_output=True)
    assert verify_model(model, KeyVerifier(key.with_suffix(".pub"))).ok
