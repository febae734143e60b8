"""Generated model families for lineage: a base, its derivatives, and unrelated look-alikes.

The generator (``make_base``, ``DERIVATIVES``, ``make_unrelated``, ``write_model``)
is shared with ``bench/bench_lineage.py``. Every model is built here with numpy
and written with ``safetensors.numpy`` -- nothing is downloaded or committed.
The tests assert the issue's acceptance criterion: every derivative matches its
base, no unrelated model of identical shapes does.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

Weights = dict[str, np.ndarray]


def make_base(seed: int = 0, *, hidden: int = 128, layers: int = 6, vocab: int = 512, mlp: int = 256,
              scale: float = 0.02) -> Weights:
    """A small decoder: embeddings, per layer q/k/v/o (hidden x hidden), up/down, norms, and a head."""
    rng = np.random.default_rng(seed)
    w: Weights = {"model.embed_tokens.weight": rng.normal(0, scale, (vocab, hidden)).astype(np.float32)}
    for i in range(layers):
        p = f"model.layers.{i}."
        for name in ("q_proj", "k_proj", "v_proj", "o_proj"):
            w[p + f"self_attn.{name}.weight"] = rng.normal(0, scale, (hidden, hidden)).astype(np.float32)
        w[p + "mlp.up_proj.weight"] = rng.normal(0, scale, (mlp, hidden)).astype(np.float32)
        w[p + "mlp.down_proj.weight"] = rng.normal(0, scale, (hidden, mlp)).astype(np.float32)
        w[p + "input_layernorm.weight"] = np.ones(hidden, np.float32)
    w["model.norm.weight"] = np.ones(hidden, np.float32)
    w["lm_head.weight"] = rng.normal(0, scale, (vocab, hidden)).astype(np.float32)
    return w


def _matrices(w: Weights) -> list[str]:
    return [k for k, v in w.items() if v.ndim == 2]


def continued_training(w: Weights, seed: int = 1, strength: float = 0.3) -> Weights:
    """Base plus Gaussian drift of ``strength`` times each tensor's spread (r ~ 1/sqrt(1+s^2))."""
    rng = np.random.default_rng(seed)
    return {k: (v + rng.normal(0, strength * float(v.std()), v.shape).astype(np.float32)) if v.ndim == 2 else v
            for k, v in w.items()}


def merged_lora(w: Weights, seed: int = 2, rank: int = 8, strength: float = 0.5) -> Weights:
    """Base plus a merged low-rank delta B @ A whose norm is ``strength`` times the weight's."""
    rng = np.random.default_rng(seed)
    out = dict(w)
    for k in _matrices(w):
        v = w[k]
        delta = rng.normal(0, 1, (v.shape[0], rank)) @ rng.normal(0, 1, (rank, v.shape[1]))
        delta *= strength * np.linalg.norm(v) / np.linalg.norm(delta)
        out[k] = (v + delta).astype(np.float32)
    return out


def renamed(w: Weights, seed: int = 3) -> Weights:
    """Every tensor renamed and the storage order shuffled."""
    rng = np.random.default_rng(seed)
    keys = list(w)
    order = rng.permutation(len(keys))
    return {f"transformer.block_{i}.{keys[j].rsplit('.', 2)[-2]}": w[keys[j]] for i, j in enumerate(order)}


def dropped_layers(w: Weights, keep: tuple[int, ...] = (0, 1, 3, 5)) -> Weights:
    """Layers pruned away (depth pruning) and the survivors renumbered."""
    out: Weights = {}
    for k, v in w.items():
        if k.startswith("model.layers."):
            idx = int(k.split(".")[2])
            if idx not in keep:
                continue
            k = k.replace(f"model.layers.{idx}.", f"model.layers.{keep.index(idx)}.")
        out[k] = v
    return out


def pruned(w: Weights, seed: int = 4, fraction: float = 0.25) -> Weights:
    """Structured pruning: a fraction of each matrix's rows zeroed."""
    rng = np.random.default_rng(seed)
    out = dict(w)
    for k in _matrices(w):
        v = w[k].copy()
        v[rng.random(v.shape[0]) < fraction] = 0.0
        out[k] = v
    return out


def to_float16(w: Weights) -> Weights:
    """Stored as float16 (bfloat16 is tested on its own)."""
    return {k: v.astype(np.float16) for k, v in w.items()}


def vocab_extended(w: Weights, extra: int = 64, seed: int = 5) -> Weights:
    """Tokens added: embedding and head grow (their shapes no longer pair), plus light training."""
    rng = np.random.default_rng(seed)
    out = continued_training(w, seed, 0.1)
    for k in ("model.embed_tokens.weight", "lm_head.weight"):
        v = out[k]
        out[k] = np.concatenate([v, rng.normal(0, float(v.std()), (extra, v.shape[1])).astype(np.float32)])
    return out


def everything(w: Weights) -> Weights:
    """Dropped layers, merged LoRA, continued training, pruning and renaming at once."""
    return renamed(pruned(continued_training(merged_lora(dropped_layers(w), seed=7), seed=8, strength=0.25),
                          seed=9, fraction=0.1), seed=10)


DERIVATIVES: dict[str, Callable[[Weights], Weights]] = {
    "continued-training": continued_training,
    "heavy-training": lambda w: continued_training(w, 11, 0.6),
    "merged-lora": merged_lora,
    "renamed-tensors": renamed,
    "config-renamed": lambda w: w,  # same weights, relabelled config (see write_model)
    "dropped-layers": dropped_layers,
    "pruned-rows": pruned,
    "float16": to_float16,
    "vocab-extended": vocab_extended,
    "everything": everything,
}


def write_model(dest: Path, w: Weights, *, model_type: str = "llama", arch: str = "LlamaForCausalLM",
                shards: int = 1, base_model: str | None = None) -> Path:
    """Write ``w`` as safetensors (``shards`` files) plus a config.json and optional README front matter."""
    from safetensors.numpy import save_file

    dest.mkdir(parents=True, exist_ok=True)
    keys = list(w)
    per = -(-len(keys) // shards)
    for s in range(shards):
        part = {k: np.ascontiguousarray(w[k]) for k in keys[s * per:(s + 1) * per]}
        name = "model.safetensors" if shards == 1 else f"model-{s + 1:05d}-of-{shards:05d}.safetensors"
        save_file(part, str(dest / name))
    hidden = next(v.shape[1] for k, v in w.items() if v.ndim == 2)
    config = {"architectures": [arch], "model_type": model_type, "hidden_size": hidden,
              "vocab_size": next(v.shape[0] for v in w.values() if v.ndim == 2), "rope_theta": 10000.0}
    (dest / "config.json").write_text(json.dumps(config), encoding="utf-8")
    if base_model:
        (dest / "README.md").write_text(f"---\nbase_model: {base_model}\nlicense: mit\n---\n# model\n",
                                        encoding="utf-8")
    return dest


def build_family(root: Path, *, unrelated: int = 4, **shape: int) -> tuple[Path, dict[str, Path], dict[str, Path]]:
    """Write a base, every derivative and ``unrelated`` same-shape models under ``root``."""
    base = make_base(0, **shape)
    base_dir = write_model(root / "base", base)
    derived: dict[str, Path] = {}
    for name, make in DERIVATIVES.items():
        kwargs = {"model_type": "mistral", "arch": "MistralForCausalLM"} if name == "config-renamed" else {}
        derived[name] = write_model(root / name, make(base), shards=2 if name == "merged-lora" else 1,
                                    base_model="org/base", **kwargs)  # type: ignore[arg-type]
    others = {f"unrelated-{s}": write_model(root / f"unrelated-{s}", make_base(100 + s, **shape))
              for s in range(unrelated)}
    return base_dir, derived, others


# -- tests ----------------------------------------------------------------------------------

from aivet.provenance.fingerprint import compare, fingerprint_model  # noqa: E402

THRESHOLD = 0.5


@pytest.fixture(scope="module")
def family(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Path], dict[str, Path]]:
    return build_family(tmp_path_factory.mktemp("family"), unrelated=3)


def test_every_derivative_matches_and_no_unrelated_model_does(family: tuple[Path, dict[str, Path], dict[str, Path]]
                                                              ) -> None:
    base_dir, derived, others = family
    base = fingerprint_model(base_dir)
    scores = {name: compare(fingerprint_model(d), base) for name, d in derived.items()}
    unrelated = {name: compare(fingerprint_model(d), base) for name, d in others.items()}
    for name, sim in scores.items():
        assert sim.matches(THRESHOLD), (name, sim)
        assert sim.score > 0.75, (name, sim)
    for name, sim in unrelated.items():
        assert not sim.matches(THRESHOLD), (name, sim)
        assert abs(sim.score) < 0.25, (name, sim)
        assert sim.paired == sim.total  # same shapes everywhere: they pair, they just do not correlate
    margin = min(s.score for s in scores.values()) - max(s.score for s in unrelated.values())
    assert margin > 0.5


def test_identical_copy_scores_one(family: tuple[Path, dict[str, Path], dict[str, Path]]) -> None:
    base_dir, derived, _ = family
    base = fingerprint_model(base_dir)
    assert compare(base, base).score == 1.0
    relabelled = fingerprint_model(derived["config-renamed"])
    assert relabelled.digest == base.digest  # config names do not enter the fingerprint


def test_renaming_and_reordering_keep_the_digest(family: tuple[Path, dict[str, Path], dict[str, Path]]) -> None:
    base_dir, derived, _ = family
    base, ren = fingerprint_model(base_dir), fingerprint_model(derived["renamed-tensors"])
    assert sorted(t.bits for t in base.tensors) == sorted(t.bits for t in ren.tensors)
    assert {t.name for t in base.tensors}.isdisjoint({t.name for t in ren.tensors})


def test_bfloat16_copy_matches(tmp_path: Path) -> None:
    import torch
    from safetensors.torch import save_file

    w = make_base(0, layers=2)
    save_file({k: torch.from_numpy(v).to(torch.bfloat16) for k, v in w.items()}, str(tmp_path / "m.safetensors"))
    write_model(tmp_path / "base", w)
    sim = compare(fingerprint_model(tmp_path / "m.safetensors"), fingerprint_model(tmp_path / "base"))
    assert sim.score > 0.95 and sim.paired == sim.total


def test_sampling_reads_a_bounded_number_of_tensors(tmp_path: Path) -> None:
    from aivet.limits import Limits

    d = write_model(tmp_path / "m", make_base(0, layers=3))
    fp = fingerprint_model(d, Limits(max_lineage_tensors=4))
    assert len(fp.tensors) == 4 and fp.truncated


def test_sgd_fine_tunes_match_and_models_trained_on_the_same_data_from_other_seeds_do_not(tmp_path: Path) -> None:
    """Real gradient training, not synthetic noise: the fine-tune keeps its base's weights recognisable,
    while a model trained on the very same data from another initialisation does not resemble it."""
    import torch
    from safetensors.torch import save_file

    def net(seed: int) -> torch.nn.Sequential:
        torch.manual_seed(seed)
        return torch.nn.Sequential(*(m for _ in range(4) for m in (torch.nn.Linear(64, 64), torch.nn.Tanh())))

    def train(model: torch.nn.Sequential, data_seed: int, steps: int, lr: float) -> None:
        g = torch.Generator().manual_seed(data_seed)
        x = torch.randn(512, 64, generator=g)
        y = torch.sin(x @ torch.randn(64, 64, generator=g))
        opt = torch.optim.Adam(model.parameters(), lr=lr)
        for _ in range(steps):
            opt.zero_grad()
            torch.nn.functional.mse_loss(model(x), y).backward()
            opt.step()

    def save(model: torch.nn.Sequential, name: str) -> Path:
        (tmp_path / name).mkdir()
        save_file({k: v.detach().clone().contiguous() for k, v in model.state_dict().items()},
                  str(tmp_path / name / "model.safetensors"))
        return tmp_path / name

    torch.set_num_threads(1)
    base = net(0)
    train(base, 0, 100, 1e-3)
    base_dir = save(base, "base")
    train(base, 1, 100, 1e-3)  # fine-tune on other data
    tuned_dir = save(base, "tuned")
    other = net(1)
    train(other, 0, 200, 1e-3)  # same data and recipe as the base, other initialisation
    other_dir = save(other, "other")
    ref = fingerprint_model(base_dir)
    tuned, unrelated = compare(fingerprint_model(tuned_dir), ref), compare(fingerprint_model(other_dir), ref)
    assert tuned.matches(THRESHOLD) and tuned.score > 0.8, tuned
    assert not unrelated.matches(THRESHOLD) and abs(unrelated.score) < 0.3, unrelated
