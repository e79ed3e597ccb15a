"""Encoding of the ttrpc Request and Response envelopes (containerd/ttrpc types.go).

Everything that touches the generated ``ttrpc_pb2`` module lives here, so the
client and server only deal in plain values.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from google.protobuf.message import DecodeError

from pycontainerd.api.ttrpc import ttrpc_pb2
from pycontainerd.errdefs import Code

Metadata = dict[str, list[str]]
"""Call metadata as received: key -> values in arrival order (Go's ttrpc.MD)."""

MetadataArg = Mapping[str, str | Sequence[str]]
"""Call metadata as given by a caller: a value may be one string or several."""

__all__ = [
    "DecodeError",
    "Metadata",
    "MetadataArg",
    "ReceivedRequest",
    "ReceivedResponse",
    "decode_request",
    "decode_response",
    "encode_request",
    "encode_response",
]


@dataclass(frozen=True, slots=True)
class ReceivedRequest:
    service: str
    method: str
    payload: bytes
    timeout_nano: int
    metadata: Metadata


@dataclass(frozen=True, slots=True)
class ReceivedResponse:
    code: int
    message: str
    payload: bytes


def encode_request(
    service: str,
    method: str,
    payload: bytes,
    timeout_nano: int = 0,
    metadata: MetadataArg | None = None,
) -> bytes:
    request = ttrpc_pb2.Request(
        service=service, method=method, payload=payload, timeout_nano=timeout_nano
    )
    if metadata:
        request.metadata.extend(
            ttrpc_pb2.KeyValue(key=key, value=value) for key, value in _pairs(metadata)
        )
    return request.SerializeToString()


def decode_request(data: bytes) -> ReceivedRequest:
    """Parse a request envelope; raises ``DecodeError`` on malformed bytes."""
    request = ttrpc_pb2.Request.FromString(data)
    metadata: Metadata = {}
    for pair in request.metadata:
        metadata.setdefault(pair.key, []).append(pair.value)
    return ReceivedRequest(
        request.service, request.method, request.payload, request.timeout_nano, metadata
    )


def encode_response(code: int, message: str = "", payload: bytes = b"") -> bytes:
    """A response envelope. The status field is always present, even for OK, as Go sends it."""
    response = ttrpc_pb2.Response(payload=payload)
    response.status.code = code
    response.status.message = message
    if code == Code.OK:
        response.status.SetInParent()
    return response.SerializeToString()


def decode_response(data: bytes) -> ReceivedResponse:
    """Parse a response envelope; raises ``DecodeError`` on malformed bytes."""
    response = ttrpc_pb2.Response.FromString(data)
    return ReceivedResponse(response.status.code, response.status.message, response.payload)


def _pairs(metadata: MetadataArg) -> Iterable[tuple[str, str]]:
    """Flatten to key/value pairs; keys are lower-cased as Go's ``ttrpc.MD`` stores them."""
    for name, values in metadata.items():
        key = name.lower()
        if isinstance(values, str):
            yield key, values
        else:
            for value in values:
                yield key, value
