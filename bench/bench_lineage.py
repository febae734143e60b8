"""Lineage benchmark: does the weight fingerprint tell derivatives of a base from same-shape strangers?

Builds (with numpy, in a temporary directory) a base decoder, every derivative
in ``tests/test_lineage_models.DERIVATIVES`` (continued training, merged LoRA,
renamed tensors, relabelled config, dropped layers, pruned rows, float16,
extended vocabulary, and all of them at once) and ``--unrelated`` models of
identical architecture and shapes from other seeds and other initialisations.
It registers the base and the unrelated models in a fresh registry, matches
every model, and reports each score against the base and the separation
margin (lowest derivative score minus highest unrelated score).

    .venv/bin/python bench/bench_lineage.py --hidden 256 --layers 6 --unrelated 8 --out bench/RESULTS_lineage.md

It also fingerprints a sparse 16 GiB safetensors file to show that sampling
reads a bounded number of bytes whatever the model's size.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shlex
import struct
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.test_lineage_models import DERIVATIVES, make_base, write_model  # noqa: E402

from aivet.provenance.fingerprint import (  # noqa: E402
    BLOCK_LEN,
    SAMPLES,
    block_starts,
    compare,
    fingerprint_model,
)
from aivet.provenance.registry import DEFAULT_THRESHOLD, Registry  # noqa: E402


def _kaiming_uniform(seed: int, **shape: int) -> dict[str, np.ndarray]:
    """Same shapes as make_base, but uniform initialisation scaled by fan-in (another recipe)."""
    rng = np.random.default_rng(seed)
    out = {}
    for k, v in make_base(seed, **shape).items():
        if v.ndim == 2:
            bound = 1 / np.sqrt(v.shape[1])
            out[k] = rng.uniform(-bound, bound, v.shape).astype(np.float32)
        else:
            out[k] = v
    return out


def _permuted_residual(w: dict[str, np.ndarray], hidden: int, seed: int = 42) -> dict[str, np.ndarray]:
    """A function-preserving evasion: the residual stream's units permuted in every matrix that touches it."""
    perm = np.random.default_rng(seed).permutation(hidden)
    out = {}
    for k, v in w.items():
        if v.ndim == 1:
            out[k] = v[perm]
        elif k.endswith(("o_proj.weight", "down_proj.weight")):
            out[k] = v[perm, :]  # writes into the residual stream
        else:
            out[k] = v[:, perm]  # reads from it (q/k/v/up, embeddings, head)
    return out


def _sparse_huge(path: Path, rows: int, cols: int) -> int:
    """A BF16 tensor of rows x cols in a sparse file: only the sampled blocks hold data."""
    header = json.dumps({"w": {"dtype": "BF16", "shape": [rows, cols], "data_offsets": [0, rows * cols * 2]}})
    raw = header.encode()
    raw += b" " * (-len(raw) % 8)
    start = 8 + len(raw)
    rng = np.random.default_rng(0)
    with open(path, "wb") as fh:
        fh.write(struct.pack("<Q", len(raw)) + raw)
        fh.truncate(start + rows * cols * 2)
        for b in block_starts((rows, cols)):
            fh.seek(start + b * 2)
            fh.write((rng.normal(0, 1, BLOCK_LEN).astype(np.float32).view(np.uint32) >> 16).astype("<u2").tobytes())
    return start + rows * cols * 2


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--layers", type=int, default=6)
    ap.add_argument("--vocab", type=int, default=1024)
    ap.add_argument("--mlp", type=int, default=512)
    ap.add_argument("--unrelated", type=int, default=8)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    shape = {"hidden": args.hidden, "layers": args.layers, "vocab": args.vocab, "mlp": args.mlp}
    rows: list[tuple[str, str, float, str, bool, str]] = []  # kind, name, score vs base, top-1, matched, paired
    fp_times: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        base = make_base(0, **shape)
        base_dir = write_model(root / "base", base)
        derived = {}
        for name, make in DERIVATIVES.items():
            extra = {"model_type": "mistral", "arch": "MistralForCausalLM"} if name == "config-renamed" else {}
            derived[name] = write_model(root / name, make(base), shards=2 if name == "merged-lora" else 1,
                                        **extra)  # type: ignore[arg-type]
        evasion = write_model(root / "permuted-residual", _permuted_residual(base, args.hidden))
        unrelated = {}
        for s in range(args.unrelated):
            weights = make_base(100 + s, **shape) if s % 2 == 0 else _kaiming_uniform(100 + s, **shape)
            kind = "normal init" if s % 2 == 0 else "uniform init"
            unrelated[f"unrelated-{s} ({kind})"] = write_model(root / f"unrelated-{s}", weights)
        fps = {}
        for name, path in [("base", base_dir), *derived.items(), *unrelated.items()]:
            t0 = time.perf_counter()
            fps[name] = fingerprint_model(path)
            fp_times.append(time.perf_counter() - t0)
        with Registry.open(root / "registry.db") as reg:
            reg.register("base", fps["base"])
            for name in unrelated:
                reg.register(name, fps[name])
            t0 = time.perf_counter()
            for name in derived:
                ranked = reg.match(fps[name], top=0)
                sim = compare(fps[name], fps["base"])
                rows.append(("derivative", name, sim.score, ranked[0].name, sim.matches(DEFAULT_THRESHOLD),
                             f"{sim.paired}/{sim.total}"))
            match_s = (time.perf_counter() - t0) / len(derived)
        fps["permuted-residual"] = fingerprint_model(evasion)
        sim = compare(fps["permuted-residual"], fps["base"])
        rows.append(("evasion (not handled)", "permuted-residual", sim.score, "-", sim.matches(DEFAULT_THRESHOLD),
                     f"{sim.paired}/{sim.total}"))
        for name in unrelated:
            sim = compare(fps[name], fps["base"])
            rows.append(("unrelated", name, sim.score, "-", sim.matches(DEFAULT_THRESHOLD),
                         f"{sim.paired}/{sim.total}"))
        # every unrelated model against every other one too: the worst case for false matches
        cross = [compare(fps[a], fps[b]).score for a in unrelated for b in unrelated if a != b]
        huge = root / "huge.safetensors"
        huge_size = _sparse_huge(huge, 131072, 65536)
        t0 = time.perf_counter()
        huge_fp = fingerprint_model(huge)
        huge_s = time.perf_counter() - t0
        model_bytes = sum(p.stat().st_size for p in base_dir.glob("*.safetensors"))
    der = [r[2] for r in rows if r[0] == "derivative"]
    unr = [r[2] for r in rows if r[0] == "unrelated"] + cross
    margin = min(der) - max(unr)
    ok = all(r[4] and r[3] == "base" for r in rows if r[0] == "derivative") and not any(
        r[4] for r in rows if r[0] == "unrelated")
    cmd = shlex.join(sys.argv[1:])
    lines = [
        f"## Lineage separation ({dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC)",
        "",
        f"Command: `.venv/bin/python bench/bench_lineage.py {cmd}`  ",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}.  ",
        f"Base: {args.layers} layers, hidden {args.hidden}, MLP {args.mlp}, vocabulary {args.vocab} "
        f"({len(fps['base'].tensors)} sampled matrices, {model_bytes / 2**20:.1f} MiB F32); "
        f"{SAMPLES} values per matrix; threshold {DEFAULT_THRESHOLD}.",
        "",
        "| kind | model | score vs base | top-1 in registry | matched | tensors paired |",
        "|---|---|---:|---|---|---:|",
        *(f"| {k} | {n} | {s:+.3f} | {t} | {'yes' if m else 'no'} | {p} |" for k, n, s, t, m, p in rows),
        "",
        f"**Separation margin: {margin:+.3f}** (lowest derivative {min(der):+.3f} minus highest unrelated "
        f"{max(unr):+.3f}, the latter over {len(unr)} unrelated comparisons: each unrelated model against the "
        f"base and against every other unrelated model). All derivatives matched with the base ranked first, "
        f"no unrelated model matched: **{'yes' if ok else 'NO'}**.",
        "",
        "The evasion row is a deliberate attack, not a derivative the issue asks to match: permuting the "
        "residual stream's units in every matrix leaves the model's function unchanged but moves every "
        "sampled value, so it is not matched (HuRef-style permutation-invariant features would be needed).",
        "",
        f"Fingerprint time per model: median {sorted(fp_times)[len(fp_times) // 2] * 1000:.0f} ms; "
        f"match against a registry of {1 + len(unrelated)} models: {match_s * 1000:.1f} ms.  ",
        f"Sparse {huge_size / 2**30:.0f} GiB BF16 tensor (131072 x 65536): fingerprinted in {huge_s * 1000:.1f} ms "
        f"({len(huge_fp.tensors)} matrix, {SAMPLES * 2} bytes of values read): sampling cost does not grow "
        "with the model.",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if args.out:
        intro = ("# Lineage benchmark results\n\n"
                 "Generated models only (numpy, fixed seeds): see `bench/bench_lineage.py` and "
                 "`tests/test_lineage_models.py` for how each derivative is made. A score is the median, over "
                 "the candidate's sampled matrices, of the estimated correlation with the most similar "
                 "same-shape matrix of the reference (1 = identical, 0 = independent).\n\n")
        args.out.write_text(intro + text, encoding="utf-8")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
