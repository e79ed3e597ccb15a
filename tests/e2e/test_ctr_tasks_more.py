"""`ctr run` on pycontainerd with its shipped runtime table (our Python shim), end to end.

What tests/e2e/test_ctr_tasks.py leaves out: the image config reaching the process,
`ctr containers`, the task events of each step, the process tree, bad input
leaving nothing behind, and containers sharing a shim by group annotation.
"""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator

import pytest

from tests.support.ctr_env import (
    CtrRunEnv,
    alive,
    ctr_run_env,
    descendants,
    parent_of,
    watch_events,
)
from tests.support.daemon import DaemonProcess
from tests.support.images import DEFAULT_PATH_ENV, build_image, busybox_entries, push_image
from tests.support.procs import ancestors
from tests.support.wait import wait_for

pytestmark = pytest.mark.e2e

GROUP_ANNOTATION = "io.containerd.runc.v2.group"


@pytest.fixture(scope="module")
def configured_image(registry):  # type: ignore[no-untyped-def]
    """busybox whose config sets environment, working directory and user."""
    image = build_image(
        [busybox_entries()],
        env=(DEFAULT_PATH_ENV, "GREETING=hello from the image", "EMPTY="),
        working_dir="/home/app",
        user="app",
        cmd=("sh", "-c", "echo default command"),
    )
    return push_image(registry, image, "test/configured")


@pytest.fixture
def env(daemon: DaemonProcess, busybox_pushed) -> Iterator[CtrRunEnv]:  # type: ignore[no-untyped-def]
    with ctr_run_env(daemon, busybox_pushed.ref) as run_env:
        yield run_env


def _start(env: CtrRunEnv, image: str, container_id: str, *args: str) -> int:
    """`ctr run -d`; returns the task's pid."""
    started = env.run("-d", image, container_id, *args)
    assert started.returncode == 0, started.stderr
    return env.tasks()[container_id][0]


def _stop_and_remove(env: CtrRunEnv, *container_ids: str) -> None:
    for container_id in container_ids:
        env.ctr.ok("tasks", "kill", "-s", "SIGKILL", container_id)
    for container_id in container_ids:
        wait_for(
            lambda c=container_id: env.tasks()[c][1] == "STOPPED",
            what=f"task {container_id} to stop",
        )
        env.ctr.ok("tasks", "rm", container_id)
        env.ctr.ok("containers", "rm", container_id)


# -- the image config ---------------------------------------------------------------------


def test_environment_working_directory_and_user_come_from_the_image(
    env: CtrRunEnv, configured_image
) -> None:
    env.pull(configured_image.ref)
    image = configured_image.ref
    result = env.run("--rm", image, "cfg", "sh", "-c", "env; pwd; id")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.decode().splitlines()
    assert "GREETING=hello from the image" in lines and "EMPTY=" in lines
    assert DEFAULT_PATH_ENV in lines
    assert "/home/app" in lines
    assert "uid=1000(app) gid=1000(app)" in result.stdout.decode()

    # The image's command when none is given; the client's flags override the config.
    default = env.run("--rm", image, "cmd")
    assert (default.returncode, default.stdout) == (0, b"default command\n"), default.stderr
    override = env.run(
        "--rm", "--env", "GREETING=overridden", "--cwd", "/tmp",
        image, "over", "sh", "-c", 'echo "$GREETING"; pwd; id -u',
    )  # fmt: skip
    assert override.returncode == 0, override.stderr
    assert override.stdout.decode().split("\n")[:3] == ["overridden", "/tmp", "1000"]
    env.assert_clean("cfg", "cmd", "over")


# -- ctr containers -------------------------------------------------------------------------


def test_containers_ls_info_and_rm_after_a_run(env: CtrRunEnv, busybox_pushed) -> None:
    image = busybox_pushed.ref
    started = env.run("-d", "--label", "team=blue", image, "listed", "sleep", "1000")
    assert started.returncode == 0, started.stderr

    listing = env.ctr.ok("containers", "ls").splitlines()
    assert listing[0].split() == ["CONTAINER", "IMAGE", "RUNTIME"]
    assert listing[1].split() == ["listed", image, "io.containerd.runc.v2"]
    info = json.loads(env.ctr.ok("containers", "info", "listed"))
    assert (info["ID"], info["Image"], info["SnapshotKey"]) == ("listed", image, "listed")
    assert info["Labels"]["team"] == "blue"
    assert info["Runtime"]["Name"] == "io.containerd.runc.v2"
    assert info["Spec"]["process"]["args"] == ["sleep", "1000"]

    refused = env.ctr.run("containers", "rm", "listed")
    assert refused.returncode != 0 and b"non stopped" in refused.stderr
    env.ctr.ok("tasks", "kill", "-s", "SIGKILL", "listed")
    wait_for(lambda: env.tasks()["listed"][1] == "STOPPED", what="the task to stop")
    env.ctr.ok("containers", "rm", "listed")  # deletes the stopped task, then the container
    assert env.containers() == [] and env.tasks() == {}
    assert "listed" not in env.ctr.ok("snapshots", "ls")
    assert "not found" in env.ctr.fails("containers", "info", "listed")
    env.assert_clean("listed")


# -- events ---------------------------------------------------------------------------------


def test_events_show_each_step_of_a_task(env: CtrRunEnv, busybox_pushed) -> None:
    with watch_events(env) as topics:
        _start(env, busybox_pushed.ref, "watched", "sleep", "1000")
        assert env.exec("watched", "e1", "echo", "hi") == "hi\n"
        env.ctr.ok("tasks", "pause", "watched")
        env.ctr.ok("tasks", "resume", "watched")
        _stop_and_remove(env, "watched")
    steps = [
        "/containers/create",
        "/tasks/create",
        "/tasks/start",
        "/tasks/exec-added",
        "/tasks/exec-started",
        "/tasks/paused",
        "/tasks/resumed",
        "/tasks/exit",
        "/tasks/delete",
        "/containers/delete",
    ]
    for step in steps:
        assert step in topics, f"no {step} event in {topics}"
    # In order, by the last time each shows up (the exec's exit came before the pause).
    last_seen = {topic: position for position, topic in enumerate(topics)}
    assert sorted(steps, key=last_seen.__getitem__) == steps, topics
    env.assert_clean("watched")


# -- the process tree -----------------------------------------------------------------------


def test_the_shim_is_not_the_daemons_child_and_the_container_is_the_shims(
    env: CtrRunEnv, busybox_pushed
) -> None:
    init_pid = _start(env, busybox_pushed.ref, "tree", "sleep", "1000")
    env.ctr.ok(
        "tasks", "exec", "-d", "--fifo-dir", str(env.fifo_dir), "--exec-id", "side",
        "tree", "sleep", "1000",
    )  # fmt: skip
    shim_pid = env.shim_pid_of("tree")
    daemon_pid = env.daemon.proc.pid  # type: ignore[union-attr]
    assert daemon_pid not in ancestors(shim_pid), "the shim must outlive the daemon"
    assert shim_pid not in descendants(daemon_pid)
    assert parent_of(init_pid) == shim_pid  # reparented to the shim, a subreaper
    exec_pids = [
        pid for pid in descendants(shim_pid) if pid != init_pid and parent_of(pid) == shim_pid
    ]
    assert exec_pids, "the exec'd process is the shim's child too"
    assert set(env.shim_pids()) == {shim_pid}
    _stop_and_remove(env, "tree")
    wait_for(lambda: not alive(shim_pid), what="the shim to exit after its task is deleted")
    env.assert_clean("tree")


# -- bad input ------------------------------------------------------------------------------


def _no_leftovers(env: CtrRunEnv, *container_ids: str) -> None:
    env.assert_clean(*container_ids)
    assert env.tasks() == {}
    assert env.runtime_state() == []
    env.assert_no_shims()
    snapshots = env.ctr.ok("snapshots", "ls")
    for container_id in container_ids:
        assert container_id not in snapshots, snapshots


def test_unknown_runtime_is_not_found(env: CtrRunEnv, busybox_pushed) -> None:
    runtime = ("--runtime", "io.containerd.nosuch.v1")
    message = env.ctr.fails(*env.run_args("--rm", *runtime, busybox_pushed.ref, "u1", "true"))
    assert "containerd-shim-nosuch-v1" in message and "not found" in message, message
    assert env.containers() == []
    _no_leftovers(env, "u1")


def test_runtime_binary_that_does_not_exist(env: CtrRunEnv, busybox_pushed, tmp_path) -> None:
    missing = str(tmp_path / "no-such-runtime")
    binary = ("--runc-binary", missing)
    message = env.ctr.fails(*env.run_args("--rm", *binary, busybox_pushed.ref, "nb", "true"))
    assert missing in message and "failed precondition" in message, message
    assert env.containers() == []
    _no_leftovers(env, "nb")


def test_missing_snapshot_is_not_found(env: CtrRunEnv, busybox_pushed) -> None:
    env.ctr.ok("containers", "create", busybox_pushed.ref, "nosnap", "true")
    env.ctr.ok("snapshots", "rm", "nosnap")
    message = env.ctr.fails("tasks", "start", "--fifo-dir", str(env.fifo_dir), "nosnap")
    assert "nosnap" in message and "not found" in message, message
    env.ctr.ok("containers", "rm", "nosnap")
    assert env.containers() == []
    _no_leftovers(env, "nosnap")


def test_duplicate_container_id_is_refused(env: CtrRunEnv, busybox_pushed) -> None:
    pid = _start(env, busybox_pushed.ref, "dup", "sleep", "1000")
    message = env.ctr.fails(*env.run_args("-d", busybox_pushed.ref, "dup", "true"))
    assert "already exists" in message, message
    assert env.tasks()["dup"] == (pid, "RUNNING")
    _stop_and_remove(env, "dup")
    _no_leftovers(env, "dup")


def test_reused_exec_id_is_refused(env: CtrRunEnv, busybox_pushed) -> None:
    _start(env, busybox_pushed.ref, "host", "sleep", "1000")
    fifo = ("--fifo-dir", str(env.fifo_dir))
    env.ctr.ok("tasks", "exec", *fifo, "-d", "--exec-id", "long", "host", "sleep", "1000")
    message = env.ctr.fails("tasks", "exec", *fifo, "-d", "--exec-id", "long", "host", "true")
    assert "already exists" in message, message
    # An exec id whose process was deleted may be used again.
    assert env.exec("host", "short", "echo", "one") == "one\n"
    assert env.exec("host", "short", "echo", "two") == "two\n"
    _stop_and_remove(env, "host")
    _no_leftovers(env, "host")


def test_signals_to_a_dead_task(env: CtrRunEnv, busybox_pushed) -> None:
    _start(env, busybox_pushed.ref, "dead", "sh", "-c", "exit 4")
    wait_for(lambda: env.tasks()["dead"][1] == "STOPPED", what="the task to exit")
    message = env.ctr.fails("tasks", "kill", "-s", "SIGTERM", "dead")
    assert "process already finished" in message and "not found" in message, message
    removed = env.ctr.run("tasks", "rm", "dead")
    assert removed.returncode == 0 and b"exit code 4" in removed.stderr, removed.stderr
    # No task at all now.
    message = env.ctr.fails("tasks", "kill", "-s", str(int(signal.SIGKILL)), "dead")
    assert "not found" in message, message
    env.ctr.ok("containers", "rm", "dead")
    _no_leftovers(env, "dead")


# -- shim grouping --------------------------------------------------------------------------


def test_containers_of_one_group_share_a_shim(env: CtrRunEnv, busybox_pushed) -> None:
    image = busybox_pushed.ref
    group = ("--annotation", f"{GROUP_ANNOTATION}=pod-1")
    for container_id in ("g1", "g2"):
        started = env.run("-d", *group, image, container_id, "sleep", "1000")
        assert started.returncode == 0, started.stderr
    _start(env, image, "alone", "sleep", "1000")

    shim = env.shim_pid_of("g1")
    assert env.shim_pid_of("g2") == shim
    assert env.shim_pid_of("alone") != shim
    assert len(env.shim_pids()) == 2  # one for the group, one for the other container
    tasks = env.tasks()
    assert parent_of(tasks["g1"][0]) == shim and parent_of(tasks["g2"][0]) == shim
    assert env.exec("g2", "x", "echo", "in-g2") == "in-g2\n"

    # The group's shim serves on while one of its containers is left.
    _stop_and_remove(env, "g1")
    assert env.tasks()["g2"][1] == "RUNNING" and alive(shim)
    assert env.exec("g2", "y", "echo", "still") == "still\n"
    _stop_and_remove(env, "g2", "alone")
    wait_for(lambda: not alive(shim), what="the group's shim to exit with its last task")
    _no_leftovers(env, "g1", "g2", "alone")
