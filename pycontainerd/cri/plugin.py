"""The ``io.containerd.grpc.v1.cri`` plugin: runtime.v1 on the daemon's own socket.

Config (containerd's shape, over ``config.DEFAULTS``)::

    [plugins."io.containerd.grpc.v1.cri"]
      sandbox_image = "registry.k8s.io/pause:3.10"
      [plugins."io.containerd.grpc.v1.cri".cni]
        bin_dir = "/opt/cni/bin"
        conf_dir = "/etc/cni/net.d"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.crun]
        runtime_type = "io.containerd.runc.v2"
        options = { BinaryName = "crun" }
"""

from __future__ import annotations

import copy

from pycontainerd import plugin
from pycontainerd.cri import config as cri_config
from pycontainerd.cri.images import ImageManager
from pycontainerd.cri.manager import CRIManager
from pycontainerd.cri.pull import Puller
from pycontainerd.cri.service import ImageService, RuntimeService
from pycontainerd.cri.streaming.server import StreamServer
from pycontainerd.h2grpc import Server


class CRIPlugin:
    """Both CRI services, registered together on the daemon's server."""

    def __init__(
        self, manager: CRIManager, images: ImageManager, streams: StreamServer | None = None
    ) -> None:
        self.manager = manager
        self.streams = streams
        self.runtime = RuntimeService(manager, streams)
        self.images = ImageService(manager, images)

    def register(self, server: Server) -> None:
        self.runtime.register(server)
        self.images.register(server)

    async def close(self) -> None:
        if self.streams is not None:
            await self.streams.close()
        await self.manager.close()


@plugin.register(
    plugin.GRPC,
    "cri",
    requires=(
        plugin.METADATA,
        plugin.RUNTIME_V2,
        plugin.GC,
        plugin.EVENT,
        plugin.SNAPSHOTTER,
        plugin.DIFF,
    ),
    config=copy.deepcopy(cri_config.DEFAULTS),
)
async def init_cri(ic: plugin.InitContext) -> CRIPlugin:
    settings = cri_config.parse(ic.config)
    ic.make_dirs(ic.root, ic.state)
    metadata = ic.get(plugin.METADATA)
    gc = ic.get(plugin.GC)
    images = ImageManager(metadata, gc)
    puller = Puller(settings, metadata, [ic.get(plugin.DIFF, "walking")], images, gc)
    snapshot_root = ic.daemon_config.root / f"{plugin.SNAPSHOTTER}.{settings.snapshotter}"
    manager = CRIManager(
        settings,
        metadata,
        ic.get(plugin.RUNTIME_V2, "task"),
        images,
        ic.state,
        snapshot_root,
        puller,
    )
    await manager.recover()
    streams = StreamServer(
        manager,
        settings.stream_server_address,
        settings.stream_server_port,
        settings.stream_idle_timeout or None,
    )
    await streams.start()
    return CRIPlugin(manager, images, streams)
