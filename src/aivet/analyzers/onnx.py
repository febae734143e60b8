"""ONNX models, read as protobuf without the ``onnx`` package.

What an ONNX file can do to the machine that loads it is narrow but real:
tensors can keep their bytes in *external data* files named by a path in the
model (a path traversal reads any file the loader can), and nodes in custom
operator domains need native custom-op libraries (native code the user must
register). Subgraphs (If/Loop/Scan bodies), model-local functions and training
graphs are walked too. Weights (``raw_data``) are skipped without copying.

Field numbers verified against onnx/onnx.proto (onnx 1.x): ModelProto{ir_version 1,
producer_name 2, graph 7, opset_import 8, metadata_props 14, training_info 20,
functions 25}; GraphProto{node 1, initializer 5, input 11, output 12, value_info 13,
sparse_initializer 15}; NodeProto{name 3, op_type 4, attribute 5, domain 7};
AttributeProto{t 5, g 6, tensors 10, graphs 11, sparse_tensor 22, sparse_tensors 23}; TensorProto{name 8,
external_data 13, data_location 14}; SparseTensorProto{values 1, indices 2};
FunctionProto{name 1, node 7, domain 10, attribute_proto 11}; TrainingInfoProto{initialization 1,
algorithm 2}; StringStringEntryProto{key 1, value 2}.
"""

from __future__ import annotations

import time
from typing import Any

from aivet.analyzers.context import Context
from aivet.analyzers.engine import Outcome
from aivet.analyzers.paths import ESCAPES, MISSING, escapes_syntactically, resolve_sibling
from aivet.analyzers.source import Source
from aivet.evidence import ArtifactStatus, Severity
from aivet.formats import LimitExceeded
from aivet.formats.protobuf import LEN, VARINT, Message
from aivet.rules import ATLAS_SUPPLY_CHAIN_MODEL, ATLAS_UNSAFE_ARTIFACTS, LIMIT_EXCEEDED, Rule

EXTERNAL_DATA_ESCAPE = Rule(
    "ONNX-EXTERNAL-DATA-ESCAPE",
    "ONNX external data path leaves the model directory",
    "A tensor keeps its bytes in an external file whose `location` is absolute, contains '..' or "
    "resolves (through a symbolic link) outside the model directory. Loading the model reads that "
    "file into a tensor: arbitrary file read (e.g. /etc/passwd, cloud credentials) that can leak "
    "through model outputs (the ONNX path-traversal issues, e.g. CVE-2022-25882).",
    Severity.HIGH,
    (ATLAS_UNSAFE_ARTIFACTS,),
    ("CWE-22", "CWE-59"),
)
EXTERNAL_DATA_MISSING = Rule(
    "ONNX-EXTERNAL-DATA-MISSING",
    "ONNX external data file does not exist",
    "A tensor's external data `location` names a file that is not in the model directory: the "
    "model is incomplete, or it expects a file placed later (a staging step for a file-read attack).",
    Severity.MEDIUM,
    (ATLAS_SUPPLY_CHAIN_MODEL,),
    ("CWE-22",),
)
CUSTOM_DOMAIN = Rule(
    "ONNX-CUSTOM-OP",
    "ONNX node in a custom operator domain",
    "The node's domain is not a standard ONNX domain (or its op is not one the ONNX standard defines) "
    "and no model-local function defines it: the "
    "runtime needs a native custom-op library (a shared object registered by the user), i.e. native "
    "code outside the model. Runtime-provided contrib domains (com.microsoft, ai.onnx.contrib, "
    "org.pytorch.aten) are low.",
    Severity.MEDIUM,
    (ATLAS_SUPPLY_CHAIN_MODEL,),
    ("CWE-829",),
)
METADATA = Rule(
    "ONNX-METADATA",
    "ONNX model metadata properties",
    "The model carries metadata_props (free key/value strings). Reported for review: tools and "
    "pipelines sometimes act on them (URLs, preprocessing code, templates).",
    Severity.INFO,
    (ATLAS_SUPPLY_CHAIN_MODEL,),
    ("CWE-912",),
)

RULES = (EXTERNAL_DATA_ESCAPE, EXTERNAL_DATA_MISSING, CUSTOM_DOMAIN, METADATA)

STANDARD_DOMAINS = frozenset({"", "ai.onnx", "ai.onnx.ml", "ai.onnx.training", "ai.onnx.preview.training",
                              "ai.onnx.preview"})
# Operators the ONNX standard defines (onnx 1.23 schemas, every opset; tests/test_format_bypasses.py
# checks the list against the installed onnx). An op_type outside them in a standard domain is not
# a standard op at all: the runtime either fails or runs a custom-op library registered under the
# standard domain name, native code as in a custom domain. "ai.onnx" and "" are one domain.
_ONNX_OPS = frozenset("""
Abs Acos Acosh Add AffineGrid And ArgMax ArgMin Asin Asinh Atan Atanh Attention AveragePool BatchNormalization
Bernoulli BitCast BitShift BitwiseAnd BitwiseNot BitwiseOr BitwiseXor BlackmanWindow Cast CastLike Ceil Celu
CenterCropPad Clip Col2Im Compress Concat ConcatFromSequence Constant ConstantOfShape Conv ConvInteger
ConvTranspose Cos Cosh CumProd CumSum DFT DeformConv DepthToSpace DequantizeLinear Det Div Dropout
DynamicQuantizeLinear Einsum Elu Equal Erf Exp Expand EyeLike Flatten Floor GRU Gather GatherElements GatherND
Gelu Gemm GlobalAveragePool GlobalLpPool GlobalMaxPool Greater GreaterOrEqual GridSample GroupNormalization
HammingWindow HannWindow HardSigmoid HardSwish Hardmax Identity If ImageDecoder InstanceNormalization IsInf
IsNaN LRN LSTM LayerNormalization LeakyRelu Less LessOrEqual Log LogSoftmax Loop LpNormalization LpPool MatMul
MatMulInteger Max MaxPool MaxRoiPool MaxUnpool Mean MeanVarianceNormalization MelWeightMatrix Min Mish Mod Mul
Multinomial Neg NegativeLogLikelihoodLoss NonMaxSuppression NonZero Not OneHot Optional OptionalGetElement
OptionalHasElement Or PRelu Pad Pow QLinearConv QLinearMatMul QuantizeLinear RMSNormalization RNN RandomNormal
RandomNormalLike RandomUniform RandomUniformLike Range Reciprocal ReduceL1 ReduceL2 ReduceLogSum ReduceLogSumExp
ReduceMax ReduceMean ReduceMin ReduceProd ReduceSum ReduceSumSquare RegexFullMatch Relu Reshape Resize
ReverseSequence RoiAlign RotaryEmbedding Round STFT Scan Scatter ScatterElements ScatterND Selu SequenceAt
SequenceConstruct SequenceEmpty SequenceErase SequenceInsert SequenceLength SequenceMap Shape Shrink Sigmoid
Sign Sin Sinh Size Slice Softmax SoftmaxCrossEntropyLoss Softplus Softsign SpaceToDepth Split SplitToSequence
Sqrt Squeeze StringConcat StringNormalizer StringSplit Sub Sum Swish Tan Tanh TensorScatter TfIdfVectorizer
ThresholdedRelu Tile TopK Transpose Trilu Unique Unsqueeze Upsample Where Xor
ArrayFeatureExtractor Binarizer CastMap CategoryMapper DictVectorizer FeatureVectorizer Imputer LabelEncoder
LinearClassifier LinearRegressor Normalizer OneHotEncoder SVMClassifier SVMRegressor Scaler TreeEnsemble
TreeEnsembleClassifier TreeEnsembleRegressor ZipMap Adagrad Adam Gradient Momentum
CausalConvWithState FlexAttention LinearAttention SwiGLU
""".split())
RUNTIME_DOMAINS = frozenset({"com.microsoft", "com.microsoft.nchwc", "com.microsoft.experimental",
                             "com.microsoft.dml", "com.ms.internal.nhwc", "ai.onnx.contrib", "org.pytorch.aten",
                             "com.microsoft.mlfeaturizers"})
_MAX_REPORTED = 50  # custom-op findings per (domain, op)
# Bounds on what the walk remembers: distinct custom (domain, op) pairs, local functions and
# external files; metadata properties shown; locations per tensor. They are memory caps, not
# Limits fields: the work stays bounded by max_protobuf_bytes and the deadline whatever they are,
# real models come nowhere near them, and past them the walk only counts (LIMIT-EXCEEDED says so).
_MAX_KINDS = 10_000
_MAX_META = 50
_MAX_LOCATIONS = 16
_DEADLINE_EVERY = 4096  # nodes (or tensors) walked between two looks at the clock


class _Walker:
    def __init__(self, source: Source, ctx: Context) -> None:
        self.source = source
        self.ctx = ctx
        self.functions: set[tuple[str, str]] = set()
        self.custom: dict[tuple[str, str], int] = {}
        self.custom_other = 0  # custom-domain nodes whose (domain, op) came after _MAX_KINDS others
        self.reported = 0  # custom-domain findings listed, against max_findings_per_file
        self.locations: set[str] = set()  # external data locations checked on disk
        self.nodes = 0
        self.tensors = 0
        self.external = 0
        self.deadline = ctx.deadline()
        self.steps = 0
        self.partial = False

    def limit(self, limit: str, message: str) -> None:
        """Report a bound hit once; the artifact becomes PARTIAL."""
        if not self.partial:
            self.ctx.add(LIMIT_EXCEEDED.finding(self.ctx.location(self.source), message, limit=limit))
        self.partial = True

    def tick(self) -> None:
        """Count one field walked; every few thousand, look at the clock.

        Files on disk are memory-mapped whatever their size: millions of tiny nodes,
        metadata entries or external-data entries are linear work, but unbounded.
        """
        self.steps += 1
        if self.steps % _DEADLINE_EVERY == 0 and time.monotonic() > self.deadline:
            raise LimitExceeded("max_seconds_per_file", "ONNX graph walk ran out of time")

    def model(self, msg: Message) -> None:
        # Functions first: a custom-domain op that a local function defines needs no native code.
        for f in msg.fields(25):
            self.tick()
            if f.wire_type == LEN:
                name = domain = ""
                for part in f.submessage():
                    if part.wire_type == LEN and part.number == 1:
                        name = part.head_text(4096)
                    elif part.wire_type == LEN and part.number == 10:
                        domain = part.head_text(4096)
                if len(self.functions) < _MAX_KINDS:
                    self.functions.add((domain, name))
                else:  # their ops are then reported as custom: louder, never quieter
                    self.limit("max_onnx_functions", f"more than {_MAX_KINDS} model-local functions")
        meta: list[tuple[str, str]] = []
        meta_count = 0
        for f in msg:
            self.tick()
            if f.wire_type != LEN:
                continue
            if f.number == 7:
                self.graph(f.submessage(), "graph")
            elif f.number == 25:
                self.function(f.submessage())
            elif f.number == 20:
                for g in f.submessage().fields(1, 2):
                    if g.wire_type == LEN:
                        self.graph(g.submessage(), "training_info")
            elif f.number == 14:
                meta_count += 1
                if len(meta) < _MAX_META:  # only these are shown; the rest are counted
                    meta.append(self.entry(f.submessage()))
        if meta:
            self.ctx.add(METADATA.finding(self.ctx.location(self.source),
                                          f"model has {meta_count} metadata propert{'y' if meta_count == 1 else 'ies'}",
                                          properties={k[:200]: v[:500] for k, v in meta}))

    def function(self, msg: Message) -> None:
        name = ""
        for f in msg:
            if f.wire_type == LEN and f.number == 1:
                name = f.head_text(4096)
            elif f.wire_type == LEN and f.number == 7:
                self.node(f.submessage(), f"function {name}")
            elif f.wire_type == LEN and f.number == 11:
                # attribute_proto: default attribute values, substituted into the body when the
                # function is inlined; a default tensor may name external data like any other.
                self.attribute(f.submessage(), f"function {name}/default")

    def graph(self, msg: Message, where: str) -> None:
        for f in msg:
            self.tick()
            if f.wire_type != LEN:
                continue
            if f.number == 1:
                self.node(f.submessage(), where)
            elif f.number == 5:
                self.tensor(f.submessage())
            elif f.number == 15:
                for t in f.submessage().fields(1, 2):
                    if t.wire_type == LEN:
                        self.tensor(t.submessage())

    def node(self, msg: Message, where: str) -> None:
        self.nodes += 1
        self.tick()
        name = op = domain = ""
        for f in msg:
            self.tick()
            if f.wire_type != LEN:
                continue
            if f.number == 3:
                name = f.head_text(4096)
            elif f.number == 4:
                op = f.head_text(4096)
            elif f.number == 7:
                domain = f.head_text(4096)
            elif f.number == 5:
                self.attribute(f.submessage(), f"{where}/{name or op}")
        unknown_standard = domain in STANDARD_DOMAINS and op not in _ONNX_OPS
        if (domain not in STANDARD_DOMAINS or unknown_standard) and (domain, op) not in self.functions:
            key = (domain, op)
            if key not in self.custom and len(self.custom) >= _MAX_KINDS:
                self.custom_other += 1  # a million distinct op names must not make a million entries
                return
            self.custom[key] = self.custom.get(key, 0) + 1
            if self.custom[key] <= _MAX_REPORTED and self.reported < self.ctx.limits.max_findings_per_file:
                self.reported += 1
                runtime = domain in RUNTIME_DOMAINS or domain.startswith("com.microsoft.")
                what = (f"op {op!r}, which the ONNX standard does not define, in standard domain {domain!r}"
                        if unknown_standard else f"op {op!r} from custom domain {domain!r}")
                self.ctx.add(CUSTOM_DOMAIN.finding(
                    self.ctx.location(self.source, offset=msg.start),
                    f"node {name!r} uses {what} ({where})",
                    severity=Severity.LOW if runtime else None, domain=domain, op=op, node=name, where=where))

    def attribute(self, msg: Message, where: str) -> None:
        for f in msg:
            self.tick()
            if f.wire_type != LEN:
                continue
            if f.number in (6, 11):  # If/Loop/Scan bodies and any other graph attribute
                self.graph(f.submessage(), f"{where}/subgraph")
            elif f.number in (5, 10):
                self.tensor(f.submessage())
            elif f.number in (22, 23):  # sparse_tensor(s): values and indices are tensors too
                for t in f.submessage().fields(1, 2):
                    if t.wire_type == LEN:
                        self.tensor(t.submessage())

    def tensor(self, msg: Message) -> None:
        self.tensors += 1
        self.tick()
        name = ""
        external = False
        locations: list[tuple[str, int]] = []
        for f in msg:
            self.tick()
            if f.number == 8 and f.wire_type == LEN:
                name = f.head_text(4096)
            elif f.number == 14 and f.wire_type == VARINT:
                external = f.value == 1
            elif f.number == 13 and f.wire_type == LEN:
                key, value = self.entry(f.submessage())
                if key != "location":
                    continue  # offset, length, checksum: nothing to check, nothing kept
                if len(locations) >= _MAX_LOCATIONS:
                    self.limit("max_onnx_locations", f"a tensor names more than {_MAX_LOCATIONS} external "
                               "data locations; the rest were not checked")
                    continue
                locations.append((value, f.offset))
        # A location is honoured by loaders only with data_location EXTERNAL, but checking every
        # location costs nothing and catches files that flip the flag with another tool.
        for value, offset in locations:
            self.external += 1
            self.location(value, name, offset, external)

    def entry(self, msg: Message) -> tuple[str, str]:
        key = value = ""
        for f in msg:
            if f.wire_type == LEN and f.number == 1:
                key = f.head_text(4096)
            elif f.wire_type == LEN and f.number == 2:
                value = f.head_text(64 * 1024)
        return key, value

    def location(self, location: str, tensor: str, offset: int, external: bool) -> None:
        loc = self.ctx.location(self.source, offset=offset)
        details: dict[str, Any] = {"tensor": tensor[:200], "path": location[:1000], "data_location_external": external}
        if escapes_syntactically(location):
            self.ctx.add(EXTERNAL_DATA_ESCAPE.finding(
                loc, f"tensor {tensor!r} reads external data from {location[:200]!r}", **details))
            return
        fs_path = self.source.fs_path
        if fs_path is None:
            return  # inside an archive: only the syntactic check applies
        if location in self.locations:
            return  # checked on disk already (shards name the same file again and again)
        if len(self.locations) >= _MAX_KINDS:
            self.limit("max_onnx_locations", f"more than {_MAX_KINDS} distinct external data files; the rest "
                       "were only checked by name")
            return
        self.locations.add(location)
        verdict, resolved = resolve_sibling(location, fs_path, self.ctx.root)
        if verdict == MISSING:
            self.ctx.add(EXTERNAL_DATA_MISSING.finding(
                loc, f"tensor {tensor!r} names external data {location[:200]!r}, which does not exist", **details))
        elif verdict == ESCAPES:
            self.ctx.add(EXTERNAL_DATA_ESCAPE.finding(
                loc, f"tensor {tensor!r} external data {location[:200]!r} resolves outside the model directory",
                resolved=str(resolved)[:1000], **details))


def analyze_model(msg: Message, source: Source, ctx: Context) -> Outcome:
    """Check a parsed ONNX ModelProto (the dispatcher in :mod:`aivet.analyzers.protobuf` calls this)."""
    walker = _Walker(source, ctx)
    walker.model(msg)
    listed = sum(min(n, _MAX_REPORTED) for n in walker.custom.values())
    summaries = unsummarised = 0
    for (domain, op), n in walker.custom.items():
        if n <= _MAX_REPORTED:
            continue
        if summaries >= ctx.limits.max_findings_per_file:
            unsummarised += n - _MAX_REPORTED
            continue
        summaries += 1
        ctx.add(CUSTOM_DOMAIN.finding(ctx.location(source), f"{n - _MAX_REPORTED} more {domain}::{op} nodes",
                                      domain=domain, op=op, count=n))
    unlisted = walker.custom_other + unsummarised + max(0, listed - walker.reported)
    if unlisted:
        ctx.add(CUSTOM_DOMAIN.finding(ctx.location(source), f"{unlisted} more custom-domain nodes not listed "
                                      "individually", count=unlisted))
    note = f"{walker.nodes} node(s), {walker.tensors} tensor(s), {walker.external} external"
    return Outcome("onnx", ArtifactStatus.PARTIAL if walker.partial else ArtifactStatus.ANALYZED, note)
