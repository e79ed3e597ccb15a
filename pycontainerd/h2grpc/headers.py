"""gRPC's use of HTTP/2 headers: the request's, and the few header blocks the server sends.

Requests are decoded by :mod:`.hpack_decoder`. Responses are encoded here as literals that
never enter the HPACK dynamic table, so every block is a constant or a short
concatenation, and the peer's table size setting cannot make one wrong.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from pycontainerd.errdefs import Code

GRPC_CONTENT_TYPE = b"application/grpc"
#: Headers that are the protocol's, not the application's metadata.
_RESERVED = frozenset(
    {b"content-type", b"te", b"grpc-timeout", b"grpc-encoding", b"grpc-accept-encoding"}
)
_TIMEOUT_UNITS = {
    ord("H"): 3600.0,
    ord("M"): 60.0,
    ord("S"): 1.0,
    ord("m"): 1e-3,
    ord("u"): 1e-6,
    ord("n"): 1e-9,
}
_STATIC_CONTENT_TYPE = 31  # RFC 7541 appendix A
_STATIC_STATUS_200 = 0x88  # indexed field ":status: 200"


def _integer(value: int, prefix_bits: int, first: int = 0) -> bytes:
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes([first | value])
    out = bytearray([first | limit])
    value -= limit
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _string(value: bytes) -> bytes:
    return _integer(len(value), 7) + value


def literal(name: bytes, value: bytes) -> bytes:
    """A literal header field without indexing, with a literal name."""
    return b"\x00" + _string(name) + _string(value)


RESPONSE_HEADERS = (
    bytes([_STATIC_STATUS_200]) + _integer(_STATIC_CONTENT_TYPE, 4) + _string(GRPC_CONTENT_TYPE)
)
OK_TRAILERS = literal(b"grpc-status", b"0")


def percent_encode(message: str) -> bytes:
    """grpc-message's encoding: printable ASCII but ``%`` as is, every other byte as %XX."""
    raw = message.encode("utf-8", "replace")
    if all(0x20 <= b <= 0x7E and b != 0x25 for b in raw):
        return raw
    return b"".join(bytes([b]) if 0x20 <= b <= 0x7E and b != 0x25 else b"%%%02X" % b for b in raw)


def trailers(code: Code, details: str, metadata: tuple[tuple[str, str | bytes], ...] = ()) -> bytes:
    """The trailer block carrying a call's status (and trailing metadata)."""
    if code == Code.OK and not details and not metadata:
        return OK_TRAILERS
    block = [literal(b"grpc-status", str(int(code)).encode())]
    if details:
        block.append(literal(b"grpc-message", percent_encode(details)))
    block.extend(encode_metadata(metadata))
    return b"".join(block)


def encode_metadata(metadata: tuple[tuple[str, str | bytes], ...]) -> list[bytes]:
    out = []
    for key, value in metadata:
        name = key.lower().encode("ascii")
        if name.endswith(b"-bin"):
            raw = value if isinstance(value, bytes) else value.encode()
            out.append(literal(name, base64.b64encode(raw).rstrip(b"=")))
        else:
            out.append(literal(name, value if isinstance(value, bytes) else value.encode("ascii")))
    return out


@dataclass(slots=True)
class Request:
    """What a call's request headers say."""

    method: str
    timeout: float | None
    encoding: str
    metadata: tuple[tuple[str, str | bytes], ...]


def parse_request(fields: list[tuple[bytes, bytes]]) -> Request | tuple[int, str]:
    """The request, or (HTTP status, reason) when it is not a gRPC call this server takes."""
    method = b""
    http_method = b""
    content_type = b""
    timeout: float | None = None
    encoding = "identity"
    metadata: list[tuple[str, str | bytes]] = []
    for name, value in fields:
        if name[:1] == b":":
            if name == b":path":
                method = value
            elif name == b":method":
                http_method = value
            continue
        if name in _RESERVED:
            if name == b"content-type":
                content_type = value
            elif name == b"grpc-timeout":
                timeout = parse_timeout(value)
            elif name == b"grpc-encoding":
                encoding = value.decode("ascii", "replace")
            continue
        key = name.decode("ascii", "replace")
        if key.endswith("-bin"):
            try:
                metadata.append((key, base64.b64decode(value + b"=" * (-len(value) % 4))))
            except (binascii.Error, ValueError):
                return 400, f"metadata {key} is not base64"
        else:
            metadata.append((key, value.decode("latin-1")))
    if http_method != b"POST":
        return 405, f"method {http_method.decode('latin-1')!r} is not POST"
    if not content_type.startswith(GRPC_CONTENT_TYPE):
        return 415, f"content-type {content_type.decode('latin-1')!r} is not gRPC"
    if not method.startswith(b"/"):
        return 400, f"malformed :path {method.decode('latin-1')!r}"
    return Request(method.decode("utf-8", "replace"), timeout, encoding, tuple(metadata))


def parse_timeout(value: bytes) -> float | None:
    """grpc-timeout (``"100m"`` = 100 ms); None for a value that does not parse, as grpc-go ignores it."""
    if not 2 <= len(value) <= 9 or not value[:-1].isdigit():
        return None
    unit = _TIMEOUT_UNITS.get(value[-1])
    return None if unit is None else int(value[:-1]) * unit


def http_error(status: int, reason: str) -> bytes:
    """A header block refusing a request that is not gRPC (ends the stream)."""
    return (
        _integer(8, 4)
        + _string(str(status).encode())  # ":status" has static index 8
        + _integer(_STATIC_CONTENT_TYPE, 4)
        + _string(b"text/plain; charset=utf-8")
        + literal(b"grpc-status", str(int(Code.INTERNAL)).encode())
        + literal(b"grpc-message", percent_encode(reason))
    )
