"""Benchmark the ledger: appends per second (single and batched) and inclusion-proof time at N entries.

Each rate is also given as a ratio against *plain inserts of the same rows into
the same store in the same run*: the same Evidence bodies, serialised with
``json.dumps(sort_keys=True)``, inserted with their kind, model and time into a
table shaped like the ledger's ``entries`` table (primary key on the index, the
model index), with the same durability settings, and the same batch size.
What the ratio prices is everything the ledger adds: canonical JSON, hashing,
the Merkle nodes, the lock and the signed tree head.

    .venv/bin/python bench/bench_ledger.py --entries 1000000 --store sqlite
    .venv/bin/python bench/bench_ledger.py --entries 1000000 --store postgres   # starts a private server

PostgreSQL: with no ``--pg-url`` a throwaway cluster is started with tests/pg.py
(fsync off, as in the tests); give ``--pg-url`` to measure a real server.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aivet.ledger import Ledger, NewEntry  # noqa: E402
from aivet.ledger.merkle import leaf_hash, verify_inclusion  # noqa: E402

MODEL = "sha256:" + "ab" * 32


def body(i: int) -> dict[str, Any]:
    """A small but realistic scan Evidence document (one finding, three artifacts)."""
    return {
        "schema_version": "1.0", "tool": {"name": "aivet", "version": "0.1.0"}, "created": "2026-11-23T16:00:00Z",
        "summary": {"artifacts": 3, "findings": 1, "by_severity": {"info": 0, "low": 0, "medium": 0, "high": 1, "critical": 0}, "max_severity": "high"},
        "subjects": [{"id": "s0", "kind": "directory", "location": f"/models/m{i}"}],
        "artifacts": [{"path": f"f{k}.bin", "format": "pickle", "size": 1234 + i, "status": "analyzed", "subject": "s0"} for k in range(3)],
        "findings": [{"rule_id": "PICKLE-DANGEROUS-GLOBAL", "severity": "high", "message": "os.system called",
                      "location": {"path": "f0.bin", "offset": i}, "subject": "s0", "details": {"global": "os.system"}}],
        "records": [],
    }


# -- plain inserts (the baseline) ----------------------------------------------------------------------


class Plain:
    """Plain inserts of the same rows into the same kind of store."""

    def __init__(self, location: str, table: str = "plain") -> None:
        self.pg = location.startswith("postgresql://")
        self.table = table
        if self.pg:
            import psycopg

            self.conn: Any = psycopg.connect(location, autocommit=True)
            self.conn.execute(f"CREATE TABLE {table} (idx BIGINT PRIMARY KEY, kind TEXT NOT NULL, model TEXT, time TEXT NOT NULL, body BYTEA NOT NULL)")
            self.conn.execute(f"CREATE INDEX {table}_model ON {table} (model) WHERE model IS NOT NULL")
        else:
            self.conn = sqlite3.connect(location, isolation_level=None)
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=FULL")
            self.conn.execute(f"CREATE TABLE {table} (idx INTEGER PRIMARY KEY, kind TEXT NOT NULL, model TEXT, time TEXT NOT NULL, body BLOB NOT NULL)")
            self.conn.execute(f"CREATE INDEX {table}_model ON {table} (model) WHERE model IS NOT NULL")
        self.next = 0

    def insert(self, bodies: list[dict[str, Any]]) -> None:
        """Serialise (as aivet's Evidence.to_json does, with the standard library) and insert."""
        self.insert_raw([json.dumps(b, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode() for b in bodies])

    def insert_raw(self, datas: list[bytes]) -> None:
        """Insert rows whose bodies are already serialised: the database's share alone."""
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())
        rows = []
        for data in datas:
            rows.append((self.next, "scan", MODEL, stamp, data))
            self.next += 1
        if self.pg:
            with self.conn.transaction(), self.conn.cursor() as cur:
                with cur.copy(f"COPY {self.table} (idx, kind, model, time, body) FROM STDIN") as copy:
                    for r in rows:
                        copy.write_row(r)
        else:
            self.conn.execute("BEGIN IMMEDIATE")
            self.conn.executemany(f"INSERT INTO {self.table} VALUES (?,?,?,?,?)", rows)
            self.conn.execute("COMMIT")


def rate(count: int, run: Callable[[], None]) -> float:
    t = time.perf_counter()
    run()
    return count / (time.perf_counter() - t)


def bench_store(name: str, location: str, key: Path, entries: int, batch: int, singles: int) -> dict[str, Any]:
    out: dict[str, Any] = {"store": name, "entries": entries, "batch": batch, "singles": singles}
    plain = Plain(location)
    log = Ledger.open(location, key_path=key)
    log.append("scan", body(-1), model=MODEL)  # creates the key and the schema outside the timings

    # single appends: one transaction (one fsync) per entry for both
    bodies = [body(i) for i in range(singles)]
    out["plain_single_per_s"] = rate(singles, lambda: [plain.insert([b]) for b in bodies])
    out["ledger_single_per_s"] = rate(singles, lambda: [log.append("scan", b, model=MODEL) for b in bodies])

    # batched appends up to `entries`, timed in chunks so that the plain run has the same shape
    raw = Plain(location, table="plain_raw")
    plain_t = raw_t = ledger_t = 0.0
    done = log.size()
    while done < entries:
        n = min(batch, entries - done)
        chunk = [body(done + i) for i in range(n)]
        t = time.perf_counter()
        plain.insert(chunk)
        plain_t += time.perf_counter() - t
        datas = [json.dumps(b, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode() for b in chunk]
        t = time.perf_counter()
        raw.insert_raw(datas)
        raw_t += time.perf_counter() - t
        items = [NewEntry("scan", b, MODEL) for b in chunk]
        t = time.perf_counter()
        log.append_many(items)
        ledger_t += time.perf_counter() - t
        done += n
        if (done // n) % 100 == 0:
            print(f"  {name}: {done} entries", file=sys.stderr, flush=True)
    batched = entries - singles - 1
    out["plain_batched_per_s"] = batched / plain_t
    out["raw_batched_per_s"] = batched / raw_t
    out["ledger_batched_per_s"] = batched / ledger_t
    out["single_ratio"] = out["ledger_single_per_s"] / out["plain_single_per_s"]
    out["batched_ratio"] = out["ledger_batched_per_s"] / out["plain_batched_per_s"]
    out["batched_ratio_vs_raw"] = out["ledger_batched_per_s"] / out["raw_batched_per_s"]

    # inclusion proofs at the final size: the full `prove` path (signed head, entry, nodes, JSON)
    size = log.size()
    key_pub = log.public_key()
    rng = random.Random(1)
    times = []
    for _ in range(2000):
        i = rng.randrange(size)
        t = time.perf_counter()
        proof = log.inclusion_proof(i)
        times.append(time.perf_counter() - t)
    out["size"] = size
    out["proof_ms_median"] = statistics.median(times) * 1000
    out["proof_ms_p99"] = sorted(times)[int(len(times) * 0.99)] * 1000
    # and check the last one really proves
    import base64

    ip = proof["inclusionProof"]
    assert verify_inclusion(
        leaf_hash(base64.b64decode(proof["canonicalizedBody"])), int(ip["logIndex"]), int(ip["treeSize"]),
        [base64.b64decode(h) for h in ip["hashes"]], base64.b64decode(ip["rootHash"]),
    )
    del key_pub
    # plain point lookups of the same number of rows, for scale
    t = time.perf_counter()
    for _ in range(2000):
        plain.conn.execute("SELECT body FROM plain WHERE idx = " + ("%s" if plain.pg else "?"), (rng.randrange(plain.next),)).fetchone()
    out["plain_lookup_ms"] = (time.perf_counter() - t) / 2000 * 1000
    log.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--entries", type=int, default=1_000_000)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--singles", type=int, default=1000)
    ap.add_argument("--store", choices=["sqlite", "postgres", "both"], default="both")
    ap.add_argument("--pg-url", default=None, help="an empty PostgreSQL database (default: start a private server)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    results = []
    with tempfile.TemporaryDirectory(prefix="aivet-bench-") as tmp:
        if args.store in ("sqlite", "both"):
            results.append(bench_store("sqlite", str(Path(tmp) / "l.db"), Path(tmp) / "l.key", args.entries, args.batch, args.singles))
        if args.store in ("postgres", "both"):
            url = args.pg_url
            server = None
            if url is None:
                from tests import pg

                server = pg.PgServer(pg._bindir() or Path("/usr/lib/postgresql/15/bin"))
                url = server.new_database()
            try:
                results.append(bench_store("postgres", url, Path(tmp) / "pg.key", args.entries, args.batch, args.singles))
            finally:
                if server is not None:
                    server.stop()
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"python {platform.python_version()} on {platform.machine()}, {args.entries} entries, batch {args.batch}")
    print("| store | single append/s (plain) | ratio | batched append/s (plain) | ratio | (pre-serialised plain) | ratio | proof median ms (p99) | plain lookup ms |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['store']} | {r['ledger_single_per_s']:.0f} ({r['plain_single_per_s']:.0f}) | {r['single_ratio']:.2f} "
            f"| {r['ledger_batched_per_s']:.0f} ({r['plain_batched_per_s']:.0f}) | {r['batched_ratio']:.2f} "
            f"| ({r['raw_batched_per_s']:.0f}) | {r['batched_ratio_vs_raw']:.2f} "
            f"| {r['proof_ms_median']:.3f} ({r['proof_ms_p99']:.3f}) | {r['plain_lookup_ms']:.3f} |"
        )


if __name__ == "__main__":
    main()
