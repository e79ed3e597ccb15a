"""Resolve and read paths *inside* a container's root filesystem, safely.

An image controls its own symlinks. A link like ``/etc/passwd -> /etc/shadow``
or ``-> ../../../../host/file`` must resolve as if the rootfs were ``/``:
absolute targets restart at the rootfs, and ``..`` stops at it. This is
containerd's ``fs.RootPath`` behaviour.
"""

from __future__ import annotations

import errno
import os
import posixpath
import stat
from pathlib import Path

from pycontainerd.errdefs import InvalidArgument

MAX_SYMLINKS = 255
MAX_FILE_SIZE = 16 * 1024 * 1024
"""/etc/passwd and friends; anything bigger is refused rather than read into memory."""


def resolve_in_root(root: str | os.PathLike[str], path: str) -> Path:
    """The host path of container path ``path``, following links without leaving ``root``.

    Components that do not exist are kept as they are (the result may not exist).
    """
    root_path = Path(root)
    resolved: list[str] = []
    pending = _components(path)
    followed = 0
    while pending:
        part = pending.pop(0)
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = root_path.joinpath(*resolved, part)
        try:
            is_link = stat.S_ISLNK(os.lstat(candidate).st_mode)
        except (FileNotFoundError, NotADirectoryError):
            is_link = False
        if not is_link:
            resolved.append(part)
            continue
        followed += 1
        if followed > MAX_SYMLINKS:
            raise InvalidArgument(f"too many levels of symbolic links resolving {path} in {root}")
        target = os.readlink(candidate)
        if target.startswith("/"):
            resolved = []
        pending = _components(target) + pending
    return root_path.joinpath(*resolved)


def _components(path: str) -> list[str]:
    return [p for p in path.split("/") if p not in ("", ".")]


def read_text_in_root(root: str | os.PathLike[str], path: str) -> str:
    """Read a regular file of the rootfs; FileNotFoundError if it is absent."""
    host_path = resolve_in_root(root, posixpath.normpath("/" + path))
    try:
        # O_NOFOLLOW: if someone swapped a symlink in after resolution, refuse it.
        fd = os.open(host_path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise InvalidArgument(f"{path} in {root} changed into a symlink; retry") from exc
        raise
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise InvalidArgument(f"{path} in {root} is not a regular file")
        if info.st_size > MAX_FILE_SIZE:
            raise InvalidArgument(f"{path} in {root} is larger than {MAX_FILE_SIZE} bytes")
        with os.fdopen(os.dup(fd), "rb") as f:
            return f.read(MAX_FILE_SIZE).decode("utf-8", errors="replace")
    finally:
        os.close(fd)
