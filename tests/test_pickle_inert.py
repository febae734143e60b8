"""Data-only pickles are walked in C instead of emulated: fast, and never a way to hide a payload.

The walk (``pickle_ops.inert_pickle_end``) may only accept streams whose emulation finds
nothing; everything else must fall back to the emulator. The property tests check exactly
that on mutated streams, and the examples check that payloads next to, after or inside
large data (names fetched from the memo, nested pickles, opcode bytes inside strings) are
still found.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import aivet
from aivet.analyzers import pickle_vm
from aivet.analyzers.pickle_vm import INERT_MIN_BYTES, PickleVM, Result
from aivet.formats import FormatError, LimitExceeded
from aivet.formats.pickle_ops import inert_pickle_end
from aivet.limits import Limits
from tests.fixtures import marker_shell
from tests.fixtures.pickles import Ops
from tests.fixtures.work import HANG_TIMEOUT, python_lines

LIMITS = Limits()
DEPTH = LIMITS.max_pickle_stack_depth


def records(n: int) -> list[Any]:
    """Like the benchmark's many-objects pickle, with every data-only opcode family in it."""
    return [{"id": i, "name": f"item{i}", "vals": [i, i + 1.5, -i * 70_000], "tag": None, "ok": i % 2 == 0,
             "t": (i, "x"), "e": {}, "u": "\u00e9\u4e2d", "empty": []} for i in range(n)]


BIG = records(15_000)  # 1.1-1.5 MB pickled: above INERT_MIN_BYTES for every protocol


def big(proto: int) -> bytes:
    data = pickle.dumps(BIG, protocol=proto)
    assert len(data) >= INERT_MIN_BYTES
    return data


def emulate(data: bytes, limits: Limits = LIMITS) -> Result:
    return PickleVM(data, limits).run()


@pytest.fixture
def no_emulation(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if the emulator's opcode loop runs at all."""
    def loop(self: PickleVM, pos: int) -> Any:
        raise AssertionError("data-only stream was emulated instead of walked")
    monkeypatch.setattr(PickleVM, "_loop", loop)


# --- the fast path is taken and agrees with emulation ---------------------------------------

@pytest.mark.parametrize("proto", [2, 3, 4, 5])  # protocol 1 writes booleans as text
def test_large_data_only_pickles_are_walked(proto: int, no_emulation: None) -> None:
    data = big(proto)
    assert inert_pickle_end(data, 0, len(data), DEPTH) == len(data)
    result = emulate(data)
    assert result.pickles == 1 and result.end == len(data)
    assert result.uses == {} and result.anomalies == []


@pytest.mark.parametrize("proto", [2, 4])
def test_walk_and_emulation_agree(proto: int, monkeypatch: pytest.MonkeyPatch) -> None:
    data = big(proto)
    walked = emulate(data)
    monkeypatch.setattr(pickle_vm, "INERT_MIN_BYTES", 1 << 62)
    emulated = emulate(data)
    assert (walked.uses, walked.anomalies, walked.end, walked.pickles) == \
        (emulated.uses, emulated.anomalies, emulated.end, emulated.pickles)


@pytest.mark.parametrize("proto", [2, 4])
def test_walk_does_no_per_opcode_python_work(proto: int, monkeypatch: pytest.MonkeyPatch) -> None:
    # The point of the walk, measured without a clock: its Python work does not grow with the
    # stream (past a fixed look at the first opcodes, the loop runs in C), while emulation's
    # grows with every opcode.
    small, large = (pickle.dumps(records(n), protocol=proto) for n in (500, 2000))
    monkeypatch.setattr(pickle_vm, "INERT_MIN_BYTES", 1)
    emulate(small)  # compiles the walk's grammar once per process: not work per stream
    _, walk_small = python_lines(lambda: emulate(small))
    _, walk_large = python_lines(lambda: emulate(large))
    monkeypatch.setattr(pickle_vm, "INERT_MIN_BYTES", 1 << 62)
    _, emulate_small = python_lines(lambda: emulate(small))
    assert walk_large == walk_small, (walk_small, walk_large)
    assert emulate_small > 10 * walk_small, (walk_small, emulate_small)


def test_opcode_bytes_inside_strings_are_data(no_emulation: None) -> None:
    # Every dangerous opcode spelled inside string and bytes payloads: never read as opcodes.
    lure = ["cos\nsystem\n", "\x93R", "(S'id'\nios\nsystem\n.", "\x81\x92b\x82\x83\x84PQio", "\x80\x04\x95."]
    data = pickle.dumps([[*(t + str(i) for t in lure), b"cos\nsystem\n" + bytes([i % 256])] for i in range(12_000)],
                        protocol=4)
    assert len(data) >= INERT_MIN_BYTES
    assert emulate(data).uses == {}


# --- anything that is not plain data falls back to emulation ----------------------------------

def test_call_after_large_data_is_found(tmp_path: Path) -> None:
    body = big(2)[:-1]  # the list is left on the stack
    call = Ops(2).call1("os", "system", marker_shell(tmp_path, "after")).out[2:]
    result = emulate(body + bytes(call) + b"a.")
    assert result.uses["os.system"].calls == 1


def test_stack_global_with_names_memoized_inside_the_data(tmp_path: Path) -> None:
    # memo 0 is the list, 1 "os", 2 "system"; the names are only fetched after the data.
    body = pickle.dumps(["os", "system", *BIG], protocol=4)[:-1]
    assert body[body.index(b"\x8c\x02os"):].startswith(b"\x8c\x02os\x94\x8c\x06system\x94")
    arg = marker_shell(tmp_path, "memo").encode()
    tail = b"h\x01h\x02\x93X" + len(arg).to_bytes(4, "little") + arg + b"\x85Ra."
    result = emulate(body + tail)
    use = result.uses["os.system"]
    assert use.calls == 1 and "os.system(" in use.samples[0][1]


@pytest.mark.parametrize("opcodes", [
    b"cos\nsystem\n0",  # GLOBAL
    b"\x8c\x02os\x8c\x06system\x930",  # STACK_GLOBAL
    b"\x82\x010",  # EXT1
    b"Pabc\n0",  # PERSID
])
def test_one_global_in_a_dict_falls_back(opcodes: bytes) -> None:
    # The opcodes sit between two values of the big list's last batch.
    data = big(4)
    cut = data.rindex(b"e.")
    result = emulate(data[:cut] + opcodes + data[cut:])
    assert result.uses or result.anomalies or result.persistent_count


def test_nested_pickle_in_bytes_is_still_found(tmp_path: Path) -> None:
    inner = Ops(4).call1("os", "system", marker_shell(tmp_path, "nested")).stop()
    data = pickle.dumps([*BIG, inner], protocol=4)
    result = emulate(data)
    assert "os.system" in result.uses
    assert any(a.kind == "nested" for a in result.anomalies)


def test_limits_still_apply_to_data_only_streams() -> None:
    data = big(4)
    with pytest.raises(LimitExceeded) as info:
        emulate(data, Limits(max_pickle_opcodes=len(data) // 4))
    assert info.value.limit == "max_pickle_opcodes"
    flat = b"\x80\x02](" + b"N" * 300_000 + b"e" + b"]" * 1_000_000 + b"e."
    assert inert_pickle_end(flat, 0, len(flat), 100_000) is None  # too many items under one mark
    with pytest.raises(LimitExceeded):
        emulate(flat, Limits(max_pickle_stack_depth=100_000))


def test_model_pickles_are_declined_without_compiling_the_grammar(monkeypatch: pytest.MonkeyPatch) -> None:
    from collections import OrderedDict

    from aivet.formats import pickle_ops

    def boom(max_items: int) -> Any:
        raise AssertionError("grammar compiled for a stream that names a class up front")
    monkeypatch.setattr(pickle_ops, "_inert_pattern", boom)
    data = pickle.dumps(OrderedDict((f"layer{i}", BIG[i]) for i in range(2000)), protocol=4)
    assert inert_pickle_end(data, 0, len(data), DEPTH) is None


def test_deeper_nesting_than_the_walk_handles_is_emulated() -> None:
    deep: Any = 1
    for _ in range(12):
        deep = [deep, deep]
    data = pickle.dumps([deep] * 2 + BIG, protocol=4)
    assert inert_pickle_end(data, 0, len(data), DEPTH) is None
    assert emulate(data).uses == {}


def test_malformed_data_only_streams_are_not_walked() -> None:
    data = big(4)
    assert data.endswith(b"ue.")
    for broken in (data[:-1], data[:-1] + b"0.", b"\x80\x04e" + data[2:], data[:-2] + b".", data[:-3] + b"e.",
                   data[:-1] + b"e."):
        assert inert_pickle_end(broken, 0, len(broken), DEPTH) is None
        with pytest.raises(FormatError):
            emulate(broken)


def test_scan_of_a_large_data_pickle_is_clean(tmp_path: Path) -> None:
    path = tmp_path / "data.pkl"
    path.write_bytes(big(4))
    evidence = aivet.scan(path)
    assert [f for f in evidence.findings] == []


# --- properties ------------------------------------------------------------------------------

_SEEDS = [pickle.dumps(v, protocol=p) for p in range(6) for v in (
    records(3), [["cos\nsystem\n", b"\x93R", 1.5, None, True]], {"k": ("a", 2, [3, {4: "b"}])})]
_SEEDS += [Ops(4).str("os").raw(b"\x94").str("system").raw(b"\x94h\x00h\x01\x93").mark().str("x").tuple()
           .reduce().stop(), Ops(2).call1("os", "system", "x").stop(), b"\x80\x04]\x94(cos\nsystem\nN\x85Re."]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.sampled_from(_SEEDS), edits=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)),
                                                     max_size=6), cut=st.integers(0, 10_000))
def test_walked_streams_never_hide_anything(seed: bytes, edits: list[tuple[int, int]], cut: int) -> None:
    """Soundness: whatever the walk accepts, emulation finds no global, call or anomaly in."""
    data = bytearray(seed)
    for pos, value in edits:
        data[pos % len(data)] = value
    data = data[: max(1, cut % (len(data) + 1))]
    after = inert_pickle_end(bytes(data), 0, len(data), 10_000)
    if after is None:
        return
    assert 0 < after <= len(data) and data[after - 1] == 0x2E
    vm = PickleVM(bytes(data[:after]), Limits(max_pickle_stack_depth=10_000))
    try:
        vm.run_one(0)
    except FormatError:
        pass  # e.g. a dangling memo reference: loading fails, and nothing could have run
    assert vm.result.uses == {} and vm.result.anomalies == [] and vm.result.persistent_count == 0


_DATA = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**31), 2**31 - 1) | st.floats(allow_nan=False)
    | st.text(max_size=300) | st.binary(max_size=20),
    lambda inner: st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=5), inner, max_size=5)
    | st.lists(inner, max_size=4).map(tuple),
    max_leaves=30)


@settings(max_examples=200, deadline=None)
@given(value=_DATA, proto=st.integers(0, 5))
def test_walk_accepts_only_what_emulation_accepts(value: Any, proto: int) -> None:
    data = pickle.dumps(value, protocol=proto)
    after = inert_pickle_end(data, 0, len(data), DEPTH)
    if after is None:
        return
    assert after == len(data)
    _, end = PickleVM(data, LIMITS).run_one(0)
    assert end == after


@pytest.mark.timeout(HANG_TIMEOUT)
@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=600))
def test_walk_of_random_bytes_returns_or_declines(data: bytes) -> None:
    after = inert_pickle_end(data, 0, len(data), 1_000)
    assert after is None or 0 < after <= len(data)
