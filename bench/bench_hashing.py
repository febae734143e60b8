"""Hashing benchmark: aivet vs a plain parallel hashlib loop vs the ``model_signing`` command, same run.

Workloads (from issue #3): N bytes over 4 files, one N-byte file, 2,000 small files.
Timings are best-of-``--repeat`` with a warm page cache (a first untimed pass reads
everything), so they measure hashing, not the disk.

    .venv/bin/python bench/bench_hashing.py --size 4GB --repeat 3 --out bench/RESULTS_hashing.md

The "parallel hashlib" baseline is the machine's limit for the same split of work:
one thread per CPU, each hashing whole files (4 files) or 1 GB shard ranges (one
file) with 1 MiB reads, nothing else. Ratios matter more than absolute numbers on
a shared machine.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CLI_SHIM = """
import typer
from aivet.cli import sign as s
app = typer.Typer()
app.command("sign")(s.sign)
app.command("verify")(s.verify)
app()
"""


def parse_size(text: str) -> int:
    units = {"KB": 10**3, "MB": 10**6, "GB": 10**9, "K": 1024, "M": 1024**2, "G": 1024**3}
    for suffix, mult in sorted(units.items(), key=lambda kv: -len(kv[0])):
        if text.upper().endswith(suffix):
            return int(float(text[: -len(suffix)]) * mult)
    return int(text)


def write_file(path: Path, size: int) -> None:
    block = os.urandom(8 * 1024 * 1024)
    with open(path, "wb") as fh:
        left = size
        while left:
            n = min(left, len(block))
            fh.write(block[:n])
            left -= n
            block = block[1:] + block[:1]  # shards must not all hash alike (no caching effects anywhere)


def make_workloads(base: Path, size: int) -> dict[str, Path]:
    four, one, small = base / "four-files", base / "one-file", base / "small-files"
    for d in (four, one, small):
        d.mkdir(parents=True, exist_ok=True)
    for i in range(4):
        write_file(four / f"model-{i:05d}-of-00004.safetensors", size // 4)
    write_file(one / "model.gguf", size)
    for i in range(2000):
        (small / f"d{i % 20:02d}").mkdir(exist_ok=True)
        (small / f"d{i % 20:02d}" / f"f{i:04d}.json").write_bytes(os.urandom(2048 + i))
    return {"4 files": four, "1 file": one, "2000 small files": small}


def plain_hashlib(units: list[tuple[Path, int, int]]) -> None:
    def one(u: tuple[Path, int, int]) -> bytes:
        path, start, end = u
        h = hashlib.sha256()
        with open(path, "rb") as fh:
            fh.seek(start)
            left = end - start
            while left > 0:
                data = fh.read(min(1 << 20, left))
                if not data:
                    break
                h.update(data)
                left -= len(data)
        return h.digest()

    with ThreadPoolExecutor(os.cpu_count()) as pool:
        list(pool.map(one, units))


def hashlib_units(root: Path, shard: int | None) -> list[tuple[Path, int, int]]:
    out = []
    for p in sorted(root.rglob("*")):
        if p.is_file() and p.name != "model.sig":
            size = p.stat().st_size
            step = shard or max(size, 1)
            out.extend((p, s, min(s + step, size)) for s in range(0, max(size, 1), step))
    return out


def aivet_hash(root: Path, shard: int | None) -> None:
    sys.path.insert(0, str(REPO / "src"))
    from aivet.provenance import hashing

    entries = hashing.walk(root, ["model.sig"])
    hashing.hash_units(hashing.units_for(entries, shard), "sha256")


def timed(fn: Callable[[], object]) -> tuple[float, float]:
    """Wall seconds and CPU seconds (this process's threads plus any child process) of one run."""
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu, t = time.process_time(), time.perf_counter()
    fn()
    wall, cpu = time.perf_counter() - t, time.process_time() - cpu
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, cpu + (after.ru_utime - kids.ru_utime) + (after.ru_stime - kids.ru_stime)


def run(cmd: list[str]) -> None:
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="4GB", help="bytes for the 4-file and 1-file workloads (default 4GB)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--dir", type=Path, default=None, help="where to build the workloads (default: a temp dir)")
    ap.add_argument("--out", type=Path, default=None, help="append a Markdown table here")
    ap.add_argument("--shard", default="1GB", help="shard size for aivet --sharded (default 1GB, the spec's)")
    args = ap.parse_args()
    size, shard = parse_size(args.size), parse_size(args.shard)
    base = Path(tempfile.mkdtemp(prefix="aivet-bench-", dir=args.dir))
    py = sys.executable
    ms = shutil.which("model_signing", path=str(Path(py).parent)) or shutil.which("model_signing")
    rows: list[tuple[str, str, float, float, float]] = []
    try:
        work = make_workloads(base, size)
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec

        key = ec.generate_private_key(ec.SECP256R1())
        (base / "k.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                       serialization.NoEncryption()))
        (base / "cli.py").write_text(CLI_SHIM)
        env_py = [py, str(base / "cli.py")]
        for name, root in work.items():
            nbytes = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
            shard_for = shard if name == "1 file" else None
            plain_hashlib(hashlib_units(root, shard_for))  # warm the page cache
            cases: list[tuple[str, Callable[[], object]]] = [
                ("parallel hashlib (limit)", lambda r=root, s=shard_for: plain_hashlib(hashlib_units(r, s))),
                ("aivet hashing API" + (" --sharded" if shard_for else ""), lambda r=root, s=shard_for: aivet_hash(r, s)),
                ("aivet sign (CLI, end to end)" + (" --sharded" if shard_for else ""),
                 lambda r=root, s=shard_for: run([*env_py, "sign", str(r), "--key", str(base / "k.pem"),
                                                  "--no-progress", *(["--shard-size", str(s)] if s else [])])),
            ]
            if ms:
                cases.append(("model_signing sign key (CLI)",
                              lambda r=root: run([ms, "sign", "key", str(r), "--private_key", str(base / "k.pem"),
                                                  "--signature", str(r / "model.sig")])))
            # Interleave the tools (one run of each per round) so that load from other processes on a
            # shared machine hits them alike; keep each tool's best round.
            times: dict[str, tuple[float, float]] = {}
            for _ in range(args.repeat):
                for label, fn in cases:
                    times[label] = min(times.get(label, (float("inf"), 0.0)), timed(fn))
            for label, _fn in cases:
                t, cpu = times[label]
                rows.append((name, label, t, cpu, nbytes / t / 1e9))
                print(f"{name:18} {label:42} {t:8.3f} s {cpu:8.3f} cpu-s {nbytes / t / 1e9:7.2f} GB/s", flush=True)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    if args.out:
        write_markdown(args.out, rows, args, size)


def write_markdown(out: Path, rows: list[tuple[str, str, float, float, float]], args: argparse.Namespace,
                   size: int) -> None:
    lines = [
        f"## Hashing benchmark ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})",
        "",
        f"Command: `.venv/bin/python bench/bench_hashing.py --size {args.size} --shard {args.shard} "
        f"--repeat {args.repeat}`  ",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"{hashlib.sha256().name} via OpenSSL; workloads of {size / 1e9:.2f} GB; best of {args.repeat}, warm cache.",
        "",
        "| workload | tool | wall s | CPU s | GB/s | speed vs limit |",
        "|---|---|---:|---:|---:|---:|",
    ]
    limits = {w: t for w, label, t, _c, _g in rows if label.startswith("parallel hashlib")}
    for w, label, t, cpu, gbs in rows:
        lines.append(f"| {w} | {label} | {t:.3f} | {cpu:.2f} | {gbs:.2f} | {limits[w] / t:.2f}x |")
    lines.append("")
    with open(out, "a", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
