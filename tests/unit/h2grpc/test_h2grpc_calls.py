"""Our HTTP/2 gRPC server against grpc's own client (grpc.aio, C core): every call shape."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import tempfile
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any

import grpc
import pytest

from pycontainerd.errdefs import Code
from pycontainerd.h2grpc import MethodHandler, Server, ServicerContext

SERVICE = "test.Echo"
MAX_MESSAGE = 8 << 20


async def _unary(request: bytes, context: ServicerContext) -> bytes:
    metadata = dict(context.invocation_metadata())
    if request == b"abort":
        await context.abort(Code.NOT_FOUND, "no such thing: ünïcode % 100")
    if request == b"raise":
        raise RuntimeError("boom")
    if request == b"set-code":
        context.set_code(Code.UNIMPLEMENTED)
        context.set_details("Method not implemented!")
        raise NotImplementedError("Method not implemented!")
    if request == b"sleep":
        await asyncio.sleep(30)
    if request == b"metadata":
        context.set_trailing_metadata((("x-trailer", "t"), ("x-blob-bin", b"\x00\xff")))
        return repr(sorted(metadata.items())).encode()
    return request


async def _server_stream(request: bytes, context: ServicerContext) -> AsyncIterator[bytes]:
    count, size = (int(part) for part in request.split(b"x"))
    for i in range(count):
        yield bytes([i % 256]) * size
    if request.endswith(b"x0"):
        await context.abort(Code.FAILED_PRECONDITION, "after the stream")


async def _client_stream(requests: AsyncIterator[bytes], context: ServicerContext) -> bytes:
    total = count = 0
    async for request in requests:
        total += len(request)
        count += 1
    return f"{count} {total}".encode()


async def _bidi(requests: AsyncIterator[bytes], context: ServicerContext) -> AsyncIterator[bytes]:
    async for request in requests:
        if request == b"stop":
            return
        yield request[::-1]


async def _writer(request: bytes, context: ServicerContext) -> None:
    for part in request.split(b","):
        await context.write(part)


HANDLERS = {
    "Unary": MethodHandler(False, False, _unary),
    "ServerStream": MethodHandler(False, True, _server_stream),
    "ClientStream": MethodHandler(True, False, _client_stream),
    "Bidi": MethodHandler(True, True, _bidi),
    "Writer": MethodHandler(False, True, _writer),
}


@contextlib.asynccontextmanager
async def serving() -> AsyncIterator[tuple[Server, grpc.aio.Channel]]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "grpc.sock"
        server = Server(max_receive_message_length=MAX_MESSAGE, max_send_message_length=MAX_MESSAGE)
        for name, handler in HANDLERS.items():
            server.add_method(f"/{SERVICE}/{name}", handler)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(str(path))
        sock.listen(16)
        server.serve_socket(sock)
        channel = grpc.aio.insecure_channel(
            f"unix://{path}",
            options=[
                ("grpc.max_receive_message_length", 64 << 20),
                ("grpc.max_send_message_length", 64 << 20),
            ],
        )
        try:
            yield server, channel
        finally:
            await channel.close()
            await server.stop(0.5)


def method(channel: grpc.aio.Channel, name: str, kind: str = "unary_unary") -> Any:
    return getattr(channel, kind)(f"/{SERVICE}/{name}")


Runner = Callable[[Coroutine[Any, Any, Any]], Any]


def test_unary_echoes_and_carries_metadata(run: Runner) -> None:
    async def scenario() -> None:
        async with serving() as (_, channel):
            unary = method(channel, "Unary")
            assert await unary(b"hello") == b"hello"
            assert await unary(b"") == b""
            call = unary(
                b"metadata", metadata=(("containerd-namespace", "default"), ("k-bin", b"\x01\x02"))
            )
            answer = await call
            assert b"('containerd-namespace', 'default')" in answer
            assert b"('k-bin', b'\\x01\\x02')" in answer
            trailing = dict(await call.trailing_metadata())
            assert trailing["x-trailer"] == "t"
            assert trailing["x-blob-bin"] == b"\x00\xff"

    run(scenario())


@pytest.mark.parametrize(
    ("request_", "code", "details"),
    [
        (b"abort", grpc.StatusCode.NOT_FOUND, "no such thing: ünïcode % 100"),
        (b"set-code", grpc.StatusCode.UNIMPLEMENTED, "Method not implemented!"),
        (b"raise", grpc.StatusCode.UNKNOWN, "Unexpected <class 'RuntimeError'>: boom"),
    ],
)
def test_errors_reach_the_client_with_their_code(
    run: Runner, request_: bytes, code: grpc.StatusCode, details: str
) -> None:
    async def scenario() -> None:
        async with serving() as (_, channel):
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await method(channel, "Unary")(request_)
            assert caught.value.code() == code
            assert caught.value.details() == details

    run(scenario())


def test_an_unknown_method_is_unimplemented(run: Runner) -> None:
    async def scenario() -> None:
        async with serving() as (_, channel):
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await channel.unary_unary("/test.Echo/Nope")(b"")
            assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED

    run(scenario())


def test_large_messages_cross_the_flow_control_windows_both_ways(run: Runner) -> None:
    async def scenario() -> None:
        async with serving() as (_, channel):
            big = bytes(range(256)) * (6 << 12)  # 6 MiB: beyond every window
            assert await method(channel, "Unary")(big) == big
            chunks = [
                chunk
                async for chunk in method(channel, "ServerStream", "unary_stream")(b"40x262144")
            ]
            assert [len(c) for c in chunks] == [262144] * 40
            assert all(c == bytes([i]) * 262144 for i, c in enumerate(chunks))

    run(scenario())


def test_a_message_over_the_limit_is_resource_exhausted_both_ways(run: Runner) -> None:
    async def scenario() -> None:
        async with serving() as (_, channel):
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await method(channel, "Unary")(b"x" * (MAX_MESSAGE + 1))
            assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "larger than max" in (caught.value.details() or "")
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                async for _ in method(channel, "ServerStream", "unary_stream")(
                    b"1x%d" % (MAX_MESSAGE + 1)
                ):
                    pass
            assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert await method(channel, "Unary")(b"still serving") == b"still serving"

    run(scenario())


def test_streams_in_every_direction(run: Runner) -> None:
    async def scenario() -> None:
        async with serving() as (_, channel):

            async def requests() -> AsyncIterator[bytes]:
                for i in range(500):
                    yield b"r" * (i * 100)

            assert await method(channel, "ClientStream", "stream_unary")(requests()) == (
                b"500 %d" % sum(i * 100 for i in range(500))
            )
            bidi = method(channel, "Bidi", "stream_stream")()
            for word in (b"abc", b"hello", b""):
                await bidi.write(word)
                assert await bidi.read() == word[::-1]
            await bidi.write(b"stop")
            assert await bidi.read() is grpc.aio.EOF
            assert await bidi.code() == grpc.StatusCode.OK
            written = [m async for m in method(channel, "Writer", "unary_stream")(b"a,bb,ccc")]
            assert written == [b"a", b"bb", b"ccc"]

    run(scenario())


def test_status_after_a_stream_and_a_trailers_only_error(run: Runner) -> None:
    async def scenario() -> None:
        async with serving() as (_, channel):
            call = method(channel, "ServerStream", "unary_stream")(b"3x0")
            got = []
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                async for message in call:
                    got.append(message)
            assert got == [b"", b"", b""]
            assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION

    run(scenario())


def test_deadline_and_cancellation_stop_the_handler(run: Runner) -> None:
    async def scenario() -> None:
        async with serving() as (server, channel):
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await method(channel, "Unary")(b"sleep", timeout=0.2)
            assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
            call = method(channel, "Unary")(b"sleep")
            await asyncio.sleep(0.1)
            call.cancel()
            with pytest.raises(asyncio.CancelledError):
                await call
            for _ in range(50):
                if server.active_calls == 0:
                    break
                await asyncio.sleep(0.02)
            assert server.active_calls == 0

    run(scenario())


def test_compressed_requests_are_decompressed(run: Runner) -> None:
    async def scenario() -> None:
        async with serving() as (_, channel):
            payload = b"compress me " * 10000
            answer = await method(channel, "Unary")(payload, compression=grpc.Compression.Gzip)
            assert answer == payload

    run(scenario())


def test_many_concurrent_calls_on_one_connection(run: Runner) -> None:
    async def scenario() -> None:
        async with serving() as (_, channel):
            unary = method(channel, "Unary")
            answers = await asyncio.gather(*(unary(b"%d" % i * (i * 37)) for i in range(300)))
            assert answers == [b"%d" % i * (i * 37) for i in range(300)]

    run(scenario())


def test_stop_lets_running_calls_finish_and_refuses_new_ones(run: Runner) -> None:
    async def scenario() -> None:
        async with serving() as (server, channel):
            unary = method(channel, "Unary")
            assert await unary(b"warm") == b"warm"
            slow = asyncio.ensure_future(
                method(channel, "ServerStream", "unary_stream")(b"3x10").__aiter__().__anext__()
            )
            await slow
            stopping = asyncio.ensure_future(server.stop(2))
            await asyncio.sleep(0.1)
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await unary(b"late", timeout=2)
            assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
            await stopping

    run(scenario())


def test_a_call_reset_before_its_handler_runs_leaves_nothing(run: Runner) -> None:
    """A RST_STREAM in the same read as the request: the task is cancelled before its first step."""

    async def scenario() -> None:
        from pycontainerd.h2grpc import frames
        from pycontainerd.h2grpc.frames import ErrorCode
        from tests.unit.h2grpc.test_h2grpc_wire import RawClient, _server_path, message

        async with serving() as (server, channel):
            client = await RawClient.connect(_server_path(server))
            block = client.request_block(f"/{SERVICE}/Unary")
            client.send(
                frames.settings({})
                + frames.headers(1, block, 16384, end_stream=False)
                + frames.data(1, message(b"sleep"), end_stream=True)
                + frames.rst_stream(1, ErrorCode.CANCEL)
            )
            await client.writer.drain()
            for _ in range(50):
                await asyncio.sleep(0.02)
                if server.active_calls == 0:
                    break
            assert server.active_calls == 0
            assert await method(channel, "Unary")(b"after") == b"after"

    run(scenario())


def test_a_method_the_servicer_lacks_answers_as_grpc_gos_generated_servers(run: Runner) -> None:
    async def scenario() -> None:
        from pycontainerd.api.services.version.v1 import version_pb2

        async with serving() as (server, channel):
            server.add_service(version_pb2.DESCRIPTOR.services_by_name["Version"], object())
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await channel.unary_unary("/containerd.services.version.v1.Version/Version")(b"")
            assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED
            assert caught.value.details() == "method Version not implemented"

    run(scenario())
