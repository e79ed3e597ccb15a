"""Regular expressions of ``~=`` selectors: RE2, as containerd's Go filters use.

Python's ``re`` backtracks: ``(a+)+$`` against a long run of "a" takes
exponential time, and one such filter used to stall the daemon for seconds.
RE2 matches in time linear in the input and refuses what it cannot do so
(backreferences, lookaround), like Go's ``regexp``. What is left to bound is the
pattern itself: its nesting (Go refuses more than `MAX_NESTING` levels) and the
memory of its compiled program (`MAX_PROGRAM_MEMORY`; compiling the refused ones
would take seconds).
"""

from __future__ import annotations

from typing import Protocol

import re2

#: Go's regexp/syntax refuses expressions nested deeper than this.
MAX_NESTING = 1000
#: RE2's memory budget for one compiled expression (its default is 8 MiB).
MAX_PROGRAM_MEMORY = 256 << 10


class Pattern(Protocol):
    """What a selector needs of a compiled expression."""

    def search(self, text: str) -> object | None: ...


class RegexError(ValueError):
    """The expression is not one RE2 accepts within the limits."""


def _options() -> re2.Options:
    options = re2.Options()
    options.max_mem = MAX_PROGRAM_MEMORY
    options.log_errors = False  # errors are reported to the client, not to stderr
    return options


_OPTIONS = _options()


def nesting(pattern: str) -> int:
    """How deep groups nest in `pattern` (escapes and character classes skipped)."""
    depth = deepest = 0
    i, in_class = 0, False
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\":
            i += 2
            continue
        if in_class:
            in_class = ch != "]"
        elif ch == "[":
            in_class = True
            if pattern.startswith("]", i + 1) or pattern.startswith("^]", i + 1):
                i += 2 if pattern[i + 1] == "]" else 3  # a leading "]" is literal
                continue
        elif ch == "(":
            depth += 1
            deepest = max(deepest, depth)
        elif ch == ")":
            depth = max(0, depth - 1)
        i += 1
    return deepest


def compile_regex(pattern: str) -> Pattern:
    """Compile `pattern` for unanchored searches; RegexError when RE2 refuses it."""
    if nesting(pattern) > MAX_NESTING:
        raise RegexError(f"expression nests too deeply (more than {MAX_NESTING} levels)")
    try:
        return re2.compile(pattern, _OPTIONS)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else exc
        if isinstance(reason, bytes):
            reason = reason.decode(errors="replace")
        raise RegexError(str(reason)) from None
