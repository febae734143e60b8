"""Archives and compressed streams: structure findings, bounds, recursion and locations."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import pickle
import struct
import tarfile
import tempfile
import zipfile
import zlib
from pathlib import Path

import pytest

import aivet
from aivet import rules
from aivet.analyzers import archive
from aivet.analyzers.context import Context, ScanOptions
from aivet.analyzers.source import Source
from aivet.evidence import ArtifactStatus, Evidence, Severity
from aivet.limits import Limits
from tests.fixtures.archives import nested_zip, tar_bytes, zip_bytes
from tests.fixtures.torch_files import payload_pickle

CLEAN = pickle.dumps({"lr": 0.1}, protocol=4)


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def ids(evidence: Evidence) -> set[str]:
    return {f.rule_id for f in evidence.findings}


def of(evidence: Evidence, rule_id: str) -> list[aivet.evidence.Finding]:
    return [f for f in evidence.findings if f.rule_id == rule_id]


def artifact(evidence: Evidence, path: str) -> aivet.evidence.Artifact:
    matches = [a for a in evidence.artifacts if a.path == path]
    assert matches, [a.path for a in evidence.artifacts]
    return matches[0]


def ctx_for(limits: Limits | None = None) -> Context:
    return Context(subject="t", options=ScanOptions(limits=limits or Limits()))


# -- names, kinds and rules ------------------------------------------------------------------------

@pytest.mark.parametrize("name, bad", [
    ("archive/data.pkl", False), ("a/b/c.txt", False), ("..data", False),
    ("../x", True), ("a/../../x", True), ("/etc/passwd", True), ("C:\\x.dll", True), ("c:x", True),
    ("a\\..\\b", True), ("ok.pkl\x00.txt", True),
])
def test_unsafe_names(name: str, bad: bool) -> None:
    assert (archive.unsafe_name(name) is not None) is bad


@pytest.mark.parametrize("names, kind", [
    (["archive/data.pkl", "archive/byteorder", "archive/data/0", "archive/version"], archive.ZipKind.PYTORCH),
    (["m/data.pkl", "m/constants.pkl", "m/code/__torch__.py", "m/version"], archive.ZipKind.TORCHSCRIPT),
    (["data.pkl"], archive.ZipKind.PYTORCH),
    (["config.json", "metadata.json", "model.weights.h5"], archive.ZipKind.KERAS),
    (["a.npy", "b.npy"], archive.ZipKind.NPZ),
    (["a.npy", "readme.txt"], archive.ZipKind.GENERIC),
    ([], archive.ZipKind.GENERIC),
])
def test_classify_zip(names: list[str], kind: archive.ZipKind) -> None:
    assert archive.classify_zip(names) is kind


def test_rules_are_catalogued_and_well_formed() -> None:
    catalogue = rules.catalogue()
    for rule in archive.RULES:
        assert catalogue[rule.id] is rule
        assert rule.id.startswith("ARCHIVE-") and rule.id == rule.id.upper()
        assert rule.title and len(rule.description) > 60 and rule.atlas and rule.cwe


# -- zip -------------------------------------------------------------------------------------------

def test_clean_zip_is_analysed_member_by_member(tmp_path: Path) -> None:
    ev = aivet.scan(write(tmp_path, "a.zip", zip_bytes({"README.md": b"# hi\n", "sub/params.pkl": CLEAN})))
    assert artifact(ev, "a.zip").status is ArtifactStatus.ANALYZED
    assert artifact(ev, "a.zip").format == "zip"
    assert artifact(ev, "a.zip!sub/params.pkl").format == "pickle"
    assert not any(f.rule_id.startswith("ARCHIVE-") for f in ev.findings)


def test_payload_in_zip_is_found_at_member_path(tmp_path: Path, marker_dir: Path) -> None:
    ev = aivet.scan(write(tmp_path, "a.zip", zip_bytes({"model/params.pkl": payload_pickle(marker_dir, "z")})))
    hits = [f for f in ev.findings if f.location.path == "a.zip!model/params.pkl" and f.severity >= Severity.HIGH]
    assert hits and not any(f.rule_id == "SCAN-PARSE-ERROR" for f in hits), ev.findings


def test_path_traversal_members(tmp_path: Path) -> None:
    data = zip_bytes({"../../evil.sh": b"x", "/abs.txt": b"y", "ok.txt": b"z"})
    ev = aivet.scan(write(tmp_path, "t.zip", data))
    found = of(ev, "ARCHIVE-PATH-TRAVERSAL")
    assert {f.details["member"] for f in found} == {"../../evil.sh", "/abs.txt"}
    assert all(f.severity is Severity.HIGH and f.location.path == "t.zip" for f in found)
    offsets = {i.filename: i.header_offset for i in zipfile.ZipFile(io.BytesIO(data)).infolist()}
    assert {f.location.offset for f in found} == {offsets["../../evil.sh"], offsets["/abs.txt"]}


def test_duplicate_members_are_reported_and_every_copy_analysed(tmp_path: Path, marker_dir: Path) -> None:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf, pytest.warns(UserWarning):
        zf.writestr("model.pkl", CLEAN)
        zf.writestr("model.pkl", payload_pickle(marker_dir, "dup"))
    ev = aivet.scan(write(tmp_path, "d.zip", out.getvalue()))
    [dup] = of(ev, "ARCHIVE-DUPLICATE-MEMBER")
    assert dup.details["copies"] == 2 and dup.severity is Severity.HIGH
    assert sum(a.path == "d.zip!model.pkl" for a in ev.artifacts) == 2


def _patch_both_headers(data: bytes, name: bytes, local_field: int, cd_field: int, fmt: str, value: int) -> bytes:
    raw = bytearray(data)
    local = raw.find(b"PK\x03\x04")
    struct.pack_into(fmt, raw, local + local_field, value)
    central = raw.find(b"PK\x01\x02")
    struct.pack_into(fmt, raw, central + cd_field, value)
    return bytes(raw)


def test_encrypted_member(tmp_path: Path) -> None:
    data = zip_bytes({"secret.pkl": CLEAN}, zipfile.ZIP_STORED)
    data = _patch_both_headers(data, b"secret.pkl", 6, 8, "<H", 0x1)
    ev = aivet.scan(write(tmp_path, "e.zip", data))
    [enc] = of(ev, "ARCHIVE-ENCRYPTED")
    assert enc.location.path == "e.zip!secret.pkl" and enc.severity is Severity.HIGH
    assert artifact(ev, "e.zip").status is ArtifactStatus.PARTIAL


def test_unsupported_compression_method(tmp_path: Path) -> None:
    data = _patch_both_headers(zip_bytes({"w.bin": b"abc"}, zipfile.ZIP_STORED), b"w.bin", 8, 10, "<H", 99)
    ev = aivet.scan(write(tmp_path, "m.zip", data))
    [f] = of(ev, "ARCHIVE-UNSUPPORTED-COMPRESSION")
    assert f.details["method"] == 99
    assert artifact(ev, "m.zip").status is ArtifactStatus.PARTIAL


def test_crc_mismatch_is_reported_and_bytes_still_analysed(tmp_path: Path) -> None:
    data = bytearray(zip_bytes({"notes.txt": b"hello world, plain text\n"}, zipfile.ZIP_STORED))
    data[data.find(b"hello")] = ord("j")
    ev = aivet.scan(write(tmp_path, "c.zip", bytes(data)))
    assert of(ev, "ARCHIVE-CRC-MISMATCH")[0].location.path == "c.zip!notes.txt"
    assert artifact(ev, "c.zip!notes.txt").format == "text"


def test_local_header_name_mismatch(tmp_path: Path) -> None:
    from tests.fixtures.torch_files import patch_local_name

    data = patch_local_name(zip_bytes({"model.pkl": CLEAN}), "model.pkl", "model.txt")
    ev = aivet.scan(write(tmp_path, "h.zip", data))
    [f] = of(ev, "ARCHIVE-HEADER-MISMATCH")
    assert f.location.path == "h.zip" and f.location.offset == 0
    assert f.details["local_name"] == "model.txt"
    # the member is still read (torch reads it through the central directory)
    assert artifact(ev, "h.zip!model.pkl").format == "pickle"


def test_local_header_size_mismatch(tmp_path: Path) -> None:
    data = bytearray(zip_bytes({"a.txt": b"abcdef"}, zipfile.ZIP_STORED))
    struct.pack_into("<L", data, 22, 3)  # local uncompressed size
    ev = aivet.scan(write(tmp_path, "s.zip", bytes(data)))
    assert "local sizes" in of(ev, "ARCHIVE-HEADER-MISMATCH")[0].message


def test_prepended_pickle_is_reported_and_analysed(marker_dir: Path) -> None:
    prefix = payload_pickle(marker_dir, "pre")
    data = prefix + zip_bytes({"a.txt": b"hello"})
    ctx = ctx_for()
    outcome = archive.analyze_zip(Source.from_bytes(data, "p.zip"), ctx)
    assert outcome.format == "zip"
    [pre] = [f for f in ctx.findings if f.rule_id == "ARCHIVE-PREPENDED-DATA"]
    assert pre.details["end"] == len(prefix) and pre.location.offset == 0
    nested = [a for a in ctx.artifacts if a.path == f"p.zip!<bytes 0-{len(prefix)}>"]
    assert nested and nested[0].format == "pickle"


def test_hidden_data_between_members(tmp_path: Path) -> None:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        zf.writestr("a.txt", b"first")
        assert zf.fp is not None
        zf.fp.write(b"HIDDEN" * 10)
        zf.start_dir = zf.fp.tell()
        zf.writestr("b.txt", b"second")
    ev = aivet.scan(write(tmp_path, "g.zip", out.getvalue()))
    [gap] = of(ev, "ARCHIVE-HIDDEN-DATA")
    assert gap.details["end"] - gap.details["start"] == 60


def test_data_appended_after_the_archive(marker_dir: Path) -> None:
    body = zip_bytes({"a.txt": b"hello"})
    ctx = ctx_for()
    archive.analyze_zip(Source.from_bytes(body + payload_pickle(marker_dir, "app"), "app.zip"), ctx)
    [tail] = [f for f in ctx.findings if f.rule_id == "ARCHIVE-HIDDEN-DATA"]
    assert tail.details["start"] == len(body) and "after the end of the archive" in tail.message
    assert any(a.path.startswith(f"app.zip!<bytes {len(body)}-") and a.format == "pickle" for a in ctx.artifacts)


def test_zip_symlink_member(tmp_path: Path) -> None:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        link = zipfile.ZipInfo("weights.bin")
        link.create_system = 3
        link.external_attr = (0o120777 << 16)
        zf.writestr(link, "/etc/shadow")
    ev = aivet.scan(write(tmp_path, "ln.zip", out.getvalue()))
    [f] = of(ev, "ARCHIVE-LINK-MEMBER")
    assert f.details["target"] == "/etc/shadow" and f.location.path == "ln.zip!weights.bin"


def test_overlapping_entries(tmp_path: Path) -> None:
    # Two central directory entries share one local header: the overlapping-entry bomb shape.
    data = bytearray(zip_bytes({"a.bin": b"x" * 100}, zipfile.ZIP_STORED))
    cd = data.find(b"PK\x01\x02")
    eocd = data.find(b"PK\x05\x06")
    entry = bytes(data[cd:eocd])
    data[eocd:eocd] = entry.replace(b"a.bin", b"b.bin")
    eocd += len(entry)
    struct.pack_into("<HHL", data, eocd + 8, 2, 2, 2 * len(entry))
    ev = aivet.scan(write(tmp_path, "o.zip", bytes(data)))
    assert [f.details["measured"] for f in of(ev, "ARCHIVE-BOMB")] == ["overlap"]
    assert of(ev, "ARCHIVE-HEADER-MISMATCH")  # b.bin's local header says a.bin


def test_keras_and_npz_zips_are_routed(tmp_path: Path) -> None:
    keras_zip = zip_bytes({"config.json": b'{"class_name": "Sequential", "config": {"layers": []}}',
                           "metadata.json": b'{"keras_version": "3.0.0"}'})
    ev = aivet.scan(write(tmp_path, "m.keras", keras_zip))
    assert artifact(ev, "m.keras").format.startswith("keras")
    ev = aivet.scan(write(tmp_path, "a.npz", zip_bytes({"x.npy": b"\x93NUMPY\x01\x00v\x00" + b" " * 118})))
    assert artifact(ev, "a.npz").format == "npz"
    assert any(a.path == "a.npz!x.npy" for a in ev.artifacts)


def test_truncated_zip_is_a_parse_error(tmp_path: Path) -> None:
    data = zip_bytes({"a.txt": b"hello" * 100})
    ev = aivet.scan(write(tmp_path, "tr.zip", data[: len(data) // 2]))
    assert "SCAN-PARSE-ERROR" in ids(ev)
    assert artifact(ev, "tr.zip").status is ArtifactStatus.ERROR


def test_zip_bomb_by_declared_ratio(tmp_path: Path) -> None:
    ev = aivet.scan(write(tmp_path, "b.zip", zip_bytes({"w.bin": bytes(4 * 1024 * 1024)})))
    [bomb] = of(ev, "ARCHIVE-BOMB")
    assert bomb.location.path == "b.zip!w.bin" and bomb.details["measured"] == "declared"
    assert artifact(ev, "b.zip").status is ArtifactStatus.PARTIAL
    assert not [a for a in ev.artifacts if a.path == "b.zip!w.bin"]


def test_nested_zips_stop_at_the_depth_limit(tmp_path: Path, marker_dir: Path) -> None:
    ev = aivet.scan(write(tmp_path, "n.zip", nested_zip(10, payload_pickle(marker_dir, "deep"))))
    [deep] = of(ev, "ARCHIVE-TOO-DEEP")
    assert deep.details["depth"] == 7 and deep.location.path.count("!") == 7
    assert deep.location.path.startswith("n.zip!level1.zip!level2.zip!")


def test_member_count_limit(tmp_path: Path) -> None:
    data = zip_bytes({f"m{i}.txt": b"x" for i in range(80)}, zipfile.ZIP_STORED)
    ev = aivet.scan(write(tmp_path, "many.zip", data), limits=Limits(max_archive_members=50))
    [lim] = of(ev, "SCAN-LIMIT-EXCEEDED")
    assert lim.details["limit"] == "max_archive_members"
    assert artifact(ev, "many.zip").status is ArtifactStatus.PARTIAL


def test_total_uncompressed_budget_spans_nested_archives(tmp_path: Path) -> None:
    inner = zip_bytes({"x.txt": b"a" * 600}, zipfile.ZIP_STORED)
    data = zip_bytes({"one.txt": b"b" * 600, "inner.zip": inner}, zipfile.ZIP_STORED)
    ev = aivet.scan(write(tmp_path, "budget.zip", data), limits=Limits(max_total_uncompressed=1500))
    limited = [f for f in of(ev, "SCAN-LIMIT-EXCEEDED") if f.details["limit"] == "max_total_uncompressed"]
    assert limited, ev.findings


def test_big_members_spill_to_a_private_temp_file_that_is_removed(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    spill = tmp_path / "spill"
    spill.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(spill))
    data = zip_bytes({"notes.txt": b"plain words\n" * 100})
    ev = aivet.scan(write(tmp_path, "s.zip", data), limits=Limits(in_memory_member_bytes=64))
    assert artifact(ev, "s.zip!notes.txt").size == 1200
    assert list(spill.iterdir()) == []


def test_big_stored_members_are_read_in_place(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spill = tmp_path / "spill"
    spill.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(spill))
    created: list[str] = []
    real_mkstemp = tempfile.mkstemp

    def tracking_mkstemp(*args: object, **kwargs: object) -> tuple[int, str]:
        fd, path = real_mkstemp(*args, **kwargs)  # type: ignore[call-overload]
        created.append(path)
        return fd, path

    monkeypatch.setattr(tempfile, "mkstemp", tracking_mkstemp)
    limits = Limits(in_memory_member_bytes=64)
    zdata = zip_bytes({"notes.txt": b"plain words\n" * 100, "x.pkl": CLEAN * 3}, zipfile.ZIP_STORED)
    tdata = tar_bytes({"notes.txt": b"plain words\n" * 100})
    ev = aivet.scan(write(tmp_path, "w.zip", zdata), write(tmp_path, "w.tar", tdata), limits=limits)
    assert created == []  # nothing was copied out
    assert artifact(ev, "w.zip!notes.txt").size == 1200 and artifact(ev, "w.zip!notes.txt").format == "text"
    assert artifact(ev, "w.zip!x.pkl").format == "pickle"
    assert artifact(ev, "w.tar!notes.txt").format == "text"
    assert not of(ev, "SCAN-PARSE-ERROR")


# -- tar -------------------------------------------------------------------------------------------

def test_tar_links_and_devices(tmp_path: Path) -> None:
    data = tar_bytes({"a.txt": b"hi"}, {"l": ("/etc/passwd", tarfile.SYMTYPE), "h": ("a.txt", tarfile.LNKTYPE),
                                        "dev": ("", tarfile.CHRTYPE)})
    ev = aivet.scan(write(tmp_path, "l.tar", data))
    links = of(ev, "ARCHIVE-LINK-MEMBER")
    assert {(f.details["member"], f.details["link"]) for f in links} == {("l", "symbolic"), ("h", "hard")}
    assert "absolute" in next(f.message for f in links if f.details["member"] == "l")
    assert [f.details["member"] for f in of(ev, "ARCHIVE-SPECIAL-MEMBER")] == ["dev"]
    assert artifact(ev, "l.tar!a.txt").format == "text"


def test_tar_traversal_and_payload(tmp_path: Path, marker_dir: Path) -> None:
    ev = aivet.scan(write(tmp_path, "p.tar", tar_bytes({"../up.pkl": payload_pickle(marker_dir, "tar")})))
    assert of(ev, "ARCHIVE-PATH-TRAVERSAL")[0].details["member"] == "../up.pkl"
    assert artifact(ev, "p.tar!../up.pkl").format == "pickle"


def test_truncated_tar_fails_closed(tmp_path: Path) -> None:
    data = tar_bytes({"a.bin": b"\x00\x01" * 4000})
    ev = aivet.scan(write(tmp_path, "t.tar", data[:3000]))
    assert ev.max_severity is not None and ev.max_severity >= Severity.MEDIUM


def test_legacy_torch_tar_goes_to_the_torch_analyzer(tmp_path: Path) -> None:
    from tests.fixtures.torch_files import legacy_tar

    ev = aivet.scan(write(tmp_path, "old.tar", legacy_tar(CLEAN)))
    assert artifact(ev, "old.tar").format == "pytorch-legacy-tar"
    assert {a.path for a in ev.artifacts} >= {f"old.tar!{m}" for m in ("sys_info", "pickle", "storages", "tensors")}


# -- compressed streams ----------------------------------------------------------------------------

@pytest.mark.parametrize("codec, compress, suffix", [
    ("gzip", gzip.compress, ".pkl.gz"), ("bzip2", bz2.compress, ".pkl.bz2"),
    ("xz", lzma.compress, ".pkl.xz"), ("zlib", zlib.compress, ".pkl.z"),
])
def test_compressed_pickles(tmp_path: Path, codec: str, compress: object, suffix: str) -> None:
    assert callable(compress)
    ev = aivet.scan(write(tmp_path, "w" + suffix, compress(CLEAN)))
    assert artifact(ev, "w" + suffix).format == codec
    assert artifact(ev, "w" + suffix + "!w.pkl").format == "pickle"


def test_compressed_name_without_suffix(tmp_path: Path) -> None:
    ev = aivet.scan(write(tmp_path, "model.joblib", zlib.compress(CLEAN)))
    assert artifact(ev, "model.joblib!decompressed").format == "pickle"


def test_gzip_bomb_is_stopped_by_actual_bytes(tmp_path: Path) -> None:
    ev = aivet.scan(write(tmp_path, "b.gz", gzip.compress(bytes(8 * 1024 * 1024), 9)))
    [bomb] = of(ev, "ARCHIVE-BOMB")
    assert bomb.details["measured"] == "actual"
    assert bomb.details["produced"] < 8 * 1024 * 1024
    assert artifact(ev, "b.gz").status is ArtifactStatus.PARTIAL


def test_multi_member_gzip_is_read_whole() -> None:
    ctx = ctx_for()
    data = gzip.compress(b"first part ") + gzip.compress(b"second part\n")
    archive.analyze_compressed(Source.from_bytes(data, "notes.txt.gz"), ctx)
    [text] = [a for a in ctx.artifacts if a.path == "notes.txt.gz!notes.txt"]
    assert text.size == len(b"first part second part\n")
    assert not [f for f in ctx.findings if f.rule_id == "ARCHIVE-HIDDEN-DATA"]


def test_bytes_after_a_compressed_stream_are_reported_and_analysed(tmp_path: Path, marker_dir: Path) -> None:
    stream = gzip.compress(CLEAN)
    path = write(tmp_path, "w.pkl.gz", stream + payload_pickle(marker_dir, "tail"))
    ev = aivet.scan(path)
    [tail] = of(ev, "ARCHIVE-HIDDEN-DATA")
    assert tail.details["start"] == len(stream) and "after the compressed stream" in tail.message
    assert artifact(ev, f"w.pkl.gz!<bytes {len(stream)}-{path.stat().st_size}>").format == "pickle"


def test_truncated_gzip_is_a_parse_error(tmp_path: Path) -> None:
    data = gzip.compress(bytes(range(256)) * 64)
    ev = aivet.scan(write(tmp_path, "t.gz", data[: len(data) // 2]))
    assert artifact(ev, "t.gz").status is ArtifactStatus.ERROR
    assert "SCAN-PARSE-ERROR" in ids(ev)


def test_joblib_lzma_alone_and_legacy_zfile_streams() -> None:
    # joblib compress=('lzma', n) writes the .lzma "alone" format; joblib < 0.10 wrote "ZF" + length + zlib.
    alone = lzma.compress(CLEAN, format=lzma.FORMAT_ALONE)
    zfile = b"ZF" + hex(len(CLEAN)).encode().ljust(19) + zlib.compress(CLEAN)
    for name, data, codec in (("m.joblib", alone, "xz"), ("old.pkl", zfile, "zlib")):
        ctx = ctx_for()
        outcome = archive.analyze_compressed(Source.from_bytes(data, name), ctx)
        assert outcome.format == codec and outcome.status is ArtifactStatus.ANALYZED
        assert [a.format for a in ctx.artifacts] == ["pickle"]


def test_joblib_dump_files(tmp_path: Path) -> None:
    import joblib

    joblib.dump({"w": [1.0, 2.0]}, tmp_path / "z.joblib", compress=3)
    ev = aivet.scan(tmp_path / "z.joblib")
    assert artifact(ev, "z.joblib").format == "zlib"
    assert artifact(ev, "z.joblib!decompressed").format == "pickle"


def test_lz4_without_the_module_is_unsupported(tmp_path: Path) -> None:
    try:
        import lz4  # noqa: F401
        pytest.skip("lz4 is installed")
    except ModuleNotFoundError:
        pass
    ev = aivet.scan(write(tmp_path, "m.lz4", b"\x04\x22\x4d\x18" + b"\x00" * 20))
    [f] = of(ev, "SCAN-UNSUPPORTED")
    assert "aivet[lz4]" in f.message


# -- 7z --------------------------------------------------------------------------------------------

def _seven(members: dict[str, bytes]) -> bytes:
    py7zr = pytest.importorskip("py7zr")
    out = io.BytesIO()
    with py7zr.SevenZipFile(out, "w") as archive7:
        for name, data in members.items():
            archive7.writestr(data, name)
    return out.getvalue()


def test_7z_members_are_analysed(tmp_path: Path) -> None:
    ev = aivet.scan(write(tmp_path, "a.7z", _seven({"m/params.pkl": CLEAN, "notes.txt": b"hello\n"})))
    assert artifact(ev, "a.7z").format == "7z" and artifact(ev, "a.7z").status is ArtifactStatus.ANALYZED
    assert artifact(ev, "a.7z!m/params.pkl").format == "pickle"


def test_7z_bounds_are_checked_before_extracting(tmp_path: Path) -> None:
    ev = aivet.scan(write(tmp_path, "big.7z", _seven({"w.bin": bytes(4 * 1024 * 1024)})))
    assert of(ev, "ARCHIVE-BOMB")[0].details["measured"] == "declared"
    ev = aivet.scan(write(tmp_path, "mem.7z", _seven({"w.txt": b"words " * 100})),
                    limits=Limits(in_memory_member_bytes=100))
    assert of(ev, "SCAN-LIMIT-EXCEEDED")[0].location.path == "mem.7z!w.txt"
