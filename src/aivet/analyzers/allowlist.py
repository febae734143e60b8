"""Which pickle globals are safe to import and call: allowlist first, then known-dangerous.

A pickle can name any importable callable and call it with any arguments;
that is the whole attack. A scanner that only blocks known-bad names is
bypassed by the next gadget nobody listed (``pydoc.locate``, ``pip.main``,
``numpy.f2py``...). So :func:`classify` answers in this order:

1. names on the **allowlist** for the ecosystem (torch tensor rebuilds, numpy
   array reconstruction, collections, scikit-learn estimators) are ``SAFE``;
2. names under a **known-dangerous** module or equal to a dangerous callable
   are ``DANGEROUS`` (the list only decides how loud the finding is);
3. everything else is ``UNKNOWN`` -- still a finding.

A few globals are safe only with particular arguments (``copyreg._reconstructor``
of an allowlisted class, ``codecs.encode`` of constants); :func:`classify_call`
decides those from the emulated arguments.

To extend: add exact names to the ecosystem set below (never a whole module
unless every public callable in it is a pure data constructor), with a comment
saying where the name comes from; add tests in ``tests/test_pickle_vm.py``.
"""

from __future__ import annotations

import enum
import functools
import unicodedata
from collections.abc import Iterable


class Classification(str, enum.Enum):
    SAFE = "safe"
    UNKNOWN = "unknown"
    DANGEROUS = "dangerous"


# Python 2 and C-accelerator spellings that find_class maps (or the OS module aliases).
_MODULE_ALIASES = {
    "__builtin__": "builtins", "exceptions": "builtins", "copy_reg": "copyreg", "cPickle": "pickle",
    "_pickle": "pickle", "posix": "os", "nt": "os", "_io": "io", "_codecs": "codecs",
    "_collections": "collections", "UserDict": "collections", "_operator": "operator",
    "_functools": "functools", "posixpath": "os.path", "ntpath": "os.path", "commands": "subprocess",
    "numpy._core": "numpy.core", "_socket": "socket", "_thread": "threading", "thread": "threading",
    "_asyncio": "asyncio", "_ctypes": "ctypes", "_signal": "signal", "_sqlite3": "sqlite3",
    "_weakref": "weakref", "_imp": "importlib", "imp": "importlib", "_frozen_importlib": "importlib",
    "_frozen_importlib_external": "importlib", "_bz2": "bz2", "_lzma": "lzma",
}


@functools.lru_cache(maxsize=4096)  # a checkpoint calls the same few names thousands of times
def normalize(name: str) -> str:
    """Canonical dotted name: NFKC-folded, aliases resolved (``posix.system`` -> ``os.system``)."""
    name = unicodedata.normalize("NFKC", name).strip()
    parts = name.split(".")
    for i in range(len(parts), 0, -1):
        head = ".".join(parts[:i])
        if head in _MODULE_ALIASES:
            return ".".join([_MODULE_ALIASES[head], *parts[i:]])
    return name


def _names(text: str) -> frozenset[str]:
    return frozenset(text.split())


# --- the allowlist --------------------------------------------------------------------------
# Pure data constructors in the standard library: they build a value from their arguments and
# cannot reach code, files or the network whatever the arguments are.
_COMMON = _names("""
    builtins.set builtins.frozenset builtins.bytearray builtins.complex builtins.slice builtins.range
    builtins.list builtins.dict builtins.tuple builtins.int builtins.float builtins.bool builtins.str
    builtins.bytes builtins.object
    collections.OrderedDict collections.deque collections.Counter
    datetime.datetime datetime.date datetime.time datetime.timedelta datetime.timezone
    decimal.Decimal fractions.Fraction uuid.UUID
    pathlib.PurePath pathlib.PurePosixPath pathlib.PureWindowsPath
    copyreg._reconstructor copyreg.__newobj__ copyreg.__newobj_ex__
    codecs.encode collections.defaultdict
""")
# Names in _COMMON that are safe only with particular arguments (see classify_call).
_CONDITIONAL = _names("""
    copyreg._reconstructor copyreg.__newobj__ copyreg.__newobj_ex__ codecs.encode collections.defaultdict
    builtins.object
""")
# numpy arrays, dtypes, scalars and random generator state (the ctor helpers look the bit
# generator up by name in a fixed table: data only).
_NUMPY = _names("""
    numpy.core.multiarray._reconstruct numpy.core.multiarray.scalar numpy.core.numeric._frombuffer
    numpy.ndarray numpy.dtype numpy.ma.core._mareconstruct numpy.ma.core.MaskedArray numpy.matrix
    numpy.random._pickle.__randomstate_ctor numpy.random._pickle.__bit_generator_ctor
    numpy.random._pickle.__generator_ctor numpy.random.mtrand.RandomState
    numpy.random._mt19937.MT19937 numpy.random._pcg64.PCG64 numpy.random._pcg64.PCG64DXSM
    numpy.random._philox.Philox numpy.random._sfc64.SFC64 numpy.random.bit_generator.SeedSequence
    numpy.random._generator.Generator
""") | frozenset(f"numpy.{t}" for t in (
    "bool_ int8 int16 int32 int64 uint8 uint16 uint32 uint64 float16 float32 float64 complex64 "
    "complex128 str_ bytes_ datetime64 timedelta64 longlong ulonglong intc uintc").split())
# torch checkpoints: tensor / parameter / storage rebuilds and plain metadata types.
_TORCH = _names("""
    torch._utils._rebuild_tensor torch._utils._rebuild_tensor_v2 torch._utils._rebuild_tensor_v3
    torch._utils._rebuild_parameter torch._utils._rebuild_parameter_with_state
    torch._utils._rebuild_qtensor torch._utils._rebuild_sparse_tensor torch._utils._rebuild_nested_tensor
    torch._utils._rebuild_meta_tensor_no_storage torch._utils._rebuild_wrapper_subclass
    torch._utils._rebuild_device_tensor_from_numpy torch._utils._rebuild_xla_tensor
    torch._utils._rebuild_mps_tensor torch._utils._rebuild_device_tensor_from_cpu_tensor
    torch._tensor._rebuild_from_type_v2 torch._tensor._rebuild_from_type
    torch.serialization._get_layout torch.storage.UntypedStorage torch.storage.TypedStorage
    torch.storage._load_from_bytes_dummy torch.Size torch.device torch.dtype torch.layout
    torch.memory_format torch.nn.parameter.Parameter torch.Tensor torch.nn.parameter.Buffer
    torch.strided torch.sparse_coo torch.sparse_csr torch.contiguous_format torch.channels_last
    torch.preserve_format torch.per_tensor_affine torch.per_channel_affine torch.qint8 torch.quint8
    torch.qint32 torch.float32 torch.float16 torch.bfloat16 torch.float64 torch.int64 torch.int32
    torch.int16 torch.int8 torch.uint8 torch.bool torch.complex64 torch.complex128
    torch.float8_e4m3fn torch.float8_e5m2
""") | frozenset(f"torch.{t}Storage" for t in (
    "Float Double Half BFloat16 Long Int Short Char Byte Bool ComplexFloat ComplexDouble QInt8 QUInt8 "
    "QInt32 QUInt4x2 QUInt2x4 Untyped").split())
_JOBLIB = _names("""
    joblib.numpy_pickle.NumpyArrayWrapper joblib.numpy_pickle_compat.NDArrayWrapper
    joblib.numpy_pickle_compat.ZNDArrayWrapper
""")
# scikit-learn: estimator *classes* in these packages (functions in them are not listed).
_SKLEARN_PACKAGES = tuple(f"sklearn.{p}." for p in (
    "linear_model ensemble tree preprocessing pipeline feature_extraction decomposition svm neighbors "
    "cluster naive_bayes compose impute discriminant_analysis kernel_ridge cross_decomposition "
    "isotonic calibration multiclass multioutput random_projection feature_selection gaussian_process "
    "mixture manifold covariance semi_supervised neural_network dummy _loss").split())
_SKLEARN_EXTRA = _names("sklearn.utils._bunch.Bunch sklearn.tree._tree.Tree sklearn._loss.loss.HalfBinomialLoss")

ECOSYSTEMS: dict[str, frozenset[str]] = {
    "numpy": _COMMON | _NUMPY,
    "torch": _COMMON | _NUMPY | _TORCH,
    "joblib": _COMMON | _NUMPY | _JOBLIB | _SKLEARN_EXTRA,
    "sklearn": _COMMON | _NUMPY | _JOBLIB | _SKLEARN_EXTRA,
}
# TorchScript archives are read by torch.jit.load's C++ unpickler, which resolves these list
# builders and the archive's own ``__torch__`` classes (compiled TorchScript, see
# TORCH-SCRIPT-* rules) without importing Python code.
ECOSYSTEMS["torchscript"] = ECOSYSTEMS["torch"] | _names("""
    torch.jit._pickle.build_intlist torch.jit._pickle.build_tensorlist torch.jit._pickle.build_doublelist
    torch.jit._pickle.build_boollist torch.jit._pickle.build_tensor_from_id torch.jit._pickle.restore_type_tag
""")
_ALL = frozenset().union(*ECOSYSTEMS.values())

# --- known dangerous -----------------------------------------------------------------------
# Whole modules whose callables run commands, code, imports, I/O or network access.
_DANGEROUS_MODULES = _names("""
    os subprocess _posixsubprocess pty socket shutil sys runpy webbrowser pip pydoc importlib marshal
    types ctypes code codeop cProfile profile timeit trace pdb bdb multiprocessing signal asyncio
    urllib urllib2 http httplib requests httpx ftplib smtplib telnetlib poplib imaplib xmlrpc
    pickle dill cloudpickle shelve dbm sqlite3 tempfile glob zipfile tarfile linecache venv ensurepip
    distutils setuptools site gc inspect threading atexit io idlelib lib2to3 numpy.f2py numpy.distutils
    numpy.testing numpy.lib.npyio torch.hub torch.package torch._inductor torch.utils._config_module
    torch.utils.cpp_extension torch._C torch.jit torch._dynamo torch.compiler torch.fx
    builtins.__import__ sysconfig platform imp commands popen2 _winapi msvcrt winreg _osx_support
    zipimport pkgutil modulefinder pkg_resources
""")
_DANGEROUS_NAMES = _names("""
    builtins.eval builtins.exec builtins.compile builtins.open builtins.getattr builtins.setattr
    builtins.delattr builtins.__import__ builtins.globals builtins.locals builtins.vars builtins.input
    builtins.breakpoint builtins.help builtins.exit builtins.quit builtins.memoryview builtins.classmethod
    builtins.staticmethod builtins.property builtins.super builtins.type builtins.__build_class__
    operator.attrgetter operator.methodcaller operator.itemgetter functools.reduce functools.partial
    functools.partialmethod copyreg.add_extension weakref.finalize torch.load torch.save
    torch.serialization.load torch.serialization._load numpy.load numpy.save numpy.fromfile
    numpy.memmap numpy.loadtxt numpy.genfromtxt joblib.load joblib.dump joblib.numpy_pickle.load
    joblib.parallel.Parallel joblib.Parallel torch.classes.load_library torch.ops.load_library
    codecs.open logging.config.listen logging.config.fileConfig
""")


def _under(name: str, modules: Iterable[str]) -> str | None:
    for module in modules:
        if name == module or name.startswith(module + "."):
            return module
    return None


def _sklearn_class(name: str) -> bool:
    if not name.startswith(_SKLEARN_PACKAGES):
        return False
    last = name.rsplit(".", 1)[-1]
    return last[:1].isupper() or last[:1] == "_" and last[1:2].isupper()


def classify(name: str, ecosystem: str | None = None) -> tuple[Classification, str]:
    """Classify a global ``module.name``; returns the classification and a short reason.

    ``ecosystem`` (``"torch"``, ``"numpy"``, ``"joblib"``, ``"sklearn"``) narrows the
    allowlist to what that loader legitimately needs; ``None`` allows every ecosystem.
    """
    canon = normalize(name)
    allowed = ECOSYSTEMS.get(ecosystem or "", _ALL)
    if canon in allowed and canon == canon.strip() and "\n" not in canon:
        return Classification.SAFE, "allowlisted"
    if ecosystem == "torchscript" and canon.startswith("__torch__.") and "\n" not in canon:
        return Classification.SAFE, "TorchScript class compiled from the archive's code/"
    if ecosystem in (None, "sklearn", "joblib") and _sklearn_class(canon):
        return Classification.SAFE, "scikit-learn estimator class"
    if canon in _DANGEROUS_NAMES:
        return Classification.DANGEROUS, f"{canon} runs code, reaches callables or touches files"
    module = _under(canon, _DANGEROUS_MODULES)
    if module is not None:
        return Classification.DANGEROUS, f"module {module} can run commands, code, imports or I/O"
    # Attribute traversal (protocol 4 dotted names, ``torch._utils.os.system``): look at every
    # suffix that starts on a dotted boundary.
    parts = canon.split(".")
    for i in range(1, len(parts)):
        tail = ".".join(parts[i:])
        if tail in _DANGEROUS_NAMES or (i > 1 and _under(tail, _DANGEROUS_MODULES) and "." in tail):
            return Classification.DANGEROUS, f"reaches {tail} through attribute traversal"
    return Classification.UNKNOWN, "not on the allowlist"


def is_conditional(name: str) -> bool:
    """True for allowlisted globals whose safety depends on the call's arguments."""
    return normalize(name) in _CONDITIONAL


def conditional_verdict(name: str, arg_names: list[str | None], all_constant: bool,
                        ecosystem: str | None) -> tuple[Classification, str]:
    """Decide a conditional global from its call: ``arg_names`` are the dotted names of
    arguments that are globals (``None`` for other values); ``all_constant`` is true when
    every argument is a plain constant."""
    canon = normalize(name)
    if canon == "codecs.encode":
        return (Classification.SAFE, "constant arguments") if all_constant else (
            Classification.UNKNOWN, "codecs.encode with computed arguments")
    if canon == "builtins.object":
        return (Classification.SAFE, "plain object") if not arg_names else (
            Classification.UNKNOWN, "object() with arguments")
    # copyreg helpers and defaultdict: every callable argument must itself be safe.
    verdict = Classification.SAFE
    reason = "arguments are allowlisted"
    for arg in arg_names:
        if arg is None:
            continue
        inner, why = classify(arg, ecosystem)
        if inner is Classification.SAFE and is_conditional(arg) and normalize(arg) != "builtins.object":
            inner, why = Classification.UNKNOWN, f"{arg} passed as a class"
        if inner is Classification.DANGEROUS:
            return inner, f"{canon} wraps {arg}: {why}"
        if inner is Classification.UNKNOWN:
            verdict, reason = Classification.UNKNOWN, f"{canon} wraps non-allowlisted {arg}"
    return verdict, reason
