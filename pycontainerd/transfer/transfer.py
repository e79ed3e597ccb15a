"""One Transfer: decode its source and destination, run it over the daemon's stores.

The pairs containerd 2's local transferrer accepts, and what runs them here:

====================  ====================  =============================================
source                destination           what runs
====================  ====================  =============================================
OCIRegistry           ImageStore            pull (and unpack) — distribution.pull
ImageStore            OCIRegistry           push — distribution.push
ImageImportStream     ImageStore            import of an OCI archive — distribution.archive
ImageStore            ImageExportStream     export to an OCI archive — distribution.archive
ImageStore            ImageStore            tag
ImageImportStream     ImageExportStream     echo: the bytes sent back (containerd's test path)
====================  ====================  =============================================

Everything else answers NotImplemented (gRPC Unimplemented), a type URL
nobody knows NotFound, as containerd does. Credentials come over the
registry's auth stream, progress goes out on the progress stream, archives
come and go on byte streams (see :mod:`.streams`). Archives are spooled to a
file first, so a stream that breaks off leaves nothing in the stores.

distribution.pull and .push, with the registry client under them (requests and
ssl: ~9 MiB resident), are imported at the first pull or push: a daemon that
never talks to a registry does not pay for them.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from google.protobuf import any_pb2, descriptor_pool
from google.protobuf.message import Message

from pycontainerd import errdefs
from pycontainerd.api.types import descriptor_pb2
from pycontainerd.api.types.transfer import (
    imagestore_pb2,
    importexport_pb2,
    progress_pb2,
    registry_pb2,
)
from pycontainerd.diff.differs import Differ
from pycontainerd.distribution import archive
from pycontainerd.distribution.local import LocalStores
from pycontainerd.distribution.progress import ProgressEvent, Status
from pycontainerd.distribution.stores import Image
from pycontainerd.distribution.unpack import DEFAULT_SNAPSHOTTER, UnpackStatus
from pycontainerd.events.exchange import Exchange
from pycontainerd.metadata.scheduler import GCScheduler
from pycontainerd.metadata.store import MetadataStore
from pycontainerd.remotes.hostsdir import load_endpoint
from pycontainerd.remotes.platforms import Platform, format_platform
from pycontainerd.remotes.reference import parse_reference
from pycontainerd.transfer.import_names import entry_names, index_names
from pycontainerd.transfer.streams import (
    Stream,
    StreamClosed,
    StreamManager,
    receive_bytes,
    send_bytes,
    type_name,
    unpack,
)

if TYPE_CHECKING:
    from pycontainerd.remotes.auth import CredentialsFunc
    from pycontainerd.remotes.resolver import PlainHTTP

#: How long the daemon waits for a client to answer a credentials request.
CREDENTIALS_TIMEOUT = 60.0
#: How long a Transfer's answer waits for its progress events to go out.
PROGRESS_DRAIN_TIMEOUT = 5.0

_TRANSFER_TYPES: dict[str, type[Message]] = {
    cls.DESCRIPTOR.full_name: cls
    for cls in (
        registry_pb2.OCIRegistry,
        imagestore_pb2.ImageStore,
        importexport_pb2.ImageImportStream,
        importexport_pb2.ImageExportStream,
    )
}

#: Our progress states as containerd 2's transfer names them.
_EVENTS = {
    Status.WAITING: "waiting",
    Status.DOWNLOADING: "downloading",
    Status.UPLOADING: "uploading",
    Status.DONE: "complete",
    Status.EXISTS: "already exists",
    UnpackStatus.UNPACKING: "extracting",
    UnpackStatus.UNPACKED: "extracted",
}


class _Unsupported:
    """A message of a type the daemon knows, but not one Transfer moves images with."""

    def __init__(self, type_url: str) -> None:
        self.type_url = type_url


def decode(message: any_pb2.Any) -> Message | _Unsupported:
    name = type_name(message)
    cls = _TRANSFER_TYPES.get(name)
    if cls is not None:
        decoded = cls()
        decoded.ParseFromString(message.value)
        return decoded
    try:
        descriptor_pool.Default().FindMessageTypeByName(name)
    except KeyError:
        raise errdefs.NotFound(
            f"type with url {errdefs.echo(message.type_url)}: not found"
        ) from None
    return _Unsupported(message.type_url)


def _platform(p: Any) -> str:
    return format_platform(Platform(os=p.os, architecture=p.architecture, variant=p.variant))


class Progress:
    """Sends containerd's Progress messages on the client's progress stream (if any)."""

    def __init__(self, stream: Stream | None) -> None:
        self._stream = stream
        self.root = ""

    def event(self, event: str, name: str = "", *, desc: Any = None, **fields: Any) -> None:
        if self._stream is None:
            return
        message = progress_pb2.Progress(event=event, name=name, **fields)
        if desc is not None:
            message.desc.CopyFrom(
                descriptor_pb2.Descriptor(
                    media_type=desc.media_type,
                    digest=desc.digest,
                    size=desc.size,
                    annotations=dict(desc.annotations),
                )
            )
        with contextlib.suppress(StreamClosed):
            self._stream.send_nowait(message)

    def __call__(self, update: ProgressEvent) -> None:
        """A progress callback for the distribution machinery."""
        event = _EVENTS.get(update.status)
        if event is None:
            return
        progress = update.total if update.status in (Status.DONE, Status.EXISTS) else update.offset
        parents = [self.root] if self.root else []
        self.event(event, update.key, parents=parents, progress=progress, total=update.total)

    async def close(self) -> None:
        """End the stream, and let its last events reach the client before the
        Transfer call answers (ctr stops listening once it has the answer)."""
        if self._stream is not None:
            self._stream.close()
            await self._stream.drained(PROGRESS_DRAIN_TIMEOUT)


class _CredentialsExchange:
    """The registry's credentials callback over the client's auth stream.

    The resolver asks from a worker thread; the question goes out on the event
    loop, one at a time, and the answer comes back to the thread.
    """

    def __init__(self, stream: Stream, reference: str, loop: asyncio.AbstractEventLoop) -> None:
        self._stream = stream
        self._reference = reference
        self._loop = loop
        self._lock = asyncio.Lock()

    async def _ask(self, host: str) -> tuple[str, str] | None:
        async with self._lock:
            await self._stream.send(registry_pb2.AuthRequest(host=host, reference=self._reference))
            answer = unpack(await self._stream.recv(), registry_pb2.AuthResponse())
        kind = answer.authType
        if kind == registry_pb2.CREDENTIALS:
            return answer.username, answer.secret
        if kind == registry_pb2.REFRESH and answer.secret:
            return "", answer.secret
        return None

    def __call__(self, host: str) -> tuple[str, str] | None:
        future = asyncio.run_coroutine_threadsafe(self._ask(host), self._loop)
        try:
            return future.result(CREDENTIALS_TIMEOUT)
        except TimeoutError:
            future.cancel()
            raise errdefs.DeadlineExceeded(
                f"the client did not answer the credentials request for {host} "
                f"within {CREDENTIALS_TIMEOUT:g}s"
            ) from None
        except StreamClosed:
            return None  # the client stopped answering: go on without credentials


class Transferrer:
    """Runs transfers in-process over the daemon's metadata store and differs."""

    def __init__(
        self,
        metadata: MetadataStore,
        differs: Sequence[Differ],
        streams: StreamManager,
        *,
        exchange: Exchange | None = None,
        gc: GCScheduler | None = None,
        spool_dir: Path | None = None,
    ) -> None:
        self._metadata = metadata
        self._differs = list(differs)
        self._streams = streams
        self._exchange = exchange
        self._gc = gc
        self._spool_dir = spool_dir

    def stores(self, namespace: str) -> LocalStores:
        return LocalStores(
            self._metadata, self._differs, namespace, exchange=self._exchange, gc=self._gc
        )

    async def transfer(
        self,
        namespace: str,
        source: any_pb2.Any,
        destination: any_pb2.Any,
        *,
        progress_stream: str = "",
    ) -> None:
        stream = self._streams.get(namespace, progress_stream) if progress_stream else None
        progress = Progress(stream)
        try:
            src, dst = decode(source), decode(destination)
            stores = self.stores(namespace)
            await self._dispatch(namespace, stores, src, dst, progress, source, destination)
        finally:
            await progress.close()

    async def _dispatch(
        self,
        namespace: str,
        stores: LocalStores,
        src: Message | _Unsupported,
        dst: Message | _Unsupported,
        progress: Progress,
        source: any_pb2.Any,
        destination: any_pb2.Any,
    ) -> None:
        if isinstance(src, registry_pb2.OCIRegistry) and isinstance(dst, imagestore_pb2.ImageStore):
            await self._pull(namespace, stores, src, dst, progress)
        elif isinstance(src, imagestore_pb2.ImageStore):
            if isinstance(dst, registry_pb2.OCIRegistry):
                await self._push(namespace, stores, src, dst, progress)
            elif isinstance(dst, importexport_pb2.ImageExportStream):
                await self._export(namespace, stores, src, dst, progress)
            elif isinstance(dst, imagestore_pb2.ImageStore):
                await self._tag(stores, src, dst)
            else:
                raise _not_implemented(source, destination)
        elif isinstance(src, importexport_pb2.ImageImportStream) and isinstance(
            dst, imagestore_pb2.ImageStore
        ):
            await self._import(namespace, stores, src, dst, progress)
        elif isinstance(src, importexport_pb2.ImageImportStream) and isinstance(
            dst, importexport_pb2.ImageExportStream
        ):
            await self._echo(namespace, src, dst)
        else:
            raise _not_implemented(source, destination)

    # -- registries ----------------------------------------------------------------------

    async def _registry_options(
        self, namespace: str, registry: registry_pb2.OCIRegistry
    ) -> dict[str, Any]:
        """The resolver options of ``registry``: plain HTTP, hosts, headers, credentials."""
        resolver = registry.resolver
        if resolver.default_scheme not in ("", "http", "https"):
            raise errdefs.InvalidArgument(
                f"unsupported default scheme {errdefs.echo(resolver.default_scheme)!r}: "
                "expected http or https"
            )
        credentials: CredentialsFunc | None = None
        if resolver.auth_stream:
            auth = self._streams.get(namespace, resolver.auth_stream)
            loop = asyncio.get_running_loop()
            credentials = _CredentialsExchange(auth, registry.reference, loop)
        default_plain = resolver.default_scheme == "http"
        plain_http: PlainHTTP = default_plain
        hosts: dict[str, str] = {}
        if resolver.host_dir:
            domain = parse_reference(registry.reference).domain
            endpoint = await asyncio.to_thread(load_endpoint, resolver.host_dir, domain)
            if endpoint is not None:
                hosts[domain] = endpoint.host
                configured = endpoint.plain_http

                def plain_http(d: str) -> bool:
                    return configured if d == domain else default_plain

        return {
            "plain_http": plain_http,
            "hosts": hosts,
            "headers": dict(resolver.headers),
            "credentials": credentials,
        }

    async def _pull(
        self,
        namespace: str,
        stores: LocalStores,
        registry: registry_pb2.OCIRegistry,
        store: imagestore_pb2.ImageStore,
        progress: Progress,
    ) -> None:
        from pycontainerd.distribution import pull  # noqa: PLC0415 - see the module's docstring
        from pycontainerd.distribution.fetch import IN_PROCESS_SENDS  # noqa: PLC0415

        source = f"OCI Registry ({registry.reference})"
        options = await self._registry_options(namespace, registry)
        platforms = [_platform(p) for p in store.platforms]
        unpacks = list(store.unpacks)
        progress.event(f"Resolving from {source}")
        progress.event(f"Pulling from {source}")
        progress.root = store.name or registry.reference
        image = await pull.pull(
            stores,
            registry.reference,
            platform=platforms[0] if platforms else None,
            all_platforms=not platforms,
            unpack=bool(unpacks),
            snapshotter=(unpacks[0].snapshotter if unpacks else "") or DEFAULT_SNAPSHOTTER,
            progress=progress,
            image_name=store.name or None,
            labels=dict(store.labels),
            unpack_every_platform=False,
            all_metadata=store.all_metadata,
            concurrent_writes=IN_PROCESS_SENDS,
            **options,
        )
        progress.event("saved", image.name, desc=image.target)
        progress.event(f"Completed pull from {source}")

    async def _push(
        self,
        namespace: str,
        stores: LocalStores,
        store: imagestore_pb2.ImageStore,
        registry: registry_pb2.OCIRegistry,
        progress: Progress,
    ) -> None:
        from pycontainerd.distribution import push  # noqa: PLC0415 - see the module's docstring

        options = await self._registry_options(namespace, registry)
        progress.event(f"Pushing to OCI Registry ({registry.reference})")
        progress.root = registry.reference
        await push.push(
            stores,
            registry.reference,
            store.name or None,
            progress=progress,
            **options,
        )
        progress.event(f"Completed push to OCI Registry ({registry.reference})")

    # -- archives ----------------------------------------------------------------------

    def _spool(self) -> Any:
        if self._spool_dir is not None:
            self._spool_dir.mkdir(parents=True, exist_ok=True)
        return tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed by the caller's with
            dir=self._spool_dir, prefix="transfer-", suffix=".tar"
        )

    async def _import(
        self,
        namespace: str,
        stores: LocalStores,
        source: importexport_pb2.ImageImportStream,
        store: imagestore_pb2.ImageStore,
        progress: Progress,
    ) -> None:
        stream = self._streams.get(namespace, source.stream)
        progress.event("Importing")
        with self._spool() as spool:
            await receive_bytes(stream, spool)
            spool.flush()
            unpacks = list(store.unpacks)
            references = list(store.extra_references)
            labels = dict(store.labels)
            images = await archive.import_archive(
                stores,
                spool.name,
                names=lambda entry: entry_names(entry, references, store.name, labels),
                index_names=lambda index: index_names(index, references, store.name, labels),
                unpack=bool(unpacks),
                snapshotter=(unpacks[0].snapshotter if unpacks else "") or DEFAULT_SNAPSHOTTER,
            )
        for image in images:
            progress.event("saved", image.name, desc=image.target)
        progress.event("Completed import")

    async def _echo(
        self,
        namespace: str,
        source: importexport_pb2.ImageImportStream,
        destination: importexport_pb2.ImageExportStream,
    ) -> None:
        """What the import stream brings goes back on the export stream, untouched."""
        incoming = self._streams.get(namespace, source.stream)
        outgoing = self._streams.get(namespace, destination.stream)
        try:
            with self._spool() as spool:
                await receive_bytes(incoming, spool)
                spool.flush()
                spool.seek(0)
                await send_bytes(outgoing, spool)
        finally:
            outgoing.close()

    async def _export(
        self,
        namespace: str,
        stores: LocalStores,
        store: imagestore_pb2.ImageStore,
        destination: importexport_pb2.ImageExportStream,
        progress: Progress,
    ) -> None:
        stream = self._streams.get(namespace, destination.stream)
        names = ([store.name] if store.name else []) + [ref.name for ref in store.extra_references]
        if any(ref.is_prefix for ref in store.extra_references):
            raise errdefs.NotImplemented_("prefix lookup on export not implemented")
        progress.event("Exporting")
        try:
            with self._spool() as spool:
                await archive.export_archive(stores, spool.name, names)
                spool.seek(0)
                await send_bytes(stream, spool)
        finally:
            stream.close()
        progress.event("Completed export")

    # -- tag -----------------------------------------------------------------------------

    async def _tag(
        self,
        stores: LocalStores,
        source: imagestore_pb2.ImageStore,
        destination: imagestore_pb2.ImageStore,
    ) -> None:
        if not source.name:
            raise errdefs.InvalidArgument("tag: the source image store names no image")
        image = await stores.images.get(source.name)
        names = [destination.name] if destination.name else []
        names += [ref.name for ref in destination.extra_references if not ref.is_prefix]
        if not names:
            raise errdefs.NotFound("no image name found")
        for name in names:
            await stores.images.create_or_update(
                Image(name, image.target, dict(destination.labels))
            )


def _not_implemented(source: any_pb2.Any, destination: any_pb2.Any) -> errdefs.NotImplemented_:
    return errdefs.NotImplemented_(
        f"method Transfer not implemented for {errdefs.echo(source.type_url)} to "
        f"{errdefs.echo(destination.type_url)}"
    )
