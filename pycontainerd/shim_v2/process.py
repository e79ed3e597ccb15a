"""One process the shim watches (a container's init or an exec): state and exit."""

from __future__ import annotations

import asyncio
import enum
import time
from typing import Protocol

from google.protobuf import timestamp_pb2

from pycontainerd.api.types.task import task_pb2
from pycontainerd.stdio_paths import StdioPaths


class Status(enum.IntEnum):
    """Process states, numbered like containerd.v1.types.Status."""

    UNKNOWN = task_pb2.UNKNOWN
    CREATED = task_pb2.CREATED
    RUNNING = task_pb2.RUNNING
    STOPPED = task_pb2.STOPPED
    PAUSED = task_pb2.PAUSED


class ProcessIO(Protocol):
    """What a process needs from its stdio (`PipeIO` or `TerminalIO`)."""

    def close_stdin(self) -> None: ...

    async def drain(self, timeout: float = ...) -> None: ...

    def close(self) -> None: ...


class Process:
    """A process's identity, stdio, state and, once it exited, its exit."""

    def __init__(self, process_id: str, paths: StdioPaths) -> None:
        self.id = process_id
        self.paths = paths
        self.pid = 0
        self.status = Status.CREATED
        self.exit_status = 0
        self.exited_at_ns = 0
        self.io: ProcessIO | None = None
        self.master_fd: int | None = None  # pty master, for ResizePty
        self._exited = asyncio.Event()

    @property
    def exited(self) -> bool:
        return self._exited.is_set()

    def mark_exited(self, status: int, when_ns: int | None = None) -> None:
        """Record the exit (state turns STOPPED at once); `announce_exit` wakes waiters."""
        if self.exited_at_ns:
            return
        self.exit_status = status
        self.exited_at_ns = when_ns or time.time_ns()
        self.status = Status.STOPPED

    def announce_exit(self) -> None:
        self._exited.set()

    async def wait(self) -> None:
        await self._exited.wait()

    def exited_at(self) -> timestamp_pb2.Timestamp | None:
        if not self.exited_at_ns:
            return None
        stamp = timestamp_pb2.Timestamp()
        stamp.FromNanoseconds(self.exited_at_ns)
        return stamp

    def close_io(self) -> None:
        if self.io is not None:
            self.io.close()
            self.io = None
        self.master_fd = None
