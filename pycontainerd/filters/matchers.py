"""The filter tree: selectors combined with AND (All) and OR (Any)."""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from pycontainerd.filters.regex import Pattern

Adaptor = Callable[[Sequence[str]], tuple[str, bool]]
"""Maps a field path (``["labels", "a.b"]``) to ``(value, present)``."""


class Filter(Protocol):
    """Anything that can decide whether an object (seen via an adaptor) matches."""

    def match(self, adaptor: Adaptor) -> bool: ...


class Operator(enum.Enum):
    PRESENT = "?"
    EQUAL = "=="
    NOT_EQUAL = "!="
    MATCHES = "~="


@dataclass(frozen=True)
class Selector:
    """One ``<fieldpath>[<operator><value>]`` term.

    Semantics follow containerd: ``==`` needs the field present, while ``!=``
    and ``~=`` compare against the value even when it is absent (as "").
    ``~=`` searches anywhere in the value (unanchored), like Go's MatchString.
    """

    fieldpath: tuple[str, ...]
    operator: Operator = Operator.PRESENT
    value: str = ""
    regex: Pattern | None = None

    def match(self, adaptor: Adaptor) -> bool:
        value, present = adaptor(list(self.fieldpath))
        if self.operator is Operator.PRESENT:
            return present
        if self.operator is Operator.EQUAL:
            return present and value == self.value
        if self.operator is Operator.NOT_EQUAL:
            return value != self.value
        assert self.regex is not None, "a ~= selector is built with its compiled regex"
        return self.regex.search(value) is not None


@dataclass(frozen=True)
class All:
    """Matches when every member matches (the ``,`` of one filter string)."""

    filters: tuple[Filter, ...]

    def match(self, adaptor: Adaptor) -> bool:
        return all(f.match(adaptor) for f in self.filters)


@dataclass(frozen=True)
class Any:
    """Matches when at least one member matches (several filter strings)."""

    filters: tuple[Filter, ...]

    def match(self, adaptor: Adaptor) -> bool:
        return any(f.match(adaptor) for f in self.filters)


class _Always:
    def match(self, adaptor: Adaptor) -> bool:
        return True

    def __repr__(self) -> str:
        return "ALWAYS"


ALWAYS: Filter = _Always()
"""The filter of an empty filter string or an empty list: matches everything."""
