"""Create one file-system object from a tar header, relative to a directory descriptor.

Every call names its object by (directory fd, single component), never by a
path string, and never follows a symlink in the last component, so writes
stay in the directory the caller resolved. Whatever already sits at the name
is replaced, except that a directory over a directory is kept (its metadata
is updated), as tar and containerd do.

Removals never cross into another mount: every directory a removal reads or
deletes from must be on the target's own mount (same device and mount id),
else `MountCrossing` is raised before anything in it is deleted.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import stat
from collections.abc import Callable

from pycontainerd import errdefs
from pycontainerd.archive.scoped_root import ScopedRoot
from pycontainerd.archive.tar_reader import EntryType, TarHeader, TarReader

log = logging.getLogger(__name__)

_NEW_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_NODE_TYPES = {
    EntryType.CHAR_DEVICE: stat.S_IFCHR,
    EntryType.BLOCK_DEVICE: stat.S_IFBLK,
    EntryType.FIFO: stat.S_IFIFO,
}
_MAX_TIME_NS = (1 << 63) - 1
_MOUNT_CACHE_LIMIT = 1024
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class MountCrossing(errdefs.FailedPrecondition):
    """A removal would have deleted files of another mounted file system."""


def mount_of(fd: int) -> tuple[int, int]:
    """(device, mount id) of an open file: a bind mount of the same file system differs in id."""
    mount_id = -1
    with open(f"/proc/self/fdinfo/{fd}", encoding="ascii") as info:
        for line in info:
            if line.startswith("mnt_id:"):
                mount_id = int(line.split()[1])
                break
    return os.fstat(fd).st_dev, mount_id


def entry_times(header: TarHeader) -> tuple[int, int]:
    """(atime, mtime) in ns: atime is never older than mtime; out-of-range times become 0."""
    mtime = header.mtime_ns if 0 <= header.mtime_ns <= _MAX_TIME_NS else 0
    atime = header.atime_ns if header.atime_ns is not None else mtime
    atime = max(atime, mtime) if 0 <= atime <= _MAX_TIME_NS else mtime
    return atime, mtime


def _proc_path(dir_fd: int, base: str) -> str:
    """A path naming ``base`` in ``dir_fd`` without re-resolving the directory."""
    return f"/proc/self/fd/{dir_fd}/{base}"


class EntryWriter:
    """Creates archive members on disk; one instance serves a whole layer."""

    def __init__(self, root: ScopedRoot, *, buffer_size: int = 1 << 20) -> None:
        self._root = root
        self._root_mount = mount_of(root.root_fd)
        # (fd, device, inode) of directories found on the target's mount: the
        # parents of whiteouts repeat, and reading fdinfo costs more than fstat.
        self._on_own_mount: set[tuple[int, int, int]] = set()
        self._buffer = memoryview(bytearray(buffer_size))

    # -- removal -----------------------------------------------------------------

    def require_own_mount(self, dir_fd: int) -> None:
        """MountCrossing unless the directory ``dir_fd`` is on the target's own mount."""
        st = os.fstat(dir_fd)
        key = (dir_fd, st.st_dev, st.st_ino)
        if key in self._on_own_mount:
            return
        if st.st_dev == self._root_mount[0] and mount_of(dir_fd) == self._root_mount:
            if len(self._on_own_mount) >= _MOUNT_CACHE_LIMIT:
                self._on_own_mount.clear()
            self._on_own_mount.add(key)
            return
        try:
            where = repr(os.readlink(f"/proc/self/fd/{dir_fd}"))
        except OSError:
            where = "a directory of the target"
        raise MountCrossing(
            f"{where} is a mount point or lies on one: another file system is mounted inside "
            "the apply target, and nothing of it may be deleted; unmount it first"
        )

    def remove(self, dir_fd: int, base: str) -> bool:
        """Remove ``base`` (a whole tree if it is a directory); False if it was absent."""
        self.require_own_mount(dir_fd)
        try:
            st = os.stat(base, dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            return False
        if stat.S_ISDIR(st.st_mode):
            self._remove_tree(dir_fd, base)
        else:
            os.unlink(base, dir_fd=dir_fd)
        if stat.S_ISDIR(st.st_mode) or stat.S_ISLNK(st.st_mode):
            self._root.invalidate()  # cached lookups may have gone through it
        return True

    def _remove_tree(self, parent_fd: int, name: str) -> None:
        """Delete directory ``name`` and its content, refusing at any other mount."""
        fd = os.open(name, _DIR_FLAGS, dir_fd=parent_fd)
        try:
            self.require_own_mount(fd)
            with os.scandir(fd) as entries:
                children = [(entry.name, entry.is_dir(follow_symlinks=False)) for entry in entries]
            for child, is_dir in children:
                if is_dir:
                    self._remove_tree(fd, child)
                else:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(child, dir_fd=fd)
        finally:
            os.close(fd)
        os.rmdir(name, dir_fd=parent_fd)

    def _create_replacing(self, dir_fd: int, base: str, create: Callable[[], object]) -> object:
        try:
            return create()
        except FileExistsError:
            self.remove(dir_fd, base)
            return create()

    # -- members -----------------------------------------------------------------

    def write_file(self, dir_fd: int, base: str, header: TarHeader, data: TarReader) -> None:
        fd = self._create_replacing(
            dir_fd, base, lambda: os.open(base, _NEW_FILE_FLAGS, 0o600, dir_fd=dir_fd)
        )
        assert isinstance(fd, int)
        try:
            buffer = self._buffer
            while n := data.readinto(buffer):
                written = os.write(fd, buffer[:n])
                while written < n:
                    written += os.write(fd, buffer[written:n])
            os.fchown(fd, header.uid, header.gid)
            if header.xattrs:
                self._set_xattrs(fd, header, user_xattrs_ok=True)
            os.fchmod(fd, header.mode)
            os.utime(fd, ns=entry_times(header))
        finally:
            os.close(fd)

    def make_dir(self, dir_fd: int, base: str, header: TarHeader) -> None:
        """Create (or keep) a directory and set its owner, xattrs and mode; not its times."""
        try:
            os.mkdir(base, 0o700, dir_fd=dir_fd)
        except FileExistsError:
            st = os.stat(base, dir_fd=dir_fd, follow_symlinks=False)
            if not stat.S_ISDIR(st.st_mode):
                self.remove(dir_fd, base)
                os.mkdir(base, 0o700, dir_fd=dir_fd)
        self._set_metadata_at(dir_fd, base, header, user_xattrs_ok=True, times=False)

    def make_symlink(self, dir_fd: int, base: str, header: TarHeader) -> None:
        self._create_replacing(
            dir_fd, base, lambda: os.symlink(header.linkname, base, dir_fd=dir_fd)
        )
        self._set_metadata_at(dir_fd, base, header, user_xattrs_ok=False, chmod=False)

    def make_node(self, dir_fd: int, base: str, header: TarHeader) -> None:
        """Create a device node or fifo."""
        mode = _NODE_TYPES[header.type] | header.mode
        device = os.makedev(header.devmajor, header.devminor)
        self._create_replacing(dir_fd, base, lambda: os.mknod(base, mode, device, dir_fd=dir_fd))
        self._set_metadata_at(dir_fd, base, header, user_xattrs_ok=False)

    def make_hardlink(self, dir_fd: int, base: str, source_fd: int, source_base: str) -> None:
        """Link ``base`` to the existing ``source_base`` (a symlink is linked, not followed).

        Hard links share their inode's metadata, so none is set here.
        """
        source = os.stat(source_base, dir_fd=source_fd, follow_symlinks=False)
        if stat.S_ISDIR(source.st_mode):
            raise IsADirectoryError(errno.EISDIR, "hard link target is a directory")
        try:
            existing = os.stat(base, dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            existing = None
        if existing is not None:
            if (existing.st_dev, existing.st_ino) == (source.st_dev, source.st_ino):
                return
            self.remove(dir_fd, base)
        os.link(
            source_base,
            base,
            src_dir_fd=source_fd,
            dst_dir_fd=dir_fd,
            follow_symlinks=False,
        )

    # -- metadata ------------------------------------------------------------------

    def _set_metadata_at(
        self,
        dir_fd: int,
        base: str,
        header: TarHeader,
        *,
        user_xattrs_ok: bool,
        chmod: bool = True,
        times: bool = True,
    ) -> None:
        # Owner first: chown clears setuid/setgid bits and file capabilities.
        os.chown(base, header.uid, header.gid, dir_fd=dir_fd, follow_symlinks=False)
        if header.xattrs:
            self._set_xattrs(_proc_path(dir_fd, base), header, user_xattrs_ok=user_xattrs_ok)
        if chmod:
            # Follows a symlink in `base`, but `base` is the directory or node
            # this writer has just made, never a symlink.
            os.chmod(base, header.mode, dir_fd=dir_fd)
        if times:
            os.utime(base, ns=entry_times(header), dir_fd=dir_fd, follow_symlinks=False)

    @staticmethod
    def _set_xattrs(target: int | str, header: TarHeader, *, user_xattrs_ok: bool) -> None:
        for key, value in header.xattrs.items():
            if key.startswith("trusted."):
                # Like containerd: admin attributes from an archive are not honoured
                # (in an overlay upper dir they would steer overlayfs itself).
                log.debug("ignoring xattr %s of %s", key, header.name)
                continue
            try:
                os.setxattr(target, key, value, follow_symlinks=isinstance(target, int))
            except OSError as exc:
                unsupported = exc.errno in (errno.ENOTSUP, errno.EOPNOTSUPP)
                user_on_special = (
                    exc.errno == errno.EPERM and key.startswith("user.") and not user_xattrs_ok
                )
                if not (unsupported or user_on_special):
                    raise
                log.warning("ignoring xattr %s of %s: %s", key, header.name, exc.strerror)
