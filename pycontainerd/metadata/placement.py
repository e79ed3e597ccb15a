"""Where a store's method runs when an async caller calls it: the store decides.

A store marks each method with how it touches the world, and async callers
(the gRPC services, the CRI plugin) go through :func:`call` with the bound
method, never choosing a thread themselves:

- ``@lookup``: a read that writes nothing and waits on nothing but SQLite
  (a point lookup, or a namespace's rows for a List with the filters applied
  by the caller, off the loop); runs inline on the event loop when the
  database is idle (a hop to the database thread costs ~0.13 ms of CPU, as
  much as such a read), else on the database thread (``Database.read``);
- unmarked: database work, on the database thread (``Database.run``), the
  one writer SQLite sees;
- ``@in_worker``: file-system work (snapshot directories, mounts, layer
  files) that takes its own locks; in a worker thread, so neither the event
  loop nor the database waits for the disk.
"""

from __future__ import annotations

import asyncio
import enum
import functools
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

from pycontainerd.metadata.db import Database

P = ParamSpec("P")
T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])

_ATTRIBUTE = "__store_placement__"


class Placement(enum.Enum):
    LOOKUP = "lookup"
    DATABASE = "database"
    WORKER = "worker"


def _marked(placement: Placement) -> Callable[[F], F]:
    def mark(fn: F) -> F:
        setattr(fn, _ATTRIBUTE, placement)
        return fn

    return mark


lookup = _marked(Placement.LOOKUP)
in_worker = _marked(Placement.WORKER)


def placement_of(fn: Callable[..., Any]) -> Placement:
    # Bound methods pass attribute reads through to their function.
    return getattr(fn, _ATTRIBUTE, Placement.DATABASE)


async def call(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Run the store method ``fn`` where its store says it runs.

    ``fn`` is a bound method of a store; database work goes to that store's ``db``.
    """
    placement = placement_of(fn)
    if placement is Placement.WORKER:
        return await asyncio.to_thread(fn, *args, **kwargs)
    db: Database = fn.__self__.db  # type: ignore[attr-defined]  # a store's bound method
    target = functools.partial(fn, **kwargs) if kwargs else fn
    if placement is Placement.LOOKUP:
        return await db.read(target, *args)
    return await db.run(target, *args)
