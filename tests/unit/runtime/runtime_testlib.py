"""Helpers shared by the runtime tests."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fake_shim import TASK_PID

__all__ = ["TASK_PID", "FakeShim", "pid_alive"]


@dataclass
class FakeShim:
    binary: Path  # an executable wrapper running fake_shim.py
    sockets: Path  # where the fake shims listen and leave their pid files

    def server_pid(self, task_id: str) -> int:
        return int((self.sockets / f"{task_id}.pid").read_text())

    def deleted_by_binary(self, task_id: str) -> bool:
        return (self.sockets / f"{task_id}.deleted-by-binary").exists()


def pid_alive(pid: int) -> bool:
    """True for a running process (a zombie waiting to be reaped counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"
