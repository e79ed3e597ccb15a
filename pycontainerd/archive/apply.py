"""Apply an OCI layer (a tar stream, possibly compressed) onto a directory.

Two whiteout modes exist because the two snapshotters differ:

* ``overlay``: ``target`` is an empty overlayfs upper dir; whiteouts become
  0/0 character devices and opaque directories get ``trusted.overlay.opaque=y``.
  Directories the layer implies without listing them take mode and owner from
  the ``parents`` (the lower layers), as in the merged view they replace.
* ``native``: ``target`` is a full copy of the parent's tree; whiteouts delete,
  and an opaque directory loses every entry this layer did not add (whatever the
  order of the marker and those entries in the layer).

Nothing outside ``target`` is ever touched: names are made relative and may not
climb above it, and every lookup goes through ScopedRoot. On error the target
is left half-applied; the caller discards it.
"""

from __future__ import annotations

import errno
import io
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pycontainerd import errdefs
from pycontainerd.archive.compression import Compression, decompress_stream
from pycontainerd.archive.digesting import DigestingReader
from pycontainerd.archive.fs_entries import EntryWriter, entry_times
from pycontainerd.archive.lower_dirs import LowerDirs
from pycontainerd.archive.prefetch import PrefetchingReader
from pycontainerd.archive.scoped_root import ScopedRoot, normalize
from pycontainerd.archive.tar_reader import EntryType, TarHeader, TarReader
from pycontainerd.archive.whiteouts import OVERLAY_OPAQUE_XATTR, WhiteoutKind, classify
from pycontainerd.diskspace import full_error, is_disk_full
from pycontainerd.streams import ReadStream

WhiteoutMode = Literal["overlay", "native"]
_READ_BUFFER = 1 << 20
_DEVICE_TYPES = (EntryType.CHAR_DEVICE, EntryType.BLOCK_DEVICE)


@dataclass(frozen=True)
class ApplyResult:
    """``diff_id``: ``sha256:<hex>`` of the whole uncompressed tar; ``size``: its length.

    ``implied_dirs``: directories the apply had to create for entries below them
    that the layer itself never lists (and that no later entry replaced), as paths
    relative to the target. Their mode and owner came from ``parents``.
    """

    diff_id: str
    size: int
    implied_dirs: frozenset[tuple[str, ...]] = frozenset()


def apply_layer(
    target: Path,
    stream: ReadStream,
    *,
    whiteouts: WhiteoutMode,
    compression: Compression | str | None = None,
    allow_devices: bool = True,
    parents: Sequence[Path] = (),
) -> ApplyResult:
    """Unpack the layer in ``stream`` into ``target`` and digest its uncompressed bytes.

    ``compression=None`` detects it from the magic bytes. ``parents`` are the
    lower layers of an overlay ``target``, nearest first. Raises
    errdefs.InvalidArgument for malformed, truncated or hostile archives (and
    for device nodes when ``allow_devices`` is False).
    """
    if whiteouts not in ("overlay", "native"):
        raise errdefs.InvalidArgument(
            f"unknown whiteout mode {whiteouts!r}: use 'overlay' or 'native'"
        )
    digesting = DigestingReader(decompress_stream(stream, compression))
    with (
        _LayerApplier(target, whiteouts, allow_devices, parents) as applier,
        PrefetchingReader(digesting) as prefetched,
    ):
        reader = TarReader(io.BufferedReader(prefetched, _READ_BUFFER))
        for header in reader:
            applier.apply(header, reader)
        applier.set_directory_times()
        reader.drain()  # the digest covers the whole stream, end padding included
    return ApplyResult(digesting.digest, digesting.size, frozenset(applier.implied_dirs))


class _LayerApplier:
    """Applies members one by one; remembers what the final passes need."""

    def __init__(
        self,
        target: Path,
        whiteouts: WhiteoutMode,
        allow_devices: bool,
        parents: Sequence[Path],
    ) -> None:
        #: Directories made for entries below them; an entry of their own takes them out.
        self.implied_dirs: set[tuple[str, ...]] = set()
        self._lower_dirs = LowerDirs(parents, made=self.implied_dirs.add)
        try:
            self._root = ScopedRoot(target, make_dir=self._lower_dirs)
        except FileNotFoundError:
            raise errdefs.NotFound(f"apply target {str(target)!r} does not exist") from None
        self._target = target
        self._overlay = whiteouts == "overlay"
        self._allow_devices = allow_devices
        self._writer = EntryWriter(self._root)
        # (parent parts, base, atime, mtime) of directories, timed after their content.
        self._dir_times: list[tuple[tuple[str, ...], str, int, int]] = []
        # Native mode: paths this layer created (with their ancestors), which an
        # opaque marker or whiteout of the same layer must spare.
        self._added: set[tuple[str, ...]] = set()

    def __enter__(self) -> _LayerApplier:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._root.close()
        self._lower_dirs.close()

    def apply(self, header: TarHeader, reader: TarReader) -> None:
        parts = normalize(header.name, what="entry name")
        if not parts:
            return  # the root itself: ignored, like containerd
        try:
            self._apply(parts, header, reader)
        except OSError as exc:
            raise _entry_error(self._target, header.name, exc) from exc
        except ValueError as exc:  # e.g. a NUL byte in a PAX link name
            raise errdefs.InvalidArgument(f"invalid layer entry {header.name!r}: {exc}") from exc

    def _apply(self, parts: tuple[str, ...], header: TarHeader, reader: TarReader) -> None:
        parent, base = parts[:-1], parts[-1]
        kind = classify(base)
        if kind is WhiteoutKind.META:
            return
        if kind is WhiteoutKind.NONE:
            self.implied_dirs.discard(parts)  # the layer says what this entry is
        dir_fd = self._root.dir_fd(parent, create=True)
        if kind is WhiteoutKind.OPAQUE:
            self._opaque(parent, dir_fd)
            return
        if kind is WhiteoutKind.DELETE:
            self._whiteout(parent, dir_fd, base[len(".wh.") :], header)
            return

        entry_type = header.type
        if entry_type is EntryType.FILE:
            self._writer.write_file(dir_fd, base, header, reader)
        elif entry_type is EntryType.DIRECTORY:
            self._writer.make_dir(dir_fd, base, header)
            self._dir_times.append((parent, base, *entry_times(header)))
        elif entry_type is EntryType.SYMLINK:
            self._writer.make_symlink(dir_fd, base, header)
        elif entry_type is EntryType.HARDLINK:
            self._hardlink(dir_fd, base, header)
        else:
            if entry_type in _DEVICE_TYPES and not self._allow_devices:
                raise errdefs.InvalidArgument(
                    f"layer entry {header.name!r} is a device node, and device nodes are "
                    "not allowed for this apply"
                )
            self._writer.make_node(dir_fd, base, header)
        if not self._overlay:
            self._remember_added(parts)

    def _remember_added(self, parts: tuple[str, ...]) -> None:
        added = self._added
        while parts and parts not in added:
            added.add(parts)
            parts = parts[:-1]

    # -- links ----------------------------------------------------------------------

    def _hardlink(self, dir_fd: int, base: str, header: TarHeader) -> None:
        source = normalize(header.linkname, what=f"hard link target of {header.name!r}")
        if not source:
            raise errdefs.InvalidArgument(f"hard link {header.name!r} points at the root")
        try:
            source_fd = self._root.open_dir(source[:-1], allow_escape=False)
        except FileNotFoundError:
            raise self._missing_link_source(header) from None
        try:
            self._writer.make_hardlink(dir_fd, base, source_fd, source[-1])
        except FileNotFoundError:
            raise self._missing_link_source(header) from None
        except IsADirectoryError:
            raise errdefs.InvalidArgument(
                f"hard link {header.name!r} points at directory {header.linkname!r}"
            ) from None
        finally:
            os.close(source_fd)

    @staticmethod
    def _missing_link_source(header: TarHeader) -> errdefs.InvalidArgument:
        return errdefs.InvalidArgument(
            f"hard link {header.name!r} points at {header.linkname!r}, which does not exist "
            "in the layer or its parents"
        )

    # -- whiteouts ---------------------------------------------------------------------

    def _whiteout(self, parent: tuple[str, ...], dir_fd: int, name: str, header: TarHeader) -> None:
        if name in ("", ".", "..") or "/" in name:
            raise errdefs.InvalidArgument(f"invalid whiteout {header.name!r}")
        if self._overlay:
            # An existing name in the (fresh) upper dir was added by this very
            # layer, and a whiteout only hides lower layers: keep it.
            try:
                os.mknod(name, stat.S_IFCHR, os.makedev(0, 0), dir_fd=dir_fd)
            except FileExistsError:
                return
            os.chown(name, header.uid, header.gid, dir_fd=dir_fd, follow_symlinks=False)
        elif (*parent, name) not in self._added:
            self._writer.remove(dir_fd, name)

    def _opaque(self, directory: tuple[str, ...], dir_fd: int) -> None:
        if self._overlay:
            os.setxattr(f"/proc/self/fd/{dir_fd}", OVERLAY_OPAQUE_XATTR, b"y")
        else:
            self._clear_unadded(directory, dir_fd)

    def _clear_unadded(self, directory: tuple[str, ...], dir_fd: int) -> None:
        """Remove what the lower layers put in ``directory``; keep this layer's entries."""
        self._writer.require_own_mount(dir_fd)
        with os.scandir(dir_fd) as entries:
            names = [(entry.name, entry.is_dir(follow_symlinks=False)) for entry in entries]
        for name, is_dir in names:
            child = (*directory, name)
            if child not in self._added:
                self._writer.remove(dir_fd, name)
            elif is_dir:
                child_fd = os.open(
                    name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd
                )
                try:
                    self._clear_unadded(child, child_fd)
                finally:
                    os.close(child_fd)

    # -- final pass --------------------------------------------------------------------

    def set_directory_times(self) -> None:
        """Set directory times last: creating their content changed them."""
        for parent, base, atime, mtime in self._dir_times:
            try:
                dir_fd = self._root.dir_fd(parent)
                os.utime(base, ns=(atime, mtime), dir_fd=dir_fd, follow_symlinks=False)
            except FileNotFoundError:
                continue  # removed later in the layer
            except OSError as exc:
                raise _entry_error(self._target, "/".join((*parent, base)), exc) from exc


def _entry_error(target: Path, name: str, exc: OSError) -> errdefs.ContainerdError:
    """Map a failed system call on entry ``name`` to an error kind."""
    reason = exc.strerror or str(exc)
    if is_disk_full(exc):
        return full_error(exc, target, f"cannot apply layer entry {name!r}")
    if exc.errno in (errno.EPERM, errno.EACCES, errno.EROFS):
        return errdefs.FailedPrecondition(
            f"cannot apply layer entry {name!r}: {reason} (applying layers needs root "
            "and a writable target)"
        )
    return errdefs.InvalidArgument(f"cannot apply layer entry {name!r}: {reason}")
