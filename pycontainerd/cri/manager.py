"""Pods and containers of the CRI: their lifecycle over the daemon's stores and runtime.

Everything the CRI makes is a container record of namespace ``k8s.io``
(sandboxes are their pause container) with its snapshot and task; the CRI's
own state rides in the record's extension (see ``state``), so a restarted
daemon rebuilds it from the store and the runtime's recovered tasks.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from google.protobuf import any_pb2

from pycontainerd import errdefs
from pycontainerd.api.cri.runtime.v1 import api_pb2 as cri
from pycontainerd.api.runtime.v2.runc.options import oci_pb2
from pycontainerd.background import BackgroundTasks
from pycontainerd.metadata.containers import AnyValue, RuntimeInfo
from pycontainerd.metadata.containers import Container as Record
from pycontainerd.metadata.placement import call
from pycontainerd.metadata.store import MetadataStore
from pycontainerd.mount import MNT_DETACH, Mount, mount_all, temp_mount, unmount_all
from pycontainerd.runtime.manager import CreateOptions, TaskManager
from pycontainerd.runtime.task import Status, Task
from pycontainerd.services.snapshots import mounts_to_api
from pycontainerd.stdio_paths import StdioPaths

from . import cni as cnilib
from . import logs, netns, spec
from .config import CRIConfig
from .events import EventHub
from .images import ImageManager, ResolvedImage
from .state import (
    CONTAINER_EXTENSION,
    EXTENSION_TYPE,
    KIND_LABEL,
    NAMESPACE,
    SANDBOX_EXTENSION,
    SANDBOX_ID_LABEL,
    Container,
    Index,
    Sandbox,
    container_name,
    new_id,
    now_ns,
    sandbox_name,
)

log = logging.getLogger(__name__)

SPEC_TYPE_URL = "types.containerd.io/opencontainers/runtime-spec/1/Spec"
PROCESS_TYPE_URL = "types.containerd.io/opencontainers/runtime-spec/1/Process"
RESOURCES_TYPE_URL = "types.containerd.io/opencontainers/runtime-spec/1/LinuxResources"
LOG_DRAIN_SECONDS = 2.0
#: ExecSync keeps at most this much of each stream, so that a reply with both fits in
#: the 16 MiB a gRPC message may carry; the rest is read and dropped.
EXEC_SYNC_OUTPUT_CAP = 4 * 1024 * 1024
GC_ROOT_LABEL = "containerd.io/gc.root"


#: Pulls an image into namespace k8s.io (with the request's credentials, if any).
Puller = Callable[[str, "cri.AuthConfig | None"], Awaitable[ResolvedImage]]


def _runtime_options(binary_name: str) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(oci_pb2.Options(binary_name=binary_name))
    return packed


def _needs_rootfs(image_user: str, username: str, uid_given: bool = False) -> bool:
    """Whether resolving the user reads the image's /etc/passwd and /etc/group.

    Only a numeric ``uid:gid`` resolves without them: a bare uid takes its
    gid and supplementary groups from the image, as containerd does.
    """
    wanted = username or image_user
    if uid_given:
        return True
    if not wanted:
        return False
    parts = wanted.split(":")
    return len(parts) != 2 or not all(p.isdigit() for p in parts)


class CRIManager:
    def __init__(
        self,
        config: CRIConfig,
        metadata: MetadataStore,
        tasks: TaskManager,
        images: ImageManager,
        state_dir: Path,
        snapshot_root: Path,
        pull: Puller | None = None,
    ) -> None:
        self.config = config
        self.metadata = metadata
        self.tasks = tasks
        self.images = images
        self.state_dir = state_dir
        self.snapshot_root = snapshot_root
        self.index = Index()
        self.events = EventHub()
        self.cni = cnilib.CNI(config.cni_bin_dir.split(":"), config.cni_conf_dir)
        self.pull = pull
        self.host = spec.Host(
            restrict_oom_score_adj=config.restrict_oom_score_adj,
            daemon_oom_score_adj=spec.own_oom_score_adj(),
            can_lower_oom_score_adj=spec.has_sys_resource(),
            enable_unprivileged_ports=config.enable_unprivileged_ports,
            enable_unprivileged_icmp=config.enable_unprivileged_icmp,
            disable_hugetlb_controller=config.disable_hugetlb_controller,
        )
        self._background = BackgroundTasks(log)
        self._logs: dict[str, logs.LogWriter] = {}
        self._forwarders: dict[str, logs.LogForwarder] = {}
        self._stdin_holders: dict[str, int] = {}
        self._exited: dict[str, asyncio.Event] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._cpu_samples: dict[str, tuple[int, int]] = {}

    # -- paths ---------------------------------------------------------------------------

    def sandbox_dir(self, sandbox_id: str) -> str:
        return str(self.state_dir / "sandboxes" / sandbox_id)

    def netns_path(self, sandbox_id: str) -> str:
        return str(self.state_dir / "netns" / sandbox_id)

    def stdio_dir(self, object_id: str) -> str:
        return str(self.state_dir / "io" / object_id)

    def lock(self, object_id: str) -> asyncio.Lock:
        return self._locks.setdefault(object_id, asyncio.Lock())

    # -- records -------------------------------------------------------------------------

    async def _save_sandbox(self, sandbox: Sandbox) -> None:
        await self._save_extension(sandbox.id, SANDBOX_EXTENSION, sandbox.to_json())

    async def _save_container(self, container: Container) -> None:
        await self._save_extension(container.id, CONTAINER_EXTENSION, container.to_json())

    async def _save_extension(self, object_id: str, key: str, value: bytes) -> None:
        record = Record(id=object_id, extensions={key: AnyValue(EXTENSION_TYPE, value)})
        await call(self.metadata.containers.update, NAMESPACE, record, [f"extensions.{key}"])

    async def _create_record(
        self,
        object_id: str,
        kind: str,
        image: ResolvedImage,
        image_name: str,
        oci_spec: dict[str, Any],
        runtime: Any,
        labels: dict[str, str],
        extension: tuple[str, bytes],
    ) -> None:
        options = _runtime_options(runtime.binary_name)
        record = Record(
            id=object_id,
            runtime=RuntimeInfo(runtime.runtime_type, AnyValue(options.type_url, options.value)),
            spec=AnyValue(SPEC_TYPE_URL, json.dumps(oci_spec).encode()),
            image=image_name,
            snapshotter=self.config.snapshotter,
            snapshot_key=object_id,
            labels={**labels, KIND_LABEL: kind},
            extensions={extension[0]: AnyValue(EXTENSION_TYPE, extension[1])},
        )
        await call(self.metadata.containers.create, NAMESPACE, record)

    async def _delete_record(self, object_id: str) -> None:
        with contextlib.suppress(errdefs.NotFound):
            await call(self.metadata.containers.delete, NAMESPACE, object_id)
        with contextlib.suppress(errdefs.NotFound):
            await call(
                self.metadata.snapshots.get(self.config.snapshotter).remove, NAMESPACE, object_id
            )

    # -- images --------------------------------------------------------------------------

    async def _image_for_run(self, ref: str) -> ResolvedImage:
        image = await self.images.find(ref)
        if image is None and self.pull is not None:
            image = await self.pull(ref, None)
        if image is None:
            raise errdefs.NotFound(f"image {ref!r} is not present; pull it first")
        if not await self.images.is_unpacked(image, self.config.snapshotter):
            raise errdefs.FailedPrecondition(
                f"image {ref!r} is not unpacked in snapshotter {self.config.snapshotter!r}"
            )
        return image

    @contextlib.asynccontextmanager
    async def _lease(self, object_id: str) -> AsyncIterator[str]:
        """A lease holding new snapshots until the container record references them.

        Without it the garbage collector could take a snapshot between its prepare
        and the record's creation (containerd's client leases NewContainer too).
        """
        lease_id = f"cri-{object_id}"
        await call(self.metadata.leases.create, NAMESPACE, lease_id, {})
        try:
            yield lease_id
        finally:
            with contextlib.suppress(errdefs.NotFound):
                await call(self.metadata.leases.delete, NAMESPACE, lease_id)

    async def _prepare_rootfs(
        self, object_id: str, image: ResolvedImage, lease: str
    ) -> list[Mount]:
        snapshots = self.metadata.snapshots.get(self.config.snapshotter)
        mounts: list[Mount] = await call(
            snapshots.prepare, NAMESPACE, object_id, image.chain_id, {}, lease
        )
        return mounts

    async def _build_spec(
        self, mounts: list[Mount], needs_rootfs: bool, build: Callable[[str | None], Any]
    ) -> dict[str, Any]:
        def run() -> dict[str, Any]:
            if not needs_rootfs:
                result: dict[str, Any] = build(None)
                return result
            with temp_mount(mounts) as root:
                built: dict[str, Any] = build(root)
                return built

        return await asyncio.to_thread(run)

    # -- tasks ---------------------------------------------------------------------------

    async def _create_task(
        self,
        object_id: str,
        oci_spec: dict[str, Any],
        runtime: Any,
        mounts: list[Mount],
        io: StdioPaths,
    ) -> Task:
        opts = CreateOptions(
            spec=json.dumps(oci_spec).encode(),
            runtime=runtime.runtime_type,
            rootfs=mounts_to_api(mounts),
            stdin=io.stdin,
            stdout=io.stdout,
            stderr=io.stderr,
            terminal=io.terminal,
            options=_runtime_options(runtime.binary_name),
        )
        task, _ = await self.tasks.create(NAMESPACE, object_id, opts)
        return task

    def _task(self, object_id: str) -> Task | None:
        try:
            return self.tasks.get(NAMESPACE, object_id)
        except errdefs.NotFound:
            return None

    async def _delete_task(self, object_id: str) -> None:
        task = self._task(object_id)
        if task is None:
            return
        with contextlib.suppress(errdefs.ContainerdError):
            state = await task.state()
            if state.status in (Status.RUNNING, Status.PAUSED, Status.CREATED):
                await task.kill(signal.SIGKILL, all=True)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(task.wait(), 10)
        with contextlib.suppress(errdefs.NotFound):
            await self.tasks.delete(NAMESPACE, object_id)

    async def pull_with_auth(self, ref: str, auth: cri.AuthConfig | None) -> ResolvedImage:
        if self.pull is None:
            raise errdefs.NotImplemented_("PullImage is not available")
        return await self.pull(ref, auth)

    # -- sandboxes -----------------------------------------------------------------------

    async def run_sandbox(self, config: cri.PodSandboxConfig, handler: str) -> str:
        meta = config.metadata
        if not meta.name or not meta.uid or not meta.namespace:
            raise errdefs.InvalidArgument("sandbox metadata needs name, uid and namespace")
        runtime = self.config.runtime(handler)
        sandbox = Sandbox(
            id=new_id(),
            name=sandbox_name(meta),
            config=config,
            runtime_handler=handler,
            created_at=now_ns(),
        )
        self.index.reserve(sandbox.name, sandbox.id)
        cleanups: list[Callable[[], Awaitable[None]]] = []
        stack = contextlib.AsyncExitStack()
        try:
            image = await self._image_for_run(self.config.sandbox_image)
            directory = self.sandbox_dir(sandbox.id)
            await asyncio.to_thread(spec.sandbox_files, sandbox, directory)
            cleanups.append(lambda: asyncio.to_thread(spec.remove_sandbox_files, directory))
            network = None
            if not sandbox.host_network:
                network = self.cni.network()
                if network is None:
                    raise errdefs.FailedPrecondition(
                        f"cni config not initialized: no network config in {self.cni.conf_dir}"
                    )
                sandbox.netns = self.netns_path(sandbox.id)
                await netns.create(sandbox.netns)
                cleanups.append(lambda: asyncio.to_thread(netns.remove, sandbox.netns))
            # The pod network and the pause container only share the pinned namespace:
            # set them up side by side (CNI plugins take a while).
            jobs = [self._start_pause(sandbox, image, runtime, stack, cleanups)]
            if network is not None:
                jobs.append(self._setup_network(sandbox, network, cleanups))
            results = await asyncio.gather(*jobs, return_exceptions=True)
            for result in results:
                if isinstance(result, BaseException):
                    raise result
            sandbox.ready = True
            await self._save_sandbox(sandbox)
        except BaseException:
            for cleanup in reversed(cleanups):
                try:
                    await cleanup()
                except Exception:  # the original error is the one to report
                    log.exception("cleaning up sandbox %s", sandbox.id)
            self.index.release(sandbox.name)
            raise
        finally:
            await stack.aclose()
        self.index.sandboxes[sandbox.id] = sandbox
        self._watch_sandbox(sandbox)
        return sandbox.id

    async def _setup_network(
        self,
        sandbox: Sandbox,
        network: cnilib.Network,
        cleanups: list[Callable[[], Awaitable[None]]],
    ) -> None:
        ports = [
            cnilib.PortMapping(
                p.host_port, p.container_port, cri.Protocol.Name(p.protocol).lower(), p.host_ip
            )
            for p in sandbox.config.port_mappings
            if p.host_port
        ]
        sandbox.cni_result = await self.cni.add(
            network, sandbox.id, sandbox.netns, self._cni_args(sandbox), ports
        )
        cleanups.append(lambda: self._teardown_network(sandbox))
        ips = cnilib.pod_ips(sandbox.cni_result)
        sandbox.ip = ips[0] if ips else ""
        sandbox.additional_ips = ips[1:]

    async def _start_pause(
        self,
        sandbox: Sandbox,
        image: ResolvedImage,
        runtime: Any,
        stack: contextlib.AsyncExitStack,
        cleanups: list[Callable[[], Awaitable[None]]],
    ) -> None:
        config = sandbox.config
        directory = self.sandbox_dir(sandbox.id)
        lease = await stack.enter_async_context(self._lease(sandbox.id))
        mounts = await self._prepare_rootfs(sandbox.id, image, lease)
        cleanups.append(lambda: self._delete_record(sandbox.id))
        user = str(image.process_config.get("User") or "")
        oci_spec = await self._build_spec(
            mounts,
            _needs_rootfs(user, "", config.linux.security_context.HasField("run_as_user")),
            lambda root: spec.sandbox_spec(sandbox, directory, image.config, root, self.host),
        )
        await self._create_record(
            sandbox.id,
            "sandbox",
            image,
            image.names[0] if image.names else image.id,
            oci_spec,
            runtime,
            dict(config.labels),
            (SANDBOX_EXTENSION, sandbox.to_json()),
        )
        task = await self._create_task(sandbox.id, oci_spec, runtime, mounts, StdioPaths())
        cleanups.append(lambda: self._delete_task(sandbox.id))
        sandbox.pid = await task.start()

    def _cni_args(self, sandbox: Sandbox) -> str:
        meta = sandbox.config.metadata
        return cnilib.cni_args(meta.namespace, meta.name, sandbox.id, meta.uid)

    async def _teardown_network(self, sandbox: Sandbox) -> None:
        if sandbox.cni_result and sandbox.netns:
            await self.cni.remove(
                sandbox.cni_result, sandbox.id, sandbox.netns, self._cni_args(sandbox)
            )
        sandbox.cni_result = {}

    def _watch_sandbox(self, sandbox: Sandbox) -> None:
        task = self._task(sandbox.id)
        if task is None:
            return

        async def watch() -> None:
            with contextlib.suppress(errdefs.ContainerdError):
                await task.wait()
            if sandbox.ready:
                sandbox.ready = False
                with contextlib.suppress(errdefs.ContainerdError):
                    await self._save_sandbox(sandbox)

        self._background.spawn(watch(), name=f"cri sandbox {sandbox.id[:12]}")

    async def stop_sandbox(self, wanted: str) -> None:
        try:
            sandbox = self.index.sandbox(wanted)
        except errdefs.NotFound:
            return  # kubelet may stop a sandbox it already removed
        async with self.lock(sandbox.id):
            for container in self.index.containers_of(sandbox.id):
                await self.stop_container(container.id, 0)
            sandbox.ready = False
            await self._delete_task(sandbox.id)
            await self._teardown_network(sandbox)
            if sandbox.netns:
                await asyncio.to_thread(netns.remove, sandbox.netns)
            await self._save_sandbox(sandbox)

    async def remove_sandbox(self, wanted: str) -> None:
        try:
            sandbox = self.index.sandbox(wanted)
        except errdefs.NotFound:
            return
        await self.stop_sandbox(sandbox.id)
        for container in self.index.containers_of(sandbox.id):
            await self.remove_container(container.id)
        async with self.lock(sandbox.id):
            await self._delete_record(sandbox.id)
            await asyncio.to_thread(spec.remove_sandbox_files, self.sandbox_dir(sandbox.id))
            self.index.sandboxes.pop(sandbox.id, None)
            self.index.release(sandbox.name)
        self._locks.pop(sandbox.id, None)

    # -- containers ----------------------------------------------------------------------

    async def create_container(
        self,
        sandbox_id: str,
        config: cri.ContainerConfig,
        sandbox_config: cri.PodSandboxConfig,
    ) -> str:
        sandbox = self.index.sandbox(sandbox_id)
        if not sandbox.ready:
            raise errdefs.FailedPrecondition(f"sandbox {sandbox.id} is not ready")
        if not config.metadata.name:
            raise errdefs.InvalidArgument("container metadata needs a name")
        if not config.image.image:
            raise errdefs.InvalidArgument("container config needs an image")
        image = await self._image_for_run(config.image.image)
        log_path = ""
        if config.log_path:
            if not sandbox.config.log_directory:
                raise errdefs.InvalidArgument("log_path needs the sandbox's log_directory")
            log_path = os.path.join(sandbox.config.log_directory, config.log_path)
        container = Container(
            id=new_id(),
            name=container_name(config.metadata, sandbox.config.metadata),
            sandbox_id=sandbox.id,
            config=config,
            image_ref=image.id,
            image_name=config.image.image,
            log_path=log_path,
            created_at=now_ns(),
        )
        self.index.reserve(container.name, container.id)
        cleanups: list[Callable[[], Awaitable[None]]] = []
        stack = contextlib.AsyncExitStack()
        try:
            target_pid = 0
            sec = config.linux.security_context
            if sec.namespace_options.pid == cri.TARGET:
                target = self.index.container(sec.namespace_options.target_id)
                target_pid = target.pid if target.state == cri.CONTAINER_RUNNING else 0
            lease = await stack.enter_async_context(self._lease(container.id))
            mounts = await self._prepare_rootfs(container.id, image, lease)
            cleanups.append(lambda: self._delete_record(container.id))
            cleanups.append(lambda: self._remove_image_volumes(container))
            volumes = await self._mount_image_volumes(container, lease)
            user = str(image.process_config.get("User") or "")
            oci_spec = await self._build_spec(
                mounts,
                _needs_rootfs(user, sec.run_as_username, sec.HasField("run_as_user")),
                lambda root: spec.container_spec(
                    container,
                    sandbox,
                    self.sandbox_dir(sandbox.id),
                    image.config,
                    root,
                    sandbox.pid,
                    target_pid,
                    self.host,
                    volumes,
                ),
            )
            container.stdio_dir = self.stdio_dir(container.id)
            container.cgroup = str(oci_spec.get("linux", {}).get("cgroupsPath", ""))
            linux_user = spec.process_user(oci_spec).linux
            container.user = [linux_user.uid, linux_user.gid, *linux_user.supplemental_groups]
            await self._create_record(
                container.id,
                "container",
                image,
                config.image.image,
                oci_spec,
                self.config.runtime(sandbox.runtime_handler),
                {**config.labels, SANDBOX_ID_LABEL: sandbox.id},
                (CONTAINER_EXTENSION, container.to_json()),
            )
            cleanups.append(lambda: asyncio.to_thread(shutil.rmtree, container.stdio_dir, True))
            io = await asyncio.to_thread(self._make_stdio, container)
            readers = self._open_readers(container)
            try:
                await self._create_task(
                    container.id,
                    oci_spec,
                    self.config.runtime(sandbox.runtime_handler),
                    mounts,
                    io,
                )
            except BaseException:
                for _, fd in readers:
                    os.close(fd)
                raise
            cleanups.append(lambda: self._delete_task(container.id))
            self._start_logs(container, logs.LogWriter(container.log_path), readers)
        except BaseException:
            self.close_stdin(container.id)
            for cleanup in reversed(cleanups):
                try:
                    await cleanup()
                except Exception:
                    log.exception("cleaning up container %s", container.id)
            self.index.release(container.name)
            raise
        finally:
            await stack.aclose()
        self.index.containers[container.id] = container
        self._publish(container, cri.CONTAINER_CREATED_EVENT)
        return container.id

    def image_volume_dir(self, container_id: str) -> str:
        return str(self.state_dir / "image-volumes" / container_id)

    async def _mount_image_volumes(self, container: Container, lease: str) -> dict[int, str]:
        """Mount each image volume (a read-only view of its image) on the host; index -> path.

        The container binds the path (or its ``image_sub_path``) read-only.
        """
        snapshots = self.metadata.snapshots.get(self.config.snapshotter)
        paths: dict[int, str] = {}
        for i, m in enumerate(container.config.mounts):
            if not (m.HasField("image") and m.image.image):
                continue
            if not m.readonly:
                raise errdefs.InvalidArgument(
                    f"image volume {m.image.image!r} at {m.container_path} must be read-only"
                )
            image = await self._image_for_run(m.image.image)
            key = f"{container.id}-image-volume-{i}"
            view = await call(
                snapshots.view, NAMESPACE, key, image.chain_id, {GC_ROOT_LABEL: "cri"}, lease
            )
            container.image_volumes[str(i)] = image.id
            target = os.path.join(self.image_volume_dir(container.id), str(i))
            await asyncio.to_thread(_mount_on, view, target)
            source = os.path.normpath(os.path.join(target, m.image_sub_path.lstrip("/")))
            if not source.startswith(target) or not os.path.exists(source):
                raise errdefs.NotFound(
                    f"sub path {m.image_sub_path!r} does not exist in image {m.image.image!r}"
                )
            paths[i] = source
        return paths

    async def _remove_image_volumes(self, container: Container) -> None:
        directory = self.image_volume_dir(container.id)
        if os.path.isdir(directory):
            await asyncio.to_thread(_unmount_tree, directory)
        snapshots = self.metadata.snapshots.get(self.config.snapshotter)
        for i in list(container.image_volumes):
            with contextlib.suppress(errdefs.NotFound):
                await call(snapshots.remove, NAMESPACE, f"{container.id}-image-volume-{i}")
        container.image_volumes.clear()

    def _make_stdio(self, container: Container) -> StdioPaths:
        os.makedirs(container.stdio_dir, mode=0o700, exist_ok=True)
        paths = {}
        for name in ("stdout", "stderr") if not container.config.tty else ("stdout",):
            path = os.path.join(container.stdio_dir, name)
            logs.make_fifo(path)
            paths[name] = path
        stdin = ""
        if container.config.stdin:
            stdin = os.path.join(container.stdio_dir, "stdin")
            logs.make_fifo(stdin)
            self._hold_stdin(container)
        return StdioPaths(
            stdin=stdin,
            stdout=paths["stdout"],
            stderr=paths.get("stderr", ""),
            terminal=container.config.tty,
        )

    def _open_readers(self, container: Container) -> list[tuple[str, int]]:
        readers = []
        for name in ("stdout", "stderr"):
            path = os.path.join(container.stdio_dir, name)
            if os.path.exists(path):
                readers.append((name, logs.open_fifo_reader(path)))
        return readers

    def _start_logs(
        self, container: Container, writer: logs.LogWriter, readers: list[tuple[str, int]]
    ) -> None:
        forwarder = logs.LogForwarder(writer, readers, self.config.max_container_log_line_size)
        forwarder.start()
        self._hold_stdin(container)
        self._logs[container.id] = writer
        self._forwarders[container.id] = forwarder

    def _hold_stdin(self, container: Container) -> None:
        """A writer on the stdin FIFO for the container's life, as containerd holds one:
        the shim reads no end of input before or between attaches (close_stdin ends it)."""
        stdin = os.path.join(container.stdio_dir, "stdin")
        held = container.id in self._stdin_holders
        if container.config.stdin and os.path.exists(stdin) and not held:
            self._stdin_holders[container.id] = os.open(stdin, os.O_RDWR | os.O_CLOEXEC)

    def close_stdin(self, container_id: str) -> None:
        fd = self._stdin_holders.pop(container_id, None)
        if fd is not None:
            os.close(fd)

    async def start_container(self, wanted: str) -> None:
        container = self.index.container(wanted)
        async with self.lock(container.id):
            if container.state != cri.CONTAINER_CREATED:
                raise errdefs.FailedPrecondition(
                    f"container {container.id} is {cri.ContainerState.Name(container.state)}, "
                    "not CONTAINER_CREATED"
                )
            sandbox = self.index.sandboxes.get(container.sandbox_id)
            if sandbox is None or not sandbox.ready:
                raise errdefs.FailedPrecondition(
                    f"sandbox of container {container.id} is not ready"
                )
            task = self._task(container.id)
            if task is None:
                raise errdefs.FailedPrecondition(f"container {container.id} has no task")
            try:
                container.pid = await task.start()
            except errdefs.ContainerdError as exc:
                container.state = cri.CONTAINER_EXITED
                container.finished_at = now_ns()
                container.exit_code = 128
                container.reason = "StartError"
                container.message = str(exc)
                await self._save_container(container)
                raise
            container.state = cri.CONTAINER_RUNNING
            container.started_at = now_ns()
            await self._save_container(container)
            self._publish(container, cri.CONTAINER_STARTED_EVENT)
            self._watch_container(container, task)

    def _watch_container(self, container: Container, task: Task) -> None:
        exited = self._exited.setdefault(container.id, asyncio.Event())

        async def watch() -> None:
            try:
                waited = await task.wait()
                code = waited.exit_status
                finished = (
                    waited.exited_at.ToNanoseconds() if waited.exited_at.seconds else now_ns()
                )
            except errdefs.ContainerdError:
                code, finished = 255, now_ns()
            forwarder = self._forwarders.get(container.id)
            if forwarder is not None:
                await asyncio.to_thread(forwarder.wait, LOG_DRAIN_SECONDS)
            # Before the task (and with it the cgroup) goes: was it the OOM killer?
            oom = await asyncio.to_thread(_oom_killed, container.cgroup)
            with contextlib.suppress(errdefs.ContainerdError):
                await self.tasks.delete(NAMESPACE, container.id)
            container.state = cri.CONTAINER_EXITED
            container.exit_code = code
            container.finished_at = finished
            container.reason = "OOMKilled" if oom else ("Completed" if code == 0 else "Error")
            container.pid = 0
            self.close_stdin(container.id)
            with contextlib.suppress(errdefs.ContainerdError):
                await self._save_container(container)
            exited.set()
            self._publish(container, cri.CONTAINER_STOPPED_EVENT)

        self._background.spawn(watch(), name=f"cri container {container.id[:12]}")

    async def stop_container(self, wanted: str, timeout: int) -> None:
        try:
            container = self.index.container(wanted)
        except errdefs.NotFound:
            return  # idempotent, as the CRI asks
        if container.state != cri.CONTAINER_RUNNING:
            if container.state == cri.CONTAINER_CREATED:
                await self._delete_task(container.id)
                container.state = cri.CONTAINER_EXITED
                container.finished_at = now_ns()
                container.exit_code = 0
                await self._save_container(container)
            return
        task = self._task(container.id)
        exited = self._exited.setdefault(container.id, asyncio.Event())
        if task is not None and timeout > 0:
            stop_signal = await self._stop_signal(container)
            with contextlib.suppress(errdefs.NotFound):
                await task.kill(stop_signal)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(exited.wait(), timeout)
        if task is not None and not exited.is_set():
            with contextlib.suppress(errdefs.NotFound):
                await task.kill(signal.SIGKILL, all=True)
        try:
            await asyncio.wait_for(exited.wait(), 30)
        except TimeoutError as exc:
            raise errdefs.DeadlineExceeded(f"container {container.id} did not stop") from exc

    async def _stop_signal(self, container: Container) -> int:
        """The image's StopSignal (a name or a number), else SIGTERM."""
        image = await self.images.find(container.image_ref)
        name = str(image.process_config.get("StopSignal") or "") if image else ""
        if name.isdigit():
            return int(name)
        try:
            return int(signal.Signals[name if name.startswith("SIG") else "SIG" + name])
        except KeyError:
            return signal.SIGTERM

    async def remove_container(self, wanted: str) -> None:
        try:
            container = self.index.container(wanted)
        except errdefs.NotFound:
            return
        if container.state == cri.CONTAINER_RUNNING:
            await self.stop_container(container.id, 0)
        async with self.lock(container.id):
            await self._delete_task(container.id)
            writer = self._logs.pop(container.id, None)
            forwarder = self._forwarders.pop(container.id, None)
            self.close_stdin(container.id)
            if forwarder is not None:
                await asyncio.to_thread(forwarder.wait, LOG_DRAIN_SECONDS)
            if writer is not None:
                writer.close()
            await self._remove_image_volumes(container)
            await self._delete_record(container.id)
            await asyncio.to_thread(shutil.rmtree, self.stdio_dir(container.id), True)
            self.index.containers.pop(container.id, None)
            self.index.release(container.name)
            self._exited.pop(container.id, None)
            self._cpu_samples.pop(container.id, None)
        self._locks.pop(container.id, None)
        self._publish(container, cri.CONTAINER_DELETED_EVENT)

    def reopen_log(self, wanted: str) -> None:
        container = self.index.container(wanted)
        if container.state != cri.CONTAINER_RUNNING:
            raise errdefs.FailedPrecondition(f"container {container.id} is not running")
        writer = self._logs.get(container.id)
        if writer is not None:
            writer.reopen()

    async def update_resources(self, wanted: str, resources: cri.LinuxContainerResources) -> None:
        container = self.index.container(wanted)
        if container.state not in (cri.CONTAINER_RUNNING, cri.CONTAINER_CREATED):
            raise errdefs.FailedPrecondition(f"container {container.id} is not running")
        task = self._task(container.id)
        if task is None:
            raise errdefs.FailedPrecondition(f"container {container.id} has no task")
        value = json.dumps(spec.resources_json(resources)).encode()
        await task.update(any_pb2.Any(type_url=RESOURCES_TYPE_URL, value=value), {})
        container.config.linux.resources.CopyFrom(resources)
        await self._save_container(container)

    async def exec_sync(
        self, wanted: str, cmd: list[str], timeout: int
    ) -> tuple[bytes, bytes, int]:
        container = self.index.container(wanted)
        if container.state != cri.CONTAINER_RUNNING:
            raise errdefs.FailedPrecondition(f"container {container.id} is not running")
        if not cmd:
            raise errdefs.InvalidArgument("exec needs a command")
        task = self._task(container.id)
        if task is None:
            raise errdefs.FailedPrecondition(f"container {container.id} is not running")
        record = await call(self.metadata.containers.get, NAMESPACE, container.id)
        assert record.spec is not None
        process = dict(json.loads(record.spec.value)["process"])
        process["args"] = list(cmd)
        process["terminal"] = False
        exec_id = new_id()[:32]
        directory = os.path.join(self.stdio_dir(container.id), "exec-" + exec_id)
        await asyncio.to_thread(os.makedirs, directory, 0o700, True)
        out_path, err_path = os.path.join(directory, "stdout"), os.path.join(directory, "stderr")
        logs.make_fifo(out_path)
        logs.make_fifo(err_path)
        out_fd, err_fd = logs.open_fifo_reader(out_path), logs.open_fifo_reader(err_path)
        # Writers of our own until the process ended: the shim may open its ends
        # only at start, and a reader must not see end of file before that.
        holders = [
            os.open(p, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC) for p in (out_path, err_path)
        ]
        out_task = asyncio.create_task(asyncio.to_thread(_read_capped, out_fd))
        err_task = asyncio.create_task(asyncio.to_thread(_read_capped, err_fd))
        try:
            proc = await task.exec(
                exec_id,
                StdioPaths(stdout=out_path, stderr=err_path),
                any_pb2.Any(type_url=PROCESS_TYPE_URL, value=json.dumps(process).encode()),
            )
            try:
                await proc.start()
                waited = await asyncio.wait_for(proc.wait(), timeout if timeout > 0 else None)
            except TimeoutError:
                with contextlib.suppress(errdefs.ContainerdError):
                    await proc.kill(signal.SIGKILL)
                with contextlib.suppress(errdefs.ContainerdError, TimeoutError):
                    await asyncio.wait_for(proc.wait(), 10)
                raise errdefs.DeadlineExceeded(
                    f"command {cmd!r} timed out after {timeout}s"
                ) from None
            finally:
                with contextlib.suppress(errdefs.ContainerdError):
                    await proc.delete()
                for fd in holders:
                    os.close(fd)
                holders = []
            stdout = await asyncio.wait_for(out_task, LOG_DRAIN_SECONDS * 5)
            stderr = await asyncio.wait_for(err_task, LOG_DRAIN_SECONDS * 5)
            return stdout, stderr, waited.exit_status
        finally:
            for fd in holders:
                os.close(fd)
            for reader in (out_task, err_task):
                with contextlib.suppress(BaseException):
                    await asyncio.wait_for(reader, LOG_DRAIN_SECONDS)
            await asyncio.to_thread(shutil.rmtree, directory, True)

    def _publish(self, container: Container, kind: int) -> None:
        self.events.publish(
            cri.ContainerEventResponse(
                container_id=container.id,
                container_event_type=kind,  # type: ignore[arg-type]
                created_at=now_ns(),
            )
        )

    # -- stats ---------------------------------------------------------------------------

    def cpu_rate(self, object_id: str, timestamp: int, usage: int) -> int:
        """Nano cores since the previous sample of ``object_id`` (0 on the first)."""
        previous = self._cpu_samples.get(object_id)
        self._cpu_samples[object_id] = (timestamp, usage)
        if previous is None or timestamp <= previous[0] or usage < previous[1]:
            return 0
        return (usage - previous[1]) * 1_000_000_000 // (timestamp - previous[0])

    # -- recovery ------------------------------------------------------------------------

    async def recover(self) -> None:
        """Rebuild the index from the records of namespace k8s.io and the recovered tasks."""
        try:
            records = await call(self.metadata.containers.list, NAMESPACE)
        except errdefs.NotFound:
            return
        for record in records:
            if SANDBOX_EXTENSION in record.extensions:
                sandbox = Sandbox.from_json(record.extensions[SANDBOX_EXTENSION].value)
                self.index.reserve(sandbox.name, sandbox.id)
                self.index.sandboxes[sandbox.id] = sandbox
                task = self._task(sandbox.id)
                alive = False
                if task is not None:
                    with contextlib.suppress(errdefs.ContainerdError):
                        alive = (await task.state()).status == Status.RUNNING
                if sandbox.ready and not alive:
                    sandbox.ready = False
                    await self._save_sandbox(sandbox)
                if alive:
                    self._watch_sandbox(sandbox)
        for record in records:
            if CONTAINER_EXTENSION not in record.extensions:
                continue
            container = Container.from_json(record.extensions[CONTAINER_EXTENSION].value)
            self.index.reserve(container.name, container.id)
            self.index.containers[container.id] = container
            task = self._task(container.id)
            if container.state == cri.CONTAINER_RUNNING and task is not None:
                self._resume_logs(container)
                self._watch_container(container, task)
            elif container.state == cri.CONTAINER_RUNNING:
                container.state = cri.CONTAINER_EXITED
                container.exit_code = 255
                container.reason = "Unknown"
                container.finished_at = now_ns()
                await self._save_container(container)
            elif container.state == cri.CONTAINER_CREATED and task is not None:
                self._resume_logs(container)

    def _resume_logs(self, container: Container) -> None:
        try:
            readers = self._open_readers(container)
        except OSError as exc:
            log.warning("logs of container %s: %s", container.id, exc)
            return
        self._start_logs(container, logs.LogWriter(container.log_path), readers)

    async def close(self) -> None:
        for task in list(self._background):
            task.cancel()


def _mount_on(mounts: list[Mount], target: str) -> None:
    os.makedirs(target, mode=0o700, exist_ok=True)
    mount_all(mounts, target)


def _unmount_tree(directory: str) -> None:
    for name in os.listdir(directory):
        path = os.path.join(directory, name)
        try:
            unmount_all(path)
        except errdefs.ContainerdError:
            unmount_all(path, flags=MNT_DETACH)
    shutil.rmtree(directory, ignore_errors=True)


def _oom_killed(cgroup: str) -> bool:
    """Whether the OOM killer acted in the container's cgroup."""
    return oom_kill_count(cgroup) > 0


def oom_kill_count(cgroup: str) -> int:
    """How often the OOM killer acted in the container's cgroup (v1 or v2)."""
    if not cgroup:
        return 0
    relative = cgroup.lstrip("/")
    candidates = (
        (f"/sys/fs/cgroup/memory/{relative}/memory.oom_control", "oom_kill"),
        (f"/sys/fs/cgroup/{relative}/memory.events", "oom_kill"),
        (f"/sys/fs/cgroup/unified/{relative}/memory.events", "oom_kill"),
    )
    for path, key in candidates:
        try:
            with open(path) as f:
                for line in f:
                    name, _, value = line.partition(" ")
                    if name == key:
                        return int(value or 0)
        except (OSError, ValueError):
            continue
    return 0


def _read_capped(fd: int) -> bytes:
    chunks: list[bytes] = []
    kept = 0
    logs.set_blocking(fd)
    try:
        while True:
            chunk = os.read(fd, logs.CHUNK)
            if not chunk:
                break
            if kept < EXEC_SYNC_OUTPUT_CAP:
                piece = chunk[: EXEC_SYNC_OUTPUT_CAP - kept]
                chunks.append(piece)
                kept += len(piece)
    finally:
        os.close(fd)
    return b"".join(chunks)
