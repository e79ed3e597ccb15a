"""The asyncio client: one connection to a pycontainerd (or containerd) daemon.

async with Client("/run/pycontainerd/pycontainerd.sock") as client:
    image = await client.pull("docker.io/library/busybox:latest", unpack=True)
    async with await client.new_container("demo", image, with_process_args("true")) as c:
        ...
    async with client.lease(expire=timedelta(hours=1)):
        ...  # every call in here carries the lease
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import stat
from collections.abc import AsyncIterator, Iterable, Sequence
from datetime import timedelta
from typing import Any

from pycontainerd import errdefs
from pycontainerd.client import archive as archive_module
from pycontainerd.client import pull as pull_module
from pycontainerd.client import push as push_module
from pycontainerd.client import unpack as unpack_module
from pycontainerd.client.container import Container, load_container
from pycontainerd.client.container import new_container as new_container_impl
from pycontainerd.client.containers import ContainersService
from pycontainerd.client.content import ContentService
from pycontainerd.client.diff import DiffService
from pycontainerd.client.errors import connect_hint
from pycontainerd.client.events import EventsService
from pycontainerd.client.images import ImagesService
from pycontainerd.client.introspection import IntrospectionService
from pycontainerd.client.leases import LeasesService
from pycontainerd.client.models import Image, Lease, Plugin, Version
from pycontainerd.client.namespaces import NamespacesService
from pycontainerd.client.rpc import Connection, current_lease, open_channel, use_lease
from pycontainerd.client.snapshots import DEFAULT_SNAPSHOTTER, SnapshotService
from pycontainerd.client.task import TasksService
from pycontainerd.remotes.manifest import Descriptor

DEFAULT_NAMESPACE = "default"
DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_LEASE_EXPIRY = timedelta(hours=24)


class Client:
    """Typed access to the daemon's services, in one namespace.

    Services: ``namespaces``, ``content``, ``images``, ``leases``, ``events``,
    ``introspection``, ``containers`` (records), ``tasks`` (listing, metrics),
    ``diff``, and :meth:`snapshots` per snapshotter; plus :meth:`pull`,
    :meth:`push`, :meth:`unpack`, :meth:`new_container`, :meth:`load_container`
    and :meth:`lease`.
    """

    def __init__(
        self,
        address: str,
        namespace: str = DEFAULT_NAMESPACE,
        *,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
    ) -> None:
        self.address = address
        self.namespace = namespace
        self.connect_timeout = connect_timeout
        self._channel = open_channel(address)
        self._conn = Connection(address, namespace, self._channel)
        self.namespaces = NamespacesService(self._conn)
        self.content = ContentService(self._conn)
        self.images = ImagesService(self._conn)
        self.leases = LeasesService(self._conn)
        self.events = EventsService(self._conn)
        self.introspection = IntrospectionService(self._conn)
        self.containers = ContainersService(self._conn)
        self.tasks = TasksService(self._conn)
        self.diff = DiffService(self._conn)

    def snapshots(self, snapshotter: str = DEFAULT_SNAPSHOTTER) -> SnapshotService:
        """The snapshots of ``snapshotter`` (``overlayfs``, ``native``) in this namespace."""
        return SnapshotService(self._conn, snapshotter)

    async def connect(self) -> Client:
        """Wait until the daemon answers; Unavailable with a hint when it does not."""
        if "://" not in self.address:
            try:
                mode = os.stat(self.address).st_mode
            except OSError:
                mode = 0
            if not stat.S_ISSOCK(mode):
                raise errdefs.Unavailable(
                    f"cannot connect to pycontainerd at {self.address}: no socket there; "
                    f"{connect_hint(self.address)}"
                )
        try:
            await asyncio.wait_for(self._channel.channel_ready(), self.connect_timeout)
        except TimeoutError:
            raise errdefs.Unavailable(
                f"cannot connect to pycontainerd at {self.address} within "
                f"{self.connect_timeout:g}s: {connect_hint(self.address)}"
            ) from None
        return self

    async def close(self) -> None:
        await self._channel.close()

    async def __aenter__(self) -> Client:
        return await self.connect()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- daemon -------------------------------------------------------------------------

    async def version(self) -> Version:
        return await self.introspection.version()

    async def plugins(self, filters: Iterable[str] = ()) -> list[Plugin]:
        return await self.introspection.plugins(filters)

    # -- leases -------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def lease(
        self, *, expire: timedelta | None = DEFAULT_LEASE_EXPIRY, lease_id: str | None = None
    ) -> AsyncIterator[Lease]:
        """Create a lease, attach it to every call made inside, delete it on exit."""
        created = await self.leases.create(lease_id, expire=expire)
        try:
            with use_lease(created.id):
                yield created
        finally:
            await self.leases.delete(created.id)

    @contextlib.asynccontextmanager
    async def lease_if_none(self) -> AsyncIterator[str]:
        """Reuse the lease the caller is in, or hold a new one for the block."""
        if current_lease():
            yield current_lease()
            return
        async with self.lease() as created:
            yield created.id

    # -- registries ---------------------------------------------------------------------

    async def pull(self, ref: str, **options: Any) -> Image:
        """See :func:`pycontainerd.client.pull.pull` for the options."""
        return await pull_module.pull(self, ref, **options)

    async def push(self, ref: str, image_name: str | None = None, **options: Any) -> Descriptor:
        """See :func:`pycontainerd.client.push.push` for the options."""
        return await push_module.push(self, ref, image_name, **options)

    async def unpack(self, image: Image | str, snapshotter: str = DEFAULT_SNAPSHOTTER) -> str:
        """Unpack a stored image for this host; returns the top snapshot's chain ID."""
        name = image.name if isinstance(image, Image) else image
        return await unpack_module.unpack(self, name, snapshotter)

    async def import_archive(self, path: str | os.PathLike[str], **options: Any) -> list[Image]:
        """See :func:`pycontainerd.client.archive.import_archive` for the options."""
        return await archive_module.import_archive(self, path, **options)

    async def export_archive(
        self, path: str | os.PathLike[str], names: Sequence[str], **options: Any
    ) -> None:
        """See :func:`pycontainerd.client.archive.export_archive` for the options."""
        await archive_module.export_archive(self, path, names, **options)

    # -- containers ---------------------------------------------------------------------

    #: Create a container from an image with OCI spec options; see
    #: :func:`pycontainerd.client.container.new_container` (one signature, one place).
    new_container = new_container_impl

    async def load_container(self, container_id: str) -> Container:
        """A handle on an existing container (NotFound when there is none)."""
        return await load_container(self, container_id)
