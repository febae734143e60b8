"""A throwaway PostgreSQL server on 127.0.0.1 for the ledger tests.

Starts a private cluster (``initdb`` + ``pg_ctl``) in a temporary directory
on a free port, once per test process, and stops it at exit. As root it runs
the server as the ``postgres`` OS user (the server refuses to run as root).
Tests skip, saying why, only when the server binaries are not installed
(``.ci/run`` installs Debian's ``postgresql`` package).
"""

from __future__ import annotations

import atexit
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest

_server: PgServer | None = None
_failure: str | None = None


def _bindir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0)
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).resolve().parent if initdb else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PgServer:
    """A running private cluster; :meth:`new_database` hands out fresh, empty databases."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.root = Path(tempfile.mkdtemp(prefix="aivet-pg-"))
        self.data = self.root / "data"
        self.port = _free_port()
        self.prefix: list[str] = []
        if os.geteuid() == 0:
            import pwd

            try:
                user = pwd.getpwnam("postgres")
            except KeyError:
                raise RuntimeError("running as root and there is no 'postgres' OS user to run the server as") from None
            os.chown(self.root, user.pw_uid, user.pw_gid)
            self.prefix = ["runuser", "-u", "postgres", "--"]
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "aivet", "--no-sync", "-E", "UTF8")
        opts = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off"
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.root / "log"), "-o", opts, "-w", "-t", "60", "start")
        self.base = f"postgresql://aivet@127.0.0.1:{self.port}"

    def _run(self, tool: str, *args: str) -> None:
        proc = subprocess.run([*self.prefix, str(self.bindir / tool), *args], capture_output=True, text=True, timeout=120)
        if proc.returncode:
            log = (self.root / "log").read_text(errors="replace")[-2000:] if (self.root / "log").exists() else ""
            raise RuntimeError(f"{tool} failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}\n{log}")

    def new_database(self) -> str:
        """A URL to a new, empty database."""
        import psycopg

        name = "t_" + uuid.uuid4().hex[:12]
        with psycopg.connect(f"{self.base}/postgres", autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return f"{self.base}/{name}"

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        except Exception:  # noqa: BLE001 - best effort at exit
            pass
        shutil.rmtree(self.root, ignore_errors=True)


def server() -> PgServer:
    """The process-wide server, started on first use; skips the test if PostgreSQL cannot be had."""
    global _server, _failure
    if _server is not None:
        return _server
    if _failure is not None:
        pytest.skip(_failure)
    try:
        import psycopg  # noqa: F401
    except ImportError:
        _failure = "psycopg is not installed: pip install 'aivet[postgres]'"
        pytest.skip(_failure)
    bindir = _bindir()
    if bindir is None:
        _failure = "PostgreSQL server binaries (initdb, pg_ctl) are not installed; run .ci/run or apt-get install postgresql"
        pytest.skip(_failure)
    try:
        _server = PgServer(bindir)
    except RuntimeError as exc:
        # Installed but it would not start: that is a failure to look at, not a reason to skip.
        _failure = f"PostgreSQL is installed but did not start: {exc}"
        pytest.fail(_failure)
    atexit.register(_server.stop)
    return _server


@pytest.fixture(scope="session")
def pg_server() -> PgServer:
    """The running test server (session-scoped; stopped when the test process exits)."""
    return server()


@pytest.fixture
def pg_url(pg_server: PgServer) -> str:
    """A fresh empty database on the test server."""
    return pg_server.new_database()
