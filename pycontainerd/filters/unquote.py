"""Decode a quoted filter string (Go string-literal escapes, three quote marks).

Accepted escapes: ``\\a \\b \\f \\n \\r \\t \\v \\\\``, the active quote mark,
``\\ooo`` (octal byte), ``\\xhh`` (byte), ``\\uhhhh`` and ``\\Uhhhhhhhh``
(code points). Byte escapes may build multi-byte UTF-8 sequences; the result
must be valid UTF-8.
"""

from __future__ import annotations

_SIMPLE_ESCAPES = {
    "a": "\a",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "v": "\v",
    "\\": "\\",
}
_HEX_WIDTHS = {"x": 2, "u": 4, "U": 8}
_OCTAL_DIGITS = "01234567"
_HEX_DIGITS = "0123456789abcdefABCDEF"


class UnquoteError(ValueError):
    """A quoted literal is malformed; ``offset`` is relative to its opening quote."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.offset = offset


def unquote(literal: str) -> str:
    """Return the text between the quotes of ``literal`` with escapes decoded."""
    if len(literal) < 2 or literal[0] != literal[-1]:
        raise UnquoteError("quote marks do not match", 0)
    quote = literal[0]
    out = bytearray()
    i = 1
    end = len(literal) - 1
    while i < end:
        ch = literal[i]
        if ch == quote or ch == "\n":
            raise UnquoteError(f"unescaped {ch!r} inside quotes", i)
        if ch != "\\":
            out += ch.encode()
            i += 1
            continue
        i = _decode_escape(literal, i, end, quote, out)
    try:
        return out.decode()
    except UnicodeDecodeError as exc:
        raise UnquoteError("quoted text is not valid UTF-8", 0) from exc


def _decode_escape(literal: str, i: int, end: int, quote: str, out: bytearray) -> int:
    """Decode the escape starting at the backslash ``literal[i]``; return the next index."""
    if i + 1 >= end:
        raise UnquoteError("backslash at end of quoted text", i)
    kind = literal[i + 1]
    if kind in _SIMPLE_ESCAPES:
        out += _SIMPLE_ESCAPES[kind].encode()
        return i + 2
    if kind == quote:
        out += kind.encode()
        return i + 2
    if kind in _OCTAL_DIGITS:
        digits = literal[i + 1 : i + 4]
        if len(digits) < 3 or any(d not in _OCTAL_DIGITS for d in digits) or int(digits, 8) > 255:
            raise UnquoteError("illegal octal escape (want \\ooo, at most \\377)", i)
        out.append(int(digits, 8))
        return i + 4
    if kind in _HEX_WIDTHS:
        width = _HEX_WIDTHS[kind]
        digits = literal[i + 2 : i + 2 + width]
        if len(digits) < width or i + 2 + width > end or any(d not in _HEX_DIGITS for d in digits):
            raise UnquoteError(f"illegal \\{kind} escape (want {width} hex digits)", i)
        value = int(digits, 16)
        if kind == "x":
            out.append(value)
        elif value > 0x10FFFF or 0xD800 <= value <= 0xDFFF:
            raise UnquoteError(f"\\{kind}{digits} is not a valid code point", i)
        else:
            out += chr(value).encode()
        return i + 2 + width
    raise UnquoteError(f"illegal escape sequence \\{kind}", i)
