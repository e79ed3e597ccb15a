"""`ctr run` against a test's own pycontainerd, and everything needed to leave nothing behind.

:class:`CtrRunEnv` wraps a started :class:`~tests.support.daemon.DaemonProcess`: the
real ctr in a private namespace, FIFOs under the daemon's temp dir, and views of
what the runtime left on the machine (bundles, mounts, shim processes) for
leak checks. :meth:`CtrRunEnv.cleanup` kills whatever a failed test left running:
tasks, then shims with everything below them in the process tree.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from pycontainerd.shim_v2.pool import LOCK_FILE
from pycontainerd.shim_v2.zygote import LOCK_NAME as ZYGOTE_LOCK
from pycontainerd.shim_v2.zygote import SOCKET_NAME as ZYGOTE_SOCKET
from tests.support.daemon import Ctr, DaemonProcess
from tests.support.procs import alive, all_pids, command_line, descendants, parent_of

TASK_STATE_DIR = "io.containerd.runtime.v2.task"
SHIM_MODULE = "pycontainerd.shim_v2.main"
#: The OCI runtime's --root for our shims, and their sockets, below the daemon's state dir.
RUNTIME_ROOT = "runc"
SHIM_SOCKET_DIR = "s"


def _flag(args: list[str], name: str) -> str | None:
    with contextlib.suppress(ValueError, IndexError):
        return args[args.index(name) + 1]
    return None


def mounts_below(path: Path) -> list[str]:
    """Mount points at or below `path`, from /proc/self/mountinfo."""
    prefix = str(path)
    points = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
    return [p for p in points if p == prefix or p.startswith(prefix + "/")]


class CtrRunEnv:
    """The real ctr on a private namespace of a running test daemon."""

    def __init__(self, daemon: DaemonProcess, namespace: str | None = None) -> None:
        self.daemon = daemon
        self.namespace = namespace or "t" + uuid.uuid4().hex[:10]
        self.ctr = Ctr(daemon.address, self.namespace)
        self.fifo_dir = daemon.base / "fifo"

    def __enter__(self) -> CtrRunEnv:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.cleanup()

    # -- driving ctr ------------------------------------------------------------------

    def pull(self, ref: str) -> None:
        self.ctr.ok("images", "pull", "--plain-http", ref)

    def run_args(self, *args: str) -> list[str]:
        """Arguments of `ctr run` with the FIFOs kept under the daemon's temp dir."""
        return ["run", "--fifo-dir", str(self.fifo_dir), *args]

    def run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[bytes]:
        return self.ctr.run(*self.run_args(*args), timeout=timeout)

    def exec(self, container_id: str, exec_id: str, *args: str) -> str:
        return self.ctr.ok(
            "tasks", "exec", "--fifo-dir", str(self.fifo_dir), "--exec-id", exec_id,
            container_id, *args,
        )  # fmt: skip

    def tasks(self) -> dict[str, tuple[int, str]]:
        """`ctr tasks ls` as {id: (pid, status)}."""
        lines = self.ctr.ok("tasks", "ls").splitlines()[1:]
        return {f[0]: (int(f[1]), f[2]) for f in (line.split() for line in lines) if f}

    def containers(self) -> list[str]:
        return self.ctr.ok("containers", "ls", "-q").split()

    # -- what the runtime leaves on the machine ---------------------------------------

    def bundle(self, container_id: str) -> Path:
        return self.daemon.state / TASK_STATE_DIR / self.namespace / container_id

    def shim_pids(self) -> dict[int, str]:
        """Our shims serving this daemon and namespace, as {pid: container id it started for}."""
        found = {}
        for pid in all_pids():
            args = command_line(pid)
            if SHIM_MODULE not in args:
                continue
            if _flag(args, "-address") == str(self.daemon.address) and (
                _flag(args, "-namespace") == self.namespace
            ):
                found[pid] = _flag(args, "-id") or ""
        return found

    def shim_sockets(self) -> list[str]:
        """What is in the shims' socket directory (sockets, pid files, members of live shims)."""
        directory = self.daemon.state / SHIM_SOCKET_DIR
        if not directory.exists():
            return []
        ignored = {LOCK_FILE, ZYGOTE_SOCKET, ZYGOTE_LOCK}  # the placement lock, the zygote's
        return sorted(p.name for p in directory.iterdir() if p.name not in ignored)

    def assert_no_shims(self, timeout: float = 10.0) -> None:
        """Wait until no shim serves this daemon (idle pool shims linger a moment)."""
        deadline = time.monotonic() + timeout
        while self.shim_sockets() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert self.shim_sockets() == [], "shims left serving"

    def runtime_state(self) -> list[str]:
        """What the OCI runtime keeps for this namespace (empty once every task is deleted)."""
        directory = self.daemon.state / RUNTIME_ROOT / self.namespace
        return sorted(p.name for p in directory.iterdir()) if directory.exists() else []

    def shim_pid_of(self, container_id: str) -> int:
        return int((self.bundle(container_id) / "shim.pid").read_text())

    def leftovers(self, container_id: str) -> list[str]:
        """What a container whose task is gone must not have left behind (empty if clean)."""
        found = []
        bundle = self.bundle(container_id)
        if bundle.exists():
            found.append(f"bundle directory {bundle} ({sorted(p.name for p in bundle.iterdir())})")
        found += [f"mount {m}" for m in mounts_below(bundle)]
        for directory in (
            self.daemon.root / TASK_STATE_DIR / self.namespace / container_id,  # work dir
            self.daemon.state / RUNTIME_ROOT / self.namespace / container_id,  # runtime state
        ):
            if directory.exists():
                found.append(f"directory {directory}")
        found += [f"shim pid {pid}" for pid, cid in self.shim_pids().items() if cid == container_id]
        return found

    def assert_clean(self, *container_ids: str, timeout: float = 10.0) -> None:
        """Wait until the containers' leftovers are gone (shims exit a moment after delete)."""
        deadline = time.monotonic() + timeout
        while True:
            found = [item for cid in container_ids for item in self.leftovers(cid)]
            if not found or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert found == [], f"left behind: {found}"

    # -- cleaning up after a failed test ----------------------------------------------

    def cleanup(self) -> None:
        """Kill and delete every task, remove every container, kill leftover shims."""
        with contextlib.suppress(Exception):
            for container_id in self.tasks():
                self.ctr.run("tasks", "kill", "-s", "SIGKILL", container_id, timeout=15)
            for container_id in self.tasks():
                self.ctr.run("tasks", "rm", "-f", container_id, timeout=15)
            for container_id in self.containers():
                self.ctr.run("containers", "rm", container_id, timeout=15)
        for shim in self.shim_pids():
            for pid in reversed([shim, *descendants(shim)]):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


@contextlib.contextmanager
def watch_events(env: CtrRunEnv) -> Iterator[list[str]]:
    """The topics `ctr events` shows for the env's namespace, in order, as they come.

    The body starts once the watcher is known to be subscribed (it has seen a
    probe event). After the body the watcher lingers a moment, since shims
    forward events asynchronously; a test that needs a given event should
    wait for it in the list.
    """
    watcher = subprocess.Popen(
        [env.ctr.binary, "-a", str(env.daemon.address), "events"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    topics: list[str] = []
    subscribed = threading.Event()

    def read() -> None:
        assert watcher.stdout is not None
        # A line: DATE TIME ZONE-OFFSET ZONE NAMESPACE TOPIC EVENT
        for line in watcher.stdout:
            if _PROBE_LABEL in line:
                subscribed.set()
                continue
            fields = line.split(maxsplit=6)
            if len(fields) >= 6 and fields[4] == env.namespace:
                topics.append(fields[5])

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        _until_subscribed(env, subscribed)
        yield topics
        time.sleep(0.5)
    finally:
        watcher.terminate()
        watcher.wait(timeout=10)
        reader.join(timeout=10)


@contextlib.contextmanager
def ctr_run_env(daemon: DaemonProcess, *refs: str) -> Iterator[CtrRunEnv]:
    """A :class:`CtrRunEnv` with images `refs` pulled; cleaned up however the body ends."""
    env = CtrRunEnv(daemon)
    try:
        for ref in refs:
            env.pull(ref)
        yield env
    finally:
        env.cleanup()


__all__ = [
    "CtrRunEnv",
    "alive",
    "command_line",
    "ctr_run_env",
    "descendants",
    "mounts_below",
    "parent_of",
    "watch_events",
]


_PROBE_LABEL = "pycontainerd-test/events-probe"


def _until_subscribed(env: CtrRunEnv, subscribed: threading.Event, timeout: float = 30) -> None:
    """Label the env's namespace until the watcher shows the update event."""
    deadline = time.monotonic() + timeout
    attempt = 0
    while time.monotonic() < deadline:
        attempt += 1
        env.ctr.ok("namespaces", "label", env.namespace, f"{_PROBE_LABEL}={attempt}")
        if subscribed.wait(0.5):
            return
    raise AssertionError("ctr events did not subscribe in time")
