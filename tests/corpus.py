"""The whole test corpus: every fixture area's samples, built once per session.

Areas are listed explicitly; a missing area module is an error, not a skip.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from tests.fixtures import Sample

AREAS = (
    "pickles",
    "archives",
    "torch_files",
    "keras_files",
    "tf_files",
    "onnx_files",
    "gguf_files",
    "safetensors_files",
    "templates",
    "repo_files",
    "python_files",
    "loader_configs",
    "yaml_files",
)


def build_corpus(root: Path, marker_dir: Path) -> list[Sample]:
    samples: list[Sample] = []
    for area in AREAS:
        module = importlib.import_module(f"tests.fixtures.{area}")
        area_root = root / area
        area_root.mkdir(parents=True, exist_ok=True)
        samples.extend(module.build(area_root, marker_dir))
    names = [s.name for s in samples]
    duplicates = {n for n in names if names.count(n) > 1}
    if duplicates:
        raise AssertionError(f"duplicate sample names: {sorted(duplicates)}")
    return samples
