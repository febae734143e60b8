"""TensorFlow SavedModels, frozen GraphDefs and ``keras_metadata.pb``, read as protobuf.

A TensorFlow graph is a list of ops that the runtime executes when the model
is called; some standard ops read and write files (ReadFile, WriteFile, the
checkpoint ops), reach the network (DebugIdentity with ``grpc://`` URLs) or run
Python (PyFunc). Ops that are not standard need a native library loaded with
``tf.load_op_library``. We walk every node of the graph and of every function
in its library, with the wire-format reader in :mod:`aivet.formats.protobuf`.

Field numbers (tensorflow/core/protobuf/saved_model.proto, meta_graph.proto,
core/framework/graph.proto, node_def.proto, function.proto, attr_value.proto):
SavedModel{saved_model_schema_version 1, meta_graphs 2}; MetaGraphDef{graph_def
2, saver_def 3, asset_file_def 6}; GraphDef{node 1, library 2, versions 4};
NodeDef{name 1, op 2, input 3, device 4, attr 5}; FunctionDefLibrary{function
1}; FunctionDef{signature 1 (OpDef name 1), node_def 3}; AttrValue{list 1, s 2,
func 10}; ListValue{s 2, func 9}; NameAttrList{name 1}; AssetFileDef{filename 2}.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from aivet import rules
from aivet.analyzers.context import Context
from aivet.analyzers.engine import Outcome
from aivet.analyzers.paths import escape_reason
from aivet.analyzers.source import Source
from aivet.evidence import ArtifactStatus, Severity
from aivet.formats import LimitExceeded
from aivet.formats.protobuf import LEN, Field, Message
from aivet.formats.protobuf_text import TextMessage, parse_text_proto
from aivet.formats.safetensors import json_cost
from aivet.rules import ATLAS_SUPPLY_CHAIN_MODEL, ATLAS_UNSAFE_ARTIFACTS, Rule

PYTHON_OP = Rule(
    "TF-PYTHON-OP",
    "TensorFlow graph calls back into Python",
    "PyFunc, PyFuncStateless and EagerPyFunc call a Python function registered in the loading "
    "process by token; the graph itself names which one runs. A model should not need them, and "
    "combined with code the loader imports they execute arbitrary Python.",
    Severity.CRITICAL,
    (ATLAS_UNSAFE_ARTIFACTS,),
    ("CWE-94",),
)
FILE_OP = Rule(
    "TF-FILE-OP",
    "TensorFlow graph reads or writes files",
    "An op that touches the file system (ReadFile, WriteFile, MatchingFiles, file readers and "
    "dataset sources, summary writers, ImmutableConst, DecodeProto with a file descriptor source) "
    "runs whenever the model is called: it can read secrets or plant files on the serving host.",
    Severity.HIGH,
    (ATLAS_UNSAFE_ARTIFACTS,),
    ("CWE-73", "CWE-552"),
)
NETWORK_OP = Rule(
    "TF-NETWORK-OP",
    "TensorFlow graph sends data to a URL",
    "A debug op (DebugIdentity and friends) has debug_urls, PrintV2 writes to a file, or a tf.data "
    "service op (DataServiceDataset, RegisterDataset) connects to a dispatcher: tensors passing through "
    "are sent to grpc:// or written to file:// targets chosen by the model author.",
    Severity.HIGH,
    (ATLAS_UNSAFE_ARTIFACTS,),
    ("CWE-200",),
)
CHECKPOINT_OP = Rule(
    "TF-CHECKPOINT-OP",
    "Checkpoint op outside the saver",
    "Save/Restore/MergeV2Checkpoints ops are normal in a SavedModel's saver graph and its traced "
    "save/restore functions. Elsewhere they read, overwrite, move or delete arbitrary files when the "
    "model runs. Saver names are the model author's to choose, so a checkpoint op whose function (or "
    "graph) embeds a path-like string constant (absolute, '..', a drive or a URL) is high wherever it is: "
    "the restore function runs at load time.",
    Severity.MEDIUM,
    (ATLAS_UNSAFE_ARTIFACTS,),
    ("CWE-73",),
)
CUSTOM_OP = Rule(
    "TF-CUSTOM-OP",
    "TensorFlow op not in the standard op set",
    "The graph uses an op that is neither a standard TensorFlow op known to aivet nor a function of "
    "the graph's own library. It needs a native library (tf.load_op_library), i.e. native code the "
    "user must load; review it. The list of standard ops is not exhaustive, so this is low.",
    Severity.LOW,
    (ATLAS_SUPPLY_CHAIN_MODEL,),
    ("CWE-829",),
)
ASSET_PATH = Rule(
    "TF-ASSET-PATH",
    "SavedModel asset path leaves the model directory",
    "An asset file name is absolute or contains '..': the loader reads it relative to the assets "
    "directory, so the model reads an arbitrary file on the host.",
    Severity.HIGH,
    (ATLAS_UNSAFE_ARTIFACTS,),
    ("CWE-22",),
)

RULES = (PYTHON_OP, FILE_OP, NETWORK_OP, CHECKPOINT_OP, CUSTOM_OP, ASSET_PATH)

_MAX_REPORTED_PER_OP = 20  # per (rule, op): further nodes are counted, not listed
# What the walk remembers, bounded: distinct (rule, op) pairs counted, library function names,
# string values and called functions kept per node. They are memory caps, not Limits fields: the
# work stays bounded by max_protobuf_bytes and the deadline whatever they are, real graphs come
# nowhere near them, and past them only counts (or nothing no check reads) are lost.
MAX_KINDS = 10_000
MAX_FUNCTIONS = 100_000
MAX_NODE_VALUES = 256
_DEADLINE_EVERY = 4096  # nodes walked between two looks at the clock


@dataclass(frozen=True)
class Node:
    """The parts of a NodeDef we check."""

    name: str
    op: str
    offset: int
    strings: tuple[tuple[str, str], ...]  # (attr name, string value) for string attrs and lists
    funcs: tuple[str, ...]  # functions named by func attrs (StatefulPartitionedCall f=...)


class Clock:
    """Counts fields walked and, every few thousand, compares ``time.monotonic()`` with a deadline.

    Files on disk are memory-mapped whatever their size: millions of nodes or of list items
    in one attribute are linear work, but unbounded.
    """

    def __init__(self, deadline: float = math.inf) -> None:
        self.deadline = deadline
        self.steps = 0

    def tick(self) -> None:
        self.steps += 1
        if self.steps % _DEADLINE_EVERY == 0 and time.monotonic() > self.deadline:
            raise LimitExceeded("max_seconds_per_file", "TensorFlow graph walk ran out of time")


def read_node(msg: Message, clock: Clock | None = None) -> Node:
    """Decode one NodeDef (name, op, string and function attributes)."""
    clock = clock or Clock()
    name = op = ""
    strings: list[tuple[str, str]] = []
    funcs: list[str] = []
    for f in msg:
        clock.tick()
        if f.number == 1 and f.wire_type == LEN:
            name = f.head_text(4096)
        elif f.number == 2 and f.wire_type == LEN:
            op = f.head_text(4096)
        elif f.number == 5 and f.wire_type == LEN:
            _read_attr(f.submessage(), strings, funcs, clock)
    return Node(name, op, msg.start, tuple(strings), tuple(funcs))


def _read_attr(entry: Message, strings: list[tuple[str, str]], funcs: list[str], clock: Clock) -> None:
    # Empty strings are never kept (no check looks at them) and at most MAX_NODE_VALUES of each
    # kind are: a list attribute of millions of two-byte items would otherwise be millions of tuples.
    key = ""
    values: list[str] = []
    for f in entry:
        if f.number == 1 and f.wire_type == LEN:
            key = f.head_text(4096)
        elif f.number == 2 and f.wire_type == LEN:
            for v in f.submessage():
                clock.tick()
                if v.wire_type != LEN:
                    continue
                if v.number == 2 and 0 < v.value <= 4096 and len(values) < MAX_NODE_VALUES:
                    values.append(v.text())
                elif v.number == 8:  # a TensorProto (Const value): its string_val items (field 8)
                    for item in v.submessage().fields(8):
                        clock.tick()
                        if item.wire_type == LEN and 0 < item.value <= 4096 and len(values) < MAX_NODE_VALUES:
                            values.append(item.text())
                elif v.number == 10:
                    _keep_funcs(funcs, v.submessage())
                elif v.number == 1:  # ListValue
                    for item in v.submessage():
                        clock.tick()
                        if (item.wire_type == LEN and item.number == 2 and 0 < item.value <= 4096
                                and len(values) < MAX_NODE_VALUES):
                            values.append(item.text())
                        elif item.wire_type == LEN and item.number == 9:
                            _keep_funcs(funcs, item.submessage())
    for text in values:
        _keep(strings, (key, text))


def _keep(out: list[Any], value: Any) -> None:
    if len(out) < MAX_NODE_VALUES:
        out.append(value)


def _keep_funcs(funcs: list[str], name_attr_list: Message) -> None:
    for g in name_attr_list.fields(1):
        if g.wire_type == LEN:
            _keep(funcs, g.head_text(4096))


def iter_graph(graph: Message, clock: Clock | None = None) -> Iterator[tuple[str, Node]]:
    """Yield ``(function name or "", node)`` for every node of a GraphDef and its function library."""
    clock = clock or Clock()
    for f in graph:
        clock.tick()
        if f.wire_type != LEN:
            continue
        if f.number == 1:
            yield "", read_node(f.submessage(), clock)
        elif f.number == 2:
            for fn in f.submessage().fields(1):
                if fn.wire_type != LEN:
                    continue
                # Two passes (the name, then the nodes) rather than holding every node of a
                # function until its name is known: a function can hold millions of them.
                body = fn.submessage()
                fname = ""
                for part in body.fields(1):
                    if part.wire_type == LEN:
                        fname = next((g.head_text(4096) for g in part.submessage().fields(1) if g.wire_type == LEN), "")
                for part in body.fields(3):
                    if part.wire_type == LEN:
                        yield fname, read_node(part.submessage(), clock)


def library_functions(graph: Message, clock: Clock | None = None) -> set[str]:
    """Names of the functions a GraphDef defines (they may be used as ops); at most ``MAX_FUNCTIONS``."""
    clock = clock or Clock()
    names: set[str] = set()
    for lib in graph.fields(2):
        if lib.wire_type != LEN:
            continue
        for fn in lib.submessage().fields(1):
            clock.tick()
            if fn.wire_type != LEN:
                continue
            for sig in fn.submessage().fields(1):
                if sig.wire_type == LEN:
                    for g in sig.submessage().fields(1):
                        if g.wire_type == LEN and len(names) < MAX_FUNCTIONS:
                            names.add(g.head_text(4096))
    return names


# A string constant naming a place outside the model: absolute, a parent directory, a drive or a URL.
_PATH_LIKE = re.compile(r"^(/|~|\\\\|[A-Za-z]:[\\/])|(^|[\\/])\.\.([\\/]|$)|^[A-Za-z][A-Za-z0-9+.-]*://")
_MAX_PENDING = 1024  # checkpoint nodes held until their function's constants are known
_MAX_PATHS = 8  # path-like constants kept per function


class _Checker:
    def __init__(self, source: Source, ctx: Context) -> None:
        self.source = source
        self.ctx = ctx
        # Checkpoint ops wait for the end of the graph: whether their function embeds a path-like
        # constant decides their severity, and nodes (and functions) come in any order.
        self.pending: list[tuple[str, Node]] = []
        self.paths: dict[str, list[str]] = {}
        self.counts: dict[tuple[str, str], int] = {}
        self.other: dict[str, int] = {}  # per rule: nodes whose op came after MAX_KINDS distinct ones
        self.listed = 0  # findings listed, against max_findings_per_file
        self.unlisted = 0  # listable findings dropped by that cap
        self.clock = Clock(ctx.deadline())

    def add(self, rule: Rule, node: Node, function: str, message: str, severity: Severity | None = None,
            **details: Any) -> None:
        key = (rule.id, node.op)
        if key not in self.counts and len(self.counts) >= MAX_KINDS:
            self.other[rule.id] = self.other.get(rule.id, 0) + 1  # a million distinct op names
            return
        self.counts[key] = self.counts.get(key, 0) + 1
        if self.counts[key] > _MAX_REPORTED_PER_OP:
            return
        if self.listed >= self.ctx.limits.max_findings_per_file:
            self.unlisted += 1
            return
        self.listed += 1
        where = f" in function {function!r}" if function else ""
        self.ctx.add(rule.finding(self.ctx.location(self.source, offset=node.offset),
                                  f"{message}: op {node.op!r} (node {node.name!r}{where})", severity=severity,
                                  op=node.op, node=node.name, function=function, **details))

    def graph(self, graph: Message) -> int:
        known = library_functions(graph, self.clock)
        count = 0
        for function, node in iter_graph(graph, self.clock):
            count += 1
            self.node(node, function, known)
            self.constants(node, function)
        self.flush()
        return count

    def constants(self, node: Node, function: str) -> None:
        """Remember string constants of a function (or the main graph) that name outside places."""
        for _, value in node.strings:
            if _PATH_LIKE.search(value):
                found = self.paths.get(function)
                if found is None:
                    if len(self.paths) >= MAX_KINDS:
                        found = self.paths.setdefault("\0overflow", [])  # shared: louder, never quieter
                    else:
                        found = self.paths.setdefault(function, [])
                if len(found) < _MAX_PATHS and value[:200] not in found:
                    found.append(value[:200])

    def flush(self) -> None:
        """Judge the checkpoint ops held back, now that every constant of the graph is known."""
        overflow = self.paths.get("\0overflow", [])
        for function, node in self.pending:
            paths = self.paths.get(function, []) or overflow
            if _in_saver(node.name, function):
                if paths:
                    self.add(CHECKPOINT_OP, node, function, "checkpoint op in a save/restore function that embeds "
                             f"path-like constants ({', '.join(repr(p) for p in paths[:3])})",
                             severity=Severity.HIGH, paths=paths)
            else:
                self.add(CHECKPOINT_OP, node, function, "checkpoint op outside the saver",
                         severity=Severity.HIGH if paths else None, paths=paths)
        self.pending.clear()
        self.paths.clear()

    def node(self, node: Node, function: str, known: set[str]) -> None:
        op = node.op
        if op in PYTHON_OPS:
            self.add(PYTHON_OP, node, function, "graph calls Python")
        elif op in FILE_OPS:
            self.add(FILE_OP, node, function, "graph touches files", strings=[v[:200] for _, v in node.strings][:8])
        elif op in NETWORK_OPS:
            self.add(NETWORK_OP, node, function, "graph talks to a tf.data service",
                     strings=[v[:200] for _, v in node.strings][:8])
        elif op in CHECKPOINT_OPS:
            if len(self.pending) < _MAX_PENDING:
                self.pending.append((function, node))
            elif not _in_saver(node.name, function):
                self.add(CHECKPOINT_OP, node, function, "checkpoint op outside the saver")
        elif op in ("DecodeProtoV2", "EncodeProto"):
            for key, value in node.strings:
                if key == "descriptor_source" and value not in ("", "local://"):
                    self.add(FILE_OP, node, function, f"descriptor_source {value[:200]!r}",
                             descriptor_source=value[:200])
        elif op.startswith("Debug") or op == "PrintV2":
            for key, value in node.strings:
                if (key == "debug_urls" and value) or (key == "output_stream" and value.startswith("file://")):
                    self.add(NETWORK_OP, node, function, f"{key} {value[:200]!r}", target=value[:200])
        elif op not in STANDARD_OPS and op not in known:
            self.add(CUSTOM_OP, node, function, "op is not a standard TensorFlow op")
        for called in node.funcs:
            if called and called not in known:
                self.add(CUSTOM_OP, node, function, f"calls function {called[:200]!r} not defined in the library",
                         severity=Severity.MEDIUM, called=called[:200])

    def summary(self) -> None:
        rules_by_id = {r.id: r for r in RULES}
        other = dict(self.other)
        summaries = 0
        for (rule_id, op), n in self.counts.items():
            if n <= _MAX_REPORTED_PER_OP:
                continue
            if summaries >= self.ctx.limits.max_findings_per_file:
                other[rule_id] = other.get(rule_id, 0) + n - _MAX_REPORTED_PER_OP
                continue
            summaries += 1
            self.ctx.add(rules_by_id[rule_id].finding(self.ctx.location(self.source),
                                                      f"{n - _MAX_REPORTED_PER_OP} more nodes with op {op!r} not "
                                                      "listed", op=op, count=n))
        for rule_id, n in other.items():
            self.ctx.add(rules_by_id[rule_id].finding(self.ctx.location(self.source),
                                                      f"{n} more nodes not listed individually", count=n))
        if self.unlisted:
            self.ctx.add(rules.LIMIT_EXCEEDED.finding(
                self.ctx.location(self.source), f"{self.unlisted} more findings not listed",
                limit="max_findings_per_file"))


def _in_saver(node: str, function: str) -> bool:
    # tf.compat.v1 savers put their ops under "save/"; TF2 traces them into these functions.
    return (node.startswith(("save/", "save_", "saver/", "Save", "Restore", "MergeV2"))
            or "traced_save" in function or "traced_restore" in function or "checkpoint" in function.lower())


def analyze_saved_model(msg: Message, source: Source, ctx: Context) -> Outcome:
    """Check a SavedModel (saved_model.pb): every meta graph, its graph, library and asset paths."""
    checker = _Checker(source, ctx)
    graphs = nodes = assets = 0
    for meta in msg.fields(2):
        if meta.wire_type != LEN:
            continue
        for part in meta.submessage():
            if part.wire_type != LEN:
                continue
            if part.number == 2:
                graphs += 1
                nodes += checker.graph(part.submessage())
            elif part.number == 6:
                for name in part.submessage().fields(2):
                    if name.wire_type == LEN and assets < ctx.limits.max_findings_per_file:
                        assets += _check_asset(name.head_text(4096), name.offset, source, ctx)
            elif part.number == 7:
                _check_object_graph(part.submessage(), source, ctx)
    checker.summary()
    return Outcome("tf-savedmodel", ArtifactStatus.ANALYZED, f"{graphs} graph(s), {nodes} node(s)")


def analyze_graph_def(msg: Message, source: Source, ctx: Context) -> Outcome:
    """Check a bare GraphDef (a frozen graph ``.pb``)."""
    checker = _Checker(source, ctx)
    nodes = checker.graph(msg)
    checker.summary()
    return Outcome("tf-graphdef", ArtifactStatus.ANALYZED, f"{nodes} node(s)")


def _check_asset(name: str, offset: int, source: Source, ctx: Context) -> int:
    """Report an asset path that leaves the assets directory; returns how many findings (0 or 1)."""
    why = escape_reason(name)
    if why is not None:
        ctx.add(ASSET_PATH.finding(ctx.location(source, offset=offset),
                                   f"asset file {name[:200]!r} leaves the assets directory ({why})", asset=name[:200]))
        return 1
    return 0


def _check_object_graph(graph: Message, source: Source, ctx: Context) -> None:
    """Check the Keras configs of a SavedModel's object graph (SavedUserObject.metadata).

    tf.keras loads a SavedModel without keras_metadata.pb from these strings instead (the
    legacy layout): a Lambda there runs on load just as one in keras_metadata.pb does.
    SavedObjectGraph{nodes 1}; SavedObject{user_object 4}; SavedUserObject{identifier 1, metadata 3}.
    """
    deadline = ctx.deadline()
    for index, node in enumerate(graph.fields(1)):
        if index % _DEADLINE_EVERY == _DEADLINE_EVERY - 1 and time.monotonic() > deadline:
            raise LimitExceeded("max_seconds_per_file", "SavedModel object graph walk ran out of time", node.offset)
        if node.wire_type != LEN:
            continue
        for user in node.submessage().fields(4):
            if user.wire_type != LEN:
                continue
            for f in user.submessage().fields(3):
                if f.wire_type == LEN and f.value >= 2:
                    _check_json_field(f, source, ctx, f"/object_graph_def/nodes/{index}/user_object/metadata")


def _check_json_field(f: Field, source: Source, ctx: Context, pointer: str) -> None:
    """Check a string field that holds a JSON object as a Keras config, within the size and cost limits."""
    from aivet.analyzers.keras import check_keras_json_text

    head = bytes(f.message.buf[f.start:f.start + 1])
    if head != b"{":
        return
    if f.value > ctx.limits.max_string_bytes:
        ctx.add(rules.LIMIT_EXCEEDED.finding(ctx.location(source, offset=f.offset),
                                             "Keras metadata string too large", limit="max_string_bytes"))
        return
    raw = f.bytes()
    if json_cost(raw) > ctx.limits.max_json_cost:
        ctx.add(rules.LIMIT_EXCEEDED.finding(ctx.location(source, offset=f.offset),
                                             "Keras metadata JSON too costly to parse", limit="max_json_cost"))
        return
    check_keras_json_text(raw, source, ctx, pointer=pointer)


def analyze_keras_metadata(msg: Message, source: Source, ctx: Context) -> Outcome:
    """Check keras_metadata.pb: each SavedObject's JSON metadata is a Keras layer config.

    SavedMetadata{nodes 1: SavedObject}; the JSON is the SavedObject's
    ``metadata`` string. Every string field that parses as a JSON object is
    checked, so a shifted field number cannot hide a config.
    """
    objects = 0
    deadline = ctx.deadline()
    for node in msg.fields(1):
        if node.wire_type != LEN:
            continue
        objects += 1
        if objects % _DEADLINE_EVERY == 0 and time.monotonic() > deadline:
            raise LimitExceeded("max_seconds_per_file", "Keras metadata walk ran out of time", node.offset)
        for f in node.submessage():
            if f.wire_type == LEN and f.value >= 2:
                _check_json_field(f, source, ctx, f"/nodes/{objects - 1}")
    return Outcome("keras-metadata", ArtifactStatus.ANALYZED, f"{objects} saved object(s)")


# ---------------------------------------------------------------------------------------------
# Text-format protobuf (saved_model.pbtxt, GraphDef .pbtxt). TensorFlow loads saved_model.pbtxt
# when saved_model.pb is absent, so the same graph checks apply to it.
# ---------------------------------------------------------------------------------------------

def _text_nodes(root: TextMessage, clock: Clock) -> tuple[list[tuple[str, Node]], set[str], list[tuple[str, int]],
                                                            list[tuple[str, int]]]:
    """Every NodeDef-like message (it has an ``op`` string) with its function, the library's function
    names, asset file names and JSON metadata strings, from a parsed text proto."""
    nodes: list[tuple[str, Node]] = []
    functions: set[str] = set()
    assets: list[tuple[str, int]] = []
    metadata: list[tuple[str, int]] = []
    stack: list[tuple[TextMessage, str]] = [(root, "")]
    while stack:
        msg, function = stack.pop()
        clock.tick()
        signature = next((v for v in msg.get("signature") if isinstance(v, TextMessage)), None)
        if signature is not None and msg.get("node_def"):
            function = signature.text("name")
            if len(functions) < MAX_FUNCTIONS:
                functions.add(function)
        op = msg.text("op")
        if op:
            strings: list[tuple[str, str]] = []
            funcs: list[str] = []
            for attr in msg.get("attr"):
                if isinstance(attr, TextMessage):
                    _text_attr(attr, strings, funcs, clock)
            nodes.append((function, Node(msg.text("name"), op, msg.offset, tuple(strings), tuple(funcs))))
        for key, value in msg.fields:
            if isinstance(value, TextMessage):
                stack.append((value, function))
                if key == "asset_file_def":
                    assets.extend((f, value.offset) for f in value.get("filename") if isinstance(f, str))
            elif key == "metadata" and value.lstrip().startswith("{"):
                metadata.append((value, msg.offset))
    return nodes, functions, assets, metadata


def _text_attr(attr: TextMessage, strings: list[tuple[str, str]], funcs: list[str], clock: Clock) -> None:
    key = attr.text("key")
    stack = [v for v in attr.get("value") if isinstance(v, TextMessage)]
    while stack:
        clock.tick()
        msg = stack.pop()
        for name, value in msg.fields:
            if isinstance(value, TextMessage):
                if name == "func":
                    _keep(funcs, value.text("name"))
                else:
                    stack.append(value)
            elif name in ("s", "string_val") and value:
                _keep(strings, (key, value[:4096]))


def analyze_text_proto(source: Source, ctx: Context) -> Outcome:
    """Check a text-format SavedModel or GraphDef (``saved_model.pbtxt``, ``graph.pbtxt``)."""
    if source.size > ctx.limits.max_text_file_bytes:
        raise LimitExceeded("max_text_file_bytes", f"protobuf text file of {source.size} bytes", 0)
    with source.open() as fh:
        text = fh.read(ctx.limits.max_text_file_bytes + 1).decode("utf-8", "replace")
    checker = _Checker(source, ctx)
    root = parse_text_proto(text, checker.clock.tick, ctx.limits.max_protobuf_depth)
    nodes, functions, assets, metadata = _text_nodes(root, checker.clock)
    for function, node in nodes:
        checker.node(node, function, functions)
        checker.constants(node, function)
    checker.flush()
    checker.summary()
    for name, offset in assets[:ctx.limits.max_findings_per_file]:
        _check_asset(name, offset, source, ctx)
    from aivet.analyzers.keras import check_keras_json_text

    for value, offset in metadata[:ctx.limits.max_findings_per_file]:
        if len(value) <= ctx.limits.max_string_bytes and json_cost(value) <= ctx.limits.max_json_cost:
            check_keras_json_text(value, source, ctx, pointer=f"@{offset}")
    return Outcome("tf-text-proto", ArtifactStatus.ANALYZED, f"{len(nodes)} node(s) in protobuf text")


# ---------------------------------------------------------------------------------------------
# Op lists. PYTHON/FILE/CHECKPOINT are what we flag; STANDARD is the allowlist behind TF-CUSTOM-OP
# (common ops of tensorflow/core/ops; not exhaustive, hence that rule is low).
# ---------------------------------------------------------------------------------------------

PYTHON_OPS = frozenset({"PyFunc", "PyFuncStateless", "EagerPyFunc"})
FILE_OPS = frozenset("""
ReadFile WriteFile MatchingFiles ImmutableConst LoadAndRemapMatrix
TFRecordReader TFRecordReaderV2 TextLineReader TextLineReaderV2 FixedLengthRecordReader
FixedLengthRecordReaderV2 WholeFileReader WholeFileReaderV2 IdentityReader IdentityReaderV2 LMDBReader
TFRecordDataset TFRecordDatasetV2 TextLineDataset FixedLengthRecordDataset FixedLengthRecordDatasetV2
ExperimentalLMDBDataset LMDBDataset SqlDataset ExperimentalSqlDataset CSVDataset CSVDatasetV2
ExperimentalCSVDataset DatasetToTFRecord ExperimentalDatasetToTFRecord SaveDataset SaveDatasetV2
LoadDataset SnapshotDataset SnapshotDatasetV2 CacheDataset CacheDatasetV2
CreateSummaryFileWriter CreateSummaryDbWriter ImportEvent WriteFileWriter
DecodeWav_File InitializeTableFromTextFile InitializeTableFromTextFileV2 BoostedTreesCreateEnsemble
GenerateVocabRemapping FileSystemSetConfiguration MatchingFilesDataset ExperimentalMatchingFilesDataset
DistributedSave SnapshotDatasetReader SnapshotNestedDatasetReader SnapshotChunkDataset ListSnapshotChunksDataset
""".split())
# tf.data service: the graph connects to a dispatcher/worker address it names and streams data from or to it.
NETWORK_OPS = frozenset("""
DataServiceDataset DataServiceDatasetV2 DataServiceDatasetV3 DataServiceDatasetV4 RegisterDataset RegisterDatasetV2
""".split())
def risky_op(op: str) -> bool:
    """Whether a TensorFlow op (by its registered name) runs Python, touches files or the network.

    Keras TFOpLambda layers can name any op through ``tf.raw_ops.<Op>``; this is the same
    judgement the graph checks make for nodes.
    """
    return (op in PYTHON_OPS or op in FILE_OPS or op in CHECKPOINT_OPS or op in NETWORK_OPS
            or op.startswith("Debug") or op in ("PrintV2", "DecodeProtoV2", "EncodeProto"))


CHECKPOINT_OPS = frozenset("""
Save SaveV2 SaveSlices Restore RestoreV2 RestoreSlice MergeV2Checkpoints ShardedFilename ShardedFilespec
""".split())
STANDARD_OPS = frozenset("""
Abs Acos Acosh Add AddN AddV2 All Any ApproximateEqual ArgMax ArgMin AsString Asin Asinh Assert Assign
AssignAdd AssignSub AssignAddVariableOp AssignSubVariableOp AssignVariableOp Atan Atan2 Atanh AvgPool
AvgPool3D AvgPoolGrad BatchMatMul BatchMatMulV2 BatchMatMulV3 BatchNormWithGlobalNormalization
BatchToSpaceND BiasAdd BiasAddGrad BiasAddV1 Bincount Bitcast BitwiseAnd BitwiseOr BitwiseXor
BroadcastArgs BroadcastGradientArgs BroadcastTo Bucketize Case Cast Ceil CheckNumerics CheckNumericsV2
Cholesky ClipByValue Complex ComplexAbs Concat ConcatOffset ConcatV2 Conj Const ControlTrigger Conv
Conv2D Conv2DBackpropFilter Conv2DBackpropInput Conv3D Conv3DBackpropInputV2 Cos Cosh CropAndResize
Cross Cumprod Cumsum DecodeBase64 DecodeJpeg DecodePng DecodeRaw DepthToSpace DepthwiseConv2dNative
DepthwiseConv2dNativeBackpropInput Dequantize DestroyResourceOp Diag DiagPart Digamma Dilation2D
DisableCopyOnRead Div DivNoNan DynamicPartition DynamicStitch Einsum Elu EluGrad EmptyTensorList
EncodeBase64 EnsureShape Enter Equal Erf Erfc Exit Exp ExpandDims Expm1 ExtractImagePatches FFT FFT2D
FakeQuantWithMinMaxArgs FakeQuantWithMinMaxVars FakeQuantWithMinMaxVarsPerChannel Fill Floor FloorDiv
FloorMod FusedBatchNorm FusedBatchNormV2 FusedBatchNormV3 Gather GatherNd GatherV2 Greater GreaterEqual
HashTable HashTableV2 HistogramFixedWidth IFFT IRFFT Identity IdentityN If Imag InTopKV2
InitializeTable InitializeTableV2 Inv InvertPermutation IsFinite IsInf IsNan IsVariableInitialized
L2Loss LRN LeakyRelu LeakyReluGrad Less LessEqual Lgamma LinSpace ListDiff Log Log1p LogSoftmax
LogicalAnd LogicalNot LogicalOr LookupTableExportV2 LookupTableFind LookupTableFindV2 LookupTableImportV2
LookupTableInsertV2 LookupTableSizeV2 LoopCond MatMul MatrixBandPart MatrixDeterminant MatrixDiag
MatrixDiagPart MatrixDiagPartV3 MatrixDiagV3 MatrixInverse MatrixSetDiag MatrixSetDiagV3 MatrixSolve
MatrixTriangularSolve Max MaxPool MaxPool3D MaxPoolGrad MaxPoolV2 MaxPoolWithArgmax Maximum Mean Merge
Min Minimum MirrorPad Mod Mul MulNoNan MutableHashTable MutableHashTableV2 MutableDenseHashTableV2
MutableHashTableOfTensorsV2 Neg NextIteration NoOp NonMaxSuppressionV2 NonMaxSuppressionV3
NonMaxSuppressionV4 NonMaxSuppressionV5 NotEqual OneHot OnesLike OptionalFromValue OptionalGetValue
OptionalHasValue OptionalNone Pack Pad PadV2 ParallelConcat ParallelDynamicStitch PartitionedCall
Placeholder PlaceholderWithDefault Pow Prod QuantizeV2 QueueDequeueV2 QueueEnqueueV2 RFFT
RaggedGather RaggedRange RaggedTensorFromVariant RaggedTensorToSparse RaggedTensorToTensor
RaggedTensorToVariant RandomShuffle RandomStandardNormal RandomUniform RandomUniformInt Range Rank
ReadVariableOp Real RealDiv Reciprocal ReduceJoin RefSwitch RegexFullMatch RegexReplace Relu Relu6
Relu6Grad ReluGrad Reshape ResizeArea ResizeBicubic ResizeBilinear ResizeNearestNeighbor
ResourceApplyAdam ResourceGather ResourceGatherNd ResourceScatterAdd ResourceScatterUpdate
ResourceStridedSliceAssign Reverse ReverseSequence ReverseV2 RightShift LeftShift Rint Round Rsqrt
RsqrtGrad SampleDistortedBoundingBoxV2 ScatterNd ScatterNdUpdate SegmentMax SegmentMean SegmentMin
SegmentProd SegmentSum Select SelectV2 Selu Shape ShapeN Sigmoid SigmoidGrad Sign Sin Sinh Size Slice
Snapshot Softmax SoftmaxCrossEntropyWithLogits Softplus Softsign SpaceToBatchND SpaceToDepth
SparseFillEmptyRows SparseReshape SparseSegmentMean SparseSegmentSqrtN SparseSegmentSum
SparseSoftmaxCrossEntropyWithLogits SparseTensorDenseMatMul SparseToDense Split SplitV Sqrt SqrtGrad
Square SquaredDifference Squeeze Stack StackPopV2 StackPushV2 StackV2 StatefulPartitionedCall
StatelessIf StatelessRandomNormal StatelessRandomNormalV2 StatelessRandomUniform StatelessRandomUniformV2
StatelessRandomGetKeyCounter StatelessRandomGetAlg StatelessCase StatelessWhile StopGradient StridedSlice
StridedSliceGrad StringFormat StringJoin StringLength StringLower StringSplit StringSplitV2 StringStrip
StringToHashBucket StringToHashBucketFast StringToHashBucketStrong StringToNumber StringUpper Sub Substr
Sum Switch SymbolicGradient Tan Tanh TanhGrad TensorArrayGatherV3 TensorArrayReadV3 TensorArrayScatterV3
TensorArraySizeV3 TensorArrayV3 TensorArrayWriteV3 TensorListFromTensor TensorListGetItem
TensorListLength TensorListReserve TensorListSetItem TensorListStack TensorListElementShape
TensorListPushBack TensorListPopBack TensorScatterAdd TensorScatterUpdate Tile TopKV2 Transpose
TruncateDiv TruncateMod TruncatedNormal Unique UniqueV2 Unpack UnsortedSegmentMax UnsortedSegmentMin
UnsortedSegmentProd UnsortedSegmentSum VarHandleOp VarIsInitializedOp Variable VariableShape VariableV2
Where While Xdivy Xlog1py Xlogy ZerosLike Zeta _Arg _Retval _Recv _Send _HostRecv _HostSend
_FusedConv2D _FusedMatMul _FusedBatchNormEx Fingerprint UnicodeDecode UnicodeDecodeWithOffsets
UnicodeEncode UnicodeScript UnicodeTranscode StaticRegexFullMatch StaticRegexReplace
ResourceApplyGradientDescent ResourceApplyMomentum ResourceApplyKerasMomentum ResourceApplyRMSProp
ResourceApplyAdagrad ResourceApplyAdagradV2 ResourceApplyAdamWithAmsgrad ResourceApplyFtrl
ResourceApplyFtrlV2 ResourceApplyAdadelta ResourceApplyAdaMax RandomGamma RandomPoisson
RandomPoissonV2 Multinomial StatelessMultinomial AnonymousIteratorV2 AnonymousIteratorV3 IteratorV2
IteratorGetNext MakeIterator DeleteIterator TensorDataset TensorSliceDataset BatchDatasetV2 MapDataset
ParallelMapDatasetV2 PrefetchDataset RangeDataset RepeatDataset ShuffleDatasetV3 TakeDataset
FilterDataset FlatMapDataset OptimizeDatasetV2 ModelDataset DatasetCardinality DummySeedGenerator
AnonymousSeedGenerator ExperimentalAutoShardDataset MapAndBatchDataset TPUReplicatedInput
TPUReplicatedOutput TPUPartitionedCall TPUOrdinalSelector XlaSharding XlaCallModule XlaConvV2
XlaDotV2 XlaGather XlaScatter XlaReduceWindow XlaSelectAndScatter XlaPad XlaDynamicSlice
XlaDynamicUpdateSlice XlaReduce XlaWhile XlaIf XlaVariadicReduceV2 XlaSort XlaKeyValueSort
Assert StringFormat PrintV2 Print Timestamp NoOp SaveV2 RestoreV2
""".split())
