"""Database.read: point lookups inline when idle, on the database thread when busy."""

from __future__ import annotations

import asyncio
import threading

from pycontainerd.metadata.db import Database


def test_read_runs_inline_when_idle_and_waits_its_turn_when_busy(tmp_path):
    db = Database(tmp_path / "meta.db")
    try:

        async def scenario() -> tuple[str, str]:
            loop_thread = threading.current_thread().name
            idle = await db.read(lambda: threading.current_thread().name)
            held, release = threading.Event(), threading.Event()

            def writer() -> None:
                with db.tx():
                    held.set()
                    release.wait(5)

            thread = threading.Thread(target=writer)
            thread.start()
            held.wait(5)
            pending = asyncio.ensure_future(db.read(lambda: threading.current_thread().name))
            await asyncio.sleep(0.05)
            assert not pending.done()  # the loop is free while the writer holds the database
            release.set()
            busy = await pending
            thread.join(5)
            assert idle == loop_thread
            return idle, busy

        idle, busy = asyncio.run(scenario())
        assert busy.startswith("metadata")  # ran on the database thread
        assert idle != busy
    finally:
        db.close()
