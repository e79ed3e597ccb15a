"""The machine's processes as /proc shows them: parents, command lines, subtrees."""

from __future__ import annotations

import contextlib
import os
import subprocess
from pathlib import Path


def _stat_fields(pid: int) -> list[str]:
    """/proc/<pid>/stat after the command name (which may hold spaces)."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def parent_of(pid: int) -> int:
    return int(_stat_fields(pid)[1])


def alive(pid: int) -> bool:
    """True while `pid` runs (a zombie waiting to be reaped counts as gone)."""
    try:
        return _stat_fields(pid)[0] != "Z"
    except OSError:
        return False


def exists(pid: int) -> bool:
    """True until `pid` is reaped (a zombie still exists): for checks that its parent reaps."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def command_line(pid: int) -> list[str]:
    """The process's arguments ([] once it is gone)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def all_pids() -> list[int]:
    return [int(entry.name) for entry in Path("/proc").iterdir() if entry.name.isdigit()]


def descendants(root: int) -> list[int]:
    """Every process below `root` in the process tree, deepest last."""
    children: dict[int, list[int]] = {}
    for pid in all_pids():
        with contextlib.suppress(OSError, IndexError, ValueError):
            children.setdefault(parent_of(pid), []).append(pid)
    found, queue = [], [root]
    while queue:
        below = children.get(queue.pop(0), [])
        found += below
        queue += below
    return found


def ancestors(pid: int) -> list[int]:
    """The parent of `pid`, its parent, and so on up to init."""
    chain = []
    while pid > 1:
        pid = parent_of(pid)
        chain.append(pid)
    return chain


def stop_process(process: subprocess.Popen[bytes], grace: float) -> None:
    """TERM, ``grace`` seconds to exit, then KILL; reaped either way."""
    process.terminate()
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
