"""Docker on pycontainerd: Debian's dockerd 20.10 with ``--containerd=<our socket>``.

The real docker client drives a private dockerd, which runs its containers
through pycontainerd (namespace "moby", runtime io.containerd.runc.v2 served by
our Python shim, stdio through FIFOs, exits through the events service) and
keeps its image manifests and leases in pycontainerd's content and leases
services. Every test also checks that dockerd logged no unexpected errors.
"""

from __future__ import annotations

import os
import re
import signal
import time
import uuid
from collections.abc import Callable, Iterator

import grpc
import pytest

from pycontainerd.services import healthcheck as health
from tests.support.daemon import Ctr
from tests.support.dockerd import (
    CONTAINERD_DOWN_ERRORS,
    EVENTS_RESUMED,
    NAMESPACE,
    RUNTIME_ROOT,
    DockerClient,
    Stack,
    running_stack,
)
from tests.support.procs import alive, ancestors, command_line, parent_of

pytestmark = pytest.mark.e2e


TASK_STATE_DIR = "io.containerd.runtime.v2.task"
WAIT_TIMEOUT = 20.0


@pytest.fixture(scope="module")
def stack(registry, busybox_pushed) -> Iterator[Stack]:
    with running_stack(busybox_pushed.ref, registry.host) as running:
        yield running


@pytest.fixture
def docker(stack: Stack) -> Iterator[DockerClient]:
    """The client of the shared stack; fails the test on new errors in dockerd's log."""
    offset = stack.dockerd.log_size()
    yield stack.docker
    errors = stack.unexpected_errors(since=offset)
    assert not errors, "dockerd logged errors:\n" + "\n".join(errors)


@pytest.fixture
def name(stack: Stack) -> Iterator[Callable[[], str]]:
    """Makes unique container names; removes those containers after the test."""
    made: list[str] = []

    def new() -> str:
        made.append(f"t-{uuid.uuid4().hex[:10]}")
        return made[-1]

    yield new
    if made:
        stack.docker.run("rm", "-f", *made, timeout=60)


# --- helpers ------------------------------------------------------------------------------


def wait_for(check: Callable[[], bool], what: str, timeout: float = WAIT_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def state(docker: DockerClient, container: str) -> str:
    return docker.inspect(container, "{{.State.Status}}")


def pid_of(docker: DockerClient, container: str) -> int:
    return int(docker.inspect(container, "{{.State.Pid}}"))


def run_detached(docker: DockerClient, image: str, container: str, *command: str) -> str:
    docker.ok("run", "-d", "--name", container, image, *command)
    return container


def no_exec_running(docker: DockerClient, container: str) -> bool:
    return docker.inspect(container, "{{len .ExecIDs}}") in ("0", "")


# --- runs ---------------------------------------------------------------------------------


def test_run_rm_pulls_from_the_registry_and_prints(stack: Stack, docker: DockerClient) -> None:
    result = docker.run("run", "--rm", stack.image, "echo", "hi")
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout == b"hi\n"
    assert docker.ok("ps", "-aq") == ""
    # dockerd keeps the manifest in containerd's content store under a lease.
    ctr = Ctr(stack.daemon.address, namespace=NAMESPACE)
    assert "containerd.io/distribution.source.127.0.0.1" in ctr.ok("content", "ls")
    assert "moby-image-sha256:" in ctr.ok("leases", "ls")


def test_run_exit_code_reaches_the_client(stack: Stack, docker: DockerClient) -> None:
    assert docker.status("run", "--rm", stack.image, "sh", "-c", "exit 5") == 5


def test_a_command_that_cannot_start_gives_dockers_exit_codes(
    stack: Stack, docker: DockerClient
) -> None:
    """docker maps the runtime's error text to 127 (not found) and 126 (not executable)."""
    missing = docker.run("run", "--rm", stack.image, "/no/such/program")
    assert missing.returncode == 127, missing.stderr.decode()
    assert b"no such file or directory" in missing.stderr
    assert docker.status("run", "--rm", stack.image, "no-such-command") == 127
    assert docker.status("run", "--rm", stack.image, "/etc/passwd") == 126
    assert docker.ok("ps", "-aq") == ""


def test_detached_container_runs_under_the_shim(
    stack: Stack, docker: DockerClient, name: Callable[[], str]
) -> None:
    """The seed's process tree: pycontainerd, its shim (not its child), sleep under the shim."""
    container = run_detached(docker, stack.image, name(), "sleep", "3600")
    assert container in docker.ok("ps", "--format", "{{.Names}} {{.Status}}")
    sleep_pid = pid_of(docker, container)
    assert command_line(sleep_pid) == ["sleep", "3600"]
    container_id = docker.inspect(container, "{{.Id}}")
    bundle = stack.daemon.state / TASK_STATE_DIR / NAMESPACE / container_id
    shim_pid = int((bundle / "shim.pid").read_text())
    assert parent_of(sleep_pid) == shim_pid, "sleep is not a child of the task's shim"
    # runc keeps the state below the root dockerd gave, in a directory per namespace.
    assert (stack.dockerd.exec_root / RUNTIME_ROOT / NAMESPACE / container_id).is_dir()
    assert stack.daemon.proc is not None and stack.daemon.proc.poll() is None
    assert stack.daemon.proc.pid not in ancestors(shim_pid), "the shim is pycontainerd's child"
    assert stack.dockerd.proc is not None
    assert stack.dockerd.proc.pid not in ancestors(shim_pid), "the shim is dockerd's child"


def test_exec_with_and_without_a_terminal(
    stack: Stack, docker: DockerClient, name: Callable[[], str]
) -> None:
    container = run_detached(docker, stack.image, name(), "sleep", "3600")
    probe = "if test -t 1; then echo tty; else echo no-tty; fi"
    assert docker.ok("exec", container, "sh", "-c", probe) == "no-tty\n"
    assert docker.ok("exec", "-t", container, "sh", "-c", probe) == "tty\r\n"
    assert docker.status("exec", container, "sh", "-c", "exit 3") == 3
    with docker.terminal("exec", "-it", container, "sh", "-c", "read line; echo got:$line") as tty:
        tty.type("typed\r")
        tty.expect("got:typed")
        assert tty.wait() == 0


def test_logs_keep_stdout_and_stderr_apart(
    stack: Stack, docker: DockerClient, name: Callable[[], str]
) -> None:
    container = run_detached(
        docker, stack.image, name(), "sh", "-c", "echo to-out; echo to-err >&2; sleep 3600"
    )

    def logged() -> bool:
        return b"to-err" in docker.run("logs", container).stderr

    wait_for(logged, "the container's output")
    result = docker.run("logs", container)
    assert result.stdout == b"to-out\n"
    assert result.stderr == b"to-err\n"


def test_top_and_stats(stack: Stack, docker: DockerClient, name: Callable[[], str]) -> None:
    container = run_detached(docker, stack.image, name(), "sleep", "3600")
    top = docker.ok("top", container)
    assert str(pid_of(docker, container)) in top
    assert "sleep 3600" in top
    stats = docker.ok(
        "stats", "--no-stream", "--format", "{{.Name}} {{.PIDs}} {{.MemUsage}}", container
    )
    stats_name, pids, memory = stats.split(maxsplit=2)
    assert (stats_name, pids) == (container, "1")
    assert not memory.startswith("0B"), stats


def test_pause_and_unpause(stack: Stack, docker: DockerClient, name: Callable[[], str]) -> None:
    container = run_detached(docker, stack.image, name(), "sleep", "3600")
    docker.ok("pause", container)
    assert state(docker, container) == "paused"
    assert "(Paused)" in docker.ok("ps", "--filter", f"name={container}", "--format", "{{.Status}}")
    docker.ok("unpause", container)
    assert state(docker, container) == "running"
    assert docker.ok("exec", container, "echo", "awake") == "awake\n"


def test_stop_sends_sigterm_first(
    stack: Stack, docker: DockerClient, name: Callable[[], str]
) -> None:
    script = 'trap "echo got-term; exit 7" TERM; while true; do sleep 0.1; done'
    container = run_detached(docker, stack.image, name(), "sh", "-c", script)
    wait_for(lambda: state(docker, container) == "running", "the container to run")
    started = time.monotonic()
    docker.ok("stop", "-t", "10", container)
    assert time.monotonic() - started < 5, "the TERM trap did not end the container"
    assert docker.ok("wait", container) == "7\n"
    assert docker.inspect(container, "{{.State.ExitCode}}") == "7"
    assert "got-term" in docker.ok("logs", container)


def test_stop_kills_after_the_timeout_when_term_is_ignored(
    stack: Stack, docker: DockerClient, name: Callable[[], str]
) -> None:
    script = 'trap "" TERM; while true; do sleep 0.1; done'
    container = run_detached(docker, stack.image, name(), "sh", "-c", script)
    wait_for(lambda: state(docker, container) == "running", "the container to run")
    started = time.monotonic()
    docker.ok("stop", "-t", "1", container)
    assert time.monotonic() - started >= 1.0
    assert docker.inspect(container, "{{.State.ExitCode}}") == "137"


def test_kill_and_wait(stack: Stack, docker: DockerClient, name: Callable[[], str]) -> None:
    container = run_detached(docker, stack.image, name(), "sleep", "3600")
    pid = pid_of(docker, container)
    docker.ok("kill", container)
    assert docker.ok("wait", container) == "137\n"
    assert not alive(pid)
    script = 'trap "exit 12" USR1; while true; do sleep 0.1; done'
    trapping = run_detached(docker, stack.image, name(), "sh", "-c", script)
    wait_for(lambda: state(docker, trapping) == "running", "the container to run")
    docker.ok("kill", "--signal", "USR1", trapping)
    assert docker.ok("wait", trapping) == "12\n"


def test_wait_returns_the_exit_code(
    stack: Stack, docker: DockerClient, name: Callable[[], str]
) -> None:
    container = run_detached(docker, stack.image, name(), "sh", "-c", "sleep 0.3; exit 42")
    assert docker.ok("wait", container) == "42\n"
    assert state(docker, container) == "exited"


def test_restart_starts_a_new_process(
    stack: Stack, docker: DockerClient, name: Callable[[], str]
) -> None:
    container = run_detached(docker, stack.image, name(), "sleep", "3600")
    first = pid_of(docker, container)
    docker.ok("restart", "-t", "1", container)
    second = pid_of(docker, container)
    assert second != first
    assert not alive(first)
    assert state(docker, container) == "running"
    assert docker.ok("exec", container, "echo", "again") == "again\n"


def test_rm_force_removes_a_running_container(
    stack: Stack, docker: DockerClient, name: Callable[[], str]
) -> None:
    container = run_detached(docker, stack.image, name(), "sleep", "3600")
    pid = pid_of(docker, container)
    container_id = docker.inspect(container, "{{.Id}}")
    docker.ok("rm", "-f", container)
    assert container not in docker.ok("ps", "-a", "--format", "{{.Names}}")
    wait_for(lambda: not alive(pid), "the container's process to end")
    ctr = Ctr(stack.daemon.address, namespace=NAMESPACE)
    assert container_id not in ctr.ok("tasks", "ls")
    assert container_id not in ctr.ok("containers", "ls")


def test_init_is_pid_one(stack: Stack, docker: DockerClient) -> None:
    processes = docker.ok("run", "--rm", "--init", stack.image, "ps")
    assert re.search(r"^\s*1\s+\S+\s+\S*docker-init\b", processes, re.MULTILINE), processes


def test_run_interactive_through_a_terminal(stack: Stack, docker: DockerClient) -> None:
    script = "if test -t 0; then echo stdin-is-tty; fi; read line; echo got:$line"
    with docker.terminal("run", "-it", "--rm", stack.image, "sh", "-c", script) as tty:
        tty.expect("stdin-is-tty")
        tty.type("hello\r")
        tty.expect("got:hello")
        assert tty.wait() == 0


def test_restart_always_brings_the_container_back(
    stack: Stack, docker: DockerClient, name: Callable[[], str]
) -> None:
    container = name()
    docker.ok("run", "-d", "--restart=always", "--name", container, stack.image, "sleep", "3600")
    first = pid_of(docker, container)
    os.kill(first, signal.SIGKILL)

    def back_with_a_new_process() -> bool:
        return state(docker, container) == "running" and pid_of(docker, container) != first

    wait_for(back_with_a_new_process, "dockerd to restart the container")
    assert docker.inspect(container, "{{.RestartCount}}") == "1"
    docker.ok("stop", "-t", "1", container)
    assert state(docker, container) == "exited"


def test_health_service_answers_like_containerds(stack: Stack) -> None:
    """dockerd polls grpc.health.v1.Health/Check to learn that containerd is back."""
    with grpc.insecure_channel(f"unix://{stack.daemon.address}") as channel:
        check = channel.unary_unary(
            f"/{health.SERVICE}/Check",
            request_serializer=health.HealthCheckRequest.SerializeToString,
            response_deserializer=health.HealthCheckResponse.FromString,
        )
        assert check(health.HealthCheckRequest(service=""), timeout=10).status == health.SERVING
        with pytest.raises(grpc.RpcError) as unknown:
            check(health.HealthCheckRequest(service="no.such.Service"), timeout=10)
        assert unknown.value.code() == grpc.StatusCode.NOT_FOUND


# --- daemons restarting -------------------------------------------------------------------


def test_live_restore_keeps_containers_running(registry, busybox_pushed) -> None:
    with running_stack(busybox_pushed.ref, registry.host, "--live-restore") as stack:
        docker = stack.docker
        script = "while true; do echo tick; sleep 0.2; done"
        container = run_detached(docker, stack.image, "live-restored", "sh", "-c", script)
        pid = pid_of(docker, container)
        stack.dockerd.restart("--live-restore")
        assert alive(pid)
        assert state(docker, container) == "running"
        assert pid_of(docker, container) == pid
        # The restarted dockerd reads the same output FIFOs: new output keeps arriving.
        ticks = docker.ok("logs", container).count("tick")
        wait_for(lambda: docker.ok("logs", container).count("tick") > ticks + 2, "more output")
        assert docker.ok("exec", container, "echo", "still-here") == "still-here\n"
        docker.ok("stop", "-t", "1", container)
        assert not alive(pid)
        assert docker.inspect(container, "{{.State.ExitCode}}") == "137"
        docker.ok("rm", container)
        errors = stack.unexpected_errors()
        assert not errors, "dockerd logged errors:\n" + "\n".join(errors)


def test_dockerd_reconnects_after_pycontainerd_is_killed(registry, busybox_pushed) -> None:
    with running_stack(busybox_pushed.ref, registry.host) as stack:
        docker = stack.docker
        container = run_detached(docker, stack.image, "survivor", "sleep", "3600")
        pid = pid_of(docker, container)
        assert not stack.unexpected_errors()
        before_kill = stack.dockerd.log_size()
        stack.daemon.kill9()
        assert alive(pid), "the container died with pycontainerd"
        stack.daemon.start()
        # dockerd polls the health service, then subscribes to events again.
        stack.dockerd.wait_for_log(EVENTS_RESUMED, since=before_kill)
        assert docker.ok("exec", container, "echo", "reconnected") == "reconnected\n"
        wait_for(lambda: no_exec_running(docker, container), "dockerd to finish the exec")
        assert docker.ok("run", "--rm", stack.image, "echo", "new") == "new\n"
        docker.ok("stop", "-t", "1", container)
        assert not alive(pid)
        assert docker.inspect(container, "{{.State.ExitCode}}") == "137"
        docker.ok("rm", container)
        errors = stack.unexpected_errors(allowed=CONTAINERD_DOWN_ERRORS)
        assert not errors, "dockerd logged errors:\n" + "\n".join(errors)
