"""The streaming server's pieces: SPDY/3.1 framing against a client written here, tokens,
the remotecommand Status, the config keys."""

from __future__ import annotations

import asyncio
import hashlib
import json
import struct
import zlib

import pytest

from pycontainerd import errdefs
from pycontainerd.cri import config as cri_config
from pycontainerd.cri.streaming import remotecommand, spdy, tokens

# sha256 of the SPDY/3 header dictionary as the spec (and every implementation) has it.
DICTIONARY_SHA256 = "51d27341373f923f3cd88e1eb7162aeaa3723d7585ff2399201dc06498407f02"


def test_dictionary_is_the_specified_one():
    assert len(spdy.DICTIONARY) == 1423
    assert hashlib.sha256(spdy.DICTIONARY).hexdigest() == DICTIONARY_SHA256


def test_header_blocks_round_trip():
    headers = {"streamtype": "stdout", "port": "80"}
    assert spdy.decode_headers(spdy.encode_headers(headers)) == headers
    # Names arrive lowercased; of NUL-joined values the first one counts.
    raw = struct.pack(">I", 1) + struct.pack(">I", 4) + b"Port" + struct.pack(">I", 5) + b"80\x0081"
    assert spdy.decode_headers(raw) == {"port": "80"}
    with pytest.raises(ValueError):
        spdy.decode_headers(spdy.encode_headers(headers) + b"x")


class Client:
    """The client half of a SPDY session, as spdystream frames it."""

    def __init__(self) -> None:
        self.deflate = zlib.compressobj(zdict=spdy.DICTIONARY)
        self.inflate = zlib.decompressobj(zdict=spdy.DICTIONARY)

    def syn_stream(self, stream_id: int, headers: dict[str, str], fin: bool = False) -> bytes:
        block = self.deflate.compress(spdy.encode_headers(headers))
        block += self.deflate.flush(zlib.Z_SYNC_FLUSH)
        payload = struct.pack(">IIH", stream_id, 0, 0) + block
        return control(spdy.SYN_STREAM, 1 if fin else 0, payload)


def control(kind: int, flags: int, payload: bytes) -> bytes:
    return struct.pack(">HHI", 0x8000 | 3, kind, (flags << 24) | len(payload)) + payload


def data(stream_id: int, payload: bytes, fin: bool = False) -> bytes:
    return struct.pack(">II", stream_id, ((1 if fin else 0) << 24) | len(payload)) + payload


async def read_frame(reader: asyncio.StreamReader) -> tuple[int, int, int, bytes]:
    first, second = struct.unpack(">II", await reader.readexactly(8))
    payload = await reader.readexactly(second & 0xFFFFFF)
    if first & 0x80000000:
        return first & 0xFFFF, 0, second >> 24, payload
    return -1, first, second >> 24, payload


def test_a_session_replies_to_streams_echoes_pings_and_carries_data():
    async def main() -> None:
        streams: list[spdy.Stream] = []

        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            session = spdy.Session(reader, writer, streams.append)
            runner = asyncio.create_task(session.run())
            while len(streams) < 2:
                await asyncio.sleep(0.01)
            got = await streams[0].read()
            await streams[1].write(got.upper())
            await streams[1].close()
            assert await streams[0].read() == b""  # the client's FIN
            await runner

        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        client = Client()
        writer.write(client.syn_stream(1, {"streamType": "stdin"}))
        writer.write(client.syn_stream(3, {"streamType": "stdout"}, fin=True))
        writer.write(control(spdy.PING, 0, struct.pack(">I", 7)))
        replies = []
        for _ in range(3):
            kind, _, _, payload = await read_frame(reader)
            replies.append((kind, payload[:4]))
        assert sorted(replies) == [
            (spdy.SYN_REPLY, struct.pack(">I", 1)),
            (spdy.SYN_REPLY, struct.pack(">I", 3)),
            (spdy.PING, struct.pack(">I", 7)),
        ]
        writer.write(data(1, b"hello", fin=True))
        assert await read_frame(reader) == (-1, 3, 0, b"HELLO")
        assert await read_frame(reader) == (-1, 3, 1, b"")
        writer.write(control(spdy.GOAWAY, 0, struct.pack(">II", 3, 0)))
        await writer.drain()
        writer.close()
        server.close()
        assert [s.headers["streamtype"] for s in streams] == ["stdin", "stdout"]

    asyncio.run(main())


def test_tokens_are_single_use_and_expire(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(tokens.time, "monotonic", lambda: now[0])
    cache: tokens.TokenCache[str] = tokens.TokenCache(ttl=60, limit=2)
    first = cache.insert("a")
    assert len(first) == 8
    assert cache.consume(first) == "a"
    assert cache.consume(first) is None
    late = cache.insert("b")
    now[0] += 61
    assert cache.consume(late) is None
    cache.insert("c")
    cache.insert("d")
    with pytest.raises(errdefs.ResourceExhausted):
        cache.insert("e")
    assert cache.consume("AAAAAAAA") is None


def test_exit_status_is_a_kubernetes_status():
    assert remotecommand.status_json(0, ["true"]) == {"status": "Success"}
    failed = remotecommand.status_json(3, ["sh", "-c", "exit 3"])
    assert failed["reason"] == "NonZeroExitCode"
    assert failed["details"] == {"causes": [{"reason": "ExitCode", "message": "3"}]}
    assert json.loads(json.dumps(failed))["status"] == "Failure"
    internal = remotecommand.status_json(0, [], "gone")
    assert internal["code"] == 500 and internal["reason"] == "InternalError"


def test_streaming_config_keys():
    parsed = cri_config.parse({})
    assert parsed.stream_server_address == "127.0.0.1"
    assert parsed.stream_server_port == 0
    assert parsed.stream_idle_timeout == 4 * 3600
    assert parsed.disable_hugetlb_controller is True  # containerd's default
    parsed = cri_config.parse({"stream_server_port": "10010", "stream_idle_timeout": "1m30s"})
    assert (parsed.stream_server_port, parsed.stream_idle_timeout) == (10010, 90)
    for bad in (
        {"stream_server_port": "x"},
        {"stream_server_port": 10010},
        {"stream_idle_timeout": "4 hours"},
        {"enable_tls_streaming": True},
    ):
        with pytest.raises(errdefs.InvalidArgument):
            cri_config.parse(bad)


def test_only_loopback_addresses_are_served():
    from pycontainerd.cri.streaming.server import check_loopback

    for good in ("127.0.0.1", "::1", "localhost", "127.0.0.2"):
        check_loopback(good)
    for bad in ("0.0.0.0", "10.0.0.1", "example"):
        with pytest.raises(errdefs.InvalidArgument):
            check_loopback(bad)


def test_an_idle_session_ends():
    async def main() -> None:
        ended = asyncio.Event()

        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await spdy.Session(reader, writer, lambda s: None, idle_timeout=0.2).run()
            ended.set()
            writer.close()

        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        await asyncio.wait_for(ended.wait(), 30)
        assert await reader.read() == b""
        writer.close()
        server.close()

    asyncio.run(main())


def test_websocket_frames_and_the_close_signal():
    from pycontainerd.cri.streaming import websocket

    # RFC 6455's example key.
    assert websocket.accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

    async def main() -> None:
        reader = asyncio.StreamReader()
        conn = websocket.Connection(reader, None, websocket.V5)  # type: ignore[arg-type]
        mask = b"\x01\x02\x03\x04"

        def masked(opcode: int, payload: bytes, fin: bool = True) -> bytes:
            body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
            return bytes([(0x80 if fin else 0) | opcode, 0x80 | len(payload)]) + mask + body

        reader.feed_data(masked(websocket.BINARY, b"\x00he", fin=False))
        reader.feed_data(masked(websocket.CONT, b"llo"))
        reader.feed_data(masked(websocket.BINARY, bytes([255, 0])))
        reader.feed_eof()
        await conn.run()
        stdin = conn.channels[websocket.STDIN]
        assert await stdin.read() == b"hello"
        assert await stdin.read() == b""

    asyncio.run(main())
    assert websocket.frame(websocket.BINARY, b"x" * 200)[:4] == bytes([0x82, 126, 0, 200])
