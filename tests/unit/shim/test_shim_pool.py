"""Placing containers on pool shims and retiring idle shims (pycontainerd.shim_v2.pool)."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pycontainerd import errdefs
from pycontainerd.shim_v2 import pool


@pytest.fixture
def directory(tmp_path: Path) -> Path:
    return tmp_path / "s"


@pytest.fixture
def listeners() -> Iterator[list[socket.socket]]:
    """Sockets the tests bind, standing in for live shims; closed afterwards."""
    held: list[socket.socket] = []
    yield held
    for listener in held:
        listener.close()


def _place(directory: Path, container_id: str, size: int, held: list[socket.socket]) -> str:
    with pool.placement_lock(str(directory)):
        path, listener = pool.place_in_pool("/d.sock", "ns", str(directory), size)
        if listener is not None:
            held.append(listener)
        pool.join(path, container_id)
    return path


def test_containers_fill_a_pool_before_the_next_one_opens(
    directory: Path, listeners: list[socket.socket]
) -> None:
    paths = [_place(directory, f"c{i}", 2, listeners) for i in range(5)]
    assert paths[0] == paths[1] != paths[2] == paths[3] != paths[4]
    assert len(listeners) == 3, "a shim socket is bound for each new pool"
    assert pool.member_count(paths[0]) == 2

    pool.leave(paths[0], "c0")
    assert _place(directory, "c5", 2, listeners) == paths[0], "a freed place is reused"


def test_a_dead_shims_socket_and_members_are_reclaimed(
    directory: Path, listeners: list[socket.socket]
) -> None:
    path = _place(directory, "c0", 2, listeners)
    _place(directory, "c1", 2, listeners)
    listeners.pop().close()  # the shim died; its socket file stays behind
    Path(path + pool.PID_SUFFIX).write_text("123")
    assert _place(directory, "c2", 2, listeners) == path
    assert pool.member_count(path) == 1, "the dead shim's members were cleared"
    assert not Path(path + pool.PID_SUFFIX).exists()


def test_a_shim_retires_only_when_nothing_is_on_its_way(
    directory: Path, listeners: list[socket.socket]
) -> None:
    path = _place(directory, "c0", 8, listeners)
    Path(path + pool.PID_SUFFIX).write_text("123")
    assert not pool.retire_if_unused(path, serving=True)
    assert not pool.retire_if_unused(path, serving=False), "c0 was placed but not created yet"

    old = time.time() - pool.ENTRY_TTL - 1
    os.utime(Path(path + pool.MEMBERS_SUFFIX) / "c0", (old, old))
    assert pool.recent_members(path) == []
    assert pool.retire_if_unused(path, serving=False), "a stale entry does not hold the shim"
    assert sorted(p.name for p in directory.iterdir()) == [pool.LOCK_FILE]


def test_groups_and_own_shims_have_their_own_socket_names(directory: Path) -> None:
    names = {
        pool.shim_socket_path("/d.sock", "ns", key, str(directory))
        for key in ("c1", "group-a", pool.pool_key(0), pool.pool_key(1))
    }
    assert len(names) == 4
    other_namespace = pool.shim_socket_path("/d.sock", "other", pool.pool_key(0), str(directory))
    assert other_namespace not in names


@pytest.mark.parametrize("container_id", ["", "a/b", "..", ".hidden"])
def test_member_names_must_be_container_ids(directory: Path, container_id: str) -> None:
    with pytest.raises(errdefs.InvalidArgument):
        pool.join(str(directory / "shim"), container_id)


def test_settings_from_the_environment() -> None:
    assert pool.pool_size({}) == pool.DEFAULT_POOL_SIZE
    assert pool.pool_size({pool.POOL_SIZE_ENV: "0"}) == 1
    assert pool.pool_idle({pool.POOL_IDLE_ENV: "2.5"}) == 2.5
    with pytest.raises(errdefs.InvalidArgument, match=pool.POOL_SIZE_ENV):
        pool.pool_size({pool.POOL_SIZE_ENV: "many"})
    with pytest.raises(errdefs.InvalidArgument, match=pool.POOL_IDLE_ENV):
        pool.pool_idle({pool.POOL_IDLE_ENV: "soon"})
    assert pool.linger({pool.LINGER_ENV: "3.5"}) == 3.5
    assert pool.linger({}) == pool.linger({pool.LINGER_ENV: "garbled"}) == 0.0
