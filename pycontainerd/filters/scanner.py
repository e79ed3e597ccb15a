"""Tokens of the filter language, with their byte-independent positions.

The scanner is context sensitive in one way, as containerd's is: after an
operator, the next bare word is a *value* (almost any printable text up to a
comma or space) rather than a *field* (``[A-Za-z0-9_]+``).
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass

QUOTE_CHARS = frozenset('"/|')
"""``"`` quotes fields and values; ``/`` and ``|`` are extra quotes for regexes."""

_SEPARATOR_CHARS = frozenset(",.")
UNEXPECTED_CHARACTER = "unexpected character"
_OPERATOR_CHARS = frozenset("=!~")


class TokenKind(enum.Enum):
    EOF = "end of input"
    FIELD = "field"
    VALUE = "value"
    QUOTED = "quoted"
    SEPARATOR = "separator"
    OPERATOR = "operator"
    ILLEGAL = "illegal"


@dataclass(frozen=True)
class Token:
    kind: TokenKind
    text: str
    pos: int
    error: str = ""
    """Why an ILLEGAL token is illegal."""

    @property
    def text_is_unexpected(self) -> bool:
        """True for a character that is simply out of place (not a broken literal)."""
        return self.kind is TokenKind.ILLEGAL and self.error == UNEXPECTED_CHARACTER


def is_field_char(ch: str) -> bool:
    return ch == "_" or ("a" <= ch <= "z") or ("A" <= ch <= "Z") or ("0" <= ch <= "9")


def _is_value_char(ch: str) -> bool:
    return ch != "," and not ch.isspace() and ch.isprintable()


class Scanner:
    """Splits a filter string into tokens on demand."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self._expect_value = False

    def significant_pos(self) -> int:
        """Position of the next non-space character (len(text) at the end)."""
        pos = self.pos
        while pos < len(self.text) and self.text[pos].isspace():
            pos += 1
        return pos

    def peek_significant(self) -> str:
        """The next non-space character ("" at the end), consuming nothing."""
        pos = self.significant_pos()
        return self.text[pos] if pos < len(self.text) else ""

    def scan(self) -> Token:
        self._skip_spaces()
        start = self.pos
        if start >= len(self.text):
            return Token(TokenKind.EOF, "", start)
        ch = self.text[start]
        if ch == "\x00":
            return Token(TokenKind.ILLEGAL, ch, start, "unexpected null")
        if ch in QUOTE_CHARS:
            return self._scan_quoted(ch)
        if ch in _SEPARATOR_CHARS:
            self.pos += 1
            self._expect_value = False
            return Token(TokenKind.SEPARATOR, ch, start)
        if ch in _OPERATOR_CHARS:
            self._consume_while(lambda c: c in _OPERATOR_CHARS)
            self._expect_value = True
            return Token(TokenKind.OPERATOR, self.text[start : self.pos], start)
        if self._expect_value and _is_value_char(ch):
            self._consume_while(_is_value_char)
            self._expect_value = False
            return Token(TokenKind.VALUE, self.text[start : self.pos], start)
        if is_field_char(ch):
            self._consume_while(is_field_char)
            return Token(TokenKind.FIELD, self.text[start : self.pos], start)
        self.pos += 1
        return Token(TokenKind.ILLEGAL, ch, start, UNEXPECTED_CHARACTER)

    def _skip_spaces(self) -> None:
        self.pos = self.significant_pos()

    def _consume_while(self, accept: Callable[[str], bool]) -> None:
        while self.pos < len(self.text) and accept(self.text[self.pos]):
            self.pos += 1

    def _scan_quoted(self, quote: str) -> Token:
        """Find the closing quote; escapes are checked later, when unquoting."""
        start = self.pos
        i = start + 1
        while i < len(self.text):
            ch = self.text[i]
            if ch == "\n":
                break
            if ch == "\\":
                i += 2
                continue
            if ch == quote:
                self.pos = i + 1
                return Token(TokenKind.QUOTED, self.text[start : self.pos], start)
            i += 1
        self.pos = len(self.text)
        return Token(TokenKind.ILLEGAL, self.text[start:], start, "quoted literal not terminated")
