"""``aivet lineage``: register base models' weight fingerprints and match a model against them.

A thin adapter over :mod:`aivet.provenance.lineage`. Exit codes: ``match``
exits 0 when a registered model matches and 1 when none does (so a CI step can
require a known base); every command exits 2 for a usage error, an unreadable
model or registry (raised as :class:`~aivet.errors.AivetError` for the root
command's error edge).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from aivet.repo import Target

app = typer.Typer(
    name="lineage",
    help="Model lineage: family, declared base model, and weight fingerprints matched against a local registry.",
    no_args_is_help=True,
)

_Model = Annotated[str, typer.Argument(metavar="MODEL", help="The model directory (safetensors weights), a Hugging "
                                       "Face cache snapshot, or hf://ORG/NAME\\[@REVISION] (from the local hub cache; "
                                       "downloaded unless HF_HUB_OFFLINE is set).", show_default=False)]
_RegistryOpt = Annotated[
    Path | None,
    typer.Option("--registry", "-r", help="Registry file (default: $AIVET_LINEAGE_REGISTRY or the user data dir)."),
]
_JsonOpt = Annotated[bool, typer.Option("--json", help="Print the lineage record as JSON.")]


def _target(model: str) -> tuple[Target, str]:
    """The model directory MODEL names (see :func:`aivet.repo.resolve_model`) and its name in the record."""
    from aivet.repo import resolve_model

    target = resolve_model(model)
    return target, (model if model.startswith("hf://") else str(target.path))


def _echo_json(obj: Any) -> None:
    typer.echo(json.dumps(obj, indent=2, ensure_ascii=False))


@app.command("register")
def register(
    model: _Model,
    name: Annotated[str, typer.Option("--name", "-n", help="Name to register it under (e.g. the hub id).")],
    registry: _RegistryOpt = None,
    replace: Annotated[bool, typer.Option("--replace", help="Overwrite an entry of the same name.")] = False,
    as_json: _JsonOpt = False,
) -> None:
    """Fingerprint MODEL and store it in the registry under NAME."""
    from aivet.provenance.lineage import LineageError, describe
    from aivet.provenance.registry import Registry

    target, _ = _target(model)
    info = describe(target.path, fingerprint=True, allowed_root=target.allowed_root)
    if info.fingerprint is None:
        raise LineageError(next((n for n in info.notes if n.startswith("no weight")), "no weight fingerprint"))
    with Registry.open(registry) as reg:
        entry = reg.register(name, info.fingerprint, family=info.family,
                             model_type=info.config.model_type if info.config else None,
                             tokenizer_hash=info.tokenizer.vocab_hash if info.tokenizer else None, replace=replace)
        where = reg.path
    if as_json:
        _echo_json({**entry.to_dict(), "registry": str(where)})
        return
    typer.echo(f"registered {entry.name!r}: {len(entry.fingerprint.tensors)} tensors, "
               f"family {entry.family or 'unknown'}, {entry.digest} -> {where}")


@app.command("match")
def match(
    model: _Model,
    registry: _RegistryOpt = None,
    threshold: Annotated[float, typer.Option("--threshold", help="Score a match must reach (-1..1).")] = 0.5,
    top: Annotated[int, typer.Option("--top", help="Candidates to show (0: all).")] = 5,
    as_json: _JsonOpt = False,
) -> None:
    """Rank registered models by how strongly MODEL's weights derive from them; exit 1 if none matches."""
    from aivet.provenance.lineage import describe
    from aivet.provenance.registry import Registry

    target, label = _target(model)
    with Registry.open(registry, create=False) as reg:
        info = describe(target.path, registry=reg, threshold=threshold, top=top, allowed_root=target.allowed_root)
    record = info.to_record(label)
    if as_json:
        _echo_json(record.to_dict())
    else:
        _print_summary(record.to_dict()["data"])
    if info.best_match is None:
        raise typer.Exit(1)


@app.command("show")
def show(
    model: _Model,
    no_fingerprint: Annotated[bool, typer.Option("--no-fingerprint", help="Skip sampling the weights.")] = False,
    as_json: _JsonOpt = False,
) -> None:
    """Print what the config, tokenizer and README say about MODEL's lineage (no registry needed)."""
    from aivet.provenance.lineage import describe

    target, label = _target(model)
    record = describe(target.path, fingerprint=not no_fingerprint, allowed_root=target.allowed_root).to_record(label)
    if as_json:
        _echo_json(record.to_dict())
    else:
        _print_summary(record.to_dict()["data"])


@app.command("list")
def list_cmd(registry: _RegistryOpt = None, as_json: _JsonOpt = False) -> None:
    """List the registered models."""
    from aivet.provenance.registry import Registry

    with Registry.open(registry, create=False) as reg:
        entries = [e.to_dict() for e in reg.entries()]
    if as_json:
        _echo_json(entries)
        return
    for e in entries:
        typer.echo(f"{e['name']}\t{e['family'] or '-'}\t{e['tensors']} tensors\t{e['digest']}")


@app.command("remove")
def remove(name: Annotated[str, typer.Argument(help="Registered name.")], registry: _RegistryOpt = None) -> None:
    """Remove NAME from the registry (exit 1 if it was not registered)."""
    from aivet.provenance.registry import Registry

    with Registry.open(registry, create=False) as reg:
        if not reg.remove(name):
            typer.echo(f"{name!r} is not registered", err=True)
            raise typer.Exit(1)
    typer.echo(f"removed {name!r}")


def _print_summary(data: dict[str, Any]) -> None:
    family = data["family"] or "unknown"
    if data["family_consistent"] is False:
        family += " (vocabulary size suggests otherwise)"
    typer.echo(f"family:        {family}")
    typer.echo(f"model_type:    {data['model_type'] or '-'}  architectures: {', '.join(data['architectures']) or '-'}")
    typer.echo(f"declared base: {', '.join(data['declared_base_models']) or '-'}")
    typer.echo(f"tokenizer:     {data['tokenizer_hash'] or '-'}")
    typer.echo(f"fingerprint:   {data['fingerprint_digest'] or '-'} ({data['fingerprint_tensors']} tensors)")
    for m in data["matches"]:
        mark = "MATCH" if m["matched"] else "     "
        typer.echo(f"  {mark} {m['score']:+.3f}  {m['name']}  ({m['paired']}/{m['total']} tensors paired)")
    if data["matches"] and data["declared_base_consistent"] is False:
        typer.echo("warning: the weights match a model other than the declared base")
    for note in data["notes"]:
        typer.echo(f"note: {note}")
