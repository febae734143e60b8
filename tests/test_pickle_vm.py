"""The symbolic pickle emulator and the allowlist, tested on streams written opcode by opcode."""

from __future__ import annotations

import io
import pickle
from collections import OrderedDict

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aivet.analyzers import allowlist
from aivet.analyzers.allowlist import Classification, classify
from aivet.analyzers.pickle_values import Result
from aivet.analyzers.pickle_vm import LEGACY_TORCH_MAGIC, PickleVM
from aivet.formats import FormatError, LimitExceeded
from aivet.limits import Limits
from tests.fixtures.pickles import Ops
from tests.fixtures.work import HANG_TIMEOUT

LIMITS = Limits()


def run(data: bytes, limits: Limits = LIMITS, ecosystem: str | None = None) -> Result:
    return PickleVM(data, limits, ecosystem=ecosystem).run()


def calls(result: Result, name: str) -> list[str]:
    return [text for _, text in result.uses[name].samples]


# --- resolution of names and call chains -----------------------------------------------------

@pytest.mark.parametrize("proto", [0, 2, 4])
def test_reduce_records_the_call_with_constant_args(proto: int) -> None:
    res = run(Ops(proto).call1("os", "system", "touch /tmp/x").stop())
    assert calls(res, "os.system") == ["os.system('touch /tmp/x')"]
    assert res.uses["os.system"].calls == 1


def test_getattr_import_chain_resolves_to_os_system() -> None:
    """Bypass: builtins.getattr(builtins.__import__('os'), 'system') (fickling test_bypasses)."""
    data = (Ops(2).glob("builtins", "getattr").mark().glob("builtins", "__import__").mark().str("os").tuple()
            .reduce().str("system").tuple().reduce().mark().str("id").tuple().reduce().stop())
    res = run(data)
    assert calls(res, "builtins.getattr") == ["builtins.getattr(<builtins.__import__('os')>, 'system')"]
    assert calls(res, "os.system")[0].startswith("os.system('id')  [via <builtins.getattr(")


def test_stack_global_with_memo_names() -> None:
    """Bypass: STACK_GLOBAL whose module and name come from MEMOIZE/BINGET."""
    data = Ops(4).str("os").raw(b"\x94").str("system").raw(b"\x94h\x00h\x01\x93").mark().str("x").tuple() \
        .reduce().stop()
    assert calls(run(data), "os.system") == ["os.system('x')"]


def test_stack_global_with_computed_name_is_unresolved() -> None:
    data = Ops(4).str("os").glob("builtins", "str").mark().str("system").tuple().reduce().raw(b"\x93").stop()
    res = run(data)
    assert [a.kind for a in res.anomalies] == ["unresolved"]
    assert "computed" in res.anomalies[0].message


def test_methodcaller_and_attrgetter_and_partial() -> None:
    """Bypasses: operator.methodcaller / attrgetter and functools.partial wrapping os.system."""
    mc = (Ops(4).glob("operator", "methodcaller").mark().str("system").str("id").tuple().reduce()
          .mark().glob("builtins", "__import__").mark().str("os").tuple().reduce().tuple().reduce().stop())
    assert calls(run(mc), "os.system")[0].startswith("os.system('id')")
    ag = (Ops(4).glob("operator", "attrgetter").mark().str("system").tuple().reduce()
          .mark().glob("builtins", "__import__").mark().str("os").tuple().reduce().tuple().reduce()
          .mark().str("id").tuple().reduce().stop())
    res = run(ag)
    assert calls(res, "os.system")[0].startswith("os.system('id')")
    assert not res.anomalies
    part = Ops(4).glob("functools", "partial").mark().glob("os", "system").str("id").tuple().reduce() \
        .empty_tuple().reduce().stop()
    assert calls(run(part), "os.system")[0].startswith("os.system('id')")


def test_newobj_ex_with_kwargs_is_rendered() -> None:
    data = Ops(4).glob("mypkg", "Thing").empty_tuple().empty_dict().str("cmd").str("id").setitem() \
        .raw(b"\x92").stop()
    res = run(data)
    assert calls(res, "mypkg.Thing") == ["mypkg.Thing()"] or calls(res, "mypkg.Thing")[0].startswith("mypkg.Thing(")


def test_inst_and_obj_opcodes() -> None:
    res = run(b"(S'id'\nios\nsystem\n.")
    assert calls(res, "os.system") == ["os.system('id')"]
    assert res.uses["os.system"].first_opcode == "INST"
    res = run(b"(cos\nsystem\nS'id'\no.")
    assert calls(res, "os.system") == ["os.system('id')"]


def test_ext_codes_are_unresolvable() -> None:
    res = run(Ops(2).raw(b"\x83\x01\x02").empty_tuple().reduce().stop())
    assert any("extension code 513" in a.message for a in res.anomalies)


def test_build_on_global_and_setstate_noted() -> None:
    res = run(Ops(2).glob("fractions", "Fraction").none().empty_dict().raw(b"\x86b.").stop()[:-1])
    assert [a.kind for a in res.anomalies] == ["build"]
    data = Ops(2).glob("mypkg", "Cls").empty_tuple().raw(b"\x81").empty_dict().build().stop()
    assert run(data).uses["mypkg.Cls"].setstate


def test_persistent_ids_are_recorded() -> None:
    data = Ops(2).mark().str("storage").glob("torch", "FloatStorage").str("0").str("cpu").int(6).tuple() \
        .raw(b"Q").stop()
    res = run(data)
    assert res.persistent_count == 1
    assert res.persistent_ids == ["('storage', torch.FloatStorage, '0', 'cpu', 6)"]


def test_repeated_calls_are_counted_not_listed() -> None:
    ops = Ops(2).mark()
    for i in range(100):
        ops.call1("mypkg", "f", f"a{i}")
    res = run(ops.raw(b"l").stop())
    use = res.uses["mypkg.f"]
    assert use.calls == 100 and len(use.samples) == LIMITS.max_reported_calls_per_global


# --- nested pickles, multiple streams, legacy torch, joblib ------------------------------------

def test_nested_pickle_in_loads_is_emulated() -> None:
    inner = Ops(2).call1("os", "system", "id").stop()
    res = run(Ops(3).glob("pickle", "loads").mark().bytes(inner).tuple().reduce().stop())
    assert res.uses["os.system"].nested == 1
    assert any(a.kind == "nested" for a in res.anomalies)


def test_nesting_is_bounded() -> None:
    data = Ops(2).call1("os", "system", "id").stop()
    for _ in range(12):
        data = Ops(3).glob("pickle", "loads").mark().bytes(data).tuple().reduce().stop()
    res = run(data, Limits(max_pickle_nesting=3))
    assert "os.system" not in res.uses
    assert any("deeper than the limit" in a.message for a in res.anomalies)


def test_consecutive_pickles_and_trailing_garbage() -> None:
    data = pickle.dumps(1, protocol=2) + Ops(2).call1("os", "system", "id").stop() + b"\x00garbage"
    res = run(data)
    assert res.pickles == 2 and "os.system" in res.uses
    assert res.anomalies[-1].kind == "trailing"


def test_legacy_torch_layout_stops_before_storage_bytes() -> None:
    parts = [pickle.dumps(LEGACY_TORCH_MAGIC, protocol=2), pickle.dumps(1001, protocol=2),
             pickle.dumps({"little_endian": True}, protocol=2), pickle.dumps(OrderedDict(), protocol=2),
             pickle.dumps(["0"], protocol=2)]
    res = run(b"".join(parts) + b"\x00" * 8 + b"\x80\x02cos\nsystem\n")  # raw storage bytes, not a pickle
    assert res.legacy_torch and res.pickles == 5 and not res.anomalies and "os.system" not in res.uses


def test_joblib_raw_array_bytes_are_skipped() -> None:
    np = pytest.importorskip("numpy")
    joblib = pytest.importorskip("joblib")
    buf = io.BytesIO()
    # Raw array bytes that would decode as a malicious pickle if parsed as opcodes.
    evil = Ops(2).call1("os", "system", "id").stop()
    arr = np.frombuffer(evil + b"\x00" * (-len(evil) % 8), dtype=np.uint8)
    joblib.dump({"a": arr, "b": np.arange(7, dtype=np.float64), "c": np.array(["x", None], dtype=object)}, buf)
    res = run(buf.getvalue())
    assert res.joblib_arrays == 3
    assert "os.system" not in res.uses and not res.anomalies


def test_joblib_wrapper_without_shape_fails_closed() -> None:
    data = Ops(2).glob("joblib.numpy_pickle", "NumpyArrayWrapper").empty_tuple().raw(b"\x81").empty_dict() \
        .build().stop()
    with pytest.raises(FormatError, match="joblib"):
        run(data)


# --- malformed and hostile streams -------------------------------------------------------------

@pytest.mark.parametrize("data, match", [
    (b"\x80\x02", "without STOP"),
    (b"\x80\x020", "underflow"),
    (b"\x80\x02h\x05.", "memo"),
    (b"\x80\x02X\xff\xff\xff\x7fab.", "runs past"),
    (b"\x80\x02\x95\xff\xff\xff\xff\xff\x00\x00\x00N.", "frame"),
    (b"\x80\x09N.", "protocol"),
    (b"\x80\x02\xffN.", "unknown opcode"),
    (b"(t(", "without STOP"),
    (b"I12x\n.", "argument"),
])
def test_malformed_streams_raise_format_error(data: bytes, match: str) -> None:
    with pytest.raises(FormatError, match=match) as info:
        run(data)
    assert info.value.offset is not None


def test_findings_survive_a_later_format_error() -> None:
    vm = PickleVM(Ops(2).call1("os", "system", "id").raw(b"0000").stop(), LIMITS)
    with pytest.raises(FormatError):
        vm.run()
    assert "os.system" in vm.result.uses


@pytest.mark.timeout(HANG_TIMEOUT)
def test_mark_bomb_hits_the_depth_limit_early() -> None:
    with pytest.raises(LimitExceeded) as info:
        run(b"(" * 2_000_000 + b".", Limits(max_pickle_stack_depth=10_000))
    assert info.value.limit == "max_pickle_stack_depth"
    # Stopped at the mark past the limit, not after walking the other 1.99 million.
    assert info.value.offset is not None and info.value.offset <= 10_001


def test_stack_bomb_hits_the_depth_limit() -> None:
    with pytest.raises(LimitExceeded):
        run(b"N" * 3_000_000 + b".", Limits(max_pickle_stack_depth=100_000))


def test_deep_tuples_finish() -> None:
    data = b"\x80\x02" + b"(" * 50_000 + b"t" * 50_000 + b"."
    assert run(data).pickles == 1


@pytest.mark.timeout(HANG_TIMEOUT)
def test_millions_of_opcodes_within_the_opcode_limit() -> None:
    data = b"\x80\x02]" + b"N\x85a" * 1_000_000 + b"."
    vm = PickleVM(data, LIMITS)
    assert vm.run().pickles == 1
    assert 3_000_000 <= vm.ops <= len(data)  # each opcode counted once (bytes bound the count)
    with pytest.raises(LimitExceeded) as info:
        run(data, Limits(max_pickle_opcodes=500_000))
    assert info.value.limit == "max_pickle_opcodes"
    # Stopped near the 500,000th opcode (counted in chunks), not at the end of the stream.
    assert info.value.offset is not None and info.value.offset < len(data) // 4


# --- property tests ----------------------------------------------------------------------------

_SEEDS = [pickle.dumps(v, protocol=p) for p in range(6) for v in (
    {"a": [1, 2.5, None], "b": (b"x", "y")}, OrderedDict(k=1), [set([1]), frozenset([2]), 10**30])]
_SEEDS.append(Ops(4).str("os").raw(b"\x94").str("system").raw(b"\x94h\x00h\x01\x93").mark().str("x").tuple()
              .reduce().stop())
_SEEDS.append(b"(S'id'\nios\nsystem\n.")


@pytest.mark.timeout(HANG_TIMEOUT)
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.sampled_from(_SEEDS), edits=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)),
                                                     max_size=6), cut=st.integers(0, 10_000))
def test_mutated_pickles_only_raise_format_errors(seed: bytes, edits: list[tuple[int, int]], cut: int) -> None:
    data = bytearray(seed)
    for pos, value in edits:
        data[pos % len(data)] = value
    data = data[: max(1, cut % (len(data) + 1))]
    try:
        run(bytes(data), Limits(max_pickle_opcodes=100_000, max_pickle_stack_depth=10_000))
    except (FormatError, LimitExceeded):
        pass


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=512))
def test_random_bytes_only_raise_format_errors(data: bytes) -> None:
    try:
        run(data, Limits(max_pickle_opcodes=100_000))
    except (FormatError, LimitExceeded):
        pass


# --- the allowlist -----------------------------------------------------------------------------

@pytest.mark.parametrize("name, expected", [
    ("torch._utils._rebuild_tensor_v2", Classification.SAFE),
    ("collections.OrderedDict", Classification.SAFE),
    ("numpy._core.multiarray._reconstruct", Classification.SAFE),
    ("sklearn.linear_model._logistic.LogisticRegression", Classification.SAFE),
    ("sklearn.linear_model._base.make_dataset", Classification.UNKNOWN),  # a function, not an estimator
    ("os.system", Classification.DANGEROUS),
    ("posix.system", Classification.DANGEROUS),
    ("nt.system", Classification.DANGEROUS),
    ("__builtin__.eval", Classification.DANGEROUS),
    ("_pickle.loads", Classification.DANGEROUS),
    ("ossaudiodev.open", Classification.UNKNOWN),  # not os: prefixes match on dotted boundaries
    ("osmodule.system", Classification.UNKNOWN),
    ("pip.main", Classification.DANGEROUS),
    ("pydoc.locate", Classification.DANGEROUS),
    ("numpy.f2py.crackfortran._eval_length", Classification.DANGEROUS),
    ("torch._inductor.codecache.compile_file", Classification.DANGEROUS),
    ("torch.utils._config_module.ConfigModule", Classification.DANGEROUS),
    ("_posixsubprocess.fork_exec", Classification.DANGEROUS),
    ("asyncio.unix_events._UnixSelectorEventLoop", Classification.DANGEROUS),
    ("idlelib.autocomplete.AutoComplete", Classification.DANGEROUS),
    ("lib2to3.pgen2.pgen.ParserGenerator", Classification.DANGEROUS),
    ("distutils.file_util.write_file", Classification.DANGEROUS),
    ("operator.methodcaller", Classification.DANGEROUS),
    ("fractions.math.os.system", Classification.DANGEROUS),  # attribute traversal
    ("o\uff53.system", Classification.DANGEROUS),  # fullwidth letters fold to os
    ("mypkg.Model", Classification.UNKNOWN),
])
def test_classify(name: str, expected: Classification) -> None:
    assert classify(name)[0] is expected


def test_ecosystem_narrows_the_allowlist() -> None:
    assert classify("torch._utils._rebuild_tensor_v2", "numpy")[0] is Classification.UNKNOWN
    assert classify("torch._utils._rebuild_tensor_v2", "torch")[0] is Classification.SAFE


def test_conditional_globals_depend_on_arguments() -> None:
    assert allowlist.conditional_verdict("copyreg._reconstructor", ["collections.OrderedDict", "builtins.object"],
                                         False, None)[0] is Classification.SAFE
    assert allowlist.conditional_verdict("copyreg._reconstructor", ["subprocess.Popen", "builtins.object"],
                                         False, None)[0] is Classification.DANGEROUS
    assert allowlist.conditional_verdict("codecs.encode", [None, None], True, None)[0] is Classification.SAFE
    res = run(Ops(2).glob("_codecs", "encode").mark().glob("os", "getcwd").empty_tuple().reduce().str("latin1")
              .tuple().reduce().stop())
    assert res.uses["codecs.encode"].verdict is Classification.UNKNOWN


def test_bytes_constant_that_is_a_pickle_is_emulated() -> None:
    inner = Ops(2).call1("os", "system", "id").stop()
    res = run(Ops(3).mark().bytes(inner).bytes(b"\x80\x02not a pickle at all.").tuple().stop())
    assert res.uses["os.system"].nested == 1
    assert [a.kind for a in res.anomalies] == ["nested"]  # the look-alike array data stays quiet
