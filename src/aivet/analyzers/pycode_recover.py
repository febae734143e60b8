"""Reading remote-code source as Python would, and parsing what this interpreter's :mod:`ast` rejects.

:func:`decode_source` honours the PEP 263 coding cookie (so ``utf-7`` and ``unicode_escape``
tricks are decoded, not read as comments) and reports unusual or broken encodings. The rest
fails closed on syntax.

A file that does not parse under the scanner's Python may still import under the
user's: newer syntax (``type X = ...``, ``def f[T]()``, PEP 701 f-strings, t-strings,
``except A, B:``) parses on 3.12+ and runs there. An attacker who puts the payload
next to such syntax would otherwise pass as "does not parse, cannot run". So:

* :func:`parse_recovering` first rewrites the line at fault in its 3.11 spelling where
  there is one (``type X =`` to ``X =``, generics dropped, ``except (A, B):``, t-strings as
  f-strings, whose interpolations run the same way); failing that it blanks the top-level
  block around the error (lines kept, so line numbers stay true; plain imports kept, so
  names still resolve) and parses again, a bounded number of times, so that everything
  outside the unparsable blocks is still analysed;
* :func:`risky_words` looks at the text that could not be parsed for the names
  that code execution, processes, network and deserialisation need, so the finding
  for the unparsed part is high when those are there.
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from dataclasses import dataclass, field

from aivet.analyzers.context import Context
from aivet.analyzers.pycode_calls import SAFE_ENCODINGS
from aivet.analyzers.pycode_decode import parse_quietly, slow_codec
from aivet.analyzers.pycode_rules import ENCODING, OBFUSCATION, SYNTAX_ERROR, Reporter
from aivet.analyzers.source import Source
from aivet.evidence import Severity

_LINE = re.compile(r"[^\r\n]*(?:\r\n|\n|\r)|[^\r\n]+$")
_IMPORT_LINE = re.compile(r"[ \t]*(import[ \t]+[\w., \t]+|from[ \t]+[\w.]+[ \t]+import[ \t]+[\w., \t]+)(\r\n|\n|\r)?$")
_CONTINUES = re.compile(r"(else|elif|except|finally|case)\b")  # at column 0 these continue the block above
# Newer syntax with a 3.11 spelling of the same meaning for these checks (line numbers kept):
# type X = ... -> X = ...; def f[T]() -> def f(); except A, B: -> except (A, B):; t'...' -> f'...'
_REWRITES = (
    (re.compile(r"^(\s*)type\s+(\w+)\s*(?:\[[^\]\n]*\])?\s*="), r"\1\2 ="),
    (re.compile(r"^(\s*(?:async\s+)?(?:def|class)\s+\w+)\s*\[[^\]\n]*\]"), r"\1"),
    (re.compile(r"^(\s*except\*?\s+)([^():\n]+,[^():\n]+?)(\s+as\s+\w+)?\s*:"), r"\1(\2)\3:"),
    (re.compile(r"(?<![\w'\"])([rR]?)[tT]([rR]?)(['\"])"), r"\1f\2\3"),
)
_RISKY = re.compile(
    r"(?<![\w.])(exec|eval|__import__|compile|getattr|globals|vars|chr)\s*\("
    r"|(__class__|__subclasses__|__globals__|__builtins__|__dict__)"
    r"|\b(subprocess|socket|ctypes|marshal|pickle|dill|pty|urllib|requests|httpx|builtins|__builtins__|runpy)\b"
    r"|\.(system|popen|Popen|spawn\w*|exec[lv]\w*|urlopen|urlretrieve|b64decode|decompress|check_output"
    r"|import_module)\b"
    r"|\.ssh\b|\.aws\b|huggingface/token|\.netrc\b")


_MAX_REWRITE_LINE = 4096  # longest line the newer-syntax rewrites are tried on
_MAX_MATCHES = 100_000  # matches looked at (the same few words repeated must not cost a pass per match)


@dataclass
class Recovered:
    """The outcome of :func:`parse_recovering`."""

    tree: ast.Module | None  # what parsed once the bad blocks were blanked (None: gave up)
    errors: list[tuple[int, str]] = field(default_factory=list)  # (line, message) of each syntax error
    skipped: list[tuple[int, int]] = field(default_factory=list)  # 1-based inclusive line ranges not analysed
    skipped_text: str = ""  # the text of those lines (bounded by the file size)


def _block(lines: list[str], index: int) -> tuple[int, int]:
    """The top-level block (0-based, end exclusive) holding line ``index``, with its decorators."""
    def top(i: int) -> bool:
        s = lines[i]
        return bool(s) and not s[0].isspace() and not s.startswith("#")

    start = min(index, len(lines) - 1)
    while start > 0 and not top(start):
        start -= 1
    while start > 0 and top(start) and _CONTINUES.match(lines[start]):  # 'else:' belongs to the 'if' above
        start -= 1
        while start > 0 and not top(start):
            start -= 1
    while start > 0 and lines[start - 1].startswith("@"):
        start -= 1
    end = index + 1
    while end < len(lines) and not (top(end) and not _CONTINUES.match(lines[end])):
        end += 1
    return start, end


def parse_recovering(text: str, max_attempts: int) -> Recovered:
    """Parse ``text``; on syntax errors blank the blocks at fault and try again, at most ``max_attempts`` times.

    Raises only what :func:`ast.parse` raises besides :class:`SyntaxError` (``RecursionError``,
    ``MemoryError``, ``ValueError``) on the first attempt; later ones give up quietly.
    """
    try:
        return Recovered(parse_quietly(text))
    except SyntaxError as exc:
        first = exc
    result = Recovered(None, [(first.lineno or 1, str(first.msg))])
    lines = _LINE.findall(text)
    if not lines:
        return result
    error: SyntaxError = first
    skipped: list[str] = []
    rewritten: set[int] = set()
    for _ in range(max_attempts):
        index = min(max(0, (error.lineno or 1) - 1), len(lines) - 1)
        if index not in rewritten:
            rewritten.add(index)
            new = _rewrite(lines[index])
            if new != lines[index]:
                lines[index] = new  # a newer spelling: try it in the 3.11 spelling before skipping the block
                retry = _attempt(lines, result)
                if retry is None:
                    break
                error = retry
                continue
        start, end = _block(lines, index)
        if all(not line.strip() for line in lines[start:end]):
            break  # nothing left to blank there: no progress possible
        again = (start + 1, end) in result.skipped  # the kept imports themselves were at fault
        if not again:
            skipped.extend(lines[start:end])
            result.skipped.append((start + 1, end))
        for i in range(start, end):
            # Plain imports in the skipped block are kept (at column 0): names used elsewhere still resolve.
            lines[i] = lines[i].lstrip() if _IMPORT_LINE.match(lines[i]) and not again else "\n"
        retry = _attempt(lines, result)
        if retry is None:
            break
        error = retry
    result.skipped_text = "".join(skipped)
    return result


def _attempt(lines: list[str], result: Recovered) -> SyntaxError | None:
    """Parse ``lines`` as they now stand into ``result``: the new error, or None when there is
    nothing more to try (the parse succeeded, or failed in a way no rewrite mends)."""
    try:
        result.tree = parse_quietly("".join(lines))
    except SyntaxError as exc:
        result.errors.append((exc.lineno or 1, str(exc.msg)))
        return exc
    except (RecursionError, MemoryError, ValueError):
        pass
    return None


def _rewrite(line: str) -> str:
    if len(line) > _MAX_REWRITE_LINE:  # the except pattern backtracks: keep it to lines people write
        return line
    for pattern, replacement in _REWRITES:
        line = pattern.sub(replacement, line)
    return line


def risky_words(text: str, limit: int = 12) -> list[str]:
    """Names in ``text`` that code execution, processes, network or credential theft use (first ``limit``)."""
    found: list[str] = []
    for i, m in enumerate(_RISKY.finditer(text)):
        if i >= _MAX_MATCHES:
            break
        word = next(g for g in m.groups() if g) if any(m.groups()) else m.group(0)
        if word not in found:
            found.append(word)
            if len(found) >= limit:
                break
    return found


def report_syntax(report: Reporter, recovered: Recovered, text: str, truncated: bool) -> None:
    """Fail closed: medium for code not analysed, high when it names dangerous things, low when all was read."""
    line, msg = recovered.errors[0]
    hint = " (the file was truncated at the size limit)" if truncated else ""
    unparsed = recovered.skipped_text if recovered.tree is not None else text
    words = risky_words(unparsed)
    skipped = sum(b - a + 1 for a, b in recovered.skipped)
    if recovered.tree is None:
        part, sev = "nothing was analysed", Severity.MEDIUM
    elif skipped:
        part, sev = f"{skipped} line{'s' if skipped != 1 else ''} around it were not analysed", Severity.MEDIUM
    else:
        part, sev = "analysed with newer syntax read in its Python 3.11 spelling", Severity.LOW
    report.add(SYNTAX_ERROR, line, f"not valid Python for this parser: {msg}{hint}; {part}"
               + (f"; the unparsed text uses {', '.join(words)}" if words else ""),
               severity=Severity.HIGH if words else sev, error=msg, errors=len(recovered.errors),
               skipped_lines=[list(r) for r in recovered.skipped[:10]], names=words)


def decode_source(data: bytes, source: Source, ctx: Context) -> tuple[str, str]:
    """Decode as Python would (PEP 263 coding cookie), replacing what does not decode; returns text and a note.

    An unusual declared encoding (utf-7, unicode_escape: both hide code in what looks like comments or
    escapes) is an obfuscation finding; the text is still decoded with it, so the hidden code is analysed.
    """
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
    except (SyntaxError, LookupError):
        encoding = "utf-8"
    if encoding.lower().replace("_", "-") not in SAFE_ENCODINGS:
        ctx.add(OBFUSCATION.finding(ctx.location(source, line=1),
                                    f"source declares the unusual encoding {encoding!r}, a known way to hide "
                                    "code from readers", encoding=encoding))
    if slow_codec(encoding):
        ctx.add(ENCODING.finding(ctx.location(source), f"{encoding} is too slow to decode untrusted input; read as "
                                 "UTF-8 with undecodable bytes replaced", encoding=encoding))
        return data.decode("utf-8", "replace"), f"not decoded as {encoding}"
    try:
        return data.decode(encoding), ""
    except (UnicodeDecodeError, LookupError):
        text = data.decode("utf-8", "replace")
        ctx.add(ENCODING.finding(ctx.location(source), f"not valid {encoding}; undecodable bytes replaced",
                                 encoding=encoding))
        return text, f"not valid {encoding}"
