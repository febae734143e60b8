"""Regression tests for bounds fixed during the analyzer split (proposed: tests/test_bounds_regressions.py)."""

from __future__ import annotations

import dataclasses
import encodings.punycode as punycode
import io
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
from aivet.limits import DEFAULT_LIMITS
from tests.fixtures.work import HANG_TIMEOUT, growth, memory_peak, python_lines


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
