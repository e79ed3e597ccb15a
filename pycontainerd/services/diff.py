"""The diff service: apply layers onto snapshot mounts, and diff two mount sets.

The configured differs (``default``, in order of preference) are tried in
turn (:func:`pycontainerd.diff.differs.first_implemented`). Differ calls
mount and unpack, so they run in worker threads.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from pycontainerd import errdefs, plugin
from pycontainerd.api.services.diff.v1 import diff_pb2 as api
from pycontainerd.api.types import mount_pb2
from pycontainerd.descriptors import descriptor_from_api, descriptor_to_api
from pycontainerd.diff.compare import CompareOptions
from pycontainerd.diff.differs import Differ, first_implemented
from pycontainerd.h2grpc import Server, ServicerContext
from pycontainerd.metadata.placement import call
from pycontainerd.mount import Mount
from pycontainerd.remotes.manifest import Descriptor
from pycontainerd.services.base import lease_of, namespace_of, rpc


def mounts_from_api(mounts: Sequence[mount_pb2.Mount]) -> list[Mount]:
    return [Mount(type=m.type, source=m.source, options=list(m.options)) for m in mounts]


class DiffService:
    def __init__(self, differs: Sequence[Differ]) -> None:
        if not differs:
            raise errdefs.FailedPrecondition("the diff service needs at least one differ")
        self.differs = list(differs)

    @rpc
    async def Apply(self, request: api.ApplyRequest, context: ServicerContext):  # noqa: N802
        namespace = namespace_of(context)
        if not request.HasField("diff") or not request.diff.digest:
            raise errdefs.InvalidArgument("apply needs the descriptor of the layer to apply")
        desc = descriptor_from_api(request.diff)
        mounts = mounts_from_api(request.mounts)
        applied = await self._first_implemented(
            lambda differ: call(differ.apply, namespace, desc, mounts)
        )
        return api.ApplyResponse(applied=descriptor_to_api(applied))

    @rpc
    async def Diff(self, request: api.DiffRequest, context: ServicerContext):  # noqa: N802
        namespace = namespace_of(context)
        if request.HasField("source_date_epoch"):
            raise errdefs.NotImplemented_(
                "diff: source_date_epoch (clamping file times) is not supported by pycontainerd"
            )
        lower = mounts_from_api(request.left)
        upper = mounts_from_api(request.right)
        options = CompareOptions(
            media_type=request.media_type,
            ref=request.ref,
            labels=dict(request.labels),
            lease=lease_of(context),
        )
        diff = await self._first_implemented(
            lambda differ: call(differ.compare, namespace, lower, upper, options)
        )
        return api.DiffResponse(diff=descriptor_to_api(diff))

    async def _first_implemented(
        self, use: Callable[[Differ], Awaitable[Descriptor]]
    ) -> Descriptor:
        return await first_implemented(self.differs, use)

    def register(self, server: Server) -> None:
        server.add_service(api.DESCRIPTOR.services_by_name["Diff"], self)


@plugin.register(plugin.GRPC, "diff", requires=(plugin.DIFF,), config={"default": ["walking"]})
def init_diff(ic: plugin.InitContext) -> DiffService:
    differs = [ic.get(plugin.DIFF, name) for name in ic.config["default"]]
    return DiffService(differs)
