"""The pickle opcode table, the bounded decoder and the header-less pickle check used by sniffing."""

from __future__ import annotations

import pickle
import pickletools
from collections import OrderedDict

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aivet.formats import FormatError
from aivet.formats.pickle_ops import CODES, NAMES, iter_ops, plausible_stream
from aivet.formats.sniff import Format, sniff

VALUES = [{"a": [1, 2.5, None, True], "b": (b"xy", "z" * 300), "c": OrderedDict(k=frozenset([1]))},
          [10**40, -5, 2**31, bytearray(b"ab")], "\u00e9\n\\"]


def test_table_matches_cpython() -> None:
    assert {op.code.encode("latin-1")[0]: op.name for op in pickletools.opcodes} == NAMES
    assert CODES["STACK_GLOBAL"] == 0x93


@pytest.mark.parametrize("proto", range(6))
def test_decoder_agrees_with_pickletools(proto: int) -> None:
    for value in VALUES:
        data = pickle.dumps(value, protocol=proto)
        ours = [(off, NAMES[code]) for off, code, _ in iter_ops(data)]
        theirs = [(pos, op.name) for op, _, pos in pickletools.genops(data)]
        assert ours == theirs


def test_text_arguments_are_returned() -> None:
    ops = list(iter_ops(b"cos\nsystem\n(S'id'\ntR."))
    assert ops[0] == (0, 0x63, (b"os", b"system"))
    assert ops[2][2] == b"'id'"


@pytest.mark.parametrize("data, offset", [
    (b"\x80\x02X\xff\xff\xff\xffab.", 2),  # 4 GiB string claimed in 2 bytes
    (b"\x80\x04\x8d" + b"\xff" * 8 + b".", 2),  # BINUNICODE8 with an absurd length
    (b"\x80\x02J\x01\x02", 2),  # truncated BININT
    (b"\x80\x02T\xff\xff\xff\xff.", 2),  # negative BINSTRING length
    (b"\x80\x02\xfe.", 2),  # not an opcode
])
def test_lengths_are_bounds_checked(data: bytes, offset: int) -> None:
    with pytest.raises(FormatError) as info:
        list(iter_ops(data))
    assert info.value.offset == offset


def test_missing_stop_is_an_error() -> None:
    with pytest.raises(FormatError, match="without STOP"):
        list(iter_ops(b"\x80\x02N"))


@pytest.mark.parametrize("proto", [0, 1])
def test_old_protocols_are_plausible(proto: int) -> None:
    for value in VALUES + [{"weights": [0.5] * 10}, ("x",)]:
        data = pickle.dumps(value, protocol=proto)
        assert plausible_stream(data), data[:40]
    long = pickle.dumps({"k": list(range(2000))}, protocol=proto)
    assert plausible_stream(long[:100])  # cut off by the sniffer's head


@pytest.mark.parametrize("text", [
    "Hello world, this is a README.\n", "I think therefore I am\n", "c'est la vie\n", "(see notes)\n",
    "Look at this.\n", "0.5, 0.25, 0.125\n", "abc\n", "N.B. important\n", "import os\nos.system('x')\n",
    "S'quoted but no end\n", "] end of list\n", "}\n", "#!/bin/sh\necho hi\n",
])
def test_prose_is_not_a_pickle(text: str) -> None:
    assert not plausible_stream(text.encode())


def test_sniff_uses_the_check_for_headerless_pickles() -> None:
    data = pickle.dumps({"a": 1}, protocol=0)
    assert sniff(data, "model.bin", len(data)) is Format.PICKLE
    prose = b"Just some notes about the model.\n"
    assert sniff(prose, "notes", len(prose)) is Format.TEXT


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_never_crash_the_decoder(data: bytes) -> None:
    try:
        for _ in iter_ops(data):
            pass
    except FormatError as exc:
        assert exc.offset is not None
    assert plausible_stream(data) in (True, False)


# --- the data-only walk on hand-made streams (tests/test_pickle_inert.py has the large ones) ---

@pytest.mark.parametrize("data, walked", [
    (b"\x80\x04]\x94(h\x00e.", True),  # a list holding itself: GET of the entry just stored
    (b"\x80\x04]\x94(h\x01e.", False),  # GET of an entry never stored
    (b"\x80\x02]q\x00(K\x01h\x00e.", True),
    (b"\x80\x02]q\x01(K\x01e.", False),  # BINPUT skipping entry 0
    (b"\x80\x04](K\x01K\x02\x86e.", True),  # TUPLE2 of two values
    (b"\x80\x04](K\x01\x86e.", False),  # TUPLE2 of one: underflow
    (b"\x80\x04](]K\x01ae.", True),  # APPEND right after the inner list
    (b"\x80\x04](K\x01ae.", False),  # APPEND with one item in its frame
    (b"\x80\x04(K\x01e.", False),  # APPENDS with nothing under its mark
    (b"\x80\x04](e(K\x01e.", True),  # an empty batch is allowed
    (b"\x80\x04]\x94(\x94e.", False),  # MEMOIZE in an empty frame
    (b"\x80\x04]].", False),  # two values left at STOP (the emulator allows it: emulated)
    (b"\x80\x04](K\x01.", False),  # a mark still open at STOP (likewise)
    (b"\x80\x04\x95\x05\x00\x00\x00\x00\x00\x00\x00]\x94(e.", True),  # FRAME ending at the end
    (b"\x80\x04\x95\x06\x00\x00\x00\x00\x00\x00\x00]\x94(e.", False),  # FRAME running past it
    (b"\x80\x04\x8c\x01\xe9\x94.", False),  # strings are walked only when ASCII
])
def test_data_only_walk_on_small_streams(data: bytes, walked: bool) -> None:
    from aivet.analyzers.pickle_vm import PickleVM
    from aivet.formats.pickle_ops import inert_pickle_end
    from aivet.limits import Limits

    assert (inert_pickle_end(data, 0, len(data), 1_000) == len(data)) is walked
    if walked:  # what the walk accepts, the emulator reads without error
        PickleVM(data, Limits()).run()
