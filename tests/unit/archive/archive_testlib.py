"""Helpers for the archive tests: build layer tars in memory, and describe trees."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import stat
import tarfile
from pathlib import Path

import zstandard

MTIME = 1_700_000_000


class LayerBuilder:
    """Build a layer tar with tarfile, one entry per call."""

    def __init__(self, fmt: int = tarfile.PAX_FORMAT) -> None:
        self._buffer = io.BytesIO()
        self._tar = tarfile.TarFile(fileobj=self._buffer, mode="w", format=fmt)

    def _info(self, name: str, kind: bytes, mode: int, uid: int, gid: int, mtime: int):
        info = tarfile.TarInfo(name)
        info.type = kind
        info.mode = mode
        info.uid, info.gid = uid, gid
        info.mtime = mtime
        return info

    def file(
        self,
        name: str,
        data: bytes = b"",
        *,
        mode: int = 0o644,
        uid: int = 0,
        gid: int = 0,
        mtime: int = MTIME,
        xattrs: dict[str, bytes] | None = None,
    ) -> LayerBuilder:
        info = self._info(name, tarfile.REGTYPE, mode, uid, gid, mtime)
        info.size = len(data)
        for key, value in (xattrs or {}).items():
            info.pax_headers["SCHILY.xattr." + key] = value.decode("utf-8", "surrogateescape")
        self._tar.addfile(info, io.BytesIO(data))
        return self

    def dir(self, name: str, *, mode: int = 0o755, uid: int = 0, gid: int = 0, mtime: int = MTIME):
        self._tar.addfile(self._info(name, tarfile.DIRTYPE, mode, uid, gid, mtime))
        return self

    def symlink(self, name: str, target: str, *, uid: int = 0, gid: int = 0, mtime: int = MTIME):
        info = self._info(name, tarfile.SYMTYPE, 0o777, uid, gid, mtime)
        info.linkname = target
        self._tar.addfile(info)
        return self

    def hardlink(self, name: str, target: str) -> LayerBuilder:
        info = self._info(name, tarfile.LNKTYPE, 0o644, 0, 0, MTIME)
        info.linkname = target
        self._tar.addfile(info)
        return self

    def device(self, name: str, kind: bytes, major: int, minor: int, *, mode: int = 0o660):
        info = self._info(name, kind, mode, 0, 0, MTIME)
        info.devmajor, info.devminor = major, minor
        self._tar.addfile(info)
        return self

    def fifo(self, name: str, *, mode: int = 0o600) -> LayerBuilder:
        self._tar.addfile(self._info(name, tarfile.FIFOTYPE, mode, 0, 0, MTIME))
        return self

    def bytes(self) -> bytes:
        self._tar.close()
        return self._buffer.getvalue()


def compress(data: bytes, compression: str) -> bytes:
    if compression == "gzip":
        return gzip.compress(data)
    if compression == "zstd":
        return zstandard.ZstdCompressor().compress(data)
    return data


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def snapshot_outside(tmp_path: Path, target: Path) -> dict[str, tuple]:
    """State of every path under tmp_path outside ``target`` (content, metadata)."""
    state: dict[str, tuple] = {}
    for dirpath, dirnames, filenames in os.walk(tmp_path):
        if Path(dirpath) == target:
            dirnames[:] = []
            continue
        for name in dirnames + filenames:
            path = Path(dirpath, name)
            if path == target:
                continue
            st = os.lstat(path)
            content = path.read_bytes() if stat.S_ISREG(st.st_mode) else None
            state[str(path)] = (
                st.st_mode,
                st.st_uid,
                st.st_gid,
                st.st_nlink,
                st.st_mtime_ns,
                content,
            )
    return state
