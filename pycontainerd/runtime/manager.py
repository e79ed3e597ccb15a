"""The runtime v2 task manager: starts shims, tracks their tasks, cleans up after them.

Tasks are kept per namespace. A shim is started for each new task with its
bundle as working directory; the daemon then talks to it over ttrpc. When a
shim's connection drops without the daemon asking for it, the shim is treated
as dead: its ``delete`` command cleans up, the bundle goes, and the task's exit
and deletion are published, as containerd does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from google.protobuf import any_pb2
from google.protobuf.message import Message

from pycontainerd import errdefs, timestamps
from pycontainerd.api.events import task_pb2 as events
from pycontainerd.api.runtime.v2.task import shim_pb2
from pycontainerd.api.types import mount_pb2
from pycontainerd.background import BackgroundTasks
from pycontainerd.events.exchange import Exchange
from pycontainerd.identifiers import validate_identifier
from pycontainerd.runtime import info as runtime_info
from pycontainerd.runtime.bundle import ADDRESS_FILE, SHIM_BINARY_FILE, Bundle, BundleStore
from pycontainerd.runtime.exits import (
    DELETE_TOPIC,
    EXIT_TOPIC,
    ExitRecorder,
    recorded_exit,
)
from pycontainerd.runtime.own_shim import is_own_shim, prewarm_zygote, retire_own_zygote
from pycontainerd.runtime.resolve import resolve_shim
from pycontainerd.runtime.shim_binary import DaemonAddresses, ShimBinary, remove_dead_socket
from pycontainerd.runtime.shim_task import ShimTask
from pycontainerd.runtime.task import Exit

log = logging.getLogger(__name__)

# containerd reports this status for a task whose shim vanished without saying.
UNKNOWN_EXIT_STATUS = 255

TaskKey = tuple[str, str]


@dataclass
class CreateOptions:
    """What a new task is made of (from the container record and the create request)."""

    spec: bytes
    runtime: str
    rootfs: list[mount_pb2.Mount] = field(default_factory=list)
    stdin: str = ""
    stdout: str = ""
    stderr: str = ""
    terminal: bool = False
    options: any_pb2.Any | None = None  # runtime options for the shim (e.g. runc.v1.Options)


class TaskManager:
    """Owns every shim-backed task of the daemon."""

    def __init__(
        self,
        bundles: BundleStore,
        runtimes: Mapping[str, str],
        daemon: DaemonAddresses,
        exchange: Exchange,
    ) -> None:
        self.bundles = bundles
        self.runtimes = dict(runtimes)
        self.daemon = daemon
        self.exchange = exchange
        self._tasks: dict[TaskKey, ShimTask] = {}
        self._reserved: set[TaskKey] = set()
        self._cleanups = BackgroundTasks(log)
        self._zygote: asyncio.Task[object] | None = None
        self._exits = ExitRecorder(exchange, self._bundle_of)
        self._exits.start()

    # Start-up

    async def plugin_info(self, options: any_pb2.Any) -> Message:
        """Introspection.PluginInfo's extra: the RuntimeInfo of a runtime (containerd 2)."""
        return await runtime_info.plugin_info(options, self.runtimes)

    def prewarm_own_shim(self) -> None:
        """Have our shim's zygote ready before the first task, if the table runs our shim."""
        for runtime in self.runtimes:
            try:
                shim = resolve_shim(runtime, self.runtimes)
            except errdefs.ContainerdError:
                continue
            if is_own_shim(shim) and self.daemon.socket_dir:
                self._zygote = self._cleanups.spawn(
                    prewarm_zygote(self.daemon.socket_dir), name="shim zygote warm-up"
                )
                return

    # Lookups

    def get(self, namespace: str, task_id: str) -> ShimTask:
        task = self._tasks.get((namespace, task_id))
        if task is None:
            raise errdefs.NotFound(f"task {task_id!r} not found in namespace {namespace!r}")
        return task

    def list(self, namespace: str) -> list[ShimTask]:
        return [t for (ns, _), t in sorted(self._tasks.items()) if ns == namespace]

    def _bundle_of(self, namespace: str, task_id: str) -> Bundle | None:
        task = self._tasks.get((namespace, task_id))
        return None if task is None else task.bundle

    # Create

    async def create(
        self, namespace: str, task_id: str, opts: CreateOptions
    ) -> tuple[ShimTask, int]:
        """Start a shim for a new task and create the task in it; returns it and its pid."""
        validate_identifier(task_id, "task id")
        key = (namespace, task_id)
        if key in self._tasks or key in self._reserved:
            raise errdefs.AlreadyExists(f"task {task_id!r} already exists")
        shim_path = resolve_shim(opts.runtime, self.runtimes)
        self._reserved.add(key)
        try:
            # Bundle files and the rootfs directory are disk work: off the event loop.
            bundle = await asyncio.to_thread(self.bundles.create, namespace, task_id, opts.spec)
            task = ShimTask(bundle, ShimBinary(shim_path, bundle, self.daemon))
            try:
                pid = await self._start(task, opts)
            except BaseException:
                await self._discard_failed(task)
                raise
            self._tasks[key] = task
            return task, pid
        finally:
            self._reserved.discard(key)

    async def _start(self, task: ShimTask, opts: CreateOptions) -> int:
        bundle = task.bundle
        bundle.write(SHIM_BINARY_FILE, task.binary.path)  # before start: recovery needs it
        task.log.open()
        options = opts.options.SerializeToString() if opts.options is not None else b""
        address = await task.binary.start(options)
        if not bundle.read(ADDRESS_FILE):
            bundle.write(ADDRESS_FILE, address)
        await task.attach(address, on_close=self.on_close_for(task))
        request = shim_pb2.CreateTaskRequest(
            id=task.id,
            bundle=str(bundle.path),
            rootfs=opts.rootfs,
            stdin=opts.stdin,
            stdout=opts.stdout,
            stderr=opts.stderr,
            terminal=opts.terminal,
            options=opts.options,
        )
        response = await task.stub.Create(request)
        return response.pid

    async def _discard_failed(self, task: ShimTask) -> None:
        """Undo a create that failed half-way: no shim, mount or directory may remain."""
        task.detached = True
        if task.client is not None and not task.client.closed:
            with contextlib.suppress(errdefs.ContainerdError):
                await task.stub.Delete(shim_pb2.DeleteRequest(id=task.id), timeout=5)
            await task.shutdown()
        task.detach()
        with contextlib.suppress(errdefs.ContainerdError, OSError):
            await task.binary.delete()
        await self._remove_bundle(task.bundle)

    # Delete

    async def delete(self, namespace: str, task_id: str) -> Exit:
        """Delete the task's init process in the shim, stop the shim, remove the bundle."""
        task = self.get(namespace, task_id)
        exit_info = await task.delete()
        if self._tasks.get((namespace, task_id)) is task:
            del self._tasks[(namespace, task_id)]
        task.detached = True
        await task.shutdown()
        task.detach()
        await self._remove_bundle(task.bundle)
        return exit_info

    # Shim loss

    def _on_shim_closed(self, task: ShimTask) -> None:
        if task.detached:
            return
        log.warning("shim of task %s (namespace %s) disconnected", task.id, task.namespace)
        self._cleanups.spawn(self.cleanup_dead_shim(task), name=f"cleanup of shim {task.id}")

    async def cleanup_dead_shim(self, task: ShimTask) -> None:
        """Clean up after a shim that is gone and publish how its task ended."""
        if not task.claim_cleanup():
            return
        task.detached = True
        key = (task.namespace, task.id)
        if self._tasks.get(key) is task:
            del self._tasks[key]
        task.detach()
        try:
            response: shim_pb2.DeleteResponse | None = await task.binary.delete()
        except errdefs.ContainerdError as exc:
            log.warning("cleanup after the dead shim of %s failed: %s", task.id, exc)
            response = None
        exit_event = recorded_exit(task.bundle)
        remove_dead_socket(task.bundle.read(ADDRESS_FILE))
        await self._remove_bundle(task.bundle)
        if exit_event is None:
            exit_event = _exit_from(task.id, response)
            self.exchange.publish(task.namespace, EXIT_TOPIC, exit_event)
        self.exchange.publish(
            task.namespace,
            DELETE_TOPIC,
            events.TaskDelete(
                container_id=task.id,
                pid=exit_event.pid,
                exit_status=exit_event.exit_status,
                exited_at=exit_event.exited_at,
            ),
        )

    # Recovery support

    def adopt(self, task: ShimTask) -> None:
        """Track a task found running at start-up."""
        self._tasks[(task.namespace, task.id)] = task

    def on_close_for(self, task: ShimTask) -> Callable[[], None]:
        """The callback to run when the connection to ``task``'s shim ends."""
        return lambda: self._on_shim_closed(task)

    def task_keys(self) -> set[TaskKey]:
        return set(self._tasks)

    async def _remove_bundle(self, bundle: Bundle) -> None:
        """Unmount and remove the bundle in a worker (rmtree and umount can take long)."""
        try:
            await asyncio.to_thread(bundle.delete)
        except (OSError, errdefs.ContainerdError) as exc:
            log.error("cannot remove the bundle of %s at %s: %s", bundle.id, bundle.path, exc)

    # Daemon stop

    async def close(self) -> None:
        """Let go of every shim without stopping it: the tasks keep running."""
        await self._exits.stop()
        if self._zygote is not None:
            self._zygote.cancel()
            await retire_own_zygote(self.daemon.socket_dir)  # shims run on, the zygote not
        for task in list(self._tasks.values()):
            task.detach()
        await self._cleanups.wait()


def _exit_from(task_id: str, response: shim_pb2.DeleteResponse | None) -> events.TaskExit:
    if response is not None:
        return events.TaskExit(
            container_id=task_id,
            id=task_id,
            pid=response.pid,
            exit_status=response.exit_status,
            exited_at=response.exited_at,
        )
    return events.TaskExit(
        container_id=task_id,
        id=task_id,
        exit_status=UNKNOWN_EXIT_STATUS,
        exited_at=timestamps.now(),
    )
