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


def test_lists_read_inline_and_containers_filter_off_the_loop(tmp_path: Path) -> None:
    """A List costs no hop to the database thread; a filtered containers List still
    parses and matches its filters off the loop (filters.select's worker)."""
    from pycontainerd import filters
    from pycontainerd.content.store import LocalContentStore
    from pycontainerd.metadata.containers import AnyValue, Container, RuntimeInfo, container_adaptor
    from pycontainerd.metadata.placement import Placement, placement_of
    from pycontainerd.metadata.store import MetadataStore

    metadata = MetadataStore(Database(tmp_path / "meta.db"), LocalContentStore(tmp_path / "c"))
    try:
        for method in (
            metadata.namespaces.list,
            metadata.containers.list,
            metadata.images.list,
            metadata.leases.list,
            metadata.leases.list_resources,
        ):
            assert placement_of(method) is Placement.LOOKUP, method
        spec = AnyValue("types.containerd.io/opencontainers/runtime-spec/1/Spec", b"{}")
        web = Container(id="c1", runtime=RuntimeInfo("r"), spec=spec, labels={"tier": "web"})
        metadata.containers.create("default", web)
        metadata.containers.create(
            "default", Container(id="c2", runtime=RuntimeInfo("r"), spec=spec)
        )
        threads: list[str] = []

        def adaptor(container: Container) -> filters.Adaptor:
            threads.append(threading.current_thread().name)
            return container_adaptor(container)

        async def main() -> tuple[list[str], str]:
            found = await call(metadata.containers.list, "default")
            chosen = await filters.select(["labels.tier==web"], found, adaptor)
            return [c.id for c in chosen], threading.current_thread().name

        ids, loop_thread = asyncio.run(main())
    finally:
        metadata.close()
    assert ids == ["c1"]
    assert threads and loop_thread not in threads
