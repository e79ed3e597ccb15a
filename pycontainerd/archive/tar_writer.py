"""Write OCI layer tar entries for files of a directory tree (PAX format).

Like containerd's change writer: parents of every entry are emitted before it
(so an apply recreates them with their real metadata), a hard-linked inode is
written once and later names become hard links to it, owners are numeric, times
are whole seconds, and deletions become ``.wh.`` entries.
"""

from __future__ import annotations

import os
import stat
import tarfile
from pathlib import Path
from typing import BinaryIO

from pycontainerd import errdefs
from pycontainerd.archive.tar_reader import XATTR_PREFIX
from pycontainerd.archive.whiteouts import OPAQUE_MARKER, whiteout_name

_COPY_BUFFER = 1 << 20
_TAR_TYPES = {
    stat.S_IFREG: tarfile.REGTYPE,
    stat.S_IFDIR: tarfile.DIRTYPE,
    stat.S_IFLNK: tarfile.SYMTYPE,
    stat.S_IFCHR: tarfile.CHRTYPE,
    stat.S_IFBLK: tarfile.BLKTYPE,
    stat.S_IFIFO: tarfile.FIFOTYPE,
}


def layer_xattrs(path: str) -> dict[str, bytes]:
    """The xattrs of ``path`` that belong in a layer.

    trusted.* (overlayfs bookkeeping, admin data) and security.selinux (a host
    label) are left out; an apply would not honour them either.
    """
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return {}
    result = {}
    for name in sorted(names):
        if name.startswith("trusted.") or name == "security.selinux":
            continue
        try:
            result[name] = os.getxattr(path, name, follow_symlinks=False)
        except OSError:
            continue  # removed meanwhile, or not readable on this file type
    return result


def _split(name: str) -> tuple[str, str]:
    parent, _, base = name.rpartition("/")
    return parent, base


class LayerTarWriter:
    """Emits entries for paths under ``root`` into an uncompressed tar ``sink``.

    ``sink`` needs ``write`` and ``tell``. Names are relative, ``/``-separated.
    """

    def __init__(self, root: Path, sink: BinaryIO) -> None:
        self._root = root
        self._tar = tarfile.TarFile(fileobj=sink, mode="w", format=tarfile.PAX_FORMAT)
        self._emitted_dirs: set[str] = set()
        self._link_sources: dict[tuple[int, int], str] = {}
        # Unchanged names of a hard-linked inode seen before any changed name.
        self._pending_links: dict[tuple[int, int], list[str]] = {}

    def close(self) -> None:
        self._tar.close()

    def add(self, name: str, st: os.stat_result, *, changed: bool = True) -> None:
        """Emit ``name`` if changed; unchanged names matter only as hard links of changed ones."""
        if stat.S_ISSOCK(st.st_mode):
            return  # sockets are not layer content
        linked = not stat.S_ISDIR(st.st_mode) and st.st_nlink > 1
        if not linked:
            if changed:
                self._write(name, st)
            return
        inode = (st.st_dev, st.st_ino)
        source = self._link_sources.get(inode)
        if source is not None:
            self._write(name, st, link_to=source)
        elif not changed:
            self._pending_links.setdefault(inode, []).append(name)
        else:
            self._link_sources[inode] = name
            self._write(name, st)
            for other in self._pending_links.pop(inode, []):
                self._write(other, st, link_to=name)

    def add_whiteout(self, name: str) -> None:
        """Emit the marker that deletes ``name`` of the lower layers."""
        parent, base = _split(name)
        self._write_marker(f"{parent}/{whiteout_name(base)}" if parent else whiteout_name(base))

    def add_opaque(self, directory: str) -> None:
        """Emit the marker that hides all lower content of ``directory``."""
        self._write_marker(f"{directory}/{OPAQUE_MARKER}" if directory else OPAQUE_MARKER)

    # -- internals -------------------------------------------------------------------

    def _include_parents(self, name: str) -> None:
        parent, _ = _split(name)
        if not parent or parent in self._emitted_dirs:
            return
        self._include_parents(parent)
        self._write(parent, os.lstat(self._root / parent))

    def _write_marker(self, name: str) -> None:
        self._include_parents(name)
        info = tarfile.TarInfo(name)
        info.mode = 0
        info.mtime = 0
        info.uname = info.gname = ""
        self._tar.addfile(info)

    def _write(self, name: str, st: os.stat_result, *, link_to: str | None = None) -> None:
        self._include_parents(name)
        path = str(self._root / name)
        fmt = stat.S_IFMT(st.st_mode)
        is_dir = fmt == stat.S_IFDIR
        info = tarfile.TarInfo(name + "/" if is_dir else name)
        info.type = tarfile.LNKTYPE if link_to is not None else _TAR_TYPES[fmt]
        info.mode = stat.S_IMODE(st.st_mode)
        info.uid, info.gid = st.st_uid, st.st_gid
        info.uname = info.gname = ""
        info.mtime = st.st_mtime_ns // 1_000_000_000  # whole seconds, like containerd
        if link_to is not None:
            info.linkname = link_to
        elif fmt == stat.S_IFLNK:
            info.linkname = os.readlink(path)
        elif fmt in (stat.S_IFCHR, stat.S_IFBLK):
            info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
        if xattrs := layer_xattrs(path):
            info.pax_headers = {
                XATTR_PREFIX + key: value.decode("utf-8", "surrogateescape")
                for key, value in xattrs.items()
            }
        if is_dir:
            self._emitted_dirs.add(name)
        if info.type != tarfile.REGTYPE:
            self._tar.addfile(info)
            return
        info.size = st.st_size
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        with os.fdopen(fd, "rb", buffering=_COPY_BUFFER) as data:
            try:
                self._tar.addfile(info, data)
            except OSError as exc:  # tarfile's "unexpected end of data"
                raise errdefs.Aborted(
                    f"{path} changed while the diff was written: {exc}; retry on a quiet tree"
                ) from exc
