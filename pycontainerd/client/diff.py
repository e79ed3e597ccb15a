"""The diff service: apply a layer onto mounts, or compute the layer between two mounts."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from pycontainerd import errdefs
from pycontainerd.api.services.diff.v1 import diff_pb2, diff_pb2_grpc
from pycontainerd.client.rpc import Connection
from pycontainerd.client.snapshots import DEFAULT_SNAPSHOTTER, Kind, mounts_to_api
from pycontainerd.descriptors import descriptor_from_api, descriptor_to_api
from pycontainerd.mount import Mount
from pycontainerd.remotes import mediatypes
from pycontainerd.remotes.manifest import Descriptor

if TYPE_CHECKING:
    from pycontainerd.client.client import Client


class DiffService:
    def __init__(self, connection: Connection) -> None:
        self._conn = connection
        self._stub = diff_pb2_grpc.DiffStub(connection.channel)

    async def apply(self, layer: Descriptor, mounts: Sequence[Mount]) -> Descriptor:
        """Unpack the stored ``layer`` onto ``mounts``; returns the uncompressed descriptor."""
        request = diff_pb2.ApplyRequest(diff=descriptor_to_api(layer), mounts=mounts_to_api(mounts))
        return descriptor_from_api((await self._conn.unary(self._stub.Apply, request)).applied)

    async def compare(
        self,
        lower: Sequence[Mount],
        upper: Sequence[Mount],
        *,
        media_type: str = mediatypes.OCI_LAYER_GZIP,
        ref: str = "",
        labels: Mapping[str, str] | None = None,
    ) -> Descriptor:
        """Store the changes from ``lower`` to ``upper`` as a layer blob; returns it."""
        request = diff_pb2.DiffRequest(
            left=mounts_to_api(lower),
            right=mounts_to_api(upper),
            media_type=media_type,
            ref=ref,
            labels=dict(labels or {}),
        )
        return descriptor_from_api((await self._conn.unary(self._stub.Diff, request)).diff)


async def diff_snapshot(
    client: Client,
    key: str,
    *,
    parent: str | None = None,
    snapshotter: str = DEFAULT_SNAPSHOTTER,
    media_type: str = mediatypes.OCI_LAYER_GZIP,
    ref: str = "",
    labels: Mapping[str, str] | None = None,
) -> Descriptor:
    """The layer between ``parent`` (default: the snapshot's own parent) and snapshot ``key``.

    Both sides are mounted through temporary read-only views (an active ``key``
    is used through its own mounts), which are removed afterwards.
    """
    snapshots = client.snapshots(snapshotter)
    info = await snapshots.stat(key)
    lower_parent = info.parent if parent is None else parent
    views: list[str] = []
    try:
        lower: list[Mount] = []
        if lower_parent:
            views.append(f"{key}-parent-view-{secrets.token_hex(4)}")
            lower = await snapshots.view(views[-1], lower_parent)
        if info.kind is Kind.ACTIVE:
            upper = await snapshots.mounts(key)
        else:
            views.append(f"{key}-view-{secrets.token_hex(4)}")
            upper = await snapshots.view(views[-1], key)
        return await client.diff.compare(
            lower, upper, media_type=media_type, ref=ref, labels=labels
        )
    finally:
        for view in views:
            with contextlib.suppress(errdefs.NotFound):
                await snapshots.remove(view)
