"""The images service."""

from __future__ import annotations

from google.protobuf import empty_pb2

from pycontainerd import errdefs, filters, plugin
from pycontainerd.api.events import image_pb2 as events
from pycontainerd.api.services.images.v1 import images_pb2 as api
from pycontainerd.api.types import descriptor_pb2
from pycontainerd.events.exchange import Exchange
from pycontainerd.h2grpc import Server, ServicerContext
from pycontainerd.metadata.images import Descriptor, Image
from pycontainerd.metadata.placement import call
from pycontainerd.metadata.scheduler import GCScheduler
from pycontainerd.metadata.store import MetadataStore
from pycontainerd.services.base import field_paths, namespace_of, rpc, timestamp


def image_to_api(image: Image) -> api.Image:
    t = image.target
    return api.Image(
        name=image.name,
        labels=image.labels,
        target=descriptor_pb2.Descriptor(
            media_type=t.media_type, digest=t.digest, size=t.size, annotations=t.annotations
        ),
        created_at=timestamp(image.created_at),
        updated_at=timestamp(image.updated_at),
    )


def image_from_api(image: api.Image) -> Image:
    t = image.target
    return Image(
        name=image.name,
        target=Descriptor(t.media_type, t.digest, t.size, dict(t.annotations)),
        labels=dict(image.labels),
    )


def image_adaptor(image: Image) -> filters.Adaptor:
    return filters.adapt(
        {
            "name": image.name,
            "target.digest": image.target.digest,
            "target.mediatype": image.target.media_type,
        },
        image.labels,
        maps={"annotations": image.target.annotations},
    )


class ImagesService:
    def __init__(self, metadata: MetadataStore, exchange: Exchange, gc: GCScheduler) -> None:
        self.store = metadata.images
        self.exchange = exchange
        self.gc = gc

    @rpc
    async def Get(self, request: api.GetImageRequest, context: ServicerContext):  # noqa: N802
        image = await call(self.store.get, namespace_of(context), request.name)
        return api.GetImageResponse(image=image_to_api(image))

    @rpc
    async def List(self, request: api.ListImagesRequest, context: ServicerContext):  # noqa: N802
        found = await call(self.store.list, namespace_of(context))
        selected = await filters.select(request.filters, found, image_adaptor)
        return api.ListImagesResponse(images=[image_to_api(i) for i in selected])

    @rpc
    async def Create(self, request: api.CreateImageRequest, context: ServicerContext):  # noqa: N802
        namespace = namespace_of(context)
        created = await call(self.store.create, namespace, image_from_api(request.image))
        self.exchange.publish(
            namespace,
            "/images/create",
            events.ImageCreate(name=created.name, labels=created.labels),
        )
        return api.CreateImageResponse(image=image_to_api(created))

    @rpc
    async def Update(self, request: api.UpdateImageRequest, context: ServicerContext):  # noqa: N802
        namespace = namespace_of(context)
        updated = await call(
            self.store.update,
            namespace,
            image_from_api(request.image),
            field_paths(request.update_mask),
        )
        self.exchange.publish(
            namespace,
            "/images/update",
            events.ImageUpdate(name=updated.name, labels=updated.labels),
        )
        return api.UpdateImageResponse(image=image_to_api(updated))

    @rpc
    async def Delete(self, request: api.DeleteImageRequest, context: ServicerContext):  # noqa: N802
        namespace = namespace_of(context)
        if request.HasField("target") and request.target.digest:
            current = await call(self.store.get, namespace, request.name)
            if current.target.digest != request.target.digest:
                raise errdefs.NotFound(
                    f"image {request.name!r} has target {current.target.digest}, "
                    f"not {request.target.digest}"
                )
        await call(self.store.delete, namespace, request.name)
        self.exchange.publish(namespace, "/images/delete", events.ImageDelete(name=request.name))
        if request.sync:
            await self.gc.collect()
        else:
            self.gc.schedule()
        return empty_pb2.Empty()

    def register(self, server: Server) -> None:
        server.add_service(api.DESCRIPTOR.services_by_name["Images"], self)


@plugin.register(plugin.GRPC, "images", requires=(plugin.METADATA, plugin.EVENT, plugin.GC))
def init_images(ic: plugin.InitContext) -> ImagesService:
    return ImagesService(ic.get(plugin.METADATA), ic.get(plugin.EVENT), ic.get(plugin.GC))
