"""License identification, obligations and conflicts with the intended use (issue #5, part 4)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from aivet.limits import Limits
from aivet.policy.licenses import (
    IntendedUse,
    LicenseReport,
    conflicts,
    identify_license,
    license_info,
    match_text,
    normalise,
    resolve_card_license,
)
from tests.fixtures import license_texts as lt
from tests.fixtures.work import HANG_TIMEOUT

KiB = 1024


def _model(tmp_path: Path, files: dict[str, str | bytes]) -> Path:
    d = tmp_path / "model"
    d.mkdir(exist_ok=True)
    for name, content in files.items():
        (d / name).write_bytes(content.encode() if isinstance(content, str) else content)
    return d


def _card(**fields: str) -> str:
    return "---\n" + "".join(f"{k}: {v}\n" for k, v in fields.items()) + "---\n# Model\n"


# -- real texts (ScanCode LicenseDB, optional test dependency licensedcode-data) -----------------

REAL = [
    ("apache-2.0", "apache-2.0"), ("mit", "mit"), ("bsd-new", "bsd-3-clause"), ("bsd-simplified", "bsd-2-clause"),
    ("gpl-2.0", "gpl-2.0"), ("gpl-3.0", "gpl-3.0"), ("lgpl-2.1", "lgpl-2.1"), ("lgpl-3.0", "lgpl-3.0"),
    ("agpl-3.0", "agpl-3.0"), ("cc-by-4.0", "cc-by-4.0"), ("cc-by-sa-4.0", "cc-by-sa-4.0"),
    ("cc-by-nc-4.0", "cc-by-nc-4.0"), ("cc-by-nc-sa-4.0", "cc-by-nc-sa-4.0"), ("cc-by-nd-4.0", "cc-by-nd-4.0"),
    ("cc-by-nc-nd-4.0", "cc-by-nc-nd-4.0"), ("llama-2-license-2023", "llama2"), ("mpl-2.0", "mpl-2.0"),
    ("isc", "isc"),
    ("bigscience-open-rail-m", "bigscience-openrail-m"), ("bigcode-open-rail-m-v1", "bigcode-openrail-m"),
    ("bigscience-rail-1.0", "bigscience-bloom-rail-1.0"), ("stable-diffusion-2022-08-22", "creativeml-openrail-m"),
]
needs_scancode = pytest.mark.skipif(lt.scancode_dir() is None,
                                    reason="optional test dependency licensedcode-data is not installed")


@needs_scancode
@pytest.mark.parametrize(("key", "expected"), REAL)
def test_real_text_is_identified(tmp_path: Path, key: str, expected: str) -> None:
    text = lt.scancode_text(key)
    assert text is not None
    d = _model(tmp_path, {"LICENSE": text})
    report = identify_license(d)
    assert report.license.id == expected
    assert not report.altered and report.disagreement is None
    assert report.sources[0].confidence >= 0.9


@needs_scancode
def test_unrelated_real_texts_are_not_misnamed() -> None:
    # Licenses we have no fingerprint for never pass as one we know (X11 may be "an altered MIT", never MIT).
    for key in ("llama-license-2023", "zlib", "wtfpl", "unlicense", "epl-2.0", "bsl-1.0", "cc0-1.0", "x11",
                "lgpl-2.0", "cc-by-3.0", "ms-pl", "artistic-2.0", "openssl"):
        text = lt.scancode_text(key)
        if text is None:
            continue
        m = match_text(text)
        assert m.license_id is None or m.altered, (key, m)


@needs_scancode
@pytest.mark.parametrize(("change", "why"), [
    (("greater than 700 million monthly active users", "greater than 7 billion monthly active users"), "700 million"),
    (("https://ai.meta.com/llama/use-policy", "https://example.com/policy"), "Acceptable Use Policy"),
    (("to improve any other large language model", "to do anything"), "improving other large language models"),
])
def test_altered_real_llama2_is_not_the_original(tmp_path: Path, change: tuple[str, str], why: str) -> None:
    text = lt.scancode_text("llama-2-license-2023")
    assert text is not None
    # The ScanCode copy wraps lines; collapse whitespace so the edit lands wherever the clause breaks.
    flat = " ".join(text.split())
    assert change[0] in flat
    d = _model(tmp_path, {"README.md": _card(license="llama2"), "LICENSE": flat.replace(*change)})
    report = identify_license(d)
    assert report.altered
    assert report.license.id == "other" and report.license.family == "other"
    assert report.disagreement is not None and why in report.disagreement
    assert report.license.commercial_use is None


@needs_scancode
def test_permissive_real_text_with_rider_is_altered() -> None:
    text = lt.scancode_text("apache-2.0")
    assert text is not None
    m = match_text(text + "\nADDITIONAL TERMS: the model may be used for research purposes only.\n")
    assert m.altered and m.license_id == "apache-2.0"


# -- model licenses (skeleton texts built in code) ------------------------------------------------


@pytest.mark.parametrize(("text", "expected"), [
    (lt.llama3x("3.1"), "llama3.1"), (lt.llama3x("3.2"), "llama3.2"), (lt.llama3x("3.3"), "llama3.3"),
    (lt.llama3x("4"), "llama4"), (lt.gemma(), "gemma"), (lt.qwen(), "qwen"), (lt.qwen(research=True), "qwen-research"),
    (lt.deepseek(), "deepseek"), (lt.mistral("research"), "mistral-research"),
    (lt.mistral("non-production"), "mistral-non-production"), (lt.mit_text(), "mit"),
])
def test_model_license_texts(text: str, expected: str) -> None:
    m = match_text(text)
    assert (m.license_id, m.altered) == (expected, False), m.detail


@pytest.mark.parametrize(("kwargs", "why"), [
    ({"drop_cap": True}, "700 million"),
    ({"aup_url": "https://evil.example/use-policy"}, "published Acceptable Use Policy"),
    ({"drop_built_with": True}, "Built with Llama"),
])
def test_altered_llama31_is_not_the_original(tmp_path: Path, kwargs: dict[str, object], why: str) -> None:
    d = _model(tmp_path, {"README.md": _card(license="llama3.1"), "LICENSE": lt.llama3x("3.1", **kwargs)})  # type: ignore[arg-type]
    report = identify_license(d)
    assert report.altered and report.license.id == "other" and report.license.family == "other"
    assert report.disagreement is not None and why in report.disagreement
    assert "Llama 3.1" in report.license.name  # says what it resembles


def test_mit_with_part_removed_or_added_is_altered() -> None:
    text = lt.mit_text()
    cut = text.split("The above copyright notice")[0]
    assert match_text(cut).altered
    assert match_text(text + "\nThe Software may not be used for commercial use is prohibited.\n").altered
    assert match_text(text + "\nThis copy is for non-commercial use.\n").altered
    m = match_text(text.replace(" ", "  ").replace("\u0020\u0020", "\n", 5).upper())
    assert (m.license_id, m.altered) == ("mit", False)  # reflowed, re-cased: still MIT


def test_normalise_drops_case_punctuation_bullets_and_copyright_lines() -> None:
    a = normalise("Copyright (c) 2024 ACME Inc.\n  * Permission is  hereby\tgranted,\n- free of charge!")
    assert a == "permission is hereby granted free of charge"
    assert normalise("CreativeML Open RAIL++-M") == "creativeml open rail plusplus m"


# -- the model card and the directory ------------------------------------------------------------


@pytest.mark.parametrize(("fields", "expected"), [
    ({"license": "llama3.1"}, "llama3.1"),
    ({"license": "apache-2.0"}, "apache-2.0"),
    ({"license": "gemma"}, "gemma"),
    ({"license": "other", "license_name": "mrl"}, "mistral-research"),
    ({"license": "other", "license_name": "qwen"}, "qwen"),
    ({"license": "other", "license_name": "deepseek-license"}, "deepseek"),
    ({"license": "other", "license_link": "https://mistral.ai/licences/MNPL-0.1.md"}, "mistral-non-production"),
    ({"license": "other", "license_name": "my-own-1.0"}, "other"),
    ({"license": "not-a-real-id"}, "other"),
])
def test_card_license(tmp_path: Path, fields: dict[str, str], expected: str) -> None:
    report = identify_license(_model(tmp_path, {"README.md": _card(**fields)}))
    assert report.license.id == expected
    assert report.sources[0].kind == "front-matter"


def test_card_and_license_file_disagree(tmp_path: Path) -> None:
    d = _model(tmp_path, {"README.md": _card(license="apache-2.0"), "LICENSE": lt.llama3x("3.1")})
    report = identify_license(d)
    assert report.license.id == "llama3.1" and not report.altered
    assert report.disagreement is not None and "apache-2.0" in report.disagreement


def test_family_id_resolved_by_text_is_no_disagreement(tmp_path: Path) -> None:
    from aivet.policy.license_data import BSD3_TEXT

    d = _model(tmp_path, {"README.md": _card(license="bsd"), "LICENSE.txt": BSD3_TEXT})
    report = identify_license(d)
    assert report.license.id == "bsd-3-clause" and report.disagreement is None


def test_model_license_outranks_code_license(tmp_path: Path) -> None:
    d = _model(tmp_path, {"LICENSE-CODE": lt.mit_text(), "LICENSE-MODEL": lt.deepseek(),
                          "README.md": _card(license="other", license_name="deepseek")})
    report = identify_license(d)
    assert report.license.id == "deepseek" and report.disagreement is None
    assert {s.path for s in report.sources} >= {"LICENSE-CODE", "LICENSE-MODEL", "README.md"}


def test_use_policy_and_notice_are_sources(tmp_path: Path) -> None:
    d = _model(tmp_path, {"LICENSE": lt.llama3x("3.1"), "USE_POLICY.md": "# Llama 3.1 Acceptable Use Policy\n...",
                          "NOTICE": "Gemma is provided under and subject to the Gemma Terms of Use found at ..."})
    report = identify_license(d)
    kinds = {s.kind: s.value for s in report.sources}
    assert kinds == {"license-file": "llama3.1", "use-policy": "llama3.1", "notice": "gemma"}
    assert report.license.id == "llama3.1" and not report.altered


def test_nothing_is_unknown_and_unrecognised_text_is_other(tmp_path: Path) -> None:
    assert identify_license(_model(tmp_path, {})).license.id == "unknown"
    report = identify_license(_model(tmp_path, {"LICENSE": "You may do what the author says, on Tuesdays."}))
    assert report.license.id == "other"


def test_broken_front_matter_is_a_source_not_an_error(tmp_path: Path) -> None:
    d = _model(tmp_path, {"README.md": "---\nlicense: [unclosed\n---\n", "LICENSE": lt.mit_text()})
    report = identify_license(d)
    assert report.license.id == "mit"
    assert report.sources[0].confidence == 0.0 and "unreadable" in report.sources[0].detail


@pytest.mark.timeout(HANG_TIMEOUT)
def test_huge_license_file_is_read_only_up_to_the_limit(tmp_path: Path) -> None:
    body = lt.llama3x("3.1") + "x " * (2 * 1024 * KiB)
    d = _model(tmp_path, {"LICENSE": body})
    report = identify_license(d, limits=Limits(max_license_file_bytes=64 * KiB))
    assert report.license.id == "llama3.1"
    assert "max_license_file_bytes" in report.sources[0].detail


def test_symlink_out_of_the_model_is_not_read(tmp_path: Path) -> None:
    outside = tmp_path / "secret.txt"
    outside.write_text(lt.mit_text())
    d = _model(tmp_path, {})
    (d / "LICENSE").symlink_to(outside)
    report = identify_license(d)
    assert report.license.id == "unknown" and "symlink" in report.sources[0].detail


def test_resolve_card_license_ambiguous_family_is_lower_confidence() -> None:
    assert resolve_card_license("bsd")[:2] == ("bsd", 0.6)
    assert resolve_card_license(None) == (None, 0.0, "no license field")


# -- obligations and conflicts -------------------------------------------------------------------


def _kinds(lid: str) -> set[str]:
    return {o.kind for o in license_info(lid).obligations}


def test_obligations_in_plain_words() -> None:
    llama = license_info("llama3.1")
    assert any(o.kind == "naming" and '"Built with Llama"' in o.text for o in llama.obligations)
    assert {"notice", "acceptable-use-policy", "user-cap", "license-copy"} <= _kinds("llama3.1")
    assert llama.monthly_user_cap == 700_000_000 and llama.family == "llama"
    assert "use-restrictions" in _kinds("gemma") and "use-restrictions" in _kinds("bigscience-openrail-m")
    assert license_info("qwen").monthly_user_cap == 100_000_000 and "naming" in _kinds("qwen")
    assert "share-alike" in _kinds("cc-by-sa-4.0") and "non-commercial" in _kinds("cc-by-nc-4.0")
    assert "copyleft" in _kinds("gpl-3.0") and "network-source" in _kinds("agpl-3.0")
    assert license_info("apache-2.0").osi_approved and license_info("apache-2.0").spdx == "Apache-2.0"
    assert license_info("mistral-research").commercial_use is False


def _uses(lid: str, **kw: object) -> dict[str, str]:
    return {c.use: c.severity for c in conflicts(license_info(lid), IntendedUse(**kw))}


def test_conflicts() -> None:
    assert _uses("apache-2.0", redistribution=True, fine_tune_release=True) == {}
    assert _uses("cc-by-nc-4.0")["commercial"] == "deny"
    assert "commercial" not in _uses("cc-by-nc-4.0", commercial=False)
    assert _uses("mistral-research")["commercial"] == "deny"
    assert _uses("qwen-research")["commercial"] == "deny"
    assert _uses("llama3.1", monthly_users=800_000_000)["monthly-users"] == "deny"
    assert "monthly-users" not in _uses("llama3.1", monthly_users=1_000_000)
    assert _uses("qwen", monthly_users=150_000_000)["monthly-users"] == "deny"
    assert _uses("llama3.2", regions=("DE",))["region"] == "review"
    assert "region" not in _uses("llama3.1", regions=("EU",))
    assert _uses("cc-by-nd-4.0", fine_tune_release=True)["fine-tune-release"] == "deny"
    assert _uses("gpl-3.0", redistribution=True)["redistribution"] == "review"
    assert _uses("gemma", redistribution=True)["redistribution"] == "review"
    assert _uses("gemma", use_case="Weapons targeting")["use-case"] == "review"
    assert _uses("unknown")["license"] == "review" and _uses("other")["license"] == "review"


# -- the Evidence record -------------------------------------------------------------------------


def test_record_round_trip(tmp_path: Path) -> None:
    d = _model(tmp_path, {"README.md": _card(license="apache-2.0"), "LICENSE": lt.llama3x("3.1", drop_cap=True)})
    report = identify_license(d)
    record = report.to_record("model")
    assert record.kind == "license"
    body = json.loads(json.dumps(record.to_dict()))
    assert body["data"]["altered"] is True and body["data"]["license"]["id"] == "other"
    assert LicenseReport.from_record(record) == report


def test_fifo_readme_and_license_do_not_block(tmp_path: Path) -> None:
    import os

    d = _model(tmp_path, {})
    os.mkfifo(d / "README.md")
    os.mkfifo(d / "LICENSE")
    report = identify_license(d)  # opening a FIFO for reading would block forever
    assert report.license.id == "unknown"
    assert all(s.confidence == 0.0 for s in report.sources)


def test_published_text_digest_tells_a_verbatim_copy_from_a_reworded_one(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import hashlib

    from aivet.policy import license_data
    from aivet.policy.licenses import normalise

    original = lt.llama3x("3.1")
    digest = hashlib.sha256(normalise(original).encode()).hexdigest()
    monkeypatch.setitem(license_data.PUBLISHED_TEXT_SHA256, "llama3.1", frozenset({digest}))  # type: ignore[index]

    # Formatting does not matter: markdown, case, quotes and line wrapping are normalised away.
    verbatim = identify_license(_model(_dir(tmp_path / "a"), {"LICENSE": "# " + original.upper().replace(" ", "\n")}))
    assert verbatim.license.id == "llama3.1" and verbatim.sources[0].confidence == 1.0
    assert "word for word" in verbatim.sources[0].detail

    # Every key clause kept, one word softened: still Llama 3.1, but not vouched for as the original.
    reworded = original.replace("prominently display", "optionally display")
    assert reworded != original
    report = identify_license(_model(_dir(tmp_path / "b"), {"LICENSE": reworded}))
    assert report.license.id == "llama3.1" and not report.altered
    assert report.sources[0].confidence == 0.8 and "wording differs" in report.sources[0].detail


def _dir(path: Path) -> Path:
    path.mkdir()
    return path


# -- key clauses checked against the published texts (2026-11-23; skeletons built here) --------------


def _text(*clauses: str) -> str:
    return lt.FILLER.join(c + "\n" for c in clauses)


_TONGYI_CAP = ("If you are commercially using the Materials, and your product or service has more than 100 million "
               "monthly active users, You shall request a license from Us.")
_TONGYI_BAN = ("You can not use the Materials or any output therefrom to improve any other large language model "
               "(excluding Tongyi Qianwen or derivative works thereof).")
_NC_DEFINITION = '"Non-Commercial" shall mean for research or evaluation purposes only.'
_NC_GRANT = "You are granted a limited license to use the Materials FOR NON-COMMERCIAL PURPOSES ONLY."


def _tongyi(*, research: bool = False, drop: str = "") -> str:
    title = "Tongyi Qianwen RESEARCH LICENSE AGREEMENT" if research else "Tongyi Qianwen LICENSE AGREEMENT"
    body = [_NC_DEFINITION, _NC_GRANT] if research else [_TONGYI_CAP]
    return _text(title, "Tongyi Qianwen Release Date: November 30, 2023",
                 *(c for c in (*body, _TONGYI_BAN) if c != drop))


def test_tongyi_qianwen_texts_are_told_apart() -> None:
    assert (match_text(_tongyi()).license_id, match_text(_tongyi()).altered) == ("tongyi-qianwen", False)
    research = match_text(_tongyi(research=True))
    assert (research.license_id, research.altered) == ("tongyi-qianwen-research", False), research.detail
    info = license_info("tongyi-qianwen-research")
    assert info.commercial_use is False and info.family == "qwen"
    assert {o.kind for o in info.obligations} >= {"non-commercial", "use-restrictions", "notice", "license-copy"}
    assert "use-restrictions" in {o.kind for o in license_info("tongyi-qianwen").obligations}


@pytest.mark.parametrize(("text", "expected", "why"), [
    (_tongyi(drop=_TONGYI_CAP), "tongyi-qianwen", "100 million"),
    (_tongyi(drop=_TONGYI_BAN), "tongyi-qianwen", "improving other large language models"),
    (_tongyi(research=True, drop=_NC_GRANT), "tongyi-qianwen-research", "non-commercial limitation"),
    (_tongyi(research=True, drop=_TONGYI_BAN), "tongyi-qianwen-research", "improving other large language models"),
    # The definition of Non-Commercial stays; the grant no longer limits anything: altered.
    (_text("Qwen RESEARCH LICENSE AGREEMENT", _NC_DEFINITION, "You are granted a limited license."),
     "qwen-research", "non-commercial limitation"),
])
def test_key_restriction_removed_is_altered(text: str, expected: str, why: str) -> None:
    m = match_text(text)
    assert m.license_id == expected and m.altered, m.detail
    assert any(why in what for what in m.missing), m.missing


def test_deepseek_without_attachment_a_is_altered(tmp_path: Path) -> None:
    original = lt.deepseek()
    cut = original.replace("Attachment A - Use Restrictions", "")
    assert cut != original and "Attachment A" in cut  # paragraph 5 still points at the attachment
    report = identify_license(_model(tmp_path, {"LICENSE-MODEL": cut, "README.md": _card(license="other",
                                                                                         license_name="deepseek")}))
    assert report.altered and report.license.id == "other"
    assert report.disagreement is not None and "Attachment A list of restricted uses" in report.disagreement


def test_deepseek_without_remote_restriction_is_altered() -> None:
    cut = lt.deepseek().replace("DeepSeek reserves the right to restrict (remotely or otherwise) usage of the Model",
                                "")
    m = match_text(cut)
    assert m.altered and any("remotely" in what for what in m.missing)


@pytest.mark.parametrize(("fields", "expected"), [
    ({"license": "other", "license_name": "tongyi-qianwen-research-license-agreement"}, "tongyi-qianwen-research"),
    ({"license": "other", "license_name": "tongyi-qianwen-license-agreement"}, "tongyi-qianwen"),
    ({"license": "other", "license_link":
      "https://github.com/QwenLM/Qwen/blob/main/Tongyi%20Qianwen%20RESEARCH%20LICENSE%20AGREEMENT"},
     "tongyi-qianwen-research"),
])
def test_tongyi_card_values(fields: dict[str, str], expected: str) -> None:
    assert resolve_card_license(fields.get("license"), fields.get("license_name"),
                                fields.get("license_link"))[0] == expected


def test_published_digests_are_well_formed() -> None:
    from aivet.policy import license_data

    for lid, digests in license_data.PUBLISHED_TEXT_SHA256.items():
        assert lid in license_data.CATALOGUE
        assert digests and all(len(d) == 64 and int(d, 16) >= 0 for d in digests)
    # A skeleton keeps every key clause but is not the published text: never vouched for word for word.
    for text in (lt.deepseek(), lt.qwen(), lt.qwen(research=True), lt.gemma(), _tongyi(), _tongyi(research=True)):
        m = match_text(text)
        assert not m.altered and m.confidence == 0.8, m.detail


@pytest.mark.parametrize("license_id", ["llama2", "tongyi-qianwen", "tongyi-qianwen-research"])
def test_licenses_that_forbid_improving_other_models_flag_fine_tune_release(license_id: str) -> None:
    found = conflicts(license_info(license_id), IntendedUse(fine_tune_release=True))
    assert any(c.use == "fine-tune-release" and "improve any other" in c.message for c in found)
    assert not any("improve any other" in c.message
                   for c in conflicts(license_info("apache-2.0"), IntendedUse(fine_tune_release=True)))


# -- key clauses a copy could drop while keeping its title (stand-ins worded as the published texts) ---


@pytest.mark.parametrize(("text", "card", "original", "why"), [
    (lt.deepseek(drop_use_list=True), "deepseek", "DeepSeek", "list of restricted uses under Attachment A"),
    (lt.deepseek(drop_military=True), "deepseek", "DeepSeek", "ban on military use"),
    (lt.qwen(drop_built_with=True), "qwen", "Qwen License", '"Built with Qwen"'),
    (lt.qwen(research=True, drop_built_with=True), "qwen-research", "Qwen Research", '"Built with Qwen"'),
    (lt.gemma(drop_remote_restriction=True), "gemma", "Gemma", "Google's right to restrict use remotely"),
    (lt.mistral("non-production", drop_usage_limitation=True), "mnpl", "Non-Production",
     "limitation to non-production environments"),
    (lt.mistral("research", drop_usage_limitation=True), "mrl", "Research License", "limitation to research purposes"),
])
def test_key_clause_removed_from_model_license_is_altered(tmp_path: Path, text: str, card: str, original: str,
                                                          why: str) -> None:
    d = _model(tmp_path, {"README.md": _card(license="other", license_name=card), "LICENSE": text})
    report = identify_license(d)
    assert report.altered and report.license.id == "other" and report.license.family == "other"
    assert report.disagreement is not None and why in report.disagreement, report.disagreement
    assert original in report.license.name  # says what it resembles
    assert report.license.commercial_use is None  # the original's terms are not assumed


def test_deepseek_without_military_line_keeps_the_rest_of_the_list() -> None:
    # Only the military line is gone: the list's opening and its other items stay, and only the ban is missing.
    text = lt.deepseek(drop_military=True)
    assert lt.DEEPSEEK_USE_LIST in text and lt.DEEPSEEK_LAWFUL in text and lt.DEEPSEEK_MILITARY not in text
    m = match_text(text)
    assert m.altered and m.missing == ("the ban on military use (Attachment A)",)


def test_mistral_definitions_alone_do_not_stand_for_the_usage_limitation() -> None:
    # The definitions of "Research Purposes" / "Non-Production Environment" survive when section 3.2 is cut.
    for kind in ("research", "non-production"):
        cut = lt.mistral(kind, drop_usage_limitation=True)
        assert ("Research Purposes" in cut) if kind == "research" else ("Non-Production Environment" in cut)
        assert match_text(cut).altered


@pytest.mark.parametrize(("text", "expected", "confidence"), [
    (lt.deepseek(), "deepseek", 0.8), (lt.qwen(), "qwen", 0.8), (lt.qwen(research=True), "qwen-research", 0.8),
    (lt.gemma(), "gemma", 0.8),
    # No published digest for the Mistral licenses (their texts are not in a public repository we checked).
    (lt.mistral("research"), "mistral-research", 0.95),
    (lt.mistral("non-production"), "mistral-non-production", 0.95),
])
def test_full_stand_ins_keep_every_key_clause(tmp_path: Path, text: str, expected: str, confidence: float) -> None:
    m = match_text(text)
    assert (m.license_id, m.altered, m.missing, m.confidence) == (expected, False, (), confidence), m.detail
    report = identify_license(_model(tmp_path, {"LICENSE": text}))
    assert report.license.id == expected and not report.altered and report.disagreement is None
