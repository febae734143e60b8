"""Keras models: v3 ``.keras`` zips, legacy HDF5 (``.h5``) and configs found elsewhere.

Keras rebuilds a model from a JSON config, and that config can name Python
code: ``Lambda`` layers carry marshalled bytecode (legacy) or a base64 code
blob (``__lambda__`` in Keras 3), ``{"class_name": "function", "module": ...}``
entries name any importable function, and ``module`` keys make Keras import
arbitrary modules. We read the config as data and never unmarshal, import or
call anything. HDF5 files are *not* opened with libhdf5 (a hostile file would
be parsed by C code in-process): :mod:`aivet.formats.hdf5` reads their
structure in pure Python, and every JSON string attribute (Keras 2 keeps
``model_config`` and ``training_config`` on the root group) is decoded and
checked. Only when that structure cannot be read are the bytes scanned for
configs instead, and the file is then reported as partially analysed.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import zipfile
from collections.abc import Callable
from dataclasses import replace
from typing import IO, BinaryIO

from aivet import rules
from aivet.analyzers import paths, savedmodel
from aivet.analyzers.context import Context
from aivet.analyzers.engine import Outcome
from aivet.analyzers.source import Source
from aivet.evidence import ArtifactStatus, Location, Severity
from aivet.formats import FormatError, LimitExceeded, hdf5
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
    "safety switch (keras.utils.get_file / file_utils, enable_unsafe_deserialization). Published "
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
    "of the model author's choosing (CVE-2025-12058, a safe_mode bypass). Keras saves vocabularies as "
    "assets inside the archive, never as paths.",
    Severity.HIGH,
    (ATLAS_UNSAFE_ARTIFACTS,),
    ("CWE-22", "CWE-918"),
)
HDF5_EXTERNAL_LINK = Rule(
    "HDF5-EXTERNAL-LINK",
    "HDF5 external link makes the loader open another file",
    "A group member is an external link: a file name and a path in that file. h5py and Keras open "
    "that file when the member is read (the weights group, a layer, a soft link leading through it), "
    "so its contents stand in for this file's. High when the file name is absolute, has a '..' "
    "component or resolves outside the model directory (reads any HDF5 file the loader can, e.g. to "
    "leak it through the weights); medium when it cannot be checked (inside an archive it resolves "
    "against the loader's working directory) or the file is missing; low when it is a file of the "
    "repository (scanned on its own).",
    Severity.HIGH,
    (ATLAS_UNSAFE_ARTIFACTS, ATLAS_SUPPLY_CHAIN_MODEL),
    ("CWE-22", "CWE-73"),
)
HDF5_EXTERNAL_STORAGE = Rule(
    "HDF5-EXTERNAL-STORAGE",
    "HDF5 dataset reads its data from another file",
    "A dataset keeps its raw data in external files named by path (the external data files message), "
    "or is a virtual dataset mapping datasets of other HDF5 files. Reading the weights reads those "
    "bytes, whatever the file is: an absolute or '..' path, or one "
    "resolving outside the model directory, is an arbitrary file read into a tensor (high; cf. ONNX "
    "external data). Medium when it cannot be checked or is missing, low inside the repository.",
    Severity.HIGH,
    (ATLAS_UNSAFE_ARTIFACTS,),
    ("CWE-22", "CWE-73"),
)
HDF5_OVERSIZED_DATASET = Rule(
    "HDF5-OVERSIZED-DATASET",
    "HDF5 dataset declares far more data than the file holds",
    "A dataset's shape and type declare at least 1 GiB and more than 16 times the file's size. h5py "
    "and Keras allocate the whole declared array when a weight is read (chunks never written are "
    "filled in memory), so a small file can exhaust the loader's memory (CVE-2026-0897: a "
    "model.weights.h5 in a .keras archive). Weights that large are normally stored, not declared.",
    Severity.MEDIUM,
    (ATLAS_UNSAFE_ARTIFACTS,),
    ("CWE-400", "CWE-770"),
)
HDF5_FILTER_PLUGIN = Rule(
    "HDF5-FILTER-PLUGIN",
    "HDF5 dataset needs a filter plugin: native code the file does not carry",
    "A dataset's filter pipeline names a filter libhdf5 does not have built in (deflate, shuffle, "
    "fletcher32, szip, nbit and scaleoffset are; h5py registers its own LZF). Reading the dataset makes "
    "libhdf5 search its plugin directories (HDF5_PLUGIN_PATH, else a compiled-in default) and load the "
    "shared library that registers that filter id: the model needs native code it does not carry, and "
    "whatever library sits in the loader's plugin path runs. Common for compressed weights (Blosc, LZ4, "
    "Zstandard, bitshuffle through hdf5plugin); make sure the plugin path holds only trusted builds.",
    Severity.LOW,
    (ATLAS_SUPPLY_CHAIN_MODEL,),
    ("CWE-427", "CWE-829"),
)

RULES = (LAMBDA_LAYER, FUNCTION_REFERENCE, UNSAFE_MODULE, DOWNLOAD_GADGET, CUSTOM_OBJECT, TF_OP_LAMBDA,
         UNREADABLE_CONFIG, FILE_REFERENCE, HDF5_EXTERNAL_LINK, HDF5_EXTERNAL_STORAGE, HDF5_OVERSIZED_DATASET,
         HDF5_FILTER_PLUGIN)

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
_GADGET = re.compile(r"get_file|file_utils|enable_unsafe_deserialization|safe_mode|urlretrieve|func_load|"
                     r"(^|\.)load_model$")
# Layers that read the file (or URL) their config names; the key that names it.
_FILE_KEYS = {"StringLookup": "vocabulary", "IntegerLookup": "vocabulary", "IndexLookup": "vocabulary",
              "TextVectorization": "vocabulary", "TFSMLayer": "filepath"}
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
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


def _escape(token: str) -> str:
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
            stack.extend((v, f"{where}/{_escape(str(k))}") for k, v in node.items())
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
    elif isinstance(class_name, str) and class_name in _FILE_KEYS and isinstance(inner, dict):
        key = _FILE_KEYS[class_name]
        path = inner.get(key)
        if isinstance(path, str) and path:
            remote = bool(_URL.match(path))
            ctx.add(FILE_REFERENCE.finding(
                loc, f"{class_name} reads its {key} from {'URL' if remote else 'file'} {path[:200]!r} when loaded",
                class_name=class_name, key=key, path=path[:1000], remote=remote))
    elif class_name == "function" and isinstance(inner, str):
        if not (isinstance(module, str) and _allowed_module(module)):
            _report_function(str(module or ""), inner, loc, ctx)
            return  # the module is reported as part of the function
    # A legacy Lambda config's own "module" is where its function came from (reported above).
    if isinstance(module, str) and not _allowed_module(module) and "function_type" not in obj:
        root = module.split(".", 1)[0]
        critical = root in _DANGEROUS_ROOTS
        ctx.add(UNSAFE_MODULE.finding(
            loc, f"config makes Keras import module {module!r} (for {str(class_name)[:100]!r})",
            severity=Severity.CRITICAL if critical else None, module=module, class_name=str(class_name)[:200]))
    registered = obj.get("registered_name")
    if isinstance(registered, str) and ">" in registered and registered.split(">", 1)[0] not in _ALLOWED_ROOTS:
        ctx.add(CUSTOM_OBJECT.finding(loc, f"config needs the custom object {registered[:200]!r}",
                                      registered_name=registered[:200]))


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
    for name in ("config.json", "metadata.json"):
        info = names.get(name)
        if info is None:
            if name == "config.json":
                ctx.add(UNREADABLE_CONFIG.finding(ctx.location(source), "Keras archive has no config.json"))
                status = ArtifactStatus.PARTIAL
            continue
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


# ---------------------------------------------------------------------------------------------
# HDF5 (Keras 2 .h5): parsed by aivet.formats.hdf5, never by libhdf5; a byte scan as fallback
# ---------------------------------------------------------------------------------------------

_CONFIG_START = re.compile(rb'\{\s*"(?:class_name|module)"\s*:')
_CHUNK = 1024 * 1024
_OVERLAP = 64
_MAX_CONFIGS = 1000  # candidate JSON objects per file; Keras writes two


def find_json_configs(stream: BinaryIO, size: int, max_bytes: int) -> list[tuple[int, bytes | None]]:
    """Locate JSON objects starting with ``{"class_name"`` or ``{"module"`` in a byte stream.

    Returns ``(offset, text)`` per object; ``text`` is ``None`` when the
    object is not closed within ``max_bytes`` (or before the end of the file).
    Objects nested inside an earlier one are not returned separately, and
    scanning resumes after the bytes already examined, so the work stays
    linear in the file size. Memory is bounded by ``max_bytes``.
    """
    found: list[tuple[int, bytes | None]] = []
    pos = 0
    while pos < size and len(found) < _MAX_CONFIGS:
        stream.seek(pos)
        chunk = stream.read(_CHUNK)
        if not chunk:
            break
        m = _CONFIG_START.search(chunk)
        if m is None:
            if len(chunk) < _CHUNK:
                break
            pos += len(chunk) - _OVERLAP
            continue
        start = pos + m.start()
        stream.seek(start)
        text, consumed = _balanced(stream, max_bytes)
        found.append((start, text))
        pos = start + max(consumed, 1)
    return found


_JSON_SPECIAL = re.compile(rb'["\\{}\[\]]')


def _balanced(stream: BinaryIO, max_bytes: int) -> tuple[bytes | None, int]:
    """Read one balanced JSON object (string- and escape-aware); return it and the bytes examined."""
    buf = bytearray()
    depth = 0
    in_string = False
    skip = 0  # index in the current block before which matches are escaped characters
    while len(buf) < max_bytes:
        block = stream.read(min(64 * 1024, max_bytes - len(buf)))
        if not block:
            return None, len(buf)
        for m in _JSON_SPECIAL.finditer(block):
            i = m.start()
            if i < skip:
                continue
            byte = block[i]
            if in_string:
                if byte == 0x5C:
                    skip = i + 2
                elif byte == 0x22:
                    in_string = False
            elif byte == 0x22:
                in_string = True
            elif byte == 0x7B or byte == 0x5B:
                depth += 1
            elif byte == 0x7D or byte == 0x5D:
                depth -= 1
                if depth <= 0:
                    buf += block[: i + 1]
                    return bytes(buf), len(buf)
        skip = max(0, skip - len(block))
        buf += block
    return None, len(buf)


_KERAS_ATTRIBUTES = ("model_config", "training_config")  # what Keras 2 load_model json-decodes
_BOM = b"\xef\xbb\xbf"
_MAX_PROBLEM_FINDINGS = 20  # unreadable parts reported one by one; the rest are counted in one finding


def analyze_hdf5(source: Source, ctx: Context) -> Outcome:
    """Check an HDF5 file's attributes for Keras configs, parsing its structure in pure Python.

    Every string attribute of the root group and of the objects reachable from it that
    holds JSON is decoded with :func:`json.loads` (so ``\\u`` escapes, dense attribute
    storage, variable-length strings and continuation blocks make no difference) and
    checked as a Keras config. When the structure cannot be read completely the file is
    PARTIAL, each problem is a finding, and the bytes are also scanned for configs.
    """
    limits = replace(hdf5.HDF5_LIMITS, max_value_bytes=ctx.limits.max_string_bytes,
                     max_objects=ctx.limits.max_hdf5_objects, max_messages=ctx.limits.max_hdf5_messages,
                     max_read_bytes=ctx.limits.max_hdf5_metadata_bytes)
    with source.open() as fh:
        if hdf5.superblock_offset(fh, source.size) is None:
            raise FormatError("missing HDF5 superblock signature", 0)
        try:
            contents = hdf5.read_attributes(fh, source.size, limits)
        except (FormatError, LimitExceeded) as exc:
            _structure_problem(exc, source, ctx)
            found = _byte_scan(fh, source, ctx, set())
            return Outcome("keras-hdf5" if found else "hdf5", ArtifactStatus.PARTIAL,
                           f"HDF5 structure not parsed ({str(exc)[:200]}); byte-scan fallback located "
                           f"{found} Keras config(s)")
        configs, checked, complete = _check_attributes(contents, source, ctx)
        _check_external(contents, source, ctx)
        _check_filters(contents, source, ctx)
        note = (f"structure parsed (superblock v{contents.superblock_version}, {contents.objects} object(s), "
                f"{len(contents.attributes)} attribute(s)); {configs} Keras config(s) read from attributes")
        for problem in contents.problems[:_MAX_PROBLEM_FINDINGS]:
            _report_problem(problem, source, ctx)
        if len(contents.problems) > _MAX_PROBLEM_FINDINGS:
            ctx.add(rules.PARSE_ERROR.finding(
                ctx.location(source), f"{len(contents.problems) - _MAX_PROBLEM_FINDINGS} more unreadable HDF5 "
                "part(s) not listed", format="hdf5", more=len(contents.problems) - _MAX_PROBLEM_FINDINGS))
        if contents.problems:
            found = _byte_scan(fh, source, ctx, checked)
            configs += found
            note += (f"; {len(contents.problems)} part(s) unreadable, byte-scan fallback located "
                     f"{found} more config(s)")
            complete = False
    status = ArtifactStatus.ANALYZED if complete else ArtifactStatus.PARTIAL
    version = next((a.value for a in contents.attributes
                    if a.path == "/" and a.name == "keras_version" and isinstance(a.value, bytes)), None)
    if version is not None:
        note += f"; keras_version {version[:40].decode('utf-8', 'replace')}"
    return Outcome("keras-hdf5" if configs else "hdf5", status, note)


def _check_attributes(contents: hdf5.Hdf5Contents, source: Source,
                      ctx: Context) -> tuple[int, set[bytes], bool]:
    """Check every JSON string attribute; return (Keras configs, digests of checked texts, complete)."""
    configs = 0
    checked: set[bytes] = set()
    complete = True
    for attr in contents.attributes:
        pointer = f"{attr.path.rstrip('/')}/@{_escape(attr.name)}"
        keras_attr = attr.name in _KERAS_ATTRIBUTES
        texts = _texts(attr.value)
        if keras_attr and not texts:
            ctx.add(UNREADABLE_CONFIG.finding(
                ctx.location(source, offset=attr.offset, pointer=pointer),
                f"{attr.name} attribute on {attr.path} is a {attr.type_class} value, not a JSON string",
                type_class=attr.type_class))
            complete = False
        for index, text in texts:
            where = pointer if index is None else f"{pointer}/{index}"
            body = text.strip()
            if body.startswith(_BOM):
                body = body[len(_BOM):].lstrip()
            if not body.startswith((b"{", b"[")) and not keras_attr:
                continue
            try:
                doc = json.loads(body)
            except (ValueError, RecursionError) as exc:
                if keras_attr or _CONFIG_START.match(body):
                    ctx.add(UNREADABLE_CONFIG.finding(
                        ctx.location(source, offset=attr.offset, pointer=where),
                        f"{attr.name} attribute on {attr.path} is not valid JSON: {exc}"))
                    complete = False
                continue
            checked.add(hashlib.sha256(body).digest())
            check_keras_config(doc, source, ctx, where, offset=attr.offset)
            if keras_attr or (isinstance(doc, dict) and ("class_name" in doc or "module" in doc)):
                configs += 1
    return configs, checked, complete


def _check_external(contents: hdf5.Hdf5Contents, source: Source, ctx: Context) -> None:
    """Report external links (with the soft links that lead through them), data kept in other files and
    datasets declaring far more data than the file holds."""
    via: dict[str, list[str]] = {}
    for link in contents.links:
        if link.kind == hdf5.SOFT and link.through is not None:
            via.setdefault(link.through, []).append(link.path)
    reported = 0
    for link in contents.links:
        if link.kind != hdf5.EXTERNAL or link.file is None:
            continue
        reported += 1
        if reported > ctx.limits.max_findings_per_file:
            break
        severity, why = paths.reference_verdict(link.file, source.fs_path, ctx.root)
        soft = via.get(link.path, [])
        note = f"; soft link(s) {', '.join(soft[:5])} lead through it" if soft else ""
        ctx.add(HDF5_EXTERNAL_LINK.finding(
            ctx.location(source, offset=link.offset, pointer=link.path),
            f"{link.path} is an external link to {link.target[:200]!r} in file {link.file[:200]!r} ({why}){note}",
            severity=severity, file=link.file[:1000], target=link.target[:1000], soft_links=soft[:50]))
    oversized = [d for d in contents.datasets
                 if d.nbytes >= _OVERSIZED_BYTES and d.nbytes > _OVERSIZED_RATIO * max(source.size, 1)]
    for dataset in oversized[:ctx.limits.max_findings_per_file]:
        ctx.add(HDF5_OVERSIZED_DATASET.finding(
            ctx.location(source, offset=dataset.offset, pointer=dataset.path),
            f"dataset {dataset.path} declares {dataset.nbytes} bytes (shape {dataset.shape}) in a file of "
            f"{source.size} bytes", shape=list(dataset.shape or ()), nbytes=dataset.nbytes,
            element_size=dataset.element_size))
    seen: set[tuple[str, str, str]] = set()
    for ext in contents.external_storage:
        if (ext.path, ext.file, ext.kind) in seen:
            continue  # a virtual dataset maps many regions of one source file
        seen.add((ext.path, ext.file, ext.kind))
        if len(seen) > ctx.limits.max_findings_per_file:
            break
        severity, why = paths.reference_verdict(ext.file, source.fs_path, ctx.root)
        if ext.kind == "virtual":
            message = (f"virtual dataset {ext.path} maps dataset {(ext.source_dataset or '')[:200]!r} of file "
                       f"{ext.file[:200]!r} ({why})")
        else:
            message = f"dataset {ext.path} reads {ext.size} bytes of its data from file {ext.file[:200]!r} ({why})"
        ctx.add(HDF5_EXTERNAL_STORAGE.finding(
            ctx.location(source, offset=ext.offset, pointer=ext.path), message, severity=severity,
            file=ext.file[:1000], kind=ext.kind, file_offset=ext.file_offset, size=ext.size,
            source_dataset=(ext.source_dataset or "")[:1000]))


_OVERSIZED_BYTES = 1 << 30
_OVERSIZED_RATIO = 16


# Filters libhdf5 has built in (deflate, shuffle, fletcher32, szip, nbit, scaleoffset), and LZF, which h5py
# (the reader Keras uses) registers from its own code when imported: none of them is looked up as a plugin.
_BUILTIN_FILTERS = frozenset({1, 2, 3, 4, 5, 6, 32000})
# A few filter ids registered with The HDF Group, named in findings.
_FILTER_NAMES = {305: "LZO", 307: "bzip2", 32001: "Blosc", 32004: "LZ4", 32008: "bitshuffle", 32013: "zfp",
                 32015: "Zstandard", 32017: "SZ", 32026: "Blosc2"}


def _check_filters(contents: hdf5.Hdf5Contents, source: Source, ctx: Context) -> None:
    """One finding per filter id libhdf5 would load from a plugin library, naming the datasets that need it."""
    needs: dict[int, list[tuple[hdf5.FilterPipeline, hdf5.Filter]]] = {}
    for pipeline in contents.filter_pipelines:
        for used in pipeline.filters:
            if used.filter_id not in _BUILTIN_FILTERS:
                needs.setdefault(used.filter_id, []).append((pipeline, used))
    for filter_id, uses in sorted(needs.items())[:ctx.limits.max_findings_per_file]:
        first, used = min(uses, key=lambda use: use[0].path)
        name = _FILTER_NAMES.get(filter_id, "")
        datasets = sorted({pipeline.path for pipeline, _ in uses})
        shown = ", ".join(datasets[:5]) + (f" and {len(datasets) - 5} more" if len(datasets) > 5 else "")
        ctx.add(HDF5_FILTER_PLUGIN.finding(
            ctx.location(source, offset=first.offset, pointer=first.path),
            f"filter {filter_id}{f' ({name})' if name else ''} is not built into libhdf5: reading {shown} loads it "
            "from a plugin library", filter_id=filter_id, filter_name=name, stored_name=used.name,
            optional=all(f.optional for _, f in uses), datasets=datasets[:50], count=len(datasets)))


def _texts(value: hdf5.Value) -> list[tuple[int | None, bytes]]:
    """The strings of an attribute value: ``(None, s)`` for a scalar, ``(i, s)`` for array items."""
    if isinstance(value, bytes):
        return [(None, value)]
    if isinstance(value, tuple):
        return [(i, v) for i, v in enumerate(value) if isinstance(v, bytes)]
    return []


def _structure_problem(exc: FormatError | LimitExceeded, source: Source, ctx: Context) -> None:
    loc = ctx.location(source, offset=exc.offset)
    if isinstance(exc, LimitExceeded):
        ctx.add(rules.LIMIT_EXCEEDED.finding(loc, f"HDF5 structure not read: {exc}", limit=_limit_name(exc.limit)))
    else:
        ctx.add(rules.PARSE_ERROR.finding(loc, f"HDF5 structure could not be parsed: {exc}; only a byte scan "
                                               "for Keras configs was done", format="hdf5"))


def _report_problem(problem: hdf5.Problem, source: Source, ctx: Context) -> None:
    pointer = f"{problem.path.rstrip('/')}/@{_escape(problem.attribute)}" if problem.attribute else problem.path
    loc = ctx.location(source, offset=problem.offset, pointer=pointer)
    message = f"HDF5 object {problem.path}: {problem.message}"
    if problem.kind == hdf5.OVER_LIMIT:
        ctx.add(rules.LIMIT_EXCEEDED.finding(loc, message, limit=_limit_name(problem.limit or "")))
    elif problem.kind == hdf5.UNSUPPORTED:
        ctx.add(rules.UNSUPPORTED.finding(loc, message, format="hdf5"))
    else:
        ctx.add(rules.PARSE_ERROR.finding(loc, message, format="hdf5"))


def _limit_name(limit: str) -> str:
    """The Limits field behind an Hdf5Limits field, where there is one (the others are fixed bounds)."""
    return _LIMITS_FIELDS.get(limit, f"hdf5.{limit}")


_LIMITS_FIELDS = {"max_value_bytes": "max_string_bytes", "max_objects": "max_hdf5_objects",
                  "max_messages": "max_hdf5_messages", "max_read_bytes": "max_hdf5_metadata_bytes"}


def _byte_scan(stream: BinaryIO, source: Source, ctx: Context, checked: set[bytes]) -> int:
    """Fallback: configs located by scanning the bytes; those already checked are skipped."""
    found = 0
    for offset, text in find_json_configs(stream, source.size, ctx.limits.max_string_bytes):
        if text is None:
            ctx.add(rules.LIMIT_EXCEEDED.finding(
                ctx.location(source, offset=offset),
                f"JSON object at offset {offset} is not closed within max_string_bytes", limit="max_string_bytes"))
            continue
        if hashlib.sha256(text).digest() in checked:
            continue
        try:
            doc = json.loads(text)
        except (ValueError, RecursionError) as exc:
            ctx.add(UNREADABLE_CONFIG.finding(ctx.location(source, offset=offset),
                                              f"Keras-like config at offset {offset} is not valid JSON: {exc}"))
            continue
        found += 1
        check_keras_config(doc, source, ctx, offset=offset)
    return found


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


__all__ = ["RULES", "analyze_hdf5", "analyze_keras_zip", "check_keras_config", "check_keras_json_text",
           "find_json_configs", "printable_strings"]
