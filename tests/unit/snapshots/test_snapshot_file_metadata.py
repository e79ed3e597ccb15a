"""A child snapshot shows its parent's files with all their metadata intact.

For the native snapshotter this checks the full copy; for overlayfs the
lower layer seen through the overlay.
"""

from __future__ import annotations

import os
import stat

from pycontainerd import mount
from pycontainerd.snapshots.base import DirectorySnapshotter

MTIME_NS = 1_000_000_000_123_456_789


def _populate_special_files(root: str) -> None:
    os.mkdir(os.path.join(root, "dir"), 0o751)
    file = os.path.join(root, "dir", "file")
    with open(file, "w") as f:
        f.write("content")
    os.chown(file, 1000, 1001)
    os.chmod(file, 0o4755)  # after chown, which clears set-uid
    os.setxattr(file, "trusted.pycontainerd-test", b"value")
    os.link(file, os.path.join(root, "hardlink"))
    os.symlink("dir/file", os.path.join(root, "symlink"))
    os.mkfifo(os.path.join(root, "fifo"))
    os.mknod(os.path.join(root, "null"), 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    os.utime(file, ns=(MTIME_NS, MTIME_NS))


def test_parent_files_keep_their_metadata(snapshotter: DirectorySnapshotter, mounted) -> None:
    with mount.temp_mount(snapshotter.prepare("base-active")) as root:
        _populate_special_files(root)
    snapshotter.commit("base", "base-active")
    root = mounted(snapshotter.prepare("child", "base"))

    file = os.path.join(root, "dir", "file")
    st = os.lstat(file)
    assert stat.S_IMODE(st.st_mode) == 0o4755
    assert (st.st_uid, st.st_gid) == (1000, 1001)
    assert st.st_mtime_ns == MTIME_NS
    assert st.st_nlink == 2 and os.path.samefile(file, os.path.join(root, "hardlink"))
    assert os.getxattr(file, "trusted.pycontainerd-test") == b"value"
    assert stat.S_IMODE(os.lstat(os.path.join(root, "dir")).st_mode) == 0o751
    assert os.readlink(os.path.join(root, "symlink")) == "dir/file"
    assert stat.S_ISFIFO(os.lstat(os.path.join(root, "fifo")).st_mode)
    null = os.lstat(os.path.join(root, "null"))
    assert stat.S_ISCHR(null.st_mode) and null.st_rdev == os.makedev(1, 3)
