"""The runtime's face to its callers: a task and its processes, in runtime types.

The tasks service (and the CRI plugin) call these; only the runtime knows that
a shim behind them speaks ttrpc. Values that cross unchanged to the API and to
the shim (an OCI process spec, resources, metrics, runtime options) stay
``google.protobuf.Any``; timestamps stay protobuf ``Timestamp`` so that exit
times keep their nanoseconds.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from google.protobuf import any_pb2, timestamp_pb2

from pycontainerd.stdio_paths import StdioPaths


class Status(enum.IntEnum):
    """A process's state (the numbers of containerd's ``types.Status``)."""

    UNKNOWN = 0
    CREATED = 1
    RUNNING = 2
    STOPPED = 3
    PAUSED = 4
    PAUSING = 5


@dataclass(frozen=True)
class ProcessState:
    id: str
    pid: int
    status: Status
    io: StdioPaths
    exit_status: int
    exited_at: timestamp_pb2.Timestamp = field(default_factory=timestamp_pb2.Timestamp)


@dataclass(frozen=True)
class Exit:
    """How a process ended (``pid`` 0 when it never ran)."""

    pid: int
    exit_status: int
    exited_at: timestamp_pb2.Timestamp = field(default_factory=timestamp_pb2.Timestamp)


@dataclass(frozen=True)
class ProcessInfo:
    """One process in a task's container; ``info`` is runtime-specific, if any."""

    pid: int
    info: any_pb2.Any | None = None


class Process(Protocol):
    """A task's init process or one exec'd into it."""

    @property
    def id(self) -> str: ...

    async def start(self) -> int:
        """Start it; returns its pid."""
        ...

    async def kill(self, signal: int, *, all: bool = False) -> None: ...

    async def wait(self) -> Exit:
        """Until it exits. NotFound when its shim is gone."""
        ...

    async def state(self, *, timeout: float | None = None) -> ProcessState:
        """NotFound when the process, or its shim, is gone."""
        ...

    async def resize(self, width: int, height: int) -> None: ...

    async def close_io(self) -> None:
        """Close its stdin."""
        ...

    async def delete(self) -> Exit: ...


class Task(Process, Protocol):
    """A container's running task: its init process, and what acts on the whole."""

    @property
    def namespace(self) -> str: ...

    def process(self, exec_id: str) -> Process:
        """The exec'd process ``exec_id`` (looked up when used, not now)."""
        ...

    async def exec(self, exec_id: str, io: StdioPaths, spec: any_pb2.Any) -> Process: ...

    async def pids(self) -> Sequence[ProcessInfo]: ...

    async def pause(self) -> None: ...

    async def resume(self) -> None: ...

    async def update(self, resources: any_pb2.Any, annotations: Mapping[str, str]) -> None: ...

    async def stats(self) -> any_pb2.Any: ...

    async def checkpoint(self, options: any_pb2.Any | None) -> None:
        """Checkpoint to the image path the runtime options name."""
        ...
