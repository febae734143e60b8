"""Corpus-wide guarantees: every malicious sample is caught, no clean sample is flagged,
and scanning the whole corpus never executes a payload."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import aivet
from aivet.evidence import Evidence
from tests.corpus import build_corpus
from tests.fixtures import Sample, marker_path, unmet_expectation


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Sample], Path]:
    marker_dir = tmp_path_factory.mktemp("corpus-markers")
    samples = build_corpus(tmp_path_factory.mktemp("corpus"), marker_dir)
    return samples, marker_dir


@pytest.fixture(scope="session")
def results(corpus: tuple[list[Sample], Path]) -> dict[str, Evidence]:
    samples, _ = corpus
    return {s.name: aivet.scan(s.path) for s in samples}


def _ids(samples: list[Sample], malicious: bool) -> list[str]:
    return [s.name for s in samples if s.malicious is malicious]


def test_corpus_is_large_and_balanced(corpus: tuple[list[Sample], Path]) -> None:
    samples, _ = corpus
    malicious = [s for s in samples if s.malicious]
    clean = [s for s in samples if not s.malicious]
    assert len(malicious) >= 60, len(malicious)
    assert len(clean) >= 15, len(clean)


def test_every_malicious_sample_is_caught(corpus: tuple[list[Sample], Path], results: dict[str, Evidence]) -> None:
    samples, _ = corpus
    missed = [unmet_expectation(s, results[s.name]) for s in samples if s.malicious]
    assert not any(missed), "\n".join(m for m in missed if m)


def test_no_clean_sample_raises_an_alarm(corpus: tuple[list[Sample], Path], results: dict[str, Evidence]) -> None:
    samples, _ = corpus
    noisy = [unmet_expectation(s, results[s.name]) for s in samples if not s.malicious]
    assert not any(noisy), "\n".join(n for n in noisy if n)


def test_every_clean_sample_is_fully_analysed(corpus: tuple[list[Sample], Path], results: dict[str, Evidence]) -> None:
    samples, _ = corpus
    partial = []
    for sample in samples:
        if sample.malicious:
            continue
        for artifact in results[sample.name].artifacts:
            if artifact.status.value not in ("analyzed", "skipped"):
                partial.append(f"{sample.name}: {artifact.path} {artifact.format} {artifact.status.value} {artifact.note}")
    assert not partial, "\n".join(partial)


def test_scanning_the_corpus_never_executes_a_payload(corpus: tuple[list[Sample], Path]) -> None:
    samples, marker_dir = corpus
    # Scan in a fresh process too, through the command line, so that nothing cached in this
    # process hides an execution.
    paths = [str(s.path) for s in samples if s.malicious]
    proc = subprocess.run([sys.executable, "-m", "aivet", "scan", "--format", "json", "--no-progress", *paths],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 1, proc.stderr[-2000:]
    for sample in samples:
        aivet.scan(sample.path)
    executed = sorted(p.name for p in marker_dir.iterdir())
    assert executed == [], f"payloads ran during a scan: {executed}"


def test_the_corpus_payloads_are_live(corpus: tuple[list[Sample], Path], tmp_path: Path) -> None:
    """Prove the safety test means something: a real loader does run a corpus payload."""
    samples, marker_dir = corpus
    sample = next(s for s in samples if s.malicious and "pickle" in s.tags and s.path.is_file()
                  and "live" in s.tags)
    code = f"import pickle; pickle.load(open({str(sample.path)!r}, 'rb'))"
    subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, timeout=60)
    marker = marker_path(marker_dir, sample.name)
    assert marker.exists(), "the payload should run under pickle.load"
    marker.unlink()


def test_scanner_imports_no_ml_framework(corpus: tuple[list[Sample], Path]) -> None:
    samples, _ = corpus
    paths = [str(s.path) for s in samples]
    code = (
        "import sys, aivet\n"
        f"aivet.scan(*{paths!r})\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'torch','tensorflow','keras','onnx','h5py','joblib','sklearn','dill','cloudpickle','numpy'})\n"
        "print(','.join(bad))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == ""
