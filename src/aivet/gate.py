"""``aivet gate``: gather every kind of evidence about one model directory, then decide by policy.

The order is fixed and each step reads the files only (nothing is loaded or
executed): scan, signature (verified when a key or trust bundle is given,
otherwise only noted as present or missing), license and its conflicts with
the declared use, origin, AI BOM, lineage, and — when a ledger is named —
the behavioural probe results recorded for this model's digest. All of it is
merged into one :class:`~aivet.evidence.Evidence` under the scan's subject;
the policy reads only that document and the declared use.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aivet.errors import ArtifactError, UsageError
from aivet.evidence import Evidence, Record, Subject
from aivet.limits import DEFAULT_LIMITS, Limits
from aivet.policy.decision import Decision
from aivet.policy.engine import evaluate
from aivet.policy.model import DeclaredUse, Policy, load_policy
from aivet.repo import Target

if TYPE_CHECKING:
    from aivet.suppressions import SuppressionFile

__all__ = ["GateResult", "collect_evidence", "gate", "probe_records", "decision_evidence", "subject_for"]

MAX_PROBE_ENTRIES = 1000  # ledger entries read per model; probes beyond this are not considered


@dataclass(frozen=True)
class GateResult:
    """The decision, the evidence it read, and the policy that made it."""

    decision: Decision
    evidence: Evidence
    policy: Policy


def _resubject(evidence: Evidence, subject: str) -> Evidence:
    """The same evidence with every finding and record under ``subject`` (the scan's subject id)."""
    return replace(
        evidence,
        subjects=(),
        findings=tuple(replace(f, subject=subject) for f in evidence.findings),
        records=tuple(Record(r.kind, subject, r.data) for r in evidence.records),
    )


def _signature(root: Path, subject: str, key: Path | None, trust: Sequence[Path], allowed: Path) -> Evidence:
    from aivet.provenance.hashing import plain_file_within
    from aivet.provenance.manifest import DEFAULT_SIGNATURE_NAME

    if key is None and not trust:
        # Without a key nothing can be verified; whether a signature exists is still worth knowing.
        present = plain_file_within(root / DEFAULT_SIGNATURE_NAME, allowed)
        status = "unverified" if present else "missing"
        data = {"action": "gate", "status": status, "signature": str(root / DEFAULT_SIGNATURE_NAME)}
        return Evidence(records=(Record("signature", subject, data),))
    from aivet.provenance import verify as v

    verifier: v.Verifier = v.KeyVerifier(key) if key is not None else v.CertificateVerifier(tuple(trust))
    result = v.verify_model(root, verifier, allowed_root=allowed)
    return _resubject(Evidence(findings=result.findings, records=(result.record,)), subject)


def _license(root: Path, subject: str, use: DeclaredUse, limits: Limits, allowed: Path) -> tuple[Evidence, Any]:
    from aivet.policy import licenses

    report = licenses.identify_license(root, limits=limits, allowed_root=allowed)
    intended = licenses.IntendedUse(
        commercial=use.commercial, internal_only=use.internal_only, redistribution=use.redistribution,
        fine_tune_release=use.fine_tune_release, monthly_users=use.monthly_users, regions=tuple(use.regions),
        use_case=use.use_case,
    )
    found = licenses.conflicts(report.license, intended)
    conflicts = [{"use": c.use, "message": c.message, "severity": c.severity} for c in found]
    records = (report.to_record(subject),
               Record("license-conflicts", subject, {"use": use.to_dict(), "conflicts": conflicts}))
    return _resubject(Evidence(records=records), subject), report.license


def _origin(root: Path, subject: str, repo_id: str | None, license: Any, limits: Limits, allowed: Path) -> Evidence:
    from aivet.policy import origin

    facts = origin.origin_facts(root, repo_id=repo_id, license=license, limits=limits, allowed_root=allowed)
    return _resubject(Evidence(records=(facts.to_record(subject),)), subject)


def _bom(root: Path, subject: str, limits: Limits, allowed: Path) -> Evidence:
    from aivet.provenance.bom import build_bom

    try:
        # The gate needs the BOM's facts, not a schema-checked document: `aivet bom` validates.
        result = build_bom(root, limits=limits, validate=False, allowed_root=allowed)
    except ArtifactError as exc:
        return Evidence(records=(Record("note", subject, {"step": "bom", "message": exc.diagnostics()}),))
    return _resubject(result.evidence, subject)


def _lineage(root: Path, subject: str, limits: Limits, allowed: Path) -> Evidence:
    from aivet.provenance.lineage import describe

    try:
        lineage = describe(root, limits=limits, allowed_root=allowed)
    except ArtifactError as exc:
        return Evidence(records=(Record("note", subject, {"step": "lineage", "message": exc.diagnostics()}),))
    return Evidence(records=(lineage.to_record(subject),))


def probe_records(ledger: str | None, model_digest: str, subject: str) -> tuple[Record, ...]:
    """Probe results recorded in ``ledger`` for the model with ``model_digest`` (kind ``"probe"`` entries).

    An entry's body is an Evidence document (its ``probe`` records are taken)
    or a plain JSON object (taken as one probe record).
    """
    from aivet.ledger import Ledger

    out: list[Record] = []
    with Ledger.open(ledger) as log:
        entries = log.for_model(model_digest, limit=MAX_PROBE_ENTRIES)
    for entry in entries:
        if entry.kind != "probe" or not isinstance(entry.body, dict):
            continue
        body: dict[str, Any] = entry.body
        records = body.get("records")
        if isinstance(records, list):
            for rec in records:
                if isinstance(rec, dict) and rec.get("kind") == "probe" and isinstance(rec.get("data"), dict):
                    out.append(Record("probe", subject, {**rec["data"], "ledger_index": entry.index}))
        else:
            out.append(Record("probe", subject, {**body, "ledger_index": entry.index}))
    return tuple(out)


def collect_evidence(
    model_dir: Path,
    *,
    use: DeclaredUse,
    key: Path | None = None,
    trust: Sequence[Path] = (),
    limits: Limits = DEFAULT_LIMITS,
    probe_ledger: str | None = None,
    read_probes: bool = False,
    model_digest: str | None = None,
    repo_id: str | None = None,
    allowed_root: Path | None = None,
    subject: Subject | None = None,
    suppressions: SuppressionFile | None = None,
) -> Evidence:
    """Scan, verify, license, origin, BOM, lineage (and probes when ``read_probes``) merged into one Evidence.

    Every reader follows links only inside ``allowed_root``: by default the
    hub cache repository (``models--org--name``) when ``model_dir`` is a
    snapshot in it, else ``model_dir`` itself. ``subject`` names the model in
    the evidence (default: as ``aivet scan`` names the directory); its
    ``repo_id`` is the origin's repository id unless ``repo_id`` is given.
    ``suppressions`` accepts reviewed scan findings, as for :func:`aivet.scan`.
    Raises :class:`~aivet.errors.UsageError` when ``model_dir`` is not a
    directory or both ``key`` and ``trust`` are given; a bad key or trust
    bundle raises too (the caller's problem, not a fact about the model).
    """
    from aivet.analyzers import ScanOptions, scan_targets
    from aivet.provenance.directory import allowed_root_for

    root = Path(model_dir)
    if not root.is_dir():
        raise UsageError(f"{model_dir}: not a model directory")
    if key is not None and trust:
        raise UsageError("give either a public key or a trust bundle, not both")
    allowed = allowed_root_for(root, allowed_root)
    target = Target(subject or subject_for(root, allowed), root, allowed)
    repo_id = repo_id or target.subject.repo_id
    evidence = scan_targets([target], ScanOptions(limits=limits), suppressions=suppressions)
    subject_id = evidence.subjects[0].id if evidence.subjects else str(root)
    evidence = evidence.merge(_signature(root, subject_id, key, trust, allowed))
    license_evidence, info = _license(root, subject_id, use, limits, allowed)
    evidence = evidence.merge(license_evidence)
    evidence = evidence.merge(_origin(root, subject_id, repo_id, info, limits, allowed))
    evidence = evidence.merge(_bom(root, subject_id, limits, allowed))
    evidence = evidence.merge(_lineage(root, subject_id, limits, allowed))
    if read_probes:
        if model_digest is None:
            from aivet.provenance.directory import model_digest as digest_of

            model_digest = digest_of(root, allowed_root=allowed)
        evidence = evidence.merge(Evidence(records=probe_records(probe_ledger, model_digest, subject_id)))
    return evidence


def subject_for(root: Path, allowed: Path) -> Subject:
    """The subject of the model in ``root``: as ``aivet scan`` names a directory, a hub snapshot by repo id and revision."""
    from aivet.repo import display, hub_snapshot

    if allowed.resolve() != root.resolve():
        snapshot = hub_snapshot(root)
        if snapshot is not None:
            return snapshot.subject
    shown = display(str(root))
    return Subject(id=shown, kind="directory", location=shown)


def gate(
    model_dir: Path,
    policy: Policy | str | Path = "default",
    *,
    use: DeclaredUse | None = None,
    key: Path | None = None,
    trust: Sequence[Path] = (),
    limits: Limits = DEFAULT_LIMITS,
    probe_ledger: str | None = None,
    read_probes: bool = False,
    model_digest: str | None = None,
    repo_id: str | None = None,
    allowed_root: Path | None = None,
    subject: Subject | None = None,
    model_label: str | None = None,
    suppressions: SuppressionFile | None = None,
) -> GateResult:
    """Collect the evidence about ``model_dir`` and decide under ``policy`` (a Policy, profile name or file).

    ``use`` replaces the policy's declared ``[use]`` (the CLI builds it from
    the policy's use and its flags). ``allowed_root`` and ``subject`` are as
    for :func:`collect_evidence` (pass a resolved :class:`aivet.repo.Target`'s
    fields for an ``hf://`` reference); ``model_label`` is the model as the
    decision names it (default ``str(model_dir)``). Raises
    :class:`~aivet.policy.model.PolicyError` for a bad policy before any file
    of the model is read.
    """
    loaded = policy if isinstance(policy, Policy) else load_policy(policy)
    declared = use or loaded.use
    evidence = collect_evidence(model_dir, use=declared, key=key, trust=trust, limits=limits,
                                probe_ledger=probe_ledger, read_probes=read_probes, model_digest=model_digest,
                                repo_id=repo_id, allowed_root=allowed_root, subject=subject,
                                suppressions=suppressions)
    decision = evaluate(loaded, evidence, use=declared, model=model_label or str(model_dir),
                        model_digest=model_digest)
    return GateResult(decision, evidence, loaded)


def decision_evidence(result: GateResult) -> Evidence:
    """The evidence plus the decision as a ``Record(kind="decision")``: what ``--record`` appends to the ledger."""
    subject = result.evidence.subjects[0].id if result.evidence.subjects else result.decision.model
    return result.evidence.merge(Evidence(records=(Record("decision", subject, result.decision.to_dict()),)))
