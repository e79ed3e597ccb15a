"""A pycontainerd daemon started by a test, on private root, state and socket."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from tests.support.cli import CommandLine
from tests.support.procs import all_pids, command_line, descendants

START_TIMEOUT = 20.0


def _task_plugin_config(pool_idle: float | None, pool_size: int | None) -> str:
    settings = (f"  shim_pool_idle = {pool_idle}\n" if pool_idle is not None else "") + (
        f"  shim_pool_size = {pool_size}\n" if pool_size is not None else ""
    )
    return f'[plugins."io.containerd.runtime.v2.task"]\n{settings}' if settings else ""


class DaemonProcess:
    """Start, kill -9 and restart a pycontainerd on one private root.

    Idle pool shims linger `shim_pool_idle` seconds (the default 10 would make
    every test that waits for a shim to go wait that long); None for either
    keeps the daemon's default.
    """

    def __init__(
        self,
        base: Path | None = None,
        extra_config: str = "",
        log_level: str = "debug",
        shim_pool_idle: float | None = 0.5,
        shim_pool_size: int | None = None,
        command_prefix: Sequence[str] = (),
    ) -> None:
        # Unix socket paths are limited to 108 bytes: keep the base short.
        self.base = base or Path(tempfile.mkdtemp(prefix="pcd-"))
        # Traversable, as /run/containerd is: a container's remapped root (user
        # namespaces) must reach its bundle below the state directory.
        self.base.chmod(0o711)
        self.root = self.base / "root"
        self.state = self.base / "state"
        self.address = self.base / "pcd.sock"
        self.log_path = self.base / "daemon.log"
        self.config_path = self.base / "config.toml"
        self.config_path.write_text(
            f'version = 2\nroot = "{self.root}"\nstate = "{self.state}"\n'
            f'[grpc]\n  address = "{self.address}"\n'
            + _task_plugin_config(shim_pool_idle, shim_pool_size)
            + extra_config
        )
        self.log_level = log_level
        #: What the daemon's command runs under (``ip netns exec NAME`` for one).
        self.command_prefix = list(command_prefix)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> DaemonProcess:
        log = open(self.log_path, "ab")  # noqa: SIM115 - kept open for the child
        self.proc = subprocess.Popen(
            [
                *self.command_prefix,
                sys.executable,
                "-m",
                "pycontainerd.cmd.daemon",
                "-c",
                str(self.config_path),
                "-l",
                self.log_level,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"pycontainerd exited early:\n{self.log()}")
            if self._answers():
                return self
            time.sleep(0.05)
        raise RuntimeError(f"pycontainerd did not start in {START_TIMEOUT}s:\n{self.log()}")

    def _answers(self) -> bool:
        if not self.address.exists():
            return False
        with socket.socket(socket.AF_UNIX) as probe:
            try:
                probe.connect(str(self.address))
            except OSError:
                return False
        return True

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def kill9(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode

    def restart(self) -> DaemonProcess:
        self.stop()
        return self.start()

    def cleanup(self) -> None:
        self.stop()
        unmount_below(self.base)
        shutil.rmtree(self.base, ignore_errors=True)
        end_helpers_of(self.base)


#: How long shims and zygotes get to notice that their daemon's directories are gone.
HELPER_GRACE = 5.0


def end_helpers_of(base: Path) -> None:
    """Make sure no shim or zygote of a daemon under `base` outlives the test.

    They retire by themselves once the daemon's directories are gone; one that
    does not within `HELPER_GRACE` is killed with everything below it.
    """
    marker = str(base) + "/"

    def helpers() -> list[int]:
        found = []
        for pid in all_pids():
            command = " ".join(command_line(pid))
            if "pycontainerd.shim_v2" in command and marker in command:
                found.append(pid)
        return found

    deadline = time.monotonic() + HELPER_GRACE
    while helpers() and time.monotonic() < deadline:
        time.sleep(0.1)
    for helper in helpers():
        for pid in reversed([helper, *descendants(helper)]):  # containers under a shim first
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def unmount_below(base: Path) -> None:
    """Unmount anything a test left mounted under its private base."""
    try:
        mounts = Path("/proc/self/mounts").read_text().splitlines()
    except OSError:
        return
    prefix = str(base) + "/"
    targets = [line.split()[1] for line in mounts if line.split()[1].startswith(prefix)]
    for target in sorted(targets, key=len, reverse=True):
        subprocess.run(["umount", "-l", target], check=False, capture_output=True)


class Ctr(CommandLine):
    """Runs Debian's real `ctr` against a daemon's socket."""

    name = "ctr"

    def __init__(self, address: Path, namespace: str = "default") -> None:
        self.address = address
        self.namespace = namespace
        self.binary = shutil.which("ctr")
        if self.binary is None:
            raise RuntimeError("ctr is not installed: apt-get install containerd")

    def run(
        self,
        *args: str,
        input: bytes | None = None,
        namespace: str | None = None,
        timeout: float = 120,
        stdin: Path | None = None,
    ) -> subprocess.CompletedProcess[bytes]:
        """Run ctr; `stdin` names a file to read from (seekable, unlike a pipe)."""
        cmd = [self.binary, "-a", str(self.address), "-n", namespace or self.namespace, *args]
        env = {**os.environ, "CONTAINERD_ADDRESS": ""}
        if stdin is not None:
            with open(stdin, "rb") as source:
                return subprocess.run(
                    cmd, stdin=source, capture_output=True, timeout=timeout, env=env
                )
        return subprocess.run(cmd, input=input, capture_output=True, timeout=timeout, env=env)
