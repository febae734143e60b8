"""Durability and concurrency with real processes: ``kill -9`` mid-append, and several appenders at once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from aivet.ledger import Ledger
from tests import pg

# A worker appends in a loop and prints each index only after append() returned (the acknowledgement).
WORKER = r"""
import sys
from aivet.ledger import Ledger, NewEntry
location, key, tag, count, batch = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
with Ledger.open(location, key_path=key) as log:
    i = 0
    while count < 0 or i < count:
        items = [NewEntry("audit", {"worker": tag, "n": i + j}) for j in range(batch)]
        for receipt in log.append_many(items):
            print(receipt.index, tag, receipt.index - receipt.tree_size + batch, flush=True)
        i += batch
"""


@pytest.fixture(params=["sqlite", "postgres"])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "ledger.db")
    return pg.server().new_database()


def start(location: str, key: Path, tag: str, count: int, batch: int = 1) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", WORKER, location, str(key), tag, str(count), str(batch)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


@pytest.mark.parametrize("batch", [1, 16])
def test_kill_9_mid_append_loses_no_acknowledged_entry(location: str, tmp_path: Path, batch: int) -> None:
    key = tmp_path / "log.key"
    proc = start(location, key, "k", -1, batch)
    acknowledged: list[int] = []
    deadline = time.monotonic() + 60
    assert proc.stdout is not None
    while len(acknowledged) < 40 and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            pytest.fail(f"worker died: {proc.stderr.read() if proc.stderr else ''}")
        acknowledged.append(int(line.split()[0]))
    os.kill(proc.pid, signal.SIGKILL)  # mid-way through the next append, most likely
    proc.wait()
    assert proc.stdout is not None
    acknowledged += [int(x.split()[0]) for x in proc.stdout.read().splitlines() if x.strip()]
    with Ledger.open(location, key_path=key) as log:
        report = log.verify()
        assert report.ok, report.problems
        assert log.size() >= len(acknowledged) and max(acknowledged) < log.size()
        present = {e.index: e.body for e in log.entries(0, log.size())}
        for index in acknowledged:
            assert present[index]["worker"] == "k"
        # and the log still takes appends after the crash
        log.append("audit", {"after": "crash"})
        assert log.verify().ok


def test_concurrent_appenders_are_serialized(location: str, tmp_path: Path) -> None:
    key = tmp_path / "log.key"  # the workers race to create the key and the schema too
    procs = [start(location, key, f"w{w}", 12, batch=1 + w % 2) for w in range(4)]
    outputs = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        outputs.append(out)
    acknowledged = [int(line.split()[0]) for out in outputs for line in out.splitlines()]
    assert sorted(acknowledged) == list(range(48)), "indices must be dense and unique"
    with Ledger.open(location, key_path=key) as log:
        report = log.verify()
        assert report.ok, report.problems
        bodies = {(e.body["worker"], e.body["n"]) for e in log.entries(0, 100)}
        assert bodies == {(f"w{w}", n) for w in range(4) for n in range(12)}
