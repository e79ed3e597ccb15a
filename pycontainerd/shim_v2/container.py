"""One container in the shim: its bundle, rootfs, init process and exec processes.

Lifecycle rules follow containerd's runc shim: exec processes are signalled
directly, the init through the runtime (``kill [--all]``); a process that already
exited answers a signal with NotFound ("process already finished"); running
processes cannot be deleted; deleting the init deletes the runtime's container
and unmounts the rootfs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
from collections.abc import Sequence
from typing import Any

from pycontainerd import errdefs
from pycontainerd.mount import MNT_DETACH, Mount, mount_all, unmount_all
from pycontainerd.oci.runtime import OciRuntime, Stdio
from pycontainerd.shim_v2.console import ConsoleSocket
from pycontainerd.shim_v2.log_binary import LoggingBinary, is_binary_uri
from pycontainerd.shim_v2.options import RuntimeOptions, write_options
from pycontainerd.shim_v2.process import Process, Status
from pycontainerd.shim_v2.reaper import Reaper
from pycontainerd.shim_v2.stdio import PipeIO, TerminalIO
from pycontainerd.stdio_paths import StdioPaths

log = logging.getLogger(__name__)

INIT_PID_FILE = "init.pid"
LOG_FILE = "log.json"
#: How long Delete of a created (never started) container waits for its init to go.
CREATED_EXIT_WAIT = 2.0


def read_pid_file(path: str) -> int:
    try:
        with open(path, encoding="ascii") as f:
            return int(f.read().strip() or 0)
    except (OSError, ValueError):
        return 0


def should_kill_all_on_exit(bundle: str) -> bool:
    """True unless the container has a pid namespace of its own (then the kernel does it)."""
    try:
        with open(os.path.join(bundle, "config.json"), encoding="utf-8") as f:
            spec = json.load(f)
    except (OSError, ValueError):
        return True
    namespaces = (spec.get("linux") or {}).get("namespaces") or []
    return not any(ns.get("type") == "pid" and not ns.get("path") for ns in namespaces)


def _set_unless_stopped(process: Process, status: Status) -> None:
    """Change state after a runtime command, unless the process exited meanwhile."""
    if process.status != Status.STOPPED:
        process.status = status


class Container:
    """A created container; build it with `Container.create`."""

    def __init__(
        self,
        container_id: str,
        bundle: str,
        runtime: OciRuntime,
        options: RuntimeOptions,
        reaper: Reaper,
        init: Process,
        rootfs: str,
        namespace: str = "",
    ) -> None:
        self.id = container_id
        self.namespace = namespace
        self.bundle = bundle
        self.runtime = runtime
        self.options = options
        self.reaper = reaper
        self.init = init
        self.rootfs = rootfs
        self.execs: dict[str, Process] = {}
        self._exec_specs: dict[str, dict[str, Any]] = {}
        self.kill_all_on_exit = should_kill_all_on_exit(bundle)

    @classmethod
    async def create(
        cls,
        container_id: str,
        bundle: str,
        *,
        namespace: str,
        options: RuntimeOptions,
        mounts: Sequence[Mount],
        paths: StdioPaths,
        reaper: Reaper,
    ) -> Container:
        """Mount the rootfs, run the runtime's ``create`` and wire up the init's stdio."""
        runtime = OciRuntime(
            reaper,
            binary=options.binary,
            root=options.runtime_root(namespace),
            log_path=os.path.join(bundle, LOG_FILE),
            systemd_cgroup=options.systemd_cgroup,
        )
        write_options(bundle, options)
        rootfs = ""
        if mounts:
            rootfs = os.path.join(bundle, "rootfs")
            os.makedirs(rootfs, mode=0o711, exist_ok=True)
            mount_all(mounts, rootfs)
        container = cls(
            container_id,
            bundle,
            runtime,
            options,
            reaper,
            Process(container_id, paths),
            rootfs,
            namespace,
        )
        try:
            await container._spawn(container.init, container._create_command)
        except BaseException:
            container.unmount_rootfs()
            raise
        return container

    async def _create_command(self, pid_file: str, console: str, stdio: Stdio | None) -> None:
        await self.runtime.create(
            self.id,
            self.bundle,
            pid_file=pid_file,
            console_socket=console,
            no_pivot=self.options.no_pivot_root,
            no_new_keyring=self.options.no_new_keyring,
            stdio=stdio,
        )

    def pid_file(self, process: Process) -> str:
        if process is self.init:
            return os.path.join(self.bundle, INIT_PID_FILE)
        return os.path.join(self.bundle, f"{process.id}.pid")

    async def _spawn(self, process: Process, command: Any) -> None:
        """Run a runtime command that starts `process`, with its stdio; record its pid."""
        pid_file = self.pid_file(process)
        logger = None
        if is_binary_uri(process.paths.stdout):
            logger = await LoggingBinary.start(
                process.paths.stdout,
                container_id=self.id,
                namespace=self.namespace,
                reaper=self.reaper,
            )
        if process.paths.terminal:
            try:
                with ConsoleSocket() as console:
                    receiving = asyncio.ensure_future(console.receive_master())
                    try:
                        await command(pid_file, console.path, None)
                        master = await receiving
                    finally:
                        receiving.cancel()
            except BaseException:
                if logger is not None:
                    logger.close()
                raise
            try:
                process.io = TerminalIO(master, process.paths, logger)
            except BaseException:
                os.close(master)
                raise
            process.master_fd = master
        else:
            pipes = PipeIO(
                process.paths, uid=self.options.io_uid, gid=self.options.io_gid, logger=logger
            )
            try:
                await command(pid_file, "", pipes.stdio)
            except BaseException:
                pipes.close()
                raise
            pipes.after_start()
            process.io = pipes
        process.pid = read_pid_file(pid_file)

    # --- lookups --------------------------------------------------------------------

    def process(self, exec_id: str) -> Process:
        if not exec_id:
            return self.init
        process = self.execs.get(exec_id)
        if process is None:
            raise errdefs.NotFound(f"process {exec_id} does not exist in container {self.id}")
        return process

    def processes(self) -> list[Process]:
        return [self.init, *self.execs.values()]

    def find_pid(self, pid: int) -> Process | None:
        return next((p for p in self.processes() if p.pid == pid and not p.exited_at_ns), None)

    # --- lifecycle ------------------------------------------------------------------

    async def start(self, exec_id: str) -> Process:
        process = self.process(exec_id)
        if process.status != Status.CREATED:
            raise errdefs.FailedPrecondition(
                f"process {process.id} is {process.status.name.lower()}; only a created "
                "process can be started"
            )
        if process is self.init:
            await self.runtime.start(self.id)
            _set_unless_stopped(process, Status.RUNNING)
            return process
        if self.init.status != Status.RUNNING:
            raise errdefs.FailedPrecondition(
                f"container {self.id} is {self.init.status.name.lower()}; exec needs it running"
            )
        spec_file = os.path.join(self.bundle, f".{exec_id}.process.json")
        with open(spec_file, "w", encoding="utf-8") as f:
            json.dump(self._exec_specs[exec_id], f)
        try:
            await self._spawn(process, self._exec_command(spec_file))
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(spec_file)
        _set_unless_stopped(process, Status.RUNNING)
        return process

    def _exec_command(self, spec_file: str) -> Any:
        async def command(pid_file: str, console: str, stdio: Stdio | None) -> None:
            await self.runtime.exec(
                self.id, spec_file, pid_file=pid_file, console_socket=console, stdio=stdio
            )

        return command

    def add_exec(self, exec_id: str, paths: StdioPaths, spec: dict[str, Any]) -> Process:
        """Record an exec process (started later by `start`); ids must be new."""
        if exec_id in self.execs:
            raise errdefs.AlreadyExists(f"exec {exec_id} already exists in container {self.id}")
        if self.init.status == Status.STOPPED:
            raise errdefs.FailedPrecondition(f"container {self.id} has exited; cannot exec in it")
        spec = dict(spec)
        spec["terminal"] = paths.terminal
        process = Process(exec_id, paths)
        self.execs[exec_id] = process
        self._exec_specs[exec_id] = spec
        return process

    async def kill(self, exec_id: str, sig: int, all_processes: bool) -> None:
        process = self.process(exec_id)
        if process.status == Status.STOPPED:
            raise errdefs.NotFound(f"process {process.id}: process already finished")
        if process is self.init:
            await self.runtime.kill(self.id, sig, all_processes=all_processes)
            return
        if not process.pid:
            raise errdefs.FailedPrecondition(f"process {exec_id} is not started yet")
        try:
            os.kill(process.pid, sig)
        except ProcessLookupError:
            raise errdefs.NotFound(f"process {exec_id}: process already finished") from None

    async def kill_all(self) -> None:
        """SIGKILL what is left after the init exited (containers sharing the pid ns)."""
        with contextlib.suppress(errdefs.ContainerdError):
            await self.runtime.kill(self.id, signal.SIGKILL, all_processes=True)

    async def delete(self, exec_id: str) -> Process:
        process = self.process(exec_id)
        if process.status in (Status.RUNNING, Status.PAUSED):
            raise errdefs.FailedPrecondition(
                f"process {process.id} is {process.status.name.lower()}; kill it and wait for "
                "it to exit before deleting"
            )
        if process is not self.init:
            del self.execs[exec_id]
            self._exec_specs.pop(exec_id, None)
            process.close_io()
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.pid_file(process))
            return process
        await self._delete_init()
        return process

    async def _delete_init(self) -> None:
        never_started = self.init.status == Status.CREATED
        with contextlib.suppress(errdefs.NotFound):  # already gone from the runtime's state
            await self.runtime.delete(self.id, force=never_started)
        if never_started and not self.init.exited_at_ns:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.init.wait(), CREATED_EXIT_WAIT)
        for process in self.processes():
            process.close_io()
        self.unmount_rootfs()

    def unmount_rootfs(self) -> None:
        if not self.rootfs:
            return
        try:
            unmount_all(self.rootfs)
        except errdefs.ContainerdError as exc:
            log.warning("unmounting %s failed, detaching it: %s", self.rootfs, exc)
            with contextlib.suppress(errdefs.ContainerdError):
                unmount_all(self.rootfs, flags=MNT_DETACH)

    async def pause(self) -> None:
        if self.init.status != Status.RUNNING:
            raise errdefs.FailedPrecondition(
                f"container {self.id} is {self.init.status.name.lower()}; only a running "
                "container can be paused"
            )
        await self.runtime.pause(self.id)
        _set_unless_stopped(self.init, Status.PAUSED)

    async def resume(self) -> None:
        if self.init.status != Status.PAUSED:
            raise errdefs.FailedPrecondition(
                f"container {self.id} is {self.init.status.name.lower()}, not paused"
            )
        await self.runtime.resume(self.id)
        _set_unless_stopped(self.init, Status.RUNNING)

    async def pids(self) -> list[tuple[int, str]]:
        """Every pid in the container with its exec id ("" for non-exec processes)."""
        by_pid = {p.pid: p.id for p in self.execs.values() if p.pid}
        return [(pid, by_pid.get(pid, "")) for pid in await self.runtime.ps(self.id)]

    def close_stdin(self, exec_id: str) -> None:
        process = self.process(exec_id)
        if process.io is not None:
            process.io.close_stdin()
