"""Produce an OCI layer from file-system changes.

``write_diff`` compares two full trees, like containerd's walking differ;
``write_diff_from_overlay_upper`` reads an overlayfs upper dir, whose
whiteouts and opaque markers already say what was deleted. Both write
entries in sorted order, so the same trees give the same bytes.
"""

from __future__ import annotations

import io
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from pycontainerd import errdefs
from pycontainerd.archive.compression import CompressingWriter, Compression, media_type_for
from pycontainerd.archive.digesting import DigestingWriter
from pycontainerd.archive.tar_writer import LayerTarWriter, layer_xattrs
from pycontainerd.archive.whiteouts import OVERLAY_OPAQUE_XATTR, OVERLAY_XATTR_PREFIX

_COMPARE_CHUNK = 1 << 16
# Overlay features a layer tar cannot express.
_UNSUPPORTED_OVERLAY_XATTRS = (
    OVERLAY_XATTR_PREFIX + "redirect",
    OVERLAY_XATTR_PREFIX + "metacopy",
)


@dataclass(frozen=True)
class DiffResult:
    """``digest``/``size``: of the bytes written to ``out`` (compressed);
    ``diff_id``/``uncompressed_size``: of the tar inside."""

    digest: str
    diff_id: str
    size: int
    uncompressed_size: int
    media_type: str


def write_diff(
    lower: Path, upper: Path, out: BinaryIO, *, compression: Compression | str | None = "gzip"
) -> DiffResult:
    """Write the layer that turns tree ``lower`` into tree ``upper``."""
    with _LayerOutput(out, Compression.parse(compression)) as output:
        writer = LayerTarWriter(Path(upper), output.tar_sink)
        _walk_changes(str(lower), str(upper), "", writer)
        writer.close()
    return output.result


def write_diff_from_overlay_upper(
    upper: Path,
    lower_for_lookup: Path | None,
    out: BinaryIO,
    *,
    compression: Compression | str | None = "gzip",
) -> DiffResult:
    """Write the layer held by an overlayfs upper dir.

    ``lower_for_lookup`` (the merged lower tree, or None) is only consulted to
    leave out whiteouts that hide nothing.
    """
    lower = None if lower_for_lookup is None else str(lower_for_lookup)
    with _LayerOutput(out, Compression.parse(compression)) as output:
        writer = LayerTarWriter(Path(upper), output.tar_sink)
        _walk_overlay_upper(str(upper), lower, "", writer)
        writer.close()
    return output.result


class _LayerOutput:
    """tar bytes -> uncompressed digest -> compressor -> compressed digest -> out."""

    def __init__(self, out: BinaryIO, compression: Compression) -> None:
        self._compression = compression
        self._compressed = DigestingWriter(out)
        self._compressor = CompressingWriter(self._compressed, compression)  # type: ignore[arg-type]
        self._uncompressed = DigestingWriter(self._compressor)  # type: ignore[arg-type]
        self.tar_sink: BinaryIO = io.BufferedWriter(self._uncompressed, 1 << 20)
        self.result: DiffResult

    def __enter__(self) -> _LayerOutput:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if exc_type is not None:
            return
        self.tar_sink.flush()
        self._compressor.close()
        self.result = DiffResult(
            digest=self._compressed.digest,
            diff_id=self._uncompressed.digest,
            size=self._compressed.size,
            uncompressed_size=self._uncompressed.size,
            media_type=media_type_for(self._compression),
        )


def _scan(directory: str | None) -> dict[str, os.DirEntry[str]]:
    if directory is None:
        return {}
    with os.scandir(directory) as entries:
        return {entry.name: entry for entry in entries}


def _walk_changes(lower: str | None, upper: str, prefix: str, writer: LayerTarWriter) -> None:
    """Emit the changes between directories ``lower`` (None: absent) and ``upper``."""
    lower_entries = _scan(lower)
    upper_entries = _scan(upper)
    for name in sorted(lower_entries.keys() | upper_entries.keys()):
        rel = prefix + name
        new = upper_entries.get(name)
        old = lower_entries.get(name)
        if new is None:
            writer.add_whiteout(rel)
            continue
        new_st = new.stat(follow_symlinks=False)
        old_dir = None
        if old is None:
            changed = True
        else:
            old_st = old.stat(follow_symlinks=False)
            changed = not _same_file(old.path, old_st, new.path, new_st)
            if stat.S_ISDIR(old_st.st_mode):
                old_dir = old.path
        writer.add(rel, new_st, changed=changed)
        if stat.S_ISDIR(new_st.st_mode):
            _walk_changes(old_dir, new.path, rel + "/", writer)


def _same_file(path1: str, st1: os.stat_result, path2: str, st2: os.stat_result) -> bool:
    """Whether two files count as unchanged (continuity's rules, plus all layer xattrs)."""
    if (st1.st_dev, st1.st_ino) == (st2.st_dev, st2.st_ino):
        return True
    if (st1.st_mode, st1.st_uid, st1.st_gid, st1.st_rdev) != (
        st2.st_mode,
        st2.st_uid,
        st2.st_gid,
        st2.st_rdev,
    ):
        return False
    if layer_xattrs(path1) != layer_xattrs(path2):
        return False
    if stat.S_ISDIR(st1.st_mode):
        return True
    if stat.S_ISLNK(st1.st_mode):
        return os.readlink(path1) == os.readlink(path2)
    if st1.st_size != st2.st_size:
        return False
    seconds1, nanos1 = divmod(st1.st_mtime_ns, 1_000_000_000)
    seconds2, nanos2 = divmod(st2.st_mtime_ns, 1_000_000_000)
    if seconds1 != seconds2:
        return False
    if nanos1 == 0 and nanos2 == 0:
        # Times may have been truncated (e.g. by a tar round trip): look at the bytes.
        return not stat.S_ISREG(st1.st_mode) or _same_content(path1, path2)
    return nanos1 == nanos2


def _same_content(path1: str, path2: str) -> bool:
    with open(path1, "rb") as file1, open(path2, "rb") as file2:
        while True:
            chunk1 = file1.read(_COMPARE_CHUNK)
            if chunk1 != file2.read(_COMPARE_CHUNK):
                return False
            if not chunk1:
                return True


def _walk_overlay_upper(upper: str, lower: str | None, prefix: str, writer: LayerTarWriter) -> None:
    for name, entry in sorted(_scan(upper).items()):
        rel = prefix + name
        st = entry.stat(follow_symlinks=False)
        if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
            if lower is None or os.path.lexists(os.path.join(lower, rel)):
                writer.add_whiteout(rel)
            continue
        xattrs = _overlay_xattrs(entry.path)
        for unsupported in _UNSUPPORTED_OVERLAY_XATTRS:
            if unsupported in xattrs:
                raise errdefs.NotImplemented_(
                    f"{entry.path} uses overlayfs {unsupported.rsplit('.', 1)[1]}, which a "
                    "layer cannot express: mount without redirect_dir/metacopy"
                )
        writer.add(rel, st)
        if stat.S_ISDIR(st.st_mode):
            if xattrs.get(OVERLAY_OPAQUE_XATTR) == b"y":
                writer.add_opaque(rel)
            _walk_overlay_upper(entry.path, lower, rel + "/", writer)


def _overlay_xattrs(path: str) -> dict[str, bytes]:
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return {}
    result = {}
    for name in names:
        if name.startswith(OVERLAY_XATTR_PREFIX):
            try:
                result[name] = os.getxattr(path, name, follow_symlinks=False)
            except OSError:
                continue
    return result
