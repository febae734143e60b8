"""Schema-less reader for protobuf text format (``.pbtxt``): nested field lists, nothing evaluated.

TensorFlow writes and reads SavedModels and GraphDefs in this form too (``saved_model.pbtxt`` is
loaded when ``saved_model.pb`` is absent). Without the schema every value stays a string or a
nested :class:`TextMessage`; the analyzers know which field names matter. Iterative, one pass over
the tokens, nesting bounded by ``max_depth``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from aivet.formats import FormatError, LimitExceeded

_TEXT_TOKEN = re.compile(r"""\s+|\#[^\n]*|(?P<str>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')"""
                         r"""|(?P<word>\[[^\]\n]*\]|[\w.+-]+)|(?P<punct>[{}<>:\[\],;])|(?P<bad>.)""")
_ESCAPE = re.compile(r"\\(x[0-9A-Fa-f]{1,2}|[0-7]{1,3}|u[0-9A-Fa-f]{4}|U[0-9A-Fa-f]{8}|.)", re.DOTALL)
_SIMPLE_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "a": "\a", "b": "\b", "f": "\f", "v": "\v", "?": "?"}


@dataclass(frozen=True)
class TextMessage:
    """One message of a text-format protobuf: its fields in order (values are str or TextMessage)."""

    offset: int
    fields: list[tuple[str, str | TextMessage]]

    def get(self, name: str) -> list[str | TextMessage]:
        """Every value of field ``name``, in order (repeated fields, or a field given twice)."""
        return [v for k, v in self.fields if k == name]

    def text(self, name: str) -> str:
        """The first string value of field ``name``, or ``""``."""
        return next((v for v in self.get(name) if isinstance(v, str)), "")


def _unescape(body: str) -> str:
    """A text-format string literal's value (C escapes; octal and hex escapes are bytes)."""
    def one(m: re.Match[str]) -> str:
        e = m.group(1)
        if e[0] == "x":
            return chr(int(e[1:], 16))
        if e[0] in "01234567":
            return chr(int(e, 8) & 0xFF)
        if e[0] in "uU" and len(e) > 1:
            return chr(min(int(e[1:], 16), 0x10FFFF))
        return _SIMPLE_ESCAPES.get(e, e)

    raw = _ESCAPE.sub(one, body)
    try:  # escapes of single bytes spell UTF-8 sequences
        return raw.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return raw


def parse_text_proto(text: str, tick: Callable[[], None] | None = None, max_depth: int = 64) -> TextMessage:
    """Parse protobuf text format into nested field lists, without a schema; iterative and bounded.

    ``tick`` is called once per token. Adjacent string literals are joined (``op: "Read" "File"`` is ``ReadFile``), as the protobuf
    text parser does. Raises :class:`FormatError` on text that is not protobuf text format.
    """
    root = TextMessage(0, [])
    # Per open message: the message, its closing bracket, and the (field, in_list) to restore after it.
    stack: list[tuple[TextMessage, str, str | None, bool]] = [(root, "", None, False)]
    field: str | None = None  # the field whose value comes next
    in_list = False
    pending: list[str] = []  # adjacent string literals of one value

    def finish(value: str | TextMessage) -> None:
        nonlocal field
        if field is not None:  # always set when a value is finished: strings and words check it first
            stack[-1][0].fields.append((field, value))
        if not in_list:
            field = None

    for m in _TEXT_TOKEN.finditer(text):
        if tick is not None:
            tick()  # the caller's deadline: a file of a million tokens is linear but long
        kind = m.lastgroup
        if kind is None:
            continue  # whitespace or a comment
        token = m.group()
        if kind == "str":
            if field is None:
                raise FormatError(f"string without a field name at {m.start()}", m.start())
            pending.append(_unescape(token[1:-1]))
            continue
        if pending:
            finish("".join(pending))
            pending = []
        if kind == "bad":
            raise FormatError(f"unexpected character {token!r} in protobuf text", m.start())
        if kind == "word":
            if field is None:
                field = token
            else:
                finish(token)  # a number, enum or bool
        elif token in "{<":
            if field is None:
                raise FormatError(f"message without a field name at {m.start()}", m.start())
            if len(stack) > max_depth:
                raise LimitExceeded("max_protobuf_depth", "protobuf text nests too deeply", m.start())
            child = TextMessage(m.start(), [])
            stack[-1][0].fields.append((field, child))
            stack.append((child, "}" if token == "{" else ">", field if in_list else None, in_list))
            field, in_list = None, False
        elif token in "}>":
            if len(stack) == 1 or stack[-1][1] != token or field is not None:
                raise FormatError(f"unbalanced {token!r} in protobuf text", m.start())
            _, _, field, in_list = stack.pop()
        elif token == "[":
            if field is None:
                raise FormatError(f"list without a field name at {m.start()}", m.start())
            in_list = True
        elif token == "]":
            if not in_list:
                raise FormatError(f"unbalanced ']' in protobuf text at {m.start()}", m.start())
            in_list, field = False, None
        # ':' separates a name from its value; ',' and ';' separate fields or list items
    if pending:
        finish("".join(pending))
    if len(stack) != 1 or field is not None:
        raise FormatError("protobuf text ends inside a message or before a value", len(text))
    return root


__all__ = ["TextMessage", "parse_text_proto"]
