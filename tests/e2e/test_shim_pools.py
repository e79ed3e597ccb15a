"""Pool shims, end to end with the real `ctr`: containers share our shim, a few per process.

The daemon also readies the zygote that forks shims at start-up, so that not
even its first container waits for a Python interpreter to start and import.

The daemon's `shim_pool_size` caps the containers of one namespace on one shim
process (1: a shim each, as containerd does); an idle pool shim lingers
`shim_pool_idle` seconds for the next container, then exits. A pool shim that
dies takes the tasks of all its containers with it, and each is reported.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from pycontainerd.shim_v2.zygote import retire_zygote
from tests.support.ctr_env import (
    CtrRunEnv,
    alive,
    all_pids,
    command_line,
    ctr_run_env,
    parent_of,
    watch_events,
)
from tests.support.daemon import Ctr, DaemonProcess
from tests.support.wait import wait_for

pytestmark = pytest.mark.e2e

IDLE = 3.0


@pytest.fixture
def pool_of_two() -> Iterator[DaemonProcess]:
    daemon = DaemonProcess(shim_pool_size=2, shim_pool_idle=IDLE)
    try:
        yield daemon.start()
    finally:
        daemon.cleanup()


@pytest.fixture
def env(pool_of_two: DaemonProcess, busybox_pushed) -> Iterator[CtrRunEnv]:  # type: ignore[no-untyped-def]
    with ctr_run_env(pool_of_two, busybox_pushed.ref) as run_env:
        yield run_env


def _start(env: CtrRunEnv, image: str, *container_ids: str) -> None:
    for container_id in container_ids:
        started = env.run("-d", image, container_id, "sleep", "1000")
        assert started.returncode == 0, started.stderr


def _remove(env: CtrRunEnv, *container_ids: str) -> None:
    for container_id in container_ids:
        env.ctr.ok("tasks", "kill", "-s", "SIGKILL", container_id)
        wait_for(lambda c=container_id: env.tasks()[c][1] == "STOPPED", what=f"{container_id}")
        env.ctr.ok("tasks", "rm", container_id)
        env.ctr.ok("containers", "rm", container_id)


def test_containers_fill_pools_of_the_configured_size(env: CtrRunEnv, busybox_pushed) -> None:
    _start(env, busybox_pushed.ref, "p1", "p2", "p3")
    shims = [env.shim_pid_of(c) for c in ("p1", "p2", "p3")]
    assert shims[0] == shims[1] != shims[2]
    assert len(env.shim_pids()) == 2
    tasks = env.tasks()
    for container_id, shim in zip(("p1", "p2", "p3"), shims, strict=True):
        assert parent_of(tasks[container_id][0]) == shim, "the container is its shim's child"
    assert env.exec("p2", "x", "echo", "in-p2") == "in-p2\n"

    # A freed place is taken again before a new shim is forked.
    _remove(env, "p1")
    assert alive(shims[0]) and env.tasks()["p2"][1] == "RUNNING"
    _start(env, busybox_pushed.ref, "p4")
    assert env.shim_pid_of("p4") == shims[0]
    assert len(env.shim_pids()) == 2
    _remove(env, "p2", "p3", "p4")
    env.assert_no_shims(timeout=IDLE + 10)
    env.assert_clean("p1", "p2", "p3", "p4")


def test_an_idle_pool_shim_serves_the_next_container_then_exits(
    env: CtrRunEnv, busybox_pushed
) -> None:
    ran = env.run("--rm", busybox_pushed.ref, "first", "echo", "one")
    assert ran.stdout == b"one\n", ran.stderr
    (shim,) = env.shim_pids()
    ran = env.run("--rm", busybox_pushed.ref, "second", "echo", "two")
    assert ran.stdout == b"two\n", ran.stderr
    assert list(env.shim_pids()) == [shim], "the lingering shim took the next container"
    started = time.monotonic()
    wait_for(lambda: not alive(shim), timeout=IDLE + 10, what="the idle shim to exit")
    assert time.monotonic() - started > IDLE / 2, "the shim did not linger"
    env.assert_no_shims()
    env.assert_clean("first", "second")


def test_a_dead_pool_shim_ends_the_tasks_of_all_its_containers(
    env: CtrRunEnv, busybox_pushed
) -> None:
    _start(env, busybox_pushed.ref, "d1", "d2", "other")
    shim = env.shim_pid_of("d1")
    assert env.shim_pid_of("d2") == shim != env.shim_pid_of("other")
    with watch_events(env) as topics:
        os.kill(shim, signal.SIGKILL)
        wait_for(lambda: set(env.tasks()) == {"other"}, what="the dead shim's tasks to go")
        wait_for(
            lambda: topics.count("/tasks/exit") >= 2 and topics.count("/tasks/delete") >= 2,
            what="the exit and delete events of the dead shim's tasks",
        )
    assert topics.count("/tasks/exit") >= 2 and topics.count("/tasks/delete") >= 2, topics
    assert env.tasks()["other"][1] == "RUNNING"
    assert env.exec("other", "x", "echo", "unharmed") == "unharmed\n"
    for container_id in ("d1", "d2"):
        env.ctr.ok("containers", "rm", container_id)
    _remove(env, "other")
    env.assert_no_shims(timeout=IDLE + 10)
    env.assert_clean("d1", "d2", "other")


@pytest.fixture
def shim_each(busybox_pushed) -> Iterator[CtrRunEnv]:  # type: ignore[no-untyped-def]
    daemon = DaemonProcess(shim_pool_size=1)
    try:
        with ctr_run_env(daemon.start(), busybox_pushed.ref) as run_env:
            yield run_env
    finally:
        daemon.cleanup()


def test_pool_size_one_gives_each_container_its_own_shim(
    shim_each: CtrRunEnv, busybox_pushed
) -> None:
    env = shim_each
    _start(env, busybox_pushed.ref, "e1", "e2")
    assert env.shim_pid_of("e1") != env.shim_pid_of("e2")
    assert sorted(env.shim_pids().values()) == ["e1", "e2"]
    _remove(env, "e1", "e2")
    env.assert_no_shims()
    env.assert_clean("e1", "e2")


@pytest.mark.parametrize("setting", ["shim_pool_size = 0", 'shim_pool_idle = "soon"'])
def test_bad_pool_settings_stop_the_task_plugin(setting: str) -> None:
    daemon = DaemonProcess(
        shim_pool_idle=None,
        extra_config=f'[plugins."io.containerd.runtime.v2.task"]\n  {setting}\n',
    )
    try:
        daemon.start()
        listed = Ctr(daemon.address).ok("plugins", "ls")
        line = next(row for row in listed.splitlines() if "io.containerd.runtime.v2" in row)
        assert line.split()[-1] == "error", line
    finally:
        daemon.cleanup()


def _zygotes(daemon: DaemonProcess) -> list[int]:
    wanted = ["-m", "pycontainerd.shim_v2.zygote", str(daemon.state / "s")]
    return [pid for pid in all_pids() if command_line(pid)[1:4] == wanted]


def test_the_daemon_readies_the_shim_zygote_at_start(env: CtrRunEnv, busybox_pushed) -> None:
    wait_for(lambda: len(_zygotes(env.daemon)) == 1, what="the daemon's shim zygote")
    (zygote,) = _zygotes(env.daemon)
    ran = env.run("--rm", busybox_pushed.ref, "first", "echo", "warm")
    assert ran.stdout == b"warm\n", ran.stderr
    assert _zygotes(env.daemon) == [zygote], "the first shim came from the ready zygote"


def test_a_clean_stop_leaves_only_the_shims_of_running_containers(
    env: CtrRunEnv, busybox_pushed
) -> None:
    wait_for(lambda: len(_zygotes(env.daemon)) == 1, what="the daemon's shim zygote")
    (zygote,) = _zygotes(env.daemon)
    _start(env, busybox_pushed.ref, "stays")
    shim = env.shim_pid_of("stays")
    assert env.daemon.stop() == 0
    wait_for(lambda: not alive(zygote), what="the zygote to retire with its daemon")
    assert alive(shim), "the running container's shim stays"

    env.daemon.start()
    wait_for(lambda: len(_zygotes(env.daemon)) == 1, what="a new zygote")
    assert env.tasks()["stays"][1] == "RUNNING"
    _remove(env, "stays")


@pytest.fixture
def default_pools(busybox_pushed) -> Iterator[CtrRunEnv]:  # type: ignore[no-untyped-def]
    """A daemon with the default pool size (8 containers a shim), as users run it."""
    daemon = DaemonProcess()
    try:
        with ctr_run_env(daemon.start(), busybox_pushed.ref) as run_env:
            yield run_env
    finally:
        daemon.cleanup()


BURST = 24
PARALLEL = 8
ROUNDS = 3


def _in_parallel(work: Callable[[str], object], items: list[str]) -> list[object]:
    with ThreadPoolExecutor(PARALLEL) as workers:
        return list(workers.map(work, items))


def test_parallel_starts_never_land_on_a_shim_that_is_not_there(
    default_pools: CtrRunEnv, busybox_pushed
) -> None:
    """Bursts of `ctr run -d`, 8 at a time, each just after the zygote went (idle, upgraded).

    The first new shim of a burst then fails to start through the zygote, and the
    daemon falls back to the ``start`` command; a container placed beside it in
    the meantime used to be sent to a socket that was already gone.
    """
    env = default_pools
    for round_number in range(ROUNDS):
        ids = [f"r{round_number}-{i}" for i in range(BURST)]
        retire_zygote(str(env.daemon.state / "s"))  # as after its idle time; none is fine
        started = _in_parallel(
            lambda cid: env.run("-d", busybox_pushed.ref, cid, "sleep", "1000"), ids
        )
        failed = {cid: r.stderr for cid, r in zip(ids, started, strict=True) if r.returncode}
        assert failed == {}, f"round {round_number}: {failed}"
        assert set(env.tasks()) == set(ids)
        assert len(set(map(env.shim_pid_of, ids))) == BURST // 8, "full pools, none extra"

        for cid in ids:
            env.ctr.ok("tasks", "kill", "-s", "SIGKILL", cid)
        wait_for(lambda: all(s == "STOPPED" for _p, s in env.tasks().values()), what="exits")
        _in_parallel(lambda cid: env.ctr.ok("tasks", "rm", cid), ids)
        _in_parallel(lambda cid: env.ctr.ok("containers", "rm", cid), ids)
        env.assert_clean(*ids)
    env.assert_no_shims(timeout=IDLE + 10)
