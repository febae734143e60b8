"""Regression tests for bounds fixed during the analyzer split (proposed: tests/test_bounds_regressions.py)."""

from __future__ import annotations

import dataclasses
import io
import struct
import time
import zipfile

from aivet.analyzers import archive, pycode
from aivet.analyzers import template as tpl
from aivet.analyzers.context import Context, ScanOptions
from aivet.analyzers.engine import analyze_source
from aivet.analyzers.source import Source
from aivet.evidence import ArtifactStatus, Location
from aivet.limits import DEFAULT_LIMITS


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


def _py(code: str, ctx: Context) -> tuple[ArtifactStatus, float]:
    start = time.monotonic()
    outcome = pycode.analyze(Source.from_bytes(code.encode(), "modeling_x.py"), ctx)
    return outcome.status, time.monotonic() - start


def test_nested_comprehensions_stop_at_the_fold_budget() -> None:
    big = "[" + ", ".join(["1"] * 2000) + "]"
    ctx = _ctx(max_fold_steps=20_000)
    status, seconds = _py(f"big = {big}\nexec(str([[chr(c) for c in big] for d in big]))\n", ctx)
    assert status is ArtifactStatus.PARTIAL and seconds < 5
    assert any(f.details.get("limit") == "max_fold_steps" for f in ctx.findings)


def test_strings_multiplied_by_joins_are_not_built() -> None:
    n = 3000  # each case would build n MiB without the pre-checks
    for code in ("x = 'a' * 1000000\nexec(f'" + "{x}" * n + "')\n",
                 "x = 'a' * 1000000\nexec(''.join([" + "x," * n + "]))\n",
                 f"x = 'a' * 1000000\ny = 'b' * {n}\nexec(y.replace('', x))\n",
                 "x0 = [1, 2, 3, 4, 5, 6, 7, 8]\n" + "".join(f"x{i + 1} = x{i} + x{i}\n" for i in range(30))
                 + "exec(bytes(x30))\n"):
        _, seconds = _py(code, Context("t"))
        assert seconds < 5


def test_punycode_is_never_run_on_untrusted_text() -> None:
    literal = "".join(chr(0x100 + (i * 7919) % 0x2F00) for i in range(8000))
    _, seconds = _py(f"exec({literal!r}.encode('punycode'))\n", Context("t"))
    assert seconds < 5
    ctx = Context("t")
    _, seconds = _py("# -*- coding: punycode -*-\nimport os\n", ctx)
    assert seconds < 5 and any(f.rule_id == "CODE-ENCODING" for f in ctx.findings)


def test_printf_with_many_fields_is_linear() -> None:
    text = '{% set f = "%s" * 2048 %}{% set l = ("a" * 2048)|list %}' + "{{ f % l }}" * 200
    start = time.monotonic()
    tpl.analyze_template(text, Location("tokenizer_config.json", pointer="/chat_template"), Context("t"))
    assert time.monotonic() - start < 5


def test_lists_of_long_strings_are_not_turned_into_text() -> None:
    text = '{% set s = "a" * 4000 %}{% set l = [' + "s," * 4000 + "] %}" + "{{ l ~ 1 }}" * 200
    start = time.monotonic()
    tpl.analyze_template(text, Location("t"), Context("t"))
    assert time.monotonic() - start < 5


def test_unknown_printf_argument_is_not_the_text_none() -> None:
    import jinja2
    from jinja2 import nodes

    from aivet.analyzers.template_fold import TemplateResolver

    tree = jinja2.Environment().parse("{{ '__%s__' % x }}{{ '%s%s' % ('__', 'class__') }}")
    unknown, known = tree.find_all(nodes.Mod)
    resolver = TemplateResolver({})
    assert resolver.resolve(unknown) is None  # not '__None__'
    assert resolver.resolve(known) == "__class__"
