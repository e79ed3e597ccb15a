"""What the client sent on one stream or channel, queued until the session reads it."""

from __future__ import annotations

import asyncio


class Inbound:
    """Chunks in arrival order; b"" (repeated on every later read) once the client closed its side.

    SPDY streams and WebSocket channels both read this way, so the remotecommand
    and port-forward code above them does not know which transport it runs on.
    """

    def __init__(self) -> None:
        self._incoming: asyncio.Queue[bytes] = asyncio.Queue()
        self.remote_closed = False

    def _feed(self, data: bytes, fin: bool) -> None:
        if self.remote_closed:
            return
        if data:
            self._incoming.put_nowait(data)
        if fin:
            self.remote_closed = True
            self._incoming.put_nowait(b"")

    async def read(self) -> bytes:
        """The next chunk the client sent; b"" once it closed its side."""
        chunk = await self._incoming.get()
        if not chunk:
            self._incoming.put_nowait(b"")
        return chunk
