"""Parsing and matching filters off the event loop.

Both are bounded (`parser.MAX_FILTERS_LENGTH`, RE2's linear-time matching), but
parsing is pure Python and a list may hold thousands of objects: services run
them in a worker thread so that no filter delays other calls. RE2 releases the
GIL while it compiles and matches.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import TypeVar

from pycontainerd.filters.matchers import Adaptor, Filter
from pycontainerd.filters.parser import parse_all

T = TypeVar("T")
#: Filters this short (characters in all) parse in well under a millisecond: no thread hop.
INLINE_LENGTH = 128


async def parse_all_off_loop(filter_strs: Iterable[str]) -> Filter:
    """`parse_all` in a worker thread (inline for short filters, such as none)."""
    strings = list(filter_strs)
    if sum(len(s) + 1 for s in strings) <= INLINE_LENGTH:
        return parse_all(strings)
    return await asyncio.to_thread(parse_all, strings)


def select_now(
    filter_strs: Iterable[str], items: Iterable[T], adaptor: Callable[[T], Adaptor]
) -> list[T]:
    """The items that match any of the filter strings (all of them without filters)."""
    match = parse_all(filter_strs)
    return [item for item in items if match.match(adaptor(item))]


async def select(
    filter_strs: Iterable[str], items: Iterable[T], adaptor: Callable[[T], Adaptor]
) -> list[T]:
    """`select_now` in a worker thread (inline without filters: everything matches)."""
    strings = list(filter_strs)
    if not strings:
        return list(items)
    return await asyncio.to_thread(select_now, strings, list(items), adaptor)
