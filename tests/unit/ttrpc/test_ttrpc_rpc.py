"""Our TtrpcClient against our TtrpcServer: calls, errors, limits, deadlines, loss."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import uuid

import pytest
from ttrpc_echo import (
    ECHO_DESCRIPTOR,
    ECHO_SERVICE,
    EchoRequest,
    EchoResponse,
    RawPeer,
    serve_echo,
)

from pycontainerd import errdefs
from pycontainerd.errdefs import Code
from pycontainerd.ttrpc import (
    MESSAGE_LENGTH_MAX,
    Method,
    ServiceStub,
    TtrpcClient,
    TtrpcServer,
    register_service,
)
from pycontainerd.ttrpc.framing import MessageType, encode_frame, read_frame


def test_round_trip_with_metadata_and_deadline(run, tmp_path):
    async def scenario():
        async with serve_echo(tmp_path) as h:
            reply = await h.stub.Echo(
                EchoRequest(text="hi", blob=b"\x00\x01"), metadata={"X-Test": ["a", "b"]}
            )
            assert (reply.text, reply.blob, reply.metadata) == ("hi", b"\x00\x01", "a,b")
            assert reply.time_remaining == -1.0  # no timeout given -> no deadline
            timed = await h.client.call(
                ECHO_SERVICE, "Echo", EchoRequest(), EchoResponse, timeout=5.0
            )
            assert 4.0 < timed.time_remaining <= 5.0

    run(scenario())


def test_client_stream_ids_are_odd_and_increase_by_two(run, tmp_path):
    async def scenario():
        seen: list[int] = []

        async def answer(reader, writer):
            while True:
                try:
                    frame = await read_frame(reader)
                except asyncio.IncompleteReadError:
                    writer.close()
                    return
                seen.append(frame.stream_id)
                writer.write(encode_frame(frame.stream_id, MessageType.RESPONSE, b"\x0a\x00"))

        path = str(tmp_path / "raw.sock")
        listener = await asyncio.start_unix_server(answer, path=path)
        try:
            async with await TtrpcClient.connect(path) as client:
                for _ in range(3):
                    await client.call("s", "m", EchoRequest(), EchoResponse)
        finally:
            listener.close()
        assert seen == [1, 3, 5]

    run(scenario())


def test_hundred_concurrent_calls_on_one_connection(run, tmp_path):
    async def scenario():
        async with serve_echo(tmp_path) as h:
            # Later calls finish first, so answers arrive out of order.
            calls = [
                h.stub.Sleep(EchoRequest(text=f"call-{i}", delay=(100 - i) / 2000))
                for i in range(100)
            ]
            replies = await asyncio.gather(*calls)
            assert [r.text for r in replies] == [f"call-{i}" for i in range(100)]
            assert h.server.connection_count == 1

    run(scenario())


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        (Code.NOT_FOUND, errdefs.NotFound),
        (Code.ALREADY_EXISTS, errdefs.AlreadyExists),
        (Code.INVALID_ARGUMENT, errdefs.InvalidArgument),
        (Code.FAILED_PRECONDITION, errdefs.FailedPrecondition),
        (Code.UNAVAILABLE, errdefs.Unavailable),
        (Code.ABORTED, errdefs.Aborted),
    ],
)
def test_handler_errors_reach_the_caller_with_their_code(run, tmp_path, code, kind):
    async def scenario():
        async with serve_echo(tmp_path) as h:
            with pytest.raises(kind, match="^it failed$") as caught:
                await h.stub.Fail(EchoRequest(code=code, text="it failed"))
            assert caught.value.code == code

    run(scenario())


def test_unexpected_exceptions_are_unknown_and_os_errors_keep_meaning(run, tmp_path):
    async def scenario():
        async with serve_echo(tmp_path) as h:
            with pytest.raises(errdefs.ContainerdError, match="kaput") as caught:
                await h.stub.Fail(EchoRequest(code=0, text="kaput"))
            assert caught.value.code == Code.UNKNOWN
            with pytest.raises(errdefs.NotFound):
                await h.stub.Fail(EchoRequest(code=-1, text="no such file"))
            with pytest.raises(errdefs.ContainerdError) as internal:
                await h.stub.Fail(EchoRequest(code=Code.INTERNAL, text="inside"))
            assert internal.value.code == Code.INTERNAL
            # The connection is still fine after errors.
            assert (await h.stub.Echo(EchoRequest(text="ok"))).text == "ok"

    run(scenario())


def test_unknown_service_and_method_are_unimplemented(run, tmp_path):
    async def scenario():
        async with serve_echo(tmp_path) as h:
            with pytest.raises(errdefs.NotImplemented_, match="^service no.such.Service$"):
                await h.client.call("no.such.Service", "Echo", EchoRequest(), EchoResponse)
            with pytest.raises(errdefs.NotImplemented_, match="^method Nope$"):
                await h.client.call(ECHO_SERVICE, "Nope", EchoRequest(), EchoResponse)
            # Declared in the descriptor but not implemented by the service object.
            with pytest.raises(errdefs.NotImplemented_, match="^method Missing$"):
                await h.stub.Missing(EchoRequest())

    run(scenario())


def test_oversized_request_is_refused_and_connection_survives(run, tmp_path):
    async def scenario():
        async with serve_echo(tmp_path) as h:
            peer = await RawPeer.connect(h.address)
            try:
                length = MESSAGE_LENGTH_MAX + 10
                header = length.to_bytes(4, "big") + (9).to_bytes(4, "big") + b"\x01\x00"
                await peer.send(header + b"\x00" * length)
                frame, response = await peer.receive()
                assert frame.stream_id == 9 and frame.type == MessageType.RESPONSE
                assert response.code == Code.RESOURCE_EXHAUSTED
                assert "exceed maximum message size" in response.message
                await peer.send_request(11, "Echo", EchoRequest(text="after"))
                frame, response = await peer.receive()
                assert frame.stream_id == 11 and response.code == Code.OK
                assert EchoResponse.FromString(response.payload).text == "after"
            finally:
                await peer.close()

    run(scenario())


def test_oversized_messages_from_our_own_side_are_resource_exhausted(run, tmp_path):
    async def scenario():
        async with serve_echo(tmp_path) as h:
            with pytest.raises(errdefs.ResourceExhausted):
                await h.stub.Echo(EchoRequest(blob=b"x" * MESSAGE_LENGTH_MAX))
            with pytest.raises(errdefs.ResourceExhausted):
                await h.stub.Big(EchoRequest(size=MESSAGE_LENGTH_MAX))
            big = await h.stub.Big(EchoRequest(size=MESSAGE_LENGTH_MAX - 64))
            assert len(big.blob) == MESSAGE_LENGTH_MAX - 64

    run(scenario())


def test_malformed_and_even_stream_requests_are_invalid_argument(run, tmp_path):
    async def scenario():
        async with serve_echo(tmp_path) as h:
            peer = await RawPeer.connect(h.address)
            try:
                await peer.send(encode_frame(3, MessageType.REQUEST, b"\xff\xff\xff"))
                frame, response = await peer.receive()
                assert (frame.stream_id, response.code) == (3, Code.INVALID_ARGUMENT)
                await peer.send_request(4, "Echo", EchoRequest())
                frame, response = await peer.receive()
                assert (frame.stream_id, response.code) == (4, Code.INVALID_ARGUMENT)
                assert "odd" in response.message
                # Non-request frames are ignored; the next request is answered.
                await peer.send(encode_frame(5, MessageType.RESPONSE, b""))
                await peer.send_request(7, "Echo", EchoRequest(text="x"))
                frame, response = await peer.receive()
                assert (frame.stream_id, response.code) == (7, Code.OK)
            finally:
                await peer.close()

    run(scenario())


def test_client_timeout_raises_deadline_exceeded_and_server_cancels(run, tmp_path):
    async def scenario():
        async with serve_echo(tmp_path) as h:
            loop = asyncio.get_running_loop()
            started = loop.time()
            with pytest.raises(errdefs.DeadlineExceeded):
                await h.stub.Sleep(EchoRequest(text="slow", delay=10), timeout=0.1)
            assert loop.time() - started < 2
            for _ in range(100):  # the server's own deadline cancels the handler
                if h.impl.cancelled:
                    break
                await asyncio.sleep(0.01)
            assert h.impl.cancelled == ["slow"]
            assert (await h.stub.Echo(EchoRequest(text="still"))).text == "still"

    run(scenario())


def test_server_enforces_the_request_deadline(run, tmp_path):
    async def scenario():
        async with serve_echo(tmp_path) as h:
            peer = await RawPeer.connect(h.address)
            try:
                await peer.send_request(1, "Sleep", EchoRequest(text="s", delay=10), 50_000_000)
                frame, response = await peer.receive()
                assert (frame.stream_id, response.code) == (1, Code.DEADLINE_EXCEEDED)
                # Go applies a deadline already in the past at once.
                await peer.send_request(3, "Sleep", EchoRequest(text="t", delay=10), -1)
                frame, response = await peer.receive()
                assert (frame.stream_id, response.code) == (3, Code.DEADLINE_EXCEEDED)
            finally:
                await peer.close()

    run(scenario())


def test_server_loss_fails_pending_and_later_calls_with_unavailable(run, tmp_path):
    async def scenario():
        closed = asyncio.Event()
        async with serve_echo(tmp_path) as h:
            client = await h.connect(on_close=closed.set)
            pending = asyncio.ensure_future(
                client.call(ECHO_SERVICE, "Sleep", EchoRequest(delay=10), EchoResponse)
            )
            while not h.impl.started:
                await asyncio.sleep(0.01)
            await h.server.close()
            with pytest.raises(errdefs.Unavailable, match="ttrpc: closed"):
                await pending
            await asyncio.wait_for(closed.wait(), 5)
            assert client.closed
            with pytest.raises(errdefs.Unavailable):
                await client.call(ECHO_SERVICE, "Echo", EchoRequest(), EchoResponse)

    run(scenario())


def test_client_disconnect_cancels_its_running_handlers(run, tmp_path):
    async def scenario():
        async with serve_echo(tmp_path) as h:
            client = await h.connect()
            task = asyncio.ensure_future(
                client.call(
                    ECHO_SERVICE, "Sleep", EchoRequest(text="orphan", delay=10), EchoResponse
                )
            )
            while not h.impl.started:
                await asyncio.sleep(0.01)
            assert h.server.connection_count == 2
            client.close()
            with pytest.raises(errdefs.Unavailable):
                await task
            for _ in range(200):
                if h.impl.cancelled and h.server.connection_count == 1:
                    break
                await asyncio.sleep(0.01)
            assert h.impl.cancelled == ["orphan"]
            assert h.server.connection_count == 1

    run(scenario())


def test_connect_to_nothing_is_unavailable(run, tmp_path):
    async def scenario():
        with pytest.raises(errdefs.Unavailable, match="cannot connect"):
            await TtrpcClient.connect(str(tmp_path / "absent.sock"))

    run(scenario())


def test_graceful_shutdown_finishes_running_calls(run, tmp_path):
    async def scenario():
        async with serve_echo(tmp_path) as h:
            socket_file = tmp_path / "echo.sock"
            assert socket_file.exists()
            busy = asyncio.ensure_future(h.stub.Sleep(EchoRequest(text="last", delay=0.2)))
            while not h.impl.started:
                await asyncio.sleep(0.01)
            idle_client = await h.connect()
            await h.server.shutdown(timeout=5)
            assert (await busy).text == "last"
            assert not socket_file.exists()
            assert h.server.connection_count == 0
            await h.server.wait_closed()
            with pytest.raises(errdefs.Unavailable):
                await idle_client.call(ECHO_SERVICE, "Echo", EchoRequest(), EchoResponse)
            with pytest.raises(errdefs.Unavailable):
                await h.connect()
            with pytest.raises(errdefs.FailedPrecondition):
                await h.server.serve_unix(str(socket_file))

    run(scenario())


def test_shutdown_timeout_cancels_stuck_calls(run, tmp_path):
    async def scenario():
        async with serve_echo(tmp_path) as h:
            stuck = asyncio.ensure_future(h.stub.Sleep(EchoRequest(text="stuck", delay=30)))
            while not h.impl.started:
                await asyncio.sleep(0.01)
            await h.server.shutdown(timeout=0.1)
            with pytest.raises(errdefs.Unavailable):
                await stuck
            assert h.impl.cancelled == ["stuck"]

    run(scenario())


def test_serve_on_an_inherited_listening_socket(run, tmp_path):
    async def scenario():
        path = str(tmp_path / "inherited.sock")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(path)
        sock.listen()

        async def echo(request, ctx):
            return EchoResponse(text=request.text.upper())

        server = TtrpcServer()
        server.register(ECHO_SERVICE, {"Echo": Method(EchoRequest, echo)})
        await server.serve_on_socket(sock)
        try:
            async with await TtrpcClient.connect(path) as client:
                reply = await client.call(ECHO_SERVICE, "Echo", EchoRequest(text="a"), EchoResponse)
                assert reply.text == "A"
        finally:
            await server.close()
        assert sock.fileno() == -1
        with (
            socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as unbound,
            pytest.raises(errdefs.InvalidArgument, match="not listening"),
        ):
            await TtrpcServer().serve_on_socket(unbound)

    run(scenario())


def test_stale_socket_is_replaced_but_a_live_one_is_refused(run, tmp_path):
    async def scenario():
        path = str(tmp_path / "stale.sock")
        stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        stale.bind(path)
        stale.close()  # leaves the file with nobody listening
        first = TtrpcServer()
        await first.serve_unix(path)
        second = TtrpcServer()
        try:
            with pytest.raises(errdefs.AlreadyExists, match="already listening"):
                await second.serve_unix(path)
            regular = tmp_path / "regular"
            regular.write_text("keep me")
            with pytest.raises(errdefs.AlreadyExists, match="not a socket"):
                await second.serve_unix(str(regular))
            assert regular.read_text() == "keep me"
        finally:
            await first.close()
            await second.close()

    run(scenario())


def test_duplicate_service_registration_is_refused():
    server = TtrpcServer()
    server.register(ECHO_SERVICE, {})
    with pytest.raises(errdefs.AlreadyExists):
        server.register(ECHO_SERVICE, {})


def _probe_as_nobody(abstract_name: str) -> int:
    """Fork a child that, as uid/gid 65534, connects and reads: exit 0 means refused (EOF)."""
    pid = os.fork()
    if pid == 0:  # child: no asyncio here, only plain blocking calls, then _exit
        code = 2
        try:
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
                probe.settimeout(5)
                probe.connect("\0" + abstract_name)
                code = 0 if probe.recv(1) == b"" else 1
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run a probe as another user")
def test_require_same_user_refuses_other_users(run, tmp_path):
    async def scenario():
        name = f"@pycontainerd-ttrpc-test-{uuid.uuid4().hex}"  # abstract: no fs permissions
        server = TtrpcServer(require_same_user=True)
        await server.serve_unix(name)
        try:
            assert await asyncio.to_thread(_probe_as_nobody, name[1:]) == 0
            async with await TtrpcClient.connect(name) as client:
                with pytest.raises(errdefs.NotImplemented_):
                    await client.call("a.B", "C", EchoRequest(), EchoResponse)
        finally:
            await server.close()

    run(scenario())


def test_connection_arriving_as_the_server_closes_is_not_left_hanging(run, tmp_path):
    async def scenario():
        for attempt in range(10):
            async with serve_echo(tmp_path / str(attempt)) as h:
                peer = await RawPeer.connect(h.address)  # accepted or still in the backlog
                try:
                    await h.server.close()
                    with contextlib.suppress(ConnectionError):  # a reset is as good as EOF
                        assert await asyncio.wait_for(peer.reader.read(), 2) == b""
                finally:
                    await peer.close()

    run(scenario())


def test_service_helpers_reject_misuse(tmp_path):
    class NotCallable:
        Echo = "not a method"

    with pytest.raises(errdefs.InvalidArgument, match="async method"):
        register_service(TtrpcServer(), ECHO_DESCRIPTOR, NotCallable())
    stub = ServiceStub(object(), ECHO_DESCRIPTOR)  # type: ignore[arg-type]
    assert set(stub.methods) == {"Echo", "Sleep", "Fail", "Big", "Missing"}
    with pytest.raises(AttributeError, match="has no method Nope"):
        stub.Nope  # noqa: B018
