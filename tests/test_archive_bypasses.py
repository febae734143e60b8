"""Parser differentials: archives that a loader reads one way and a scanner another.

Each test names the technique (and advisory where there is one), builds the archive by
code, checks with PyTorch's own zip reader (``torch._C.PyTorchFileReader``: it lists and
reads records, it never unpickles) that ``torch.load`` would reach the payload, and then
checks that aivet reports the trick *and* analyses the payload.
"""

from __future__ import annotations

import gzip
import io
import pickle
import struct
import tarfile
import warnings
import zipfile
from pathlib import Path

import pytest
import torch

import aivet
from aivet.analyzers import archive
from aivet.analyzers.archive_zip import _lenient_directory
from aivet.analyzers.context import Context, ScanOptions
from aivet.analyzers.source import Source
from aivet.evidence import Evidence, Severity
from aivet.formats import FormatError, LimitExceeded
from aivet.limits import Limits
from tests.fixtures.archives import (
    RawMember,
    central_entry,
    end_record,
    local_record,
    raw_zip,
    tar_bytes,
    two_directory_zip,
)
from tests.fixtures.torch_files import payload_pickle

CLEAN = pickle.dumps({"lr": 0.1}, protocol=2)


@pytest.fixture
def pay(marker_dir: Path) -> bytes:
    return payload_pickle(marker_dir, "bypass")


def torch_reads(data: bytes, record: str = "data.pkl") -> bytes:
    """What PyTorch's zip reader returns for ``record`` (it reads bytes; nothing is unpickled)."""
    return bytes(torch._C.PyTorchFileReader(io.BytesIO(data)).get_record(record))


def scan(tmp_path: Path, data: bytes, name: str = "model.pt") -> Evidence:
    path = tmp_path / name
    path.write_bytes(data)
    return aivet.scan(path)


def rule_ids(ev: Evidence) -> set[str]:
    return {f.rule_id for f in ev.findings}


def payload_found(ev: Evidence) -> bool:
    return any(f.rule_id == "PICKLE-DANGEROUS-GLOBAL" and f.severity is Severity.CRITICAL for f in ev.findings)


def checkpoint(data_pkl: bytes, prefix: bytes = b"archive", **data_pkl_fields: object) -> list[RawMember]:
    return [RawMember(prefix + b"/data.pkl", data_pkl, **data_pkl_fields),  # type: ignore[arg-type]
            RawMember(prefix + b"/byteorder", b"little"), RawMember(prefix + b"/version", b"3\n")]


# -- published picklescan / modelscan bypasses -------------------------------------------------------

def test_cve_2025_1944_local_name_differs_from_directory(tmp_path: Path, pay: bytes) -> None:
    data = raw_zip(checkpoint(pay, local_name=b"archive/data.pkx"))
    assert torch_reads(data) == pay  # torch trusts the central directory
    ev = scan(tmp_path, data)
    assert "ARCHIVE-HEADER-MISMATCH" in rule_ids(ev) and payload_found(ev)


def test_cve_2025_1945_utf8_flag_only_in_the_local_header(tmp_path: Path, pay: bytes) -> None:
    # The record directory is named in cp437 in the directory but flagged UTF-8 in the local
    # header: zipfile decodes the two differently and refuses the member; miniz compares bytes.
    data = raw_zip(checkpoint(pay, prefix=b"\xe9t\xe9", local_flags=0x800))
    assert torch_reads(data) == pay
    ev = scan(tmp_path, data)
    assert "ARCHIVE-READER-DIFFERENTIAL" in rule_ids(ev) and payload_found(ev)


@pytest.mark.parametrize("flag", [0x20, 0x40])
def test_cve_2025_1945_reserved_flag_bits(tmp_path: Path, pay: bytes, flag: int) -> None:
    # zipfile refuses "patched data" and "strong encryption"; so does torch, but the bytes are
    # still analysed rather than dropped with a parse error.
    ev = scan(tmp_path, raw_zip(checkpoint(pay, flags=flag)))
    assert "ARCHIVE-READER-DIFFERENTIAL" in rule_ids(ev) and payload_found(ev)


@pytest.mark.parametrize("method", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
def test_cve_2025_10156_bad_crc_on_data_pkl(tmp_path: Path, pay: bytes, method: int) -> None:
    data = raw_zip(checkpoint(pay, method=method, crc=0xDEADBEEF))
    assert torch_reads(data) == pay  # torch does not check CRCs
    ev = scan(tmp_path, data)
    assert "ARCHIVE-CRC-MISMATCH" in rule_ids(ev) and payload_found(ev)


@pytest.mark.parametrize("name", ["model.bin", "weights.ckpt", "model.safetensors", "noext"])
def test_content_not_name_decides(tmp_path: Path, pay: bytes, name: str) -> None:
    ev = scan(tmp_path, raw_zip(checkpoint(pay)), name)
    assert payload_found(ev)


# -- zipfile gives up where miniz reads on: fail closed is not enough, analyse what torch runs ------------

@pytest.mark.parametrize("trick, build", [
    ("end-record signature in the last 21 bytes", lambda ms: raw_zip(ms, tail=b"PK\x05\x06xx")),
    ("fake end record in the comment, too close to the end", lambda ms: raw_zip(ms, comment=b"..PK\x05\x06")),
    ("bytes after the entries inside the directory size", lambda ms: raw_zip(ms, cd_junk=b"0123456789")),
    ("malformed extra field on one entry", lambda ms: raw_zip(ms[:2] + [
        RawMember(b"archive/version", b"3\n", cd_extra=b"\xff\xff\x40\x00")])),
    ("invalid UTF-8 name with the UTF-8 flag", lambda ms: raw_zip(ms + [
        RawMember(b"archive/\xff\xfe", b"x", flags=0x800)])),
])
def test_zipfile_refuses_archive_that_torch_reads(tmp_path: Path, pay: bytes, trick: str, build: object) -> None:
    data = build(checkpoint(pay))  # type: ignore[operator]
    with pytest.raises((zipfile.BadZipFile, UnicodeDecodeError)):
        zipfile.ZipFile(io.BytesIO(data))
    assert torch_reads(data) == pay, trick
    ev = scan(tmp_path, data)
    [diff] = [f for f in ev.findings if f.rule_id == "ARCHIVE-READER-DIFFERENTIAL"]
    assert diff.severity is Severity.HIGH and "cannot open" in diff.message
    assert payload_found(ev), trick


def test_fake_end_record_in_the_comment_is_followed_by_both_readers(tmp_path: Path, pay: bytes) -> None:
    # The archive comment is a complete second end record pointing at a second directory:
    # zipfile and miniz both take the last end record, so both read the payload's directory.
    out = bytearray()
    dirs = []
    for members in (checkpoint(CLEAN), checkpoint(pay)):
        entries = []
        for m in members:
            local, central = local_record(m)
            entries.append(central_entry(central, len(out)))
            out += local
        dirs.append(b"".join(entries))
    clean_at = len(out)
    out += dirs[0]
    evil_at = len(out)
    out += dirs[1]
    out += end_record(3, len(dirs[0]), clean_at, comment=end_record(3, len(dirs[1]), evil_at))
    data = bytes(out)
    assert torch_reads(data) == pay
    ev = scan(tmp_path, data)
    assert payload_found(ev)


# -- two central directories ---------------------------------------------------------------------

@pytest.mark.parametrize("zip64", [False, True], ids=["offset-shift", "zip64-locator"])
def test_two_central_directories(tmp_path: Path, pay: bytes, zip64: bool) -> None:
    data = two_directory_zip(checkpoint(pay), checkpoint(CLEAN), zip64=zip64)
    assert zipfile.ZipFile(io.BytesIO(data)).read("archive/data.pkl") == CLEAN
    assert torch_reads(data) == pay
    ev = scan(tmp_path, data)
    [diff] = [f for f in ev.findings if f.rule_id == "ARCHIVE-READER-DIFFERENTIAL"]
    assert diff.details["members"] == 3
    assert payload_found(ev)


def test_ordinary_zips_take_no_second_view(tmp_path: Path) -> None:
    buf = io.BytesIO()
    torch.save({"w": torch.ones(2)}, buf)
    ev = scan(tmp_path, buf.getvalue())
    assert "ARCHIVE-READER-DIFFERENTIAL" not in rule_ids(ev)


# -- names -----------------------------------------------------------------------------------------

def test_duplicate_data_pkl_every_copy_analysed(tmp_path: Path, pay: bytes) -> None:
    # Which copy torch gets depends on where miniz's binary search over the sorted names lands
    # (zipfile's namelist lookup takes the last): some layout hands torch the payload.
    layouts = [[RawMember(b"archive/data.pkl", CLEAN), RawMember(b"archive/version", b"3\n"),
                RawMember(b"archive/data.pkl", pay)],
               checkpoint(CLEAN) + [RawMember(b"archive/data.pkl", pay)],
               [RawMember(b"archive/data.pkl", pay)] + checkpoint(CLEAN)]
    assert pay in {torch_reads(raw_zip(members)) for members in layouts}
    for members in layouts:
        ev = scan(tmp_path, raw_zip(members))
        assert "ARCHIVE-DUPLICATE-MEMBER" in rule_ids(ev) and payload_found(ev)


def test_case_variant_of_data_pkl_is_a_duplicate(tmp_path: Path, pay: bytes) -> None:
    data = raw_zip([RawMember(b"archive/DATA.PKL", pay), RawMember(b"archive/version", b"3\n")])
    assert torch_reads(data) == pay  # miniz looks names up without regard to case
    ev = scan(tmp_path, data)
    assert payload_found(ev)
    ev = scan(tmp_path, raw_zip(checkpoint(CLEAN) + [RawMember(b"archive/Data.pkl", pay)]))
    [dup] = [f for f in ev.findings if f.rule_id == "ARCHIVE-DUPLICATE-MEMBER"]
    assert list(dup.details["spellings"]) == ["archive/Data.pkl", "archive/data.pkl"]
    assert payload_found(ev)


@pytest.mark.parametrize("prefix", [b".", b"a\\b", b"", b"x" * 200])
def test_odd_record_directories(tmp_path: Path, pay: bytes, prefix: bytes) -> None:
    data = raw_zip(checkpoint(pay, prefix=prefix))
    assert torch_reads(data) == pay
    assert payload_found(scan(tmp_path, data))


def test_record_directory_comes_from_the_first_member(tmp_path: Path, pay: bytes) -> None:
    # torch takes the prefix from the first name: "other/" here, so it reads other/data.pkl.
    data = raw_zip([RawMember(b"other/version", b"3\n"), RawMember(b"other/data.pkl", pay),
                    RawMember(b"archive/data.pkl", CLEAN)])
    with pytest.raises(RuntimeError):
        torch._C.PyTorchFileReader(io.BytesIO(data)).get_all_records()  # a second prefix breaks torch.load
    assert torch_reads(data) == pay
    ev = scan(tmp_path, data)
    assert "TORCH-MULTIPLE-RECORDS" in rule_ids(ev) and payload_found(ev)


def test_symlink_mode_on_data_pkl_is_still_analysed(tmp_path: Path, pay: bytes) -> None:
    data = raw_zip(checkpoint(pay, made_by=0x314, external_attr=0o120777 << 16))
    assert torch_reads(data) == pay  # torch ignores the mode bits
    ev = scan(tmp_path, data)
    assert "ARCHIVE-LINK-MEMBER" in rule_ids(ev) and payload_found(ev)


def test_encrypted_data_pkl_is_reported(tmp_path: Path, pay: bytes) -> None:
    data = raw_zip(checkpoint(pay, flags=0x1))
    with pytest.raises(RuntimeError):
        torch_reads(data)  # neither reader decrypts
    assert "ARCHIVE-ENCRYPTED" in rule_ids(scan(tmp_path, data))


def test_descriptor_flag_without_descriptor_is_not_a_bomb(tmp_path: Path, pay: bytes) -> None:
    data = raw_zip(checkpoint(pay, flags=0x8))
    assert torch_reads(data) == pay
    ev = scan(tmp_path, data)
    assert "ARCHIVE-BOMB" not in rule_ids(ev) and payload_found(ev)


def _patch_sizes(data: bytes, name: bytes, csize: int | None = None, usize: int | None = None) -> bytes:
    """Change a member's sizes in the central directory only."""
    raw = bytearray(data)
    at = raw.find(b"PK\x01\x02")
    while at >= 0:
        (nlen,) = struct.unpack_from("<H", raw, at + 28)
        if raw[at + 46:at + 46 + nlen] == name:
            if csize is not None:
                struct.pack_into("<L", raw, at + 20, csize)
            if usize is not None:
                struct.pack_into("<L", raw, at + 24, usize)
        at = raw.find(b"PK\x01\x02", at + 4)
    return bytes(raw)


@pytest.mark.parametrize("method, grow_c, grow_u", [
    (zipfile.ZIP_STORED, 10, 10),      # torch reads the payload plus the next header's first bytes
    (zipfile.ZIP_DEFLATED, 60, 0),     # torch inflates to the end of the stream, ignoring the rest
    (zipfile.ZIP_DEFLATED, 0, -40),    # torch keeps the first bytes only (a truncated pickle)
])
def test_wrong_sizes_in_the_directory(tmp_path: Path, pay: bytes, method: int, grow_c: int, grow_u: int) -> None:
    data = raw_zip(checkpoint(pay, method=method))
    info = zipfile.ZipFile(io.BytesIO(data)).getinfo("archive/data.pkl")
    data = _patch_sizes(data, b"archive/data.pkl", info.compress_size + grow_c, info.file_size + grow_u)
    got = torch_reads(data)
    assert got[:min(len(got), len(pay))] == pay[:len(got)]  # torch reads (a part of) the payload
    ev = scan(tmp_path, data)
    assert "ARCHIVE-HEADER-MISMATCH" in rule_ids(ev) and payload_found(ev)


# -- tar -------------------------------------------------------------------------------------------

def test_tar_same_name_twice(tmp_path: Path, pay: bytes) -> None:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tf:
        for data in (pay, CLEAN):  # tarfile (and torch's legacy loader) take the last copy
            info = tarfile.TarInfo("pickle")
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    ev = scan(tmp_path, out.getvalue(), "t.tar")
    assert "ARCHIVE-DUPLICATE-MEMBER" in rule_ids(ev) and payload_found(ev)


def test_tar_pax_path_differs_from_ustar_name(tmp_path: Path, pay: bytes) -> None:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tf:
        info = tarfile.TarInfo("readme.txt")
        info.size = len(pay)
        info.pax_headers = {"path": "model.pkl"}
        tf.addfile(info, io.BytesIO(pay))
    assert payload_found(scan(tmp_path, out.getvalue(), "t.tar"))


def test_legacy_tar_pickle_as_hard_link(tmp_path: Path, pay: bytes) -> None:
    # tarfile.extractfile("pickle") follows a hard link to the member it names.
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tf:
        for name, data in (("blob", pay), ("storages", pickle.dumps(0, protocol=2)),
                           ("tensors", pickle.dumps(0, protocol=2))):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("pickle")
        link.type, link.linkname = tarfile.LNKTYPE, "blob"
        tf.addfile(link)
    ev = scan(tmp_path, out.getvalue(), "t.tar")
    assert "ARCHIVE-LINK-MEMBER" in rule_ids(ev) and payload_found(ev)


def _tar_member(name: str, data: bytes) -> bytes:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info.tobuf(tarfile.USTAR_FORMAT) + data + bytes(-len(data) % 512)


@pytest.mark.parametrize("stop", ["damaged-header", "end-marker"])
def test_tar_members_past_where_tarfile_stops(tmp_path: Path, pay: bytes, stop: str) -> None:
    # tarfile (and torch's legacy loader) stop at a damaged header or the end-of-archive blocks;
    # GNU tar skips the damaged header and extracts what follows (tar -i: past the end marker).
    first = _tar_member("a.txt", b"hello\n")
    if stop == "damaged-header":
        damaged = bytearray(_tar_member("b.txt", b"junk\n"))
        damaged[148:156] = b"0000000\0"  # a checksum that does not match
        middle = bytes(damaged)
    else:
        middle = bytes(1024)
    data = first + middle + _tar_member("c.pkl", pay) + bytes(1024)
    assert tarfile.open(fileobj=io.BytesIO(data)).getnames() == ["a.txt"]
    ev = scan(tmp_path, data, "t.tar")
    [hidden] = [f for f in ev.findings if f.rule_id == "ARCHIVE-HIDDEN-DATA"]
    assert list(hidden.details["members"]) == ["c.pkl"]
    assert any(f.location.path == "t.tar!c.pkl" for f in ev.findings if f.rule_id == "PICKLE-DANGEROUS-GLOBAL")


def test_bytes_after_the_tar_end_are_analysed(tmp_path: Path, pay: bytes) -> None:
    data = _tar_member("a.txt", b"hello\n") + bytes(1024) + pay
    ev = scan(tmp_path, data, "t.tar")
    assert "ARCHIVE-HIDDEN-DATA" in rule_ids(ev) and payload_found(ev)


def test_ordinary_tar_padding_is_not_hidden_data(tmp_path: Path) -> None:
    data = tar_bytes({"a.txt": b"hello\n"}) + bytes(20 * 512)
    assert "ARCHIVE-HIDDEN-DATA" not in rule_ids(scan(tmp_path, data, "t.tar"))


def _legacy(storages: bytes, tensors: bytes) -> bytes:
    return tar_bytes({"sys_info": CLEAN, "pickle": CLEAN, "storages": storages, "tensors": tensors})


def test_legacy_tar_payload_after_raw_storage_bytes(tmp_path: Path, pay: bytes) -> None:
    # torch's legacy loader unpickles the list of views after the last storage's raw bytes.
    record = pickle.dumps((0, "cpu", torch.FloatStorage), protocol=2)
    storages = pickle.dumps(1, protocol=2) + record + struct.pack("<q", 3) + bytes(12) + pay
    ev = scan(tmp_path, _legacy(storages, pickle.dumps(0, protocol=2)), "old.tar")
    [hit] = [f for f in ev.findings if f.rule_id == "PICKLE-DANGEROUS-GLOBAL"]
    assert hit.location.path == f"old.tar!storages@{len(storages) - len(pay)}"


def test_legacy_tar_payload_in_a_later_tensor_record(tmp_path: Path, pay: bytes) -> None:
    first = pickle.dumps((0, 0, torch.FloatTensor), protocol=2)
    header = struct.pack("<ii", 1, 0) + struct.pack("<qqq", 3, 1, 0)
    tensors = pickle.dumps(2, protocol=2) + first + header + pay + header
    ev = scan(tmp_path, _legacy(pickle.dumps(0, protocol=2), tensors), "old.tar")
    assert payload_found(ev)


def test_legacy_tar_clean_records_raise_nothing(tmp_path: Path) -> None:
    record = pickle.dumps((0, "cpu", torch.FloatStorage), protocol=2)
    storages = pickle.dumps(1, protocol=2) + record + struct.pack("<q", 3) + bytes(12) + pickle.dumps([], protocol=2)
    ev = scan(tmp_path, _legacy(storages, pickle.dumps(0, protocol=2)), "old.tar")
    assert not [f for f in ev.findings if f.rule_id.startswith("PICKLE-") and f.severity >= Severity.HIGH]
    views_at = len(storages) - len(pickle.dumps([], protocol=2))
    assert any(a.path == f"old.tar!storages@{views_at}" and a.format == "pickle" for a in ev.artifacts)


# -- nesting ---------------------------------------------------------------------------------------

def test_checkpoint_in_tar_in_gzip(tmp_path: Path, pay: bytes) -> None:
    inner = raw_zip(checkpoint(pay))
    ev = scan(tmp_path, gzip.compress(tar_bytes({"ckpt/model.pt": inner})), "bundle.tar.gz")
    assert any(f.location.path == "bundle.tar.gz!bundle.tar!ckpt/model.pt!archive/data.pkl"
               for f in ev.findings if f.rule_id == "PICKLE-DANGEROUS-GLOBAL")


def test_checkpoint_inside_an_npz(tmp_path: Path, pay: bytes) -> None:
    import numpy as np

    buf = io.BytesIO()
    np.savez(buf, a=np.zeros(3))
    with zipfile.ZipFile(buf, "a") as zf, warnings.catch_warnings():
        zf.writestr("b.npy", raw_zip(checkpoint(pay)))
    ev = scan(tmp_path, buf.getvalue(), "arrays.npz")
    assert any(f.location.path == "arrays.npz!b.npy!archive/data.pkl" for f in ev.findings
               if f.rule_id == "PICKLE-DANGEROUS-GLOBAL")


# -- the lenient reader is bounded -----------------------------------------------------------------

def test_lenient_directory_bounds_declared_counts() -> None:
    data = raw_zip(checkpoint(CLEAN), cd_junk=b"junk")
    ctx = Context(subject="t", options=ScanOptions(limits=Limits(max_archive_members=2)))
    with pytest.raises(LimitExceeded):
        _lenient_directory(io.BytesIO(data), len(data), ctx)


def test_lenient_reader_fails_closed_when_miniz_would_too(tmp_path: Path) -> None:
    data = raw_zip(checkpoint(CLEAN), cd_junk=b"junk")
    broken = data.replace(b"PK\x01\x02", b"PK\x01\x03", 1)  # neither reader can parse the directory now
    ev = scan(tmp_path, broken)
    assert "SCAN-PARSE-ERROR" in rule_ids(ev)
    ctx = Context(subject="t", options=ScanOptions())
    with pytest.raises(FormatError):
        archive.analyze_zip(Source.from_bytes(broken, "b.zip"), ctx)


def test_case_variant_pickle_goes_to_the_torch_pickle_reader(tmp_path: Path, pay: bytes) -> None:
    data = raw_zip([RawMember(b"archive/DATA.PKL", pay), RawMember(b"archive/byteorder", b"little"),
                    RawMember(b"archive/version", b"3\n")])
    assert torch_reads(data) == pay
    ev = scan(tmp_path, data)
    assert [a.format for a in ev.artifacts if a.path == "model.pt!archive/DATA.PKL"] == ["pickle"]
    assert "TORCH-UNEXPECTED-MEMBER" in rule_ids(ev) and payload_found(ev)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_torchscript_extra_files_are_analysed(tmp_path: Path, pay: bytes) -> None:
    from tests.fixtures.torch_files import TinyNet

    buf = io.BytesIO()
    torch.jit.save(torch.jit.script(TinyNet()), buf, _extra_files={"meta.json": b'{"a": 1}', "state.bin": pay})
    ev = scan(tmp_path, buf.getvalue())
    assert payload_found(ev)
    clean = io.BytesIO()
    torch.jit.save(torch.jit.script(TinyNet()), clean, _extra_files={"meta.json": b'{"a": 1}'})
    assert scan(tmp_path, clean.getvalue()).at_or_above(Severity.MEDIUM) == ()


def test_a_long_tail_after_a_tar_is_reported_unread(tmp_path: Path, pay: bytes) -> None:
    data = _tar_member("a.txt", b"hello\n") + bytes(1024) + bytes(8192) + _tar_member("c.pkl", pay)
    ctx = Context(subject="t", options=ScanOptions(limits=Limits(in_memory_member_bytes=4096)))
    archive.analyze_tar(Source.from_bytes(data, "t.tar"), ctx)
    [hidden] = [f for f in ctx.findings if f.rule_id == "ARCHIVE-HIDDEN-DATA"]
    assert hidden.details["start"] == 1024 and hidden.details["end"] == len(data)


def test_legacy_record_reads_grow_only_as_far_as_the_record() -> None:
    """A record pickle is found with small reads first; a long one (here 10 KB) still ends where it ends."""
    from aivet.analyzers.torch import _MAX_RECORD_PICKLE, _record_at
    from tests.fixtures.work import CountingBytesIO, Tally

    short, long = pickle.dumps(("k", "cpu", 1), protocol=2), pickle.dumps("x" * 10_000, protocol=2)
    raw = b"\x00" * (2 * _MAX_RECORD_PICKLE)  # raw tensor bytes after the record
    for record in (short, long):
        tally = Tally()
        window, end = _record_at(CountingBytesIO(b"pad" + record + raw, tally), 3)
        assert end == len(record) and window[:end] == record
        assert tally.bytes_read < 8 * len(record) + 8192  # not a megabyte per record
    assert _record_at(io.BytesIO(raw), 0)[1] is None  # no pickle there: the walk stops
