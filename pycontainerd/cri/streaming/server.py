"""The streaming HTTP server: /exec, /attach and /portforward behind one-time tokens.

A token stands for the CRI request that made it (ExecRequest, AttachRequest,
PortForwardRequest); the client upgrades to SPDY/3.1 with the subprotocols it
speaks in ``X-Stream-Protocol-Version``. Unknown, used or expired tokens get
404, no common subprotocol 403, a request that is no SPDY upgrade 400.
Exec and attach also take WebSocket upgrades (``v5.channel.k8s.io``,
``v4.channel.k8s.io``, ``channel.k8s.io``); port-forward takes SPDY tunnelled in
WebSocket messages (``SPDY/3.1+portforward.k8s.io``).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
from dataclasses import dataclass

from pycontainerd import errdefs
from pycontainerd.api.cri.runtime.v1 import api_pb2 as cri
from pycontainerd.cri.manager import CRIManager

from . import remotecommand, runtime, spdy, websocket
from .tokens import TokenCache

log = logging.getLogger(__name__)

PORTFORWARD = "portforward.k8s.io"
MAX_HEAD = 64 * 1024
Request = cri.ExecRequest | cri.AttachRequest | cri.PortForwardRequest
REASONS = {400: "Bad Request", 403: "Forbidden", 404: "Not Found", 501: "Not Implemented"}


@dataclass
class HTTPRequest:
    method: str
    path: str
    headers: dict[str, list[str]]

    def header(self, name: str) -> str:
        return ",".join(self.headers.get(name.lower(), []))

    def tokens(self, name: str) -> list[str]:
        return [t.strip() for v in self.headers.get(name.lower(), []) for t in v.split(",")]


def parse_head(raw: bytes) -> HTTPRequest:
    lines = raw.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise ValueError(f"bad request line {lines[0]!r}")
    headers: dict[str, list[str]] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise ValueError(f"bad header line {line!r}")
        headers.setdefault(name.strip().lower(), []).append(value.strip())
    return HTTPRequest(parts[0], parts[1].split("?", 1)[0], headers)


def check_loopback(address: str) -> None:
    try:
        loopback = ipaddress.ip_address(address).is_loopback
    except ValueError:
        loopback = address == "localhost"
    if not loopback:
        raise errdefs.InvalidArgument(
            f"stream_server_address {address!r}: pycontainerd serves streams on loopback only"
        )


class StreamServer:
    def __init__(
        self, manager: CRIManager, address: str, port: int, idle_timeout: float | None
    ) -> None:
        check_loopback(address)
        self.m = manager
        self.address = address
        self.port = port
        self.idle_timeout = idle_timeout
        self.tokens: TokenCache[Request] = TokenCache()
        self._server: asyncio.Server | None = None
        self._sessions: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.address, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._sessions):
            task.cancel()
        for task in list(self._sessions):
            with contextlib.suppress(BaseException):
                await task

    def url(self, kind: str, request: Request) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"http://{host}:{self.port}/{kind}/{self.tokens.insert(request)}"

    # -- HTTP ------------------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._sessions.add(task)
        try:
            raw = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
            await self._handle(parse_head(raw[:MAX_HEAD]), reader, writer)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
            pass
        except ValueError as exc:
            await _respond(writer, 400, str(exc))
        except ConnectionError:
            pass
        except Exception:
            log.exception("streaming request")
        finally:
            self._sessions.discard(task)
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()

    async def _handle(
        self, req: HTTPRequest, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        parts = req.path.strip("/").split("/")
        if len(parts) != 2 or parts[0] not in ("exec", "attach", "portforward"):
            return await _respond(writer, 404, "404 page not found")
        wanted = {
            "exec": cri.ExecRequest,
            "attach": cri.AttachRequest,
            "portforward": cri.PortForwardRequest,
        }[parts[0]]
        request = self.tokens.consume(parts[1])
        if request is None or not isinstance(request, wanted):
            return await _respond(writer, 404, "404 page not found")
        if req.header("upgrade").lower() == "websocket":
            return await self._websocket(req, request, reader, writer)
        if (
            "upgrade" not in req.header("connection").lower()
            or req.header("upgrade").lower() != "spdy/3.1"
        ):
            return await _respond(writer, 400, "unable to upgrade: missing upgrade headers")
        supported = (PORTFORWARD,) if parts[0] == "portforward" else remotecommand.PROTOCOLS
        offered = req.tokens("x-stream-protocol-version")
        chosen = next((p for p in offered if p in supported), None)
        if chosen is None:
            return await _respond(
                writer,
                403,
                "unable to upgrade: unable to negotiate protocol: client supports "
                f"{offered}, server supports {list(supported)}",
            )
        writer.write(
            b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
            b"Upgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: " + chosen.encode() + b"\r\n\r\n"
        )
        await writer.drain()
        if isinstance(request, cri.PortForwardRequest):
            await self._portforward(request, reader, writer)
        else:
            await self._remotecommand(request, chosen, reader, writer)

    # -- exec and attach -------------------------------------------------------------

    async def _remotecommand(
        self,
        request: cri.ExecRequest | cri.AttachRequest,
        protocol: str,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        opts = remotecommand.Options(request.stdin, request.stdout, request.stderr, request.tty)
        collector = remotecommand.Collector(remotecommand.expected(opts, protocol))
        session = spdy.Session(reader, writer, collector, self.idle_timeout)
        reading = asyncio.create_task(session.run())
        try:
            closed = asyncio.create_task(session.closed.wait())
            done = asyncio.create_task(collector.done.wait())
            await asyncio.wait(
                {closed, done},
                timeout=remotecommand.STREAM_CREATION_TIMEOUT,
                return_when=asyncio.FIRST_COMPLETED,
            )
            closed.cancel()
            if not done.done():
                done.cancel()
                log.info("streaming client did not open its streams")
                return
            found = collector.found
            streams = remotecommand.Streams(
                protocol,
                found["error"],
                session.closed,
                stdin=found.get("stdin"),
                stdout=found.get("stdout"),
                stderr=found.get("stderr"),
                resize=found.get("resize"),
            )
            await self._run(request, streams)
        finally:
            await session.close()
            reading.cancel()
            with contextlib.suppress(BaseException):
                await reading

    async def _run(
        self, request: cri.ExecRequest | cri.AttachRequest, streams: remotecommand.Streams
    ) -> None:
        cmd = list(request.cmd) if isinstance(request, cri.ExecRequest) else []
        try:
            if isinstance(request, cri.ExecRequest):
                code = await runtime.exec_process(self.m, request, streams)
            else:
                await runtime.attach(self.m, request, streams)
                code = 0
            status = remotecommand.status_json(code, cmd)
        except errdefs.ContainerdError as exc:
            status = remotecommand.status_json(0, cmd, str(exc))
        await remotecommand.write_status(streams, status)

    async def _websocket(
        self,
        req: HTTPRequest,
        request: Request,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        key = req.header("sec-websocket-key")
        if not key or req.header("sec-websocket-version") != "13":
            return await _respond(writer, 400, "a WebSocket upgrade needs a key and version 13")
        offered = [p for p in req.tokens("sec-websocket-protocol") if p]
        forward = isinstance(request, cri.PortForwardRequest)
        supported = (websocket.SPDY_TUNNEL,) if forward else websocket.PROTOCOLS
        chosen = next((p for p in offered if p in supported), None)
        if (offered or forward) and chosen is None:
            return await _respond(
                writer,
                403,
                f"requested protocol(s) are not supported: {offered}; supports {list(supported)}",
            )
        protocol = chosen or "channel.k8s.io"
        writer.write(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            + f"Sec-WebSocket-Accept: {websocket.accept_key(key)}\r\n".encode()
            + (f"Sec-WebSocket-Protocol: {chosen}\r\n".encode() if chosen else b"")
            + b"\r\n"
        )
        await writer.drain()
        conn = websocket.Connection(reader, writer, protocol, self.idle_timeout)
        if isinstance(request, cri.PortForwardRequest):
            conn.tunnel = asyncio.StreamReader()
            tunnel = asyncio.create_task(conn.run())
            try:
                await self._portforward(request, conn.tunnel, websocket.TunnelWriter(conn))
            finally:
                tunnel.cancel()
                with contextlib.suppress(BaseException):
                    await tunnel
            return
        reading = asyncio.create_task(conn.run())
        ch = conn.channels
        tty = request.tty
        streams = remotecommand.Streams(
            protocol,
            ch[websocket.ERROR],
            conn.closed,
            stdin=ch[websocket.STDIN] if request.stdin else None,
            stdout=ch[websocket.STDOUT] if request.stdout else None,
            stderr=ch[websocket.STDERR] if request.stderr and not tty else None,
            resize=ch[websocket.RESIZE] if tty else None,
        )
        try:
            # As kubelet does: an empty first message tells the client the channels are up.
            await (streams.stdout or streams.stderr or streams.error).write(b"")
            await self._run(request, streams)
        finally:
            await conn.close()
            reading.cancel()
            with contextlib.suppress(BaseException):
                await reading

    # -- port forward ----------------------------------------------------------------

    async def _portforward(
        self,
        request: cri.PortForwardRequest,
        reader: asyncio.StreamReader,
        writer: spdy.Writer,
    ) -> None:
        pairs: dict[str, dict[str, spdy.Stream]] = {}
        forwards: set[asyncio.Task[None]] = set()

        def on_stream(stream: spdy.Stream) -> None:
            kind = stream.headers.get("streamtype", "")
            request_id = stream.headers.get("requestid") or str(
                stream.id if kind == "error" else stream.id - 2
            )
            pair = pairs.setdefault(request_id, {})
            pair[kind] = stream
            if "data" in pair and "error" in pair:
                del pairs[request_id]
                task = asyncio.create_task(self._forward(request, pair["data"], pair["error"]))
                forwards.add(task)
                task.add_done_callback(forwards.discard)

        session = spdy.Session(reader, writer, on_stream, self.idle_timeout)
        try:
            await session.run()
        finally:
            for task in list(forwards):
                task.cancel()
            await session.close()

    async def _forward(
        self, request: cri.PortForwardRequest, data: spdy.Stream, error: spdy.Stream
    ) -> None:
        port_text = data.headers.get("port", "")
        try:
            port = int(port_text)
            if not 0 < port < 65536:
                raise ValueError
            sock = await runtime.dial(self.m, request.pod_sandbox_id, port)
        except (ValueError, OSError, errdefs.ContainerdError) as exc:
            message = f"error forwarding port {port_text} to pod {request.pod_sandbox_id}: {exc}"
            await error.write(message.encode())
            await error.close()
            await data.reset()
            return
        pod_reader, pod_writer = await asyncio.open_connection(sock=sock)

        async def upstream() -> None:
            while chunk := await data.read():
                pod_writer.write(chunk)
                await pod_writer.drain()
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_WR)

        async def downstream() -> None:
            while chunk := await pod_reader.read(runtime.CHUNK):
                await data.write(chunk)
            await data.close()

        up = asyncio.create_task(upstream())
        try:
            await downstream()
        except ConnectionError:
            await data.reset()
        finally:
            up.cancel()
            pod_writer.close()
            await error.close()


async def _respond(writer: asyncio.StreamWriter, code: int, text: str) -> None:
    body = (text + "\n").encode()
    writer.write(
        f"HTTP/1.1 {code} {REASONS.get(code, '')}\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
        + body
    )
    with contextlib.suppress(ConnectionError):
        await writer.drain()
