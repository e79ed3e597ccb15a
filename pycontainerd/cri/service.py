"""runtime.v1's RuntimeService and ImageService: thin adapters over CRIManager and ImageManager."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections.abc import AsyncIterator, Mapping

from google.protobuf import json_format

from pycontainerd import __version__, errdefs
from pycontainerd.api.cgroups.v1 import metrics_pb2
from pycontainerd.api.cri.runtime.v1 import api_pb2 as cri
from pycontainerd.h2grpc import Server, ServicerContext
from pycontainerd.metadata.placement import call
from pycontainerd.services.base import rpc

from . import metrics
from .images import ImageManager, ResolvedImage, filesystem_usage
from .manager import CRIManager, oom_kill_count
from .state import NAMESPACE, Container, Sandbox, now_ns
from .streaming import checks as streaming
from .streaming.server import Request as StreamRequest
from .streaming.server import StreamServer

log = logging.getLogger(__name__)

RUNTIME_NAME = "pycontainerd"
RUNTIME_API_VERSION = "v1"
KUBE_API_VERSION = "0.1.0"
STREAMING_LATER = "no streaming server runs in this daemon"


def _labels_match(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def _not_yet(what: str) -> errdefs.NotImplemented_:
    return errdefs.NotImplemented_(
        f"{what} is not implemented by pycontainerd yet: {STREAMING_LATER}"
    )


class RuntimeService:
    def __init__(self, manager: CRIManager, streams: StreamServer | None = None) -> None:
        self.m = manager
        self.streams = streams

    # -- runtime -------------------------------------------------------------------------

    @rpc
    async def Version(self, request: cri.VersionRequest, context: ServicerContext):  # noqa: N802
        return cri.VersionResponse(
            version=KUBE_API_VERSION,
            runtime_name=RUNTIME_NAME,
            runtime_version=__version__,
            runtime_api_version=RUNTIME_API_VERSION,
        )

    @rpc
    async def Status(self, request: cri.StatusRequest, context: ServicerContext):  # noqa: N802
        network = self.m.cni.network()
        conditions = [
            cri.RuntimeCondition(type="RuntimeReady", status=True),
            cri.RuntimeCondition(
                type="NetworkReady",
                status=network is not None,
                reason="" if network else "NetworkPluginNotReady",
                message="" if network else f"cni config not initialized in {self.m.cni.conf_dir}",
            ),
        ]
        handlers = [
            cri.RuntimeHandler(
                name=name,
                # runc (and crun) apply "rro" with mount_setattr(2).
                features=cri.RuntimeHandlerFeatures(recursive_read_only_mounts=True),
            )
            for name in sorted(self.m.config.runtimes)
        ]
        handlers.insert(
            0,
            cri.RuntimeHandler(
                name="", features=cri.RuntimeHandlerFeatures(recursive_read_only_mounts=True)
            ),
        )
        info: dict[str, str] = {}
        if request.verbose:
            cfg = self.m.config
            info["config"] = json.dumps(
                {
                    "sandboxImage": cfg.sandbox_image,
                    "cni": {"binDir": cfg.cni_bin_dir, "confDir": cfg.cni_conf_dir},
                    "defaultRuntimeName": cfg.default_runtime,
                    "snapshotter": cfg.snapshotter,
                    "restrictOOMScoreAdj": cfg.restrict_oom_score_adj,
                }
            )
            info["lastCNILoadStatus"] = "OK" if network else "cni config not initialized"
            if network is not None:
                info["cniconfig"] = json.dumps(
                    {"name": network.name, "plugins": list(network.plugins)}
                )
        return cri.StatusResponse(
            status=cri.RuntimeStatus(conditions=conditions),
            info=info,
            runtime_handlers=handlers,
            features=cri.RuntimeFeatures(supplemental_groups_policy=True),
        )

    @rpc
    async def RuntimeConfig(self, request: cri.RuntimeConfigRequest, context):  # noqa: N802
        return cri.RuntimeConfigResponse(
            linux=cri.LinuxRuntimeConfiguration(cgroup_driver=cri.CGROUPFS)
        )

    @rpc
    async def UpdateRuntimeConfig(self, request: cri.UpdateRuntimeConfigRequest, context):  # noqa: N802
        return cri.UpdateRuntimeConfigResponse()

    # -- sandboxes -----------------------------------------------------------------------

    @rpc
    async def RunPodSandbox(self, request: cri.RunPodSandboxRequest, context):  # noqa: N802
        if not request.HasField("config"):
            raise errdefs.InvalidArgument("RunPodSandbox needs a config")
        sandbox_id = await self.m.run_sandbox(request.config, request.runtime_handler)
        return cri.RunPodSandboxResponse(pod_sandbox_id=sandbox_id)

    @rpc
    async def StopPodSandbox(self, request: cri.StopPodSandboxRequest, context):  # noqa: N802
        if not request.pod_sandbox_id:
            raise errdefs.InvalidArgument("pod_sandbox_id is required")
        await self.m.stop_sandbox(request.pod_sandbox_id)
        return cri.StopPodSandboxResponse()

    @rpc
    async def RemovePodSandbox(self, request: cri.RemovePodSandboxRequest, context):  # noqa: N802
        if not request.pod_sandbox_id:
            raise errdefs.InvalidArgument("pod_sandbox_id is required")
        await self.m.remove_sandbox(request.pod_sandbox_id)
        return cri.RemovePodSandboxResponse()

    def _sandbox_state(self, sandbox: Sandbox) -> int:
        return cri.SANDBOX_READY if sandbox.ready else cri.SANDBOX_NOTREADY

    @rpc
    async def PodSandboxStatus(self, request: cri.PodSandboxStatusRequest, context):  # noqa: N802
        sandbox = self.m.index.sandbox(request.pod_sandbox_id)
        config = sandbox.config
        status = cri.PodSandboxStatus(
            id=sandbox.id,
            metadata=config.metadata,
            state=self._sandbox_state(sandbox),  # type: ignore[arg-type]
            created_at=sandbox.created_at,
            network=cri.PodSandboxNetworkStatus(
                ip=sandbox.ip,
                additional_ips=[cri.PodIP(ip=ip) for ip in sandbox.additional_ips],
            ),
            linux=cri.LinuxPodSandboxStatus(
                namespaces=cri.Namespace(options=config.linux.security_context.namespace_options)
            ),
            labels=config.labels,
            annotations=config.annotations,
            runtime_handler=sandbox.runtime_handler,
        )
        info: dict[str, str] = {}
        if request.verbose:
            info["info"] = json.dumps(
                {
                    "pid": sandbox.pid,
                    "netNamespacePath": sandbox.netns,
                    "runtimeHandler": sandbox.runtime_handler,
                    "cniResult": sandbox.cni_result,
                    "config": json_format.MessageToDict(config),
                }
            )
        containers = [self._container_status(c) for c in self.m.index.containers_of(sandbox.id)]
        return cri.PodSandboxStatusResponse(
            status=status, info=info, containers_statuses=containers, timestamp=now_ns()
        )

    @rpc
    async def ListPodSandbox(self, request: cri.ListPodSandboxRequest, context):  # noqa: N802
        f = request.filter
        items = []
        for sandbox in sorted(self.m.index.sandboxes.values(), key=lambda s: s.created_at):
            if f.id and not sandbox.id.startswith(f.id):
                continue
            if f.HasField("state") and f.state.state != self._sandbox_state(sandbox):
                continue
            if not _labels_match(f.label_selector, sandbox.config.labels):
                continue
            items.append(
                cri.PodSandbox(
                    id=sandbox.id,
                    metadata=sandbox.config.metadata,
                    state=self._sandbox_state(sandbox),  # type: ignore[arg-type]
                    created_at=sandbox.created_at,
                    labels=sandbox.config.labels,
                    annotations=sandbox.config.annotations,
                    runtime_handler=sandbox.runtime_handler,
                )
            )
        return cri.ListPodSandboxResponse(items=items)

    # -- containers ----------------------------------------------------------------------

    @rpc
    async def CreateContainer(self, request: cri.CreateContainerRequest, context):  # noqa: N802
        if not request.HasField("config"):
            raise errdefs.InvalidArgument("CreateContainer needs a config")
        container_id = await self.m.create_container(
            request.pod_sandbox_id, request.config, request.sandbox_config
        )
        return cri.CreateContainerResponse(container_id=container_id)

    @rpc
    async def StartContainer(self, request: cri.StartContainerRequest, context):  # noqa: N802
        await self.m.start_container(request.container_id)
        return cri.StartContainerResponse()

    @rpc
    async def StopContainer(self, request: cri.StopContainerRequest, context):  # noqa: N802
        await self.m.stop_container(request.container_id, int(request.timeout))
        return cri.StopContainerResponse()

    @rpc
    async def RemoveContainer(self, request: cri.RemoveContainerRequest, context):  # noqa: N802
        if not request.container_id:
            raise errdefs.InvalidArgument("container_id is required")
        await self.m.remove_container(request.container_id)
        return cri.RemoveContainerResponse()

    @rpc
    async def ListContainers(self, request: cri.ListContainersRequest, context):  # noqa: N802
        f = request.filter
        found = []
        for c in sorted(self.m.index.containers.values(), key=lambda c: c.created_at):
            if f.id and not c.id.startswith(f.id):
                continue
            if f.pod_sandbox_id and not c.sandbox_id.startswith(f.pod_sandbox_id):
                continue
            if f.HasField("state") and f.state.state != c.state:
                continue
            if not _labels_match(f.label_selector, c.config.labels):
                continue
            found.append(
                cri.Container(
                    id=c.id,
                    pod_sandbox_id=c.sandbox_id,
                    metadata=c.config.metadata,
                    image=cri.ImageSpec(image=c.image_ref),
                    image_ref=c.image_ref,
                    state=c.state,  # type: ignore[arg-type]
                    created_at=c.created_at,
                    labels=c.config.labels,
                    annotations=c.config.annotations,
                    image_id=c.image_ref,
                )
            )
        return cri.ListContainersResponse(containers=found)

    def _container_status(self, c: Container) -> cri.ContainerStatus:
        mounts = []
        for i, m in enumerate(c.config.mounts):
            reported = cri.Mount()
            reported.CopyFrom(m)
            if str(i) in c.image_volumes:
                reported.image.image_ref = c.image_volumes[str(i)]
            mounts.append(reported)
        return cri.ContainerStatus(
            id=c.id,
            metadata=c.config.metadata,
            state=c.state,  # type: ignore[arg-type]
            created_at=c.created_at,
            started_at=c.started_at,
            finished_at=c.finished_at,
            exit_code=c.exit_code,
            image=cri.ImageSpec(image=c.image_name),
            image_ref=c.image_ref,
            reason=c.reason,
            message=c.message,
            labels=c.config.labels,
            annotations=c.config.annotations,
            mounts=mounts,
            log_path=c.log_path,
            resources=cri.ContainerResources(linux=c.config.linux.resources)
            if c.config.linux.HasField("resources")
            else None,
            image_id=c.image_ref,
            user=cri.ContainerUser(
                linux=cri.LinuxContainerUser(
                    uid=c.user[0], gid=c.user[1], supplemental_groups=c.user[2:]
                )
            )
            if c.user
            else None,
        )

    @rpc
    async def ContainerStatus(self, request: cri.ContainerStatusRequest, context):  # noqa: N802
        c = self.m.index.container(request.container_id)
        info: dict[str, str] = {}
        if request.verbose:
            info["info"] = json.dumps(
                {
                    "sandboxID": c.sandbox_id,
                    "pid": c.pid,
                    "logPath": c.log_path,
                    "config": json_format.MessageToDict(c.config),
                }
            )
        return cri.ContainerStatusResponse(status=self._container_status(c), info=info)

    @rpc
    async def UpdateContainerResources(self, request: cri.UpdateContainerResourcesRequest, context):  # noqa: N802
        await self.m.update_resources(request.container_id, request.linux)
        return cri.UpdateContainerResourcesResponse()

    @rpc
    async def ReopenContainerLog(self, request: cri.ReopenContainerLogRequest, context):  # noqa: N802
        self.m.reopen_log(request.container_id)
        return cri.ReopenContainerLogResponse()

    @rpc
    async def ExecSync(self, request: cri.ExecSyncRequest, context):  # noqa: N802
        stdout, stderr, code = await self.m.exec_sync(
            request.container_id, list(request.cmd), int(request.timeout)
        )
        return cri.ExecSyncResponse(stdout=stdout, stderr=stderr, exit_code=code)

    @rpc
    async def Exec(self, request: cri.ExecRequest, context):  # noqa: N802
        return cri.ExecResponse(url=self._url("exec", streaming.check_exec(self.m, request)))

    @rpc
    async def Attach(self, request: cri.AttachRequest, context):  # noqa: N802
        return cri.AttachResponse(url=self._url("attach", streaming.check_attach(self.m, request)))

    @rpc
    async def PortForward(self, request: cri.PortForwardRequest, context):  # noqa: N802
        checked = streaming.check_portforward(self.m, request)
        return cri.PortForwardResponse(url=self._url("portforward", checked))

    def _url(self, kind: str, request: StreamRequest) -> str:
        if self.streams is None:
            raise _not_yet(kind)
        return self.streams.url(kind, request)

    # -- stats ---------------------------------------------------------------------------

    async def _metrics(self, object_id: str) -> metrics_pb2.Metrics | None:
        task = self.m._task(object_id)
        if task is None:
            return None
        try:
            raw = await task.stats()
        except errdefs.ContainerdError as exc:
            log.debug("stats of %s: %s", object_id, exc)
            return None
        metrics = metrics_pb2.Metrics()
        if raw.type_url.rsplit("/", 1)[-1] == metrics.DESCRIPTOR.full_name:
            metrics.ParseFromString(raw.value)
        else:
            log.debug("stats of %s: unexpected type %s", object_id, raw.type_url)
            return None
        return metrics

    async def _container_stats(self, c: Container) -> cri.ContainerStats:
        now = now_ns()
        stats = cri.ContainerStats(
            attributes=cri.ContainerAttributes(
                id=c.id,
                metadata=c.config.metadata,
                labels=c.config.labels,
                annotations=c.config.annotations,
            )
        )
        metrics = await self._metrics(c.id)
        if metrics is not None:
            total = metrics.cpu.usage.total
            stats.cpu.CopyFrom(
                cri.CpuUsage(
                    timestamp=now,
                    usage_core_nano_seconds=cri.UInt64Value(value=total),
                    usage_nano_cores=cri.UInt64Value(value=self.m.cpu_rate(c.id, now, total)),
                )
            )
            mem = metrics.memory
            usage = mem.usage.usage
            working = usage - min(usage, mem.total_inactive_file)
            stats.memory.CopyFrom(
                cri.MemoryUsage(
                    timestamp=now,
                    working_set_bytes=cri.UInt64Value(value=working),
                    usage_bytes=cri.UInt64Value(value=usage),
                    rss_bytes=cri.UInt64Value(value=mem.total_rss or mem.rss),
                    page_faults=cri.UInt64Value(value=mem.total_pg_fault or mem.pg_fault),
                    major_page_faults=cri.UInt64Value(
                        value=mem.total_pg_maj_fault or mem.pg_maj_fault
                    ),
                    available_bytes=cri.UInt64Value(
                        value=max(mem.usage.limit - working, 0) if mem.usage.limit < 1 << 62 else 0
                    ),
                )
            )
        else:
            stats.cpu.CopyFrom(cri.CpuUsage(timestamp=now))
            stats.memory.CopyFrom(cri.MemoryUsage(timestamp=now))
        snapshots = self.m.metadata.snapshots.get(self.m.config.snapshotter)
        try:
            usage_info = await call(snapshots.usage, NAMESPACE, c.id)
            used, inodes = usage_info.size, usage_info.inodes
        except errdefs.ContainerdError:
            used = inodes = 0
        stats.writable_layer.CopyFrom(
            cri.FilesystemUsage(
                timestamp=now,
                fs_id=cri.FilesystemIdentifier(mountpoint=self._snapshot_root()),
                used_bytes=cri.UInt64Value(value=used),
                inodes_used=cri.UInt64Value(value=inodes),
            )
        )
        return stats

    def _snapshot_root(self) -> str:
        return str(self.m.snapshot_root)

    @rpc
    async def ContainerStats(self, request: cri.ContainerStatsRequest, context):  # noqa: N802
        c = self.m.index.container(request.container_id)
        return cri.ContainerStatsResponse(stats=await self._container_stats(c))

    @rpc
    async def ListContainerStats(self, request: cri.ListContainerStatsRequest, context):  # noqa: N802
        f = request.filter
        selected = [
            c
            for c in self.m.index.containers.values()
            if (not f.id or c.id.startswith(f.id))
            and (not f.pod_sandbox_id or c.sandbox_id.startswith(f.pod_sandbox_id))
            and _labels_match(f.label_selector, c.config.labels)
        ]
        stats = await asyncio.gather(*(self._container_stats(c) for c in selected))
        return cri.ListContainerStatsResponse(stats=list(stats))

    async def _sandbox_stats(self, sandbox: Sandbox) -> cri.PodSandboxStats:
        now = now_ns()
        containers = [
            await self._container_stats(c)
            for c in self.m.index.containers_of(sandbox.id)
            if c.state == cri.CONTAINER_RUNNING
        ]
        cpu = sum(c.cpu.usage_core_nano_seconds.value for c in containers)
        mem = sum(c.memory.working_set_bytes.value for c in containers)
        pause = await self._metrics(sandbox.id)
        if pause is not None:
            cpu += pause.cpu.usage.total
        counts = await asyncio.gather(
            *(self._pid_count(i) for i in [sandbox.id, *(c.attributes.id for c in containers)])
        )
        processes = sum(counts)
        network = cri.NetworkUsage(timestamp=now)
        counters = (
            await asyncio.to_thread(metrics.network_counters, sandbox.pid)
            if sandbox.pid and not sandbox.host_network
            else {}
        )
        if counters:
            network.default_interface.CopyFrom(
                cri.NetworkInterfaceUsage(
                    name="eth0",
                    rx_bytes=cri.UInt64Value(value=counters["receive_bytes"]),
                    rx_errors=cri.UInt64Value(value=counters["receive_errors"]),
                    tx_bytes=cri.UInt64Value(value=counters["transmit_bytes"]),
                    tx_errors=cri.UInt64Value(value=counters["transmit_errors"]),
                )
            )
            network.interfaces.append(network.default_interface)
        linux = cri.LinuxPodSandboxStats(
            cpu=cri.CpuUsage(
                timestamp=now,
                usage_core_nano_seconds=cri.UInt64Value(value=cpu),
                usage_nano_cores=cri.UInt64Value(value=self.m.cpu_rate(sandbox.id, now, cpu)),
            ),
            memory=cri.MemoryUsage(timestamp=now, working_set_bytes=cri.UInt64Value(value=mem)),
            network=network,
            process=cri.ProcessUsage(timestamp=now, process_count=cri.UInt64Value(value=processes)),
            containers=containers,
        )
        return cri.PodSandboxStats(
            attributes=cri.PodSandboxAttributes(
                id=sandbox.id,
                metadata=sandbox.config.metadata,
                labels=sandbox.config.labels,
                annotations=sandbox.config.annotations,
            ),
            linux=linux,
        )

    async def _pid_count(self, container_id: str) -> int:
        task = self.m._task(container_id)
        if task is None:
            return 0
        try:
            return len(await task.pids())
        except errdefs.ContainerdError:
            return 0

    @rpc
    async def PodSandboxStats(self, request: cri.PodSandboxStatsRequest, context):  # noqa: N802
        sandbox = self.m.index.sandbox(request.pod_sandbox_id)
        return cri.PodSandboxStatsResponse(stats=await self._sandbox_stats(sandbox))

    @rpc
    async def ListPodSandboxStats(self, request: cri.ListPodSandboxStatsRequest, context):  # noqa: N802
        f = request.filter
        selected = [
            s
            for s in self.m.index.sandboxes.values()
            if (not f.id or s.id.startswith(f.id))
            and _labels_match(f.label_selector, s.config.labels)
        ]
        return cri.ListPodSandboxStatsResponse(
            stats=[await self._sandbox_stats(s) for s in selected]
        )

    @rpc
    async def ListMetricDescriptors(self, request, context):  # noqa: N802
        return cri.ListMetricDescriptorsResponse(descriptors=metrics.descriptors())

    async def _container_metrics(self, c: Container, sandbox: Sandbox) -> cri.ContainerMetrics:
        now = now_ns()
        labels = {
            "container": c.config.metadata.name,
            "id": c.id,
            "image": c.image_name,
            "name": c.name,
            "namespace": sandbox.config.metadata.namespace,
            "pod": sandbox.config.metadata.name,
        }
        builder = metrics.Builder(labels, now)
        stats = await self._metrics(c.id)
        task = self.m._task(c.id)
        pids: list[int] = []
        if task is not None:
            with contextlib.suppress(errdefs.ContainerdError):
                pids = [p.pid for p in await task.pids()]
        counts = await asyncio.to_thread(metrics.process_counts, pids)
        snapshots = self.m.metadata.snapshots.get(self.m.config.snapshotter)
        try:
            usage = await call(snapshots.usage, NAMESPACE, c.id)
            used = (usage.size, usage.inodes)
        except errdefs.ContainerdError:
            used = (0, 0)
        root = str(self.m.snapshot_root)
        try:
            fs_stat: os.statvfs_result | None = await asyncio.to_thread(os.statvfs, root)
        except OSError:
            fs_stat = None
        oom = await asyncio.to_thread(oom_kill_count, c.cgroup)
        metrics.container_metrics(
            builder,
            stats,
            c.config.linux.resources,
            counts,
            c.started_at,
            used,
            root,
            fs_stat,
            oom,
        )
        return cri.ContainerMetrics(container_id=c.id, metrics=builder.out)

    @rpc
    async def ListPodSandboxMetrics(self, request, context):  # noqa: N802
        found = []
        for sandbox in list(self.m.index.sandboxes.values()):
            if not sandbox.ready:
                continue
            labels = {
                "container": "POD",
                "id": sandbox.id,
                "image": self.m.config.sandbox_image,
                "name": sandbox.name,
                "namespace": sandbox.config.metadata.namespace,
                "pod": sandbox.config.metadata.name,
            }
            pod = metrics.Builder(labels, now_ns())
            await asyncio.to_thread(metrics.pod_network_metrics, pod, sandbox.pid)
            containers = [
                await self._container_metrics(c, sandbox)
                for c in self.m.index.containers_of(sandbox.id)
                if c.state == cri.CONTAINER_RUNNING
            ]
            found.append(
                cri.PodSandboxMetrics(
                    pod_sandbox_id=sandbox.id, metrics=pod.out, container_metrics=containers
                )
            )
        return cri.ListPodSandboxMetricsResponse(pod_metrics=found)

    # -- events and the rest -------------------------------------------------------------

    @rpc
    async def GetContainerEvents(  # noqa: N802
        self, request: cri.GetEventsRequest, context
    ) -> AsyncIterator[cri.ContainerEventResponse]:
        async for event in self.m.events.subscribe():
            sandbox_id = ""
            container = self.m.index.containers.get(event.container_id)
            if container is not None:
                sandbox_id = container.sandbox_id
                event.containers_statuses.append(self._container_status(container))
            sandbox = self.m.index.sandboxes.get(sandbox_id)
            if sandbox is not None:
                event.pod_sandbox_status.CopyFrom(
                    cri.PodSandboxStatus(
                        id=sandbox.id,
                        metadata=sandbox.config.metadata,
                        state=self._sandbox_state(sandbox),  # type: ignore[arg-type]
                        created_at=sandbox.created_at,
                    )
                )
            yield event

    @rpc
    async def CheckpointContainer(self, request, context):  # noqa: N802
        raise errdefs.NotImplemented_("CheckpointContainer is not supported by pycontainerd")

    @rpc
    async def UpdatePodSandboxResources(self, request, context):  # noqa: N802
        raise errdefs.NotImplemented_("UpdatePodSandboxResources is not supported by pycontainerd")

    @rpc
    async def StreamPodSandboxes(self, request, context):  # noqa: N802
        raise errdefs.NotImplemented_("StreamPodSandboxes is not supported; use ListPodSandbox")

    @rpc
    async def StreamContainers(self, request, context):  # noqa: N802
        raise errdefs.NotImplemented_("StreamContainers is not supported; use ListContainers")

    @rpc
    async def StreamContainerStats(self, request, context):  # noqa: N802
        raise errdefs.NotImplemented_(
            "StreamContainerStats is not supported; use ListContainerStats"
        )

    @rpc
    async def StreamPodSandboxStats(self, request, context):  # noqa: N802
        raise errdefs.NotImplemented_(
            "StreamPodSandboxStats is not supported; use ListPodSandboxStats"
        )

    @rpc
    async def StreamPodSandboxMetrics(self, request, context):  # noqa: N802
        raise errdefs.NotImplemented_(
            "StreamPodSandboxMetrics is not supported; use ListPodSandboxMetrics"
        )

    def register(self, server: Server) -> None:
        server.add_service(cri.DESCRIPTOR.services_by_name["RuntimeService"], self)


def image_to_cri(image: ResolvedImage) -> cri.Image:
    out = cri.Image(
        id=image.id,
        repo_tags=image.repo_tags,
        repo_digests=image.repo_digests,
        size=image.size,
        spec=cri.ImageSpec(image=image.id),
    )
    user = str(image.process_config.get("User") or "")
    name = user.split(":")[0]
    if name.isdigit():
        out.uid.value = int(name)
    elif name:
        out.username = name
    else:
        out.uid.value = 0
    return out


class ImageService:
    def __init__(self, manager: CRIManager, images: ImageManager) -> None:
        self.m = manager
        self.images = images

    @rpc
    async def ListImages(self, request: cri.ListImagesRequest, context):  # noqa: N802
        found = await self.images.list()
        wanted = request.filter.image.image if request.HasField("filter") else ""
        if wanted:
            match = await self.images.find(wanted)
            found = [i for i in found if match is not None and i.id == match.id]
        return cri.ListImagesResponse(images=[image_to_cri(i) for i in found])

    @rpc
    async def ImageStatus(self, request: cri.ImageStatusRequest, context):  # noqa: N802
        image = await self.images.find(request.image.image) if request.image.image else None
        if not request.image.image:
            raise errdefs.InvalidArgument("image is required")
        if image is None:
            return cri.ImageStatusResponse()
        info: dict[str, str] = {}
        if request.verbose:
            info["info"] = json.dumps({"imageSpec": image.config, "chainID": image.chain_id})
        return cri.ImageStatusResponse(image=image_to_cri(image), info=info)

    @rpc
    async def PullImage(self, request: cri.PullImageRequest, context):  # noqa: N802
        if not request.image.image:
            raise errdefs.InvalidArgument("image is required")
        if self.m.pull is None:
            raise errdefs.NotImplemented_("PullImage is not available in this build")
        image = await self.m.pull_with_auth(request.image.image, request.auth)
        return cri.PullImageResponse(image_ref=image.id)

    @rpc
    async def RemoveImage(self, request: cri.RemoveImageRequest, context):  # noqa: N802
        if not request.image.image:
            raise errdefs.InvalidArgument("image is required")
        await self.images.remove(request.image.image)
        return cri.RemoveImageResponse()

    @rpc
    async def ImageFsInfo(self, request: cri.ImageFsInfoRequest, context):  # noqa: N802
        root = str(self.m.snapshot_root)
        used, inodes = (
            await asyncio.to_thread(filesystem_usage, root) if os.path.isdir(root) else (0, 0)
        )
        usage = cri.FilesystemUsage(
            timestamp=now_ns(),
            fs_id=cri.FilesystemIdentifier(mountpoint=root),
            used_bytes=cri.UInt64Value(value=used),
            inodes_used=cri.UInt64Value(value=inodes),
        )
        return cri.ImageFsInfoResponse(image_filesystems=[usage], container_filesystems=[usage])

    def register(self, server: Server) -> None:
        server.add_service(cri.DESCRIPTOR.services_by_name["ImageService"], self)
