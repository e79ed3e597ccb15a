"""Deterministic layer tarballs for test images.

Entries keep the order callers give (a hardlink must follow its target); fixed
mtimes and owners make the same entries always produce the same bytes, so
digests are stable. Whiteouts use the OCI spellings ``.wh.<name>`` and
``.wh..wh..opq``.
"""

from __future__ import annotations

import gzip
import io
import struct
import tarfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

import zstandard

from pycontainerd.errdefs import InvalidArgument

FIXED_MTIME = 1_700_000_000
WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
COMPRESSIONS = ("gzip", "zstd", "none")

_TAR_TYPES = {
    "file": tarfile.REGTYPE,
    "dir": tarfile.DIRTYPE,
    "symlink": tarfile.SYMTYPE,
    "hardlink": tarfile.LNKTYPE,
}


@dataclass(frozen=True)
class TarEntry:
    """One layer member; ``path`` is relative to the root (no leading slash)."""

    path: str
    kind: str  # "file" | "dir" | "symlink" | "hardlink"
    data: bytes = b""
    mode: int = 0o644
    uid: int = 0
    gid: int = 0
    target: str = ""  # link target: any path for symlinks, a layer path for hardlinks


def file(path: str, data: bytes | str, mode: int = 0o644, uid: int = 0, gid: int = 0) -> TarEntry:
    payload = data.encode() if isinstance(data, str) else data
    return TarEntry(path.lstrip("/"), "file", payload, mode, uid, gid)


def directory(path: str, mode: int = 0o755, uid: int = 0, gid: int = 0) -> TarEntry:
    return TarEntry(path.strip("/"), "dir", mode=mode, uid=uid, gid=gid)


def symlink(path: str, target: str) -> TarEntry:
    return TarEntry(path.lstrip("/"), "symlink", mode=0o777, target=target)


def hardlink(path: str, target: str) -> TarEntry:
    return TarEntry(path.lstrip("/"), "hardlink", target=target.lstrip("/"))


def whiteout(path: str) -> TarEntry:
    """Marks ``path`` (from a lower layer) as deleted."""
    parent, _, name = path.strip("/").rpartition("/")
    marker = f"{parent}/{WHITEOUT_PREFIX}{name}" if parent else f"{WHITEOUT_PREFIX}{name}"
    return TarEntry(marker, "file", mode=0o600)


def opaque(directory_path: str) -> TarEntry:
    """Hides everything lower layers put in ``directory_path``."""
    return TarEntry(f"{directory_path.strip('/')}/{OPAQUE_MARKER}", "file", mode=0o600)


def tar_info(entry: TarEntry) -> tarfile.TarInfo:
    if entry.kind not in _TAR_TYPES:
        raise InvalidArgument(f"unknown tar entry kind {entry.kind!r}: use {sorted(_TAR_TYPES)}")
    info = tarfile.TarInfo(entry.path)
    info.type = _TAR_TYPES[entry.kind]
    info.mode = entry.mode
    info.uid, info.gid = entry.uid, entry.gid
    info.uname = info.gname = ""
    info.mtime = FIXED_MTIME
    info.linkname = entry.target
    info.size = len(entry.data) if entry.kind == "file" else 0
    return info


def write_tar(entries: Iterable[TarEntry], out: BinaryIO) -> None:
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for entry in entries:
            info = tar_info(entry)
            tar.addfile(info, io.BytesIO(entry.data) if info.size else None)


def tar_bytes(entries: Iterable[TarEntry]) -> bytes:
    out = io.BytesIO()
    write_tar(entries, out)
    return out.getvalue()


def compress(data: bytes, compression: str) -> bytes:
    """``gzip`` (mtime 0, so stable), ``zstd`` or ``none``."""
    if compression == "gzip":
        return gzip.compress(data, compresslevel=6, mtime=0)
    if compression == "zstd":
        return zstandard.ZstdCompressor(level=3).compress(data)
    if compression == "none":
        return data
    raise InvalidArgument(f"unknown compression {compression!r}: use one of {COMPRESSIONS}")


def compressing_writer(out: BinaryIO, compression: str) -> BinaryIO:
    """A writable stream compressing into ``out``; closing it does not close ``out``."""
    if compression == "gzip":
        return gzip.GzipFile(filename="", fileobj=out, mode="wb", compresslevel=1, mtime=0)
    if compression == "zstd":
        return zstandard.ZstdCompressor(level=1).stream_writer(out, closefd=False)
    if compression == "none":
        return _Uncloseable(out)
    raise InvalidArgument(f"unknown compression {compression!r}: use one of {COMPRESSIONS}")


class _Uncloseable(io.RawIOBase):
    def __init__(self, out: BinaryIO) -> None:
        super().__init__()
        self._out = out

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        return self._out.write(data)


class Updatable(Protocol):
    def update(self, data: bytes, /) -> object: ...


class HashingWriter(_Uncloseable):
    """Forwards writes to ``out`` and feeds them to ``hasher`` (for diff IDs)."""

    def __init__(self, out: BinaryIO, hasher: Updatable) -> None:
        super().__init__(out)
        self._hasher = hasher

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self._hasher.update(data)
        return super().write(data)


_PT_INTERP = 3


def elf_interpreter(path: Path) -> bytes | None:
    """The program interpreter (dynamic loader) an ELF file asks for; None if static."""
    with path.open("rb") as elf:
        header = elf.read(64)
        if header[:4] != b"\x7fELF":
            raise InvalidArgument(f"{path} is not an ELF executable")
        is_64 = header[4] == 2
        endian = "<" if header[5] == 1 else ">"
        if is_64:
            (phoff,) = struct.unpack_from(endian + "Q", header, 32)
            phentsize, phnum = struct.unpack_from(endian + "HH", header, 54)
        else:
            (phoff,) = struct.unpack_from(endian + "I", header, 28)
            phentsize, phnum = struct.unpack_from(endian + "HH", header, 42)
        for number in range(phnum):
            elf.seek(phoff + number * phentsize)
            entry = elf.read(phentsize)
            if struct.unpack_from(endian + "I", entry, 0)[0] != _PT_INTERP:
                continue
            if is_64:
                (offset,) = struct.unpack_from(endian + "Q", entry, 8)
                (size,) = struct.unpack_from(endian + "Q", entry, 32)
            else:
                (offset,) = struct.unpack_from(endian + "I", entry, 4)
                (size,) = struct.unpack_from(endian + "I", entry, 16)
            elf.seek(offset)
            return elf.read(size).rstrip(b"\0")
    return None
