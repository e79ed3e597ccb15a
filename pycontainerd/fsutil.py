"""Small crash-safe filesystem helpers (content store, snapshotters, bundles, shims).

The rule they serve: a reader after a crash sees either the old state or the
new one, never a torn file. Files are written beside their target, fsynced,
renamed into place, and the directory holding them is fsynced.
"""

from __future__ import annotations

import os
import secrets
from datetime import UTC, datetime
from pathlib import Path

TEMP_PREFIX = ".tmp-"
WRITABLE_MODE = 0o644


def utc_from_ns(timestamp_ns: int) -> datetime:
    return datetime.fromtimestamp(timestamp_ns / 1e9, tz=UTC)


def utc_now() -> datetime:
    return datetime.now(UTC)


def temp_name() -> str:
    """A name that directory scans recognise as unfinished work."""
    return f"{TEMP_PREFIX}{secrets.token_hex(8)}"


def fsync_dir(path: str | os.PathLike[str]) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def ensure_dir(path: Path) -> None:
    """Create ``path`` (and parents) so that the new entries survive a crash."""
    missing: list[Path] = []
    probe = path
    while not probe.exists():
        missing.append(probe)
        probe = probe.parent
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=0o755)
        except FileExistsError:
            continue
        fsync_dir(directory.parent)


def write_new_file(path: Path, data: bytes, *, durable: bool = True) -> None:
    """Write a new file, fsynced when ``durable`` (no rename: for files in a private temp dir)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, WRITABLE_MODE)
    try:
        write_all(fd, data)
        if durable:
            os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes | str, *, durable: bool = True) -> None:
    """Replace ``path`` with ``data`` atomically; with ``durable``, also fsynced.

    ``durable=False`` is for files that describe running processes (bundles,
    shim addresses under the state dir): a crash of the machine ends those
    processes too, and a crash of a process leaves the page cache intact.
    """
    payload = data.encode() if isinstance(data, str) else data
    temp = path.with_name(temp_name())
    try:
        write_new_file(temp, payload, durable=durable)
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    if durable:
        fsync_dir(path.parent)


def write_all(fd: int, data: bytes | bytearray | memoryview) -> None:
    """os.write until every byte is out (os.write may write less than asked)."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]
