"""Where a process's stdio goes, as create and exec requests carry it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class StdioPaths:
    """FIFO paths or ``file://``/``binary://`` URIs; "" for a stream not wanted."""

    stdin: str = ""
    stdout: str = ""
    stderr: str = ""
    terminal: bool = False
