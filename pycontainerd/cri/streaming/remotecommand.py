"""Kubernetes' remotecommand protocol over SPDY (exec and attach).

The client opens an error stream and one stream per wanted stdio (plus
"resize" with a tty) and names each in its ``streamType`` header. The exit
goes back on the error stream: v4 writes a metav1.Status as JSON (Success, or
Failure with reason NonZeroExitCode and the code as an ExitCode cause), v2/v3
only a failure's message.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from . import spdy

V5 = "v5.channel.k8s.io"  # WebSocket only here
V4, V3, V2 = "v4.channel.k8s.io", "v3.channel.k8s.io", "v2.channel.k8s.io"
PROTOCOLS = (V4, V3, V2)
STREAM_CREATION_TIMEOUT = 30.0


@dataclass
class Options:
    stdin: bool
    stdout: bool
    stderr: bool
    tty: bool


class Channel(Protocol):
    """A SPDY stream or a WebSocket channel: read what the client sent, write to it."""

    async def read(self) -> bytes: ...

    async def write(self, data: bytes) -> None: ...

    async def close(self) -> None: ...

    async def reset(self) -> None: ...


@dataclass
class Streams:
    protocol: str
    error: Channel
    closed: asyncio.Event  # set when the client's connection ended
    stdin: Channel | None = None
    stdout: Channel | None = None
    stderr: Channel | None = None
    resize: Channel | None = None


def expected(opts: Options, protocol: str) -> set[str]:
    kinds = {"error"}
    kinds |= {n for n, on in (("stdin", opts.stdin), ("stdout", opts.stdout)) if on}
    if opts.stderr and not opts.tty:
        kinds.add("stderr")
    if opts.tty and protocol != V2:
        kinds.add("resize")
    return kinds


class Collector:
    """Gathers a session's streams by type until all the expected ones came."""

    def __init__(self, wanted: set[str]) -> None:
        self.wanted = wanted
        self.found: dict[str, spdy.Stream] = {}
        self.done = asyncio.Event()

    def __call__(self, stream: spdy.Stream) -> None:
        kind = stream.headers.get("streamtype", "")
        if kind in self.wanted and kind not in self.found:
            self.found[kind] = stream
            if set(self.found) == self.wanted:
                self.done.set()


def status_json(exit_code: int, cmd: list[str], error: str = "") -> dict[str, object]:
    if error:
        return {
            "status": "Failure",
            "message": f"Internal error occurred: {error}",
            "reason": "InternalError",
            "code": 500,
        }
    if exit_code == 0:
        return {"status": "Success"}
    return {
        "status": "Failure",
        "message": "command terminated with non-zero exit code: "
        f"error executing command {_go_list(cmd)}, exit code {exit_code}",
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": str(exit_code)}]},
    }


def _go_list(cmd: list[str]) -> str:
    return "[" + " ".join(cmd) + "]"


async def write_status(streams: Streams, status: dict[str, object]) -> None:
    if streams.protocol in (V5, V4):
        await streams.error.write(json.dumps(status, separators=(",", ":")).encode())
    elif status.get("status") != "Success":
        await streams.error.write(str(status.get("message", "")).encode())
    await streams.error.close()


async def pump_resize(stream: Channel, resize: Callable[[int, int], Awaitable[None]]) -> None:
    """Terminal sizes as a stream of JSON objects ({"Width":..,"Height":..})."""
    decoder = json.JSONDecoder()
    buffer = ""
    while chunk := await stream.read():
        buffer += chunk.decode(errors="replace")
        while True:
            buffer = buffer.lstrip()
            if not buffer:
                break
            try:
                size, end = decoder.raw_decode(buffer)
            except json.JSONDecodeError:
                break
            buffer = buffer[end:]
            if isinstance(size, dict):
                with contextlib.suppress(Exception):
                    await resize(int(size.get("Width", 0)), int(size.get("Height", 0)))
