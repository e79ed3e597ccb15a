"""Describe a directory tree (a mounted root filesystem, an upper directory) to compare two."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from pycontainerd.archive.tar_writer import layer_xattrs


def describe_tree(root: Path, *, with_mtime: bool = False) -> dict[str, tuple]:
    """Everything an apply must reproduce, per relative path (root excluded).

    Names of one inode within the tree share a label: the first of those names.
    """
    result: dict[str, tuple] = {}
    inodes: dict[tuple[int, int], list[str]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, root)
            st = os.lstat(path)
            fmt = stat.S_IFMT(st.st_mode)
            if stat.S_ISREG(fmt):
                payload: object = Path(path).read_bytes()
            elif stat.S_ISLNK(fmt):
                payload = os.readlink(path)
            elif stat.S_ISCHR(fmt) or stat.S_ISBLK(fmt):
                payload = (os.major(st.st_rdev), os.minor(st.st_rdev))
            else:
                payload = None
            if not stat.S_ISDIR(fmt):
                inodes.setdefault((st.st_dev, st.st_ino), []).append(rel)
            # Linux has no lchmod: a symlink's mode is always 0777.
            entry = (fmt, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, payload)
            entry += (layer_xattrs(path),)
            if with_mtime and not stat.S_ISDIR(fmt):
                entry += (st.st_mtime_ns // 1_000_000_000,)
            result[rel] = entry
    for names in inodes.values():
        for name in names:
            result[name] += (names[0] if len(names) > 1 else None,)
    return result
