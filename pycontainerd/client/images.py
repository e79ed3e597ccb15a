"""Image records: a name pointing at a root descriptor in the content store."""

from __future__ import annotations

from collections.abc import Iterable

from google.protobuf import field_mask_pb2

from pycontainerd import errdefs
from pycontainerd.api.services.images.v1 import images_pb2 as api
from pycontainerd.api.services.images.v1 import images_pb2_grpc
from pycontainerd.client.models import Image, from_timestamp
from pycontainerd.client.rpc import Connection
from pycontainerd.descriptors import descriptor_from_api, descriptor_to_api


def image_from_api(image: api.Image) -> Image:
    return Image(
        name=image.name,
        target=descriptor_from_api(image.target),
        labels=dict(image.labels),
        created_at=from_timestamp(image.created_at),
        updated_at=from_timestamp(image.updated_at),
    )


def image_to_api(image: Image) -> api.Image:
    return api.Image(
        name=image.name, target=descriptor_to_api(image.target), labels=dict(image.labels)
    )


class ImagesService:
    def __init__(self, connection: Connection) -> None:
        self._conn = connection
        self._stub = images_pb2_grpc.ImagesStub(connection.channel)

    async def get(self, name: str) -> Image:
        reply = await self._conn.unary(self._stub.Get, api.GetImageRequest(name=name))
        return image_from_api(reply.image)

    async def list(self, filters: Iterable[str] = ()) -> list[Image]:
        reply = await self._conn.unary(
            self._stub.List, api.ListImagesRequest(filters=list(filters))
        )
        return [image_from_api(image) for image in reply.images]

    async def create(self, image: Image) -> Image:
        request = api.CreateImageRequest(image=image_to_api(image))
        return image_from_api((await self._conn.unary(self._stub.Create, request)).image)

    async def update(self, image: Image, fields: Iterable[str] = ()) -> Image:
        """Update the record; with no ``fields`` the target and all labels are replaced."""
        request = api.UpdateImageRequest(
            image=image_to_api(image), update_mask=field_mask_pb2.FieldMask(paths=list(fields))
        )
        return image_from_api((await self._conn.unary(self._stub.Update, request)).image)

    async def create_or_update(self, image: Image) -> Image:
        """Create the record, or point the existing one at the new target (as a pull does)."""
        while True:
            try:
                return await self.create(image)
            except errdefs.AlreadyExists:
                pass
            try:
                return await self.update(image)
            except errdefs.NotFound:
                continue  # removed between the two calls: create again

    async def delete(self, name: str, *, sync: bool = False) -> None:
        """Delete the record; with ``sync`` the call returns after the GC has run."""
        await self._conn.unary(self._stub.Delete, api.DeleteImageRequest(name=name, sync=sync))

    async def tag(self, source: str, target: str, *, force: bool = False) -> Image:
        """Make ``target`` name the same content as ``source``; ``force`` replaces a target."""
        image = await self.get(source)
        copy = Image(target, image.target, image.labels)
        try:
            return await self.create(copy)
        except errdefs.AlreadyExists:
            if not force:
                raise errdefs.AlreadyExists(
                    f"image {target!r} already exists: pass force=True (pyctr: --force) to replace it"
                ) from None
        return await self.update(copy)
