"""Store methods run where their store says: inline lookups, the database thread, a worker."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

from pycontainerd.metadata.db import Database
from pycontainerd.metadata.placement import call, in_worker, lookup


class _Store:
    def __init__(self, db: Database) -> None:
        self.db = db

    @lookup
    def find(self) -> str:
        return threading.current_thread().name

    def change(self, value: int, *, twice: bool = False) -> tuple[str, int]:
        return threading.current_thread().name, value * (2 if twice else 1)

    @in_worker
    def disk(self) -> str:
        return threading.current_thread().name


def test_each_method_runs_where_it_is_marked(tmp_path: Path) -> None:
    db = Database(tmp_path / "meta.db")

    async def main() -> tuple[str, tuple[str, int], str, str]:
        store = _Store(db)
        loop_thread = threading.current_thread().name
        return (
            await call(store.find),
            await call(store.change, 3, twice=True),
            await call(store.disk),
            loop_thread,
        )

    try:
        found, (changed_in, value), disk, loop_thread = asyncio.run(main())
    finally:
        db.close()
    assert found == loop_thread  # the database was idle: inline
    assert changed_in not in (loop_thread, disk) and value == 6
    assert disk != loop_thread
