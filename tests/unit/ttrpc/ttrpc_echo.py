"""Echo: a small ttrpc service built from a descriptor at run time, and a harness
that serves it with TtrpcServer and connects a TtrpcClient to it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool
from google.protobuf.message_factory import GetMessageClass

from pycontainerd.ttrpc import RequestContext, ServiceStub, TtrpcClient, TtrpcServer
from pycontainerd.ttrpc.address import socket_path
from pycontainerd.ttrpc.framing import Frame, MessageType, encode_frame, read_frame
from pycontainerd.ttrpc.protocol import ReceivedResponse, decode_response, encode_request
from pycontainerd.ttrpc.services import register_service
from pycontainerd.ttrpc.status import error_from_status

ECHO_SERVICE = "ttrpc.test.v1.Echo"


def _build_echo_file() -> descriptor_pb2.FileDescriptorProto:
    fdp = descriptor_pb2.FileDescriptorProto(
        name="pycontainerd_tests/ttrpc_echo.proto", package="ttrpc.test.v1", syntax="proto3"
    )
    f = descriptor_pb2.FieldDescriptorProto
    request = fdp.message_type.add(name="EchoRequest")
    for number, (name, kind) in enumerate(
        [
            ("text", f.TYPE_STRING),
            ("blob", f.TYPE_BYTES),
            ("delay", f.TYPE_DOUBLE),
            ("code", f.TYPE_INT32),
            ("size", f.TYPE_INT32),
        ],
        start=1,
    ):
        request.field.add(name=name, number=number, type=kind, label=f.LABEL_OPTIONAL)
    response = fdp.message_type.add(name="EchoResponse")
    for number, (name, kind) in enumerate(
        [
            ("text", f.TYPE_STRING),
            ("blob", f.TYPE_BYTES),
            ("metadata", f.TYPE_STRING),
            ("time_remaining", f.TYPE_DOUBLE),
        ],
        start=1,
    ):
        response.field.add(name=name, number=number, type=kind, label=f.LABEL_OPTIONAL)
    service = fdp.service.add(name="Echo")
    for method in ("Echo", "Sleep", "Fail", "Big", "Missing"):
        service.method.add(
            name=method,
            input_type=".ttrpc.test.v1.EchoRequest",
            output_type=".ttrpc.test.v1.EchoResponse",
        )
    return fdp


_POOL = descriptor_pool.DescriptorPool()
_FILE = _POOL.Add(_build_echo_file())
ECHO_DESCRIPTOR = _POOL.FindServiceByName(ECHO_SERVICE)
EchoRequest = GetMessageClass(_POOL.FindMessageTypeByName("ttrpc.test.v1.EchoRequest"))
EchoResponse = GetMessageClass(_POOL.FindMessageTypeByName("ttrpc.test.v1.EchoResponse"))


@dataclass
class EchoImpl:
    """Echo's handlers; records what the server did with calls it cancelled."""

    cancelled: list[str] = field(default_factory=list)
    started: list[str] = field(default_factory=list)

    async def Echo(self, request: Any, ctx: RequestContext) -> Any:  # noqa: N802 - RPC name
        remaining = ctx.time_remaining()
        return EchoResponse(
            text=request.text,
            blob=request.blob,
            metadata=",".join(ctx.metadata.get("x-test", [])),
            time_remaining=-1.0 if remaining is None else remaining,
        )

    async def Sleep(self, request: Any, ctx: RequestContext) -> Any:  # noqa: N802
        self.started.append(request.text)
        try:
            await asyncio.sleep(request.delay)
        except asyncio.CancelledError:
            self.cancelled.append(request.text)
            raise
        return EchoResponse(text=request.text)

    async def Fail(self, request: Any, ctx: RequestContext) -> Any:  # noqa: N802
        if request.code == 0:
            raise RuntimeError(request.text)
        if request.code < 0:
            raise FileNotFoundError(request.text)
        raise error_from_status(request.code, request.text)

    async def Big(self, request: Any, ctx: RequestContext) -> Any:  # noqa: N802
        return EchoResponse(blob=b"x" * request.size)


@dataclass
class EchoHarness:
    """A served Echo service plus one connected client (inside a running loop)."""

    address: str
    server: TtrpcServer
    client: TtrpcClient
    impl: EchoImpl

    @property
    def stub(self) -> ServiceStub:
        return ServiceStub(self.client, ECHO_DESCRIPTOR)

    async def connect(self, **kwargs: Any) -> TtrpcClient:
        return await TtrpcClient.connect(self.address, **kwargs)


@contextlib.asynccontextmanager
async def serve_echo(tmp_path: Path, **server_options: Any) -> AsyncIterator[EchoHarness]:
    impl = EchoImpl()
    server = TtrpcServer(**server_options)
    register_service(server, ECHO_DESCRIPTOR, impl)
    tmp_path.mkdir(parents=True, exist_ok=True)
    address = f"unix://{tmp_path / 'echo.sock'}"
    await server.serve_unix(address)
    client = await TtrpcClient.connect(address)
    try:
        yield EchoHarness(address, server, client, impl)
    finally:
        client.close()
        await client.wait_closed()
        await server.close()


class RawPeer:
    """A bare socket speaking frames, to send what a well-behaved client would not."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, address: str) -> RawPeer:
        reader, writer = await asyncio.open_unix_connection(socket_path(address))
        return cls(reader, writer)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def send_request(
        self, stream_id: int, method: str, request: Any, timeout_nano: int = 0
    ) -> None:
        body = encode_request(ECHO_SERVICE, method, request.SerializeToString(), timeout_nano)
        await self.send(encode_frame(stream_id, MessageType.REQUEST, body))

    async def receive(self) -> tuple[Frame, ReceivedResponse]:
        frame = await read_frame(self.reader)
        return frame, decode_response(frame.payload)

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()
