"""Describe a mounted root filesystem, to compare two unpacks of one image."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from pycontainerd.archive.tar_writer import layer_xattrs

#: (file type, permission bits, uid, gid, content or link target or device, xattrs, hard-link group)
Entry = tuple[int, int, int, int, object, dict[str, bytes], str | None]


def describe_rootfs(root: Path) -> dict[str, Entry]:
    """Every path below ``root`` as the merged view shows it (times left out).

    Names of one inode share a hard-link group: the first of those names.
    """
    found: dict[str, tuple] = {}
    inodes: dict[tuple[int, int], list[str]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, root)
            st = os.lstat(path)
            kind = stat.S_IFMT(st.st_mode)
            payload: object = None
            if stat.S_ISREG(kind):
                payload = Path(path).read_bytes()
                inodes.setdefault((st.st_dev, st.st_ino), []).append(rel)
            elif stat.S_ISLNK(kind):
                payload = os.readlink(path)
            elif stat.S_ISCHR(kind) or stat.S_ISBLK(kind):
                payload = (os.major(st.st_rdev), os.minor(st.st_rdev))
            found[rel] = (kind, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, payload)
            found[rel] += (layer_xattrs(path),)
    groups = {name: names[0] for names in inodes.values() if len(names) > 1 for name in names}
    return {rel: (*entry, groups.get(rel)) for rel, entry in found.items()}  # type: ignore[misc]
