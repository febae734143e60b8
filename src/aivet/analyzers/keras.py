"""Keras models: v3 ``.keras`` zips and the Keras configs every other reader finds.

Keras rebuilds a model from a JSON config, and that config can name Python
code: ``Lambda`` layers carry marshalled bytecode (legacy) or a base64 code
blob (``__lambda__`` in Keras 3), ``{"class_name": "function", "module": ...}``
entries name any importable function, and ``module`` keys make Keras import
arbitrary modules. We read the config as data and never unmarshal, import or
call anything. :func:`check_keras_config` is the one check of a config: the
``.keras`` reader here, the Keras 2 HDF5 reader (:mod:`aivet.analyzers.keras_hdf5`)
and SavedModel metadata (:mod:`aivet.analyzers.savedmodel`) all hand their configs to it.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import re
import zipfile
from collections.abc import Callable
from typing import IO, BinaryIO

from aivet import rules
from aivet.analyzers import savedmodel
from aivet.analyzers.context import Context
from aivet.analyzers.engine import Outcome
from aivet.analyzers.source import Source
from aivet.evidence import ArtifactStatus, Location, Severity
from aivet.rules import ATLAS_SUPPLY_CHAIN_MODEL, ATLAS_UNSAFE_ARTIFACTS, Rule

LAMBDA_LAYER = Rule(
    "KERAS-LAMBDA-LAYER",
    "Keras Lambda layer with serialized Python code",
    "A Lambda layer stores Python bytecode (marshalled and base64-encoded in HDF5/legacy configs, "
    "a `__lambda__` code blob in Keras 3). Loading the model rebuilds and runs that code: arbitrary "
    "code execution (CVE-2024-3660 for Keras < 2.13; legacy .h5 loading ignored safe_mode, "
    "CVE-2025-9905). The bytecode is never unmarshalled; printable names in it are reported.",
    Severity.CRITICAL,
    (ATLAS_UNSAFE_ARTIFACTS, ATLAS_SUPPLY_CHAIN_MODEL),
    ("CWE-502", "CWE-94"),
)
FUNCTION_REFERENCE = Rule(
    "KERAS-FUNCTION-REFERENCE",
    "Keras config references a Python function outside Keras",
    "A config entry names a function by module and name (`{\"class_name\": \"function\", \"module\": "
    "\"os\", \"config\": \"system\"}`, or a legacy Lambda with `function_type: function`). Keras "
    "imports the module and calls the function while loading: the technique behind the Keras "
    "safe_mode bypasses (CVE-2025-1550: module/function injection through config.json).",
    Severity.HIGH,
    (ATLAS_UNSAFE_ARTIFACTS, ATLAS_SUPPLY_CHAIN_MODEL),
    ("CWE-502", "CWE-470"),
)
UNSAFE_MODULE = Rule(
    "KERAS-UNSAFE-MODULE",
    "Keras config imports a module outside the Keras allowlist",
    "Keras 3 configs carry a `module` for every object and import it on load. A module outside "
    "keras/tf.keras/tf_keras runs its import-time code and exposes its attributes to the config "
    "(CVE-2025-1550). Modules such as os, subprocess or builtins are critical.",
    Severity.HIGH,
    (ATLAS_UNSAFE_ARTIFACTS, ATLAS_SUPPLY_CHAIN_MODEL),
    ("CWE-470", "CWE-502"),
)
DOWNLOAD_GADGET = Rule(
    "KERAS-GADGET",
    "Keras config uses a Keras utility as a gadget",
    "The config references a Keras function that touches files, the network or the loader's own "
    "safety switch (keras.utils.get_file / file_utils, enable_unsafe_deserialization, a safe_mode "
    "argument) or loads another model (model_from_json, the legacy HDF5 loader). Published "
    "safe_mode bypasses use get_file to download attacker files or overwrite local ones "
    "(CVE-2025-8747) and use the switch to turn safe_mode off from inside the model.",
    Severity.HIGH,
    (ATLAS_UNSAFE_ARTIFACTS, ATLAS_SUPPLY_CHAIN_MODEL),
    ("CWE-502", "CWE-73"),
)
CUSTOM_OBJECT = Rule(
    "KERAS-CUSTOM-OBJECT",
    "Keras config needs custom (non-Keras) objects",
    "The config names a registered custom object (`registered_name` like `package>Name`). Loading "
    "needs code that the model's users must import from somewhere: review where it comes from.",
    Severity.MEDIUM,
    (ATLAS_SUPPLY_CHAIN_MODEL,),
    ("CWE-829",),
)
TF_OP_LAMBDA = Rule(
    "KERAS-TF-OP-LAMBDA",
    "Keras TFOpLambda layer calls a TensorFlow function by name",
    "TFOpLambda/SlicingOpLambda layers call a TensorFlow API function named in the config. Most are "
    "maths; names under tf.io, tf.py_function, numpy_function, load_op_library or summary writers, and "
    "tf.raw_ops ops that run Python or touch files or the network (raw_ops.ReadFile, WriteFile, "
    "PyFunc, ...), are reported as high.",
    Severity.LOW,
    (ATLAS_UNSAFE_ARTIFACTS,),
    ("CWE-470",),
)
UNREADABLE_CONFIG = Rule(
    "KERAS-CONFIG-UNREADABLE",
    "Keras model config could not be parsed",
    "Bytes that start like a Keras config are not valid JSON (or the config file is missing or too "
    "large). Keras may still load it; aivet could not check it and fails closed.",
    Severity.MEDIUM,
    (rules.ATLAS_EVADE,),
    ("CWE-20",),
)

FILE_REFERENCE = Rule(
    "KERAS-FILE-REFERENCE",
    "Keras layer config makes the loader read a file or URL",
    "Lookup layers (StringLookup, IntegerLookup, IndexLookup, TextVectorization) take a file path as "
    "`vocabulary` and read it while the model is rebuilt; TFSMLayer loads the SavedModel at its "
    "`filepath`. Through tf.io.gfile the path may also be a gs://, s3:// or http(s):// URL: any local "
    "file becomes the vocabulary (readable again with get_vocabulary) or the server makes requests "
    "of the model author's choosing (CVE-2025-12058, a safe_mode bypass). KerasHub tokenizers "
    "(WordPiece, BytePair, SentencePiece and the model tokenizers built on them) read `vocabulary`, "
    "`merges` or `proto` the same way when given a string. Keras saves vocabularies as assets inside "
    "the archive, never as paths.",
    Severity.HIGH,
    (ATLAS_UNSAFE_ARTIFACTS,),
    ("CWE-22", "CWE-918"),
)
TORCH_MODULE = Rule(
    "KERAS-TORCH-MODULE",
    "Keras TorchModuleWrapper carries a pickled PyTorch module",
    "A TorchModuleWrapper layer stores its whole torch.nn.Module as torch.save bytes (base64 in the "
    "config) and rebuilds it with torch's full unpickler (weights_only off): a pickle that runs any code it names. "
    "Keras versions before the fix did this even in safe_mode. The bytes are decoded and analysed as a "
    "nested file (its pickle findings follow); a module of classes from outside torch needs their code.",
    Severity.HIGH,
    (ATLAS_UNSAFE_ARTIFACTS, ATLAS_SUPPLY_CHAIN_MODEL),
    ("CWE-502",),
)
RULES = (LAMBDA_LAYER, FUNCTION_REFERENCE, UNSAFE_MODULE, DOWNLOAD_GADGET, CUSTOM_OBJECT, TF_OP_LAMBDA,
         UNREADABLE_CONFIG, FILE_REFERENCE, TORCH_MODULE)

_ALLOWED_ROOTS = ("keras", "tf_keras", "keras_hub", "keras_nlp", "keras_cv")
_DANGEROUS_ROOTS = frozenset(
    "os posix nt subprocess builtins __builtin__ sys shutil socket pty importlib runpy pickle marshal "
    "code codeop ctypes cffi requests urllib urllib3 http webbrowser tempfile pathlib io multiprocessing "
    "asyncio signal platform commands popen2 pdb timeit operator functools types inspect".split())
_DANGEROUS_NAMES = frozenset(
    "system popen exec eval execfile compile __import__ open spawn spawnl spawnv fork run call "
    "check_output check_call Popen getoutput remove unlink rmtree write_file get_file loads load "
    "getattr setattr import_module socket connect urlopen urlretrieve".split())
# Keras functions that fetch or write files, load other models, turn safe_mode off or unmarshal code:
# under a Keras module they pass the module allowlist, and a Lambda can call them with config arguments.
# Loading another model (model_from_json, the legacy HDF5 loader that ignored safe_mode, CVE-2025-9905)
# from inside a config, or writing files (plot_model, extract_archive), is a gadget as well.
_GADGET = re.compile(r"get_file|file_utils|enable_unsafe_deserialization|safe_mode|urlretrieve|func_load|"
                     r"(^|\.)load_model$|load_model_from_hdf5|model_from_(json|yaml|config)|load_weights|"
                     r"deserialize_keras_object|set_global_attribute|plot_model|model_to_dot|extract_archive")
# Layers that read the file (or URL) their config names; the keys that name it. KerasHub/KerasNLP
# tokenizers take a path as well: WordPieceTokenizer a vocabulary file, BytePairTokenizer vocabulary
# and merges files, SentencePieceTokenizer a proto file; every model tokenizer subclasses one of them.
_FILE_KEYS = {"StringLookup": ("vocabulary",), "IntegerLookup": ("vocabulary",), "IndexLookup": ("vocabulary",),
              "TextVectorization": ("vocabulary",), "TFSMLayer": ("filepath",)}
_TOKENIZER_FILE_KEYS = ("vocabulary", "merges", "proto")
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_MODULE_NAME = re.compile(r"^[^+/=\s]{1,512}$")  # anything importlib might take; not a base64 blob
_TF_OP_DANGER = re.compile(r"(^|\.)(io|gfile|summary|debugging)\.|py_func|numpy_function|py_function|"
                           r"load_op_library|load_library|load_pluggable_device_library|"
                           r"write_file|read_file|save|restore|print")
_MAX_WALK = 1_000_000  # dict/list nodes visited in one config
_MAX_STRINGS = 64


def _allowed_module(module: str) -> bool:
    root = module.split(".", 1)[0]
    if root in _ALLOWED_ROOTS:
        return True
    return module == "tensorflow.keras" or module.startswith(("tensorflow.keras.", "tensorflow.python.keras"))


def _file_keys(class_name: str) -> tuple[str, ...]:
    """The config keys whose string value the class reads as a file path or URL when rebuilt."""
    if class_name in _FILE_KEYS:
        return _FILE_KEYS[class_name]
    # A tokenizer's vocabulary is a list (or saved as an asset) in a saved config; a string is a path.
    return _TOKENIZER_FILE_KEYS if class_name.endswith("Tokenizer") else ()


def pointer_token(token: str) -> str:
    """``token`` escaped for a JSON pointer (RFC 6901): ``~`` as ``~0``, ``/`` as ``~1``."""
    return token.replace("~", "~0").replace("/", "~1")


def check_keras_config(config: object, source: Source, ctx: Context, pointer: str = "", *,
                       offset: int | None = None) -> int:
    """Walk a decoded Keras model config and add a finding for every piece of code it names.

    ``pointer`` prefixes the JSON pointers of the findings (for configs
    embedded in a larger document); ``offset`` is where the config starts in
    the file, when known. Returns the number of findings added.
    Iterative (no recursion), bounded by a node budget.
    """
    before = len(ctx.findings)
    stack: list[tuple[object, str]] = [(config, pointer)]
    visited = 0
    while stack:
        node, where = stack.pop()
        visited += 1
        if visited > _MAX_WALK:
            ctx.add(rules.LIMIT_EXCEEDED.finding(ctx.location(source, pointer=where),
                                                 "Keras config too large to check completely",
                                                 limit="keras_config_nodes"))
            break
        if isinstance(node, dict):
            _check_object(node, source, ctx, where, offset)
            # A key such as "safe_mode": false passes a Lambda's or gadget's arguments by name.
            for key in node:
                if isinstance(key, str) and _GADGET.search(key):
                    ctx.add(DOWNLOAD_GADGET.finding(ctx.location(source, pointer=f"{where}/{pointer_token(key)}"),
                                                    f"config passes the argument {key[:200]!r}", value=key[:200]))
            stack.extend((v, f"{where}/{pointer_token(str(k))}") for k, v in node.items())
        elif isinstance(node, list):
            stack.extend((v, f"{where}/{i}") for i, v in enumerate(node))
        elif isinstance(node, str) and _GADGET.search(node):
            ctx.add(DOWNLOAD_GADGET.finding(ctx.location(source, pointer=where),
                                            f"config references the Keras gadget {node[:200]!r}",
                                            value=node[:200]))
    return len(ctx.findings) - before


def _check_object(obj: dict[object, object], source: Source, ctx: Context, where: str,
                  offset: int | None) -> None:
    class_name = obj.get("class_name")
    module = obj.get("module")
    inner = obj.get("config")
    loc = ctx.location(source, offset=offset, pointer=where)
    if class_name == "__lambda__":
        _report_lambda(inner, loc, ctx, "Keras 3 __lambda__")
    elif class_name == "Lambda" and isinstance(inner, dict):
        function = inner.get("function")
        if inner.get("function_type") == "function" and isinstance(function, str):
            _report_function(str(inner.get("module") or ""), function, loc, ctx)
        elif not isinstance(function, dict):  # a dict is a nested __lambda__/function, visited on its own
            _report_lambda(function, loc, ctx, "legacy Lambda")
        # Keras 2 rebuilds output_shape and mask the same way as the function: bytecode when their
        # *_type is "lambda", an imported function when it is "function" (a benign-looking function
        # does not make the layer safe).
        for key in ("output_shape", "mask"):
            value, kind = inner.get(key), inner.get(f"{key}_type")
            at = ctx.location(source, offset=offset, pointer=f"{where}/config/{key}")
            if kind == "lambda" and not isinstance(value, dict):
                _report_lambda(value, at, ctx, f"legacy Lambda {key}")
            elif kind == "function" and isinstance(value, str):
                _report_function(str(inner.get(f"{key}_module") or ""), value, at, ctx)
    elif class_name in ("TFOpLambda", "SlicingOpLambda") and isinstance(inner, dict):
        fn = str(inner.get("function", ""))
        # tf.raw_ops.<Op> reaches every registered op: judge the op as the graph checks do.
        raw_op = fn.rsplit("raw_ops.", 1)[1] if "raw_ops." in fn else None
        danger = bool(_TF_OP_DANGER.search(fn)) or (raw_op is not None and savedmodel.risky_op(raw_op))
        ctx.add(TF_OP_LAMBDA.finding(loc, f"{class_name} calls TensorFlow function {fn[:200]!r}",
                                     severity=Severity.HIGH if danger else None, function=fn[:200]))
    elif isinstance(class_name, str) and _file_keys(class_name) and isinstance(inner, dict):
        for key in _file_keys(class_name):
            path = inner.get(key)
            if isinstance(path, str) and path:
                remote = bool(_URL.match(path))
                ctx.add(FILE_REFERENCE.finding(
                    loc, f"{class_name} reads its {key} from {'URL' if remote else 'file'} {path[:200]!r} when loaded",
                    class_name=class_name, key=key, path=path[:1000], remote=remote))
    elif class_name == "TorchModuleWrapper" and isinstance(inner, dict) and "module" in inner:
        _report_torch_module(inner["module"], source, ctx, where, loc)
    elif class_name == "function" and isinstance(inner, str):
        if not (isinstance(module, str) and _allowed_module(module)):
            _report_function(str(module or ""), inner, loc, ctx)
            return  # the module is reported as part of the function
    # A legacy Lambda config's own "module" is where its function came from (reported above); a module
    # name is a dotted identifier, while TorchModuleWrapper's config keeps torch.save bytes under the key.
    if isinstance(module, str) and _MODULE_NAME.match(module) and not _allowed_module(module) \
            and "function_type" not in obj:
        root = module.split(".", 1)[0]
        critical = root in _DANGEROUS_ROOTS
        ctx.add(UNSAFE_MODULE.finding(
            loc, f"config makes Keras import module {module!r} (for {str(class_name)[:100]!r})",
            severity=Severity.CRITICAL if critical else None, module=module, class_name=str(class_name)[:200]))
    registered = obj.get("registered_name")
    if isinstance(registered, str) and ">" in registered and registered.split(">", 1)[0] not in _ALLOWED_ROOTS:
        ctx.add(CUSTOM_OBJECT.finding(loc, f"config needs the custom object {registered[:200]!r}",
                                      registered_name=registered[:200]))


def _report_torch_module(value: object, source: Source, ctx: Context, where: str, loc: Location) -> None:
    """Report a TorchModuleWrapper's pickled module and analyse its bytes as a nested file."""
    if isinstance(value, dict) and value.get("class_name") == "__bytes__" and isinstance(value.get("config"), dict):
        value = value["config"].get("value")  # older Keras serialised the raw bytes this way
    data: bytes | None = None
    if isinstance(value, str) and len(value) <= 4 * ctx.limits.max_string_bytes:
        try:
            data = base64.b64decode(value.encode("ascii"), validate=True)
        except (binascii.Error, ValueError):
            data = value.encode("latin-1", "replace")
    ctx.add(TORCH_MODULE.finding(loc, "TorchModuleWrapper rebuilds a pickled torch module with torch.load when "
                                 "the model loads" + ("" if data else " (its bytes could not be read)"),
                                 length=len(data or b"")))
    if data and source.depth < ctx.limits.max_archive_depth:
        payload = data
        ctx.analyze(source.child(f"{where or '/'}#torch-module", len(payload), lambda: io.BytesIO(payload)))


def _report_function(module: str, name: str, loc: Location, ctx: Context) -> None:
    root = module.split(".", 1)[0]
    critical = root in _DANGEROUS_ROOTS or name.rsplit(".", 1)[-1] in _DANGEROUS_NAMES
    ctx.add(FUNCTION_REFERENCE.finding(
        loc,
        f"config makes Keras import and call {module + '.' if module else ''}{name[:200]}",
        severity=Severity.CRITICAL if critical else None, module=module[:200], function=name[:200]))


def _report_lambda(payload: object, loc: Location, ctx: Context, kind: str) -> None:
    code = _lambda_code(payload)
    names: list[str] = []
    if code is not None:
        raw = _b64(code)
        names = printable_strings(raw if raw is not None else code.encode("utf-8", "replace"))
    suspicious = sorted({n for n in names if n in _DANGEROUS_NAMES or n in _DANGEROUS_ROOTS})
    note = f"; names in the bytecode include {', '.join(suspicious)}" if suspicious else ""
    ctx.add(LAMBDA_LAYER.finding(loc,
                                 f"{kind} layer carries Python code that runs when the model loads{note}",
                                 strings=names, suspicious=suspicious, kind=kind))


def _lambda_code(payload: object) -> str | None:
    """The base64 code string of a legacy ``function`` value or a ``__lambda__`` config."""
    if isinstance(payload, str):
        return payload
    if isinstance(payload, (list, tuple)) and payload and isinstance(payload[0], str):
        return payload[0]
    if isinstance(payload, dict):
        for key in ("code", "value"):
            if key in payload:
                return _lambda_code(payload[key])
    return None


def _b64(text: str) -> bytes | None:
    try:
        return base64.b64decode(text.encode("ascii", "replace")[: 16 * 1024 * 1024], validate=False)
    except (binascii.Error, ValueError):
        return None


_PRINTABLE_RUN = re.compile(rb"[\x20-\x7e]{2,}")


def printable_strings(raw: bytes, limit: int = _MAX_STRINGS) -> list[str]:
    """Printable ASCII runs (names, constants) in marshalled bytecode, without unmarshalling it."""
    out: list[str] = []
    for m in _PRINTABLE_RUN.finditer(raw):
        text = m.group().decode("ascii")[:200]
        if text not in out:
            out.append(text)
            if len(out) >= limit:
                break
    return out


# ---------------------------------------------------------------------------------------------
# Keras 3 .keras zips
# ---------------------------------------------------------------------------------------------

def analyze_keras_zip(zf: zipfile.ZipFile, source: Source, ctx: Context, *,
                      analyze_member: Callable[[str], None] | None = None) -> Outcome:
    """Check a Keras 3 ``.keras`` archive: its config.json, metadata.json and every other member.

    Members other than the two JSON files are handed to ``analyze_member(name)``
    when given (the archive analyzer passes its own, with its bomb and budget
    checks); otherwise they are analysed here with :meth:`Context.analyze`.
    """
    names = {info.filename: info for info in zf.infolist()}
    status = ArtifactStatus.ANALYZED
    note = ""
    if "config.json" not in names:
        ctx.add(UNREADABLE_CONFIG.finding(ctx.location(source), "Keras archive has no config.json"))
        status = ArtifactStatus.PARTIAL
    # Every entry of that name, not only the last one Python's zipfile (and so Keras) opens: other zip
    # readers take the first, and a hidden second config is a parser differential in itself.
    for info in [i for i in zf.infolist() if i.filename in ("config.json", "metadata.json")]:
        name = info.filename
        member = source.child(name, info.file_size, _opener(zf, info))
        if info.file_size > ctx.limits.max_text_file_bytes:
            ctx.add(rules.LIMIT_EXCEEDED.finding(ctx.location(member), f"{name} is {info.file_size} bytes",
                                                 limit="max_text_file_bytes"))
            status = ArtifactStatus.PARTIAL
            continue
        with zf.open(info) as fh:
            data = fh.read(ctx.limits.max_text_file_bytes + 1)
        try:
            doc = json.loads(data)
        except (ValueError, RecursionError) as exc:
            ctx.add(UNREADABLE_CONFIG.finding(ctx.location(member), f"{name} is not valid JSON: {exc}"))
            status = ArtifactStatus.PARTIAL
            continue
        if name == "config.json":
            check_keras_config(doc, member, ctx)
        elif isinstance(doc, dict):
            note = f"keras_version {str(doc.get('keras_version', '?'))[:40]}"
        ctx.record(member, "json", ArtifactStatus.ANALYZED, "Keras " + name)
    for name, info in names.items():
        if name in ("config.json", "metadata.json") or info.filename.endswith("/"):
            continue
        if analyze_member is not None:
            analyze_member(name)
            continue
        if info.file_size > ctx.limits.max_member_bytes:
            ctx.add(rules.LIMIT_EXCEEDED.finding(ctx.location(source), f"member {name} is too large to analyse",
                                                 limit="max_member_bytes", member=name))
            status = ArtifactStatus.PARTIAL
            continue
        ctx.analyze(source.child(name, info.file_size, _opener(zf, info)))
    return Outcome("keras-v3", status, note)


def _opener(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> Callable[[], BinaryIO]:
    def open_member() -> BinaryIO:
        stream: IO[bytes] = zf.open(info)
        return stream  # type: ignore[return-value]  # ZipExtFile is a seekable binary stream

    return open_member


def check_keras_json_config(doc: object, source: Source, ctx: Context) -> bool:
    """Check ``doc`` (a decoded JSON file) when it is a Keras model config; return whether it is one.

    Keras 3 loads a *directory* holding config.json (and model.weights.h5) as it loads a ``.keras``
    zip, including Hugging Face repositories through ``hf://`` (saving_lib._load_model_from_dir), and
    ``model_from_json`` reads the JSON of ``model.to_json()``: both are a top-level object with a
    ``class_name`` string and a ``config``. Transformers and diffusers configs never have those keys.
    """
    if not (isinstance(doc, dict) and isinstance(doc.get("class_name"), str)
            and isinstance(doc.get("config"), (dict, list))):
        return False
    check_keras_config(doc, source, ctx)
    return True


def check_keras_json_text(text: bytes | str, source: Source, ctx: Context, pointer: str = "") -> bool:
    """Parse ``text`` as JSON and check it as a Keras config; False (and a finding) if unparseable."""
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError) as exc:
        ctx.add(UNREADABLE_CONFIG.finding(ctx.location(source, pointer=pointer or None),
                                          f"Keras metadata is not valid JSON: {exc}"))
        return False
    check_keras_config(doc, source, ctx, pointer)
    return True


__all__ = ["RULES", "analyze_keras_zip", "check_keras_config", "check_keras_json_config", "check_keras_json_text",
           "printable_strings"]
