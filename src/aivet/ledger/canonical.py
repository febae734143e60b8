"""Canonical JSON (RFC 8785, the JSON Canonicalization Scheme) for ledger entries.

The hash of an entry must not depend on who serialised it, so entries are
stored as their JCS form: object members sorted by the UTF-16 code units of
their names, no insignificant whitespace, minimal string escaping and
ECMAScript number formatting.

The common case (only strings, integers, booleans, null, lists and string-keyed
objects, with no character at or above U+E000) is exactly what the C-accelerated
``json.dumps(sort_keys=True)`` produces, so that path is taken when a cheap
check proves it applies; anything else goes through the complete pure-Python
encoder below. Both produce identical bytes where both apply (tested).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

from aivet.ledger.errors import LedgerUsageError

_orjson: Any
try:  # optional: several times faster than the standard library; both paths give identical bytes
    import orjson as _orjson
except ImportError:  # pragma: no cover - depends on the environment
    _orjson = None

__all__ = ["canonical_json", "CanonicalError"]

# ECMAScript's Number.prototype.toString is exact for integers up to 2**53.
_MAX_SAFE_INT = 2**53 - 1
_MAX_DEPTH = 500  # below Python's recursion limit; json.dumps copes with the same depth


class CanonicalError(LedgerUsageError):
    """A value has no canonical JSON form (NaN, infinity, a huge integer, a lone surrogate, ...)."""


def canonical_json(value: Any) -> bytes:
    """Return the RFC 8785 canonical UTF-8 encoding of a JSON-like ``value``."""
    fast = _fast(value)
    if fast is not None:
        return fast
    parts: list[str] = []
    try:
        _encode(value, parts, 0)
    except RecursionError:
        raise CanonicalError(f"value nested deeper than {_MAX_DEPTH} levels") from None
    try:
        return "".join(parts).encode("utf-8")
    except UnicodeEncodeError as exc:
        raise CanonicalError("a string contains a lone surrogate, which JSON text cannot carry") from exc


class _SawFloat(Exception):
    pass


class _BigInt(Exception):
    pass


def _int_checked(text: str) -> int:
    # Short digit strings cannot exceed 2**53; only long ones pay for the comparison.
    if len(text) > 15 and abs(int(text)) > _MAX_SAFE_INT:
        raise _BigInt
    return int(text)


def _float_seen(_: str) -> Any:
    raise _SawFloat


def _fast(value: Any) -> bytes | None:
    """The serializer's output when it is provably canonical, else ``None``."""
    if _orjson is not None:
        try:
            # orjson refuses non-string keys and integers beyond 2**53 itself, and sorts keys by code point.
            raw: bytes = _orjson.dumps(value, option=_orjson.OPT_SORT_KEYS | _orjson.OPT_STRICT_INTEGER)
        except (TypeError, ValueError, RecursionError):
            return None
        text = raw.decode("utf-8")  # orjson emits valid UTF-8 (it refuses lone surrogates)
    else:
        try:
            text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
            raw = text.encode("utf-8")
        except (TypeError, ValueError, RecursionError, UnicodeEncodeError):
            return None  # mixed key types, NaN, unknown types, lone surrogates: the full encoder judges
    if not text.isascii() and max(text) >= "\ue000":  # isascii() is O(1) on CPython's compact strings
        return None  # key order by code point may differ from UTF-16 order
    try:
        # The text is then the canonical form of what it parses back to (every escape both serializers
        # write is the one RFC 8785 prescribes); floats need ECMAScript formatting, so they take the
        # full encoder; equality shows that no key was coerced and nothing was flattened (tuples aside).
        back = json.loads(text, parse_float=_float_seen, parse_int=_int_checked)
        if back != value:
            return None
    except (_SawFloat, _BigInt, ValueError, RecursionError):
        return None
    return raw


def _encode(value: Any, out: list[str], depth: int) -> None:
    if depth > _MAX_DEPTH:
        raise CanonicalError(f"value nested deeper than {_MAX_DEPTH} levels")
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, int):
        if abs(value) > _MAX_SAFE_INT:
            raise CanonicalError(f"integer {value} is outside the range JSON numbers hold exactly (2**53)")
        out.append(str(int(value)))
    elif isinstance(value, float):
        out.append(_number(value))
    elif isinstance(value, str):
        out.append(json.dumps(value, ensure_ascii=False))
    elif isinstance(value, Mapping):
        keys = list(value.keys())
        if not all(isinstance(k, str) for k in keys):
            raise CanonicalError("object member names must be strings")
        keys.sort(key=lambda k: k.encode("utf-16-be", "surrogatepass"))
        out.append("{")
        for i, key in enumerate(keys):
            if i:
                out.append(",")
            out.append(json.dumps(key, ensure_ascii=False))
            out.append(":")
            _encode(value[key], out, depth + 1)
        out.append("}")
    elif isinstance(value, Sequence) and not isinstance(value, (bytes, bytearray)):
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            _encode(item, out, depth + 1)
        out.append("]")
    else:
        raise CanonicalError(f"{type(value).__name__} has no JSON form")


def _number(x: float) -> str:
    """Format a float as ECMAScript's Number.prototype.toString does (RFC 8785 section 3.2.2.3)."""
    if math.isnan(x) or math.isinf(x):
        raise CanonicalError("NaN and infinity have no JSON form")
    if x == 0:
        return "0"
    # repr gives the shortest round-tripping digits; only the layout differs from ES.
    sign = "-" if x < 0 else ""
    mantissa, _, exp_text = repr(abs(x)).partition("e")
    exponent = int(exp_text) if exp_text else 0
    whole, _, frac = mantissa.partition(".")
    digits = (whole + frac).lstrip("0")
    # decimal exponent n such that value = 0.d1d2... * 10**n
    point = len(whole) + exponent if whole != "0" else exponent - (len(frac) - len(frac.lstrip("0")))
    digits = digits.rstrip("0") or "0"
    k = len(digits)
    if k <= point <= 21:
        return sign + digits + "0" * (point - k)
    if 0 < point <= 21:
        return sign + digits[:point] + "." + digits[point:]
    if -6 < point <= 0:
        return sign + "0." + "0" * (-point) + digits
    e = point - 1
    exp_part = ("e+" if e >= 0 else "e-") + str(abs(e))
    if k == 1:
        return sign + digits + exp_part
    return sign + digits[0] + "." + digits[1:] + exp_part
