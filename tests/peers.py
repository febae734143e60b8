"""Run the peer scanners (picklescan, modelscan) in-process on corpus samples."""

from __future__ import annotations

import io
import logging
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import aivet
from aivet.evidence import Severity
from tests.fixtures import Sample

# A peer that raises on a file has not flagged it: it gives no verdict, and the file still loads
# (the zip-confusion bypasses of 2025 made picklescan raise on files torch.load reads).


def picklescan_flags(path: Path) -> bool:
    import picklescan.scanner as scanner

    try:
        with redirect_stdout(io.StringIO()), redirect_stderr(io.StringIO()):
            result = scanner.scan_directory_path(str(path)) if path.is_dir() else scanner.scan_file_path(str(path))
    except Exception:  # noqa: BLE001 - any peer failure counts as "not flagged"
        return False
    return bool(result.infected_files or result.issues_count)


def modelscan_flags(path: Path) -> bool:
    from modelscan.modelscan import ModelScan

    logging.disable(logging.CRITICAL)
    try:
        with redirect_stdout(io.StringIO()), redirect_stderr(io.StringIO()):
            result = ModelScan().scan(path)
    except Exception:  # noqa: BLE001 - any peer failure counts as "not flagged"
        return False
    finally:
        logging.disable(logging.NOTSET)
    return bool(result.get("issues"))


def aivet_flags(path: Path) -> bool:
    top = aivet.scan(path).max_severity
    return top is not None and top >= Severity.MEDIUM


def parity_table(samples: list[Sample]) -> list[dict[str, Any]]:
    return [
        {
            "name": s.name,
            "malicious": s.malicious,
            "technique": s.technique,
            "aivet": aivet_flags(s.path),
            "picklescan": picklescan_flags(s.path),
            "modelscan": modelscan_flags(s.path),
        }
        for s in samples
    ]
