"""Files that are one format from the first byte and a container elsewhere (engine sniffing).

libhdf5 finds a superblock after a user block (at 512, 1024, 2048 ...), and Python's zipfile
(so Keras) finds an archive from its end record: the engine must look where those loaders look.
"""

from __future__ import annotations

import json
import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import pytest

import aivet
from aivet.evidence import Evidence
from tests.fixtures.keras_files import k2_dense, k2_lambda, k2_sequential, k3_dense, k3_layer, k3_model, write_keras

h5py = pytest.importorskip("h5py")


def rules_of(evidence: Evidence) -> set[str]:
    return {f.rule_id for f in evidence.findings}


def lambda_config(marker_dir: Path, name: str) -> dict[str, Any]:
    return k2_sequential([k2_dense("dense", 2), k2_lambda(marker_dir, name)])


@pytest.mark.parametrize("userblock", [512, 4096, 65536])
def test_scan_finds_hdf5_behind_a_user_block(tmp_path: Path, marker_dir: Path, userblock: int) -> None:
    # Whatever the first bytes are, libhdf5 finds the superblock at 512, 1024, 2048 ...: so must sniffing.
    path = tmp_path / "weights.bin"
    with h5py.File(path, "w", userblock_size=userblock) as f:
        f.attrs["model_config"] = json.dumps(lambda_config(marker_dir, "sniffed"))
    with open(path, "r+b") as fh:
        fh.write(os.urandom(64))  # arbitrary bytes in the user block: no format of its own
    evidence = aivet.scan(path)
    assert "KERAS-LAMBDA-LAYER" in rules_of(evidence)
    assert "SCAN-UNKNOWN-FORMAT" not in rules_of(evidence) and "SCAN-POLYGLOT" not in rules_of(evidence)
    assert evidence.artifacts[0].format == "keras-hdf5"


def test_polyglot_pickle_and_hdf5_is_analysed_both_ways(tmp_path: Path, marker_dir: Path) -> None:
    # A harmless pickle up front for scanners that read one format; a Keras Lambda for h5py behind it.
    path = tmp_path / "model.h5"
    with h5py.File(path, "w", userblock_size=1024) as f:
        f.attrs["model_config"] = json.dumps(lambda_config(marker_dir, "polyglot"))
    face = pickle.dumps({"weights": [1.0, 2.0]}, protocol=2)
    with open(path, "r+b") as fh:
        fh.write(face)
    evidence = aivet.scan(path)
    found = rules_of(evidence)
    assert {"SCAN-POLYGLOT", "KERAS-LAMBDA-LAYER"} <= found
    (polyglot,) = [f for f in evidence.findings if f.rule_id == "SCAN-POLYGLOT"]
    assert polyglot.details["format"] == "pickle" and polyglot.location.offset == 1024
    (artifact,) = evidence.artifacts
    assert artifact.format == "pickle" and "also hdf5" in artifact.note


def test_polyglot_pickle_and_keras_zip(tmp_path: Path) -> None:
    # zipfile (and so Keras) finds an archive from its end: a pickle in front hides it from first-byte sniffing.
    keras_zip = write_keras(tmp_path / "inner.keras", k3_model([k3_dense(), k3_layer("system", {}, module="os")]))
    path = tmp_path / "model.keras"
    path.write_bytes(pickle.dumps({"weights": [1.0, 2.0]}, protocol=2) + keras_zip.read_bytes())
    assert zipfile.is_zipfile(path)  # what keras.saving.load_model checks
    evidence = aivet.scan(path)
    found = rules_of(evidence)
    assert "SCAN-POLYGLOT" in found and "KERAS-UNSAFE-MODULE" in found
    (polyglot,) = [f for f in evidence.findings if f.rule_id == "SCAN-POLYGLOT"]
    assert polyglot.details["also"] == "zip"


def test_zip_after_a_harmless_prefix_is_a_zip(tmp_path: Path) -> None:
    # Bytes that match no format, then a zip (a self-extracting archive, a zip appended to a PNG...).
    keras_zip = write_keras(tmp_path / "inner.keras", k3_model([k3_dense(), k3_layer("system", {}, module="os")]))
    path = tmp_path / "model.keras"
    path.write_bytes(os.urandom(300) + keras_zip.read_bytes())
    found = rules_of(aivet.scan(path))
    assert {"ARCHIVE-PREPENDED-DATA", "KERAS-UNSAFE-MODULE"} <= found and "SCAN-POLYGLOT" not in found


def test_no_polyglot_without_a_superblock(tmp_path: Path) -> None:
    path = tmp_path / "data.pkl"
    path.write_bytes(pickle.dumps(list(range(5000)), protocol=4))  # well past 512, 1024, 2048, 4096...
    assert "SCAN-POLYGLOT" not in rules_of(aivet.scan(path))
