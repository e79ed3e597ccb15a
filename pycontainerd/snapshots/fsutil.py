"""Filesystem helpers of the snapshotters: disk usage, full copies, safe removal."""

from __future__ import annotations

import os
import shutil
import subprocess

from pycontainerd import errdefs, mount
from pycontainerd.diskspace import full_error
from pycontainerd.errdefs import FULL_DISK_ERRNOS
from pycontainerd.snapshots.api import Usage

_BLOCK_UNIT = 512  # st_blocks counts 512-byte units whatever the filesystem


def disk_usage(root: str) -> Usage:
    """Bytes allocated and distinct inodes under `root` (itself included).

    Hard links are counted once. Does not cross into other filesystems.
    """
    try:
        top = os.lstat(root)
    except FileNotFoundError:
        raise errdefs.NotFound(f"disk usage: {root} does not exist") from None
    seen: set[tuple[int, int]] = {(top.st_dev, top.st_ino)}
    size = top.st_blocks * _BLOCK_UNIT
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            st = os.lstat(os.path.join(dirpath, name))
            if (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            size += st.st_blocks * _BLOCK_UNIT
        # Stay on the layer's filesystem (os.walk does not follow symlinks already).
        dirnames[:] = [
            d for d in dirnames if os.lstat(os.path.join(dirpath, d)).st_dev == top.st_dev
        ]
    return Usage(inodes=len(seen), size=size)


def copy_tree(source: str, destination: str) -> None:
    """Copy the contents of `source` into the existing directory `destination`.

    Everything is kept: owners, modes, times, xattrs, hard links within the
    tree, device nodes, fifos and symlinks. GNU ``cp -a`` does all of that and
    shares blocks on filesystems that support reflinks.
    """
    cp = shutil.which("cp")
    if cp is None:
        raise errdefs.Unavailable("copying a snapshot needs GNU cp on PATH; install coreutils")
    result = subprocess.run(
        [cp, "-a", "--reflink=auto", "--", os.path.join(source, "."), destination],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        for code in FULL_DISK_ERRNOS:  # cp reports only the text of the errno
            if os.strerror(code) in result.stderr:
                raise full_error(
                    OSError(code, os.strerror(code)), destination, "copying a snapshot"
                )
        raise errdefs.FailedPrecondition(
            f"copying {source} to {destination} failed: {result.stderr.strip()}"
        )


def remove_tree(path: str) -> None:
    """Delete `path` and everything below it, never deleting through a mount.

    Anything still mounted below `path` is detached first, so deleting a
    snapshot directory cannot delete the files of a filesystem mounted into it.
    """
    if not os.path.lexists(path):
        return
    mount.unmount_all(path, flags=mount.MNT_DETACH)
    shutil.rmtree(path, onerror=_ignore_vanished)


def _ignore_vanished(function: object, path: str, exc_info: tuple) -> None:
    # Another remover may have got there first; anything else is a real error.
    if not isinstance(exc_info[1], FileNotFoundError):
        raise exc_info[1]
