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
import re
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
    # Python 2 module names that pickle's fix_imports maps to Python 3 modules (protocols 0-2).
    "SocketServer": "socketserver", "xmlrpclib": "xmlrpc.client", "SimpleXMLRPCServer": "xmlrpc.server",
    "BaseHTTPServer": "http.server", "SimpleHTTPServer": "http.server", "CGIHTTPServer": "http.server",
    "Tkinter": "tkinter", "test.test_support": "test.support", "dbhash": "dbm", "anydbm": "dbm",
    "dumbdbm": "dbm", "gdbm": "dbm", "whichdb": "dbm", "urlparse": "urllib.parse", "robotparser": "urllib.robotparser",
    "StringIO": "io", "cStringIO": "io", "_winreg": "winreg", "httplib": "http.client", "urllib2": "urllib.request",
    "Cookie": "http.cookies", "cookielib": "http.cookiejar", "HTMLParser": "html.parser", "UserList": "collections",
    "UserString": "collections", "_abcoll": "collections.abc", "ConfigParser": "configparser", "Queue": "queue",
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
    pathlib.PurePath pathlib.PurePosixPath pathlib.PureWindowsPath pathlib.Path pathlib.PosixPath pathlib.WindowsPath
    pathlib._local.Path pathlib._local.PosixPath pathlib._local.WindowsPath
    copyreg._reconstructor copyreg.__newobj__ copyreg.__newobj_ex__
    codecs.encode collections.defaultdict
""")
# Allowlisted names that are safe only with particular arguments (see conditional_verdict). Most
# call or instantiate a global they are given, which must then be allowlisted too: numpy's random
# ctors call ``bit_generator_ctor(name)`` / ``cls()``; _reconstruct and _mareconstruct instantiate
# their subtype; torch's _rebuild_from_type(_v2) call ``func(*args)`` and _rebuild_wrapper_subclass
# instantiates ``cls``; Cython's __pyx_unpickle_* and sklearn's newObj call ``cls.__new__``.
_CONDITIONAL = _names("""
    copyreg._reconstructor copyreg.__newobj__ copyreg.__newobj_ex__ codecs.encode collections.defaultdict
    builtins.object
    numpy.random._pickle.__randomstate_ctor numpy.random._pickle.__bit_generator_ctor
    numpy.random._pickle.__generator_ctor numpy.core.multiarray._reconstruct numpy.ma.core._mareconstruct
    numpy.random.bit_generator.__pyx_unpickle_SeedSequence
    torch._tensor._rebuild_from_type_v2 torch._tensor._rebuild_from_type torch._utils._rebuild_wrapper_subclass
    torch._utils._rebuild_parameter_with_state
    sklearn.neighbors._kd_tree.newObj sklearn.neighbors._ball_tree.newObj sklearn.metrics._dist_metrics.newObj
""")
# Calls whose result gets attributes set from the pickle's state, as a BUILD would: a later BUILD
# or APPEND on it may call one of them (see pickle_state.build).
STATEFUL = _names("""
    torch._tensor._rebuild_from_type_v2 torch._tensor._rebuild_from_type torch._utils._rebuild_parameter_with_state
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
    numpy.random._generator.Generator numpy.random.bit_generator.__pyx_unpickle_SeedSequence
    numpy.ma.MaskedArray numpy.rec.recarray numpy.recarray numpy.record numpy.char.chararray
""") | frozenset(f"numpy.{t}" for t in (
    "bool_ int8 int16 int32 int64 uint8 uint16 uint32 uint64 float16 float32 float64 complex64 "
    "complex128 str_ bytes_ datetime64 timedelta64 longlong ulonglong intc uintc").split())
# torch's own layer classes (nn.Module subclasses defined in torch.nn.modules, torch 2.13), which
# ``torch.save(model)`` pickles as NEWOBJ / copyreg.__newobj__ with no arguments: ``object.__new__``
# and then BUILD, whose ``__setstate__`` only restores attributes. Called *with* arguments their
# ``__init__`` allocates parameters of any size, so they are conditional (see conditional_verdict).
# tests/test_pickle_vm.py checks every name against the installed torch.
_TORCH_LAYERS = frozenset(f"torch.nn.modules.{module}.{cls}" for module, names in {
    "activation": "CELU ELU GELU GLU Hardshrink Hardsigmoid Hardswish Hardtanh LeakyReLU LogSigmoid LogSoftmax "
                   "Mish MultiheadAttention PReLU RReLU ReLU ReLU6 SELU SiLU Sigmoid Softmax Softmax2d Softmin "
                   "Softplus Softshrink Softsign Tanh Tanhshrink Threshold",
    "adaptive": "AdaptiveLogSoftmaxWithLoss",
    "batchnorm": "BatchNorm1d BatchNorm2d BatchNorm3d LazyBatchNorm1d LazyBatchNorm2d LazyBatchNorm3d "
                  "SyncBatchNorm",
    "channelshuffle": "ChannelShuffle",
    "container": "ModuleDict ModuleList ParameterDict ParameterList Sequential",
    "conv": "Conv1d Conv2d Conv3d ConvTranspose1d ConvTranspose2d ConvTranspose3d LazyConv1d LazyConv2d "
             "LazyConv3d LazyConvTranspose1d LazyConvTranspose2d LazyConvTranspose3d",
    "distance": "CosineSimilarity PairwiseDistance",
    "dropout": "AlphaDropout Dropout Dropout1d Dropout2d Dropout3d FeatureAlphaDropout",
    "flatten": "Flatten Unflatten",
    "fold": "Fold Unfold",
    "instancenorm": "InstanceNorm1d InstanceNorm2d InstanceNorm3d LazyInstanceNorm1d LazyInstanceNorm2d "
                     "LazyInstanceNorm3d",
    "linear": "Bilinear Identity LazyLinear Linear NonDynamicallyQuantizableLinear",
    "loss": "BCELoss BCEWithLogitsLoss CTCLoss CosineEmbeddingLoss CrossEntropyLoss GaussianNLLLoss "
             "HingeEmbeddingLoss HuberLoss KLDivLoss L1Loss LinearCrossEntropyLoss MSELoss MarginRankingLoss "
             "MultiLabelMarginLoss MultiLabelSoftMarginLoss MultiMarginLoss NLLLoss PoissonNLLLoss SmoothL1Loss "
             "SoftMarginLoss TripletMarginLoss TripletMarginWithDistanceLoss",
    "module": "Module",
    "normalization": "CrossMapLRN2d GroupNorm LayerNorm LocalResponseNorm RMSNorm",
    "padding": "CircularPad1d CircularPad2d CircularPad3d ConstantPad1d ConstantPad2d ConstantPad3d "
                "ReflectionPad1d ReflectionPad2d ReflectionPad3d ReplicationPad1d ReplicationPad2d "
                "ReplicationPad3d ZeroPad1d ZeroPad2d ZeroPad3d",
    "pixelshuffle": "PixelShuffle PixelUnshuffle",
    "pooling": "AdaptiveAvgPool1d AdaptiveAvgPool2d AdaptiveAvgPool3d AdaptiveMaxPool1d AdaptiveMaxPool2d "
                "AdaptiveMaxPool3d AvgPool1d AvgPool2d AvgPool3d FractionalMaxPool2d FractionalMaxPool3d LPPool1d "
                "LPPool2d LPPool3d MaxPool1d MaxPool2d MaxPool3d MaxUnpool1d MaxUnpool2d MaxUnpool3d",
    "rnn": "GRU GRUCell LSTM LSTMCell RNN RNNBase RNNCell RNNCellBase",
    "sparse": "Embedding EmbeddingBag",
    "transformer": "Transformer TransformerDecoder TransformerDecoderLayer TransformerEncoder "
                    "TransformerEncoderLayer",
    "upsampling": "Upsample UpsamplingBilinear2d UpsamplingNearest2d",
}.items() for cls in names.split())
# Activation functions layers keep as attributes (TransformerEncoderLayer.activation = F.relu): pure
# tensor math, referenced by a full-module pickle. tests/test_pickle_vm.py checks them too.
_TORCH_ACTIVATIONS = frozenset(f"torch.nn.functional.{name}" for name in (
    "relu relu6 gelu silu mish tanh sigmoid hardtanh hardswish hardsigmoid leaky_relu elu selu celu glu "
    "softplus softsign softmax log_softmax logsigmoid tanhshrink softshrink hardshrink").split())
# torch checkpoints: tensor / parameter / storage rebuilds, plain metadata types, and the dataclasses of
# a Distributed Checkpoint's ``.metadata`` (torch.distributed.checkpoint reads it with plain pickle.load).
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
    torch.distributed.checkpoint.metadata.Metadata torch.distributed.checkpoint.metadata.TensorStorageMetadata
    torch.distributed.checkpoint.metadata.BytesStorageMetadata torch.distributed.checkpoint.metadata.TensorProperties
    torch.distributed.checkpoint.metadata.ChunkStorageMetadata torch.distributed.checkpoint.metadata.MetadataIndex
    torch.distributed.checkpoint.metadata.StorageMeta torch.distributed.checkpoint.metadata._MEM_FORMAT_ENCODING
    torch.distributed.checkpoint.filesystem._StorageInfo
""") | _TORCH_LAYERS | _TORCH_ACTIVATIONS | frozenset(f"torch.{t}Storage" for t in (
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
    "mixture manifold covariance semi_supervised neural_network dummy _loss metrics._dist_metrics").split())
# newObj(cls) is the Cython helper KDTree / BallTree / DistanceMetric pickles call: cls.__new__(cls).
_SKLEARN_EXTRA = _names("""
    sklearn.utils._bunch.Bunch sklearn.tree._tree.Tree sklearn._loss.loss.HalfBinomialLoss
    sklearn.neighbors._kd_tree.newObj sklearn.neighbors._ball_tree.newObj sklearn.metrics._dist_metrics.newObj
""")
# A pickle names a class by the module that defines it: ``sklearn.<package>.<_module>.<Class>``.
# find_class (protocol 4+) also walks attributes, so a name that only *starts* under sklearn can
# reach anything an sklearn module imported (``sklearn.linear_model._logistic.scipy.io.FortranFile``,
# ``...ensemble._forest.threading.Thread``). Module components must therefore be sklearn's own:
# private (``_logistic``; scikit-learn imports no foreign module under a private alias) or one of
# its public submodule names, current and pre-0.22 (foreign aliases such as np, sp, scipy,
# threading, sys are none of them).
_SKLEARN_PUBLIC_MODULES = _names("""
    binning common glm gradient_boosting grower hdbscan histogram image kernels link loss predictor
    splitting text utils
    base bayes coordinate_descent huber least_angle logistic omp passive_aggressive perceptron ransac
    ridge sag stochastic_gradient theil_sen sgd_fast cd_fast tree export bagging forest iforest voting
    voting_classifier weight_boosting data label imputation classes classification regression
    unsupervised kde lof nearest_centroid ball_tree kd_tree dist_metrics graph k_means_ dbscan_
    hierarchical affinity_propagation_ mean_shift_ spectral bicluster birch optics_ pca incremental_pca
    kernel_pca nmf online_lda sparse_pca truncated_svd factor_analysis fastica_ dict_learning
    dict_vectorizer hashing gaussian_mixture bayesian_mixture isomap locally_linear mds
    spectral_embedding_ t_sne empirical_covariance_ shrunk_covariance_ robust_covariance graph_lasso_
    elliptic_envelope gpr gpc multilayer_perceptron rbm univariate_selection rfe variance_threshold
    from_model label_propagation pls_ cca_
""")
_SKLEARN_PRIVATE_MODULE = re.compile(r"_[a-z0-9][a-z0-9_]*")
_SKLEARN_CLASS_PART = re.compile(r"_?[A-Z][A-Za-z0-9_]*")
# Capitalized callables that scikit-learn modules import from other libraries (found by walking
# the installed scikit-learn 1.9; tests/test_pickle_bypasses.py re-checks the installed version):
# reachable as ``sklearn.<package>.<_module>.<Name>`` but never defined there, and several write
# files, bind sockets or start threads (GzipFile, NamedTemporaryFile, Listener, Thread, Memory).
_SKLEARN_FOREIGN = _names("""
    ABC ABCMeta Any ArffSparseDataType BSpline BarColumn BytesIO Callable CalledProcessError Client
    ComplexWarning Connection Counter Dict DoctestItem Enum G_H_DTYPE Generator GzipFile HTTPError
    Integral Iterable LinAlgError LinearOperator List Listener Literal Mapping MaskedArray Memory
    MethodType MutableMapping NamedTemporaryFile NamedTuple Number OpenmlFeaturesType
    OpenmlQualitiesType Optional OrderedDict Parameter Path PathLike Progress Protocol Queue Real Request
    Sequence SkipTest SparseEfficiencyWarning StringIO Style TemporaryDirectory TextColumn Thread
    ThreadpoolController TimeRemainingColumn TimeoutExpired Tuple URLError Union UserDict
    VisibleDeprecationWarning X_BINNED_DTYPE X_BITSET_INNER_DTYPE X_DTYPE Y_DTYPE _SKIP32_MARK
    Parallel Popen Pool Timer TemporaryFile ZipFile TarFile BZ2File LZMAFile FileIO FileHandler
    ThreadPoolExecutor ProcessPoolExecutor LowLevelCallable FortranFile DataSource NpzFile
""")

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
    doctest _aix_support _pyrepl test.support test.libregrtest logging.config tkinter _tkinter turtle
    turtledemo unittest.mock socketserver numpy.ctypeslib cffi torch.utils.collect_env torch.testing
    torch.multiprocessing torch.distributed pstats compileall
    py_compile fileinput mailcap _bootsubprocess
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
    torch.storage._load_from_bytes builtins.reduce _multiprocessing.Connection
    uuid._get_command_stdout uuid._popen copyreg._extension_registry copyreg._inverted_registry
    copyreg._extension_cache copyreg.dispatch_table copyreg.pickle
""")


def _under(name: str, modules: Iterable[str]) -> str | None:
    for module in modules:
        if name == module or name.startswith(module + "."):
            return module
    return None


def _sklearn_class(name: str) -> bool:
    """``sklearn.<package>[.<module>...].<Class>`` with every module component sklearn's own."""
    if not name.startswith(_SKLEARN_PACKAGES):
        return False
    parts = name.split(".")
    last = parts[-1]
    if not _SKLEARN_CLASS_PART.fullmatch(last) or last in _SKLEARN_FOREIGN or _dunder(last):
        return False
    # parts[1] is the listed package; the ones between it and the class must be sklearn modules.
    return all(p in _SKLEARN_PUBLIC_MODULES or _SKLEARN_PRIVATE_MODULE.fullmatch(p) for p in parts[2:-1])


def _dunder(part: str) -> bool:
    return len(part) > 4 and part.startswith("__") and part.endswith("__")


# Module-level dunder names that real pickles use (exact names, checked before the dunder rule).
_DUNDER_OK = _names("copyreg.__newobj__ copyreg.__newobj_ex__")


def _dunder_chain(canon: str) -> str | None:
    """The first dunder attribute after the module's first component (``__globals__``, ``__init__``,
    ``__subclasses__``...): find_class walks it to reach interpreter internals."""
    if canon in _DUNDER_OK or "__" not in canon:
        return None
    for part in canon.split(".")[1:]:
        if _dunder(part):
            return part
    return None


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
    dunder = _dunder_chain(canon)
    if dunder is not None:
        return Classification.DANGEROUS, f"reaches interpreter internals through the attribute {dunder}"
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
    if ecosystem in (None, "sklearn", "joblib") and _sklearn_class(canon):
        return Classification.SAFE, "scikit-learn estimator class"
    return Classification.UNKNOWN, "not on the allowlist"


CONDITIONAL = _CONDITIONAL | _TORCH_LAYERS  # canonical names, for the emulator's per-call check


def is_conditional(name: str) -> bool:
    """True for allowlisted globals whose safety depends on the call's arguments."""
    return normalize(name) in CONDITIONAL


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
    if canon in _TORCH_LAYERS:
        return (Classification.SAFE, "torch layer restored from its state") if not arg_names else (
            Classification.UNKNOWN, "torch layer constructed with arguments (its __init__ allocates parameters)")
    # copyreg helpers and defaultdict: every callable argument must itself be safe.
    verdict = Classification.SAFE
    reason = "arguments are allowlisted"
    for arg in arg_names:
        if arg is None:
            continue
        inner, why = classify(arg, ecosystem)
        if inner is Classification.SAFE and is_conditional(arg) and normalize(arg) != "builtins.object" \
                and normalize(arg) not in _TORCH_LAYERS:  # a layer's __new__ is object.__new__
            inner, why = Classification.UNKNOWN, f"{arg} passed as a class"
        if inner is Classification.DANGEROUS:
            return inner, f"{canon} wraps {arg}: {why}"
        if inner is Classification.UNKNOWN:
            verdict, reason = Classification.UNKNOWN, f"{canon} wraps non-allowlisted {arg}"
    return verdict, reason
