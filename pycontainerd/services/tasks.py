"""The tasks service: containers' processes, run by shims through the task manager.

Each call first looks up the container (NotFound when it does not exist), then
its task, then forwards to the task's shim, as containerd's tasks service does.
Task events (/tasks/create, /tasks/start, /tasks/exit, ...) come from the shims
over ttrpc; the daemon publishes exit and delete itself only for a dead shim.
"""

from __future__ import annotations

import asyncio
import logging
from typing import cast

from google.protobuf import any_pb2, empty_pb2

from pycontainerd import errdefs, filters, plugin, timestamps
from pycontainerd.api.services.tasks.v1 import tasks_pb2 as api
from pycontainerd.api.types import metrics_pb2, mount_pb2
from pycontainerd.api.types.task import task_pb2
from pycontainerd.h2grpc import Server, ServicerContext
from pycontainerd.identifiers import validate_identifier
from pycontainerd.metadata.containers import Container
from pycontainerd.metadata.placement import call
from pycontainerd.metadata.store import MetadataStore
from pycontainerd.runtime.manager import CreateOptions, TaskManager
from pycontainerd.runtime.task import Exit, ProcessState, Task
from pycontainerd.services.base import namespace_of, rpc
from pycontainerd.services.containers import any_to_api
from pycontainerd.stdio_paths import StdioPaths

log = logging.getLogger(__name__)

_EMPTY = empty_pb2.Empty()
LIST_STATE_TIMEOUT = 2.0  # containerd's budget for one task's state in a listing


def process_of(task: Task, state: ProcessState) -> task_pb2.Process:
    return task_pb2.Process(
        container_id=task.id,
        id=state.id,
        pid=state.pid,
        status=cast("task_pb2.Status", int(state.status)),
        stdin=state.io.stdin,
        stdout=state.io.stdout,
        stderr=state.io.stderr,
        terminal=state.io.terminal,
        exit_status=state.exit_status,
        exited_at=state.exited_at,
    )


def _delete_response(process_id: str, exit: Exit) -> api.DeleteResponse:
    return api.DeleteResponse(
        id=process_id, pid=exit.pid, exit_status=exit.exit_status, exited_at=exit.exited_at
    )


def create_options(
    container: Container,
    *,
    rootfs: list[mount_pb2.Mount],
    io: StdioPaths,
    options: any_pb2.Any | None = None,
    runtime_path: str = "",
) -> CreateOptions:
    """A new task of ``container``: its spec and runtime, its runtime options unless
    ``options`` replaces them (also for the restart monitor's tasks)."""
    if container.spec is None:
        raise errdefs.FailedPrecondition(f"container {container.id!r} has no spec")
    if options is None and container.runtime.options is not None:
        options = any_to_api(container.runtime.options)
    return CreateOptions(
        spec=container.spec.value,
        runtime=runtime_path or container.runtime.name,
        rootfs=rootfs,
        stdin=io.stdin,
        stdout=io.stdout,
        stderr=io.stderr,
        terminal=io.terminal,
        options=options,
    )


class TasksService:
    def __init__(self, metadata: MetadataStore, tasks: TaskManager) -> None:
        self.containers = metadata.containers
        self.tasks = tasks

    async def _container(self, namespace: str, container_id: str) -> Container:
        if not container_id:
            raise errdefs.InvalidArgument("container id is required")
        return await call(self.containers.get, namespace, container_id)

    async def _task(self, context: ServicerContext, container_id: str) -> Task:
        namespace = namespace_of(context)
        await self._container(namespace, container_id)
        return self.tasks.get(namespace, container_id)

    @rpc
    async def Create(self, request: api.CreateTaskRequest, context: ServicerContext):  # noqa: N802
        namespace = namespace_of(context)
        if request.task_api_address:
            raise errdefs.NotImplemented_(
                "creating a task through a sandbox's task API (task_api_address) is not "
                "supported by pycontainerd"
            )
        container = await self._container(namespace, request.container_id)
        if request.HasField("checkpoint"):
            raise errdefs.NotImplemented_(
                "restoring a task from a checkpoint is not supported by pycontainerd"
            )
        opts = create_options(
            container,
            rootfs=list(request.rootfs),
            io=StdioPaths(request.stdin, request.stdout, request.stderr, request.terminal),
            options=request.options if request.HasField("options") else None,
            runtime_path=request.runtime_path,
        )
        _, pid = await self.tasks.create(namespace, container.id, opts)
        return api.CreateTaskResponse(container_id=container.id, pid=pid)

    @rpc
    async def Start(self, request: api.StartRequest, context: ServicerContext):  # noqa: N802
        task = await self._task(context, request.container_id)
        pid = await task.process(request.exec_id).start()
        return api.StartResponse(pid=pid)

    @rpc
    async def Delete(self, request: api.DeleteTaskRequest, context: ServicerContext):  # noqa: N802
        namespace = namespace_of(context)
        await self._container(namespace, request.container_id)
        deleted = await self.tasks.delete(namespace, request.container_id)
        return _delete_response(request.container_id, deleted)

    @rpc
    async def DeleteProcess(  # noqa: N802
        self, request: api.DeleteProcessRequest, context: ServicerContext
    ):
        if not request.exec_id:
            raise errdefs.InvalidArgument("exec id is required; use Delete for the task itself")
        task = await self._task(context, request.container_id)
        deleted = await task.process(request.exec_id).delete()
        return _delete_response(request.exec_id, deleted)

    @rpc
    async def Get(self, request: api.GetRequest, context: ServicerContext):  # noqa: N802
        task = await self._task(context, request.container_id)
        state = await task.process(request.exec_id).state()
        return api.GetResponse(process=process_of(task, state))

    @rpc
    async def List(self, request: api.ListTasksRequest, context: ServicerContext):  # noqa: N802
        # containerd ignores the request's filter here too.
        tasks = self.tasks.list(namespace_of(context))
        processes = await asyncio.gather(*(_listed_process(task) for task in tasks))
        return api.ListTasksResponse(tasks=[p for p in processes if p is not None])

    @rpc
    async def Kill(self, request: api.KillRequest, context: ServicerContext):  # noqa: N802
        task = await self._task(context, request.container_id)
        await task.process(request.exec_id).kill(request.signal, all=request.all)
        return _EMPTY

    @rpc
    async def Exec(self, request: api.ExecProcessRequest, context: ServicerContext):  # noqa: N802
        if not request.exec_id:
            raise errdefs.InvalidArgument("exec id cannot be empty")
        validate_identifier(request.exec_id, "exec id")
        task = await self._task(context, request.container_id)
        if await _process_exists(task, request.exec_id):
            raise errdefs.AlreadyExists(
                f"exec {request.exec_id!r} already exists in task {task.id!r}; pick another exec id"
            )
        io = StdioPaths(request.stdin, request.stdout, request.stderr, request.terminal)
        await task.exec(request.exec_id, io, request.spec)
        return _EMPTY

    @rpc
    async def ResizePty(self, request: api.ResizePtyRequest, context: ServicerContext):  # noqa: N802
        task = await self._task(context, request.container_id)
        await task.process(request.exec_id).resize(request.width, request.height)
        return _EMPTY

    @rpc
    async def CloseIO(self, request: api.CloseIORequest, context: ServicerContext):  # noqa: N802
        task = await self._task(context, request.container_id)
        if request.stdin:
            await task.process(request.exec_id).close_io()
        return _EMPTY

    @rpc
    async def Pause(self, request: api.PauseTaskRequest, context: ServicerContext):  # noqa: N802
        task = await self._task(context, request.container_id)
        await task.pause()
        return _EMPTY

    @rpc
    async def Resume(self, request: api.ResumeTaskRequest, context: ServicerContext):  # noqa: N802
        task = await self._task(context, request.container_id)
        await task.resume()
        return _EMPTY

    @rpc
    async def ListPids(self, request: api.ListPidsRequest, context: ServicerContext):  # noqa: N802
        task = await self._task(context, request.container_id)
        found = await task.pids()
        return api.ListPidsResponse(
            processes=[task_pb2.ProcessInfo(pid=p.pid, info=p.info) for p in found]
        )

    @rpc
    async def Checkpoint(  # noqa: N802
        self, request: api.CheckpointTaskRequest, context: ServicerContext
    ):
        task = await self._task(context, request.container_id)
        await task.checkpoint(request.options if request.HasField("options") else None)
        return api.CheckpointTaskResponse()

    @rpc
    async def Update(self, request: api.UpdateTaskRequest, context: ServicerContext):  # noqa: N802
        task = await self._task(context, request.container_id)
        await task.update(request.resources, request.annotations)
        return _EMPTY

    @rpc
    async def Metrics(self, request: api.MetricsRequest, context: ServicerContext):  # noqa: N802
        namespace = namespace_of(context)
        match = await filters.parse_all_off_loop(request.filters)
        response = api.MetricsResponse()
        for task in self.tasks.list(namespace):
            fields = {"id": task.id, "namespace": task.namespace}
            if not match.match(filters.adapt(fields, {})):
                continue
            collected = timestamps.now()
            try:
                stats = await task.stats()
            except errdefs.ContainerdError as exc:
                if not isinstance(exc, errdefs.NotFound | errdefs.Unavailable):
                    log.warning("collecting metrics for %s: %s", task.id, exc)
                continue
            response.metrics.append(metrics_pb2.Metric(timestamp=collected, id=task.id, data=stats))
        return response

    @rpc
    async def Wait(self, request: api.WaitRequest, context: ServicerContext):  # noqa: N802
        task = await self._task(context, request.container_id)
        waited = await task.process(request.exec_id).wait()
        return api.WaitResponse(exit_status=waited.exit_status, exited_at=waited.exited_at)

    def register(self, server: Server) -> None:
        server.add_service(api.DESCRIPTOR.services_by_name["Tasks"], self)


async def _listed_process(task: Task) -> task_pb2.Process | None:
    """The task's state for a listing; None when it went away meanwhile.

    A shim too slow to answer is listed with an unknown status rather than
    holding up the whole listing.
    """
    try:
        state = await task.state(timeout=LIST_STATE_TIMEOUT)
    except errdefs.NotFound:
        return None
    except errdefs.ContainerdError as exc:
        log.warning("state of task %s: %s", task.id, exc)
        return task_pb2.Process(container_id=task.id, id=task.id, status=task_pb2.UNKNOWN)
    return process_of(task, state)


async def _process_exists(task: Task, exec_id: str) -> bool:
    try:
        await task.process(exec_id).state()
    except errdefs.NotFound:
        return False
    return True


@plugin.register(plugin.GRPC, "tasks", requires=(plugin.METADATA, plugin.RUNTIME_V2))
def init_tasks(ic: plugin.InitContext) -> TasksService:
    return TasksService(ic.get(plugin.METADATA), ic.get(plugin.RUNTIME_V2, "task"))
