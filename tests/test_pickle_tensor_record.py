"""The tensor-record superinstruction must be the opcode loop, only faster.

``PickleVM._tensor_record`` applies torch's ~30-opcode tensor record in one step once a regex
has proved the bytes have its shape. These tests hold it to the loop: on real ``torch.save``
output (every int width, 0 to 5 dimensions, memo indexes past 256, protocols 2 to 5, shared
storages, parameters) and on spoiled copies of it, the emulator must leave exactly the same
result (uses, call samples, anomalies, persistent ids, where it stopped) and raise the same
error, with the superinstruction on and off. Payloads fetched from the memo into a record's
slots are still reported call by call.
"""

from __future__ import annotations

import io
import re
import zipfile
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aivet.analyzers import pickle_vm
from aivet.analyzers.allowlist import Classification
from aivet.analyzers.pickle_values import Result
from aivet.analyzers.pickle_vm import PickleVM
from aivet.formats import FormatError, LimitExceeded
from aivet.formats.pickle_ops import iter_ops
from aivet.limits import Limits
from tests.fixtures.pickles import spoil

torch = pytest.importorskip("torch", reason="torch (a dev dependency) makes the real checkpoints these tests read")

LIMITS = Limits()


def _data_pkl(obj: Any, protocol: int = 2) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf, pickle_protocol=protocol)
    with zipfile.ZipFile(io.BytesIO(buf.getvalue())) as zf:
        name = next(n for n in zf.namelist() if n.endswith("/data.pkl"))
        return zf.read(name)


def _state_dict(n: int) -> dict[str, Any]:
    """Every shape the record regex distinguishes: int widths, 0 to 5 dimensions, offsets, dtypes."""
    base = torch.zeros(4, 3)
    shared = torch.arange(20.0)
    tensors: dict[str, Any] = {
        "scalar": torch.tensor(1.5),
        "long1_size": torch.zeros(1).expand(3_000_000_000),  # size past 2**31: LONG1
        "bigint_size": torch.zeros(1).expand(70_000),  # BININT
        "offset": shared[7:],
        "tied": shared[2:5],  # the same storage again
        "five_d": torch.zeros(1, 2, 1, 2, 1),  # MARK ... TUPLE
        "half": torch.zeros(2, dtype=torch.float16),
        "ids": torch.arange(6).reshape(2, 3),
        "mask": torch.ones(3, dtype=torch.bool),
        "grad": torch.zeros(2, requires_grad=True),
        "param": torch.nn.Parameter(torch.ones(2)),
        "transposed": base.t(),
    }
    for i in range(n):
        tensors[f"layers.{i}.weight"] = torch.zeros(3 + i % 3, 2)
    return tensors


def _observe(data: bytes, records: bool) -> tuple[Result, str | None]:
    """Emulate ``data``; return everything the emulator recorded and the error it raised, if any."""
    saved = pickle_vm.TENSOR_RECORDS
    pickle_vm.TENSOR_RECORDS = records
    vm = PickleVM(data, LIMITS, ecosystem="torch")
    try:
        vm.run()
        error = None
    except FormatError:
        error = "FormatError"
    except LimitExceeded as exc:
        error = f"LimitExceeded {exc.limit}"
    finally:
        pickle_vm.TENSOR_RECORDS = saved
    return vm.result, error


def _count_records(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    applied = [0]
    original = pickle_vm.tensor_record

    def counting(vm: PickleVM, func: Any, pos: int, memo: list[Any], chunk_end: int) -> Any:
        record = original(vm, func, pos, memo, chunk_end)
        applied[0] += record is not None
        return record

    monkeypatch.setattr(pickle_vm, "tensor_record", counting)
    return applied


# name -> (data.pkl, how many tensors it holds)
CASES = {
    "protocol 2, memo past 256": (_data_pkl(_state_dict(120)), 132),
    "protocol 2, small": (_data_pkl(_state_dict(3)), 15),
    "protocol 4": (_data_pkl(_state_dict(40), protocol=4), 52),
    "protocol 5": (_data_pkl(_state_dict(5), protocol=5), 17),
    "a bare tensor": (_data_pkl(torch.zeros(2, 2)), 1),
    "a list of tensors": (_data_pkl([torch.zeros(2), torch.ones(3), torch.zeros(1, 1)]), 3),
}
SEEDS = {name: data for name, (data, _) in CASES.items()}


@pytest.mark.parametrize("name", list(SEEDS))
def test_real_checkpoints_leave_the_same_result_on_both_paths(name: str) -> None:
    data, tensors = CASES[name]
    fast = _observe(data, records=True)
    assert fast == _observe(data, records=False)
    assert fast[1] is None
    assert fast[0].persistent_count == tensors  # every storage, whichever path read it


def test_the_superinstruction_takes_most_records(monkeypatch: pytest.MonkeyPatch) -> None:
    """Not a vacuous comparison: on a real checkpoint nearly every record goes the fast way."""
    applied = _count_records(monkeypatch)
    result, _ = _observe(SEEDS["protocol 2, memo past 256"], records=True)
    tensors = result.uses["torch._utils._rebuild_tensor_v2"].calls
    assert tensors >= 130 and applied[0] >= tensors - 8


def test_protocol_4_memoize_and_long1_shapes_are_taken(monkeypatch: pytest.MonkeyPatch) -> None:
    applied = _count_records(monkeypatch)
    _observe(SEEDS["protocol 4"], records=True)
    assert applied[0] >= 40


def test_a_payload_in_the_callable_slot_is_reported_for_every_record() -> None:
    """The record's callable is whatever the memo holds: a payload there is called N times."""
    data, tensors = CASES["protocol 2, small"]
    assert data.count(b"ctorch._utils\n_rebuild_tensor_v2\n") == 1
    evil = data.replace(b"ctorch._utils\n_rebuild_tensor_v2\n", b"cposix\nsystem\n")
    fast, error = _observe(evil, records=True)
    assert error is None and (fast, error) == _observe(evil, records=False)
    use = fast.uses["os.system"]
    assert use.calls == tensors
    assert use.samples and "os.system(" in use.samples[0][1]


def test_a_payload_in_the_dict_slot_is_reported_for_every_record() -> None:
    data, tensors = CASES["protocol 2, small"]
    evil = data.replace(b"ccollections\nOrderedDict\n", b"cbuiltins\neval\n", 1)
    fast, error = _observe(evil, records=True)
    assert error is None and (fast, error) == _observe(evil, records=False)
    assert fast.uses["builtins.eval"].calls >= tensors  # the parameter's hooks are one more


def test_a_memo_store_that_skips_ahead_inside_a_record_is_a_parse_error() -> None:
    data = bytearray(SEEDS["protocol 2, memo past 256"])
    record = re.search(rb"h\x02\(\(h\x03h\x04X", bytes(data[2000:]))
    assert record is not None
    at = 2000 + record.end()
    key_len = int.from_bytes(data[at:at + 4], "little")
    put = at + 4 + key_len  # the BINPUT or LONG_BINPUT after the storage key
    assert data[put] in (0x71, 0x72)
    if data[put] == 0x71:
        data[put + 1] = 0xFF
    else:
        data[put + 1:put + 5] = (10**6).to_bytes(4, "little")
    fast = _observe(bytes(data), records=True)
    assert fast[1] == "FormatError" and fast == _observe(bytes(data), records=False)


def test_the_records_still_count_against_the_opcode_limit() -> None:
    data = _data_pkl({f"w{i}": torch.zeros(2, 2) for i in range(1500)})
    assert len(data) > 2 * pickle_vm._CHUNK  # the limit is checked once per chunk
    ops = sum(1 for _ in iter_ops(data))
    tight = Limits(max_pickle_opcodes=ops // 4)
    saved = pickle_vm.TENSOR_RECORDS
    try:
        for records in (True, False):
            pickle_vm.TENSOR_RECORDS = records
            with pytest.raises(LimitExceeded) as exc:
                PickleVM(data, tight).run()
            assert exc.value.limit == "max_pickle_opcodes"
    finally:
        pickle_vm.TENSOR_RECORDS = saved


@st.composite
def _spoiled(draw: st.DrawFn) -> bytes:
    """A real checkpoint pickle with bytes flipped, opcodes deleted or duplicated, or cut short."""
    opcode_bytes = st.sampled_from([0x28, 0x29, 0x2E, 0x4A, 0x4B, 0x4D, 0x51, 0x52, 0x58, 0x68, 0x6A, 0x71, 0x72,
                                    0x74, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8A, 0x8C, 0x94, 0x00, 0xFF])
    return spoil(draw, draw(st.sampled_from(list(SEEDS.values()))), draw(st.integers(1, 3)),
                 opcode_bytes | st.integers(0, 255))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_spoiled())
def test_spoiled_checkpoints_leave_the_same_result_on_both_paths(data: bytes) -> None:
    assert _observe(data, records=True) == _observe(data, records=False)


def test_verdicts_are_unchanged_for_a_clean_checkpoint() -> None:
    result, _ = _observe(SEEDS["protocol 2, memo past 256"], records=True)
    assert all(use.verdict in (None, Classification.SAFE) for use in result.uses.values())
    assert not result.anomalies
