"""Scanner benchmark: aivet against picklescan, modelscan, fickling and ModelAudit.

Builds four inputs under bench/.data (not committed) and times every tool as a whole
process in the same run (wall time and peak RSS from wait4), so start-up counts:

  1. ~2 GB PyTorch zip checkpoints (torch.save of a state_dict): a dense, Llama-shaped one with
     290 tensors, and a mixture-of-experts one with 4,779 tensors (thousands of storages, as in
     MoE models and in checkpoints that carry optimizer state)
  2. a ~15 MB pickle of many small objects
  3. a ~10 GB directory of safetensors shards (sparse files: only headers are real)

On the checkpoints it also times bench/floor_scan.py ("python floor"): the interpreter, zipfile
and json, and reading the pickles, with no analysis. It bounds what any Python scanner can reach.

Usage:  .venv/bin/python bench/bench_scan.py [--repeat N] [--only NAME] [--markdown FILE]
Peers are looked up on PATH and in .venv/bin; a missing peer is reported, not fatal.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DATA = HERE / ".data"
BIN = Path(sys.executable).parent
SCRATCH = tempfile.mkdtemp(prefix="aivet-bench-")


def _decoder(torch: Any, layers: int, hidden: int, mlp: Callable[[str], dict[str, Any]], vocab: int = 32000) -> dict[str, Any]:
    """A Llama-style state_dict: embeddings, attention and norms per layer, ``mlp(prefix)`` for the rest."""
    state = {"model.embed_tokens.weight": torch.zeros(vocab, hidden)}
    for i in range(layers):
        p = f"model.layers.{i}."
        for name in ("q_proj", "k_proj", "v_proj", "o_proj"):
            state[p + f"self_attn.{name}.weight"] = torch.zeros(hidden, hidden)
        state.update(mlp(p))
        state[p + "input_layernorm.weight"] = torch.ones(hidden)
        state[p + "post_attention_layernorm.weight"] = torch.ones(hidden)
    state["model.norm.weight"] = torch.ones(hidden)
    return state


def build_checkpoint(path: Path) -> None:
    """A Llama-shaped state_dict (32 layers, hidden 1024, 290 tensors, ~2.2 GB of float32)."""
    import torch  # only to make the input

    hidden, ffn = 1024, 4096

    def mlp(p: str) -> dict[str, Any]:
        return {p + "mlp.gate_proj.weight": torch.zeros(ffn, hidden), p + "mlp.up_proj.weight": torch.zeros(ffn, hidden),
                p + "mlp.down_proj.weight": torch.zeros(hidden, ffn)}

    torch.save(_decoder(torch, 32, hidden, mlp), path)


def build_moe_checkpoint(path: Path) -> None:
    """A Mixtral-shaped state_dict (24 layers of 64 experts, hidden 512, 4,779 tensors, ~2.0 GB)."""
    import torch  # only to make the input

    hidden, expert_ffn, experts = 512, 192, 64

    def mlp(p: str) -> dict[str, Any]:
        out = {p + "block_sparse_moe.gate.weight": torch.zeros(experts, hidden)}
        for e in range(experts):
            q = p + f"block_sparse_moe.experts.{e}."
            out[q + "w1.weight"] = torch.zeros(expert_ffn, hidden)
            out[q + "w2.weight"] = torch.zeros(hidden, expert_ffn)
            out[q + "w3.weight"] = torch.zeros(expert_ffn, hidden)
        return out

    state = _decoder(torch, 24, hidden, mlp)
    state["lm_head.weight"] = torch.zeros(32000, hidden)
    torch.save(state, path)


def build_many_objects(path: Path) -> None:
    data = [{"id": i, "name": f"item{i}", "vals": [i, i + 1.5], "tag": None} for i in range(300_000)]
    path.write_bytes(pickle.dumps(data, protocol=4))


def build_safetensors_dir(path: Path, shards: int = 20, shard_bytes: int = 512 * 1024**2) -> None:
    path.mkdir(parents=True, exist_ok=True)
    for s in range(shards):
        tensors = {}
        per = shard_bytes // 8
        for t in range(8):
            tensors[f"model.layers.{s}.w{t}"] = {"dtype": "F16", "shape": [per // 2], "data_offsets": [t * per, (t + 1) * per]}
        header = json.dumps(tensors, separators=(",", ":")).encode()
        header += b" " * (-len(header) % 8)
        f = path / f"model-{s + 1:05d}-of-{shards:05d}.safetensors"
        with open(f, "wb") as fh:
            fh.write(struct.pack("<Q", len(header)) + header)
            fh.truncate(8 + len(header) + shard_bytes)  # sparse: no disk blocks for the zeros


INPUTS = {
    "checkpoint-2GB.pt": build_checkpoint,
    "checkpoint-moe-2GB.pt": build_moe_checkpoint,
    "many-objects-15MB.pkl": build_many_objects,
    "safetensors-10GB": build_safetensors_dir,
}


def tool(name: str) -> str | None:
    local = BIN / name
    if local.exists():
        return str(local)
    return shutil.which(name)


def commands(target: Path) -> dict[str, list[str] | None]:
    def cmd(exe: str, *args: str) -> list[str] | None:
        found = tool(exe)
        return [found, *args] if found else None

    is_pickle = target.suffix == ".pkl"
    floor = [sys.executable, str(HERE / "floor_scan.py"), str(target)] if target.suffix == ".pt" else None
    return {
        "aivet": cmd("aivet", "scan", "--no-progress", "--format", "json", "--output", os.devnull, str(target)),
        "picklescan": cmd("picklescan", "-p", str(target)),
        "modelscan": cmd("modelscan", "-p", str(target)),
        "fickling": cmd("fickling", "--check-safety", str(target)) if is_pickle else None,
        "modelaudit": cmd("modelaudit", "scan", str(target)),
        # Not a peer: interpreter start, zipfile and json, and reading the pickles (floor_scan.py).
        "python floor": floor,
    }


@dataclass
class Run:
    seconds: float
    peak_mib: float
    code: int


def measure(argv: list[str], timeout: float = 900) -> Run:
    """Run ``argv`` once: wall time, peak RSS and exit code. The parent blocks in wait4 (no polling
    that would compete for the CPU with the tool being timed); a timer kills a run past ``timeout``."""
    start = time.perf_counter()
    # In a scratch directory: some peers write report files into the working directory.
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=SCRATCH)
    watchdog = threading.Timer(timeout, proc.kill)
    watchdog.start()
    try:
        _, status, usage = os.wait4(proc.pid, 0)
    finally:
        watchdog.cancel()
    seconds = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode == -9 and seconds >= timeout:
        return Run(float("inf"), usage.ru_maxrss / 1024, -9)
    return Run(seconds, usage.ru_maxrss / 1024, proc.returncode)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=3, help="runs per tool and input (best is kept)")
    ap.add_argument("--only", action="append", help="input name(s) to run")
    ap.add_argument("--skip", action="append", default=[], help="tools to skip")
    ap.add_argument("--markdown", type=Path, help="append a markdown table to this file")
    ap.add_argument("--build", choices=sorted(INPUTS), help=argparse.SUPPRESS)
    args = ap.parse_args()
    DATA.mkdir(exist_ok=True)
    if args.build:
        INPUTS[args.build](DATA / args.build)
        return
    # Peers installed by pip have their bytecode compiled at install time; an editable aivet does
    # not, and where PYTHONDONTWRITEBYTECODE is set it would recompile on every run. Compile once.
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(HERE.parent / "src")], check=True)
    lines = ["| input | tool | best wall s | peak RSS MiB | exit | vs aivet (time) |", "|---|---|---:|---:|---:|---:|"]
    for name in INPUTS:
        if args.only and name not in args.only:
            continue
        target = DATA / name
        if not target.exists():
            # In a child process: a forked child's ru_maxrss starts from its parent's RSS, so
            # building (torch) in this process would inflate every peak measured after it.
            print(f"building {name} ...", file=sys.stderr)
            subprocess.run([sys.executable, __file__, "--build", name], check=True)
        results: dict[str, Run] = {}
        for tool_name, argv in commands(target).items():
            if tool_name in args.skip:
                continue
            if argv is None:
                print(f"{name}: {tool_name} not available", file=sys.stderr)
                continue
            runs = [measure(argv) for _ in range(args.repeat if tool_name == "aivet" or name != "many-objects-15MB.pkl" else 1)]
            best = min(runs, key=lambda r: r.seconds)
            results[tool_name] = best
            print(f"{name:24} {tool_name:11} {best.seconds:8.3f} s {best.peak_mib:8.1f} MiB exit={best.code}", file=sys.stderr)
        base = results.get("aivet")
        for tool_name, run in results.items():
            ratio = f"{run.seconds / base.seconds:.1f}x" if base and tool_name != "aivet" else ""
            lines.append(f"| {name} | {tool_name} | {run.seconds:.3f} | {run.peak_mib:.0f} | {run.code} | {ratio} |")
    table = "\n".join(lines)
    print(table)
    if args.markdown:
        with open(args.markdown, "a") as fh:
            fh.write(table + "\n")


if __name__ == "__main__":
    main()
