"""``aivet gate MODEL``: scan, verify, license, BOM, lineage (and probes) → policy → decision.

Exit codes: 0 allow or allow with obligations, 1 deny, 2 an error of the tool
or of the policy (raised as :class:`~aivet.errors.AivetError` for the root
command's error edge, which prints it and exits 2).
"""

from __future__ import annotations

import enum
import os
import shutil
import sys
from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer

from aivet.errors import EnvironmentFailure, MissingExtraError
from aivet.evidence import Evidence
from aivet.policy.decision import Decision
from aivet.repo import Target


class GateFormat(str, enum.Enum):
    terminal = "terminal"
    json = "json"
    sarif = "sarif"
    html = "html"


def gate(
    model: Annotated[str, typer.Argument(metavar="MODEL", help="The model directory, a Hugging Face cache "
                                         "snapshot, or hf://ORG/NAME\\[@REVISION] (from the local hub cache; "
                                         "downloaded unless HF_HUB_OFFLINE is set).", show_default=False)],
    policy: Annotated[str, typer.Option("--policy", "-p", help="Shipped profile (default, strict, nist) or a "
                                        "policy file (TOML, see docs/policy.md).")] = "default",
    key: Annotated[Path | None, typer.Option("--key", "-k", help="The signer's PEM public key (verify with it).")]
    = None,
    trust: Annotated[list[Path] | None, typer.Option("--trust", help="Trust bundle (PEM roots) for certificate "
                                                     "signatures, repeatable.")] = None,
    fmt: Annotated[GateFormat, typer.Option("--format", "-f", help="Output format.", case_sensitive=False)]
    = GateFormat.terminal,
    output: Annotated[Path | None, typer.Option("--output", "-o", metavar="FILE", dir_okay=False,
                                                help="Write the report to FILE instead of stdout.")] = None,
    commercial: Annotated[bool | None, typer.Option("--commercial/--non-commercial", show_default=False,
                                                    help="Declared use (default: the policy's \\[use] section).")] = None,
    monthly_users: Annotated[int | None, typer.Option("--monthly-users", min=0,
                                                      help="Expected monthly users.")] = None,
    region: Annotated[list[str] | None, typer.Option("--region", help="Deployment region (e.g. EU), repeatable; "
                                                     "replaces the policy's regions.")] = None,
    use_case: Annotated[str | None, typer.Option("--use-case", help="Declared use case.")] = None,
    repo_id: Annotated[str | None, typer.Option("--repo-id", help="Hub repository id the model came from "
                                                "(default: the hf:// reference's or the cache's).")]
    = None,
    record: Annotated[bool | None, typer.Option("--record/--no-record", show_default=False,
                                                help="Append the decision and its evidence to the ledger "
                                                     "(default: the settings file).")] = None,
    ledger: Annotated[str | None, typer.Option("--ledger", metavar="PATH_OR_URL",
                                               help="Ledger to record in and to read probe results from.")] = None,
    limit: Annotated[list[str] | None, typer.Option("--limit", metavar="NAME=VALUE",
                                                    help="Override a safety limit, as for `aivet scan`.")] = None,
    suppressions: Annotated[str | None, typer.Option(
        "--suppressions", metavar="FILE", help="Accept the reviewed scan findings listed in FILE, as for "
                                               "`aivet scan` (the policy sees their count as scan.suppressed).")]
    = None,
) -> None:
    """Decide whether MODEL may be deployed under a policy: allow, allow with obligations, or deny."""
    from aivet import recording
    from aivet.cli.main import parse_limits
    from aivet.gate import decision_evidence
    from aivet.gate import gate as run_gate
    from aivet.policy.model import load_policy
    from aivet.settings import load as load_settings

    limits = parse_limits(limit or [])
    loaded = load_policy(policy)  # a bad policy is reported before the model is read
    accepted = None
    if suppressions is not None:
        from aivet.suppressions import load as load_suppressions

        accepted = load_suppressions(suppressions)  # as is a bad suppression file
    use = loaded.use
    if commercial is not None:
        use = replace(use, commercial=commercial)
    if monthly_users is not None:
        use = replace(use, monthly_users=monthly_users)
    if region:
        use = replace(use, regions=tuple(r.upper() for r in region))
    if use_case is not None:
        use = replace(use, use_case=use_case)
    target = _target(model)
    model_dir = target.path
    record_wanted = recording.wanted(record)
    # Probe results are read from a ledger the user named (option, $AIVET_LEDGER, settings) or records to;
    # the default ledger is not opened just to look, since that would create it.
    read_probes = record_wanted or ledger is not None or load_settings().ledger is not None
    digest = None
    if read_probes:
        from aivet.provenance.directory import model_digest

        digest = model_digest(model_dir, allowed_root=target.allowed_root)
    result = run_gate(model_dir, loaded, use=use, key=key, trust=tuple(trust or ()), limits=limits, probe_ledger=ledger,
                      read_probes=read_probes, model_digest=digest, repo_id=repo_id or target.subject.repo_id,
                      allowed_root=target.allowed_root, subject=target.subject,
                      model_label=model if model.startswith("hf://") else str(model_dir), suppressions=accepted)
    if record_wanted:
        entry = recording.record(decision_evidence(result), kind="gate", model_dir=model_dir, ledger=ledger,
                                 model_digest=digest)
        typer.echo(f"Recorded as entry {entry.index} in {entry.ledger}", err=True)
    text = _render(result.decision, result.evidence, fmt, output)
    if output is None:
        sys.stdout.write(text)
        sys.stdout.flush()
    else:
        try:
            output.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise EnvironmentFailure(f"cannot write the report to {output}: {exc.strerror or exc}") from exc
        typer.echo(f"{result.decision.verdict.value} (tier {result.decision.tier.value}); "
                   f"wrote the {fmt.value} report to {output}", err=True)
    raise typer.Exit(result.decision.exit_code)


def _target(model: str) -> Target:
    """The one model directory MODEL names: a directory, a hub snapshot or ``hf://`` (as every one-model command)."""
    from aivet.repo import resolve_model

    return resolve_model(model)


def _render(decision: Decision, evidence: Evidence, fmt: GateFormat, output: Path | None) -> str:
    from aivet.report import decision as views

    if fmt is GateFormat.json:
        return views.render_json(decision, evidence)
    if fmt is GateFormat.sarif:
        return views.render_sarif(decision, evidence)
    if fmt is GateFormat.html:
        try:
            from aivet.report.decision_html import render_html
        except ImportError as exc:
            raise MissingExtraError("aivet.report.decision_html", "html", "the HTML decision report") from exc
        return render_html(decision, evidence)
    to_tty = output is None and bool(getattr(sys.stdout, "isatty", lambda: False)())
    return views.render_terminal(decision, evidence, color=to_tty and "NO_COLOR" not in os.environ,
                                 width=shutil.get_terminal_size((100, 24)).columns if to_tty else 100)
