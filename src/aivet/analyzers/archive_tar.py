"""Tar archives: links, device files and names are findings; regular members are analysed.

A tar holding ``pickle`` next to ``storages``/``tensors``/``sys_info`` is a legacy
(pre-1.6) PyTorch checkpoint and goes to :mod:`aivet.analyzers.torch`.
"""

from __future__ import annotations

import struct
import tarfile
from typing import IO

from aivet import rules
from aivet.analyzers.archive import (
    CHUNK,
    HIDDEN_DATA,
    LINK_MEMBER,
    SPECIAL_MEMBER,
    Budget,
    Entry,
    MembersBase,
    check_names,
    ctx_loc,
    outermost_budget,
    report_gap,
    too_deep,
    unsafe_name,
)
from aivet.analyzers.context import Context
from aivet.analyzers.engine import Outcome
from aivet.analyzers.source import Source
from aivet.evidence import ArtifactStatus
from aivet.formats import FormatError


def analyze_tar(source: Source, ctx: Context) -> Outcome:
    """Analyse a tar archive: links, special files and names, then its members (or a legacy torch checkpoint)."""
    if (deep := too_deep(source, ctx)) is not None:
        return deep
    with outermost_budget(ctx) as budget, source.open() as fh:
        try:
            tf = tarfile.open(fileobj=fh, mode="r:")
        except (tarfile.TarError, EOFError, ValueError, OverflowError, UnicodeDecodeError) as exc:
            raise FormatError(f"not a readable tar: {exc}") from exc
        with tf:
            return _analyze_open_tar(tf, source, ctx, budget)


def _analyze_open_tar(tf: tarfile.TarFile, source: Source, ctx: Context, budget: Budget) -> Outcome:
    partial = False
    infos: list[tarfile.TarInfo] = []
    hidden_from: int | None = None  # where tarfile stopped while bytes went on
    visible = 0  # members tarfile reads on its own
    while True:
        try:
            info = tf.next()
        except (tarfile.TarError, EOFError, ValueError, OverflowError, UnicodeDecodeError, struct.error) as exc:
            if hidden_from is not None:
                break  # the bytes past the stop are reported already; their damage is not ours to fix
            raise FormatError(f"corrupt tar header after {len(infos)} members: {exc}") from exc
        if info is None:
            stray = _stray_bytes_at(tf, source, ctx) if hidden_from is None else None
            if stray is not None:
                # tarfile (and torch's legacy loader, which uses it) stops at a damaged header or
                # at the end-of-archive blocks; GNU tar skips a damaged header and extracts what
                # follows (and `tar -i` reads past the end marker). Read on the way it does.
                hidden_from, visible = stray, len(infos)
                tf.ignore_zeros = True
                continue
            break
        if len(infos) >= ctx.limits.max_archive_members:
            ctx.add(rules.LIMIT_EXCEEDED.finding(ctx.location(source), f"more than {len(infos)} members; the rest "
                                                 "were not analysed", limit="max_archive_members"))
            partial = True
            break
        infos.append(info)
    if hidden_from is not None:
        if len(infos) > visible:
            late = [i.name for i in infos[visible:]]
            ctx.add(HIDDEN_DATA.finding(ctx.location(source, offset=hidden_from),
                                        f"members {late[:5]!r} follow where tarfile stops (a damaged header or the "
                                        "end-of-archive marker): Python's tarfile and torch's legacy loader do not "
                                        "see them, GNU tar extracts them; analysed", start=hidden_from,
                                        end=source.size, members=late[:100]))
        else:
            report_gap(source, ctx, hidden_from, source.size, first=False, where="after the end of the tar archive")
    check_names([(i.name, i.offset) for i in infos], source, ctx)
    entries: list[Entry] = []
    for info in infos:
        loc = ctx.location(source, offset=info.offset)
        if info.issym() or info.islnk():
            kind = "symbolic" if info.issym() else "hard"
            why = unsafe_name(info.linkname)
            ctx.add(LINK_MEMBER.finding(
                loc, f"{kind} link {info.name!r} -> {info.linkname!r}" + (f" (target {why})" if why else ""),
                member=info.name, target=info.linkname, link=kind))
        elif info.ischr() or info.isblk() or info.isfifo():
            ctx.add(SPECIAL_MEMBER.finding(loc, f"member {info.name!r} is a device or FIFO", member=info.name))
        elif info.isreg():
            if info.size > ctx.limits.max_member_bytes:
                ctx.add(rules.LIMIT_EXCEEDED.finding(ctx_loc(ctx, source, info.name),
                                                     f"member declares {info.size} bytes; not analysed",
                                                     limit="max_member_bytes"))
                partial = True
                continue
            entries.append(Entry(info.name, info.size, info))
    members = TarMembers(tf, source, ctx, budget, entries)
    names = {e.name for e in entries}
    if "pickle" in names and names & {"storages", "tensors", "sys_info"}:
        from aivet.analyzers import torch as torch_scan

        outcome = torch_scan.analyze_torch_tar(members, ctx)
    else:
        for entry in entries:
            members.analyze(entry)
        outcome = Outcome("tar")
    if (partial or members.partial) and outcome.status is ArtifactStatus.ANALYZED:
        outcome = Outcome(outcome.format, ArtifactStatus.PARTIAL, "some members were not analysed")
    return outcome


class TarMembers(MembersBase):
    """Bounded access to the regular members of an open :class:`tarfile.TarFile`."""

    def __init__(self, tf: tarfile.TarFile, source: Source, ctx: Context, budget: Budget,
                 entries: list[Entry]) -> None:
        super().__init__(source, ctx, budget, entries)
        self.tf = tf

    def _open(self, entry: Entry) -> tuple[IO[bytes], int | None, int | None]:
        stream = self.tf.extractfile(entry.handle)
        if stream is None:
            raise FormatError(f"member {entry.name!r} is not a regular file")
        # Sparse members can expand beyond their stored bytes; judge them by the ratio too.
        stored = None if not entry.handle.issparse() else max(1, len(entry.handle.sparse or ()) * 512)
        return stream, stored, None

    def _window(self, entry: Entry) -> tuple[int, int] | None:
        info: tarfile.TarInfo = entry.handle
        if info.issparse() or info.offset_data + info.size > self.source.size:
            return None
        return info.offset_data, info.size




def _stray_bytes_at(tf: tarfile.TarFile, source: Source, ctx: Context) -> int | None:
    """Where bytes other than end-of-archive padding start after tarfile stopped (its 512-byte
    block), or ``None`` when only zeros follow. Bounded: a longer tail than one in-memory member
    is not walked."""
    rest = source.size - tf.offset
    fh = tf.fileobj
    if rest <= 0 or fh is None:
        return None
    if rest > ctx.limits.in_memory_member_bytes:
        # Far more than padding, and too much to walk block by block: report it, unread.
        report_gap(source, ctx, tf.offset, source.size, first=False, where="after the end of the tar archive")
        return None
    at = tf.offset
    fh.seek(at)
    while at < source.size:
        chunk = fh.read(min(source.size - at, CHUNK))
        if not chunk:
            return None
        stripped = chunk.lstrip(b"\0")
        if stripped:
            first = at + len(chunk) - len(stripped)
            return tf.offset + (first - tf.offset) // 512 * 512
        at += len(chunk)
    return None
