"""Regression tests for bounds fixed during the analyzer split (proposed: tests/test_bounds_regressions.py)."""

from __future__ import annotations

import dataclasses
import encodings.punycode as punycode
import io
import json
import struct
import zipfile
from typing import Any

import pytest

from aivet.analyzers import archive, pycode
from aivet.analyzers import template as tpl
from aivet.analyzers.context import Context, ScanOptions
from aivet.analyzers.engine import analyze_source
from aivet.analyzers.source import Source
from aivet.evidence import ArtifactStatus, Location
from aivet.formats.protobuf import Message
from aivet.limits import DEFAULT_LIMITS
from tests.fixtures.tf_files import attr_list_s, f_bytes, f_varint, function, graph_def, node
from tests.fixtures.work import HANG_TIMEOUT, Tally, counting_source, growth, memory_peak, python_lines


def _ctx(**limits: int) -> Context:
    return Context("t", ScanOptions(dataclasses.replace(DEFAULT_LIMITS, **limits)))


def test_zip64_end_record_cannot_bypass_the_central_directory_bound() -> None:
    # zipfile takes sizes from a zip64 end record placed before the locator, whatever the classic record says.
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("a.txt", b"hello")
    data = buf.getvalue()
    eocd = data.rfind(b"PK\x05\x06")
    _, _, _, n1, n2, _, cd_off, _ = struct.unpack_from("<4s4H2LH", data, eocd)
    zip64 = struct.pack("<4sQ2H2L4Q", b"PK\x06\x06", 44, 45, 45, 0, 0, n1, n2, 1 << 40, cd_off)
    locator = struct.pack("<4sLQL", b"PK\x06\x07", 0, eocd, 1)
    ctx = Context("t")
    analyze_source(Source.from_bytes(data[:eocd] + zip64 + locator + data[eocd:], "evil.zip"), ctx)
    [hit] = [f for f in ctx.findings if f.rule_id == "SCAN-LIMIT-EXCEEDED"]
    assert hit.details["limit"] == "max_header_bytes"


def test_zip_outcome_unchanged_for_a_plain_archive() -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("notes.txt", b"hello")
    assert archive.analyze_zip(Source.from_bytes(buf.getvalue(), "a.zip"), Context("t")).status is ArtifactStatus.ANALYZED


def _py(code: str, ctx: Context) -> ArtifactStatus:
    return pycode.analyze(Source.from_bytes(code.encode(), "modeling_x.py"), ctx).status


@pytest.mark.timeout(HANG_TIMEOUT)
def test_nested_comprehensions_stop_at_the_fold_budget() -> None:
    big = "[" + ", ".join(["1"] * 2000) + "]"
    ctx = _ctx(max_fold_steps=20_000)
    status = _py(f"big = {big}\nexec(str([[chr(c) for c in big] for d in big]))\n", ctx)
    assert status is ArtifactStatus.PARTIAL
    assert any(f.details.get("limit") == "max_fold_steps" for f in ctx.findings)


@pytest.mark.timeout(HANG_TIMEOUT)
def test_strings_multiplied_by_joins_are_not_built() -> None:
    n = 3000  # each case would build n MiB without the pre-checks
    for code in ("x = 'a' * 1000000\nexec(f'" + "{x}" * n + "')\n",
                 "x = 'a' * 1000000\nexec(''.join([" + "x," * n + "]))\n",
                 f"x = 'a' * 1000000\ny = 'b' * {n}\nexec(y.replace('', x))\n",
                 "x0 = [1, 2, 3, 4, 5, 6, 7, 8]\n" + "".join(f"x{i + 1} = x{i} + x{i}\n" for i in range(30))
                 + "exec(bytes(x30))\n"):
        _, peak = memory_peak(lambda: _py(code, Context("t")))
        assert peak < 32 * 1024 * 1024, (code[:40], peak)  # the 1 MiB value, a few times at most


@pytest.mark.timeout(HANG_TIMEOUT)
def test_punycode_is_never_run_on_untrusted_text(monkeypatch: pytest.MonkeyPatch) -> None:
    # Its cost grows with the square of the input: counted calls, not seconds, show it never runs.
    calls: list[str] = []
    for name in ("punycode_encode", "punycode_decode"):
        def spy(*args: Any, _name: str = name, _real: Any = getattr(punycode, name)) -> Any:
            calls.append(_name)
            return _real(*args)
        monkeypatch.setattr(punycode, name, spy)
    literal = "".join(chr(0x100 + (i * 7919) % 0x2F00) for i in range(8000))
    _py(f"exec({literal!r}.encode('punycode'))\n", Context("t"))
    ctx = Context("t")
    _py("# -*- coding: punycode -*-\nimport os\n", ctx)
    assert any(f.rule_id == "CODE-ENCODING" for f in ctx.findings)
    assert calls == []
    "\u00e9".encode("punycode")  # the spy is wired: the codec itself goes through it
    assert calls == ["punycode_encode"]


def _printf(fields: int, uses: int) -> str:
    return '{% set f = "%s" * ' + str(fields) + ' %}{% set l = ("a" * ' + str(fields) + ")|list %}" + "{{ f % l }}" * uses


@pytest.mark.timeout(HANG_TIMEOUT)
def test_printf_with_many_fields_finishes() -> None:
    tpl.analyze_template(_printf(2048, 200), Location("tokenizer_config.json", pointer="/chat_template"), Context("t"))


@pytest.mark.parametrize("scaled", ["fields", "uses"])
def test_printf_with_many_fields_is_linear(scaled: str) -> None:
    def work(n: int) -> int:
        text = _printf(n, 5) if scaled == "fields" else _printf(256, n)
        return python_lines(lambda: tpl.analyze_template(text, Location("t"), Context("t")))[1]

    assert growth(work, 256 if scaled == "fields" else 5) <= 5  # linear gives about 4, quadratic about 16


@pytest.mark.timeout(HANG_TIMEOUT)
def test_lists_of_long_strings_are_not_turned_into_text() -> None:
    text = '{% set s = "a" * 4000 %}{% set l = [' + "s," * 4000 + "] %}" + "{{ l ~ 1 }}" * 200
    _, peak = memory_peak(lambda: tpl.analyze_template(text, Location("t"), Context("t")))
    assert peak < 8 * 1024 * 1024, peak  # each `l ~ 1` as text would be 16 MB


def test_unknown_printf_argument_is_not_the_text_none() -> None:
    import jinja2
    from jinja2 import nodes

    from aivet.analyzers.template_fold import TemplateResolver

    tree = jinja2.Environment().parse("{{ '__%s__' % x }}{{ '%s%s' % ('__', 'class__') }}")
    unknown, known = tree.find_all(nodes.Mod)
    resolver = TemplateResolver({})
    assert resolver.resolve(unknown) is None  # not '__None__'
    assert resolver.resolve(known) == "__class__"


# ---------------------------------------------------------------------------------------------
# Text and graph analyzers on hostile input within the size limits (issue #2). Each test names
# the shape; the numbers measured before the fixes are in the commit message, not here.
# ---------------------------------------------------------------------------------------------

def _limit_hits(ctx: Context, limit: str) -> int:
    return sum(1 for f in ctx.findings if f.rule_id == "SCAN-LIMIT-EXCEEDED" and f.details.get("limit") == limit)


def _scan(data: bytes, name: str, ctx: Context | None = None) -> tuple[Context, ArtifactStatus]:
    ctx = ctx or Context("t")
    return ctx, analyze_source(Source.from_bytes(data, name), ctx)


def test_secret_patterns_reject_starts_inside_a_word_at_once() -> None:
    # "eyJeyJeyJ..." made every start scan the 2,000-character JWT body again (3 s per MB, 20 s
    # for an 8 MB README, minutes for a 64 MB JSON): starts inside a run now fail on the spot.
    from aivet.analyzers import secrets

    for det in secrets._DETECTORS:
        if det.rule is secrets.DATABASE_URL or det.pattern.pattern.startswith("(?:"):
            continue  # the URL needs no left boundary; the AWS secret keyword is cheap to scan
        head = secrets._LITERAL_HEAD.match(det.pattern.pattern)
        if head is None or len(head.group(0)) < 2:
            assert det.kind in ("aws-access-key-id", "private-key"), det.kind  # fixed length: cheap as they are
            continue
        assert det.pattern.pattern.startswith(head.group(0) + "(?<!"), det.kind
        text = "a" + head.group(0) + "A1b2C3d4" * 40
        assert det.pattern.match(text, 1) is None, det.kind


@pytest.mark.timeout(HANG_TIMEOUT)
def test_a_run_of_jwt_and_openai_prefixes_is_searched_once() -> None:
    for prefix in ("eyJ", "sk-", "xoxb-aaaaaa-", "glpat-"):
        ctx, status = _scan((prefix * (4_000_000 // len(prefix))).encode(), "README.md")
        assert status is ArtifactStatus.ANALYZED and ctx.findings == []


@pytest.mark.timeout(HANG_TIMEOUT)
def test_token_shaped_strings_stop_at_the_candidate_bound() -> None:
    from aivet.analyzers import secrets

    def work(n: int) -> int:
        text = "".join(f"hf_{i:06d}aB3dE5gH7jK9mN1pQ3sT5vX7zA9cE1g\n" for i in range(n))
        return python_lines(lambda: secrets.search_secrets(text, 500))[1]

    assert growth(work, 600) <= 1.5  # linear would give about 4: the search stops at 500
    ctx, status = _scan("".join(f"hf_{i:06d}aB3dE5gH7jK9mN1pQ3sT5vX7zA9cE1g\n"
                                for i in range(510)).encode(), "notes.txt", _ctx(max_secret_candidates=500))
    assert status is ArtifactStatus.PARTIAL and _limit_hits(ctx, "max_secret_candidates") == 1
    hits = [f for f in ctx.findings if f.rule_id == "SECRET-HF-TOKEN"]
    assert len(hits) == DEFAULT_LIMITS.max_findings_per_file and hits[-1].location.line == len(hits)


def test_the_default_candidate_bound_is_far_above_what_is_reported() -> None:
    assert DEFAULT_LIMITS.max_secret_candidates >= 10 * DEFAULT_LIMITS.max_findings_per_file


@pytest.mark.timeout(HANG_TIMEOUT)
def test_python_with_too_many_tokens_is_not_parsed() -> None:
    # ast.parse holds about a kilobyte per node: one megabyte of "0," took 500 MB (8 MB: 4 GB).
    code = "y = [" + "0," * (DEFAULT_LIMITS.max_python_tokens // 2 + 10) + "]\n"
    ctx = Context("t")
    status, peak = memory_peak(lambda: _py(code, ctx))
    assert status is ArtifactStatus.PARTIAL and _limit_hits(ctx, "max_python_tokens") == 1
    assert peak < 16 * 1024 * 1024, peak


def test_token_estimate_bounds_the_syntax_tree() -> None:
    import ast

    shared = (ast.expr_context, ast.operator, ast.unaryop, ast.boolop, ast.cmpop)  # singletons: no memory
    for code in ("a\n" * 50, "y = " + "a+" * 50 + "a\n", "y = x" + "[:]" * 20 + "\n", "f'" + "{a}" * 30 + "'\n",
                 "y = " + "-" * 40 + "1\n", "y = a" + ".b" * 40 + "\n", "y = [" + "''," * 40 + "]\n",
                 "y = " + "lambda: " * 30 + "0\n", "f(" + "a=1," * 30 + ")\n"):
        nodes = sum(1 for n in ast.walk(ast.parse(code)) if not isinstance(n, shared))
        assert nodes <= 2 * pycode.token_estimate(code) + 2, code[:20]


@pytest.mark.timeout(HANG_TIMEOUT)
def test_a_megabyte_value_passed_to_many_calls_is_not_copied_for_each(monkeypatch: pytest.MonkeyPatch) -> None:
    # Each call's message held repr() of the folded argument: 1 MB per call, for 10^5 calls.
    built = [0]

    def counting_repr(value: object) -> str:
        text = repr(value)
        built[0] += len(text)
        return text

    from aivet.analyzers import pycode_calls

    monkeypatch.setattr(pycode_calls, "repr", counting_repr, raising=False)  # where short_repr lives
    code = "import os\ny = 'a' * 1000000\n" + "os.path.join(y, y)\n" * 3000
    ctx = Context("t")
    assert _py(code, ctx) is ArtifactStatus.PARTIAL  # the folding budget ran out: values cost by size
    assert _limit_hits(ctx, "max_fold_steps") == 1
    assert 0 < built[0] < 1_000_000, built[0]  # short_repr was reached, and copied only the ends


@pytest.mark.timeout(HANG_TIMEOUT)
def test_the_same_decoded_code_run_many_times_is_analysed_once() -> None:
    payload = "import os\n" + "os.system('x')\n" * 200

    def work(n: int) -> int:
        code = f"y = {payload!r}\n" + "exec(y)\n" * n
        return python_lines(lambda: _py(code, Context("t")))[1]

    assert growth(work, 5) <= 2  # without the memo every exec re-parsed and re-walked the payload


@pytest.mark.timeout(HANG_TIMEOUT)
def test_decoded_code_shares_the_token_bound_of_its_file() -> None:
    # Distinct payloads (no memo hit), each small in the file (base64 is one token), together
    # over the bound: the file and the code decoded from it share it.
    import base64

    payloads = [base64.b64encode((f"# {i}\n" + "a = 1\n" * 2000).encode()).decode() for i in range(4)]
    code = "import base64\n" + "".join(f"exec(base64.b64decode({p!r}))\n" for p in payloads)
    ctx = _ctx(max_python_tokens=20_000)
    assert _py(code, ctx) is ArtifactStatus.PARTIAL
    assert _limit_hits(ctx, "max_python_tokens") >= 1


@pytest.mark.timeout(HANG_TIMEOUT)
def test_long_base64_literal_of_code_is_not_parsed_to_see_whether_it_is_code() -> None:
    # The check "does this decoded blob look like Python?" ran ast.parse on up to 1 MB: 400 MB.
    import base64

    blob = base64.b64encode(("y = [" + "0," * 400_000 + "]\n").encode()).decode()
    ctx = Context("t")
    status, peak = memory_peak(lambda: _py(f"import os\nblob = {blob!r}\n", ctx))
    assert status is ArtifactStatus.PARTIAL and _limit_hits(ctx, "max_python_tokens") == 1
    assert peak < 24 * 1024 * 1024, peak


@pytest.mark.timeout(HANG_TIMEOUT)
def test_python_analysis_stops_at_the_deadline() -> None:
    ctx, status = _scan(b"import os\nos.system('x')\n", "modeling_x.py", _ctx_seconds(0.0))
    assert status is ArtifactStatus.PARTIAL and _limit_hits(ctx, "max_seconds_per_file") == 1


def _ctx_seconds(seconds: float) -> Context:
    return Context("t", ScanOptions(dataclasses.replace(DEFAULT_LIMITS, max_seconds_per_file=seconds)))


@pytest.mark.timeout(HANG_TIMEOUT)
def test_json_that_would_take_gigabytes_is_not_parsed() -> None:
    # 64 MB of "{}," took 4 GB to parse (about 200 bytes per empty object); the cost is now
    # estimated from bracket and comma counts before anything is built.
    data = ("[" + "{}," * 1_600_000 + "{}]").encode()
    (ctx, status), peak = memory_peak(lambda: _scan(data, "config.json"))
    assert status is ArtifactStatus.PARTIAL and _limit_hits(ctx, "max_json_cost") == 1
    assert peak < 3 * len(data), peak  # the text itself, not the objects


@pytest.mark.timeout(HANG_TIMEOUT)
def test_json_lines_are_read_one_at_a_time_and_bounded() -> None:
    data = b'{"a": 1}\n' * 100_000  # splitlines() held 100,000 strings at once
    (ctx, status), peak = memory_peak(lambda: _scan(data, "data.jsonl", _ctx(max_jsonl_lines=1000)))
    assert status is ArtifactStatus.PARTIAL and _limit_hits(ctx, "max_jsonl_lines") == 1
    assert peak < 4 * len(data), peak


def test_trust_remote_code_flags_are_listed_up_to_the_findings_bound() -> None:
    data = json.dumps({f"k{i}": {"trust_remote_code": True} for i in range(500)}).encode()
    ctx, _ = _scan(data, "settings.json", _ctx(max_findings_per_file=50))
    assert sum(f.rule_id == "CONFIG-TRUST-REMOTE-CODE" for f in ctx.findings) == 50
    assert _limit_hits(ctx, "max_findings_per_file") == 1


def _safetensors(header: str, data: bytes = b"") -> bytes:
    raw = header.encode()
    return struct.pack("<Q", len(raw)) + raw + data


@pytest.mark.timeout(HANG_TIMEOUT)
def test_safetensors_header_of_empty_objects_is_refused_before_decoding() -> None:
    # 4 MB of "{}," in __metadata__ took 660 MB to decode (a 100 MB header: 16 GB).
    data = _safetensors('{"__metadata__":{"a":[' + "{}," * 1_600_000 + '{}]}}')
    (ctx, status), peak = memory_peak(lambda: _scan(data, "model.safetensors"))
    assert status is ArtifactStatus.PARTIAL and _limit_hits(ctx, "max_json_cost") == 1
    assert peak < 3 * len(data), peak


@pytest.mark.timeout(HANG_TIMEOUT)
def test_safetensors_gaps_holding_pickles_are_analysed_a_bounded_number_of_times() -> None:
    inspected, analysed = 300, 5
    n = inspected + 200
    header = "{" + ",".join(f'"t{i}":{{"dtype":"U8","shape":[1],"data_offsets":[{20 * i + 19},{20 * i + 20}]}}'
                            for i in range(n)) + "}"
    data = _safetensors(header, (b"\x80\x04K\x01." + b"\0" * 15) * n)  # a pickle in every gap
    tally = Tally()
    ctx = _ctx(max_inspected_regions=inspected, max_analysed_regions=analysed)
    status = analyze_source(counting_source(data, "model.safetensors", tally), ctx)
    # Reporter.limit reports the first bound hit only: the analysed one comes first here
    assert status is ArtifactStatus.PARTIAL and _limit_hits(ctx, "max_analysed_regions") == 1
    nested = [a for a in ctx.artifacts if "!" in a.path]
    assert len(nested) == analysed  # each was a whole nested scan; there were 500
    assert tally.opens <= inspected + 2 * analysed + 2
    assert any(f.rule_id == "SAFETENSORS-GAP" and f.severity.name == "HIGH" for f in ctx.findings)


@pytest.mark.timeout(HANG_TIMEOUT)
def test_npy_header_too_large_for_a_literal_parse_is_refused() -> None:
    # A 4 MB shape tuple took 2 GB in ast.literal_eval (a 100 MB header: 50 GB).
    header = ("{'descr': '<f4', 'fortran_order': False, 'shape': (" + "0," * 500_000 + ")}").encode("latin-1")
    data = b"\x93NUMPY\x02\x00" + struct.pack("<I", len(header)) + header
    tally = Tally()
    ctx = Context("t")
    status, peak = memory_peak(lambda: analyze_source(counting_source(data, "a.npy", tally), ctx))
    assert status is ArtifactStatus.PARTIAL and _limit_hits(ctx, "max_npy_header_bytes") == 1
    assert tally.bytes_read < 200 * 1024 and peak < 4 * 1024 * 1024, (tally.bytes_read, peak)


def _gs(raw: bytes) -> bytes:
    return struct.pack("<Q", len(raw)) + raw


def _gguf(kvs: list[bytes], tensors: int = 0) -> bytes:
    arch = _gs(b"general.architecture") + struct.pack("<I", 8) + _gs(b"llama")
    return b"GGUF" + struct.pack("<IQQ", 3, tensors, len(kvs) + 1) + arch + b"".join(kvs)


@pytest.mark.timeout(HANG_TIMEOUT)
def test_gguf_arrays_of_arrays_count_against_the_entries_bound() -> None:
    # Each array was checked alone: 1,000 arrays of 1,000 arrays passed a bound of 1,000 entries.
    inner = struct.pack("<IQ", 9, 40) + struct.pack("<IQ", 0, 0) * 40
    data = _gguf([_gs(b"a") + struct.pack("<IIQ", 9, 9, 40) + inner * 40])
    ctx, status = _scan(data, "model.gguf", _ctx(max_metadata_entries=1000))
    assert status is ArtifactStatus.PARTIAL and _limit_hits(ctx, "max_metadata_entries") == 1


@pytest.mark.timeout(HANG_TIMEOUT)
def test_gguf_metadata_entries_are_bounded_by_default() -> None:
    # The default was 1,000,000 entries: ~340 MB and ~15 s of Python objects for one hostile
    # header. Real files have < 5,000 (metadata plus tensor infos); the default is now 100,000.
    import tracemalloc

    count = DEFAULT_LIMITS.max_metadata_entries  # allowed as a count; two nested arrays tip it over
    nested = _gs(b"a") + struct.pack("<IIQ", 9, 9, 2) + struct.pack("<IQ", 4, 0) * 2
    kvs = [_gs(b"k%d" % i) + struct.pack("<II", 4, i) for i in range(count - 2)] + [nested]
    data = b"GGUF" + struct.pack("<IQQ", 3, 0, count) + b"".join(kvs)
    tracemalloc.start()
    try:
        ctx, status = _scan(data, "model.gguf")
        peak = tracemalloc.get_traced_memory()[1] - len(data)
    finally:
        tracemalloc.stop()
    assert status is ArtifactStatus.PARTIAL and _limit_hits(ctx, "max_metadata_entries") == 1
    assert peak < 80 * 1024 * 1024


def test_gguf_chat_templates_are_analysed_a_bounded_number_of_times(monkeypatch: pytest.MonkeyPatch) -> None:
    from aivet.analyzers import gguf as gguf_scan

    calls: list[str] = []
    def analyze_template(text: str, where: Location, ctx: Context, quota: object = None) -> ArtifactStatus:
        calls.append(text)
        return ArtifactStatus.ANALYZED

    monkeypatch.setattr(gguf_scan, "analyze_template", analyze_template)
    kvs = [_gs(b"tokenizer.chat_template.t%d" % i) + struct.pack("<I", 8) + _gs(b"{{ x }}") for i in range(100)]
    ctx, status = _scan(_gguf(kvs), "model.gguf")
    assert len(calls) == DEFAULT_LIMITS.max_templates_per_file
    assert status is ArtifactStatus.PARTIAL and _limit_hits(ctx, "max_templates_per_file") == 1
    calls.clear()
    ctx, status = _scan(_gguf(kvs), "model.gguf", _ctx(max_templates_per_file=3))
    assert len(calls) == 3 and _limit_hits(ctx, "max_templates_per_file") == 1


@pytest.mark.parametrize("kind", ["gguf", "config"])
def test_chat_templates_of_one_file_share_one_parse_quota(kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # Jinja's parse cannot be interrupted: sixteen templates just under max_template_bytes each
    # were sixteen parses of ~2-4 s. Now the file's templates share max_template_bytes.
    import json

    from jinja2 import Environment

    from aivet.analyzers import template as tpl

    parsed: list[int] = []
    real_parse = Environment.parse
    monkeypatch.setattr(tpl._ENV, "parse", lambda text, *a, **k: parsed.append(len(text)) or real_parse(
        tpl._ENV, text, *a, **k))
    limits = _ctx(max_template_bytes=4096).limits
    text = "{{ x }}" * (limits.max_template_bytes // 7 - 5)  # fits alone, not twice
    if kind == "gguf":
        kvs = [_gs(b"tokenizer.chat_template.t%d" % i) + struct.pack("<I", 8) + _gs(text.encode()) for i in range(5)]
        data, name = _gguf(kvs), "model.gguf"
    else:
        data = json.dumps({"chat_template": [{"name": f"t{i}", "template": text} for i in range(5)]}).encode()
        name = "tokenizer_config.json"
    ctx, status = _scan(data, name, _ctx(max_template_bytes=4096))
    assert parsed == [len(text)]
    assert status is ArtifactStatus.PARTIAL and _limit_hits(ctx, "max_template_bytes") == 4


def test_gguf_duplicate_keys_are_found_in_linear_work() -> None:
    def work(n: int) -> int:
        kvs = [_gs(b"k%d" % (i % (n // 2))) + struct.pack("<IB", 0, 1) for i in range(n)]
        return python_lines(lambda: _scan(_gguf(kvs), "model.gguf"))[1]

    assert growth(work, 200) <= 5  # a search per duplicated key made this quadratic


def _onnx(graph: bytes, extra: bytes = b"") -> bytes:
    return f_varint(1, 8) + f_bytes(7, graph) + extra


@pytest.mark.timeout(HANG_TIMEOUT)
def test_onnx_distinct_custom_ops_are_listed_up_to_the_findings_bound() -> None:
    # Every distinct (domain, op) got up to 50 findings: 333,000 findings from a 5 MB file.
    graph = b"".join(f_bytes(1, f_bytes(4, f"op{i}") + f_bytes(7, "evil")) for i in range(3000))
    ctx, _ = _scan(_onnx(graph), "model.onnx", _ctx(max_findings_per_file=50))
    custom = [f for f in ctx.findings if f.rule_id == "ONNX-CUSTOM-OP"]
    assert len(custom) == 51 and custom[-1].details["count"] == 2950


@pytest.mark.timeout(HANG_TIMEOUT)
def test_onnx_metadata_and_external_entries_are_not_all_kept() -> None:
    props = f_bytes(14, b"") * 20_000  # each kept as a (key, value) pair before
    entries = f_bytes(5, f_bytes(13, f_bytes(1, b"")) * 20_000)
    (ctx, status), peak = memory_peak(lambda: _scan(_onnx(entries, props), "model.onnx"))
    [meta] = [f for f in ctx.findings if f.rule_id == "ONNX-METADATA"]
    assert "20000 metadata properties" in meta.message and len(meta.details["properties"]) <= 1
    assert peak < 1024 * 1024, peak


@pytest.mark.timeout(HANG_TIMEOUT)
def test_onnx_walk_stops_at_the_deadline() -> None:
    ctx, status = _scan(_onnx(f_bytes(1, b"") * 10_000), "model.onnx", _ctx_seconds(0.0))
    assert status is ArtifactStatus.PARTIAL and _limit_hits(ctx, "max_seconds_per_file") == 1


@pytest.mark.timeout(HANG_TIMEOUT)
def test_tensorflow_list_attributes_keep_a_bounded_number_of_strings() -> None:
    from aivet.analyzers import savedmodel

    many = attr_list_s([""] * 30_000 + ["a"] * 3_000)  # 30,000 empty strings were 30,000 tuples
    data = graph_def([node("r", "ReadFile", attrs={"x": many})])
    msg = Message.parse(data)
    node_msg = next(msg.fields(1)).submessage()
    parsed, peak = memory_peak(lambda: savedmodel.read_node(node_msg))
    assert len(parsed.strings) == savedmodel.MAX_NODE_VALUES and all(v == "a" for _, v in parsed.strings)
    assert peak < 512 * 1024, peak


@pytest.mark.timeout(HANG_TIMEOUT)
def test_tensorflow_function_nodes_are_not_held_until_the_end() -> None:
    from aivet.analyzers import savedmodel

    def peak(n: int) -> int:
        data = graph_def([node("a", "Identity")], [function("f", [node(f"n{i}", "Identity") for i in range(n)])])
        msg = Message.parse(data)
        return memory_peak(lambda: sum(1 for _ in savedmodel.iter_graph(msg)))[1]

    assert growth(peak, 2000) <= 1.5  # every node of a function was kept until its name was read


@pytest.mark.timeout(HANG_TIMEOUT)
def test_tensorflow_distinct_custom_ops_are_listed_up_to_the_findings_bound() -> None:
    data = graph_def([node(f"n{i}", f"Op{i}") for i in range(3000)])
    ctx, status = _scan(data, "graph.pb", _ctx(max_findings_per_file=50))
    assert sum(f.rule_id == "TF-CUSTOM-OP" for f in ctx.findings) == 50
    assert _limit_hits(ctx, "max_findings_per_file") == 1


@pytest.mark.timeout(HANG_TIMEOUT)
def test_tensorflow_walk_stops_at_the_deadline() -> None:
    data = graph_def([node(f"n{i}", "Identity") for i in range(5000)])
    ctx, status = _scan(data, "graph.pb", _ctx_seconds(0.0))
    assert status is ArtifactStatus.PARTIAL and _limit_hits(ctx, "max_seconds_per_file") == 1
