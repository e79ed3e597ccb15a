"""Read a stream ahead in a background thread.

Decompression (zlib, zstd) and sha256 release the GIL, so running them a few
chunks ahead of the tar applier uses a second core: on this project's 2-core
machine that took a 288 MB gzip layer onto tmpfs from 2.05 s to about 1.3 s.
"""

from __future__ import annotations

import io
import queue
import threading

from pycontainerd.streams import ReadStream

_CHUNK = 1 << 20
_DEPTH = 8
_POLL_SECONDS = 0.1


class PrefetchingReader(io.RawIOBase):
    """A raw reader serving ``source``'s bytes, read up to ``depth`` chunks ahead.

    Errors of the background read are raised by ``readinto`` in the caller's
    thread. ``close`` stops and joins the thread; until then nothing else may
    use ``source``.
    """

    def __init__(self, source: ReadStream, *, chunk: int = _CHUNK, depth: int = _DEPTH) -> None:
        self._source = source
        self._chunk = chunk
        self._queue: queue.Queue[memoryview | BaseException | None] = queue.Queue(depth)
        self._stop = threading.Event()
        self._current = memoryview(b"")
        self._finished = False
        self._thread = threading.Thread(target=self._run, name="layer-prefetch", daemon=True)
        self._thread.start()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while not self._current:
            if self._finished:
                return 0
            item = self._queue.get()
            if item is None:
                self._finished = True
                return 0
            if isinstance(item, BaseException):
                self._finished = True
                raise item
            self._current = item
        n = min(len(buffer), len(self._current))
        buffer[:n] = self._current[:n]
        self._current = self._current[n:]
        return n

    def close(self) -> None:
        if not self.closed:
            self._stop.set()
            self._thread.join()
        super().close()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                chunk = bytearray(self._chunk)
                n = self._source.readinto(chunk)
                if not n:
                    self._put(None)
                    return
                self._put(memoryview(chunk)[:n])
        except BaseException as exc:  # noqa: BLE001 - handed to the reading thread
            self._put(exc)

    def _put(self, item: memoryview | BaseException | None) -> None:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=_POLL_SECONDS)
                return
            except queue.Full:
                continue
