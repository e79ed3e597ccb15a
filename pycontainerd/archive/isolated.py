"""A layer extracted before its parents are there, then settled onto them.

Applying a layer onto an overlay snapshot writes only into the snapshot's
upper directory, in overlayfs's own form (whiteouts as 0/0 character devices,
opaque directories as ``trusted.overlay.opaque=y``; see :mod:`.apply`). The
lower layers are read for one thing alone: the mode and owner of directories
the layer implies without listing them (``a/b/file`` with no ``a/b`` entry).
So a layer can be extracted into an empty directory on its own, and in
parallel with its parents, leaving exactly what the apply on the overlay
mount would have left, except for those directories.

:func:`extract_isolated` does the extraction and names the implied
directories; once the parent chain exists, :func:`settle_implied_dirs` gives
them what the apply would have given them. Where the parents hold something
that is not a plain directory at or above an implied directory (a symlink, a
file, a whiteout), the apply's lookup would have resolved or stopped at it in
ways an isolated extraction cannot reproduce cheaply: settling refuses, and
the caller applies that layer the ordinary way instead.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Iterable, Sequence
from pathlib import Path

from pycontainerd.archive.apply import ApplyResult, apply_layer
from pycontainerd.archive.compression import Compression
from pycontainerd.streams import ReadStream

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class _Conflict(Exception):
    """A lower layer holds a non-directory on the way to an implied directory."""


def extract_isolated(
    target: Path, stream: ReadStream, *, compression: Compression | str | None = None
) -> ApplyResult:
    """Extract the layer in ``stream`` into the empty ``target`` in overlay form.

    Returns its diff ID, size and the directories it implies (made 0755, owned by
    the caller, until :func:`settle_implied_dirs` fixes them).
    """
    return apply_layer(target, stream, whiteouts="overlay", compression=compression)


def settle_implied_dirs(
    upper: Path, lowers: Sequence[Path], implied: Iterable[tuple[str, ...]]
) -> bool:
    """Give ``implied`` directories of ``upper`` the mode and owner ``lowers`` give them.

    ``lowers`` are the parent chain's layers, nearest first. This is what the
    apply on the overlay mount does when it creates such a directory: the
    nearest lower layer that has the directory decides; none has it, and the
    directory stays 0755 and the caller's. Returns False, changing nothing,
    when a lower layer has a non-directory at or above one of them.
    """
    with contextlib.ExitStack() as stack:
        upper_fd = os.open(upper, _DIR_FLAGS)
        stack.callback(os.close, upper_fd)
        lower_fds = []
        for lower in lowers:
            with contextlib.suppress(FileNotFoundError):
                fd = os.open(lower, _DIR_FLAGS)
                stack.callback(os.close, fd)
                lower_fds.append(fd)
        changes: list[tuple[tuple[str, ...], os.stat_result]] = []
        try:
            for path in sorted(implied):
                found = _nearest_dir(lower_fds, path)
                if found is not None:
                    changes.append((path, found))
        except _Conflict:
            return False
        for path, found in changes:
            _copy_mode_and_owner(upper_fd, path, found)
    return True


def _nearest_dir(lower_fds: Sequence[int], path: tuple[str, ...]) -> os.stat_result | None:
    """The directory at ``path`` in the nearest layer that has it, or None.

    Raises _Conflict when a layer has anything but directories on the way.
    """
    for lower_fd in lower_fds:
        try:
            fd = _open_plain(lower_fd, path)
        except FileNotFoundError:
            continue
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                raise _Conflict from None
            raise
        try:
            return os.fstat(fd)
        finally:
            os.close(fd)
    return None


def _open_plain(root_fd: int, path: tuple[str, ...]) -> int:
    """Open directory ``path`` under ``root_fd`` following no symlink on the way."""
    fd = os.dup(root_fd)
    try:
        for part in path:
            next_fd = os.open(part, _DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = next_fd
    except BaseException:
        os.close(fd)
        raise
    return fd


def _copy_mode_and_owner(upper_fd: int, path: tuple[str, ...], found: os.stat_result) -> None:
    try:
        fd = _open_plain(upper_fd, path)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ELOOP, errno.ENOTDIR):
            return  # a later entry of the layer replaced it, or a directory above it
        raise
    try:
        if not stat.S_ISDIR(os.fstat(fd).st_mode):
            return
        os.fchown(fd, found.st_uid, found.st_gid)
        os.fchmod(fd, stat.S_IMODE(found.st_mode))  # after chown: it clears setgid
    finally:
        os.close(fd)
