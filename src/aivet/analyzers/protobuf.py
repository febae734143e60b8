"""Dispatch for protobuf files: ONNX model, TF SavedModel, frozen GraphDef or Keras metadata.

Protobuf carries no magic number, so the kind is decided from the file name
where TensorFlow fixes it (``saved_model.pb``, ``keras_metadata.pb``,
``fingerprint.pb``) and otherwise from the top-level fields: an ONNX
ModelProto has a ``graph`` (7, bytes); a SavedModel has only
``saved_model_schema_version`` (1, varint) and ``meta_graphs`` (2, messages);
a GraphDef has ``node`` (1), ``library`` (2) and ``versions`` (4) messages.
"""

from __future__ import annotations

import time

from aivet import rules
from aivet.analyzers import onnx, savedmodel
from aivet.analyzers.context import Context
from aivet.analyzers.engine import Outcome
from aivet.analyzers.source import Source
from aivet.evidence import ArtifactStatus
from aivet.formats import FormatError, LimitExceeded
from aivet.formats.protobuf import DEADLINE_EVERY, LEN, VARINT, Message, open_message

RULES = ()  # this module only dispatches; see aivet.analyzers.onnx and aivet.analyzers.savedmodel

_ONNX_FIELDS = {(1, VARINT), (2, LEN), (3, LEN), (4, LEN), (5, VARINT), (6, LEN), (7, LEN), (8, LEN),
                (14, LEN), (20, LEN), (25, LEN), (26, LEN)}
_SAVED_MODEL_FIELDS = {(1, VARINT), (2, LEN)}
_GRAPH_DEF_FIELDS = {(1, LEN), (2, LEN), (3, VARINT), (4, LEN), (5, LEN)}
_MAX_TOP_FIELDS = 100_000  # a frozen GraphDef has one top-level field per node


def classify(msg: Message, name: str, deadline: float | None = None) -> str:
    """The kind of protobuf: ``onnx``, ``savedmodel``, ``graphdef``, ``keras-metadata``, ``fingerprint`` or ``""``.

    Looks at most ``_MAX_TOP_FIELDS`` top-level fields; with ``deadline`` (``time.monotonic()``)
    raises :class:`LimitExceeded` once it has passed.
    """
    base = name.rsplit("/", 1)[-1].lower()
    if base == "keras_metadata.pb":
        return "keras-metadata"
    if base == "fingerprint.pb":
        return "fingerprint"
    if base == "saved_model.pb":
        return "savedmodel"
    seen: set[tuple[int, int]] = set()
    first_meta: Message | None = None
    for count, f in enumerate(msg):
        seen.add((f.number, f.wire_type))
        if f.number == 2 and f.wire_type == LEN and first_meta is None:
            first_meta = f.submessage()
        if count >= _MAX_TOP_FIELDS:
            break
        _check_deadline(count + 1, deadline, f.offset)
    if (7, LEN) in seen and seen <= _ONNX_FIELDS:
        return "onnx"
    if seen <= _SAVED_MODEL_FIELDS and first_meta is not None and _is_meta_graph(first_meta, deadline):
        return "savedmodel"
    if (1, LEN) in seen and seen <= _GRAPH_DEF_FIELDS:
        return "graphdef"
    if (1, VARINT) in seen and seen <= _ONNX_FIELDS:
        return "onnx"  # an ONNX model without a graph (e.g. functions only)
    return ""


def _check_deadline(count: int, deadline: float | None, offset: int) -> None:
    if deadline is not None and count % DEADLINE_EVERY == 0 and time.monotonic() > deadline:
        raise LimitExceeded("max_seconds_per_file", f"protobuf classification ran out of time after {count} fields",
                            offset)


def _is_meta_graph(msg: Message, deadline: float | None = None) -> bool:
    fields: set[tuple[int, int]] = set()
    try:
        for count, f in enumerate(msg, 1):  # a MetaGraphDef may be most of the file: every field is walked
            fields.add((f.number, f.wire_type))
            _check_deadline(count, deadline, f.offset)
    except FormatError:  # a string that does not frame as a message is simply not one
        return False
    return bool(fields) and all(w == LEN for _, w in fields) and any(n in (1, 2) for n, _ in fields)


def analyze(source: Source, ctx: Context) -> Outcome:
    """Analyse a protobuf file: classify it, then run the ONNX or TensorFlow analyzer."""
    if source.name.lower().endswith(".pbtxt"):  # text format: TensorFlow loads saved_model.pbtxt too
        return savedmodel.analyze_text_proto(source, ctx)
    with open_message(source.opener, source.size, source.fs_path, ctx.limits) as msg:
        deadline = ctx.deadline()  # a memory-mapped file may hold hundreds of millions of fields
        msg.validate(deadline)  # framing errors of the top level surface as FormatError before any finding
        kind = classify(msg, source.name, deadline)
        if kind == "onnx":
            return onnx.analyze_model(msg, source, ctx)
        if kind == "savedmodel":
            return savedmodel.analyze_saved_model(msg, source, ctx)
        if kind == "graphdef":
            return savedmodel.analyze_graph_def(msg, source, ctx)
        if kind == "keras-metadata":
            return savedmodel.analyze_keras_metadata(msg, source, ctx)
        if kind == "fingerprint":
            return Outcome("tf-fingerprint", ArtifactStatus.ANALYZED, "SavedModel fingerprint (hashes only)")
    ctx.add(rules.UNKNOWN_FORMAT.finding(ctx.location(source),
                                         "protobuf message of unknown schema (not ONNX or TensorFlow); not analysed"))
    return Outcome("protobuf", ArtifactStatus.UNSUPPORTED, "unknown protobuf schema")
