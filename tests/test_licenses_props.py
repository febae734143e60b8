"""Property tests: license matching and identification take any text, card or file without raising, and quickly."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aivet.limits import Limits
from aivet.policy.license_data import CATALOGUE
from aivet.policy.licenses import IntendedUse, conflicts, identify_license, license_info, match_text, normalise
from tests.fixtures import license_texts as lt
from tests.fixtures.work import HANG_TIMEOUT

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SMALL = Limits(max_license_file_bytes=16 * 1024, max_front_matter_bytes=8 * 1024)

seeds = st.sampled_from([lt.llama3x("3.1"), lt.gemma(), lt.qwen(), lt.deepseek(), lt.mit_text(), ""])
yaml_values = st.one_of(st.text(max_size=30), st.integers(), st.lists(st.text(max_size=10), max_size=4),
                        st.just("[unclosed"), st.just("*alias"), st.just("&a [1]"), st.just("{a: {b: {c: 1}}}"))
cards = st.dictionaries(st.sampled_from(["license", "license_name", "license_link", "base_model", "tags", "x"]),
                        yaml_values, max_size=5)


@pytest.mark.timeout(HANG_TIMEOUT)
@SETTINGS
@given(seeds, st.integers(0, 4000), st.text(max_size=200))
def test_mutated_text_never_raises(seed: str, at: int, insert: str) -> None:
    text = seed[:at] + insert + seed[at + len(insert):]
    m = match_text(text)
    assert 0.0 <= m.confidence <= 1.0
    assert m.license_id is None or m.license_id in CATALOGUE
    assert normalise(normalise(text)) == normalise(text)


@SETTINGS
@given(cards, st.binary(max_size=3000), st.sampled_from(["LICENSE", "LICENSE-MODEL", "NOTICE", "USE_POLICY.md"]))
def test_random_card_and_files_never_raise(card: dict[str, object], blob: bytes, name: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        lines = "".join(f"{k}: {v}\n" for k, v in card.items())
        (d / "README.md").write_text("---\n" + lines + "---\n", encoding="utf-8")
        (d / name).write_bytes(blob)
        report = identify_license(d, limits=SMALL)
        assert report.license.id in CATALOGUE
        report.to_record("m").to_dict()


@SETTINGS
@given(st.sampled_from(sorted(CATALOGUE)), st.booleans(), st.booleans(), st.booleans(),
       st.none() | st.integers(0, 10**10), st.lists(st.text(max_size=4), max_size=3), st.text(max_size=40))
def test_conflicts_never_raise(lid: str, commercial: bool, redistribution: bool, release: bool,
                               users: int | None, regions: list[str], case: str) -> None:
    use = IntendedUse(commercial, False, redistribution, release, users, tuple(regions), case)
    for c in conflicts(license_info(lid), use):
        assert c.severity in ("deny", "review") and c.message
