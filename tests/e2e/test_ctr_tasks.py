"""The real ctr running tasks on pycontainerd, through Debian's containerd-shim-runc-v2.

Containers are created over raw gRPC with a spec whose root is a busybox
directory (no image needed), then driven with `ctr task ...`. Each test uses
its own namespace: the Go shim keeps runc state under /run/containerd/runc/<ns>.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from google.protobuf import any_pb2

from pycontainerd.api.services.containers.v1 import containers_pb2, containers_pb2_grpc
from pycontainerd.api.services.tasks.v1 import tasks_pb2, tasks_pb2_grpc
from pycontainerd.oci import generate_spec, with_process_args, with_rootfs_path
from tests.support.daemon import Ctr, DaemonProcess
from tests.support.procs import alive, all_pids, command_line, parent_of
from tests.support.wait import wait_for

pytestmark = pytest.mark.e2e

GO_SHIM = shutil.which("containerd-shim-runc-v2")
RUNC = shutil.which("runc")
BUSYBOX = shutil.which("busybox")

SPEC_TYPE = "types.containerd.io/opencontainers/runtime-spec/1/Spec"
RUNTIME = "io.containerd.runc.v2"
RUNTIME_TABLE = (
    f'[plugins."io.containerd.runtime.v2.task".runtimes."{RUNTIME}"]\n  shim = "{GO_SHIM}"\n'
)
TASK_STATE_DIR = "io.containerd.runtime.v2.task"
PY_SHIM = "containerd-shim-pyrunc-v2"


def _busybox_rootfs(path: Path) -> Path:
    (path / "bin").mkdir(parents=True)
    shutil.copy(BUSYBOX, path / "bin" / "busybox")
    for applet in ("sh", "echo", "sleep", "cat", "true"):
        os.symlink("busybox", path / "bin" / applet)
    for directory in ("proc", "dev", "sys", "tmp", "etc"):
        (path / directory).mkdir()
    return path


class TaskEnv:
    """A daemon, ctr in a private namespace, raw gRPC stubs and a busybox rootfs."""

    def __init__(self, daemon: DaemonProcess) -> None:
        self.daemon = daemon
        self.namespace = "t" + uuid.uuid4().hex[:10]
        self.ctr = Ctr(daemon.address, self.namespace)
        self.rootfs = _busybox_rootfs(daemon.base / "rootfs")
        self.fifo_dir = daemon.base / "fifo"
        self.metadata = (("containerd-namespace", self.namespace),)
        self._connect()

    def _connect(self) -> None:
        self.channel = grpc.insecure_channel(f"unix://{self.daemon.address}")
        self.containers = containers_pb2_grpc.ContainersStub(self.channel)
        self.tasks = tasks_pb2_grpc.TasksStub(self.channel)

    def reconnect(self) -> None:
        self.channel.close()
        self._connect()

    def create_container(self, container_id: str, *args: str, runtime: str = RUNTIME) -> None:
        spec = generate_spec(
            self.namespace,
            container_id,
            with_rootfs_path(str(self.rootfs)),
            with_process_args(*args),
        )
        container = containers_pb2.Container(
            id=container_id,
            runtime=containers_pb2.Container.Runtime(name=runtime),
            spec=any_pb2.Any(type_url=SPEC_TYPE, value=json.dumps(spec).encode()),
        )
        self.containers.Create(
            containers_pb2.CreateContainerRequest(container=container),
            metadata=self.metadata,
            timeout=30,
        )

    def start_detached(self, container_id: str, *args: str) -> None:
        self.create_container(container_id, *args)
        self.ctr.ok("task", "start", "-d", "--fifo-dir", str(self.fifo_dir), container_id)

    def bundle(self, container_id: str) -> Path:
        return self.daemon.state / TASK_STATE_DIR / self.namespace / container_id

    def task_lines(self) -> dict[str, list[str]]:
        listing = self.ctr.ok("task", "ls").splitlines()[1:]
        return {line.split()[0]: line.split() for line in listing if line.strip()}

    def code_of(self, call, request) -> grpc.StatusCode:  # type: ignore[no-untyped-def]
        try:
            call(request, metadata=self.metadata, timeout=60)
        except grpc.RpcError as exc:
            return exc.code()
        return grpc.StatusCode.OK

    def shim_pid(self, container_id: str) -> int:
        """The pid of the shim serving a task: its pid file, or found by its command line."""
        with contextlib.suppress(OSError, ValueError):
            return int((self.bundle(container_id) / "shim.pid").read_text().strip())
        wanted = {"-namespace": self.namespace, "-id": container_id}
        for pid in all_pids():
            args = command_line(pid)
            shim_arg = next(
                (
                    i
                    for i, a in enumerate(args[:2])
                    if a.rsplit("/", 1)[-1].startswith("containerd-shim")
                ),
                None,
            )
            if shim_arg is None or "start" in args or "delete" in args:
                continue
            rest = args[shim_arg + 1 :]
            flags = dict(zip(rest[::2], rest[1::2], strict=False))
            if all(flags.get(k) == v for k, v in wanted.items()):
                return pid
        raise AssertionError(f"no shim process found for {container_id}")

    def kill_leftovers(self) -> None:
        """Kill containers and shims a failed test left behind; remove their runc state."""
        runc_root = Path("/run/containerd/runc") / self.namespace
        for bundle in (self.daemon.state / TASK_STATE_DIR).glob("*/*"):
            _kill_pid_file(bundle / "init.pid")
            with contextlib.suppress(AssertionError, ProcessLookupError):
                os.kill(self.shim_pid(bundle.name), signal.SIGKILL)
            subprocess.run(
                [RUNC, "--root", str(runc_root), "delete", "-f", bundle.name],
                capture_output=True,
                check=False,
            )
            with contextlib.suppress(OSError):
                address = (bundle / "address").read_text().strip()
                os.unlink(address.removeprefix("unix://"))
        with contextlib.suppress(OSError):
            runc_root.rmdir()


def _kill_pid_file(path: Path) -> None:
    try:
        pid = int(path.read_text().strip())
    except (OSError, ValueError):
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


@contextlib.contextmanager
def _task_env(extra_config: str) -> Iterator[TaskEnv]:
    daemon = DaemonProcess(extra_config=extra_config)
    task_env = None
    try:
        daemon.start()
        task_env = TaskEnv(daemon)
        yield task_env
    finally:
        if task_env is not None:
            task_env.channel.close()
            task_env.kill_leftovers()
        daemon.cleanup()


@pytest.fixture
def env() -> Iterator[TaskEnv]:
    """Tasks run by Debian's Go shim."""
    with _task_env(RUNTIME_TABLE) as task_env:
        yield task_env


@pytest.fixture(params=["go-shim", "default-table"])
def any_shim_env(request) -> Iterator[TaskEnv]:  # type: ignore[no-untyped-def]
    """Tasks run by Debian's Go shim, then by the shipped default (our Python shim)."""
    with _task_env(RUNTIME_TABLE if request.param == "go-shim" else "") as task_env:
        yield task_env


@contextlib.contextmanager
def _events(env: TaskEnv) -> Iterator[list[str]]:
    """Collect `ctr events` output lines while the body runs."""
    proc = subprocess.Popen(
        [env.ctr.binary, "-a", str(env.daemon.address), "events"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)  # type: ignore[arg-type]
    reader.start()
    time.sleep(0.3)  # let the subscription reach the daemon
    try:
        yield lines
    finally:
        time.sleep(0.5)  # events are forwarded asynchronously by the shims
        proc.kill()
        proc.wait()
        reader.join(5)


def _topics(lines: list[str], namespace: str) -> list[str]:
    return [line.split()[5] for line in lines if f" {namespace} /" in line]


def test_attached_task_prints_output_and_propagates_exit_code(env: TaskEnv) -> None:
    env.create_container("c1", "sh", "-c", "echo hello; exit 3")
    result = env.ctr.run("task", "start", "--fifo-dir", str(env.fifo_dir), "c1", timeout=60)
    assert result.stdout == b"hello\n", result.stderr
    assert result.returncode == 3
    # ctr deleted the task after it exited: the bundle and its work dir are gone.
    assert not env.bundle("c1").exists()
    work = env.daemon.root / TASK_STATE_DIR / env.namespace / "c1"
    assert not work.exists()
    assert env.task_lines() == {}


def test_detached_task_lifecycle_with_events(env: TaskEnv) -> None:
    with _events(env) as lines:
        env.start_detached("web", "sleep", "1000")
        tasks = env.task_lines()
        assert tasks["web"][2] == "RUNNING"
        pid = tasks["web"][1]
        assert pid in env.ctr.ok("task", "ps", "web")

        fifo = ("--fifo-dir", str(env.fifo_dir))
        out = env.ctr.ok("task", "exec", *fifo, "--exec-id", "e1", "web", "echo", "from-exec")
        assert out == "from-exec\n"
        env.ctr.ok("task", "exec", *fifo, "-d", "--exec-id", "long", "web", "sleep", "1000")
        err = env.ctr.fails("task", "exec", *fifo, "-d", "--exec-id", "long", "web", "true")
        assert "already exists" in err

        env.ctr.ok("task", "pause", "web")
        assert env.task_lines()["web"][2] == "PAUSED"
        env.ctr.ok("task", "resume", "web")
        assert env.task_lines()["web"][2] == "RUNNING"
        metrics = env.ctr.ok("task", "metrics", "web")
        assert "web" in metrics

        env.ctr.ok("task", "kill", "-s", "SIGKILL", "web")
        wait_for(lambda: env.task_lines()["web"][2] == "STOPPED", what="task to stop")
        deleted = env.tasks.Delete(
            tasks_pb2.DeleteTaskRequest(container_id="web"), metadata=env.metadata, timeout=30
        )
        assert deleted.exit_status == 128 + signal.SIGKILL
        assert env.task_lines() == {}
        assert not env.bundle("web").exists()
    topics = _topics(lines, env.namespace)
    for topic in (
        "/tasks/create",
        "/tasks/start",
        "/tasks/exec-added",
        "/tasks/exec-started",
        "/tasks/paused",
        "/tasks/resumed",
        "/tasks/exit",
        "/tasks/delete",
    ):
        assert topic in topics, f"{topic} not seen in {topics}"


def test_errors_have_the_right_codes_and_leave_nothing_behind(env: TaskEnv) -> None:
    create = env.tasks.Create
    assert env.code_of(create, tasks_pb2.CreateTaskRequest(container_id="nope")) == (
        grpc.StatusCode.NOT_FOUND
    )
    assert "not found" in env.ctr.fails("task", "start", "nope")

    env.create_container("odd", "true", runtime="io.containerd.nosuch.v1")
    with pytest.raises(grpc.RpcError) as info:
        create(tasks_pb2.CreateTaskRequest(container_id="odd"), metadata=env.metadata)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    assert "containerd-shim-nosuch-v1" in info.value.details()
    env.create_container("bad", "true", runtime="bogus")
    assert env.code_of(create, tasks_pb2.CreateTaskRequest(container_id="bad")) == (
        grpc.StatusCode.INVALID_ARGUMENT
    )
    assert not env.bundle("odd").exists() and not env.bundle("bad").exists()

    # The runtime refuses a missing executable at create: the shim and bundle must go.
    env.create_container("noexec", "/no/such/binary")
    assert "no/such/binary" in env.ctr.fails("task", "start", "-d", "noexec")
    assert not env.bundle("noexec").exists()

    env.start_detached("twice", "sleep", "1000")
    assert env.code_of(create, tasks_pb2.CreateTaskRequest(container_id="twice")) == (
        grpc.StatusCode.ALREADY_EXISTS
    )
    assert env.code_of(
        env.tasks.Exec, tasks_pb2.ExecProcessRequest(container_id="twice", exec_id="")
    ) == (grpc.StatusCode.INVALID_ARGUMENT)
    # A running task cannot be deleted without being killed first (the shim refuses).
    refused = env.code_of(env.tasks.Delete, tasks_pb2.DeleteTaskRequest(container_id="twice"))
    assert refused != grpc.StatusCode.OK
    assert env.task_lines()["twice"][2] == "RUNNING"
    env.ctr.ok("task", "rm", "-f", "twice")
    assert env.task_lines() == {}


def test_shim_outlives_a_daemon_kill_and_is_found_again(env: TaskEnv) -> None:
    env.start_detached("keep", "sleep", "1000")
    shim_pid = env.shim_pid("keep")
    assert parent_of(shim_pid) != env.daemon.proc.pid  # the shim is not the daemon's child

    env.daemon.kill9()
    assert alive(shim_pid)
    env.daemon.start()
    env.reconnect()
    assert env.task_lines()["keep"][2] == "RUNNING"
    out = env.ctr.ok(
        "task", "exec", "--fifo-dir", str(env.fifo_dir), "--exec-id", "again", "keep", "echo", "hi"
    )
    assert out == "hi\n"

    waited: list[tasks_pb2.WaitResponse] = []
    waiter = threading.Thread(
        target=lambda: waited.append(
            env.tasks.Wait(
                tasks_pb2.WaitRequest(container_id="keep"), metadata=env.metadata, timeout=60
            )
        )
    )
    waiter.start()
    time.sleep(0.3)
    env.ctr.ok("task", "kill", "-s", "SIGKILL", "keep")
    waiter.join(30)
    assert waited and waited[0].exit_status == 128 + signal.SIGKILL
    env.ctr.ok("task", "rm", "keep")
    assert not env.bundle("keep").exists()
    wait_for(lambda: not alive(shim_pid), what="the shim to exit after delete")


def test_dead_shims_are_cleaned_up(env: TaskEnv) -> None:
    env.start_detached("lost", "sleep", "1000")
    with _events(env) as lines:
        # A shim dying while the daemon runs: the daemon reports the task's end.
        os.kill(env.shim_pid("lost"), signal.SIGKILL)
        wait_for(lambda: "lost" not in env.task_lines(), what="the dead shim's task to go")
    topics = _topics(lines, env.namespace)
    assert "/tasks/exit" in topics and "/tasks/delete" in topics
    wait_for(lambda: not env.bundle("lost").exists(), what="the bundle to be removed")

    # A shim dying while the daemon is down: found and cleaned at start-up.
    env.start_detached("gone", "sleep", "1000")
    env.daemon.kill9()
    os.kill(env.shim_pid("gone"), signal.SIGKILL)
    env.daemon.start()
    env.reconnect()
    assert env.task_lines() == {}
    assert not env.bundle("gone").exists()


def _run(env: TaskEnv, image: str, name: str, *args: str, detach: bool = False):  # type: ignore[no-untyped-def]
    flags = ["-d"] if detach else ["--rm"]
    return env.ctr.run("run", *flags, "--fifo-dir", str(env.fifo_dir), image, name, *args)


def test_ctr_run_with_a_pulled_image(any_shim_env: TaskEnv, busybox_pushed) -> None:
    env = any_shim_env
    image = busybox_pushed.ref
    env.ctr.ok("images", "pull", "--plain-http", image)

    hello = _run(env, image, "t1", "echo", "hello")
    assert (hello.returncode, hello.stdout) == (0, b"hello\n"), hello.stderr
    failed = _run(env, image, "t2", "sh", "-c", "exit 3")
    assert failed.returncode == 3, failed.stderr
    assert env.ctr.ok("containers", "ls", "-q").split() == []

    assert _run(env, image, "bg", "sleep", "1000", detach=True).returncode == 0
    assert env.task_lines()["bg"][2] == "RUNNING"
    out = env.ctr.ok(
        "task", "exec", "--fifo-dir", str(env.fifo_dir), "--exec-id", "x1", "bg", "echo", "in"
    )
    assert out == "in\n"

    env.daemon.kill9()
    env.daemon.start()
    env.reconnect()
    assert env.task_lines()["bg"][2] == "RUNNING"
    out = env.ctr.ok(
        "task", "exec", "--fifo-dir", str(env.fifo_dir), "--exec-id", "x2", "bg", "echo", "back"
    )
    assert out == "back\n"
    env.ctr.ok("task", "kill", "-s", "SIGKILL", "bg")
    wait_for(lambda: env.task_lines()["bg"][2] == "STOPPED", what="the task to stop")
    deleted = env.tasks.Delete(
        tasks_pb2.DeleteTaskRequest(container_id="bg"), metadata=env.metadata, timeout=30
    )
    assert deleted.exit_status == 128 + signal.SIGKILL
    env.ctr.ok("containers", "rm", "bg")
    assert env.task_lines() == {}
    assert not env.bundle("bg").exists()
