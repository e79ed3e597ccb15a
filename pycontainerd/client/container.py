"""Containers as handles: create one from an image, run tasks in it, delete it.

    async with await client.new_container(
        "web", image, with_process_args("sh", "-c", "echo hi"), with_env(["A=1"])
    ) as container:
        async with await container.new_task(Stdio.capture()) as task:
            await task.start()
            status = await task.wait()
            print(status.code, task.stdout)

Leaving the ``async with`` kills and deletes the task, then deletes the
container and its snapshot.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from google.protobuf.message import Message

from pycontainerd import errdefs
from pycontainerd.api.services.tasks.v1 import tasks_pb2 as tasks_api
from pycontainerd.api.services.tasks.v1 import tasks_pb2_grpc
from pycontainerd.client.cio import Stdio, attach_io, create_io
from pycontainerd.client.containers import ContainerInfo, runtime_options_any
from pycontainerd.client.image_rootfs import image_rootfs, spec_for_image
from pycontainerd.client.models import Image
from pycontainerd.client.snapshots import DEFAULT_SNAPSHOTTER, mounts_to_api
from pycontainerd.client.task import Task
from pycontainerd.oci import Spec, SpecOpt, with_tty
from pycontainerd.remotes.platforms import PlatformMatcher

if TYPE_CHECKING:
    from pycontainerd.client.client import Client

DEFAULT_RUNTIME = "io.containerd.runc.v2"


class Container:
    """One container in the client's namespace."""

    def __init__(self, client: Client, info: ContainerInfo) -> None:
        self._client = client
        self.info = info

    @property
    def id(self) -> str:
        return self.info.id

    @property
    def spec(self) -> Spec:
        return self.info.spec or {}

    async def refresh(self) -> ContainerInfo:
        self.info = await self._client.containers.get(self.id)
        return self.info

    async def set_labels(self, labels: Mapping[str, str]) -> ContainerInfo:
        """Set these labels (an empty value removes one)."""
        self.info = await self._client.containers.set_labels(self.id, labels)
        return self.info

    async def new_task(
        self, stdio: Stdio | None = None, *, runtime_options: Message | None = None
    ) -> Task:
        """Create the container's task (not started yet) with ``stdio`` (default: none)."""
        stdio = stdio or Stdio.null()
        wants_terminal = bool(self.spec.get("process", {}).get("terminal"))
        if stdio.is_terminal != wants_terminal:
            raise errdefs.InvalidArgument(
                f"container {self.id!r} was created with terminal={wants_terminal}, but the "
                f"task's stdio is {stdio.mode.value}: create the container with "
                "terminal=True to use Stdio.terminal() (and without it otherwise)"
            )
        rootfs = []
        if self.info.snapshot_key:
            snapshots = self._client.snapshots(self.info.snapshotter or DEFAULT_SNAPSHOTTER)
            rootfs = mounts_to_api(await snapshots.mounts(self.info.snapshot_key))
        io = await create_io(stdio)
        try:
            request = tasks_api.CreateTaskRequest(
                container_id=self.id,
                rootfs=rootfs,
                stdin=io.paths.stdin,
                stdout=io.paths.stdout,
                stderr=io.paths.stderr,
                terminal=io.paths.terminal,
                options=runtime_options_any(runtime_options) if runtime_options else None,
            )
            reply = await self._client._conn.unary(self._tasks_stub().Create, request)  # noqa: SLF001
        except BaseException:
            io.remove()
            raise
        task = Task(self._client._conn, self.id, io, self.spec)  # noqa: SLF001
        task.pid = reply.pid
        return task

    async def task(self, attach: Stdio | None = None) -> Task:
        """The container's existing task; ``attach`` joins its FIFOs (inherit or terminal)."""
        task = Task(self._client._conn, self.id, None, self.spec)  # noqa: SLF001
        state = await task.state()
        task.pid = state.pid
        if attach is not None:
            task.io = attach_io(attach, state.stdio)
            task.io.on_stdin_eof(task._close_io_remote)  # noqa: SLF001
            task.io.connected()
        return task

    async def delete(self, *, snapshot: bool = True) -> None:
        """Delete the record and (``snapshot``) its snapshot; a task must be deleted first."""
        await self._client.containers.delete(self.id)
        if snapshot and self.info.snapshot_key:
            snapshots = self._client.snapshots(self.info.snapshotter or DEFAULT_SNAPSHOTTER)
            with contextlib.suppress(errdefs.NotFound):
                await snapshots.remove(self.info.snapshot_key)

    async def __aenter__(self) -> Container:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await asyncio.shield(self._cleanup())

    async def _cleanup(self) -> None:
        try:
            task = await self.task()
        except errdefs.NotFound:
            pass
        else:
            with contextlib.suppress(errdefs.NotFound):
                await task.delete(force=True)
        with contextlib.suppress(errdefs.NotFound):
            await self.delete()

    def _tasks_stub(self) -> tasks_pb2_grpc.TasksStub:
        return tasks_pb2_grpc.TasksStub(self._client._conn.channel)  # noqa: SLF001


async def new_container(
    client: Client,
    container_id: str,
    image: Image | str | None = None,
    *opts: SpecOpt,
    labels: Mapping[str, str] | None = None,
    runtime: str = DEFAULT_RUNTIME,
    runtime_options: Message | None = None,
    snapshotter: str = DEFAULT_SNAPSHOTTER,
    snapshot_key: str | None = None,
    terminal: bool = False,
    spec: Spec | None = None,
    platform: PlatformMatcher | None = None,
) -> Container:
    """Create container ``container_id`` from ``image`` with the OCI spec options ``opts``.

    As a method: ``await client.new_container(container_id, image, *opts, ...)``.

    The image is unpacked into ``snapshotter`` if needed and a writable
    snapshot (``snapshot_key``, default the container id) is prepared on its
    top layer. The spec is containerd's default Linux spec, then the image
    config (entrypoint, cmd, env, cwd, user resolved in the image's
    /etc/passwd and /etc/group), then ``opts`` in order, e.g.
    ``with_process_args``, ``with_env``, ``with_user``, ``with_mounts``,
    ``with_hostname``, ``with_host_network``, ``with_privileged``,
    ``with_readonly_rootfs``, ``with_memory_limit``, ``with_cpus``,
    ``with_rlimit``, ``with_added_capabilities``, ``with_seccomp_default``
    (all in :mod:`pycontainerd.oci`). ``terminal`` gives the process a pty
    (use ``Stdio.terminal()`` for its task). ``runtime_options`` is e.g.
    ``containerd.runc.v1.Options(binary_name="crun")``. Without an image,
    pass a ``spec`` with an absolute root path, or opts that set one.
    """
    if isinstance(image, str):
        image = await client.images.get(image)
    all_opts: Sequence[SpecOpt] = [*opts, with_tty] if terminal else list(opts)
    async with client.lease_if_none():
        rootfs = None
        key = ""
        if image is not None:
            rootfs = await image_rootfs(client, image, snapshotter, matcher=platform)
            key = snapshot_key or container_id
        if spec is None:
            spec = await spec_for_image(
                client, container_id, rootfs, all_opts, snapshotter=snapshotter
            )
        snapshots = client.snapshots(snapshotter)
        if rootfs is not None:
            await snapshots.prepare(key, rootfs.top_chain_id)
        info = ContainerInfo(
            id=container_id,
            image=image.name if image is not None else "",
            runtime=runtime,
            runtime_options=runtime_options_any(runtime_options) if runtime_options else None,
            spec=spec,
            snapshotter=snapshotter if key else "",
            snapshot_key=key,
            labels=dict(labels or {}),
        )
        try:
            created = await client.containers.create(info)
        except BaseException:
            if key:
                with contextlib.suppress(errdefs.ContainerdError):
                    await snapshots.remove(key)
            raise
    return Container(client, created)


async def load_container(client: Client, container_id: str) -> Container:
    return Container(client, await client.containers.get(container_id))
