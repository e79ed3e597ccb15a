"""A private dockerd on top of a test's pycontainerd, and the docker client for it.

The daemon gets its own data root, exec root, pid file, config file and API
socket, and is told to leave the host's network alone (no bridge, iptables,
masquerading or forwarding). `cleanup` stops it and removes whatever its
containers left behind (runtime state, mounts, directories), even after a
failed test.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.cli import CommandLine
from tests.support.daemon import Ctr, DaemonProcess, unmount_below
from tests.support.fetched import fetch
from tests.support.netns import NetNamespace
from tests.support.pty import PtySession

START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0
CTR_TIMEOUT = 20.0
#: dockerd's runc state root, below its exec root (runc --root for its containers).
RUNTIME_ROOT = "runtime-runc"
NAMESPACE = "moby"
#: What dockerd logs while its containerd is down (after a kill -9).
CONTAINERD_DOWN_ERRORS = ("Failed to get event",)
#: dockerd's log line when it (re)subscribes to containerd's events for its containers.
EVENTS_RESUMED = f'msg="processing event stream" module=libcontainerd namespace={NAMESPACE}'
#: dockerd's flags that keep it off the host's network.
HOST_NETWORK_UNTOUCHED = (
    "--bridge=none",
    "--iptables=false",
    "--ip6tables=false",
    "--ip-masq=false",
    "--ip-forward=false",
)
#: dockerd error lines that are expected: dockerd logs them with containerd as well.
IGNORED_ERRORS = (
    # Live restore of a container without networking has no netns to restore.
    "failed to create osl sandbox while trying to restore sandbox",
    # dockerd deletes a container whose start failed twice; with containerd too.
    "cleanup: failed to delete container from containerd: no such container",
)

log = logging.getLogger(__name__)


def dockerd_binary() -> str | None:
    return shutil.which("dockerd")


def docker_client_binary() -> str | None:
    """The docker CLI of dockerd's own package (same release), else any on PATH.

    Debian puts dockerd in sbin/ and docker in bin/ of the same prefix.
    """
    daemon = dockerd_binary()
    if daemon is not None:
        where = Path(daemon).resolve().parent
        for candidate in (where / "docker", where.parent / "bin" / "docker"):
            if candidate.exists():
                return str(candidate)
    return shutil.which("docker")


@dataclass(frozen=True)
class DockerPrograms:
    """A dockerd, the docker CLI that drives it, and the CLI's plugins (none: the installed ones)."""

    dockerd: str
    docker: str
    cli_plugins: tuple[Path, ...] = ()


def installed_docker() -> DockerPrograms:
    """The docker.io package's dockerd and CLI (Debian 12: Docker 20.10)."""
    daemon = dockerd_binary()
    if daemon is None:
        raise RuntimeError("dockerd is not installed: apt-get install docker.io")
    client = docker_client_binary()
    if client is None:
        raise RuntimeError("the docker client is not installed: apt-get install docker.io")
    return DockerPrograms(daemon, client)


def docker28() -> DockerPrograms:
    """Docker 28 from Debian forky (scripts/fetch-docker28.sh): dockerd, its CLI and buildx.

    Skips the calling test when the package registry has no such packages for
    this machine; fails it on any other fetch error.
    """
    dockerd, docker, buildx = fetch("fetch-docker28.sh")
    return DockerPrograms(str(dockerd), str(docker), (buildx,))


class DockerDaemon:
    """Start, stop and restart one dockerd speaking to a given containerd socket.

    ``config`` adds to the daemon's configuration file (``features`` for one);
    ``storage_driver`` is a graph driver, or with the containerd image store the
    containerd snapshotter dockerd uses. Without ``netns`` dockerd leaves the
    host's network alone (no bridge, iptables, masquerading or forwarding); in a
    namespace of the test's own it sets up its default bridge and firewall there.
    """

    def __init__(
        self,
        containerd_address: Path,
        insecure_registries: Iterable[str] = (),
        base: Path | None = None,
        programs: DockerPrograms | None = None,
        config: Mapping[str, Any] | None = None,
        storage_driver: str = "vfs",
        netns: NetNamespace | None = None,
    ) -> None:
        programs = programs or installed_docker()
        self.binary = programs.dockerd
        self.storage_driver = storage_driver
        self.netns = netns
        self.containerd_address = containerd_address
        # Unix socket paths are limited to 108 bytes: keep the base short.
        self.base = base or Path(tempfile.mkdtemp(prefix="dkd-"))
        self.data_root = self.base / "data"
        self.exec_root = self.base / "exec"
        self.socket = self.base / "docker.sock"
        self.pidfile = self.base / "dockerd.pid"
        self.log_path = self.base / "dockerd.log"
        self.config_path = self.base / "daemon.json"
        self.config_path.write_text(
            json.dumps(
                {"insecure-registries": list(insecure_registries), **(config or {})}, indent=2
            )
        )
        self.proc: subprocess.Popen[bytes] | None = None
        self.client = DockerClient(
            self.socket, self.base / "client-config", programs.docker, programs.cli_plugins
        )

    @property
    def host(self) -> str:
        return f"unix://{self.socket}"

    def start(self, *extra_args: str) -> DockerDaemon:
        command = [
            self.binary,
            f"--containerd={self.containerd_address}",
            f"--data-root={self.data_root}",
            f"--exec-root={self.exec_root}",
            f"--pidfile={self.pidfile}",
            f"--config-file={self.config_path}",
            f"--host={self.host}",
            f"--storage-driver={self.storage_driver}",
            "--userland-proxy=false",
            "--log-level=debug",
        ]
        if self.netns is None:
            command += HOST_NETWORK_UNTOUCHED
        else:
            command = self.netns.argv(command)
        command += extra_args
        log = open(self.log_path, "ab")  # noqa: SIM115 - kept open for the child
        self.proc = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"dockerd exited early ({self.proc.returncode}):\n{self.log()}")
            if self.socket.exists() and self.client.run("version", timeout=10).returncode == 0:
                return self
            time.sleep(0.2)
        raise RuntimeError(f"dockerd did not answer in {START_TIMEOUT}s:\n{self.log()[-5000:]}")

    def stop(self) -> int | None:
        """SIGTERM dockerd (it stops its containers unless live-restore is on)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode

    def restart(self, *extra_args: str) -> DockerDaemon:
        self.stop()
        return self.start(*extra_args)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_size(self) -> int:
        """How far the log goes now: pass it as ``since`` to see only later lines."""
        try:
            return self.log_path.stat().st_size
        except FileNotFoundError:
            return 0

    def error_lines(self, mentioning: str = "", since: int = 0) -> list[str]:
        """The log's `level=error` lines (after byte ``since``) that mention ``mentioning``."""
        try:
            with open(self.log_path, "rb") as f:
                f.seek(since)
                text = f.read().decode(errors="replace")
        except FileNotFoundError:
            return []
        pattern = re.compile(re.escape(mentioning), re.IGNORECASE)
        return [
            line for line in text.splitlines() if "level=error" in line and pattern.search(line)
        ]

    def wait_for_log(self, text: str, since: int = 0, timeout: float = START_TIMEOUT) -> None:
        """Wait until a log line after byte ``since`` contains ``text``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with open(self.log_path, "rb") as f:
                f.seek(since)
                if text.encode() in f.read():
                    return
            time.sleep(0.1)
        raise AssertionError(f"dockerd did not log {text!r} within {timeout}s")

    def cleanup(self) -> None:
        """Remove every container, stop dockerd, then undo what is left on the host.

        Each step runs even when an earlier one failed: a broken test must leave no
        container, shim, mount or directory behind.
        """
        steps: tuple[Callable[[], object], ...] = (
            self._remove_containers,
            self.stop,
            self._delete_leftover_tasks,
            self._delete_runtime_containers,
            lambda: unmount_below(self.base),
        )
        for step in steps:
            try:
                step()
            except (OSError, subprocess.SubprocessError) as exc:
                log.warning("dockerd cleanup step %s failed: %s", step, exc)
        shutil.rmtree(self.base, ignore_errors=True)

    def _remove_containers(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            ids = self.client.run("ps", "-aq", timeout=30).stdout.decode().split()
            if ids:
                self.client.run("rm", "-f", *ids, timeout=60)

    def _delete_leftover_tasks(self) -> None:
        """Force-delete the tasks dockerd left in containerd, so that no shim outlives a test.

        Only needed when dockerd went away before it could remove its containers;
        runs before the runtime state under the exec root is removed.
        """
        if not self.containerd_address.exists():
            return
        ctr = Ctr(self.containerd_address, namespace=NAMESPACE)
        listed = ctr.run("tasks", "ls", "-q", timeout=CTR_TIMEOUT)
        for task_id in listed.stdout.decode().split():
            ctr.run("tasks", "delete", "--force", task_id, timeout=CTR_TIMEOUT)

    def _delete_runtime_containers(self) -> None:
        """Kill and delete what runc still knows under dockerd's runtime root."""
        runtime_root = self.exec_root / RUNTIME_ROOT / NAMESPACE
        runc = shutil.which("runc")
        if runc is None or not runtime_root.is_dir():
            return
        for entry in runtime_root.iterdir():
            subprocess.run(
                [runc, "--root", str(runtime_root), "delete", "--force", entry.name],
                capture_output=True,
                timeout=CTR_TIMEOUT,
                check=False,
            )


class DockerClient(CommandLine):
    """The docker CLI pointed at one private dockerd."""

    name = "docker"

    def __init__(
        self,
        socket: Path,
        config_dir: Path,
        binary: str | None = None,
        plugins: Iterable[Path] = (),
    ) -> None:
        binary = binary or docker_client_binary()
        if binary is None:
            raise RuntimeError("the docker client is not installed: apt-get install docker.io")
        self.binary = binary
        self.socket = socket
        self.config_dir = config_dir
        # The CLI finds plugins (docker-buildx, ...) in its configuration directory.
        plugins = list(plugins)
        if plugins:
            (config_dir / "cli-plugins").mkdir(parents=True, exist_ok=True)
            for plugin in plugins:
                link = config_dir / "cli-plugins" / plugin.name
                if not link.exists():
                    link.symlink_to(plugin)

    def _command(self, args: Sequence[str]) -> list[str]:
        return [self.binary, "--config", str(self.config_dir), "-H", f"unix://{self.socket}", *args]

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
        env["DOCKER_CLI_HINTS"] = "false"
        return env

    def run(
        self, *args: str, input: bytes | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            self._command(args),
            input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout,
            env=self._env(),
        )

    def status(self, *args: str, **kwargs) -> int:  # type: ignore[no-untyped-def]
        return self.run(*args, **kwargs).returncode

    def inspect(self, container: str, template: str) -> str:
        return self.ok("inspect", "-f", template, container).strip()

    def terminal(self, *args: str) -> PtySession:
        """The CLI on a fresh pseudo-terminal (its controlling terminal), as a user runs it."""
        return PtySession(self._command(args), env=self._env())


@dataclass
class Stack:
    """pycontainerd with a dockerd on top, and the image the tests run."""

    daemon: DaemonProcess
    dockerd: DockerDaemon
    image: str

    @property
    def docker(self) -> DockerClient:
        return self.dockerd.client

    def unexpected_errors(self, since: int = 0, allowed: Iterable[str] = ()) -> list[str]:
        """dockerd's error lines after log offset ``since``, minus the allowed ones.

        Every error counts, not only those naming containerd: trouble with the
        FIFOs, for one, shows up as "stream copy error" lines.
        """
        allowed = (*IGNORED_ERRORS, *allowed)
        return [
            line
            for line in self.dockerd.error_lines(since=since)
            if not any(pattern in line for pattern in allowed)
        ]


@contextlib.contextmanager
def running_stack(
    image: str, registry_host: str, *dockerd_args: str, **dockerd_options: Any
) -> Iterator[Stack]:
    """A fresh pycontainerd and a dockerd on it (``dockerd_options`` go to DockerDaemon)."""
    daemon = DaemonProcess()
    dockerd: DockerDaemon | None = None
    try:
        daemon.start()
        dockerd = DockerDaemon(
            daemon.address, insecure_registries=[registry_host], **dockerd_options
        )
        dockerd.start(*dockerd_args)
        yield Stack(daemon, dockerd, image)
    finally:
        if dockerd is not None:
            dockerd.cleanup()
        daemon.cleanup()
