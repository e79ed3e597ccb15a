"""Our shim under Debian's REAL containerd, driven by the real ctr.

A private containerd (root, state, sockets in a temp dir, no CRI plugin) finds
``containerd-shim-pyrunc-v2`` on its PATH; the busybox test image is imported from
an OCI archive. The system's /run/containerd is never used: ctr gets
``--fifo-dir``, the runtime root and the shim sockets live under the temp dir
(PYCONTAINERD_RUNC_ROOT, PYCONTAINERD_SHIM_SOCKET_DIR in containerd's
environment, which the shims inherit).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sysconfig
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.daemon import unmount_below
from tests.support.images import busybox_image, write_oci_archive
from tests.support.procs import exists

pytestmark = pytest.mark.e2e

SHIM_NAME = "containerd-shim-pyrunc-v2"
RUNTIME = "io.containerd.pyrunc.v2"
IMAGE = "docker.io/library/busybox:latest"
NAMESPACE = "shim-e2e"
START_TIMEOUT = 20.0


def _shim_script() -> Path:
    script = Path(sysconfig.get_path("scripts")) / SHIM_NAME
    if not script.exists():
        pytest.fail(f"{script} is missing; install the package with `pip install -e .`")
    return script


def _wait_until(predicate, timeout: float = 10.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


class PrivateContainerd:
    """Debian's containerd on a private temp dir, with our shim first on its PATH."""

    def __init__(self) -> None:
        self.base = Path(tempfile.mkdtemp(prefix="pcs-"))  # short: socket paths
        self.address = self.base / "c.sock"
        self.fifo_dir = self.base / "fifo"
        self.runc_root = self.base / "runc"
        self.bin_dir = self.base / "bin"
        self.log_path = self.base / "containerd.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.binary = shutil.which("containerd")
        self.ctr_binary = shutil.which("ctr")
        if self.binary is None or self.ctr_binary is None:
            pytest.fail("containerd and ctr are needed: apt-get install containerd")
        self.fifo_dir.mkdir()
        self.bin_dir.mkdir()
        script = _shim_script()
        # Our shim under its own name and under the name ctr's --runc-binary needs.
        for name in (SHIM_NAME, "containerd-shim-runc-v2"):
            (self.bin_dir / name).symlink_to(script)
        (self.base / "config.toml").write_text(
            "version = 2\n"
            f'root = "{self.base / "root"}"\n'
            f'state = "{self.base / "state"}"\n'
            'disabled_plugins = ["io.containerd.grpc.v1.cri"]\n'
            f'[grpc]\n  address = "{self.address}"\n'
            '[debug]\n  level = "debug"\n'
            f'[plugins."io.containerd.internal.v1.opt"]\n  path = "{self.base / "opt"}"\n'
        )

    def start(self) -> PrivateContainerd:
        env = {
            **os.environ,
            "PATH": f"{self.bin_dir}:{os.environ.get('PATH', '')}",
            "PYCONTAINERD_RUNC_ROOT": str(self.runc_root),
            "PYCONTAINERD_SHIM_SOCKET_DIR": str(self.base / "s"),
            # An idle pool shim lingers 10 s by default; the tests wait for shims to go.
            "PYCONTAINERD_SHIM_POOL_IDLE": "0.5",
        }
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [self.binary, "--config", str(self.base / "config.toml")],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        if not _wait_until(self._answers, START_TIMEOUT):
            raise RuntimeError(f"containerd did not start:\n{self.log()}")
        return self

    def _answers(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise RuntimeError(f"containerd exited early:\n{self.log()}")
        return self.ctr("version", check=False).returncode == 0

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-8000:]

    def kill9(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill9()

    def ctr(
        self, *args: str, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        assert self.ctr_binary is not None
        cmd = [self.ctr_binary, "-a", str(self.address), "-n", NAMESPACE, *args]
        env = {**os.environ, "CONTAINERD_ADDRESS": ""}
        result = subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout, env=env, stdin=subprocess.DEVNULL
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"ctr {' '.join(args)} failed ({result.returncode}):\n{result.stderr}\n"
                f"--- containerd log ---\n{self.log()}"
            )
        return result

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """``ctr run`` with our FIFO dir (ctr's default is under /run/containerd)."""
        return self.ctr("run", "--fifo-dir", str(self.fifo_dir), *args, check=check)

    def bundle(self, container_id: str) -> Path:
        return self.base / "state" / "io.containerd.runtime.v2.task" / NAMESPACE / container_id

    def shim_pid(self, container_id: str) -> int:
        return int((self.bundle(container_id) / "shim.pid").read_text())

    def task_status(self, container_id: str) -> str:
        for line in self.ctr("tasks", "ls").stdout.splitlines()[1:]:
            fields = line.split()
            if fields and fields[0] == container_id:
                return fields[-1]
        return ""

    def remove_task(self, container_id: str) -> None:
        """Kill and delete a task and its container, ignoring what is already gone."""
        self.ctr("tasks", "kill", "-s", "KILL", container_id, check=False)
        self.ctr("tasks", "rm", "-f", container_id, check=False)
        self.ctr("containers", "rm", container_id, check=False)

    def cleanup(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            listing = self.ctr("tasks", "ls", "-q", check=False).stdout.split()
            for container_id in listing:
                self.remove_task(container_id)
        self.stop()
        self._kill_leftover_shims()
        self._delete_runtime_containers()
        unmount_below(self.base)
        shutil.rmtree(self.base, ignore_errors=True)

    def _kill_leftover_shims(self) -> None:
        for pid_file in self.base.glob("state/io.containerd.runtime.v2.task/*/*/shim.pid"):
            with contextlib.suppress(ValueError, OSError):
                pid = int(pid_file.read_text())
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
                if b"shim_v2" in cmdline:
                    os.kill(pid, signal.SIGKILL)

    def _delete_runtime_containers(self) -> None:
        root = self.runc_root / NAMESPACE
        runc = shutil.which("runc")
        if not root.is_dir() or runc is None:
            return
        for state in root.iterdir():
            subprocess.run(
                [runc, "--root", str(root), "delete", "--force", state.name],
                capture_output=True,
                check=False,
            )


@pytest.fixture(scope="module")
def containerd() -> Iterator[PrivateContainerd]:
    daemon = PrivateContainerd()
    try:
        daemon.start()
        archive = daemon.base / "busybox.tar"
        write_oci_archive(archive, busybox_image(), IMAGE)
        daemon.ctr("images", "import", str(archive))
        yield daemon
    finally:
        daemon.cleanup()


@pytest.fixture
def detached(containerd: PrivateContainerd, request) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """A ``sleep 3600`` task started with ``ctr run -d``; removed afterwards."""
    container_id = f"d-{request.node.name[5:25].replace('_', '-')}"
    try:
        containerd.run("-d", "--runtime", RUNTIME, IMAGE, container_id, "sleep", "3600")
        yield container_id
    finally:
        containerd.remove_task(container_id)


def test_run_prints_output(containerd: PrivateContainerd) -> None:
    result = containerd.run("--rm", "--runtime", RUNTIME, IMAGE, "t1", "echo", "hello")
    assert result.stdout == "hello\n"
    assert containerd.ctr("containers", "ls", "-q").stdout.split() == []


def test_exit_code_reaches_ctr(containerd: PrivateContainerd) -> None:
    result = containerd.run(
        "--rm", "--runtime", RUNTIME, IMAGE, "t2", "sh", "-c", "exit 3", check=False
    )
    assert result.returncode == 3, result.stderr


def test_detached_task_lifecycle(containerd: PrivateContainerd, detached: str) -> None:
    assert containerd.task_status(detached) == "RUNNING"
    shim = containerd.shim_pid(detached)
    pids = containerd.ctr("tasks", "ps", detached).stdout.splitlines()[1:]
    assert len(pids) == 1

    fifo = ("--fifo-dir", str(containerd.fifo_dir))
    execed = containerd.ctr(
        "tasks", "exec", *fifo, "--exec-id", "e1", detached, "sh", "-c", "echo in; exit 5",
        check=False,
    )  # fmt: skip
    assert (execed.returncode, execed.stdout) == (5, "in\n"), execed.stderr
    listing = containerd.ctr("tasks", "exec", *fifo, "--exec-id", "e1", detached, "ps").stdout
    assert "sleep 3600" in listing

    containerd.ctr("tasks", "pause", detached)
    assert containerd.task_status(detached) == "PAUSED"
    containerd.ctr("tasks", "resume", detached)
    assert containerd.task_status(detached) == "RUNNING"

    metrics = containerd.ctr("tasks", "metrics", detached).stdout
    assert "memory.usage_in_bytes" in metrics and "pids.current" in metrics

    containerd.ctr("tasks", "kill", "-s", "KILL", detached)
    assert _wait_until(lambda: containerd.task_status(detached) == "STOPPED")
    again = containerd.ctr("tasks", "kill", "-s", "KILL", detached, check=False)
    assert again.returncode != 0 and "process already finished" in again.stderr
    containerd.ctr("tasks", "rm", detached)
    assert _wait_until(lambda: not exists(shim)), "shim did not exit after delete"


def test_container_survives_containerd_kill9(containerd: PrivateContainerd, detached: str) -> None:
    shim = containerd.shim_pid(detached)
    assert containerd.proc is not None
    assert _parent_pid(shim) != containerd.proc.pid
    task_pid = int(containerd.ctr("tasks", "ls").stdout.splitlines()[1].split()[1])

    containerd.kill9()
    assert exists(shim) and exists(task_pid)
    assert _parent_pid(task_pid) == shim

    containerd.start()
    assert containerd.task_status(detached) == "RUNNING"
    containerd.ctr("tasks", "kill", "-s", "KILL", detached)
    assert _wait_until(lambda: not exists(task_pid))


def test_runc_binary_wrapper(containerd: PrivateContainerd) -> None:
    marker = containerd.base / "wrapper.log"
    wrapper = containerd.base / "runc-wrapper"
    runc = shutil.which("runc")
    assert runc is not None, "runc is needed: apt-get install runc"
    wrapper.write_text(f'#!/bin/sh\necho "$@" >> {marker}\nexec {runc} "$@"\n')
    wrapper.chmod(0o755)
    result = containerd.run(
        "--rm", "--runtime", "io.containerd.runc.v2", "--runc-binary", str(wrapper),
        IMAGE, "w1", "echo", "wrapped",
    )  # fmt: skip
    assert result.stdout == "wrapped\n"
    calls = marker.read_text()
    assert " create " in calls and " start w1" in calls


def test_missing_runtime_binary_is_named(containerd: PrivateContainerd) -> None:
    result = containerd.run(
        "--rm", "--runtime", "io.containerd.runc.v2", "--runc-binary", "no-such-runtime",
        IMAGE, "w2", "true", check=False,
    )  # fmt: skip
    containerd.ctr("containers", "rm", "w2", check=False)
    assert result.returncode != 0
    assert '"no-such-runtime": executable file not found in $PATH' in result.stderr


def _parent_pid(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[1])
