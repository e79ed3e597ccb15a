"""Pushing blobs and manifests: existence check, upload session, manifest PUT."""

from __future__ import annotations

import io
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from pycontainerd.digest import digest_of_bytes, parse_digest
from pycontainerd.errdefs import FailedPrecondition, InvalidArgument
from pycontainerd.remotes import mediatypes
from pycontainerd.remotes.errors import DataLoss
from pycontainerd.remotes.manifest import Descriptor
from pycontainerd.remotes.reference import Reference
from pycontainerd.remotes.transport import Transport
from pycontainerd.streams import ReadStream

_OCTET_STREAM = "application/octet-stream"


def _with_query(location: str, **extra: str) -> str:
    """Add query parameters to an upload Location that may already carry some (``_state``)."""
    parts = urlsplit(location)
    query = parse_qsl(parts.query, keep_blank_values=True) + list(extra.items())
    return urlunsplit(parts._replace(query=urlencode(query)))


class Pusher:
    """Writes content into one repository."""

    def __init__(self, transport: Transport, ref: Reference) -> None:
        self._transport = transport
        self.reference = ref

    def _what(self, desc: Descriptor) -> str:
        return f"{self.reference.name}@{desc.digest}"

    def exists(self, desc: Descriptor) -> bool:
        """Whether the registry already has ``desc`` in this repository (HEAD)."""
        kind = "manifests" if mediatypes.is_manifest_or_index(desc.media_type) else "blobs"
        headers = {"Accept": desc.media_type} if kind == "manifests" else {}
        response = self._transport.request(
            "HEAD",
            f"/{self.reference.path}/{kind}/{desc.digest}",
            what=self._what(desc),
            headers=headers,
            allow_status=(404,),
        )
        with response:
            return response.status_code == 200

    def push(
        self,
        desc: Descriptor,
        data: bytes | ReadStream,
        *,
        tag: str | None = None,
        mount_from: str | None = None,
        chunk_size: int | None = None,
    ) -> bool:
        """Upload ``desc`` unless already present; returns True when bytes were sent.

        Manifests and indexes go to ``/manifests/<tag>`` when ``tag`` is given, else
        to their digest. Blobs use an upload session: ``mount_from`` (a repository
        path on the same registry) tries a cross-repository mount first, and
        ``chunk_size`` switches from one monolithic PUT to PATCH chunks.
        """
        parse_digest(desc.digest)
        if isinstance(data, bytes | bytearray | memoryview):
            _check_bytes(desc, bytes(data))
        if mediatypes.is_manifest_or_index(desc.media_type):
            return self._push_manifest(desc, data, tag)
        if tag:
            raise InvalidArgument(f"{desc.media_type} is not a manifest: only manifests take a tag")
        if self.exists(desc):
            return False
        return self._upload_blob(desc, data, mount_from, chunk_size)

    def _push_manifest(self, desc: Descriptor, data: bytes | ReadStream, tag: str | None) -> bool:
        if not tag and self.exists(desc):
            return False
        if isinstance(data, bytes | bytearray | memoryview):
            body = bytes(data)
        else:
            body = data.read()
            _check_bytes(desc, body)
        response = self._transport.request(
            "PUT",
            f"/{self.reference.path}/manifests/{tag or desc.digest}",
            what=f"{self.reference.name}:{tag}" if tag else self._what(desc),
            headers={"Content-Type": desc.media_type},
            data=body,
        )
        with response:
            echoed = response.headers.get("Docker-Content-Digest")
        if echoed and echoed != desc.digest:
            raise DataLoss(f"registry stored manifest as {echoed}, expected {desc.digest}")
        return True

    def _start_upload(self, desc: Descriptor, mount_from: str | None) -> str | None:
        """Open an upload session; returns its Location, or None when a mount did the job."""
        params = {"mount": desc.digest, "from": mount_from} if mount_from else None
        response = self._transport.request(
            "POST",
            f"/{self.reference.path}/blobs/uploads/",
            what=self._what(desc),
            params=params,
            data=b"",
        )
        with response:
            if response.status_code == 201 and mount_from:
                return None
            location = response.headers.get("Location")
        if response.status_code != 202 or not location:
            raise FailedPrecondition(
                f"{self._what(desc)}: registry answered the upload request with HTTP "
                f"{response.status_code} and no upload location"
            )
        return location

    def _upload_blob(
        self,
        desc: Descriptor,
        data: bytes | ReadStream,
        mount_from: str | None,
        chunk_size: int | None,
    ) -> bool:
        location = self._start_upload(desc, mount_from)
        if location is None:
            return False
        if chunk_size:
            location = self._patch_chunks(desc, location, data, chunk_size)
            body: bytes | ReadStream = b""
        else:
            body = data
        response = self._transport.request(
            "PUT",
            _with_query(location, digest=desc.digest),
            what=self._what(desc),
            headers={
                "Content-Type": _OCTET_STREAM,
                "Content-Length": str(desc.size if body else 0),
            },
            data=body,
        )
        with response:
            if response.status_code != 201:
                raise FailedPrecondition(
                    f"{self._what(desc)}: upload finished with HTTP {response.status_code}, "
                    "expected 201 Created"
                )
        return True

    def _patch_chunks(
        self, desc: Descriptor, location: str, data: bytes | ReadStream, chunk_size: int
    ) -> str:
        """Send the content as PATCH chunks; returns the Location to finish the upload at."""
        stream = _as_stream(data)
        offset = 0
        while chunk := stream.read(chunk_size):
            response = self._transport.request(
                "PATCH",
                location,
                what=self._what(desc),
                headers={
                    "Content-Type": _OCTET_STREAM,
                    "Content-Range": f"{offset}-{offset + len(chunk) - 1}",
                    "Content-Length": str(len(chunk)),
                },
                data=chunk,
            )
            with response:
                location = response.headers.get("Location") or location
            offset += len(chunk)
        if offset != desc.size:
            raise InvalidArgument(
                f"{desc.digest}: data has {offset} bytes but the descriptor says {desc.size}"
            )
        return location


def _as_stream(data: bytes | ReadStream) -> ReadStream:
    return io.BytesIO(data) if isinstance(data, bytes | bytearray | memoryview) else data


def _check_bytes(desc: Descriptor, data: bytes) -> None:
    if len(data) != desc.size:
        raise InvalidArgument(
            f"{desc.digest}: data has {len(data)} bytes but the descriptor says {desc.size}"
        )
    algorithm, _ = parse_digest(desc.digest)
    if digest_of_bytes(data, algorithm) != desc.digest:
        raise InvalidArgument(f"data does not match digest {desc.digest}")
