"""PyTorch checkpoints: real torch.save / torch.jit.save files, clean and tampered."""

from __future__ import annotations

import io
import pickle
import warnings
import zipfile
from pathlib import Path

import pytest
import torch

import aivet
from aivet import rules
from aivet.analyzers import torch as torch_scan
from aivet.analyzers.context import Context
from aivet.analyzers.source import Source
from aivet.evidence import ArtifactStatus, Evidence, Finding, Severity
from tests.fixtures import Sample, torch_files


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Sample], Path]:
    marker_dir = tmp_path_factory.mktemp("torch-markers")
    samples = torch_files.build(tmp_path_factory.mktemp("torch"), marker_dir)
    return {s.name: s for s in samples}, marker_dir


@pytest.fixture(scope="module")
def scanned(built: tuple[dict[str, Sample], Path]) -> dict[str, Evidence]:
    samples, _ = built
    return {name: aivet.scan(s.path) for name, s in samples.items()}


def top(ev: Evidence, path: str) -> Finding | None:
    """The most severe finding at ``path``."""
    return max((f for f in ev.findings if f.location.path == path), key=lambda f: f.severity.rank, default=None)


def artifact_formats(ev: Evidence) -> dict[str, str]:
    return {a.path: a.format for a in ev.artifacts}


def record_prefix(sample: Sample) -> str:
    with zipfile.ZipFile(sample.path) as zf:
        return zf.namelist()[0].split("/")[0]


def test_rules_are_catalogued() -> None:
    for rule in torch_scan.RULES:
        assert rules.catalogue()[rule.id] is rule and rule.id.startswith("TORCH-")


def test_state_dict_checkpoint(built: tuple[dict[str, Sample], Path], scanned: dict[str, Evidence]) -> None:
    samples, _ = built
    ev = scanned["torch-zip-state-dict"]
    name = samples["torch-zip-state-dict"].path.name
    root = next(a for a in ev.artifacts if a.path == name)
    assert root.format == "pytorch-zip" and root.status is ArtifactStatus.ANALYZED
    assert "1 tensor storages" in root.note
    prefix = record_prefix(samples["torch-zip-state-dict"])
    assert artifact_formats(ev)[f"{name}!{prefix}/data.pkl"] == "pickle"
    assert not any(f"{prefix}/data/" in a.path for a in ev.artifacts)  # storages are not read
    assert ev.at_or_above(Severity.MEDIUM) == ()


def test_whole_module_is_flagged_but_not_critical(scanned: dict[str, Evidence]) -> None:
    ev = scanned["torch-zip-whole-module"]
    assert ev.max_severity in (Severity.MEDIUM, Severity.HIGH)
    assert not any(f.rule_id.startswith(("ARCHIVE-", "TORCH-")) for f in ev.findings)


def test_torchscript_archive(built: tuple[dict[str, Sample], Path], scanned: dict[str, Evidence]) -> None:
    samples, _ = built
    ev = scanned["torchscript-clean"]
    name = samples["torchscript-clean"].path.name
    formats = artifact_formats(ev)
    assert formats[name] == "torchscript"
    prefix = record_prefix(samples["torchscript-clean"])
    assert formats[f"{name}!{prefix}/constants.pkl"] == "pickle"
    assert any(p.endswith(".py") and v == "torchscript-code" for p, v in formats.items())
    assert not any(f.rule_id.startswith("TORCH-") for f in ev.findings)
    assert ev.at_or_above(Severity.MEDIUM) == ()


@pytest.mark.parametrize("sample, member", [
    ("torch-zip-payload-data-pkl", "data.pkl"),
    ("torchscript-payload-constants-pkl", "constants.pkl"),
    ("torch-zip-payload-extra-member", "extra_state.bin"),
    ("torch-zip-duplicate-data-pkl", "data.pkl"),
    ("torch-zip-header-mismatch", "data.pkl"),
])
def test_payload_found_in_member(built: tuple[dict[str, Sample], Path], scanned: dict[str, Evidence],
                                 sample: str, member: str) -> None:
    samples, _ = built
    s = samples[sample]
    worst = top(scanned[sample], f"{s.path.name}!{record_prefix(s)}/{member}")
    assert worst is not None and worst.severity >= Severity.HIGH and worst.rule_id != "SCAN-PARSE-ERROR", worst
    for rule_id in s.expect_rules:
        assert rule_id in {f.rule_id for f in scanned[sample].findings}


def test_extra_member_is_named(built: tuple[dict[str, Sample], Path], scanned: dict[str, Evidence]) -> None:
    samples, _ = built
    s = samples["torch-zip-payload-extra-member"]
    [extra] = [f for f in scanned[s.name].findings if f.rule_id == "TORCH-UNEXPECTED-MEMBER"]
    assert extra.location.path == f"{s.path.name}!{record_prefix(s)}/extra_state.bin"


def test_polyglot_and_legacy_tar(built: tuple[dict[str, Sample], Path], scanned: dict[str, Evidence]) -> None:
    samples, _ = built
    poly = samples["torch-polyglot-pickle-before-zip"]
    worst = top(scanned[poly.name], poly.path.name)
    assert worst is not None and worst.severity >= Severity.HIGH and worst.rule_id != "SCAN-PARSE-ERROR"
    tar = samples["torch-legacy-tar-payload"]
    assert artifact_formats(scanned[tar.name])[tar.path.name] == "pytorch-legacy-tar"
    worst = top(scanned[tar.name], f"{tar.path.name}!pickle")
    assert worst is not None and worst.severity >= Severity.HIGH and worst.rule_id != "SCAN-PARSE-ERROR"
    assert scanned["torch-legacy-tar-clean"].at_or_above(Severity.MEDIUM) == ()


def test_nothing_ran(built: tuple[dict[str, Sample], Path], scanned: dict[str, Evidence]) -> None:
    _, marker_dir = built
    assert list(marker_dir.iterdir()) == []


def test_torchscript_code_checks() -> None:
    code = "\n".join([
        "class M(Module):",
        "  def forward(self: __torch__.M, x: Tensor) -> Tensor:",
        "    y = ops.aten.relu(x)",
        "    z = ops.evil_lib.run_shell(y)",
        "    p = __torch__.torch.classes.mylib.Backdoor()",
        "    q = __torch__.torch.classes.quantized.LinearPackedParamsBase",
        "    os.system(\"id\")",
        "    return torch.linear(z, self.weight, self.bias)",
    ])
    ctx = Context(subject="t")
    torch_scan.scan_torchscript(code, Source.from_bytes(code.encode(), "m.pt!m/code/__torch__.py"), ctx)
    got = sorted((f.rule_id, f.location.line) for f in ctx.findings)
    assert got == [("TORCH-CUSTOM-CLASS", 5), ("TORCH-CUSTOM-OP", 4), ("TORCH-SCRIPT-PYTHON-ACCESS", 7)]


class _Varied(torch.nn.Module):
    """Modules whose TorchScript code uses getattr(self, "0"), RaiseException strings, prim ops."""

    def __init__(self) -> None:
        super().__init__()
        self.seq = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.ReLU(), torch.nn.Dropout(0.1))
        self.lstm = torch.nn.LSTM(4, 4)
        self.norm = torch.nn.LayerNorm(4)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(y)
        return self.seq(x).sum() + self.norm(out).sum()


def test_real_torchscript_code_raises_no_torch_findings() -> None:
    buf = io.BytesIO()
    torch.jit.save(torch.jit.script(_Varied()), buf)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quantized = torch.ao.quantization.quantize_dynamic(torch.nn.Sequential(torch.nn.Linear(4, 4)),
                                                          {torch.nn.Linear}, dtype=torch.qint8)
        qbuf = io.BytesIO()
        torch.jit.save(torch.jit.script(quantized), qbuf)
    for data in (buf.getvalue(), qbuf.getvalue()):
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            codes = [n for n in zf.namelist() if "/code/" in n and n.endswith(".py")]
            assert codes
            for name in codes:
                ctx = Context(subject="t")
                torch_scan.scan_torchscript(zf.read(name).decode(), Source.from_bytes(b"", name), ctx)
                assert ctx.findings == [], (name, ctx.findings)


def test_hand_edited_torchscript_code_in_archive(built: tuple[dict[str, Sample], Path], tmp_path: Path) -> None:
    samples, _ = built
    clean = samples["torchscript-clean"].path.read_bytes()
    with zipfile.ZipFile(io.BytesIO(clean)) as zf:
        code_name = next(n for n in zf.namelist() if "/code/" in n and n.endswith(".py")
                         and b"return " in zf.read(n))
        code = zf.read(code_name).decode()
    edited = code.replace("return ", "_ = ops.mylib.backdoor(x)\n    return ", 1)
    path = tmp_path / "edited.pt"
    path.write_bytes(torch_files.rewrite_zip(clean, {code_name: edited.encode()}))
    ev = aivet.scan(path)
    [op] = [f for f in ev.findings if f.rule_id == "TORCH-CUSTOM-OP"]
    assert op.location.path == f"edited.pt!{code_name}" and op.location.line is not None
    assert op.details["namespace"] == "mylib" and op.severity is Severity.MEDIUM


def test_one_artifact_per_pickle_member(built: tuple[dict[str, Sample], Path]) -> None:
    # analyze_member_pickle records exactly one artifact per member; storages are never opened
    samples, _ = built
    data = samples["torch-zip-state-dict"].path.read_bytes()
    ctx = Context(subject="t")
    from aivet.analyzers import archive

    outcome = archive.analyze_zip(Source.from_bytes(data, "x.pt"), ctx)
    assert outcome.format == "pytorch-zip"
    assert [a.path for a in ctx.artifacts] == [f"x.pt!{record_prefix(samples['torch-zip-state-dict'])}/data.pkl"]


def test_two_record_directories(tmp_path: Path) -> None:
    from tests.fixtures.archives import zip_bytes

    clean = pickle.dumps({"w": 1}, protocol=2)
    path = tmp_path / "two.pt"
    path.write_bytes(zip_bytes({"a/data.pkl": clean, "a/version": b"3\n", "b/data.pkl": clean, "b/version": b"3\n"}))
    ev = aivet.scan(path)
    [multi] = [f for f in ev.findings if f.rule_id == "TORCH-MULTIPLE-RECORDS"]
    assert multi.details["records"] == ("a", "b") and multi.severity is Severity.MEDIUM
    assert {a.path for a in ev.artifacts} >= {"two.pt!a/data.pkl", "two.pt!b/data.pkl"}
