"""Red-team regression tests: published and new ways to get a pickle past a scanner.

Every payload is written opcode by opcode and is harmless if ever loaded: it runs at most
``marker_shell`` / ``marker_code`` (a marker file in a temp dir), or names a gadget that is
only referenced. Each test names the technique (and the advisory or write-up where there is
one); each must end in a finding of HIGH or above, where a weaker scanner reports nothing or
only a low/medium note. Techniques already covered by tests/fixtures/pickles.py (the corpus)
or tests/test_pickle_vm.py are not repeated here.
"""

from __future__ import annotations

import io
import pickle
from collections import OrderedDict
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aivet.analyzers import allowlist
from aivet.analyzers.allowlist import Classification, classify
from aivet.analyzers.context import Context
from aivet.analyzers.pickle import analyze_pickle
from aivet.analyzers.pickle_vm import PickleVM
from aivet.analyzers.source import Source
from aivet.evidence import Finding, Severity
from aivet.formats import FormatError, LimitExceeded
from aivet.limits import Limits
from tests.fixtures import marker_code, marker_shell
from tests.fixtures.pickles import Ops

HIGH_OR_ABOVE = (Severity.HIGH, Severity.CRITICAL)


def scan(data: bytes, ecosystem: str | None = None) -> list[Finding]:
    """Findings of the pickle analyzer on ``data`` (a parse error still leaves earlier findings)."""
    ctx = Context("bypass")
    try:
        analyze_pickle(Source.from_bytes(data, "x.pkl"), ctx, ecosystem=ecosystem)
    except (FormatError, LimitExceeded):
        pass
    return list(ctx.findings)


def top(data: bytes, ecosystem: str | None = None) -> Severity | None:
    found = scan(data, ecosystem)
    return max((f.severity for f in found), key=lambda s: s.rank, default=None)


def assert_caught(data: bytes, ecosystem: str | None = None, rule: str | None = None) -> list[Finding]:
    found = scan(data, ecosystem)
    assert any(f.severity in HIGH_OR_ABOVE for f in found), [(f.rule_id, f.severity, f.message) for f in found]
    if rule is not None:
        assert any(f.rule_id == rule and f.severity in HIGH_OR_ABOVE for f in found), \
            [(f.rule_id, f.severity, f.message) for f in found]
    return found


@pytest.fixture
def sh(tmp_path: Path) -> str:
    return marker_shell(tmp_path, "bypass")


@pytest.fixture
def py(tmp_path: Path) -> str:
    return marker_code(tmp_path, "bypass")


# --- 1. gadget callables outside the usual blocklists -------------------------------------------
# Called directly, an unknown global is already HIGH (allowlist first); these must be CRITICAL
# so that a mere *reference* (which some channel below may turn into a call) is loud too.
GADGETS = [
    "pydoc.locate", "pip.main", "pip._internal.cli.main.main", "numpy.f2py.crackfortran._eval_length",
    "lib2to3.pgen2.pgen.ParserGenerator", "idlelib.pyshell.ModifiedInterpreter", "distutils.file_util.write_file",
    "cProfile.run", "profile.run", "timeit.timeit", "trace.Trace", "pdb.run", "doctest.debug_script",
    "doctest.run_docstring_examples", "code.InteractiveInterpreter", "torch._inductor.codecache.compile_file",
    "torch.utils._config_module.ConfigModule", "torch.fx.experimental.symbolic_shapes.ShapeEnv",
    "torch._dynamo.guards.GuardBuilder", "torch.utils.collect_env.run", "torch.testing._internal.common_utils.shell",
    "uuid._get_command_stdout", "_osx_support._read_output", "_aix_support._read_cmd_output",
    "_pyrepl.pager.pipe_pager", "pydoc.pipepager", "multiprocessing.util.spawnv_passfds",
    "asyncio.create_subprocess_shell", "asyncio.subprocess.create_subprocess_exec", "logging.config.dictConfig",
    "logging.config.valid_ident", "test.support.script_helper.assert_python_ok", "test.support.os_helper.rmtree",
    "_posixsubprocess.fork_exec", "ensurepip._run_pip", "venv.EnvBuilder", "zipimport.zipimporter",
    "ctypes.CDLL", "_ctypes.dlopen", "builtins.getattr", "operator.attrgetter", "operator.methodcaller",
    "functools.partial", "pickle.loads", "_pickle.loads", "pty.spawn", "tkinter.Tk", "turtle.Screen",
    "unittest.mock.patch", "sqlite3.connect", "webbrowser.open", "smtplib.SMTP", "socketserver.TCPServer",
    "http.server.HTTPServer", "urllib.request.urlopen", "xmlrpc.client.ServerProxy", "shutil.rmtree",
    "tempfile.mkdtemp", "glob.glob", "io.open", "_io.FileIO", "codecs.open", "bdb.Bdb", "imaplib.IMAP4",
    "runpy.run_path", "importlib.import_module", "pkgutil.resolve_name", "site.addsitedir", "sys.modules",
    "builtins.__import__", "numpy.load", "numpy.lib.npyio.load", "numpy.testing._private.extbuild.build_and_import_extension",
    "numpy.distutils.exec_command.exec_command", "joblib.load", "torch.load", "torch.hub.load",
    "torch.jit.load", "torch.package.PackageImporter", "torch.utils.cpp_extension.load_inline",
    "torch.serialization.load", "torch._C._jit_compile", "torch.classes.load_library",
    "torch.ops.load_library", "copyreg.add_extension", "copyreg._extension_registry", "gc.get_objects",
    "builtins.type", "builtins.breakpoint", "numpy.ctypeslib.load_library", "cffi.FFI",
    "subprocess.run", "os.system", "posix.system", "nt.system", "commands.getoutput",
    # Python 2 names that pickle's fix_imports maps to Python 3 modules (protocols 0-2)
    "SocketServer.TCPServer", "__builtin__.reduce", "test.test_support.run_unittest", "Tkinter.Tk",
    "xmlrpclib.ServerProxy", "_multiprocessing.Connection",
    # torch.load(weights_only=False) of embedded bytes
    "torch.storage._load_from_bytes",
]


@pytest.mark.parametrize("gadget", GADGETS)
def test_gadgets_are_dangerous_even_when_only_referenced(gadget: str, py: str) -> None:
    """picklescan / modelscan bypass advisories 2024-2025 (JFrog, Sonatype, fickling write-ups)."""
    assert classify(gadget)[0] is Classification.DANGEROUS, gadget
    module, name = gadget.rsplit(".", 1)
    data = Ops(2).glob(module, name).raw(b"0").glob("builtins", "exec").mark().str(py).tuple().reduce().stop()
    found = scan(Ops(4).stack_global(module, name).stop())
    assert found and found[0].severity is Severity.CRITICAL
    assert top(data) is Severity.CRITICAL


# --- 2. channels that call a global without a REDUCE of it --------------------------------------
# A global that is only referenced is a medium finding; each of these makes the loader call one.
GADGET = ("uuid", "_get_command_stdout")  # stands for any gadget no blocklist knows
UNLISTED = ("mypkg.tools", "run")  # and for a name on no list at all


@pytest.mark.parametrize("module, name", [GADGET, UNLISTED])
def test_rebuild_from_type_calls_its_func(module: str, name: str, sh: str) -> None:
    """torch._tensor._rebuild_from_type_v2(func, type, args, state) calls func(*args)."""
    data = (Ops(2).glob("torch._tensor", "_rebuild_from_type_v2").mark().glob(module, name)
            .glob("torch", "Tensor").mark().str(sh).tuple().empty_dict().tuple().reduce().stop())
    found = assert_caught(data, "torch")
    assert any(f.details.get("global") == f"{module}.{name}" and f.severity in HIGH_OR_ABOVE for f in found)


@pytest.mark.parametrize("ctor", ["__generator_ctor", "__randomstate_ctor"])
def test_numpy_random_ctor_calls_its_bit_generator_ctor(ctor: str, sh: str) -> None:
    """numpy.random._pickle.__generator_ctor(name, bit_generator_ctor) calls bit_generator_ctor(name)."""
    data = (Ops(2).glob("numpy.random._pickle", ctor).mark().str(sh).glob(*UNLISTED).tuple().reduce().stop())
    assert_caught(data, "numpy")


def test_numpy_bit_generator_ctor_instantiates_a_class() -> None:
    """numpy.random._pickle.__bit_generator_ctor(cls) calls cls() when given a type."""
    data = Ops(2).glob("numpy.random._pickle", "__bit_generator_ctor").mark().glob(*UNLISTED).tuple().reduce().stop()
    assert_caught(data, "numpy")


def test_numpy_reconstruct_with_a_foreign_subtype() -> None:
    """numpy.core.multiarray._reconstruct(subtype, ...) instantiates subtype (ndarray.__new__)."""
    data = (Ops(2).glob("numpy.core.multiarray", "_reconstruct").mark().glob("mypkg", "Array").mark().int(0)
            .tuple().str("b").tuple().reduce().stop())
    assert_caught(data, "numpy")


def test_conditional_globals_are_checked_after_many_benign_calls() -> None:
    """The verdict of copyreg._reconstructor was taken from its first 80 calls only."""
    ops = Ops(2).mark()
    for _ in range(200):
        ops.glob("copyreg", "_reconstructor").mark().glob("collections", "OrderedDict").glob("builtins", "object") \
            .none().tuple().reduce()
    ops.glob("copyreg", "_reconstructor").mark().glob(*UNLISTED).glob("builtins", "object").none().tuple().reduce()
    assert_caught(ops.raw(b"l").stop())


def test_unknown_global_passed_to_an_allowlisted_call(sh: str) -> None:
    """An allowlisted callable may call, iterate or hash what it is given: the argument counts."""
    ops = Ops(2).mark()
    for _ in range(40):  # past the sampled calls, where a call is only counted
        ops.glob("collections", "OrderedDict").empty_tuple().reduce()
    ops.glob("collections", "OrderedDict").mark().glob(*UNLISTED).tuple().reduce()
    found = assert_caught(ops.raw(b"l").stop())
    assert any(f.details.get("global") == "mypkg.tools.run" and f.severity is Severity.HIGH for f in found)


def _reconstructed(ops: Ops, cls: tuple[str, str] = ("collections", "OrderedDict")) -> Ops:
    return ops.glob("copyreg", "_reconstructor").mark().glob(*cls).glob("builtins", "object").none().tuple() \
        .reduce()


def test_second_build_installs_setstate(sh: str) -> None:
    """BUILD {'__setstate__': f} puts f in the instance dict; the next BUILD calls f(state)."""
    data = (_reconstructed(Ops(2)).empty_dict().str("__setstate__").glob(*GADGET).setitem().build()
            .str(sh).build().stop())
    assert_caught(data, rule="PICKLE-SUSPICIOUS-BUILD")
    data = (_reconstructed(Ops(2)).empty_dict().str("__setstate__").glob(*UNLISTED).setitem().build()
            .str(sh).build().stop())
    assert_caught(data, rule="PICKLE-SUSPICIOUS-BUILD")


@pytest.mark.parametrize("op", [b"a", b"e", b"\x90"])
def test_append_after_build_calls_an_instance_attribute(op: bytes, sh: str) -> None:
    """APPEND(S) on a non-list calls obj.extend / obj.append, ADDITEMS obj.add: an instance attribute
    a BUILD set (sklearn.utils._bunch.Bunch is allowlisted and has an instance dict)."""
    attr = {b"a": "extend", b"e": "extend", b"\x90": "add"}[op]
    ops = Ops(4).glob("sklearn.utils._bunch", "Bunch").empty_tuple().raw(b"\x81").empty_dict().str(attr) \
        .glob(*UNLISTED).setitem().build()
    ops = ops.str(sh).raw(op) if op == b"a" else ops.mark().str(sh).raw(op)
    assert_caught(ops.stop(), "sklearn", rule="PICKLE-SUSPICIOUS-BUILD")


def test_build_slot_state_swaps_the_class(sh: str) -> None:
    """BUILD (None, {'__class__': Evil}) runs setattr(obj, '__class__', Evil): every later use of the
    object (hashing it as a key, passing it to a constructor) runs Evil's methods."""
    data = (_reconstructed(Ops(2)).none().empty_dict().str("__class__").glob(*UNLISTED).setitem().raw(b"\x86")
            .build().stop())
    assert_caught(data, rule="PICKLE-SUSPICIOUS-BUILD")


@pytest.mark.parametrize("op", [b"s", b"a"])
def test_mutating_a_global_is_suspicious(op: bytes) -> None:
    """SETITEM / APPEND on an imported object changes the loading process (copyreg's extension
    registry, a module's dict reached by a dotted name, sklearn's ACTIVATIONS table)."""
    ops = Ops(4).stack_global("sklearn.neural_network._base", "ACTIVATIONS")
    ops = ops.str("relu").glob(*UNLISTED).raw(op) if op == b"s" else ops.glob(*UNLISTED).raw(op)
    assert_caught(ops.stop(), "sklearn", rule="PICKLE-SUSPICIOUS-BUILD")


def test_rebuild_parameter_with_state_then_build() -> None:
    """torch._utils._rebuild_parameter_with_state sets attributes from its state; a BUILD after it
    can call one of them as __setstate__."""
    data = (Ops(2).glob("torch._utils", "_rebuild_parameter_with_state").mark().none().raw(b"\x89").none()
            .empty_dict().tuple().reduce().str("x").build().stop())
    assert_caught(data, "torch", rule="PICKLE-SUSPICIOUS-BUILD")


# --- 3. names that walk attributes (protocol 4 find_class) --------------------------------------

@pytest.mark.parametrize("module, name", [
    ("collections", "OrderedDict.__init__.__globals__"),
    ("torch._utils", "_rebuild_tensor_v2.__globals__"),
    ("torch._utils", "_rebuild_tensor_v2.__builtins__.eval"),
    ("numpy.core.multiarray", "_reconstruct.__self__"),
    ("builtins", "object.__subclasses__"),
    ("copyreg", "_reconstructor.__globals__"),
    ("sklearn.linear_model._logistic", "LogisticRegression.__init__.__globals__"),
    ("datetime", "datetime.__class__.__call__"),
])
def test_dunder_attribute_chains_are_dangerous(module: str, name: str) -> None:
    """find_class (protocol 4+) walks dotted names: an allowlisted head reaches module globals."""
    assert classify(f"{module}.{name}")[0] is Classification.DANGEROUS
    assert top(Ops(4).stack_global(module, name).stop()) is Severity.CRITICAL


def test_module_dunders_used_by_real_pickles_stay_quiet() -> None:
    assert classify("copyreg.__newobj__")[0] is Classification.SAFE
    assert classify("__main__.Model")[0] is Classification.UNKNOWN
    assert classify("numpy.random._pickle.__randomstate_ctor")[0] is Classification.SAFE


def test_module_dict_rewrite_through_globals_is_caught() -> None:
    """Rewrite torch._utils' module dict, then call the allowlisted rebuild that reads it."""
    data = (Ops(4).stack_global("torch._utils", "_rebuild_tensor_v2.__globals__").str("_rebuild_tensor")
            .stack_global(*UNLISTED).setitem().raw(b"0").stack_global("torch._utils", "_rebuild_tensor_v2")
            .empty_tuple().reduce().stop())
    assert_caught(data, "torch")


# --- 4. the scikit-learn class rule ------------------------------------------------------------

@pytest.mark.parametrize("name", [
    "sklearn.cluster._kmeans.ABCMeta",  # abc.ABCMeta imported: builds classes (runs __init_subclass__)
    "sklearn.linear_model._logistic.scipy.io.FortranFile",  # module alias: FortranFile(path, 'w') writes
    "sklearn.ensemble._forest.threading.Thread",  # a module alias reaching threading
    "sklearn.ensemble._forest.Parallel",  # sklearn.utils.parallel.Parallel imported, not defined there
    "sklearn.tree._export.StringIO",
    "sklearn.linear_model._logistic.np.lib.npyio.NpzFile",  # reads any file named
    "sklearn.linear_model._logistic.LogisticRegression.Something",  # class attribute chain
    "sklearn.linear_model._logistic.LogisticRegression.__init__.__globals__",
    "sklearn.tree._tree.__builtins__.Exception",
    "sklearn.neighbors._base.Real",
])
def test_sklearn_rule_accepts_only_sklearn_shaped_class_names(name: str) -> None:
    assert classify(name, "sklearn")[0] is not Classification.SAFE, name
    assert classify(name)[0] is not Classification.SAFE, name


def _sklearn_modules() -> dict[str, Any]:
    """Every module a pickle can import under the rule's packages (tests excluded)."""
    import importlib
    import pkgutil
    import warnings

    pytest.importorskip("sklearn")
    modules: dict[str, Any] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for prefix in allowlist._SKLEARN_PACKAGES:
            name = prefix[:-1]
            modules[name] = package = importlib.import_module(name)
            for info in pkgutil.walk_packages(getattr(package, "__path__", []), prefix):
                if ".tests" in info.name:
                    continue
                try:
                    modules[info.name] = importlib.import_module(info.name)
                except Exception:  # noqa: BLE001 - optional dependencies of some modules
                    continue
    return modules


def test_sklearn_rule_resolves_only_to_sklearn_classes() -> None:
    """Every name the rule calls safe, resolved in the installed scikit-learn as find_class would
    (attribute by attribute), is a class scikit-learn defines or inert data (a constant, a dtype),
    never a callable it imported from elsewhere."""
    import re
    import types

    modules = _sklearn_modules()
    # The modules a name can walk through: listed packages, then module attributes whose names
    # the rule accepts as module components.
    todo = list(modules.items())
    seen: dict[str, Any] = {}
    while todo:
        path, module = todo.pop()
        if path in seen or path.count(".") > 8:
            continue
        seen[path] = module
        for attr, value in vars(module).items():
            if isinstance(value, types.ModuleType) and classify(f"{path}.{attr}.X", "sklearn")[0] is \
                    Classification.SAFE:
                todo.append((f"{path}.{attr}", value))
    bad, unlisted = [], set()
    for path, module in seen.items():
        assert module.__name__.startswith("sklearn."), f"{path} walks into {module.__name__}"
        for attr, value in vars(module).items():
            if isinstance(value, types.ModuleType) or not callable(value):
                continue
            defined_in = str(getattr(value, "__module__", "") or "")
            if defined_in.startswith("sklearn"):
                continue
            if re.fullmatch(r"_?[A-Z]\w*", attr) and attr not in allowlist._SKLEARN_FOREIGN:
                unlisted.add(f"{attr} ({defined_in}, in {module.__name__})")
            if classify(f"{path}.{attr}", "sklearn")[0] is Classification.SAFE:
                bad.append(f"{path}.{attr} -> {defined_in}")
    assert len(seen) > 100
    assert bad == [] and sorted(unlisted) == []


def test_real_sklearn_models_stay_clean(tmp_path: Path) -> None:
    """joblib.dump of fitted estimators: no finding at all under the tightened rule."""
    np = pytest.importorskip("numpy")
    joblib = pytest.importorskip("joblib")
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import GradientBoostingClassifier, HistGradientBoostingClassifier, RandomForestClassifier
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.gaussian_process import GaussianProcessRegressor
    from sklearn.gaussian_process.kernels import RBF
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler
    from sklearn.svm import SVC

    rng = np.random.RandomState(0)
    X = rng.rand(40, 3)
    y = (X[:, 0] > 0.5).astype(int)
    models: dict[str, Any] = {
        "logreg": LogisticRegression().fit(X, y),
        "forest": RandomForestClassifier(n_estimators=3, max_depth=3, random_state=0).fit(X, y),
        "pipeline": Pipeline([("scale", StandardScaler()), ("clf", LogisticRegression())]).fit(X, y),
        "gbc": GradientBoostingClassifier(n_estimators=3).fit(X, y),
        "hgb": HistGradientBoostingClassifier(max_iter=3).fit(X, y),
        "svc": SVC().fit(X, y),
        "knn": KNeighborsClassifier(n_neighbors=3).fit(X, y),
        "gpr": GaussianProcessRegressor(kernel=RBF()).fit(X[:10], X[:10, 0]),
        "columns": ColumnTransformer([("oh", OneHotEncoder(), [0])]).fit(np.array([["a"], ["b"]], dtype=object)),
        "tfidf": TfidfVectorizer().fit(["red green blue", "green blue sky"]),
    }
    noisy = {}
    for label, model in models.items():
        buf = io.BytesIO()
        joblib.dump(model, buf)
        for data, eco in ((buf.getvalue(), "joblib"), (pickle.dumps(model, protocol=4), "sklearn"),
                          (pickle.dumps(model, protocol=2), None)):
            found = scan(data, eco)
            if found:
                noisy[label] = [(f.rule_id, f.message) for f in found]
    assert noisy == {}, "\n".join(f"{k}: {v}" for k, v in noisy.items())


# --- 5. protocol tricks --------------------------------------------------------------------------

def test_persistent_id_naming_a_gadget() -> None:
    """BINPERSID with a dangerous global inside the pid tuple (persistent_load sees it)."""
    data = Ops(2).mark().str("storage").glob("os", "system").str("0").str("cpu").int(1).tuple().raw(b"Q").stop()
    assert top(data, "torch") is Severity.CRITICAL
    assert top(b"Pos.system\n.", "torch") is None  # a text PERSID is a string: nothing imported


def test_memo_overwrite_swaps_an_allowlisted_name(sh: str) -> None:
    """Memoize an allowlisted global, overwrite the slot with a gadget, fetch and call it."""
    data = (Ops(2).glob("collections", "OrderedDict").put(0).raw(b"0").glob("os", "system").put(0).raw(b"0")
            .get(0).mark().str(sh).tuple().reduce().stop())
    found = assert_caught(data)
    assert any(f.details.get("global") == "os.system" and f.details.get("call_count") == 1 for f in found)


def test_payload_after_stop_in_a_legacy_torch_file(sh: str) -> None:
    """torch's legacy loader reads five pickles: a payload in the third (sys info) runs."""
    parts = [pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2), pickle.dumps(1001, protocol=2),
             Ops(2).call1("os", "system", sh).stop(), pickle.dumps(OrderedDict(), protocol=2),
             pickle.dumps([], protocol=2)]
    assert top(b"".join(parts)) is Severity.CRITICAL


def test_nested_pickle_through_a_getattr_chain(sh: str) -> None:
    """getattr(__import__('_pickle'), 'loads')(bytes): the inner pickle is emulated too."""
    inner = Ops(2).call1("subprocess", "getoutput", sh).stop()
    data = (Ops(3).glob("builtins", "getattr").mark().glob("builtins", "__import__").mark().str("_pickle").tuple()
            .reduce().str("loads").tuple().reduce().mark().bytes(inner).tuple().reduce().stop())
    found = assert_caught(data)
    assert any(f.details.get("global") == "subprocess.getoutput" for f in found)


def test_obj_and_newobj_ex_with_a_gadget(sh: str) -> None:
    data = Ops(2).mark().glob(*GADGET).str(sh).raw(b"o").stop()
    assert top(data) is Severity.CRITICAL
    data = Ops(4).stack_global(*GADGET).mark().str(sh).tuple().empty_dict().raw(b"\x92").stop()
    assert top(data) is Severity.CRITICAL


@pytest.mark.parametrize("module, name", [("os\t", "system"), ("os", " system"), ("o\u0455", "system")])
def test_names_with_whitespace_or_lookalikes(module: str, name: str) -> None:
    """A name the loader cannot import is still flagged (never silently allowlisted)."""
    found = scan(Ops(4).stack_global(module, name).mark().str("x").tuple().reduce().stop())
    assert any(f.severity in HIGH_OR_ABOVE for f in found)


def test_lookalike_of_an_allowlisted_name_is_not_safe() -> None:
    """Cyrillic 'е' in OrderedDict: NFKC does not fold it, and it is not the allowlisted class."""
    assert classify("collections.Ord\u0435rDict")[0] is not Classification.SAFE
    found = scan(Ops(4).stack_global("collections", "Ord\u0435rDict").empty_tuple().reduce().stop())
    assert any(f.severity in HIGH_OR_ABOVE for f in found)


def test_unknown_class_in_a_persistent_id_is_high() -> None:
    """torch's persistent_load reads attributes of the storage class named in the pid."""
    data = Ops(2).mark().str("storage").glob(*UNLISTED).str("0").str("cpu").int(1).tuple().raw(b"Q").stop()
    found = assert_caught(data, "torch")
    assert found[0].details["passed_to"] == "persistent_load"


# --- 6. several pickles in one stream ------------------------------------------------------------
MAGIC = pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2)


def test_legacy_torch_reads_five_pickles_whatever_they_look_like(sh: str) -> None:
    """``I 1001\\n.`` is not how a pickler starts a stream (the trailing-data heuristic said "not a
    pickle" and stopped), but torch's legacy loader reads it and then runs the third pickle."""
    for second in (b"I 1001\n.", b"I+1001\n."):
        assert pickle.loads(second) == 1001
        data = MAGIC + second + Ops(2).call1("os", "system", sh).stop() + pickle.dumps(OrderedDict(), protocol=2) \
            + pickle.dumps([], protocol=2)
        assert top(data) is Severity.CRITICAL


def test_second_pickle_with_an_unusual_start_is_emulated(sh: str) -> None:
    """A custom loader reading consecutive pickles: the second is emulated if it reads to a STOP."""
    data = pickle.dumps({"ok": 1}, protocol=2) + b"I 5\n0" + Ops(2).call1("os", "system", sh).stop()[2:]
    assert top(data) is Severity.CRITICAL
    found = scan(pickle.dumps(1, protocol=2) + b"\x00\x01 not a pickle")
    assert [(f.rule_id, f.severity) for f in found] == [("PICKLE-TRAILING-DATA", Severity.LOW)]


# --- 7. object arrays numpy reads as pickles -----------------------------------------------------

@pytest.mark.parametrize("descr", ["'object'", "'object_'", "'|O8'", "('|O', (1,))", "[('a', ('O', (1,)))]"])
def test_npy_object_dtype_spellings_are_emulated(descr: str, tmp_path: Path, sh: str) -> None:
    """np.load(allow_pickle=True) unpickles any dtype numpy resolves to objects, however spelled."""
    np = pytest.importorskip("numpy")
    import ast

    import aivet

    assert np.lib.format.descr_to_dtype(ast.literal_eval(descr)).hasobject
    header = ("{'descr': " + descr + ", 'fortran_order': False, 'shape': (1,), }").encode()
    header += b" " * (-(len(header) + 11) % 64) + b"\n"
    path = tmp_path / "a.npy"
    path.write_bytes(b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header
                     + Ops(2).call1("os", "system", sh).stop())
    found = {f.rule_id: f for f in aivet.scan(path).findings}
    assert found["PICKLE-DANGEROUS-GLOBAL"].details["global"] == "os.system"


# --- 8. joblib raw array bytes: the emulator must skip exactly what joblib reads -----------------
# joblib writes an array's bytes right after its NumpyArrayWrapper's BUILD and the emulator skips
# them by the wrapper's state. Any difference lets a payload sit where joblib parses opcodes and
# the emulator skips (or the reverse).

def _filler(n: int) -> bytes:
    """``n`` bytes of opcodes that leave the stack as they found it (n >= 2)."""
    out = b""
    while n % 2:
        out += b"K\x000"  # BININT1 0, POP
        n -= 3
    return out + b"N0" * (n // 2)


def _joblib_v8(count: int) -> bytes:
    np = pytest.importorskip("numpy")
    joblib = pytest.importorskip("joblib")
    buf = io.BytesIO()
    joblib.dump({"a": np.zeros(count, dtype="V8")}, buf, protocol=2)
    data = buf.getvalue()
    assert b"X\x02\x00\x00\x00V8" in data and data.endswith(b"s.")
    return data


def _joblib_itemsize_desync(cmd: str) -> bytes:
    """dtype('V64') whose BUILD state says elsize 8: joblib reads 8 bytes an item, and parses the
    payload right after them; an emulator taking 64 from the name skips it."""
    evil = b"cos\nsystem\n(X" + len(cmd.encode()).to_bytes(4, "little") + cmd.encode() + b"tR0"
    count = -(-(len(evil) + 2) // 56)
    data = _joblib_v8(count).replace(b"X\x02\x00\x00\x00V8", b"X\x03\x00\x00\x00V64")
    return data[:-2] + evil + _filler(56 * count - len(evil)) + b"s."


def test_joblib_flexible_dtype_itemsize_from_build_state(tmp_path: Path, sh: str) -> None:
    import subprocess
    import sys

    from tests.fixtures import marker_path

    data = _joblib_itemsize_desync(sh)
    found = assert_caught(data, "joblib")
    assert any(f.details.get("global") == "os.system" for f in found)
    # The technique is real: joblib.load runs the payload (a marker file), in a subprocess.
    path = tmp_path / "desync.joblib"
    path.write_bytes(data)
    subprocess.run([sys.executable, "-c", f"import joblib; joblib.load({str(path)!r})"], cwd=tmp_path,
                   capture_output=True, timeout=120)
    assert marker_path(tmp_path, "bypass").exists()


def test_joblib_object_flag_in_dtype_state_makes_a_nested_pickle(sh: str) -> None:
    """dtype('V8') with flags 1 in its state has hasobject: joblib unpickles what follows the BUILD
    (no padding), where an emulator going by the name skips padding and 8 bytes an item."""
    inner = Ops(2).call1("os", "system", sh).stop()
    count = -(-(len(inner) + 2) // 8)
    data = _joblib_v8(count)
    data = data.replace(b"K\x08K\x01K\x00t", b"K\x08K\x01K\x01t")
    head = data[:data.rindex(b"ub") + 2]
    raw = len(data) - 2 - len(head)  # padding byte, padding, 8 * count bytes
    nested = inner[:-1] + _filler(raw - len(inner)) + b"."
    found = assert_caught(head + nested + b"s.", "joblib")
    assert any(f.details.get("global") == "os.system" for f in found)


@pytest.mark.parametrize("value", [b"\x88", b"G?\xf0\x00\x00\x00\x00\x00\x00", b"X\x01\x00\x00\x00x"])
def test_joblib_alignment_value_that_is_not_an_int(value: bytes, sh: str) -> None:
    """joblib reads the padding byte when numpy_array_alignment_bytes is anything but None."""
    data = _joblib_v8(1)
    data = data.replace(b"numpy_array_alignment_bytesq\x13K\x10", b"numpy_array_alignment_bytesq\x13" + value)
    head = data[:data.rindex(b"ub") + 2]
    evil = Ops(2).call1("os", "system", sh).stop()[2:-1] + b"0"
    # joblib: pad length byte 0, 8 array bytes, then the payload; an emulator without padding
    # would read one byte less of array data and then garbage.
    assert_caught(head + b"\x00" + b"\x00" * 8 + evil + b"s.", "joblib")


def test_joblib_duplicate_shape_key_uses_the_last(sh: str) -> None:
    """A state dict with 'shape' twice: the loaded dict keeps the last one."""
    data = _joblib_v8(1)
    count = 16
    data = data.replace(b"X\x05\x00\x00\x00shapeq\x07K\x01\x85q\x08",
                        b"X\x05\x00\x00\x00shapeq\x07K" + bytes([count]) + b"\x85q\x08X\x05\x00\x00\x00shapeK\x01\x85")
    head = data[:data.rindex(b"ub") + 2]
    evil = Ops(2).call1("os", "system", sh).stop()[2:-1] + b"0"
    # joblib reads one 8-byte item and parses the payload; the first shape would skip 16 items.
    assert len(evil) <= 120
    body = b"\x00" + b"\x00" * 8 + evil + _filler(120 - len(evil)) + b"s."
    assert_caught(head + body, "joblib")


@pytest.mark.parametrize("filename", ["/etc/passwd.pkl", "../../elsewhere.pkl", "C:\\x.pkl"])
def test_joblib_compat_wrapper_loads_a_side_file_outside_the_model(filename: str) -> None:
    """joblib <= 0.9 NDArrayWrapper: np.load(join(dir, filename), allow_pickle=True) of any path."""
    data = (Ops(2).glob("joblib.numpy_pickle_compat", "NDArrayWrapper").empty_tuple().raw(b"\x81").empty_dict()
            .mark().str("filename").str(filename).str("subclass").glob("numpy", "ndarray").raw(b"u").build().stop())
    assert_caught(data, "joblib", rule="PICKLE-SUSPICIOUS-BUILD")
    ok = data.replace(filename.encode(), b"model.pkl_01.npy").replace(
        len(filename).to_bytes(4, "little"), len(b"model.pkl_01.npy").to_bytes(4, "little"))
    assert scan(ok, "joblib") == []


# --- 9. more ways to the instance's extend / append / add -----------------------------------------

def test_append_on_a_dict_subclass_whose_getattr_returns_items(sh: str) -> None:
    """sklearn's Bunch (allowlisted) answers attribute lookups from its items: SETITEMS (how any dict
    subclass is pickled) puts 'extend' there, and APPENDS calls it. No BUILD involved."""
    data = (Ops(4).stack_global("sklearn.utils._bunch", "Bunch").empty_tuple().raw(b"\x81").mark().str("extend")
            .stack_global(*UNLISTED).raw(b"u").mark().str(sh).raw(b"e").stop())
    assert_caught(data, "sklearn", rule="PICKLE-SUSPICIOUS-BUILD")


def test_deque_and_list_subclass_items_stay_quiet() -> None:
    from collections import deque

    for value in (deque([1, 2, 3]), [deque([1]), {1, 2}], OrderedDict(a=[1.5, 2.5])):
        for proto in range(6):
            assert scan(pickle.dumps(value, protocol=proto)) == [], (value, proto)


def test_second_build_on_a_persistent_storage() -> None:
    data = (Ops(2).mark().str("storage").glob("torch", "FloatStorage").str("0").str("cpu").int(1).tuple().raw(b"Q")
            .empty_dict().str("__setstate__").glob(*UNLISTED).setitem().build().str("x").build().stop())
    assert_caught(data, "torch", rule="PICKLE-SUSPICIOUS-BUILD")


@pytest.mark.parametrize("tail", [
    b"(h\x01Nu",  # BINGET key, NONE, SETITEMS: the fused path
    b"(X\x01\x00\x00\x00kNu",  # NONE, SETITEMS: the other fused path
    b"(G?\xf0\x00\x00\x00\x00\x00\x00e",  # BINFLOAT, APPENDS: fused too
])
def test_mutating_a_global_through_the_fused_opcode_pairs(tail: bytes) -> None:
    tail += b"N0" * 4  # the fused forms look a few bytes ahead
    data = Ops(2).glob("copyreg", "_inverted_registry").put(0).str("k").put(1).raw(b"0").get(0).raw(tail).stop()
    assert_caught(data, rule="PICKLE-SUSPICIOUS-BUILD")
    data = Ops(2).glob("mypkg", "table").put(0).str("k").put(1).raw(b"0").get(0).raw(tail).stop()
    assert_caught(data, rule="PICKLE-SUSPICIOUS-BUILD")


def test_numpy_array_subclasses_stay_quiet() -> None:
    """_reconstruct is conditional on its subtype: numpy's own subclasses must stay allowlisted."""
    np = pytest.importorskip("numpy")
    values = [np.rec.array([(1, 2.0)], dtype=[("a", "i4"), ("b", "f8")]), np.char.array(["ab"]),
              np.ma.array([1, 2], mask=[0, 1]), np.matrix([[1]]), np.array([1], dtype="datetime64[s]"),
              np.random.default_rng(0), np.random.RandomState(0)]
    for value in values:
        for proto in (2, 4):
            assert scan(pickle.dumps(value, protocol=proto), "numpy") == [], (type(value), proto)


# --- 10. the new checks stay total on hostile input ------------------------------------------------
_PIECES = [b"(", b"N", b"}", b"]", b"\x8f", b"K\x01", b"\x8c\x01a", b"\x94", b"h\x00", b"q\x00", b"0", b"\x85",
           b"\x86", b"t", b")", b"b", b"a", b"e", b"s", b"u", b"\x90", b"R", b"\x81", b"\x92", b"Q", b"\x93",
           b"ccopyreg\n_reconstructor\n", b"csklearn.utils._bunch\nBunch\n", b"cnumpy\ndtype\n",
           b"cjoblib.numpy_pickle\nNumpyArrayWrapper\n", b"cmypkg\nx\n", b".", b"I 1\n."]


@pytest.mark.timeout(60)
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(_PIECES), max_size=40), st.sampled_from([None, "torch", "joblib", "numpy"]))
def test_build_and_fill_channels_only_raise_format_errors(pieces: list[bytes], ecosystem: str | None) -> None:
    """Random programs of the opcodes the new checks watch (BUILD, APPEND(S), SETITEM(S), ADDITEMS,
    persistent ids, dtype states, trailing pickles): findings or FormatError / LimitExceeded only."""
    data = b"\x80\x02" + b"".join(pieces) + b"."
    try:
        PickleVM(data, Limits(max_pickle_opcodes=100_000), ecosystem=ecosystem).run()
    except (FormatError, LimitExceeded):
        pass
    scan(data, ecosystem)


def test_unknown_global_passed_as_a_keyword_argument() -> None:
    """NEWOBJ_EX cls.__new__(cls, **{'dtype': Evil}): numpy.ndarray converts its dtype argument."""
    data = (Ops(4).stack_global("numpy", "ndarray").mark().mark().int(1).tuple().tuple().empty_dict()
            .str("dtype").stack_global(*UNLISTED).setitem().raw(b"\x92").stop())
    found = assert_caught(data, "numpy")
    assert any(f.details.get("passed_to") == "numpy.ndarray" for f in found)


# --- 11. state dicts the emulator reads must be whole ---------------------------------------------

def _scan_file(tmp_path: Path, data: bytes) -> list[Finding]:
    import aivet

    path = tmp_path / "x.pkl"
    path.write_bytes(data)
    return list(aivet.scan(path).findings)


def test_joblib_state_filled_in_two_steps_fails_closed(tmp_path: Path, sh: str) -> None:
    """numpy_array_alignment_bytes set in a first SETITEMS, the other keys in a second: the
    emulator saw only the last step and skipped no padding, while joblib read it."""
    data = _joblib_v8(1)
    start = data.index(b"}q\x04(") + 4
    end = data.index(b"X\x1b\x00\x00\x00numpy_array_alignment_bytes")
    align = data[end:data.index(b"ub", end)]
    data = data[:start] + align + b"u(" + data[start:end] + data[data.index(b"ub", end):]
    head = data[:data.rindex(b"ub") + 2]
    evil = Ops(2).call1("os", "system", sh).stop()[2:-1] + b"0"
    found = _scan_file(tmp_path, head + b"\x00" + b"\x00" * 8 + evil + b"s.")
    assert any(f.severity in HIGH_OR_ABOVE for f in found), [(f.rule_id, f.message) for f in found]


def test_slot_state_changed_through_a_memo_alias() -> None:
    """(None, {'x': 1}) looks harmless when TUPLE2 takes it, but the dict is fetched again from the
    memo and given '__class__' before the BUILD."""
    data = (_reconstructed(Ops(2)).none().empty_dict().put(0).mark().str("x").int(1).raw(b"u\x86").get(0)
            .str("__class__").glob(*UNLISTED).setitem().raw(b"0").build().stop())
    assert_caught(data, rule="PICKLE-SUSPICIOUS-BUILD")


@pytest.mark.parametrize("items", [1, 3])
def test_plain_slot_state_stays_quiet(items: int) -> None:
    """What a pickler writes for an object with __slots__: (None, {slot: value, ...}), in one step."""
    ops = _reconstructed(Ops(2)).none().empty_dict().put(0)
    if items == 1:
        ops = ops.str("x").int(1).setitem()
    else:
        ops = ops.mark()
        for i in range(items):
            ops = ops.str(f"s{i}").int(i)
        ops = ops.raw(b"u")
    data = ops.raw(b"\x86q\x01").build().stop()
    assert PickleVM(data, Limits()).run().anomalies == []
