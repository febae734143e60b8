"""Recording evidence in the ledger: the one place commands go through for ``--record``.

Entries are linked to their model by the manifest digest of its directory
(:func:`aivet.ledger.model.model_digest_of_directory`), so everything known
about one model can be listed with ``aivet ledger model DIR``. Computing that
digest hashes every file once, which is why recording is opt-in.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from aivet.evidence import Evidence
from aivet.settings import load


@dataclass(frozen=True)
class Recorded:
    index: int
    ledger: str
    model_digest: str | None


def wanted(option: bool | None) -> bool:
    """Whether to record: an explicit ``--record/--no-record`` wins over the settings."""
    return load().record if option is None else option


def record(evidence: Evidence, *, kind: str, model_dir: Path | None, ledger: str | None = None,
           model_digest: str | None = None) -> Recorded:
    """Append ``evidence`` to the ledger, linked to ``model_dir``'s manifest digest when it is a directory."""
    from aivet.ledger import record as append
    from aivet.ledger.location import resolve_location
    from aivet.ledger.model import model_digest_of_directory

    if model_digest is None and model_dir is not None and model_dir.is_dir():
        model_digest = model_digest_of_directory(model_dir)
    receipt = append(evidence, kind=kind, ledger=ledger, model_digest=model_digest)
    return Recorded(receipt.index, resolve_location(ledger), model_digest)


def record_scan(evidence: Evidence, *, ledger: str | None = None) -> list[Recorded]:
    """One ledger entry per scanned subject (model), each with that subject's findings (and suppressed ones) only."""
    out = []
    for subject in evidence.subjects:
        part = replace(
            evidence,
            subjects=(subject,),
            artifacts=tuple(a for a in evidence.artifacts if a.subject == subject.id),
            findings=tuple(f for f in evidence.findings if f.subject == subject.id),
            # Records without a subject (which suppression file was applied) belong to every part.
            records=tuple(r for r in evidence.records if r.subject in (subject.id, "")),
            suppressed=tuple(s for s in evidence.suppressed if s.finding.subject == subject.id),
        )
        # An hf:// subject's location is the reference, not a directory: it is recorded unlinked.
        model_dir = Path(subject.location) if subject.kind in ("directory", "hf-cache") else None
        out.append(record(part, kind="scan", model_dir=model_dir, ledger=ledger))
    return out
