"""``aivet bom``: a thin adapter over :func:`aivet.provenance.bom.build_bom`.

Writes the BOM to stdout (or ``--output``); metadata that could not be read
is listed on stderr as ``warning: RULE-ID path: message`` (with
``--strict`` it is an error instead). Exit codes: 0 written, 2 usage or
runtime error (raised as :class:`~aivet.errors.AivetError` for the root
command's error edge, which prints a clear message).
"""

from __future__ import annotations

import enum
import sys
from pathlib import Path
from typing import Annotated

import typer

from aivet.errors import ArtifactError, EnvironmentFailure


class BomFormatOption(enum.StrEnum):
    cyclonedx = "cyclonedx"
    spdx = "spdx"


def bom(
    model: Annotated[str, typer.Argument(metavar="MODEL", help="The model directory, a Hugging Face cache snapshot, "
                                         "or hf://ORG/NAME\\[@REVISION] (from the local hub cache; downloaded "
                                         "unless HF_HUB_OFFLINE is set).", show_default=False)],
    output: Annotated[Path | None, typer.Option("--output", "-o", metavar="FILE", dir_okay=False,
                                               help="Write the BOM to FILE instead of stdout.")] = None,
    fmt: Annotated[BomFormatOption, typer.Option("--format", "-f", case_sensitive=False,
                                                 help="cyclonedx (CycloneDX 1.6 JSON) or spdx (SPDX 3.0.1 "
                                                      "JSON-LD; needs the spdx extra).")] = BomFormatOption.cyclonedx,
    signature: Annotated[Path | None, typer.Option("--signature", "-s",
                                                   help="Signature file (default: MODEL/model.sig).")] = None,
    name: Annotated[str | None, typer.Option("--name", help="The model's name in the BOM (default: the hub "
                                                            "repository id, else the directory name).")] = None,
    evidence: Annotated[Path | None, typer.Option("--evidence", metavar="FILE", dir_okay=False,
                                                  help="Also write the evidence (findings and the bom record) "
                                                       "as JSON to FILE.")] = None,
    strict: Annotated[bool, typer.Option("--strict", help="Fail (exit 2) when README front matter, config.json, "
                                                          "a weight header or the signature cannot be read.")]
    = False,
    limit: Annotated[list[str] | None, typer.Option("--limit", metavar="NAME=VALUE",
                                                    help="Override a safety limit, e.g. max_files=2000000 "
                                                         "(repeatable; see docs/cli.md).")] = None,
    workers: Annotated[int | None, typer.Option("--workers", help="Hashing threads (default: every CPU).")] = None,
    no_progress: Annotated[bool, typer.Option("--no-progress", help="Never draw a progress bar.")] = False,
    record: Annotated[bool | None, typer.Option("--record/--no-record", show_default=False,
                                                help="Append the BOM's evidence to the ledger (default: the "
                                                     "settings file).")] = None,
    ledger: Annotated[str | None, typer.Option("--ledger", metavar="PATH_OR_URL",
                                               help="Ledger to record in (SQLite path or postgresql:// URL).")]
    = None,
) -> None:
    """Write an AI bill of materials for MODEL: every file's SHA-256, the model card, license, lineage."""
    from aivet.cli.main import parse_limits
    from aivet.cli.progress import ByteProgress
    from aivet.provenance.bom import BomFormat, build_bom
    from aivet.repo import resolve_model

    limits = parse_limits(limit or [])
    target = resolve_model(model)
    model_dir = target.path
    if name is None and target.hub_root is not None:
        name = target.subject.repo_id  # a snapshot's folder is named by its commit: not a model name
    bar = ByteProgress(not no_progress, "hashing")
    try:
        result = build_bom(model_dir, BomFormat(fmt.value), signature=signature, name=name, limits=limits,
                           workers=workers, progress=bar.advance, on_total=bar.total,
                           allowed_root=target.allowed_root)
    finally:
        bar.close()
    for f in result.findings:
        typer.echo(f"warning: {f.rule_id} {f.location}: {f.message}", err=True)
    if strict and result.findings:
        raise ArtifactError(f"{len(result.findings)} metadata source(s) could not be read (see the warnings); "
                            "drop --strict to write the BOM without them")
    _write(output, result.text)
    if evidence is not None:
        _write(evidence, result.evidence.to_json() + "\n")
    from aivet import recording

    if recording.wanted(record):
        # The inventory hashed every file already; its content root is the model digest.
        entry = recording.record(result.evidence, kind="bom", model_dir=model_dir, ledger=ledger,
                                 model_digest="sha256:" + result.inventory.content_digest())
        typer.echo(f"Recorded as entry {entry.index} in {entry.ledger}", err=True)
    if output is not None:
        typer.echo(f"wrote the {fmt.value} BOM of {len(result.inventory.files)} files to {output} "
                   f"({result.serial_number})", err=True)


def _write(path: Path | None, text: str) -> None:
    if path is None:
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise EnvironmentFailure(f"cannot write {str(path)!r}: {exc.strerror or exc}") from exc
