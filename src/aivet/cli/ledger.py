"""``aivet ledger``: inspect, prove and verify the tamper-evident log. A thin adapter over :mod:`aivet.ledger`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from aivet.errors import AivetError

app = typer.Typer(
    name="ledger",
    help="The tamper-evident, append-only log of scans, signatures, BOMs and decisions.",
    no_args_is_help=True,
)

LedgerOpt = Annotated[
    str | None,
    typer.Option("--ledger", "-l", help="SQLite path or postgresql:// URL (default: $AIVET_LEDGER, the settings file, or the user data dir)."),
]
KeyOpt = Annotated[Path | None, typer.Option("--key", help="Private log key file (default: beside the ledger, or $AIVET_LEDGER_KEY).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def _fail(exc: AivetError) -> NoReturn:
    typer.echo(f"error: {exc.diagnostics()}", err=True)
    raise typer.Exit(2)


def _open(ledger: str | None, key: Path | None = None) -> Any:
    from aivet.ledger import Ledger

    return Ledger.open(ledger, key_path=key)


def _print_json(obj: Any) -> None:
    typer.echo(json.dumps(obj, indent=2, ensure_ascii=False))


def _read_public_key(text: str) -> Any:
    from aivet.ledger import parse_verifier_key

    path = Path(text)
    if path.is_file():  # a file holding the key, as `aivet ledger key > log.pub` writes it
        text = path.read_text(encoding="utf-8", errors="replace").strip()
    return parse_verifier_key(text)


@app.command("log")
def log_cmd(
    ledger: LedgerOpt = None,
    start: Annotated[int, typer.Option("--start", help="First index to list.")] = 0,
    limit: Annotated[int, typer.Option("--limit", "-n", help="How many entries.")] = 50,
    as_json: JsonOpt = False,
) -> None:
    """List entries: index, time, kind, model and body hash."""
    try:
        with _open(ledger) as log:
            entries = log.entries(start, limit)
            size = log.size()
    except AivetError as exc:
        _fail(exc)
    if as_json:
        _print_json([{k: v for k, v in e.to_dict().items() if k != "body"} for e in entries])
        return
    for e in entries:
        typer.echo(f"{e.index:>8}  {e.time}  {e.kind:<7} {e.model or '-':<20.20}  body {e.body_sha256[:16]}")
    typer.echo(f"{len(entries)} of {size} entries shown")


@app.command("show")
def show_cmd(index: Annotated[int, typer.Argument(help="Entry index.")], ledger: LedgerOpt = None) -> None:
    """Print one entry with its body as JSON."""
    try:
        with _open(ledger) as log:
            _print_json(log.get(index).to_dict())
    except AivetError as exc:
        _fail(exc)


@app.command("prove")
def prove_cmd(
    index: Annotated[int, typer.Argument(help="Entry index.")],
    ledger: LedgerOpt = None,
    tree_size: Annotated[int | None, typer.Option("--tree-size", help="Prove against the signed head of this size.")] = None,
) -> None:
    """Print an inclusion proof (Sigstore transparency-log-entry shape with a signed checkpoint)."""
    try:
        with _open(ledger) as log:
            _print_json(log.inclusion_proof(index, tree_size))
    except AivetError as exc:
        _fail(exc)


@app.command("consistency")
def consistency_cmd(
    old_size: Annotated[int, typer.Argument(help="Earlier tree size.")],
    new_size: Annotated[int, typer.Argument(help="Later tree size.")],
    ledger: LedgerOpt = None,
) -> None:
    """Print a consistency proof that the log of NEW_SIZE extends the log of OLD_SIZE."""
    try:
        with _open(ledger) as log:
            _print_json(log.consistency_proof(old_size, new_size))
    except AivetError as exc:
        _fail(exc)


@app.command("verify")
def verify_cmd(
    ledger: LedgerOpt = None,
    key: KeyOpt = None,
    public_key: Annotated[str | None, typer.Option("--public-key", help="Trust this log key (NAME+HASH+BASE64 or a file).")] = None,
    against: Annotated[Path | None, typer.Option("--against", help="A checkpoint saved earlier: the log must extend it.")] = None,
    export_file: Annotated[Path | None, typer.Option("--export", help="Verify an exported file instead (needs --public-key).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Recompute the whole log; exit 1 if anything was edited, deleted, inserted, reordered or forged."""
    from aivet.ledger import verify_export

    try:
        trusted = _read_public_key(public_key) if public_key else None
        if export_file is not None:
            if trusted is None:
                raise _usage("--export needs --public-key: an export cannot vouch for itself")
            report = verify_export(export_file, trusted)
        else:
            saved = against.read_text(encoding="utf-8") if against else None
            with _open(ledger, key) as log:
                report = log.verify(trusted, trusted_checkpoint=saved)
    except AivetError as exc:
        _fail(exc)
    except OSError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    if as_json:
        _print_json(report.to_dict())
    else:
        for note in report.notes:
            typer.echo(f"note: {note}")
        for problem in report.problems:
            typer.echo(f"TAMPERED: {problem}")
        state = "intact" if report.ok else "NOT intact"
        typer.echo(f"ledger {state}: {report.size} entries, {report.heads_checked} signed tree heads checked")
    raise typer.Exit(0 if report.ok else 1)


def _usage(text: str) -> AivetError:
    from aivet.ledger import LedgerUsageError

    return LedgerUsageError(text)


@app.command("export")
def export_cmd(file: Annotated[Path, typer.Argument(help="Output file (JSON lines).")], ledger: LedgerOpt = None) -> None:
    """Write the whole log, with every signed head, for offline audit."""
    try:
        with _open(ledger) as log:
            n = log.export(file)
            key = log.public_key().verifier_key()
    except AivetError as exc:
        _fail(exc)
    except OSError as exc:
        typer.echo(f"error: cannot write {file}: {exc.strerror or exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"exported {n} entries to {file}; verify with: aivet ledger verify --export {file} --public-key {key}")


@app.command("import")
def import_cmd(
    file: Annotated[Path, typer.Argument(help="An export file.")],
    public_key: Annotated[str, typer.Option("--public-key", help="The log's key (NAME+HASH+BASE64 or a file).")],
    ledger: LedgerOpt = None,
) -> None:
    """Verify an export and load it into a new, read-only ledger for audit."""
    from aivet.ledger import Ledger
    from aivet.ledger.location import resolve_location

    try:
        with Ledger.import_export(file, resolve_location(ledger), _read_public_key(public_key)) as log:
            typer.echo(f"imported {log.size()} entries into {log.location}")
    except AivetError as exc:
        _fail(exc)


@app.command("model")
def model_cmd(
    digest_or_dir: Annotated[str, typer.Argument(help="A model digest (sha256:…) or a model directory.")],
    ledger: LedgerOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List everything recorded about one model."""
    try:
        digest = digest_or_dir
        if Path(digest_or_dir).is_dir():
            from aivet.ledger.model import model_digest_of_directory

            digest = model_digest_of_directory(digest_or_dir)
        with _open(ledger) as log:
            entries = log.for_model(digest)
    except AivetError as exc:
        _fail(exc)
    if as_json:
        _print_json({"model": digest, "entries": [{k: v for k, v in e.to_dict().items() if k != "body"} for e in entries]})
        return
    typer.echo(f"model {digest}: {len(entries)} entries")
    for e in entries:
        typer.echo(f"{e.index:>8}  {e.time}  {e.kind:<7} body {e.body_sha256[:16]}")


@app.command("key")
def key_cmd(ledger: LedgerOpt = None, key: KeyOpt = None) -> None:
    """Print the log's public key (give it to auditors; `verify --public-key` takes it)."""
    try:
        with _open(ledger, key) as log:
            typer.echo(log.public_key().verifier_key())
    except AivetError as exc:
        _fail(exc)


@app.command("checkpoint")
def checkpoint_cmd(ledger: LedgerOpt = None) -> None:
    """Print the latest signed tree head; keep it elsewhere and later run `verify --against FILE`."""
    try:
        with _open(ledger) as log:
            note = log.checkpoint()
    except AivetError as exc:
        _fail(exc)
    if note is None:
        typer.echo("error: the ledger is empty", err=True)
        raise typer.Exit(2)
    typer.echo(note, nl=False)


@app.command("append")
def append_cmd(
    kind: Annotated[str, typer.Argument(help="Entry kind: scan, sign, verify, bom, gate, probe, audit.")],
    file: Annotated[Path, typer.Argument(help="A JSON document (e.g. `aivet scan --format json` output); - for stdin.")],
    model: Annotated[str | None, typer.Option("--model", help="Model digest (sha256:…) to link the entry to.")] = None,
    ledger: LedgerOpt = None,
    key: KeyOpt = None,
) -> None:
    """Append a JSON document as an entry and print its receipt."""
    import sys

    try:
        raw = sys.stdin.buffer.read() if str(file) == "-" else file.read_bytes()
        body = json.loads(raw)
    except (OSError, ValueError) as exc:
        typer.echo(f"error: cannot read a JSON document from {file}: {exc}", err=True)
        raise typer.Exit(2) from None
    try:
        with _open(ledger, key) as log:
            _print_json(log.append(kind, body, model=model).to_dict())
    except AivetError as exc:
        _fail(exc)
