"""Recursive-descent parser for containerd's filter grammar.

::

    selectors := selector ("," selector)*
    selector  := fieldpath [operator value]
    fieldpath := field ("." field)*
    field     := [A-Za-z0-9_]+ | "quoted"
    operator  := "==" | "!=" | "~="
    value     := quoted | bare text up to "," or space
    quoted    := "..." (any value) | /.../ or |...| (only after ~=)

Regular expressions are compiled with RE2 when parsing (so a bad one is
reported at once; see `regex`) and searched unanchored, like Go's MatchString.
The filters of one request are at most `MAX_FILTERS_LENGTH` characters in all:
containerd's are a few dozen, and parsing is pure Python.
"""

from __future__ import annotations

from collections.abc import Iterable

from pycontainerd.errdefs import InvalidArgument
from pycontainerd.filters.matchers import ALWAYS, All, Any, Filter, Operator, Selector
from pycontainerd.filters.regex import RegexError, compile_regex
from pycontainerd.filters.scanner import Scanner, Token, TokenKind
from pycontainerd.filters.unquote import UnquoteError, unquote


class FilterParseError(InvalidArgument):
    """A filter string does not parse; ``position`` indexes the offending character."""

    def __init__(self, message: str, position: int) -> None:
        super().__init__(message)
        self.position = position


#: Characters of all the filter strings of one request (each string counts one more).
MAX_FILTERS_LENGTH = 16 << 10

#: Characters of the filter quoted on each side of a parse error's position.
_CONTEXT = 60

_OPERATORS = {op.value: op for op in Operator if op is not Operator.PRESENT}
_REGEX_QUOTES = frozenset("/|")


def parse(filter_str: str) -> Filter:
    """Parse one filter string; all its selectors must match. "" matches everything.

    Raises InvalidArgument pointing at the offending character.
    """
    if filter_str == "":
        return ALWAYS
    return _Parser(filter_str).selectors()


def parse_all(filter_strs: Iterable[str]) -> Filter:
    """Parse several filter strings, any of which may match. No strings match everything.

    InvalidArgument when they are longer than `MAX_FILTERS_LENGTH` in all.
    """
    strings = list(filter_strs)
    length = sum(len(s) + 1 for s in strings)
    if length > MAX_FILTERS_LENGTH:
        raise InvalidArgument(
            f"filters too large: {len(strings)} filter strings of {length} characters in all, "
            f"more than {MAX_FILTERS_LENGTH}"
        )
    filters = tuple(parse(s) for s in strings)
    if not filters:
        return ALWAYS
    return Any(filters)


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.scanner = Scanner(text)

    def selectors(self) -> Filter:
        selectors: list[Filter] = [self.selector()]
        while True:
            ch = self.scanner.peek_significant()
            if ch == "":
                return All(tuple(selectors))
            if ch != ",":
                raise self.error(
                    self.scanner.significant_pos(),
                    f"unexpected input {ch!r}; separate selectors with ','",
                )
            self.scanner.scan()
            selectors.append(self.selector())

    def selector(self) -> Selector:
        fieldpath = self.fieldpath()
        if self.scanner.peek_significant() in ("", ","):
            return Selector(fieldpath)
        operator = self.operator()
        token = self.scanner.scan()
        value = self.value(token, allow_regex_quotes=operator is Operator.MATCHES)
        if operator is not Operator.MATCHES:
            return Selector(fieldpath, operator, value)
        try:
            regex = compile_regex(value)
        except RegexError as exc:
            raise self.error(token.pos, f"invalid regular expression: {exc}") from None
        return Selector(fieldpath, operator, value, regex)

    def fieldpath(self) -> tuple[str, ...]:
        fields = [self.field()]
        while self.scanner.peek_significant() == ".":
            self.scanner.scan()
            fields.append(self.field())
        return tuple(fields)

    def field(self) -> str:
        token = self.scanner.scan()
        if token.kind is TokenKind.FIELD:
            return token.text
        if token.kind is TokenKind.QUOTED:
            return self.unquote(token, allow_regex_quotes=False)
        raise self.unexpected(token, "expected a field name or a quoted field")

    def operator(self) -> Operator:
        token = self.scanner.scan()
        if token.kind is TokenKind.OPERATOR:
            if token.text in _OPERATORS:
                return _OPERATORS[token.text]
            raise self.error(token.pos, f'unsupported operator "{token.text}"')
        raise self.unexpected(
            token,
            'expected an operator ("=="|"!="|"~=") or ","; '
            'quote field names with other characters, as in labels."a-b"',
        )

    def value(self, token: Token, allow_regex_quotes: bool) -> str:
        if token.kind in (TokenKind.VALUE, TokenKind.FIELD):
            return token.text
        if token.kind is TokenKind.QUOTED:
            return self.unquote(token, allow_regex_quotes)
        raise self.unexpected(token, "expected a value or a quoted value")

    def unquote(self, token: Token, allow_regex_quotes: bool) -> str:
        if token.text[0] in _REGEX_QUOTES and not allow_regex_quotes:
            raise self.error(
                token.pos, f"quote mark {token.text[0]!r} is only allowed for ~= values; use '\"'"
            )
        try:
            return unquote(token.text)
        except UnquoteError as exc:
            raise self.error(token.pos + exc.offset, f"unquoting failed: {exc}") from exc

    def unexpected(self, token: Token, expectation: str) -> FilterParseError:
        if token.kind is TokenKind.ILLEGAL and not token.text_is_unexpected:
            return self.error(token.pos, token.error)
        found = "end of input" if token.kind is TokenKind.EOF else repr(token.text)
        return self.error(token.pos, f"{expectation}, found {found}")

    def error(self, pos: int, message: str) -> FilterParseError:
        """An InvalidArgument quoting the input with the bad character marked ``>|c|<``.

        Only `_CONTEXT` characters either side are quoted, however long the filter.
        """
        if pos < len(self.text):
            before, here, after = self.text[:pos], self.text[pos], self.text[pos + 1 :]
            where = f"[{_tail(before)} >|{here}|< {_head(after)}]"
        else:
            where = f"[{_tail(self.text)}] (at end)"
        return FilterParseError(f"filters: parse error at position {pos}: {where}: {message}", pos)


def _head(text: str) -> str:
    return text if len(text) <= _CONTEXT else text[:_CONTEXT] + "..."


def _tail(text: str) -> str:
    return text if len(text) <= _CONTEXT else "..." + text[-_CONTEXT:]
