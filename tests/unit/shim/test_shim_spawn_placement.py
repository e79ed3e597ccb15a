"""A new pool shim and the containers placed beside it: nobody joins a shim that is not there yet.

``start`` binds a new pool shim's socket before the shim exists. If the shim then
fails to start (no zygote: the daemon falls back to the ``start`` command, which
binds again), its socket and member entries go. A container placed on that shim
in between would be sent to a socket that is gone ("cannot connect", or "ttrpc:
closed" when its connection sat in the dropped backlog). These tests force that
interleaving with a stand-in for the shim spawn.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pycontainerd import errdefs
from pycontainerd.shim_v2 import pool
from pycontainerd.shim_v2 import start as shim_start
from pycontainerd.shim_v2.contract import (
    POOL_IDLE_ENV,
    POOL_SIZE_ENV,
    SOCKET_DIR_ENV,
    NoZygote,
)
from pycontainerd.shim_v2.flags import ShimFlags
from pycontainerd.unix_socket import listening

#: Only a guard against a hang: the interleaving is driven by events, not by time.
HANG_GUARD = 30.0


def _flock_waiters(lock_file: Path) -> int:
    """How many flock(2) calls wait for `lock_file` right now (from /proc/locks)."""
    inode = os.stat(lock_file).st_ino
    waiting = 0
    for line in Path("/proc/locks").read_text().splitlines():
        fields = line.split()
        if "->" in fields and fields[fields.index("->") + 1] == "FLOCK":
            device_inode = fields[fields.index("->") + 5]
            waiting += int(device_inode.rsplit(":", 1)[1]) == inode
    return waiting


class FakeShims:
    """Stands in for `spawn_shim`: a shim that "starts" holds its listener, like a real one."""

    def __init__(self) -> None:
        self.listeners: list[socket.socket] = []
        self.before_spawn: dict[str, Callable[[], None]] = {}

    def spawn(self, flags: ShimFlags, listener: socket.socket, *_args: Any, **_kw: Any) -> int:
        hook = self.before_spawn.pop(flags.id, None)
        if hook is not None:
            hook()
        self.listeners.append(listener.dup())
        return 4000 + len(self.listeners)

    def close(self) -> None:
        for listener in self.listeners:
            listener.close()


@pytest.fixture
def shims(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeShims]:
    fake = FakeShims()
    monkeypatch.setattr(shim_start, "spawn_shim", fake.spawn)
    yield fake
    fake.close()


def _starter(tmp_path: Path) -> Callable[[str], str]:
    env = {SOCKET_DIR_ENV: str(tmp_path / "s"), POOL_SIZE_ENV: "8", POOL_IDLE_ENV: "0"}

    def start(container_id: str) -> str:
        bundle = tmp_path / container_id
        bundle.mkdir()
        flags = ShimFlags(namespace="ns", id=container_id, address="/d.sock")
        return shim_start.start(flags, str(bundle), env, fork_zygote=False)

    return start


def test_a_container_placed_while_a_new_shim_fails_to_start_gets_a_live_shim(
    tmp_path: Path, shims: FakeShims
) -> None:
    start = _starter(tmp_path)
    lock_file = tmp_path / "s" / pool.LOCK_FILE
    second: dict[str, Any] = {}
    second_done = threading.Event()

    def place_second() -> None:
        try:
            second["address"] = start("second")
        except BaseException as exc:  # noqa: BLE001 - reported by the test below
            second["error"] = exc
        finally:
            second_done.set()

    def then_fail() -> None:
        # "first" has bound its new shim's socket; "second" is placed now: on the
        # old code it joins that socket at once, on ours it waits for the outcome.
        worker = threading.Thread(target=place_second)
        worker.start()
        deadline = time.monotonic() + HANG_GUARD
        while not second_done.is_set() and _flock_waiters(lock_file) == 0:
            assert time.monotonic() < deadline, "the second placement neither ran nor waited"
            time.sleep(0.005)
        raise NoZygote("no shim zygote (the test's)")

    shims.before_spawn["first"] = then_fail
    with pytest.raises(NoZygote):
        start("first")
    assert second_done.wait(HANG_GUARD)
    assert "error" not in second, second.get("error")

    path = second["address"].removeprefix(shim_start.UNIX_PREFIX)
    assert listening(path), "the second container was sent to a shim that never started"
    assert pool.recent_members(path) == ["second"]
    assert (tmp_path / "second" / shim_start.PID_FILE).read_text() == "4001"


def test_a_container_joining_a_started_shim_is_told_its_pid(
    tmp_path: Path, shims: FakeShims
) -> None:
    start = _starter(tmp_path)
    assert start("first") == start("second")
    assert (tmp_path / "second" / shim_start.PID_FILE).read_text() == "4001"
    path = start("third").removeprefix(shim_start.UNIX_PREFIX)
    assert sorted(pool.recent_members(path)) == ["first", "second", "third"]


def test_a_failed_spawn_leaves_nothing_behind(tmp_path: Path, shims: FakeShims) -> None:
    start = _starter(tmp_path)

    def fail() -> None:
        raise NoZygote("no shim zygote (the test's)")

    shims.before_spawn["first"] = fail
    with pytest.raises(NoZygote):
        start("first")
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == [pool.LOCK_FILE]
    # The placement lock is free again: the next container starts a shim of its own.
    address = start("second")
    assert listening(address.removeprefix(shim_start.UNIX_PREFIX))


def test_a_bad_container_id_fails_before_a_shim_is_started(
    tmp_path: Path, shims: FakeShims
) -> None:
    with pytest.raises(errdefs.InvalidArgument, match="cannot name a shim member"):
        _starter(tmp_path)(".hidden")
    assert shims.listeners == [], "no shim was started"
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == [pool.LOCK_FILE]
