"""Parity with the established scanners: whatever picklescan or modelscan flags, aivet flags.

`bench/parity.py` writes the full table, including the samples only aivet catches, to
docs/parity.md.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.corpus import build_corpus

pytest.importorskip("picklescan.scanner", reason="picklescan is a dev dependency")
pytest.importorskip("modelscan.modelscan", reason="modelscan is a dev dependency")

from tests.peers import parity_table  # noqa: E402


@pytest.fixture(scope="module")
def table(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    samples = build_corpus(tmp_path_factory.mktemp("parity"), tmp_path_factory.mktemp("markers"))
    return parity_table(samples)


def test_aivet_flags_everything_the_peers_flag_on_malicious_samples(table: list[dict[str, Any]]) -> None:
    gaps = [r["name"] for r in table if r["malicious"] and (r["picklescan"] or r["modelscan"]) and not r["aivet"]]
    assert gaps == []


def test_aivet_catches_samples_the_peers_miss(table: list[dict[str, Any]]) -> None:
    only_aivet = [r for r in table if r["malicious"] and r["aivet"] and not r["picklescan"] and not r["modelscan"]]
    assert len(only_aivet) >= 10, [r["name"] for r in only_aivet]


def test_aivet_does_not_flag_clean_samples(table: list[dict[str, Any]]) -> None:
    assert [r["name"] for r in table if not r["malicious"] and r["aivet"]] == []
