"""Container output in the CRI log format, from the shim's FIFOs to the caller's log file.

Each line becomes ``<RFC3339Nano time> <stream> <F|P> <text>``; a line longer
than ``max_line_size`` is cut into partial (``P``) pieces ending with a full
(``F``) one. One thread per stream reads its FIFO (the shim holds the other
end read-write, so a daemon restart loses nothing: the new daemon opens the
FIFO again and goes on). ReopenContainerLog swaps the file under a lock.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import os
import threading
from collections.abc import Callable, Iterable

CHUNK = 32 * 1024


def timestamp() -> bytes:
    now = datetime.datetime.now(datetime.UTC)
    ns = now.microsecond * 1000
    return (now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ns:09d}Z").encode()


def make_fifo(path: str) -> None:
    with contextlib.suppress(FileExistsError):
        os.mkfifo(path, 0o600)


def open_fifo_reader(path: str) -> int:
    """The read end, opened without waiting for a writer (the shim opens its end later)."""
    return os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)


def set_blocking(fd: int) -> None:
    flags = fcntl.fcntl(fd, fcntl.F_GETFL)
    fcntl.fcntl(fd, fcntl.F_SETFL, flags & ~os.O_NONBLOCK)


class LogWriter:
    """The log file of one container, shared by its streams."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._file = self._open()

    def _open(self) -> int | None:
        if not self.path:
            return None
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        return os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)

    def write(self, stream: bytes, tag: bytes, text: bytes) -> None:
        record = b" ".join((timestamp(), stream, tag, text)) + b"\n"
        with self._lock:
            if self._file is not None:
                os.write(self._file, record)

    def reopen(self) -> None:
        with self._lock:
            old, self._file = self._file, self._open()
            if old is not None:
                os.close(old)

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                os.close(self._file)
                self._file = None


class LogForwarder:
    """Copies a container's output FIFOs into its CRI log until the shim closes them."""

    def __init__(
        self, writer: LogWriter, streams: Iterable[tuple[str, int]], max_line_size: int
    ) -> None:
        self.writer = writer
        self.max_line = max_line_size if max_line_size > 0 else 0
        # Attach's listeners: called from the reader threads with (stream, chunk),
        # and with b"" when that stream ended.
        self.taps: list[Callable[[bytes, bytes], None]] = []
        self.ended: list[bytes] = []
        self._threads = [
            threading.Thread(
                target=self._run, args=(name.encode(), fd), name=f"cri-log-{name}", daemon=True
            )
            for name, fd in streams
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def wait(self, timeout: float) -> bool:
        """Until every stream ended (True) or the timeout passed."""
        for thread in self._threads:
            thread.join(timeout)
        return not any(t.is_alive() for t in self._threads)

    def _emit(self, stream: bytes, line: bytes, full: bool) -> None:
        while self.max_line and len(line) > self.max_line:
            self.writer.write(stream, b"P", line[: self.max_line])
            line = line[self.max_line :]
        self.writer.write(stream, b"F" if full else b"P", line)

    def _run(self, stream: bytes, fd: int) -> None:
        set_blocking(fd)
        pending = b""
        try:
            while True:
                try:
                    chunk = os.read(fd, CHUNK)
                except InterruptedError:
                    continue
                except OSError:
                    break
                if not chunk:
                    break
                for tap in list(self.taps):
                    tap(stream, chunk)
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    self._emit(stream, line, True)
                while self.max_line and len(pending) > self.max_line:
                    self.writer.write(stream, b"P", pending[: self.max_line])
                    pending = pending[self.max_line :]
            if pending:
                self._emit(stream, pending, True)
        finally:
            os.close(fd)
            self.ended.append(stream)
            for tap in list(self.taps):
                tap(stream, b"")
