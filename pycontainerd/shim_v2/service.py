"""The ``containerd.task.v2.Task`` ttrpc service: decode, call a Container, encode.

Exits reach the service from the reaper (`on_exit`); the process is marked
stopped at once, then its remaining output is given a moment to reach the
client before Wait returns and TaskExit goes out, so ``ctr run`` prints all of
a short-lived command's output.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Callable
from typing import Any, cast

from google.protobuf import any_pb2, empty_pb2

from pycontainerd import __version__, errdefs
from pycontainerd.api.events import task_pb2 as events
from pycontainerd.api.runtime.v2.runc.options import oci_pb2
from pycontainerd.api.runtime.v2.task import shim_pb2
from pycontainerd.api.types.task import task_pb2 as task_types
from pycontainerd.background import BackgroundTasks
from pycontainerd.mount import Mount
from pycontainerd.shim_v2 import console, pool
from pycontainerd.shim_v2.container import Container
from pycontainerd.shim_v2.events import EventPublisher
from pycontainerd.shim_v2.metrics import pack_metrics
from pycontainerd.shim_v2.options import decode_options
from pycontainerd.shim_v2.process import Process
from pycontainerd.shim_v2.reaper import Reaper
from pycontainerd.stdio_paths import StdioPaths
from pycontainerd.ttrpc import RequestContext

log = logging.getLogger(__name__)

PROCESS_DETAILS_TYPE = "containerd.runc.v1.ProcessDetails"

_EMPTY = empty_pb2.Empty()


def decode_json_any(value: any_pb2.Any, what: str) -> dict[str, Any]:
    """An Any whose value is JSON (how containerd sends OCI process specs and resources)."""
    try:
        data = json.loads(value.value or b"{}")
    except ValueError as exc:
        raise errdefs.InvalidArgument(f"{what} ({value.type_url}) is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise errdefs.InvalidArgument(f"{what} must be a JSON object, got {type(data).__name__}")
    return data


class TaskService:
    """Serves the shim API for the containers of one shim (one, or a group)."""

    def __init__(
        self,
        namespace: str,
        publisher: EventPublisher,
        reaper: Reaper,
        on_shutdown: Callable[[], None],
        socket_path: str = "",
    ) -> None:
        self.namespace = namespace
        self.socket_path = socket_path  # our place in `pool`, left when a container goes
        self.publisher = publisher
        self.reaper = reaper
        self.on_shutdown = on_shutdown
        self.containers: dict[str, Container] = {}
        self.creating: dict[str, str] = {}  # container id -> bundle, while Create runs
        self._exit_tasks = BackgroundTasks(log)
        # Held while a process starts, so its TaskExit cannot overtake its TaskStart.
        self._start_lock = asyncio.Lock()
        reaper.on_exit = self.on_exit

    def bundles(self) -> list[str]:
        """The bundles of the containers served or being created (where logs may go)."""
        return [*self.creating.values(), *(c.bundle for c in self.containers.values())]

    def container(self, container_id: str) -> Container:
        found = self.containers.get(container_id)
        if found is None:
            raise errdefs.NotFound(f"container {container_id} not created in this shim")
        return found

    # --- exits ----------------------------------------------------------------------

    def on_exit(self, pid: int, status: int) -> bool:
        """Reaper callback: claim the exit if it is one of our processes."""
        for container in self.containers.values():
            process = container.find_pid(pid)
            if process is not None:
                self._exited(container, process, status)
                return True
        return False

    def _claim_early_exit(self, container: Container, process: Process) -> None:
        status = self.reaper.claim(process.pid) if process.pid else None
        if status is not None:
            self._exited(container, process, status)

    def _exited(self, container: Container, process: Process, status: int) -> None:
        process.mark_exited(status)
        self._exit_tasks.spawn(self._finish_exit(container, process), name=f"exit of {process.id}")

    async def _finish_exit(self, container: Container, process: Process) -> None:
        """Kill what is left and drain the output; the exit is announced whatever fails."""
        try:
            if process is container.init and container.kill_all_on_exit:
                await container.kill_all()
            if process.io is not None:
                await process.io.drain()
        finally:
            async with self._start_lock:
                process.announce_exit()
                self.publisher.publish(
                    events.TaskExit(
                        container_id=container.id,
                        id=process.id,
                        pid=process.pid,
                        exit_status=process.exit_status,
                        exited_at=process.exited_at(),
                    )
                )

    # --- the Task API -----------------------------------------------------------------

    async def Create(  # noqa: N802 - ttrpc method names are the API's
        self, request: shim_pb2.CreateTaskRequest, ctx: RequestContext
    ) -> shim_pb2.CreateTaskResponse:
        if request.id in self.containers or request.id in self.creating:
            raise errdefs.AlreadyExists(f"container {request.id} already exists in this shim")
        if not request.bundle:
            raise errdefs.InvalidArgument(f"create of {request.id} needs the bundle's path")
        if request.checkpoint:
            raise errdefs.NotImplemented_("restoring from a checkpoint needs criu; not supported")
        paths = StdioPaths(request.stdin, request.stdout, request.stderr, request.terminal)
        mounts = [Mount(m.type, m.source, m.target, list(m.options)) for m in request.rootfs]
        bundle = request.bundle
        self.creating[request.id] = bundle
        try:
            container = await Container.create(
                request.id,
                bundle,
                namespace=self.namespace,
                options=decode_options(request.options if request.HasField("options") else None),
                mounts=mounts,
                paths=paths,
                reaper=self.reaper,
            )
        except BaseException:
            pool.leave(self.socket_path, request.id)
            raise
        finally:
            self.creating.pop(request.id, None)
        self.containers[request.id] = container
        self._claim_early_exit(container, container.init)
        self.publisher.publish(
            events.TaskCreate(
                container_id=request.id,
                bundle=container.bundle,
                rootfs=request.rootfs,
                io=events.TaskIO(
                    stdin=request.stdin,
                    stdout=request.stdout,
                    stderr=request.stderr,
                    terminal=request.terminal,
                ),
                checkpoint=request.checkpoint,
                pid=container.init.pid,
            )
        )
        return shim_pb2.CreateTaskResponse(pid=container.init.pid)

    async def Start(  # noqa: N802
        self, request: shim_pb2.StartRequest, ctx: RequestContext
    ) -> shim_pb2.StartResponse:
        container = self.container(request.id)
        async with self._start_lock:
            process = await container.start(request.exec_id)
            if request.exec_id:
                self._claim_early_exit(container, process)
                event: Any = events.TaskExecStarted(
                    container_id=container.id, exec_id=request.exec_id, pid=process.pid
                )
            else:
                event = events.TaskStart(container_id=container.id, pid=process.pid)
            self.publisher.publish(event)
        return shim_pb2.StartResponse(pid=process.pid)

    async def Delete(  # noqa: N802
        self, request: shim_pb2.DeleteRequest, ctx: RequestContext
    ) -> shim_pb2.DeleteResponse:
        container = self.container(request.id)
        process = await container.delete(request.exec_id)
        response = shim_pb2.DeleteResponse(
            pid=process.pid, exit_status=process.exit_status, exited_at=process.exited_at()
        )
        if not request.exec_id:
            del self.containers[request.id]
            pool.leave(self.socket_path, request.id)
            self.publisher.publish(
                events.TaskDelete(
                    container_id=container.id,
                    id=container.id,
                    pid=process.pid,
                    exit_status=process.exit_status,
                    exited_at=process.exited_at(),
                )
            )
        return response

    async def Exec(  # noqa: N802
        self, request: shim_pb2.ExecProcessRequest, ctx: RequestContext
    ) -> empty_pb2.Empty:
        container = self.container(request.id)
        if not request.exec_id:
            raise errdefs.InvalidArgument("exec needs an exec id")
        spec = decode_json_any(request.spec, "exec process spec")
        paths = StdioPaths(request.stdin, request.stdout, request.stderr, request.terminal)
        container.add_exec(request.exec_id, paths, spec)
        self.publisher.publish(
            events.TaskExecAdded(container_id=container.id, exec_id=request.exec_id)
        )
        return _EMPTY

    async def State(  # noqa: N802
        self, request: shim_pb2.StateRequest, ctx: RequestContext
    ) -> shim_pb2.StateResponse:
        container = self.container(request.id)
        process = container.process(request.exec_id)
        return shim_pb2.StateResponse(
            id=process.id,
            bundle=container.bundle,
            pid=process.pid,
            status=cast("task_types.Status", int(process.status)),
            stdin=process.paths.stdin,
            stdout=process.paths.stdout,
            stderr=process.paths.stderr,
            terminal=process.paths.terminal,
            exit_status=process.exit_status,
            exited_at=process.exited_at(),
            exec_id=request.exec_id,
        )

    async def Pids(  # noqa: N802
        self, request: shim_pb2.PidsRequest, ctx: RequestContext
    ) -> shim_pb2.PidsResponse:
        container = self.container(request.id)
        response = shim_pb2.PidsResponse()
        for pid, exec_id in await container.pids():
            info = response.processes.add(pid=pid)
            if exec_id:
                details = oci_pb2.ProcessDetails(exec_id=exec_id)
                info.info.CopyFrom(
                    any_pb2.Any(type_url=PROCESS_DETAILS_TYPE, value=details.SerializeToString())
                )
        return response

    async def Pause(self, request: shim_pb2.PauseRequest, ctx: RequestContext) -> empty_pb2.Empty:  # noqa: N802
        await self.container(request.id).pause()
        self.publisher.publish(events.TaskPaused(container_id=request.id))
        return _EMPTY

    async def Resume(  # noqa: N802
        self, request: shim_pb2.ResumeRequest, ctx: RequestContext
    ) -> empty_pb2.Empty:
        await self.container(request.id).resume()
        self.publisher.publish(events.TaskResumed(container_id=request.id))
        return _EMPTY

    async def Checkpoint(  # noqa: N802
        self, request: shim_pb2.CheckpointTaskRequest, ctx: RequestContext
    ) -> empty_pb2.Empty:
        self.container(request.id)
        raise errdefs.NotImplemented_(
            "checkpoint needs criu, which this shim does not drive; use containerd's runc shim"
        )

    async def Kill(self, request: shim_pb2.KillRequest, ctx: RequestContext) -> empty_pb2.Empty:  # noqa: N802
        container = self.container(request.id)
        await container.kill(request.exec_id, request.signal, request.all)
        return _EMPTY

    async def ResizePty(  # noqa: N802
        self, request: shim_pb2.ResizePtyRequest, ctx: RequestContext
    ) -> empty_pb2.Empty:
        process = self.container(request.id).process(request.exec_id)
        if process.master_fd is not None:
            console.resize(process.master_fd, request.width, request.height)
        return _EMPTY

    async def CloseIO(  # noqa: N802
        self, request: shim_pb2.CloseIORequest, ctx: RequestContext
    ) -> empty_pb2.Empty:
        container = self.container(request.id)
        if request.stdin:
            container.close_stdin(request.exec_id)
        return _EMPTY

    async def Update(  # noqa: N802
        self, request: shim_pb2.UpdateTaskRequest, ctx: RequestContext
    ) -> empty_pb2.Empty:
        container = self.container(request.id)
        resources = decode_json_any(request.resources, "resources")
        await container.runtime.update(container.id, resources)
        return _EMPTY

    async def Wait(
        self, request: shim_pb2.WaitRequest, ctx: RequestContext
    ) -> shim_pb2.WaitResponse:  # noqa: N802
        process = self.container(request.id).process(request.exec_id)
        await process.wait()
        return shim_pb2.WaitResponse(exit_status=process.exit_status, exited_at=process.exited_at())

    async def Stats(  # noqa: N802
        self, request: shim_pb2.StatsRequest, ctx: RequestContext
    ) -> shim_pb2.StatsResponse:
        container = self.container(request.id)
        try:
            stats = await container.runtime.stats(container.id)
        except errdefs.FailedPrecondition as refused:
            # Some runtimes have no `events --stats` (crun 1.8): read the cgroups ourselves.
            from pycontainerd.shim_v2.cgroup_stats import stats_from_cgroups

            try:
                stats = stats_from_cgroups(container.init.pid)
            except errdefs.ContainerdError:
                raise refused from None
        return shim_pb2.StatsResponse(stats=pack_metrics(stats))

    async def Connect(  # noqa: N802
        self, request: shim_pb2.ConnectRequest, ctx: RequestContext
    ) -> shim_pb2.ConnectResponse:
        found = self.containers.get(request.id)
        return shim_pb2.ConnectResponse(
            shim_pid=os.getpid(), task_pid=found.init.pid if found else 0, version=__version__
        )

    async def Shutdown(  # noqa: N802
        self, request: shim_pb2.ShutdownRequest, ctx: RequestContext
    ) -> empty_pb2.Empty:
        """The caller is done with task `request.id` here; with none left, the shim may go."""
        if request.id not in self.containers:
            pool.leave(self.socket_path, request.id)  # placed here, but never created
        if not self.containers:
            self.on_shutdown()
        return _EMPTY
